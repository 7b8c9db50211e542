"""The requests every backend serves the same way: which pairs, which
washout, the receipt and the report (:func:`remove`, :func:`settle`,
:func:`add`), over a :class:`~fastunlearn.forgetting.engine.Backend`; and
the helpers that turn a request into pairs (:func:`pairs_from_request`,
:func:`request_rows`, :func:`entries_of` for the in-memory model).
"""
import time

import numpy as np
import scipy.sparse as sp

from ..validation import check_ids, check_user_items
from . import engine
from .options import washout_for, washouts_after
from .reports import (ForgetReport, PartialFitReport, SettleReport, make_receipt, run_fields,
                      unique_pairs)

def pairs_from_request(shape, userids, itemids):
    """Validated (users, items) int64 arrays from paired ids or a sparse
    matrix, for a model of ``shape`` (users, items)."""
    n_users, n_items = shape
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


def request_rows(ids, shape, side):
    """The distinct rows of ``side`` (sorted int64) named by ``ids`` (ids,
    or a sparse matrix's stored rows or columns), for a model of ``shape``."""
    if sp.issparse(ids):
        coo = ids.tocoo()
        ids = coo.row if side == "users" else coo.col
    rows, _ = check_ids(ids, shape[0 if side == "users" else 1],
                        "userids" if side == "users" else "itemids")
    return np.unique(rows)


def pairs_of_rows(rows, others, side):
    """(users, items) of the entries ``others[j]`` (a list of arrays) stored
    with each row ``rows[j]`` of ``side``."""
    owner = np.repeat(np.asarray(rows, np.int64), [len(o) for o in others])
    other = np.concatenate([np.asarray(o, np.int64) for o in others] + [np.zeros(0, np.int64)])
    return (owner, other) if side == "users" else (other, owner)


def entries_of(data, ids, side):
    """All stored (user, item) pairs of the given users (or items) in
    ``data`` (:class:`~fastunlearn.storage.TrainingData`)."""
    rows = request_rows(ids, data.shape, side)
    indptr, indices, _ = data.side(side).arrays()
    owner, flat = _row_entries(indptr, rows)
    owner, other = rows[owner], indices[flat].astype(np.int64)
    return (owner, other) if side == "users" else (other, owner)


def remove(backend, users, items, options):
    """Remove the stored (user, item) pairs ``users, items`` and re-converge
    (see ``MatrixFactorization.forget``); pairs not stored raise or are
    skipped as ``options.missing`` says.  Returns a :class:`ForgetReport`."""
    start = time.perf_counter()
    users, items = unique_pairs(users, items)
    stored = backend.stored(users, items)
    n_skipped = int(len(users) - np.count_nonzero(stored))
    if not stored.all():
        keep = check_missing(users, items, stored, options.missing)
        users, items = users[keep], items[keep]
    digest, key = make_receipt(users, items)
    entries, requests = backend.pending
    if len(users):
        entries, requests = entries + len(users), requests + 1
        backend.stage_removal(users, items)
    relaxed = options.washout_now(backend.spec.objective, entries, backend.nnz,
                                  backend.washouts, backend.washout_policy) \
        if len(users) else None
    outcome = engine.run(backend, users, items, options, relaxed, "Forgetting",
                         changed=bool(len(users)))
    backend.washouts = washouts_after(backend.washouts, relaxed)
    if relaxed is not None:  # the washout covered everything pending
        entries, requests = 0, 0
    report = ForgetReport(
        **run_fields(outcome, start), n_removed=len(users),
        users_affected=len(np.unique(users)), items_affected=len(np.unique(items)),
        strategy=options.strategy, digest=digest, receipt_key=key,
        washout=relaxed.reported(backend.spec) if relaxed else 0,
        refit=bool(relaxed and relaxed.refit), settled=entries == 0,
        pending_entries=entries, pending_requests=requests, n_skipped=n_skipped)
    if len(users):
        backend.metadata.setdefault("history", []).append(report.receipt())
    backend.pending = (entries, requests)
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


def settle(backend, options):
    """Wash out every pending removal; see ``MatrixFactorization.settle``."""
    start = time.perf_counter()
    entries, requests = backend.pending
    relaxed = None
    if entries:
        relaxed = options.washout_given() or washout_for(
            backend.spec.objective, entries, backend.nnz, backend.washouts,
            backend.washout_policy)
        backend.stage_settle()
    none = np.zeros(0, np.int64)
    outcome = engine.run(backend, none, none, options, relaxed, "Settling",
                         changed=bool(entries))
    backend.washouts = washouts_after(backend.washouts, relaxed)
    result = SettleReport(**run_fields(outcome, start, phases=("washout", "sweeps")),
                          entries=entries, requests=requests,
                          refit=bool(relaxed and relaxed.refit))
    backend.pending = (0, 0)
    if entries:
        backend.metadata.setdefault("history", []).append(result.record())
    return result


def add(backend, data, delta, options):
    """Add ``delta`` to ``data`` (the retained interactions, CSR; growing
    for new users and items) and re-converge; see
    ``MatrixFactorization.partial_fit``.  Additions leave the pending
    removals as they are; ``washout="auto"`` runs none."""
    start = time.perf_counter()
    dtype = backend.spec.dtype
    delta = check_user_items(delta, dtype, name="user_items_delta")
    n_users, n_items = data.shape
    shape = (max(n_users, delta.shape[0]), max(n_items, delta.shape[1]))
    # entries concatenated and summed where a pair repeats: sparse "+"
    # would also drop the stored zeros of rows the delta never touches
    old, coo = data.tocoo(), delta.tocoo()
    merged = check_user_items(sp.csr_matrix(
        (np.concatenate([old.data, coo.data]),
         (np.concatenate([old.row, coo.row]), np.concatenate([old.col, coo.col]))),
        shape=shape), dtype)
    relaxed = options.washout_given()
    backend.stage_addition(merged, shape)
    users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
    outcome = engine.run(backend, users, items, options, relaxed, "Adding")
    backend.washouts = washouts_after(backend.washouts, relaxed)
    if relaxed is not None:
        backend.pending = (0, 0)
    digest, key = make_receipt(coo.row, coo.col)
    entries, requests = backend.pending
    return PartialFitReport(
        **run_fields(outcome, start), n_removed=0, users_affected=len(np.unique(coo.row)),
        items_affected=len(np.unique(coo.col)), strategy=options.strategy, digest=digest,
        receipt_key=key, n_added=int(delta.nnz),
        washout=relaxed.reported(backend.spec) if relaxed else 0,
        refit=bool(relaxed and relaxed.refit), settled=entries == 0,
        pending_entries=entries, pending_requests=requests)


def replaced_entries(data, side, ids, rows):
    """What replacing the stored rows ``ids`` of ``side`` by ``rows`` (CSR,
    one row per sorted distinct id; ids past the model add rows) changes:
    ``(leave, arrive)`` with ``leave`` the (users, items) pairs to remove
    (None if none) and ``arrive`` the model-shaped (grown) matrix of entries
    to add (None if nothing is added and nothing grows).  Entries stored
    with the same value before and after stay untouched."""
    n_rows, n_cols = data.shape if side == "users" else data.shape[::-1]
    width = max(n_cols, rows.shape[1])
    new = rows.tocoo()
    new_r, new_c, new_v = ids[new.row], new.col.astype(np.int64), new.data
    existing = ids[ids < n_rows]
    old = data.side(side).matrix()[existing].tocoo()
    old_r, old_c, old_v = existing[old.row], old.col.astype(np.int64), old.data
    _, at_old, at_new = np.intersect1d(old_r * width + old_c, new_r * width + new_c,
                                       assume_unique=True, return_indices=True)
    same = old_v[at_old] == new_v[at_new]
    gone = np.ones(len(old_r), bool)
    gone[at_old[same]] = False
    come = np.ones(len(new_r), bool)
    come[at_new[same]] = False
    shape = (max(n_rows, int(ids[-1]) + 1), width)
    leave = arrive = None
    if gone.any():
        leave = (old_r[gone], old_c[gone]) if side == "users" else (old_c[gone], old_r[gone])
    if come.any() or shape != (n_rows, n_cols):
        r, c = new_r[come], new_c[come]
        if side == "items":
            r, c, shape = c, r, shape[::-1]
        arrive = sp.csr_matrix((new_v[come], (r, c)), shape=shape)
    return leave, arrive
