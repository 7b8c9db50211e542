"""What a forget request promises beyond convergence: the error for pairs
that are not stored names them, ``missing="ignore"`` forgets exactly the
stored ones, and the pending policy washes out at the limit, not after it
(docs/design.md, section 5); checked against hand-built matrices."""
import re

import numpy as np
import pytest

import fastunlearn as fu
import reference as ref
from conftest import reference_kwargs
from test_forgetting import fitted


def stored_pairs(model, n):
    """The first ``n`` stored pairs, copied (the model's arrays change in place)."""
    coo = model.user_items.tocoo()
    return coo.row[:n].astype(np.int64), coo.col[:n].astype(np.int64)


def absent_pairs(model, n):
    dense = model.user_items.toarray()
    users, items = np.nonzero(dense == 0)
    return users[:n], items[:n]


def test_the_error_for_pairs_not_stored_counts_and_names_them():
    model = fitted("implicit", seed=40)
    stored_u, stored_i = stored_pairs(model, 3)
    absent_u, absent_i = absent_pairs(model, 2)
    users = np.concatenate([stored_u, absent_u])
    items = np.concatenate([stored_i, absent_i])
    before = model.user_items.copy()
    with pytest.raises(ValueError, match=re.escape("2 of the 5 pairs to forget are not "
                                                   "stored")) as error:
        model.forget(users, items)
    for pair in zip(absent_u.tolist(), absent_i.tolist()):
        assert str(pair) in str(error.value)
    for pair in zip(stored_u.tolist(), stored_i.tolist()):
        assert str(pair) not in str(error.value)
    assert "pass missing='ignore' to skip them" in str(error.value)  # the way out
    assert (model.user_items != before).nnz == 0  # nothing forgotten


def test_missing_ignore_forgets_exactly_the_stored_pairs():
    model = fitted("implicit", seed=41)
    stored_u, stored_i = stored_pairs(model, 3)
    absent_u, absent_i = absent_pairs(model, 2)
    expected = model.user_items.toarray()
    expected[stored_u, stored_i] = 0
    report = model.forget(np.concatenate([stored_u, absent_u]),
                          np.concatenate([stored_i, absent_i]), missing="ignore")
    assert report.n_removed == 3
    np.testing.assert_array_equal(model.user_items.toarray(), expected)
    assert fu.verify_receipt(stored_u, stored_i, report.receipt_key, report.digest)


@pytest.mark.parametrize("limit, washed", [(4, True), (5, False)])
def test_a_request_that_reaches_the_pending_limit_washes_out(limit, washed):
    """``pending_limit``: the removal that brings the pending entries to the
    limit washes out everything pending; one entry short leaves it pending."""
    model = fitted("implicit", seed=42)
    users, items = stored_pairs(model, 4)
    first = model.forget(users[:1], items[:1], pending_limit=limit)
    assert not first.settled and model.pending == {"entries": 1, "requests": 1}
    report = model.forget(users[1:], items[1:], pending_limit=limit)
    assert report.settled is washed and (report.washout > 0) is washed
    assert model.pending == ({"entries": 0, "requests": 0} if washed
                             else {"entries": 4, "requests": 2})
    assert report.pending_entries == (0 if washed else 4)
    assert report.pending_requests == (0 if washed else 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_partial_fit_stores_the_added_values_in_the_models_dtype(dtype):
    import scipy.sparse as sp

    model = fitted("implicit", seed=43, dtype=dtype)
    absent_u, absent_i = absent_pairs(model, 2)
    expected = model.user_items.toarray()
    delta = sp.csr_matrix((np.array([1 / 3, 2 / 3]), (absent_u, absent_i)),
                          shape=expected.shape, dtype=np.float64)
    expected[absent_u, absent_i] = np.array([1 / 3, 2 / 3], dtype=dtype)
    model.partial_fit(delta)
    assert model.user_items.dtype == dtype and model.user_factors.dtype == dtype
    np.testing.assert_array_equal(model.user_items.toarray(), expected)


def reference_partial_fit(R, X, Y, users, items, washout, relaxation):
    """What ``partial_fit(..., washout=N)`` computes with exact solves and
    nothing left to sweep (tests/reference.py's row solves): the delta's
    users, then its items; N sweeps moving each side ``relaxation`` times
    its ALS step, users first; one plain sweep."""
    kw = reference_kwargs("implicit")
    RT = R.T.tocsr()  # the implicit objective is symmetric in users and items
    X, Y = X.copy(), Y.copy()
    X[users] = ref.sweep(R, X, Y, **kw)[0][users]
    Y[items] = ref.sweep(RT, Y, X, **kw)[0][items]
    for _ in range(washout):
        X = X + relaxation * (ref.sweep(R, X, Y, **kw)[0] - X)
        Y = Y + relaxation * (ref.sweep(RT, Y, X, **kw)[0] - Y)
    return ref.sweep(R, X, Y, **kw)


@pytest.mark.parametrize("washout", [1, 2])
def test_partial_fit_with_a_washout_runs_it_and_settles_what_was_pending(washout):
    import scipy.sparse as sp

    model = fitted("implicit", seed=44)
    users, items = stored_pairs(model, 2)
    model.forget(users, items, washout=0)
    assert model.pending == {"entries": 2, "requests": 1}
    n_users, n_items = model.user_items.shape
    absent_u, absent_i = absent_pairs(model, 3)
    # two new users: the last one without entries (the model still grows)
    rows = np.concatenate([absent_u, [n_users]])
    cols = np.concatenate([absent_i, [1]])
    delta = sp.csr_matrix((np.full(len(rows), 2.0), (rows, cols)), shape=(n_users + 2, n_items))
    expected = sp.vstack([model.user_items, sp.csr_matrix((2, n_items))]).toarray() + \
        delta.toarray()
    X = np.vstack([model.user_factors, np.zeros((2, model.factors))])
    X_ref, Y_ref = reference_partial_fit(sp.csr_matrix(expected), X, model.item_factors,
                                         np.unique(rows), np.unique(cols), washout,
                                         fu.forgetting.RELAXATION)
    report = model.partial_fit(delta, washout=washout, tolerance=1e9)
    np.testing.assert_array_equal(model.user_items.toarray(), expected)
    assert report.washout == washout and report.settled and report.pending_entries == 0
    assert report.pending_requests == 0
    assert model.pending == {"entries": 0, "requests": 0}
    assert report.rows_solved_by_phase["washout"] == (washout + 1) * sum(expected.shape)
    np.testing.assert_allclose(model.user_factors, X_ref, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(model.item_factors, Y_ref, rtol=1e-7, atol=1e-10)


def test_a_bad_delta_is_named_in_the_error():
    import scipy.sparse as sp

    model = fitted("implicit", seed=45)
    delta = sp.csr_matrix(([np.nan], ([0], [0])), shape=model.user_items.shape)
    with pytest.raises(ValueError, match="user_items_delta contains NaN"):
        model.partial_fit(delta)


@pytest.mark.parametrize("show_progress", [False, True])
def test_partial_fit_reports_what_it_added_and_leaves_removals_pending(capsys, show_progress):
    import scipy.sparse as sp

    model = fitted("implicit", seed=46)
    users, items = stored_pairs(model, 2)
    model.forget(users, items, washout=0)
    # the first user's and the last user's (an index past the item count)
    dense = model.user_items.toarray()
    assert dense.shape[0] > dense.shape[1]
    last = dense.shape[0] - 1
    absent_u = np.array([0, 0, last])
    absent_i = np.concatenate([np.flatnonzero(dense[0] == 0)[:2],
                               np.flatnonzero(dense[last] == 0)[:1]])
    delta = sp.csr_matrix((np.full(3, 2.0), (absent_u, absent_i)),
                          shape=model.user_items.shape)
    capsys.readouterr()
    report = model.partial_fit(delta, show_progress=show_progress)
    found = re.search(r"(^|\r)Adding: ", capsys.readouterr().err)
    assert (found is not None) == show_progress
    assert report.n_added == 3 and report.n_removed == 0 and report.strategy == "masked"
    assert report.users_affected == len(np.unique(absent_u))
    assert report.items_affected == len(np.unique(absent_i))
    assert fu.verify_receipt(absent_u, absent_i, report.receipt_key, report.digest)
    assert not fu.verify_receipt(absent_u[:2], absent_i[:2], report.receipt_key, report.digest)
    # additions leave the pending removals as they are (washout="auto" runs none)
    assert report.washout == 0 and not report.settled
    assert (report.pending_entries, report.pending_requests) == (2, 1)
    assert model.pending == {"entries": 2, "requests": 1}
    assert report.converged
    assert reference_max_row(model) <= report.tolerance * (1 + 1e-9)
    assert report.loss_after == pytest.approx(
        ref.loss(model.user_items, model.user_factors, model.item_factors,
                 **reference_kwargs("implicit")), rel=1e-9)


def reference_max_row(model):
    return ref.certificate(model.user_items, model.user_factors, model.item_factors,
                           **reference_kwargs("implicit"))[1]


@pytest.mark.parametrize("max_sweeps", [1, 2])
def test_full_strategy_runs_at_most_max_sweeps_and_counts_them(max_sweeps):
    """``strategy="full"`` with a tolerance it cannot reach: exactly
    ``max_sweeps`` full sweeps, each solving every row, and a certificate
    that says (exactly) it was not reached."""
    model = fitted("implicit", seed=47, iterations=2)
    n_rows = sum(model.user_items.shape)
    users, items = stored_pairs(model, 3)
    report = model.forget(users, items, strategy="full", tolerance=1e-13,
                          max_sweeps=max_sweeps, washout=0)
    assert report.sweeps == max_sweeps and report.strategy == "full"
    assert report.rows_solved_by_phase["sweeps"] == max_sweeps * n_rows
    assert not report.converged and report.certificate_after.exact
    assert report.certificate_after.max_row == pytest.approx(reference_max_row(model),
                                                             rel=1e-9)


def test_full_strategy_counts_the_sweeps_it_ran():
    model = fitted("implicit", seed=48, iterations=2)
    n_rows = sum(model.user_items.shape)
    users, items = stored_pairs(model, 3)
    report = model.forget(users, items, strategy="full", washout=0)
    assert report.converged
    assert report.rows_solved_by_phase["sweeps"] == report.sweeps * n_rows
    assert reference_max_row(model) <= report.tolerance * (1 + 1e-9)


def test_the_default_pending_limit_is_a_thousandth_of_the_stored_entries():
    """``washout="auto"``: requests wash out once the pending entries reach
    ``ceil(0.001 * nnz)`` (at least one), computed here by hand."""
    small = fitted("implicit", seed=49)
    assert small.user_items.nnz < 1000  # the limit is 1: every request washes out
    users, items = stored_pairs(small, 1)
    report = small.forget(users, items)
    assert report.settled and report.washout > 0
    large = fitted("implicit", seed=49, n_users=200, n_items=120, iterations=3)
    limit = int(np.ceil(1e-3 * large.user_items.nnz))
    assert limit >= 4
    users, items = stored_pairs(large, limit)
    for n in range(1, limit):
        report = large.forget(users[n - 1:n], items[n - 1:n])
        assert not report.settled and report.pending_entries == n
    report = large.forget(users[limit - 1:], items[limit - 1:])
    assert report.settled and report.washout > 0 and large.pending["entries"] == 0


@pytest.mark.parametrize("name, removed, sweeps", [("implicit", 10, 3), ("implicit", 9, 2),
                                                   ("explicit", 10, "refit"),
                                                   ("explicit", 9, "refit")])
def test_a_washout_of_two_percent_of_an_implicit_models_entries_is_the_large_one(
        name, removed, sweeps):
    """docs/design.md, section 5: three sweeps (at 1.9) from 2 % of the
    stored entries on, for implicit models; two below it; a refit (the
    model's iterations) for plain explicit ones at any size."""
    import scipy.sparse as sp

    from conftest import make_model

    R = sp.random(50, 40, density=0.25, random_state=0, format="csr")
    R.data[:] = np.random.default_rng(0).integers(1, 5, R.nnz)
    assert R.nnz == 500  # 10 entries are 2 % exactly
    rng = np.random.default_rng(1)
    model = make_model(name, rng.random((50, 3)), rng.random((40, 3)), R)
    users, items = stored_pairs(model, removed)
    report = model.forget(users, items, washout="auto")
    if sweeps == "refit":
        assert report.refit and report.washout == model.iterations and report.settled
    else:
        assert not report.refit and report.washout == sweeps and report.settled


@pytest.mark.parametrize("washout", ["auto", 2])
def test_a_request_with_nothing_stored_leaves_the_pending_removals(washout):
    """Only pairs that are not stored, skipped with ``missing="ignore"``:
    nothing is removed, nothing runs, and the removals pending from before
    stay pending (no washout ran to cover them)."""
    model = fitted("implicit", seed=53)
    users, items = stored_pairs(model, 2)
    model.forget(users, items, washout=0)
    factors = model.user_factors.copy()
    absent_u, absent_i = absent_pairs(model, 2)
    report = model.forget(absent_u, absent_i, missing="ignore", washout=washout)
    assert report.n_removed == 0 and report.washout == 0 and report.rows_solved == 0
    assert not report.settled and (report.pending_entries, report.pending_requests) == (2, 1)
    assert model.pending == {"entries": 2, "requests": 1}
    np.testing.assert_array_equal(model.user_factors, factors)


@pytest.mark.parametrize("show_progress", [False, True])
def test_forget_progress_bar_is_labelled_only_when_asked(capsys, show_progress):
    model = fitted("implicit", seed=54)
    users, items = stored_pairs(model, 2)
    capsys.readouterr()
    model.forget(users, items, show_progress=show_progress)
    found = re.search(r"(^|\r)Forgetting: ", capsys.readouterr().err)
    assert (found is not None) == show_progress


def test_full_strategy_stops_at_the_first_sweep_within_the_tolerance():
    """``strategy="full"`` without a washout is plain Unlearn-ALS: full
    sweeps from the factors as they are until the certificate is within the
    tolerance, and no more; the NumPy reference counts them."""
    model = fitted("implicit", seed=55)
    users, items = stored_pairs(model, 4)
    R = model.user_items.toarray()
    R[users, items] = 0
    import scipy.sparse as sp

    R = sp.csr_matrix(R)
    kw = reference_kwargs("implicit")
    X, Y = model.user_factors.copy(), model.item_factors.copy()
    tol = ref.certificate(R, X, Y, **kw)[1] / 8
    expected = 0
    while ref.certificate(R, X, Y, **kw)[1] > tol:
        X, Y = ref.sweep(R, X, Y, **kw)
        expected += 1
    assert 1 <= expected < 50
    report = model.forget(users, items, strategy="full", tolerance=tol, washout=0)
    assert report.sweeps == expected and report.converged
    np.testing.assert_allclose(model.user_factors, X, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(model.item_factors, Y, rtol=1e-7, atol=1e-10)
