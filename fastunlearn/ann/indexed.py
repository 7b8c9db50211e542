"""An approximate-nearest-neighbour index that forgets with its model.

:class:`IndexedModel` wraps a fastunlearn model and serves ``recommend`` and
``similar_items`` from indexes of the item factors (as implicit's
``implicit.ann`` models), and forwards ``forget``, ``forget_users``,
``forget_items``, ``partial_fit`` and ``settle`` to the model, after which
it brings the indexes in line with the model's factors: rows that moved are
removed and added again, forgotten items are taken out, and a request that
moved most rows (a washout) rebuilds.  docs/ann.md says what an index
structure can still remember and when to call :meth:`IndexedModel.rebuild`.
Queries are :class:`~.queries.IndexQueries`, files :class:`~.files.IndexFiles`.
"""
import time

import numpy as np
import scipy.sparse as sp

from ..validation import check_ids
from .base import moved_rows
from .files import IndexFiles
from .queries import IndexQueries

# A request that moved more than this fraction of the indexed rows rebuilds
# the indexes instead of updating them row by row (a washout moves all).
REBUILD_FRACTION = 0.5


class IndexedModel(IndexQueries, IndexFiles):
    """A fastunlearn model served through approximate indexes that forget with it.

    Subclasses set the backend (:class:`~fastunlearn.ann.FaissModel`,
    :class:`~fastunlearn.ann.HNSWModel`).  Lists are ``N`` wide, padded
    with id -1 and score ``-finfo(float32).max``; a forgotten user or item
    is never in a result, whatever the filters.

    Attributes
    ----------
    model : fastunlearn model (ImplicitALS, AlternatingLeastSquares, ...)
    forgotten_users, forgotten_items : ndarray of int64
        Ids removed by ``forget_users`` / ``forget_items`` (and not given
        interactions again by ``partial_fit`` since).
    last_update : dict
        What the last request did to the indexes: ``{"moved": rows,
        "rebuilt": bool, "seconds": float}``.
    """

    _backend = None  # name saved in files

    def __init__(self, model, approximate_similar_items=True, approximate_recommend=True):
        if not all(hasattr(model, name) for name in ("forget", "item_factors", "recommend")):
            raise TypeError(f"model must be a fastunlearn model (ImplicitALS, "
                            f"AlternatingLeastSquares, ...), got {type(model).__name__}; "
                            "take an implicit model over with from_implicit first")
        self.model = model
        self.approximate_similar_items = bool(approximate_similar_items)
        self.approximate_recommend = bool(approximate_recommend)
        self.forgotten_users = np.zeros(0, np.int64)
        self.forgotten_items = np.zeros(0, np.int64)
        self.recommend_index = None
        self.similar_items_index = None
        self._indexed = None  # the item factor rows the indexes hold
        self._in_index = None  # which of them they hold (forgotten ones not)
        self.last_update = {"moved": 0, "rebuilt": False, "seconds": 0.0}

    # ------------------------------------------------------------ backend

    def _make_slot(self, kind):
        """A new, empty :class:`Slot` (``kind`` "recommend" or "similar")."""
        raise NotImplementedError

    def _params(self):
        """The backend's constructor arguments (saved with the file)."""
        raise NotImplementedError

    # ------------------------------------------------------------ building

    def fit(self, Cui, show_progress=True, callback=None):
        """Fit the model on ``Cui`` (users x items), then build the indexes."""
        self.model.fit(Cui, show_progress=show_progress, callback=callback)
        self.forgotten_users = np.zeros(0, np.int64)
        self.forgotten_items = np.zeros(0, np.int64)
        self.rebuild()
        return self

    def _slots(self):
        return [(kind, slot) for kind, slot in (("recommend", self.recommend_index),
                                                ("similar", self.similar_items_index))
                if slot is not None]

    def _live_items(self, n_items):
        live = np.ones(n_items, dtype=bool)
        live[self.forgotten_items[self.forgotten_items < n_items]] = False
        return live

    def rebuild(self):
        """Build every index afresh from the model's current item factors.

        Clears what an updated index still carries from vectors it no
        longer holds (IVF centroids trained on them, HNSW links chosen with
        them): see docs/ann.md.
        """

        start = time.perf_counter()
        self.model._check_factors()
        Y = np.array(self.model.item_factors)
        ids = np.flatnonzero(self._live_items(len(Y)))
        for kind, wanted in (("recommend", self.approximate_recommend),
                             ("similar", self.approximate_similar_items)):
            slot = None
            if wanted:
                slot = self._make_slot(kind)
                slot.build(Y[ids], ids)
            setattr(self, "recommend_index" if kind == "recommend" else "similar_items_index",
                    slot)
        self._indexed = Y
        self._in_index = self._live_items(len(Y))
        self.last_update = {"moved": len(Y), "rebuilt": True,
                            "seconds": time.perf_counter() - start}
        return self

    def sync(self):
        """Bring the indexes in line with the model's factors now.

        The forwarding methods call it; call it yourself after changing the
        model directly (``wrapper.model.forget(...)``).  Rows that moved are
        removed and added again; when more than half moved, or a row no
        longer fits an index's structure, everything is rebuilt.
        """

        start = time.perf_counter()
        self.model._check_factors()
        if self._indexed is None:
            return self.rebuild()
        Y = self.model.item_factors
        moved = moved_rows(self._indexed, Y)
        live = self._live_items(len(Y))
        was_live = self._in_index
        # liveness changes (forgotten, or back through partial_fit) count as moves
        n_old = len(self._indexed)
        flipped = np.flatnonzero(live[:n_old] != was_live)
        moved = np.union1d(moved, flipped)
        if len(moved) > REBUILD_FRACTION * max(len(Y), 1):
            return self.rebuild()
        old = moved[moved < n_old]
        present = np.zeros(len(moved), dtype=bool)
        present[:len(old)] = was_live[old]  # moved is sorted: the old rows come first
        gone = moved[present & ~live[moved]]
        changed, present = moved[live[moved]], present[live[moved]]
        rows = np.asarray(Y[changed])
        if not all(slot.accepts(rows) for _, slot in self._slots()):
            return self.rebuild()
        for _, slot in self._slots():
            if len(gone):
                slot.remove(gone)
            if len(changed):
                slot.update(rows, changed, present)
        indexed = self._indexed
        if len(Y) > len(indexed):
            indexed = np.concatenate([indexed, np.zeros((len(Y) - len(indexed), Y.shape[1]),
                                                        indexed.dtype)])
        indexed[moved] = Y[moved]
        self._indexed, self._in_index = indexed, live
        self.last_update = {"moved": len(moved), "rebuilt": False,
                            "seconds": time.perf_counter() - start}
        return self

    # ------------------------------------------------------------ forgetting

    def forget(self, userids, itemids=None, **options):
        """The model's ``forget`` (pairs), then :meth:`sync`; returns its report."""
        report = self.model.forget(userids, itemids, **options)
        return self._after(report)

    def forget_users(self, userids, **options):
        """The model's ``forget_users``; the users are never returned again."""
        report = self.model.forget_users(userids, **options)
        users, _ = check_ids(userids, self.model.user_factors.shape[0], "userids")
        self.forgotten_users = np.union1d(self.forgotten_users, users)
        return self._after(report)

    def forget_items(self, itemids, **options):
        """The model's ``forget_items``; the items leave the indexes."""
        report = self.model.forget_items(itemids, **options)
        items, _ = check_ids(itemids, self.model.item_factors.shape[0], "itemids")
        self.forgotten_items = np.union1d(self.forgotten_items, items)
        return self._after(report)

    def partial_fit(self, user_items_delta, **options):
        """The model's ``partial_fit``; users and items given interactions
        again stop counting as forgotten."""
        report = self.model.partial_fit(user_items_delta, **options)
        delta = sp.csr_matrix(user_items_delta)
        delta.eliminate_zeros()
        users = np.flatnonzero(np.diff(delta.indptr))
        items = np.unique(delta.indices)
        self.forgotten_users = np.setdiff1d(self.forgotten_users, users)
        self.forgotten_items = np.setdiff1d(self.forgotten_items, items)
        return self._after(report)

    def settle(self, **options):
        """The model's ``settle``; a washout rebuilds the indexes."""
        report = self.model.settle(**options)
        return self._after(report)

    def _after(self, report):
        washed = getattr(report, "washout", 0) or \
            (getattr(report, "rows_solved_by_phase", None) or {}).get("washout", 0)
        if washed:
            self.rebuild()
        else:
            self.sync()
        return report
