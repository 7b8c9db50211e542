"""Same data and ``random_state`` give bitwise-identical factors: across runs,
across processes and across ``num_threads``.

Why it holds: every row is solved by one thread with the same sequence of
operations whichever thread it is (per-thread scratch, no shared reductions),
the Gram matrix is reduced over a partition that does not depend on the thread
count, and BLAS runs single-threaded during fit (OpenBLAS's own threads round
?potrf/?syrk differently, which shows for k > 192 where LAPACK is used).

CG is bitwise reproducible across thread counts too: rows are processed in
fixed blocks of 32 whatever the number of threads, and each row's arithmetic
does not depend on the thread.  Its factors differ from Cholesky's (it stops
after ``cg_steps`` steps per row).  Neither solver is bitwise reproducible
across machines with other CPUs, compilers or BLAS builds, nor across the
kernel variants of fastunlearn.isa (this file tests the one in use;
test_isa.py each of them).
"""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastunlearn as fu
from conftest import OBJECTIVES, signed_data

PKG_ROOT = str(Path(fu.__file__).resolve().parents[1])


def data(n_users=40, n_items=30, seed=3):
    return signed_data(n_users, n_items, seed)


def fit(name, dtype, k, threads, use_cg=False, iterations=2, R=None):
    kind, params, extra = OBJECTIVES[name]
    cls = fu.ImplicitALS if kind == "implicit" else fu.ExplicitALS
    model = cls(factors=k, iterations=iterations, use_cg=use_cg, dtype=dtype, random_state=11,
                num_threads=threads, **params, **extra)
    return model.fit(data() if R is None else R, show_progress=False)


def digest(model):
    return hashlib.sha256(model.user_factors.tobytes() + model.item_factors.tobytes()).hexdigest()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [5, 193])  # the C small-matrix Cholesky, and LAPACK
def test_cholesky_fit_is_bitwise_reproducible(objective_name, dtype, k):
    digests = {digest(fit(objective_name, dtype, k, threads)) for threads in (1, 2, 1, 2)}
    assert len(digests) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cg_fit_is_bitwise_reproducible_across_threads(objective_name, dtype):
    R = data(150, 70)  # several blocks of 32 rows, so threads share the work
    digests = {digest(fit(objective_name, dtype, 7, threads, use_cg=True, R=R))
               for threads in (1, 2, 2)}
    assert len(digests) == 1
    assert digest(fit(objective_name, dtype, 7, 2, use_cg=False, R=R)) not in digests


def test_fit_in_another_process_gives_the_same_bits(tmp_path):
    script = (
        "import sys, hashlib; sys.path.insert(0, sys.argv[1]);"
        "import test_determinism as t, numpy as np;"
        "print(t.digest(t.fit('implicit', np.float32, 5, 2)))"
    )
    env = {**os.environ, "PYTHONPATH": PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # cwd away from the checkout: "-c" puts the cwd first on sys.path, and an
    # uncompiled source tree there would shadow the installed package
    out = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)],
                         capture_output=True, text=True, env=env, check=True, timeout=120,
                         cwd=tmp_path)
    assert out.stdout.strip() == digest(fit("implicit", np.float32, 5, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [6, 193])  # the C small-matrix Cholesky, and LAPACK
def test_forget_is_bitwise_reproducible_across_threads(objective_name, dtype, k):
    # large enough that the engine's solves use both threads (it runs small
    # solves on one)
    results = set()
    R = data(150, 70)
    for threads in (1, 2, 1):
        model = fit(objective_name, dtype, k, threads, iterations=4, R=R)
        coo = model.user_items.tocoo()
        model.forget(coo.row[::7], coo.col[::7])
        model.forget_users(np.arange(64))
        results.add(digest(model))
    assert len(results) == 1
