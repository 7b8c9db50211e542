"""Fit speed and loss against implicit 0.7 (same data, settings, threads).

Every measurement runs in a fresh subprocess so that peak memory is the
fit's own and neither library warms the other's caches.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from common import PeakRSS, median, movielens, timed, write

SETTINGS = dict(regularization=0.01, alpha=1.0)


def child(args):
    """Fit once; print JSON with seconds per iteration, peak RSS and loss."""
    from threadpoolctl import threadpool_limits

    import fastunlearn as fu

    R = sp.load_npz(args.data).tocsr()
    kwargs = dict(factors=args.factors, iterations=args.iterations, num_threads=args.threads,
                  use_cg=args.solver == "cg", random_state=0, **SETTINGS)
    if args.library == "implicit":
        from implicit.cpu.als import AlternatingLeastSquares as cls
    else:
        cls = fu.ImplicitALS
    model = cls(**kwargs)
    # implicit asks for this itself (it warns otherwise); fastunlearn does it internally
    with threadpool_limits(1, "blas"), PeakRSS() as mem:
        seconds, _ = timed(lambda: model.fit(R, show_progress=False))
    loss = fu.ImplicitALS.from_factors(model.user_factors, model.item_factors, R,
                                       **SETTINGS, dtype=np.float32).loss()
    print(json.dumps({"seconds_per_iteration": seconds / args.iterations,
                      "peak_extra_bytes": mem.extra_bytes, "loss": loss}))


def _measure(library, solver, data, iterations, factors, threads, variant=None):
    """One fit in a fresh process; ``variant`` forces fastunlearn's kernels
    (FASTUNLEARN_ISA)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if variant:
        env["FASTUNLEARN_ISA"] = variant
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "run.py"), "fit-child",
           "--library", library, "--solver", solver, "--data", data,
           "--iterations", str(iterations), "--factors", str(factors), "--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def datasets(quick):
    from fastunlearn.synthetic import make_implicit

    if quick:
        yield "synthetic-20k", make_implicit(4_000, 1_000, 20_000, seed=0)
        return
    yield "synthetic-2M", make_implicit(100_000, 20_000, 2_000_000, seed=0)
    R = movielens()
    if R is not None:
        yield "movielens-100k", R


def run(quick=False, repeats=3, factors=64, iterations=10, threads=2, isa=False):
    """``iterations``: one count, or one per solver (``{"cg": 15, "cholesky": 5}``).
    ``isa``: measure fastunlearn once per kernel variant this machine runs
    (fastunlearn.isa), each against the same implicit runs; the repeats of
    all of them interleave, so that a change in the machine's load falls on
    every library alike."""
    per_solver = iterations if isinstance(iterations, dict) else \
        {"cg": iterations, "cholesky": iterations}
    try:
        import implicit  # noqa: F401
        libraries = ("implicit", "fastunlearn")
    except ImportError:
        print("implicit is not installed (pip install '.[bench]'); measuring fastunlearn alone")
        libraries = ("fastunlearn",)
    if quick:
        factors, per_solver = 16, {"cg": 2, "cholesky": 2}
    from fastunlearn import isa as isa_mod

    default_kernels = isa_mod.selected()  # what the children use unless forced
    variants = isa_mod.runnable() if isa else [None]
    runs_of = [(lib, None) for lib in libraries if lib != "fastunlearn"] + \
        [("fastunlearn", v) for v in variants]
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, R in datasets(quick):
            path = os.path.join(tmp, f"{name}.npz")
            sp.save_npz(path, R)
            csr_bytes = R.data.nbytes + R.indices.nbytes + R.indptr.nbytes
            model_bytes = 2 * csr_bytes + (R.shape[0] + R.shape[1]) * factors * 4
            for solver in ("cg", "cholesky"):
                iterations = per_solver[solver]
                measured = {key: [] for key in runs_of}
                for _ in range(repeats):
                    for library, variant in runs_of:
                        measured[library, variant].append(
                            _measure(library, solver, path, iterations, factors, threads,
                                     variant))
                for variant in variants:
                    per_lib = {}
                    for library in libraries:
                        runs = measured[library, variant if library == "fastunlearn" else None]
                        per_lib[library] = {
                            "seconds_per_iteration":
                                median([r["seconds_per_iteration"] for r in runs]),
                            "runs": runs,
                            "peak_extra_bytes": median([r["peak_extra_bytes"] for r in runs]),
                            "loss": runs[0]["loss"],
                        }
                    ours = per_lib["fastunlearn"]
                    peer = per_lib.get("implicit")
                    ratio = (ours["seconds_per_iteration"] / peer["seconds_per_iteration"]
                             if peer else None)
                    loss_gap = ours["loss"] / peer["loss"] - 1 if peer else None
                    results.append({"data": name, "shape": list(R.shape), "nnz": int(R.nnz),
                                    "solver": solver, "kernels": variant or default_kernels,
                                    "factors": factors, "iterations": iterations,
                                    "threads": threads, "csr_plus_transpose_plus_factors_bytes":
                                    model_bytes, **{lib: v for lib, v in per_lib.items()},
                                    "time_ratio": ratio, "loss_gap": loss_gap})
                    label = f"{solver} ({iterations} it.)" + (f", {variant}" if variant else "")
                    rows.append([name, f"{R.nnz:,}", label,
                                 f"{peer['seconds_per_iteration']:.3f}" if peer else "-",
                                 f"{ours['seconds_per_iteration']:.3f}",
                                 f"{ratio:.2f}x" if ratio else "-",
                                 f"{loss_gap:+.3%}" if peer else "-",
                                 f"{ours['peak_extra_bytes'] / 2**20:.0f}",
                                 f"{peer['peak_extra_bytes'] / 2**20:.0f}" if peer else "-",
                                 f"{model_bytes / 2**20:.0f}"])
    header = ["data", "nnz", "solver", "implicit s/iter", "fastunlearn s/iter",
              "time ratio", "loss vs implicit", "fastunlearn peak MiB", "implicit peak MiB",
              "CSR+T+factors MiB"]
    params = {**SETTINGS, "factors": factors, "iterations": per_solver, "num_threads": threads,
              "random_state": 0}
    out_name = "fit-quick" if quick else "fit-isa" if isa else "fit"
    return write(out_name, {"repeats": repeats, "results": results}, rows, header, params=params)
