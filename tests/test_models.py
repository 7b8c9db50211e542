"""Fitting, loss and certificate of both estimators against tests/reference.py."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
import reference as ref
from conftest import make_model, problem, reference_kwargs
from fastunlearn import _als


def one_cholesky_sweep(model):
    model.iterations, model.use_cg = 1, False
    return model.fit(model.user_items.copy(), show_progress=False, warm_start=True)


SHAPES = {
    "square": dict(n_users=9, n_items=7),
    "single_user": dict(n_users=1, n_items=6, empty_rows=False, density=0.6),
    "single_item": dict(n_users=6, n_items=1, empty_rows=False, density=0.6),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("negative", [False, True])
def test_cholesky_sweep_matches_reference(objective_name, shape, negative):
    R, X, Y = problem(3, negative=negative, **SHAPES[shape])
    model = one_cholesky_sweep(make_model(objective_name, X, Y, R))
    X_ref, Y_ref = ref.sweep(R, X, Y, **reference_kwargs(objective_name))
    np.testing.assert_allclose(model.user_factors, X_ref, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(model.item_factors, Y_ref, rtol=1e-6, atol=1e-12)


def test_empty_rows_solve_as_reference(objective_name):
    R, X, Y = problem(5, empty_rows=True)
    empty_users = np.flatnonzero(np.diff(R.indptr) == 0)
    assert len(empty_users)
    model = one_cholesky_sweep(make_model(objective_name, X, Y, R))
    if objective_name != "implicit":
        assert np.all(model.user_factors[empty_users] == 0)
    X_ref, _ = ref.sweep(R, X, Y, **reference_kwargs(objective_name))
    np.testing.assert_allclose(model.user_factors[empty_users], X_ref[empty_users], atol=1e-12)


@pytest.mark.parametrize("use_cg", [False, True])
def test_rows_without_entries_are_exactly_zero_after_fit(objective_name, use_cg):
    """Zero minimises such a row's quadratic (b = 0); CG must not leave the
    residue of the random start there, which orders items all the same."""
    R, _, _ = problem(6, empty_rows=True)
    X0, Y0 = np.full((R.shape[0], 3), 0.5), np.full((R.shape[1], 3), 0.5)
    model = make_model(objective_name, X0, Y0, R, use_cg=use_cg, cg_steps=2, iterations=1)
    model.fit(R, show_progress=False, warm_start=True)
    empty_users = np.flatnonzero(np.diff(R.indptr) == 0)
    empty_items = np.flatnonzero(np.diff(R.tocsc().indptr) == 0)
    assert len(empty_users) and len(empty_items)
    assert np.all(model.user_factors[empty_users] == 0)
    assert np.all(model.item_factors[empty_items] == 0)
    assert np.all(model.user_factors[np.diff(R.indptr) > 0].any(axis=1))


@pytest.mark.parametrize("seed", [0, 1])
def test_loss_and_certificate_equal_numpy_at_arbitrary_factors(objective_name, seed):
    R, X, Y = problem(seed, negative=True, n_users=12, n_items=10, k=4)
    model = make_model(objective_name, X, Y, R)
    kw = reference_kwargs(objective_name)
    assert model.loss() == pytest.approx(ref.loss(R, X, Y, **kw), rel=1e-10)
    frob, max_row = ref.certificate(R, X, Y, **kw)
    cert = model.certificate()
    assert cert.frobenius == pytest.approx(frob, rel=1e-10)
    assert cert.max_row == pytest.approx(max_row, rel=1e-10)
    GX, GY = ref.gradients(R, X, Y, **kw)
    assert cert.users_max_row == pytest.approx(np.linalg.norm(GX, axis=1).max(), rel=1e-10)
    assert cert.items_max_row == pytest.approx(np.linalg.norm(GY, axis=1).max(), rel=1e-10)


def test_float32_loss_and_certificate_close_to_float64(objective_name):
    R, X, Y = problem(2, n_users=15, n_items=11, k=5)
    model = make_model(objective_name, X.astype(np.float32), Y.astype(np.float32), R,
                       dtype=np.float32)
    kw = reference_kwargs(objective_name)
    X32, Y32 = model.user_factors.astype(np.float64), model.item_factors.astype(np.float64)
    assert model.loss() == pytest.approx(ref.loss(R, X32, Y32, **kw), rel=1e-5)
    assert model.certificate().max_row == pytest.approx(
        ref.certificate(R, X32, Y32, **kw)[1], rel=1e-4)


def test_loss_never_increases_and_certificate_falls(objective_name):
    R, X, Y = problem(7, n_users=30, n_items=20, density=0.3, k=4)
    model = make_model(objective_name, X, Y, R)
    losses, certs = [model.loss()], [model.certificate().max_row]
    for _ in range(12):
        one_cholesky_sweep(model)
        losses.append(model.loss())
        certs.append(model.certificate().max_row)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(losses, losses[1:]))
    assert certs[-1] < 0.1 * certs[1]


def test_cg_with_k_steps_solves_exactly():
    # CG on a k x k SPD system converges in k steps (exact arithmetic)
    R, X, Y = problem(4, n_users=10, n_items=8, k=3)
    exact = one_cholesky_sweep(make_model("implicit", X, Y, R))
    cg = make_model("implicit", X, Y, R, use_cg=True, cg_steps=3 * 3, iterations=1)
    cg.fit(R, show_progress=False, warm_start=True)
    np.testing.assert_allclose(cg.user_factors, exact.user_factors, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(cg.item_factors, exact.item_factors, rtol=1e-6, atol=1e-9)


def test_cg_fit_lowers_loss_like_cholesky():
    R, _, _ = problem(8, n_users=60, n_items=40, density=0.2)
    kw = dict(factors=5, iterations=8, regularization=0.1, random_state=0, dtype=np.float64)
    cg = fu.ImplicitALS(use_cg=True, **kw).fit(R, show_progress=False)
    chol = fu.ImplicitALS(use_cg=False, **kw).fit(R, show_progress=False)
    assert cg.loss() == pytest.approx(chol.loss(), rel=0.02)


def test_fit_matches_reference_fit_including_initialisation(objective_name):
    R, _, _ = problem(9, n_users=20, n_items=15, k=3)
    _, params, extra = __import__("conftest").OBJECTIVES[objective_name]
    cls = fu.ImplicitALS if objective_name == "implicit" else fu.ExplicitALS
    model = cls(factors=3, iterations=4, use_cg=False, dtype=np.float64, random_state=42,
                num_threads=1, **params, **extra).fit(R, show_progress=False)
    X_ref, Y_ref = ref.fit(R, 3, iterations=4, seed=42, **reference_kwargs(objective_name))
    np.testing.assert_allclose(model.user_factors, X_ref, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(model.item_factors, Y_ref, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("use_cg", [False, True])
def test_bitwise_identical_across_thread_counts(use_cg):
    rng = np.random.default_rng(0)
    R = sp.random(400, 300, density=0.05, random_state=1, format="csr") * 5
    results = []
    for threads in (1, 2):
        model = fu.ImplicitALS(factors=16, iterations=3, use_cg=use_cg, dtype=np.float64,
                               random_state=rng.integers(1) + 7, num_threads=threads)
        model.fit(R, show_progress=False)
        results.append((model.user_factors, model.item_factors, model.loss()))
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])
    assert results[0][2] == results[1][2]


def test_int64_indices_give_the_int32_result():
    R, X, Y = problem(11, n_users=12, n_items=9, k=4, negative=True)
    base = np.asarray(Y.T @ Y + 0.1 * np.eye(4))
    rows = np.arange(12, dtype=np.int64)
    out = []
    for idx in (np.int32, np.int64):
        Xc = X.copy()
        status = np.zeros(12, dtype=np.int32)
        _als.solve_cholesky(R.indptr.astype(idx), R.indices.astype(idx), R.data.astype(np.float64),
                            rows, Xc, Y, base, True, 2.0, 0.1, False, status, 2)
        norms = np.zeros(12)
        _als.gradient_norms(R.indptr.astype(idx), R.indices.astype(idx),
                            R.data.astype(np.float64), rows, Xc, Y, base, True, 2.0, 0.1, False,
                            norms, 2)
        out.append((Xc, norms))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])
    assert np.all(out[0][1] < 1e-10)  # the rows just solved are stationary


def test_callback_and_training_loss():
    R, _, _ = problem(12, n_users=20, n_items=10)
    seen = []
    model = fu.ImplicitALS(factors=3, iterations=3, calculate_training_loss=True, random_state=0,
                           dtype=np.float64)
    model.fit(R, show_progress=False, callback=lambda it, secs, loss: seen.append((it, loss)))
    assert [it for it, _ in seen] == [0, 1, 2]
    assert seen[-1][1] == pytest.approx(model.loss())


def test_fit_does_not_modify_or_alias_input():
    R, _, _ = problem(13)
    before = R.copy()
    model = fu.ImplicitALS(factors=2, iterations=1, random_state=0).fit(R, show_progress=False)
    assert (R != before).nnz == 0
    assert not np.shares_memory(model.user_items.data, R.data)


def test_user_items_is_read_only_and_canonical():
    R = sp.coo_matrix(([1.0, 2.0, 3.0], ([0, 0, 1], [2, 2, 0])), shape=(2, 3))
    model = fu.ImplicitALS(factors=2, iterations=1, random_state=0).fit(R, show_progress=False)
    ui = model.user_items
    assert sp.isspmatrix_csr(ui) and ui.nnz == 2 and ui[0, 2] == 3.0  # duplicates summed
    with pytest.raises(ValueError):
        ui.data[0] = 5


def test_predict_pairs_scores():
    R, X, Y = problem(14)
    model = make_model("explicit", X, Y, R)
    u, i = np.array([0, 3, 8]), np.array([6, 0, 2])
    np.testing.assert_allclose(model.predict(u, i), np.sum(X[u] * Y[i], axis=1))


def test_drop_in_is_an_implicit_estimator_with_the_factory_order():
    assert issubclass(fu.AlternatingLeastSquares, fu.ImplicitALS)
    # implicit.als.AlternatingLeastSquares: use_gpu comes 7th, before iterations
    model = fu.AlternatingLeastSquares(64, 0.05, 2.0, np.float64, True, False, False, 7,
                                       False, 1, 3)
    assert (model.factors, model.regularization, model.alpha, model.use_cg, model.iterations,
            model.num_threads, model.random_state) == (64, 0.05, 2.0, False, 7, 1, 3)
    # ImplicitALS keeps implicit.cpu.als.AlternatingLeastSquares's order
    model = fu.ImplicitALS(64, 0.05, 2.0, np.float64, True, False, 7, False, 1, 3)
    assert (model.factors, model.regularization, model.alpha, model.use_cg, model.iterations,
            model.num_threads, model.random_state) == (64, 0.05, 2.0, False, 7, 1, 3)


def test_show_config_reports_build(capsys):
    info = fu.config_info()
    assert info["version"] == fu.__version__
    assert isinstance(info["openmp"], bool) and info["threads"] >= 1
    # prints once and returns None, as numpy's and implicit's do
    assert fu.show_config() is None
    out = capsys.readouterr().out
    assert out.startswith(f"fastunlearn {fu.__version__} ") and "OpenMP compiled in" in out
    assert fu.show_config(mode="dicts") == info and capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="mode must be 'stdout' or 'dicts', got 'json'"):
        fu.show_config(mode="json")


@pytest.mark.parametrize("k", [7, 193])  # small-k C Cholesky, and LAPACK above 192
def test_both_cholesky_paths_match_reference(k):
    R, X, Y = problem(17, n_users=12, n_items=10, k=k, negative=True)
    model = one_cholesky_sweep(make_model("implicit", X, Y, R))
    X_ref, Y_ref = ref.sweep(R, X, Y, **reference_kwargs("implicit"))
    np.testing.assert_allclose(model.user_factors, X_ref, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(model.item_factors, Y_ref, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("side", ["users", "items"])
def test_solve_measured_is_solve_rows_plus_its_measures(objective_name, side, dtype):
    from fastunlearn import objective

    R, X, Y = problem(11, negative=True, empty_rows=True, n_users=14, n_items=9, k=2,
                      density=0.5)
    X, Y = X.astype(dtype), Y.astype(dtype)
    model = make_model(objective_name, X, Y, R, dtype=dtype)
    o, data = model.objective, model.state.data
    rows = np.array([0, 3, 4, 7, 8])
    # both ways of measuring: short rows (up to 2k entries) by passes over
    # their entries, longer ones from their normal equations
    counts = model.state.data.counts(side)[rows]
    assert np.any(counts <= 4) and np.any(counts > 4)
    F = model.user_factors if side == "users" else model.item_factors
    other = model.item_factors if side == "users" else model.user_factors

    def terms(values):
        return objective.data_loss(o, data, side, rows, values, other, num_threads=1)

    expected_before = terms(F[rows])
    solved = make_model(objective_name, X.copy(), Y.copy(), R, dtype=dtype)
    objective.solve_rows(o, data, solved.user_factors, solved.item_factors, side, rows,
                         use_cg=False, cg_steps=0, num_threads=1)
    before, norms, after = objective.solve_measured(o, data, model.user_factors,
                                                    model.item_factors, side, rows,
                                                    num_threads=2)
    np.testing.assert_array_equal(model.user_factors, solved.user_factors)
    np.testing.assert_array_equal(model.item_factors, solved.item_factors)
    rel = 1e-10 if dtype == np.float64 else 1e-5
    assert before.sum() == pytest.approx(expected_before, rel=rel)
    assert after.sum() == pytest.approx(terms(F[rows]), rel=rel)
    # a solved row's gradient is rounding; the measure covers the exact norm
    # (NumPy in float64 at the stored factors, up to its own rounding where
    # it is measured rather than bounded) and stays at rounding level
    GX, GY = ref.gradients(R, model.user_factors.astype(np.float64),
                           model.item_factors.astype(np.float64),
                           **reference_kwargs(objective_name))
    exact = np.linalg.norm((GX if side == "users" else GY)[rows], axis=1)
    rounding = 1e-6 if dtype == np.float32 else 1e-14
    assert np.all(exact <= norms + rounding)
    assert np.all(exact[counts > 4] <= norms[counts > 4])
    assert norms.max() < (1e-4 if dtype == np.float32 else 1e-11)


@pytest.mark.parametrize("side", ["users", "items"])
def test_solve_measured_measures_a_row_left_unsolved(side):
    # explicit, no regularisation, a row with fewer ratings than k: A is
    # singular, the row keeps its factors and its (large) gradient
    from fastunlearn import objective

    R, X, Y = problem(12, n_users=6, n_items=5, k=6, density=0.5)
    model = fu.ExplicitALS.from_factors(X, Y, R, factors=6, regularization=0.0,
                                        dtype=np.float64, num_threads=1)
    rows = np.arange(R.shape[0 if side == "users" else 1])
    _, norms, _ = objective.solve_measured(model.objective, model.state.data, model.user_factors,
                                           model.item_factors, side, rows, num_threads=1)
    GX, GY = ref.gradients(R, model.user_factors, model.item_factors, model="explicit",
                           regularization=0.0)
    exact = np.linalg.norm((GX if side == "users" else GY)[rows], axis=1)
    assert exact.max() > 1e-3
    np.testing.assert_allclose(norms, exact, rtol=1e-9, atol=1e-12)


def test_solve_measured_measures_long_rows_exactly_past_the_slack():
    from fastunlearn import objective

    R, X, Y = problem(13, n_users=20, n_items=8, k=4, density=0.6)
    X, Y = X.astype(np.float32), Y.astype(np.float32)
    rows = np.arange(8)

    def measured(exact_above):
        model = make_model("implicit", X, Y, R, dtype=np.float32)
        return objective.solve_measured(
            model.objective, model.state.data, model.user_factors, model.item_factors, "items",
            rows, num_threads=1, exact_above=exact_above)[1]

    bounded, exact = measured(np.inf), measured(0.0)
    # the slack is absent from exact measures (an item without entries is
    # solved to zero, with nothing to bound)
    assert np.all(bounded >= exact) and np.count_nonzero(bounded > exact) >= 6
    assert exact.max() < 1e-5  # rounding


def test_state_composes_factors_data_and_kept_measures():
    """The estimator's factors are those of its ModelState, for readers and
    for assignment; an assignment or in-place edit outdates the kept measures."""
    from fastunlearn.state import ModelState

    R, X, Y = problem(4)
    model = make_model("implicit", X, Y, R)
    state = model.state
    assert isinstance(state, ModelState) and state.is_fitted
    assert model.user_factors is state.user_factors and model.item_factors is state.item_factors
    assert (model.user_items != state.data.user_items()).nnz == 0
    cert = model.certificate()
    assert state.current_measures() is not None
    model.user_factors = model.user_factors * 2
    assert state.user_factors is model.user_factors and state.current_measures() is None
    assert model.certificate().max_row != cert.max_row
    assert state.current_measures() is not None
    model.item_factors[0] += 1
    assert state.current_measures() is None
    unfitted = fu.ImplicitALS()
    assert unfitted.user_factors is None and not unfitted.state.is_fitted
    with pytest.raises(fu.NotFittedError):
        unfitted.certificate()


def test_pickle_keeps_the_state_and_reads_pickles_of_loose_attributes():
    import pickle

    R, X, Y = problem(6)
    model = make_model("explicit", X, Y, R)
    model.forget([int(R.tocoo().row[0])], [int(R.tocoo().col[0])], washout=0)
    clone = pickle.loads(pickle.dumps(model))
    assert clone.state is not model.state and clone.pending == model.pending
    assert np.array_equal(clone.user_factors, model.user_factors)
    assert (clone.user_items != model.user_items).nnz == 0
    assert clone.loss() == model.loss()
    # a pickle written before ModelState kept these as loose attributes
    old = {k: v for k, v in clone.__dict__.items() if k != "_state"}
    old.update(user_factors=clone.state.user_factors, item_factors=clone.state.item_factors,
               _data=clone.state.data, _measured=clone.state.measured,
               _pending=clone.state.pending)
    again = type(model).__new__(type(model))
    again.__setstate__(old)
    assert again.user_factors is clone.user_factors and again.state.data is clone.state.data
    assert again.pending == model.pending and again.loss() == model.loss()


# ---------------------------------------------------------------- estimator protocol

ESTIMATORS = [fu.ImplicitALS, fu.ExplicitALS, fu.AlternatingLeastSquares]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_scikit_learn_clone_gives_an_unfitted_equal_model(cls):
    sklearn_base = pytest.importorskip("sklearn.base")
    model = cls(factors=6, regularization=0.3, iterations=2, random_state=4, num_threads=1)
    model.set_params(regularization=0.2)
    R = sp.random(30, 20, density=0.2, random_state=0, format="csr", dtype=np.float32)
    model.fit(R, show_progress=False)
    copy = sklearn_base.clone(model)
    assert type(copy) is cls and not copy.is_fitted
    assert copy.get_params() == model.get_params() and copy.regularization == 0.2
    copy.fit(R, show_progress=False)  # same hyperparameters and seed: the same model
    np.testing.assert_array_equal(copy.user_factors, model.user_factors)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_set_params_validates_and_leaves_the_model_on_error(cls):
    model = cls(factors=6)
    assert model.set_params(factors=7, regularization=0.5) is model
    assert (model.factors, model.regularization) == (7, 0.5)
    assert model.get_params(deep=True) == model.get_params(deep=False)
    with pytest.raises(ValueError, match="factors"):
        model.set_params(factors=0, regularization=0.9)
    assert (model.factors, model.regularization) == (7, 0.5)
    with pytest.raises(ValueError, match="invalid parameter.*'nope'"):
        model.set_params(nope=1)


# ---------------------------------------------------------------- copies

COPIES = {"deepcopy": __import__("copy").deepcopy,
          "pickle": lambda m: __import__("pickle").loads(__import__("pickle").dumps(m))}


@pytest.mark.parametrize("how", sorted(COPIES))
def test_copies_keep_their_measures_and_forget_as_the_original(how, monkeypatch):
    from fastunlearn import objective

    R = sp.random(60, 40, density=0.2, random_state=1, format="csr", dtype=np.float64)
    model = fu.ImplicitALS(factors=5, iterations=3, random_state=0, dtype=np.float64,
                           num_threads=1).fit(R, show_progress=False)
    twin = COPIES[how](model)
    measured = []
    real = objective.measure
    monkeypatch.setattr(objective, "measure",
                        lambda *a, **k: measured.append(1) or real(*a, **k))
    users, items = R.nonzero()
    ours = model.forget(users[:2], items[:2], washout=0)
    theirs = twin.forget(users[:2], items[:2], washout=0)
    assert not measured  # neither paid a pass over the data: both started warm
    np.testing.assert_array_equal(twin.user_factors, model.user_factors)
    assert theirs.certificate_after == ours.certificate_after


@pytest.mark.parametrize("how", sorted(COPIES))
def test_a_copy_whose_factors_change_is_measured_again(how):
    R = sp.random(60, 40, density=0.2, random_state=1, format="csr", dtype=np.float64)
    model = fu.ImplicitALS(factors=5, iterations=3, random_state=0, dtype=np.float64,
                           num_threads=1).fit(R, show_progress=False)
    model.user_factors[3] += 0.5  # the original's kept measures are now stale too
    twin = COPIES[how](model)
    assert twin.state.current_measures() is None
    fresh = fu.ImplicitALS.from_factors(model.user_factors, model.item_factors, R,
                                        **model.hyperparameters())
    assert twin.certificate() == fresh.certificate()
