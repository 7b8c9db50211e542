"""The state of a fitted model (:class:`ModelState`): its factors, the
retained interactions, the cached measures keyed by a fingerprint of the
state, with factor checksums, and the removals no washout has covered yet
(docs/design.md, section 6).

Forgetting and persistence read and write the state through this module;
they depend on it and the kernel layer, never on the estimators, which
compose it.
"""
from dataclasses import dataclass, fields

import numpy as np

from . import _als
from . import objective as obj
from .objective import Measures
from .storage import TrainingData


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


def fingerprint(state, checksums=None):
    """Cheap identity of a :class:`ModelState`: checksums of the factor bits.

    Detects any change of factors (including in-place edits by a user) or of
    the retained data size, so cached measures are never used stale.  Costs
    one read of the factors unless ``checksums`` (of users, items) are given,
    as forgetting does for the state it leaves (:func:`advance_checksum`).
    """
    if checksums is None or None in checksums:
        checksums = (checksum(state.user_factors), checksum(state.item_factors))
    return (state.user_factors.shape, state.item_factors.shape, state.data.nnz,
            id(state.data), *checksums)


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

    def of(self, state):
        """The measures, if they describe ``state`` as it is now, else None."""
        return self.measures if self.key == fingerprint(state) else None


@dataclass(eq=False)
class ModelState:
    """What a fitted model is, besides its hyperparameters: the factors, the
    retained interactions, the measures kept for them and the removals
    pending a washout.

    ``user_factors`` and ``item_factors`` are arrays (n, k) (None before a
    fit); ``data`` the retained :class:`~fastunlearn.storage.TrainingData`
    (None for a model that only serves: factors loaded from implicit's file
    or set by hand); ``measured`` the kept :class:`Measured` (None when
    nothing is kept); ``pending`` the (entries, requests) removed since the
    last washout, ``washouts`` the relaxed washouts run since the factors
    were last fitted, ``washout_policy`` which washout the model runs (one
    of :data:`fastunlearn.forgetting.WASHOUT_POLICIES`; see
    :mod:`fastunlearn.forgetting`).

    The kept measures are trusted only while :func:`fingerprint` of the
    state still matches theirs, so the factors may be replaced or edited in
    place by anyone: the next :meth:`measures` then measures again.
    """

    user_factors: "np.ndarray | None" = None
    item_factors: "np.ndarray | None" = None
    data: "TrainingData | None" = None
    measured: "Measured | None" = None
    pending: tuple = (0, 0)
    washouts: int = 0
    washout_policy: str = "default"

    @property
    def has_factors(self):
        """Whether both factor matrices are set (enough to serve)."""
        return self.user_factors is not None and self.item_factors is not None

    @property
    def is_fitted(self):
        """Whether the state holds factors and the interactions they were trained on."""
        return self.user_factors is not None and self.data is not None

    def install(self, user_factors, item_factors, user_items):
        """Install validated factors and canonical interactions (a CSR
        matrix, stored as :class:`TrainingData`); the kept measures go, the
        pending and washout counts stay (the caller sets them)."""
        self.measured = None
        self.data = TrainingData(user_items)
        self.user_factors = user_factors
        self.item_factors = item_factors

    def snapshot(self):
        """A shallow copy (the same arrays and data), for :meth:`restore`."""
        return ModelState(**{f.name: getattr(self, f.name) for f in fields(self)})

    def restore(self, snapshot):
        """Put back every field of ``snapshot`` (from :meth:`snapshot`), in place."""
        for f in fields(self):
            setattr(self, f.name, getattr(snapshot, f.name))

    def fingerprint(self, checksums=None):
        """:func:`fingerprint` of this state."""
        return fingerprint(self, checksums)

    def measures(self, objective, threads, exact=False):
        """:class:`objective.Measures` of the current state under ``objective``.

        Forgetting needs gradient norms, the loss and the Gram matrices
        before every request and updates them after it; they are kept, keyed
        by a fingerprint of the state, so that consecutive requests do not
        pay passes over the data.  ``exact`` refuses kept upper bounds.
        """
        key = fingerprint(self)
        kept = self.measured
        if kept is not None and kept.key == key and (kept.measures.exact or not exact):
            return kept.measures
        value = obj.measure(objective, self.data, self.user_factors, self.item_factors,
                            num_threads=threads)
        self.measured = Measured(key, value)
        return value

    def remember(self, measures, checksums=None):
        """Keep ``measures`` as those of the current state (whose factor
        checksums (users, items) the caller may know, see :func:`fingerprint`)."""
        self.measured = Measured(fingerprint(self, checksums), measures)

    def current_measures(self):
        """The kept measures if they describe the current state, else None."""
        return None if self.measured is None else self.measured.of(self)

    def __getstate__(self):
        """Pickling and copying keep the measures that describe this state,
        with the parts of their fingerprint that survive a copy (the data's
        identity does not): :meth:`__setstate__` checks them on the copy, as
        a file's fingerprint is checked when it loads."""
        fields_now = {f.name: getattr(self, f.name) for f in fields(self)}
        kept = self.current_measures() if self.is_fitted else None
        fields_now["measured"] = None if kept is None else \
            (_portable(self.measured.key), kept)
        return fields_now

    def __setstate__(self, saved):
        saved = dict(saved)
        carried = saved.pop("measured", None)
        for name, value in saved.items():
            setattr(self, name, value)
        self.measured = None
        if isinstance(carried, tuple) and self.is_fitted:
            key, measures = carried
            now = fingerprint(self)  # reads the copy's factors
            if _portable(now) == key:
                self.measured = Measured(now, measures)
        elif isinstance(carried, Measured):  # an older pickle: never trusted
            self.measured = None

    def kept_checksums(self):
        """(users, items) factor checksums of the kept measures' state
        ((None, None) when nothing is kept)."""
        return self.measured.checksums if self.measured is not None else (None, None)


def _portable(key):
    """A :func:`fingerprint` without the data's identity (which a copy changes)."""
    return key[:3] + key[4:]
