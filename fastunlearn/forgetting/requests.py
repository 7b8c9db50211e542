"""The requests: the changes to the data (removal, addition, none), the
one driver every request goes through (:func:`_run`) and the entry points
(:func:`forget_pairs`, :func:`settle`, :func:`add_interactions`).

They take the estimator for its hyperparameters, ``objective``, ``state``
(:class:`~fastunlearn.state.ModelState`: factors, data, kept measures,
pending removals) and ``metadata``, and change only the state and the
metadata's history.
"""
import contextlib
import time
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from .. import objective as obj
from ..config import effective_n_threads, single_threaded_blas
from ..validation import check_ids, check_user_items
from .engine import _FactorUndo, _Reconverger, threads_for
from .options import PHASES, WASHOUT_SWEEPS
from .reports import (
    ForgetReport,
    PartialFitReport,
    SettleReport,
    make_receipt,
    unique_pairs,
)

# ------------------------------------------------------------------ requests

def pairs_from_request(model, userids, itemids):
    """Validated (users, items) int64 arrays from paired ids or a sparse matrix."""
    n_users, n_items = model.state.data.shape
    if sp.issparse(userids):
        if itemids is not None:
            raise ValueError("pass either a sparse matrix of entries or userids and itemids")
        if userids.shape != (n_users, n_items):
            raise ValueError(f"the matrix of entries to forget has shape {userids.shape}, "
                             f"the model has {(n_users, n_items)}")
        coo = userids.tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64)
    users, _ = check_ids(userids, n_users, "userids")
    items, _ = check_ids(itemids, n_items, "itemids")
    if users.shape != items.shape:
        raise ValueError(f"userids and itemids must pair up, got {users.size} and {items.size}")
    return users, items


def _row_entries(indptr, rows):
    """For the stored entries of ``rows``: the position in ``rows`` of each
    entry's row and the entry's position in the CSR arrays (vectorised)."""
    starts = indptr[rows].astype(np.int64)
    counts = indptr[rows + 1].astype(np.int64) - starts
    owner = np.repeat(np.arange(len(rows)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, np.repeat(starts, counts) + offsets


def entries_of(model, ids, side):
    """All stored (user, item) pairs of the given users (or items)."""
    data = model.state.data
    n = data.shape[0 if side == "users" else 1]
    if sp.issparse(ids):
        coo = ids.tocoo()
        ids = coo.row if side == "users" else coo.col
    rows, _ = check_ids(ids, n, "userids" if side == "users" else "itemids")
    rows = np.unique(rows)
    indptr, indices, _ = data.side(side).arrays()
    owner, flat = _row_entries(indptr, rows)
    owner, other = rows[owner], indices[flat].astype(np.int64)
    return (owner, other) if side == "users" else (other, owner)


class _Removal:
    """Stored entries leaving both orientations, in place, with an undo."""

    def __init__(self, data, pos_u, pos_i):
        self.data, self.pos_u, self.pos_i = data, pos_u, pos_i
        self.undo_u = self.undo_i = None

    def existing(self, users):
        return users

    def measures(self, before):
        return before

    def apply(self, state):
        self.undo_u = self.data.by_user.remove(np.sort(self.pos_u))
        self.undo_i = self.data.by_item.remove(np.sort(self.pos_i))

    def revert(self, state):
        if self.undo_i is not None:
            self.data.by_item.restore(self.undo_i)
        if self.undo_u is not None:
            self.data.by_user.restore(self.undo_u)

    def wipe(self):
        for record in (self.undo_u, self.undo_i):
            if record is not None:
                record.wipe()


class _Addition:
    """Entries (and new users or items) added: the state grows (factors of
    ``k`` columns in ``dtype``, zero for the new rows)."""

    def __init__(self, state, merged, shape, k, dtype):
        self.old = state.snapshot()
        self.n_users = state.data.shape[0]
        self.merged, self.shape, self.k, self.dtype = merged, shape, k, dtype

    def existing(self, users):
        return users[users < self.n_users]

    def measures(self, before):
        """``before`` padded for the new rows (zero factors, zero gradient
        bounds: their entries make them affected, so they are solved)."""
        def pad(values, n):
            return np.concatenate([values, np.zeros(n - len(values))])

        n_users, n_items = self.shape
        return replace(before, user_norms=pad(before.user_norms, n_users),
                       item_norms=pad(before.item_norms, n_items),
                       sq_users=pad(before.sq_users, n_users),
                       sq_items=pad(before.sq_items, n_items))

    def apply(self, state):
        X_old, Y_old = self.old.user_factors, self.old.item_factors
        X = np.zeros((self.shape[0], self.k), dtype=self.dtype)
        Y = np.zeros((self.shape[1], self.k), dtype=self.dtype)
        X[:len(X_old)], Y[:len(Y_old)] = X_old, Y_old
        state.install(X, Y, self.merged)

    def revert(self, state):
        state.restore(self.old)

    def wipe(self):
        pass


class _NoChange:
    """:meth:`settle`: the data stays, only the factors move."""

    def existing(self, users):
        return users

    def measures(self, before):
        return before

    def apply(self, state):
        pass

    def revert(self, state):
        pass

    def wipe(self):
        pass


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


def _run(model, change, users, items, options, relaxed, desc):
    """Apply ``change`` to the model's state, then re-converge: the local
    phase on ``users`` and ``items`` (the rows whose entries changed), a
    washout with ``relaxed`` over-relaxed sweeps unless None, then masked
    (or full) sweeps.  All or nothing.  Returns an :class:`Outcome`.
    """
    state, objective = model.state, model.objective
    threads = effective_n_threads(model.num_threads)  # the kernels' count, as fit's
    with single_threaded_blas():
        before = state.measures(objective, threads)
        loss_before, cert_before = before.loss(objective, state.data), before.certificate()
        tol = cert_before.max_row if options.tolerance is None else options.tolerance
        if change is None:  # nothing to do: a report, no change
            return Outcome(dict.fromkeys(PHASES, 0), 0, loss_before, loss_before, cert_before,
                            cert_before, tol)
        affected = np.unique(users)
        # the masked engine updates the loss from the affected users' old
        # terms; a washout measures everything afresh and needs none
        old_terms = None if relaxed is not None else \
            _user_terms(objective, state, change.existing(affected), threads, options.strategy)
        undo = _FactorUndo()
        try:
            change.apply(state)
            rows_solved, sweeps, cert_after, loss_after = _reconverge(
                model, change.measures(before), affected, np.unique(items), old_terms, tol,
                relaxed, options, threads, undo, desc)
        except BaseException:
            undo.roll_back(state)
            change.revert(state)
            raise
        finally:
            change.wipe()
            undo.wipe()
    return Outcome(rows_solved, sweeps, loss_before, loss_after, cert_before, cert_after, tol)


def _user_terms(objective, state, users, threads, strategy):
    """Data term of the loss over the stored entries of ``users``, now: the
    masked engine updates the loss from it (the full strategy measures)."""
    if strategy == "full":
        return None
    return obj.data_loss(objective, state.data, "users", users,
                         state.user_factors[users], state.item_factors,
                         num_threads=threads_for(state.data, "users", users, threads))


def _reconverge(model, before, users, items, old_terms, tol, relaxed, options, threads, undo,
                desc):
    """Local phase, washout, then masked (or full) sweeps; returns (rows,
    sweeps, cert, loss).

    ``users`` and ``items`` are the distinct rows whose entries changed,
    ``old_terms`` the data term of those users before the change.  The
    certificate after is the engine's proven upper bound unless
    ``exact_certificate`` is set, the bound misses the tolerance, or the
    run ended with full sweeps, in which case it is measured exactly.
    """
    state, objective = model.state, model.objective
    solver = (bool(model.use_cg), int(model.cg_steps))
    # no tqdm at all when hidden: even a disabled bar costs ~70 us a request
    bar = tqdm(total=options.max_sweeps, desc=desc) if options.show_progress \
        else contextlib.nullcontext()
    with bar as progress:
        engine = _Reconverger(objective, state, before, threads, tol, options.max_sweeps,
                              progress, undo)
        if options.strategy == "full":
            sweeps, after = engine.run_full(engine.washout(relaxed, solver))
        else:
            if relaxed is None:
                engine.data_changed(users, old_terms)
            engine.local(users, items, None if relaxed is None else solver)
            engine.washout(relaxed, solver)
            sweeps, after = engine.run()
            if after is None:
                after = engine.result()
                if options.exact_certificate or after.certificate().max_row > tol:
                    after = obj.measure(objective, state.data, state.user_factors,
                                        state.item_factors, num_threads=threads)
    state.remember(after, (engine.checksums["users"], engine.checksums["items"]))
    return engine.rows_solved, sweeps, after.certificate(), after.loss(objective, state.data)


def forget_pairs(model, users, items, options):
    """Remove stored (user, item) pairs and re-converge; see ``MatrixFactorization.forget``."""
    start = time.perf_counter()
    data = model.state.data
    users, items = unique_pairs(users, items)
    pos_u = data.by_user.positions(users, items)
    if np.any(pos_u < 0):
        keep = check_missing(users, items, pos_u >= 0, options.missing)
        users, items, pos_u = users[keep], items[keep], pos_u[keep]
    pos_i = data.by_item.positions(items, users)
    digest, key = make_receipt(users, items)
    entries, requests = model.state.pending
    if len(users):
        entries, requests = entries + len(users), requests + 1
    relaxed = options.relaxed_sweeps(entries, data.nnz) if len(users) else None
    change = _Removal(data, pos_u, pos_i) if len(users) else None
    outcome = _run(model, change, users, items, options, relaxed, "Forgetting")
    report = removal_report(model, users, items, outcome, options, (digest, key), relaxed,
                            (entries, requests), start)
    model.state.pending = (report.pending_entries, report.pending_requests)
    return report


def check_missing(users, items, stored, missing):
    """``stored`` (which pairs are stored), after raising the error a request
    with pairs that are not gets unless ``missing == "ignore"``."""
    if missing == "raise" and not stored.all():
        bad = np.flatnonzero(~stored)
        raise ValueError(f"{len(bad)} of the {len(users)} pairs to forget are not stored "
                         f"in the model, e.g. (user, item) "
                         f"{list(zip(users[bad[:3]].tolist(), items[bad[:3]].tolist()))}; "
                         "pass missing='ignore' to skip them")
    return stored


def removal_report(model, users, items, outcome, options, receipt, relaxed, pending, start):
    """The :class:`ForgetReport` of removing the pairs ``users, items`` (the
    engine's ``outcome``; ``receipt`` = (digest, key); ``pending`` = entries
    and requests pending with this one, all settled when a washout ran),
    with the receipt added to ``model.metadata``'s history.  The caller
    keeps the report's ``pending_entries`` and ``pending_requests`` as its
    pending count.  Shared by the local and the distributed engines."""
    entries, requests = (0, 0) if relaxed is not None else pending
    digest, key = receipt
    result = ForgetReport(
        n_removed=len(users), users_affected=len(np.unique(users)),
        items_affected=len(np.unique(items)), rows_solved=sum(outcome.rows_solved.values()),
        rows_solved_by_phase=outcome.rows_solved, sweeps=outcome.sweeps,
        seconds=time.perf_counter() - start, loss_before=outcome.loss_before,
        loss_after=outcome.loss_after, certificate_before=outcome.certificate_before,
        certificate_after=outcome.certificate_after, tolerance=outcome.tolerance,
        converged=outcome.converged, strategy=options.strategy, digest=digest,
        receipt_key=key, washout=relaxed or 0, settled=entries == 0,
        pending_entries=entries, pending_requests=requests)
    if len(users):
        model.metadata.setdefault("history", []).append(result.receipt())
    return result


def settle(model, options):
    """Wash out every pending removal; see ``MatrixFactorization.settle``."""
    start = time.perf_counter()
    entries, requests = model.state.pending
    relaxed = change = None
    if entries:
        relaxed = options.washout if isinstance(options.washout, int) and options.washout \
            else WASHOUT_SWEEPS
        change = _NoChange()
    outcome = _run(model, change, np.zeros(0, np.int64), np.zeros(0, np.int64), options,
                   relaxed, "Settling")
    result = SettleReport(
        entries=entries, requests=requests, rows_solved=sum(outcome.rows_solved.values()),
        rows_solved_by_phase={k: outcome.rows_solved[k] for k in ("washout", "sweeps")},
        sweeps=outcome.sweeps, seconds=time.perf_counter() - start,
        loss_before=outcome.loss_before, loss_after=outcome.loss_after,
        certificate_before=outcome.certificate_before,
        certificate_after=outcome.certificate_after, tolerance=outcome.tolerance,
        converged=outcome.converged)
    model.state.pending = (0, 0)
    if entries:
        model.metadata.setdefault("history", []).append(result.record())
    return result


def add_interactions(model, delta, options):
    """Add ``delta`` to the data (growing for new users/items) and re-converge.

    See ``MatrixFactorization.partial_fit``.  Additions leave the pending
    removals as they are; ``washout="auto"`` runs none.
    """
    start = time.perf_counter()
    delta = check_user_items(delta, model.dtype, name="user_items_delta")
    state = model.state
    n_users, n_items = state.data.shape
    shape = (max(n_users, delta.shape[0]), max(n_items, delta.shape[1]))
    # entries concatenated and summed where a pair repeats: sparse "+"
    # would also drop the stored zeros of rows the delta never touches
    old, coo = state.data.user_items().tocoo(), delta.tocoo()
    merged = check_user_items(sp.csr_matrix(
        (np.concatenate([old.data, coo.data]),
         (np.concatenate([old.row, coo.row]), np.concatenate([old.col, coo.col]))),
        shape=shape), model.dtype)
    relaxed = options.washout if options.washout != "auto" and options.washout else None
    change = _Addition(state, merged, shape, model.factors, model.dtype)
    outcome = _run(model, change, coo.row.astype(np.int64), coo.col.astype(np.int64), options,
                   relaxed, "Adding")
    if relaxed is not None:
        state.pending = (0, 0)
    digest, key = make_receipt(coo.row, coo.col)
    entries, requests = state.pending
    return PartialFitReport(
        n_removed=0, users_affected=len(np.unique(coo.row)),
        items_affected=len(np.unique(coo.col)), rows_solved=sum(outcome.rows_solved.values()),
        rows_solved_by_phase=outcome.rows_solved, sweeps=outcome.sweeps,
        seconds=time.perf_counter() - start, loss_before=outcome.loss_before,
        loss_after=outcome.loss_after, certificate_before=outcome.certificate_before,
        certificate_after=outcome.certificate_after, tolerance=outcome.tolerance,
        converged=outcome.converged, strategy=options.strategy, digest=digest,
        receipt_key=key, n_added=int(delta.nnz), washout=relaxed or 0,
        settled=entries == 0, pending_entries=entries, pending_requests=requests)
