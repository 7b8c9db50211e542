"""How a request re-converges: the validated options and the constants
of the washout and the pending policy (docs/design.md, section 5)."""
import math
from dataclasses import dataclass

import numpy as np

from ..validation import check_positive_int

STRATEGIES = ("masked", "full")
# Over-relaxation of the washout sweeps.  For two-block Gauss-Seidel a mode
# that a plain sweep contracts by 1 - e is contracted by about
# 1 - e w / (2 - w) once the sweeps settle into their rhythm.  Measured on
# MovieLens 100K (random, core and edge sets of 1 and 5 %) and a 2M-entry
# synthetic set: one sweep at 1.9 leaves a trace after core sets, two at
# 1.9 overshoot after random ones (the forgotten pairs then score below a
# retrain's), two at 1.7 were within a retrain's spread on all of them
# under the score and rank attackers.  The per-example attacker found two
# at 1.7 too weak at factors 64, alpha 1: random 1 % sets 0-5 above every
# one of eight retrain seeds in 4 of 6, past the limit in 4.  Two at 1.8
# are within on all six there, on random 1 % sets 0-3 and edge sets at
# factors 32, alpha 5, and no worse on core ones; the 200x3 sequences too
# (docs/design.md, section 5).  All of these constants were chosen at
# those two settings, and they do not carry over to factors 64, alpha 5,
# where the default forget keeps a trace (bench/results/settings-lira.md;
# docs/design.md, section 5, "At settings it was not tuned on").
RELAXATION = 1.8
WASHOUT_SWEEPS = 2
# A washout of many removals at once (implicit and ALS-WR models): three
# sweeps at 1.9.  Under the per-example likelihood-ratio attacker
# (bench/results/audit.md) two at 1.7 had left random 5 % sets above every
# retrain seed (7 of 8 sets at both MovieLens settings); three at 1.9
# brought 7 of those 8 within the retrains' spread, and random 2 % sets
# too, while at 1 % they overshoot a core set.  ALS-WR models run fewer
# (below).  Plain explicit models refit (washout_for).
LARGE_WASHOUT_FRACTION = 0.02
LARGE_WASHOUT_SWEEPS = 3
LARGE_RELAXATION = 1.9
# ALS-WR's washouts: two sweeps at any size, at 1.9 below
# LARGE_WASHOUT_FRACTION and 1.8 from it.  Its trace grows with the sweeps
# (they converge it past a retrain: its test RMSE falls below one), so it
# takes fewer than an implicit model.  Mean over random sets 0-5 of
# MovieLens 100K of the LiRA AUC less the mean of eight retrain seeds'
# (standard error across sets; bench/results/parity-rate.md and /tmp
# prototypes over its attackers):
#   1 %: two at 1.8 +0.007 (0.003), offline +0.013 (0.004); two at 1.9
#        +0.002 (0.003), +0.005 (0.004);
#   2 %: three at 1.9 +0.006 (0.002), +0.007 (0.002); two at 1.8 +0.004
#        (0.002), +0.003 (0.002); two at 1.9 -0.002 (0.002), -0.005 (0.002);
#   5 %: three at 1.9 +0.003 (0.001), +0.004 (0.001); two at 1.8 +0.001
#        (0.001), +0.001 (0.001); two at 1.9 -0.004 (0.001), -0.007 (0.001).
WEIGHTED_RELAXATION = 1.9
WEIGHTED_LARGE_RELAXATION = 1.8
# The relaxed sweeps need (near-)exact row solves: over-relaxing a 3-step CG
# solve of an ill-conditioned row (implicit with alpha 5) extrapolates a
# poor direction and leaves a measurable trace.  CG models solve them by CG
# to 3 % of the initial residual, capped at 16 steps (cheaper than Cholesky
# at k >= 64 and as complete); Cholesky models solve exactly.
RELAXED_CG_RTOL = 0.03
RELAXED_CG_STEPS = 16
# Removed entries a model may hold without a washout, as a fraction of its
# stored entries: the request that reaches it washes out everything pending.
# At 0.1 % the pending pairs are too few to move membership inference over
# all of a model's forgotten pairs, and on MovieLens 100K 200 requests of 3
# pairs each pay 7 washouts.
PENDING_FRACTION = 1e-3
# Relaxed washouts a model may run between fits: the next one refits.  Each
# washout converges the rest of the model a little further than its fit
# did, and on a model converged that far what is left of a removal lies in
# directions ALS creeps along.  On MovieLens 100K, 200 requests of 3 random
# pairs (7 washouts, then settle()) on six splits at both settings
# (factors 32, alpha 5 and 64, 1): with relaxed washouts only, the settled
# model was past the limit of some attacker on 6 of 12 (LiRA up to +0.021
# at factors 64), the served one on 10 of 12; with a refit after every
# relaxed washout, settled within on 12 of 12, served on 9 (the pending
# pairs and the last washout's: LiRA up to +0.012; 10 with RELAXATION
# 1.8); after every second, settled within on 11 (docs/design.md, section 5).
RELAXED_BETWEEN_FITS = 1
# A solved row's gradient bound carries a float-rounding slack that grows
# with its entries; past this fraction of the tolerance the row is measured
# exactly instead, or the bounds that later solves add would soon push it
# over the tolerance and cost a re-check anyway.
EXACT_SLACK = 0.25
PHASES = ("local", "washout", "sweeps")
# A model's washout policy: "default" runs washout_for's rule; "refit" refits
# at every washout.  fastunlearn.audit.calibrate_washout picks "refit" for a
# setting where a probe finds the relaxed washout leaving a trace (factors
# 64, alpha 5 on MovieLens 100K; docs/design.md, section 5, "Calibrating
# the washout per model").
WASHOUT_POLICIES = ("default", "refit")


@dataclass(frozen=True)
class ForgetOptions:
    """How a request re-converges (validated once, shared by every entry point).

    Attributes
    ----------
    tolerance : float or None
        Target for the certificate's ``max_row``; None: the certificate
        before the request.
    max_sweeps : int
        Most masked (or full) sweeps after the local phase and the washout.
    strategy : {"masked", "full"}
    missing : {"raise", "ignore"}
    washout : "auto", "refit" or int
        ``"auto"``: wash out when the pending removals (this one included)
        reach :func:`pending_limit`; ``"refit"``: wash out now by refitting
        (:data:`REFIT`); an int ``N > 0``: wash out now with ``N``
        over-relaxed sweeps; 0: not now (the removal stays pending).
    exact_certificate : bool
    show_progress : bool
    pending_limit : int or None
        Pending entries that trigger an ``"auto"`` washout; None:
        :data:`PENDING_FRACTION` of the stored entries.
    """

    tolerance: float = None
    max_sweeps: int = 50
    strategy: str = "masked"
    missing: str = "raise"
    washout: object = "auto"
    exact_certificate: bool = False
    show_progress: bool = False
    pending_limit: int = None

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.missing not in ("raise", "ignore"):
            raise ValueError(f"missing must be 'raise' or 'ignore', got {self.missing!r}")
        object.__setattr__(self, "max_sweeps",
                           check_positive_int(self.max_sweeps, "max_sweeps", minimum=0))
        object.__setattr__(self, "washout", check_washout(self.washout))
        if self.pending_limit is not None:
            object.__setattr__(self, "pending_limit",
                               check_positive_int(self.pending_limit, "pending_limit"))
        if self.tolerance is not None:
            tolerance = float(self.tolerance)
            if not np.isfinite(tolerance) or tolerance < 0:
                raise ValueError(f"tolerance must be finite and >= 0, got {tolerance}")
            object.__setattr__(self, "tolerance", tolerance)

    def washout_now(self, objective, pending, nnz, washouts=0, policy="default"):
        """The :class:`Washout` to run now (None: none in this request), with
        ``pending`` removed entries not yet washed out, this request's
        included, on a model of ``nnz`` stored entries under ``objective``
        that has run ``washouts`` relaxed washouts since its last fit and
        follows the washout ``policy``."""
        if self.washout == "auto":
            limit = pending_limit(nnz) if self.pending_limit is None else self.pending_limit
            return washout_for(objective, pending, nnz, washouts, policy) \
                if pending and pending >= limit else None
        return self.washout_given()

    def washout_given(self):
        """The washout asked for by name or count (None for ``"auto"`` and 0)."""
        if self.washout == "refit":
            return REFIT
        if self.washout == "auto" or not self.washout:
            return None
        return Washout(self.washout, RELAXATION)


@dataclass(frozen=True)
class Washout:
    """Over-relaxed sweeps at ``relaxation``, then one plain sweep and a
    measurement; or, with ``refit``, the model's own fit on the retained
    data from its seed's initial factors (``ModelSpec.iterations`` sweeps)
    and a measurement (docs/design.md, section 5)."""

    sweeps: int
    relaxation: float
    refit: bool = False

    def full_sweeps(self, spec):
        """Sweeps over every row this washout runs on a model of ``spec``."""
        return spec.iterations if self.refit else self.sweeps + 1

    def reported(self, spec):
        """The reports' ``washout``: the relaxed sweeps, or a refit's sweeps."""
        return spec.iterations if self.refit else self.sweeps


REFIT = Washout(0, 1.0, refit=True)


def washout_for(objective, pending, nnz, washouts=0, policy="default"):
    """The washout of ``pending`` removed entries out of ``nnz`` stored
    ones, under ``objective``, on a model that has run ``washouts`` relaxed
    washouts since its last fit and follows the washout ``policy`` (one of
    :data:`WASHOUT_POLICIES`): the one place that knows it.

    A model whose policy is ``"refit"`` refits at every washout.  Under
    ``"default"``, plain explicit models (an unweighted penalty on ratings)
    are refitted: their objective overfits as ALS converges, and every relaxed washout
    measured either left a membership trace or converged the model past a
    retrain's test error.  Other models refit once they have run
    :data:`RELAXED_BETWEEN_FITS` relaxed washouts since their fit (docs/design.md,
    section 5).  ALS-WR models run :data:`WASHOUT_SWEEPS` sweeps at any size:
    at :data:`WEIGHTED_RELAXATION` below :data:`LARGE_WASHOUT_FRACTION`,
    at :data:`WEIGHTED_LARGE_RELAXATION` from it."""
    if check_policy(policy) == "refit" or not (objective.implicit or objective.weighted_penalty) \
            or washouts >= RELAXED_BETWEEN_FITS:
        return REFIT
    large = pending >= LARGE_WASHOUT_FRACTION * nnz
    if not objective.implicit:
        return Washout(WASHOUT_SWEEPS,
                       WEIGHTED_LARGE_RELAXATION if large else WEIGHTED_RELAXATION)
    if large:
        return Washout(LARGE_WASHOUT_SWEEPS, LARGE_RELAXATION)
    return Washout(WASHOUT_SWEEPS, RELAXATION)


def check_washout(value):
    """``"auto"``, ``"refit"`` or an integer >= 0 (the ``washout`` option)."""
    if isinstance(value, str):
        if value in ("auto", "refit"):
            return value
        raise TypeError(f"washout must be 'auto', 'refit' or an integer >= 0, got {value!r}")
    return check_positive_int(value, "washout", minimum=0)


def check_policy(value):
    """One of :data:`WASHOUT_POLICIES` (a model's ``washout_policy``)."""
    if not isinstance(value, str) or value not in WASHOUT_POLICIES:
        raise ValueError(f"washout_policy must be one of {WASHOUT_POLICIES}, got {value!r}")
    return value


def washouts_after(washouts, relaxed):
    """Relaxed washouts since the last fit once ``relaxed`` (a
    :class:`Washout`, or None) has run on a model that had run ``washouts``."""
    if relaxed is None:
        return washouts
    return 0 if relaxed.refit else washouts + 1


def pending_limit(nnz):
    """Default number of pending removed entries that triggers a washout."""
    return max(1, math.ceil(PENDING_FRACTION * nnz))
