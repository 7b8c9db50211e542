"""Training: the fit loop, once for every backend (the initial factors a
fit starts from and the sweeps that follow), and the estimators' fitting
façade (:class:`Fitting`: ``fit``, ``loss``, ``certificate``);
docs/design.md, section 6."""
import time
import warnings

import numpy as np
from tqdm.auto import tqdm

from . import objective as obj
from .config import single_threaded_blas
from .resources import check_memory, estimate_fit_memory
from .validation import ModelFitError, check_sparse, check_user_items


def initial_generator(random_state):
    """The Generator that draws a fit's initial factors, from what implicit accepts
    as a seed (the local and the distributed fit draw the same)."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    return np.random.default_rng(random_state)


def initial_factors(spec, n_users, n_items, random_state):
    """``uniform[0, 0.01)`` factors of ``spec``'s shape and dtype, users first
    (implicit's start)."""
    rng = initial_generator(random_state)
    # scaled in place: no temporary as large as the factors (what
    # resources.estimate_fit_memory counts does not depend on NumPy eliding
    # one), and the same values as ``rng.random(...) * 0.01``
    X = rng.random((n_users, spec.factors), dtype=spec.dtype)
    X *= spec.dtype.type(0.01)
    Y = rng.random((n_items, spec.factors), dtype=spec.dtype)
    Y *= spec.dtype.type(0.01)
    return X, Y


def run_sweeps(backend, iterations, *, show_progress=False, desc=None, callback=None,
               loss=None):
    """``iterations`` ALS iterations of ``backend`` (its ``sweep()``), with a
    progress bar, ``callback(iteration, seconds, loss)`` after each, and
    ``loss()`` (if given) computed for the bar and the callback.  Warns when
    row solves met a singular system."""
    failed = 0
    with single_threaded_blas(), tqdm(total=iterations, disable=not show_progress,
                                      desc=desc) as progress:
        for iteration in range(iterations):
            start = time.perf_counter()
            failed += backend.sweep()
            value = loss() if loss is not None else None
            if value is not None:
                progress.set_postfix(loss=f"{value:.5g}")
            progress.update(1)
            if callback is not None:
                callback(iteration, time.perf_counter() - start, value)
    if failed:
        warnings.warn(
            f"{failed} row solves had a singular system and kept their previous "
            "value; use regularization > 0", RuntimeWarning, stacklevel=4,
        )


class Fitting:
    """``fit``, ``loss`` and ``certificate`` for an estimator with ``_state``,
    ``spec``, ``_backend()`` and the hyperparameters of
    :class:`~fastunlearn.models.MatrixFactorization`."""

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
            X, Y = initial_factors(self.spec, n_users, n_items, self.random_state)
        # Installed before the first sweep: an interruption leaves a consistent
        # (if less converged) model rather than factors of one data set
        # paired with interactions of another.  Installing is several
        # assignments; an interruption between them puts the old state back.
        state = self._state
        previous = state.snapshot()
        try:
            self._factors_changed()
            state.install(X, Y, csr)
            # a fit is a retrain: nothing left to wash out, no washout since
            state.pending, state.washouts = (0, 0), 0
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
        run_sweeps(self._backend(), iterations, show_progress=show_progress,
                   desc=type(self).__name__, callback=callback,
                   loss=self._training_loss if self.calculate_training_loss else None)

    def _training_loss(self):
        """The loss ``fit`` shows and passes to its callback."""
        return self.loss()

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
