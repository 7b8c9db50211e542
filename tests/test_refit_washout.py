"""The washout's promises on the paths the refit change touched
(docs/design.md, section 5): a CG model's relaxed washout leaves a
certificate that bounds the NumPy reference's gradients and the reference's
loss, and a bad ``washout`` is refused naming the option and the value."""
import re

import numpy as np
import pytest

import fastunlearn as fu
import reference as ref
from conftest import reference_kwargs
from test_forget_requests import stored_pairs
from test_forgetting import fitted


@pytest.mark.parametrize("washout", [1, 2])
@pytest.mark.parametrize("cg_steps", [2, 4])
def test_a_cg_models_washout_certifies_against_the_numpy_reference(washout, cg_steps):
    """The relaxed sweeps and the plain sweep of a CG model run with its
    own ``cg_steps`` (the relaxed ones to their own residual target): the
    report counts every row of each sweep, its certificate bounds every
    row's gradient as the NumPy reference computes it, its loss is the
    reference's, and the factors end near the reference's exact-solve
    washout (CG solves are near-exact, not exact)."""
    model = fitted("implicit", seed=7, use_cg=True, cg_steps=cg_steps, iterations=30)
    users, items = stored_pairs(model, 3)
    X, Y = model.user_factors.copy(), model.item_factors.copy()
    report = model.forget(users, items, washout=washout, tolerance=1e9)
    R = model.user_items.tocsr()
    kw = reference_kwargs("implicit")
    assert report.washout == washout and report.settled
    assert report.rows_solved_by_phase["washout"] == (washout + 1) * sum(R.shape)
    exact = ref.certificate(R, model.user_factors, model.item_factors, **kw)[1]
    assert report.certificate_after.max_row >= exact * (1 - 1e-9)
    assert model.loss() == pytest.approx(
        ref.loss(R, model.user_factors, model.item_factors, **kw), rel=1e-9)
    RT = R.T.tocsr()  # the implicit objective is symmetric in users and items
    for _ in range(washout):
        X = X + fu.forgetting.RELAXATION * (ref.sweep(R, X, Y, **kw)[0] - X)
        Y = Y + fu.forgetting.RELAXATION * (ref.sweep(RT, Y, X, **kw)[0] - Y)
    X, Y = ref.sweep(R, X, Y, **kw)
    scale = max(np.abs(X).max(), np.abs(Y).max())
    np.testing.assert_allclose(model.user_factors, X, atol=0.1 * scale)
    np.testing.assert_allclose(model.item_factors, Y, atol=0.1 * scale)


@pytest.mark.parametrize("washout, error", [(-1, ValueError), (1.5, TypeError),
                                            ("sometimes", TypeError)])
def test_a_bad_washout_is_refused_naming_the_option_and_the_value(washout, error):
    model = fitted("implicit", seed=3)
    users, items = stored_pairs(model, 1)
    before = model.user_factors.copy()
    with pytest.raises(error) as caught:
        model.forget(users, items, washout=washout)
    message = str(caught.value)
    assert re.search(r"\bwashout\b", message), message
    assert repr(washout) in message or str(washout) in message, message
    np.testing.assert_array_equal(model.user_factors, before)
    assert model.user_items[users[0], items[0]] != 0  # nothing forgotten
