"""Benchmark entry point:
``python bench/run.py {fit,forget,audit,scaling,cluster,serve,data,all,plots} [--quick] [--out DIR]``.

``fit --isa --iterations cg=15,cholesky=5`` measures each kernel variant
(fastunlearn.isa) against implicit, the repeats interleaved.

Each sub-benchmark prints a Markdown table and writes JSON and Markdown (and,
with matplotlib, PNG plots) under bench/results/, or under ``--out DIR``.
Timings are medians of several runs (``--repeats``: 3, or 5 for audit),
measured against the peer in the same run on the same machine.  ``--quick``
runs small data once (``all --quick`` takes about 15 s on 2 cores) and names
its outputs ``*-quick*`` (gitignored).
``plots`` redraws the PNGs from the saved JSON.

``audit`` ends with the likelihood-ratio attacker on MovieLens
(bench/audit_lira.py, ``--shadows``: 16, 0 skips it); ``audit --lira-only``
runs that section alone (3 retrain seeds unless ``--repeats``) and rewrites
only its part of results/audit.md; ``--washouts auto,0,3`` sets the forgets
it measures (``N@w``: a prototype washout of N sweeps at relaxation w).
"""
import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    import fastunlearn  # noqa: F401  (installed)
except ImportError:  # a source checkout built with `setup.py build_ext --inplace`
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

BENCHMARKS = ("fit", "forget", "audit", "scaling")  # what "all" runs
EXTRA = ("cluster", "serve", "data")  # the Dask section of scaling on its own; ANN serving;
# reading files
REPEATS = {"fit": 3, "forget": 3, "audit": 5, "scaling": 3, "cluster": 3, "serve": 3,
           "data": 3}  # --repeats defaults


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench", required=True)
    for name in (*BENCHMARKS, *EXTRA, "all", "plots"):
        p = sub.add_parser(name)
        p.add_argument("--out", metavar="DIR", help="write results here instead of "
                                                    "bench/results")
        if name != "plots":
            p.add_argument("--quick", action="store_true", help="small data, one repeat")
            p.add_argument("--repeats", type=int, default=None,
                           help="runs per measurement (default 3; audit 5, which are also "
                                "its retrain seeds 0-4)")
        if name == "fit":
            p.add_argument("--isa", action="store_true",
                           help="measure fastunlearn once per kernel variant this CPU runs "
                                "(FASTUNLEARN_ISA; writes fit-isa.*)")
            p.add_argument("--iterations", default="10",
                           help="fit iterations: N, or per solver as cg=N,cholesky=M "
                                "(default 10)")
        if name in ("audit", "all"):
            p.add_argument("--shadows", type=int, default=16,
                           help="shadow models of the audit's likelihood-ratio section "
                                "(even, >= 4; 0 skips it; default 16)")
        if name == "audit":
            p.add_argument("--lira-only", action="store_true",
                           help="run only the likelihood-ratio section")
            p.add_argument("--lira-models", default=None,
                           help="re-measure only the models whose label contains this "
                                "(e.g. 'explicit plain') in the existing audit-lira.json")
            p.add_argument("--washouts", default="auto,0",
                           help="forgets of the likelihood-ratio section: comma-separated "
                                "washout values (default auto,0)")
    child = sub.add_parser("fit-child")  # one measurement in a fresh process
    child.add_argument("--library", required=True)
    child.add_argument("--solver", required=True)
    child.add_argument("--data", required=True)
    child.add_argument("--iterations", type=int, required=True)
    child.add_argument("--factors", type=int, required=True)
    child.add_argument("--threads", type=int, required=True)
    child = sub.add_parser("data-child")  # one read in a fresh process
    child.add_argument("--pipeline", required=True)
    child.add_argument("--path", required=True)
    args = parser.parse_args(argv)

    if args.bench == "data-child":
        import data

        data.child(args)
        return 0
    if args.bench == "fit-child":
        import fit

        fit.child(args)
        return 0
    if args.out:
        import common

        Path(args.out).mkdir(parents=True, exist_ok=True)
        common.set_results_dir(args.out)
    if args.bench == "plots":
        import plots

        plots.redraw()
        return 0
    lira_only = getattr(args, "lira_only", False)
    for name in BENCHMARKS if args.bench == "all" else (args.bench,):
        repeats = 1 if args.quick else args.repeats or REPEATS[name]
        if not lira_only:
            extra = {}
            if args.bench == "fit":
                its = args.iterations
                extra = dict(isa=args.isa, iterations=int(its) if "=" not in its else
                             {k: int(v) for k, v in (kv.split("=") for kv in its.split(","))})
            __import__(name).run(quick=args.quick, repeats=repeats, **extra)
        if name == "audit" and args.shadows:
            import audit_lira

            washouts = tuple(w if w == "auto" or "@" in w else int(w)
                             for w in getattr(args, "washouts", "auto,0").split(","))
            # quick: two retrain seeds, the fewest that give a spread
            audit_lira.run(quick=args.quick, repeats=2 if args.quick else args.repeats or 3,
                           shadows=4 if args.quick else args.shadows, washouts=washouts,
                           only=getattr(args, "lira_models", None),
                           command=" ".join(["python bench/run.py",
                                             *map(shlex.quote,
                                                  sys.argv[1:] if argv is None else argv)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
