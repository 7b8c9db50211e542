"""Reading user-item interaction files into a sparse matrix with id maps.

The CLI trains, erases and serves with the user's own ids, while the
factorisation code works with row and column numbers.  This module turns a
ratings file into an :class:`Interactions` (a canonical CSR matrix plus the
external id of every row and column) and translates ids in both directions
with :func:`to_internal` and :func:`to_external`.

It depends on :mod:`fastunlearn.validation` only (index widths), never on
the estimators.
"""

from __future__ import annotations

import csv
import io
import itertools
import operator
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse

from .validation import index_dtype as choose_index_dtype

__all__ = [
    "DataFormatError",
    "Interactions",
    "UnknownIdError",
    "load_movielens",
    "read_interactions",
    "to_external",
    "to_internal",
]

FORMATS = ("auto", "csv", "tsv", "movielens", "movielens-dat", "npz")
DUPLICATE_POLICIES = ("sum", "last", "max", "error")

_DELIMITERS = {"csv": ",", "tsv": "\t", "movielens": "\t", "movielens-dat": "::"}
# Only these formats can carry quoted fields; MovieLens files never do, and
# the csv module cannot handle the two-character "::" delimiter anyway.
_QUOTABLE = frozenset({"csv", "tsv"})

# Names that mark the first line of a two-column file as a header.  Without a
# value column there is no numeric field to tell a header from data, and
# guessing wrong would silently drop a real interaction.
_HEADER_WORDS = frozenset(
    {
        "user", "users", "user_id", "userid", "user id", "uid", "u",
        "item", "items", "item_id", "itemid", "item id", "iid", "i",
        "movie", "movies", "movie_id", "movieid", "product", "product_id",
        "productid", "customer", "customer_id", "customerid",
    }
)

_F32_MAX = float(np.finfo(np.float32).max)
_INT_RE = re.compile(r"[+-]?[0-9]+")


class DataFormatError(ValueError):
    """A data file that cannot be read as interactions.

    The message names the file and, where there is one, the 1-based line
    (or, for ``.npz`` files, the stored entry) at fault, e.g.
    ``"ratings.csv, line 17: expected 2 to 4 fields, got 1"``.

    Parameters
    ----------
    path : str or os.PathLike
        The file being read, as the caller named it.
    line : int or None
        1-based line (or entry) number, or None when the problem concerns
        the file as a whole.
    reason : str
        What is wrong.
    unit : str, default "line"
        Word used before the number in the message.

    Attributes
    ----------
    path : str
    line : int or None
    reason : str
    """

    def __init__(self, path: Any, line: int | None, reason: str, *, unit: str = "line"):
        self.path = os.fspath(path)
        self.line = None if line is None else int(line)
        self.reason = reason
        self.unit = unit
        where = self.path if line is None else f"{self.path}, {unit} {self.line}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):
        # The default reduction would call __init__ with the formatted
        # message only, which breaks pickling (multiprocessing, pytest-xdist).
        return (_rebuild_data_format_error, (self.path, self.line, self.reason, self.unit))


def _rebuild_data_format_error(path, line, reason, unit):
    return DataFormatError(path, line, reason, unit=unit)


class UnknownIdError(ValueError):
    """Ids that are not in the id array they were looked up in.

    Attributes
    ----------
    unknown : list
        Every unknown id, in the order given (the message shows at most 5).
    """

    def __init__(self, unknown: list, what: str = "ids"):
        self.unknown = list(unknown)
        shown = ", ".join(repr(u) for u in self.unknown[:5])
        more = len(self.unknown) - 5
        tail = f" (and {more} more)" if more > 0 else ""
        super().__init__(f"{len(self.unknown)} unknown {what}: {shown}{tail}")

    def __reduce__(self):
        return (UnknownIdError, (self.unknown,))


@dataclass(frozen=True, eq=False)
class Interactions:
    """An interaction matrix together with the external ids of its axes.

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix
        Users x items, float32 values, canonical format (sorted indices, no
        duplicate entries).  Every observed pair is stored, even when its
        value is zero, so the sparsity pattern is exactly the set of pairs
        that occurred in the file.
    user_ids : numpy.ndarray
        External id of each row, sorted ascending: int64 when every user id
        is a canonical integer (``"42"``, ``"-7"``; not ``"007"``), otherwise
        a unicode (``str_``) array.
    item_ids : numpy.ndarray
        External id of each column, under the same rules as `user_ids`.

    Notes
    -----
    Equality is identity (``eq=False``): element-wise array comparison has no
    single truth value.
    """

    matrix: scipy.sparse.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    def __post_init__(self):
        n_users, n_items = self.matrix.shape
        if len(self.user_ids) != n_users or len(self.item_ids) != n_items:
            raise ValueError(
                f"matrix shape {self.matrix.shape} does not match "
                f"{len(self.user_ids)} user ids and {len(self.item_ids)} item ids"
            )

    @property
    def n_users(self) -> int:
        """Number of rows (users)."""
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        """Number of columns (items)."""
        return self.matrix.shape[1]


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------


def read_interactions(
    path: str | os.PathLike,
    *,
    fmt: str = "auto",
    duplicates: str = "sum",
    default_value: float = 1.0,
    header: bool | None = None,
) -> Interactions:
    """Read an interaction file.

    Parameters
    ----------
    path : str or os.PathLike
        File to read (UTF-8; a byte-order mark is ignored).
    fmt : {"auto", "csv", "tsv", "movielens", "movielens-dat", "npz"}
        ``"csv"``: comma separated, quoted fields allowed.  ``"tsv"``: tab
        separated.  ``"movielens"``: MovieLens 100K ``u.data`` (tab
        separated ``user item rating timestamp``).  ``"movielens-dat"``:
        MovieLens 1M ``ratings.dat`` (``user::item::rating::timestamp``).
        ``"npz"``: a matrix saved by :func:`scipy.sparse.save_npz`; its ids
        are ``0..n-1`` (int64).  ``"auto"`` chooses by name: ``.npz`` ->
        npz, ``.dat`` -> movielens-dat, ``u.data`` or ``.data`` ->
        movielens, ``.tsv``/``.tab`` -> tsv, anything else -> csv.
    duplicates : {"sum", "last", "max", "error"}
        What to do when a (user, item) pair occurs more than once:
        add the values (default), keep the one nearest the end of the file,
        keep the largest, or raise :class:`DataFormatError` naming the line
        of the first repeat.
    default_value : float, default 1.0
        Value of every interaction in a file with only user and item columns.
    header : bool or None, default None
        Whether the first line is a header.  None detects it: with a value
        column, the first line is a header when its value field is not a
        number; in a two-column file, when none of its fields is a number and
        either the rest of a column is all integers or its fields are common
        column names (``user``, ``item_id``, ...).  Pass True for other
        headers of two-column files with non-integer ids.

    Returns
    -------
    Interactions
        Rows and columns follow the sorted unique ids (numerically when the
        ids are integers), so the result does not depend on row order.

    Raises
    ------
    DataFormatError
        For an empty file (or a header alone), a line with the wrong number
        of fields (2 to 4, the same on every line), an empty id, a value or
        timestamp that is not a finite number (or a value outside float32
        range), a repeated pair under ``duplicates="error"``, bad quoting or
        bad UTF-8.  The message names the file and the first bad line; no
        line is ever dropped silently.
    FileNotFoundError
        If `path` does not exist.
    ValueError
        For an unknown `fmt` or `duplicates`, or a non-finite `default_value`.

    Notes
    -----
    Rows are ``user,item[,value[,timestamp]]``.  Ids have surrounding
    whitespace removed.  The timestamp must be a number but is not kept.
    Lines that are empty or all whitespace are skipped wherever they occur;
    there is no comment syntax.  Parsing is vectorised (C-level splitting and
    NumPy conversion); only error reporting looks at single lines.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown fmt {fmt!r}; expected one of {', '.join(FORMATS)}")
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(
            f"unknown duplicates policy {duplicates!r}; "
            f"expected one of {', '.join(DUPLICATE_POLICIES)}"
        )
    default_value = float(default_value)
    if not np.isfinite(default_value) or abs(default_value) > _F32_MAX:
        raise ValueError(f"default_value must be a finite float32 number, got {default_value!r}")
    if header not in (None, True, False):
        raise ValueError(f"header must be None, True or False, got {header!r}")

    if fmt == "auto":
        fmt = _guess_format(path)
    if fmt == "npz":
        return _read_npz(path, duplicates)

    raw = Path(path).read_bytes()
    text = _decode(path, raw)
    delim = _DELIMITERS[fmt]
    if fmt in _QUOTABLE and '"' in text:
        records = _records_quoted(text, delim)
    else:
        records = _records_plain(text, delim)
    table = _parse_table(path, records, header, default_value)
    return _build(path, table, duplicates, unit="line")


def load_movielens(path: str | os.PathLike, *, duplicates: str = "sum") -> Interactions:
    """Read a MovieLens ratings file.

    Parameters
    ----------
    path : str or os.PathLike
        The MovieLens directory (containing ``u.data`` for 100K or
        ``ratings.dat`` for 1M) or the ratings file itself.
    duplicates : str, default "sum"
        Passed to :func:`read_interactions`; MovieLens has no repeats.

    Returns
    -------
    Interactions
        Ratings as values, integer user and item ids.

    Raises
    ------
    FileNotFoundError
        If `path` is a directory with neither ratings file, or is missing.
    """
    p = Path(path)
    if p.is_dir():
        for name, fmt in (("u.data", "movielens"), ("ratings.dat", "movielens-dat")):
            if (p / name).is_file():
                return read_interactions(p / name, fmt=fmt, duplicates=duplicates)
        raise FileNotFoundError(f"{os.fspath(path)}: no u.data or ratings.dat in this directory")
    if not p.exists():
        raise FileNotFoundError(f"{os.fspath(path)}: no such file or directory")
    fmt = "movielens-dat" if p.suffix.lower() == ".dat" else "movielens"
    return read_interactions(p, fmt=fmt, duplicates=duplicates)


def to_internal(ids: Any, id_array: np.ndarray) -> Any:
    """Map external ids to row (or column) numbers.

    Parameters
    ----------
    ids : str, int, or sequence of them
        External ids.  Strings and integers are interchangeable: ``"42"``
        finds the int64 id 42 and ``42`` finds the string id ``"42"``, so ids
        taken from the command line work for either kind of id array.
        Surrounding whitespace is ignored, as when reading files.
    id_array : numpy.ndarray
        ``Interactions.user_ids`` or ``Interactions.item_ids`` (need not be
        sorted, but must not repeat ids).

    Returns
    -------
    int or numpy.ndarray of int64
        An int for a single id, else an array in the order of `ids`.

    Raises
    ------
    UnknownIdError
        (a ValueError) listing up to 5 ids that are not in `id_array`.
    """
    scalar = _is_scalar_id(ids)
    queries = [ids] if scalar else list(ids)
    result = _lookup_ids(queries, id_array)
    missing = np.flatnonzero(result < 0)
    if missing.size:
        raise UnknownIdError([queries[i] for i in missing])
    return int(result[0]) if scalar else result


def _lookup_ids(queries: list, id_array: np.ndarray) -> np.ndarray:
    """Row numbers of `queries` in `id_array` (as :func:`to_internal` matches
    them), -1 for ids that are not there; int64 array in query order."""
    id_array = np.asarray(id_array)
    integer = np.issubdtype(id_array.dtype, np.integer)
    keys = [(_int_key if integer else _str_key)(q) for q in queries]

    result = np.full(len(keys), -1, dtype=np.int64)
    asked = np.array([i for i, k in enumerate(keys) if k is not None], dtype=np.int64)
    if asked.size and id_array.size:
        hay = id_array if integer else id_array.astype(str)
        wanted = np.array([keys[i] for i in asked], dtype=np.int64 if integer else str)
        # Arrays from read_interactions are sorted; skip the sort for them.
        if np.all(hay[1:] > hay[:-1]):
            order = np.arange(hay.size)
        else:
            order = np.argsort(hay, kind="stable")
        pos = np.minimum(np.searchsorted(hay, wanted, sorter=order), hay.size - 1)
        candidate = order[pos]
        hit = hay[candidate] == wanted
        result[asked[hit]] = candidate[hit]
    return result


def to_external(rows: Any, id_array: np.ndarray) -> Any:
    """Map row (or column) numbers to external ids.

    Parameters
    ----------
    rows : int or sequence of int
        Row numbers, ``0 <= row < len(id_array)``.  Negative numbers are
        rejected rather than counted from the end, which would silently name
        the wrong user.
    id_array : numpy.ndarray
        ``Interactions.user_ids`` or ``Interactions.item_ids``.

    Returns
    -------
    int or str, or numpy.ndarray
        A Python scalar for a single row, else an array of ids.

    Raises
    ------
    ValueError
        For non-integer or out-of-range row numbers.
    """
    id_array = np.asarray(id_array)
    scalar = np.ndim(rows) == 0
    arr = np.asarray(rows)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"row numbers must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False).reshape(-1) if arr.size else np.zeros(0, np.int64)
    bad = (arr < 0) | (arr >= len(id_array))
    if bad.any():
        shown = ", ".join(str(int(r)) for r in arr[bad][:5])
        raise ValueError(
            f"{int(bad.sum())} row numbers out of range 0..{len(id_array) - 1}: {shown}"
        )
    out = id_array[arr]
    return out[0].item() if scalar else out


# --------------------------------------------------------------------------
# Text parsing
# --------------------------------------------------------------------------


@dataclass
class _Records:
    """Non-blank records of a text file, before splitting into columns."""

    line_no: np.ndarray  # 1-based line where each record starts
    counts: np.ndarray  # fields per record
    fields: Callable[[int], list]  # flat field list of the first n records
    first: Callable[[int], list]  # fields of record i
    pending: tuple[int, str] | None = None  # (record index, reason) of a reader error


def _guess_format(path) -> str:
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix == ".dat":
        return "movielens-dat"
    if p.name.lower() == "u.data" or suffix == ".data":
        return "movielens"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    return "csv"


def _decode(path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataFormatError(path, line, f"not valid UTF-8 ({e.reason})") from None


def _records_plain(text: str, delim: str) -> _Records:
    # splitlines() would also break on \x1c, \u2028 etc., shifting line
    # numbers, so only the three real newline conventions are honoured.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    n = len(lines)
    # map() over C methods keeps these per-line steps out of the bytecode loop.
    nonblank = np.fromiter(map(len, lines), dtype=np.int64, count=n) > 0
    nonblank &= ~np.fromiter(map(str.isspace, lines), dtype=bool, count=n)
    keep = np.flatnonzero(nonblank)
    if keep.size == 0:
        data = []
    elif keep[-1] == keep.size - 1:
        data = lines[: keep.size]
    elif keep.size == 1:
        data = [lines[int(keep[0])]]
    else:
        data = list(operator.itemgetter(*keep.tolist())(lines))
    del lines
    counts = np.fromiter(
        map(str.count, data, itertools.repeat(delim, len(data))), dtype=np.int64, count=len(data)
    ) + 1

    def fields(m: int) -> list:
        if m == 0:
            return []
        return delim.join(data if m == len(data) else data[:m]).split(delim)

    return _Records(keep + 1, counts, fields, lambda i: data[i].split(delim))


def _records_quoted(text: str, delim: str) -> _Records:
    # The csv module's reader is a C loop; the Python loop here only keeps
    # each record's starting line, which quoted newlines make non-trivial.
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=delim, skipinitialspace=True, strict=True
    )
    rows: list[list[str]] = []
    starts: list[int] = []
    pending = None
    prev = 0
    try:
        for row in reader:
            start = prev + 1
            prev = reader.line_num
            # Same notion of a blank line as _records_plain: nothing but
            # whitespace, which for a tab delimiter includes the tabs.
            if not row or (
                not row[0].strip()
                and (len(row) == 1 or (delim.isspace() and not "".join(row).strip()))
            ):
                continue
            rows.append(row)
            starts.append(start)
    except csv.Error as e:
        pending = (len(rows), f"malformed quoted field ({e})")
        starts.append(prev + 1)
    counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))

    def fields(m: int) -> list:
        return list(itertools.chain.from_iterable(rows[:m]))

    return _Records(
        np.asarray(starts, dtype=np.int64), counts, fields, lambda i: rows[i], pending
    )


@dataclass
class _Table:
    line_no: np.ndarray  # 1-based line of each interaction
    users: list  # stripped id strings
    items: list
    values: np.ndarray  # float64


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _looks_like_header(first: list, rest_users: list, rest_items: list) -> bool:
    if len(first) >= 3:
        return not _is_number(first[2])
    cells = [c.strip() for c in first]
    if any(_is_number(c) for c in cells):
        return False
    if all(c.lower() in _HEADER_WORDS for c in cells):
        return True
    return any(
        rest and _canonical_ints(np.array(list(dict.fromkeys(rest)), dtype=str)) is not None
        for rest in (rest_users, rest_items)
    )


def _parse_table(path, rec: _Records, header: bool | None, default_value: float) -> _Table:
    n = len(rec.counts)
    # A reader error or a bad field count is held back until the lines before
    # it are checked, so that the error reported is always the first in the file.
    pending = rec.pending
    k = int(rec.counts[0]) if n else 2
    if n:
        bad_at = None
        if not 2 <= k <= 4:
            bad_at, reason = 0, f"expected 2 to 4 fields, got {k}"
        else:
            bad = np.flatnonzero(rec.counts != k)
            if bad.size:
                bad_at = int(bad[0])
                c = int(rec.counts[bad_at])
                reason = (
                    f"expected {k} fields (as on line {rec.line_no[0]}), got {c}"
                    if 2 <= c <= 4
                    else f"expected 2 to 4 fields, got {c}"
                )
        if bad_at is not None and (pending is None or bad_at < pending[0]):
            pending = (bad_at, reason)
    m = n if pending is None else pending[0]
    if not 2 <= k <= 4:
        k, m = 2, 0

    # Columns stay Python lists of str: map() over C functions and dict
    # hashing beat NumPy's unicode arrays, whose int/float casts and sorts
    # are several times slower for a million short strings.
    flat = rec.fields(m)
    cols = [flat[j::k] for j in range(k)]
    del flat
    users = list(map(str.strip, cols[0]))
    items = list(map(str.strip, cols[1]))

    start = 0
    if m:
        if header is None:
            is_header = _looks_like_header(rec.first(0), users[1:], items[1:])
        else:
            is_header = header
        start = 1 if is_header else 0
    if start:
        users, items = users[start:], items[start:]
        cols = [c[start:] for c in cols]
    line_no = rec.line_no[start:m]
    # (record, column, reason): ties on one line go to the leftmost column.
    errors: list[tuple[int, int, str]] = []

    for col, name, ids in ((0, "user", users), (1, "item", items)):
        if "" in ids:
            errors.append((ids.index(""), col, f"empty {name} id"))
    if k >= 3:
        values, err = _parse_numbers(cols[2], "value", float32=True)
        if err:
            errors.append((err[0], 2, err[1]))
    else:
        values = np.full(len(users), default_value, dtype=np.float64)
    if k == 4:
        _, err = _parse_numbers(cols[3], "timestamp", float32=False)
        if err:
            errors.append((err[0], 3, err[1]))

    if errors:
        i, _, reason = min(errors)
        raise DataFormatError(path, line_no[i], reason)
    if pending is not None:
        raise DataFormatError(path, rec.line_no[pending[0]], pending[1])
    if not users:
        raise DataFormatError(path, None, "no interactions")
    return _Table(line_no, users, items, values)


def _parse_numbers(strs: list, what: str, *, float32: bool):
    """Parse a column of numbers; return (values or None, first error or None)."""
    try:
        out = np.fromiter(map(float, strs), dtype=np.float64, count=len(strs))
    except ValueError:
        # Only now look at single fields, to name the first bad one.
        i = next(i for i, s in enumerate(strs) if not _is_number(s))
        return None, (i, f"{what} {strs[i].strip()!r} is not a number")
    bad = ~np.isfinite(out)
    if float32:
        with np.errstate(invalid="ignore"):
            bad |= np.abs(out) > _F32_MAX
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "finite float32 number" if float32 else "finite number"
        return None, (i, f"{what} {strs[i].strip()!r} is not a {kind}")
    return out, None


# --------------------------------------------------------------------------
# Ids, duplicates and the matrix
# --------------------------------------------------------------------------


def _canonical_ints(ids: np.ndarray) -> np.ndarray | None:
    """Return `ids` as int64 when every one is written exactly as str(int)."""
    if ids.size == 0:
        return None
    try:
        ints = ids.astype(np.int64)
    except (ValueError, OverflowError):
        return None
    # int() also takes "007", "+7", "1_0" and non-ASCII digits; treating those
    # as integers would merge ids such as "007" and "7" that the file keeps apart.
    if not np.array_equal(ints.astype(str), ids):
        return None
    return ints


def _encode_ids(ids: list) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ids and each entry's position among them."""
    # Hash the (few) distinct ids once, then sort only those.
    uniq = list(dict.fromkeys(ids))
    first_seen = np.fromiter(
        map(dict(zip(uniq, range(len(uniq)))).__getitem__, ids), dtype=np.int64, count=len(ids)
    )
    uniq_arr = np.array(uniq, dtype=str)
    ints = _canonical_ints(uniq_arr)
    if ints is not None:
        uniq_arr = ints
    order = np.argsort(uniq_arr, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return uniq_arr[order], rank[first_seen]


def _build(path, table: _Table, duplicates: str, unit: str) -> Interactions:
    user_ids, rows = _encode_ids(table.users)
    item_ids, cols = _encode_ids(table.items)
    matrix = _assemble(
        path, rows, cols, table.values, (len(user_ids), len(item_ids)),
        duplicates, table.line_no, user_ids, item_ids, unit,
    )
    return Interactions(matrix, user_ids, item_ids)


def _assemble(path, rows, cols, values, shape, duplicates, line_no, user_ids, item_ids, unit):
    """Combine repeated pairs and build a canonical float32 CSR matrix."""
    n_users, n_items = shape
    if n_users * n_items < 2**63:
        order = np.argsort(rows * np.int64(n_items) + cols, kind="stable")
    else:  # the combined key would overflow int64; lexsort is slower but exact
        order = np.lexsort((cols, rows))
    r, c = rows[order], cols[order]
    new = np.empty(len(order), dtype=bool)
    new[:1] = True
    new[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    starts = np.flatnonzero(new)
    v = values[order]

    if starts.size == len(order):
        data = v
    elif duplicates == "error":
        # Stable sort puts each pair's earliest line first, so the repeats
        # are exactly the entries that do not start a group.
        repeats = np.flatnonzero(~new)
        j = int(order[repeats].min())
        pos = int(np.flatnonzero(order == j)[0])
        first = int(order[starts[np.searchsorted(starts, pos, side="right") - 1]])
        raise DataFormatError(
            path, line_no[j],
            f"duplicate pair (user {user_ids[rows[j]].item()!r}, item "
            f"{item_ids[cols[j]].item()!r}), first on {unit} {line_no[first]}",
            unit=unit,
        )
    elif duplicates == "sum":
        data = np.add.reduceat(v, starts)
    elif duplicates == "max":
        data = np.maximum.reduceat(v, starts)
    else:  # "last": stable order makes the group's final entry the latest line
        ends = np.append(starts[1:], len(order)) - 1
        data = v[ends]

    with np.errstate(over="ignore", invalid="ignore"):
        data32 = data.astype(np.float32)
    bad = ~np.isfinite(data32)
    if bad.any():
        g = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            path, line_no[order[starts[g]]],
            "combined value of a repeated pair is outside float32 range", unit=unit,
        )

    r, c = r[starts], c[starts]
    index_dtype = choose_index_dtype((n_users, n_items), len(starts))
    indptr = np.zeros(n_users + 1, dtype=index_dtype)
    np.cumsum(np.bincount(r, minlength=n_users), out=indptr[1:])
    matrix = scipy.sparse.csr_matrix(
        (data32, c.astype(index_dtype), indptr), shape=(n_users, n_items)
    )
    # Entries are already in row-major order with no repeats; say so, so that
    # scipy does not re-sort or sum on first use.
    matrix.has_sorted_indices = True
    matrix.has_canonical_format = True
    return matrix


def _read_npz(path, duplicates: str) -> Interactions:
    try:
        loaded = scipy.sparse.load_npz(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # zipfile, pickle and key errors all mean "not an npz matrix"
        raise DataFormatError(path, None, f"not a scipy.sparse .npz file ({e})") from None
    if loaded.ndim != 2:
        raise DataFormatError(path, None, f"expected a 2-D matrix, got {loaded.ndim}-D")
    coo = loaded.tocoo()
    if not (np.issubdtype(coo.dtype, np.floating) or np.issubdtype(coo.dtype, np.integer)
            or coo.dtype == bool):
        raise DataFormatError(path, None, f"unsupported value dtype {coo.dtype}")
    if coo.nnz == 0:
        raise DataFormatError(path, None, "no interactions")
    values = coo.data.astype(np.float64)
    entry = np.arange(1, coo.nnz + 1, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (np.abs(values) > _F32_MAX)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            path, entry[i], f"value {values[i]!r} is not a finite float32 number", unit="entry"
        )
    n_users, n_items = coo.shape
    user_ids = np.arange(n_users, dtype=np.int64)
    item_ids = np.arange(n_items, dtype=np.int64)
    matrix = _assemble(
        path, coo.row.astype(np.int64), coo.col.astype(np.int64), values, coo.shape,
        duplicates, entry, user_ids, item_ids, "entry",
    )
    return Interactions(matrix, user_ids, item_ids)


# --------------------------------------------------------------------------
# Id lookup helpers
# --------------------------------------------------------------------------


def _is_scalar_id(x) -> bool:
    return isinstance(x, (str, bytes)) or np.ndim(x) == 0


def _int_key(q) -> int | None:
    if isinstance(q, (bool, np.bool_)):
        return None
    if isinstance(q, (int, np.integer)):
        return int(q) if -(2**63) <= int(q) < 2**63 else None
    if isinstance(q, bytes):
        q = q.decode("utf-8", "replace")
    if isinstance(q, str):
        s = q.strip()
        # ASCII digits only: int() would also accept "٤٢" or "4_2".
        if _INT_RE.fullmatch(s):
            v = int(s)
            return v if -(2**63) <= v < 2**63 else None
        return None
    if isinstance(q, (float, np.floating)) and float(q).is_integer():
        return _int_key(int(q))
    return None


def _str_key(q) -> str | None:
    if isinstance(q, (bool, np.bool_)):
        return None
    if isinstance(q, (int, np.integer)):
        return str(int(q))
    if isinstance(q, bytes):
        q = q.decode("utf-8", "replace")
    if isinstance(q, str):
        return q.strip()
    return None
