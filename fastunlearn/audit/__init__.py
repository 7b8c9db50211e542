"""Auditing a forget: did it work, and what did it cost?

The four axes of the CURE4Rec benchmark (Chen et al., NeurIPS 2024), measured
for a model that forgot a set of interactions against a model retrained from
scratch on the retained data (docs/design.md, section 7):

* **completeness** -- :func:`membership_inference`: how well an attacker
  holding the model tells the forgotten interactions from pairs the model
  never saw.  Correct forgetting leaves exactly the retrained model's AUC;
  the original model (which trained on them) scores higher.
  :func:`likelihood_ratio` is the per-example attacker, calibrated on
  shadow models (the strongest, and the costliest: its shadows are fits).
* **utility** -- :func:`compare`: top-k metrics of two models, their
  deltas, the ratio of their losses on the same retained data and the
  overlap of their recommendation lists.
* **efficiency** -- wall time of forget versus retrain (:func:`report`).
* **fairness** -- :func:`fairness_gap`: utility of the most active users
  minus that of the others.

:func:`calibrate_washout` measures, on a model's own data, whether its
setting needs a stronger washout than the default, and sets its policy.

:func:`unlearning_set` draws the sets CURE4Rec forgets (random, core, edge)
and :func:`report` runs the whole comparison in one call.
:func:`model_report` audits one served model on held-out data (what
``fastunlearn audit`` prints).

Modules: :mod:`.sets` (the sets audited), :mod:`.membership`
(completeness), :mod:`.intervals` (its sampling error and verdict), :mod:`.lira` (the likelihood-ratio attacker),
:mod:`.compare` (utility), :mod:`.calibration` (the washout's probe), :mod:`.fairness` and :mod:`.report` (the whole
audit) and :mod:`.served` (one model).

Pairs of ids are passed as a tuple ``(users, items)`` of equal-length integer
arrays, or as a sparse matrix whose stored entries are the pairs.
"""
from .calibration import TRACE_LIMIT, WashoutCalibration, calibrate_washout
from .compare import Comparison, compare
from .fairness import FairnessGap, fairness_gap
from .intervals import (
                        MAX_HALF_WIDTH,
                        Verdict,
                        auc_standard_error,
                        min_forgotten_pairs,
                        null_half_width,
                        paired_difference_se,
)
from .lira import (
                   DEFAULT_SHADOWS,
                   LikelihoodRatio,
                   ShadowModels,
                   fit_shadows,
                   likelihood_ratio,
                   lira_statistics,
)
from .membership import (
                         ATTACKERS,
                         COMPLETENESS_FLOOR,
                         Completeness,
                         MembershipInference,
                         completeness,
                         gaps,
                         membership_inference,
                         rank_percentiles,
                         verdict_of,
                         within,
)
from .report import AuditReport, report, reports
from .served import ModelReport, model_report
from .sets import UNLEARNING_SETS, held_out_pairs, sample_unseen, unlearning_set

__all__ = [
    "ATTACKERS",
    "COMPLETENESS_FLOOR",
    "DEFAULT_SHADOWS",
    "MAX_HALF_WIDTH",
    "TRACE_LIMIT",
    "UNLEARNING_SETS",
    "Verdict",
    "AuditReport",
    "Comparison",
    "Completeness",
    "FairnessGap",
    "LikelihoodRatio",
    "MembershipInference",
    "ModelReport",
    "ShadowModels",
    "WashoutCalibration",
    "auc_standard_error",
    "calibrate_washout",
    "compare",
    "completeness",
    "fairness_gap",
    "fit_shadows",
    "gaps",
    "held_out_pairs",
    "likelihood_ratio",
    "lira_statistics",
    "membership_inference",
    "min_forgotten_pairs",
    "model_report",
    "null_half_width",
    "paired_difference_se",
    "rank_percentiles",
    "report",
    "reports",
    "sample_unseen",
    "unlearning_set",
    "verdict_of",
    "within",
]
