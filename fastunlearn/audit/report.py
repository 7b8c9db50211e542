"""The whole audit in one call: fit, forget, retrain, and the four axes.

Part of :mod:`fastunlearn.audit` (docs/design.md, section 7).
"""
import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from ..evaluation import holdout_split
from ..forgetting import check_washout
from ..models import ImplicitALS
from ..pairs import canonical, check_matrix
from ..validation import check_fraction, check_positive_int, check_sparse
from .compare import factor_losses, mean_overlap, per_user_utility, ranking_utility
from .fairness import utility_gap
from .lira import values_at, check_shadows, fit_shadows
from .membership import (
    ATTACKERS,
    COMPLETENESS_FLOOR,
    attack_held_out,
    attacker_values,
    gaps,
    membership_inference,
    sampling_intervals,
    verdict_of,
    within,
)
from .sets import UNLEARNING_SETS, held_out_pairs, sample_unseen, unlearning_set

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
        ``score_auc``, ``rank_auc``, ``n_forgotten`` and ``n_unseen``, and
        with shadow models the likelihood-ratio attack's ``lira_auc`` and
        ``lira_offline_auc`` (:class:`LikelihoodRatio`).  The forget is
        complete when every AUC is as close to the seed-0 retrain's as
        retrains with other seeds are (see ``retrain_spread``).
    unseen : dict
        The same against never-seen pairs (:func:`sample_unseen`).
    utility : dict
        Per stage the top-k metrics on the test data.
    efficiency : dict
        ``forget_seconds``, ``retrain_seconds`` (medians over repeats),
        ``ratio`` (forget / retrain), ``forget_runs``, ``retrain_runs``
        (seconds of each repeat), ``rows_solved`` (by the forget),
        ``rows_total_retrain`` (rows the retrain solves: iterations times
        users plus items), ``shadow_seconds`` (fitting the shadow models,
        0 without them), ``sweeps``, ``converged``, ``tolerance``,
        ``certificate`` (max_row per stage), ``loss_ratio`` (forget /
        retrain on the retained data) and ``overlap`` (top-k lists, see
        :func:`compare`).
    fairness : dict
        Per stage the :func:`fairness_gap` (groups from the original data).
    setting : dict
        Data size, unlearning set, hyperparameters and seeds.
    retrain_spread : dict
        Per measure (``score_auc``, ``rank_auc``, with shadows
        ``lira_auc`` and ``lira_offline_auc``, against unseen pairs
        ``unseen_score_auc`` and ``unseen_rank_auc``, ``ndcg``, ``recall``,
        ``gap``) its value for each retrain, one per repeat with
        seeds ``seed, seed + 1, ...``: how far retraining alone moves it.
    intervals : dict or None
        Per attacker of the held-out test, the 95 %
        intervals of the forget's and the seed-0 retrain's AUCs and the
        standard error of their difference (as
        :attr:`Completeness.intervals`); None: not measured.
    """

    completeness: dict
    unseen: dict
    utility: dict
    efficiency: dict
    fairness: dict
    setting: dict
    retrain_spread: dict
    intervals: dict = None

    def to_dict(self):
        return asdict(self)

    def completeness_gaps(self, floor=COMPLETENESS_FLOOR):
        """Per attacker (``score_auc``, ``rank_auc``, and the likelihood-ratio
        ``lira_auc`` and ``lira_offline_auc`` when measured) of the held-out
        test: ``(forget - retrain, allowed)``, where ``allowed`` is the
        largest of ``floor``, the spread (max - min) of the retrains' AUCs
        and, with ``intervals``, the gap sampling the pairs allows (see
        :func:`gaps`)."""
        keys = [key for key in ATTACKERS if key in self.retrain_spread]
        retrains = [{key: self.retrain_spread[key][r] for key in keys}
                    for r in range(len(self.retrain_spread["score_auc"]))]
        se = {key: v["gap_se"] for key, v in (self.intervals or {}).items()}
        return gaps(self.completeness["forget"], retrains, floor, se)

    def is_complete(self, floor=COMPLETENESS_FLOOR):
        """Whether every attacker is within :meth:`completeness_gaps`
        (False when the forgotten pairs' users have no held-out pairs; see
        :meth:`verdict` for a verdict that tells too few pairs apart)."""
        return within(self.completeness_gaps(floor))

    def verdict(self, floor=COMPLETENESS_FLOOR):
        """The :class:`Verdict` of the held-out test: ``TOO_FEW_PAIRS``
        when its pairs are too few to judge (see :func:`completeness`),
        else complete or not as :meth:`is_complete`."""
        forget = self.completeness["forget"]
        return verdict_of(self.completeness_gaps(floor), forget["n_forgotten"],
                          forget["n_unseen"])

    def to_markdown(self):
        """The report as a Markdown table (one row per measure)."""
        k, top = self.setting["k"], self.setting["top"]
        rows = [("completeness", "MIA AUC vs held-out, score attacker", "score_auc",
                 *self._stages(self.completeness, "score_auc")),
                ("completeness", "MIA AUC vs held-out, rank attacker", "rank_auc",
                 *self._stages(self.completeness, "rank_auc")),
                *[("completeness", f"MIA AUC vs held-out, {name}", key,
                   *self._stages(self.completeness, key))
                  for key, name in (("lira_auc", "likelihood ratio"),
                                    ("lira_offline_auc", "likelihood ratio, offline"))
                  if key in self.retrain_spread],
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
            num_threads=0, tolerance=None, max_sweeps=50, washouts=("auto",), repeats=1,
            shadows=0):
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
       fairness gap for all models, and the cost of forgetting; with
       ``shadows``, fit the shadow models once on the retained data and run
       the likelihood-ratio attack (:func:`fit_shadows`) on every model.

    Parameters
    ----------
    user_items : scipy.sparse matrix (n_users, n_items)
        Training interactions.
    test : scipy.sparse matrix, optional
        Held-out interactions.  By default ``user_items`` is split with
        ``holdout_split(user_items, 0.2, seed=seed)`` first.
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
    shadows : int
        0 (default): no likelihood-ratio attack; else the number of shadow
        models (even, >= 4), each a further fit, on the retained data plus
        half of the forgotten and held-out pairs, seeded from ``seed``.
        Without held-out pairs (an edge set whose users have none) the
        attack's AUCs are NaN and no shadow is fitted.

    Returns
    -------
    list of AuditReport
        One per washout, in order; all share the original's and the
        retrains' measures and timings.
    """
    # everything is validated before the (costly) fit
    check_sparse(user_items, "user_items")
    fraction = check_fraction(fraction)
    if how not in UNLEARNING_SETS:
        raise ValueError(f"how must be one of {UNLEARNING_SETS}, got {how!r}")
    repeats = check_positive_int(repeats, "repeats")
    shadows = 0 if shadows == 0 else check_shadows(shadows)
    washouts = [check_washout(w) for w in
                (list(washouts) if isinstance(washouts, (list, tuple)) else [washouts])]
    if not washouts or len(set(washouts)) != len(washouts):
        raise ValueError(f"washouts must hold distinct values, at least one, got {washouts}")
    k = check_positive_int(k, "k")
    top = check_fraction(top, "top")
    if test is None:
        train, test = holdout_split(user_items, 0.2, seed=seed)
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
    attack, shadow_s = None, 0.0
    if shadows and len(held_out[0]):
        # the original holds the retained data and the forgotten pairs'
        # values; the held-out pairs take theirs from test
        start = time.perf_counter()
        held_matrix = sp.csr_matrix((values_at(test, *held_out)[0], held_out),
                                    shape=train.shape)
        attack = fit_shadows(original, forgotten, held_matrix, shadows=shadows, seed=seed)
        shadow_s = time.perf_counter() - start

    def held_out_values(model):
        # what the attackers see, for the intervals of the held-out test
        if not len(held_out[0]):
            return None
        values = attacker_values(model, forgotten, held_out)
        if attack is not None:
            values.update(attack.values(model))
        return values

    def held_out_inference(model):
        found = attack_held_out(model, forgotten, held_out)
        if shadows:
            lira = attack.attack(model) if attack is not None else None
            found.update(lira_auc=lira.lira_auc if lira else float("nan"),
                         lira_offline_auc=lira.lira_offline_auc if lira else float("nan"))
        return found

    def measures(model):
        """(membership inference against held-out and unseen pairs, utility,
        fairness, certificate) of one model."""
        per_user = per_user_utility(model, test, k)  # ranked once for utility and fairness
        return (held_out_inference(model),
                membership_inference(model, forgotten, unseen).to_dict(),
                ranking_utility(per_user),
                utility_gap(per_user["users"], per_user["ndcg"], activity, top, "ndcg").to_dict(),
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
            retrain_values = held_out_values(run_retrained)
        retrain_measures.append(measures(run_retrained))
    where = {"score_auc": (0, "score_auc"), "rank_auc": (0, "rank_auc"),
             "unseen_score_auc": (1, "score_auc"), "unseen_rank_auc": (1, "rank_auc"),
             "ndcg": (2, "ndcg"), "recall": (2, "recall"), "gap": (3, "gap")}
    if shadows:
        where.update(lira_auc=(0, "lira_auc"), lira_offline_auc=(0, "lira_offline_auc"))
    spread = {key: [float(m[axis][name]) for m in retrain_measures]
              for key, (axis, name) in where.items()}
    shared = {"original": measures(original), "retrain": retrain_measures[0]}
    retrain_s = float(np.median(retrain_runs))
    n_users, n_items = train.shape
    results = []
    for w in washouts:
        model, receipt = forgot[w]
        stages = {**shared, "forget": measures(model)}
        intervals = None
        if retrain_values is not None:
            intervals = sampling_intervals(held_out_values(model), retrain_values)
        completeness, unseen_mia, utility, fairness, certificate = (
            {stage: stages[stage][axis] for stage in _STAGES} for axis in range(5))
        # compare() would rank both models on test again for unused deltas
        loss_ratio = factor_losses(model, retrained)[2]
        forget_s = float(np.median(forget_runs[w]))
        efficiency = {
            "forget_seconds": forget_s, "retrain_seconds": retrain_s,
            "ratio": forget_s / retrain_s if retrain_s else float("nan"),
            "forget_runs": forget_runs[w], "retrain_runs": retrain_runs,
            "rows_solved": int(receipt.rows_solved),
            "rows_total_retrain": int(iterations * (n_users + n_items)),
            "shadow_seconds": shadow_s,
            "sweeps": int(receipt.sweeps), "converged": bool(receipt.converged),
            "settled": bool(receipt.settled),
            "tolerance": float(receipt.tolerance), "certificate": certificate,
            "loss_ratio": loss_ratio, "overlap": mean_overlap(model, retrained, k),
        }
        setting = {"n_users": n_users, "n_items": n_items, "nnz": int(train.nnz),
                   "n_test": int(test.nnz), "fraction": float(fraction), "how": how,
                   "n_removed": int(len(f_users)),
                   "users_affected": int(receipt.users_affected), "seed": seed, "k": k,
                   "top": top, "repeats": repeats, "max_sweeps": max_sweeps, "washout": w,
                   "shadows": shadows,
                   **{key: value for key, value in params.items() if key != "random_state"}}
        results.append(AuditReport(completeness, unseen_mia, utility, efficiency, fairness,
                                   setting, spread, intervals))
    return results
