"""Bad input gives a clear error naming the problem, never garbage."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
from conftest import problem


@pytest.fixture
def fitted():
    R, _, _ = problem(41)
    return fu.ImplicitALS(factors=3, iterations=1, random_state=0).fit(R, show_progress=False)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(factors=0), ValueError, "factors"),
    (dict(factors=-3), ValueError, "factors"),
    (dict(factors=2.5), TypeError, "factors"),
    (dict(iterations=-1), ValueError, "iterations"),
    (dict(regularization=-0.1), ValueError, "regularization"),
    (dict(regularization=float("nan")), ValueError, "regularization"),
    (dict(alpha=0), ValueError, "alpha"),
    (dict(dtype=np.int32), TypeError, "dtype"),
    (dict(dtype=np.float16), TypeError, "dtype"),
    (dict(num_threads=-1), ValueError, "num_threads"),
    # beyond these the kernels' C int scratch sizes (k * k) or thread creation
    # would fail inside compiled code
    (dict(factors=46341), ValueError, "factors must be <= 46340"),
    (dict(num_threads=1025), ValueError, "num_threads"),
])
def test_bad_hyperparameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fu.ImplicitALS(**kwargs)


@pytest.mark.parametrize("data, exc, match", [
    (np.ones((3, 3)), TypeError, "scipy.sparse"),
    ([[1, 0], [0, 1]], TypeError, "scipy.sparse"),
    (sp.csr_matrix(np.array([[1.0, np.nan]])), ValueError, "NaN"),
    (sp.csr_matrix(np.array([[1.0, np.inf]])), ValueError, "NaN or infinite"),
    (sp.csr_matrix(np.array([[1 + 1j, 0]])), TypeError, "real numbers"),
])
def test_bad_training_data(data, exc, match):
    with pytest.raises(exc, match=match):
        fu.ImplicitALS(factors=2, iterations=1).fit(data, show_progress=False)


def test_other_sparse_formats_are_converted():
    R, _, _ = problem(42)
    a = fu.ImplicitALS(factors=2, iterations=2, random_state=0, dtype=np.float64)
    b = fu.ImplicitALS(factors=2, iterations=2, random_state=0, dtype=np.float64)
    a.fit(R, show_progress=False)
    b.fit(R.tocoo(), show_progress=False)
    assert np.array_equal(a.user_factors, b.user_factors)


def test_ids_out_of_range(fitted):
    n_users, n_items = fitted.user_factors.shape[0], fitted.item_factors.shape[0]
    with pytest.raises(IndexError, match="userids"):
        fitted.predict([n_users], [0])
    with pytest.raises(ValueError, match="itemids"):
        fitted.predict([0], [-1])
    with pytest.raises(IndexError):
        fitted.recommend(n_users, fitted.user_items[0])
    with pytest.raises(IndexError):
        fitted.recommend(0, fitted.user_items[0], filter_items=[n_items])
    with pytest.raises(IndexError):
        fitted.similar_items(n_items)
    with pytest.raises(ValueError, match="pair up"):
        fitted.predict([0, 1], [0])
    with pytest.raises(TypeError, match="integer"):
        fitted.predict(["a"], [0])


def test_recommend_user_items_checks(fitted):
    with pytest.raises(ValueError, match="1 row for every"):
        fitted.recommend(np.array([0, 1]), fitted.user_items[[0]])
    with pytest.raises(ValueError, match="required"):
        fitted.recommend(0, None)
    with pytest.raises(ValueError, match="columns"):
        fitted.recommend(0, sp.csr_matrix((1, 2)))


@pytest.mark.parametrize("call", [
    lambda m: m.predict([0], [0]),
    lambda m: m.recommend(0, sp.csr_matrix((1, 3))),
    lambda m: m.loss(),
    lambda m: m.certificate(),
    lambda m: m.similar_items(0),
    lambda m: m.user_items,
])
def test_unfitted_model_is_an_error(call):
    with pytest.raises(fu.NotFittedError, match="not fitted"):
        call(fu.ExplicitALS())


def test_from_factors_checks_shapes_and_values():
    R, X, Y = problem(43)
    with pytest.raises(ValueError, match="shape"):
        fu.ImplicitALS.from_factors(X[:-1], Y, R)
    with pytest.raises(ValueError, match="columns"):
        fu.ImplicitALS.from_factors(X, Y[:, :2], R)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fu.ImplicitALS.from_factors(bad, Y, R)
    with pytest.raises(ValueError, match="factors"):
        fu.ImplicitALS.from_factors(X, Y, R, factors=7)


def test_warm_start_shape_mismatch(fitted):
    with pytest.raises(ValueError, match="warm_start"):
        fitted.fit(sp.random(4, 4, density=0.5, format="csr"), show_progress=False,
                   warm_start=True)
