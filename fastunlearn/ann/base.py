"""An approximate-nearest-neighbour index that forgets with its model.

:class:`IndexedModel` wraps a fastunlearn model and serves ``recommend`` and
``similar_items`` from indexes of the item factors (as implicit's
``implicit.ann`` models), and forwards ``forget``, ``forget_users``,
``forget_items``, ``partial_fit`` and ``settle`` to the model, after which
it brings the indexes in line with the model's factors: rows that moved are
removed and added again, forgotten items are taken out, and a request that
moved most rows (a washout) rebuilds.  docs/ann.md says what an index
structure can still remember and when to call :meth:`IndexedModel.rebuild`.

The backends (:mod:`.faiss_index`, :mod:`.hnsw_index`) supply one
:class:`Slot` per index: what it stores for an item factor row, how it is
built, updated, searched and serialised.
"""
import io
import json
import warnings

import numpy as np
import scipy.sparse as sp

from ..persistence import ModelFileError, write_arrays
from ..ranking import PAD_SCORE
from ..validation import ANY_ID, check_ids, check_positive_int

FORMAT_VERSION = 1
# A request that moved more than this fraction of the indexed rows rebuilds
# the indexes instead of updating them row by row (a washout moves all).
REBUILD_FRACTION = 0.5


def moved_rows(before, after):
    """Rows of ``after`` that differ from ``before`` (or are new).

    The one place that finds what a request moved: a row-wise comparison of
    the factors the index holds with the model's, linear in their size and
    far cheaper than an index rebuild.  When the engine reports the rows a
    request solved, this can read that report instead.
    """
    n = min(len(before), len(after))
    changed = np.flatnonzero((before[:n] != after[:n]).any(axis=1))
    return np.concatenate([changed, np.arange(n, len(after))]).astype(np.int64)


class Slot:
    """One index over item ids (the interface a backend implements).

    ``vectors(rows)`` maps factor rows to what the index stores (``remove``
    must not keep the removed vectors, in memory or in ``to_bytes``);
    ``queries(rows)`` maps query rows likewise; ``search`` returns
    ``(ids, scores)`` with id -1 where it found fewer; ``accepts(rows)`` is
    False when rows do not fit the current structure (a rebuild is needed).
    """

    def build(self, rows, ids):
        raise NotImplementedError

    def remove(self, ids):
        raise NotImplementedError

    def add(self, rows, ids):
        raise NotImplementedError

    def update(self, rows, ids, present):
        """Hold ``rows`` under ``ids``; ``present`` marks the ids it holds
        now (removed first, then added again)."""
        if present.any():
            self.remove(ids[present])
        self.add(rows, ids)

    def accepts(self, rows):
        return True

    def search(self, queries, k):
        raise NotImplementedError

    def stored(self, ids):
        raise NotImplementedError

    def vectors(self, rows):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    def to_bytes(self):
        raise NotImplementedError

    def load_bytes(self, data, n_ids):
        raise NotImplementedError


# Room above the largest item norm when an inner-product index is built: a
# moved row up to this much longer is added in place; a longer one rebuilds.
NORM_HEADROOM = 1.2


def norm_bound(rows):
    """The norm ``B`` every augmented row gets (docs/ann.md)."""
    top = float(np.linalg.norm(rows, axis=1).max()) if len(rows) else 0.0
    return max(top * NORM_HEADROOM, 1e-6)


def augmented(rows, bound):
    """``[y, sqrt(B^2 - |y|^2)]`` per row: every row of norm ``B``, so that
    ranking by inner product with ``[x, 0]`` (the model's score) is ranking
    by angle, which both index structures partition and link by."""
    rows = np.asarray(rows, dtype=np.float32)
    norms2 = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    extra = np.sqrt(np.maximum(bound * bound - norms2, 0.0))
    return np.hstack([rows, extra[:, None].astype(np.float32)])


def fits_bound(rows, bound):
    return not len(rows) or float(np.linalg.norm(rows, axis=1).max()) <= bound


def unit_rows(rows):
    """Rows scaled to unit length, zero rows kept zero (the cosine index)."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1)
    norms[norms == 0] = 1e-10
    return (rows / norms[:, None]).astype(np.float32)


class IndexedModel:
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
        import time

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
        import time

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

    # ------------------------------------------------------------ serving

    def recommend(self, userid, user_items, N=10, filter_already_liked_items=True,
                  filter_items=None, recalculate_user=False, items=None):
        """Top-``N`` items for one user or an array of users (implicit's signature).

        Served from the inner-product index (``approximate_recommend``),
        which returns up to ``N`` plus the filtered items and keeps the best
        ``N`` that pass the filters.  ``items=`` (and
        ``approximate_recommend=False``) rank exactly with the model.
        """
        model = self.model
        model._check_factors()
        n_users, n_items = model.user_factors.shape[0], model.item_factors.shape[0]
        N = check_positive_int(N, "N", minimum=0)
        users, scalar = check_ids(userid, ANY_ID if recalculate_user else n_users, "userid")
        if items is not None or self.recommend_index is None:
            if items is not None:
                items = self._candidates(items, filter_items, n_items)
                width = min(N, len(items))
                if len(items) == 0:
                    return _empty(len(users), width, scalar)
                kwargs = {"items": items}
            else:
                width = N
                kwargs = {"filter_items": self._item_filter(filter_items, n_items)}
            ids, scores = model.recommend(userid, user_items, N=N,
                                          filter_already_liked_items=filter_already_liked_items,
                                          recalculate_user=recalculate_user, **kwargs)
            return _widen(ids, scores, width)
        excluded = self._item_filter(filter_items, n_items)
        liked = None
        if filter_already_liked_items or recalculate_user:
            liked = model._query_rows(sp.csr_matrix(user_items) if sp.issparse(user_items)
                                      else user_items, len(users), n_items)
        if recalculate_user:
            queries = model.recalculate_user(users, liked)
        else:
            queries = model.user_factors[users]
        if not filter_already_liked_items:
            liked = None
        ids, scores = self._search_filtered(self.recommend_index, queries, N, excluded, liked)
        return (ids[0], scores[0]) if scalar else (ids, scores)

    def similar_items(self, itemid, N=10, recalculate_item=False, item_users=None,
                      filter_items=None, items=None):
        """Items most similar to ``itemid`` by cosine (implicit's signature),
        from the cosine index; ``items=`` ranks exactly with the model."""
        model = self.model
        model._check_factors()
        n_items = model.item_factors.shape[0]
        N = check_positive_int(N, "N", minimum=0)
        ids, scalar = check_ids(itemid, ANY_ID if recalculate_item else n_items, "itemid")
        if items is not None or self.similar_items_index is None:
            if items is not None:
                items = self._candidates(items, filter_items, n_items)
                if len(items) == 0:
                    return _empty(len(ids), N, scalar)
                kwargs = {"items": items}
            else:
                kwargs = {"filter_items": self._item_filter(filter_items, n_items)}
            got = model.similar_items(itemid, N=N, recalculate_item=recalculate_item,
                                      item_users=item_users, **kwargs)
            return _widen(*got, N)
        if recalculate_item:
            queries = model.recalculate_item(ids, item_users)
        else:
            queries = model.item_factors[ids]
        excluded = self._item_filter(filter_items, n_items)
        found, scores = self._search_filtered(self.similar_items_index, unit_rows(queries), N,
                                              excluded, None)
        return (found[0], scores[0]) if scalar else (found, scores)

    def _candidates(self, items, filter_items, n_items):
        """The requested ``items`` (validated), less the forgotten ones;
        ``filter_items`` cannot be given with them."""
        if filter_items is not None and len(np.atleast_1d(filter_items)):
            raise ValueError("can't set both items and filter_items")
        items, _ = check_ids(items, n_items, "items")
        return np.setdiff1d(items, self.forgotten_items)

    def similar_users(self, userid, N=10, filter_users=None, users=None):
        """Users most similar to ``userid`` by cosine, exactly (the model's,
        forgotten users left out): users are not indexed."""
        model = self.model
        model._check_factors()
        n_users = model.user_factors.shape[0]
        N = check_positive_int(N, "N", minimum=0)
        ids, scalar = check_ids(userid, n_users, "userid")
        if users is not None:
            if filter_users is not None and len(np.atleast_1d(filter_users)):
                raise ValueError("can't set both users and filter_users")
            users, _ = check_ids(users, n_users, "users")
            users = np.setdiff1d(users, self.forgotten_users)
            if len(users) == 0:
                return _empty(len(ids), N, scalar)
            got = model.similar_users(userid, N=N, users=users)
        else:
            excluded = np.zeros(0, np.int64) if filter_users is None else \
                check_ids(filter_users, n_users, "filter_users")[0]
            got = model.similar_users(userid, N=N,
                                      filter_users=np.union1d(excluded, self.forgotten_users))
        return _widen(*got, N)

    def _item_filter(self, filter_items, n_items):
        """``filter_items`` (checked) together with the forgotten items."""
        excluded = np.zeros(0, np.int64) if filter_items is None else \
            check_ids(filter_items, n_items, "filter_items")[0]
        return np.union1d(excluded, self.forgotten_items)

    def _search_filtered(self, slot, queries, N, excluded, liked):
        """Best ``N`` per query from ``slot`` that are neither ``excluded``
        nor stored in the query's row of ``liked`` (CSR or None).

        Each query asks for ``N`` plus what its filters could take out;
        queries are searched in groups of similar demand (sorted by their
        liked count), so one heavy user does not widen everyone's search.
        """
        nq = len(queries)
        ids_out = np.full((nq, N), -1, dtype=np.int64)
        scores_out = np.full((nq, N), PAD_SCORE, dtype=np.float32)
        if nq == 0 or N == 0 or len(slot) == 0:
            return ids_out, scores_out
        counts = np.zeros(nq, np.int64) if liked is None else np.diff(liked.indptr)
        order = np.argsort(counts, kind="stable")
        n_items = int(self.model.item_factors.shape[0])
        blocked = np.zeros(n_items + 1, dtype=bool)  # last slot: id -1
        blocked[excluded] = True
        blocked[-1] = True
        for start in range(0, nq, 1024):
            group = order[start:start + 1024]
            k = min(N + len(excluded) + int(counts[group].max()), len(slot))
            found, scores = slot.search(np.ascontiguousarray(queries[group], np.float32), k)
            found = found.astype(np.int64)
            drop = blocked[np.where(found < 0, n_items, found)]
            if liked is not None:
                drop |= _stored_in_rows(liked, group, found)
            keep = ~drop
            rank = np.cumsum(keep, axis=1) - 1
            take = keep & (rank < N)
            r, c = np.nonzero(take)
            ids_out[group[r], rank[r, c]] = found[r, c]
            scores_out[group[r], rank[r, c]] = scores[r, c]
        return ids_out, scores_out

    # ------------------------------------------------------------ files

    def save(self, file):
        """Write the model, the indexes and what they hold to one ``.npz``.

        ``file`` is a path (".npz" appended when missing; written
        atomically) or a writable binary file object.
        """
        self.model._check_factors()
        buffer = io.BytesIO()
        self.model.save(buffer)
        arrays = {
            "format_version": np.array(FORMAT_VERSION, np.int64),
            "backend": np.array(self._backend),
            "params": np.array(json.dumps(self._params())),
            "model": np.frombuffer(buffer.getvalue(), np.uint8),
            "indexed": np.asarray(self._indexed),
            "forgotten_users": self.forgotten_users,
            "forgotten_items": self.forgotten_items,
        }
        for kind, slot in self._slots():
            arrays[f"index_{kind}"] = np.frombuffer(slot.to_bytes(), np.uint8)
        return write_arrays(arrays, file)

    @classmethod
    def load(cls, file, on_mismatch="rebuild"):
        """Read a file written by :meth:`save`.

        The indexes must hold exactly the model's current item factors
        (every stored vector is compared); when they do not (a file edited,
        or assembled from parts that do not belong together),
        ``on_mismatch="rebuild"`` rebuilds them from the model with a
        warning and ``"raise"`` raises :class:`~fastunlearn.ModelFileError`.
        The model part is checked as :func:`fastunlearn.load` checks it;
        the index bytes are read by the index library: load only files you
        trust (or pass ``on_mismatch="rebuild"`` after deleting them).
        """
        from .. import load as load_model

        if on_mismatch not in ("rebuild", "raise"):
            raise ValueError(f"on_mismatch must be 'rebuild' or 'raise', got {on_mismatch!r}")
        name = getattr(file, "name", file)
        try:
            with np.load(file, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except Exception as exc:  # noqa: BLE001 - any unreadable file
            raise ModelFileError(f"{name}: not an index file ({exc})") from exc
        for key in ("format_version", "backend", "params", "model", "indexed",
                    "forgotten_users", "forgotten_items"):
            if key not in arrays:
                raise ModelFileError(f"{name}: not an index file (no '{key}')")
        if int(arrays["format_version"]) != FORMAT_VERSION:
            raise ModelFileError(f"{name}: index file version {int(arrays['format_version'])}")
        if str(arrays["backend"]) != cls._backend:
            raise ModelFileError(f"{name}: holds a {arrays['backend']} index, not "
                                 f"{cls.__name__}'s {cls._backend}")
        model = load_model(io.BytesIO(arrays["model"].tobytes()))
        self = cls(model, **json.loads(str(arrays["params"])))
        self.forgotten_users = arrays["forgotten_users"].astype(np.int64)
        self.forgotten_items = arrays["forgotten_items"].astype(np.int64)
        problem = self._restore(arrays)
        if problem is not None:
            if on_mismatch == "raise":
                raise ModelFileError(f"{name}: {problem}")
            warnings.warn(f"{name}: {problem}; rebuilding the indexes from the model",
                          RuntimeWarning, stacklevel=2)
            self.rebuild()
        return self

    def _restore(self, arrays):
        """Read the indexes; None when they hold the model's rows, else why not."""
        Y = np.asarray(self.model.item_factors)
        indexed = arrays["indexed"]
        if indexed.shape != Y.shape or len(moved_rows(indexed, Y)):
            return "the indexes do not hold the model's item factors"
        self._indexed = Y.copy()
        self._in_index = self._live_items(len(Y))
        live = np.flatnonzero(self._in_index)
        for kind, wanted in (("recommend", self.approximate_recommend),
                             ("similar", self.approximate_similar_items)):
            key = f"index_{kind}"
            if wanted != (key in arrays):
                return f"'{key}' does not match approximate_{kind}"
            if not wanted:
                continue
            slot = self._make_slot(kind)
            try:
                slot.load_bytes(arrays[key].tobytes(), len(Y))
            except Exception as exc:  # noqa: BLE001 - the library's own error
                return f"'{key}' is not readable ({exc})"
            if len(slot) != len(live) or not np.array_equal(slot.stored(live),
                                                             slot.vectors(Y[live])):
                return f"'{key}' does not hold the model's item factors"
            setattr(self, "recommend_index" if kind == "recommend" else "similar_items_index",
                    slot)
        return None


def _stored_in_rows(rows, group, found):
    """``found[j, c]`` is stored in row ``group[j]`` of CSR ``rows``."""
    n_cols = rows.shape[1] + 1
    sub = rows[group]
    keys = np.repeat(np.arange(len(group), dtype=np.int64), np.diff(sub.indptr)) * n_cols \
        + sub.indices
    keys.sort()
    probe = np.arange(len(group), dtype=np.int64)[:, None] * n_cols + \
        np.where(found < 0, n_cols - 1, found)
    at = np.minimum(np.searchsorted(keys, probe), max(len(keys) - 1, 0))
    return (keys[at] == probe) if len(keys) else np.zeros(found.shape, bool)


def _widen(ids, scores, width):
    """Exact results (model's) as ``width``-wide int64 / float32 lists."""
    ids, scores = np.asarray(ids), np.asarray(scores)
    scalar = ids.ndim == 1
    ids, scores = np.atleast_2d(ids), np.atleast_2d(scores)
    out_ids = np.full((ids.shape[0], width), -1, np.int64)
    out_scores = np.full((ids.shape[0], width), PAD_SCORE, np.float32)
    w = min(width, ids.shape[1])
    out_ids[:, :w] = ids[:, :w]
    out_scores[:, :w] = np.where(ids[:, :w] >= 0, scores[:, :w], PAD_SCORE)
    return (out_ids[0], out_scores[0]) if scalar else (out_ids, out_scores)


def _empty(n, width, scalar):
    ids = np.full((n, width), -1, np.int64)
    scores = np.full((n, width), PAD_SCORE, np.float32)
    return (ids[0], scores[0]) if scalar else (ids, scores)
