"""External ids and the row (or column) numbers of the factor matrices.

The command line and the data readers keep each axis's external ids in a
sorted array (``Interactions.user_ids``, ``item_ids``); these functions
translate in both directions.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = ["UnknownIdError", "to_external", "to_internal"]

_INT_RE = re.compile(r"[+-]?[0-9]+")


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
        if len(self.unknown) == 1 and what.endswith("s"):
            what = what[:-1]  # "1 unknown id"
        super().__init__(f"{len(self.unknown)} unknown {what}: {shown}{tail}")

    def __reduce__(self):
        return (UnknownIdError, (self.unknown,))


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
    result = lookup_ids(queries, id_array)
    missing = np.flatnonzero(result < 0)
    if missing.size:
        raise UnknownIdError([queries[i] for i in missing])
    return int(result[0]) if scalar else result


def lookup_ids(queries: list, id_array: np.ndarray) -> np.ndarray:
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
