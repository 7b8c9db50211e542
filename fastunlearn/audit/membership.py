"""Completeness: membership inference against the forgotten pairs (by raw
score and by rank) and the held-out completeness test against retrains.

Part of :mod:`fastunlearn.audit` (docs/design.md, section 7).
"""
import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from ..evaluation import score_block_rows, sorted_scores
from ..pairs import check_matrix, check_model, is_stored, pair_keys, two_sample_auc
from ..ranking import count_below
from ..validation import check_positive_int
from .intervals import (
    Z95,
    Verdict,
    auc_standard_error,
    min_forgotten_pairs,
    paired_difference_se,
    too_few_pairs,
)
from .lira import values_at, check_shadows, fit_shadows
from .sets import checked_pairs, held_out_pairs, sample_unseen

# The attackers of the completeness test, by their keys in the measures: the
# population attackers always, the likelihood-ratio ones (online, offline)
# when shadow models were fitted (see .lira).
ATTACKERS = ("score_auc", "rank_auc", "lira_auc", "lira_offline_auc")
# A forget is complete when its held-out AUCs are this close to a retrain's,
# or as close as retrains with other seeds are to each other, if farther.
COMPLETENESS_FLOOR = 0.01


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
    users, items = checked_pairs((users, items), shape, "pairs")
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
    block = score_block_rows(n_items)
    for b0 in range(0, len(uniq), block):
        batch = uniq[b0:b0 + block]
        sel = order[bounds[b0]:bounds[b0 + len(batch)]]
        rows = np.searchsorted(batch, users[sel])
        # history at +inf, never counted below; a queried history item keeps its score
        scores, values = sorted_scores(model, batch, history, rows, items[sel])
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
    f_users, f_items = checked_pairs(forgotten, shape, "forgotten")
    if unseen is None:
        seen = model.user_items + sp.csr_matrix(
            (np.ones(len(f_users)), (f_users, f_items)), shape=shape)
        u_users, u_items = sample_unseen(seen, f_users, seed=seed)
    else:
        u_users, u_items = checked_pairs(unseen, shape, "unseen")
    if not len(f_users) or not len(u_users):
        raise ValueError(f"membership inference needs forgotten and unseen pairs, got "
                         f"{len(f_users)} and {len(u_users)}")
    values = attacker_values(model, (f_users, f_items), (u_users, u_items))
    return MembershipInference(
        score_auc=two_sample_auc(*values["score_auc"]),
        rank_auc=two_sample_auc(*values["rank_auc"]),
        n_forgotten=len(f_users), n_unseen=len(u_users))


def attacker_values(model, forgotten, unseen):
    """What the score and rank attackers of :func:`membership_inference`
    see: ``{"score_auc": (members, non-members), "rank_auc": (...)}``, the
    raw scores and rank percentiles of the checked pairs ``forgotten`` and
    ``unseen`` (id arrays), in their order.  Pairs without a percentile (a
    user whose every other item is in her history) are left out of the
    rank attacker's; which they are depends on the retained data only, so
    models holding the same data see the same pairs."""
    (f_users, f_items), (u_users, u_items) = forgotten, unseen
    users = np.concatenate([f_users, u_users])
    items = np.concatenate([f_items, u_items])
    scores = np.einsum("ij,ij->i", model.user_factors[users], model.item_factors[items],
                       dtype=np.float64)
    percentiles = rank_percentiles(model, users, items)
    n = len(f_users)
    ok = ~np.isnan(percentiles)
    return {"score_auc": (scores[:n], scores[n:]),
            "rank_auc": (percentiles[:n][ok[:n]], percentiles[n:][ok[n:]])}


def attack_held_out(model, forgotten, held_out):
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
        With shadow models, also the :class:`LikelihoodRatio` AUCs
        ``lira_auc`` and ``lira_offline_auc``.
    retrains : list of dict
        The same for each retrain, seeds ``seed, seed + 1, ...``.
    gaps : dict
        Per attacker (``score_auc``, ``rank_auc``, and with shadows
        ``lira_auc``, ``lira_offline_auc``): ``(forget - retrain,
        allowed)``, against the first retrain; ``allowed`` is the largest
        of 0.01, the retrains' spread and the 95 % half-width of the gap
        over the pairs sampled (DeLong's paired standard error,
        ``intervals``).
    complete : bool or None
        Every attacker within ``allowed``; None when there are too few
        pairs to judge (``verdict``).
    shadows : int
        Shadow models of the likelihood-ratio attack (0: not run).
    intervals : dict
        Per attacker: ``forget`` and ``retrain`` (seed 0),
        each the 95 % interval ``[low, high]`` of that AUC (DeLong's
        standard error, normal approximation), and ``gap_se``, DeLong's
        standard error of their difference on the same pairs.
    verdict : Verdict
        ``COMPLETE``, ``INCOMPLETE`` or ``TOO_FEW_PAIRS``: when an AUC
        with no signal would have an interval wider than
        :data:`~fastunlearn.audit.intervals.MAX_HALF_WIDTH` either side
        (``n_forgotten`` against ``n_unseen`` held-out pairs), the test
        cannot tell a trace from sampling noise and says so instead.
    min_pairs : int or None
        The fewest forgotten pairs the test judges against this many
        held-out pairs (None: no number is enough).
    """

    forget: dict
    retrains: list
    gaps: dict
    complete: object
    shadows: int = 0
    intervals: dict = None
    verdict: Verdict = Verdict.INCOMPLETE
    min_pairs: object = None

    def to_dict(self):
        return {**asdict(self), "verdict_text": self.verdict_text}

    @property
    def verdict_text(self):
        """The verdict in words: "complete", "incomplete" or "too few pairs
        to judge (n = 5; ...)"."""
        return verdict_text(self.verdict, self.forget["n_forgotten"], self.forget["n_unseen"],
                            self.min_pairs)


def verdict_text(verdict, n_forgotten, n_unseen, min_pairs):
    """``verdict`` in words, with the sample size when too small."""
    if verdict is not Verdict.TOO_FEW_PAIRS:
        return verdict.value
    if min_pairs is None:
        need = (f"at least {min_forgotten_pairs(math.inf)} forgotten pairs needed, and more "
                f"held-out pairs than these {n_unseen}")
    else:
        need = f"at least {min_pairs} forgotten pairs needed against these {n_unseen} held-out"
    return f"{verdict.value} (n = {n_forgotten}; {need})"


def gaps(forget, retrains, floor=COMPLETENESS_FLOOR, se=None):
    """{attacker: (forget's AUC minus the seed-0 retrain's, the gap allowed)}
    for each attacker of :data:`ATTACKERS` that ``forget`` holds (the score
    and rank attackers, the likelihood-ratio ones when measured); the gap
    allowed is the largest of ``floor``, the retrain seeds' spread and,
    where ``se`` (attacker: standard error of the gap) has a finite value,
    ``Z95 * se``: the gap that sampling the pairs alone allows at 95 %.
    ``forget`` and each of ``retrains`` map attacker names to AUCs."""
    out = {}
    se = se or {}
    for key in (key for key in ATTACKERS if key in forget):
        seeds = np.array([r[key] for r in retrains], dtype=np.float64)
        allowed = max(floor, float(seeds.max() - seeds.min()) if len(seeds) else 0.0)
        if np.isfinite(se.get(key, np.nan)):
            allowed = max(allowed, Z95 * float(se[key]))
        out[key] = (float(forget[key] - retrains[0][key]), allowed)
    return out


def within(found):
    """Whether every attacker's gap in ``found`` (as :func:`gaps` returns)
    is within the gap allowed: the completeness test's verdict."""
    return all(abs(gap) <= allowed for gap, allowed in found.values())


def verdict_of(found, n_forgotten, n_unseen):
    """The :class:`Verdict` of gaps ``found`` measured on ``n_forgotten``
    forgotten and ``n_unseen`` held-out pairs: too few pairs first, then
    :func:`within`."""
    if too_few_pairs(n_forgotten, n_unseen):
        return Verdict.TOO_FEW_PAIRS
    return Verdict.COMPLETE if within(found) else Verdict.INCOMPLETE


def interval(auc, se):
    """The 95 % interval ``[auc - Z95 se, auc + Z95 se]`` clipped to [0, 1]
    (NaNs when ``se`` is NaN)."""
    if not np.isfinite(se):
        return [float("nan"), float("nan")]
    return [max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se)]


def sampling_intervals(forget_values, retrain_values):
    """Per attacker, the ``intervals`` of :class:`Completeness` from what
    the attackers see of the forget and of the seed-0 retrain, the same
    pairs (:func:`attacker_values`, and :meth:`ShadowModels.values
    <fastunlearn.audit.lira.ShadowModels.values>` with shadows)."""
    out = {}
    for key, (pos_f, neg_f) in forget_values.items():
        pos_r, neg_r = retrain_values[key]
        out[key] = {
            "forget": interval(two_sample_auc(pos_f, neg_f), auc_standard_error(pos_f, neg_f)),
            "retrain": interval(two_sample_auc(pos_r, neg_r), auc_standard_error(pos_r, neg_r)),
            "gap_se": paired_difference_se(pos_f, neg_f, pos_r, neg_r)}
    return out


def completeness(model, forgotten, test, *, repeats=3, seed=0, shadows=0, show_progress=False):
    """Does ``model`` tell the pairs it forgot from held-out ones any better
    than a retrain does?

    Retrains ``repeats`` models on ``model.user_items`` with the model's own
    hyperparameters (seeds ``seed, seed + 1, ...``) and measures, for the
    model and each retrain, how well both attackers of
    :func:`membership_inference` tell ``forgotten`` from the pairs of
    ``test`` that belong to the same users (:func:`held_out_pairs`).  With
    ``shadows``, the likelihood-ratio attacker too (:func:`fit_shadows`,
    online and offline), whose shadows are further fits.

    The verdict is honest about sample size (docs/design.md, section 7,
    "Sample size"): the gap allowed includes what sampling the pairs alone
    allows (DeLong's standard error of the paired AUC difference, 95 %), a
    gap below the retrains (over-removal, were it real) counts as a gap
    like one above them, and with too few pairs for any AUC interval to be
    narrower than ``MAX_HALF_WIDTH`` the verdict is
    ``Verdict.TOO_FEW_PAIRS``, not yes or no.

    Parameters
    ----------
    model : fitted ImplicitALS or ExplicitALS
        The model after the forget.
    forgotten : (users, items) or scipy.sparse matrix
        A sparse matrix also gives the pairs' values to the shadow models
        (otherwise they take the mean stored value of ``model``).
    test : scipy.sparse matrix
        Held-out interactions, never trained on.
    repeats : int >= 1
    seed : int
        Also seeds the shadows.
    shadows : int
        0 (default): no likelihood-ratio attack; else the number of shadow
        models, even and at least 4 (:data:`DEFAULT_SHADOWS` is a good
        start).  Costs ``shadows`` fits on top of the ``repeats`` retrains.
    show_progress : bool
        A progress bar on stderr, one step per retrain.

    Returns
    -------
    Completeness

    Raises
    ------
    ValueError
        When no user of ``forgotten`` has a held-out pair.
    """
    shape = check_model(model, "model")
    pairs = checked_pairs(forgotten, shape, "forgotten")
    test = check_matrix(test, "test", shape)
    repeats = check_positive_int(repeats, "repeats")
    shadows = 0 if shadows == 0 else check_shadows(shadows)
    held = held_out_pairs(test, pairs[0])
    if not len(held[0]):
        raise ValueError("none of the forgotten pairs' users has a pair in test")
    attack = None
    if shadows:
        # the held-out pairs with their values in test (the shadows train on them)
        held_matrix = sp.csr_matrix((values_at(test, *held)[0], held), shape=shape)
        attack = fit_shadows(model, forgotten, held_matrix, shadows=shadows, seed=seed)
    params = model.hyperparameters()
    retained = model.user_items.copy()

    def measure(fitted):
        values = attacker_values(fitted, pairs, held)
        if attack is not None:
            values.update(attack.values(fitted))
        found = {key: two_sample_auc(*v) for key, v in values.items()}
        found.update(n_forgotten=len(pairs[0]), n_unseen=len(held[0]))
        return found, values

    forget, forget_values = measure(model)
    retrains = []
    with tqdm(total=repeats, desc="completeness retrains", disable=not show_progress) as bar:
        for r in range(repeats):
            retrain = type(model).from_hyperparameters(
                **{**params, "random_state": seed + r}).fit(retained, show_progress=False)
            found, values = measure(retrain)
            retrains.append(found)
            if r == 0:
                intervals = sampling_intervals(forget_values, values)
            bar.update()
    found = gaps(forget, retrains, se={key: v["gap_se"] for key, v in intervals.items()})
    n_f, n_u = len(pairs[0]), len(held[0])
    verdict = verdict_of(found, n_f, n_u)
    return Completeness(forget, retrains, found,
                        None if verdict is Verdict.TOO_FEW_PAIRS else verdict is Verdict.COMPLETE,
                        shadows, intervals, verdict, min_forgotten_pairs(n_u))
