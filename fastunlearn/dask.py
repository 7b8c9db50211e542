"""Fit, serve and forget on a Dask cluster (docs/design.md, section 9).

Both orientations of the interactions are split into contiguous row blocks
(:mod:`fastunlearn._blocks`) that live on the workers.  A half-sweep ships
each factor row only to the blocks of the other side that hold an entry of
it (the owners' routes), plus the k x k Gram matrix, summed on the client
in block order, so that a fixed data set, seed and block count give the
same factors whatever the number of workers.  A forget schedules only the
blocks that hold disturbed rows: the client keeps, per block, the largest
gradient bound, the largest row norm and the Gram slack not yet applied,
and decides from those alone which blocks need work.

Requires ``dask.distributed`` (``pip install "fastunlearn[dask]"``).
"""
import math

import numpy as np
import scipy.sparse as sp
from distributed import Client

from . import _blocks
from . import forgetting as fg
from . import objective as obj
from . import training
from .models import ExplicitALS, ImplicitALS
from .validation import NotFittedError, check_ids, check_user_items

__all__ = ["DaskExplicitALS", "DaskImplicitALS"]

SIDES = ("users", "items")


class _DaskALS:
    """Shared driver of the distributed estimators; use a subclass."""

    _local = None  # the local estimator class this one equals

    def __init__(self, client, blocks=None, replicas=None, **hyperparameters):
        if not isinstance(client, Client):
            raise TypeError("client must be a dask.distributed.Client, got "
                            f"{type(client).__name__}")
        self.client = client
        self.params = self._local(**hyperparameters).hyperparameters()
        self._spec = self._local(**self.params)  # validated hyperparameters
        workers = sorted(client.scheduler_info()["workers"])
        if not workers:
            raise ValueError("the cluster has no workers")
        _check_no_spill(client)
        self.blocks = len(workers) if blocks is None else blocks
        if isinstance(self.blocks, bool) or not isinstance(self.blocks, (int, np.integer)) \
                or self.blocks < 1:
            raise ValueError(f"blocks must be a positive integer, got {blocks!r}")
        # every committed block on this many workers, so that losing one
        # mid-request leaves the previous state whole (see forget)
        self.replicas = 1 if replicas is None else int(replicas)
        if self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas!r}")
        self._state = None
        self.metadata = {}
        self._pending = (0, 0)

    # ------------------------------------------------------------ properties

    @property
    def objective(self):
        return self._spec.objective

    @property
    def is_fitted(self):
        return self._state is not None

    def _check_fitted(self):
        if self._state is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() "
                                 "or from_local() first")

    @property
    def shape(self):
        self._check_fitted()
        return self._state["shape"]

    @property
    def user_factors(self):
        """All user factors, gathered from the workers."""
        return self._gather_factors("users")

    @property
    def item_factors(self):
        return self._gather_factors("items")

    @property
    def user_items(self):
        """The retained interactions (CSR), gathered from the workers."""
        self._check_fitted()
        parts = self.client.gather([self._at("users", b, _blocks.to_csr_part, block)
                                    for b, block in enumerate(self._state["blocks"]["users"])])
        indptr, indices, data, offset = [np.zeros(1, np.int64)], [], [], 0
        for ptr, ind, val in parts:
            indptr.append(ptr[1:].astype(np.int64) + offset)
            offset += int(ptr[-1])
            indices.append(ind)
            data.append(val)
        return sp.csr_matrix((np.concatenate(data), np.concatenate(indices),
                              np.concatenate(indptr)), shape=self.shape)

    def _gather_factors(self, side):
        self._check_fitted()
        futures = [self._at(side, b, _field, block, "F")
                   for b, block in enumerate(self._state["blocks"][side])]
        return np.concatenate(self.client.gather(futures), axis=0)

    # ------------------------------------------------------------ layout

    def _offsets(self, n):
        """Block boundaries of ``n`` rows: ``self.blocks`` near-equal ranges."""
        parts = min(self.blocks, max(n, 1))
        return np.linspace(0, n, parts + 1).round().astype(np.int64)

    def _place(self, blocks_by_side):
        """Pin each block on a worker (round robin, users and items
        interleaved) and replicate; returns futures."""
        workers = sorted(self.client.scheduler_info()["workers"])
        placed, homes = {}, {}
        for s, side in enumerate(SIDES):
            futures, where = [], []
            for b, block in enumerate(blocks_by_side[side]):
                worker = workers[(b + s) % len(workers)]
                futures.append(self.client.scatter(block, workers=[worker], hash=False))
                where.append(worker)
            placed[side], homes[side] = futures, where
        self._replicate(placed)
        return placed, homes

    def _at(self, side, b, fn, *args):
        """Run ``fn(*args)`` on the worker that holds block ``b`` of ``side``
        (or, once that worker is gone, wherever its inputs are)."""
        home = self._state["homes"][side][b]
        return self.client.submit(fn, *args, pure=False, workers=[home],
                                  allow_other_workers=True)

    def _replicate(self, blocks):
        if self.replicas > 1:
            futures = [f for side in SIDES for f in blocks[side]]
            self.client.replicate(futures, n=self.replicas)

    def _layout(self, csr, X, Y):
        """Blocks of both sides from a global CSR and factors (on the client)."""
        csc_rows = csr.T.tocsr()
        offsets = {"users": self._offsets(csr.shape[0]), "items": self._offsets(csr.shape[1])}
        matrices = {"users": csr, "items": csc_rows}
        factors = {"users": X, "items": Y}
        out = {}
        for side in SIDES:
            other = obj.other_side(side)
            mine, theirs = offsets[side], offsets[other]
            blocks = []
            for b in range(len(mine) - 1):
                lo, hi = mine[b], mine[b + 1]
                routes = {}
                # which of my rows each block of the other side needs
                other_m = matrices[other]
                for t in range(len(theirs) - 1):
                    part = other_m[theirs[t]:theirs[t + 1]]
                    cols = np.unique(part.indices)
                    cols = cols[(cols >= lo) & (cols < hi)] - lo
                    if len(cols):
                        routes[t] = cols.astype(np.int64)
                blocks.append(_blocks.make_block(side, lo, matrices[side][lo:hi],
                                                 factors[side][lo:hi], routes))
            out[side] = blocks
        return offsets, out

    def _owners(self, side, ids):
        """{block: global ids in it} of sorted global ``ids`` of ``side``."""
        offsets = self._state["offsets"][side]
        where = np.searchsorted(offsets, ids, side="right") - 1
        return {int(b): ids[where == b] for b in np.unique(where)}

    # ------------------------------------------------------------ fit

    def fit(self, user_items, show_progress=False):
        """Factorise ``user_items`` (a scipy.sparse matrix on the client) on
        the cluster, exactly as the local estimator would (same start, same
        sweeps, Gram sums in block order).

        Parameters
        ----------
        user_items : scipy.sparse matrix (n_users, n_items), or str
            The interactions, or the path of a Parquet file or directory
            with columns ``user``, ``item`` and ``value`` (integer ids from
            0, which are the row and column numbers; the names as
            ``read_interactions`` recognises them), read by the workers.
        show_progress : bool
            Show a tqdm progress bar, one step per iteration, as a local fit.

        Returns
        -------
        self
        """
        if isinstance(user_items, str):
            user_items = self._read_parquet(user_items)
        csr = check_user_items(user_items, self.spec.dtype)
        # the local fit's start, draw for draw, and its loop (fastunlearn.training)
        X, Y = training.initial_factors(self.spec, *csr.shape, self._spec.random_state)
        self._install(csr, X, Y)
        training.run_sweeps(_DaskBackend(self), self._spec.iterations,
                            show_progress=show_progress, desc=type(self).__name__)
        self._measure()
        self._replicate(self._state["blocks"])
        self._pending = (0, 0)
        return self

    def _read_parquet(self, path):
        """The Parquet dataset at ``path`` (a file or a directory, partitioned
        or not), read by the workers with the package's one reader
        (fastunlearn.readers.parquet; one task per file) and summed into one
        CSR on the client."""
        from .readers.parquet import dataset

        files = dataset(path).files
        parts = self.client.gather([self.client.submit(_read_triples, f, self._spec.dtype,
                                                       pure=False) for f in files])
        shape = (max(p.shape[0] for p in parts), max(p.shape[1] for p in parts))
        total = sp.csr_matrix(shape, dtype=self._spec.dtype)
        for part in parts:  # repeats across files add up, as within a file
            part.resize(shape)
            total = total + part
        return total

    def _install(self, csr, X, Y):
        offsets, blocks = self._layout(csr, X, Y)
        placed, homes = self._place(blocks)
        self._state = {"shape": csr.shape, "offsets": offsets, "blocks": placed, "homes": homes,
                       "nnz": int(csr.nnz), "k": X.shape[1]}
        self._grams()

    def _grams(self, state=None):
        state = self._state if state is None else state
        state["gram"] = {side: self._gram(state["blocks"][side], side) for side in SIDES}

    def _gram(self, blocks, side):
        """``F^T F`` of a side (float64), summed in block order: the same
        matrix whatever the number of workers."""
        parts = self.client.gather([self._at(side, b, _blocks.gram, block)
                                    for b, block in enumerate(blocks)])
        total = np.zeros_like(parts[0])
        for part in parts:
            total += part
        return total

    def _pieces(self, blocks, side, target):
        other = obj.other_side(side)
        futures = []
        for j, owner in enumerate(blocks[other]):
            if target in self._routes[other][j]:
                futures.append(self._at(other, j, _blocks.take_route, owner, target))
        return futures

    @property
    def _routes(self):
        # block -> targets, known on the client from the layout
        state = self._state
        if "route_targets" not in state:
            state["route_targets"] = {
                side: self.client.gather([self._at(side, b, _route_keys, block)
                                          for b, block in enumerate(state["blocks"][side])])
                for side in SIDES}
        return state["route_targets"]

    def _sweep(self, solver, relaxation=None, state=None):
        """One (over-relaxed) ALS iteration over every block, users first."""
        state = self._state if state is None else state
        blocks = state["blocks"]
        for side in SIDES:
            gram_other = state["gram"][obj.other_side(side)]
            new = []
            for b, block in enumerate(blocks[side]):
                pieces = self._pieces(blocks, side, b)
                new.append(self._at(side, b, _blocks.sweep, block, pieces, gram_other,
                                    self.objective, solver, self._threads(), relaxation))
            blocks[side] = new
            state["gram"][side] = self._gram(new, side)

    def _measure(self, state=None):
        """Exact bounds of every row and the loss pieces, from every block."""
        state = self._state if state is None else state
        blocks = state["blocks"]
        data_loss = 0.0
        summaries = {}
        for side in SIDES:
            new, losses = [], []
            gram_other = state["gram"][obj.other_side(side)]
            for b, block in enumerate(blocks[side]):
                pieces = self._pieces(blocks, side, b)
                out = self._at(side, b, _blocks.measure, block, pieces, gram_other,
                               self.objective, self._threads())
                new.append(self._at(side, b, _item, out, 0))
                losses.append(self._at(side, b, _item, out, 1))
            blocks[side] = new
            if side == "users":
                data_loss = float(sum(self.client.gather(losses)))
            summaries[side] = self.client.gather(
                [self._at(side, b, _summary, block) for b, block in enumerate(new)])
        state["summaries"] = {side: [list(s) for s in summaries[side]] for side in SIDES}
        state["drift"] = {side: [None] * len(blocks[side]) for side in SIDES}
        state["data_loss"] = data_loss
        state["exact"] = True

    def _threads(self):
        # resolved on each worker (0: its OMP_NUM_THREADS, else its CPUs)
        return int(self._spec.num_threads)

    # ------------------------------------------------------------ measures

    @staticmethod
    def _drift_norm(state, side, b):
        """Spectral norm of the Gram change block ``b`` has not yet seen."""
        D = state["drift"][side][b]
        return 0.0 if D is None else float(np.abs(np.linalg.eigvalsh(D)).max())

    def _upper(self, state, side, b):
        best, norm, _, _, _ = state["summaries"][side][b]
        return best + self._drift_norm(state, side, b) * norm

    def certificate(self):
        """The certificate from the blocks' summaries: exact after ``fit``
        and washouts, a proven upper bound after masked re-convergence."""
        self._check_fitted()
        return self._certificate(self._state)

    def _certificate(self, state):
        maxes, frob = {}, 0.0
        for side in SIDES:
            uppers = [self._upper(state, side, b) for b in range(len(state["summaries"][side]))]
            maxes[side] = max(uppers) if uppers else 0.0
            for b, (_, _, sq_bounds, sq_norms, _) in enumerate(state["summaries"][side]):
                sigma = self._drift_norm(state, side, b)
                # rows of bound b_i + s |f_i|: by the triangle inequality their
                # norm is at most sqrt(sum b^2) + s sqrt(sum |f|^2)
                frob += (math.sqrt(sq_bounds) + sigma * math.sqrt(sq_norms)) ** 2
        exact = state["exact"] and all(D is None for side in SIDES
                                       for D in state["drift"][side])
        return obj.Certificate(math.sqrt(frob), max(maxes.values()), maxes["users"],
                               maxes["items"], exact)

    def loss(self):
        """The objective on the retained data (from the kept pieces)."""
        self._check_fitted()
        return self._loss(self._state)

    def _loss(self, state):
        objective = self.objective
        summaries = [s for side in SIDES for s in state["summaries"][side]]
        total = state["data_loss"] + objective.penalty(sum(s[3] for s in summaries),
                                                       sum(s[4] for s in summaries))
        if objective.implicit:
            total += float(np.vdot(state["gram"]["users"], state["gram"]["items"]))
        return float(total)

    # ------------------------------------------------------------ serving

    def recommend(self, userids, N=10, filter_already_liked_items=True, filter_items=None):
        """Top-``N`` items by score for each user, as ``ImplicitALS.recommend``
        with the user's training items (the retained ones) filtered.

        Returns
        -------
        ids, scores : arrays (len(userids), N), or (N,) for one user id
        """
        self._check_fitted()
        users, scalar = check_ids(userids, self.shape[0], "userids")
        order = np.argsort(users, kind="stable")
        owners = self._owners("users", users[order])
        state = self._state
        queries = np.zeros((len(users), state["k"]), dtype=self._spec.dtype)
        liked = [np.zeros(0, np.int64)] * len(users)
        position = 0
        for b, ids in owners.items():
            block = state["blocks"]["users"][b]
            rows = self.client.gather(self._at("users", b, _blocks.take_ids, block, ids))
            slots = order[position:position + len(ids)]
            queries[slots] = rows
            if filter_already_liked_items:
                lists = self.client.gather(self._at("users", b, _liked, block, ids))
                for slot, own in zip(slots, lists):
                    liked[slot] = own
            position += len(ids)
        filter_ids = None if filter_items is None else np.asarray(filter_items, np.int64)
        parts = self.client.gather([
            self._at("items", b, _blocks.top_n, block, queries, liked, N, filter_ids)
            for b, block in enumerate(state["blocks"]["items"])])
        ids = np.concatenate([p[0] for p in parts], axis=1)
        scores = np.concatenate([p[1] for p in parts], axis=1)
        n = min(N, ids.shape[1])
        # best first; ties to the lower id, as a stable sort of the scores
        order = np.lexsort((ids, -scores), axis=1)[:, :n]
        ids, scores = np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)
        keep = np.isfinite(scores).all(axis=0) if len(scores) else slice(None)
        if len(scores) and not keep.all():
            width = int(np.isfinite(scores).sum(axis=1).min())
            ids, scores = ids[:, :width], scores[:, :width]
        return (ids[0], scores[0]) if scalar else (ids, scores)

    # ------------------------------------------------------------ forgetting

    def forget(self, userids, itemids, **options):
        """Remove stored (user, item) pairs and re-converge only the blocks
        they disturb; see :meth:`ImplicitALS.forget` (same options, report
        and receipt; the same engine, :mod:`fastunlearn.forgetting.engine`).

        All or nothing: the new blocks become the model's only when every
        step succeeded; on any failure (a worker lost mid-request included)
        the model keeps its previous blocks, which are replicated on
        ``replicas`` workers so that losing one does not lose them.
        """
        self._check_fitted()
        opts = fg.ForgetOptions(**options)
        users, _ = check_ids(userids, self.shape[0], "userids")
        items, _ = check_ids(itemids, self.shape[1], "itemids")
        if users.shape != items.shape:
            raise ValueError(f"userids and itemids must pair up, got {users.size} and "
                             f"{items.size}")
        return fg.remove(_DaskBackend(self), users, items, opts)

    def _stored(self, users, items):
        """Whether each (user, item) pair is stored (asked of the users' blocks)."""
        stored = np.zeros(len(users), dtype=bool)
        where = np.searchsorted(self._state["offsets"]["users"], users, side="right") - 1
        for b in np.unique(where):
            mask = np.flatnonzero(where == b)
            stored[mask] = self.client.gather(self._at(
                "users", int(b), _blocks.stored, self._state["blocks"]["users"][b],
                users[mask], items[mask]))
        return stored

    def forget_users(self, userids, **options):
        """Forget every stored interaction of these users."""
        self._check_fitted()
        opts = fg.ForgetOptions(**options)
        users, _ = check_ids(userids, self.shape[0], "userids")
        return fg.remove(_DaskBackend(self), *self._entries("users", np.unique(users)), opts)

    def forget_items(self, itemids, **options):
        """Forget every stored interaction of these items."""
        self._check_fitted()
        opts = fg.ForgetOptions(**options)
        items, _ = check_ids(itemids, self.shape[1], "itemids")
        items_ids, users_ids = self._entries("items", np.unique(items))
        return fg.remove(_DaskBackend(self), users_ids, items_ids, opts)

    def settle(self, **options):
        """Wash out every pending removal now; see :meth:`ImplicitALS.settle`."""
        self._check_fitted()
        return fg.settle(_DaskBackend(self), fg.ForgetOptions(**options))

    def partial_fit(self, user_items_delta, **options):
        """Add interactions (and users and items) and re-converge; see
        :meth:`ImplicitALS.partial_fit`.  The blocks are laid out afresh
        for the grown data (a pass over it, and every factor row moves
        once between the client and the workers)."""
        self._check_fitted()
        return fg.add(_DaskBackend(self), self.user_items, user_items_delta,
                      fg.ForgetOptions(**options))

    def _entries(self, side, ids):
        """(ids of side, ids of the other side) of the stored entries of ``ids``."""
        out_a, out_b = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for b, rows in self._owners(side, ids).items():
            block = self._state["blocks"][side][b]
            lists = self.client.gather(self._at(side, b, _liked, block, rows))
            for r, own in zip(rows, lists):
                out_a.append(np.full(len(own), r, np.int64))
                out_b.append(own)
        return np.concatenate(out_a), np.concatenate(out_b)

    def _lost_blocks(self):
        """Whether any committed block has no worker holding it any more."""
        futures = [f for side in SIDES for f in self._state["blocks"][side]]
        holders = self.client.who_has(futures)
        return any(not holders.get(f.key) for f in futures)

    @property
    def pending(self):
        """Removed entries and requests no washout has covered yet."""
        return {"entries": self._pending[0], "requests": self._pending[1]}

    @property
    def spec(self):
        """The :class:`~fastunlearn.spec.ModelSpec` the workers receive."""
        return self._spec.spec

    def _remove_entries(self, work, users, items):
        """The entries leave both orientations of ``work``'s blocks; returns
        the users' blocks before (to count the removal's share of the loss)."""
        blocks, older = work["blocks"], {}
        for side, rows, cols in (("users", users, items), ("items", items, users)):
            offsets = work["offsets"][side]
            where = np.searchsorted(offsets, rows, side="right") - 1
            for b in np.unique(where):
                mask = where == b
                if side == "users":
                    older[int(b)] = blocks[side][b]
                blocks[side][b] = self._at(side, b, _blocks.remove, blocks[side][b],
                                           rows[mask] - offsets[b], cols[mask])
        return older

    def _check_blocks(self, work, side, tol):
        """The rows of blocks of ``side`` that may be over ``tol``
        (by block summaries and the Gram change not yet seen), measured:
        returns the rows over it, by block."""
        blocks = work["blocks"]
        over = [b for b in range(len(blocks[side])) if self._upper(work, side, b) > tol]
        plan = {}
        for b in over:
            out = self._at(side, b, _blocks.check, blocks[side][b], work["drift"][side][b], tol)
            blocks[side][b] = self._at(side, b, _item, out, 0)
            work["drift"][side][b] = None
            rows = self.client.gather(self._at(side, b, _item, out, 1))
            if len(rows):
                plan[b] = rows
            else:
                work["summaries"][side][b] = list(self.client.gather(
                    self._at(side, b, _summary, blocks[side][b])))
        return self._recheck(work, side, plan, tol)

    def _recheck(self, work, side, plan, tol):
        """Measure rows ``plan[b]`` (local) of blocks of ``side`` exactly from
        partial sums the owners of their partners compute (k numbers per
        row and owner, not the partners' factors); returns the rows whose
        gradient exceeds ``tol``, by block."""
        blocks, other = work["blocks"], obj.other_side(side)
        offsets = work["offsets"][side]
        finished = {}
        for b, rows in plan.items():
            source = blocks[side][b]
            owners = self.client.gather(self._at(side, b, _blocks.owners_of, source, rows,
                                                 work["offsets"][other]))
            mine = rows + offsets[b]
            X = self._at(side, b, _blocks.take_ids, source, mine)
            partials = [self._at(other, j, _blocks.partial_gradients, blocks[other][j], mine, X,
                                 self.objective)
                        for j in owners]
            out = self._at(side, b, _blocks.finish_norms, source, rows, partials,
                           work["gram"][other] if self.objective.implicit else None,
                           self.objective, tol)
            blocks[side][b] = self._at(side, b, _item, out, 0)
            finished[b] = self._at(side, b, _item, out, 1)
        over = {}
        for b, future in finished.items():
            rows = self.client.gather(future)
            if len(rows):
                over[b] = rows
            else:
                work["summaries"][side][b] = list(self.client.gather(
                    self._at(side, b, _summary, blocks[side][b])))
        return over

    def _solve_plain(self, work, side, plan):
        blocks, other = work["blocks"], obj.other_side(side)
        solver = (bool(self._spec.use_cg), int(self._spec.cg_steps), 0.0)
        for b, rows in plan.items():
            ids = self.client.gather(self._at(side, b, _blocks.entries_of, blocks[side][b],
                                              rows))
            pieces = [self._at(other, j, _blocks.take_ids, blocks[other][j], part)
                      for j, part in self._owners_in(work, other, ids).items()]
            blocks[side][b] = self._at(side, b, _blocks.solve_plain, blocks[side][b], rows, ids,
                                       pieces, work["gram"][other], self.objective, solver,
                                       self._threads())
        work["gram"][side] = self._gram(blocks[side], side)
        return sum(len(rows) for rows in plan.values())

    def _solve_blocks(self, work, side, plan, older=None):
        """Solve rows ``plan[b]`` (local) of blocks of ``side``, routing only
        the other side's rows they need, or the owners' shares of the rows'
        normal equations where those are smaller (:meth:`_by_parts`); apply
        what that does to the other side's bounds and the Gram matrix.
        Returns rows solved."""
        if not plan:
            return 0
        blocks, other = work["blocks"], obj.other_side(side)
        threads = self._threads()
        outs, infos = {}, {}
        for b, rows in plan.items():
            source = blocks[side][b]
            ids = self.client.gather(self._at(
                side, b, _blocks.entries_of, older[b] if older else source, rows))
            owners = self._owners_in(work, other, ids)
            if older is None and self._parts_are_smaller(len(rows), len(ids), len(owners)):
                infos[b] = self._by_parts(work, side, b, rows, owners)
                continue
            pieces = [self._at(other, j, _blocks.take_ids, blocks[other][j], part)
                      for j, part in owners.items()]
            outs[b] = self._at(side, b, _blocks.solve, source, rows, ids, pieces,
                               work["gram"][other], self.objective, threads,
                               older[b] if older else None)
        raises = {}
        for b, out in outs.items():
            blocks[side][b] = self._at(side, b, _item, out, 0)
            infos[b] = self.client.gather(self._at(side, b, _item, out, 1))
            for j, part in self._owners_in(work, other, infos[b]["raise_ids"],
                                           values=infos[b]["raise_by"]).items():
                raises.setdefault(j, []).append(part)
        solved = 0
        for b, info in infos.items():
            solved += info["solved"]
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
            ids = np.concatenate([p[0] for p in parts])
            amounts = np.concatenate([p[1] for p in parts])
            out = self._at(other, j, _blocks.raise_bounds, blocks[other][j], ids, amounts)
            blocks[other][j] = self._at(other, j, _item, out, 0)
            work["summaries"][other][j] = list(self.client.gather(self._at(other, j, _item,
                                                                           out, 1)))
        return solved

    def _parts_are_smaller(self, n_rows, n_partners, n_owners):
        """Whether shipping each owner's share of the rows' normal equations
        (and the partner work after the solve) moves fewer bytes than
        shipping the partners' factors."""
        k = int(self._spec.factors)
        itemsize = np.dtype(self._spec.dtype).itemsize
        rows_bytes = n_partners * k * itemsize
        parts_bytes = n_rows * n_owners * (k * (k + 1) // 2 * itemsize + 4 * k * 8)
        return parts_bytes < rows_bytes

    def _by_parts(self, work, side, b, rows, owners):
        """Solve rows ``rows`` (local) of block ``b`` of ``side`` from the
        owners' shares of their normal equations; the owners then raise
        their rows' bounds and send their shares of the moved rows'
        gradients, from which the block measures them exactly.  Returns the
        solve's info (gathered)."""
        blocks, other = work["blocks"], obj.other_side(side)
        mine = np.asarray(rows, np.int64) + work["offsets"][side][b]
        parts = [self._at(other, j, _blocks.normal_parts, blocks[other][j], mine,
                          self.objective) for j in owners]
        out = self._at(side, b, _blocks.solve_parts, blocks[side][b], rows, parts,
                       work["gram"][other], self.objective)
        solved = self._at(side, b, _item, out, 0)
        moves = self._at(side, b, _moves, out)
        partials, summaries = [], {}
        for j in owners:
            done = self._at(other, j, _blocks.partner_work, blocks[other][j], mine, moves,
                            self.objective)
            blocks[other][j] = self._at(other, j, _item, done, 0)
            summary_and_partials = self._at(other, j, _item, done, 1)
            partials.append(self._at(other, j, _item, summary_and_partials, 1))
            summaries[j] = self._at(other, j, _item, summary_and_partials, 0)
        measured = self._at(side, b, _blocks.finish_norms, solved, rows, partials,
                            work["gram"][other] if self.objective.implicit else None,
                            self.objective, np.inf)
        blocks[side][b] = self._at(side, b, _item, measured, 0)
        # one round trip for everything the driver keeps
        info, summary, *owned = self.client.gather(
            [self._at(side, b, _without_moves, out),
             self._at(side, b, _summary, blocks[side][b]), *summaries.values()])
        for j, kept in zip(summaries, owned):
            work["summaries"][other][j] = list(kept)
        info["summary"] = summary
        return info

    @staticmethod
    def _owners_in(state, side, ids, values=None):
        offsets = state["offsets"][side]
        ids = np.asarray(ids, np.int64)
        where = np.searchsorted(offsets, ids, side="right") - 1
        out = {}
        for b in np.unique(where):
            mask = where == b
            out[int(b)] = ids[mask] if values is None else (ids[mask], values[mask])
        return out

    # ------------------------------------------------------------ moving

    def to_local(self):
        """The equal local estimator (factors, retained data, pending count
        and history)."""
        self._check_fitted()
        model = self._local.from_factors(self.user_factors, self.item_factors,
                                         self.user_items, **self.params)
        model.state.pending = self._pending
        model.metadata = {k: (list(v) if isinstance(v, list) else v)
                          for k, v in self.metadata.items()}
        return model

    @classmethod
    def from_local(cls, client, model, blocks=None, replicas=None):
        """The distributed twin of a fitted local ``model``."""
        if not isinstance(model, cls._local):
            raise TypeError(f"from_local takes a fitted {cls._local.__name__}, got "
                            f"{type(model).__name__}")
        model._check_fitted()
        twin = cls(client, blocks=blocks, replicas=replicas, **model.hyperparameters())
        state = model.state
        twin._install(state.data.user_items(), state.user_factors, state.item_factors)
        twin._measure()
        twin._replicate(twin._state["blocks"])
        twin._pending = state.pending
        twin.metadata = dict(model.metadata)
        return twin

    def save(self, path):
        """Save as the equal local model's file (see :func:`fastunlearn.save`)."""
        return self.to_local().save(path)


class DaskImplicitALS(_DaskALS):
    """:class:`~fastunlearn.ImplicitALS` on a Dask cluster.

    Parameters
    ----------
    client : dask.distributed.Client
    blocks : int, optional
        Row blocks per side (default: one per worker).  The factors depend
        on the block count (through the order of the Gram sums), never on
        the number of workers.
    replicas : int, optional
        Workers holding each committed block (default 1).  With 2 or more a
        request that loses a worker fails cleanly and leaves the model as it
        was; each request then also copies the blocks it changed to the
        other replicas.  With 1, losing a worker loses its blocks: restore
        the model from its last ``save``.
    **hyperparameters
        As :class:`~fastunlearn.ImplicitALS`.
    """

    _local = ImplicitALS


class DaskExplicitALS(_DaskALS):
    """:class:`~fastunlearn.ExplicitALS` on a Dask cluster (parameters as
    :class:`DaskImplicitALS`)."""

    _local = ExplicitALS


class _DaskBackend(fg.Backend):
    """The engine's backend over a distributed model's blocks
    (:class:`fastunlearn.forgetting.engine.Backend`): a request works on a
    copy of the driver's state whose blocks are new futures, and
    :meth:`commit` swaps it in."""

    def __init__(self, model):
        super().__init__()
        self.model, self.spec, self.metadata = model, model.spec, model.metadata
        self.work = None
        self.staged = None

    @property
    def pending(self):
        return self.model._pending

    @pending.setter
    def pending(self, value):
        self.model._pending = value

    @property
    def nnz(self):
        return self.model._state["nnz"]

    @property
    def n_rows(self):
        return sum(self.model.shape)

    def stored(self, users, items):
        return self.model._stored(users, items)

    def sweep(self):
        use_cg, cg_steps = self.spec.solver
        self.model._sweep((use_cg, cg_steps, 0.0))
        return 0  # singular rows keep their value on the workers, uncounted

    def stage_removal(self, users, items):
        self.staged = ("remove", users, items)

    def stage_settle(self):
        self.staged = None

    def stage_addition(self, merged, shape):
        self.staged = ("add", merged, shape)

    def before(self):
        return self.model.loss(), self.model.certificate()

    def apply(self, users, tol, track_loss):
        model = self.model
        self.tol = tol
        self.older = {}
        self.committed = model._state
        if self.staged is not None and self.staged[0] == "add":
            self.work = self._grown(*self.staged[1:])
        else:
            self.work = _copy_state(model._state)
        # the request's blocks are the ones the driver routes to until it ends
        model._state = self.work
        if self.staged is not None and self.staged[0] == "remove":
            self.older = model._remove_entries(self.work, *self.staged[1:])
            self.work["nnz"] -= len(self.staged[1])

    def _grown(self, merged, shape):
        """A new layout of the blocks for the data after an addition (new
        rows start at zero), measured: every block's rows change places."""
        model = self.model
        X, Y = model.user_factors, model.item_factors
        grown = [np.zeros((n, X.shape[1]), X.dtype) for n in shape]
        grown[0][:len(X)], grown[1][:len(Y)] = X, Y
        offsets, blocks = model._layout(merged, *grown)
        placed, homes = model._place(blocks)
        work = {"shape": merged.shape, "offsets": offsets, "blocks": placed, "homes": homes,
                "nnz": int(merged.nnz), "k": X.shape[1]}
        model._state = work  # its routes, not the committed blocks'
        model._grams(work)
        model._measure(work)
        return work

    def local(self, users, items, exact):
        model, work = self.model, self.work
        for side, ids in (("users", users), ("items", items)):
            plan = {b: rows - work["offsets"][side][b]
                    for b, rows in model._owners(side, ids).items()}
            if exact:
                older = {b: self.older[b] for b in plan} if side == "users" and self.older \
                    else None
                self.rows_solved["local"] += model._solve_blocks(work, side, plan, older=older)
                work["exact"] = False
            else:
                self.rows_solved["local"] += model._solve_plain(work, side, plan)

    def washout(self, plan):
        model, work = self.model, self.work
        use_cg, cg_steps = self.spec.solver
        for _ in range(plan.sweeps):
            model._sweep((use_cg, fg.RELAXED_CG_STEPS, fg.RELAXED_CG_RTOL), plan.relaxation,
                         state=work)
        model._sweep((use_cg, cg_steps, 0.0), state=work)
        model._measure(state=work)
        self.rows_solved["washout"] += (plan.sweeps + 1) * self.n_rows

    def masked_pass(self, side):
        solved = self.model._solve_blocks(self.work, side,
                                          self.model._check_blocks(self.work, side, self.tol))
        if solved:
            self.work["exact"] = False  # bounds, no longer measured norms
        self.rows_solved["sweeps"] += solved
        return solved

    def full_sweep(self):
        self.model._sweep((False, 0, 0.0), state=self.work)
        self.model._measure(state=self.work)
        self.rows_solved["sweeps"] += self.n_rows

    def measure(self):
        self.model._measure(state=self.work)

    def certificate(self):
        return self.model._certificate(self.work)

    def loss(self):
        return self.model._loss(self.work)

    def commit(self):
        model = self.model
        model._state = self.work
        model._replicate(self.work["blocks"])
        _release(model.client, self.committed, self.work)

    def rollback(self, error):
        """Nothing of the new blocks becomes the model's; a failure on the
        cluster says whether the model survived it."""
        model = self.model
        if self.work is not None:
            model._state = self.committed
            _release(model.client, self.work, model._state)
        if isinstance(error, (ValueError, TypeError, KeyboardInterrupt)):
            return
        if model._lost_blocks():
            raise RuntimeError(
                f"the request failed on the cluster ({type(error).__name__}: {error}) and "
                "blocks of the model were lost with a worker; with replicas=1 restore the "
                "model from its last save") from error
        raise RuntimeError(
            f"the request failed on the cluster ({type(error).__name__}: {error}), for "
            "example because a worker was lost; the model is unchanged") from error

    def release(self):
        pass


# ---------------------------------------------------------------- worker side
# small module-level functions, so that tasks pickle by reference

def _item(pair, i):
    return pair[i]


def _field(block, name):
    return getattr(block, name)


def _moves(out):
    return out[1]["moves"]


def _without_moves(out):
    return {key: value for key, value in out[1].items() if key != "moves"}


def _summary(block):
    return block.summary()


def _route_keys(block):
    return set(block.routes)


def _liked(block, ids):
    """Global other-side ids of each row ``ids`` (global) of ``block``."""
    out = []
    for r in np.asarray(ids, np.int64) - block.start:
        out.append(block.needed[block.indices[block.indptr[r]:block.indptr[r + 1]]]
                   .astype(np.int64))
    return out


def _read_triples(path, dtype):
    """One Parquet file as CSR, ids as row and column numbers (on a worker)."""
    from .readers.parquet import read_parquet

    matrix, _, _ = read_parquet(path, columns={"user": None, "item": None, "value": None,
                                               "timestamp": None},
                                duplicates="sum", default_value=1.0, positions=True, dtype=dtype)
    return matrix


def _copy_state(state):
    """A copy of the driver's state whose containers can be edited freely
    (the block futures themselves are immutable values)."""
    return {
        "shape": state["shape"], "offsets": state["offsets"], "nnz": state["nnz"],
        "k": state["k"], "homes": state["homes"],
        "blocks": {s: list(state["blocks"][s]) for s in SIDES},
        "gram": {s: state["gram"][s].copy() for s in SIDES},
        "summaries": {s: [list(x) for x in state["summaries"][s]] for s in SIDES},
        "drift": {s: list(state["drift"][s]) for s in SIDES},
        "data_loss": state["data_loss"], "exact": state["exact"],
        "route_targets": state.get("route_targets"),
    }


def _release(client, drop, keep):
    """Let the workers free the blocks of ``drop`` that ``keep`` does not hold."""
    kept = {f.key for s in SIDES for f in keep["blocks"][s]}
    for s in SIDES:
        for f in drop["blocks"][s]:
            if f.key not in kept:
                f.release()


def _check_no_spill(client):
    """Blocks hold interactions that a forget must leave no trace of: a
    worker that may spill them to disk would keep removed pairs in its
    spill files.  Refuse such workers."""
    def spills(dask_worker):
        manager = getattr(dask_worker, "memory_manager", None)
        if manager is None or not manager.memory_limit:
            return False
        return bool(manager.memory_spill_fraction or manager.memory_target_fraction)

    bad = [address for address, flag in client.run(spills).items() if flag]
    if bad:
        raise ValueError(
            f"workers {bad} may spill data to disk, where removed interactions would "
            "survive a forget: start them with '--memory-limit 0' or with "
            "distributed.worker.memory.target and .spill set to False")
