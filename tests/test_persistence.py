"""save / load round trips, the basic integrity checks of load, and no trace
of erased data in memory, saved files, reports or CLI output."""
import json
import os
import re

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


# ------------------------------------------------------------------ no trace of erased data

def _flat_leaves(value, path="report"):
    """(path, leaf) of a nested dict; fails on any list, tuple or array."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flat_leaves(item, f"{path}.{key}")
    else:
        assert not isinstance(value, (list, tuple, set, np.ndarray)), \
            f"{path} is a sequence: reports carry counts and digests, never pairs"
        yield path, value


def _stored_pairs(indptr, indices, n_rows):
    rows = np.repeat(np.arange(n_rows), np.diff(indptr))
    return set(zip(rows.tolist(), indices.tolist()))


def _saved(path):
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def _fitted_for_erasure(kind):
    import scipy.sparse as sp

    rng = np.random.default_rng(71)
    # distinct random values, so a removed row's bytes cannot occur by chance
    R = sp.random(40, 30, density=0.3, format="csr", random_state=rng)
    R.data = rng.uniform(0.5, 3.0, R.nnz)
    cls = fu.ImplicitALS if kind == "implicit" else fu.ExplicitALS
    return cls(factors=3, iterations=5, dtype=np.float64, random_state=0,
               use_cg=False).fit(R, show_progress=False)


@pytest.mark.parametrize("kind", ["implicit", "explicit"])
@pytest.mark.parametrize("request_kind", ["pairs", "users", "items"])
def test_no_trace_of_erased_pairs(tmp_path, kind, request_kind):
    """After a forget, the removed pairs are nowhere: not in user_items or the
    slack of either orientation, not in any array of the saved file, not in
    the report, its receipt or the saved history."""
    model = _fitted_for_erasure(kind)
    ui = model.user_items.copy()  # the property is a view of buffers forget edits
    before_path = model.save(tmp_path / "before.npz")
    data = model.state.data

    def memory():  # every byte the model keeps of its data, slack included
        return b"".join(a.tobytes() for side in (data.by_user, data.by_item)
                        for a in (side.indices, side.data))

    kept_before = memory()
    if request_kind == "pairs":
        coo = ui.tocoo()
        pick = np.random.default_rng(1).choice(coo.nnz, 12, replace=False)
        removed = set(zip(coo.row[pick].tolist(), coo.col[pick].tolist()))
        signatures = []
        report = model.forget(coo.row[pick], coo.col[pick])
    elif request_kind == "users":
        user = int(np.argmax(np.diff(ui.indptr)))
        row = ui[user]
        removed = {(user, int(i)) for i in row.indices}
        # the row as both the model and the file store it: its items, its values
        signatures = [row.indices.astype(ui.indices.dtype).tobytes(), row.data.tobytes()]
        report = model.forget_users([user])
    else:
        item = int(np.argmax(np.diff(ui.tocsc().indptr)))
        col = ui.tocsc()[:, [item]]
        removed = {(int(u), item) for u in col.indices}
        # the column as the item-major copy stores it (the file has none)
        signatures = [col.indices.astype(ui.indices.dtype).tobytes(), col.data.tobytes()]
        report = model.forget_items([item])
    assert report.n_removed == len(removed) >= 3
    assert all(sig in kept_before for sig in signatures)  # the byte search finds them

    # in memory: both orientations, slack beyond nnz included
    assert not removed & _stored_pairs(*data.by_user.arrays()[:2], ui.shape[0])
    assert not {(i, u) for u, i in removed} & _stored_pairs(*data.by_item.arrays()[:2],
                                                            ui.shape[1])
    for side in (data.by_user, data.by_item):
        assert not np.any(side.indices[data.nnz:]) and not np.any(side.data[data.nnz:])

    # in the saved file: every member is a known one, and none holds the pairs
    # (the measures are per-row numbers, Grams and a loss of the state after)
    after_path = model.save(tmp_path / "after.npz")
    arrays = _saved(after_path)
    # (implicit models also carry implicit's scalar hyperparameters, for its load)
    implicit_scalars = {"factors", "regularization", "alpha", "iterations", "use_native",
                        "use_cg", "cg_steps", "calculate_training_loss", "num_threads",
                        "dtype", "random_state"} if kind == "implicit" else set()
    assert set(arrays) == {"format_version", "kind", "hyperparameters", "user_factors",
                           "item_factors", "indptr", "indices", "data", "shape", "history",
                           "pending", "washouts", "washout_policy", "measures_user_norms",
                           "measures_item_norms",
                           "measures_sq_users", "measures_sq_items", "measures_grams",
                           "measures_scalars", "measures_fingerprint"} | implicit_scalars
    assert all(arrays[key].shape == () for key in implicit_scalars)
    assert arrays["measures_user_norms"].shape == (ui.shape[0],)
    assert not removed & _stored_pairs(arrays["indptr"], arrays["indices"], ui.shape[0])
    assert len(arrays["data"]) == ui.nnz - len(removed)

    # byte searches: gone from memory and from the file
    before_file, after_file = open(before_path, "rb").read(), open(after_path, "rb").read()
    for signature in signatures:
        assert signature not in memory() and signature not in after_file
    if request_kind == "users":
        assert all(before_file.count(sig) == 1 for sig in signatures)

    # reports, receipts, history: counts and a digest, never the pairs
    history = json.loads(str(arrays["history"]))
    for name, record in (("report", report.to_dict()), ("receipt", report.receipt()),
                         ("history", history[-1])):
        leaves = dict(_flat_leaves(record, name))
        # JSON scalars only (numbers, flags, a few strings): nothing that can hold pairs
        odd = {k: v for k, v in leaves.items()
               if v is not None and type(v) not in (bool, int, float, str)}
        assert not odd, f"{name} has non-JSON values: {odd}"
        # the strings are a digest or key (hex), a UTC time or a one-word name
        plain = r"[0-9a-f]{64}|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|[a-z]+"
        words = {k: v for k, v in leaves.items()
                 if isinstance(v, str) and not re.fullmatch(plain, v)}
        assert not words, f"{name} has free-text strings: {words}"
    assert history[-1]["digest"] == report.digest
    # the digest is that of exactly the removed pairs, checkable with the key
    users, items = map(list, zip(*sorted(removed)))
    assert fu.verify_receipt(users, items, report.receipt_key, report.digest)
    assert not fu.verify_receipt(users[1:], items[1:], report.receipt_key, report.digest)


def test_cli_output_file_holds_no_erased_pairs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    rng = np.random.default_rng(5)
    users = [f"user-{c}" for c in "abcdefghij"]
    items = [f"title-{n:03d}" for n in range(30)]
    rows = {(u, items[j]) for u in users for j in rng.choice(30, 8, replace=False)}
    lines = ["user,item,value"] + [f"{u},{i},{rng.integers(1, 5)}" for u, i in sorted(rows)]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "PYTHONPATH": str(Path(fu.__file__).resolve().parents[1])}

    def cli(*args):
        out = subprocess.run([sys.executable, "-m", "fastunlearn", *args], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout + out.stderr

    cli("fit", "data.csv", "-o", "model.npz", "--factors", "4", "--iterations", "4",
        "--seed", "1", "--quiet")
    gone = sorted(i for u, i in rows if u == "user-c")
    printed = cli("forget", "model.npz", "--users", "user-c", "-o", "out.npz", "--json")
    printed += cli("forget", "out.npz", "--pairs", "data.csv", "--missing", "ignore",
                   "-o", "none.npz")  # everything else too, printed as text
    for item in gone:  # the forgotten user's items are never printed
        assert item not in printed
    model = fu.load(tmp_path / "out.npz")
    user_ids = fu.load(tmp_path / "model.npz").metadata["user_ids"]
    assert "user-c" not in model.metadata["user_ids"]  # the id itself is gone too
    row = int(np.flatnonzero(user_ids == "user-c")[0])
    assert model.user_items[row].nnz == 0
    stored = _stored_pairs(model.user_items.indptr, model.user_items.indices, len(user_ids))
    assert not {(u, i) for u, i in stored if user_ids[u] == "user-c"}
    assert len(stored) == len(rows) - len(gone)
    assert fu.load(tmp_path / "none.npz").user_items.nnz == 0


# ------------------------------------------------------------------ measures and pending

def _counting_measure(monkeypatch):
    from fastunlearn import objective

    calls = {"n": 0}
    real = objective.measure

    def counted(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "measure", counted)
    return calls


def _fitted_model(kind="implicit"):
    import reference as ref

    R, _, _ = ref.random_problem(81, n_users=60, n_items=40, density=0.2,
                                 negative=kind == "implicit")
    cls = fu.ImplicitALS if kind == "implicit" else fu.ExplicitALS
    return cls(factors=4, iterations=6, dtype=np.float64, random_state=0, num_threads=1,
               regularization=0.1).fit(R, show_progress=False)


@pytest.mark.parametrize("kind", ["implicit", "explicit"])
def test_fit_ends_measured_and_load_keeps_the_measures(tmp_path, monkeypatch, kind):
    import reference as ref

    model = _fitted_model(kind)
    kept = model.state.current_measures()
    assert kept is not None and kept.exact  # fit ended with an exact measurement
    ref_kind = dict(model="implicit", alpha=1.0) if kind == "implicit" else \
        dict(model="explicit")
    _, max_row = ref.certificate(model.user_items, model.user_factors, model.item_factors,
                                 regularization=0.1, **ref_kind)
    assert kept.certificate().max_row == pytest.approx(max_row, rel=1e-9)
    loaded = fu.load(model.save(tmp_path / "m.npz"))
    again = loaded.state.current_measures()
    assert again is not None
    for name in ("user_norms", "item_norms", "sq_users", "sq_items"):
        assert np.array_equal(getattr(again, name), getattr(kept, name))
    assert again.data_loss == kept.data_loss and again.exact
    # the first forget after load measures nothing: it starts from the file's measures
    calls = _counting_measure(monkeypatch)
    user = int(np.argmax(np.diff(loaded.user_items.indptr)))
    report = loaded.forget_users([user], washout=0)
    assert calls["n"] == 0 and report.converged
    _, max_row = ref.certificate(loaded.user_items, loaded.user_factors, loaded.item_factors,
                                 regularization=0.1, **ref_kind)
    assert max_row <= report.tolerance * (1 + 1e-9)


@pytest.mark.parametrize("edit", ["user_factors", "data", "measures_user_norms"])
def test_edited_file_is_measured_again_not_trusted(tmp_path, monkeypatch, edit):
    model = _fitted_model()
    arrays = _saved(model.save(tmp_path / "m.npz"))
    arrays[edit] = arrays[edit].copy()
    arrays[edit][0] *= 0.5  # the fingerprint no longer matches
    np.savez(tmp_path / "edited.npz", **arrays)
    loaded = fu.load(tmp_path / "edited.npz")
    assert loaded.state.current_measures() is None
    calls = _counting_measure(monkeypatch)
    cert = loaded.certificate()
    assert calls["n"] == 1
    fresh = fu.ImplicitALS.from_factors(loaded.user_factors, loaded.item_factors,
                                        loaded.user_items, **loaded.get_params())
    assert cert == fresh.certificate()


def test_measures_members_are_checked(tmp_path):
    model = _fitted_model()
    arrays = _saved(model.save(tmp_path / "m.npz"))
    partial = {k: v for k, v in arrays.items() if k != "measures_grams"}
    np.savez(tmp_path / "partial.npz", **partial)
    with pytest.raises(fu.ModelFileError, match="incomplete measures"):
        fu.load(tmp_path / "partial.npz")
    bad = {**arrays, "measures_item_norms": arrays["measures_item_norms"][:-1]}
    np.savez(tmp_path / "short.npz", **bad)
    with pytest.raises(fu.ModelFileError, match="measures_item_norms"):
        fu.load(tmp_path / "short.npz")
    nan = {**arrays, "measures_scalars": np.array([np.nan, 1.0])}
    np.savez(tmp_path / "nan.npz", **nan)
    with pytest.raises(fu.ModelFileError, match="measures_scalars"):
        fu.load(tmp_path / "nan.npz")
    for value in (np.array([1, -1]), np.array([1.0, 2.0]), np.array([3])):
        np.savez(tmp_path / "pending.npz", **{**arrays, "pending": value})
        with pytest.raises(fu.ModelFileError, match="pending"):
            fu.load(tmp_path / "pending.npz")
    for value in (np.array(-1), np.array(1.0), np.array([1])):
        np.savez(tmp_path / "washouts.npz", **{**arrays, "washouts": value})
        with pytest.raises(fu.ModelFileError, match="washouts"):
            fu.load(tmp_path / "washouts.npz")
    for value in (np.array("sometimes"), np.array(1), np.array(["refit"])):
        np.savez(tmp_path / "policy.npz", **{**arrays, "washout_policy": value})
        with pytest.raises(fu.ModelFileError, match="washout_policy"):
            fu.load(tmp_path / "policy.npz")
    # files written before measures, pending, washouts and the policy were
    # saved still load
    old = {k: v for k, v in arrays.items() if not k.startswith("measures_")
           and k not in ("pending", "washouts", "washout_policy")}
    np.savez(tmp_path / "old.npz", **old)
    loaded = fu.load(tmp_path / "old.npz")
    assert loaded.state.current_measures() is None and loaded.pending == {"entries": 0,
                                                                     "requests": 0}
    assert loaded.state.washouts == 0 and loaded.washout_policy == "default"


def test_the_washout_policy_survives_save_and_load(tmp_path):
    """A model set to refit at every washout still does once loaded."""
    model = _fitted_model()
    model.washout_policy = "refit"
    loaded = fu.load(model.save(tmp_path / "m.npz"))
    assert loaded.washout_policy == "refit"
    coo = model.user_items.tocoo()
    assert loaded.forget(coo.row[:2], coo.col[:2], pending_limit=1).refit


def test_the_washout_count_survives_save_and_load(tmp_path):
    """A model saved after a relaxed washout refits at its next one once
    loaded, as it would have in memory (forgetting.RELAXED_BETWEEN_FITS)."""
    model = _fitted_model()
    coo = model.user_items.tocoo()
    for i in range(fu.forgetting.RELAXED_BETWEEN_FITS):
        assert not model.forget(coo.row[i:i + 1], coo.col[i:i + 1], washout=2).refit
    loaded = fu.load(model.save(tmp_path / "m.npz"))
    assert loaded.state.washouts == model.state.washouts == fu.forgetting.RELAXED_BETWEEN_FITS
    pairs = coo.row[10:12], coo.col[10:12]
    assert loaded.forget(*pairs, pending_limit=1).refit
    assert model.forget(*pairs, pending_limit=1).refit
    np.testing.assert_array_equal(loaded.user_factors, model.user_factors)


def test_pending_removals_survive_save_and_load(tmp_path):
    model = _fitted_model()
    coo = model.user_items.tocoo()
    report = model.forget(coo.row[:2], coo.col[:2], washout=0)
    assert not report.settled and report.pending_entries == 2
    loaded = fu.load(model.save(tmp_path / "m.npz"))
    assert loaded.pending == {"entries": 2, "requests": 1}
    settled = loaded.settle()
    assert settled.entries == 2 and settled.requests == 1 and settled.converged
    assert loaded.pending == {"entries": 0, "requests": 0}
    assert loaded.metadata["history"][-1]["event"] == "settle"
    assert fu.load(loaded.save(tmp_path / "m2.npz")).pending["entries"] == 0
