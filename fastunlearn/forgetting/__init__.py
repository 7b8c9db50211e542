"""Unlearning: remove interactions and re-converge what the removal disturbs
(warm-started, gradient-masked ALS with a washout; docs/design.md, section 3).

The target after removing a set D is a stationary point of the objective on
the retained data, which is what a retrain minimises.  Starting from the
current factors:

1. D leaves both orientations of the stored interactions (in place).
2. Local phase: the users in D, then the items in D, are solved exactly.
3. Washout: two over-relaxed sweeps (``x <- x + w (x* - x)``, ``w = 1.8``;
   three at 1.9 for an implicit model's washout of 2 % of its entries or
   more; two at 1.9 below 2 % and at 1.8 from it on ALS-WR models;
   near-exact solves), then one plain sweep with the model's own solver,
   then a measurement of proven bounds; a plain explicit model refits from
   its seed instead (:data:`REFIT`), and so does any model once it has run
   :data:`RELAXED_BETWEEN_FITS` relaxed washouts since its fit, and any
   model whose ``washout_policy`` is ``"refit"`` (what
   :func:`fastunlearn.audit.calibrate_washout` sets where a probe finds the
   relaxed washout leaving a trace).  A
   stationary point is not enough: ALS creeps along some directions, and
   the removed entries' influence survives there (membership inference
   finds it) long after every row gradient is small.  Over-relaxation
   moves those directions several times as fast as a plain sweep.  Small
   requests defer their washout: it runs once the removals it has not yet covered reach
   :data:`PENDING_FRACTION` of the stored entries, in the request that
   crosses that bound or in :meth:`MatrixFactorization.settle`; every report
   and receipt says whether the model is settled and what is pending.
4. Masked sweeps: each row carries an upper bound of its gradient norm.  A
   row whose bound exceeds the tolerance has its gradient recomputed, and
   is solved exactly when the gradient really exceeds it.  Exact row solves
   never increase the loss (block coordinate descent).  A solved row raises
   the bounds of the rows that share an entry with it, and in implicit mode
   (through the Gram matrix G every row of the other side sees) every row's
   by at most ``|dG x|``; rows whose bound stays below tolerance are not
   touched at all.  Once masked solves add up to a full sweep's rows, the
   engine switches to full sweeps, so that it never solves more rows than
   plain sweeps to the same certificate would.
5. The bounds are then a proven upper bound of the certificate after the
   request (``Certificate.exact`` is False): no pass over the data is needed
   to certify the result.  It is measured exactly instead when asked
   (``exact_certificate=True``) or when the bound misses the tolerance, so
   ``converged`` is never False for a model that is in fact within it.

The bounds, Gram matrices and per-user loss terms (``objective.Measures``)
are kept in the model's :class:`~fastunlearn.state.ModelState` and updated
only where a request disturbs them, so a request costs what it disturbs,
not a pass over the data.  The phases are written once (:mod:`.engine`) over a backend: the model's
state in memory (:class:`LocalBackend`) or blocks on a Dask cluster;
forgetting receives a :class:`~fastunlearn.spec.ModelSpec`, never an
estimator.

All of it is all-or-nothing: if anything fails or is interrupted, factors,
interactions and the pending count are restored exactly as they were.
"""
from .engine import Backend, Outcome, full_sweeps, reconverge, run
from .local import LocalBackend, gram_change_norm, gram_change_times, threads_for
from .options import (EXACT_SLACK, LARGE_RELAXATION, LARGE_WASHOUT_FRACTION,
                      LARGE_WASHOUT_SWEEPS, PENDING_FRACTION, PHASES, REFIT, RELAXATION,
                      RELAXED_BETWEEN_FITS, RELAXED_CG_RTOL, RELAXED_CG_STEPS, STRATEGIES,
                      WASHOUT_POLICIES, WASHOUT_SWEEPS, WEIGHTED_LARGE_RELAXATION,
                      WEIGHTED_RELAXATION, ForgetOptions, Washout, check_policy, check_washout,
                      pending_limit, washout_for, washouts_after)
from .reports import (ForgetReport, PartialFitReport, RunReport, SettleReport, digest_pairs,
                      make_receipt, run_fields, unique_pairs, verify_receipt)
from .requests import (add, check_missing, entries_of, pairs_from_request, pairs_of_rows,
                       remove, replaced_entries, request_rows, settle)

__all__ = [
    "EXACT_SLACK", "LARGE_RELAXATION", "LARGE_WASHOUT_FRACTION", "LARGE_WASHOUT_SWEEPS", "REFIT",
    "PENDING_FRACTION", "PHASES", "RELAXATION", "RELAXED_BETWEEN_FITS", "RELAXED_CG_RTOL",
    "RELAXED_CG_STEPS", "STRATEGIES", "WASHOUT_POLICIES", "WASHOUT_SWEEPS",
    "WEIGHTED_LARGE_RELAXATION", "WEIGHTED_RELAXATION",
    "Backend", "ForgetOptions", "ForgetReport", "LocalBackend", "Outcome", "PartialFitReport",
    "RunReport", "SettleReport", "Washout", "add", "check_missing", "check_policy", "check_washout", "digest_pairs",
    "entries_of", "full_sweeps", "gram_change_norm", "gram_change_times", "make_receipt",
    "pairs_from_request", "pairs_of_rows", "pending_limit", "reconverge", "remove",
    "replaced_entries", "request_rows", "run", "run_fields",
    "settle", "threads_for", "unique_pairs", "verify_receipt", "washout_for",
    "washouts_after",
]
