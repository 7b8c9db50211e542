"""The estimators: :class:`ImplicitALS` (implicit 0.7's objective and
conventions) and :class:`ExplicitALS` (ratings); the drop-in
``AlternatingLeastSquares`` is in :mod:`fastunlearn.dropin`.

They hold parameters and one :class:`~fastunlearn.state.ModelState`
(factors, retained interactions, kept measures, pending removals), serve through
:class:`~fastunlearn.serving.FactorModel`, and delegate every computation
to :mod:`fastunlearn.objective` (solves, loss, certificate),
:mod:`fastunlearn.forgetting` (unlearning) and
:mod:`fastunlearn.persistence` (files).
"""
import inspect
import logging

import numpy as np
import scipy.sparse as sp

from . import forgetting, persistence, training
from . import objective as obj
from .config import single_threaded_blas
from .serving import FactorModel, _fit_columns
from .spec import ModelSpec
from .state import ModelState
from .validation import (
    ANY_ID,
    MAX_FACTORS,
    MAX_THREADS,
    ModelFitError,
    NotFittedError,
    check_dtype,
    check_factors,
    check_ids,
    check_nonnegative_float,
    check_positive_int,
    check_user_items,
)

log = logging.getLogger("fastunlearn")


def _parameters(init):
    """Hyperparameter names: the constructor's arguments, in order (one place)."""
    return tuple(inspect.signature(init).parameters)[1:]


class MatrixFactorization(FactorModel):
    """Shared implementation of both estimators; use a subclass."""

    _implicit = None  # set by subclasses
    _param_names = ()

    # ------------------------------------------------------------ parameters

    def _check_params(self):
        check_positive_int(self.factors, "factors", maximum=MAX_FACTORS)
        check_positive_int(self.iterations, "iterations", minimum=0)
        check_positive_int(self.cg_steps, "cg_steps")
        check_nonnegative_float(self.regularization, "regularization")
        if isinstance(self.num_threads, bool) or not isinstance(self.num_threads, (int, np.integer)) \
                or not 0 <= self.num_threads <= MAX_THREADS:
            raise ValueError(f"num_threads must be an integer in [0, {MAX_THREADS}], "
                             f"got {self.num_threads!r}")
        self.dtype = check_dtype(self.dtype)

    def hyperparameters(self):
        """Every hyperparameter of this model (what a file keeps), as a dict."""
        return {name: getattr(self, name) for name in self._param_names}

    def get_params(self, deep=True):
        """The constructor's arguments, as a dict (scikit-learn's estimator
        protocol; ``deep`` changes nothing: no argument is an estimator).

        The drop-in's constructor is implicit's, without ``cg_steps``:
        :meth:`hyperparameters` has them all.
        """
        names = _parameters(type(self).__init__)
        return {name: getattr(self, name) for name in names if hasattr(self, name)}

    def set_params(self, **params):
        """Set hyperparameters (scikit-learn's protocol), validated as the
        constructor validates them; the fitted state stays.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For a name that is not a hyperparameter, or an invalid value
            (the model is then left as it was).
        """
        unknown = sorted(set(params) - set(self._param_names))  # cg_steps included
        if unknown:
            raise ValueError(f"invalid parameter(s) {unknown} for {type(self).__name__}; "
                             f"valid ones: {list(self._param_names)}")
        old = self.hyperparameters()
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self._check_params()
        except BaseException:
            for name, value in old.items():
                setattr(self, name, value)
            raise
        return self

    @property
    def spec(self):
        """The :class:`~fastunlearn.spec.ModelSpec` of these hyperparameters:
        what the engine, persistence and the Dask workers receive."""
        return ModelSpec(self.objective, int(self.factors), np.dtype(self.dtype),
                         bool(self.use_cg), int(self.cg_steps), int(self.num_threads))

    def _backend(self):
        return forgetting.LocalBackend(self.spec, self._state, self.metadata)

    @classmethod
    def _from_params(cls, **params):
        """A model with hyperparameters ``params`` (as :meth:`get_params` gives)."""
        return cls(**params)

    def _assign(self, params):
        """Set the constructor arguments ``params`` and an unfitted state."""
        for name in self._param_names:
            setattr(self, name, params[name])
        self._state = ModelState()  # unfitted: no factors, no data
        self.metadata = {}  # external id maps and forget receipts (see persistence)
        self._check_params()

    # ------------------------------------------------------------ state

    @property
    def state(self):
        """The :class:`~fastunlearn.state.ModelState` this model composes:
        factors, retained interactions, kept measures and pending removals
        (what forgetting and persistence work on)."""
        return self._state

    @property
    def user_factors(self):
        """User factors, array (n_users, k); None before a fit.

        May be replaced or edited in place (as implicit allows): the kept
        measures are keyed by a fingerprint of the factors, so they are
        measured again after any change.
        """
        return self._state.user_factors

    @user_factors.setter
    def user_factors(self, value):
        self._state.user_factors = value

    @property
    def item_factors(self):
        """Item factors, array (n_items, k); None before a fit (see :attr:`user_factors`)."""
        return self._state.item_factors

    @item_factors.setter
    def item_factors(self, value):
        self._state.item_factors = value

    def __setstate__(self, state):
        if "_state" not in state:  # pickled before ModelState: loose attributes
            state = dict(state)
            state["_state"] = ModelState(
                state.pop("user_factors", None), state.pop("item_factors", None),
                state.pop("_data", None), state.pop("_measured", None),
                tuple(state.pop("_pending", (0, 0))))
        self.__dict__.update(state)

    @property
    def user_items(self):
        """The retained training interactions (users x items CSR, read-only view).

        A view of the model's own storage: ``forget`` edits it in place, so
        take ``.copy()`` to keep a snapshot across a request.
        """
        self._check_fitted()
        m = self._state.data.user_items()
        for arr in (m.data, m.indices, m.indptr):
            arr.flags.writeable = False
        return m

    @property
    def is_fitted(self):
        """Whether the model holds factors and the interactions they were trained on."""
        return self._state.is_fitted

    @staticmethod
    def _for_kind(kind):
        """The estimator of a model file's ``kind`` ("implicit" or "explicit")."""
        return ImplicitALS if kind == "implicit" else ExplicitALS

    def _check_fitted(self):
        """Require factors and training data (loss, certificate, forget, ...)."""
        self._check_factors()
        if self._state.data is None:
            raise NotFittedError(
                f"this {type(self).__name__} has factors but not the interactions they were "
                "trained on (loaded from an implicit file, or factors set by hand), so it can "
                "serve but not forget: take it over with ImplicitALS.from_implicit(model, "
                "user_items), or fit it"
            )

    @classmethod
    def from_factors(cls, user_factors, item_factors, user_items, **hyperparameters):
        """A fitted model from factors trained by any procedure, without training.

        Parameters
        ----------
        user_factors : array (n_users, k)
        item_factors : array (n_items, k)
        user_items : scipy.sparse matrix (n_users, n_items)
            The interactions the factors were trained on; they become the
            retained data that ``forget`` removes from and ``loss`` measures.
        **hyperparameters
            Constructor arguments (``regularization``, ``alpha``, ...); they
            must match the objective the factors were trained for.
            ``factors`` defaults to k and ``dtype`` to the factors' dtype.

        Returns
        -------
        model : cls
        """
        user_factors = np.asarray(user_factors)
        hyperparameters.setdefault("factors", user_factors.shape[-1] if user_factors.ndim else 0)
        if "dtype" not in hyperparameters:
            dt = np.result_type(user_factors, np.asarray(item_factors))
            hyperparameters["dtype"] = dt if dt in (np.float32, np.float64) else np.float64
        model = cls._from_params(**hyperparameters)
        model._check_params()
        k = model.factors
        X = check_factors(user_factors, "user_factors", model.dtype, k)
        Y = check_factors(item_factors, "item_factors", model.dtype, k)
        csr = check_user_items(user_items, model.dtype)
        if csr.shape != (X.shape[0], Y.shape[0]):
            raise ValueError(
                f"user_items has shape {csr.shape} but the factors describe "
                f"{X.shape[0]} users x {Y.shape[0]} items"
            )
        model.state.install(X, Y, csr)
        return model

    # ------------------------------------------------------------ training

    def fit(self, user_items, show_progress=True, callback=None, *, warm_start=False):
        """Factorise ``user_items`` with alternating least squares.

        Parameters
        ----------
        user_items : scipy.sparse matrix (n_users, n_items)
            Interactions; CSR preferred (other formats are converted once).
        show_progress : bool
            Show a tqdm progress bar.
        callback : callable, optional
            Called after each iteration as ``callback(iteration, seconds, loss)``;
            ``loss`` is the unnormalised objective when
            ``calculate_training_loss`` is set, else None.
        warm_start : bool
            Continue from the current factors (which must match the shape of
            ``user_items``; they may have been set by hand) instead of a
            fresh random start.

        Returns
        -------
        self

        Raises
        ------
        MemoryError
            Before allocating anything, when the estimated peak memory
            (:func:`fastunlearn.resources.estimate_fit_memory`) exceeds what
            is available.
        ModelFitError
            When the factors became NaN or infinite (confidences that
            overflow the dtype); the model is left as it was before the call.

        Notes
        -----
        Interrupting ``fit`` (``KeyboardInterrupt``, or any exception raised
        by ``callback``) leaves a consistent, usable model: if it happens
        before the new data is installed, the model is exactly as it was
        (possibly unfitted); after that, the model holds the new data and the
        factors after a whole number of completed half-sweeps (every row of
        the users or items solved; a half-sweep is one compiled call, which
        an interrupt cannot split), so loss, certificate, forget and save
        all work, and ``fit(..., warm_start=True)`` continues from there.
        """
        from .resources import check_memory, estimate_fit_memory
        from .validation import check_sparse

        self._check_params()
        # before the input is copied: a fit that cannot fit in memory should
        # fail now with a clear message, not half-way through in SciPy
        check_sparse(user_items)
        check_memory(estimate_fit_memory(*user_items.shape, user_items.nnz, self.factors,
                                         self.dtype, threads=self._threads()))
        csr = check_user_items(user_items, self.dtype)
        n_users, n_items = csr.shape
        k = self.factors
        if warm_start and self.user_factors is not None and self.item_factors is not None:
            if self.user_factors.shape != (n_users, k) or self.item_factors.shape != (n_items, k):
                raise ValueError(
                    f"warm_start needs factors of shape ({n_users}, {k}) and ({n_items}, {k}), "
                    f"the model has {self.user_factors.shape} and {self.item_factors.shape}"
                )
            X = np.array(self.user_factors, dtype=self.dtype, order="C")
            Y = np.array(self.item_factors, dtype=self.dtype, order="C")
        else:
            X, Y = training.initial_factors(self.spec, n_users, n_items, self.random_state)
        # Installed before the first sweep: an interruption leaves a consistent
        # (if less converged) model rather than factors of one data set
        # paired with interactions of another.  Installing is several
        # assignments; an interruption between them puts the old state back.
        state = self._state
        previous = state.snapshot()
        try:
            self._factors_changed()
            state.install(X, Y, csr)
            state.pending = (0, 0)  # a fit is a retrain: nothing left to wash out
        except BaseException:
            state.restore(previous)
            state.measured = None
            raise
        self._run_sweeps(self.iterations, show_progress, callback)
        if not (np.isfinite(self.user_factors).all() and np.isfinite(self.item_factors).all()):
            # NaN factors cannot serve or forget: keep the model as it was
            state.restore(previous)
            state.measured = None
            raise ModelFitError(
                "NaN encountered in factors: the confidences alpha * |value| overflow "
                f"{self.dtype}, or the problem is singular; scale the data or alpha down, or "
                "use regularization > 0")
        # measured now, while the factors are hot in cache: the first forget
        # (and a saved file's first forget after load) then starts warm
        with single_threaded_blas():
            state.measures(self.objective, self._threads())
        return self

    def _run_sweeps(self, iterations, show_progress, callback):
        training.run_sweeps(self._backend(), iterations, show_progress=show_progress,
                            desc=type(self).__name__, callback=callback,
                            loss=self._training_loss if self.calculate_training_loss else None)

    def _training_loss(self):
        """The loss ``fit`` shows and passes to its callback."""
        return self.loss()

    # ------------------------------------------------------------ measures

    def loss(self):
        """The objective (docs/design.md, section 2, unnormalised) on the retained data.

        implicit reports the same quantity divided by the total confidence
        plus the number of unstored entries.
        """
        self._check_fitted()
        state = self._state
        kept = state.current_measures()
        if kept is not None:
            return kept.loss(self.objective, state.data)
        return obj.loss(self.objective, state.data, state.user_factors, state.item_factors,
                        num_threads=self._threads())

    def certificate(self):
        """Stationarity certificate: norms of every row gradient ``A x - b``.

        Always computed exactly (one pass over the data per side, unless this
        state was measured exactly before); the result is kept, so that a
        following ``forget`` starts from it without another pass.

        Returns
        -------
        Certificate
            ``frobenius`` and ``max_row`` (plus each side's ``max_row``); zero
            exactly when the factors are a stationary point of the objective
            on the retained data.
        """
        self._check_fitted()
        threads = self._threads()
        with single_threaded_blas():
            return self._state.measures(self.objective, threads, exact=True).certificate()

    # ------------------------------------------------------------ forgetting

    def forget(self, userids, itemids=None, **options):
        """Remove stored interactions and re-converge to the retained objective.

        Parameters
        ----------
        userids, itemids : array of int
            Paired ids of the interactions to remove; or pass one
            scipy.sparse matrix (model-shaped) whose stored entries are them.
        tolerance : float, optional
            Target for the certificate's ``max_row``.  Default: the model's
            certificate before the removal (after an earlier request, the
            proven bound it left), so forgetting never leaves the model less
            converged than it was.
        max_sweeps : int, default 50
            Most masked (or full) sweeps after the local phase.
        strategy : {"masked", "full"}
            "masked" re-solves only rows whose gradient exceeds the tolerance;
            "full" is plain Unlearn-ALS (warm start, full sweeps), the baseline.
        missing : {"raise", "ignore"}
            What to do with pairs that are not stored.
        washout : "auto" (default) or int
            Completeness.  A stationary point is not enough: along directions
            in which ALS converges slowly a removal's trace outlives the
            certificate, and membership inference still tells the forgotten
            pairs from held-out ones.  A washout removes it: one
            over-relaxed sweep, one plain sweep with the model's solver and
            an exact measurement, about three fit iterations' work.
            ``"auto"`` washes out when the removals not yet washed out, this
            one included, reach 0.1 % of the stored entries (``pending_limit``
            overrides the count), and otherwise leaves this removal pending:
            certified stationary now, washed out by a later request or by
            :meth:`settle`.  An int ``N > 0`` washes out now with ``N``
            over-relaxed sweeps; 0 never washes out in this call, which
            saves that cost and leaves the trace (the removal stays
            pending).  ``report.settled`` and ``report.pending_entries``
            say where the model stands.
        pending_limit : int, optional
        exact_certificate : bool
            Measure ``certificate_after`` exactly (a pass over the data per
            side).  By default the masked strategy reports the engine's
            proven upper bound (``certificate_after.exact`` is False), which
            costs nothing, and measures only when that bound misses the
            tolerance; the full strategy and a washout always measure.
        show_progress : bool

        Returns
        -------
        ForgetReport
            Counts, timings, loss and certificate before and after, whether
            the model is settled, and a keyed digest (HMAC-SHA256) of the
            removed pairs with its key, ``receipt_key``, which is returned
            here only; never the pairs themselves.

        Notes
        -----
        All-or-nothing: on any error or interruption the model is left
        exactly as it was.  Row solves outside the washout are exact
        (Cholesky) whatever ``use_cg`` says, because the masked sweeps rely
        on a solved row being stationary.
        """
        self._check_fitted()
        options = forgetting.ForgetOptions(**options)
        shape = self._state.data.shape
        if sp.issparse(userids) and itemids is None:
            users, items = forgetting.pairs_from_request(shape, userids, None)
        else:
            if itemids is None:
                raise ValueError("forget needs itemids paired with userids (or one sparse "
                                 "matrix); use forget_users to remove whole users")
            users, items = forgetting.pairs_from_request(shape, userids, itemids)
        self._factors_changed()
        return forgetting.remove(self._backend(), users, items, options)

    def forget_users(self, userids, **options):
        """Remove every interaction of ``userids`` (see :meth:`forget` for options)."""
        self._check_fitted()
        options = forgetting.ForgetOptions(**options)
        users, items = forgetting.entries_of(self._state.data, userids, "users")
        self._factors_changed()
        return forgetting.remove(self._backend(), users, items, options)

    def forget_items(self, itemids, **options):
        """Remove every interaction with ``itemids`` (see :meth:`forget` for options)."""
        self._check_fitted()
        options = forgetting.ForgetOptions(**options)
        users, items = forgetting.entries_of(self._state.data, itemids, "items")
        self._factors_changed()
        return forgetting.remove(self._backend(), users, items, options)

    @property
    def pending(self):
        """Removals no washout has covered yet: ``{"entries": n, "requests": m}``.

        Bounded: a default ``forget`` washes out once the entries reach 0.1 %
        of the stored ones; :meth:`settle` washes them out now.
        """
        entries, requests = self._state.pending
        return {"entries": int(entries), "requests": int(requests)}

    def settle(self, **options):
        """Wash out every pending removal now (see ``washout`` in :meth:`forget`).

        Does nothing (and costs nothing beyond the certificate) when nothing
        is pending.  The command line calls it before it saves a model.
        Options as :meth:`forget` (``tolerance``, ``max_sweeps``,
        ``strategy``, ``washout`` as the number of over-relaxed sweeps,
        ``exact_certificate``, ``show_progress``).

        Returns
        -------
        SettleReport
        """
        self._check_fitted()
        self._factors_changed()
        return forgetting.settle(self._backend(), forgetting.ForgetOptions(**options))

    def partial_fit(self, user_items_delta, **options):
        """Add interactions (and new users/items) and re-converge to the
        objective of a retrain on all the data.

        ``user_items_delta`` is a sparse matrix whose stored entries are added
        to the retained data (summed where a pair is already stored); it may
        have more rows or columns than the model, which then grows (new rows
        start at zero and are solved).  Options as :meth:`forget`, except
        that ``washout="auto"`` runs none (additions leave no trace to wash
        out, and pending removals stay pending).

        Returns
        -------
        PartialFitReport
            With ``n_added`` set and ``n_removed == 0``.
        """
        self._check_fitted()
        self._factors_changed()
        return forgetting.add(self._backend(), self._state.data.user_items(), user_items_delta,
                              forgetting.ForgetOptions(**options))

    def partial_fit_users(self, userids, user_items):
        """Replace the interactions of ``userids`` and re-converge (implicit's signature).

        implicit re-solves only these users' rows against fixed item
        factors.  Here the rows replace the users' stored interactions and
        the whole model re-converges, with :meth:`forget` (entries the rows
        no longer hold, or hold with another value) and :meth:`partial_fit`
        (the new ones), to what a retrain on the new data minimises.  Ids
        beyond the model add users (any in between get empty rows), columns
        beyond it add items.

        Parameters
        ----------
        userids : array of int
        user_items : scipy.sparse matrix (len(userids), n_items)
            Each user's whole history, one row per id; the last row of a
            repeated id wins.

        Returns
        -------
        removal, addition : ForgetReport or None
            The two requests, None where one had nothing to do (the removal
            carries the receipt key of what left).  A model without its
            training data (loaded from an implicit file) re-solves only
            these rows, as implicit does, and returns ``(None, None)``.
        """
        return self._partial_fit_rows("users", userids, user_items)

    def partial_fit_items(self, itemids, item_users):
        """Replace the interactions of ``itemids`` (rows of ``item_users``,
        items x users) and re-converge; see :meth:`partial_fit_users`."""
        return self._partial_fit_rows("items", itemids, item_users)

    def _partial_fit_rows(self, side, ids, rows):
        from .validation import check_sparse

        name, id_name = ("user_items", "userids") if side == "users" else ("item_users", "itemids")
        self._check_factors()
        ids, _ = check_ids(ids, ANY_ID, id_name)
        check_sparse(rows, name)
        if rows.shape[0] != len(ids):
            raise ValueError(f"{name} must contain 1 row for every id in {id_name}: "
                             f"{len(ids)} ids, {rows.shape[0]} rows")
        rows = check_user_items(rows, self.dtype, name=name)
        if not len(ids):
            return None, None
        # the last row of a repeated id wins, as implicit's assignment does
        ids, last = np.unique(ids[::-1], return_index=True)
        rows = rows[rows.shape[0] - 1 - last]
        data = self._state.data
        if data is None:
            self._update_rows(side, ids, rows)
            return None, None
        n_rows, n_cols = data.shape if side == "users" else data.shape[::-1]
        width = max(n_cols, rows.shape[1])
        new = rows.tocoo()
        new_r, new_c, new_v = ids[new.row], new.col.astype(np.int64), new.data
        existing = ids[ids < n_rows]
        old = data.side(side).matrix()[existing].tocoo()
        old_r, old_c, old_v = existing[old.row], old.col.astype(np.int64), old.data
        # entries stored with the same value before and after stay untouched
        _, at_old, at_new = np.intersect1d(old_r * width + old_c, new_r * width + new_c,
                                           assume_unique=True, return_indices=True)
        same = old_v[at_old] == new_v[at_new]
        leave = np.ones(len(old_r), bool)
        leave[at_old[same]] = False
        arrive = np.ones(len(new_r), bool)
        arrive[at_new[same]] = False
        shape = (max(n_rows, int(ids[-1]) + 1), width)
        if not leave.any() and not arrive.any() and shape == (n_rows, n_cols):
            return None, None
        # both steps aim at the certificate the model had before the call:
        # the second would otherwise take over whatever the first reached
        with single_threaded_blas():
            before = self._state.measures(self.objective, self._threads())
        tolerance = before.certificate().max_row
        removal = addition = None
        if leave.any():
            pairs = (old_r[leave], old_c[leave])
            removal = self.forget(*(pairs if side == "users" else pairs[::-1]),
                                  tolerance=tolerance)
        if arrive.any() or shape != (n_rows, n_cols):
            r, c = new_r[arrive], new_c[arrive]
            if side == "items":
                r, c, shape = c, r, shape[::-1]
            addition = self.partial_fit(sp.csr_matrix((new_v[arrive], (r, c)), shape=shape),
                                        tolerance=tolerance)
        return removal, addition

    def _update_rows(self, side, ids, rows):
        """implicit's partial fit, for a model without training data: solve
        these rows against the fixed other side, growing with zero rows."""
        from .validation import IdOutOfRangeError

        n_other = (self.item_factors if side == "users" else self.user_factors).shape[0]
        if rows.nnz and rows.indices.max() >= n_other:
            raise IdOutOfRangeError(
                f"the rows hold ids beyond the model's {n_other} columns; a model without "
                "training data cannot grow there (take it over with from_implicit first)")
        rows = sp.csr_matrix((rows.data, rows.indices, rows.indptr), shape=(len(ids), n_other))
        fresh = self._recalculate(side, rows.astype(np.float64))
        name = "user_factors" if side == "users" else "item_factors"
        F = getattr(self, name)
        if ids[-1] >= F.shape[0]:
            F = np.concatenate([F, np.zeros((ids[-1] + 1 - F.shape[0], F.shape[1]), F.dtype)])
        F[ids] = fresh
        setattr(self, name, F)
        self._factors_changed()

    # ------------------------------------------------------------ persistence

    def save(self, fileobj_or_path):
        """Write the model to one ``.npz`` file (see :func:`fastunlearn.save`).

        ``fileobj_or_path`` is a path (".npz" appended when missing; written
        atomically) or a writable binary file object.
        """
        return persistence.save(self, fileobj_or_path)

    @classmethod
    def load(cls, fileobj_or_path):
        """Load a model saved by fastunlearn, or by implicit 0.7 (factors only).

        See :func:`fastunlearn.load`; returns an instance of this class.
        """
        return persistence.load_as(cls, fileobj_or_path)


class ImplicitALS(MatrixFactorization):
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008), the conventions
    and constructor of ``implicit.cpu.als.AlternatingLeastSquares`` 0.7
    (:class:`AlternatingLeastSquares` follows implicit's factory and API).

    Minimises ``sum_{all u,i} c_ui (p_ui - x_u.y_i)^2 + regularization (|X|^2 + |Y|^2)``
    with ``c = alpha |r|``, ``p = [r > 0]`` on stored entries and ``c = 1,
    p = 0`` elsewhere.

    Parameters
    ----------
    factors : int
        Latent dimension k.
    regularization : float
    alpha : float
        Confidence scale of stored values.
    dtype : float32 or float64
    use_native : bool
        Accepted for compatibility and ignored (the kernels are always native).
    use_cg : bool
        Conjugate-gradient solves (``cg_steps`` per row per iteration) instead
        of exact Cholesky solves.
    iterations : int
    calculate_training_loss : bool
        Compute the loss after every iteration (passed to the callback).
    num_threads : int
        Kernel threads; 0 = all usable CPUs (honours OMP_NUM_THREADS).
    random_state : int, Generator, RandomState or None
        Seed of the initial factors (``uniform[0, 0.01)``, users first).
    cg_steps : int, keyword-only
        CG steps per row per iteration (implicit's default 3).

    Examples
    --------
    >>> from fastunlearn import AlternatingLeastSquares
    >>> model = AlternatingLeastSquares(factors=64, iterations=10)
    >>> model.fit(user_items)                                   # doctest: +SKIP
    >>> ids, scores = model.recommend(0, user_items[0], N=10)   # doctest: +SKIP
    """

    _implicit = True

    def __init__(self, factors=100, regularization=0.01, alpha=1.0, dtype=np.float32,
                 use_native=True, use_cg=True, iterations=15, calculate_training_loss=False,
                 num_threads=0, random_state=None, *, cg_steps=3):
        self._assign(locals())

    _param_names = _parameters(__init__)

    def _check_params(self):
        super()._check_params()
        check_nonnegative_float(self.alpha, "alpha", strictly_positive=True)

    @property
    def objective(self):
        """The :class:`~fastunlearn.objective.Objective` these factors minimise."""
        return obj.Objective(implicit=True, regularization=float(self.regularization),
                             alpha=float(self.alpha))

    @classmethod
    def from_implicit(cls, model, user_items, **overrides):
        """Take over a model fitted by ``implicit`` (CPU or GPU) to serve and forget.

        Parameters
        ----------
        model : implicit.als.AlternatingLeastSquares, path or file object
            Any object with ``user_factors``, ``item_factors`` and implicit's
            hyperparameter attributes (GPU models are moved with
            ``to_cpu()``), or a file written by its ``save`` (or by
            fastunlearn's).
        user_items : scipy.sparse matrix
            The matrix the model was fitted on.
        **overrides
            Constructor arguments to use instead of the model's.

        Returns
        -------
        model : cls
            Fitted, holding ``user_items``; as :meth:`from_factors`, the
            first request pays one exact measurement.
        """
        import os

        if isinstance(model, (str, os.PathLike)) or hasattr(model, "read"):
            model = persistence.load_as(MatrixFactorization, model)
            if not model._implicit:
                raise ValueError("from_implicit needs an implicit-feedback model, the file "
                                 "holds an ExplicitALS")
        if hasattr(model, "to_cpu") and not isinstance(getattr(model, "user_factors", None),
                                                        np.ndarray):
            model = model.to_cpu()
        # implicit's models have every constructor argument but cg_steps
        params = {name: getattr(model, name) for name in cls._param_names
                  if hasattr(model, name)}
        params.setdefault("cg_steps", 3)
        params.update(overrides)
        return cls.from_factors(model.user_factors, model.item_factors, user_items, **params)


    def explain(self, userid, user_items, itemid, user_weights=None, N=10):
        """Split the score of ``itemid`` for a user over the items they liked
        (implicit's ``explain``, section 5 of Hu, Koren and Volinsky 2008).

        The user's factors solve ``A x = b`` with ``A = Y^T C_u Y + lam I``
        and ``b = Y^T C_u p_u``, so ``y_i . x`` is the sum over the user's
        items j with ``c_uj >= 0`` of ``c_uj y_i^T A^-1 y_j``.

        Parameters
        ----------
        userid : int
            The row of ``user_items`` to explain (row 0 if it has only one).
        user_items : scipy.sparse matrix (users x items)
            The interactions, or the user's row alone; the user's factors
            are solved from it, so new users work too.  Its width need not
            be the model's, as long as its ids are items of the model.
        itemid : int
        user_weights : tuple, optional
            The Cholesky factor of ``A`` an earlier call returned for this user.
        N : int
            How many contributions to return.

        Returns
        -------
        total_score : float
        top_contributions : list of (itemid, score)
            The ``N`` largest, largest first (ties: larger id first).
        user_weights : tuple
            ``scipy.linalg.cho_factor(A)``, for further calls for this user.
        """
        from scipy.linalg import cho_factor, cho_solve

        from .validation import IdOutOfRangeError, check_sparse

        self._check_factors()
        check_sparse(user_items)
        Y = self.item_factors
        (item,), _ = check_ids(itemid, Y.shape[0], "itemid")
        (user,), _ = check_ids(userid, ANY_ID, "userid")
        N = check_positive_int(N, "N", minimum=0)
        user_items = _fit_columns(user_items, Y.shape[0], "user_items")
        if user_items.shape[0] != 1 and user >= user_items.shape[0]:
            raise IdOutOfRangeError(f"userid {user} is not a row of user_items "
                                    f"({user_items.shape[0]} rows)")
        row = check_user_items(sp.csr_matrix(user_items)[user if user_items.shape[0] > 1 else 0],
                               np.float64)
        confidence = float(self.alpha) * row.data
        if user_weights is None:
            liked = Y[row.indices].astype(np.float64)
            A = self.YtY.astype(np.float64)
            A[np.diag_indices_from(A)] += float(self.regularization)
            A += (liked * (np.abs(confidence) - 1)[:, None]).T @ liked
            user_weights = cho_factor(A)
        weighted_item = cho_solve(user_weights, Y[item].astype(np.float64))
        # negative values say "not liked": they shape A but add nothing to b
        keep = confidence >= 0
        ids = row.indices[keep]
        scores = (Y[ids].astype(np.float64) @ weighted_item) * confidence[keep]
        order = np.lexsort((ids, scores))[::-1][:N]
        top = [(int(ids[j]), float(scores[j])) for j in order]
        return float(scores.sum()), top, user_weights


class ExplicitALS(MatrixFactorization):
    """ALS for explicit ratings (matrix completion).

    Minimises ``sum_{(u,i) stored} (r_ui - x_u.y_i)^2 + regularization
    (sum_u w_u |x_u|^2 + sum_i w_i |y_i|^2)`` with ``w = 1``, or, with
    ``weighted_regularization=True`` (ALS-WR), ``w`` = the row's number of
    ratings.  Users and items without ratings get zero factors.

    Parameters
    ----------
    factors, dtype, iterations, calculate_training_loss, num_threads, random_state
        As :class:`ImplicitALS`.
    regularization : float
    weighted_regularization : bool
    use_cg : bool
        Default False: exact Cholesky solves.

    ``predict`` returns predicted ratings.
    """

    _implicit = False

    def __init__(self, factors=100, regularization=0.1, weighted_regularization=False,
                 dtype=np.float32, use_cg=False, iterations=15, calculate_training_loss=False,
                 num_threads=0, random_state=None, *, cg_steps=3):
        self._assign(locals())

    _param_names = _parameters(__init__)

    @property
    def objective(self):
        """The :class:`~fastunlearn.objective.Objective` these factors minimise."""
        return obj.Objective(implicit=False, regularization=float(self.regularization),
                             weighted=bool(self.weighted_regularization))


def load(path):
    """Load a model written by :func:`save`, or by implicit 0.7's ``save``.

    Parameters
    ----------
    path : str, os.PathLike or file object
        ``path + ".npz"`` is tried when ``path`` does not exist; a file
        object must be seekable (as for ``numpy.load``).

    Returns
    -------
    ImplicitALS or ExplicitALS
        From an implicit file: an :class:`ImplicitALS` holding the factors
        and hyperparameters only, which serves (``recommend``,
        ``similar_items``, ...); ``ImplicitALS.from_implicit(path,
        user_items)`` adds the training data it needs to forget.

    Raises
    ------
    ModelFileError
        When the file is not a fastunlearn (or implicit ALS) model, is
        truncated or corrupt, has another format version, holds object
        (pickled) arrays, or its arrays disagree with each other.  The
        message names the file and the problem.
    FileNotFoundError
        When neither ``path`` nor ``path + ".npz"`` exists.
    MemoryError
        When the arrays the file declares do not fit in the available
        memory (see :func:`fastunlearn.resources.check_memory`).
    """
    return persistence.load_as(MatrixFactorization, path)
