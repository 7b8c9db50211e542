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

from . import forgetting, persistence
from . import objective as obj
from .serving import FactorModel, fit_columns
from .spec import ModelSpec
from .state import ModelState
from .training import Fitting
from .unlearning import RowUpdates, Unlearning
from .validation import (
    ANY_ID,
    MAX_FACTORS,
    MAX_THREADS,
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


class MatrixFactorization(Fitting, Unlearning, RowUpdates, FactorModel):
    """Shared implementation of both estimators; use a subclass.

    Hyperparameters and one :class:`~fastunlearn.state.ModelState`,
    composed with fitting (:class:`~fastunlearn.training.Fitting`),
    forgetting (:class:`~fastunlearn.unlearning.Unlearning`,
    :class:`~fastunlearn.unlearning.RowUpdates`) and serving
    (:class:`~fastunlearn.serving.FactorModel`).
    """

    kind = None  # "implicit" or "explicit", set by subclasses
    hyperparameter_names = ()

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
        return {name: getattr(self, name) for name in self.hyperparameter_names}

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
        unknown = sorted(set(params) - set(self.hyperparameter_names))  # cg_steps included
        if unknown:
            raise ValueError(f"invalid parameter(s) {unknown} for {type(self).__name__}; "
                             f"valid ones: {list(self.hyperparameter_names)}")
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
                         bool(self.use_cg), int(self.cg_steps), int(self.num_threads),
                         int(self.iterations), self.random_state)

    def _backend(self):
        return forgetting.LocalBackend(self.spec, self._state, self.metadata)

    @classmethod
    def from_hyperparameters(cls, **params):
        """A model with hyperparameters ``params`` (as :meth:`get_params` gives)."""
        return cls(**params)

    def _assign(self, params):
        """Set the constructor arguments ``params`` and an unfitted state."""
        for name in self.hyperparameter_names:
            setattr(self, name, params[name])
        self._state = ModelState()  # unfitted: no factors, no data
        self.metadata = {}  # external id maps and forget receipts (see persistence)
        self._check_params()

    # ------------------------------------------------------------ state

    def _policy_holder(self):
        return self._state

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
    def for_kind(kind):
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
        model = cls.from_hyperparameters(**hyperparameters)
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

    # ------------------------------------------------------------ serving-only partial fit

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

    kind = "implicit"

    def __init__(self, factors=100, regularization=0.01, alpha=1.0, dtype=np.float32,
                 use_native=True, use_cg=True, iterations=15, calculate_training_loss=False,
                 num_threads=0, random_state=None, *, cg_steps=3):
        self._assign(locals())

    hyperparameter_names = _parameters(__init__)

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
            if model.kind != "implicit":
                raise ValueError("from_implicit needs an implicit-feedback model, the file "
                                 "holds an ExplicitALS")
        if hasattr(model, "to_cpu") and not isinstance(getattr(model, "user_factors", None),
                                                        np.ndarray):
            model = model.to_cpu()
        # implicit's models have every constructor argument but cg_steps
        params = {name: getattr(model, name) for name in cls.hyperparameter_names
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
        user_items = fit_columns(user_items, Y.shape[0], "user_items")
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

    kind = "explicit"

    def __init__(self, factors=100, regularization=0.1, weighted_regularization=False,
                 dtype=np.float32, use_cg=False, iterations=15, calculate_training_loss=False,
                 num_threads=0, random_state=None, *, cg_steps=3):
        self._assign(locals())

    hyperparameter_names = _parameters(__init__)

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
