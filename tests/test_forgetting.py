"""forget / forget_users / forget_items / partial_fit against the NumPy reference."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
import reference as ref
from conftest import OBJECTIVES, reference_kwargs
from fastunlearn import forgetting, objective
from fastunlearn import state as kept_state


def fitted(name, seed=0, n_users=50, n_items=35, iterations=8, **kw):
    R, _, _ = ref.random_problem(seed, n_users=n_users, n_items=n_items, density=0.2,
                                 negative=name == "implicit")
    model, params, extra = OBJECTIVES[name]
    cls = fu.ImplicitALS if model == "implicit" else fu.ExplicitALS
    m = cls(**{"factors": 4, "iterations": iterations, "dtype": np.float64,
               "random_state": seed, "use_cg": False, "num_threads": 2, **params, **extra,
               **kw})
    return m.fit(R, show_progress=False)


def random_pairs(model, n, seed=0):
    coo = model.user_items.tocoo()
    pick = np.random.default_rng(seed).choice(coo.nnz, n, replace=False)
    return coo.row[pick], coo.col[pick]


def reference_certificate(model, name):
    return ref.certificate(model.user_items, model.user_factors, model.item_factors,
                           **reference_kwargs(name))


def state(model):
    d = model.state.data
    return [a.copy() for a in (model.user_factors, model.item_factors, *d.by_user.arrays(),
                                *d.by_item.arrays())]


@pytest.mark.parametrize("strategy", ["masked", "full"])
@pytest.mark.parametrize("request_kind", ["pairs", "users", "items", "sparse"])
def test_forget_reaches_tolerance_on_retained_objective(objective_name, strategy, request_kind):
    model = fitted(objective_name, seed=1)
    before = model.user_items.copy()
    users, items = random_pairs(model, 8, seed=2)
    if request_kind == "pairs":
        report = model.forget(users, items, strategy=strategy)
    elif request_kind == "users":
        report = model.forget_users(users[:2], strategy=strategy)
    elif request_kind == "items":
        report = model.forget_items(items[:2], strategy=strategy)
    else:
        request = sp.csr_matrix((np.ones(len(users)), (users, items)), shape=before.shape)
        report = model.forget(request, strategy=strategy)
    assert report.n_removed > 0 and model.user_items.nnz == before.nnz - report.n_removed
    assert report.converged
    frob, max_row = reference_certificate(model, objective_name)
    assert max_row <= report.tolerance * (1 + 1e-9)
    if report.certificate_after.exact:
        assert report.certificate_after.max_row == pytest.approx(max_row, rel=1e-9)
    else:  # the engine's bound: never below the true certificate
        assert report.certificate_after.max_row >= max_row * (1 - 1e-9)
        assert report.certificate_after.frobenius >= frob * (1 - 1e-9)
    assert model.loss() == pytest.approx(
        ref.loss(model.user_items, model.user_factors, model.item_factors,
                 **reference_kwargs(objective_name)), rel=1e-10)
    assert report.loss_after == pytest.approx(model.loss(), rel=1e-12)


def test_exact_certificate_on_request(objective_name):
    model = fitted(objective_name, seed=1)
    users, items = random_pairs(model, 8, seed=2)
    report = model.forget(users, items, exact_certificate=True)
    assert report.certificate_after.exact
    frob, max_row = reference_certificate(model, objective_name)
    assert report.certificate_after.max_row == pytest.approx(max_row, rel=1e-9)
    assert report.certificate_after.frobenius == pytest.approx(frob, rel=1e-9)


def test_kept_measures_stay_true_over_many_requests(objective_name):
    """Bounds, Grams and loss terms are updated, not recomputed, between
    requests: after each one they must still bound (certificate) and equal
    (loss) what the reference computes from scratch."""
    model = fitted(objective_name, seed=11, n_users=60, n_items=40)
    model.certificate()  # measured once, exactly; then only updated
    kw = reference_kwargs(objective_name)
    rng = np.random.default_rng(11)
    for step in range(6):
        if step % 3 == 2:
            report = model.forget_items([int(rng.integers(40))], missing="ignore")
        else:
            users, items = random_pairs(model, 3, seed=step)
            report = model.forget(users, items)
        R, X, Y = model.user_items, model.user_factors, model.item_factors
        _, max_row = ref.certificate(R, X, Y, **kw)
        assert report.converged and not report.certificate_after.exact
        assert max_row <= report.certificate_after.max_row * (1 + 1e-9)
        assert max_row <= report.tolerance * (1 + 1e-9)
        assert report.loss_after == pytest.approx(ref.loss(R, X, Y, **kw), rel=1e-9)
        kept = model.state.measured.measures
        for grads, bounds in zip(ref.gradients(R, X, Y, **kw), (kept.user_norms,
                                                                 kept.item_norms)):
            assert np.all(np.linalg.norm(grads, axis=1) <= bounds * (1 + 1e-9) + 1e-12)


def test_retained_data_is_input_minus_removed(objective_name):
    model = fitted(objective_name)
    before = model.user_items.toarray()
    users, items = random_pairs(model, 6)
    model.forget(users, items)
    after = model.user_items.toarray()
    expected = before.copy()
    expected[users, items] = 0
    assert np.array_equal(after, expected)
    assert np.array_equal(model.state.data.by_item.matrix().toarray(), expected.T)


def test_tight_tolerance_matches_retrain_stationary_point():
    model = fitted("implicit", seed=3, iterations=60)
    users, items = random_pairs(model, 10, seed=3)
    report = model.forget(users, items, tolerance=1e-5, max_sweeps=2000)
    assert report.converged
    assert reference_certificate(model, "implicit")[1] <= 1e-5 * (1 + 1e-6)
    assert report.certificate_after.max_row < 1e-3 * report.certificate_before.max_row


def test_masked_solves_fewer_rows_than_full():
    a, b = fitted("implicit", seed=4), fitted("implicit", seed=4)
    users, items = random_pairs(a, 3, seed=5)
    masked = a.forget(users, items, strategy="masked", washout=0)
    full = b.forget(users, items, strategy="full", tolerance=masked.tolerance, washout=0)
    assert masked.converged and full.converged
    assert full.sweeps >= 1 and masked.rows_solved < full.rows_solved


def test_forget_then_partial_fit_returns_to_original_objective(objective_name):
    model = fitted(objective_name, seed=6)
    original = model.user_items.copy()
    users, items = random_pairs(model, 7, seed=6)
    removed = sp.csr_matrix((original[users, items].A1, (users, items)), shape=original.shape)
    model.forget(users, items)
    report = model.partial_fit(removed)
    assert report.n_added == 7 and report.converged
    assert (model.user_items != original).nnz == 0
    _, max_row = ref.certificate(original, model.user_factors, model.item_factors,
                                 **reference_kwargs(objective_name))
    assert max_row <= report.tolerance * (1 + 1e-9)


def test_partial_fit_grows_for_new_users_and_items(objective_name):
    model = fitted(objective_name, seed=7)
    n_users, n_items = model.user_items.shape
    delta = sp.csr_matrix(([3.0, 1.0, 2.0], ([n_users + 1, 0, n_users], [2, n_items, n_items])),
                          shape=(n_users + 2, n_items + 1))
    report = model.partial_fit(delta)
    assert model.user_factors.shape[0] == n_users + 2 and model.item_factors.shape[0] == n_items + 1
    assert model.user_items.shape == (n_users + 2, n_items + 1)
    _, max_row = reference_certificate(model, objective_name)
    assert max_row <= report.tolerance * (1 + 1e-9)


def test_forget_users_zeroes_implicit_user_and_resolves_their_items():
    model = fitted("implicit", seed=8)
    user = int(np.argmax(np.diff(model.user_items.indptr)))
    items = model.user_items[user].indices.copy()
    report = model.forget_users([user])
    assert np.all(model.user_factors[user] == 0)
    assert model.user_items[user].nnz == 0
    assert report.items_affected == len(items)
    assert report.rows_solved_by_phase["local"] >= 1 + len(items)
    # those items are stationary for the retained data right after
    _, GY = ref.gradients(model.user_items, model.user_factors, model.item_factors,
                          **reference_kwargs("implicit"))
    assert np.linalg.norm(GY[items], axis=1).max() <= report.tolerance * (1 + 1e-9)


def test_saved_file_after_forget_holds_no_removed_pair(tmp_path):
    model = fitted("implicit", seed=9)
    users, items = random_pairs(model, 5, seed=9)
    report = model.forget(users, items)
    path = model.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:
        stored = sp.csr_matrix((npz["data"], npz["indices"], npz["indptr"]),
                               shape=tuple(npz["shape"]))
        history = str(npz["history"])
    assert all(stored[u, i] == 0 for u, i in zip(users, items))
    assert report.digest in history
    # no slack beyond nnz keeps old values either
    assert np.all(model.state.data.by_user.data[model.state.data.nnz:] == 0)
    assert np.all(model.state.data.by_item.indices[model.state.data.nnz:] == 0)


def test_report_has_counts_and_digest_not_pairs():
    model = fitted("explicit", seed=10)
    users, items = random_pairs(model, 4, seed=10)
    report = model.forget(users[::-1], items[::-1])
    assert report.digest == forgetting.digest_pairs(users, items,
                                                    bytes.fromhex(report.receipt_key))
    flat = report.to_dict()
    assert not any(isinstance(v, (np.ndarray, list, tuple)) for v in flat.values())
    assert isinstance(report.certificate_after, objective.Certificate)
    assert report.users_affected == len(set(users))
    assert model.metadata["history"][-1]["digest"] == report.digest


def test_missing_pairs_raise_or_are_ignored():
    model = fitted("implicit", seed=11)
    dense = model.user_items.toarray()
    u, i = np.argwhere(dense == 0)[0]
    snapshot = state(model)
    with pytest.raises(ValueError, match="not stored"):
        model.forget([u], [i])
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, state(model)))
    users, items = random_pairs(model, 2, seed=11)
    report = model.forget(np.r_[users, u], np.r_[items, i], missing="ignore")
    assert report.n_removed == 2


def test_repeated_request_with_missing_ignore_is_a_no_op_that_counts_what_it_skipped():
    model = fitted("implicit", seed=14)
    users, items = random_pairs(model, 3, seed=14)
    first = model.forget(users, items)
    assert first.n_removed == 3 and first.n_skipped == 0
    snapshot, history = state(model), list(model.metadata["history"])
    again = model.forget(users, items, missing="ignore")
    assert again.n_removed == 0 and again.n_skipped == 3 and again.rows_solved == 0
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, state(model)))
    assert model.metadata["history"] == history  # no receipt for nothing
    # half a repeat: the new pair removed, the old ones counted (once each)
    more_u, more_i = random_pairs(model, 1, seed=15)
    mixed = model.forget(np.r_[users, users, more_u], np.r_[items, items, more_i],
                         missing="ignore")
    assert mixed.n_removed == 1 and mixed.n_skipped == 3
    assert mixed.to_dict()["n_skipped"] == 3
    with pytest.raises(ValueError, match="3 of the 3 pairs to forget are not stored"):
        model.forget(users, items)


def test_empty_request_is_a_no_op_with_report():
    model = fitted("implicit", seed=12)
    snapshot = state(model)
    report = model.forget([], [])
    assert report.n_removed == 0 and report.rows_solved == 0
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, state(model)))


def test_bad_requests():
    model = fitted("implicit", seed=13)
    with pytest.raises(IndexError):
        model.forget([10_000], [0])
    with pytest.raises(ValueError, match="pair up"):
        model.forget([0, 1], [0])
    with pytest.raises(ValueError, match="strategy"):
        model.forget([0], [0], strategy="bogus")
    with pytest.raises(ValueError, match="itemids"):
        model.forget([0])
    with pytest.raises(fu.NotFittedError):
        fu.ImplicitALS().forget([0], [0])


@pytest.mark.parametrize("fail_on", [1, 3])
def test_failure_mid_forget_leaves_model_unchanged(monkeypatch, fail_on):
    model = fitted("implicit", seed=14)
    snapshot = state(model)
    calls = {"n": 0}
    real = objective.solve_measured

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "solve_measured", flaky)
    users, items = random_pairs(model, 6, seed=14)
    with pytest.raises(KeyboardInterrupt):
        model.forget(users, items, washout=0)  # the masked engine's solves
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, state(model)))
    monkeypatch.setattr(objective, "solve_measured", real)
    assert model.forget(users, items).converged  # still usable


@pytest.mark.parametrize("strategy", ["masked", "full"])
def test_washout_then_certified_on_retained_objective(objective_name, strategy):
    model = fitted(objective_name, seed=21)
    n_rows = sum(model.user_items.shape)
    users, items = random_pairs(model, 8, seed=21)
    report = model.forget(users, items, washout=2, strategy=strategy)
    # two over-relaxed sweeps and one plain one
    assert report.washout == 2 and report.rows_solved_by_phase["washout"] == 3 * n_rows
    assert report.converged
    _, max_row = reference_certificate(model, objective_name)
    assert max_row <= report.tolerance * (1 + 1e-9)
    assert model.loss() == pytest.approx(
        ref.loss(model.user_items, model.user_factors, model.item_factors,
                 **reference_kwargs(objective_name)), rel=1e-10)


def test_relaxed_sweep_is_als_at_one_and_never_raises_the_loss(objective_name):
    """0 < w < 2 lowers the objective every half-sweep (each row's problem is
    a convex quadratic), with exact and with CG steps; w = 1 is the plain
    ALS sweep, bit for bit."""
    model = fitted(objective_name, seed=22, iterations=2)
    kw = reference_kwargs(objective_name)

    def copy():
        return model.user_factors.copy(), model.item_factors.copy()

    for use_cg in (False, True):
        solver = dict(use_cg=use_cg, cg_steps=2, num_threads=2)
        X, Y = copy()
        objective.relaxed_sweep(model.objective, model.state.data, X, Y, 1.0, **solver)
        X1, Y1 = copy()
        objective.sweep(model.objective, model.state.data, X1, Y1, **solver)
        assert np.array_equal(X, X1) and np.array_equal(Y, Y1)
        for w in (0.5, 1.5, 1.9):
            X, Y = copy()
            losses = [ref.loss(model.user_items, X, Y, **kw)]
            for _ in range(4):
                objective.relaxed_sweep(model.objective, model.state.data, X, Y, w, **solver)
                losses.append(ref.loss(model.user_items, X, Y, **kw))
            # one relaxed sweep is F0 + w (F* - F0) per side, users first
            X0, Y0 = copy()
            X, Y = X0.copy(), Y0.copy()
            objective.relaxed_sweep(model.objective, model.state.data, X, Y, w, **solver)
            Xs, Ys = X0.copy(), Y0.copy()
            objective.solve_rows(model.objective, model.state.data, Xs, Ys, "users",
                                 np.arange(len(Xs)), **solver)
            Xs = X0 + w * (Xs - X0)
            objective.solve_rows(model.objective, model.state.data, Xs, Ys, "items",
                                 np.arange(len(Ys)), **solver)
            Ys = Y0 + w * (Ys - Y0)
            np.testing.assert_allclose(X, Xs, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(Y, Ys, rtol=1e-5, atol=1e-7)
            assert all(b <= a * (1 + 1e-12) for a, b in zip(losses, losses[1:])), \
                (use_cg, w, losses)
            assert losses[-1] < losses[0]


def test_failure_in_washout_leaves_model_unchanged(monkeypatch):
    model = fitted("implicit", seed=23)
    snapshot = state(model)
    real = objective.relaxed_sweep
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # after one sweep has moved every row
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "relaxed_sweep", flaky)
    users, items = random_pairs(model, 6, seed=23)
    with pytest.raises(KeyboardInterrupt):
        model.forget(users, items, washout=3)
    assert calls["n"] == 2
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, state(model)))


@pytest.mark.parametrize("washout, error", [(-1, ValueError), (1.5, TypeError),
                                            ("2", TypeError)])
def test_bad_washout(washout, error):
    model = fitted("implicit", seed=24)
    with pytest.raises(error, match="washout"):
        model.forget([0], [model.user_items[0].indices[0]], washout=washout)


def test_from_implicit_takes_factors_trained_elsewhere():
    class ImplicitLike:  # the attributes implicit's models expose
        factors, regularization, alpha, dtype = 4, 0.1, 2.0, np.float64
        use_cg, iterations, calculate_training_loss, num_threads, random_state = True, 5, False, 0, 1

    R, X, Y = ref.random_problem(15, n_users=20, n_items=15, k=4)
    other = ImplicitLike()
    other.user_factors, other.item_factors = X, Y
    model = fu.ImplicitALS.from_implicit(other, R)
    assert model.alpha == 2.0 and np.array_equal(model.user_factors, X)
    users, items = random_pairs(model, 3)
    report = model.forget(users, items)
    _, max_row = reference_certificate_for(model)
    assert max_row <= report.tolerance * (1 + 1e-9)


def reference_certificate_for(model):
    return ref.certificate(model.user_items, model.user_factors, model.item_factors,
                           model="implicit", regularization=model.regularization,
                           alpha=model.alpha)


def test_cached_measures_never_used_stale():
    model = fitted("implicit", seed=16)
    users, items = random_pairs(model, 4, seed=16)
    model.forget(users[:2], items[:2])
    model.user_factors[0] += 0.5  # an in-place edit by the user
    report = model.forget(users[2:], items[2:])
    fresh = fitted("implicit", seed=16)
    fresh.forget(users[:2], items[:2])
    fresh.user_factors[0] += 0.5
    assert report.certificate_before.max_row == pytest.approx(fresh.certificate().max_row,
                                                              rel=1e-12)
    assert report.loss_before == pytest.approx(fresh.loss(), rel=1e-12)


def test_swapping_factor_rows_invalidates_kept_measures():
    model = fitted("implicit", seed=17)
    model.certificate()
    model.item_factors[[0, 1]] = model.item_factors[[1, 0]]  # same bytes, new places
    frob, max_row = reference_certificate(model, "implicit")
    assert model.certificate().frobenius == pytest.approx(frob, rel=1e-9)
    assert model.loss() == pytest.approx(
        ref.loss(model.user_items, model.user_factors, model.item_factors,
                 **reference_kwargs("implicit")), rel=1e-10)


def test_unique_pairs_is_numpy_unique_over_rows():
    rng = np.random.default_rng(4)
    users, items = rng.integers(0, 5, 40), rng.integers(0, 4, 40)
    expected = np.unique(np.stack([users, items], axis=1), axis=0)
    got = forgetting.unique_pairs(users, items)
    np.testing.assert_array_equal(np.stack(got, axis=1), expected)
    assert all(a.dtype == np.int64 for a in got)
    assert [len(a) for a in forgetting.unique_pairs([], [])] == [0, 0]


@pytest.mark.parametrize("show_progress", [False, True])
def test_forget_progress_bar_only_when_asked(capsys, show_progress):
    model = fitted("implicit", seed=20)
    report = model.forget(*random_pairs(model, 3, seed=20), show_progress=show_progress)
    assert report.converged
    assert ("Forgetting" in capsys.readouterr().err) == show_progress


@pytest.mark.parametrize("moved", [1, 3, 5])
def test_gram_change_times_rows(moved):
    """Factored (4m < k) or not, the product is ``f @ delta``."""
    rng = np.random.default_rng(moved)
    k = 16
    old, new, f = rng.normal(size=(moved, k)), rng.normal(size=(moved, k)), \
        rng.normal(size=(7, k))
    delta = new.T @ new - old.T @ old
    np.testing.assert_allclose(forgetting.gram_change_times(f, delta, old, new), f @ delta,
                               rtol=1e-12, atol=1e-12)


def test_bounds_hold_with_the_factored_gram_product():
    """With the factored Gram product (one forgotten user, k = 16) every
    kept bound stays at or above the true gradient norm, and the kept
    certificate within the tolerance."""
    model = fitted("implicit", seed=19, factors=16)
    model.certificate()
    users, _ = random_pairs(model, 1, seed=19)
    report = model.forget_users(users[:1])
    assert report.converged
    kept = model.state.measured.measures
    for side, bounds in (("users", kept.user_norms), ("items", kept.item_norms)):
        true = objective.gradient_norms(model.objective, model.state.data, model.user_factors,
                                        model.item_factors, side, num_threads=1)
        assert np.all(bounds >= true * (1 - 1e-9) - 1e-12)
    assert kept.certificate().max_row <= report.tolerance


@pytest.mark.parametrize("dtype, k", [(np.float32, 8), (np.float64, 3), (np.float32, 3)])
def test_advanced_checksum_is_a_full_read(dtype, k):
    rng = np.random.default_rng(0)
    F = rng.random((40, k)).astype(dtype)
    before = kept_state.checksum(F)
    rows = np.array([0, 7, 39])
    old = F[rows].copy()
    F[rows] = rng.random((3, k)).astype(dtype)
    advanced = kept_state.advance_checksum(before, F, rows, old)
    if F.shape[1] * F.itemsize % 8:  # rows straddle words: the caller reads all
        assert advanced is None
    else:
        assert advanced == kept_state.checksum(F) and advanced != before
    assert kept_state.advance_checksum(None, F, rows, old) is None


@pytest.mark.parametrize("washout", [0, 1])
def test_forget_keys_the_state_it_leaves_without_a_full_read(monkeypatch, washout):
    """The kept measures' key equals a fresh fingerprint of the factors, and
    a masked request reads the factors whole only to check the state before."""
    model = fitted("implicit", seed=18)
    model.certificate()
    full_reads = []
    real = kept_state.checksum
    monkeypatch.setattr(kept_state, "checksum", lambda F: full_reads.append(F.shape) or real(F))
    model.forget(*random_pairs(model, 6, seed=18), washout=washout)
    assert len(full_reads) == (2 if washout == 0 else 4)
    monkeypatch.setattr(kept_state, "checksum", real)
    assert model.state.measured.key == kept_state.fingerprint(model.state)


def test_movielens_forget_one_percent_matches_retrain_ndcg(movielens):
    """Issue acceptance: forgetting a random 1 % of MovieLens 100K and
    retraining on what remains give nDCG@10 within 0.01 of each other."""
    from fastunlearn.evaluation import holdout_split, macro_ndcg_at_k

    train, test = holdout_split(movielens, 0.2, seed=0)
    params = dict(factors=32, regularization=0.05, iterations=15, random_state=0,
                  num_threads=2)
    model = fu.ImplicitALS(**params).fit(train, show_progress=False)
    coo = train.tocoo()
    pick = np.random.default_rng(0).choice(coo.nnz, coo.nnz // 100, replace=False)
    report = model.forget(coo.row[pick], coo.col[pick])
    assert report.converged and report.n_removed == len(pick)
    # the check below alone would pass unforgotten (0.396 against 0.400)
    assert reference_certificate_for(model)[1] <= report.tolerance * (1 + 1e-4)
    retained = model.user_items
    retrained = fu.ImplicitALS(**params).fit(retained, show_progress=False)
    forgot, fresh = (macro_ndcg_at_k(m, retained, test, k=10) for m in (model, retrained))
    assert fresh > 0.2  # a real model, not two broken ones agreeing
    assert abs(forgot - fresh) <= 0.01


def test_receipt_verifies_with_its_key_only(tmp_path):
    model = fitted("implicit", seed=18)
    users, items = random_pairs(model, 1, seed=18)  # one pair: a plain hash is invertible
    report = model.forget(users, items)
    order = np.arange(len(users))[::-1]
    assert fu.verify_receipt(users[order], items[order], report.receipt_key, report.digest)
    coo = model.user_items.tocoo()
    assert not fu.verify_receipt(coo.row[:1], coo.col[:1], report.receipt_key, report.digest)
    other = model.forget(coo.row[:1], coo.col[:1])
    assert other.receipt_key != report.receipt_key
    assert not fu.verify_receipt(users, items, other.receipt_key, report.digest)
    # the key leaves with the caller: not in the history nor in a saved file
    assert report.receipt_key not in str(model.metadata)
    path = model.save(tmp_path / "m.npz")
    raw = open(path, "rb").read()
    # strings may be stored as UTF-32 (NumPy unicode arrays)
    assert report.receipt_key.encode() not in raw
    assert report.receipt_key.encode("utf-32-le") not in raw
    loaded = fu.load(path)
    assert report.receipt_key not in str(loaded.metadata)
    assert [h["digest"] for h in loaded.metadata["history"]] == [report.digest, other.digest]


@pytest.mark.parametrize("rows", [1, 2, 5, 6])  # closed form, 2m < k by C W, 2m >= k
def test_gram_change_norm_is_the_spectral_norm(rows):
    rng = np.random.default_rng(rows)
    for scale in (1.0, 1e-3, 0.0):  # far, near and not moving at all
        old = rng.standard_normal((rows, 12))
        new = old + scale * rng.standard_normal((rows, 12))
        delta = new.T @ new - old.T @ old
        expected = np.linalg.norm(delta, 2)
        assert forgetting.gram_change_norm(old, new, delta) == pytest.approx(
            expected, rel=1e-9, abs=1e-12)


def test_masked_sweeps_switch_to_full_sweeps_past_a_sweeps_rows(monkeypatch):
    """Once masked solves add up to a full sweep's rows the engine runs full
    sweeps: to a tight tolerance it then solves at most two sweeps' rows
    more than plain full sweeps do, and certifies where they do."""
    from fastunlearn import forgetting

    a, b = fitted("implicit", seed=25), fitted("implicit", seed=25)
    users, items = random_pairs(a, 10, seed=25)
    tight = dict(tolerance=1e-5, max_sweeps=2000, washout=0)
    switched = []
    real = forgetting.engine.full_sweeps

    def full_sweeps(backend, *args, **kwargs):
        switched.append(backend.rows_solved["sweeps"])
        return real(backend, *args, **kwargs)

    monkeypatch.setattr(forgetting.engine, "full_sweeps", full_sweeps)
    masked = a.forget(users, items, **tight)
    one_sweep = sum(a.user_items.shape)
    assert len(switched) == 1 and one_sweep <= switched[0] < 2 * one_sweep
    full = b.forget(users, items, strategy="full", **tight)
    assert masked.converged and full.converged
    assert masked.rows_solved <= full.rows_solved + 2 * one_sweep
    assert reference_certificate(a, "implicit")[1] <= 1e-5 * (1 + 1e-6)


def test_partial_fit_returns_its_own_report_type():
    model = fitted("implicit", seed=21)
    n_users, n_items = model.user_items.shape
    delta = sp.csr_matrix(([1.0], ([0], [n_items])), shape=(n_users, n_items + 1))
    report = model.partial_fit(delta)
    assert isinstance(report, fu.PartialFitReport) and report.n_added == 1
    assert report.n_removed == 0 and report.converged
    assert not isinstance(model.forget([0], [n_items]), fu.PartialFitReport)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_gradient_pass_is_within_its_slack_of_the_exact_norms(objective_name, dtype):
    """The pass in the factors' dtype is within its slack of the reference
    gradient norms (float64 NumPy), far from stationarity and at it, where
    float32 rounding of A x and b cancels; and the slack is small enough to
    settle rows well inside or outside a tolerance."""
    model = fitted(objective_name, seed=30, n_users=60, n_items=45, iterations=2)
    _, params, extra = OBJECTIVES[objective_name]
    model = type(model).from_factors(model.user_factors.astype(dtype),
                                     model.item_factors.astype(dtype), model.user_items,
                                     **params, **extra)
    data = model.state.data
    for stage in ("far", "solved"):
        if stage == "solved":  # the users solved exactly: their gradients near zero
            objective.solve_rows(model.objective, data, model.user_factors, model.item_factors,
                                 "users", objective.all_rows(model.user_factors.shape[0]),
                                 use_cg=False, cg_steps=0, num_threads=1)
        X, Y = model.user_factors, model.item_factors
        GX, GY = ref.gradients(model.user_items, X.astype(np.float64), Y.astype(np.float64),
                               **reference_kwargs(objective_name))
        for side, G, other in (("users", GX, Y), ("items", GY, X)):
            exact = np.linalg.norm(G, axis=1)
            fast, slack = objective.gradient_norms(model.objective, data, X, Y, side,
                                                   num_threads=2,
                                                   other_sq=objective.squared_norms(other))
            assert np.all(np.abs(fast - exact) <= slack), (stage, side)
            scale = np.abs(G).max() if stage == "far" else 1.0
            eps = np.finfo(dtype).eps
            assert slack.max() <= 1e4 * eps * max(scale, exact.max(), 1.0), (stage, side)
    assert np.linalg.norm(GX, axis=1).max() < 1e-3  # the users were solved


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rechecks_decide_every_row_as_the_exact_pass(name, dtype):
    """The masked sweeps' re-checks (fast pass, then the exact one where the
    slack straddles the tolerance) return upper bounds of the exact norms
    that are over the tolerance exactly where the exact norms are, also for
    a row whose exact norm is the tolerance itself."""
    model = fitted(name, seed=31, dtype=dtype)
    state = model.state
    measures = state.measures(model.objective, 1)
    for side in ("users", "items"):
        def engine(tol):
            backend = forgetting.LocalBackend(model.spec, state, model.metadata)
            backend.tol, backend.data = tol, state.data
            backend.X, backend.Y = state.user_factors, state.item_factors
            backend.load(measures)
            return backend
        # the exact pass on the engine's own dense part (from the kept Gram)
        exact = objective.gradient_norms(model.objective, state.data, state.user_factors,
                                         state.item_factors, side, num_threads=1,
                                         base=engine(0.0).base(side))
        rows = np.arange(len(exact), dtype=np.int64)
        for tol in (exact[3], float(np.median(exact)), 2 * float(exact.max())):
            got = engine(tol).norms(side, rows)
            assert np.all(got >= exact * (1 - 1e-12))
            np.testing.assert_array_equal(got > tol, exact > tol)


# The size-scaled washout (docs/design.md, section 5): a request that washes
# out 2 % of the stored entries or more runs three sweeps at 1.9 on implicit
# models, smaller requests two at 1.8; ALS-WR models run two at any size, at
# 1.9 below 2 % and 1.8 from it; plain explicit models, whose test error
# rises as they converge, are refitted at any size.
LARGE_WASHOUT = {"implicit": (3, 1.9), "weighted": (2, 1.8)}
SMALL_WASHOUT = {"implicit": (2, 1.8), "weighted": (2, 1.9)}


@pytest.mark.parametrize("objective_name", ["implicit", "weighted"])
def test_the_default_washout_scales_with_the_request_on_objectives_that_converge_well(
        objective_name):
    model = fitted(objective_name)
    nnz, n_rows = model.user_items.nnz, sum(model.user_items.shape)
    plan = forgetting.washout_for(model.spec.objective, int(np.ceil(0.02 * nnz)), nnz)
    assert (plan.sweeps, plan.relaxation, plan.refit) == (*LARGE_WASHOUT[objective_name], False)
    small = forgetting.washout_for(model.spec.objective, int(0.02 * nnz) - 1, nnz)
    assert (small.sweeps, small.relaxation, small.refit) == (*SMALL_WASHOUT[objective_name], False)
    # what a forget of 5 % runs
    report = model.forget(*random_pairs(model, int(0.05 * nnz), seed=3))
    sweeps = LARGE_WASHOUT[objective_name][0]
    assert report.washout == sweeps and not report.refit
    assert report.rows_solved_by_phase["washout"] == (sweeps + 1) * n_rows


@pytest.mark.parametrize("fraction", [0.005, 0.05])
@pytest.mark.parametrize("washout", ["auto", 2, "settle"])
def test_plain_explicit_models_wash_out_by_refitting_from_their_seed(fraction, washout):
    """The default washout of a plain explicit model is a retrain: its
    factors are those of a fresh fit, same hyperparameters and seed, on the
    data left, in a forget or in the ``settle()`` of what one left pending;
    no sweep follows, and the tolerance is the certificate before or the
    refit's own, whichever is higher.  An integer ``washout`` still asks
    for relaxed sweeps."""
    model = fitted("explicit", seed=5, iterations=6)
    nnz, n_rows = model.user_items.nnz, sum(model.user_items.shape)
    before = model.certificate().max_row
    report = model.forget(*random_pairs(model, int(np.ceil(fraction * nnz)), seed=1),
                          washout=0 if washout == "settle" else washout)
    if washout == "settle":
        assert not report.refit and not report.settled
        before = report.certificate_after.max_row
        report = model.settle()
        assert model.pending["entries"] == 0
    retrain = fitted("explicit", seed=5, iterations=6)
    retrain.fit(model.user_items, show_progress=False)
    if washout == 2:
        assert not report.refit and report.washout == 2
        assert not np.allclose(model.user_factors, retrain.user_factors, atol=1e-3)
        return
    assert report.refit and report.sweeps == 0
    assert getattr(report, "washout", 6) == 6  # a settle report has no such field
    phases = report.rows_solved_by_phase
    assert phases["washout"] == 6 * n_rows and phases.get("local", 0) == phases["sweeps"] == 0
    np.testing.assert_array_equal(model.user_factors, retrain.user_factors)
    np.testing.assert_array_equal(model.item_factors, retrain.item_factors)
    assert model.loss() == pytest.approx(retrain.loss(), rel=1e-12)
    exact = retrain.certificate().max_row
    assert report.certificate_after.max_row >= exact * (1 - 1e-9)
    assert report.tolerance == max(before, report.certificate_after.max_row)
    assert report.converged


@pytest.mark.parametrize("name", ["implicit", "weighted"])
@pytest.mark.parametrize("call", ["forget", "settle", "partial_fit"])
def test_washout_refit_is_a_retrain_for_every_model(name, call):
    """``washout="refit"`` refits any model from its seed now: the factors
    of a fresh fit, same hyperparameters and seed, on the data the call
    leaves (after a forget, a settle of what one left pending, or
    additions)."""
    model = fitted(name, seed=4, iterations=5)
    pairs = random_pairs(model, 12, seed=2)
    if call == "forget":
        report = model.forget(*pairs, washout="refit")
    elif call == "settle":
        model.forget(*pairs, washout=0)
        report = model.settle(washout="refit")
    else:
        added = sp.csr_matrix((np.ones(3), ([0, 1, 2], [5, 6, 7])), shape=model.user_items.shape)
        added = added - added.multiply(model.user_items != 0)  # only pairs not stored
        report = model.partial_fit(added, washout="refit")
    assert report.refit and report.sweeps == 0 and report.converged
    assert model.pending["entries"] == 0
    retrain = fitted(name, seed=4, iterations=5)
    retrain.fit(model.user_items, show_progress=False)
    np.testing.assert_array_equal(model.user_factors, retrain.user_factors)
    np.testing.assert_array_equal(model.item_factors, retrain.item_factors)


# The washout's count (docs/design.md, section 5, "Where the washout falls
# short"): a model runs RELAXED_BETWEEN_FITS relaxed washouts between fits
# and refits as the next, since washouts of a model that earlier ones
# converged leave a trace.
@pytest.mark.parametrize("name", ["implicit", "weighted"])
@pytest.mark.parametrize("via", ["forget", "settle"])
def test_the_washout_after_the_relaxed_ones_a_model_may_run_refits(name, via):
    """Relaxed washouts, asked for by count or run by default, are counted
    since the last fit; a default washout once the count is reached is a
    retrain from the seed on the data then left (in a forget or in the
    ``settle()`` of what one left pending), and the count starts again.
    Requests without a washout count nothing; a refit by name and a fit
    reset the count."""
    limit = forgetting.RELAXED_BETWEEN_FITS
    model = fitted(name, seed=4, iterations=5)
    assert model.state.washouts == 0
    model.forget(*random_pairs(model, 2, seed=9), washout=0)
    assert model.state.washouts == 0
    for i in range(limit):
        report = model.forget(*random_pairs(model, 2, seed=i), washout=2 if i else "auto",
                              pending_limit=1)
        assert report.washout == 2 and not report.refit
        assert model.state.washouts == i + 1
    pairs = random_pairs(model, 2, seed=limit)
    if via == "forget":
        report = model.forget(*pairs, pending_limit=1)
    else:
        model.forget(*pairs, washout=0)
        report = model.settle()
    assert report.refit and report.converged and model.state.washouts == 0
    retrain = fitted(name, seed=4, iterations=5).fit(model.user_items, show_progress=False)
    np.testing.assert_array_equal(model.user_factors, retrain.user_factors)
    np.testing.assert_array_equal(model.item_factors, retrain.item_factors)
    # relaxed again after it
    report = model.forget(*random_pairs(model, 2, seed=20), pending_limit=1)
    assert not report.refit and report.washout == 2 and model.state.washouts == 1
    model.forget(*random_pairs(model, 2, seed=21), washout="refit")
    assert model.state.washouts == 0
    # additions count their washouts too, and run none by default
    free = np.argwhere(model.user_items.toarray() == 0)[0]
    added = sp.csr_matrix((np.ones(1), ([free[0]], [free[1]])), shape=model.user_items.shape)
    assert model.partial_fit(added).n_added == 1
    assert model.state.washouts == 0
    model.partial_fit(added * 2, washout=2)
    assert model.state.washouts == 1
    model.fit(model.user_items, show_progress=False)
    assert model.state.washouts == 0


def test_a_refit_goes_on_to_a_tolerance_given():
    """With a tolerance given, the refit is certified to it like any forget."""
    model = fitted("explicit", seed=5, iterations=6)
    tol = 0.05 * model.certificate().max_row
    report = model.forget(*random_pairs(model, 20, seed=1), tolerance=tol)
    assert report.refit and report.sweeps > 0 and report.tolerance == tol
    assert report.converged and model.certificate().max_row <= tol
