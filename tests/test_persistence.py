"""save / load round trips and the basic integrity checks of load."""
import os

import numpy as np
import pytest

import fastunlearn as fu
from conftest import make_model, problem


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_exact(tmp_path, objective_name, dtype):
    R, X, Y = problem(31, negative=objective_name == "implicit")
    model = make_model(objective_name, X.astype(dtype), Y.astype(dtype), R, dtype=dtype,
                       iterations=4, use_cg=True, random_state=5)
    path = model.save(tmp_path / "model")
    assert path.endswith(".npz") and os.path.exists(path)
    loaded = fu.load(tmp_path / "model")
    assert type(loaded) is type(model)
    assert loaded.get_params() == {**model.get_params(), "dtype": np.dtype(dtype)}
    assert np.array_equal(loaded.user_factors, model.user_factors)
    assert np.array_equal(loaded.item_factors, model.item_factors)
    assert loaded.user_factors.dtype == dtype
    a, b = loaded.user_items, model.user_items
    assert a.shape == b.shape and np.array_equal(a.indptr, b.indptr)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.data, b.data)
    assert loaded.loss() == model.loss()


def test_save_leaves_no_temporary_files(tmp_path):
    R, X, Y = problem(32)
    make_model("implicit", X, Y, R).save(tmp_path / "m.npz")
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_overwrites_atomically_keeping_old_file_on_failure(tmp_path, monkeypatch):
    R, X, Y = problem(33)
    model = make_model("implicit", X, Y, R)
    path = model.save(tmp_path / "m.npz")
    before = open(path, "rb").read()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert open(path, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_load_rejects_non_model_and_pickles(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(fu.ModelFileError, match="not a fastunlearn model"):
        fu.load(tmp_path / "other.npz")
    R, X, Y = problem(34)
    path = make_model("implicit", X, Y, R).save(tmp_path / "m.npz")
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["user_factors"] = np.array([object()], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(fu.ModelFileError):
        fu.load(tmp_path / "evil.npz")


def test_save_requires_fitted_model(tmp_path):
    with pytest.raises(fu.NotFittedError):
        fu.ImplicitALS().save(tmp_path / "m.npz")
