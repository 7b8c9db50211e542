"""``settle()``'s report and record, checked against the NumPy reference.
(Whether it removes the forgotten pairs' trace is tests/test_completeness.py's
job.)  A settle runs the washout of docs/design.md, section 5: ``washout``
over-relaxed sweeps (default ``WASHOUT_SWEEPS``) and one plain sweep over
every row, then sweeps until the tolerance holds.
"""
import re
import time

import numpy as np
import pytest

import fastunlearn as fu
import reference as ref
from conftest import reference_kwargs
from test_forgetting import fitted, random_pairs


def reference_loss(model):
    return ref.loss(model.user_items, model.user_factors, model.item_factors,
                    **reference_kwargs("implicit"))


def reference_certificate(model):
    return ref.certificate(model.user_items, model.user_factors, model.item_factors,
                           **reference_kwargs("implicit"))


def pending_model(seed):
    model = fitted("implicit", seed=seed)
    report = model.forget(*random_pairs(model, 4, seed=seed), washout=0)
    assert not report.settled and model.pending == {"entries": 4, "requests": 1}
    return model


@pytest.mark.parametrize("washout", [None, 1, 3])
def test_settle_report_accounts_for_its_washout(washout):
    model = pending_model(30)
    n_rows = sum(model.user_items.shape)
    loss_before, cert_before = reference_loss(model), reference_certificate(model)
    options = {} if washout is None else {"washout": washout}
    start = time.perf_counter()
    report = model.settle(**options)
    elapsed = time.perf_counter() - start

    relaxed = fu.forgetting.WASHOUT_SWEEPS if washout is None else washout
    assert report.entries == 4 and report.requests == 1
    assert set(report.rows_solved_by_phase) == {"washout", "sweeps"}
    # the relaxed sweeps and the plain one, each over every row
    assert report.rows_solved_by_phase["washout"] == (relaxed + 1) * n_rows
    assert report.rows_solved == sum(report.rows_solved_by_phase.values())
    assert isinstance(report.sweeps, int) and report.sweeps >= 0
    assert report.loss_before == pytest.approx(loss_before, rel=1e-9)
    assert report.loss_after == pytest.approx(reference_loss(model), rel=1e-9)
    assert report.loss_after < report.loss_before
    # the default tolerance is the certificate before; both exact or a bound
    assert report.certificate_before.max_row >= cert_before[1] * (1 - 1e-6)
    assert report.tolerance == report.certificate_before.max_row
    assert report.certificate_after.max_row >= reference_certificate(model)[1] * (1 - 1e-6)
    assert report.converged == (report.certificate_after.max_row <= report.tolerance)
    assert report.converged
    assert 0 <= report.seconds <= elapsed


def test_settle_with_nothing_pending_changes_nothing():
    model = fitted("implicit", seed=31)
    model.forget(*random_pairs(model, 2, seed=31))  # settled by its own washout
    assert model.pending == {"entries": 0, "requests": 0}
    X, Y = model.user_factors.copy(), model.item_factors.copy()
    history = list(model.metadata["history"])
    report = model.settle()
    assert report.entries == 0 and report.requests == 0 and report.rows_solved == 0
    assert report.rows_solved_by_phase == {"washout": 0, "sweeps": 0}
    assert report.loss_before == report.loss_after == pytest.approx(reference_loss(model))
    np.testing.assert_array_equal(model.user_factors, X)
    np.testing.assert_array_equal(model.item_factors, Y)
    assert model.metadata["history"] == history


def test_settle_records_itself_in_a_history_the_caller_replaced():
    model = pending_model(32)
    model.metadata = {}
    report = model.settle()
    assert [h["event"] for h in model.metadata["history"]] == ["settle"]
    assert model.metadata["history"][0]["entries"] == report.entries == 4


@pytest.mark.parametrize("show_progress", [False, True])
def test_settle_progress_bar_only_when_asked(capsys, show_progress):
    model = pending_model(33)
    capsys.readouterr()
    assert model.settle(show_progress=show_progress).converged
    # tqdm starts the bar (and each redraw) with its description
    found = re.search(r"(^|\r)Settling: ", capsys.readouterr().err)
    assert (found is not None) == show_progress
