"""Utility of two models side by side: top-k metrics, their deltas, the
ratio of their losses and the overlap of their recommendation lists.

Part of :mod:`fastunlearn.audit` (docs/design.md, section 7).
"""
from dataclasses import asdict, dataclass

import numpy as np

from ..evaluation import stored_errors, mae_of, rmse_of, per_user_metrics, summarise
from ..pairs import check_matrix, check_model
from ..validation import check_positive_int

_UTILITY_KEYS = ("precision", "recall", "ndcg", "hit_rate")
# Rows of top-k lists intersected at once by the overlap (k*k booleans each).
_OVERLAP_ROWS = 1 << 14


# ----------------------------------------------------------------------------
# utility
# ----------------------------------------------------------------------------
def per_user_utility(model, test, k):
    """Per-user top-k metrics on ``model``'s retained data.

    No AUC: it would score and sort every item of every user.
    """
    return per_user_metrics(model, model.user_items, test, k, with_auc=False)


def ranking_utility(per_user):
    """Mean top-k metrics and ``n_users`` from :func:`per_user_utility`'s values."""
    summary = summarise(per_user)
    return {key: summary[key] for key in (*_UTILITY_KEYS, "n_users")}


def _utility(model, test, k):
    """Top-k metrics (implicit) or rating errors (explicit) on ``test``."""
    if model.kind == "implicit":
        return ranking_utility(per_user_utility(model, test, k))
    errors = stored_errors(model, test)  # once for both errors
    return {"rmse": rmse_of(errors), "mae": mae_of(errors), "n_ratings": int(test.nnz)}


def _same_data(a, b):
    if a.shape != b.shape or a.nnz != b.nnz:
        return False
    return all(np.array_equal(x, y) for x, y in
               ((a.indptr, b.indptr), (a.indices, b.indices), (a.data, b.data)))


def _top_lists(model, k):
    """Top-k ids (-1 padded) of every user, her retained history filtered out."""
    n_users = model.user_factors.shape[0]
    ids, _ = model.recommend(np.arange(n_users), model.user_items, N=k,
                             filter_already_liked_items=True)
    return np.asarray(ids, dtype=np.int64).reshape(n_users, -1)


def mean_overlap(model_a, model_b, k):
    """Mean of :func:`_overlap` over the users with a candidate (NaN if none)."""
    per_user = _overlap(_top_lists(model_a, k), _top_lists(model_b, k))
    per_user = per_user[~np.isnan(per_user)]
    return float(per_user.mean()) if len(per_user) else float("nan")


def factor_losses(model_a, model_b):
    """``loss_a, loss_b, loss_a / loss_b`` (NaN ratio for a zero ``loss_b``)."""
    loss_a, loss_b = float(model_a.loss()), float(model_b.loss())
    return loss_a, loss_b, loss_a / loss_b if loss_b else float("nan")


def _overlap(ids_a, ids_b):
    """Per-row ``|A & B| / max(|A|, |B|)`` of -1 padded id lists (NaN if both empty)."""
    inter = np.zeros(len(ids_a), dtype=np.int64)
    for s in range(0, len(ids_a), _OVERLAP_ROWS):
        a, b = ids_a[s:s + _OVERLAP_ROWS], ids_b[s:s + _OVERLAP_ROWS]
        same = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)
        inter[s:s + len(a)] = same.any(axis=2).sum(axis=1)
    size = np.maximum((ids_a >= 0).sum(axis=1), (ids_b >= 0).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(size > 0, inter / size, np.nan)


@dataclass(frozen=True)
class Comparison:
    """Two models on the same retained data (see :func:`compare`).

    Attributes
    ----------
    utility_a, utility_b : dict
        Implicit: ``precision``, ``recall``, ``ndcg``, ``hit_rate`` at k and
        ``n_users`` evaluated; explicit: ``rmse``, ``mae``, ``n_ratings``.
    delta : dict
        ``utility_a - utility_b`` for each metric.
    loss_a, loss_b, loss_ratio : float
        Objective on the retained data and ``loss_a / loss_b``.
    overlap : float
        Mean over users of ``|top_k(a) & top_k(b)| / max(|top_k(a)|,
        |top_k(b)|)`` (``k`` unless filtering leaves fewer candidates),
        users without a candidate left out.
    k : int
    """

    utility_a: dict
    utility_b: dict
    delta: dict
    loss_a: float
    loss_b: float
    loss_ratio: float
    overlap: float
    k: int

    def to_dict(self):
        return asdict(self)


def compare(model_a, model_b, test, k=10):
    """Utility, loss and recommendations of two models holding the same data.

    Typically a model that forgot (``model_a``) against one retrained on the
    retained data (``model_b``).

    Parameters
    ----------
    model_a, model_b : fitted models of the same kind and shape
    test : scipy.sparse matrix (n_users, n_items)
        Held-out interactions (implicit) or ratings (explicit).
    k : int >= 1

    Returns
    -------
    Comparison
        The overlap is the mean over users of ``|top_k(a) & top_k(b)|``
        divided by the longer list's length (``k`` unless filtering leaves
        fewer candidates), users with no candidate left out: 1 for
        identical lists, 0 for disjoint ones.  Each model ranks the items
        not in the (common) retained history.

    Raises
    ------
    ValueError
        When the models differ in kind or shape or hold different retained
        data (the loss ratio would compare different objectives).
    """
    shape = check_model(model_a, "model_a")
    shape_b = check_model(model_b, "model_b")
    if shape_b != shape:
        raise ValueError(f"model_a has {shape[0]} users x {shape[1]} items but model_b has "
                         f"{shape_b[0]} x {shape_b[1]}")
    if model_a.kind != model_b.kind:
        raise ValueError("model_a and model_b must both be implicit or both explicit")
    k = check_positive_int(k, "k")
    train = model_a.user_items
    if not _same_data(train, model_b.user_items):
        raise ValueError("model_a and model_b hold different retained data: their losses "
                         "measure different objectives")
    test = check_matrix(test, "test", shape)
    util_a = _utility(model_a, test, k)
    util_b = _utility(model_b, test, k)
    delta = {key: util_a[key] - util_b[key] for key in util_a if not key.startswith("n_")}
    return Comparison(util_a, util_b, delta, *factor_losses(model_a, model_b),
                      mean_overlap(model_a, model_b, k), k)
