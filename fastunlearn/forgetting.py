"""Unlearning: remove interactions and re-converge what the removal disturbs
(warm-started, gradient-masked ALS with a washout; docs/design.md, section 3).

The target after removing a set D is a stationary point of the objective on
the retained data, which is what a retrain minimises.  Starting from the
current factors:

1. D leaves both orientations of the stored interactions (in place).
2. Local phase: the users in D, then the items in D, are solved exactly.
3. Washout: two over-relaxed sweeps (``x <- x + w (x* - x)``, ``w = 1.7``,
   near-exact solves), then one plain sweep with the model's own solver,
   then an exact measurement.  A stationary point is not enough: ALS
   creeps along some directions, and the removed entries' influence
   survives there (membership inference finds it) long after every row
   gradient is small.  Over-relaxation moves those directions several
   times as fast as a plain sweep.  Small requests defer
   their washout: it runs once the removals it has not yet covered reach
   :data:`PENDING_FRACTION` of the stored entries, in the request that
   crosses that bound or in :meth:`MatrixFactorization.settle`; every report
   and receipt says whether the model is settled and what is pending.
4. Masked sweeps: each row carries an upper bound of its gradient norm.  A
   row whose bound exceeds the tolerance has its gradient recomputed, and
   is solved exactly when the gradient really exceeds it.  Exact row solves
   never increase the loss (block coordinate descent).  A solved row raises
   the bounds of the rows that share an entry with it, and in implicit mode
   (through the Gram matrix G every row of the other side sees) every row's
   by at most ``|dG x|``; rows whose bound stays below tolerance are not
   touched at all.  Once masked solves add up to a full sweep's rows, the
   engine switches to full sweeps, so that it never solves more rows than
   plain sweeps to the same certificate would.
5. The bounds are then a proven upper bound of the certificate after the
   request (``Certificate.exact`` is False): no pass over the data is needed
   to certify the result.  It is measured exactly instead when asked
   (``exact_certificate=True``) or when the bound misses the tolerance, so
   ``converged`` is never False for a model that is in fact within it.

The bounds, Gram matrices and per-user loss terms are kept with the model
(``objective.Measures``) and updated only where a request disturbs them, so a
request costs what it disturbs, not a pass over the data.

All of it is all-or-nothing: if anything fails or is interrupted, factors,
interactions and the pending count are restored exactly as they were.
"""
import contextlib
import hashlib
import hmac
import math
import secrets
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from . import objective as obj
from .config import single_threaded_blas
from .state import advance_checksum
from .validation import check_ids, check_positive_int, check_user_items

STRATEGIES = ("masked", "full")
# Over-relaxation of the washout sweeps.  For two-block Gauss-Seidel a mode
# that a plain sweep contracts by 1 - e is contracted by about
# 1 - e w / (2 - w) once the sweeps settle into their rhythm.  Measured on
# MovieLens 100K (random, core and edge sets of 1 and 5 %) and a 2M-entry
# synthetic set: one sweep at 1.9 leaves a trace after core sets, two at
# 1.9 overshoot after random ones (the forgotten pairs then score below a
# retrain's), two at 1.7 are within a retrain's spread on all of them.
RELAXATION = 1.7
WASHOUT_SWEEPS = 2
# The relaxed sweeps need (near-)exact row solves: over-relaxing a 3-step CG
# solve of an ill-conditioned row (implicit with alpha 5) extrapolates a
# poor direction and leaves a measurable trace.  CG models solve them by CG
# to 3 % of the initial residual, capped at 16 steps (cheaper than Cholesky
# at k >= 64 and as complete); Cholesky models solve exactly.
RELAXED_CG_RTOL = 0.03
RELAXED_CG_STEPS = 16
# Removed entries a model may hold without a washout, as a fraction of its
# stored entries: the request that reaches it washes out everything pending.
# At 0.1 % the pending pairs are too few to move membership inference over
# all of a model's forgotten pairs, and on MovieLens 100K 200 requests of 3
# pairs each pay 7 washouts.
PENDING_FRACTION = 1e-3
# A solved row's gradient bound carries a float-rounding slack that grows
# with its entries; past this fraction of the tolerance the row is measured
# exactly instead, or the bounds that later solves add would soon push it
# over the tolerance and cost a re-check anyway.
EXACT_SLACK = 0.25
PHASES = ("local", "washout", "sweeps")


@dataclass(frozen=True)
class ForgetOptions:
    """How a request re-converges (validated once, shared by every entry point).

    Attributes
    ----------
    tolerance : float or None
        Target for the certificate's ``max_row``; None: the certificate
        before the request.
    max_sweeps : int
        Most masked (or full) sweeps after the local phase and the washout.
    strategy : {"masked", "full"}
    missing : {"raise", "ignore"}
    washout : "auto" or int
        ``"auto"``: wash out when the pending removals (this one included)
        reach :func:`pending_limit`; an int ``N > 0``: wash out now with
        ``N`` over-relaxed sweeps; 0: not now (the removal stays pending).
    exact_certificate : bool
    show_progress : bool
    pending_limit : int or None
        Pending entries that trigger an ``"auto"`` washout; None:
        :data:`PENDING_FRACTION` of the stored entries.
    """

    tolerance: float = None
    max_sweeps: int = 50
    strategy: str = "masked"
    missing: str = "raise"
    washout: object = "auto"
    exact_certificate: bool = False
    show_progress: bool = False
    pending_limit: int = None

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.missing not in ("raise", "ignore"):
            raise ValueError(f"missing must be 'raise' or 'ignore', got {self.missing!r}")
        object.__setattr__(self, "max_sweeps",
                           check_positive_int(self.max_sweeps, "max_sweeps", minimum=0))
        object.__setattr__(self, "washout", check_washout(self.washout))
        if self.pending_limit is not None:
            object.__setattr__(self, "pending_limit",
                               check_positive_int(self.pending_limit, "pending_limit"))
        if self.tolerance is not None:
            tolerance = float(self.tolerance)
            if not np.isfinite(tolerance) or tolerance < 0:
                raise ValueError(f"tolerance must be finite and >= 0, got {tolerance}")
            object.__setattr__(self, "tolerance", tolerance)

    def relaxed_sweeps(self, pending, nnz):
        """Over-relaxed sweeps to run now (None: no washout in this request),
        with ``pending`` removed entries not yet washed out, this request's
        included, on a model of ``nnz`` stored entries."""
        if self.washout == "auto":
            limit = pending_limit(nnz) if self.pending_limit is None else self.pending_limit
            return WASHOUT_SWEEPS if pending and pending >= limit else None
        return self.washout or None


def check_washout(value):
    """``"auto"`` or an integer >= 0 (the ``washout`` option)."""
    if isinstance(value, str):
        if value == "auto":
            return value
        raise TypeError(f"washout must be 'auto' or an integer >= 0, got {value!r}")
    return check_positive_int(value, "washout", minimum=0)


def pending_limit(nnz):
    """Default number of pending removed entries that triggers a washout."""
    return max(1, math.ceil(PENDING_FRACTION * nnz))


@dataclass(frozen=True)
class RunReport:
    """What one run of the engine did: the fields every report shares.

    Attributes
    ----------
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
    """

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

    def to_dict(self):
        """A JSON-serialisable dict (certificates as nested dicts)."""
        return asdict(self)


@dataclass(frozen=True)
class ForgetReport(RunReport):
    """What a ``forget`` (or ``partial_fit``) did; never the removed pairs.

    ``partial_fit`` returns its subclass :class:`PartialFitReport`.  The
    fields of :class:`RunReport`, and:

    Attributes
    ----------
    n_removed : int
        Stored interactions removed (added, for ``partial_fit``).
    users_affected, items_affected : int
        Distinct users and items those interactions belonged to.
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
        Over-relaxed full sweeps run by this call (0: no washout ran).
    settled : bool
        Whether every removal so far, this one included, has been washed
        out (a washout in this call settles the earlier pending ones too).
    pending_entries, pending_requests : int
        Removed entries, and the requests they came in, that no washout has
        covered yet, after this call (0 when ``settled``).
    """

    n_removed: int
    users_affected: int
    items_affected: int
    strategy: str
    digest: str = field(repr=False)
    receipt_key: str = field(repr=False)
    n_added: int = 0
    washout: int = 0
    settled: bool = True
    pending_entries: int = 0
    pending_requests: int = 0

    def receipt(self):
        """The part kept in the model's history: counts, outcome and digest."""
        return {"digest": self.digest, "n_removed": self.n_removed,
                "users_affected": self.users_affected, "items_affected": self.items_affected,
                "certificate_after": self.certificate_after.max_row,
                "tolerance": self.tolerance, "converged": self.converged,
                "settled": self.settled, "pending_entries": self.pending_entries,
                "time": _now()}


@dataclass(frozen=True)
class PartialFitReport(ForgetReport):
    """What a ``partial_fit`` did: the fields of :class:`ForgetReport`, with
    ``n_added`` the entries added (``n_removed`` is 0) and ``digest`` the
    keyed hash of the pairs added."""


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class SettleReport(RunReport):
    """What :meth:`MatrixFactorization.settle` did: the fields of
    :class:`RunReport` (``rows_solved_by_phase`` has ``washout`` and
    ``sweeps``), and:

    Attributes
    ----------
    entries, requests : int
        Pending removed entries and requests the washout covered (0 and 0
        when nothing was pending and nothing ran).
    """

    entries: int
    requests: int

    def record(self):
        """The entry kept in the model's history."""
        return {"event": "settle", "entries": self.entries, "requests": self.requests,
                "certificate_after": self.certificate_after.max_row,
                "tolerance": self.tolerance, "converged": self.converged, "time": _now()}


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
    sort, which dominates a small request (bench/forget.py measures requests)."""
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

class _Bounds:
    """What the engine keeps current through every solve instead of passes
    over the data: an upper bound of each row's gradient norm, the factor
    Gram matrices (implicit), squared row norms and the loss's data term.

    Starts from (copies of) exact or bounded :class:`objective.Measures`; a
    solve of rows R of one side raises the bounds of the other side's rows
    (a) through the entries they share with R and (b) in implicit mode
    through the Gram matrix every row of the other side sees (see
    :class:`_Reconverger`).
    """

    def __init__(self, objective, measures, tol):
        self.objective = objective
        self.tol = tol
        self.load(measures)

    def load(self, measures):
        self.norms = {"users": measures.user_norms.copy(), "items": measures.item_norms.copy()}
        self.data_loss = measures.data_loss
        if self.objective.implicit:  # float64, kept current with the changed rows
            self.gram = {"users": measures.gram_users.copy(),
                         "items": measures.gram_items.copy()}
        self.sq = {"users": measures.sq_users.copy(), "items": measures.sq_items.copy()}

    def moved(self, side, rows, old64, new64, norms, partners, data):
        """Rows ``rows`` of ``side`` moved from ``old64`` to ``new64`` (their
        gradient norms now bounded by ``norms``); ``partners`` are the other
        side's factors and ``data`` the stored entries."""
        other = "items" if side == "users" else "users"
        self.sq[side][rows] = obj.squared_norms(new64)
        # (a) rows of the other side sharing an entry with the moved rows
        obj.raise_partner_bounds(self.objective, data, side, rows, old64, new64, partners,
                                 self.norms[other])
        # (b) the Gram matrix every row of the other side sees
        if self.objective.implicit:
            delta = new64.T @ new64 - old64.T @ old64
            self.gram[side] += delta
            self.raise_by_gram(other, delta, gram_change_norm(old64, new64, delta),
                               old64, new64, partners)
        self.norms[side][rows] = norms

    def raise_by_gram(self, side, delta, spectral, old, new, F):
        """Raise the bounds of ``side`` (factors ``F``) by what the Gram
        change ``delta`` (spectral norm ``spectral``) does to their
        gradients: ``|delta|_2 |f|`` where that keeps a row within tolerance
        (no work), the exact ``|delta f|`` where it would not (less than
        recomputing a gradient, and much tighter when a few rows moved far,
        as a forgotten user's does; see :func:`gram_change_times`)."""
        bound = self.norms[side]
        raised = bound + spectral * np.sqrt(self.sq[side])
        over = np.flatnonzero(raised > self.tol)
        for start in range(0, len(over), 8192):
            rows = over[start:start + 8192]
            change = gram_change_times(F[rows].astype(np.float64), delta, old, new)
            raised[rows] = bound[rows] + np.linalg.norm(change, axis=1)
        bound[...] = raised

    def measures(self):
        """The kept values as :class:`objective.Measures` (bounds, not exact norms)."""
        grams = (self.gram["users"], self.gram["items"]) if self.objective.implicit \
            else (None, None)
        return obj.Measures(self.norms["users"], self.norms["items"], self.data_loss,
                            *grams, self.sq["users"], self.sq["items"], exact=False)


class _Reconverger:
    """Masked re-convergence of a model after its data changed: the phases
    (local, washout, masked and full sweeps) over :class:`_Bounds`.

    The bounds and the loss stay current through every solve without a
    pass over the data: a solve of
    rows R moves the gradient of a row f of the other side only through
    (a) the entries f shares with R: by ``|a ((r'.f) r' - (r.f) r) - b (r' - r)|``
    per entry, for r moving to r' (:func:`objective.raise_partner_bounds`); and
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
        # factor checksums kept current through the solves, so that the
        # state left is keyed without another read of all factors
        self.checksums = dict(zip(("users", "items"), model._kept_checksums()))

    def load(self, measures):
        """Start from (copies of) ``measures`` of the current factors."""
        self.kept = _Bounds(self.objective, measures, self.tol)

    def factors(self, side):
        return self.X if side == "users" else self.Y

    def other(self, side):
        return "items" if side == "users" else "users"

    def threads_for(self, side, rows):
        return threads_for(self.data, side, rows, self.threads)

    def base(self, side):
        """Dense part of A for rows of ``side`` from the maintained Gram."""
        other = self.other(side)
        gram = self.kept.gram[other] if self.objective.implicit else None
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
        self.kept.data_loss += self.data_terms("users", users, self.X[users]) - old_terms

    def solve(self, side, rows, phase):
        """Solve ``rows`` (sorted, distinct) exactly and bring every bound and
        the loss up to date."""
        if not len(rows):
            return
        other = self.other(side)
        F = self.factors(side)
        old = F[rows]
        self.undo.record(side, rows, old)
        # a solved row is stationary up to rounding: bounded, with its data
        # terms, by the solve itself
        old_terms, norms, new_terms = obj.solve_measured(
            self.objective, self.data, self.X, self.Y, side, rows,
            num_threads=self.threads_for(side, rows), base=self.base(side),
            exact_above=EXACT_SLACK * self.tol)
        self.rows_solved[phase] += len(rows)
        self.checksums[side] = advance_checksum(self.checksums[side], F, rows, old)
        new = F[rows]
        self.kept.moved(side, rows, old.astype(np.float64), new.astype(np.float64), norms,
                        self.factors(other), self.data)
        self.kept.data_loss += new_terms.sum() - old_terms.sum()

    def local(self, users, items, solver=None):
        """Local phase: the users whose entries changed, then those items,
        solved exactly.  With a ``solver`` (``(use_cg, cg_steps)``) when a
        washout follows, which re-solves and measures every row afresh, they
        are solved by the model's own solver instead, without the bounds and
        loss bookkeeping (full copies of the factors go to the undo log):
        the exact solves of a 1 % request's popular items cost more than a
        CG sweep of everything."""
        if solver is None:
            self.solve("users", users, "local")
            self.solve("items", items, "local")
            return
        self.save_all()
        use_cg, cg_steps = solver
        for side, rows in (("users", users), ("items", items)):
            obj.solve_rows(self.objective, self.data, self.X, self.Y, side, rows, use_cg=use_cg,
                           cg_steps=cg_steps, num_threads=self.threads_for(side, rows))
            self.rows_solved["local"] += len(rows)

    def save_all(self):
        """Log full copies of both factor matrices, once (every row moves)."""
        if self.undo.record_whole(self.X, self.Y):
            self.checksums = dict.fromkeys(self.checksums)  # read them all after

    def washout(self, relaxed, solver):
        """``relaxed`` over-relaxed full sweeps, one plain sweep with the
        model's ``solver`` (``(use_cg, cg_steps)``), then every measure
        afresh, since every row moved.  Returns those exact measures (None
        when ``relaxed`` is None: no washout)."""
        if relaxed is None:
            return None
        use_cg, cg_steps = solver
        self.save_all()
        rows = self.X.shape[0] + self.Y.shape[0]
        work = {"users": np.empty_like(self.X), "items": np.empty_like(self.Y)}
        for _ in range(relaxed):
            obj.relaxed_sweep(self.objective, self.data, self.X, self.Y, RELAXATION,
                              use_cg=use_cg, cg_steps=RELAXED_CG_STEPS, cg_rtol=RELAXED_CG_RTOL,
                              num_threads=self.threads, work=work)
        for buffer in work.values():  # rows of the model before the sweeps: wiped
            buffer[...] = 0
        obj.sweep(self.objective, self.data, self.X, self.Y, use_cg=use_cg, cg_steps=cg_steps,
                  num_threads=self.threads)
        self.rows_solved["washout"] += (relaxed + 1) * rows
        measures = obj.measure(self.objective, self.data, self.X, self.Y,
                               num_threads=self.threads)
        self.load(measures)
        return measures

    def run(self):
        """Masked sweeps: recompute rows whose bound exceeds the tolerance,
        solve those whose gradient really does.  Once the rows they solved
        add up to a full sweep's, the rest is plain full sweeps
        (:meth:`run_full`).  Returns (sweeps, exact measures or None)."""
        sweeps, solved, full_sweep = 0, 0, self.X.shape[0] + self.Y.shape[0]
        while sweeps < self.max_sweeps:
            if solved >= full_sweep:
                more, measures = self.run_full(max_sweeps=self.max_sweeps - sweeps)
                return sweeps + more, measures
            solved_any = False
            for side in ("users", "items"):
                bound = self.kept.norms[side]
                check = np.flatnonzero(bound > self.tol)
                if not len(check):
                    continue
                bound[check] = self.norms(side, check)
                solve = check[bound[check] > self.tol]
                if len(solve):
                    solved_any = True
                    solved += len(solve)
                    self.solve(side, solve, "sweeps")
            sweeps += 1
            if self.progress is not None:
                self.progress.update(1)
            if not solved_any:
                break
        return sweeps, None

    def result(self):
        """Measures after the run: bounds, not exact norms."""
        return self.kept.measures()

    def run_full(self, measures=None, max_sweeps=None):
        """Plain Unlearn-ALS: full exact sweeps until the certificate is in
        tolerance, from exact ``measures`` of the current factors (taken
        here if None).  Returns (sweeps, exact measures at the end)."""
        sweeps = 0
        max_sweeps = self.max_sweeps if max_sweeps is None else max_sweeps
        if measures is None:
            measures = obj.measure(self.objective, self.data, self.X, self.Y,
                                   num_threads=self.threads)
        while sweeps < max_sweeps and measures.certificate().max_row > self.tol:
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


class _FactorUndo:
    """The undo log of a request: the previous value of every factor row the
    engine moves, newest last, so that a failure puts the model back
    exactly; wiped once the request ends (it holds the pre-request rows)."""

    def __init__(self):
        self.records = []
        self.whole = False  # full copies of both factor matrices logged

    def record(self, side, rows, old):
        self.records.append((side, rows, old))

    def record_whole(self, X, Y):
        """Log full copies of both factor matrices, once; returns whether
        this call logged them (every row may move from now on)."""
        if self.whole:
            return False
        for side, F in (("users", X), ("items", Y)):
            self.records.append((side, obj.all_rows(F.shape[0]), F.copy()))
        self.whole = True
        return True

    def roll_back(self, model):
        """Put back every logged row, newest first."""
        for side, rows, old in reversed(self.records):
            F = model.user_factors if side == "users" else model.item_factors
            F[rows] = old

    def wipe(self):
        for _, _, old in self.records:
            old[...] = 0
        self.records.clear()


class _Removal:
    """Stored entries leaving both orientations, in place, with an undo."""

    def __init__(self, data, pos_u, pos_i):
        self.data, self.pos_u, self.pos_i = data, pos_u, pos_i
        self.undo_u = self.undo_i = None

    def existing(self, users):
        return users

    def measures(self, before):
        return before

    def apply(self, model):
        self.undo_u = self.data.by_user.remove(np.sort(self.pos_u))
        self.undo_i = self.data.by_item.remove(np.sort(self.pos_i))

    def revert(self, model):
        if self.undo_i is not None:
            self.data.by_item.restore(self.undo_i)
        if self.undo_u is not None:
            self.data.by_user.restore(self.undo_u)

    def wipe(self):
        for record in (self.undo_u, self.undo_i):
            if record is not None:
                record.wipe()


class _Addition:
    """Entries (and new users or items) added: the model gets a grown state."""

    def __init__(self, model, merged, shape):
        self.old = (model._data, model.user_factors, model.item_factors, model._measured)
        self.n_users = model._data.shape[0]
        self.merged, self.shape = merged, shape

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

    def apply(self, model):
        _, X_old, Y_old, _ = self.old
        X = np.zeros((self.shape[0], model.factors), dtype=model.dtype)
        Y = np.zeros((self.shape[1], model.factors), dtype=model.dtype)
        X[:len(X_old)], Y[:len(Y_old)] = X_old, Y_old
        model._set_state(X, Y, self.merged)

    def revert(self, model):
        model._data, model.user_factors, model.item_factors, model._measured = self.old

    def wipe(self):
        pass


class _NoChange:
    """:meth:`settle`: the data stays, only the factors move."""

    def existing(self, users):
        return users

    def measures(self, before):
        return before

    def apply(self, model):
        pass

    def revert(self, model):
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
    """Apply ``change`` to the model's data, then re-converge: the local
    phase on ``users`` and ``items`` (the rows whose entries changed), a
    washout with ``relaxed`` over-relaxed sweeps unless None, then masked
    (or full) sweeps.  All or nothing.  Returns an :class:`Outcome`.
    """
    threads = model._threads()
    with single_threaded_blas():
        before = model._measures(threads)
        loss_before, cert_before = before.loss(model.objective, model._data), before.certificate()
        tol = cert_before.max_row if options.tolerance is None else options.tolerance
        if change is None:  # nothing to do: a report, no change
            return Outcome(dict.fromkeys(PHASES, 0), 0, loss_before, loss_before, cert_before,
                            cert_before, tol)
        affected = np.unique(users)
        # the masked engine updates the loss from the affected users' old
        # terms; a washout measures everything afresh and needs none
        old_terms = None if relaxed is not None else \
            _user_terms(model, change.existing(affected), threads, options.strategy)
        undo = _FactorUndo()
        try:
            change.apply(model)
            rows_solved, sweeps, cert_after, loss_after = _reconverge(
                model, change.measures(before), affected, np.unique(items), old_terms, tol,
                relaxed, options, threads, undo, desc)
        except BaseException:
            undo.roll_back(model)
            change.revert(model)
            raise
        finally:
            change.wipe()
            undo.wipe()
    return Outcome(rows_solved, sweeps, loss_before, loss_after, cert_before, cert_after, tol)


def _user_terms(model, users, threads, strategy):
    """Data term of the loss over the stored entries of ``users``, now: the
    masked engine updates the loss from it (the full strategy measures)."""
    if strategy == "full":
        return None
    return obj.data_loss(model.objective, model._data, "users", users,
                         model.user_factors[users], model.item_factors,
                         num_threads=threads_for(model._data, "users", users, threads))


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
    solver = (bool(model.use_cg), int(model.cg_steps))
    # no tqdm at all when hidden: even a disabled bar costs ~70 us a request
    bar = tqdm(total=options.max_sweeps, desc=desc) if options.show_progress \
        else contextlib.nullcontext()
    with bar as progress:
        engine = _Reconverger(model, before, threads, tol, options.max_sweeps, progress, undo)
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
                    after = obj.measure(model.objective, model._data, model.user_factors,
                                        model.item_factors, num_threads=threads)
    model._remember(after, (engine.checksums["users"], engine.checksums["items"]))
    return engine.rows_solved, sweeps, after.certificate(), after.loss(model.objective,
                                                                       model._data)


def forget_pairs(model, users, items, options):
    """Remove stored (user, item) pairs and re-converge; see ``MatrixFactorization.forget``."""
    start = time.perf_counter()
    data = model._data
    users, items = unique_pairs(users, items)
    pos_u = data.by_user.positions(users, items)
    if np.any(pos_u < 0):
        keep = check_missing(users, items, pos_u >= 0, options.missing)
        users, items, pos_u = users[keep], items[keep], pos_u[keep]
    pos_i = data.by_item.positions(items, users)
    digest, key = _receipt(users, items)
    entries, requests = model._pending
    if len(users):
        entries, requests = entries + len(users), requests + 1
    relaxed = options.relaxed_sweeps(entries, data.nnz) if len(users) else None
    change = _Removal(data, pos_u, pos_i) if len(users) else None
    outcome = _run(model, change, users, items, options, relaxed, "Forgetting")
    return removal_report(model, users, items, outcome, options, (digest, key), relaxed,
                          (entries, requests), start)


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
    with the model's pending count and history brought up to date.  Shared
    by the local and the distributed engines."""
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
    model._pending = (entries, requests)
    if len(users):
        model.metadata.setdefault("history", []).append(result.receipt())
    return result


def settle(model, options):
    """Wash out every pending removal; see ``MatrixFactorization.settle``."""
    start = time.perf_counter()
    entries, requests = model._pending
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
    model._pending = (0, 0)
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
    n_users, n_items = model._data.shape
    shape = (max(n_users, delta.shape[0]), max(n_items, delta.shape[1]))
    # entries concatenated and summed where a pair repeats: sparse "+"
    # would also drop the stored zeros of rows the delta never touches
    old, coo = model.user_items.tocoo(), delta.tocoo()
    merged = check_user_items(sp.csr_matrix(
        (np.concatenate([old.data, coo.data]),
         (np.concatenate([old.row, coo.row]), np.concatenate([old.col, coo.col]))),
        shape=shape), model.dtype)
    relaxed = options.washout if options.washout != "auto" and options.washout else None
    outcome = _run(model, _Addition(model, merged, shape), coo.row.astype(np.int64),
                   coo.col.astype(np.int64), options, relaxed, "Adding")
    if relaxed is not None:
        model._pending = (0, 0)
    digest, key = _receipt(coo.row, coo.col)
    entries, requests = model._pending
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
