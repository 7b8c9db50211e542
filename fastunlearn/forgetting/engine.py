"""The phases of a request, written once over a :class:`Backend`: the
local phase, the washout, masked sweeps, the switch to full sweeps and the
full strategy (:func:`reconverge`), and the all-or-nothing driver around
them (:func:`run`); docs/design.md, sections 4-6.

A backend is where the factors and the data live: memory
(:class:`~fastunlearn.forgetting.local.LocalBackend`) or a Dask cluster
(``fastunlearn.dask``).  It knows how to solve, measure and bound rows;
the engine decides which phase runs when, so that every backend forgets
the same way.
"""
import contextlib
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .. import objective as obj
from ..config import single_threaded_blas
from .options import PHASES

SIDES = ("users", "items")


class Backend:
    """What the engine drives.  One instance serves one request.

    The model
        ``spec`` (:class:`~fastunlearn.spec.ModelSpec`), ``metadata`` (the
        model's dict, for the receipt history), ``pending`` ((entries,
        requests) not yet washed out; settable), ``washouts`` (relaxed
        washouts since the last fit or refit; settable), ``washout_policy``
        (one of :data:`~.options.WASHOUT_POLICIES`), ``shape`` (users, items),
        ``nnz`` (stored entries), ``n_rows`` (users plus items),
        ``stored(users, items)`` (a boolean mask of the pairs that are
        stored), ``entries(ids, side)`` ((users, items) of every stored
        entry of those users or items, validated as
        :func:`~.requests.request_rows`), ``user_items()`` (the retained
        data as CSR), ``sweep()`` (one ALS iteration
        with the model's own solver, the fit loop's in
        :mod:`fastunlearn.training`; returns the row solves that met a
        singular system).
    The change, staged before the request runs
        ``stage_removal(users, items)``, ``stage_addition(merged, shape)``
        (the whole data after adding, of the new ``shape``),
        ``stage_settle()`` (no change to the data).
    The request
        ``before()`` -> (loss, certificate) of the model as it is;
        ``apply(users, tol, track_loss)`` makes the staged change, with an
        undo, and aims the bounds at ``tol``; ``track_loss``: the masked
        phases follow without a washout, so the loss is kept current from
        ``users``' terms;
        ``local(users, items, exact)`` solves those rows, exactly (bounds
        kept) or by the model's own solver (a washout follows);
        ``washout(plan)`` runs a :class:`~.options.Washout`'s over-relaxed
        sweeps, one plain sweep and a measurement of proven bounds;
        ``masked_pass(side)`` checks the rows of ``side`` whose bound is
        over the tolerance and solves those really over it, returning how
        many it solved;
        ``full_sweep()`` solves every row exactly and measures;
        ``measure()`` measures every row exactly;
        ``certificate()``, ``loss()`` of the factors now;
        ``commit()`` makes the result the model's, ``rollback(error)`` puts
        the model back (and may raise a clearer error), ``release()`` wipes
        what the request kept of the removed data, whatever happened.
        ``rows_solved`` counts the rows solved by phase.
    """

    def __init__(self):
        self.rows_solved = dict.fromkeys(PHASES, 0)


@dataclass(frozen=True)
class Outcome:
    """What one run of the engine did (the common part of every report)."""

    rows_solved: dict
    sweeps: int
    loss_before: float
    loss_after: float
    certificate_before: obj.Certificate
    certificate_after: obj.Certificate
    tolerance: float

    @property
    def converged(self):
        return self.certificate_after.max_row <= self.tolerance


def run(backend, users, items, options, relaxed, desc, changed=True):
    """Make the staged change and re-converge, all or nothing.

    ``users`` and ``items`` are the rows whose entries change; ``relaxed``
    the :class:`~.options.Washout` to run (None: no washout now);
    ``changed=False``: nothing to do but report.  Returns an :class:`Outcome`.
    """
    with single_threaded_blas():
        loss_before, cert_before = backend.before()
        tol = cert_before.max_row if options.tolerance is None else options.tolerance
        if not changed:
            return Outcome(dict.fromkeys(PHASES, 0), 0, loss_before, loss_before, cert_before,
                           cert_before, tol)
        users, items = np.unique(users), np.unique(items)
        # no tqdm at all when hidden: even a disabled bar costs ~70 us a request
        bar = tqdm(total=options.max_sweeps, desc=desc) if options.show_progress \
            else contextlib.nullcontext()
        try:
            with bar as progress:
                backend.apply(users, tol,
                              track_loss=relaxed is None and options.strategy != "full")
                sweeps = reconverge(backend, users, items, tol, relaxed, options, progress)
                cert_after, loss_after = backend.certificate(), backend.loss()
                if refit_certifies(relaxed, options):
                    tol = max(tol, cert_after.max_row)
                backend.commit()
        except BaseException as error:
            backend.rollback(error)
            raise
        finally:
            backend.release()
    return Outcome(dict(backend.rows_solved), sweeps, loss_before, loss_after, cert_before,
                   cert_after, tol)


def refit_certifies(relaxed, options):
    """Whether the washout ``relaxed`` is a refit whose own certificate is
    the request's target: with the default tolerance, a refit is held to a
    retrain's convergence, not pushed past it (docs/design.md, section 5)."""
    return relaxed is not None and relaxed.refit and options.tolerance is None


def reconverge(backend, users, items, tol, relaxed, options, progress=None):
    """The phases after the data changed (docs/design.md, section 4);
    returns the number of masked or full sweeps.

    The certificate left is the backend's proven bound unless
    ``exact_certificate`` is set, the bound misses ``tol``, or the run
    ended with full sweeps: then it is measured.  After a refit under the
    default tolerance no sweep follows (:func:`refit_certifies`).
    """
    if refit_certifies(relaxed, options):
        backend.washout(relaxed)
        if options.exact_certificate and not backend.certificate().exact:
            backend.measure()
        return 0
    if options.strategy == "full":
        if relaxed is None:
            backend.measure()  # the kept measures predate the change
        else:
            backend.washout(relaxed)
        return full_sweeps(backend, tol, options.max_sweeps, progress)
    backend.local(users, items, exact=relaxed is None)
    if relaxed is not None:
        backend.washout(relaxed)
    sweeps = solved = 0
    while sweeps < options.max_sweeps:
        # past a full sweep's rows, full sweeps cost no more and certify
        if solved >= backend.n_rows:
            backend.measure()
            return sweeps + full_sweeps(backend, tol, options.max_sweeps - sweeps, progress)
        now = sum(backend.masked_pass(side) for side in SIDES)
        solved += now
        sweeps += 1
        if progress is not None:
            progress.update(1)
        if not now:
            break
    certificate = backend.certificate()
    if not certificate.exact and (options.exact_certificate or certificate.max_row > tol):
        backend.measure()
    return sweeps


def full_sweeps(backend, tol, max_sweeps, progress=None):
    """Plain Unlearn-ALS: exact full sweeps until the certificate is within
    ``tol`` (measured first where a bound misses it)."""
    certificate = backend.certificate()
    if not certificate.exact and certificate.max_row > tol:
        backend.measure()
    sweeps = 0
    while sweeps < max_sweeps and backend.certificate().max_row > tol:
        backend.full_sweep()
        sweeps += 1
        if progress is not None:
            progress.update(1)
    return sweeps
