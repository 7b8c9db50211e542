"""implicit 0.7's evaluation API, under its names and with its results.

``train_test_split`` and the ``*_at_k`` metrics here take implicit's
arguments and compute what ``implicit.evaluation`` computes (the
differential tests in ``tests/test_implicit_compat.py`` run both on the same
models and splits), for any model with implicit's ``recommend``: a
fastunlearn model or an implicit one.  fastunlearn's own protocol (a per-user
holdout, relevant items outside train, macro averages) lives beside them in
:mod:`fastunlearn.evaluation` under other names (``holdout_split``,
``macro_*``, ``ranking_metrics``).

implicit's protocol, per user ``u`` with a stored test entry (``T_u`` its
test items, train items included; ``L_u`` the top-``K`` list of
``model.recommend(u, train[u], N=K)``; ``P = |T_u|``, ``n`` the items):

===========  ================================================================
precision    micro-averaged: ``sum_u |L_u & T_u| / sum_u min(K, P)``
map          mean of ``sum_{r: L_u[r] in T_u} hits_upto(r) / (r + 1)``
             divided by ``min(K, P)``
ndcg         mean of binary-relevance DCG over the ideal DCG of ``min(K, P)``
auc          mean of a top-``K`` estimate: each miss in the list counts the
             hits above it, and the ``n - P - misses`` items below the list
             count ``(hits + P) / 2`` each, over ``P (n - P)``
===========  ================================================================

A list shorter than ``K`` counts as ending in misses.
"""
import numbers

import numpy as np
import scipy.sparse as sp

from .pairs import is_stored
from .validation import check_positive_int

__all__ = [
    "AUC_at_k",
    "mean_average_precision_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics_at_k",
    "train_test_split",
]

# Users ranked per call of model.recommend (implicit's batch size).
_BATCH = 1000


def train_test_split(ratings, train_percentage=0.8, random_state=None):
    """Split the stored entries of ``ratings`` at random, as implicit 0.7.

    Each entry goes to train with probability ``train_percentage``
    (independently: the fraction is approximate, users are not balanced).
    Negative entries that fall in test are dropped (as implicit: a test set
    holds items the user liked).

    Parameters
    ----------
    ratings : scipy.sparse matrix (n_users, n_items)
    train_percentage : float in [0, 1]
    random_state : int, None, numpy Generator or RandomState
        Seeds ``numpy.random.default_rng``; the same seed gives implicit's
        split.  (A ``RandomState`` seeds one from its next draw; implicit
        0.7.3 fails on it.)

    Returns
    -------
    train, test : scipy.sparse.csr_matrix
        In the shape and dtype of ``ratings``; duplicate entries summed.
    """
    if not sp.issparse(ratings) or ratings.ndim != 2:
        raise ValueError(f"ratings must be a 2-D scipy.sparse matrix, got "
                         f"{type(ratings).__name__}")
    if isinstance(train_percentage, (bool, np.bool_)) or \
            not isinstance(train_percentage, numbers.Real) or \
            not 0.0 <= float(train_percentage) <= 1.0:
        raise ValueError(f"train_percentage must be a number in [0, 1], got "
                         f"{train_percentage!r}")
    if isinstance(random_state, np.random.RandomState):
        random_state = random_state.randint(2**31)
    rng = np.random.default_rng(random_state)
    coo = ratings.tocoo()
    to_train = rng.random(coo.nnz) < float(train_percentage)

    def part(keep):
        return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])),
                             shape=coo.shape, dtype=coo.dtype)

    train, test = part(to_train), part(~to_train)
    test.data[test.data < 0] = 0
    test.eliminate_zeros()
    return train, test


def precision_at_k(model, train_user_items, test_user_items, K=10, show_progress=True,
                   num_threads=1):
    """implicit's P@K: hits over ``sum_u min(K, |test_u|)`` (micro-averaged)."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, show_progress,
                                num_threads)["precision"]


def mean_average_precision_at_k(model, train_user_items, test_user_items, K=10,
                                show_progress=True, num_threads=1):
    """implicit's MAP@K (see the module docstring)."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, show_progress,
                                num_threads)["map"]


def ndcg_at_k(model, train_user_items, test_user_items, K=10, show_progress=True,
              num_threads=1):
    """implicit's nDCG@K, binary relevance, averaged over users with test items."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, show_progress,
                                num_threads)["ndcg"]


def AUC_at_k(model, train_user_items, test_user_items, K=10, show_progress=True,  # noqa: N802
             num_threads=1):
    """implicit's AUC estimated from the top ``K`` (see the module docstring)."""
    return ranking_metrics_at_k(model, train_user_items, test_user_items, K, show_progress,
                                num_threads)["auc"]


def ranking_metrics_at_k(model, train_user_items, test_user_items, K=10, show_progress=True,
                         num_threads=1):
    """Precision, MAP, nDCG and AUC at ``K``, as ``implicit.evaluation`` 0.7.

    Parameters
    ----------
    model : fitted model with implicit's ``recommend``
    train_user_items : scipy.sparse matrix (n_users, n_items)
        Filtered out of each user's list (``recommend``'s default).
    test_user_items : scipy.sparse matrix (n_users, n_items)
        Every stored entry counts as relevant, also one stored in train.
    K : int >= 1
    show_progress : bool
        A progress bar over the users evaluated.
    num_threads : int >= 0
        Accepted for implicit's signature; the scoring is vectorised and the
        model's ``recommend`` uses its own threads.

    Returns
    -------
    dict
        ``precision``, ``map``, ``ndcg``, ``auc`` (floats).

    Raises
    ------
    ZeroDivisionError
        When no user has a test entry (as implicit).
    """
    K = check_positive_int(K, "K")
    check_positive_int(num_threads, "num_threads", minimum=0)
    train = _csr(train_user_items, "train_user_items")
    test = _csr(test_user_items, "test_user_items")
    if train.shape != test.shape:
        raise ValueError(f"train_user_items {train.shape} and test_user_items {test.shape} "
                         "must have the same shape")
    n_users, n_items = test.shape
    _check_model_shape(model, test.shape)
    test = test.copy()
    test.sum_duplicates()  # a set of liked items per user
    counts = np.diff(test.indptr).astype(np.int64)
    users = np.flatnonzero(counts > 0)
    if len(users) == 0:
        raise ZeroDivisionError("no user has a test entry: the metrics are undefined")
    test_keys = np.repeat(np.arange(n_users, dtype=np.int64), counts) * n_items + test.indices

    discount = 1.0 / np.log2(np.arange(K, dtype=np.float64) + 2.0)
    ideal = np.cumsum(discount)
    hits_total = precision_div = ap_sum = ndcg_sum = auc_sum = 0.0
    progress = _progress(len(users), show_progress)
    try:
        for start in range(0, len(users), _BATCH):
            batch = users[start:start + _BATCH]
            ids = _top_k(model, batch, train, K)
            keys = batch[:, None] * n_items + np.maximum(ids, 0)
            hit = is_stored(test_keys, keys) & (ids >= 0)
            n_pos = counts[batch].astype(np.float64)
            n_neg = n_items - n_pos
            cut = np.minimum(K, n_pos)
            cum = np.cumsum(hit, axis=1)
            n_hit = cum[:, -1].astype(np.float64)
            hits_total += n_hit.sum()
            precision_div += cut.sum()
            ap_sum += ((hit * cum / np.arange(1, K + 1)).sum(axis=1) / cut).sum()
            ndcg_sum += ((hit @ discount) / ideal[cut.astype(np.int64) - 1]).sum()
            # each miss counts the hits ranked above it; the rest of the
            # negatives (below the list) count (hits + positives) / 2 each
            above_misses = np.where(hit, 0, cum).sum(axis=1)
            misses = K - n_hit
            with np.errstate(divide="ignore", invalid="ignore"):
                auc_sum += ((above_misses + (n_hit + n_pos) / 2.0 * (n_neg - misses))
                            / (n_pos * n_neg)).sum()
            progress.update(len(batch))
    finally:
        progress.close()
    total = float(len(users))
    return {"precision": float(hits_total / precision_div), "map": float(ap_sum / total),
            "ndcg": float(ndcg_sum / total), "auc": float(auc_sum / total)}


def _csr(matrix, name):
    if not sp.issparse(matrix) or matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D scipy.sparse matrix, got {type(matrix).__name__}")
    return matrix if isinstance(matrix, sp.csr_matrix) else sp.csr_matrix(matrix)


def _check_model_shape(model, shape):
    """A fitted model whose factors cover the matrices (fastunlearn's or implicit's)."""
    if not hasattr(model, "recommend"):
        raise TypeError(f"model must have implicit's recommend(), got {type(model).__name__}")
    X, Y = getattr(model, "user_factors", None), getattr(model, "item_factors", None)
    if X is None or Y is None:
        raise ValueError(f"model ({type(model).__name__}) is not fitted: call fit() first")
    if shape[0] > X.shape[0] or shape[1] != Y.shape[0]:
        raise ValueError(f"the matrices are {shape[0]} x {shape[1]}, the model "
                         f"{X.shape[0]} users x {Y.shape[0]} items")


def _top_k(model, batch, train, K):
    """``(len(batch), K)`` item ids of the model's lists; -1 where shorter."""
    ids, _ = model.recommend(batch, train[batch], N=K)
    ids = np.asarray(ids, dtype=np.int64).reshape(len(batch), -1)
    if ids.shape[1] < K:
        ids = np.pad(ids, [(0, 0), (0, K - ids.shape[1])], constant_values=-1)
    return ids[:, :K]


def _progress(total, show):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not show)
