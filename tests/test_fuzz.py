"""Fuzzing the file readers with hypothesis: random and near-valid input to
``fastunlearn.data.read_interactions`` and mutated model files to
``fastunlearn.load``.  Only the documented exceptions may come out.

The default run is short (derandomised, a few seconds); set
``HYPOTHESIS_PROFILE=thorough`` for a long run.
"""
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import event, given
from hypothesis import strategies as st

import fastunlearn as fu
from conftest import examples
from fastunlearn.data import DataFormatError, Interactions, read_interactions

FUZZ = examples(60)

NAMES = ["x.csv", "x.tsv", "ratings.dat", "u.data", "x.txt", "x.npz"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def read(path):
    """read_interactions, checking what it returns when it does not raise."""
    try:
        out = read_interactions(path)
    except DataFormatError as exc:
        assert str(path) in str(exc)  # the message names the file
        event("rejected")
        return None
    event("read")
    assert isinstance(out, Interactions)
    m = out.matrix
    assert sp.isspmatrix_csr(m) and m.dtype == np.float32 and np.all(np.isfinite(m.data))
    assert m.shape == (len(out.user_ids), len(out.item_ids)) and m.nnz >= 1
    assert len(np.unique(out.user_ids)) == len(out.user_ids)
    return out


@FUZZ
@given(payload=st.binary(max_size=300), name=st.sampled_from(NAMES))
def test_random_bytes(workdir, payload, name):
    path = workdir / name
    path.write_bytes(payload)
    read(path)


# near-valid text: the right shape of line with ordinary or hostile fields
ORDINARY = [st.one_of(st.integers(0, 60).map(str), st.sampled_from(["u1", "alice"])),  # user
            st.one_of(st.integers(0, 60).map(str), st.just("The Matrix")),  # item
            st.sampled_from(["1", "3.5", "4", "5", "-1", "0"]),  # value
            st.integers(0, 2**31).map(str)]  # timestamp
field = st.one_of(
    st.sampled_from(["1", "-7", "007", "u1", "", " ", "1.5", "1e308", "1e39", "-0", "nan",
                     "inf", "-inf", "NaN", "1_0", "٤٢", "0x10", '"', '""', '"a,b"', '"x\ny"',
                     "\ufeff", "\\", "::", "\t", "1,5", "9" * 40, "\x00"]),
    st.text(max_size=6),
    st.integers(-2**63, 2**64).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


# the delimiter each reader expects, by file name (fastunlearn.data._guess_format)
DELIMITERS = {"x.csv": ",", "x.tsv": "\t", "ratings.dat": "::", "u.data": "\t", "x.txt": ","}


@st.composite
def near_valid_text(draw, expected=","):
    """Lines of the file's own delimiter and width with a few hostile fields
    (so that files get past their first line, and some parse), or of any
    delimiter, width and fields."""
    shaped = draw(st.booleans())
    delimiter = expected if shaped else draw(st.sampled_from([",", "\t", "::", ";"]))
    width = draw(st.integers(2, 4) if shaped else st.integers(1, 5))
    lines = []
    if draw(st.booleans()):
        lines.append(delimiter.join(["user", "item", "rating", "time"][:width]))
    for _ in range(draw(st.integers(0, 8))):
        n = width if shaped or draw(st.integers(0, 4)) else draw(st.integers(0, 6))
        hostile = not shaped or draw(st.integers(0, 5)) == 0
        lines.append(delimiter.join(draw(field if hostile else ORDINARY[j]) for j in range(n)))
    # no line breaks at all (one long line) only among the unshaped files
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"] + ([] if shaped else [""])))
    return ending.join(lines) + draw(st.sampled_from(["", ending]))


@examples(200)  # cheap, and the first few dozen examples are the simplest
@given(name=st.sampled_from(sorted(DELIMITERS)),
       encoding=st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]),
       data=st.data())
def test_near_valid_text(workdir, name, encoding, data):
    text = data.draw(near_valid_text(DELIMITERS[name]), label="text")
    path = workdir / name
    try:
        path.write_bytes(text.encode(encoding))
    except UnicodeEncodeError:
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
    read(path)


@FUZZ
@given(rows=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5),
                               st.floats(allow_nan=True, allow_infinity=True, width=64)),
                     max_size=8),
       shape=st.tuples(st.integers(0, 6), st.integers(0, 6)),
       dtype=st.sampled_from(["float64", "float32", "int64", "bool", "complex128"]))
def test_npz_matrices(workdir, rows, shape, dtype):
    rows = [(r, c, v) for r, c, v in rows if r < shape[0] and c < shape[1]]
    m = sp.coo_matrix(([v for *_, v in rows], ([r for r, *_ in rows], [c for _, c, _ in rows])),
                      shape=shape)
    with np.errstate(invalid="ignore", over="ignore"):
        m = m.astype(dtype)
    path = workdir / "m.npz"
    sp.save_npz(path, m)
    read(path)


# ------------------------------------------------------------------ model files

@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    rng = np.random.default_rng(3)
    R = sp.random(6, 5, density=0.5, format="csr", random_state=rng)
    model = fu.ExplicitALS(factors=2, iterations=2, dtype=np.float32, random_state=0)
    model.fit(R, show_progress=False)
    model.metadata = {"user_ids": np.array(list("abcdef")), "history": [{"digest": "0" * 64}]}
    path = model.save(tmp_path_factory.mktemp("model") / "m.npz")
    return open(path, "rb").read()


@st.composite
def mutations(draw, data):
    """A few byte-level edits of ``data``: overwrite, insert, delete, truncate."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "set", "insert", "delete", "truncate", "copy"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "set" and out:
            out[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del out[at:at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del out[at:]
        else:
            n = draw(st.integers(1, 64))
            out[at:at] = out[draw(st.integers(0, max(len(out) - 1, 0))):][:n]
    return bytes(out)


def try_load(path):
    try:
        model = fu.load(path)
    except fu.ModelFileError as exc:
        assert str(path) in str(exc)
        return
    except MemoryError as exc:  # documented: a file declaring more than there is
        assert "loading" in str(exc)
        return
    # whatever loads is a whole, valid model
    assert model.user_items.shape == (len(model.user_factors), len(model.item_factors))
    assert np.all(np.isfinite(model.user_factors)) and np.all(np.isfinite(model.item_factors))
    assert np.isfinite(model.certificate().max_row)


@FUZZ
@given(data=st.data())
def test_mutated_model_files(workdir, model_bytes, data):
    path = workdir / "mutated.npz"
    path.write_bytes(data.draw(mutations(model_bytes)))
    try_load(path)


@FUZZ
@given(data=st.data())
def test_mutated_members_with_valid_checksums(workdir, model_bytes, data):
    """Byte edits inside the arrays, re-zipped so the CRC checks pass: the
    content checks (not the checksum) must catch them."""
    source = workdir / "source.npz"
    source.write_bytes(model_bytes)
    with zipfile.ZipFile(source) as zf:
        members = [(info.filename, zf.read(info)) for info in zf.infolist()]
    index = data.draw(st.integers(0, len(members) - 1))
    name, payload = members[index]
    members[index] = (name, data.draw(mutations(payload)))
    path = workdir / "rezipped.npz"
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members:
            zf.writestr(name, payload)
    try_load(path)
