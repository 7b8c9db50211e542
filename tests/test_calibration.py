"""The washout policy and its calibration (fastunlearn.audit.calibration;
docs/design.md, section 5, "Calibrating the washout per model")."""
import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
from fastunlearn import audit, forgetting
from fastunlearn.audit import calibration
from fastunlearn.evaluation import holdout_split
from test_forgetting import fitted, random_pairs


# ------------------------------------------------------------ the policy

@pytest.mark.parametrize("name", ["implicit", "weighted", "explicit"])
@pytest.mark.parametrize("fraction", [0.001, 0.05])
def test_washout_for_refits_under_the_refit_policy_at_any_size(name, fraction):
    obj = fitted(name).spec.objective
    nnz = 10_000
    pending = int(fraction * nnz)
    assert forgetting.washout_for(obj, pending, nnz, 0, "refit") is forgetting.REFIT
    default = forgetting.washout_for(obj, pending, nnz, 0, "default")
    assert default == forgetting.washout_for(obj, pending, nnz, 0)
    assert default.refit == (name == "explicit")
    with pytest.raises(ValueError, match="washout_policy"):
        forgetting.washout_for(obj, pending, nnz, 0, "always")


@pytest.mark.parametrize("name", ["implicit", "weighted"])
@pytest.mark.parametrize("via", ["forget", "settle"])
def test_a_refit_policy_makes_every_washout_a_retrain(name, via):
    """Under ``"refit"`` the default washout, the first after a fit too, is
    the model's own fit from its seed on the data then left; requests
    without a washout stay as they are; back on ``"default"`` the next
    washout is relaxed again."""
    model = fitted(name, seed=3)
    assert model.washout_policy == "default"
    model.washout_policy = "refit"
    small = model.forget(*random_pairs(model, 1, seed=1), washout=0)
    assert not small.refit and not small.settled
    pairs = random_pairs(model, 3, seed=2)
    if via == "forget":
        report = model.forget(*pairs, pending_limit=1)
    else:
        model.forget(*pairs, washout=0)
        report = model.settle()
    assert report.refit and report.converged and model.pending["entries"] == 0
    assert model.state.washouts == 0
    retrain = fitted(name, seed=3).fit(model.user_items, show_progress=False)
    np.testing.assert_array_equal(model.user_factors, retrain.user_factors)
    np.testing.assert_array_equal(model.item_factors, retrain.item_factors)
    # it stays through a fit, and goes back by hand
    model.fit(model.user_items, show_progress=False)
    assert model.washout_policy == "refit"
    model.washout_policy = "default"
    report = model.forget(*random_pairs(model, 3, seed=4), pending_limit=1)
    assert not report.refit and report.washout == forgetting.WASHOUT_SWEEPS


def test_a_bad_policy_is_refused_and_changes_nothing():
    model = fitted("implicit")
    for bad in ("Refit", "", None, 1):
        with pytest.raises(ValueError, match="washout_policy"):
            model.washout_policy = bad
    assert model.washout_policy == "default"


# ------------------------------------------------------------ the probe

def test_probe_pairs_are_distinct_entries_each_with_a_partner_of_its_row():
    dense = (sp.random(30, 20, density=0.3, random_state=1).toarray() > 0).astype(float)
    dense[0] = dense[1] = 0  # an empty row and a row of one entry are never drawn
    dense[1, 3] = 1
    R = sp.csr_matrix(dense)
    count = 40
    pairs, partners = calibration.probe_pairs(R, count, np.random.default_rng(0))
    assert len(pairs) == len(partners) == count
    drawn = np.concatenate([pairs, partners])
    assert len(np.unique(drawn)) == 2 * count and drawn.min() >= 0 and drawn.max() < R.nnz
    row_of = np.repeat(np.arange(R.shape[0]), np.diff(R.indptr))
    np.testing.assert_array_equal(row_of[pairs], row_of[partners])
    assert not np.isin(row_of[drawn], [0, 1]).any()
    users, items = calibration.entry_pairs(R, pairs)
    np.testing.assert_array_equal(users, row_of[pairs])
    assert (R[users, items] == 1).all()
    with pytest.raises(ValueError, match="too few users"):
        calibration.probe_pairs(R, R.nnz, np.random.default_rng(0))


def test_without_entries_drops_exactly_those_entries():
    dense = sp.random(12, 9, density=0.4, random_state=2).toarray()
    dense[5] = dense[11] = 0  # an empty row in the middle, and the last one
    R = sp.csr_matrix(dense)
    drop = np.random.default_rng(3).choice(R.nnz, 7, replace=False)
    out = calibration.without_entries(R, drop)
    dense = R.toarray()
    users, items = calibration.entry_pairs(R, drop)
    dense[users, items] = 0
    np.testing.assert_array_equal(out.toarray(), dense)
    assert out.nnz == R.nnz - 7 and out.shape == R.shape


@pytest.mark.parametrize("name", ["implicit", "weighted"])
def test_the_trace_is_the_one_numpy_computes_from_fresh_fits(name):
    """The calibration's trace against one recomputed here: the probe fit,
    the reference and the forget rebuilt from dense matrices, and ``d`` and
    ``o`` from their dense score matrices."""
    model = fitted(name, seed=5)
    got = audit.calibrate_washout(model, fraction=0.05, probes=2, seed=7, apply=False)
    R = model.user_items
    n = round(0.05 * R.nnz)
    pairs, partners = calibration.probe_pairs(R, 2 * n, np.random.default_rng(7))
    row_of = np.repeat(np.arange(R.shape[0]), np.diff(R.indptr))
    pu, pi, hu, hi = row_of[pairs], R.indices[pairs], row_of[partners], R.indices[partners]
    dense = R.toarray()
    base = dense.copy()
    base[hu, hi] = 0
    probe_fit = fitted(name, seed=5).fit(sp.csr_matrix(base), show_progress=False)
    d, o = [], []
    for k in range(2):
        part = slice(k * n, (k + 1) * n)
        left = base.copy()
        left[pu[part], pi[part]] = 0
        reference = fitted(name, seed=5).fit(sp.csr_matrix(left), show_progress=False)
        forgot = fitted(name, seed=5).fit(sp.csr_matrix(base), show_progress=False)
        forgot.forget(pu[part], pi[part], pending_limit=1)
        S = {m: np.asarray(m.user_factors, np.float64) @ np.asarray(m.item_factors,
                                                                     np.float64).T
             for m in (probe_fit, reference, forgot)}
        for out, m in ((d, forgot), (o, probe_fit)):
            out.append((S[m] - S[reference])[pu[part], pi[part]]
                       - (S[m] - S[reference])[hu[part], hi[part]])
    d, o = np.concatenate(d), np.concatenate(o)
    assert got.pairs == 2 * n and got.probes == 2
    assert got.signal == pytest.approx(o.mean(), rel=1e-9)
    assert got.trace == pytest.approx(d.mean() / o.mean(), rel=1e-7, abs=1e-12)
    assert got.standard_error == pytest.approx(
        d.std(ddof=1) / np.sqrt(len(d)) / o.mean(), rel=1e-7)
    assert model.washout_policy == "default"  # apply=False


def test_calibration_leaves_the_model_as_it_was():
    model = fitted("implicit", seed=6)
    X, Y, R = model.user_factors.copy(), model.item_factors.copy(), model.user_items.copy()
    audit.calibrate_washout(model, probes=1, fraction=0.05)
    np.testing.assert_array_equal(model.user_factors, X)
    np.testing.assert_array_equal(model.item_factors, Y)
    assert (model.user_items != R).nnz == 0 and not model.metadata.get("history")


def test_calibration_checks_its_arguments():
    model = fitted("implicit")
    for fraction in (0, 1, -0.1, float("nan")):
        with pytest.raises(ValueError, match="fraction"):
            audit.calibrate_washout(model, fraction=fraction)
    with pytest.raises(ValueError, match="probes"):
        audit.calibrate_washout(model, probes=0)
    with pytest.raises(TypeError, match="probes"):
        audit.calibrate_washout(model, probes=1.5)
    with pytest.raises(fu.NotFittedError):
        audit.calibrate_washout(fu.ImplicitALS())
    with pytest.raises(TypeError, match="local ImplicitALS"):
        audit.calibrate_washout(object())


# ------------------------------------------------------------ MovieLens 100K

ML = dict(regularization=0.05, iterations=15, use_cg=True, num_threads=2)


@pytest.mark.parametrize("factors, alpha, policy", [(64, 5.0, "refit"), (32, 5.0, "default"),
                                                    (64, 1.0, "default")])
def test_calibration_finds_the_setting_the_washout_was_not_tuned_on(movielens, factors, alpha,
                                                                    policy):
    """Factors 64, alpha 5, where the per-example attacker finds the default
    washout's trace (the xfail in test_completeness.py), gets the refit
    policy; the two settings the washout was tuned on keep the default."""
    train, _ = holdout_split(movielens, 0.2, seed=0)
    model = fu.ImplicitALS(factors=factors, alpha=alpha, random_state=0, **ML)
    model.fit(train, show_progress=False)
    result = audit.calibrate_washout(model)
    assert result.policy == model.washout_policy == policy
    assert result.probes == calibration.DEFAULT_PROBES and result.washout > 0
    assert result.signal > 0
    if policy == "refit":
        assert result.trace > calibration.TRACE_LIMIT and result.z > calibration.TRACE_Z
    else:
        assert result.trace < calibration.TRACE_LIMIT
