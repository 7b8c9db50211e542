"""Unlearning: remove interactions and re-converge what the removal disturbs
(warm-started, gradient-masked ALS; DESIGN section 3).

The target after removing a set D is a stationary point of the objective on
the retained data, which is what a retrain minimises.  Starting from the
current factors, only rows far from stationary are re-solved:

1. D leaves both orientations of the stored interactions (in place).
2. Local phase: the users in D, then the items in D, are solved exactly.
3. Masked sweeps: each row carries an upper bound of its gradient norm.  A
   row whose bound exceeds the tolerance has its gradient recomputed, and
   is solved exactly when the gradient really exceeds it.  Exact row solves
   never increase the loss (block coordinate descent).  A solved row raises
   the bounds of the rows that share an entry with it, and in implicit mode
   (through the Gram matrix G every row of the other side sees) every row's
   by at most ``|dG x|``; rows whose bound stays below tolerance are not
   touched at all.  ``washout=N`` first runs N over-relaxed full sweeps.
4. The bounds are then a proven upper bound of the certificate after the
   request (``Certificate.exact`` is False): no pass over the data is needed
   to certify the result.  It is measured exactly instead when asked
   (``exact_certificate=True``) or when the bound misses the tolerance, so
   ``converged`` is never False for a model that is in fact within it.

The bounds, Gram matrices and per-user loss terms are kept with the model
(``objective.Measures``) and updated only where a request disturbs them, so a
request costs what it disturbs, not a pass over the data; only the first
request on a model that was never measured pays one exact pass.

All of it is all-or-nothing: if anything fails or is interrupted, factors and
interactions are restored exactly as they were.
"""
import contextlib
import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from . import objective as obj
from .config import single_threaded_blas
from .models import advance_checksum
from .validation import check_ids, check_positive_int, check_user_items

STRATEGIES = ("masked", "full")
# Over-relaxation of washout sweeps: past about 1.8 the sweeps oscillate on
# the synthetic sets, below about 1.6 they hardly beat plain ALS on MovieLens
# 100K (bench/audit.py).  Exact solves: CG steps, over-relaxed, leave more to
# certify than they save.
WASHOUT_RELAXATION = 1.7
# A solved row's gradient bound carries a float-rounding slack that grows
# with its entries; past this fraction of the tolerance the row is measured
# exactly instead, or the bounds that later solves add would soon push it
# over the tolerance and cost a re-check anyway.
EXACT_SLACK = 0.25
PHASES = ("local", "washout", "sweeps")


@dataclass(frozen=True)
class ForgetReport:
    """What a ``forget`` (or ``partial_fit``) did; never the removed pairs.

    For ``partial_fit`` the counts describe the added entries (``n_added``;
    ``n_removed`` is 0) and ``digest`` hashes the pairs added.

    Attributes
    ----------
    n_removed : int
        Stored interactions removed (added, for ``partial_fit``).
    users_affected, items_affected : int
        Distinct users and items those interactions belonged to.
    rows_solved : int
        Row solves in total; ``rows_solved_by_phase`` splits them into
        ``local``, ``washout`` and ``sweeps``.
    sweeps : int
        Masked (or full) sweeps after the local phase and the washout.
    seconds : float
        Wall time of the whole call.
    loss_before, loss_after : float
        Objective on the data before and after the change.
    certificate_before, certificate_after : Certificate
    tolerance : float
        Target for ``certificate_after.max_row``.
    converged : bool
        Whether ``certificate_after.max_row <= tolerance``.
    strategy : str
    digest : str
        HMAC-SHA256, under ``receipt_key``, of the sorted (user, item) index
        pairs removed: the receipt kept in the model's history.  With the
        key, whoever holds the request can check which request was carried
        out (:func:`verify_receipt`); without it, the digest reveals nothing
        about the pairs, not even for a request of one pair.
    receipt_key : str
        Hex key of the digest, new for every request.  Returned to the
        caller only: it is in neither the receipt, the history nor a saved
        file, so hand it to whoever made the request.
    n_added : int
        Entries added (``partial_fit``); 0 for ``forget``.
    washout : int
        Over-relaxed full sweeps run (the ``washout`` option).
    """

    n_removed: int
    users_affected: int
    items_affected: int
    rows_solved: int
    rows_solved_by_phase: dict
    sweeps: int
    seconds: float
    loss_before: float
    loss_after: float
    certificate_before: obj.Certificate
    certificate_after: obj.Certificate
    tolerance: float
    converged: bool
    strategy: str
    digest: str = field(repr=False)
    receipt_key: str = field(repr=False)
    n_added: int = 0
    washout: int = 0

    def to_dict(self):
        """A JSON-serialisable dict (certificates as nested dicts)."""
        return asdict(self)

    def receipt(self):
        """The part kept in the model's history: counts, outcome and digest."""
        return {"digest": self.digest, "n_removed": self.n_removed,
                "users_affected": self.users_affected, "items_affected": self.items_affected,
                "certificate_after": self.certificate_after.max_row,
                "tolerance": self.tolerance, "converged": self.converged,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def digest_pairs(users, items, key):
    """HMAC-SHA256 hex digest of (user, item) pairs under ``key`` (bytes),
    independent of their order.

    Keyed because a plain hash of a few index pairs is inverted by trying
    every (user, item) combination.
    """
    pairs = np.stack(unique_pairs(users, items), axis=1).astype("<i8")
    return hmac.new(key, pairs.tobytes(), hashlib.sha256).hexdigest()


def unique_pairs(users, items):
    """(users, items) int64 arrays of the distinct pairs, sorted by user then
    item: what ``np.unique(..., axis=0)`` gives, without its structured-array
    sort, which costs about 0.2 ms even for a few pairs."""
    users, items = np.asarray(users, np.int64).ravel(), np.asarray(items, np.int64).ravel()
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    first = np.ones(len(users), dtype=bool)
    first[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    return users[first], items[first]


def _receipt(users, items):
    """(digest, hex key) for a request, with a fresh random key."""
    key = secrets.token_bytes(32)
    return digest_pairs(users, items, key), key.hex()


def verify_receipt(userids, itemids, receipt_key, digest):
    """Whether ``digest`` is the receipt of forgetting exactly these
    (user, item) index pairs (in any order), given the request's key."""
    expected = digest_pairs(userids, itemids, bytes.fromhex(receipt_key))
    return hmac.compare_digest(expected, digest)


# ------------------------------------------------------------------ requests

def pairs_from_request(model, userids, itemids):
    """Validated (users, items) int64 arrays from paired ids or a sparse matrix."""
    n_users, n_items = model._data.shape
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
    n = model._data.shape[0 if side == "users" else 1]
    if sp.issparse(ids):
        coo = ids.tocoo()
        ids = coo.row if side == "users" else coo.col
    rows, _ = check_ids(ids, n, "userids" if side == "users" else "itemids")
    rows = np.unique(rows)
    indptr, indices, _ = model._data.side(side).arrays()
    owner, flat = _row_entries(indptr, rows)
    owner, other = rows[owner], indices[flat].astype(np.int64)
    return (owner, other) if side == "users" else (other, owner)


# ------------------------------------------------------------------ engine

class _Reconverger:
    """Masked re-convergence of a model after its data changed.

    Keeps, for every row, an upper bound of its gradient norm, and the loss,
    current through every solve without a pass over the data: a solve of
    rows R moves the gradient of a row f of the other side only through
    (a) the entries f shares with R: by at most
    ``|dr| (|a| |f| (|r| + |r'|) + |b|)`` per entry, for r moving to r'; and
    (b) in implicit mode the Gram matrix: by ``|dG f| <= |dG|_2 |f|``.
    A solved row's own bound comes from the solve: measured (short rows), or
    its residual in the normal equations plus what float rounding of them
    can hide (:func:`objective.solve_measured`).
    Works on copies of the kept :class:`objective.Measures` and logs the
    previous value of every row it solves in ``undo``, so that the caller
    can put everything back on failure.
    """

    def __init__(self, model, measures, threads, tolerance, max_sweeps, progress, undo):
        self.objective = model.objective
        self.data = model._data
        self.X, self.Y = model.user_factors, model.item_factors
        self.threads = threads
        self.tol = tolerance
        self.max_sweeps = max_sweeps
        self.progress = progress
        self.undo = undo
        self.load(measures)
        self.rows_solved = dict.fromkeys(PHASES, 0)
        self.saved_all = False  # full copies of both factor matrices in undo
        # factor checksums kept current through the solves, so that the
        # state left is keyed without another read of all factors
        self.checksums = dict(zip(("users", "items"), model._kept_checksums()))

    def load(self, measures):
        """Start from (copies of) ``measures`` of the current factors."""
        self.bounds = {"users": measures.user_norms.copy(), "items": measures.item_norms.copy()}
        self.data_loss = measures.data_loss
        if self.objective.implicit:  # float64, kept current with the changed rows
            self.gram = {"users": measures.gram_users.copy(),
                         "items": measures.gram_items.copy()}
        self.sq = {"users": measures.sq_users.copy(), "items": measures.sq_items.copy()}

    def factors(self, side):
        return self.X if side == "users" else self.Y

    def other(self, side):
        return "items" if side == "users" else "users"

    def threads_for(self, side, rows):
        return threads_for(self.data, side, rows, self.threads)

    def base(self, side):
        """Dense part of A for rows of ``side`` from the maintained Gram."""
        other = self.other(side)
        gram = self.gram[other] if self.objective.implicit else None
        return obj.dense_part(self.objective, self.factors(other), self.threads, gram=gram)

    def norms(self, side, rows):
        return obj.gradient_norms(self.objective, self.data, self.X, self.Y, side, rows,
                                  num_threads=self.threads_for(side, rows),
                                  base=self.base(side))

    def data_terms(self, side, rows, values):
        return obj.data_loss(self.objective, self.data, side, rows, values,
                             self.factors(self.other(side)),
                             num_threads=self.threads_for(side, rows))

    def data_changed(self, users, old_terms):
        """The stored entries of ``users`` changed (at unchanged factors);
        ``old_terms`` is their data term before the change."""
        self.data_loss += self.data_terms("users", users, self.X[users]) - old_terms

    def solve(self, side, rows, phase):
        """Solve ``rows`` (sorted, distinct) exactly and bring every bound and
        the loss up to date."""
        if not len(rows):
            return
        other = self.other(side)
        F = self.factors(side)
        old = F[rows]
        self.undo.append((side, rows, old))
        # a solved row is stationary up to rounding: bounded, with its data
        # terms, by the solve itself
        old_terms, norms, new_terms = obj.solve_measured(
            self.objective, self.data, self.X, self.Y, side, rows,
            num_threads=self.threads_for(side, rows), base=self.base(side),
            exact_above=EXACT_SLACK * self.tol)
        self.rows_solved[phase] += len(rows)
        self.checksums[side] = advance_checksum(self.checksums[side], F, rows, old)
        new = F[rows]
        old64, new64 = old.astype(np.float64), new.astype(np.float64)
        new_sq = obj.squared_norms(new64)
        old_norm, new_norm = np.sqrt(self.sq[side][rows]), np.sqrt(new_sq)
        self.sq[side][rows] = new_sq
        step = np.sqrt(obj.squared_norms(new64 - old64))
        # (a) rows of the other side sharing an entry with the moved rows
        obj.raise_partner_bounds(self.objective, self.data, side, rows, step,
                                 old_norm + new_norm, self.sq[other], self.bounds[other])
        # (b) the Gram matrix every row of the other side sees
        if self.objective.implicit:
            delta = new64.T @ new64 - old64.T @ old64
            self.gram[side] += delta
            self.raise_by_gram(other, delta, gram_change_norm(old64, new64, delta),
                               old64, new64)
        self.bounds[side][rows] = norms
        self.data_loss += new_terms.sum() - old_terms.sum()

    def raise_by_gram(self, side, delta, spectral, old, new):
        """Raise the bounds of ``side`` by what the Gram change ``delta``
        (spectral norm ``spectral``) does to their gradients: ``|delta|_2 |f|``
        where that keeps a row within tolerance (no work), the exact
        ``|delta f|`` where it would not (less than recomputing a gradient,
        and much tighter when a few rows moved far, as a forgotten user's
        does; see :func:`gram_change_times`)."""
        bound = self.bounds[side]
        raised = bound + spectral * np.sqrt(self.sq[side])
        over = np.flatnonzero(raised > self.tol)
        F = self.factors(side)
        for start in range(0, len(over), 8192):
            rows = over[start:start + 8192]
            change = gram_change_times(F[rows].astype(np.float64), delta, old, new)
            raised[rows] = bound[rows] + np.linalg.norm(change, axis=1)
        bound[...] = raised

    def save_all(self):
        """Put full copies of both factor matrices in ``undo``, once."""
        if not self.saved_all:
            for side in ("users", "items"):
                F = self.factors(side)
                self.undo.append((side, obj.all_rows(F.shape[0]), F.copy()))
                self.checksums[side] = None  # every row moves: read them all after
            self.saved_all = True

    def washout(self, sweeps):
        """``sweeps`` over-relaxed full sweeps (:func:`objective.relaxed_sweep`),
        then every measure afresh, since every row moved.  Returns those
        exact measures (None without sweeps)."""
        if not sweeps:
            return None
        self.save_all()
        for _ in range(sweeps):
            obj.relaxed_sweep(self.objective, self.data, self.X, self.Y, WASHOUT_RELAXATION,
                              use_cg=False, cg_steps=0, num_threads=self.threads)
            self.rows_solved["washout"] += self.X.shape[0] + self.Y.shape[0]
        measures = obj.measure(self.objective, self.data, self.X, self.Y,
                               num_threads=self.threads)
        self.load(measures)
        return measures

    def run(self):
        """Masked sweeps: recompute rows whose bound exceeds the tolerance,
        solve those whose gradient really does.  Returns the number of sweeps."""
        sweeps = 0
        while sweeps < self.max_sweeps:
            solved_any = False
            for side in ("users", "items"):
                bound = self.bounds[side]
                check = np.flatnonzero(bound > self.tol)
                if not len(check):
                    continue
                bound[check] = self.norms(side, check)
                solve = check[bound[check] > self.tol]
                if len(solve):
                    solved_any = True
                    self.solve(side, solve, "sweeps")
            sweeps += 1
            if self.progress is not None:
                self.progress.update(1)
            if not solved_any:
                break
        return sweeps

    def result(self):
        """Measures after the run: bounds, not exact norms."""
        grams = (self.gram["users"], self.gram["items"]) if self.objective.implicit \
            else (None, None)
        return obj.Measures(self.bounds["users"], self.bounds["items"], self.data_loss,
                            *grams, self.sq["users"], self.sq["items"], exact=False)

    def run_full(self, measures=None):
        """Plain Unlearn-ALS: full exact sweeps until the certificate is in
        tolerance, from exact ``measures`` of the current factors (taken
        here if None).  Returns (sweeps, exact measures at the end)."""
        sweeps = 0
        if measures is None:
            measures = obj.measure(self.objective, self.data, self.X, self.Y,
                                   num_threads=self.threads)
        while sweeps < self.max_sweeps and measures.certificate().max_row > self.tol:
            self.save_all()
            for side in ("users", "items"):
                rows = obj.all_rows(self.factors(side).shape[0])
                obj.solve_rows(self.objective, self.data, self.X, self.Y, side, rows,
                               use_cg=False, cg_steps=0, num_threads=self.threads)
                self.rows_solved["sweeps"] += len(rows)
            sweeps += 1
            measures = obj.measure(self.objective, self.data, self.X, self.Y,
                                   num_threads=self.threads)
            if self.progress is not None:
                self.progress.update(1)
        return sweeps, measures


def threads_for(data, side, rows, threads):
    """One thread for little work on ``rows`` of ``side``: waking a team
    costs more than a few thousand entries, and much more when other
    processes hold the cores."""
    if len(rows) >= 64:
        return threads
    indptr = data.side(side).arrays()[0]
    entries = int(np.sum(indptr[rows + 1] - indptr[rows]))
    return 1 if entries + 64 * len(rows) < 4096 else threads


def gram_change_times(f, delta, old, new):
    """Rows of ``f`` times the Gram change ``delta = new^T new - old^T old``
    of m rows moving from ``old`` to ``new`` (k columns, float64): as
    ``new^T (new f) - old^T (old f)``, 4mk a row, when 4m < k, else k^2."""
    if 4 * len(old) < delta.shape[0]:
        return (f @ new.T) @ new - (f @ old.T) @ old
    return f @ delta


def gram_change_norm(old, new, delta):
    """Spectral norm of ``delta = new^T new - old^T old``, the Gram change of
    rows moving from ``old`` to ``new`` (float64).

    One row (a forgotten user's) has the closed form of the rank-2 case:
    with ``a = |n|^2, d = |o|^2, c = n.o`` the nonzero eigenvalues are
    ``((a - d) +- sqrt((a - d)^2 + 4 (a d - c^2))) / 2``, written in the step
    ``m = n - o`` (``a - d = 2 o.m + |m|^2``, ``a d - c^2 = d |m|^2 - (o.m)^2``)
    so that a short step does not cancel.  More rows use ``eigvalsh``.
    """
    if len(old) != 1:
        return float(np.abs(np.linalg.eigvalsh(delta)).max())
    o = old[0]
    m = new[0] - o
    om, mm, d = o @ m, m @ m, o @ o
    diff = 2 * om + mm
    return float((abs(diff) + np.sqrt(diff * diff + 4 * max(d * mm - om * om, 0.0))) / 2)


def _roll_back(model, undo):
    """Put back every row the engine solved, newest first."""
    for side, rows, old in reversed(undo):
        F = model.user_factors if side == "users" else model.item_factors
        F[rows] = old


def _wipe(undo):
    for _, _, old in undo:
        old[...] = 0
    undo.clear()


def _check_options(tolerance, max_sweeps, strategy, missing, washout):
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if missing not in ("raise", "ignore"):
        raise ValueError(f"missing must be 'raise' or 'ignore', got {missing!r}")
    max_sweeps = check_positive_int(max_sweeps, "max_sweeps", minimum=0)
    washout = check_positive_int(washout, "washout", minimum=0)
    if tolerance is not None:
        tolerance = float(tolerance)
        if not np.isfinite(tolerance) or tolerance < 0:
            raise ValueError(f"tolerance must be finite and >= 0, got {tolerance}")
    return tolerance, max_sweeps, washout


def forget_pairs(model, users, items, *, tolerance=None, max_sweeps=50, strategy="masked",
                 missing="raise", washout=0, exact_certificate=False, show_progress=False):
    """Remove stored (user, item) pairs and re-converge; see ``MatrixFactorization.forget``."""
    start = time.perf_counter()
    tolerance, max_sweeps, washout = _check_options(tolerance, max_sweeps, strategy, missing,
                                                    washout)
    data = model._data
    users, items = unique_pairs(users, items)
    pos_u = data.by_user.positions(users, items)
    if np.any(pos_u < 0):
        if missing == "raise":
            bad = np.flatnonzero(pos_u < 0)
            raise ValueError(f"{len(bad)} of the {len(users)} pairs to forget are not stored "
                             f"in the model, e.g. (user, item) "
                             f"{list(zip(users[bad[:3]].tolist(), items[bad[:3]].tolist()))}; "
                             "pass missing='ignore' to skip them")
        keep = pos_u >= 0
        users, items, pos_u = users[keep], items[keep], pos_u[keep]
    pos_i = data.by_item.positions(items, users)
    digest, key = _receipt(users, items)

    threads = model._threads()
    with single_threaded_blas():
        before = model._measures(threads)
        loss_before, cert_before = before.loss(model.objective, data), before.certificate()
        tol = cert_before.max_row if tolerance is None else tolerance
        if len(users) == 0:  # nothing to do: a report, no change
            return ForgetReport(0, 0, 0, 0, dict.fromkeys(PHASES, 0), 0,
                                time.perf_counter() - start, loss_before, loss_before,
                                cert_before, cert_before, tol, cert_before.max_row <= tol,
                                strategy, digest, key)
        undo, undo_u, undo_i = [], None, None
        old_terms = _user_terms(model, np.unique(users), threads, strategy)
        try:
            undo_u = data.by_user.remove(np.sort(pos_u))
            undo_i = data.by_item.remove(np.sort(pos_i))
            report = _reconverge(model, before, users, items, old_terms, tol, max_sweeps,
                                 strategy, washout, threads, exact_certificate, undo,
                                 show_progress, "Forgetting")
        except BaseException:
            _roll_back(model, undo)
            if undo_i is not None:
                data.by_item.restore(undo_i)
            if undo_u is not None:
                data.by_user.restore(undo_u)
            raise
        finally:
            for record in (undo_u, undo_i):
                if record is not None:
                    record.wipe()
            _wipe(undo)
    rows_solved, sweeps, cert_after, loss_after = report
    result = ForgetReport(
        n_removed=len(users), users_affected=len(np.unique(users)),
        items_affected=len(np.unique(items)), rows_solved=sum(rows_solved.values()),
        rows_solved_by_phase=rows_solved, sweeps=sweeps,
        seconds=time.perf_counter() - start, loss_before=loss_before, loss_after=loss_after,
        certificate_before=cert_before, certificate_after=cert_after, tolerance=tol,
        converged=cert_after.max_row <= tol, strategy=strategy, digest=digest,
        receipt_key=key, washout=washout)
    model.metadata.setdefault("history", []).append(result.receipt())
    return result


def _user_terms(model, users, threads, strategy):
    """Data term of the loss over the stored entries of ``users``, now: the
    masked engine updates the loss from it (the full strategy measures)."""
    if strategy == "full":
        return None
    return obj.data_loss(model.objective, model._data, "users", users,
                         model.user_factors[users], model.item_factors,
                         num_threads=threads_for(model._data, "users", users, threads))


def _reconverge(model, before, users, items, old_terms, tol, max_sweeps, strategy, washout,
                threads, exact_certificate, undo, show_progress, desc):
    """Local phase, washout, then masked (or full) sweeps; returns (rows,
    sweeps, cert, loss).

    ``old_terms`` is the data term of the affected users before their data
    changed.  The certificate after is the engine's proven upper bound unless
    ``exact_certificate`` is set or the bound misses the tolerance, in which
    case it is measured exactly (a pass over the data per side).
    """
    # no tqdm at all when hidden: even a disabled bar costs ~70 us a request
    bar = tqdm(total=max_sweeps, desc=desc) if show_progress else contextlib.nullcontext()
    with bar as progress:
        engine = _Reconverger(model, before, threads, tol, max_sweeps, progress, undo)
        affected_users = np.unique(users)
        if strategy == "full":
            sweeps, after = engine.run_full(engine.washout(washout))
            cert = after.certificate()
        else:
            engine.data_changed(affected_users, old_terms)
            engine.solve("users", affected_users, "local")
            engine.solve("items", np.unique(items), "local")
            engine.washout(washout)
            sweeps = engine.run()
            after = engine.result()
            cert = after.certificate()
            if exact_certificate or cert.max_row > tol:
                after = obj.measure(model.objective, model._data, model.user_factors,
                                    model.item_factors, num_threads=threads)
                cert = after.certificate()
    model._remember(after, (engine.checksums["users"], engine.checksums["items"]))
    return engine.rows_solved, sweeps, cert, after.loss(model.objective, model._data)


def add_interactions(model, delta, *, tolerance=None, max_sweeps=50, strategy="masked",
                     washout=0, exact_certificate=False, show_progress=False):
    """Add ``delta`` to the data (growing for new users/items) and re-converge.

    See ``MatrixFactorization.partial_fit``.
    """
    start = time.perf_counter()
    tolerance, max_sweeps, washout = _check_options(tolerance, max_sweeps, strategy, "raise",
                                                    washout)
    delta = check_user_items(delta, model.dtype, name="user_items_delta")
    old_data, X_old, Y_old = model._data, model.user_factors, model.item_factors
    (n_users, n_items), k = old_data.shape, model.factors
    shape = (max(n_users, delta.shape[0]), max(n_items, delta.shape[1]))
    threads = model._threads()
    with single_threaded_blas():
        before = model._measures(threads)
        loss_before, cert_before = before.loss(model.objective, old_data), before.certificate()
        tol = cert_before.max_row if tolerance is None else tolerance

        # entries concatenated and summed where a pair repeats: sparse "+"
        # would also drop the stored zeros of rows the delta never touches
        old, coo = model.user_items.tocoo(), delta.tocoo()
        merged = check_user_items(sp.csr_matrix(
            (np.concatenate([old.data, coo.data]),
             (np.concatenate([old.row, coo.row]), np.concatenate([old.col, coo.col]))),
            shape=shape), model.dtype)
        X = np.zeros((shape[0], k), dtype=model.dtype)
        Y = np.zeros((shape[1], k), dtype=model.dtype)
        X[:n_users], Y[:n_items] = X_old, Y_old

        def pad(values, n):  # new rows: zero factors (their entries make them affected)
            return np.concatenate([values, np.zeros(n - len(values))])

        grown_before = replace(
            before, user_norms=pad(before.user_norms, shape[0]),
            item_norms=pad(before.item_norms, shape[1]),
            sq_users=pad(before.sq_users, shape[0]), sq_items=pad(before.sq_items, shape[1]))
        affected = np.unique(coo.row)
        old_terms = _user_terms(model, affected[affected < n_users], threads, strategy)
        undo, measured = [], model._measured
        try:
            model._set_state(X, Y, merged)
            result = _reconverge(model, grown_before, coo.row.astype(np.int64),
                                 coo.col.astype(np.int64), old_terms, tol, max_sweeps, strategy,
                                 washout, threads, exact_certificate, undo, show_progress,
                                 "Adding")
        except BaseException:
            model._data, model.user_factors, model.item_factors = old_data, X_old, Y_old
            model._measured = measured
            raise
        finally:
            _wipe(undo)
    rows_solved, sweeps, cert_after, loss_after = result
    digest, key = _receipt(coo.row, coo.col)
    return ForgetReport(
        n_removed=0, users_affected=len(np.unique(coo.row)),
        items_affected=len(np.unique(coo.col)), rows_solved=sum(rows_solved.values()),
        rows_solved_by_phase=rows_solved, sweeps=sweeps, seconds=time.perf_counter() - start,
        loss_before=loss_before, loss_after=loss_after, certificate_before=cert_before,
        certificate_after=cert_after, tolerance=tol, converged=cert_after.max_row <= tol,
        strategy=strategy, digest=digest, receipt_key=key, n_added=int(delta.nnz),
        washout=washout)
