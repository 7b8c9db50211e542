"""The engine's phases over a scripted backend (docs/design.md, sections 4-6):
how many masked sweeps run and are reported, the switch to full sweeps
once masked solves add up to a full sweep's rows, ``max_sweeps`` over
masked and full sweeps together, one progress step per sweep, and when
the certificate is measured.  The backend says how many rows each masked
pass solves and what each full sweep leaves, so every count is known by
hand."""
import pytest

from fastunlearn.forgetting import Backend, ForgetOptions, Washout, reconverge, run
from fastunlearn.objective import Certificate

TOL = 0.1


class Scripted(Backend):
    """A backend of ``n_rows`` rows whose masked passes (one a side per
    sweep) solve ``passes[j]`` rows and whose full sweeps leave
    ``after_full[j]`` as the certificate; it records what it was asked."""

    def __init__(self, n_rows, passes=(), after_full=(), bound=0.05, exact=False):
        super().__init__()
        self.n_rows = n_rows
        self.passes, self.after_full = list(passes), list(after_full)
        self.max_row, self.exact = bound, exact
        self.calls = []

    def local(self, users, items, exact):
        self.calls.append(("local", exact))

    def washout(self, plan):
        self.calls.append(("washout", plan.sweeps))
        self.exact = False

    def masked_pass(self, side):
        self.calls.append(("masked", side))
        return self.passes.pop(0) if self.passes else 0

    def measure(self):
        self.calls.append("measure")
        self.exact = True

    def full_sweep(self):
        self.calls.append("full")
        self.max_row, self.exact = self.after_full.pop(0), True

    def certificate(self):
        return Certificate(self.max_row, self.max_row, self.max_row, self.max_row, self.exact)

    def count(self, what):
        return sum(1 for call in self.calls if call == what or call[0] == what)


class Steps:
    """A progress bar that counts its steps."""

    def __init__(self):
        self.n = 0

    def update(self, n=1):
        self.n += n


def run_phases(backend, relaxed=None, **options):
    steps = Steps()
    sweeps = reconverge(backend, [0], [0], TOL, relaxed, ForgetOptions(**options), steps)
    return sweeps, steps.n


def test_masked_sweeps_run_until_a_pass_solves_nothing_and_are_counted():
    # sweep 1 solves 3 + 2 rows, sweep 2 one, sweep 3 none: three sweeps
    backend = Scripted(100, passes=[3, 2, 1, 0, 0, 0])
    assert run_phases(backend) == (3, 3)
    assert backend.count("masked") == 6
    assert backend.calls[0] == ("local", True)
    assert backend.count("full") == 0 and backend.count("measure") == 0  # the bound is kept


def test_max_sweeps_bounds_the_masked_sweeps():
    backend = Scripted(100, passes=[1] * 50)
    assert run_phases(backend, max_sweeps=3) == (3, 3)
    assert backend.count("masked") == 6
    backend = Scripted(100, passes=[1] * 50)
    assert run_phases(backend, max_sweeps=0) == (0, 0)
    assert backend.count("masked") == 0


def test_masked_solves_that_add_up_to_a_sweeps_rows_switch_to_full_sweeps():
    # 5 + 5 rows of 10 in the first masked sweep: then full sweeps until the
    # certificate is within the tolerance (two here)
    backend = Scripted(10, passes=[5, 5, 1, 1], after_full=[0.5, 0.05], bound=0.5)
    assert run_phases(backend) == (3, 3)
    assert backend.count("masked") == 2 and backend.count("full") == 2
    assert backend.calls.index("measure") < backend.calls.index("full")  # bounds predate them
    # one row fewer: another masked sweep, which solves nothing
    backend = Scripted(11, passes=[5, 5, 0, 0], after_full=[0.5, 0.05], bound=0.5)
    assert run_phases(backend) == (2, 2)
    assert backend.count("full") == 0
    # the rows add up over sweeps: 3 + 3, then 2 + 2 of 10
    backend = Scripted(10, passes=[3, 3, 2, 2, 1, 1], after_full=[0.05], bound=0.5)
    assert run_phases(backend) == (3, 3)
    assert backend.count("masked") == 4 and backend.count("full") == 1


def test_max_sweeps_counts_masked_and_full_sweeps_together():
    backend = Scripted(10, passes=[6, 4], after_full=[0.5] * 20, bound=0.5)
    assert run_phases(backend, max_sweeps=4) == (4, 4)
    assert backend.count("masked") == 2 and backend.count("full") == 3


@pytest.mark.parametrize("relaxed", [None, Washout(2, 1.7)])
def test_the_full_strategy_runs_full_sweeps_to_the_tolerance_within_max_sweeps(relaxed):
    backend = Scripted(10, after_full=[0.5, 0.3, 0.05, 0.01], bound=0.5)
    assert run_phases(backend, relaxed, strategy="full") == (3, 3)
    assert backend.count("masked") == 0 and backend.count("local") == 0
    # the kept bounds predate the change: measured first, or washed out
    assert backend.calls[0] == ("measure" if relaxed is None else ("washout", 2))
    backend = Scripted(10, after_full=[0.5] * 10, bound=0.5)
    assert run_phases(backend, relaxed, strategy="full", max_sweeps=2) == (2, 2)


@pytest.mark.parametrize("bound, exact_certificate, measured", [
    (0.05, False, False),  # a proven bound within the tolerance is the certificate
    (TOL, False, False),  # on it is within it (converged is max_row <= tolerance)
    (0.05, True, True),  # unless an exact one is asked for
    (0.5, False, True),  # a bound that misses the tolerance is measured
])
def test_the_certificate_is_measured_when_asked_or_when_the_bound_misses(
        bound, exact_certificate, measured):
    backend = Scripted(100, passes=[0, 0], bound=bound)
    run_phases(backend, exact_certificate=exact_certificate)
    assert (backend.count("measure") == 1) is measured
    assert backend.certificate().exact is measured


def test_a_washout_replaces_the_exact_local_solves_and_runs_before_the_masked_sweeps():
    backend = Scripted(100, passes=[1, 0, 0, 0])
    run_phases(backend, Washout(3, 1.9))
    assert backend.calls[:2] == [("local", False), ("washout", 3)]
    assert backend.count("masked") == 4


class Request(Scripted):
    """A scripted backend for a whole request: the model before it, what it
    is asked to apply, commit, roll back and release."""

    def __init__(self, *args, fail=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail = fail

    def before(self):
        self.calls.append("before")
        return 2.5, Certificate(0.25, 0.2, 0.2, 0.125, True)

    def apply(self, users, tol, track_loss):
        self.calls.append(("apply", list(users), tol, track_loss))

    def masked_pass(self, side):
        if self.fail is not None:
            raise self.fail
        return super().masked_pass(side)

    def loss(self):
        return 1.5

    def commit(self):
        self.calls.append("commit")

    def rollback(self, error):
        self.calls.append(("rollback", error))

    def release(self):
        self.calls.append("release")


def test_a_request_that_changes_nothing_reports_the_model_as_it_is():
    backend = Request(10)
    outcome = run(backend, [], [], ForgetOptions(), None, "Forgetting", changed=False)
    assert backend.calls == ["before"]
    assert outcome.sweeps == 0 and outcome.rows_solved == {"local": 0, "washout": 0,
                                                           "sweeps": 0}
    assert outcome.loss_before == outcome.loss_after == 2.5
    assert outcome.certificate_before == outcome.certificate_after
    assert outcome.tolerance == 0.2  # the certificate before, when none is given
    assert outcome.converged


@pytest.mark.parametrize("relaxed, strategy, track_loss", [
    (None, "masked", True), (Washout(2, 1.7), "masked", False), (None, "full", False)])
def test_a_request_applies_its_rows_once_each_and_commits(relaxed, strategy, track_loss):
    backend = Request(100, passes=[2, 1, 0, 0], bound=0.01)
    outcome = run(backend, [3, 1, 3], [2, 2], ForgetOptions(strategy=strategy, tolerance=0.05),
                  relaxed, "Forgetting")
    assert backend.calls[1] == ("apply", [1, 3], 0.05, track_loss)
    assert backend.calls[-2:] == ["commit", "release"]
    assert outcome.tolerance == 0.05 and outcome.loss_before == 2.5
    assert outcome.loss_after == 1.5 and outcome.certificate_after.max_row == 0.01
    assert outcome.sweeps == (2 if strategy == "masked" else 0)


def test_a_failing_request_is_rolled_back_released_and_raised():
    error = RuntimeError("solver failed")
    backend = Request(100, passes=[1, 1], fail=error)
    with pytest.raises(RuntimeError, match="solver failed"):
        run(backend, [0], [0], ForgetOptions(), None, "Forgetting")
    assert "commit" not in backend.calls
    assert backend.calls[-2:] == [("rollback", error), "release"]


def test_forgetting_nothing_reports_no_sweeps():
    from test_forgetting import fitted

    model = fitted("implicit", seed=12)
    report = model.forget([], [])
    assert report.sweeps == 0 and report.n_removed == 0
    assert model.settle().sweeps == 0  # nothing pending


@pytest.mark.parametrize("strategy", ["masked", "full"])
def test_the_progress_bar_counts_the_sweeps_out_of_max_sweeps(capsys, strategy):
    from test_forgetting import fitted, random_pairs

    model = fitted("implicit", seed=26)
    users, items = random_pairs(model, 6, seed=26)
    capsys.readouterr()
    report = model.forget(users, items, strategy=strategy, tolerance=1e-6, washout=0,
                          max_sweeps=40, show_progress=True)
    assert report.sweeps >= 1
    last = capsys.readouterr().err.rstrip().split("\r")[-1]
    assert last.startswith("Forgetting: ") and f" {report.sweeps}/40 " in last
