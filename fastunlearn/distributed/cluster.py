"""A model's blocks on a Dask cluster and the whole-model passes over them
(docs/design.md, section 9).

:class:`Cluster` lays both orientations of the interactions out in
contiguous row blocks (:mod:`.blocks`), pins them on workers, and runs
sweeps and measurements over them.  A half-sweep ships each factor row
only to the blocks of the other side that hold an entry of it (the
owners' routes), plus the k x k Gram matrix, summed on the client in block
order, so that a data set, seed and block count give the same factors
whatever the number of workers.  The client keeps, per block, its summary
(largest gradient bound, largest row norm, sums for the certificate and
the penalty) and the Gram change its rows have not yet seen, from which
alone a forget decides which blocks need work (:mod:`.backend`).
"""
import math

import numpy as np
import scipy.sparse as sp

from .. import objective as obj
from . import blocks as bk

SIDES = ("users", "items")


def item(pair, i):
    return pair[i]


def field(block, name):
    return getattr(block, name)


def summary(block):
    return block.summary()


def route_keys(block):
    return set(block.routes)


class Cluster:
    """Where a distributed model's blocks live, and the passes over them.

    ``state`` is a dict: ``shape``, ``offsets`` (block boundaries per side),
    ``blocks`` and ``homes`` (futures and workers per side), ``nnz``, ``k``,
    ``gram`` (float64 per side), ``summaries`` and ``drift`` (per block),
    ``data_loss`` and ``exact``.  A request works on a copy (:meth:`copy`)
    whose blocks are new futures; committing swaps it in.
    """

    def __init__(self, client, spec, blocks, replicas):
        self.client, self.spec, self.blocks, self.replicas = client, spec, blocks, replicas
        self.state = None

    # ------------------------------------------------------------ placement

    def at(self, side, b, fn, *args):
        """Run ``fn(*args)`` on the worker holding block ``b`` of ``side`` (or,
        once it is gone, wherever the inputs are)."""
        return self.client.submit(fn, *args, pure=False, allow_other_workers=True,
                                  workers=[self.state["homes"][side][b]])

    def gather(self, futures):
        return self.client.gather(futures)

    def offsets(self, n):
        """Block boundaries of ``n`` rows: ``blocks`` near-equal ranges."""
        return np.linspace(0, n, min(self.blocks, max(n, 1)) + 1).round().astype(np.int64)

    def install(self, csr, X, Y):
        """A state for data ``csr`` and factors ``X``, ``Y`` (on the client),
        laid out, placed and with its Gram matrices; made current."""
        offsets = {"users": self.offsets(csr.shape[0]), "items": self.offsets(csr.shape[1])}
        matrices = {"users": csr, "items": csr.T.tocsr()}
        factors = {"users": X, "items": Y}
        workers = sorted(self.client.scheduler_info()["workers"])
        placed, homes = {}, {}
        for s, side in enumerate(SIDES):
            other = obj.other_side(side)
            mine, theirs = offsets[side], offsets[other]
            placed[side], homes[side] = [], []
            for b in range(len(mine) - 1):
                lo, hi = mine[b], mine[b + 1]
                routes = {}  # which of my rows each block of the other side needs
                for t in range(len(theirs) - 1):
                    cols = np.unique(matrices[other][theirs[t]:theirs[t + 1]].indices)
                    cols = cols[(cols >= lo) & (cols < hi)] - lo
                    if len(cols):
                        routes[t] = cols.astype(np.int64)
                block = bk.make_block(side, lo, matrices[side][lo:hi], factors[side][lo:hi],
                                      routes)
                worker = workers[(b + s) % len(workers)]  # users and items interleaved
                placed[side].append(self.client.scatter(block, workers=[worker], hash=False))
                homes[side].append(worker)
        self.state = {"shape": csr.shape, "offsets": offsets, "blocks": placed, "homes": homes,
                      "nnz": int(csr.nnz), "k": X.shape[1]}
        self.state["gram"] = {side: self.gram(side) for side in SIDES}
        return self.state

    def set_factors(self, X, Y):
        """Every block's factors replaced by its rows of ``X`` / ``Y`` (bounds stale)."""
        for side, F in zip(SIDES, (X, Y)):
            offsets, blocks = self.state["offsets"][side], self.state["blocks"][side]
            for b in range(len(blocks)):
                blocks[b] = self.at(side, b, bk.with_factors, blocks[b],
                                    F[offsets[b]:offsets[b + 1]])
            self.state["gram"][side] = self.gram(side)

    def replicate(self):
        if self.replicas > 1:
            self.client.replicate([f for s in SIDES for f in self.state["blocks"][s]],
                                  n=self.replicas)

    def copy(self):
        """A copy of the state whose containers can be edited freely (the
        block futures themselves are immutable values)."""
        state = self.state
        out = dict(state)
        out["blocks"] = {s: list(state["blocks"][s]) for s in SIDES}
        out["gram"] = {s: state["gram"][s].copy() for s in SIDES}
        out["summaries"] = {s: [list(x) for x in state["summaries"][s]] for s in SIDES}
        out["drift"] = {s: list(state["drift"][s]) for s in SIDES}
        return out

    def release(self, drop):
        """Let the workers free the blocks of state ``drop`` the current one does not hold."""
        kept = {f.key for s in SIDES for f in self.state["blocks"][s]}
        for f in (f for s in SIDES for f in drop["blocks"][s]):
            if f.key not in kept:
                f.release()

    def lost_blocks(self):
        """Whether any current block has no worker holding it any more."""
        futures = [f for side in SIDES for f in self.state["blocks"][side]]
        holders = self.client.who_has(futures)
        return any(not holders.get(f.key) for f in futures)

    def owners(self, side, ids, values=None):
        """{block: the ``ids`` (global) of ``side`` in it}, or {block: (ids,
        values)} when ``values`` pair with them."""
        ids = np.asarray(ids, np.int64)
        where = np.searchsorted(self.state["offsets"][side], ids, side="right") - 1
        return {int(b): ids[where == b] if values is None else (ids[where == b],
                                                                values[where == b])
                for b in np.unique(where)}

    # ------------------------------------------------------------ gathering

    def factors(self, side):
        return np.concatenate(self.gather([self.at(side, b, field, block, "F") for b, block
                                           in enumerate(self.state["blocks"][side])]), axis=0)

    def user_items(self):
        """The retained interactions (CSR), gathered from the users' blocks."""
        parts = self.gather([self.at("users", b, bk.to_csr_part, block)
                             for b, block in enumerate(self.state["blocks"]["users"])])
        starts = np.cumsum([0] + [int(p[0][-1]) for p in parts])
        indptr = np.concatenate([[0]] + [p[0][1:].astype(np.int64) + s
                                         for p, s in zip(parts, starts)])
        return sp.csr_matrix((np.concatenate([p[2] for p in parts]),
                              np.concatenate([p[1] for p in parts]), indptr),
                             shape=self.state["shape"])

    def liked(self, side, ids):
        """The other side's ids stored with each of ``ids`` (sorted, global)."""
        out = []
        for b, rows in self.owners(side, ids).items():
            out += self.gather(self.at(side, b, bk.liked, self.state["blocks"][side][b], rows))
        return out

    def stored(self, users, items):
        """Whether each (user, item) pair is stored (asked of the users' blocks)."""
        out = np.zeros(len(users), dtype=bool)
        where = np.searchsorted(self.state["offsets"]["users"], users, side="right") - 1
        for b in np.unique(where):
            mask = np.flatnonzero(where == b)
            out[mask] = self.gather(self.at("users", int(b), bk.stored,
                                            self.state["blocks"]["users"][b], users[mask],
                                            items[mask]))
        return out

    def remove(self, users, items):
        """The entries leave both orientations; returns the users' blocks
        before (to count the removal's share of the loss)."""
        blocks, older = self.state["blocks"], {}
        for side, rows, cols in (("users", users, items), ("items", items, users)):
            offsets = self.state["offsets"][side]
            for b, (ids, other) in self.owners(side, rows, cols).items():
                if side == "users":
                    older[b] = blocks[side][b]
                blocks[side][b] = self.at(side, b, bk.remove, blocks[side][b], ids - offsets[b],
                                          other)
        self.state["nnz"] -= len(users)
        return older

    # ------------------------------------------------------------ passes

    def gram(self, side):
        """``F^T F`` of a side (float64), summed in block order."""
        parts = self.gather([self.at(side, b, bk.gram, block)
                             for b, block in enumerate(self.state["blocks"][side])])
        total = parts[0].copy()
        for part in parts[1:]:
            total += part
        return total

    def routes(self):
        """Per side and block, the blocks of the other side its routes serve."""
        if self.state.get("route_targets") is None:
            self.state["route_targets"] = {
                side: self.gather([self.at(side, b, route_keys, block)
                                   for b, block in enumerate(self.state["blocks"][side])])
                for side in SIDES}
        return self.state["route_targets"]

    def pieces(self, side, target):
        """Futures of the other side's rows that block ``target`` of ``side`` needs."""
        other = obj.other_side(side)
        return [self.at(other, j, bk.take_route, owner, target)
                for j, owner in enumerate(self.state["blocks"][other])
                if target in self.routes()[other][j]]

    def sweep(self, solver, relaxation=None):
        """One (over-relaxed) ALS iteration over every block, users first."""
        state = self.state
        for side in SIDES:
            gram_other = state["gram"][obj.other_side(side)]
            state["blocks"][side] = [
                self.at(side, b, bk.sweep, block, self.pieces(side, b), gram_other, self.spec,
                        solver, relaxation)
                for b, block in enumerate(state["blocks"][side])]
            state["gram"][side] = self.gram(side)

    def measure(self):
        """Exact bounds of every row and the loss's data term, from every block."""
        state = self.state
        for side in SIDES:
            gram_other = state["gram"][obj.other_side(side)]
            outs = [self.at(side, b, bk.measure, block, self.pieces(side, b), gram_other,
                            self.spec) for b, block in enumerate(state["blocks"][side])]
            state["blocks"][side] = [self.at(side, b, item, out, 0) for b, out in enumerate(outs)]
            if side == "users":
                state["data_loss"] = float(sum(self.gather(
                    [self.at(side, b, item, out, 1) for b, out in enumerate(outs)])))
            state.setdefault("summaries", {})[side] = [list(s) for s in self.gather(
                [self.at(side, b, summary, f) for b, f in enumerate(state["blocks"][side])])]
            state.setdefault("drift", {})[side] = [None] * len(outs)
        state["exact"] = True

    # ------------------------------------------------------------ measures

    def drift_norm(self, side, b):
        """Spectral norm of the Gram change block ``b`` has not yet seen."""
        D = self.state["drift"][side][b]
        return 0.0 if D is None else float(np.abs(np.linalg.eigvalsh(D)).max())

    def upper(self, side, b):
        """A proven bound on the largest gradient of block ``b``'s rows."""
        best, norm = self.state["summaries"][side][b][:2]
        return best + self.drift_norm(side, b) * norm

    def certificate(self):
        """The certificate from the blocks' summaries: exact after a
        measurement, a proven upper bound after masked re-convergence."""
        state, maxes, frob = self.state, {}, 0.0
        for side in SIDES:
            maxes[side] = max([self.upper(side, b) for b in range(len(state["summaries"][side]))]
                              or [0.0])
            for b, (_, _, sq_bounds, sq_norms, _) in enumerate(state["summaries"][side]):
                # rows of bound b_i + s |f_i|: by the triangle inequality their
                # norm is at most sqrt(sum b^2) + s sqrt(sum |f|^2)
                frob += (math.sqrt(sq_bounds) + self.drift_norm(side, b)
                         * math.sqrt(sq_norms)) ** 2
        exact = state["exact"] and all(D is None for s in SIDES for D in state["drift"][s])
        return obj.Certificate(math.sqrt(frob), max(maxes.values()), maxes["users"],
                               maxes["items"], exact)

    def loss(self):
        """The objective on the retained data, from the kept pieces."""
        objective, state = self.spec.objective, self.state
        summaries = [s for side in SIDES for s in state["summaries"][side]]
        total = state["data_loss"] + objective.penalty(sum(s[3] for s in summaries),
                                                       sum(s[4] for s in summaries))
        if objective.implicit:
            total += float(np.vdot(state["gram"]["users"], state["gram"]["items"]))
        return float(total)

    def top_n(self, queries, liked, N, filter_ids):
        """Best ``N`` items of every block for each query: (ids, scores), all blocks."""
        parts = self.gather([self.at("items", b, bk.top_n, block, queries, liked, N, filter_ids)
                             for b, block in enumerate(self.state["blocks"]["items"])])
        return (np.concatenate([p[0] for p in parts], axis=1),
                np.concatenate([p[1] for p in parts], axis=1))
