"""Offline evaluation: a seeded per-user holdout split, top-k ranking metrics
for implicit models and rating errors for explicit ones.

implicit 0.7's evaluation API (``train_test_split``, ``precision_at_k``,
``mean_average_precision_at_k``, ``ndcg_at_k``, ``AUC_at_k``,
``ranking_metrics_at_k``) is importable from here with implicit's meaning
and results (:mod:`fastunlearn.implicit_evaluation`).  fastunlearn's own
split and metrics have their own names (``holdout_split``, ``macro_*``,
``per_user_metrics``, ``ranking_metrics``) and one protocol throughout:

* a user is evaluated when she has at least one *relevant* test item: a
  stored entry of her ``test`` row that is not also stored in her ``train``
  row (an item already in train is filtered out of the ranking and could
  never be recommended, so it is not counted);
* the ranking is over every item not stored in the user's ``train`` row
  (``recommend(..., filter_already_liked_items=True)`` with the train rows),
  computed by the compiled batched top-N of :mod:`fastunlearn.ranking`;
* per-user values are averaged with equal weight per user (macro average).

Per user ``u`` with top-k list ``L_u`` (best first, possibly shorter than
``k`` when fewer candidate items remain), relevant set ``T_u`` and
``h_u = |L_u & T_u|``:

=============  ==============================================================
precision@k    ``h_u / k``
recall@k       ``h_u / min(k, |T_u|)``: the per-user normalisation of
               implicit's ``ranking_metrics_at_k`` (whose "precision" is
               this quantity micro-averaged); it reaches 1 when the list is
               as good as it can be, also for users with more than ``k``
               test items
ndcg@k         binary relevance, ``DCG = sum_{r: L_u[r] in T_u} 1/log2(r+2)``
               (``r`` 0-based), divided by the ideal DCG of
               ``min(k, |T_u|)`` hits in the top positions
hit rate@k     ``[h_u >= 1]``
AUC            over the whole catalogue (not only the top k): the
               probability that a relevant item scores above an item that is
               in neither the user's train nor test row, ties counting half
               (Mann-Whitney with mid-ranks); users with no such negative
               item get NaN and are left out of the mean
=============  ==============================================================
"""
import numpy as np
import scipy.sparse as sp

from .pairs import (auc_from_ranks, canonical, check_matrix, check_model, is_stored, pair_keys,
                    row_of)
from . import implicit_evaluation
from .implicit_evaluation import (  # noqa: F401 - implicit's API, re-exported
    AUC_at_k,
    mean_average_precision_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics_at_k,
    train_test_split,
)
from .ranking import count_below
from .validation import check_fraction, check_ids, check_positive_int

__all__ = [
    "holdout_split",
    "macro_auc",
    "macro_hit_rate_at_k",
    "macro_ndcg_at_k",
    "macro_precision_at_k",
    "macro_recall_at_k",
    "mae",
    "per_user_metrics",
    "ranking_metrics",
    "rmse",
    "summarise",
    *implicit_evaluation.__all__,  # implicit 0.7's API, under its names
]

# Entries of one dense users x items score block, scored and sorted in place
# (AUC here, rank percentiles in audit): 32 MiB in float64.
_SCORE_BLOCK_ENTRIES = 1 << 22
# Stored test entries predicted per chunk by rmse/mae.
_PREDICT_CHUNK = 1 << 20


# ----------------------------------------------------------------------------
# split
# ----------------------------------------------------------------------------
def holdout_split(user_items, test_fraction=0.2, *, min_interactions=5, seed=0):
    """Seeded per-user holdout split of an interaction matrix.

    Not implicit's :func:`train_test_split` (which sends each entry to
    *train* with a probability, users unbalanced): here ``test_fraction``
    of every user's entries go to *test*.

    Every user (row) with at least ``min_interactions`` stored entries sends
    ``round(test_fraction * n_u)`` of her ``n_u`` entries, chosen uniformly
    at random, to the test matrix (rounded half up, at least 1 and at most
    ``n_u - 1``, so she always keeps a training entry); users with less
    history stay whole in train.

    Parameters
    ----------
    user_items : scipy.sparse matrix (n_users, n_items)
        Duplicate entries are summed first; stored zeros count as entries.
    test_fraction : float in (0, 1)
    min_interactions : int >= 2, default 5
        With the default fraction 0.2 a user of 5 entries gives 1 to test and
        keeps 4 to train on; sparser users would be left with too little
        history for a meaningful per-user score.
    seed : int, numpy Generator or None
        The same seed on the same matrix gives the same split.

    Returns
    -------
    train, test : scipy.sparse.csr_matrix
        Shape, dtype and values of the input, canonical (sorted indices, no
        duplicates), disjoint, with ``train + test`` equal to the input.
    """
    csr = canonical(user_items, "user_items")
    test_fraction = check_fraction(test_fraction, "test_fraction")
    min_interactions = check_positive_int(min_interactions, "min_interactions", minimum=2)
    rng = np.random.default_rng(seed)

    counts = np.diff(csr.indptr).astype(np.int64)
    n_test = np.floor(test_fraction * counts + 0.5).astype(np.int64)
    n_test = np.clip(n_test, 1, np.maximum(counts - 1, 1))
    n_test[counts < min_interactions] = 0

    # A random key per entry; the rank of the key within the row picks the
    # n_test[u] entries of row u that go to test.
    row = row_of(csr)
    key = rng.random(csr.nnz)
    order = np.lexsort((key, row))  # by row, then key
    rank = np.arange(csr.nnz, dtype=np.int64) - csr.indptr[row[order]]
    to_test = np.empty(csr.nnz, dtype=bool)
    to_test[order] = rank < n_test[row[order]]
    return _select(csr, ~to_test), _select(csr, to_test)


def _select(csr, keep):
    """The stored entries of canonical ``csr`` where ``keep``, as canonical CSR."""
    row_counts = np.bincount(row_of(csr)[keep], minlength=csr.shape[0])
    indptr = np.zeros(csr.shape[0] + 1, dtype=csr.indptr.dtype)
    np.cumsum(row_counts, out=indptr[1:])
    out = sp.csr_matrix((csr.data[keep], csr.indices[keep], indptr), shape=csr.shape)
    out.has_sorted_indices = True
    out.has_canonical_format = True
    return out


# ----------------------------------------------------------------------------
# ranking metrics (implicit models)
# ----------------------------------------------------------------------------
_RANKING_KEYS = ("precision", "recall", "ndcg", "hit_rate", "auc")


def per_user_metrics(model, train, test, k=10, *, users=None, batch_size=4096, with_auc=True):
    """Ranking metrics at ``k`` of every evaluated user (see the module docstring).

    Parameters
    ----------
    model : ImplicitALS (or any fitted fastunlearn model)
    train : scipy.sparse matrix (n_users, n_items)
        Interactions filtered out of each user's ranking (the training data).
    test : scipy.sparse matrix (n_users, n_items)
        Held-out interactions: the relevant items.
    k : int >= 1
    users : array of int, optional
        Restrict the evaluation to these user ids (deduplicated and sorted);
        by default every user.  Users without a relevant test item are
        dropped either way.
    batch_size : int >= 1
        Users ranked per call of the compiled top-N (bounds memory).
    with_auc : bool
        Also compute ``auc``, which scores and sorts every item of every
        evaluated user (the top-k metrics only need a bounded heap).

    Returns
    -------
    dict of ndarray, all aligned with ``"users"``
        ``users`` (int64 ids, ascending), ``precision``, ``recall``,
        ``ndcg``, ``hit_rate`` (0 or 1), ``auc`` (NaN where undefined, and
        everywhere without ``with_auc``),
        ``n_test`` (relevant test items) and ``n_train`` (stored train
        entries): the last two allow comparing e.g. active and inactive users.
    """
    return _evaluate(model, train, test, k, users, batch_size, topn=True, with_auc=with_auc)


def ranking_metrics(model, train, test, k=10, *, users=None, batch_size=4096, with_auc=True):
    """Mean ranking metrics at ``k`` over the evaluated users.

    Parameters are those of :func:`per_user_metrics`.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``ndcg``, ``hit_rate``, ``auc`` (floats,
        NaN when no user is evaluated; ``auc`` averages the users where it is
        defined) and ``n_users`` (users evaluated).
    """
    per_user = _evaluate(model, train, test, k, users, batch_size, topn=True,
                         with_auc=with_auc)
    return summarise(per_user)


def macro_precision_at_k(model, train, test, k=10, **kwargs):
    """Mean over users of ``hits / k`` (see :func:`ranking_metrics`); implicit's
    :func:`precision_at_k` is another quantity (micro-averaged recall)."""
    return _single("precision", model, train, test, k, kwargs)


def macro_recall_at_k(model, train, test, k=10, **kwargs):
    """Mean over users of ``hits / min(k, |test_u|)`` (implicit's normalisation)."""
    return _single("recall", model, train, test, k, kwargs)


def macro_ndcg_at_k(model, train, test, k=10, **kwargs):
    """Mean over users of binary-relevance NDCG at ``k``."""
    return _single("ndcg", model, train, test, k, kwargs)


def macro_hit_rate_at_k(model, train, test, k=10, **kwargs):
    """Fraction of evaluated users with at least one relevant item in the top ``k``."""
    return _single("hit_rate", model, train, test, k, kwargs)


def macro_auc(model, train, test, **kwargs):
    """Mean per-user AUC of relevant test items against items in neither train nor test.

    Scores every item for every evaluated user (one gemm per block of users)
    and ranks them; see the module docstring.  Accepts ``users`` and
    ``batch_size`` as :func:`ranking_metrics`.
    """
    return _single("auc", model, train, test, 10, kwargs)


def _single(name, model, train, test, k, kwargs):
    unknown = set(kwargs) - {"users", "batch_size"}
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {sorted(unknown)}")
    per_user = _evaluate(model, train, test, k, kwargs.get("users"),
                         kwargs.get("batch_size", 4096),
                         topn=name != "auc", with_auc=name == "auc")
    return summarise(per_user)[name]


def summarise(per_user):
    """Means over users of :func:`per_user_metrics`' arrays (NaN AUCs of users
    without negatives left out), with ``n_users``."""
    out = {}
    n = len(per_user["users"])
    for key in _RANKING_KEYS:
        values = per_user[key]
        if key == "auc":
            values = values[~np.isnan(values)]
        out[key] = float(values.mean()) if len(values) else float("nan")
    out["n_users"] = n
    return out


def _evaluate(model, train, test, k, users, batch_size, *, topn, with_auc):
    n_users, n_items = check_model(model)
    k = check_positive_int(k, "k")
    batch_size = check_positive_int(batch_size, "batch_size")
    train = check_matrix(train, "train", (n_users, n_items))
    test = check_matrix(test, "test", (n_users, n_items))

    # Relevant items: test entries not in train (those are never ranked).
    train_keys = pair_keys(train)
    test_keys = pair_keys(test)
    test_keys = test_keys[~np.isin(test_keys, train_keys, assume_unique=True)]
    n_test = np.bincount(test_keys // n_items, minlength=n_users) if n_items else \
        np.zeros(n_users, np.int64)
    if users is None:
        users = np.arange(n_users, dtype=np.int64)
    else:
        users, _ = check_ids(users, n_users, "users")
        users = np.unique(users)
    users = users[n_test[users] > 0]
    n_eval = len(users)

    result = {
        "users": users,
        "precision": np.full(n_eval, np.nan),
        "recall": np.full(n_eval, np.nan),
        "ndcg": np.full(n_eval, np.nan),
        "hit_rate": np.full(n_eval, np.nan),
        "auc": np.full(n_eval, np.nan),
        "n_test": n_test[users].astype(np.int64),
        "n_train": np.diff(train.indptr)[users].astype(np.int64),
    }
    if n_eval == 0:
        return result

    if topn:
        discounts = 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)
        ideal = np.cumsum(discounts)
        for start in range(0, n_eval, batch_size):
            batch = users[start:start + batch_size]
            ids, _ = model.recommend(batch, train[batch], N=k, filter_already_liked_items=True)
            ids = np.asarray(ids, dtype=np.int64).reshape(len(batch), -1)
            rec_keys = batch[:, None] * n_items + np.maximum(ids, 0)
            hits = is_stored(test_keys, rec_keys) & (ids >= 0)
            n_hits = hits.sum(axis=1)
            n_rel = result["n_test"][start:start + batch_size]
            sl = slice(start, start + len(batch))
            result["precision"][sl] = n_hits / k
            result["recall"][sl] = n_hits / np.minimum(k, n_rel)
            result["ndcg"][sl] = ((hits @ discounts[:hits.shape[1]])
                                  / ideal[np.minimum(k, n_rel) - 1])
            result["hit_rate"][sl] = (n_hits > 0).astype(np.float64)

    if with_auc:
        block = min(batch_size, score_block_rows(n_items))
        for start in range(0, n_eval, block):
            batch = users[start:start + block]
            result["auc"][start:start + len(batch)] = _auc_block(
                model, batch, train, test_keys, n_items)
    return result


def score_block_rows(n_items):
    """Users per dense score block (at least 1), read at call time (tests patch it)."""
    return max(1, _SCORE_BLOCK_ENTRIES // max(n_items, 1))


def sorted_scores(model, batch, train, rows, items):
    """Sorted score rows of the users ``batch``, their ``train`` items at +inf.

    Returns ``(scores, values)``: ``scores[r]`` is user ``batch[r]``'s score
    of every item, ascending, and ``values`` the scores of the pairs
    ``(batch[rows], items)``, read before the masking (a queried train item
    keeps its true score).  Train items get +inf: above every finite score,
    they are never counted below a queried value, so a rank among the other
    items is a rank among the items outside train.
    """
    scores = model.user_factors[batch] @ model.item_factors.T  # one gemm
    values = scores[rows, items]
    tr = train[batch]
    scores[np.repeat(np.arange(len(batch)), np.diff(tr.indptr)), tr.indices] = np.inf
    scores.sort(axis=1)
    return scores, values


def _auc_block(model, batch, train, test_keys, n_items):
    """Per-user AUC for the users of ``batch`` (Mann-Whitney with mid-ranks)."""
    b = len(batch)
    n_candidates = n_items - np.diff(train.indptr)[batch]

    # Relevant (positive) items of the block: ``batch`` is ascending, so they
    # are one run of the sorted ``test_keys``.
    lo = np.searchsorted(test_keys, batch[0] * n_items)
    hi = np.searchsorted(test_keys, (batch[-1] + 1) * n_items)
    run = test_keys[lo:hi]
    run_users = run // n_items
    where = np.minimum(np.searchsorted(batch, run_users), b - 1)
    mine = batch[where] == run_users
    pos_rows, pos_items = where[mine], run[mine] - run_users[mine] * n_items
    scores, pos_scores = sorted_scores(model, batch, train, pos_rows, pos_items)
    n_pos = np.bincount(pos_rows, minlength=b)
    # The candidates are the relevant items (the test items outside train)
    # and the negatives (items in neither train nor test).
    n_neg = n_candidates - n_pos

    # 1-based mid-rank of each relevant item among its user's candidates:
    # (#scores below) + (#scores equal, itself included + 1) / 2.
    below = count_below(scores, pos_rows, pos_scores, strict=True)
    upto = count_below(scores, pos_rows, pos_scores, strict=False)
    midrank = below + (upto - below + 1) / 2.0
    rank_sum = np.bincount(pos_rows, weights=midrank, minlength=b)

    return auc_from_ranks(rank_sum, n_pos, n_neg)


# ----------------------------------------------------------------------------
# rating errors (explicit models)
# ----------------------------------------------------------------------------
def rmse(model, test):
    """Root mean squared error of ``model.predict`` over the stored entries of ``test``.

    Parameters
    ----------
    model : ExplicitALS (or any fitted fastunlearn model)
    test : scipy.sparse matrix (n_users, n_items)
        Held-out ratings; duplicates are summed first.

    Returns
    -------
    float
    """
    return rmse_of(stored_errors(model, test))


def mae(model, test):
    """Mean absolute error of ``model.predict`` over the stored entries of ``test``."""
    return mae_of(stored_errors(model, test))


def rmse_of(errors):
    return float(np.sqrt(np.mean(errors * errors)))


def mae_of(errors):
    return float(np.mean(np.abs(errors)))


def stored_errors(model, test):
    """Validated :func:`predict_errors`; raises when ``test`` stores nothing."""
    test = check_matrix(test, "test", check_model(model))
    if test.nnz == 0:
        raise ValueError("test has no stored entries: the error is undefined")
    return predict_errors(model, test)


def predict_errors(model, test):
    """Prediction minus rating (float64) at every stored entry of canonical ``test``."""
    rows = row_of(test)
    cols = test.indices.astype(np.int64)
    errors = np.empty(test.nnz, dtype=np.float64)
    for s in range(0, test.nnz, _PREDICT_CHUNK):
        e = s + _PREDICT_CHUNK
        errors[s:e] = model.predict(rows[s:e], cols[s:e])
    errors -= test.data.astype(np.float64)
    return errors
