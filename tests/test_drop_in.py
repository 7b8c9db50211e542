"""The drop-in surface on fastunlearn's own terms: partial fits that
re-converge (against a retrain), models that hold factors only (implicit's
files), file objects, and what fit leaves behind when it fails.

Differential tests against implicit itself are in test_implicit_compat.py.
"""
import io
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import make_model, problem

import fastunlearn as fu
from fastunlearn.synthetic import make_implicit

K, REG = 4, 1.0


def _grown_problem():
    """(old data, new data, ids whose rows change): planted low-rank data,
    where ALS converges, so that retrains agree with each other.  The new
    data has five more users and two more items (held by the new users
    only), and two users whose history was rewritten."""
    full = make_implicit(130, 90, 2500, rank=4, topic_concentration=0.02, seed=1,
                         activity_sigma=0.3).tolil()
    full[:125, 88:] = 0
    new = full.tocsr()
    new.eliminate_zeros()
    old = new[:125, :88].tolil()
    rng = np.random.default_rng(0)
    changed = np.array([3, 40])
    for u in changed:
        cols = old[u].nonzero()[1]
        old[u, cols[: len(cols) // 2]] = 0  # half the history goes
        old[u, rng.choice(88, 3, replace=False)] = 2.0  # and other entries were there
    old = old.tocsr()
    old.eliminate_zeros()
    return old, new, np.concatenate([changed, np.arange(125, 130)])


def _fit(R):
    return fu.AlternatingLeastSquares(factors=K, regularization=REG, dtype=np.float64,
                                      use_cg=False, iterations=300, random_state=0).fit(
        R, show_progress=False)


@pytest.mark.parametrize("side", ["users", "items"])
def test_partial_fit_rows_reaches_what_a_retrain_reaches(side):
    old, new, ids = _grown_problem()
    if side == "items":  # the same problem, transposed: the rows are items
        old, new = old.T.tocsr(), new.T.tocsr()
    model = _fit(old)
    before = (model.user_factors.copy(), model.item_factors.copy())
    rows = new[ids] if side == "users" else new.T.tocsr()[ids]
    removal, addition = getattr(model, f"partial_fit_{side}")(ids, rows)
    assert removal.n_removed > 0 and addition.n_added > 0
    # the data is now exactly the new data, grown to its shape
    assert model.user_items.shape == new.shape and (model.user_items != new).nnz == 0

    retrain = _fit(new)
    loss, retrain_loss = model.loss(), retrain.loss()
    assert abs(loss - retrain_loss) <= 1e-6 * retrain_loss
    P, P_retrain = (m.user_factors @ m.item_factors.T for m in (model, retrain))
    assert np.abs(P - P_retrain).max() <= 1e-3 * np.abs(P_retrain).max()
    ids_ours = model.recommend(np.arange(new.shape[0]), new, N=10)[0]
    ids_retrain = retrain.recommend(np.arange(new.shape[0]), new, N=10)[0]
    assert np.mean([len(set(a) & set(b)) for a, b in zip(ids_ours, ids_retrain)]) >= 9.9

    # implicit's update (re-solve these rows only, against fixed factors of
    # the other side) is far from it: what fastunlearn does instead
    rows_only = fu.AlternatingLeastSquares(factors=K, regularization=REG, dtype=np.float64)
    rows_only.user_factors, rows_only.item_factors = before
    getattr(rows_only, f"partial_fit_{side}")(ids, rows[:, :old.shape[1 if side == "users"
                                                                      else 0]])
    grow = [(0, new.shape[0] - rows_only.user_factors.shape[0]), (0, 0)], \
        [(0, new.shape[1] - rows_only.item_factors.shape[0]), (0, 0)]
    rows_only = fu.ImplicitALS.from_factors(np.pad(rows_only.user_factors, grow[0]),
                                            np.pad(rows_only.item_factors, grow[1]), new,
                                            regularization=REG)
    assert model.certificate().max_row < rows_only.certificate().max_row / 1000
    assert rows_only.loss() > loss * (1 + 1e-3)


def test_partial_fit_users_replaces_rows_last_one_winning():
    R, X, Y = problem(71, n_users=12, n_items=9, density=0.4)
    model = fu.AlternatingLeastSquares.from_factors(X, Y, R, regularization=0.1)
    stored = R[4].copy()
    changed = stored.copy()
    changed.data[0] += 1.0  # one value changes: it leaves and comes back with the new value
    ignored = sp.csr_matrix(np.ones((1, 9)))
    removal, addition = model.partial_fit_users([4, 15, 4], sp.vstack([ignored, R[2], changed]))
    assert model.user_factors.shape[0] == 16 and model.user_items.shape == (16, 9)
    assert (model.user_items[4] != changed).nnz == 0 and (model.user_items[15] != R[2]).nnz == 0
    assert model.user_items[12:15].nnz == 0 and not model.user_factors[12:15].any()
    # exactly the changed entry was forgotten, with a receipt for it
    assert removal.n_removed == 1
    assert fu.verify_receipt([4], [stored.indices[0]], removal.receipt_key, removal.digest)
    assert addition.n_added == 1 + R[2].nnz
    # the same rows again change nothing
    X_now = model.user_factors.copy()
    assert model.partial_fit_users([4], changed) == (None, None)
    np.testing.assert_array_equal(model.user_factors, X_now)


def test_serving_model_from_factors_alone(tmp_path):
    R, X, Y = problem(72, n_users=10, n_items=8)
    model = fu.AlternatingLeastSquares(factors=X.shape[1])
    model.user_factors, model.item_factors = X.astype(np.float32), Y.astype(np.float32)
    ids, _ = model.recommend([0, 1], R[[0, 1]], N=3)  # serves, as implicit's would
    assert ids.shape == (2, 3)
    for call in (model.loss, model.certificate, lambda: model.forget([0], [0])):
        with pytest.raises(fu.NotFittedError, match="from_implicit"):
            call()
    # saved in implicit's format; loads back, and is taken over with its data
    path = model.save(tmp_path / "served")
    with np.load(path) as npz:
        assert "format_version" not in npz.files and "user_factors" in npz.files
    loaded = fu.load(path)
    assert type(loaded) is fu.ImplicitALS and not loaded.is_fitted
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)
    taken = fu.ImplicitALS.from_implicit(path, R)
    assert taken.is_fitted and taken.certificate().max_row > 0
    # fit starts from factors set by hand when their shapes fit the data
    model.iterations = 0
    model.fit(R, show_progress=False)
    np.testing.assert_array_equal(model.user_factors, X.astype(np.float32))
    assert model.is_fitted


def test_implicit_files_are_checked_like_fastunlearn_files(tmp_path):
    X, Y = np.ones((4, 3), np.float32), np.ones((5, 3), np.float32)
    good = {"user_factors": X, "item_factors": Y, "factors": np.array(3),
            "dtype": np.array("float32"), "regularization": np.array(0.1),
            "alpha": np.array(1.0)}
    cases = [
        ({"item_factors": None}, "without the other side"),
        ({"item_factors": np.ones((5, 2), np.float32)}, "factors of 3 and 2 columns"),
        ({"factors": np.array(4)}, "factors=4"),
        ({"user_factors": np.full((4, 3), np.nan, np.float32)}, "NaN"),
        ({"regularization": np.array("high")}, "'regularization' must be a scalar"),
        ({"alpha": np.array(-1.0)}, "invalid hyperparameters"),
        ({"dtype": np.array("int8")}, "invalid hyperparameters"),
        ({"random_state": np.array(-3)}, "random_state must be >= 0"),
        ({"learning_rate": np.array(0.1)}, "unknown members"),  # another model's file
    ]
    np.savez(tmp_path / "good.npz", **good)
    assert fu.load(tmp_path / "good.npz").user_factors.shape == (4, 3)
    for change, match in cases:
        arrays = {k: v for k, v in {**good, **change}.items() if v is not None}
        np.savez(tmp_path / "bad.npz", **arrays)
        with pytest.raises(fu.ModelFileError, match=match):
            fu.load(tmp_path / "bad.npz")
    arrays = {**good, "random_state": np.array([object()], dtype=object)}
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(fu.ModelFileError, match="never unpickled"):
        fu.load(tmp_path / "pickled.npz")
    with pytest.raises(fu.ModelFileError, match="not a ExplicitALS"):
        fu.ExplicitALS.load(tmp_path / "good.npz")


def test_fastunlearn_files_keep_their_guarantees_in_file_objects(tmp_path):
    R, X, Y = problem(73, negative=True)
    model = make_model("implicit", X, Y, R)
    model.forget([0], [R[0].indices[0]], washout=0)  # leaves a pending removal
    buffer = io.BytesIO()
    assert model.save(buffer) is buffer
    loaded = fu.ImplicitALS.load(io.BytesIO(buffer.getvalue()))
    assert loaded.pending == model.pending and loaded.state.current_measures() is not None
    np.testing.assert_array_equal(loaded.user_factors, model.user_factors)
    # implicit's copies of the hyperparameters must agree with fastunlearn's
    with np.load(io.BytesIO(buffer.getvalue())) as npz:
        arrays = dict(npz)
    arrays["regularization"] = np.array(0.5)
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(fu.ModelFileError, match="'regularization'.*disagrees"):
        fu.load(tmp_path / "edited.npz")


@pytest.mark.parametrize("cls", [fu.ImplicitALS, fu.AlternatingLeastSquares])
def test_model_fit_error_leaves_the_model_as_it_was(cls):
    R, _, _ = problem(74)
    model = cls(factors=3, iterations=2, random_state=0).fit(R, show_progress=False)
    X, loss = model.user_factors.copy(), model.loss()
    huge = R.copy()
    huge.data[:] = 3e38
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(fu.ModelFitError):
            model.alpha = 10.0
            model.fit(huge, show_progress=False)
    model.alpha = 1.0
    np.testing.assert_array_equal(model.user_factors, X)
    assert model.loss() == loss and (model.user_items != R.astype(np.float32)).nnz == 0


def test_only_the_drop_in_continues_a_second_fit():
    R, _, _ = problem(75)
    results = {}
    for cls in (fu.ImplicitALS, fu.AlternatingLeastSquares):
        model = cls(factors=3, iterations=2, random_state=0, dtype=np.float64)
        first = model.fit(R, show_progress=False).user_factors.copy()
        results[cls] = (first, model.fit(R, show_progress=False).user_factors)
    first, second = results[fu.ImplicitALS]
    np.testing.assert_array_equal(first, second)  # a fresh start from the same seed
    first, second = results[fu.AlternatingLeastSquares]
    assert not np.allclose(first, second)  # two more iterations from where it was
    four = fu.AlternatingLeastSquares(factors=3, iterations=4, random_state=0,
                                      dtype=np.float64).fit(R, show_progress=False)
    np.testing.assert_allclose(second, four.user_factors, rtol=1e-10, atol=1e-12)


def test_norms_follow_the_factors():
    R, X, Y = problem(76)
    model = make_model("implicit", X, Y, R)
    norms = model.item_norms
    assert model.item_norms is norms  # kept
    item = int(R[0].indices[0])
    model.forget([0], [item], washout=0)
    np.testing.assert_allclose(model.item_norms, np.linalg.norm(model.item_factors, axis=1))
    assert not np.allclose(model.item_norms, norms)
    model.item_factors = np.zeros_like(model.item_factors)
    assert (model.item_norms == 1e-10).all()


def test_new_ids_for_recalculation_and_narrow_rows():
    R, X, Y = problem(77, n_users=10, n_items=8)
    model = fu.AlternatingLeastSquares.from_factors(X, Y, R, regularization=0.1)
    row = sp.csr_matrix(([1.0, 2.0], ([0, 0], [1, 3])), shape=(1, 5))  # narrower than the model
    x = model.recalculate_user(1000, row)
    np.testing.assert_allclose(x, fu.ImplicitALS.from_factors(X, Y, R, regularization=0.1)
                               .recalculate_user(1000, sp.csr_matrix(row, shape=(1, 8))))
    ids, scores = model.recommend(1000, row, N=3, recalculate_user=True)
    expected = model.item_factors @ x
    expected[[1, 3]] = -np.inf  # liked: filtered
    np.testing.assert_array_equal(ids, np.argsort(-expected, kind="stable")[:3])
    np.testing.assert_allclose(scores, np.sort(expected)[::-1][:3])
    with pytest.raises(IndexError):
        model.recommend(1000, sp.csr_matrix(([1.0], ([0], [9])), shape=(1, 10)), N=3,
                        recalculate_user=True)
    with pytest.raises(IndexError):  # without recalculation the id must exist
        model.recommend(1000, row, N=3)
    # explain solves the user from the row, whatever its id and width
    total, top, _ = model.explain(1000, row, 2)
    np.testing.assert_allclose(total, x @ model.item_factors[2], rtol=1e-4)
    assert sorted(i for i, _ in top) == [1, 3]
