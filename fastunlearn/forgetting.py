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
   never increase the loss (block coordinate descent).  In implicit mode a
   changed row of one side moves the Gram matrix G seen by every row of the
   other side; the move adds at most ``|dG|_F |x|`` to a row's gradient, so
   rows whose bound stays below tolerance are not touched at all.
4. The final certificate is computed exactly; ``converged`` says whether its
   ``max_row`` is within tolerance.

All of it is all-or-nothing: if anything fails or is interrupted, factors and
interactions are restored exactly as they were.
"""
import hashlib
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from . import objective as obj
from .config import single_threaded_blas
from .validation import check_ids, check_positive_int, check_user_items

STRATEGIES = ("masked", "full")


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
        ``local`` and ``sweeps``.
    sweeps : int
        Masked (or full) sweeps after the local phase.
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
        SHA-256 of the sorted (user, item) index pairs removed: a receipt
        that lets whoever holds the request check which request was carried
        out, without the model keeping the pairs.
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
    n_added: int = 0

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


def digest_pairs(users, items):
    """SHA-256 hex digest of (user, item) pairs, independent of their order."""
    order = np.lexsort((items, users))
    pairs = np.stack([users[order], items[order]], axis=1).astype("<i8")
    return hashlib.sha256(pairs.tobytes()).hexdigest()


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


def _gather_rows(indptr, indices, rows):
    """(owner row, column) of every stored entry of ``rows``, vectorised."""
    starts = indptr[rows].astype(np.int64)
    counts = indptr[rows + 1].astype(np.int64) - starts
    owner = np.repeat(rows, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, indices[np.repeat(starts, counts) + offsets].astype(np.int64)


def entries_of(model, ids, side):
    """All stored (user, item) pairs of the given users (or items)."""
    n = model._data.shape[0 if side == "users" else 1]
    if sp.issparse(ids):
        coo = ids.tocoo()
        ids = coo.row if side == "users" else coo.col
    rows, _ = check_ids(ids, n, "userids" if side == "users" else "itemids")
    indptr, indices, _ = model._data.side(side).arrays()
    owner, other = _gather_rows(indptr, indices, np.unique(rows))
    return (owner, other) if side == "users" else (other, owner)


# ------------------------------------------------------------------ engine

def _row_norms(F):
    return np.sqrt(np.einsum("ij,ij->i", F, F, dtype=np.float64))


class _Reconverger:
    """Masked re-convergence of a model after its data changed."""

    def __init__(self, model, threads, tolerance, max_sweeps, progress):
        self.model = model
        self.objective = model.objective
        self.data = model._data
        self.X, self.Y = model.user_factors, model.item_factors
        self.threads = threads
        self.tol = tolerance
        self.max_sweeps = max_sweeps
        self.progress = progress
        # float64 Gram matrices, kept current by updating with changed rows
        if self.objective.implicit:
            self.gram = {"users": self.X.T.astype(np.float64) @ self.X,
                         "items": self.Y.T.astype(np.float64) @ self.Y}
        self.rows_solved = {"local": 0, "sweeps": 0}

    def factors(self, side):
        return self.X if side == "users" else self.Y

    def other(self, side):
        return "items" if side == "users" else "users"

    def base(self, side):
        """Dense part of A for rows of ``side`` from the maintained Gram."""
        other = self.other(side)
        gram = self.gram[other] if self.objective.implicit else None
        return obj.dense_part(self.objective, self.factors(other), self.threads, gram=gram)

    def norms(self, side, rows):
        return obj.gradient_norms(self.objective, self.data, self.X, self.Y, side, rows,
                                  num_threads=self.threads, base=self.base(side))

    def solve(self, side, rows, phase):
        """Solve ``rows`` exactly; returns the Gram change their move caused."""
        rows = np.unique(rows)
        if not len(rows):
            return 0.0
        F = self.factors(side)
        old = F[rows].astype(np.float64)
        obj.solve_rows(self.objective, self.data, self.X, self.Y, side, rows, use_cg=False,
                       cg_steps=0, num_threads=self.threads, base=self.base(side))
        self.rows_solved[phase] += len(rows)
        if not self.objective.implicit:
            return 0.0
        new = F[rows].astype(np.float64)
        delta = new.T @ new - old.T @ old
        self.gram[side] += delta
        return float(np.linalg.norm(delta))

    def neighbours(self, side, rows):
        """Rows of the other side sharing a stored entry with ``rows``."""
        indptr, indices, _ = self.data.side(side).arrays()
        return np.unique(_gather_rows(indptr, indices, np.unique(rows))[1])

    def run(self, bounds, touched):
        """Masked sweeps from gradient-norm upper ``bounds`` per side.

        ``touched[side]`` lists rows whose bound is unknown (recomputed first).
        Returns the number of sweeps.
        """
        sweeps = 0
        while sweeps < self.max_sweeps:
            solved_any = False
            for side in ("users", "items"):
                bound = bounds[side]
                check = np.union1d(touched[side], np.flatnonzero(bound > self.tol))
                if len(check):
                    bound[check] = self.norms(side, check)
                solve = check[bound[check] > self.tol]
                touched[side] = np.zeros(0, dtype=np.int64)
                if not len(solve):
                    continue
                solved_any = True
                change = self.solve(side, solve, "sweeps")
                bound[solve] = 0.0  # exact solves: recomputed below if neighbours move
                other = self.other(side)
                touched[other] = np.union1d(touched[other], self.neighbours(side, solve))
                if change:
                    bounds[other] += change * _row_norms(self.factors(other))
                # the solved rows' own bounds depend on the other side, which may move next
                touched[side] = solve
            sweeps += 1
            if self.progress is not None:
                self.progress.update(1)
            if not solved_any:
                break
        return sweeps

    def run_full(self):
        """Plain Unlearn-ALS: full exact sweeps until the certificate is in tolerance."""
        sweeps = 0
        cert = None
        while sweeps < self.max_sweeps:
            cert = obj.certificate(self.objective, self.data, self.X, self.Y,
                                   num_threads=self.threads)
            if cert.max_row <= self.tol:
                break
            for side in ("users", "items"):
                n = self.factors(side).shape[0]
                obj.solve_rows(self.objective, self.data, self.X, self.Y, side,
                               obj.all_rows(n), use_cg=False, cg_steps=0,
                               num_threads=self.threads)
                self.rows_solved["sweeps"] += n
            sweeps += 1
            if self.progress is not None:
                self.progress.update(1)
        return sweeps


def _check_options(tolerance, max_sweeps, strategy, missing):
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if missing not in ("raise", "ignore"):
        raise ValueError(f"missing must be 'raise' or 'ignore', got {missing!r}")
    max_sweeps = check_positive_int(max_sweeps, "max_sweeps", minimum=0)
    if tolerance is not None:
        tolerance = float(tolerance)
        if not np.isfinite(tolerance) or tolerance < 0:
            raise ValueError(f"tolerance must be finite and >= 0, got {tolerance}")
    return tolerance, max_sweeps


def forget_pairs(model, users, items, *, tolerance=None, max_sweeps=50, strategy="masked",
                 missing="raise", show_progress=False):
    """Remove stored (user, item) pairs and re-converge; see ``MatrixFactorization.forget``."""
    start = time.perf_counter()
    tolerance, max_sweeps = _check_options(tolerance, max_sweeps, strategy, missing)
    data = model._data
    pairs = np.unique(np.stack([users, items], axis=1), axis=0) if len(users) else \
        np.zeros((0, 2), np.int64)
    users, items = pairs[:, 0].copy(), pairs[:, 1].copy()
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
    digest = digest_pairs(users, items)

    threads = model._threads()
    X, Y = model.user_factors, model.item_factors
    with single_threaded_blas(threads):
        user_norms, item_norms, loss_before = model._measures(threads)
        cert_before = obj.certificate_from_norms(user_norms, item_norms)
        tol = cert_before.max_row if tolerance is None else tolerance
        if len(users) == 0:  # nothing to do: a report, no change
            return ForgetReport(0, 0, 0, 0, {"local": 0, "sweeps": 0}, 0,
                                time.perf_counter() - start, loss_before, loss_before,
                                cert_before, cert_before, tol, cert_before.max_row <= tol,
                                strategy, digest)

        backup = (X.copy(), Y.copy())
        undo_u = undo_i = None
        try:
            undo_u = data.by_user.remove(np.sort(pos_u))
            undo_i = data.by_item.remove(np.sort(pos_i))
            report = _reconverge(model, users, items, tol, max_sweeps, strategy, threads,
                                 user_norms, item_norms, show_progress, "Forgetting")
        except BaseException:
            X[...] = backup[0]
            Y[...] = backup[1]
            if undo_i is not None:
                data.by_item.restore(undo_i)
            if undo_u is not None:
                data.by_user.restore(undo_u)
            raise
        finally:
            for undo in (undo_u, undo_i):
                if undo is not None:
                    undo.wipe()
            for arr in backup:
                arr[...] = 0
            del backup
    rows_solved, sweeps, cert_after, loss_after = report
    result = ForgetReport(
        n_removed=len(users), users_affected=len(np.unique(users)),
        items_affected=len(np.unique(items)), rows_solved=sum(rows_solved.values()),
        rows_solved_by_phase=rows_solved, sweeps=sweeps,
        seconds=time.perf_counter() - start, loss_before=loss_before, loss_after=loss_after,
        certificate_before=cert_before, certificate_after=cert_after, tolerance=tol,
        converged=cert_after.max_row <= tol, strategy=strategy, digest=digest)
    model.metadata.setdefault("history", []).append(result.receipt())
    return result


def _reconverge(model, users, items, tol, max_sweeps, strategy, threads, user_norms,
                item_norms, show_progress, desc):
    """Local phase then masked (or full) sweeps; returns (rows, sweeps, cert, loss)."""
    with tqdm(total=max_sweeps, disable=not show_progress, desc=desc) as progress:
        engine = _Reconverger(model, threads, tol, max_sweeps, progress)
        affected_users, affected_items = np.unique(users), np.unique(items)
        if strategy == "full":
            sweeps = engine.run_full()
        else:
            # local phase: the rows whose own data changed
            change = engine.solve("users", affected_users, "local")
            bounds = {"users": user_norms.copy(), "items": item_norms.copy()}
            bounds["users"][affected_users] = 0.0
            bounds["items"] += change * _row_norms(model.item_factors)
            change = engine.solve("items", affected_items, "local")
            bounds["items"][affected_items] = 0.0
            bounds["users"] += change * _row_norms(model.user_factors)
            touched = {
                "users": np.union1d(affected_users,
                                    engine.neighbours("items", affected_items)),
                "items": np.union1d(affected_items,
                                    engine.neighbours("users", affected_users)),
            }
            sweeps = engine.run(bounds, touched)
        model._measured = None
        user_norms, item_norms, loss = model._measures(threads)
        cert = obj.certificate_from_norms(user_norms, item_norms)
    return engine.rows_solved, sweeps, cert, loss


def add_interactions(model, delta, *, tolerance=None, max_sweeps=50, strategy="masked",
                     show_progress=False):
    """Add ``delta`` to the data (growing for new users/items) and re-converge.

    See ``MatrixFactorization.partial_fit``.
    """
    start = time.perf_counter()
    tolerance, max_sweeps = _check_options(tolerance, max_sweeps, strategy, "raise")
    delta = check_user_items(delta, model.dtype, name="user_items_delta")
    old_data, X_old, Y_old = model._data, model.user_factors, model.item_factors
    (n_users, n_items), k = old_data.shape, model.factors
    shape = (max(n_users, delta.shape[0]), max(n_items, delta.shape[1]))
    threads = model._threads()
    with single_threaded_blas(threads):
        user_norms, item_norms, loss_before = model._measures(threads)
        cert_before = obj.certificate_from_norms(user_norms, item_norms)
        tol = cert_before.max_row if tolerance is None else tolerance

        def grown(m):
            m = m.tocoo()
            return sp.csr_matrix((m.data, (m.row, m.col)), shape=shape)

        merged = check_user_items(grown(model.user_items) + grown(delta), model.dtype)
        coo = delta.tocoo()
        X = np.zeros((shape[0], k), dtype=model.dtype)
        Y = np.zeros((shape[1], k), dtype=model.dtype)
        X[:n_users], Y[:n_items] = X_old, Y_old
        # unchanged rows keep their gradient; new rows start at zero factors
        pad = lambda norms, n: np.concatenate([norms, np.zeros(n - len(norms))])  # noqa: E731
        try:
            model._set_state(X, Y, merged)
            result = _reconverge(model, coo.row.astype(np.int64), coo.col.astype(np.int64), tol,
                                 max_sweeps, strategy, threads, pad(user_norms, shape[0]),
                                 pad(item_norms, shape[1]), show_progress, "Adding")
        except BaseException:
            model._data, model.user_factors, model.item_factors = old_data, X_old, Y_old
            raise
    rows_solved, sweeps, cert_after, loss_after = result
    return ForgetReport(
        n_removed=0, users_affected=len(np.unique(coo.row)),
        items_affected=len(np.unique(coo.col)), rows_solved=sum(rows_solved.values()),
        rows_solved_by_phase=rows_solved, sweeps=sweeps, seconds=time.perf_counter() - start,
        loss_before=loss_before, loss_after=loss_after, certificate_before=cert_before,
        certificate_after=cert_after, tolerance=tol, converged=cert_after.max_row <= tol,
        strategy=strategy, digest=digest_pairs(coo.row.astype(np.int64),
                                               coo.col.astype(np.int64)),
        n_added=int(delta.nnz))
