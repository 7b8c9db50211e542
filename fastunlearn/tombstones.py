"""Tombstones: what a saved id map keeps of a forgotten user's or item's id.

When the command line forgets whole users or items it replaces their ids in
the saved id map, since an id left in place would say who was there.  A repeated
request must still be recognised (erasure requests are retried: the answer
is "already forgotten", not "unknown"), so the entry becomes a tombstone
that holds a hash of the id and the number of the receipt that forgot it.

What this keeps: whoever holds the file and guesses an id can tell that it
was forgotten, and when (the receipt in the history); the file does not list
the ids.  That is the price of answering a retry truthfully.
"""
from __future__ import annotations

import hashlib

import numpy as np

# Starts with a control character no reader yields, so it cannot collide
# with a real id; the row number keeps the ids unique.
PREFIX = "\x1fforgotten:"
_DOMAIN = b"fastunlearn forgotten id\x00"
_WIDTH = 64  # characters: room for PREFIX, a row number, a hash and a receipt number


def _key(external) -> str:
    """The hash of an id as the id maps match it (whitespace ignored; an
    integer and its canonical string are the same id)."""
    text = str(external).strip()
    if isinstance(external, (int, np.integer)) or text.lstrip("-").isdigit():
        try:
            text = str(int(text))
        except ValueError:
            pass
    return hashlib.sha256(_DOMAIN + text.encode("utf-8")).hexdigest()[:16]


def tombstoned(ids, rows, receipt: int) -> np.ndarray:
    """A copy of the id map ``ids`` with the ids of ``rows`` replaced by
    tombstones naming receipt number ``receipt`` (1-based, as ``fastunlearn
    info`` numbers the history)."""
    original = np.asarray(ids)
    out = original.astype(str)
    out = out.astype(f"<U{max(out.dtype.itemsize // 4, _WIDTH)}")
    for row in np.atleast_1d(rows):
        row = int(row)
        if not out[row].startswith(PREFIX):  # forgetting it again keeps the first receipt
            out[row] = f"{PREFIX}{row}:{_key(original[row])}:{receipt}"
    return out


def forgotten(queries, ids) -> dict:
    """``{query: receipt number}`` for each of ``queries`` whose tombstone
    is in the id map ``ids`` (receipt None for tombstones of older files,
    which hold no hash)."""
    ids = np.asarray(ids)
    if ids.dtype.kind != "U":
        return {}
    stones = {}
    for entry in ids[np.char.startswith(ids, PREFIX)].tolist():
        parts = entry[len(PREFIX):].split(":")
        if len(parts) == 3:
            stones[parts[1]] = int(parts[2])
    return {q: stones[_key(q)] for q in queries if _key(q) in stones}
