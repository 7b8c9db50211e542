"""Which washout a model's setting needs, measured on its own data
(docs/design.md, section 5, "Calibrating the washout per model").

The relaxed washout's sweeps and relaxations were tuned at two settings on
MovieLens 100K.  At others, factors 64 and alpha 5 among them, it leaves
part of the removed pairs' influence in the directions ALS creeps along,
and the per-example attacker finds it.  :func:`calibrate_washout` measures
that trace with a probe that needs no attacker and no held-out data:

1. Draw probe pairs ``P`` at random from the model's interactions, each with
   a partner ``H``: another interaction of the same user.  The partners are
   held out of every fit below; they stand in for pairs the model never saw.
2. Fit the model's hyperparameters on the data without ``H`` (the probe
   fit), and, from the same seed, on the data without ``H`` and ``P`` (the
   reference: a retrain after forgetting ``P``).
3. Forget ``P`` from a copy of the probe fit with the default washout.
4. Per probe pair, ``d = (f(P) - r(P)) - (f(H) - r(H))``: how much more the
   forget scores the pair than the reference does, less the same for its
   user's held-out partner (which cancels what moved for the user as a
   whole).  The same for the probe fit before the forget gives ``o``, the
   membership signal there was to remove.

The residual trace is ``mean(d) / mean(o)``.  A washout that leaves more
than :data:`TRACE_LIMIT` of the signal, by more than :data:`TRACE_Z`
standard errors, gets the model the ``"refit"`` policy: every washout then
refits (a retrain's cost and a retrain's membership signal).
"""
import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from ..models import MatrixFactorization
from ..pairs import check_model
from ..validation import check_fraction, check_positive_int
from .lira import _scores

# On MovieLens 100K (80 % of each user's interactions, four random 1 %
# probes, splits 0-5) the default washout left 0.069-0.084 of the signal at
# factors 64, alpha 5, where the per-example attacker measures a bias of
# +0.021 AUC; at the settings where it measures none, at most 0.041
# (factors 32, alpha 5), 0.021 (48, 2), 0.004 (64, 1), 0.046 (16, 10) and
# 0.040 on ALS-WR, whose signal is small (z 1.2).  Factors 32, alpha 1
# (where the washout removes more than a retrain) stays below 0.  The limit
# sits between; docs/design.md, section 5.
TRACE_LIMIT = 0.05
TRACE_Z = 2.0
DEFAULT_PROBES = 4


@dataclass(frozen=True)
class WashoutCalibration:
    """What :func:`calibrate_washout` measured, and the policy it chose.

    Attributes
    ----------
    policy : {"default", "refit"}
    trace : float
        The default washout's residual trace: the mean over the probe pairs
        of ``d`` over that of ``o`` (see the module); 0 for a forget that
        lands on the reference, 1 for one that removed nothing.
    standard_error : float
        Of ``trace``, across the probe pairs.
    signal : float
        The mean of ``o``, in score units: what the probe fit remembered of
        its probe pairs beyond a retrain.
    pairs : int
        Probe pairs forgotten, over all probes.
    probes : int
    washout : int
        The relaxed sweeps the default washout ran in the last probe (0: it
        refitted).
    seconds : float
        Wall time of the whole calibration (fits, forgets and scores).
    """

    policy: str
    trace: float
    standard_error: float
    signal: float
    pairs: int
    probes: int
    washout: int
    seconds: float

    @property
    def z(self):
        """``trace`` in standard errors."""
        return self.trace / self.standard_error if self.standard_error > 0 else math.inf

    def to_dict(self):
        return {**asdict(self), "z": self.z}


def calibrate_washout(model, *, fraction=0.01, probes=DEFAULT_PROBES, seed=0, apply=True):
    """Measure whether the default washout leaves a trace at ``model``'s
    setting, and set its ``washout_policy`` to match.

    Cost: ``probes + 1`` fits of ``model``'s hyperparameters on its own
    interactions, and ``probes`` forgets of ``fraction`` of them.  The model
    itself is not changed, except for its policy when ``apply``.

    Parameters
    ----------
    model : fitted ImplicitALS or ExplicitALS
        Holding its interactions (``fit`` or ``from_factors``).
    fraction : float in (0, 1)
        Probe pairs per probe, as a fraction of the stored interactions
        (with their partners, twice as many interactions are drawn).
        The default probes the washout of requests below 2 % of them; 0.05
        probes the larger washout.
    probes : int >= 1
        Probes whose pairs are pooled (each a reference fit and a forget).
    seed : int
        Draws the probe pairs, and seeds the fits when the model has no
        integer ``random_state`` of its own.
    apply : bool
        Set ``model.washout_policy`` to the policy chosen.

    Returns
    -------
    WashoutCalibration

    Raises
    ------
    TypeError
        For a model that is not a local ImplicitALS or ExplicitALS (a
        distributed one: calibrate its ``to_local()`` copy), or a bad
        ``probes``.
    NotFittedError
        For a model without factors or interactions.
    ValueError
        For a bad ``fraction`` or ``probes``, or data with too few users of
        two or more interactions to draw the probe pairs from.
    """
    start = time.perf_counter()
    if not isinstance(model, MatrixFactorization):
        raise TypeError(f"calibrate_washout takes a local ImplicitALS or ExplicitALS, got "
                        f"{type(model).__name__}; calibrate its to_local() copy")
    check_model(model, "model")  # factors and interactions
    fraction = check_fraction(fraction)
    probes = check_positive_int(probes, "probes")
    data = model.user_items
    n = max(1, round(fraction * data.nnz))
    rng = np.random.default_rng(seed)
    pairs, partners = probe_pairs(data, n * probes, rng)

    params = model.hyperparameters()
    if not isinstance(params.get("random_state"), (int, np.integer)):
        params["random_state"] = seed  # reference and probe fit from one seed
    estimator = type(model).from_hyperparameters
    base = without_entries(data, partners)
    probe_fit = estimator(**params).fit(base, show_progress=False)
    d, o = [], []
    washout = 0
    for k in range(probes):
        part = slice(k * n, (k + 1) * n)
        p_users, p_items = entry_pairs(data, pairs[part])
        h_users, h_items = entry_pairs(data, partners[part])
        reference = estimator(**params).fit(without_entries(data, np.concatenate(
            [partners, pairs[part]])), show_progress=False)
        forgot = copy.deepcopy(probe_fit)  # a fresh fit: the default policy
        report = forgot.forget(p_users, p_items, pending_limit=1)
        washout = report.washout if not report.refit else 0

        def excess(m):
            return (_scores(m, p_users, p_items) - _scores(reference, p_users, p_items)) \
                - (_scores(m, h_users, h_items) - _scores(reference, h_users, h_items))
        d.append(excess(forgot))
        o.append(excess(probe_fit))
    d, o = np.concatenate(d), np.concatenate(o)
    signal = float(o.mean())
    if signal > 0:
        trace = float(d.mean()) / signal
        se = float(d.std(ddof=1)) / math.sqrt(len(d)) / signal if len(d) > 1 else math.inf
    else:  # nothing remembered beyond a retrain: nothing a washout could leave
        trace, se = 0.0, math.inf
    policy = "refit" if trace > TRACE_LIMIT and trace > TRACE_Z * se else "default"
    if apply:
        model.washout_policy = policy
    return WashoutCalibration(policy, trace, se, signal, len(d), int(probes), int(washout),
                              time.perf_counter() - start)


def probe_pairs(csr, count, rng, rounds=16):
    """``count`` probe entries of ``csr`` (positions in its data) and a
    partner for each, another entry of the same row; no entry is drawn
    twice.  Draws in ``rounds`` at most, each from the entries still free."""
    indptr = csr.indptr.astype(np.int64)
    degree = np.diff(indptr)
    used = np.zeros(csr.nnz, dtype=bool)
    pairs, partners = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    need = count
    for _ in range(rounds if 2 * count <= csr.nnz else 0):
        free = np.flatnonzero(~used)
        drawn = rng.choice(free, size=min(len(free), 2 * need), replace=False)
        rows = np.searchsorted(indptr, drawn, side="right") - 1
        drawn, rows = drawn[degree[rows] >= 2], rows[degree[rows] >= 2]
        # an offset of 1 .. degree-1 within the row: never the entry itself
        offset = (drawn - indptr[rows] + 1 + rng.integers(0, degree[rows] - 1)) % degree[rows]
        partner = indptr[rows] + offset
        drawn, partner = drawn[~used[partner]], partner[~used[partner]]
        values, counts = np.unique(np.concatenate([drawn, partner]), return_counts=True)
        repeated = values[counts > 1]
        clean = ~(np.isin(drawn, repeated) | np.isin(partner, repeated))
        drawn, partner = drawn[clean][:need], partner[clean][:need]
        used[drawn] = used[partner] = True
        pairs.append(drawn)
        partners.append(partner)
        need -= len(drawn)
        if not need:
            break
    if need:
        raise ValueError(f"too few users with two or more interactions to draw {count} probe "
                         "pairs and their partners; use a smaller fraction")
    return np.concatenate(pairs), np.concatenate(partners)


def entry_pairs(csr, entries):
    """(users, items) of the entries at positions ``entries`` of ``csr``'s data."""
    users = np.searchsorted(csr.indptr, entries, side="right") - 1
    return users.astype(np.int64), csr.indices[entries].astype(np.int64)


def without_entries(csr, entries):
    """``csr`` without the entries at positions ``entries`` of its data."""
    keep = np.ones(csr.nnz, dtype=bool)
    keep[entries] = False
    rows, _ = entry_pairs(csr, np.flatnonzero(~keep))
    counts = np.diff(csr.indptr) - np.bincount(rows, minlength=csr.shape[0])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return sp.csr_matrix((csr.data[keep], csr.indices[keep], indptr), shape=csr.shape)
