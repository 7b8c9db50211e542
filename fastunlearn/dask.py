"""Fit, serve and forget on a Dask cluster (docs/design.md, section 9).

The estimators hold hyperparameters and a :class:`~.distributed.cluster.Cluster`
(the model's row blocks on the workers); forgetting runs the one engine
(:mod:`fastunlearn.forgetting`) over :class:`~.distributed.backend.DaskBackend`.

Requires ``dask.distributed`` (``pip install "fastunlearn[dask]"``).
"""
import warnings
from dataclasses import replace

import numpy as np
import scipy.sparse as sp
from distributed import Client

from . import training
from .distributed import blocks as bk
from .distributed.backend import DaskBackend
from .distributed.cluster import Cluster
from .models import ExplicitALS, ImplicitALS
from .unlearning import Unlearning
from .validation import NotFittedError, check_ids, check_user_items

__all__ = ["DaskExplicitALS", "DaskImplicitALS"]

# below this many stored entries per block, a block's work is a few
# milliseconds and the scheduler's round trips (about 1 ms a task) dominate
MIN_ENTRIES_PER_BLOCK = 200_000


class _DaskALS(Unlearning):
    """Shared driver of the distributed estimators; use a subclass."""

    _local = None  # the local estimator class this one equals

    def __init__(self, client, blocks=None, replicas=None, **hyperparameters):
        if not isinstance(client, Client):
            raise TypeError("client must be a dask.distributed.Client, got "
                            f"{type(client).__name__}")
        self.client = client
        self._model = self._local(**hyperparameters)  # validated hyperparameters
        workers = client.scheduler_info()["workers"]
        if not workers:
            raise ValueError("the cluster has no workers")
        _check_no_spill(client)
        self.blocks, self.replicas = _check_layout(blocks, replicas, len(workers))
        self._cluster = None
        self.metadata = {}
        self._pending, self._washouts = (0, 0), 0

    # ------------------------------------------------------------ parameters

    @property
    def params(self):
        """The local estimator's hyperparameters (what a saved file keeps)."""
        return self._model.hyperparameters()

    def hyperparameters(self):
        return self.params

    def _policy_holder(self):
        # the local estimator that holds the hyperparameters holds the policy
        return self._model.state

    def get_params(self, deep=True):
        """The constructor's arguments (scikit-learn's estimator protocol)."""
        return {"client": self.client, "blocks": self.blocks, "replicas": self.replicas,
                **self.params}

    def set_params(self, **params):
        """Set constructor arguments, validated (scikit-learn's protocol).  The
        fitted blocks stay: a new ``blocks`` takes effect at the next fit,
        ``replicas`` at the next request, hyperparameters at once.

        Returns
        -------
        self
        """
        layout = {name: params.pop(name) for name in ("blocks", "replicas") if name in params}
        if "client" in params:
            raise ValueError("client cannot be changed: build a new estimator")
        blocks, replicas = _check_layout(layout.get("blocks", self.blocks),
                                         layout.get("replicas", self.replicas),
                                         len(self.client.scheduler_info()["workers"]))
        self._model.set_params(**params)  # validates (and leaves it as it was on error)
        self.blocks, self.replicas = blocks, replicas
        if self._cluster is not None:
            self._cluster.spec, self._cluster.replicas = self.spec, self.replicas
        return self

    def __sklearn_clone__(self):
        # the client is a connection the clone shares, not a value to copy
        return type(self)(self.client, blocks=self.blocks, replicas=self.replicas,
                          **self.params)

    @property
    def spec(self):
        """The :class:`~fastunlearn.spec.ModelSpec` the workers receive: the
        local estimator's, less the seed, which only the client draws from
        (a ``RandomState`` would travel with every task)."""
        return replace(self._model.spec, random_state=None)

    @property
    def objective(self):
        return self._model.objective

    # ------------------------------------------------------------ state

    @property
    def is_fitted(self):
        return self._cluster is not None

    def _check_fitted(self):
        if self._cluster is None:
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() "
                                 "or from_local() first")

    def _factors_changed(self):
        pass  # no serving caches on the client

    def _backend(self):
        return DaskBackend(self)

    @property
    def shape(self):
        self._check_fitted()
        return self._cluster.state["shape"]

    @property
    def user_factors(self):
        """All user factors, gathered from the workers."""
        self._check_fitted()
        return self._cluster.factors("users")

    @property
    def item_factors(self):
        self._check_fitted()
        return self._cluster.factors("items")

    @property
    def user_items(self):
        """The retained interactions (CSR), gathered from the workers."""
        self._check_fitted()
        return self._cluster.user_items()

    # ------------------------------------------------------------ fit

    def fit(self, user_items, show_progress=True):
        """Factorise ``user_items`` on the cluster, exactly as the local
        estimator would (same start, same sweeps, Gram sums in block order).

        Parameters
        ----------
        user_items : scipy.sparse matrix (n_users, n_items), or str
            The interactions, or the path of a Parquet file or directory
            with columns ``user``, ``item`` and ``value`` (integer ids from
            0, which are the row and column numbers; the names as
            ``read_interactions`` recognises them), read by the workers.
        show_progress : bool
            A tqdm progress bar, one step per iteration, as a local fit.

        Returns
        -------
        self
        """
        if isinstance(user_items, str):
            user_items = self._read_parquet(user_items)
        csr = check_user_items(user_items, self.spec.dtype)
        n_workers = len(self.client.scheduler_info()["workers"])
        if self.blocks >= 2 * n_workers and csr.nnz < MIN_ENTRIES_PER_BLOCK * self.blocks:
            warnings.warn(
                f"blocks={self.blocks} on {n_workers} workers for {csr.nnz} entries: blocks of "
                f"under {MIN_ENTRIES_PER_BLOCK} entries cost more in scheduling than they "
                f"save; blocks={n_workers} (one per worker) is faster here", RuntimeWarning,
                stacklevel=2)
        X, Y = training.initial_factors(self.spec, *csr.shape, self._model.random_state)
        cluster = Cluster(self.client, self.spec, self.blocks, self.replicas)
        cluster.install(csr, X, Y)
        training.run_sweeps(_Sweeps(cluster), self._model.iterations,
                            show_progress=show_progress, desc=type(self).__name__)
        cluster.measure()
        cluster.replicate()
        self._cluster, self._pending, self._washouts = cluster, (0, 0), 0
        return self

    def _read_parquet(self, path):
        """The Parquet dataset at ``path`` (a file or a directory), read by
        the workers with the package's reader (one task per file) and
        summed into one CSR on the client."""
        from .readers.parquet import dataset

        parts = self.client.gather([self.client.submit(_read_triples, f, self.spec.dtype,
                                                       pure=False)
                                    for f in dataset(path).files])
        shape = (max(p.shape[0] for p in parts), max(p.shape[1] for p in parts))
        total = sp.csr_matrix(shape, dtype=self.spec.dtype)
        for part in parts:  # repeats across files add up, as within a file
            part.resize(shape)
            total = total + part
        return total

    def certificate(self):
        """The certificate from the blocks' summaries: exact after ``fit``
        and washouts, a proven upper bound after masked re-convergence."""
        self._check_fitted()
        return self._cluster.certificate()

    def loss(self):
        """The objective on the retained data (from the kept pieces)."""
        self._check_fitted()
        return self._cluster.loss()

    # ------------------------------------------------------------ serving

    def recommend(self, userids, N=10, filter_already_liked_items=True, filter_items=None):
        """Top-``N`` items by score for each user, as ``ImplicitALS.recommend``
        with the user's retained training items filtered.

        Returns
        -------
        ids, scores : arrays (len(userids), N), or (N,) for one user id
            ids as int32, as the local model's.
        """
        self._check_fitted()
        cluster = self._cluster
        users, scalar = check_ids(userids, self.shape[0], "userids")
        order = np.argsort(users, kind="stable")
        queries = np.zeros((len(users), cluster.state["k"]), dtype=self.spec.dtype)
        position = 0
        for b, ids in cluster.owners("users", users[order]).items():
            queries[order[position:position + len(ids)]] = cluster.gather(cluster.at(
                "users", b, bk.take_ids, cluster.state["blocks"]["users"][b], ids))
            position += len(ids)
        liked = [np.zeros(0, np.int64)] * len(users)
        if filter_already_liked_items:
            for slot, own in zip(order, cluster.liked("users", users[order])):
                liked[slot] = own
        filter_ids = None if filter_items is None else np.asarray(filter_items, np.int64)
        ids, scores = cluster.top_n(queries, liked, N, filter_ids)
        # best first; ties to the lower id, as a stable sort of the scores
        best = np.lexsort((ids, -scores), axis=1)[:, :min(N, ids.shape[1])]
        ids, scores = np.take_along_axis(ids, best, 1), np.take_along_axis(scores, best, 1)
        if len(scores):
            width = int(np.isfinite(scores).sum(axis=1).min())
            ids, scores = ids[:, :width], scores[:, :width]
        ids = ids.astype(np.int32)
        return (ids[0], scores[0]) if scalar else (ids, scores)

    # ------------------------------------------------------------ moving

    def to_local(self):
        """The equal local estimator (factors, retained data, pending and
        washout counts, washout policy, history)."""
        self._check_fitted()
        model = self._local.from_factors(self.user_factors, self.item_factors,
                                         self.user_items, **self.params)
        model.state.pending, model.state.washouts = self._pending, self._washouts
        model.washout_policy = self.washout_policy
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
        cluster = Cluster(client, twin.spec, twin.blocks, twin.replicas)
        cluster.install(state.data.user_items(), state.user_factors, state.item_factors)
        cluster.measure()
        cluster.replicate()
        twin._cluster, twin._pending, twin._washouts = cluster, state.pending, state.washouts
        twin.washout_policy = state.washout_policy
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
        Row blocks per side (default: one per worker).  More blocks than
        workers pay only when each holds a few hundred thousand entries or
        more: every block is a task per half-sweep (about a millisecond of
        scheduling each), and a small data set in many blocks fits many
        times slower (a warning says so).  The factors depend on the block
        count (through the order of the Gram sums), never on the number of
        workers.
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


class _Sweeps:
    """The fit loop's view of a cluster (``training.run_sweeps``)."""

    def __init__(self, cluster):
        self.cluster = cluster

    def sweep(self):
        self.cluster.sweep((*self.cluster.spec.solver, 0.0))
        return 0  # singular rows keep their value on the workers, uncounted


def _check_layout(blocks, replicas, n_workers):
    blocks = n_workers if blocks is None else blocks
    if isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) or blocks < 1:
        raise ValueError(f"blocks must be a positive integer, got {blocks!r}")
    # every committed block on this many workers, so that losing one
    # mid-request leaves the previous state whole (see DaskBackend.rollback)
    replicas = 1 if replicas is None else replicas
    if isinstance(replicas, bool) or not isinstance(replicas, (int, np.integer)) \
            or replicas < 1:
        raise ValueError(f"replicas must be a positive integer, got {replicas!r}")
    return int(blocks), int(replicas)


def _read_triples(path, dtype):
    """One Parquet file as CSR, ids as row and column numbers (on a worker)."""
    from .readers.parquet import read_parquet

    matrix, _, _ = read_parquet(path, columns={"user": None, "item": None, "value": None,
                                               "timestamp": None},
                                duplicates="sum", default_value=1.0, positions=True, dtype=dtype)
    return matrix


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
