"""The audit's likelihood-ratio section: per-example membership inference
with shadow models (``fastunlearn.audit.fit_shadows``) against the original
model, the forget and retrains, on MovieLens 100K at both audited settings
(random, core and edge sets; 200 sequential 3-pair requests, as served and
settled), on a 400k-entry synthetic set and for ExplicitALS models (plain
at regularization 5, the completeness tests' setting, and ALS-WR), next to
the score and rank attackers.

Run by ``bench/run.py audit`` (``--shadows N``, 0 skips it) or on its own
with ``bench/run.py audit --lira-only``, which rewrites only this section of
results/audit.md (and results/audit-lira.json).  ``python
bench/audit_lira.py`` redraws the section from the JSON.
"""
import contextlib
import json
import time

import numpy as np
import scipy.sparse as sp

import fastunlearn as fu
from common import commit, machine, movielens, results_dir
from fastunlearn import audit
from fastunlearn.evaluation import holdout_split

HEADING = "## Likelihood-ratio attacker (LiRA)"
IMPLICIT = dict(regularization=0.05, iterations=15, use_cg=True, num_threads=2)
SETTINGS = [("implicit", {**IMPLICIT, "factors": 32, "alpha": 5.0}),
            ("implicit", {**IMPLICIT, "factors": 64, "alpha": 1.0})]
EXPLICIT = [("explicit", dict(factors=32, regularization=5.0, weighted_regularization=False,
                              iterations=15, use_cg=True, num_threads=2)),
            ("explicit", dict(factors=32, regularization=0.1, weighted_regularization=True,
                              iterations=15, use_cg=True, num_threads=2))]
# (how, fraction, unlearning-set seeds); random 5 % on several sets, for
# "never above every retrain seed"
SETS = [("random", 0.01, (0,)), ("random", 0.05, (0, 1, 2, 3)), ("core", 0.01, (0,)),
        ("core", 0.05, (0,)), ("edge", 0.01, (0,)), ("edge", 0.05, (0,))]
EXPLICIT_SETS = [("random", 0.01, (0,)), ("random", 0.05, (0, 1))]
# the completeness tests' sequence: 200 requests of 3 random pairs
SEQUENCE = (200, 3)
WASHOUTS = ("auto", 0)


@contextlib.contextmanager
def washout_option(washout):
    """``forget``'s ``washout`` for a washout spec, with the engine's
    relaxation patched for the spec's duration.

    A spec is ``"auto"``, an int, or a prototype ``"N@w"``: N over-relaxed
    sweeps at relaxation w, for measuring a washout policy before the engine
    adopts it (the constant is put back afterwards).
    """
    if not (isinstance(washout, str) and "@" in washout):
        yield washout
        return
    from fastunlearn.forgetting import options

    sweeps, relaxation = washout.split("@")
    before = options.RELAXATION
    options.RELAXATION = float(relaxation)
    try:
        yield int(sweeps)
    finally:
        options.RELAXATION = before


def attackers(original, train, test, pairs, held, shadows, seed):
    """(measure, seconds): ``measure(model)`` gives the score, rank and
    likelihood-ratio attackers' AUCs of ``model`` on the forgotten ``pairs``
    against the ``held`` test pairs, from shadows fitted once (their time)."""
    def as_matrix(matrix, which):
        return sp.csr_matrix((np.asarray(matrix[which]).ravel(), which), shape=train.shape)

    start = time.perf_counter()
    attack = audit.fit_shadows(original, as_matrix(train, pairs), as_matrix(test, held),
                               shadows=shadows, seed=seed).attack
    shadow_s = time.perf_counter() - start

    def measure(model):
        found = audit.membership_inference(model, pairs, held).to_dict()
        lira = attack(model)
        found.update(lira_auc=lira.lira_auc, lira_offline_auc=lira.lira_offline_auc)
        return found

    return measure, shadow_s


def case(kind, R, params, how, fraction, seed, repeats, shadows, washouts, timing_runs=3):
    """One unlearning set: the original, a forget per washout and
    ``repeats`` retrains, each attacked by all four attackers against
    held-out pairs of the same users; the shadows fitted once."""
    cls = fu.ImplicitALS if kind == "implicit" else fu.ExplicitALS
    train, test = holdout_split(R, 0.2, seed=seed)
    original = cls(**params, random_state=seed).fit(train, show_progress=False)
    users, items = audit.unlearning_set(train, fraction, how, seed)
    held = audit.held_out_pairs(test, users)
    if not len(held[0]):
        return None  # an edge set whose users have no test pairs

    measure, shadow_s = attackers(original, train, test, (users, items), held, shadows, seed)

    forgets = {}
    for w in washouts:
        runs = []
        for _ in range(timing_runs):
            # the original's seed: a plain explicit model's washout refits from it
            model = cls.from_factors(original.user_factors, original.item_factors, train,
                                     random_state=seed, **params)
            with washout_option(w) as option:
                begin = time.perf_counter()
                receipt = model.forget(users, items, washout=option)
                runs.append(time.perf_counter() - begin)
        forgets[w] = {"seconds": float(np.median(runs)), "rows_solved": receipt.rows_solved,
                      "washout": receipt.washout, **measure(model)}
    retained = model.user_items.copy()
    retrains, retrain_runs = [], []
    for r in range(repeats):
        begin = time.perf_counter()
        retrain = cls(**params, random_state=seed + r).fit(retained, show_progress=False)
        retrain_runs.append(time.perf_counter() - begin)
        retrains.append(measure(retrain))
    return {"kind": kind, "setting": setting_of(params),
            "how": how, "fraction": fraction, "seed": seed, "n_removed": len(users),
            "n_held_out": len(held[0]), "shadows": shadows, "shadow_seconds": shadow_s,
            "retrain_seconds": float(np.median(retrain_runs)), "original": measure(original),
            "forgets": {str(w): f for w, f in forgets.items()}, "retrains": retrains}


def setting_of(params):
    return {k: params.get(k) for k in ("factors", "alpha", "regularization",
                                        "weighted_regularization")}


def sequence_case(R, params, repeats, shadows, seed=0):
    """The completeness tests' sequence (tests/test_completeness.py): 200
    forget calls of 3 random pairs each on one model, attacked as served
    after the last call (some removals pending) and after ``settle()``."""
    requests, size = SEQUENCE
    train, test = holdout_split(R, 0.2, seed=seed)
    original = fu.ImplicitALS(**params, random_state=seed).fit(train, show_progress=False)
    coo = train.tocoo()
    pick = np.random.default_rng(seed).choice(train.nnz, requests * size, replace=False)
    users, items = coo.row[pick].astype(np.int64), coo.col[pick].astype(np.int64)
    held = audit.held_out_pairs(test, users)

    measure, shadow_s = attackers(original, train, test, (users, items), held, shadows, seed)

    # the model keeps its fit's seed, and its refits
    # (forgetting.RELAXED_BETWEEN_FITS) draw from it
    model = fu.ImplicitALS.from_factors(original.user_factors, original.item_factors, train,
                                        **params, random_state=seed)
    begin = time.perf_counter()
    washouts = sum(model.forget(users[size * r:size * (r + 1)],
                                items[size * r:size * (r + 1)]).washout > 0
                   for r in range(requests))
    served_s = time.perf_counter() - begin
    served = {"seconds": served_s, "washout": washouts, **measure(model)}
    begin = time.perf_counter()
    model.settle()
    settled = {"seconds": served_s + time.perf_counter() - begin, "washout": washouts,
               **measure(model)}
    retained = model.user_items.copy()
    retrains, retrain_runs = [], []
    for r in range(repeats):
        begin = time.perf_counter()
        retrain = fu.ImplicitALS(**params, random_state=seed + r).fit(retained,
                                                                      show_progress=False)
        retrain_runs.append(time.perf_counter() - begin)
        retrains.append(measure(retrain))
    return {"kind": "implicit", "setting": setting_of(params),
            "how": f"sequence {requests}x{size}", "fraction": len(users) / train.nnz,
            "seed": seed, "n_removed": len(users), "n_held_out": len(held[0]),
            "shadows": shadows, "shadow_seconds": shadow_s,
            "retrain_seconds": float(np.median(retrain_runs)), "original": measure(original),
            "forgets": {"served": served, "settled": settled}, "retrains": retrains}


def verdicts(result, washout):
    """Per attacker (gap to the seed-0 retrain, allowed, within, above
    every retrain seed) of one forget of ``result``."""
    forget = result["forgets"][str(washout)]
    out = {}
    for key, (gap, allowed) in audit.gaps(forget, result["retrains"]).items():
        seeds = [r[key] for r in result["retrains"]]
        out[key] = {"gap": gap, "allowed": allowed, "within": abs(gap) <= allowed,
                    "above_every_seed": bool(forget[key] > max(seeds))}
    return out


def cases(quick, repeats, shadows, washouts=WASHOUTS, only=None):
    """Every case of the section (quick: one small synthetic set); ``only``:
    those whose model label (:func:`model_label`) contains it."""
    def wanted(kind, params):
        return only is None or only in model_label({"kind": kind, "setting": setting_of(params)})

    if quick:
        from fastunlearn.synthetic import make_implicit

        R = make_implicit(2_000, 1_000, 20_000, seed=0)
        params = {**IMPLICIT, "factors": 16, "alpha": 1.0, "iterations": 5}
        yield "synthetic-20k", case("implicit", R, params, "random", 0.01, 0, repeats,
                                    shadows, washouts)
        return
    R = movielens()
    if R is None:
        return
    for kind, params in SETTINGS:
        for how, fraction, seeds in SETS if wanted(kind, params) else ():
            for seed in seeds:
                yield "movielens-100k", case(kind, R, params, how, fraction, seed, repeats,
                                             shadows, washouts)
    for _, params in SETTINGS:
        if wanted("implicit", params):
            yield "movielens-100k", sequence_case(R, params, repeats, shadows)
    for kind, params in EXPLICIT:
        for how, fraction, seeds in EXPLICIT_SETS if wanted(kind, params) else ():
            for seed in seeds:
                yield "movielens-100k", case(kind, R, params, how, fraction, seed, repeats,
                                             shadows, washouts)
    from fastunlearn.synthetic import make_implicit

    # the completeness tests' synthetic set
    params = {**IMPLICIT, "factors": 32, "alpha": 1.0}
    if wanted("implicit", params):
        yield "synthetic-400k", case("implicit", make_implicit(20_000, 4_000, 400_000, seed=1),
                                     params, "random", 0.01, 0, repeats, shadows, washouts)


HEADER = ["data", "model", "set", "set seed", "washout", "removed", "held-out",
          "LiRA original", "LiRA forget", "LiRA retrain", "retrain seeds", "gap / allowed",
          "above every seed", "offline forget", "offline retrain seeds", "offline gap",
          "score gap", "rank gap", "complete (4 attackers)", "forget s", "retrain s",
          "shadows s"]


def model_label(result):
    setting = result["setting"]
    if result["kind"] == "implicit":
        return f"implicit {setting['factors']}, {setting['alpha']:g}"
    wr = "ALS-WR" if setting.get("weighted_regularization") else "plain"
    return f"explicit {wr} {setting['factors']}, reg {setting.get('regularization')}"


def rows_of(name, result):
    out = []
    model = model_label(result)
    for w, forget in result["forgets"].items():
        v = verdicts(result, w)
        lira = [r["lira_auc"] for r in result["retrains"]]
        offline = [r["lira_offline_auc"] for r in result["retrains"]]
        out.append([
            name, model, set_label(result), result["seed"], w,
            result["n_removed"], result["n_held_out"],
            f"{result['original']['lira_auc']:.4f}", f"{forget['lira_auc']:.4f}",
            f"{lira[0]:.4f}", f"{min(lira):.4f}..{max(lira):.4f}",
            f"{v['lira_auc']['gap']:+.4f} / {v['lira_auc']['allowed']:.4f}",
            "yes" if v["lira_auc"]["above_every_seed"] else "no",
            f"{forget['lira_offline_auc']:.4f}", f"{min(offline):.4f}..{max(offline):.4f}",
            f"{v['lira_offline_auc']['gap']:+.4f}",
            f"{v['score_auc']['gap']:+.4f}", f"{v['rank_auc']['gap']:+.4f}",
            "yes" if all(x["within"] for x in v.values()) else "NO",
            f"{forget['seconds']:.3f}", f"{result['retrain_seconds']:.3f}",
            f"{result['shadow_seconds']:.1f}"])
    return out


NOTES = """
* The attack (`fastunlearn.audit.fit_shadows`, Carlini et al. 2022, as
  adapted to unlearning): {shadows} shadow models, each fitted with the
  audited model's hyperparameters on the retained data plus a random half of
  the candidates (the forgotten pairs and the held-out test pairs of the same
  users; each candidate in exactly half of the shadows).  Per pair, a
  Gaussian of its IN scores and one of its OUT scores (own means, pooled
  variance); the online statistic is the log likelihood ratio of the
  audited model's score, the offline one (OUT shadows only) its z-score
  towards what training on the pair pulls it to (1 for implicit feedback,
  its rating for explicit).  Measure: AUC over forgotten vs held-out pairs.
  Implicit models are attacked on `x_u . y_i`, explicit ones on the
  predicted rating.
* "gap / allowed": the forget's LiRA AUC minus the seed-0 retrain's, and
  max(0.01, spread of the {repeats} retrain seeds); "above every seed": the
  forget's AUC above all of them.  "complete (4 attackers)": the score,
  rank, LiRA and offline LiRA gaps all within what is allowed.  Score and
  rank gaps as in the tables above.
* Each unlearning set seed also seeds the 80/20 split, the original model
  and the shadows.  "sequence 200x3": 600 random training pairs forgotten
  by 200 calls of 3 pairs on one model (the completeness tests'
  sequence); washout "served" is the model after the last call (removals
  under the pending limit not yet washed out), "settled" the same after
  `settle()`; its forget seconds are all 200 calls (and the settle).
  The synthetic set is `make_implicit(20_000, 4_000, 400_000, seed=1)`.  Forget seconds: medians of 3 runs; shadows: all
  {shadows} fits.  On a shared, loaded 2-core machine.
* Command: `{command}`.
"""


def set_label(result):
    how = result["how"]
    return how if how.startswith("sequence") else f"{how} {result['fraction']:.0%}"


def summary(results):
    """Per washout: sets complete under all four attackers, and the sets
    whose forget sits above every retrain seed under LiRA, by model and set."""
    lines = []
    washouts = list(dict.fromkeys(w for r in results for w in r["forgets"]))
    for w in washouts:
        complete = [all(v["within"] for v in verdicts(r, w).values()) for r in results
                    if w in r["forgets"]]
        lines.append(f"* washout {w}: complete under all four attackers in {sum(complete)} "
                     f"of {len(complete)} sets.")
    groups = {}
    for r in results:
        groups.setdefault(f"{model_label(r)}, {set_label(r)}", []).append(r)
    for label, group in groups.items():
        if len(group) < 2:
            continue
        cells = []
        for w in (w for w in washouts if w in group[0]["forgets"]):
            above = sum(verdicts(r, w)["lira_auc"]["above_every_seed"] for r in group)
            within = sum(verdicts(r, w)["lira_auc"]["within"] for r in group)
            cells.append(f"washout {w}: above every seed in {above}, within in {within}")
        lines.append(f"* {label}, {len(group)} sets (LiRA): " + "; ".join(cells) + ".")
    return "\n".join(lines)


PROTOTYPE = """
* Washout `N@w` is a prototype, not what the engine does: N over-relaxed
  sweeps at relaxation w (`forgetting.options.RELAXATION` patched for that forget
  only, `washout_option` in bench/audit_lira.py).  The default ("auto") is
  `forgetting.options.washout_for`: three sweeps at 1.9 when an implicit
  model washes out 2 % of its entries or more, two at 1.8 otherwise, two
  at 1.9 (below 2 %) or 1.8 (from 2 %) on ALS-WR models, a refit from
  the model's seed for plain explicit models, and for any model at its
  second washout since a fit; so `2@1.7` is the
  default before those rules, the "before" of their cost.
"""


def write_markdown(payload, quick=False):
    """Splice the section for ``payload`` into audit.md (replacing an
    earlier one)."""
    from common import table

    results = payload["results"]
    rows = [row for r in results for row in rows_of(r["data"], r)]
    notes = NOTES.format(shadows=payload["shadows"], repeats=payload["repeats"],
                         command=payload["command"]).strip()
    for update in payload.get("updates", []):
        notes += (f"\n* Rows of \"{update['models']}\" measured again on {update['date']} "
                  f"(commit {update['commit']}): `{update['command']}`.")
    if any("@" in str(w) for w in payload["washouts"]):
        notes += "\n" + PROTOTYPE.strip()
    text = (f"{HEADING}\n\n" + table(HEADER, rows) + "\n" + summary(results) + "\n\n"
            + notes + "\n")
    md = results_dir() / f"audit{'-quick' if quick else ''}.md"
    before = md.read_text() if md.exists() else ""
    if HEADING in before:
        before = before[:before.index(HEADING)]
    md.write_text(before.rstrip("\n") + ("\n\n" if before.strip() else "") + text)
    print(text)


def run(quick=False, repeats=3, shadows=audit.DEFAULT_SHADOWS, washouts=WASHOUTS,
        command="python bench/run.py audit --lira-only", only=None):
    """Measure the section; write audit-lira.json and splice the section
    into audit.md.  ``only``: re-measure the models whose label contains
    it, in place of their rows of the existing audit-lira.json (the rest
    and its settings are kept; the update is recorded in the notes)."""
    results = []
    for name, result in cases(quick, repeats, shadows, washouts, only):
        if result is None:
            continue
        results.append({"data": name, **result})
        print(f"{name} {model_label(result)} {set_label(result)} seed {result['seed']} "
              f"done", flush=True)
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"audit-lira{'-quick' if quick else ''}.json"
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if only is not None:
        payload = json.loads(path.read_text())
        fresh = iter(results)
        payload["results"] = [{**next(fresh)} if only in model_label(r) else r
                              for r in payload["results"]]
        # the latest measurement of these models replaces an earlier one
        payload["updates"] = [u for u in payload.get("updates", []) if u["models"] != only] + [
            {"models": only, "date": date, "commit": commit(), "command": command}]
    else:
        payload = {"machine": machine(), "date": date, "commit": commit(),
                   "params": {"settings": SETTINGS, "explicit": EXPLICIT},
                   "command": command, "washouts": [str(w) for w in washouts],
                   "shadows": shadows, "repeats": repeats, "results": results}
    path.write_text(json.dumps(payload, indent=2, default=_plain))
    write_markdown(payload, quick)
    return payload


def redraw(quick=False):
    """Rewrite the section of audit.md from audit-lira.json."""
    name = f"audit-lira{'-quick' if quick else ''}.json"
    write_markdown(json.loads((results_dir() / name).read_text()), quick)


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(type(value).__name__)


def default_table(results):
    """The default forget's gap to the seed-0 retrain under each attacker,
    one row per model and kind of set (the README's table): several sets
    of a kind give the range of their gaps; a gap past what is allowed is
    marked with its limit."""
    names = {"score_auc": "score", "rank_auc": "rank", "lira_auc": "LiRA",
             "lira_offline_auc": "LiRA offline"}
    groups = {}
    for r in results:
        w = "settled" if "settled" in r["forgets"] else "auto"
        data = "synthetic 400k" if r["data"].startswith("synthetic") else "MovieLens 100K"
        groups.setdefault((data, model_label(r), set_label(r)), []).append(verdicts(r, w))
    rows = []
    for (data, model, label), found in groups.items():
        cells = []
        for key in names:
            gaps = [v[key]["gap"] for v in found]
            text = (f"{gaps[0]:+.3f}" if len(gaps) == 1
                    else f"{min(gaps):+.3f} to {max(gaps):+.3f}")
            bad = [v[key] for v in found if not v[key]["within"]]
            if bad:
                text += " **(" + ", ".join(f"> {b['allowed']:.3f}" for b in bad) + ")**"
            cells.append(text)
        complete = sum(all(x["within"] for x in v.values()) for v in found)
        sets = f"{label}" + (f" ({len(found)} sets)" if len(found) > 1 else "")
        rows.append([data, model, sets, *cells, f"{complete} of {len(found)}"])
    from common import table

    return table(["data", "model", "set", *names.values(), "complete"], rows)


if __name__ == "__main__":
    import sys

    if "--table" in sys.argv:
        print(default_table(json.loads((results_dir() / "audit-lira.json").read_text())[
            "results"]))
    else:
        redraw()
