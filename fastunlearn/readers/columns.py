"""Arrow columns to id maps and values, batch by batch.

Every reader (text, Parquet, data frames) hands its columns over here, so
the id rules are one: an axis has int64 ids when every id is written as a
canonical integer (``"42"``, ``"-7"``; not ``"007"``, ``"+7"``, ``"0x10"``)
or stored as one, and string ids otherwise, with surrounding whitespace
removed.  Integer ids never become Python objects: they are cast by Arrow,
checked for canonical spelling by prefix, and numbered by a counting pass
(docs/design.md, section 6).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_F32_MAX = float(np.finfo(np.float32).max)


class Bad(Exception):
    """A problem at data row ``row`` (0-based over the whole input)."""

    def __init__(self, row, reason):
        super().__init__(reason)
        self.row, self.reason = int(row), reason


class Ids:
    """One id column, added batch by batch; :meth:`finish` numbers it.

    Parameters
    ----------
    role : {"user", "item"}
    unquote : bool
        Undo quoting that Arrow left in place because spaces came before
        the opening quote (``a, "b c"``), as Python's csv module with
        ``skipinitialspace`` does.
    expected : int
        Rows expected (a hint for the buffer's size).
    """

    def __init__(self, role: str, unquote: bool = False, expected: int = 0):
        self.role = role
        self.unquote = unquote
        self.n = 0
        # While every id is an integer: one growing buffer, and its range.
        self.ints: Growing | None = Growing(np.int32, expected)
        self.lo, self.hi = None, None
        self.strings: list = []  # Arrow string arrays otherwise

    def add(self, arr) -> None:
        arr = _plain(arr)
        t = arr.type
        if arr.null_count:
            raise Bad(self.n + _first(arr.is_null()), f"empty {self.role} id")
        if pa.types.is_integer(t):
            self._add_ints(arr)
        elif pa.types.is_floating(t):
            x = arr.to_numpy(zero_copy_only=False)
            bad = ~np.isfinite(x) | (x != np.round(x)) | (np.abs(x) >= 2.0**63)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise Bad(self.n + i, f"{self.role} id {float(x[i])!r} is not an integer")
            self._add_ints(x.astype(np.int64))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            ints = None if self.ints is None else _canonical(arr)
            if ints is None:
                self._to_strings()
                self.strings.append(arr)
            else:
                self._add_ints(ints)
        else:
            raise Bad(self.n, f"{self.role} ids of type {t} (expected integers or strings)")
        self.n += len(arr)

    def _add_ints(self, arr) -> None:
        if isinstance(arr, (pa.Array, pa.ChunkedArray)):
            if pa.types.is_uint64(arr.type) and len(arr) and pc.max(arr).as_py() >= 2**63:
                raise Bad(self.n + _first(pc.greater_equal(arr, 2**63)),
                          f"{self.role} id above the int64 range")
            arr = arr.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        if self.ints is None:
            self.strings.append(pa.array(arr).cast(pa.string()))
        elif arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            self.lo = lo if self.lo is None else min(lo, self.lo)
            self.hi = hi if self.hi is None else max(hi, self.hi)
            if not -(2**31) <= self.lo <= self.hi < 2**31:
                self.ints.widen(np.int64)
            self.ints.append(arr)

    def _to_strings(self) -> None:
        if self.ints is not None:
            kept = self.ints.take()
            self.strings = [pa.array(kept).cast(pa.string())] if kept.size else []
            self.ints = None

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(sorted unique ids, each row's position among them)."""
        if self.ints is None:
            return self._number_strings()
        x = self.ints.take()
        self.ints = Growing(np.int32)
        return _number_ints(x, self.lo, self.hi)

    def _number_strings(self):
        chunks = self.strings
        if len({c.type for c in chunks}) > 1:
            chunks = [c.cast(pa.large_string()) for c in chunks]
        encoded = pc.dictionary_encode(pa.chunked_array(chunks))
        self.strings = []
        # Arrow encodes a chunked array against one growing dictionary, so
        # the last chunk's dictionary holds every id seen.
        raw = encoded.chunks[-1].dictionary.to_pylist()
        codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False)
                                for c in encoded.chunks]).astype(np.int64, copy=False)
        del encoded
        clean = [_clean(s, self.unquote) for s in raw]
        if "" in clean:
            raise Bad(int(np.flatnonzero(codes == clean.index(""))[0]), f"empty {self.role} id")
        uniq, inverse = np.unique(np.array(clean, dtype=str), return_inverse=True)
        ints = _canonical_ints(uniq)
        if ints is not None:
            order = np.argsort(ints, kind="stable")
            rank = np.empty(len(order), np.int64)
            rank[order] = np.arange(len(order))
            uniq, inverse = ints[order], rank[inverse]
        return uniq, _narrow(inverse.reshape(-1)[codes])


def _clean(s: str, unquote: bool) -> str:
    t = s.strip()
    if unquote and s[:1].isspace() and len(t) >= 2 and t[0] == t[-1] == '"':
        t = t[1:-1].replace('""', '"')
    return t


def _plain(arr):
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        arr = arr.cast(pa.string())  # validates UTF-8
    return arr


def _first(mask) -> int:
    return int(np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False)))[0])


def _canonical(arr) -> np.ndarray | None:
    """int64 values of a string array when every string is a canonical integer."""
    try:
        ints = pc.cast(arr, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    # The cast also takes "007", "-0" and "0x10"; str(int) never starts so.
    longer = pc.greater(pc.utf8_length(arr), 1)
    padded = pc.or_(pc.and_(pc.starts_with(arr, "0"), longer), pc.starts_with(arr, "-0"))
    if pc.any(padded).as_py():
        return None
    return ints.to_numpy(zero_copy_only=False)


def _canonical_ints(ids: np.ndarray) -> np.ndarray | None:
    """``ids`` (a str array) as int64 when every one is written exactly as str(int)."""
    if ids.size == 0:
        return None
    try:
        ints = ids.astype(np.int64)
    except (ValueError, OverflowError):
        return None
    if not np.array_equal(ints.astype(str), ids):
        return None
    return ints


class Growing:
    """An array appended to in place.

    The buffer is allocated at the expected size with ``np.empty``, whose
    untouched pages are never resident, so an over-estimate costs address
    space only; an under-estimate grows it by copying.
    """

    def __init__(self, dtype, expected: int = 0):
        self.buf = np.empty(max(int(expected), 1 << 12), dtype=dtype)
        self.n = 0

    def append(self, arr) -> None:
        need = self.n + len(arr)
        if need > len(self.buf):
            bigger = np.empty(max(need, len(self.buf) * 3 // 2), dtype=self.buf.dtype)
            bigger[:self.n] = self.buf[:self.n]
            self.buf = bigger
        self.buf[self.n:need] = arr
        self.n = need

    def widen(self, dtype) -> None:
        if self.buf.dtype != dtype:
            wider = np.empty(len(self.buf), dtype=dtype)
            wider[:self.n] = self.buf[:self.n]
            self.buf = wider

    def take(self) -> np.ndarray:
        """The filled part (a view of the buffer, which is handed over)."""
        buf, self.buf = self.buf, np.empty(0, self.buf.dtype)
        return buf[:self.n]


def _number_ints(x: np.ndarray, lo, hi):
    """Sorted unique values of ``x`` and each entry's position among them;
    ``x`` is overwritten with the positions where it can be."""
    if x.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    if hi - lo >= 4 * x.size + 4096:  # sparse ids: sort them
        uniq, inverse = np.unique(x, return_inverse=True)
        return uniq.astype(np.int64), _narrow(inverse.reshape(-1))
    # Ids from a dense range: a counting pass, no sort.
    present = np.zeros(hi - lo + 1, dtype=bool)
    step = 1 << 20  # slices keep the shifted copies small
    for at in range(0, x.size, step):
        part = x[at:at + step]
        present[part - lo if lo else part] = True
    uniq = np.flatnonzero(present).astype(np.int64) + lo
    rank = (np.cumsum(present, dtype=np.int64) - 1).astype(_index(len(uniq)))
    del present
    codes = x if x.dtype == rank.dtype else np.empty(x.size, dtype=rank.dtype)
    for at in range(0, x.size, step):
        part = x[at:at + step]
        codes[at:at + step] = rank[part - lo if lo else part]
    return uniq, codes


def _index(n: int):
    return np.int32 if n < 2**31 else np.int64


def _narrow(codes: np.ndarray) -> np.ndarray:
    top = int(codes.max()) + 1 if codes.size else 0
    return codes.astype(_index(top), copy=False)


def numbers(arr, role: str, offset: int, *, float32: bool) -> np.ndarray:
    """A value or timestamp column as float64, checked finite (and within
    float32 for values); raises :class:`Bad` at the first bad row."""
    arr = _plain(arr)
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)
            or pa.types.is_boolean(arr.type) or pa.types.is_decimal(arr.type)):
        raise Bad(offset, f"{role}s of type {arr.type} (expected numbers)")
    if arr.null_count:
        raise Bad(offset + _first(arr.is_null()), f"{role} is missing")
    x = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
    bad = ~np.isfinite(x)
    if float32:
        with np.errstate(invalid="ignore"):
            bad |= np.abs(x) > _F32_MAX
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        kind = "finite float32 number" if float32 else "finite number"
        raise Bad(offset + i, f"{role} {float(x[i])!r} is not a {kind}")
    return x
