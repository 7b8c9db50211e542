"""The model state's promise about kept measures (``fastunlearn.state``):
they are used only while they describe the factors and data as they are, in
the model itself and in any pickle or copy of it; checked against a fresh
measurement and the NumPy reference certificate (docs/design.md, section 6).
"""
import copy
import pickle

import numpy as np
import pytest

import reference as ref
from conftest import make_model, problem, reference_kwargs
from fastunlearn import objective
from fastunlearn import state as kept_state
from fastunlearn.state import Measured, ModelState


def measured_model(name="implicit", seed=4):
    R, X, Y = problem(seed)
    model = make_model(name, X, Y, R)
    model.certificate()  # measures and keeps them
    assert model.state.current_measures() is not None
    return model


def reference_max_row(model, name="implicit"):
    return ref.certificate(model.user_items, model.user_factors, model.item_factors,
                           **reference_kwargs(name))[1]


@pytest.mark.parametrize("clone", [pickle.loads, copy.deepcopy], ids=["pickle", "deepcopy"])
def test_a_copy_keeps_the_measures_that_describe_it(clone):
    model = measured_model()
    other = clone(pickle.dumps(model)) if clone is pickle.loads else clone(model)
    kept = other.state.current_measures()
    assert kept is not None and kept is other.state.measured.measures
    # the copy's key is that of the copy (its own data), not the original's
    assert other.state.measured.key == kept_state.fingerprint(other.state)
    np.testing.assert_allclose(kept.certificate().max_row, reference_max_row(other),
                               rtol=1e-9)
    fresh = objective.measure(other.objective, other.state.data, other.user_factors,
                              other.item_factors, num_threads=1)
    np.testing.assert_allclose(kept.user_norms, fresh.user_norms, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(kept.data_loss, fresh.data_loss, rtol=1e-12)


def test_a_copy_of_stale_measures_or_of_edited_factors_keeps_none():
    model = measured_model()
    model.user_factors[0, 0] += 1.0  # in place: the kept measures are stale now
    assert model.state.current_measures() is None
    assert pickle.loads(pickle.dumps(model)).state.measured is None
    # a pickled state whose factors differ from the measured ones: not trusted
    model = measured_model()
    saved = model.state.__getstate__()
    assert saved["measured"] is not None
    saved["user_factors"] = saved["user_factors"].copy()
    saved["user_factors"][1, 1] += 1.0
    restored = ModelState.__new__(ModelState)
    restored.__setstate__(saved)
    assert restored.measured is None and restored.current_measures() is None
    # unchanged, the same dictionary is trusted
    restored.__setstate__(model.state.__getstate__())
    assert restored.current_measures() is not None
    # an older pickle's Measured object is never trusted, even if it matches
    older = dict(model.state.__getstate__(), measured=model.state.measured)
    restored.__setstate__(older)
    assert restored.measured is None


def test_pickling_a_state_without_data_or_measures():
    model = measured_model()
    serving = ModelState(user_factors=model.user_factors.copy(),
                         item_factors=model.item_factors.copy())
    again = pickle.loads(pickle.dumps(serving))
    assert again.measured is None and again.data is None and again.has_factors
    assert not again.is_fitted and again.pending == (0, 0)
    np.testing.assert_array_equal(again.user_factors, serving.user_factors)
    empty = pickle.loads(pickle.dumps(ModelState()))
    assert not empty.has_factors and empty.measured is None


def test_exact_measures_refuse_kept_bounds():
    """``measures(exact=True)`` measures again when only bounds are kept;
    without ``exact`` the kept bounds serve."""
    model = measured_model()
    state = model.state
    exact = state.current_measures()
    bounds = objective.Measures(exact.user_norms + 1.0, exact.item_norms + 1.0,
                                exact.data_loss, exact.gram_users, exact.gram_items,
                                exact.sq_users, exact.sq_items, exact=False)
    state.remember(bounds)
    assert state.measures(model.objective, 1) is bounds
    again = state.measures(model.objective, 1, exact=True)
    assert again is not bounds and again.exact
    np.testing.assert_allclose(again.certificate().max_row, reference_max_row(model),
                               rtol=1e-9)
    assert state.current_measures() is again


def test_fingerprint_names_the_factors_and_data_it_was_taken_of():
    model = measured_model()
    state = model.state
    key = state.fingerprint()
    assert key == kept_state.fingerprint(state)
    assert state.fingerprint(state.kept_checksums()) == key
    assert Measured(key, state.measured.measures).checksums == state.kept_checksums()
    for side in ("user_factors", "item_factors"):
        other = state.snapshot()
        setattr(other, side, getattr(state, side).copy())
        getattr(other, side)[-1, -1] = np.nextafter(getattr(other, side)[-1, -1], np.inf)
        assert other.fingerprint() != key
    with_other_data = state.snapshot()
    with_other_data.data = copy.deepcopy(state.data)
    assert with_other_data.fingerprint() != key  # the same values, another object


def test_measures_of_other_data_of_the_same_size_are_not_used():
    """Data replaced by other entries of the same shape and count (the
    factors unchanged): the kept measures are not those of the new data."""
    from fastunlearn.storage import TrainingData

    model = measured_model()
    R = model.user_items.copy()
    R.data = R.data[::-1].copy()  # the same pattern, the values moved around
    assert (R != model.user_items).nnz
    model.state.data = TrainingData(R)
    assert model.state.current_measures() is None
    np.testing.assert_allclose(model.certificate().max_row, reference_max_row(model),
                               rtol=1e-9)
    # position-aware: the same words in another order differ
    assert kept_state.checksum(np.array([1.0, 2.0])) != kept_state.checksum(np.array([2.0, 1.0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_advanced_checksum_equals_a_full_read_over_many_edits(dtype):
    """Whatever the edit (larger or smaller values, so that the sums wrap
    around 2^64 or not), the checksum advanced from the edited rows is the
    one a full read gives: forgetting keys its state by it."""
    rng = np.random.default_rng(1)
    F = rng.standard_normal((30, 4)).astype(dtype)
    current = kept_state.checksum(F)
    for _ in range(40):
        rows = np.unique(rng.integers(0, 30, rng.integers(1, 5)))
        old = F[rows].copy()
        F[rows] = rng.standard_normal((len(rows), 4)) * 10.0 ** rng.integers(-3, 4)
        current = kept_state.advance_checksum(current, F, rows, old)
        assert current == kept_state.checksum(F)
        assert all(0 <= s < 2 ** 64 for s in current[:2])
