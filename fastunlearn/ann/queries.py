"""The serving side of :class:`~fastunlearn.ann.indexed.IndexedModel`:
``recommend``, ``similar_items`` and ``similar_users`` through the
indexes, with implicit's filters, and never a forgotten user or item."""
import numpy as np
import scipy.sparse as sp

from ..ranking import PAD_SCORE
from ..validation import ANY_ID, check_ids, check_positive_int
from .base import unit_rows


class IndexQueries:
    """Queries for an :class:`~fastunlearn.ann.indexed.IndexedModel`."""

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
