"""Completeness against a per-example attacker: likelihood-ratio membership
inference with shadow models (LiRA, Carlini et al., S&P 2022), in the form
used to audit unlearning (U-LiRA, Hayes et al., SaTML 2025).

The population attackers of :mod:`.membership` hold one threshold for every
pair.  This one calibrates each pair on its own: shadow models, fitted with
the audited model's hyperparameters on the retained data plus a random half
of the candidate pairs, show how that pair scores when it was trained on
(IN) and when it was not (OUT).  A pair whose score in the audited model sits
nearer its IN scores than its OUT scores looks like a member.

The candidates are the forgotten pairs and held-out pairs of the same users.
Each candidate is IN in exactly half of the shadows (chosen independently per
candidate), so every shadow holds about half of them.  Shadows are fits:
``n`` shadows cost ``n`` fits of the audited model on the retained data
(section 7 of docs/design.md gives the figures), so the attack is off in the
calls that already fit several models unless ``shadows`` asks for it.

Part of :mod:`fastunlearn.audit` (docs/design.md, section 7).
"""
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from ..pairs import check_model, is_stored, pair_keys, two_sample_auc
from ..validation import check_positive_int
from .sets import checked_pairs

# A good number of shadows: on MovieLens 100K (random 5 %, both audited
# settings) 16 give the forget's and the retrains' AUCs within 0.004 of what
# 32 give, and its gap to the retrain within 0.001, at half the cost.
DEFAULT_SHADOWS = 16
# A pair's variance below this share of the mean variance over pairs counts
# as this share: pairs that every model scores alike (users with no data
# left, whose factors are zero) get a finite statistic (zero, when the IN
# and OUT means agree too).
_VARIANCE_FLOOR = 1e-12


def check_shadows(shadows, name="shadows"):
    """``shadows`` as an int: even and at least 4 (each candidate then has two
    IN and two OUT scores at least, enough for a variance of each)."""
    shadows = check_positive_int(shadows, name, minimum=4)
    if shadows % 2:
        raise ValueError(f"{name} must be even (each candidate is IN in exactly half of "
                         f"the shadows), got {shadows}")
    return shadows


@dataclass(frozen=True)
class LikelihoodRatio:
    """AUCs of the likelihood-ratio attacker telling forgotten pairs from
    held-out pairs of the same users (see :func:`likelihood_ratio`).

    As for :class:`MembershipInference`, a complete forget matches a
    retrain's AUCs, not 0.5.

    Attributes
    ----------
    lira_auc : float
        Online attack: each pair's log likelihood ratio of its score under
        the Gaussian of its IN scores against that of its OUT scores (its own
        two means, their pooled variance).
    lira_offline_auc : float
        Offline attack (OUT shadows only): how many of its OUT standard
        deviations the pair's score lies beyond its OUT mean, towards what
        training on the pair pulls it to (its rating, or 1 for implicit
        feedback, whose scores estimate a preference of 1).
    n_forgotten, n_held_out : int
        Pairs compared.
    shadows : int
    """

    lira_auc: float
    lira_offline_auc: float
    n_forgotten: int
    n_held_out: int
    shadows: int

    def to_dict(self):
        return asdict(self)


def lira_statistics(scores, members, target, pull=None):
    """Online and offline likelihood-ratio statistics of each candidate.

    Parameters
    ----------
    scores : ndarray (shadows, candidates)
        Each candidate's score under each shadow model.
    members : ndarray of bool, same shape
        Whether the shadow was trained on the candidate (IN).  Each candidate
        needs two IN and two OUT shadows at least.
    target : ndarray (candidates,)
        The candidates' scores under the audited model.
    pull : ndarray (candidates,), optional
        What training on a candidate pulls its score towards (its rating,
        or 1 for implicit feedback); None: upwards.

    Returns
    -------
    online, offline : ndarray of float64
        ``log N(t; mu_in, s2) - log N(t; mu_out, s2)`` with ``s2`` the pooled
        variance of the IN and OUT scores around their own means, and
        ``+-(t - mu_out) / s_out`` with ``s_out`` the OUT scores' standard
        deviation, the sign that of ``pull - mu_out`` (+ where it is 0 or
        ``pull`` is None).  Larger: more like a member.
    """
    scores = np.asarray(scores, dtype=np.float64)
    members = np.asarray(members, dtype=bool)
    target = np.asarray(target, dtype=np.float64)
    if scores.ndim != 2 or members.shape != scores.shape or target.shape != scores.shape[1:]:
        raise ValueError(f"scores {scores.shape}, members {members.shape} and target "
                         f"{target.shape} must be (shadows, n), (shadows, n) and (n,)")
    n_in = members.sum(axis=0)
    n_out = len(scores) - n_in
    if len(target) and (n_in.min() < 2 or n_out.min() < 2):
        raise ValueError("every candidate needs at least two IN and two OUT shadow scores")
    mu_in = np.where(members, scores, 0.0).sum(axis=0) / np.maximum(n_in, 1)
    mu_out = np.where(members, 0.0, scores).sum(axis=0) / np.maximum(n_out, 1)
    dev = scores - np.where(members, mu_in, mu_out)
    ss_in = np.where(members, dev * dev, 0.0).sum(axis=0)
    ss_out = np.where(members, 0.0, dev * dev).sum(axis=0)
    pooled = _floored((ss_in + ss_out) / np.maximum(n_in + n_out - 2, 1))
    var_out = _floored(ss_out / np.maximum(n_out - 1, 1))
    # the log ratio of two Gaussians of one variance; the normalisers cancel
    online = ((target - mu_out) ** 2 - (target - mu_in) ** 2) / (2.0 * pooled)
    offline = (target - mu_out) / np.sqrt(var_out)
    if pull is not None:
        # an explicit member is pulled towards its own rating, below the OUT
        # mean as often as above it
        offline = np.where(np.asarray(pull, dtype=np.float64) < mu_out, -offline, offline)
    return online, offline


def _floored(variance):
    mean = float(variance.mean()) if len(variance) else 0.0
    return np.maximum(variance, _VARIANCE_FLOOR * mean if mean > 0 else 1.0)


def _scores(model, users, items):
    """``x_u . y_i`` in float64: the implicit score, or the explicit model's
    predicted rating."""
    return np.einsum("ij,ij->i", model.user_factors[users], model.item_factors[items],
                     dtype=np.float64)


class ShadowModels:
    """The candidates' scores under shadow models, ready to attack any model
    holding the same retained data (see :func:`fit_shadows`).

    Attributes
    ----------
    users, items : ndarray of int64
        The candidates: the forgotten pairs first, then the held-out ones.
    n_forgotten : int
    scores : ndarray (shadows, candidates) of float64
    members : ndarray (shadows, candidates) of bool
        Which candidates each shadow was trained on.
    seeds : ndarray of int64
        Each shadow's ``random_state``.
    pull : ndarray of float64 or None
        What training on each candidate pulls its score towards (the
        offline attack's direction, see :func:`lira_statistics`).
    """

    def __init__(self, users, items, n_forgotten, scores, members, seeds, pull=None):
        self.users, self.items = users, items
        self.n_forgotten = int(n_forgotten)
        self.scores, self.members, self.seeds, self.pull = scores, members, seeds, pull

    @property
    def shadows(self):
        return len(self.scores)

    def attack(self, model):
        """:class:`LikelihoodRatio` of ``model`` (of the shape the shadows
        were fitted for)."""
        return self.attack_scores(self._target(model))

    def values(self, model):
        """What the attack sees of ``model``: ``{"lira_auc": (forgotten,
        held-out), "lira_offline_auc": (...)}``, the candidates' online and
        offline statistics, as :func:`~.membership.attacker_values` gives
        the score and rank attackers' (for their sampling intervals)."""
        online, offline = lira_statistics(self.scores, self.members, self._target(model),
                                          self.pull)
        n = self.n_forgotten
        return {"lira_auc": (online[:n], online[n:]),
                "lira_offline_auc": (offline[:n], offline[n:])}

    def _target(self, model):
        """The candidates' scores under ``model``, checked to cover them."""
        shape = check_model(model, "model")
        if self.users.size and (self.users.max() >= shape[0] or self.items.max() >= shape[1]):
            raise ValueError(f"model has {shape[0]} users x {shape[1]} items, fewer than "
                             "the shadows' candidates need")
        return _scores(model, self.users, self.items)

    def attack_scores(self, target):
        """:class:`LikelihoodRatio` of a model giving the candidates ``target``."""
        online, offline = lira_statistics(self.scores, self.members, target, self.pull)
        n = self.n_forgotten
        return LikelihoodRatio(two_sample_auc(online[:n], online[n:]),
                               two_sample_auc(offline[:n], offline[n:]),
                               n, len(target) - n, self.shadows)


def values_at(csr, users, items):
    """Stored values of ``csr`` (canonical) at the pairs, and where stored."""
    keys = pair_keys(csr)
    query = users * csr.shape[1] + items
    pos = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
    stored = is_stored(keys, query)
    values = np.where(stored, csr.data[pos] if len(keys) else 0.0, np.nan)
    return values, stored


def _pairs_and_values(pairs, shape, name):
    """(users, items, values or None) of a (users, items) tuple or a sparse
    matrix (whose stored values are the pairs' values)."""
    users, items = checked_pairs(pairs, shape, name)
    if sp.issparse(pairs):
        csr = sp.csr_matrix(pairs, copy=True)
        csr.sum_duplicates()
        return users, items, csr.tocoo().data.astype(np.float64)
    return users, items, None


def fit_shadows(model, forgotten, held_out, *, shadows=DEFAULT_SHADOWS, seed=0):
    """Fit the shadow models of the likelihood-ratio attack.

    The shadows' common data, the *retained* data, is ``model.user_items``
    without the candidate pairs (so the original model, which still holds
    the forgotten pairs, gives the same shadows as its forget or a retrain).
    Shadow ``s`` is a fresh model with ``model``'s hyperparameters and its
    own ``random_state`` fitted on the retained data plus the candidates IN
    in it; each candidate is IN in exactly half of the shadows, chosen at
    random.  Cost: ``shadows`` fits.  The retained data is assembled once
    with every candidate; each shadow's matrix is a mask over it.

    Parameters
    ----------
    model : fitted ImplicitALS or ExplicitALS
        Whose hyperparameters and data the shadows take.
    forgotten, held_out : (users, items) or scipy.sparse matrix
        The members to tell apart and the non-members (held-out pairs of the
        same users).  A sparse matrix gives the pairs' values (the
        interaction weight, or the rating of an explicit model); pairs
        without one take their value in ``model.user_items`` when stored
        there, else the mean stored value.  Held-out pairs that are also
        forgotten pairs are dropped.
    shadows : int, even, >= 4
    seed : int

    Returns
    -------
    ShadowModels

    Raises
    ------
    ValueError
        For a bad ``shadows`` or when ``forgotten`` or ``held_out`` is empty.
    """
    shape = check_model(model, "model")
    shadows = check_shadows(shadows)
    f_users, f_items, f_values = _pairs_and_values(forgotten, shape, "forgotten")
    h_users, h_items, h_values = _pairs_and_values(held_out, shape, "held_out")
    n_items = shape[1]
    f_keys, h_keys = f_users * n_items + f_items, h_users * n_items + h_items
    # a pair is one candidate: forgotten duplicates merged, held-out copies of
    # forgotten pairs dropped
    f_keys, first = np.unique(f_keys, return_index=True)
    h_keys, h_first = np.unique(h_keys, return_index=True)
    keep = ~np.isin(h_keys, f_keys)
    h_keys, h_first = h_keys[keep], h_first[keep]
    if not len(f_keys) or not len(h_keys):
        raise ValueError(f"the attack needs forgotten and held-out pairs, got {len(f_keys)} "
                         f"and {len(h_keys)}")
    keys = np.concatenate([f_keys, h_keys])
    users, items = keys // n_items, keys % n_items
    data = model.user_items
    values, stored = values_at(data, users, items)
    fallback = float(data.data.mean()) if data.nnz else 1.0
    given = np.concatenate([f_values[first] if f_values is not None
                            else np.full(len(f_keys), np.nan),
                            h_values[h_first] if h_values is not None
                            else np.full(len(h_keys), np.nan)])
    values = np.where(np.isnan(given), np.where(stored, values, fallback), given)

    # the union of the retained data and every candidate, sorted by key, with
    # each entry's candidate number (-1: retained)
    base_keys = pair_keys(data)
    retained = ~is_stored(np.sort(keys), base_keys)
    all_keys = np.concatenate([base_keys[retained], keys])
    order = np.argsort(all_keys, kind="stable")
    owner = np.concatenate([np.full(int(retained.sum()), -1, np.int64),
                            np.arange(len(keys), dtype=np.int64)])[order]
    all_values = np.concatenate([data.data[retained].astype(np.float64), values])[order]
    all_keys = all_keys[order]
    cols = (all_keys % n_items).astype(data.indices.dtype)
    row_counts = np.bincount(all_keys // n_items, minlength=shape[0])
    at = np.flatnonzero(owner >= 0)  # where the candidates sit in the union
    owner = owner[at]

    rng = np.random.default_rng(seed)
    # each candidate IN in exactly half of the shadows: the first half of
    # its own random order of them
    ranks = np.argsort(rng.random((len(keys), shadows)), axis=1).argsort(axis=1)
    members = (ranks < shadows // 2).T.copy()
    seeds = rng.integers(0, 2**31 - 1, size=shadows, dtype=np.int64)
    params = model.hyperparameters()
    scores = np.empty((shadows, len(keys)), dtype=np.float64)
    for s in range(shadows):
        mask = np.ones(len(all_keys), dtype=bool)
        mask[at] = members[s, owner]
        # rows lose their OUT candidates; the rest of the union is kept as is
        counts = row_counts - np.bincount(users[~members[s]], minlength=shape[0])
        indptr = np.concatenate([[0], np.cumsum(counts)])
        matrix = sp.csr_matrix((all_values[mask], cols[mask], indptr), shape=shape)
        shadow = type(model).from_hyperparameters(**{**params, "random_state": int(seeds[s])})
        shadow.fit(matrix, show_progress=False)
        scores[s] = _scores(shadow, users, items)
    # implicit scores estimate a preference of 1 for every stored pair
    pull = np.ones(len(keys)) if model.objective.implicit else values
    return ShadowModels(users, items, len(f_keys), scores, members, seeds, pull)


def likelihood_ratio(model, forgotten, held_out, *, shadows=DEFAULT_SHADOWS, seed=0):
    """How well a per-example attacker tells ``forgotten`` from ``held_out``
    pairs in ``model``: :func:`fit_shadows` (``shadows`` fits), then
    :meth:`ShadowModels.attack`.  To attack several models holding the same
    retained data (a forget, its retrains, the original), fit the shadows
    once and call ``attack`` on each.

    Returns
    -------
    LikelihoodRatio
    """
    return fit_shadows(model, forgotten, held_out, shadows=shadows, seed=seed).attack(model)
