"""Serving from factors: scores, top-N lists, similar items and users,
recalculated rows, as implicit 0.7's matrix-factorisation base does.

:class:`FactorModel` needs only ``user_factors``, ``item_factors``, the
hyperparameters and an ``objective`` (for recalculated rows); training and
forgetting live in the estimators (:mod:`fastunlearn.models`) built on it.
"""
import numpy as np
import scipy.sparse as sp

from . import objective as obj
from .config import effective_n_threads, single_threaded_blas
from .ranking import normalized, top_n
from .storage import TrainingData
from .validation import (
    ANY_ID,
    NotFittedError,
    check_ids,
    check_positive_int,
    check_user_items,
)


class FactorModel:
    """What every estimator serves with, from its factors alone."""

    def _threads(self):
        return effective_n_threads(self.num_threads)

    def _ranking_threads(self, n_queries):
        # a handful of queries is one block of work: threads (and the BLAS
        # thread-limit switch, ~0.5 ms) would cost more than they save
        return 1 if n_queries <= 16 else self._threads()

    def _check_factors(self):
        """Require factors (enough to serve), as implicit does."""
        if getattr(self, "user_factors", None) is None or \
                getattr(self, "item_factors", None) is None:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit() or from_factors() first"
            )

    def predict(self, userids, itemids):
        """Scores ``x_u . y_i`` for paired arrays of user and item ids."""
        self._check_factors()
        u, _ = check_ids(userids, self.user_factors.shape[0], "userids")
        i, _ = check_ids(itemids, self.item_factors.shape[0], "itemids")
        if u.shape != i.shape:
            raise ValueError(f"userids and itemids must pair up, got {u.size} and {i.size} ids")
        return np.einsum("ij,ij->i", self.user_factors[u], self.item_factors[i])

    def recommend(self, userid, user_items, N=10, filter_already_liked_items=True,
                  filter_items=None, recalculate_user=False, items=None):
        """Top-``N`` items for one user or an array of users, as implicit 0.7.

        Parameters
        ----------
        userid : int or array of int
        user_items : scipy.sparse matrix
            One row per requested user (the items they interacted with);
            needed when ``filter_already_liked_items`` or ``recalculate_user``.
        N : int
        filter_already_liked_items : bool
            Leave out the items stored in the user's row of ``user_items``.
        filter_items : array of int, optional
            Items nobody gets.
        recalculate_user : bool
            Solve the user's factors from ``user_items`` (exactly) instead of
            using the stored ones; ``userid`` may then be any id, also one
            the model has never seen.
        items : array of int, optional
            Rank only these items (not combinable with ``filter_items``).

        Returns
        -------
        ids, scores : ndarray
            1-D for a scalar ``userid``, else 2-D (one row per user), with
            ``min(N, candidates)`` columns, best first; lists cut short by
            the filters end with id -1 and score ``-finfo(float32).max``.
        """
        self._check_factors()
        n_users, n_items = self.user_factors.shape[0], self.item_factors.shape[0]
        # a recalculated user is solved from its row: its id indexes nothing
        users, scalar = check_ids(userid, ANY_ID if recalculate_user else n_users, "userid")
        N = check_positive_int(N, "N", minimum=0)
        rows = None
        if filter_already_liked_items or recalculate_user:
            rows = self._query_rows(user_items, len(users), n_items)
        if recalculate_user:
            queries = self._recalculate("users", rows)
        else:
            queries = self.user_factors[users]
        candidates, item_ids, excluded = self._candidates(
            self.item_factors, items, filter_items, "items", "filter_items")
        skip = None
        if filter_already_liked_items:
            skip = rows if item_ids is None else _restrict_columns(rows, item_ids, n_items)
        threads = self._ranking_threads(len(queries))
        with single_threaded_blas():
            ids, scores = top_n(queries, candidates, N, skip=skip, excluded=excluded,
                                num_threads=threads)
        if item_ids is not None:
            ids = np.where(ids >= 0, item_ids[np.maximum(ids, 0)], -1).astype(np.int32)
        return (ids[0], scores[0]) if scalar else (ids, scores)

    def recalculate_user(self, userid, user_items):
        """Factors solved exactly from ``user_items`` rows, not stored.

        ``userid`` (an id or an array of them, one per row) only sets the
        shape of the result, so new users work too.
        """
        self._check_factors()
        users, scalar = check_ids(userid, ANY_ID, "userid")
        rows = self._query_rows(user_items, len(users), self.item_factors.shape[0])
        out = self._recalculate("users", rows)
        return out[0] if scalar else out

    def recalculate_item(self, itemid, item_users):
        """Factors solved exactly from ``item_users`` rows (items x users), not stored."""
        self._check_factors()
        items, scalar = check_ids(itemid, ANY_ID, "itemid")
        rows = self._query_rows(item_users, len(items), self.user_factors.shape[0],
                                name="item_users")
        out = self._recalculate("items", rows)
        return out[0] if scalar else out

    def similar_items(self, itemid, N=10, recalculate_item=False, item_users=None,
                      filter_items=None, items=None):
        """Items most similar to ``itemid`` by cosine of their factors.

        Returns ``(ids, scores)`` shaped like :meth:`recommend`'s; the item
        itself is included (score 1), as in implicit.  With
        ``recalculate_item`` the query items are solved from ``item_users``
        and ``itemid`` may be any id.
        """
        self._check_factors()
        ids, scalar = check_ids(itemid, ANY_ID if recalculate_item else self.item_factors.shape[0],
                                "itemid")
        if recalculate_item:
            rows = self._query_rows(item_users, len(ids), self.user_factors.shape[0],
                                    name="item_users")
            queries = self._recalculate("items", rows)
        else:
            queries = self.item_factors[ids]
        return self._similar(queries, self.item_factors, N, filter_items, items, scalar,
                             "items", "filter_items")

    def similar_users(self, userid, N=10, filter_users=None, users=None):
        """Users most similar to ``userid`` by cosine of their factors."""
        self._check_factors()
        ids, scalar = check_ids(userid, self.user_factors.shape[0], "userid")
        return self._similar(self.user_factors[ids], self.user_factors, N, filter_users,
                             users, scalar, "users", "filter_users")

    def _similar(self, queries, factors, N, filter_ids, subset, scalar, subset_name,
                 filter_name):
        N = check_positive_int(N, "N", minimum=0)
        candidates, cand_ids, excluded = self._candidates(
            factors, subset, filter_ids, subset_name, filter_name)
        threads = self._ranking_threads(len(queries))
        with single_threaded_blas():
            ids, scores = top_n(normalized(queries), normalized(candidates), N,
                                excluded=excluded, num_threads=threads)
        if cand_ids is not None:
            ids = np.where(ids >= 0, cand_ids[np.maximum(ids, 0)], -1).astype(np.int32)
        return (ids[0], scores[0]) if scalar else (ids, scores)

    @staticmethod
    def _candidates(factors, subset, filter_ids, subset_name, filter_name):
        """(candidate factors, their ids or None, excluded positions or None)."""
        n = factors.shape[0]
        if subset is not None:
            if filter_ids is not None and len(np.atleast_1d(filter_ids)):
                raise ValueError(f"can't set both {subset_name} and {filter_name}")
            ids, _ = check_ids(subset, n, subset_name)
            ids = np.unique(ids)
            return factors[ids], ids, None
        excluded = None
        if filter_ids is not None:
            excluded, _ = check_ids(filter_ids, n, filter_name)
        return factors, None, excluded

    @staticmethod
    def _query_rows(matrix, n_rows, n_cols, name="user_items"):
        if matrix is None:
            raise ValueError(
                f"{name} is required when filter_already_liked_items or recalculate_user "
                "is set: pass the rows of the requested users, e.g. model.user_items[userids]"
            )
        if not sp.issparse(matrix):
            raise ValueError(f"{name} needs to be a scipy.sparse matrix, got {type(matrix).__name__}")
        if matrix.shape[0] != n_rows:
            raise ValueError(
                f"{name} must contain 1 row for every requested id: {n_rows} ids, "
                f"{matrix.shape[0]} rows"
            )
        if matrix.shape[1] != n_cols:
            raise ValueError(f"{name} has {matrix.shape[1]} columns, the model has {n_cols}")
        return check_user_items(matrix, np.float64, name=name)

    def _recalculate(self, side, rows):
        """Solve fresh factors for query rows against the fixed other side."""
        fresh = np.zeros((rows.shape[0], self.factors), dtype=self.dtype)
        rows = rows.astype(self.dtype)
        if side == "users":
            query_data, X, Y = TrainingData(rows), fresh, self.item_factors
        else:  # rows are items x users: they become the item-major side
            query_data, X, Y = TrainingData(rows.T.tocsr()), self.user_factors, fresh
        threads = self._threads()
        with single_threaded_blas():
            obj.solve_rows(self.objective, query_data, X, Y, side, obj.all_rows(len(fresh)),
                           use_cg=False, cg_steps=0, num_threads=threads)
        return fresh

    def _norms(self, side):
        """Row norms of one side's factors, zeros replaced by 1e-10 (as implicit).

        Kept until the factors are replaced, or changed by a method of this
        model; like implicit's, not after in-place edits by the caller.
        """
        self._check_factors()
        F = self.user_factors if side == "users" else self.item_factors
        kept = self.__dict__.setdefault("_norms_kept", {}).get(side)
        if kept is None or kept[0] is not F or kept[1] != F.shape:
            norms = np.linalg.norm(F, axis=-1)
            norms[norms == 0] = 1e-10
            kept = self._norms_kept[side] = (F, F.shape, norms)
        return kept[2]

    def _factors_changed(self):
        self.__dict__.pop("_norms_kept", None)

    def __getstate__(self):
        # the norms are a cache (holding the factors they belong to): never pickled
        state = self.__dict__.copy()
        state.pop("_norms_kept", None)
        return state

    @property
    def user_norms(self):
        """Norm of every user's factors (1e-10 for zero rows), as implicit's."""
        return self._norms("users")

    @property
    def item_norms(self):
        """Norm of every item's factors (1e-10 for zero rows), as implicit's."""
        return self._norms("items")

    @property
    def YtY(self):
        """Gram matrix ``Y^T Y`` of the item factors, in their dtype."""
        self._check_factors()
        return self.item_factors.T.dot(self.item_factors)

    @property
    def XtX(self):
        """Gram matrix ``X^T X`` of the user factors, in their dtype."""
        self._check_factors()
        return self.user_factors.T.dot(self.user_factors)

    def to_gpu(self):
        """Raises ValueError: this build has no GPU support (as implicit without CUDA)."""
        raise ValueError(f"fastunlearn has no GPU support: {type(self).__name__} runs on the "
                         "CPU only (use_gpu=False)")

    def to_cpu(self):
        """An independent copy of this model (it already runs on the CPU)."""
        import copy

        return copy.deepcopy(self)


def _restrict_columns(rows, keep, n_cols):
    """Rows re-indexed to the positions of ``keep`` (other columns dropped)."""
    position = np.full(n_cols, -1, dtype=np.int64)
    position[keep] = np.arange(len(keep))
    mapped = position[rows.indices]
    mask = mapped >= 0
    # kept entries per row from a running count (np.add.reduceat fails on
    # trailing empty rows, whose offsets equal nnz)
    kept = np.concatenate([[0], np.cumsum(mask)])
    indptr = kept[rows.indptr]
    return sp.csr_matrix((rows.data[mask], mapped[mask], indptr), shape=(rows.shape[0], len(keep)))


def fit_columns(matrix, n_cols, name):
    """``matrix`` with ``n_cols`` columns: implicit reads rows narrower than
    the model (their ids are all valid), so this layer does too."""
    if not sp.issparse(matrix) or matrix.ndim != 2 or matrix.shape[1] == n_cols:
        return matrix
    csr = sp.csr_matrix(matrix)
    if csr.nnz and csr.indices.max() >= n_cols:
        from .validation import IdOutOfRangeError

        raise IdOutOfRangeError(f"{name} holds ids beyond the model's {n_cols} columns")
    return sp.csr_matrix((csr.data, csr.indices, csr.indptr), shape=(csr.shape[0], n_cols))
