"""Benchmark entry point: ``python bench/run.py {fit,forget} [--quick]``.

Each sub-benchmark prints a Markdown table and writes JSON and Markdown
under bench/results/.  Timings are medians of several runs, measured against
the peer in the same run on the same machine.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    import fastunlearn  # noqa: F401  (installed)
except ImportError:  # a source checkout built with `setup.py build_ext --inplace`
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    sub = parser.add_subparsers(dest="bench", required=True)
    for name in ("fit", "forget"):
        p = sub.add_parser(name)
        p.add_argument("--quick", action="store_true", help="small data, one repeat")
        p.add_argument("--repeats", type=int, default=3)
    child = sub.add_parser("fit-child")  # one measurement in a fresh process
    child.add_argument("--library", required=True)
    child.add_argument("--solver", required=True)
    child.add_argument("--data", required=True)
    child.add_argument("--iterations", type=int, required=True)
    child.add_argument("--factors", type=int, required=True)
    child.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)
    if args.bench == "fit":
        import fit

        fit.run(quick=args.quick, repeats=1 if args.quick else args.repeats)
    elif args.bench == "fit-child":
        import fit

        fit.child(args)
    else:
        import forget

        forget.run(quick=args.quick, repeats=1 if args.quick else args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
