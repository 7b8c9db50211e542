"""The measures a model file keeps (fastunlearn.persistence): a bound stays
a bound after save and load (a certificate read from the file never claims
to be exact when it was not), and a fingerprint member that is not one
string is a damaged file, refused with ModelFileError (docs/design.md,
section 6).  Checked against the NumPy reference certificate."""
import numpy as np
import pytest

import fastunlearn as fu
import reference as ref
from conftest import reference_kwargs
from test_forgetting import fitted


def saved(path):
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def reference_max_row(model):
    return ref.certificate(model.user_items, model.user_factors, model.item_factors,
                           **reference_kwargs("implicit"))[1]


def test_kept_bounds_load_as_bounds_and_exact_measures_as_exact(tmp_path):
    model = fitted("implicit", seed=50)
    coo = model.user_items.tocoo()
    model.forget(coo.row[:1].copy(), coo.col[:1].copy(), washout=0)
    kept = model.state.current_measures()
    assert kept is not None and not kept.exact  # the masked request keeps bounds
    loaded = fu.load(model.save(tmp_path / "bounds.npz"))
    again = loaded.state.current_measures()
    assert again is not None and not again.exact
    # a bound: at or above the true certificate
    assert again.certificate().max_row >= reference_max_row(loaded) * (1 - 1e-9)
    np.testing.assert_array_equal(again.user_norms, kept.user_norms)
    measured = fitted("implicit", seed=51)  # a fit ends with an exact measurement
    assert measured.state.current_measures().exact
    reloaded = fu.load(measured.save(tmp_path / "exact.npz"))
    assert reloaded.state.current_measures().exact
    assert reloaded.certificate().max_row == pytest.approx(reference_max_row(reloaded),
                                                           rel=1e-9)


@pytest.mark.parametrize("fingerprint", [np.array(["a", "b"]), np.array([["x"]]),
                                         np.array(7), np.array(1.5)])
def test_a_fingerprint_that_is_not_one_string_is_refused(tmp_path, fingerprint):
    model = fitted("implicit", seed=52)
    arrays = saved(model.save(tmp_path / "m.npz"))
    arrays["measures_fingerprint"] = fingerprint
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(fu.ModelFileError, match="'measures_fingerprint' must be a string"):
        fu.load(tmp_path / "bad.npz")
