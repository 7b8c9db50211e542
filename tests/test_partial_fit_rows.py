"""``partial_fit_users`` / ``partial_fit_items`` on a model with its data:
the rows given replace the stored ones (the new data is checked against a
matrix built by hand with SciPy), exactly the entries that leave are
forgotten, with a receipt for those pairs, and the model ends at the
certificate it had, on the new data (the NumPy reference)."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
import reference as ref
from conftest import make_model, problem, reference_kwargs


def replaced(R, side, ids, rows):
    """R (users x items) with the rows ``ids`` of ``side`` replaced by
    ``rows`` (dense), grown for ids or columns past it: built entry by entry."""
    M = R.toarray() if side == "users" else R.toarray().T
    width = max(M.shape[1], rows.shape[1])
    out = np.zeros((max(M.shape[0], max(ids) + 1), width))
    out[:M.shape[0], :M.shape[1]] = M
    for i, row in zip(ids, rows):
        out[i] = 0
        out[i, :rows.shape[1]] = row
    return out if side == "users" else out.T


@pytest.mark.parametrize("side", ["users", "items"])
def test_rows_replace_the_stored_ones_and_only_what_leaves_is_forgotten(side):
    R, X, Y = problem(73, n_users=12, n_items=9, density=0.4)
    model = make_model("implicit", X, Y, R)
    before = model.certificate().max_row
    rows_of = R if side == "users" else R.T.tocsr()
    n = rows_of.shape[0]
    # row 2 keeps one entry, changes the value of another and drops the rest
    # of its entries, and gains one; row n (just past the model) is new
    old = rows_of[2].toarray()[0]
    stored = np.flatnonzero(old)
    assert len(stored) >= 3
    new = np.zeros(rows_of.shape[1])
    new[stored[0]] = old[stored[0]]
    new[stored[1]] = old[stored[1]] + 1.0
    gained = np.flatnonzero(old == 0)[0]
    new[gained] = 2.0
    grown = np.zeros(rows_of.shape[1])
    grown[[0, 3]] = 1.0
    rows = np.vstack([new, grown])
    call = model.partial_fit_users if side == "users" else model.partial_fit_items
    removal, addition = call([2, n], sp.csr_matrix(rows))

    expected = replaced(R, side, [2, n], rows)
    assert model.user_items.shape == expected.shape
    np.testing.assert_array_equal(model.user_items.toarray(), expected)
    # left: the changed value and the dropped entries, as (user, item) pairs
    leaving = stored[1:]
    pairs = ((np.full(len(leaving), 2), leaving) if side == "users"
             else (leaving, np.full(len(leaving), 2)))
    assert removal.n_removed == len(leaving)
    assert fu.verify_receipt(*pairs, removal.receipt_key, removal.digest)
    assert addition.n_added == 1 + 1 + 2  # the changed value, the gained one, the new row
    _, max_row = ref.certificate(model.user_items, model.user_factors, model.item_factors,
                                 **reference_kwargs("implicit"))
    assert max_row <= before * (1 + 1e-9)


@pytest.mark.parametrize("side", ["users", "items"])
@pytest.mark.parametrize("grow", [False, True])
def test_a_changed_value_alone_or_with_an_empty_row_past_the_model(side, grow):
    """One stored value changes (nothing else): it leaves and comes back
    with the new value.  With an id two past the model and an empty row,
    the model also grows by two rows, both empty."""
    R, X, Y = problem(74, n_users=10, n_items=8, density=0.4)
    model = make_model("implicit", X, Y, R)
    rows_of = R if side == "users" else R.T.tocsr()
    n = rows_of.shape[0]
    new = rows_of[3].toarray()[0]
    changed = np.flatnonzero(new)[0]
    new[changed] += 1.5
    ids, rows = ([3, n + 1], np.vstack([new, np.zeros_like(new)])) if grow else ([3], new[None])
    call = model.partial_fit_users if side == "users" else model.partial_fit_items
    removal, addition = call(ids, sp.csr_matrix(rows))
    expected = replaced(R, side, ids, rows)
    assert model.user_items.shape == expected.shape
    np.testing.assert_array_equal(model.user_items.toarray(), expected)
    assert removal.n_removed == 1 and addition.n_added == 1
    assert model.user_factors.shape[0] == expected.shape[0]
    assert model.item_factors.shape[0] == expected.shape[1]
