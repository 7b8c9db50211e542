"""Auditing a forget: did it work, and what did it cost?

The four axes of the CURE4Rec benchmark (Chen et al., NeurIPS 2024), measured
for a model that forgot a set of interactions against a model retrained from
scratch on the retained data (docs/design.md, section 7):

* **completeness** -- :func:`membership_inference`: how well an attacker
  holding the model tells the forgotten interactions from pairs the model
  never saw.  Correct forgetting leaves exactly the retrained model's AUC;
  the original model (which trained on them) scores higher.
* **utility** -- :func:`compare`: top-k metrics of two models, their
  deltas, the ratio of their losses on the same retained data and the
  overlap of their recommendation lists.
* **efficiency** -- wall time of forget versus retrain (:func:`report`).
* **fairness** -- :func:`fairness_gap`: utility of the most active users
  minus that of the others.

:func:`unlearning_set` draws the sets CURE4Rec forgets (random, core, edge)
and :func:`report` runs the whole comparison in one call.

Pairs of ids are passed as a tuple ``(users, items)`` of equal-length integer
arrays, or as a sparse matrix whose stored entries are the pairs.
"""
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from .evaluation import (_errors, _mae_of, _predict_errors, _rmse_of, _score_block_rows,
                         _sorted_scores, _summarise, per_user_metrics, train_test_split)
from .pairs import (canonical, check_matrix, check_model, is_stored, pair_keys, row_of,
                    two_sample_auc)
from .ranking import count_below
from .validation import check_fraction, check_ids, check_positive_int, check_sparse

__all__ = [
    "AuditReport",
    "Comparison",
    "FairnessGap",
    "MembershipInference",
    "compare",
    "Completeness",
    "completeness",
    "fairness_gap",
    "held_out_pairs",
    "membership_inference",
    "rank_percentiles",
    "report",
    "reports",
    "sample_unseen",
    "unlearning_set",
]

UNLEARNING_SETS = ("random", "core", "edge")
# A forget is complete when its held-out AUCs are this close to a retrain's,
# or as close as retrains with other seeds are to each other, if farther.
COMPLETENESS_FLOOR = 0.01
_UTILITY_KEYS = ("precision", "recall", "ndcg", "hit_rate")
# Rows of top-k lists intersected at once by the overlap (k*k booleans each).
_OVERLAP_ROWS = 1 << 14


# ----------------------------------------------------------------------------
# validation helpers (the shared ones live in evaluation and validation)
# ----------------------------------------------------------------------------
def _pairs(pairs, shape, name):
    """(users, items) int64 arrays from a tuple of id arrays or a sparse matrix."""
    if sp.issparse(pairs):
        coo = check_matrix(pairs, name, shape).tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64)
    if not isinstance(pairs, (tuple, list)) or len(pairs) != 2:
        raise TypeError(f"{name} must be a (users, items) pair of id arrays or a sparse "
                        f"matrix, got {type(pairs).__name__}")
    users, _ = check_ids(pairs[0], shape[0], f"{name} users")
    items, _ = check_ids(pairs[1], shape[1], f"{name} items")
    if users.shape != items.shape:
        raise ValueError(f"{name}: users and items must pair up, got {users.size} users and "
                         f"{items.size} items")
    return users, items


# ----------------------------------------------------------------------------
# unlearning sets
# ----------------------------------------------------------------------------
def unlearning_set(user_items, fraction, how="random", seed=0):
    """Stored interactions to forget, chosen as CURE4Rec chooses them.

    The set has ``round(fraction * nnz)`` entries (at least 1), drawn without
    replacement from the stored entries of ``user_items``:

    * ``"random"``: uniformly from all stored entries;
    * ``"core"``: from the most active users.  Users are taken from the most
      active down (ties in random order) until their entries reach the set
      size, and the set is drawn uniformly from the entries of those users.
      Every chosen entry thus belongs to a user at least as active as any
      user left out, and the set has exactly the requested size (the least
      active of the chosen users may keep part of her history);
    * ``"edge"``: the same from the least active users (users without any
      entry are skipped).

    Parameters
    ----------
    user_items : scipy.sparse matrix (n_users, n_items)
        Duplicates are summed first; stored zeros count as entries.
    fraction : float in (0, 1)
    how : {"random", "core", "edge"}
    seed : int, numpy Generator or None

    Returns
    -------
    users, items : ndarray of int64
        Paired ids of distinct stored entries, sorted by user then item.

    Raises
    ------
    ValueError
        For a fraction outside (0, 1), an unknown ``how`` or a matrix without
        stored entries.
    """
    csr = canonical(user_items, "user_items")
    fraction = check_fraction(fraction)
    if how not in UNLEARNING_SETS:
        raise ValueError(f"how must be one of {UNLEARNING_SETS}, got {how!r}")
    if csr.nnz == 0:
        raise ValueError("user_items has no stored entries to forget")
    rng = np.random.default_rng(seed)
    n = int(np.clip(math.floor(fraction * csr.nnz + 0.5), 1, csr.nnz))
    rows = row_of(csr)
    if how == "random":
        pool = np.arange(csr.nnz)
    else:
        counts = np.diff(csr.indptr).astype(np.int64)
        users = np.flatnonzero(counts)
        # primary key activity, secondary a random key: ties in random order
        activity = -counts[users] if how == "core" else counts[users]
        order = users[np.lexsort((rng.random(len(users)), activity))]
        m = int(np.searchsorted(np.cumsum(counts[order]), n)) + 1
        pool = np.flatnonzero(np.isin(rows, order[:m]))
    pick = np.sort(rng.choice(pool, size=n, replace=False))  # CSR order: by user, then item
    return rows[pick], csr.indices[pick].astype(np.int64)


def sample_unseen(user_items, users, seed=None):
    """For each user in ``users``, one item uniformly among those she never had.

    The non-members of a membership-inference test: pairs that were never
    stored in ``user_items``, for the same users as the members, so that an
    attacker cannot win by recognising users.

    Parameters
    ----------
    user_items : scipy.sparse matrix (n_users, n_items)
        Every interaction the pairs must avoid: the original training data,
        plus the test data if test interactions should not count as unseen.
    users : array of int
        One pair is drawn per entry (repeats give independent draws, so the
        same pair may come out twice).
    seed : int, numpy Generator or None

    Returns
    -------
    users, items : ndarray of int64

    Raises
    ------
    ValueError
        When one of ``users`` has every item stored.
    """
    csr = canonical(user_items, "user_items")
    n_users, n_items = csr.shape
    users, _ = check_ids(users, n_users, "users")
    full = np.diff(csr.indptr)[users] >= n_items
    if np.any(full):
        raise ValueError(f"user {int(users[full][0])} has every item stored: no unseen pair "
                         "can be drawn for her")
    rng = np.random.default_rng(seed)
    keys = pair_keys(csr)
    items = rng.integers(0, n_items, size=len(users), dtype=np.int64)
    todo = np.flatnonzero(is_stored(keys, users * n_items + items))
    while len(todo):  # rejection sampling; each round keeps >= 1/n_items of the rest
        items[todo] = rng.integers(0, n_items, size=len(todo), dtype=np.int64)
        todo = todo[is_stored(keys, users[todo] * n_items + items[todo])]
    return users.copy(), items


def held_out_pairs(test, users):
    """Every stored pair of ``test`` whose user is in ``users``.

    The non-members of the completeness test: interactions that really
    happened, by the same people as the forgotten ones, that no model was
    trained on.  A model that never saw the forgotten pairs cannot tell
    them from these any better than a retrain can; a forget that left a
    trace can.  (Unseen pairs from :func:`sample_unseen` are a weaker test:
    a retrain already tells real interactions from random pairs well.)

    Parameters
    ----------
    test : scipy.sparse matrix (n_users, n_items)
        Held-out interactions, disjoint from the training data.
    users : array of int

    Returns
    -------
    users, items : ndarray of int64
        Sorted by user, then item.
    """
    csr = canonical(test, "test")
    wanted, _ = check_ids(users, csr.shape[0], "users")
    keep = np.zeros(csr.shape[0], dtype=bool)
    keep[wanted] = True
    rows = row_of(csr)
    mask = keep[rows]
    return rows[mask].astype(np.int64), csr.indices[mask].astype(np.int64)


# ----------------------------------------------------------------------------
# membership inference (completeness)
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MembershipInference:
    """AUC of two attackers telling forgotten pairs from never-seen pairs.

    0.5 means the attacker cannot tell them apart; above 0.5, forgotten pairs
    look more like training data.  A retrained model usually scores above 0.5
    too (interactions are predictable from the rest of the data): correct
    forgetting matches the retrained model's AUC, not 0.5.

    Attributes
    ----------
    score_auc : float
        Attacker ranking all pairs by the raw score ``x_u . y_i``.
    rank_auc : float
        Attacker ranking them by the item's rank percentile within its
        user's score row (calibrated per user, hence stronger).
    n_forgotten, n_unseen : int
    """

    score_auc: float
    rank_auc: float
    n_forgotten: int
    n_unseen: int

    def to_dict(self):
        return asdict(self)


def rank_percentiles(model, users, items):
    """Rank percentile of each item within its user's score row.

    The pool of user ``u`` is every item not in her retained history
    (``model.user_items``).  The percentile of ``(u, i)`` is the fraction of
    the other pool items scoring below ``i``, ties counting half: 1 for the
    top item of the pool, 0 for the bottom one.  ``i`` itself need not be in
    the pool (it is ranked against it all the same).

    Parameters
    ----------
    model : fitted ImplicitALS or ExplicitALS
    users, items : array of int
        Paired ids.

    Returns
    -------
    ndarray of float64
        NaN where the user's pool holds no other item.
    """
    shape = check_model(model, "model")
    users, items = _pairs((users, items), shape, "pairs")
    n_items = shape[1]
    history = model.user_items
    counts = np.diff(history.indptr).astype(np.int64)
    in_pool = ~is_stored(pair_keys(history), users * n_items + items)
    # pool items other than the queried one
    others = n_items - counts[users] - in_pool.astype(np.int64)
    out = np.full(len(users), np.nan)

    order = np.argsort(users, kind="stable")
    uniq, start = np.unique(users[order], return_index=True)
    bounds = np.append(start, len(order))
    block = _score_block_rows(n_items)
    for b0 in range(0, len(uniq), block):
        batch = uniq[b0:b0 + block]
        sel = order[bounds[b0]:bounds[b0 + len(batch)]]
        rows = np.searchsorted(batch, users[sel])
        # history at +inf, never counted below; a queried history item keeps its score
        scores, values = _sorted_scores(model, batch, history, rows, items[sel])
        below = count_below(scores, rows, values, strict=True)
        equal = (count_below(scores, rows, values, strict=False) - below
                 - in_pool[sel].astype(np.int64))  # itself
        with np.errstate(divide="ignore", invalid="ignore"):
            out[sel] = (below + 0.5 * equal) / others[sel]
    return out


def membership_inference(model, forgotten, unseen=None, seed=None):
    """How well the model's scores tell forgotten pairs from never-seen ones.

    Two attackers, each measured by the AUC of separating ``forgotten``
    (positives) from ``unseen`` (negatives), ties counting half:

    * score attacker: the raw score ``x_u . y_i``;
    * rank attacker: the rank percentile of item ``i`` within user ``u``'s
      scores over the items not in her retained history (see
      :func:`rank_percentiles`).  Calibrating each user's scores removes
      what separates users rather than pairs, which makes it the stronger
      attacker.

    Parameters
    ----------
    model : fitted ImplicitALS or ExplicitALS
    forgotten : (users, items) or scipy.sparse matrix
        The pairs the model was asked to forget (the members).
    unseen : (users, items) or scipy.sparse matrix, optional
        Pairs the model never trained on (the non-members), ideally for the
        same users.  Compare models on the *same* pairs.  By default one pair
        per forgotten pair is drawn by :func:`sample_unseen` for the same
        user, avoiding the model's retained data and ``forgotten``; held-out
        test interactions may then count as unseen.
    seed : int, numpy Generator or None
        Seed of that draw (unused when ``unseen`` is given).

    Returns
    -------
    MembershipInference
    """
    shape = check_model(model, "model")
    f_users, f_items = _pairs(forgotten, shape, "forgotten")
    if unseen is None:
        seen = model.user_items + sp.csr_matrix(
            (np.ones(len(f_users)), (f_users, f_items)), shape=shape)
        u_users, u_items = sample_unseen(seen, f_users, seed=seed)
    else:
        u_users, u_items = _pairs(unseen, shape, "unseen")
    if not len(f_users) or not len(u_users):
        raise ValueError(f"membership inference needs forgotten and unseen pairs, got "
                         f"{len(f_users)} and {len(u_users)}")
    users = np.concatenate([f_users, u_users])
    items = np.concatenate([f_items, u_items])
    scores = np.einsum("ij,ij->i", model.user_factors[users], model.item_factors[items],
                       dtype=np.float64)
    percentiles = rank_percentiles(model, users, items)
    n = len(f_users)
    # a user whose every other item is in her history has no percentile: left out
    ok = ~np.isnan(percentiles)
    return MembershipInference(
        score_auc=two_sample_auc(scores[:n], scores[n:]),
        rank_auc=two_sample_auc(percentiles[:n][ok[:n]], percentiles[n:][ok[n:]]),
        n_forgotten=n, n_unseen=len(u_users))


def _held_out_inference(model, forgotten, held_out):
    """:func:`membership_inference` against ``held_out`` pairs as a dict, NaN
    AUCs when there are none (users without test data, e.g. edge sets)."""
    if len(held_out[0]):
        return membership_inference(model, forgotten, held_out).to_dict()
    return MembershipInference(float("nan"), float("nan"), len(forgotten[0]), 0).to_dict()


@dataclass(frozen=True)
class Completeness:
    """The completeness test of a model that forgot some pairs (see
    :func:`completeness`).

    Attributes
    ----------
    forget : dict
        :class:`MembershipInference` (as a dict) of the model: forgotten
        pairs against held-out pairs of the same users.
    retrains : list of dict
        The same for each retrain, seeds ``seed, seed + 1, ...``.
    gaps : dict
        Per attacker (``score_auc``, ``rank_auc``): ``(forget - retrain,
        allowed)``, against the first retrain; ``allowed`` is the larger of
        0.01 and the retrains' spread.
    complete : bool
        Both attackers within ``allowed``.
    """

    forget: dict
    retrains: list
    gaps: dict
    complete: bool

    def to_dict(self):
        return asdict(self)


def _gaps(forget, retrains, floor=COMPLETENESS_FLOOR):
    gaps = {}
    for key in ("score_auc", "rank_auc"):
        seeds = np.array([r[key] for r in retrains], dtype=np.float64)
        allowed = max(floor, float(seeds.max() - seeds.min()) if len(seeds) else 0.0)
        gaps[key] = (float(forget[key] - retrains[0][key]), allowed)
    return gaps


def completeness(model, forgotten, test, *, repeats=3, seed=0):
    """Does ``model`` tell the pairs it forgot from held-out ones any better
    than a retrain does?

    Retrains ``repeats`` models on ``model.user_items`` with the model's own
    hyperparameters (seeds ``seed, seed + 1, ...``) and measures, for the
    model and each retrain, how well both attackers of
    :func:`membership_inference` tell ``forgotten`` from the pairs of
    ``test`` that belong to the same users (:func:`held_out_pairs`).

    Parameters
    ----------
    model : fitted ImplicitALS or ExplicitALS
        The model after the forget.
    forgotten : (users, items) or scipy.sparse matrix
    test : scipy.sparse matrix
        Held-out interactions, never trained on.
    repeats : int >= 1
    seed : int

    Returns
    -------
    Completeness

    Raises
    ------
    ValueError
        When no user of ``forgotten`` has a held-out pair.
    """
    shape = check_model(model, "model")
    pairs = _pairs(forgotten, shape, "forgotten")
    test = check_matrix(test, "test", shape)
    repeats = check_positive_int(repeats, "repeats")
    held = held_out_pairs(test, pairs[0])
    if not len(held[0]):
        raise ValueError("none of the forgotten pairs' users has a pair in test")
    params = model.get_params()
    retained = model.user_items.copy()
    forget = membership_inference(model, pairs, held).to_dict()
    retrains = []
    for r in range(repeats):
        retrain = type(model)._from_params(**{**params, "random_state": seed + r}).fit(
            retained, show_progress=False)
        retrains.append(membership_inference(retrain, pairs, held).to_dict())
    gaps = _gaps(forget, retrains)
    return Completeness(forget, retrains, gaps,
                        all(abs(g) <= a for g, a in gaps.values()))


# ----------------------------------------------------------------------------
# utility
# ----------------------------------------------------------------------------
def _per_user(model, test, k):
    """Per-user top-k metrics on ``model``'s retained data.

    No AUC: it would score and sort every item of every user.
    """
    return per_user_metrics(model, model.user_items, test, k, with_auc=False)


def _ranking_utility(per_user):
    """Mean top-k metrics and ``n_users`` from :func:`_per_user`'s values."""
    summary = _summarise(per_user)
    return {key: summary[key] for key in (*_UTILITY_KEYS, "n_users")}


def _utility(model, test, k):
    """Top-k metrics (implicit) or rating errors (explicit) on ``test``."""
    if model._implicit:
        return _ranking_utility(_per_user(model, test, k))
    errors = _errors(model, test)  # once for both errors
    return {"rmse": _rmse_of(errors), "mae": _mae_of(errors), "n_ratings": int(test.nnz)}


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


def _mean_overlap(model_a, model_b, k):
    """Mean of :func:`_overlap` over the users with a candidate (NaN if none)."""
    per_user = _overlap(_top_lists(model_a, k), _top_lists(model_b, k))
    per_user = per_user[~np.isnan(per_user)]
    return float(per_user.mean()) if len(per_user) else float("nan")


def _losses(model_a, model_b):
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
    if model_a._implicit != model_b._implicit:
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
    return Comparison(util_a, util_b, delta, *_losses(model_a, model_b),
                      _mean_overlap(model_a, model_b, k), k)


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
    if model._implicit:
        if per_user is None:
            per_user = _per_user(model, test, k)
        return _gap(per_user["users"], per_user["ndcg"], activity, top, "ndcg")
    return _gap(*_per_user_rmse(model, test), activity, top, "rmse")


def _gap(users, values, activity, top, metric):
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
    errors = _predict_errors(model, test)
    counts = np.bincount(rows, minlength=test.shape[0])
    sq = np.bincount(rows, weights=errors * errors, minlength=test.shape[0])
    users = np.flatnonzero(counts)
    return users, np.sqrt(sq[users] / counts[users])


# ----------------------------------------------------------------------------
# the whole audit
# ----------------------------------------------------------------------------
_STAGES = ("original", "forget", "retrain")


@dataclass(frozen=True)
class AuditReport:
    """Forget versus retrain on the four CURE4Rec axes (see :func:`reports`).

    Attributes
    ----------
    completeness : dict
        Per stage (``original``, ``forget``, ``retrain``) the
        :class:`MembershipInference` of the forgotten pairs against held-out
        test pairs of the same users (:func:`held_out_pairs`), as a dict:
        ``score_auc``, ``rank_auc``, ``n_forgotten`` and ``n_unseen``.  The
        forget is complete when both AUCs are as close to the seed-0
        retrain's as retrains with other seeds are (see ``retrain_spread``).
    unseen : dict
        The same against never-seen pairs (:func:`sample_unseen`).
    utility : dict
        Per stage the top-k metrics on the test data.
    efficiency : dict
        ``forget_seconds``, ``retrain_seconds`` (medians over repeats),
        ``ratio`` (forget / retrain), ``forget_runs``, ``retrain_runs``
        (seconds of each repeat), ``rows_solved`` (by the forget),
        ``rows_total_retrain`` (rows the retrain solves: iterations times
        users plus items), ``sweeps``, ``converged``, ``tolerance``,
        ``certificate`` (max_row per stage), ``loss_ratio`` (forget /
        retrain on the retained data) and ``overlap`` (top-k lists, see
        :func:`compare`).
    fairness : dict
        Per stage the :func:`fairness_gap` (groups from the original data).
    setting : dict
        Data size, unlearning set, hyperparameters and seeds.
    retrain_spread : dict
        Per measure (``score_auc``, ``rank_auc``, the same against unseen
        pairs as ``unseen_score_auc`` and ``unseen_rank_auc``, ``ndcg``,
        ``recall``, ``gap``) its value for each retrain, one per repeat with
        seeds ``seed, seed + 1, ...``: how far retraining alone moves it.
    """

    completeness: dict
    unseen: dict
    utility: dict
    efficiency: dict
    fairness: dict
    setting: dict
    retrain_spread: dict

    def to_dict(self):
        return asdict(self)

    def completeness_gaps(self, floor=COMPLETENESS_FLOOR):
        """Per attacker (``score_auc``, ``rank_auc``) of the held-out test:
        ``(forget - retrain, allowed)``, where ``allowed`` is the larger of
        ``floor`` and the spread (max - min) of the retrains' AUCs."""
        retrains = [{key: self.retrain_spread[key][r] for key in ("score_auc", "rank_auc")}
                    for r in range(len(self.retrain_spread["score_auc"]))]
        return _gaps(self.completeness["forget"], retrains, floor)

    def is_complete(self, floor=COMPLETENESS_FLOOR):
        """Whether both attackers are within :meth:`completeness_gaps`
        (False when the forgotten pairs' users have no held-out pairs)."""
        return all(abs(gap) <= allowed for gap, allowed in self.completeness_gaps(floor).values())

    def to_markdown(self):
        """The report as a Markdown table (one row per measure)."""
        k, top = self.setting["k"], self.setting["top"]
        rows = [("completeness", "MIA AUC vs held-out, score attacker", "score_auc",
                 *self._stages(self.completeness, "score_auc")),
                ("completeness", "MIA AUC vs held-out, rank attacker", "rank_auc",
                 *self._stages(self.completeness, "rank_auc")),
                ("completeness", "MIA AUC vs unseen, score attacker", "unseen_score_auc",
                 *self._stages(self.unseen, "score_auc")),
                ("completeness", "MIA AUC vs unseen, rank attacker", "unseen_rank_auc",
                 *self._stages(self.unseen, "rank_auc")),
                ("utility", f"nDCG@{k}", "ndcg", *self._stages(self.utility, "ndcg")),
                ("utility", f"recall@{k}", "recall", *self._stages(self.utility, "recall")),
                ("fairness", f"nDCG@{k} gap, top {100 * top:.3g}% active - rest", "gap",
                 *self._stages(self.fairness, "gap"))]
        e = self.efficiency
        lines = ["| axis | measure | original | forget | retrain | forget - retrain "
                 "| retrain over seeds |", "|---|---|---|---|---|---|---|"]
        for axis, name, key, orig, forg, retr in rows:
            seeds = self.retrain_spread[key]
            spread = f"{min(seeds):.4f} .. {max(seeds):.4f}" if len(seeds) > 1 else "-"
            lines.append(f"| {axis} | {name} | {orig:.4f} | {forg:.4f} | {retr:.4f} | "
                         f"{forg - retr:+.4f} | {spread} |")
        cert = e["certificate"]
        lines.append(f"| efficiency | seconds | - | {e['forget_seconds']:.3f} | "
                     f"{e['retrain_seconds']:.3f} | ratio {e['ratio']:.3f} | - |")
        lines.append(f"| efficiency | rows solved | - | {e['rows_solved']} | "
                     f"{e['rows_total_retrain']} | - | - |")
        lines.append(f"| efficiency | certificate max_row | {cert['original']:.3g} | "
                     f"{cert['forget']:.3g} | {cert['retrain']:.3g} | - | - |")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _stages(table, key):
        return tuple(float(table[stage][key]) for stage in _STAGES)

    def __str__(self):
        s = self.setting
        head = (f"forget {s['n_removed']} {s['how']} interactions ({s['fraction']:.2%}) of "
                f"{s['n_users']} users x {s['n_items']} items, {s['nnz']} stored\n\n")
        return head + self.to_markdown()


def report(user_items, test=None, *, washout="auto", print_table=False, **options):
    """Forget an unlearning set, retrain without it, and compare on four axes.

    :func:`reports` for one ``washout``; the other keyword arguments are
    those of :func:`reports`.  ``print_table`` prints the report (a
    Markdown table) as well.

    Returns
    -------
    AuditReport
    """
    result = reports(user_items, test, washouts=(washout,), **options)[0]
    if print_table:
        print(result)
    return result


def reports(user_items, test=None, *, fraction=0.01, how="random", seed=0, k=10, top=0.2,
            factors=64, iterations=15, regularization=0.05, alpha=1.0, use_cg=True,
            num_threads=0, tolerance=None, max_sweeps=50, washouts=("auto",), repeats=1):
    """:func:`report` for several washouts of one unlearning set, sharing the
    original model and the retrains (each fitted, timed and measured once).

    1. Fit an :class:`~fastunlearn.ImplicitALS` on ``user_items`` (the
       original model).
    2. Draw ``unlearning_set(user_items, fraction, how, seed)``, take the
       held-out test pairs of the same users (:func:`held_out_pairs`) and
       draw never-seen pairs for them (:func:`sample_unseen`, avoiding the
       training and the test data).
    3. Forget the set from a copy of the original model, once per washout.
    4. Retrain on the retained data with the same hyperparameters, number
       of iterations and seed (and, for ``repeats > 1``, the next seeds).
    5. Measure membership inference, top-k utility on ``test`` and the
       fairness gap for all models, and the cost of forgetting.

    Parameters
    ----------
    user_items : scipy.sparse matrix (n_users, n_items)
        Training interactions.
    test : scipy.sparse matrix, optional
        Held-out interactions.  By default ``user_items`` is split with
        ``train_test_split(user_items, 0.2, seed=seed)`` first.
    fraction, how, seed
        The unlearning set (see :func:`unlearning_set`); ``seed`` also seeds
        the split, the unseen pairs and the models.
    k, top
        Cut-off of the metrics and active share of :func:`fairness_gap`.
    factors, iterations, regularization, alpha, use_cg, num_threads
        :class:`~fastunlearn.ImplicitALS` hyperparameters.
    tolerance, max_sweeps
        Passed to ``forget`` (default tolerance: the original certificate).
    washouts : sequence of "auto" or int >= 0
        One report per value, its forget run with that ``washout`` (see
        ``ImplicitALS.forget``; "auto", the default, is what a plain
        ``forget`` call does, 0 forgets without a washout).
    repeats : int >= 1
        Each forget and the retrain are timed this many times, interleaved
        (medians reported; the models of the first run are measured).
        Retrain ``r`` uses seed ``seed + r``, and its measures go to
        ``retrain_spread``: a forget can't be asked to match one retrain
        more closely than retrains with other seeds match each other.

    Returns
    -------
    list of AuditReport
        One per washout, in order; all share the original's and the
        retrains' measures and timings.
    """
    from .forgetting import check_washout
    from .models import ImplicitALS

    # everything is validated before the (costly) fit
    check_sparse(user_items, "user_items")
    fraction = check_fraction(fraction)
    if how not in UNLEARNING_SETS:
        raise ValueError(f"how must be one of {UNLEARNING_SETS}, got {how!r}")
    repeats = check_positive_int(repeats, "repeats")
    washouts = [check_washout(w) for w in
                (list(washouts) if isinstance(washouts, (list, tuple)) else [washouts])]
    if not washouts or len(set(washouts)) != len(washouts):
        raise ValueError(f"washouts must hold distinct values, at least one, got {washouts}")
    k = check_positive_int(k, "k")
    top = check_fraction(top, "top")
    if test is None:
        train, test = train_test_split(user_items, 0.2, seed=seed)
    else:
        train = canonical(user_items, "user_items")
        test = check_matrix(test, "test", train.shape)
    params = dict(factors=factors, iterations=iterations, regularization=regularization,
                  alpha=alpha, use_cg=use_cg, num_threads=num_threads, random_state=seed)
    original = ImplicitALS(**params).fit(train, show_progress=False)

    f_users, f_items = unlearning_set(train, fraction, how, seed)
    forgotten = (f_users, f_items)
    held_out = held_out_pairs(test, f_users)
    unseen = sample_unseen(train + test, f_users, seed=seed)
    activity = np.diff(original.user_items.indptr)

    def measures(model):
        """(membership inference against held-out and unseen pairs, utility,
        fairness, certificate) of one model."""
        per_user = _per_user(model, test, k)  # ranked once for utility and fairness
        return (_held_out_inference(model, forgotten, held_out),
                membership_inference(model, forgotten, unseen).to_dict(),
                _ranking_utility(per_user),
                _gap(per_user["users"], per_user["ndcg"], activity, top, "ndcg").to_dict(),
                float(model.certificate().max_row))

    # only the first repeat's models are measured; later ones give timings
    # and the retrain spread
    forget_runs = {w: [] for w in washouts}
    forgot, retrain_runs, retrain_measures = {}, [], []
    for repeat in range(repeats):
        for w in washouts:
            model = ImplicitALS.from_factors(original.user_factors, original.item_factors,
                                             original.user_items, **params)
            start = time.perf_counter()
            run_receipt = model.forget(f_users, f_items, tolerance=tolerance,
                                       max_sweeps=max_sweeps, washout=w)
            forget_runs[w].append(time.perf_counter() - start)
            if repeat == 0:
                forgot[w] = (model, run_receipt)
        if repeat == 0:
            retained = forgot[washouts[0]][0].user_items.copy()  # the same for every run
        start = time.perf_counter()
        run_retrained = ImplicitALS(**{**params, "random_state": seed + repeat}).fit(
            retained, show_progress=False)
        retrain_runs.append(time.perf_counter() - start)
        if repeat == 0:
            retrained = run_retrained
        retrain_measures.append(measures(run_retrained))
    where = {"score_auc": (0, "score_auc"), "rank_auc": (0, "rank_auc"),
             "unseen_score_auc": (1, "score_auc"), "unseen_rank_auc": (1, "rank_auc"),
             "ndcg": (2, "ndcg"), "recall": (2, "recall"), "gap": (3, "gap")}
    spread = {key: [float(m[axis][name]) for m in retrain_measures]
              for key, (axis, name) in where.items()}
    shared = {"original": measures(original), "retrain": retrain_measures[0]}
    retrain_s = float(np.median(retrain_runs))
    n_users, n_items = train.shape
    results = []
    for w in washouts:
        model, receipt = forgot[w]
        stages = {**shared, "forget": measures(model)}
        completeness, unseen_mia, utility, fairness, certificate = (
            {stage: stages[stage][axis] for stage in _STAGES} for axis in range(5))
        # compare() would rank both models on test again for unused deltas
        loss_ratio = _losses(model, retrained)[2]
        forget_s = float(np.median(forget_runs[w]))
        efficiency = {
            "forget_seconds": forget_s, "retrain_seconds": retrain_s,
            "ratio": forget_s / retrain_s if retrain_s else float("nan"),
            "forget_runs": forget_runs[w], "retrain_runs": retrain_runs,
            "rows_solved": int(receipt.rows_solved),
            "rows_total_retrain": int(iterations * (n_users + n_items)),
            "sweeps": int(receipt.sweeps), "converged": bool(receipt.converged),
            "settled": bool(receipt.settled),
            "tolerance": float(receipt.tolerance), "certificate": certificate,
            "loss_ratio": loss_ratio, "overlap": _mean_overlap(model, retrained, k),
        }
        setting = {"n_users": n_users, "n_items": n_items, "nnz": int(train.nnz),
                   "n_test": int(test.nnz), "fraction": float(fraction), "how": how,
                   "n_removed": int(len(f_users)),
                   "users_affected": int(receipt.users_affected), "seed": seed, "k": k,
                   "top": top, "repeats": repeats, "max_sweeps": max_sweeps, "washout": w,
                   **{key: value for key, value in params.items() if key != "random_state"}}
        results.append(AuditReport(completeness, unseen_mia, utility, efficiency, fairness,
                                   setting, spread))
    return results
