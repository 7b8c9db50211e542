"""The rows a forget reports solving, counted by hand: without a washout the
local phase solves exactly the users and the items of the forgotten pairs,
once each (docs/design.md, section 4), and each phase counts only its own
solves."""
import numpy as np
import pytest

from test_forgetting import fitted


def pairs_of(model, n_users, n_items):
    """Stored pairs spanning exactly ``n_users`` users and ``n_items`` items:
    ``n_users`` users of one item, the last of them with ``n_items - 1``
    more of its items."""
    dense = model.user_items.toarray() != 0
    for item in range(dense.shape[1]):
        users = np.flatnonzero(dense[:, item])[:n_users]
        others = np.setdiff1d(np.flatnonzero(dense[users[-1]]), [item])[:n_items - 1]
        if len(users) == n_users and len(others) == n_items - 1:
            return (np.concatenate([users, np.full(n_items - 1, users[-1])]),
                    np.concatenate([np.full(n_users, item), others]))
    raise AssertionError("no such pairs in the fixture")


@pytest.mark.parametrize("name", ["implicit", "explicit", "weighted"])
@pytest.mark.parametrize("n_users, n_items", [(3, 2), (1, 4)])
def test_the_local_phase_solves_the_forgotten_pairs_rows_once_each(name, n_users, n_items):
    model = fitted(name, seed=11)
    users, items = pairs_of(model, n_users, n_items)
    assert (len(set(users)), len(set(items))) == (n_users, n_items)
    report = model.forget(users, items, washout=0, tolerance=1e9)
    phases = report.rows_solved_by_phase
    assert phases["local"] == n_users + n_items
    assert phases["washout"] == phases["sweeps"] == 0  # nothing over the tolerance
    assert report.rows_solved == n_users + n_items
    # the next request counts its own rows only, and its masked sweeps
    # (a tolerance below the certificate) add to them, never subtract
    tol = 1e-3 * model.certificate().max_row
    more_u, more_i = pairs_of(model, 2, 1)
    report = model.forget(more_u, more_i, washout=0, tolerance=tol)
    phases = report.rows_solved_by_phase
    assert phases["local"] == 3 and phases["sweeps"] > 0 and phases["washout"] == 0
    assert report.rows_solved == phases["local"] + phases["sweeps"]
