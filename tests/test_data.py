"""Tests for fastunlearn/data.py (reading interaction files, id maps)."""

import csv
import io
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st

from conftest import MOVIELENS, MOVIELENS_MISSING, examples
from fastunlearn import data

DataFormatError = data.DataFormatError
read_interactions = data.read_interactions


def write(tmp_path, name, text):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, newline="")  # keep \r\n exactly as given
    return p


def check_canonical(inter):
    m = inter.matrix
    assert isinstance(m, scipy.sparse.csr_matrix)
    assert m.dtype == np.float32
    assert m.shape == (len(inter.user_ids), len(inter.item_ids))
    # Check the structure itself rather than trusting scipy's cached flags.
    for r in range(m.shape[0]):
        idx = m.indices[m.indptr[r]:m.indptr[r + 1]]
        assert np.all(np.diff(idx) > 0), f"row {r} unsorted or duplicated"
    assert m.has_canonical_format


# --------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------


def test_csv_with_header_and_string_ids(tmp_path):
    p = write(
        tmp_path, "ratings.csv",
        "user,item,rating\n"
        "bob,pizza,4\n"
        " alice , salad ,2.5\n"  # surrounding whitespace is not part of the id
        "carol,pizza,1\n"
        "alice,pizza,3\n",
    )
    inter = read_interactions(p)
    check_canonical(inter)
    assert inter.user_ids.tolist() == ["alice", "bob", "carol"]
    assert inter.item_ids.tolist() == ["pizza", "salad"]
    assert inter.user_ids.dtype.kind == "U"
    expected = np.array([[3.0, 2.5], [4.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(inter.matrix.toarray(), expected)
    assert inter.matrix.nnz == 4


def test_tsv_without_header_and_default_value(tmp_path):
    p = write(tmp_path, "clicks.tsv", "3\t7\n1\t7\n3\t2\n")
    inter = read_interactions(p, default_value=2.0)
    assert inter.user_ids.dtype == np.int64 and inter.item_ids.dtype == np.int64
    assert inter.user_ids.tolist() == [1, 3]
    assert inter.item_ids.tolist() == [2, 7]
    np.testing.assert_array_equal(inter.matrix.toarray(), [[0, 2], [2, 2]])


def test_tsv_with_values_and_timestamps(tmp_path):
    p = write(tmp_path, "r.tab", "u1\ti1\t5\t881250949\nu2\ti1\t0.5\t8.8e8\n")
    inter = read_interactions(p)
    np.testing.assert_array_equal(inter.matrix.toarray(), [[5.0], [0.5]])


def test_explicit_zero_values_are_kept(tmp_path):
    p = write(tmp_path, "z.csv", "1,1,0\n2,2,1\n")
    inter = read_interactions(p)
    assert inter.matrix.nnz == 2


def test_movielens_small_file(tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    write(d, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t302\t5\t881250950\n")
    for inter in (read_interactions(d / "u.data"), data.load_movielens(d), data.load_movielens(d / "u.data")):
        check_canonical(inter)
        assert inter.user_ids.tolist() == [22, 186, 196]
        assert inter.item_ids.tolist() == [242, 302, 377]
        np.testing.assert_array_equal(
            inter.matrix.toarray(), [[0, 0, 1], [0, 3, 0], [3, 5, 0]]
        )


def test_movielens_100k_real_file():
    if not MOVIELENS.exists():
        pytest.skip(f"{MOVIELENS_MISSING} {MOVIELENS}")
    # The directory form, when the file has its usual name.
    inter = data.load_movielens(MOVIELENS.parent if MOVIELENS.name == "u.data" else MOVIELENS)
    check_canonical(inter)
    assert inter.matrix.shape == (943, 1682)
    assert inter.matrix.nnz == 100000
    assert set(np.unique(inter.matrix.data).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert inter.user_ids.tolist() == list(range(1, 944))
    assert inter.item_ids.tolist() == list(range(1, 1683))
    # The first line of u.data is "196 242 3 881250949".
    r, c = data.to_internal("196", inter.user_ids), data.to_internal(242, inter.item_ids)
    assert inter.matrix[r, c] == 3.0


def test_movielens_dat_format(tmp_path):
    p = write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    inter = read_interactions(p)  # auto: .dat
    assert inter.user_ids.tolist() == [1, 2]
    assert inter.item_ids.tolist() == [661, 1193]
    np.testing.assert_array_equal(inter.matrix.toarray(), [[3, 5], [0, 4]])
    assert data.load_movielens(p).matrix.nnz == 3
    same = read_interactions(write(tmp_path, "ratings.txt", p.read_text()), fmt="movielens-dat")
    np.testing.assert_array_equal(same.matrix.toarray(), inter.matrix.toarray())


def test_npz_round_trip(tmp_path):
    dense = np.array([[0, 1.5, 0, 2], [0, 0, 0, 0], [3, 0, 0, 4]], dtype=np.float64)
    p = tmp_path / "m.npz"
    scipy.sparse.save_npz(p, scipy.sparse.csr_matrix(dense))
    inter = read_interactions(p)
    check_canonical(inter)
    np.testing.assert_array_equal(inter.matrix.toarray(), dense)
    assert inter.user_ids.dtype == np.int64
    assert inter.user_ids.tolist() == [0, 1, 2]  # empty row 1 keeps its place
    assert inter.item_ids.tolist() == [0, 1, 2, 3]


def test_npz_duplicates_and_bad_values(tmp_path):
    coo = scipy.sparse.coo_matrix(([1.0, 2.0, 5.0], ([0, 0, 1], [1, 1, 0])), shape=(2, 2))
    p = tmp_path / "dup.npz"
    scipy.sparse.save_npz(p, coo, compressed=False)
    assert read_interactions(p).matrix[0, 1] == 3.0
    assert read_interactions(p, duplicates="last").matrix[0, 1] == 2.0
    with pytest.raises(DataFormatError, match=r"dup\.npz, entry 2: duplicate"):
        read_interactions(p, duplicates="error")

    bad = scipy.sparse.coo_matrix(([1.0, np.nan], ([0, 1], [0, 1])), shape=(2, 2))
    q = tmp_path / "nan.npz"
    scipy.sparse.save_npz(q, bad, compressed=False)
    with pytest.raises(DataFormatError, match=r"nan\.npz, entry 2"):
        read_interactions(q)
    junk = write(tmp_path, "junk.npz", b"not a zip")
    with pytest.raises(DataFormatError, match="junk.npz"):
        read_interactions(junk)


def test_quoted_csv_fields(tmp_path):
    p = write(
        tmp_path, "q.csv",
        'user,item,rating\n'
        '"Smith, J.","The ""Best"" Film",4\n'
        '"multi\nline",x,2\n'
        'plain, "spaced",1\n',
    )
    inter = read_interactions(p)
    assert inter.user_ids.tolist() == ["Smith, J.", "multi\nline", "plain"]
    assert inter.item_ids.tolist() == ['The "Best" Film', "spaced", "x"]
    np.testing.assert_array_equal(inter.matrix.toarray(), [[4, 0, 0], [0, 0, 2], [0, 1, 0]])


def test_quoted_csv_error_line_after_multiline_field(tmp_path):
    p = write(tmp_path, "q.csv", 'a,"b\nc",1\nd,e,oops\n')
    with pytest.raises(DataFormatError, match=r"q\.csv, line 3: value 'oops'"):
        read_interactions(p)


def test_auto_format_by_suffix(tmp_path):
    assert data._guess_format("x/u.data") == "movielens"
    assert data._guess_format("ml.DATA") == "movielens"
    assert data._guess_format("ratings.dat") == "movielens-dat"
    assert data._guess_format("a.npz") == "npz"
    assert data._guess_format("a.tsv") == "tsv"
    assert data._guess_format("a.tab") == "tsv"
    assert data._guess_format("a.csv") == "csv"
    assert data._guess_format("ratings") == "csv"
    assert data._guess_format("a.parquet") == "parquet"
    assert data._guess_format(tmp_path) == "parquet"  # a directory of Parquet files
    # The name only sets the preferred delimiter; content decides (see
    # test_delimiter_detected_from_content).  An explicit fmt is obeyed.
    p = write(tmp_path, "tabs.csv", "1\t2\n")
    assert read_interactions(p).matrix.nnz == 1
    with pytest.raises(DataFormatError, match="got 1"):
        read_interactions(p, fmt="csv")


def test_bad_arguments(tmp_path):
    p = write(tmp_path, "a.csv", "1,2\n")
    with pytest.raises(ValueError, match="fmt"):
        read_interactions(p, fmt="xlsx")
    with pytest.raises(ValueError, match="duplicates"):
        read_interactions(p, duplicates="first")
    with pytest.raises(ValueError, match="default_value"):
        read_interactions(p, default_value=float("nan"))
    with pytest.raises(FileNotFoundError):
        read_interactions(tmp_path / "missing.csv")
    with pytest.raises(FileNotFoundError):
        data.load_movielens(tmp_path)


# --------------------------------------------------------------------------
# Headers, blank lines, line endings
# --------------------------------------------------------------------------


def test_two_column_header_detection(tmp_path):
    assert read_interactions(write(tmp_path, "a.csv", "user,item\nx,y\n")).matrix.nnz == 1
    # Non-numeric names over integer columns: a header, whose names must say
    # which column is which (see test_header_names_choose_the_columns).
    b = write(tmp_path, "b.csv", "who,what\n1,2\n3,4\n")
    with pytest.raises(DataFormatError, match="names no user and no item column"):
        read_interactions(b)
    inter = read_interactions(b, user="who", item="what")
    assert inter.matrix.nnz == 2 and inter.user_ids.dtype == np.int64
    # Two string ids with no numeric column to compare against: data, not
    # a header, because dropping it would lose an interaction silently.
    inter = read_interactions(write(tmp_path, "c.csv", "alice,pizza\nbob,salad\n"))
    assert inter.user_ids.tolist() == ["alice", "bob"]
    d = write(tmp_path, "d.csv", "alice,pizza\nbob,salad\n")
    with pytest.raises(DataFormatError, match="found 'alice', 'pizza'"):
        read_interactions(d, header=True)
    assert read_interactions(d, header=True, user="alice", item="pizza").matrix.nnz == 1
    # header=False keeps a first line that auto-detection would skip.
    with pytest.raises(DataFormatError, match=r"line 1: value 'rating'"):
        read_interactions(write(tmp_path, "e.csv", "user,item,rating\n1,2,3\n"), header=False)


def test_blank_lines_skipped_and_counted(tmp_path):
    p = write(tmp_path, "b.csv", "\n1,1,1\n   \n\n2,2,2\n\n\n")
    assert read_interactions(p).matrix.nnz == 2
    # Whitespace-only lines of a tab file are blank, whether or not the
    # file takes the quoted-field path.
    for name, text in (("t.tsv", "a\tb\t1\n\t\n"), ("t2.tsv", '"a"\tb\t1\n\t \n')):
        assert read_interactions(write(tmp_path, name, text)).matrix.nnz == 1
    q = write(tmp_path, "c.csv", "1,1,1\n\n \n2,2,x\n")
    with pytest.raises(DataFormatError, match=r"c\.csv, line 4: value 'x'"):
        read_interactions(q)


def test_crlf_and_bom(tmp_path):
    p = write(tmp_path, "w.csv", "\ufeffuser,item,rating\r\n1,2,3\r\n4,5,x\r\n")
    with pytest.raises(DataFormatError, match=r"w\.csv, line 3: value 'x'"):
        read_interactions(p)
    q = write(tmp_path, "w2.csv", "\ufeffuser,item,rating\r\n1,2,3\r\n4,5,6\r\n")
    inter = read_interactions(q)
    assert inter.user_ids.tolist() == [1, 4] and inter.matrix.nnz == 2


def test_row_order_does_not_matter(tmp_path):
    lines = ["u%d,i%d,%d" % (u, i, u + i) for u in range(5) for i in range(4) if (u * i) % 3]
    a = read_interactions(write(tmp_path, "a.csv", "\n".join(lines)))
    b = read_interactions(write(tmp_path, "b.csv", "\n".join(reversed(lines))))
    assert a.user_ids.tolist() == b.user_ids.tolist()
    assert a.item_ids.tolist() == b.item_ids.tolist()
    assert (a.matrix != b.matrix).nnz == 0


# --------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------

DUPS = "u,i,r\na,x,1\nb,x,7\na,x,4\na,y,2\na,x,2\n"


@pytest.mark.parametrize("policy,expected", [("sum", 7.0), ("last", 2.0), ("max", 4.0)])
def test_duplicate_policies(tmp_path, policy, expected):
    inter = read_interactions(write(tmp_path, "d.csv", DUPS), duplicates=policy)
    check_canonical(inter)
    assert inter.matrix.nnz == 3
    np.testing.assert_array_equal(inter.matrix.toarray(), [[expected, 2.0], [7.0, 0.0]])


def test_duplicate_policy_error_names_first_repeat(tmp_path):
    with pytest.raises(DataFormatError) as e:
        read_interactions(write(tmp_path, "d.csv", DUPS), duplicates="error")
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / "d.csv") + ", line 4: duplicate")
    assert "'a'" in msg and "'x'" in msg and "first on line 2" in msg
    assert e.value.line == 4
    # No repeats: "error" reads normally.
    ok = read_interactions(write(tmp_path, "ok.csv", "a,x,1\na,y,2\n"), duplicates="error")
    assert ok.matrix.nnz == 2


def test_duplicate_with_default_value(tmp_path):
    inter = read_interactions(write(tmp_path, "d.tsv", "1\t1\n1\t1\n1\t1\n"))
    assert inter.matrix.toarray().tolist() == [[3.0]]
    inter = read_interactions(write(tmp_path, "e.tsv", "1\t1\n1\t1\n"), duplicates="max")
    assert inter.matrix.toarray().tolist() == [[1.0]]


def test_duplicate_sum_overflowing_float32(tmp_path):
    p = write(tmp_path, "big.csv", "1,1,3e38\n2,2,1\n1,1,3e38\n")
    with pytest.raises(DataFormatError, match=r"big\.csv, line 1: .*float32"):
        read_interactions(p)


# --------------------------------------------------------------------------
# Malformed input
# --------------------------------------------------------------------------

MALFORMED = [
    # (file text, line, fragment of the reason)
    ("1,2,3\n4,5,6\n7\n", 3, "expected 2 to 4 fields, got 1"),
    ("user,item,rating\n1,2,3\n1,2,3,4,5\n", 3, "expected 2 to 4 fields, got 5"),
    ("1,2,3,4,5\n", 1, "expected 2 to 4 fields, got 5"),
    ("1,2,3\n4,5\n", 2, "expected 3 fields (as on line 1), got 2"),
    ("1,2\n3,4,5\n", 2, "expected 2 fields (as on line 1), got 3"),
    ("1,2,3\n4,5,abc\n", 2, "value 'abc' is not a number"),
    ("1,2,3\n4,5,\n", 2, "value '' is not a number"),
    ("1,2,3\n4,5,nan\n", 2, "value 'nan' is not a finite"),
    ("1,2,3\n4,5,-inf\n", 2, "value '-inf' is not a finite"),
    ("1,2,3\n4,5,1e39\n", 2, "value '1e39' is not a finite float32"),
    ("1,2,3,100\n4,5,6,yesterday\n", 2, "timestamp 'yesterday' is not a number"),
    ("1,2,3,100\n4,5,6,inf\n", 2, "timestamp 'inf' is not a finite number"),
    ("1,2,3\n ,5,6\n", 2, "empty user id"),
    ("1,2,3\n4,,6\n", 2, "empty item id"),
    ("a,b\n,\n", 2, "empty user id"),
    # The first bad line is reported even when a later line has the
    # "structural" error (a wrong field count).
    ("1,2,3\n4,5,x\n6\n", 2, "value 'x'"),
    ("1,2,3\n4,5\n6,7,x\n", 2, "expected 3 fields"),
    ('1,2,3\n"4,5,6\n', 2, "malformed quoted field"),
    ('1,2,3\n4,5,x\n"7,8,9\n', 2, "value 'x'"),
]


@pytest.mark.parametrize("text,line,reason", MALFORMED)
def test_malformed_rows_name_file_and_line(tmp_path, text, line, reason):
    p = write(tmp_path, "ratings.csv", text)
    with pytest.raises(DataFormatError) as e:
        read_interactions(p)
    assert str(e.value).startswith(f"{p}, line {line}: ")
    assert reason in str(e.value)
    assert e.value.line == line and e.value.path == str(p)
    assert isinstance(e.value, ValueError)


def test_malformed_movielens_dat_and_tsv(tmp_path):
    p = write(tmp_path, "ratings.dat", "1::2::3::4\n1::2::3\n")
    with pytest.raises(DataFormatError, match=r"ratings\.dat, line 2: expected 4 fields"):
        read_interactions(p)
    q = write(tmp_path, "u.data", "1\t2\t3\t4\n1\t2\tfive\t4\n")
    with pytest.raises(DataFormatError, match=r"u\.data, line 2: value 'five'"):
        read_interactions(q)


def test_invalid_utf8_names_line(tmp_path):
    p = write(tmp_path, "bin.csv", b"1,2,3\n4,5,6\n\xff\xfe,1,1\n")
    with pytest.raises(DataFormatError, match=r"bin\.csv, line 3: not valid UTF-8"):
        read_interactions(p)


@pytest.mark.parametrize("text", ["", "\n\n  \n", "user,item,rating\n", "user,item\n\n"])
def test_empty_file_has_no_interactions(tmp_path, text):
    p = write(tmp_path, "empty.csv", text)
    with pytest.raises(DataFormatError, match=r"empty\.csv: no interactions") as e:
        read_interactions(p)
    assert e.value.line is None


def test_empty_npz_has_no_interactions(tmp_path):
    p = tmp_path / "e.npz"
    scipy.sparse.save_npz(p, scipy.sparse.csr_matrix((3, 3)))
    with pytest.raises(DataFormatError, match="no interactions"):
        read_interactions(p)


def test_data_format_error_pickles():
    e = DataFormatError("r.csv", 17, "expected 2 to 4 fields, got 1")
    assert str(e) == "r.csv, line 17: expected 2 to 4 fields, got 1"
    e2 = pickle.loads(pickle.dumps(e))
    assert str(e2) == str(e) and e2.line == 17


# --------------------------------------------------------------------------
# Ids
# --------------------------------------------------------------------------


def test_integer_ids_sort_numerically(tmp_path):
    p = write(tmp_path, "n.csv", "10,100,1\n9,-5,1\n100,20,1\n-3,3,1\n")
    inter = read_interactions(p)
    assert inter.user_ids.dtype == np.int64
    assert inter.user_ids.tolist() == [-3, 9, 10, 100]
    assert inter.item_ids.tolist() == [-5, 3, 20, 100]
    # Row of user 10 holds item 100.
    assert inter.matrix[2, 3] == 1.0


def test_non_canonical_integers_stay_strings(tmp_path):
    # "007" and "7" are different ids; int() would merge them.
    p = write(tmp_path, "s.csv", "007,1,1\n7,1,2\n10,1,3\n")
    inter = read_interactions(p)
    assert inter.user_ids.dtype.kind == "U"
    assert inter.user_ids.tolist() == ["007", "10", "7"]
    assert inter.item_ids.dtype == np.int64  # decided per axis
    np.testing.assert_array_equal(inter.matrix.toarray().ravel(), [1, 3, 2])


def test_to_internal_string_and_int_forms(tmp_path):
    inter = read_interactions(write(tmp_path, "i.csv", "42,x,1\n7,y,1\n"))
    ids = inter.user_ids
    assert ids.dtype == np.int64
    assert data.to_internal("42", ids) == 1
    assert data.to_internal(42, ids) == 1
    assert data.to_internal(np.int64(7), ids) == 0
    assert data.to_internal(" 42 ", ids) == 1
    np.testing.assert_array_equal(data.to_internal(["42", 7, "7"], ids), [1, 0, 0])
    assert data.to_internal("x", inter.item_ids) == 0

    str_ids = np.array(["42", "abc"])
    assert data.to_internal(42, str_ids) == 0
    assert data.to_internal("42", str_ids) == 0
    # Unsorted arrays work too.
    assert data.to_internal([3, "1"], np.array([3, 1, 2], dtype=np.int64)).tolist() == [0, 1]


def test_to_internal_unknown_ids(tmp_path):
    ids = np.array([1, 2, 3], dtype=np.int64)
    with pytest.raises(ValueError, match=r"^1 unknown id: '4'$") as e:
        data.to_internal(["1", "4"], ids)
    assert e.value.unknown == ["4"]
    with pytest.raises(ValueError) as e:
        data.to_internal(["a", "b", 7, "8", "9", "10", "3", "11"], ids)
    msg = str(e.value)
    assert msg.startswith("7 unknown ids: 'a', 'b', 7, '8', '9' (and 2 more)")
    assert e.value.unknown == ["a", "b", 7, "8", "9", "10", "11"]
    with pytest.raises(ValueError, match="unknown"):
        data.to_internal("1.5", ids)
    with pytest.raises(ValueError, match="unknown"):
        data.to_internal("x", np.array(["a", "b"]))
    with pytest.raises(ValueError, match="unknown"):
        data.to_internal(1, np.zeros(0, dtype=np.int64))
    assert data.to_internal([], ids).tolist() == []


def test_to_external(tmp_path):
    inter = read_interactions(write(tmp_path, "e.csv", "bob,1\nann,2\n"))
    assert data.to_external(0, inter.user_ids) == "ann"
    assert data.to_external([1, 0], inter.user_ids).tolist() == ["bob", "ann"]
    assert data.to_external(np.array([1]), inter.item_ids).tolist() == [2]
    assert isinstance(data.to_external(1, inter.item_ids), int)
    with pytest.raises(ValueError, match="out of range"):
        data.to_external(-1, inter.user_ids)
    with pytest.raises(ValueError, match="out of range"):
        data.to_external([0, 2], inter.user_ids)
    with pytest.raises(ValueError, match="integers"):
        data.to_external([0.0], inter.user_ids)
    # Round trip.
    rows = data.to_internal(data.to_external([1, 0], inter.user_ids), inter.user_ids)
    assert rows.tolist() == [1, 0]


# --------------------------------------------------------------------------
# Property: CSV read equals a NumPy-accumulated dense matrix
# --------------------------------------------------------------------------

_id_text = st.text(alphabet='ab ,"xé\t', min_size=1, max_size=4).filter(
    lambda s: s == s.strip()
)


@examples(60)
@given(
    st.lists(
        st.tuples(
            _id_text.map(lambda s: "u" + s),
            _id_text.map(lambda s: "i" + s),
            st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_property_csv_matches_summed_dense(triples):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        (u, i, repr(v)) for u, i, v in triples
    )
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "prop.csv"
        p.write_text(buf.getvalue(), encoding="utf-8", newline="")
        inter = read_interactions(p)

    users = sorted({u for u, _, _ in triples})
    items = sorted({i for _, i, _ in triples})
    assert inter.user_ids.tolist() == users
    assert inter.item_ids.tolist() == items
    dense = np.zeros((len(users), len(items)))
    np.add.at(
        dense,
        ([users.index(u) for u, _, _ in triples], [items.index(i) for _, i, _ in triples]),
        [v for _, _, v in triples],
    )
    check_canonical(inter)
    assert inter.matrix.nnz == len({(u, i) for u, i, _ in triples})
    np.testing.assert_allclose(inter.matrix.toarray(), dense, rtol=1e-6, atol=1e-3)


@examples(40)
@given(
    st.lists(
        st.tuples(st.integers(-10**12, 10**12), st.integers(0, 50), st.integers(1, 5)),
        min_size=1,
        max_size=30,
    )
)
def test_property_integer_ids_sorted_numerically(triples):
    text = "".join(f"{u}\t{i}\t{v}\n" for u, i, v in triples)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "prop.tsv"
        p.write_text(text)
        inter = read_interactions(p, duplicates="max")
    assert inter.user_ids.dtype == np.int64
    assert inter.user_ids.tolist() == sorted({u for u, _, _ in triples})
    expected = {}
    for u, i, v in triples:
        expected[(u, i)] = max(v, expected.get((u, i), v))
    got = inter.matrix.tocoo()
    assert {
        (int(inter.user_ids[r]), int(inter.item_ids[c])): float(x)
        for r, c, x in zip(got.row, got.col, got.data)
    } == {k: float(v) for k, v in expected.items()}
