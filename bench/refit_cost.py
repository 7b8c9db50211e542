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
import contextlib
import sys
import time

import numpy as np

import fastunlearn as fu
from common import median, movielens, write
from fastunlearn.evaluation import holdout_split
from fastunlearn.forgetting import options, requests
from fastunlearn.synthetic import make_ratings

PARAMS = dict(factors=32, regularization=5.0, weighted_regularization=False, iterations=15,
              use_cg=True, random_state=0, num_threads=2)
FRACTIONS = (0.01, 0.05)


@contextlib.contextmanager
def relaxed():
    """The washout before refits: two sweeps at 1.7."""
    saved = options.washout_for

    def old(objective, pending, nnz):
        return options.Washout(options.WASHOUT_SWEEPS, options.RELAXATION)

    options.washout_for = requests.washout_for = old
    try:
        yield
    finally:
        options.washout_for = requests.washout_for = saved


def measure(name, R, params, repeats):
    """Rows of the table for data ``R``: per fraction, the medians of the
    relaxed forget, the refitting forget and a retrain."""
    model = fu.ExplicitALS(**params).fit(R, show_progress=False)
    coo = R.tocoo()
    rng = np.random.default_rng(0)
    rows, results = [], []
    for fraction in FRACTIONS:
        pick = rng.choice(R.nnz, int(fraction * R.nnz), replace=False)
        users, items = coo.row[pick].astype(np.int64), coo.col[pick].astype(np.int64)
        runs = {"relaxed": [], "refit": [], "retrain": []}
        for _ in range(repeats):
            for label in ("relaxed", "refit"):
                copy = fu.ExplicitALS.from_factors(model.user_factors, model.item_factors, R,
                                                   **params)
                with relaxed() if label == "relaxed" else contextlib.nullcontext():
                    start = time.perf_counter()
                    report = copy.forget(users, items)
                    runs[label].append(time.perf_counter() - start)
                assert report.refit == (label == "refit")
            retained = copy.user_items
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
