"""The engine's backend in memory (:class:`LocalBackend`) and its parts:
the kept bounds (:class:`_Bounds`), the undo log (:class:`_FactorUndo`)
and the changes to the data (removal, addition, none); docs/design.md,
sections 4-6."""
from dataclasses import replace

import numpy as np

from .. import objective as obj
from ..state import advance_checksum
from ..training import initial_factors, run_sweeps
from .engine import Backend
from .options import EXACT_SLACK, RELAXED_CG_RTOL, RELAXED_CG_STEPS
from .requests import entries_of


class _Bounds:
    """What the engine keeps current through every solve instead of passes
    over the data: an upper bound of each row's gradient norm, the factor
    Gram matrices (implicit), squared row norms and the loss's data term.

    Starts from (copies of) exact or bounded :class:`objective.Measures`; a
    solve of rows R of one side raises the bounds of the other side's rows
    (a) through the entries they share with R and (b) in implicit mode
    through the Gram matrix every row of the other side sees (see
    :class:`LocalBackend`).
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
        self.bases = {}

    def base(self, side, partners, threads):
        """Dense part of A for rows of ``side`` (``partners``: the other
        side's factors), from the kept Gram; built once per Gram change, not
        once per solve or re-check (a small request makes hundreds)."""
        if side not in self.bases:
            gram = self.gram[obj.other_side(side)] if self.objective.implicit else None
            self.bases[side] = obj.dense_part(self.objective, partners, threads, gram=gram)
        return self.bases[side]

    def moved(self, side, rows, old64, new64, norms, partners, data):
        """Rows ``rows`` of ``side`` moved from ``old64`` to ``new64`` (their
        gradient norms now bounded by ``norms``); ``partners`` are the other
        side's factors and ``data`` the stored entries."""
        other = obj.other_side(side)
        self.sq[side][rows] = obj.squared_norms(new64)
        # (a) rows of the other side sharing an entry with the moved rows
        obj.raise_partner_bounds(self.objective, data, side, rows, old64, new64, partners,
                                 self.norms[other])
        # (b) the Gram matrix every row of the other side sees
        if self.objective.implicit:
            delta = new64.T @ new64 - old64.T @ old64
            self.gram[side] += delta
            self.bases.pop(other, None)
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



class LocalBackend(Backend):
    """The engine's backend over a model's :class:`~fastunlearn.state.ModelState`
    in memory: factors, both orientations of the data, the kept measures.

    The bounds and the loss stay current through every solve without a
    pass over the data: a solve of rows R moves the gradient of a row f of
    the other side only through (a) the entries f shares with R: by
    ``|a ((r'.f) r' - (r.f) r) - b (r' - r)|`` per entry, for r moving to
    r' (:func:`objective.raise_partner_bounds`); and (b) in implicit mode
    the Gram matrix: by ``|dG f| <= |dG|_2 |f|``.  A solved row's own bound
    comes from the solve: measured (short rows), or its residual in the
    normal equations plus what float rounding of them can hide
    (:func:`objective.solve_measured`).  Works on copies of the kept
    :class:`objective.Measures` and logs the previous value of every row it
    moves, so that :meth:`rollback` puts everything back.

    Parameters
    ----------
    spec : ModelSpec
    state : ModelState
    metadata : dict
        The model's metadata (its receipt history).
    """

    def __init__(self, spec, state, metadata):
        super().__init__()
        self.spec, self.state, self.metadata = spec, state, metadata
        self.objective = spec.objective
        self.threads = spec.threads()
        self.change = None
        self.asked = (None, None)  # the pairs of the last stored() and their positions
        self.old_terms = None
        self.undo = _FactorUndo()

    # ------------------------------------------------------------ the model

    @property
    def pending(self):
        return self.state.pending

    @pending.setter
    def pending(self, value):
        self.state.pending = value

    @property
    def washouts(self):
        return self.state.washouts

    @washouts.setter
    def washouts(self, value):
        self.state.washouts = value

    @property
    def washout_policy(self):
        return self.state.washout_policy

    @property
    def shape(self):
        return self.state.data.shape

    @property
    def nnz(self):
        return self.state.data.nnz

    def entries(self, ids, side):
        return entries_of(self.state.data, ids, side)

    def user_items(self):
        return self.state.data.user_items()

    @property
    def n_rows(self):
        return self.state.user_factors.shape[0] + self.state.item_factors.shape[0]

    def stored(self, users, items):
        positions = self.state.data.by_user.positions(users, items)
        self.asked = users, positions  # reused by stage_removal for the same pairs
        return positions >= 0

    def sweep(self):
        """One ALS iteration of the model with its own solver (a fit's);
        returns the row solves that met a singular system."""
        state = self.state
        use_cg, cg_steps = self.spec.solver
        return obj.sweep(self.objective, state.data, state.user_factors, state.item_factors,
                         use_cg=use_cg, cg_steps=cg_steps, num_threads=self.threads)

    # ------------------------------------------------------------ changes

    def stage_removal(self, users, items):
        data = self.state.data
        asked, positions = self.asked
        if asked is not users:  # some pairs were not stored and left out
            positions = data.by_user.positions(users, items)
        self.change = _Removal(data, positions, data.by_item.positions(items, users))

    def stage_addition(self, merged, shape):
        self.change = _Addition(self.state, merged, shape, self.spec.factors, self.spec.dtype)

    def stage_settle(self):
        self.change = _NoChange()

    # ------------------------------------------------------------ the request

    def before(self):
        self.measures_before = self.state.measures(self.objective, self.threads)
        return (self.measures_before.loss(self.objective, self.state.data),
                self.measures_before.certificate())

    def apply(self, users, tol, track_loss):
        state = self.state
        self.tol = tol
        if track_loss:  # the masked engine updates the loss from these terms
            existing = self.change.existing(users)
            self.old_terms = obj.data_loss(
                self.objective, state.data, "users", existing, state.user_factors[existing],
                state.item_factors,
                num_threads=threads_for(state.data, "users", existing, self.threads))
        self.change.apply(state)
        self.data = state.data
        self.X, self.Y = state.user_factors, state.item_factors
        self.load(self.change.measures(self.measures_before))
        # factor checksums kept current through the solves, so that the
        # state left is keyed without another read of all factors
        self.checksums = dict(zip(("users", "items"), state.kept_checksums()))
        if self.old_terms is not None:  # the users' entries changed at unchanged factors
            self.kept.data_loss += self.data_terms("users", users, self.X[users]) - self.old_terms

    def load(self, measures, exact=False):
        """Start from (copies of) ``measures`` of the current factors."""
        self.kept = _Bounds(self.objective, measures, self.tol)
        self.exact = measures if exact else None

    def factors(self, side):
        return self.X if side == "users" else self.Y

    def threads_for(self, side, rows):
        return threads_for(self.data, side, rows, self.threads)

    def base(self, side):
        return self.kept.base(side, self.factors(obj.other_side(side)), self.threads)

    def norms(self, side, rows):
        """Gradient norms of ``rows`` of ``side``, or upper bounds of them
        where that cannot change what is solved: the fast pass in the
        factors' dtype first, then the exact one only for the rows whose
        interval ``norm +- slack`` holds the tolerance; every other row is
        then on the same side of it as its exact norm."""
        threads, base = self.threads_for(side, rows), self.base(side)
        fast, slack = obj.gradient_norms(self.objective, self.data, self.X, self.Y, side, rows,
                                         num_threads=threads, base=base,
                                         other_sq=self.kept.sq[obj.other_side(side)])
        unsure = np.flatnonzero(np.abs(fast - self.tol) <= slack)
        out = fast + slack
        if len(unsure):
            out[unsure] = obj.gradient_norms(self.objective, self.data, self.X, self.Y, side,
                                             rows[unsure], base=base,
                                             num_threads=self.threads_for(side, rows[unsure]))
        return out

    def data_terms(self, side, rows, values):
        return obj.data_loss(self.objective, self.data, side, rows, values,
                             self.factors(obj.other_side(side)),
                             num_threads=self.threads_for(side, rows))

    def solve(self, side, rows, phase):
        """Solve ``rows`` (sorted, distinct) exactly and bring every bound and
        the loss up to date."""
        if not len(rows):
            return
        other = obj.other_side(side)
        F = self.factors(side)
        old = F[rows]
        self.undo.record(side, rows, old)
        self.exact = None
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

    def local(self, users, items, exact):
        """Exact solves keep the bounds and the loss current.  By the
        model's own solver (a washout follows, which re-solves and measures
        every row afresh) there is no bookkeeping, and full copies of the
        factors go to the undo log: the exact solves of a 1 % request's
        popular items cost more than a CG sweep of everything."""
        if exact:
            self.solve("users", users, "local")
            self.solve("items", items, "local")
            return
        self.save_all()
        use_cg, cg_steps = self.spec.solver
        for side, rows in (("users", users), ("items", items)):
            obj.solve_rows(self.objective, self.data, self.X, self.Y, side, rows, use_cg=use_cg,
                           cg_steps=cg_steps, num_threads=self.threads_for(side, rows))
            self.rows_solved["local"] += len(rows)

    def save_all(self):
        """Log full copies of both factor matrices, once (every row moves)."""
        if self.undo.record_whole(self.X, self.Y):
            self.checksums = dict.fromkeys(self.checksums)  # read them all after
        self.exact = None

    def washout(self, plan):
        use_cg, cg_steps = self.spec.solver
        self.save_all()
        if plan.refit:
            self._refit()
        else:
            self._relaxed_sweeps(plan, use_cg, cg_steps)
        self.rows_solved["washout"] += plan.full_sweeps(self.spec) * self.n_rows
        # bounds, not exact norms: the masked sweeps measure again the rows
        # whose bound is over the tolerance
        self.load(obj.measure(self.objective, self.data, self.X, self.Y,
                              num_threads=self.threads, bounds=True))

    def _refit(self):
        """The model's own fit on the retained data, from its seed's start
        (the fit's loop, :func:`~fastunlearn.training.run_sweeps`)."""
        X, Y = initial_factors(self.spec, *self.shape, self.spec.random_state)
        self.X[...], self.Y[...] = X, Y
        run_sweeps(self, self.spec.iterations)

    def _relaxed_sweeps(self, plan, use_cg, cg_steps):
        work = {"users": np.empty_like(self.X), "items": np.empty_like(self.Y)}
        for _ in range(plan.sweeps):
            obj.relaxed_sweep(self.objective, self.data, self.X, self.Y, plan.relaxation,
                              use_cg=use_cg, cg_steps=RELAXED_CG_STEPS, cg_rtol=RELAXED_CG_RTOL,
                              num_threads=self.threads, work=work)
        for buffer in work.values():  # rows of the model before the sweeps: wiped
            buffer[...] = 0
        obj.sweep(self.objective, self.data, self.X, self.Y, use_cg=use_cg, cg_steps=cg_steps,
                  num_threads=self.threads)

    def masked_pass(self, side):
        bound = self.kept.norms[side]
        check = np.flatnonzero(bound > self.tol)
        if not len(check):
            return 0
        bound[check] = self.norms(side, check)
        solve = check[bound[check] > self.tol]
        self.solve(side, solve, "sweeps")
        return len(solve)

    def full_sweep(self):
        self.save_all()
        for side in ("users", "items"):
            rows = obj.all_rows(self.factors(side).shape[0])
            obj.solve_rows(self.objective, self.data, self.X, self.Y, side, rows,
                           use_cg=False, cg_steps=0, num_threads=self.threads)
            self.rows_solved["sweeps"] += len(rows)
        self.measure()

    def measure(self):
        self.load(obj.measure(self.objective, self.data, self.X, self.Y,
                              num_threads=self.threads), exact=True)

    def measures(self):
        """The measures the request leaves: exact ones when just measured,
        else the bounds."""
        return self.exact if self.exact is not None else self.kept.measures()

    def certificate(self):
        return self.measures().certificate()

    def loss(self):
        return self.measures().loss(self.objective, self.data)

    def commit(self):
        self.state.remember(self.measures(), (self.checksums["users"], self.checksums["items"]))

    def rollback(self, error):
        self.undo.roll_back(self.state)
        if self.change is not None:
            self.change.revert(self.state)

    def release(self):
        if self.change is not None:
            self.change.wipe()
        self.undo.wipe()


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
    m rows moving from ``old`` to ``new`` (float64).

    Written in the step ``M = new - old``, ``delta = [O; M]^T C [O; M]`` with
    ``C = [[0, I], [I, I]]``, so that a short step does not cancel.  For
    2m < k its nonzero eigenvalues are those of the 2m x 2m ``C W``,
    ``W = [O; M] [O; M]^T`` (with ``[O; M]^T = Q R`` they are those of
    ``R C R^T``, which is similar to ``C R^T R = C W``).  One row (a
    forgotten user's) has the closed form of the rank-2 case: with
    ``a = |n|^2, d = |o|^2, c = n.o`` they are
    ``((a - d) +- sqrt((a - d)^2 + 4 (a d - c^2))) / 2``, where
    ``a - d = 2 o.m + |m|^2`` and ``a d - c^2 = d |m|^2 - (o.m)^2``.
    """
    m = len(old)
    if m == 1:
        o = old[0]
        step = new[0] - o
        om, mm, d = o @ step, step @ step, o @ o
        diff = 2 * om + mm
        return float((abs(diff) + np.sqrt(diff * diff + 4 * max(d * mm - om * om, 0.0))) / 2)
    if 2 * m >= delta.shape[0]:
        return float(np.abs(np.linalg.eigvalsh(delta)).max())
    B = np.concatenate([old, new - old])
    CW = B @ B.T  # then C W: rows 0..m-1 of C W are M's, rows m.. are O's plus M's
    CW = np.concatenate([CW[m:], CW[:m] + CW[m:]])
    return float(np.abs(np.linalg.eigvals(CW)).max())


class _FactorUndo:
    """The undo log of a request: the previous value of every factor row the
    engine moves, newest last, so that a failure puts the factors back
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

    def roll_back(self, state):
        """Put back every logged row of ``state``'s factors, newest first."""
        for side, rows, old in reversed(self.records):
            F = state.user_factors if side == "users" else state.item_factors
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
