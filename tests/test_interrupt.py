"""Interruptions: ``KeyboardInterrupt`` or a failing callback during ``fit``,
``forget_*`` and ``partial_fit``, and a process killed during ``save``.

What "consistent" means for ``fit`` (see its docstring): interrupted before the
new data is installed, the model is exactly as it was; afterwards it holds the
new data and the factors after a whole number of completed half-sweeps, which
are exactly what an uninterrupted fit computes at that point.  Forgetting and
adding data are all-or-nothing: interrupted, the model is bitwise unchanged.
"""
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
import reference as ref
from conftest import OBJECTIVES, reference_kwargs
from fastunlearn import _als, objective, state

PKG_ROOT = str(Path(fu.__file__).resolve().parents[1])


def data(seed=0, n_users=40, n_items=30):
    R, _, _ = ref.random_problem(seed, n_users=n_users, n_items=n_items, density=0.2,
                                 negative=True)
    return R


def estimator(name, iterations=6, **kw):
    kind, params, extra = OBJECTIVES[name]
    cls = fu.ImplicitALS if kind == "implicit" else fu.ExplicitALS
    return cls(factors=3, iterations=iterations, use_cg=False, dtype=np.float64,
               random_state=7, num_threads=2, **params, **extra, **kw)


def snapshot(model):
    d = model.state.data
    return [a.copy() for a in (model.user_factors, model.item_factors, *d.by_user.arrays(),
                                *d.by_item.arrays())]


def same(a, b):
    return len(a) == len(b) and all(x.dtype == y.dtype and np.array_equal(x, y)
                                    for x, y in zip(a, b))


def check_usable(model, name, R):
    """The model serves, measures, forgets and saves; its measures are the
    reference's on the data it holds."""
    assert (model.user_items != sp.csr_matrix(R)).nnz == 0
    _, max_row = ref.certificate(model.user_items, model.user_factors, model.item_factors,
                                 **reference_kwargs(name))
    assert model.certificate().max_row == pytest.approx(max_row, rel=1e-9, abs=1e-12)
    assert model.loss() == pytest.approx(
        ref.loss(model.user_items, model.user_factors, model.item_factors,
                 **reference_kwargs(name)), rel=1e-10)
    model.recommend(0, model.user_items[0], N=3)
    coo = model.user_items.tocoo()
    assert model.forget(coo.row[:2], coo.col[:2]).n_removed == 2


class Interrupt:
    """Replaces a kernel; raises KeyboardInterrupt on call ``at`` (1-based)."""

    def __init__(self, monkeypatch, name, at):
        self.real, self.at, self.calls = getattr(_als, name), at, 0
        monkeypatch.setattr(_als, name, self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.real(*args, **kwargs)


# ------------------------------------------------------------------ fit

@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_callback_raising_leaves_the_sweeps_done(objective_name, exc):
    R = data()

    def stop_after_third(iteration, seconds, loss):
        if iteration == 2:
            raise exc("stop")

    model = estimator(objective_name)
    with pytest.raises(exc):
        model.fit(R, show_progress=False, callback=stop_after_third)
    three = estimator(objective_name, iterations=3).fit(R, show_progress=False)
    assert np.array_equal(model.user_factors, three.user_factors)
    assert np.array_equal(model.item_factors, three.item_factors)
    check_usable(model, objective_name, R)


def test_interrupted_fit_continues_to_the_uninterrupted_result():
    R = data(1)
    full = estimator("implicit", iterations=6).fit(R, show_progress=False)

    def stop(iteration, seconds, loss):
        if iteration == 1:
            raise KeyboardInterrupt

    model = estimator("implicit", iterations=6)
    with pytest.raises(KeyboardInterrupt):
        model.fit(R, show_progress=False, callback=stop)
    model.iterations = 4
    model.fit(R, show_progress=False, warm_start=True)
    assert np.array_equal(model.user_factors, full.user_factors)
    assert np.array_equal(model.item_factors, full.item_factors)


@pytest.mark.parametrize("at", [1, 2, 3, 4])
def test_interrupt_between_half_sweeps(monkeypatch, at):
    """Call ``at`` of the row-solve kernel never starts: the model holds the
    ``at - 1`` half-sweeps before it, each complete."""
    R = data(2)
    expected = estimator("implicit", iterations=0).fit(R, show_progress=False)
    rows = {"users": np.arange(R.shape[0]), "items": np.arange(R.shape[1])}
    for half in range(at - 1):
        side = ("users", "items")[half % 2]
        objective.solve_rows(expected.objective, expected.state.data, expected.user_factors,
                             expected.item_factors, side, rows[side], use_cg=False,
                             cg_steps=3, num_threads=2)
    model = estimator("implicit")
    Interrupt(monkeypatch, "solve_cholesky", at)
    with pytest.raises(KeyboardInterrupt):
        model.fit(R, show_progress=False)
    monkeypatch.undo()
    assert np.array_equal(model.user_factors, expected.user_factors)
    assert np.array_equal(model.item_factors, expected.item_factors)
    check_usable(model, "implicit", R)


def test_interrupt_while_installing_keeps_the_previous_model(monkeypatch):
    R1, R2 = data(3), data(4, n_users=25, n_items=20)
    model = estimator("explicit").fit(R1, show_progress=False)
    model.metadata["history"] = [{"digest": "x"}]
    before = snapshot(model)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(state, "TrainingData", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.fit(R2, show_progress=False)
    monkeypatch.undo()
    assert same(before, snapshot(model))
    assert model.metadata["history"] == [{"digest": "x"}]
    check_usable(model, "explicit", R1)


def test_interrupt_between_the_assignments_of_install(monkeypatch):
    """New data installed, old factors still there: fit puts the old data back."""
    armed = []
    assign = state.ModelState.__setattr__

    def one_interrupt(self, name, value):
        if armed and name == "user_factors":
            armed.clear()
            raise KeyboardInterrupt
        assign(self, name, value)

    monkeypatch.setattr(state.ModelState, "__setattr__", one_interrupt)
    R1, R2 = data(5), data(6, n_users=22, n_items=17)
    model = fu.ImplicitALS(factors=3, iterations=2, dtype=np.float64, random_state=1,
                           use_cg=False, regularization=0.1, alpha=2.0)
    model.fit(R1, show_progress=False)
    before = snapshot(model)
    armed.append(True)
    with pytest.raises(KeyboardInterrupt):
        model.fit(R2, show_progress=False)
    assert same(before, snapshot(model))
    check_usable(model, "implicit", R1)


def test_unfitted_model_interrupted_before_install_stays_unfitted(monkeypatch):
    model = estimator("implicit")
    monkeypatch.setattr(state, "TrainingData", lambda *a: (_ for _ in ()).throw(
        KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        model.fit(data(), show_progress=False)
    assert not model.is_fitted
    with pytest.raises(fu.NotFittedError):
        model.certificate()


# ------------------------------------------------------------------ forget and partial_fit

@pytest.mark.parametrize("operation", ["forget_users", "forget_items", "partial_fit"])
@pytest.mark.parametrize("at", [1, 4])
def test_forget_and_partial_fit_are_all_or_nothing(monkeypatch, objective_name, operation,
                                                   at):
    R = data(8)
    model = estimator(objective_name, iterations=10).fit(R, show_progress=False)
    history = list(model.metadata.get("history", []))
    before = snapshot(model)
    if operation == "partial_fit":
        delta = sp.csr_matrix(([2.0, 1.0], ([3, R.shape[0]], [R.shape[1], 0])),
                              shape=(R.shape[0] + 1, R.shape[1] + 1))
        run = lambda: model.partial_fit(delta, tolerance=1e-4, max_sweeps=2000)  # noqa: E731
    else:
        ids = [1, 2] if operation == "forget_users" else [0, 4]
        run = lambda: getattr(model, operation)(ids, tolerance=1e-4, max_sweeps=2000)  # noqa: E731
    counter = Interrupt(monkeypatch, "solve_cholesky", at)
    with pytest.raises(KeyboardInterrupt):
        run()
    assert counter.calls == at  # the interrupt did come mid-operation
    monkeypatch.undo()
    assert same(before, snapshot(model))
    assert model.metadata.get("history", []) == history
    report = run()  # and the model is fine for the operation itself
    assert report.converged


# ------------------------------------------------------------------ save killed

CHILD = r"""
import hashlib, sys
import numpy as np, scipy.sparse as sp
import fastunlearn as fu

target = sys.argv[1]
models = []
for seed in (1, 2):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((100_000, 32)), rng.standard_normal((500, 32))
    rows, cols = rng.integers(100_000, size=100_000), rng.integers(500, size=100_000)
    R = sp.csr_matrix((np.ones(100_000), (rows, cols)), shape=(100_000, 500))
    models.append(fu.ImplicitALS.from_factors(X, Y, R, dtype=np.float64))
digests = [hashlib.sha256(m.user_factors.tobytes()).hexdigest() for m in models]
print("ready", *digests, flush=True)
i = 0
while True:
    print("saving", i, flush=True)
    fu.save(models[i % 2], target)
    print("saved", i, flush=True)
    i += 1
"""


def temporaries(directory):
    return [n for n in os.listdir(directory) if n.endswith(".fastunlearn-tmp")]


def wait_until(condition, child, seconds=120):
    """Poll ``condition`` (no sleeping: the moments it waits for are short);
    fail, rather than hang, if the saving process exits or time runs out."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert child.poll() is None, "the saving process exited"
        assert time.monotonic() < deadline, "the saving process never got there"


def read_lines(child, *prefixes):
    for prefix in prefixes:
        line = child.stdout.readline()
        assert line.startswith(prefix), (prefix, line)


@pytest.mark.parametrize("kill_when", ["first_write", "second_write_start",
                                       "second_write_half", "between_saves"])
def test_sigkill_during_save_never_leaves_a_partial_target(tmp_path, kill_when):
    """Killed while the first save writes: no target.  Killed while the
    second writes (as it starts, half-way) or between saves: the target is
    one of the two models, whole."""
    target = tmp_path / "model.npz"
    env = {**os.environ, "PYTHONPATH": PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # cwd=tmp_path: "-c" puts the cwd first on sys.path (see test_determinism)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(target)], stdout=subprocess.PIPE,
                             text=True, env=env, cwd=tmp_path)
    try:
        digests = child.stdout.readline().split()[1:]
        assert len(digests) == 2
        if kill_when == "first_write":
            wait_until(lambda: temporaries(tmp_path), child)
        elif kill_when == "second_write_start":
            read_lines(child, "saving 0", "saved 0", "saving 1")
            wait_until(lambda: temporaries(tmp_path), child)
        elif kill_when == "second_write_half":
            read_lines(child, "saving 0", "saved 0")
            size = target.stat().st_size

            def half_written():
                names = temporaries(tmp_path)
                try:
                    return bool(names) and (tmp_path / names[0]).stat().st_size > size // 2
                except FileNotFoundError:  # renamed in between: look again
                    return False

            wait_until(half_written, child)
        else:
            read_lines(child, "saving 0", "saved 0", "saving 1", "saved 1")
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    if kill_when == "first_write":
        assert not target.exists()  # never a partial file
        assert temporaries(tmp_path)  # the killed save's temporary was left behind
    else:
        loaded = fu.load(target)  # complete, checksums and all
        assert hashlib.sha256(loaded.user_factors.tobytes()).hexdigest() in digests
    # the next save removes what killed saves left, which may hold erased data
    fu.save(fu.ImplicitALS.from_factors(np.ones((2, 1)), np.ones((2, 1)), sp.eye(2)), target)
    assert os.listdir(tmp_path) == ["model.npz"]


def test_save_does_not_remove_a_temporary_another_save_is_writing(tmp_path):
    import fcntl

    busy = tmp_path / ".model.npz.abc.fastunlearn-tmp"
    with open(busy, "wb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # as a live save holds it
        fu.save(fu.ImplicitALS.from_factors(np.ones((2, 1)), np.ones((2, 1)), sp.eye(2)),
                tmp_path / "model.npz")
        assert busy.exists()
    fu.save(fu.load(tmp_path / "model.npz"), tmp_path / "model.npz")
    assert not busy.exists()  # its writer is gone now
