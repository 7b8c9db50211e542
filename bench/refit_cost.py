"""What refitting costs plain ExplicitALS (``forgetting.options.REFIT``, its
default washout) against the relaxed washout it replaced (two sweeps at
1.7) and against a retrain, at 1 % and 5 % random removals: MovieLens
100K's 80/20 training part (the completeness tests' setting: factors 32,
regularization 5, 15 CG iterations) and, with ``--synthetic``, a 2M-entry
rating set (``make_ratings``, factors 64).

The three run interleaved from the same fitted factors; medians of
``--repeats`` runs each.

    nice python bench/refit_cost.py [--repeats 5] [--synthetic] [--quick]

writes results/refit-cost.json and .md.
"""
import argparse
import sys
import time


import fastunlearn as fu
from common import median, movielens, write
from fastunlearn.evaluation import holdout_split
from fastunlearn.synthetic import make_ratings
from washout_cost import random_pairs, timed_forget  # old: two sweeps at 1.7

PARAMS = dict(factors=32, regularization=5.0, weighted_regularization=False, iterations=15,
              use_cg=True, random_state=0, num_threads=2)
FRACTIONS = (0.01, 0.05)


def measure(name, R, params, repeats):
    """Rows of the table for data ``R``: per fraction, the medians of the
    relaxed forget, the refitting forget and a retrain."""
    model = fu.ExplicitALS(**params).fit(R, show_progress=False)
    rows, results = [], []
    for fraction, users, items in random_pairs(R, FRACTIONS):
        runs = {"relaxed": [], "refit": [], "retrain": []}
        retained = None
        for _ in range(repeats):
            for label in ("relaxed", "refit"):
                seconds, report = timed_forget(model, R, params, users, items,
                                               old=label == "relaxed")
                runs[label].append(seconds)
                assert report.refit == (label == "refit")
            if retained is None:
                retained = R.tolil()
                retained[users, items] = 0
                retained = retained.tocsr()
                retained.eliminate_zeros()
            start = time.perf_counter()
            fu.ExplicitALS(**params).fit(retained, show_progress=False)
            runs["retrain"].append(time.perf_counter() - start)
        m = {k: median(v) for k, v in runs.items()}
        results.append({"data": name, "fraction": fraction, "n_removed": int(len(users)),
                        "runs": runs})
        rows.append([name, f"{fraction:.0%}", len(users), f"{m['relaxed']:.3f}",
                     f"{m['refit']:.3f}", f"{m['retrain']:.3f}",
                     f"{m['refit'] / m['relaxed']:.2f}", f"{m['refit'] / m['retrain']:.2f}"])
        print(rows[-1], flush=True)
    return rows, results


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--synthetic", action="store_true",
                        help="also a 2M-entry rating set at factors 64")
    parser.add_argument("--quick", action="store_true", help="a small synthetic set only")
    args = parser.parse_args()
    rows, results = [], []
    if args.quick:
        sets = [("synthetic-20k", make_ratings(2_000, 1_000, 20_000, seed=0), PARAMS)]
    else:
        R = movielens()
        sets = [] if R is None else [("movielens-100k", holdout_split(R, 0.2, seed=0)[0],
                                      PARAMS)]
        if args.synthetic:
            sets.append(("synthetic-2M", make_ratings(100_000, 20_000, 2_000_000, seed=0),
                         {**PARAMS, "factors": 64}))
    for name, R, params in sets:
        r, res = measure(name, R, params, args.repeats)
        rows += r
        results += res
    write("refit-cost" + ("-quick" if args.quick else ""), {"results": results}, rows,
          ["data", "removed (random)", "pairs", "relaxed s", "refit s", "retrain s",
           "refit / relaxed", "refit / retrain"],
          notes=("Plain ExplicitALS; \"relaxed\": the forget with the washout of two "
                 "sweeps at 1.7 it ran before refits, \"refit\": the default forget, "
                 "\"retrain\": a fit on the data left.  Medians of "
                 f"{args.repeats} interleaved runs from one fit.  Command: "
                 f"`{' '.join(['python bench/refit_cost.py', *sys.argv[1:]])}`."),
          params=PARAMS)


if __name__ == "__main__":
    main()
