"""Batches of Arrow columns to a matrix and id maps: the step every reader
ends with."""

from __future__ import annotations

import ctypes
import warnings

import numpy as np
import pyarrow as pa

from .columns import Bad, Growing, Ids, numbers
from .errors import DataWarning
from .matrix import assemble

# Unix times in seconds (1973-2106) or milliseconds (1973-2106): interaction
# strengths of this size are almost always a timestamp column read as values.
_UNIX_RANGES = ((1e8, 4.3e9), (1e11, 4.3e12))


class Collector:
    """Collects (user, item[, value[, timestamp]]) batches.

    Parameters
    ----------
    default_value : float
        Value of every interaction when there is no value column.
    unquote : bool
        Passed to :class:`~.columns.Ids` (CSV only).
    positions : bool
        Ids are row and column numbers (non-negative integers) rather than
        external ids: the shape is one more than the largest, and the id
        maps are ``0..n-1`` (the Dask estimators' Parquet input).
    dtype : float32 or float64
        Values of the matrix (float64 for the float64 Dask estimators).
    expected : int
        Rows expected: buffers are sized for it (an over-estimate costs
        address space only, see :class:`~.columns.Growing`).
    keep : bool
        Keep every row's numbered ids to the end, which errors about
        repeated pairs need; without it :meth:`finish` frees them early and
        raises :class:`~.matrix.Redo` when it would need them.
    """

    def __init__(self, default_value: float = 1.0, *, unquote=False, positions=False,
                 keep=False, expected=0, dtype=np.float32):
        self.default_value = float(default_value)
        self.positions = positions
        self.keep = keep
        self.dtype = np.dtype(dtype)
        self.expected = int(expected)
        self.users = Ids("user", unquote, self.expected)
        self.items = Ids("item", unquote, self.expected)
        self.values: Growing | None = None
        self.wide = False  # some value not exact in float32: keep float64
        self.n = 0

    def add(self, user, item, value=None, timestamp=None) -> None:
        """Add one batch of columns (Arrow or NumPy arrays of equal length)."""
        user, item = _arrow(user), _arrow(item)
        self.users.add(user)
        self.items.add(item)
        if value is not None:
            v = numbers(_arrow(value), "value", self.n, float32=True)
            if self.values is None:
                self.values = Growing(np.float32, self.expected)
            if not self.wide and (self.dtype == np.float64
                                  or not np.array_equal(v.astype(np.float32), v)):
                self.wide = True
                self.values.widen(np.float64)
            self.values.append(v)
        if timestamp is not None:
            numbers(_arrow(timestamp), "timestamp", self.n, float32=False)
        if (self.n + len(user)) >> 20 != self.n >> 20:
            release_heap()  # every million rows: decoded blocks must not pile up
        self.n += len(user)

    def finish(self, duplicates: str):
        """(CSR matrix, user ids, item ids); raises Bad, or matrix.Repeat."""
        release_heap()
        user_ids, rows = self.users.finish()
        item_ids, cols = self.items.finish()
        if self.positions:
            user_ids, rows = _positions(user_ids, rows, "user")
            item_ids, cols = _positions(item_ids, cols, "item")
        if self.values is not None:
            values, self.values = self.values.take(), None
        else:
            values = np.full(self.n, self.default_value, dtype=np.float32)
            if values.size and float(values[0]) != self.default_value:
                values = values.astype(np.float64)
        release_heap()
        shape = (len(user_ids), len(item_ids))
        self._codes = (user_ids, rows, item_ids, cols) if self.keep else None
        triples = [rows, cols, values]
        del rows, cols, values
        matrix = assemble(triples, shape, duplicates, keep=self.keep, dtype=self.dtype)
        return matrix, user_ids, item_ids

    def pair(self, row: int) -> tuple:
        """(user id, item id) of data row ``row``, after :meth:`finish`."""
        user_ids, rows, item_ids, cols = self._codes
        return user_ids[rows[row]].item(), item_ids[cols[row]].item()


def release_heap() -> None:
    """Hand freed C-heap memory back to the system.

    The per-batch parts are small blocks from the C heap, freed in a
    different order than they were taken; glibc keeps such holes unless
    asked, which would count them twice in the peak (parts, then the
    matrix).  Elsewhere this does nothing.
    """
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)
    pa.default_memory_pool().release_unused()


_MALLOC_TRIM = None


def _arrow(x):
    if isinstance(x, (pa.Array, pa.ChunkedArray)):
        return x
    return pa.array(np.asarray(x))


def _positions(ids, codes, role):
    """Ids that are row numbers: ``0..max`` with ``codes`` re-pointed at them."""
    if ids.size and (ids.dtype.kind != "i" or ids[0] < 0):
        bad = ids[0]
        raise Bad(int(np.flatnonzero(codes == 0)[0]),
                  f"{role} {bad!r} is not a row number (a non-negative integer)")
    n = int(ids[-1]) + 1 if ids.size else 0
    return np.arange(n, dtype=np.int64), ids[codes]


def unix_time_warning(values: np.ndarray, source: str, column: str, advice: str,
                      stacklevel: int = 4) -> None:
    """Warn when every value is an integer of Unix-time magnitude
    (``stacklevel`` points the warning at the caller of the public function)."""
    if values.size < 2:
        return
    lo, hi = float(values.min()), float(values.max())
    if not any(a <= lo and hi <= b for a, b in _UNIX_RANGES):
        return
    if not np.array_equal(values, np.round(values)):
        return
    warnings.warn(
        f"{source}: every value in the value column ({column}) is an integer between "
        f"{lo:.0f} and {hi:.0f}, the size of Unix times, so the model would treat "
        f"timestamps as interaction strengths; if that column is a timestamp, {advice}",
        DataWarning, stacklevel=stacklevel)
