"""The state a fitted model keeps besides its factors and data: factor
checksums and the cached measures, keyed by a fingerprint of the state
(docs/design.md, section 6).

Forgetting and persistence read and write this cache; they depend on this
module and the kernel layer, never on the estimators.
"""
from dataclasses import dataclass

import numpy as np

from . import _als
from .objective import Measures


def checksum(F):
    """Position-aware checksum of the array's bytes (not cryptographic)."""
    raw = np.ascontiguousarray(F).reshape(-1).view(np.uint8)
    cut = raw.size - raw.size % 8
    return (*_als.checksum(raw[:cut].view(np.uint64)), raw[cut:].tobytes())


def advance_checksum(checksum, F, rows, old):
    """:func:`checksum` of ``F`` from ``checksum``, that of ``F`` when
    ``rows`` held ``old``, reading only those rows (O(len(rows) k)).

    Both Fletcher sums are linear in the words mod 2^64: a word at position
    j of n that changes by d moves the first by d and the second by (n - j) d.
    Returns None (so the caller reads the whole array) when ``checksum`` is
    None or a row does not fill whole 8-byte words (odd k in float32).
    """
    row_bytes = F.shape[1] * F.itemsize
    if checksum is None or row_bytes % 8 or not F.flags.c_contiguous:
        return None
    a, b, tail = checksum  # whole words only: the tail is empty and stays so
    words, n = row_bytes // 8, F.size * F.itemsize // 8
    rows = np.asarray(rows, dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as the sums do
        diff = F[rows.astype(np.int64)].view(np.uint64) - \
            np.ascontiguousarray(old).view(np.uint64)
        position = np.uint64(n) - (rows[:, None] * np.uint64(words)
                                   + np.arange(words, dtype=np.uint64))
        da, db = int(diff.sum(dtype=np.uint64)), int((position * diff).sum(dtype=np.uint64))
    return (a + da) % 2**64, (b + db) % 2**64, tail


def fingerprint(model, checksums=None):
    """Cheap identity of the model state: checksums of the factor bits.

    Detects any change of factors (including in-place edits by a user) or of
    the retained data size, so cached measures are never used stale.  Costs
    one read of the factors unless ``checksums`` (of users, items) are given, as forgetting does for
    the state it leaves (:func:`advance_checksum`).
    """
    if checksums is None or None in checksums:
        checksums = (checksum(model.user_factors), checksum(model.item_factors))
    return (model.user_factors.shape, model.item_factors.shape, model._data.nnz,
            id(model._data), *checksums)


@dataclass(frozen=True)
class Measured:
    """Measures of one state of a model, with the fingerprint of that state
    (:func:`fingerprint`): used only while the fingerprint still matches."""

    key: tuple
    measures: Measures

    @property
    def checksums(self):
        """(users, items) factor checksums of the state measured."""
        return self.key[-2:]

    def of(self, model):
        """The measures, if they describe ``model``'s current state, else None."""
        return self.measures if self.key == fingerprint(model) else None
