"""What a change of the default washout costs against the washout it
replaced, at 1 % and 5 % random removals of the forget benchmark's
2M-entry set (bench/forget.py's data and hyperparameters).

``--compare size-rule`` (the default): the size-scaled washout
(``forgetting.options.washout_for``: three sweeps at 1.9 for an implicit
model's washout of 2 % of its entries or more) against two sweeps at 1.7
for every size; below 2 % both choose the same washout, so the 1 % row
checks that nothing else changed.  ``--compare relaxation``: the small
washouts' relaxation now (``options.RELAXATION``) against 1.7, with the
size rule in both; the 5 % row is then the check.

Before and after run interleaved from the same fitted factors; medians of
``--repeats`` runs each, and the ratio of the medians.

    nice python bench/washout_cost.py [--compare size-rule|relaxation] [--repeats 3] [--quick]

writes results/washout-cost.json and .md (``relaxation``:
results/washout-relaxation.json and .md).
"""
import argparse
import contextlib
import sys
import time

import numpy as np

import fastunlearn as fu
from common import median, write
from fastunlearn.forgetting import options, requests
from fastunlearn.synthetic import make_implicit

PARAMS = dict(factors=64, regularization=0.05, alpha=1.0, iterations=15, use_cg=True,
              random_state=0, num_threads=2)
FRACTIONS = (0.01, 0.05)


OLD_RELAXATION = 1.7


@contextlib.contextmanager
def before(compare):
    """The washout before the change ``compare``: before the size rule, two
    sweeps at 1.7 for any request; before the relaxation change, the size
    rule with the small washouts at 1.7."""
    if compare == "relaxation":
        saved = options.RELAXATION
        options.RELAXATION = OLD_RELAXATION
        try:
            yield
        finally:
            options.RELAXATION = saved
        return
    saved = options.washout_for

    def old(objective, pending, nnz, washouts=0):
        return options.Washout(options.WASHOUT_SWEEPS, OLD_RELAXATION)

    options.washout_for = requests.washout_for = old
    try:
        yield
    finally:
        options.washout_for = requests.washout_for = saved


def relaxation_of(report, old, compare):
    """The relaxation of the washout ``report`` ran (``old``: the before side)."""
    if report.washout == options.LARGE_WASHOUT_SWEEPS and not (old and compare == "size-rule"):
        return options.LARGE_RELAXATION
    return OLD_RELAXATION if old else options.RELAXATION


def random_pairs(R, fractions, seed=0):
    """(fraction, users, items) of random stored pairs of ``R``, per fraction."""
    coo = R.tocoo()
    rng = np.random.default_rng(seed)
    for fraction in fractions:
        pick = rng.choice(R.nnz, int(fraction * R.nnz), replace=False)
        yield fraction, coo.row[pick].astype(np.int64), coo.col[pick].astype(np.int64)


def timed_forget(model, R, params, users, items, old, compare):
    """(seconds, report) of forgetting the pairs from a copy of ``model``'s
    factors on ``R``, with the washout before the change ``compare`` if ``old``."""
    copy = type(model).from_factors(model.user_factors, model.item_factors, R, **params)
    with before(compare) if old else contextlib.nullcontext():
        start = time.perf_counter()
        report = copy.forget(users, items)
        return time.perf_counter() - start, report


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--compare", choices=("size-rule", "relaxation"), default="size-rule")
    args = parser.parse_args()
    shape = (4_000, 1_000, 20_000) if args.quick else (100_000, 20_000, 2_000_000)
    R = make_implicit(*shape, seed=0)
    model = fu.ImplicitALS(**PARAMS).fit(R, show_progress=False)
    rows, results = [], []
    for fraction, users, items in random_pairs(R, FRACTIONS):
        runs = {"before": [], "after": []}
        sweeps = {}
        for _ in range(args.repeats):
            for label in ("before", "after"):
                old = label == "before"
                seconds, report = timed_forget(model, R, PARAMS, users, items, old,
                                               args.compare)
                runs[label].append(seconds)
                sweeps[label] = (report.washout, int(report.rows_solved),
                                 relaxation_of(report, old, args.compare))
        b, a = median(runs["before"]), median(runs["after"])
        results.append({"fraction": fraction, "n_removed": int(len(users)), "runs": runs,
                        "washout_sweeps": {k: v[0] for k, v in sweeps.items()},
                        "rows_solved": {k: v[1] for k, v in sweeps.items()}})
        rows.append([f"{fraction:.0%}", len(users),
                     f"{sweeps['before'][0]} at {sweeps['before'][2]}",
                     f"{sweeps['after'][0]} at {sweeps['after'][2]}",
                     f"{b:.3f}", f"{a:.3f}", f"{a / b:.2f}", sweeps["before"][1],
                     sweeps["after"][1]])
        print(rows[-1], flush=True)
    data = "synthetic-20k" if args.quick else "synthetic-2M"
    name = "washout-cost" if args.compare == "size-rule" else "washout-relaxation"
    write(name + ("-quick" if args.quick else ""), {"data": data, "results": results},
          rows, ["removed (random)", "pairs", "washout before", "washout after", "before s",
                 "after s", "after / before", "rows solved before", "rows solved after"],
          notes=(f"{data} (`make_implicit({', '.join(map(str, shape))}, seed=0)`), "
                 f"medians of {args.repeats} interleaved runs from one fit.  Command: "
                 f"`{' '.join(['python bench/washout_cost.py', *sys.argv[1:]])}`; on a "
                 "shared 2-core machine: the ratio is the figure to read."),
          params=PARAMS)


if __name__ == "__main__":
    main()
