"""What save writes (fastunlearn.persistence), read back by load and by
NumPy: a model seeded by a Generator loads with ``random_state=None`` (a
generator is not part of the model), and a model that only serves is
written in implicit's format (factors and hyperparameters, no
interactions) and loads back as such."""
import numpy as np

import fastunlearn as fu
from conftest import make_model, problem


def test_a_generator_seed_is_saved_as_none(tmp_path):
    R, X, Y = problem(91)
    model = make_model("implicit", X, Y, R, random_state=np.random.default_rng(3))
    loaded = fu.load(model.save(tmp_path / "m.npz"))
    assert loaded.random_state is None
    params = {k: v for k, v in model.get_params().items() if k != "random_state"}
    assert {k: v for k, v in loaded.get_params().items() if k != "random_state"} == params
    np.testing.assert_array_equal(loaded.user_factors, model.user_factors)


def test_a_serving_model_is_saved_in_implicits_format(tmp_path):
    R, X, Y = problem(92)
    model = fu.ImplicitALS(factors=X.shape[1], regularization=0.25, alpha=3.0, iterations=7,
                           random_state=5)
    model.user_factors, model.item_factors = X.astype(np.float32), Y.astype(np.float32)
    path = model.save(tmp_path / "served")
    with np.load(path, allow_pickle=False) as npz:
        members = {key: npz[key] for key in npz.files}
    assert "format_version" not in members and "indptr" not in members
    np.testing.assert_array_equal(members["user_factors"], model.user_factors)
    np.testing.assert_array_equal(members["item_factors"], model.item_factors)
    assert members["factors"] == X.shape[1] and members["alpha"] == 3.0
    assert members["regularization"] == 0.25 and members["iterations"] == 7
    assert members["random_state"] == 5
    loaded = fu.load(path)
    assert type(loaded) is fu.ImplicitALS and not loaded.is_fitted
    np.testing.assert_array_equal(loaded.item_factors, model.item_factors)
    assert loaded.regularization == 0.25 and loaded.alpha == 3.0


def _model():
    import scipy.sparse as sp

    return fu.ImplicitALS.from_factors(np.ones((2, 1)), np.ones((2, 1)), sp.eye(2))


def test_a_save_that_died_leaves_a_temporary_the_next_save_removes(tmp_path, monkeypatch):
    """A save that dies before its clean-up (as a killed process does) leaves
    its temporary file; the next save to the same path removes it, and
    removes nothing else: not another model's temporaries, not the user's
    files named like the model, not the links."""
    import os

    target = tmp_path / "m.npz"
    keep = [".m.npz.notes", "m.npz.txt", ".other.npz.abc.fastunlearn-tmp"]
    for name in keep:
        (tmp_path / name).write_bytes(b"mine")
    links = [f".m.npz.link{i}.fastunlearn-tmp" for i in range(4)]
    for name in links:  # dangling links named as temporaries: never followed
        os.symlink(tmp_path / "nowhere", tmp_path / name)

    def dies(*args, **kwargs):
        raise KeyboardInterrupt

    for _ in range(3):  # three saves that die before they clean up
        with monkeypatch.context() as m:
            m.setattr(np, "savez", dies)
            m.setattr(os, "unlink", lambda path: None)
            try:
                _model().save(target)
            except KeyboardInterrupt:
                pass
    left = {n for n in os.listdir(tmp_path) if n.startswith(".m.npz.") and
            n.endswith(".fastunlearn-tmp")} - set(links)
    assert len(left) == 3 and not target.exists()
    _model().save(target)
    assert sorted(os.listdir(tmp_path)) == sorted(keep + links + ["m.npz"])
    assert all((tmp_path / name).read_bytes() == b"mine" for name in keep)


def _implicit_file(path, **members):
    np.savez(path, **members)
    return path


def test_implicit_files_with_one_factor_load_and_damaged_ones_are_named(tmp_path):
    import pytest

    rng = np.random.default_rng(93)
    X, Y = rng.random((5, 1)).astype(np.float32), rng.random((4, 1)).astype(np.float32)
    one = fu.load(_implicit_file(tmp_path / "one.npz", user_factors=X, item_factors=Y,
                                 factors=np.array(1)))
    assert one.factors == 1
    np.testing.assert_array_equal(one.user_factors, X)
    cases = {
        "user_only": (dict(user_factors=X), "holds user_factors without the other side's"),
        "item_only": (dict(item_factors=Y), "holds item_factors without the other side's"),
        "int_users": (dict(user_factors=X.astype(np.int64), item_factors=Y),
                      "'user_factors' is int64 (5, 1), expected a 2-D float array"),
        "int_items": (dict(user_factors=X, item_factors=Y.astype(np.int32)),
                      "'item_factors' is int32 (4, 1), expected a 2-D float array"),
        "flat_users": (dict(user_factors=X[:, 0], item_factors=Y),
                       "'user_factors' is float32 (5,), expected a 2-D float array"),
        "bad_scalar": (dict(user_factors=X, item_factors=Y, factors=np.array(1.5)),
                       "'factors' must be a scalar of kind"),
    }
    for name, (members, message) in cases.items():
        path = _implicit_file(tmp_path / f"{name}.npz", **members)
        with pytest.raises(fu.ModelFileError) as error:
            fu.load(path)
        assert str(error.value).startswith(f"{path}: ") and message in str(error.value), name


def test_a_save_while_another_writes_the_same_path_keeps_its_temporary(tmp_path,
                                                                        monkeypatch):
    """Two saves to one path at once (the second starts while the first is
    writing): the second does not take the first's temporary for a dead
    save's, both complete, and the file holds the last to finish."""
    import os
    import scipy.sparse as sp

    target = tmp_path / "m.npz"
    real = np.savez
    first = fu.ImplicitALS.from_factors(np.full((2, 1), 1.0), np.ones((2, 1)), sp.eye(2))
    second = fu.ImplicitALS.from_factors(np.full((2, 1), 2.0), np.ones((2, 1)), sp.eye(2))
    started = []

    def savez(fh, **arrays):
        if not started:  # the first save's write: the second save runs meanwhile
            started.append(True)
            second.save(target)
        real(fh, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    first.save(target)
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    np.testing.assert_array_equal(fu.load(target).user_factors, first.user_factors)
