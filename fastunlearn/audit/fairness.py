"""Fairness: utility of the most active users minus that of the others.

Part of :mod:`fastunlearn.audit` (docs/design.md, section 7).
"""
import math
from dataclasses import asdict, dataclass

import numpy as np

from ..evaluation import predict_errors
from ..pairs import check_matrix, check_model, row_of
from ..validation import check_fraction, check_positive_int
from .compare import per_user_utility


# ----------------------------------------------------------------------------
# fairness
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class FairnessGap:
    """Utility of the most active users minus that of the others.

    Attributes
    ----------
    gap : float
        ``active - inactive``; ``float(result)`` gives it too.
    active, inactive : float
        Mean per-user utility of each group.
    n_active, n_inactive : int
        Users in each group.
    metric : str
        ``"ndcg"`` (at k) or ``"rmse"``.
    """

    gap: float
    active: float
    inactive: float
    n_active: int
    n_inactive: int
    metric: str

    def __float__(self):
        return float(self.gap)

    def to_dict(self):
        return asdict(self)


def fairness_gap(model, test, k=10, top=0.2, *, activity=None, per_user=None):
    """Utility of the ``top`` share of most active users minus the rest's.

    The users evaluated are those with a relevant test item (implicit: a
    test entry not in their retained history, as in
    :mod:`fastunlearn.evaluation`; explicit: a test rating).  They are sorted
    by activity, most active first (ties by user id), and the first
    ``round(top * n)`` (at least 1, at most ``n - 1``) form the active group.
    Each group's utility is the mean of its users' values: nDCG@k for
    implicit models, per-user RMSE for explicit ones (lower is better there,
    so a negative gap favours the active users).

    Parameters
    ----------
    model : fitted ImplicitALS or ExplicitALS
    test : scipy.sparse matrix (n_users, n_items)
    k : int >= 1
    top : float in (0, 1)
        Share of users in the active group (CURE4Rec: 0.2).
    activity : array (n_users,), optional
        Activity of each user; default her number of retained interactions.
        Pass the counts of the original training data to keep the same
        groups when comparing a model before and after forgetting.
    per_user : dict, optional
        Implicit models: what ``evaluation.per_user_metrics(model,
        model.user_items, test, k)`` returned, when the caller has it
        already, so that the users are not ranked a second time.

    Returns
    -------
    FairnessGap
        All NaN (counts 0) when fewer than 2 users are evaluated.
    """
    n_users, n_items = check_model(model, "model")
    k = check_positive_int(k, "k")
    top = check_fraction(top, "top")
    test = check_matrix(test, "test", (n_users, n_items))
    if activity is None:
        activity = np.diff(model.user_items.indptr)
    activity = np.asarray(activity)
    if activity.shape != (n_users,) or activity.dtype.kind not in "iuf":
        raise ValueError(f"activity must be {n_users} numbers (one per user), got shape "
                         f"{activity.shape} and dtype {activity.dtype}")
    if model.kind == "implicit":
        if per_user is None:
            per_user = per_user_utility(model, test, k)
        return utility_gap(per_user["users"], per_user["ndcg"], activity, top, "ndcg")
    return utility_gap(*_per_user_rmse(model, test), activity, top, "rmse")


def utility_gap(users, values, activity, top, metric):
    """:class:`FairnessGap` of per-user ``values`` (aligned with ascending ``users``)."""
    n = len(users)
    if n < 2:
        nan = float("nan")
        return FairnessGap(nan, nan, nan, 0, 0, metric)
    n_active = int(np.clip(math.floor(top * n + 0.5), 1, n - 1))
    order = np.lexsort((users, -activity[users].astype(np.float64)))
    active = np.zeros(n, dtype=bool)
    active[order[:n_active]] = True
    a, b = float(values[active].mean()), float(values[~active].mean())
    return FairnessGap(a - b, a, b, n_active, n - n_active, metric)


def _per_user_rmse(model, test):
    """(users with a rating in canonical ``test``, their RMSE); empty for an empty ``test``."""
    rows = row_of(test)
    errors = predict_errors(model, test)
    counts = np.bincount(rows, minlength=test.shape[0])
    sq = np.bincount(rows, weights=errors * errors, minlength=test.shape[0])
    users = np.flatnonzero(counts)
    return users, np.sqrt(sq[users] / counts[users])


# ----------------------------------------------------------------------------
# the whole audit
# ----------------------------------------------------------------------------
