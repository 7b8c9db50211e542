"""The forgetting engine's backend over a model's blocks on a Dask cluster
(:class:`fastunlearn.forgetting.engine.Backend`; docs/design.md, section 9).

A request works on a copy of the cluster's state whose blocks are new
futures, and :meth:`DaskBackend.commit` swaps it in.  Masked passes pick
blocks by their summaries alone, measure the candidate rows from partial
sums the owners of their partners compute, and solve them either from the
partners' factors or, where fewer bytes travel, from the owners' shares of
the rows' normal equations; the owners raise their own rows' bounds.
"""
import numpy as np

from .. import forgetting as fg
from .. import objective as obj
from ..training import initial_factors, run_sweeps
from . import blocks as bk
from .cluster import item, summary


def _moves(out):
    return out[1]["moves"]


def _without_moves(out):
    return {key: value for key, value in out[1].items() if key != "moves"}


class DaskBackend(fg.Backend):
    """One request on a distributed model (``model._cluster``; ``model._pending``,
    ``model._washouts``, ``model.washout_policy``)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.cluster = model, model._cluster
        self.spec, self.metadata = model.spec, model.metadata
        self.work = self.committed = None
        self.staged = None

    # ------------------------------------------------------------ the model

    @property
    def pending(self):
        return self.model._pending

    @pending.setter
    def pending(self, value):
        self.model._pending = value

    @property
    def washouts(self):
        return self.model._washouts

    @washouts.setter
    def washouts(self, value):
        self.model._washouts = value

    @property
    def washout_policy(self):
        return self.model.washout_policy

    @property
    def shape(self):
        return self.cluster.state["shape"]

    @property
    def nnz(self):
        return self.cluster.state["nnz"]

    def entries(self, ids, side):
        rows = fg.request_rows(ids, self.shape, side)
        return fg.pairs_of_rows(rows, self.cluster.liked(side, rows), side)

    def user_items(self):
        return self.cluster.user_items()

    @property
    def n_rows(self):
        return sum(self.cluster.state["shape"])

    def stored(self, users, items):
        return self.cluster.stored(users, items)

    def sweep(self):
        self.cluster.sweep((*self.spec.solver, 0.0))
        return 0  # singular rows keep their value on the workers, uncounted

    def stage_removal(self, users, items):
        self.staged = ("remove", users, items)

    def stage_settle(self):
        self.staged = None

    def stage_addition(self, merged, shape):
        self.staged = ("add", merged, shape)

    # ------------------------------------------------------------ the request

    def before(self):
        return self.cluster.loss(), self.cluster.certificate()

    def apply(self, users, tol, track_loss):
        cluster = self.cluster
        self.tol, self.older = tol, {}
        self.committed = cluster.state
        if self.staged is not None and self.staged[0] == "add":
            # a new layout for the grown data (new rows start at zero),
            # measured: every block's rows change places
            merged, shape = self.staged[1:]
            X, Y = cluster.factors("users"), cluster.factors("items")
            grown = [np.zeros((n, X.shape[1]), X.dtype) for n in shape]
            grown[0][:len(X)], grown[1][:len(Y)] = X, Y
            self.work = cluster.install(merged, *grown)
            cluster.measure()
            return
        self.work = cluster.state = cluster.copy()
        if self.staged is not None:
            self.older = cluster.remove(*self.staged[1:])

    def local(self, users, items, exact):
        for side, ids in (("users", users), ("items", items)):
            plan = {b: rows - self.work["offsets"][side][b]
                    for b, rows in self.cluster.owners(side, ids).items()}
            if exact:
                older = self.older if side == "users" else {}
                self.rows_solved["local"] += self._solve(side, plan, older)
                self.work["exact"] = False
            else:
                self.rows_solved["local"] += self._solve_plain(side, plan)

    def washout(self, plan):
        use_cg, cg_steps = self.spec.solver
        if plan.refit:  # the model's own fit from its seed's start, as LocalBackend
            self.cluster.set_factors(*initial_factors(self.spec, *self.shape,
                                                      self.model.params["random_state"]))
            run_sweeps(self, self.spec.iterations)
        else:
            for _ in range(plan.sweeps):
                self.cluster.sweep((use_cg, fg.RELAXED_CG_STEPS, fg.RELAXED_CG_RTOL),
                                   plan.relaxation)
            self.cluster.sweep((use_cg, cg_steps, 0.0))
        self.cluster.measure()
        self.rows_solved["washout"] += plan.full_sweeps(self.spec) * self.n_rows

    def masked_pass(self, side):
        solved = self._solve(side, self._check(side))
        if solved:
            self.work["exact"] = False  # bounds, no longer measured norms
        self.rows_solved["sweeps"] += solved
        return solved

    def full_sweep(self):
        self.cluster.sweep((False, 0, 0.0))
        self.cluster.measure()
        self.rows_solved["sweeps"] += self.n_rows

    def measure(self):
        self.cluster.measure()

    def certificate(self):
        return self.cluster.certificate()

    def loss(self):
        return self.cluster.loss()

    def commit(self):
        self.cluster.replicate()
        self.cluster.release(self.committed)

    def rollback(self, error):
        """Nothing of the new blocks becomes the model's; a failure on the
        cluster says whether the model survived it."""
        cluster = self.cluster
        if self.work is not None:
            cluster.state = self.committed
            cluster.release(self.work)
        if isinstance(error, (ValueError, TypeError, KeyboardInterrupt)):
            return
        if cluster.lost_blocks():
            raise RuntimeError(
                f"the request failed on the cluster ({type(error).__name__}: {error}) and "
                "blocks of the model were lost with a worker; with replicas=1 restore the "
                "model from its last save") from error
        raise RuntimeError(
            f"the request failed on the cluster ({type(error).__name__}: {error}), for "
            "example because a worker was lost; the model is unchanged") from error

    def release(self):
        pass

    # ------------------------------------------------------------ masked work

    def _gram(self, side):
        """The Gram matrix of ``side`` where the rows' equations need it (implicit)."""
        return self.work["gram"][side] if self.spec.objective.implicit else None

    def _keep_summary(self, side, b):
        self.work["summaries"][side][b] = list(self.cluster.gather(
            self.cluster.at(side, b, summary, self.work["blocks"][side][b])))

    def _check(self, side):
        """The rows of ``side`` over the tolerance, by block: blocks whose
        summary (and Gram change not yet seen) allows it are checked, and
        their candidate rows measured exactly from partial sums the owners
        of their partners compute (k numbers a row and owner)."""
        cluster, work, other = self.cluster, self.work, obj.other_side(side)
        blocks, objective = work["blocks"], self.spec.objective
        finished = {}
        for b in [b for b in range(len(blocks[side])) if cluster.upper(side, b) > self.tol]:
            out = cluster.at(side, b, bk.check, blocks[side][b], work["drift"][side][b], self.tol)
            blocks[side][b] = cluster.at(side, b, item, out, 0)
            work["drift"][side][b] = None
            rows = cluster.gather(cluster.at(side, b, item, out, 1))
            if not len(rows):
                self._keep_summary(side, b)
                continue
            source = blocks[side][b]
            owners = cluster.gather(cluster.at(side, b, bk.owners_of, source, rows,
                                               work["offsets"][other]))
            mine = rows + work["offsets"][side][b]
            X = cluster.at(side, b, bk.take_ids, source, mine)
            partials = [cluster.at(other, j, bk.partial_gradients, blocks[other][j], mine, X,
                                   objective) for j in owners]
            out = cluster.at(side, b, bk.finish_norms, source, rows, partials,
                             self._gram(other), objective, self.tol)
            blocks[side][b] = cluster.at(side, b, item, out, 0)
            finished[b] = cluster.at(side, b, item, out, 1)
        over = {}
        for b, future in finished.items():
            rows = cluster.gather(future)
            if len(rows):
                over[b] = rows
            else:
                self._keep_summary(side, b)
        return over

    def _solve_plain(self, side, plan):
        """Re-solve rows ``plan[b]`` (local) with the model's own solver and no
        bookkeeping: the local phase before a washout, which measures afresh."""
        cluster, work, other = self.cluster, self.work, obj.other_side(side)
        blocks = work["blocks"]
        for b, rows in plan.items():
            ids = cluster.gather(cluster.at(side, b, bk.entries_of, blocks[side][b], rows))
            pieces = [cluster.at(other, j, bk.take_ids, blocks[other][j], part)
                      for j, part in cluster.owners(other, ids).items()]
            blocks[side][b] = cluster.at(side, b, bk.sweep, blocks[side][b], pieces,
                                         work["gram"][other], self.spec, (*self.spec.solver, 0.0),
                                         None, rows, ids)
        work["gram"][side] = cluster.gram(side)
        return sum(len(rows) for rows in plan.values())

    def _parts_are_smaller(self, n_rows, n_partners, n_owners):
        """Whether the owners' shares of the rows' normal equations (and the
        partner work after the solve) move fewer bytes than the partners'
        factors."""
        k, itemsize = self.spec.factors, self.spec.dtype.itemsize
        return n_rows * n_owners * (k * (k + 1) // 2 * itemsize + 4 * k * 8) \
            < n_partners * k * itemsize

    def _solve(self, side, plan, older=None):
        """Solve rows ``plan[b]`` (local) of ``side`` exactly, from the
        partners' factors or the owners' shares (:meth:`_by_parts`), and
        apply what that does to the other side's bounds and the Gram
        matrix.  ``older``: blocks before a removal.  Returns rows solved."""
        cluster, work, other = self.cluster, self.work, obj.other_side(side)
        blocks, outs, infos = work["blocks"], {}, {}
        for b, rows in plan.items():
            source = blocks[side][b]
            ids = cluster.gather(cluster.at(side, b, bk.entries_of,
                                            older[b] if older else source, rows))
            owners = cluster.owners(other, ids)
            if not older and self._parts_are_smaller(len(rows), len(ids), len(owners)):
                infos[b] = self._by_parts(side, b, rows, owners)
                continue
            pieces = [cluster.at(other, j, bk.take_ids, blocks[other][j], part)
                      for j, part in owners.items()]
            outs[b] = cluster.at(side, b, bk.solve, source, rows, ids, pieces,
                                 work["gram"][other], self.spec, older[b] if older else None)
        raises = {}
        for b, out in outs.items():
            blocks[side][b] = cluster.at(side, b, item, out, 0)
            infos[b] = cluster.gather(cluster.at(side, b, item, out, 1))
            for j, part in cluster.owners(other, infos[b]["raise_ids"],
                                          infos[b]["raise_by"]).items():
                raises.setdefault(j, []).append(part)
        for b, info in infos.items():
            work["summaries"][side][b] = list(info["summary"])
            work["data_loss"] += info["dloss"]
            if info["delta"] is not None:
                work["gram"][side] = work["gram"][side] + info["delta"]
                # every row f of the other side sees its gradient move by
                # exactly D f, D the Gram change since its bound was set
                drift = work["drift"][other]
                for j, D in enumerate(drift):
                    drift[j] = info["delta"] if D is None else D + info["delta"]
        for j, parts in raises.items():
            out = cluster.at(other, j, bk.raise_bounds, blocks[other][j],
                             np.concatenate([p[0] for p in parts]),
                             np.concatenate([p[1] for p in parts]))
            blocks[other][j] = cluster.at(other, j, item, out, 0)
            work["summaries"][other][j] = list(cluster.gather(cluster.at(other, j, item, out, 1)))
        return sum(info["solved"] for info in infos.values())

    def _by_parts(self, side, b, rows, owners):
        """Solve rows ``rows`` (local) of block ``b`` from the owners' shares
        of their normal equations; the owners then raise their rows' bounds
        and send their shares of the moved rows' gradients, from which the
        block measures them.  Returns the solve's info (gathered)."""
        cluster, work, other = self.cluster, self.work, obj.other_side(side)
        blocks, objective = work["blocks"], self.spec.objective
        mine = np.asarray(rows, np.int64) + work["offsets"][side][b]
        parts = [cluster.at(other, j, bk.normal_parts, blocks[other][j], mine, objective)
                 for j in owners]
        out = cluster.at(side, b, bk.solve_parts, blocks[side][b], rows, parts,
                         work["gram"][other], objective)
        moves = cluster.at(side, b, _moves, out)
        partials, summaries = [], {}
        for j in owners:
            done = cluster.at(other, j, bk.partner_work, blocks[other][j], mine, moves, objective)
            blocks[other][j] = cluster.at(other, j, item, done, 0)
            kept_and_partials = cluster.at(other, j, item, done, 1)
            partials.append(cluster.at(other, j, item, kept_and_partials, 1))
            summaries[j] = cluster.at(other, j, item, kept_and_partials, 0)
        measured = cluster.at(side, b, bk.finish_norms, cluster.at(side, b, item, out, 0), rows,
                              partials, self._gram(other), objective, np.inf)
        blocks[side][b] = cluster.at(side, b, item, measured, 0)
        # one round trip for everything the driver keeps
        info, kept, *owned = cluster.gather(
            [cluster.at(side, b, _without_moves, out),
             cluster.at(side, b, summary, blocks[side][b]), *summaries.values()])
        for j, value in zip(summaries, owned):
            work["summaries"][other][j] = list(value)
        info["summary"] = kept
        return info
