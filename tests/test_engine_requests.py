"""How a request turns into pairs: ids or a sparse matrix name exactly the
stored pairs they say, as int64 ids, users and items are never mixed up
(a model with more users than items), and a bad request is refused with
an error that names the parameter as it is spelt and the value; checked
against the dense matrix (docs/design.md, section 4)."""
import re

import numpy as np
import pytest
import scipy.sparse as sp

from fastunlearn import forgetting
from fastunlearn.validation import IdOutOfRangeError
from test_forgetting import fitted


def names(parameter, message):
    """Whether ``message`` names ``parameter`` as it is spelt (a whole word)."""
    return re.search(rf"\b{parameter}\b", message) is not None


def dense_pairs(matrix):
    users, items = np.nonzero(np.asarray(matrix))
    return sorted(zip(users.tolist(), items.tolist()))


def test_a_sparse_request_names_its_stored_entries_as_int64_pairs():
    rng = np.random.default_rng(0)
    dense = (rng.random((6, 5)) < 0.4) * rng.integers(1, 4, (6, 5))
    users, items = forgetting.pairs_from_request((6, 5), sp.csr_matrix(dense), None)
    assert users.dtype == np.int64 and items.dtype == np.int64
    assert sorted(zip(users.tolist(), items.tolist())) == dense_pairs(dense)
    # paired ids, as they are given
    users, items = forgetting.pairs_from_request((6, 5), [5, 0, 2], np.array([4, 0, 1], np.int32))
    assert users.dtype == np.int64 and items.dtype == np.int64
    assert users.tolist() == [5, 0, 2] and items.tolist() == [4, 0, 1]


@pytest.mark.parametrize("side", ["users", "items"])
def test_entries_of_rows_are_their_stored_pairs(side):
    # 50 users and 35 items: a user id past the items (and the other way
    # round for the items' side) must still be read on its own side
    model = fitted("implicit", seed=3)
    dense = model.user_items.toarray()
    ids = [44, 2, 44, 17] if side == "users" else [30, 1, 30, 9]
    users, items = forgetting.entries_of(model.state.data, ids, side)
    assert users.dtype == np.int64 and items.dtype == np.int64
    keep = np.zeros_like(dense)
    if side == "users":
        keep[np.unique(ids)] = dense[np.unique(ids)]
    else:
        keep[:, np.unique(ids)] = dense[:, np.unique(ids)]
    assert sorted(zip(users.tolist(), items.tolist())) == dense_pairs(keep)
    # a sparse matrix names the rows (or columns) holding its entries
    request = np.zeros_like(dense)
    if side == "users":
        request[np.unique(ids), 0] = 1
    else:
        request[0, np.unique(ids)] = 1
    users, items = forgetting.entries_of(model.state.data, sp.csr_matrix(request), side)
    assert sorted(zip(users.tolist(), items.tolist())) == dense_pairs(keep)


def test_forget_users_past_the_number_of_items_removes_their_rows():
    model = fitted("implicit", seed=4)
    n_users, n_items = model.user_items.shape
    assert n_users > n_items
    expected = model.user_items.toarray()
    user = n_items + 5
    count = np.count_nonzero(expected[user])
    expected[user] = 0
    report = model.forget_users([user])
    assert report.n_removed == count > 0
    np.testing.assert_array_equal(model.user_items.toarray(), expected)


@pytest.mark.parametrize("side, parameter", [("users", "userids"), ("items", "itemids")])
def test_ids_out_of_range_are_refused_naming_the_parameter_and_the_id(side, parameter):
    model = fitted("implicit", seed=5)
    n_users, n_items = model.user_items.shape
    before = model.user_items.copy()
    users, items = ([n_users + 7], [0]) if side == "users" else ([0], [n_items + 7])
    with pytest.raises(IdOutOfRangeError) as error:
        model.forget(users, items)
    message = str(error.value)
    assert names(parameter, message)
    assert not names("itemids" if side == "users" else "userids", message)
    assert str(n_users + 7 if side == "users" else n_items + 7) in message
    assert (model.user_items != before).nnz == 0


def test_a_sparse_request_of_another_shape_is_refused_naming_both_shapes():
    model = fitted("implicit", seed=6)
    shape = model.user_items.shape
    wrong = (shape[0], shape[1] + 1)
    with pytest.raises(ValueError) as error:
        model.forget(sp.csr_matrix(wrong))
    assert str(wrong) in str(error.value) and str(shape) in str(error.value)


def test_a_sparse_request_with_itemids_is_refused_saying_what_to_pass():
    model = fitted("implicit", seed=7)
    request = sp.csr_matrix(model.user_items.shape)
    with pytest.raises(ValueError) as error:
        model.forget(request, [0])
    message = str(error.value)
    assert "sparse matrix" in message.lower()
    assert names("userids", message) and names("itemids", message)


@pytest.mark.parametrize("option, value, error, expected", [
    ("strategy", "bogus", ValueError, ("'masked'", "'full'")),
    ("missing", "skip", ValueError, ("'raise'", "'ignore'")),
    ("max_sweeps", -1, ValueError, (">= 0",)),
    ("max_sweeps", 2.5, TypeError, ("integer",)),
    ("washout", "never", TypeError, ("'auto'", "integer >= 0")),
    ("washout", -2, ValueError, (">= 0",)),
    ("pending_limit", 0, ValueError, (">= 1",)),
    ("pending_limit", True, TypeError, ("integer",)),
    ("tolerance", -0.5, ValueError, ("finite", ">= 0")),
    ("tolerance", float("nan"), ValueError, ("finite", ">= 0")),
    ("tolerance", float("inf"), ValueError, ("finite", ">= 0")),
])
def test_bad_options_are_refused_naming_the_option_the_value_and_what_is_expected(
        option, value, error, expected):
    with pytest.raises(error) as raised:
        forgetting.ForgetOptions(**{option: value})
    message = str(raised.value)
    assert names(option, message)
    assert repr(value) in message or str(value) in message
    for words in expected:
        assert words in message


def test_options_at_their_bounds_are_accepted_as_plain_numbers():
    options = forgetting.ForgetOptions(tolerance=np.float32(0), max_sweeps=np.int64(0),
                                       washout=np.int32(0), pending_limit=np.uint8(1))
    assert options.tolerance == 0.0 and type(options.tolerance) is float
    assert options.max_sweeps == 0 and type(options.max_sweeps) is int
    assert options.washout == 0 and type(options.washout) is int
    assert options.pending_limit == 1 and type(options.pending_limit) is int
    defaults = forgetting.ForgetOptions()
    assert (defaults.tolerance, defaults.washout, defaults.pending_limit) == (None, "auto", None)
    assert forgetting.ForgetOptions(strategy="full", missing="ignore").missing == "ignore"
