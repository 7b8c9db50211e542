"""How far the completeness test's AUCs can be trusted: DeLong standard
errors, the gap sampling alone allows, and the size below which the test
cannot tell (docs/design.md, section 7, "Sample size").

Part of :mod:`fastunlearn.audit`.
"""
import math
from enum import Enum

import numpy as np

# Two-sided 95 % normal quantile: the intervals and allowed gaps are 95 %.
Z95 = 1.959963984540054
# The widest 95 % interval a no-signal AUC may have for the test to judge:
# about the smallest trace a forget is known to leave (MovieLens 100K,
# random 1 %, washout=0: +0.047 score, +0.048 rank AUC; docs/benchmarks.md).
# An interval wider than that cannot tell such a forget from a complete one.
MAX_HALF_WIDTH = 0.05


class Verdict(str, Enum):
    """The completeness test's verdict: a third value, not a bool, for a
    pair set too small to judge.  A ``str``, so it prints and serialises to
    JSON as its value."""

    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
    TOO_FEW_PAIRS = "too few pairs to judge"

    def __str__(self):
        return self.value


def _components(pos, neg):
    """DeLong's structural components: per positive, the share of negatives
    below it; per negative, the share of positives above it (ties half)."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    below = np.searchsorted(neg_sorted, pos, "left")
    ties = np.searchsorted(neg_sorted, pos, "right") - below
    v10 = (below + 0.5 * ties) / len(neg)
    above = len(pos) - np.searchsorted(pos_sorted, neg, "right")
    ties = np.searchsorted(pos_sorted, neg, "right") - np.searchsorted(pos_sorted, neg, "left")
    v01 = (above + 0.5 * ties) / len(pos)
    return v10, v01


def auc_standard_error(pos, neg):
    """DeLong's standard error of the AUC separating ``pos`` from ``neg``.

    ``var = S10 / m + S01 / n`` with ``S10``, ``S01`` the sample variances
    (ddof 1) of the structural components over the ``m`` positives and ``n``
    negatives (DeLong, DeLong and Clarke-Pearson, Biometrics 1988).  NaN
    with fewer than two of either.
    """
    if len(pos) < 2 or len(neg) < 2:
        return float("nan")
    v10, v01 = _components(pos, neg)
    return math.sqrt(np.var(v10, ddof=1) / len(v10) + np.var(v01, ddof=1) / len(v01))


def paired_difference_se(pos_a, neg_a, pos_b, neg_b):
    """DeLong's standard error of ``AUC(a) - AUC(b)`` for two scorings of
    the *same* pairs (element ``j`` of ``pos_a`` and of ``pos_b`` is the
    same pair): the covariance of the two AUCs is subtracted, so two models
    that rank the pairs alike differ by little whatever the sample size.
    NaN with fewer than two positives or negatives."""
    if len(pos_a) != len(pos_b) or len(neg_a) != len(neg_b):
        raise ValueError(f"the two scorings must be of the same pairs, got {len(pos_a)} and "
                         f"{len(pos_b)} positives, {len(neg_a)} and {len(neg_b)} negatives")
    if len(pos_a) < 2 or len(neg_a) < 2:
        return float("nan")
    a10, a01 = _components(pos_a, neg_a)
    b10, b01 = _components(pos_b, neg_b)
    # var of a difference of components: var(a) + var(b) - 2 cov(a, b)
    var = np.var(a10 - b10, ddof=1) / len(a10) + np.var(a01 - b01, ddof=1) / len(a01)
    return math.sqrt(max(float(var), 0.0))


def null_half_width(n_pos, n_neg, z=Z95):
    """Half-width of the interval of an AUC of 0.5 from ``n_pos`` and
    ``n_neg`` pairs: ``z * sqrt((n_pos + n_neg + 1) / (12 n_pos n_neg))``,
    the exact variance of the Mann-Whitney statistic when nothing separates
    the two samples (and Hanley and McNeil's at AUC 0.5), the widest an
    AUC's interval is.  Infinite without pairs."""
    if n_pos < 1 or n_neg < 1:
        return math.inf
    return z * math.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg))


def min_forgotten_pairs(n_neg, max_half_width=MAX_HALF_WIDTH, z=Z95):
    """The fewest positives for which :func:`null_half_width` against
    ``n_neg`` negatives is at most ``max_half_width``; None when no number
    is enough (too few negatives).  With unlimited negatives (``math.inf``) it is
    ``z**2 / (12 max_half_width**2)``: 129 pairs at the defaults; as many
    positives as negatives needs 257 of each."""
    # n_pos (12 n_neg h^2 / z^2 - 1) >= n_neg + 1, from null_half_width <= h
    slope = 12.0 * n_neg * max_half_width ** 2 / z ** 2 - 1.0
    if n_neg < 1 or slope <= 0:
        return None
    if math.isinf(n_neg):  # the limit
        return math.ceil(z ** 2 / (12.0 * max_half_width ** 2))
    n = max(1, math.ceil((n_neg + 1) / slope))
    while null_half_width(n, n_neg, z) > max_half_width:  # floating point at the edge
        n += 1
    return n


def too_few_pairs(n_pos, n_neg, max_half_width=MAX_HALF_WIDTH):
    """Whether ``n_pos`` forgotten and ``n_neg`` held-out pairs are too few
    for the completeness test to judge (:func:`null_half_width` above
    ``max_half_width``)."""
    return null_half_width(n_pos, n_neg) > max_half_width


def reading(gap, allowed):
    """What a gap (forget's AUC minus the retrain's) says, in words."""
    if math.isnan(gap):
        return "not measured"
    if gap > allowed:
        return "above the retrains: the forget left a trace of the forgotten pairs"
    if gap < -allowed:
        return ("below the retrains: over-removal (the forgotten pairs look less like "
                "training data than after a retrain)")
    if gap < 0:
        return ("below the retrains, within what sampling and seeds allow: no evidence "
                "of over-removal")
    return "within what sampling and seeds allow"
