"""Tests for fastunlearn.readers: header-chosen columns, delimiter detection,
Parquet, data frames, line numbers from the careful pass, and the advice
given for data in the wrong shape.  References are built by hand with
NumPy/SciPy from the same records."""

import subprocess
import sys
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

import fastunlearn as fu
from fastunlearn import cli, data
from fastunlearn.data import DataFormatError, DataWarning, Interactions, read_interactions


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, newline="")
    return p


def reference(users, items, values):
    """(dense matrix, sorted user ids, sorted item ids), repeats summed."""
    uid, r = np.unique(np.asarray(users), return_inverse=True)
    iid, c = np.unique(np.asarray(items), return_inverse=True)
    dense = np.zeros((len(uid), len(iid)))
    np.add.at(dense, (r, c), np.asarray(values, dtype=np.float64))
    return dense, uid, iid


def same(inter, users, items, values):
    dense, uid, iid = reference(users, items, values)
    assert inter.user_ids.tolist() == uid.tolist()
    assert inter.item_ids.tolist() == iid.tolist()
    np.testing.assert_allclose(inter.matrix.toarray(), dense, rtol=1e-6)
    assert inter.matrix.nnz == len(set(zip(users, items)))


USERS = [3, 1, 3, 2, 1]
ITEMS = [10, 10, 20, 30, 30]
RATINGS = [5.0, 3.0, 1.5, 4.0, 2.0]
TIMES = [881250949, 891717742, 878887116, 880606923, 886397596]


# --------------------------------------------------------------------------
# Headers choose the columns
# --------------------------------------------------------------------------


def rows(*cols):
    return "".join(",".join(str(v) for v in r) + "\n" for r in zip(*cols))


def test_user_item_timestamp_header_has_no_values(tmp_path):
    p = write(tmp_path, "t.csv", "user,item,timestamp\n" + rows(USERS, ITEMS, TIMES))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # timestamps are not values: no warning either
        inter = read_interactions(p)
    same(inter, USERS, ITEMS, [1.0] * len(USERS))


def test_item_user_rating_header_is_not_transposed(tmp_path):
    p = write(tmp_path, "r.csv", "item,user,rating\n" + rows(ITEMS, USERS, RATINGS))
    same(read_interactions(p), USERS, ITEMS, RATINGS)


@pytest.mark.parametrize("header", ["userId,movieId,rating,timestamp",
                                    "Customer ID,Product,Score,Time",
                                    "timestamp,rating,item_id,user_id"])
def test_common_spellings_in_any_order(tmp_path, header):
    names = header.split(",")
    by_role = {"user": USERS, "item": ITEMS, "value": RATINGS, "timestamp": TIMES}
    roles = ["user", "item", "value", "timestamp"]
    if header.startswith("timestamp"):
        roles = ["timestamp", "value", "item", "user"]
    p = write(tmp_path, "s.csv", ",".join(names) + "\n" + rows(*(by_role[r] for r in roles)))
    same(read_interactions(p), USERS, ITEMS, RATINGS)


def test_header_naming_no_user_or_item_lists_the_columns(tmp_path):
    p = write(tmp_path, "x.csv", "who,what,stars\n1,2,3\n")
    with pytest.raises(DataFormatError) as e:
        read_interactions(p)
    msg = str(e.value)
    assert "names no user and no item column" in msg
    assert "'who', 'what', 'stars'" in msg and "--user-col" in msg
    # Following the advice reads it.
    inter = read_interactions(p, user="who", item="what", value="stars")
    assert inter.matrix.toarray().tolist() == [[3.0]]
    q = write(tmp_path, "y.csv", "user,what,rating\n1,2,3\n")
    with pytest.raises(DataFormatError, match="names no item column .*'user', 'what'"):
        read_interactions(q)


def test_unknown_column_name_and_bad_choices(tmp_path):
    p = write(tmp_path, "x.csv", "user,item,rating\n1,2,3\n")
    with pytest.raises(DataFormatError, match="no column named 'score'.*'user', 'item'"):
        read_interactions(p, value="score")
    with pytest.raises(ValueError, match="user must be a column name"):
        read_interactions(p, user=False)
    with pytest.raises(ValueError, match="value must be"):
        read_interactions(p, value=-1)
    h = write(tmp_path, "h.csv", "1,2,3\n")
    with pytest.raises(DataFormatError, match="need a header"):
        read_interactions(h, user="user")


def test_positions_and_no_value_column(tmp_path):
    p = write(tmp_path, "p.csv", rows(TIMES, ITEMS, USERS))  # headerless, odd order
    inter = read_interactions(p, user=2, item=1, value=False, timestamp=0)
    same(inter, USERS, ITEMS, [1.0] * len(USERS))


def test_unused_header_columns_warn_when_no_value_column(tmp_path):
    p = write(tmp_path, "u.csv", "user,item,grade\n" + rows(USERS, ITEMS, RATINGS))
    with pytest.warns(DataWarning, match=r"unused columns: 'grade'.*value=NAME"):
        inter = read_interactions(p)
    same(inter, USERS, ITEMS, [1.0] * len(USERS))
    same(read_interactions(p, value="grade"), USERS, ITEMS, RATINGS)


def test_unix_time_values_warn_and_the_advice_works(tmp_path):
    p = write(tmp_path, "t.csv", rows(USERS, ITEMS, TIMES))  # headerless user,item,time
    with pytest.warns(DataWarning, match=r"Unix times.*value=False, timestamp=2"):
        read_interactions(p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inter = read_interactions(p, value=False, timestamp=2)
    same(inter, USERS, ITEMS, [1.0] * len(USERS))
    # Real ratings do not warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_interactions(write(tmp_path, "r.csv", rows(USERS, ITEMS, RATINGS)))


def test_cli_column_options_and_warning(tmp_path, capsys):
    p = write(tmp_path, "t.csv", rows(USERS, ITEMS, TIMES))
    args = ["fit", str(p), "-o", str(tmp_path / "m.npz"), "--factors", "2",
            "--iterations", "1", "--quiet"]
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert err.startswith("fastunlearn: warning:") and "--value-col none --timestamp-col 3" in err
    assert cli.main(args + ["--value-col", "none", "--timestamp-col", "3"]) == 0
    assert capsys.readouterr().err == ""
    model = fu.load(tmp_path / "m.npz")
    assert model.user_items.toarray().max() == 1.0  # counts, not timestamps
    q = write(tmp_path, "named.csv", "who,what\n1,2\n")
    assert cli.main(["fit", str(q), "-o", str(tmp_path / "n.npz"), "--factors", "2",
                     "--iterations", "1", "--quiet"]) == 2
    assert "found 'who', 'what'" in capsys.readouterr().err
    assert cli.main(["fit", str(q), "-o", str(tmp_path / "n.npz"), "--factors", "2",
                     "--iterations", "1", "--quiet", "--user-col", "who",
                     "--item-col", "2"]) == 0


# --------------------------------------------------------------------------
# Delimiters from content
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name,sep", [("tabs.csv", "\t"), ("ratings.txt", "\t"),
                                      ("semi.csv", ";"), ("bars.txt", "|"),
                                      ("commas.tsv", ",")])
def test_delimiter_detected_from_content(tmp_path, name, sep):
    text = sep.join(["user", "item", "rating"]) + "\n" + "".join(
        sep.join(str(v) for v in r) + "\n" for r in zip(USERS, ITEMS, RATINGS))
    same(read_interactions(write(tmp_path, name, text)), USERS, ITEMS, RATINGS)


def test_semicolon_file_with_decimal_points_and_quotes(tmp_path):
    p = write(tmp_path, "q.csv", 'user;item;rating\n"a;b";x;1.5\nc;"y";2\n')
    inter = read_interactions(p)
    assert inter.user_ids.tolist() == ["a;b", "c"]
    np.testing.assert_array_equal(inter.matrix.toarray(), [[1.5, 0], [0, 2]])


# --------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------


def test_parquet_file_and_partitioned_directory(tmp_path):
    table = pa.table({"user": USERS, "item": ITEMS, "rating": RATINGS, "ts": TIMES})
    pq.write_table(table, tmp_path / "r.parquet")
    same(read_interactions(tmp_path / "r.parquet"), USERS, ITEMS, RATINGS)
    # hive-partitioned by a column that is not used: read file by file
    table = table.append_column("day", pa.array(["mon", "tue", "mon", "tue", "wed"]))
    pq.write_to_dataset(table, tmp_path / "ds", partition_cols=["day"])
    same(read_interactions(tmp_path / "ds"), USERS, ITEMS, RATINGS)
    same(read_interactions(tmp_path / "ds", fmt="parquet", value=False), USERS, ITEMS,
         [1.0] * 5)


def test_parquet_string_ids_and_errors_name_file_and_row(tmp_path):
    pq.write_table(pa.table({"user_id": ["b", "a", "007", "7"], "item_id": ["x"] * 4}),
                   tmp_path / "s.parquet")
    inter = read_interactions(tmp_path / "s.parquet")
    assert inter.user_ids.tolist() == ["007", "7", "a", "b"]  # "007" and "7" stay apart
    pq.write_table(pa.table({"user": [1, None, 3], "item": [1, 2, 3]}),
                   tmp_path / "null.parquet")
    with pytest.raises(DataFormatError, match=r"null\.parquet, row 2: empty user id"):
        read_interactions(tmp_path / "null.parquet")
    pq.write_table(pa.table({"user": [1, 2], "item": [1, 2], "value": [1.0, np.inf]}),
                   tmp_path / "inf.parquet")
    with pytest.raises(DataFormatError, match=r"inf\.parquet, row 2: value inf"):
        read_interactions(tmp_path / "inf.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataFormatError, match="not a Parquet file"):
        read_interactions(tmp_path / "junk.parquet")


# --------------------------------------------------------------------------
# Tables in memory
# --------------------------------------------------------------------------


def frames():
    cols = {"uid": USERS, "iid": ITEMS, "r": RATINGS}
    out = [("pyarrow", pa.table(cols)), ("mapping", {k: np.array(v) for k, v in cols.items()})]
    try:
        import pandas as pd
        out.append(("pandas", pd.DataFrame(cols)))
    except ImportError:
        pass
    try:
        import polars as pl
        out.append(("polars", pl.DataFrame(cols)))
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("kind,table", frames(), ids=[k for k, _ in frames()])
def test_from_frame_matches_the_file_reader(tmp_path, kind, table):
    inter = Interactions.from_frame(table, user="uid", item="iid", value="r")
    same(inter, USERS, ITEMS, RATINGS)
    assert inter.user_ids.dtype == np.int64
    p = write(tmp_path, "f.csv", "user,item,rating\n" + rows(USERS, ITEMS, RATINGS))
    assert (inter.matrix != read_interactions(p).matrix).nnz == 0
    counts = Interactions.from_frame(table, user="uid", item="iid")
    same(counts, USERS, ITEMS, [1.0] * 5)


@pytest.mark.parametrize("module", ["pandas", "polars"])
def test_from_frame_pandas_polars_strings_and_duplicates(module):
    lib = pytest.importorskip(module)
    df = lib.DataFrame({"u": ["b", "a", "b", "10"], "i": ["x", "y", "x", "x"],
                        "v": [1.0, 2.0, 3.0, 4.0]})
    inter = Interactions.from_frame(df, user="u", item="i", value="v")
    assert inter.user_ids.tolist() == ["10", "a", "b"]
    assert inter.matrix.toarray().tolist() == [[4.0, 0.0], [0.0, 2.0], [4.0, 0.0]]
    last = Interactions.from_frame(df, user="u", item="i", value="v", duplicates="last")
    assert last.matrix[2, 0] == 3.0
    with pytest.raises(DataFormatError, match=r"row 3: duplicate pair \(user 'b', item 'x'\), "
                                              r"first on row 1"):
        Interactions.from_frame(df, user="u", item="i", value="v", duplicates="error")


def test_from_frame_errors():
    table = pa.table({"u": [1, 2, None], "i": [1, 2, 3], "v": [1.0, 2.0, 3.0]})
    with pytest.raises(KeyError, match=r"user='user' is not a column.*\['u', 'i', 'v'\]"):
        Interactions.from_frame(table, user="user", item="i")
    with pytest.raises(DataFormatError, match=r"row 3: empty user id"):
        Interactions.from_frame(table, user="u", item="i")
    with pytest.raises(DataFormatError, match=r"row 2: user id 1.5 is not an integer"):
        Interactions.from_frame({"u": [1.0, 1.5], "i": [1, 2]}, user="u", item="i")
    with pytest.raises(DataFormatError, match=r"row 1: value 1e\+39 is not a finite float32"):
        Interactions.from_frame({"u": [1], "i": [1], "v": [1e39]}, user="u", item="i", value="v")
    with pytest.raises(TypeError, match="pandas or polars DataFrame"):
        Interactions.from_frame([[1, 2]], user="u", item="i")


def test_from_frame_does_not_import_pandas_or_polars(tmp_path):
    # pyarrow itself imports pandas (when installed) on its first array, so
    # the check is twofold: no module of the package imports either, and
    # polars stays unloaded through a from_frame of a pyarrow table.
    import ast
    from pathlib import Path

    package = Path(fu.__file__).parent
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in ("pandas", "polars") for n in names), path
    code = ("import sys, pyarrow as pa\n"
            "from fastunlearn.data import Interactions\n"
            "Interactions.from_frame(pa.table({'u': [1], 'i': [2]}), user='u', item='i')\n"
            "print('polars' in sys.modules)\n")
    # outside the checkout, whose source tree would shadow the installed package
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------
# Data in the wrong shape for fit: the advice works
# --------------------------------------------------------------------------


def test_dense_frame_to_fit_gives_advice_that_works():
    rng = np.random.default_rng(0)
    users = rng.integers(100, 140, 300)
    items = rng.integers(0, 25, 300) * 7
    values = rng.integers(1, 6, 300).astype(np.float64)
    table = pa.table({"userId": users, "movieId": items, "rating": values})
    params = dict(factors=3, iterations=3, random_state=0, num_threads=1)
    with pytest.raises(TypeError) as e:
        fu.ExplicitALS(**params).fit(table, show_progress=False)
    advice = str(e.value)
    assert "Interactions.from_frame(table, user='userId', item='movieId', value='rating')" \
        in advice
    inter = Interactions.from_frame(table, user="userId", item="movieId", value="rating")
    got = fu.ExplicitALS(**params).fit(inter.matrix, show_progress=False)
    # The independent reference: the CSR built by hand from the records.
    dense, uid, iid = reference(users, items, values)
    want = fu.ExplicitALS(**params).fit(sp.csr_matrix(dense), show_progress=False)
    assert inter.user_ids.tolist() == uid.tolist() and inter.item_ids.tolist() == iid.tolist()
    np.testing.assert_allclose(got.user_factors, want.user_factors, rtol=1e-5, atol=1e-6)
    # A records array: the message points to the same route.
    with pytest.raises(TypeError, match=r"of shape \(300, 3\).*from_frame\(\{'user': a\[:, 0\]"):
        fu.ExplicitALS(**params).fit(np.c_[users, items, values], show_progress=False)
    a = np.c_[users, items, values]
    rec = Interactions.from_frame({"user": a[:, 0], "item": a[:, 1], "value": a[:, 2]},
                                  user="user", item="item", value="value")
    np.testing.assert_array_equal(rec.matrix.toarray(), dense)


# --------------------------------------------------------------------------
# Line numbers from the careful pass, in files of many Arrow blocks
# --------------------------------------------------------------------------


def big_text(n, bad_line=None, bad="x"):
    lines = [f"{i % 997},{(i * 7) % 331},{1 + i % 5}" for i in range(n)]
    if bad_line is not None:
        u, i, _ = lines[bad_line - 1].split(",")
        lines[bad_line - 1] = f"{u},{i},{bad}"
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("bad,reason", [("x", "value 'x' is not a number"),
                                        ("nan", "value 'nan' is not a finite float32 number"),
                                        ("", "value '' is not a number"),
                                        ("1,2", "expected 3 fields (as on line 1), got 4")])
def test_error_deep_in_a_large_file_names_its_line(tmp_path, bad, reason):
    p = write(tmp_path, "big.csv", big_text(200_000, 154_321, bad))
    assert p.stat().st_size > 1 << 20  # more than one Arrow block
    with pytest.raises(DataFormatError) as e:
        read_interactions(p)
    assert str(e.value) == f"{p}, line 154321: {reason}"


def test_repeat_error_and_blank_lines_in_a_large_file(tmp_path):
    text = big_text(200_000).replace("\n", "\n\n", 10)  # 10 blank lines near the top
    lines = text.split("\n")
    first = lines[30]
    p = write(tmp_path, "dup.csv", text + first + "\n")
    line_of_repeat = len(lines)  # the appended line
    with pytest.raises(DataFormatError) as e:
        read_interactions(p, duplicates="error")
    assert e.value.line == line_of_repeat
    assert "first on line 31" in str(e.value)


def test_ids_that_turn_to_strings_late_in_the_file(tmp_path):
    n = 150_000
    users = [str(i % 1000) for i in range(n)] + ["u-late"]
    items = [str(i % 77) for i in range(n)] + ["3"]
    p = write(tmp_path, "late.csv", "".join(f"{u},{i},1\n" for u, i in zip(users, items)))
    inter = read_interactions(p)
    assert inter.user_ids.dtype.kind == "U" and inter.item_ids.dtype == np.int64
    same(inter, users, [int(i) for i in items], [1.0] * len(users))


def test_read_interactions_public_api_unchanged():
    for name in ("DataFormatError", "Interactions", "UnknownIdError", "load_movielens",
                 "read_interactions", "to_external", "to_internal"):
        assert name in data.__all__ and hasattr(data, name)
    assert data.FORMATS[0] == "auto" and "parquet" in data.FORMATS


@pytest.mark.parametrize("line,bad", [(2, "1,2"), (9_000, "1,2,x"), (30_001, ",5,1"),
                                      (30_002, "u7,i1,inf")])
def test_targeted_pass_agrees_with_the_full_scan(tmp_path, monkeypatch, line, bad):
    from fastunlearn.readers import layout as layout_mod
    from fastunlearn.readers import locate, text

    monkeypatch.setattr(locate, "_PIECE", 1 << 14)  # many pieces in a small file
    lines = ["user,item,rating"] + [f"u{i % 50},i{i % 7},{1 + i % 5}" for i in range(30_001)]
    lines[line - 1] = bad
    p = write(tmp_path, "t.csv", "\r\n".join(lines) + "\r\n")
    chosen = layout_mod.choose(p, "csv", header=None, auto=True,
                               columns=dict.fromkeys(("user", "item", "value", "timestamp")))
    targeted = locate.first_error(p, chosen, text._suspect(chosen))
    full = locate.first_error(p, chosen)
    assert targeted is not None and str(targeted) == str(full)
    assert targeted.line == line
    with pytest.raises(DataFormatError, match=f", line {line}: "):
        read_interactions(p)
