"""``load`` against damaged and hostile model files.

Every file here must be refused with a :class:`ModelFileError` whose message
names the file and the problem: never a crash, never another exception type,
never a model built from part of the file, and never an unpickled object
(the pickle payloads below would create a marker file if anything ran them).
"""
import builtins
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastunlearn as fu
from conftest import make_model, problem
from fastunlearn.persistence import FORMAT_VERSION, ModelFileError
from fastunlearn.validation import MAX_FACTORS, MAX_THREADS


class Marker:
    """Unpickling this creates ``path``: proof that a payload was executed."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


@pytest.fixture(name="good")
def good_file(tmp_path):
    """(path of a valid model file, its arrays, the model)."""
    R, X, Y = problem(61, n_users=9, n_items=7, negative=True)
    model = make_model("implicit", X, Y, R)
    model.metadata = {"user_ids": np.array([f"u{i}" for i in range(9)]),
                      "item_ids": np.arange(100, 107), "history": []}
    path = model.save(tmp_path / "good.npz")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return path, arrays, model


def npy_bytes(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=allow_pickle)
    return buf.getvalue()


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    """A zip with the given {name: bytes} members, in order."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, payload in members:
            zf.writestr(name, payload)
    return path


def variant(tmp_path, arrays, name="bad.npz", **changes):
    """The good arrays with ``changes`` (None removes a member), saved as npz."""
    out = {key: value for key, value in arrays.items() if key not in changes}
    out.update({key: value for key, value in changes.items() if value is not None})
    path = tmp_path / name
    np.savez(path, **out)
    return path


def assert_refused(path, match):
    before = open(path, "rb").read() if os.path.isfile(path) else None
    listing = sorted(os.listdir(os.path.dirname(path)))
    with pytest.raises(ModelFileError, match=match) as info:
        fu.load(path)
    assert str(path) in str(info.value)  # the message names the file
    if before is not None:  # load never writes
        assert open(path, "rb").read() == before
    assert sorted(os.listdir(os.path.dirname(path))) == listing
    return info.value


def test_the_good_file_loads(good):
    path, _, model = good
    loaded = fu.load(path)
    assert np.array_equal(loaded.user_factors, model.user_factors)
    assert loaded.metadata["user_ids"].tolist() == model.metadata["user_ids"].tolist()


# ------------------------------------------------------------------ not a model at all

def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    assert_refused(path, "not a fastunlearn model file")


def test_directory(tmp_path):
    path = tmp_path / "model.npz"
    path.mkdir()
    with pytest.raises(ModelFileError, match="not a regular file"):
        fu.load(path)


@pytest.mark.parametrize("cut", [0.0, 0.25, 0.5, 0.9, -22, -1])
def test_truncated(good, tmp_path, cut):
    path, _, _ = good
    data = open(path, "rb").read()
    n = int(len(data) * cut) if isinstance(cut, float) else len(data) + cut
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[:n])
    assert_refused(bad, "not a fastunlearn model file|unreadable|truncated")


def test_flipped_bytes_fail_the_checksum(good, tmp_path):
    path, arrays, _ = good
    data = bytearray(open(path, "rb").read())
    # the last bytes of the user factors: float values, so only the CRC can tell
    offset = data.index(npy_bytes(arrays["user_factors"])) + len(npy_bytes(arrays["user_factors"]))
    data[offset - 3] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    assert_refused(bad, "unreadable model file.*CRC")


def test_zip_that_is_not_npz(tmp_path):
    path = write_zip(tmp_path / "notes.npz", [("readme.txt", b"hello")])
    assert_refused(path, r"not \.npy arrays: \['readme.txt'\]")


def test_member_without_npy_suffix(good, tmp_path):
    # np.load hands such members out as raw bytes
    _, arrays, _ = good
    members = [(f"{k}.npy", npy_bytes(v)) for k, v in arrays.items() if k != "kind"]
    path = write_zip(tmp_path / "raw.npz", members + [("kind", b"implicit")])
    assert_refused(path, r"not \.npy arrays: \['kind'\]")


def test_bare_npy_file(tmp_path):
    path = tmp_path / "array.npz"
    path.write_bytes(npy_bytes(np.arange(5.0)))
    assert_refused(path, "not a complete .npz archive")


def test_other_archive_members(good, tmp_path):
    _, arrays, _ = good
    assert_refused(variant(tmp_path, arrays, extra=np.arange(3)), r"unknown members \['extra'\]")
    assert_refused(variant(tmp_path, arrays, indptr=None), r"missing \['indptr'\]")
    members = [(f"{k}.npy", npy_bytes(v)) for k, v in arrays.items()]
    twice = members + [("user_factors.npy", npy_bytes(np.zeros_like(arrays["user_factors"])))]
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = write_zip(tmp_path / "twice.npz", twice)
    assert_refused(path, r"\['user_factors'\] appear twice")


def test_compressed_files_load_and_damaged_compression_is_refused(good, tmp_path):
    _, arrays, model = good
    members = [(f"{k}.npy", npy_bytes(v)) for k, v in arrays.items()]
    path = write_zip(tmp_path / "deflated.npz", members, zipfile.ZIP_DEFLATED)
    assert np.array_equal(fu.load(path).item_factors, model.item_factors)
    data = bytearray(open(path, "rb").read())
    start = data.index(b"user_factors.npy") + 40
    data[start:start + 24] = bytes(b ^ 0x5A for b in data[start:start + 24])
    bad = tmp_path / "deflated-bad.npz"
    bad.write_bytes(bytes(data))
    assert_refused(bad, "unreadable model file")


# ------------------------------------------------------------------ pickles never run

def test_pickle_payloads_are_never_unpickled(good, tmp_path):
    _, arrays, _ = good
    marker = tmp_path / "executed"
    evil = np.array([Marker(marker)], dtype=object)
    # positive control: the payload works when something does unpickle it
    np.save(tmp_path / "control.npy", evil, allow_pickle=True)
    np.load(tmp_path / "control.npy", allow_pickle=True)
    assert marker.exists()
    marker.unlink()

    cases = {}
    # an object array in place of the factors and of the history, in an npz
    for key in ("user_factors", "history"):
        members = [(f"{k}.npy", npy_bytes(evil, allow_pickle=True) if k == key else npy_bytes(v))
                   for k, v in arrays.items()]
        cases[key] = write_zip(tmp_path / f"object-{key}.npz", members)
    # np.save with allow_pickle (a bare .npy) and a raw pickle, named as models
    np.save(tmp_path / "object.npy", evil, allow_pickle=True)
    os.replace(tmp_path / "object.npy", tmp_path / "object-npy.npz")
    cases["npy"] = tmp_path / "object-npy.npz"
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps(Marker(marker)))
    cases["pickle"] = tmp_path / "pickle.npz"
    for key, path in cases.items():
        assert_refused(path, "Python objects|not a complete .npz archive")
        assert not marker.exists(), key


def test_object_and_structured_dtypes_are_refused(good, tmp_path):
    _, arrays, _ = good
    structured = np.zeros(len(arrays["data"]), dtype=[("a", "<f8"), ("b", "O")])
    members = [(f"{k}.npy", npy_bytes(structured, allow_pickle=True) if k == "data"
                else npy_bytes(v)) for k, v in arrays.items()]
    assert_refused(write_zip(tmp_path / "structured.npz", members), "Python objects")
    assert_refused(variant(tmp_path, arrays, data=arrays["data"].astype([("a", "<f8")])),
                   "'data' must be a 1-D numeric array")


# ------------------------------------------------------------------ headers that lie

@pytest.mark.parametrize("shape", ["(2000000000000, 3)", "(20, 3)"])
def test_header_declaring_other_size_than_stored(good, tmp_path, shape):
    _, arrays, _ = good
    real = npy_bytes(arrays["user_factors"])
    declared = str(arrays["user_factors"].shape).encode()
    lying = real.replace(declared, shape.encode().ljust(len(declared)), 1)
    members = [(f"{k}.npy", lying if k == "user_factors" else npy_bytes(v))
               for k, v in arrays.items()]
    # refused from the header alone: 48 TB are never allocated
    assert_refused(write_zip(tmp_path / "lying.npz", members), "declares .* bytes of data")


def test_arrays_that_exceed_available_memory(good, tmp_path, monkeypatch):
    path, _, _ = good
    monkeypatch.setenv("FASTUNLEARN_MEMORY_LIMIT", "1000")
    with pytest.raises(MemoryError, match="loading .* needs"):
        fu.load(path)


# ------------------------------------------------------------------ format and hyperparameters

@pytest.mark.parametrize("version, match", [
    (np.array(FORMAT_VERSION + 1, dtype=np.int64), "format version 2, this fastunlearn reads"),
    (np.array(0, dtype=np.int64), "format version 0"),
    (np.array(1.0), "'format_version' must be a scalar"),
    (np.array([1, 1]), "'format_version' must be a scalar"),
    (np.array("1"), "'format_version' must be a scalar"),
])
def test_wrong_or_future_format_version(good, tmp_path, version, match):
    assert_refused(variant(tmp_path, good[1], format_version=version), match)


@pytest.mark.parametrize("params, match", [
    ("not json", "damaged hyperparameters"),
    ("[" * 100_000, "damaged hyperparameters"),
    ('["factors", 3]', "not a JSON object"),
    ('{"factors": 3, "bogus": 1}', r"unknown hyperparameters \['bogus'\]"),
    ('{"factors": -3}', "invalid hyperparameters.*factors"),
    ('{"factors": 3, "dtype": "int8"}', "invalid hyperparameters.*dtype"),
    ('{"factors": 3, "dtype": "float64", "use_cg": "no"}', "use_cg must be true or false"),
    ('{"factors": 3, "dtype": "float64", "random_state": "x"}', "random_state must be null"),
    ('{"factors": 3, "dtype": "float64", "num_threads": %d}' % (MAX_THREADS + 1),
     rf"invalid hyperparameters \(num_threads must be an integer in \[0, {MAX_THREADS}\], "
     rf"got {MAX_THREADS + 1}\)"),
    ('{"factors": %d, "dtype": "float64"}' % (MAX_FACTORS + 1),
     rf"invalid hyperparameters \(factors must be <= {MAX_FACTORS}, got {MAX_FACTORS + 1}\)"),
])
def test_bad_hyperparameters(good, tmp_path, params, match):
    assert_refused(variant(tmp_path, good[1], hyperparameters=np.array(params)), match)


def test_bad_kind_and_history(good, tmp_path):
    arrays = good[1]
    assert_refused(variant(tmp_path, arrays, kind=np.array("neural")), "unknown model kind")
    assert_refused(variant(tmp_path, arrays, kind=np.array(1)), "'kind' must be a scalar")
    for history in ('{"a": 1}', "[1, 2]", "[" * 100_000, "nope"):
        assert_refused(variant(tmp_path, arrays, history=np.array(history)),
                       "damaged forget history")


# ------------------------------------------------------------------ arrays that disagree

def test_shapes_that_disagree(good, tmp_path):
    a = good[1]
    X, Y = a["user_factors"], a["item_factors"]
    cases = [
        (dict(user_factors=X[:-1]), "'user_factors' is float64 \\(8, 3\\), expected"),
        (dict(item_factors=Y[:, :2]), "'item_factors' is float64 \\(7, 2\\)"),
        (dict(user_factors=X.astype(np.float32)), "'user_factors' is float32"),
        (dict(user_factors=X.ravel()), "'user_factors' is float64 \\(27,\\)"),
        (dict(shape=np.array([9, 7, 1])), "'shape' must be two"),
        (dict(shape=np.array([-9, 7])), "'shape' must be two"),
        (dict(shape=np.array([9.0, 7.0])), "'shape' must be two"),
        (dict(indptr=a["indptr"][:-1]), "CSR arrays disagree"),
        (dict(indices=a["indices"][:-1]), "CSR arrays disagree"),
        (dict(data=a["data"].astype(np.float32)), "'data' is float32"),
        (dict(data=a["data"].reshape(1, -1)), "'data' must be a 1-D"),
        (dict(indices=a["indices"].astype(np.float64)), "'indices' must be a 1-D numeric"),
        (dict(user_ids=a["user_ids"][:-1]), "'user_ids' has 8 ids for 9 rows"),
        (dict(item_ids=np.zeros(7, dtype=np.int64)), "'item_ids' repeats ids"),
        (dict(item_ids=np.ones(7, dtype=bool)), "'item_ids' must be a 1-D array of ids"),
    ]
    for changes, match in cases:
        assert_refused(variant(tmp_path, a, **changes), match)


@pytest.mark.parametrize("where", ["user_factors", "item_factors", "data"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values(good, tmp_path, where, value):
    arr = good[1][where].copy()
    arr.flat[len(arr.flat) // 2] = value
    assert_refused(variant(tmp_path, good[1], **{where: arr}), "NaN or infinite")


def test_csr_structure(good, tmp_path):
    a = good[1]
    indptr, indices = a["indptr"], a["indices"]
    row = int(np.argmax(np.diff(indptr)))  # a row with at least two entries
    lo = indptr[row]
    assert indptr[row + 1] - lo >= 2

    def with_indices(fn):
        out = indices.copy()
        fn(out)
        return out

    cases = [
        (dict(indices=with_indices(lambda x: x.__setitem__(lo, 7))), "out of range"),
        (dict(indices=with_indices(lambda x: x.__setitem__(lo, -1))), "out of range"),
        (dict(indices=with_indices(lambda x: x.__setitem__(
            slice(lo, lo + 2), x[lo:lo + 2][::-1].copy()))), "unsorted or duplicated"),
        (dict(indices=with_indices(lambda x: x.__setitem__(lo + 1, x[lo]))),
         "unsorted or duplicated"),
        (dict(indptr=np.r_[indptr[:row + 1], indptr[row + 2], indptr[row + 1],
                           indptr[row + 3:]]), "not a valid row pointer"),
        (dict(indptr=indptr + 1), "not a valid row pointer"),
        (dict(indptr=np.r_[indptr[:-1], indptr[-1] - 1]), "not a valid row pointer"),
        (dict(indptr=indptr.astype(np.uint64) - np.uint64(1)), "not a valid row pointer"),
    ]
    for changes, match in cases:
        assert_refused(variant(tmp_path, a, **changes), match)


def test_big_endian_and_int64_arrays_load_as_native(good, tmp_path):
    # valid content in another byte order or index width is still the same model
    a, model = good[1], good[2]
    path = variant(tmp_path, a, indptr=a["indptr"].astype(">i8"),
                   indices=a["indices"].astype(np.int64))
    loaded = fu.load(path)
    assert loaded.user_items.indices.dtype == np.int32
    assert np.array_equal(loaded.user_items.toarray(), model.user_items.toarray())
    # factors in another byte order are not the model's dtype: refused, clearly
    assert_refused(variant(tmp_path, a, user_factors=a["user_factors"].astype(">f8")),
                   "'user_factors' is >f8")


def test_history_round_trips_as_json(good, tmp_path):
    a = good[1]
    history = [{"digest": "ab" * 32, "n_removed": 3}]
    loaded = fu.load(variant(tmp_path, a, history=np.array(json.dumps(history))))
    assert loaded.metadata["history"] == history
