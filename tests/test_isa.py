"""The instruction-set variants of the kernels (fastunlearn.isa): the choice
at import and ``FASTUNLEARN_ISA``, and every variant built and runnable here
giving the reference's results, bitwise the same for any number of threads.

Variants are compared with each other to a tolerance, not bitwise: wider
vectors keep the same partial sums of dot products (csrc/fu_vec.h), but the
AVX2 and AVX-512 variants fuse multiply-adds (one rounding instead of two)
and vectorise other loops (the Cholesky tiles, OpenBLAS aside) in other
orders, so they round differently from the baseline, by a few units in the
last place per operation; a few ALS sweeps amplify that by the condition of
the row systems, well under the tolerances used here.
"""
import hashlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
import reference as ref
from conftest import OBJECTIVES, reference_kwargs, signed_data
from fastunlearn import _als, _topk, isa

RUNNABLE = isa.runnable()
PKG_ROOT = str(Path(fu.__file__).resolve().parents[1])


def data(n_users=150, n_items=70, seed=3):
    return signed_data(n_users, n_items, seed)


def fit(name, dtype, threads, use_cg, k=20, iterations=3):
    kind, params, extra = OBJECTIVES[name]
    cls = fu.ImplicitALS if kind == "implicit" else fu.ExplicitALS
    model = cls(factors=k, iterations=iterations, use_cg=use_cg, dtype=dtype,
                random_state=11, num_threads=threads, **params, **extra)
    return model.fit(data(), show_progress=False)


def digest(model):
    return hashlib.sha256(model.user_factors.tobytes()
                          + model.item_factors.tobytes()).hexdigest()


def test_the_best_runnable_variant_is_used_unless_forced():
    assert RUNNABLE and RUNNABLE[-1] == "baseline"
    assert isa.built()[-1] == "baseline"
    expected = os.environ.get(isa.ENV, "auto").strip().lower()
    if expected in RUNNABLE:
        assert isa.selected() == expected
    else:
        assert isa.selected() == RUNNABLE[0]
    assert _als.VARIANT == isa.selected()
    info = fu.config_info()["isa"]
    assert info["selected"] == isa.selected() and info["runnable"] == RUNNABLE


@pytest.mark.parametrize("variant", isa.built())
def test_each_variant_was_compiled_for_its_instruction_set(variant):
    """The build flags reached the compiler: a variant's own features are
    exactly those the CPU must have for it (the baseline: none, unless built
    with -march=native, then the build machine's and so this one's)."""
    compiled = isa.compiled_features(variant)
    if variant == "baseline":
        assert compiled <= isa.cpu_features()
    else:
        assert compiled == isa.VARIANTS[variant]


def test_a_forced_variant_this_cpu_cannot_run_is_refused(monkeypatch):
    monkeypatch.setattr(isa, "cpu_features", lambda: frozenset({"avx2", "fma"}))
    monkeypatch.setattr(isa, "built", lambda: ["avx512", "avx2", "baseline"])
    monkeypatch.setattr(isa, "compiled_features", lambda v, family="_als": isa.VARIANTS[v])
    monkeypatch.setenv(isa.ENV, "avx512")
    chosen, why = isa._choose()
    assert chosen == "avx2"
    assert "FASTUNLEARN_ISA=avx512" in why and "cannot run" in why and "avx512f" in why
    monkeypatch.setenv(isa.ENV, "AVX2 ")
    assert isa._choose() == ("avx2", None)
    monkeypatch.setenv(isa.ENV, "baseline")
    assert isa._choose() == ("baseline", None)


def test_a_forced_variant_not_built_or_unknown_is_refused(monkeypatch):
    monkeypatch.setattr(isa, "built", lambda: ["baseline"])
    monkeypatch.setattr(isa, "compiled_features", lambda v, family="_als": frozenset())
    monkeypatch.setenv(isa.ENV, "avx2")
    chosen, why = isa._choose()
    assert chosen == "baseline" and "does not include" in why
    monkeypatch.setenv(isa.ENV, "sse9")
    chosen, why = isa._choose()
    assert chosen == "baseline" and "'sse9' is not a kernel variant" in why


def test_a_native_build_on_another_cpu_fails_to_import_clearly(monkeypatch):
    monkeypatch.setattr(isa, "cpu_features", lambda: frozenset())
    monkeypatch.setattr(isa, "built", lambda: ["baseline"])
    monkeypatch.setattr(isa, "compiled_features",
                        lambda v, family="_als": frozenset({"avx2", "fma"}))
    with pytest.raises(ImportError, match="FASTUNLEARN_NATIVE.*lacks avx2, fma"):
        isa._choose()


def test_missing_kernels_fail_to_import_clearly(monkeypatch):
    monkeypatch.setattr(isa, "built", lambda: [])
    with pytest.raises(ImportError, match="compiled kernels are missing.*pip install"):
        isa._choose()


@pytest.mark.parametrize("forced", ["baseline", "no-such-isa"])
def test_the_environment_variable_forces_the_variant_at_import(forced, tmp_path):
    script = "import fastunlearn as fu; print(fu._als.VARIANT, fu.config_info()['isa']['forced'])"
    env = {**os.environ, isa.ENV: forced,
           "PYTHONPATH": PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, check=True, timeout=120, cwd=tmp_path)
    variant, seen = out.stdout.strip().splitlines()[-1].split()
    assert seen == forced
    if forced == "baseline":
        assert variant == "baseline" and "RuntimeWarning" not in out.stderr
    else:
        assert variant == RUNNABLE[0]
        assert "RuntimeWarning" in out.stderr and "not a kernel variant" in out.stderr


def test_use_switches_the_kernels_and_restores_them():
    before = _als.VARIANT
    for variant in RUNNABLE:
        with isa.use(variant):
            assert _als.VARIANT == variant == isa.selected()
            assert _als.solve_cg is isa._module("_als", variant).solve_cg
            assert _topk.topk is isa._module("_topk", variant).topk
    assert _als.VARIANT == before and isa.selected() == before
    with pytest.raises(ValueError, match="variant must be one of .*got 'mmx'"):
        with isa.use("mmx"):
            pass


@pytest.mark.parametrize("variant", RUNNABLE)
def test_each_variant_solves_as_the_reference(variant, objective_name):
    rng = np.random.default_rng(5)
    R = data(40, 30)
    k = 18  # past one 16-lane chunk: the vector loops and their tails both run
    X = rng.standard_normal((R.shape[0], k)) * 0.3
    Y = rng.standard_normal((R.shape[1], k)) * 0.3
    kind, params, extra = OBJECTIVES[objective_name]
    cls = fu.ImplicitALS if kind == "implicit" else fu.ExplicitALS
    with isa.use(variant):
        model = cls.from_factors(X, Y, R, **params, **extra, dtype=np.float64, num_threads=1)
        model.iterations, model.use_cg = 1, False
        model.fit(model.user_items.copy(), show_progress=False, warm_start=True)
        cert = model.certificate()
    X_ref, Y_ref = ref.sweep(R, X, Y, **reference_kwargs(objective_name))
    np.testing.assert_allclose(model.user_factors, X_ref, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(model.item_factors, Y_ref, rtol=1e-6, atol=1e-12)
    frobenius, max_row = ref.certificate(R, model.user_factors, model.item_factors,
                                         **reference_kwargs(objective_name))
    assert np.isclose(cert.frobenius, frobenius, rtol=1e-6, atol=1e-9)
    assert np.isclose(cert.max_row, max_row, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_cg", [False, True])
def test_each_variant_is_bitwise_reproducible_across_threads_and_close_to_the_others(
        objective_name, dtype, use_cg):
    fits = {}
    for variant in RUNNABLE:
        with isa.use(variant):
            models = [fit(objective_name, dtype, threads, use_cg) for threads in (1, 2, 2)]
        assert len({digest(m) for m in models}) == 1, variant
        fits[variant] = models[0]
    base = fits["baseline"]
    # float64: the variants compute the same thing, to rounding.  float32:
    # rounding of ~1e-7 an operation grows over 3 sweeps with the condition
    # of the row systems; more for CG, whose step lengths are ratios of dot
    # products and which, 3 steps a row from a random start, is far from
    # converged (measured: up to 1e-4 for Cholesky, 9e-3 for CG, 4e-12 in
    # float64)
    if dtype == np.float64:
        rtol = 1e-9
    else:
        rtol = 3e-2 if use_cg else 1e-3
    for variant, model in fits.items():
        for ours, theirs in ((model.user_factors, base.user_factors),
                             (model.item_factors, base.item_factors)):
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=rtol * np.abs(theirs).max(),
                                       err_msg=variant)
        assert np.isclose(model.loss(), base.loss(), rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_variant_recommends_as_the_reference(dtype):
    """Top-N of every variant against a stable sort of the scores (ties by
    lower id), with filtered items and users with fewer candidates than N;
    scores are multiples of 1/8, so that many tie exactly in every variant."""
    rng = np.random.default_rng(7)
    n_users, n_items, k = 40, 300, 8
    X = rng.integers(-2, 3, (n_users, k)).astype(dtype)
    Y = (rng.integers(-2, 3, (n_items, k)) / 8).astype(dtype)
    liked = sp.random(n_users, n_items, density=0.2, format="lil", random_state=rng)
    liked[0, :n_items - 3] = 1  # user 0 has at most 3 candidates left, fewer than N
    liked = liked.tocsr()
    scores = (X.astype(np.float64) @ Y.T.astype(np.float64))
    scores[liked.toarray() != 0] = -np.inf
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    for variant in RUNNABLE:
        with isa.use(variant):
            model = fu.ImplicitALS.from_factors(X, Y, liked, dtype=dtype, num_threads=2)
            ids, got = model.recommend(np.arange(n_users), liked, N=10)
        np.testing.assert_array_equal(ids[1:], expected[1:], err_msg=variant)
        left = int(np.isfinite(scores[0]).sum())
        assert 0 < left < 10
        np.testing.assert_array_equal(ids[0, :left], expected[0, :left], err_msg=variant)
        assert np.all(ids[0, left:] == -1)
        np.testing.assert_allclose(got[1:], np.take_along_axis(scores, expected, 1)[1:])


def test_each_variant_forgets_bitwise_reproducibly_across_threads():
    for variant in RUNNABLE:
        with isa.use(variant):
            results = set()
            for threads in (1, 2):
                model = fit("implicit", np.float32, threads, False, iterations=4)
                coo = model.user_items.tocoo()
                model.forget(coo.row[::7], coo.col[::7])
                model.forget_users(np.arange(64))
                results.add(digest(model))
        assert len(results) == 1, variant


def test_no_warning_when_nothing_is_forced():
    if os.environ.get(isa.ENV):
        pytest.skip("FASTUNLEARN_ISA is set for this run")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isa._choose() == (RUNNABLE[0], None)
