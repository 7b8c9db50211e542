"""The drop-in for ``implicit.als.AlternatingLeastSquares`` 0.7: implicit's
constructor, method signatures, warnings and list widths over
:class:`~fastunlearn.ImplicitALS` (docs/design.md, section 6; docs/implicit.md
lists every deliberate difference).
"""
import logging
import warnings

import numpy as np
import scipy.sparse as sp

from . import objective as obj
from . import persistence
from .config import effective_n_threads, single_threaded_blas
from .models import ImplicitALS
from .ranking import PAD_SCORE
from .serving import fit_columns
from .storage import TrainingData
from .validation import ParameterWarning, check_user_items

log = logging.getLogger("fastunlearn")


def _warn_if_not_csr(matrix):
    if matrix is not None and not isinstance(matrix, sp.csr_matrix):
        warnings.warn(f"Method expects CSR input, and was passed {type(matrix).__name__} "
                      "instead; converting it costs a copy", ParameterWarning, stacklevel=3)


def _pad(ids, scores, width):
    """Lists widened to ``width`` columns with id -1 and score PAD_SCORE."""
    short = width - ids.shape[-1]
    if short <= 0:
        return ids, scores
    pad = [(0, 0)] * (ids.ndim - 1) + [(0, short)]
    return (np.pad(ids, pad, constant_values=-1),
            np.pad(scores, pad, constant_values=scores.dtype.type(PAD_SCORE)))


def _in_subset_dtype(ids, subset):
    """implicit returns ids drawn from ``items=`` / ``users=`` in that array's dtype."""
    dtype = np.asarray(subset).dtype
    return ids.astype(dtype) if dtype.kind == "i" else ids


def _liked_last(ids, scores, items, rows):
    """Lists ranked from ``items``, their padding filled with the requested
    items the user already liked (ascending ids, score ``-finfo(dtype).max``).

    implicit ranks a liked item of ``items`` last, at that score, instead
    of leaving it out: every requested item comes back once.  The padding
    of a list is exactly the room its liked items leave, so filling it in
    order keeps the list ``min(N, len(items))`` wide.  ``rows`` are
    the checked, canonical query rows (what the ranking filtered with).
    """
    scalar = ids.ndim == 1
    ids, scores = np.atleast_2d(ids).copy(), np.atleast_2d(scores).copy()
    row_of_entry = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    mask = np.isin(rows.indices, np.asarray(items))
    row, chosen = row_of_entry[mask], rows.indices[mask].astype(np.int64)
    counts = np.bincount(row, minlength=rows.shape[0])
    rank = np.arange(len(row)) - (np.cumsum(counts) - counts)[row]
    column = (ids >= 0).sum(axis=1)[row] + rank  # each row's padding follows its real entries
    fits = column < ids.shape[1]
    ids[row[fits], column[fits]] = chosen[fits]
    scores[row[fits], column[fits]] = -np.finfo(scores.dtype).max
    return (ids[0], scores[0]) if scalar else (ids, scores)


class AlternatingLeastSquares(ImplicitALS):
    """A drop-in for ``implicit.als.AlternatingLeastSquares`` 0.7 on the CPU.

    The factory's signature (positional order included) and everything of
    implicit's CPU model, on top of :class:`ImplicitALS` (``forget``,
    ``certificate``, ...).  Where the two differ this class follows
    implicit:

    * ``fit`` continues from the current factors when their shapes fit
      ``user_items`` (a second ``fit`` refines, as implicit's does), calls
      ``fit_callback`` when no ``callback`` is given, and shows and passes
      implicit's normalised training loss;
    * ``recommend`` lists are ``N`` wide (``min(N, len(items))`` with
      ``items``) and ``similar_*`` lists ``N`` wide, padded with id -1 and
      score ``-finfo(float32).max`` where there are fewer candidates; ids
      from ``items`` / ``users`` come in that array's integer dtype;
    * ``recommend(..., items=...)`` returns every requested item once: those
      the user already liked (with ``filter_already_liked_items``) come
      last, at score ``-finfo(dtype).max``;
    * an unfitted model saves (implicit's file: hyperparameters only) and
      loads back unfitted;
    * input that is not a ``csr_matrix`` warns (:class:`ParameterWarning`),
      and query rows narrower than the model are accepted;
    * the deprecated ``rank_items`` and ``recommend_all`` exist.

    Parameters
    ----------
    factors, regularization, alpha, dtype, use_native, use_cg, iterations, \
calculate_training_loss, num_threads, random_state
        As :class:`ImplicitALS`, with implicit's defaults.
    use_gpu : bool
        Must be False: fastunlearn has no GPU support (implicit's default
        is whether CUDA is available).

    Attributes
    ----------
    cg_steps : int
        CG steps per row per iteration (3; set it after construction, as
        with implicit).
    fit_callback : callable or None
        ``fit``'s callback when none is passed (implicit's older API).
    """

    def __init__(self, factors=100, regularization=0.01, alpha=1.0, dtype=np.float32,
                 use_native=True, use_cg=True, use_gpu=False, iterations=15,
                 calculate_training_loss=False, num_threads=0, random_state=None):
        if use_gpu:
            raise ValueError("fastunlearn has no GPU support: pass use_gpu=False "
                             "(the model runs on the CPU)")
        super().__init__(factors, regularization, alpha, dtype, use_native, use_cg, iterations,
                         calculate_training_loss, num_threads, random_state)
        self.fit_callback = None

    @classmethod
    def from_hyperparameters(cls, cg_steps=3, **params):
        model = cls(**params)
        model.cg_steps = cg_steps
        model._check_params()  # cg_steps is not a constructor argument here
        return model

    # ------------------------------------------------------------ training

    def fit(self, user_items, show_progress=True, callback=None):
        """Factorise ``user_items`` (users x items), as implicit's ``fit``.

        Starts from the current factors when they have the shapes
        ``user_items`` needs (after an earlier ``fit``, or set by hand), from
        fresh ``uniform[0, 0.01)`` factors otherwise.  ``callback(iteration,
        seconds, loss)`` (default ``fit_callback``) gets implicit's training
        loss when ``calculate_training_loss`` is set, else None.  Returns
        self; raises :class:`ModelFitError` when the factors become NaN.
        """
        _warn_if_not_csr(user_items)
        callback = callback or self.fit_callback
        shape = getattr(user_items, "shape", ())
        warm = len(shape) == 2 and np.shape(self.user_factors) == (shape[0], self.factors) \
            and np.shape(self.item_factors) == (shape[1], self.factors)
        last = []

        def report(iteration, seconds, loss):
            last[:] = [loss]
            if loss is not None and not show_progress:
                log.info("loss %.4f", loss)
            if callback:
                callback(iteration, seconds, loss)

        super().fit(user_items, show_progress, report, warm_start=warm)
        if last and last[0] is not None:
            log.info("Final training loss %.4f", last[0])
        return self

    def _training_loss(self):
        # implicit's figure: the loss over the total weight of all pairs,
        # plus (its quirk, kept so numbers compare) the confidence of
        # negative entries, a constant that a preference of 0 never costs
        data = self.state.data
        values = data.by_user.arrays()[2].astype(np.float64)
        confidence = float(self.alpha) * np.abs(values)
        n_users, n_items = data.shape
        total = confidence.sum() + n_users * n_items - data.nnz
        loss = self.loss() + confidence[values < 0].sum()
        return float(loss / max(total, np.finfo(float).tiny))

    @property
    def solver(self):
        """implicit's half-sweep, ``solver(Cui, X, Y, regularization, num_threads=0)``:
        every row of ``X`` solved in place from ``Cui`` (confidences already
        scaled by alpha) against the fixed ``Y``, by ``cg_steps`` of CG or
        exactly (``use_cg``)."""
        use_cg, cg_steps = bool(self.use_cg), int(self.cg_steps)

        def solve(Cui, X, Y, regularization, num_threads=0):
            if not (isinstance(X, np.ndarray) and X.flags.c_contiguous and X.flags.writeable
                    and X.dtype in (np.float32, np.float64)):
                raise ValueError("X must be a writable C-contiguous float32 or float64 array")
            data = TrainingData(check_user_items(Cui, X.dtype, name="Cui"))
            objective = obj.Objective(implicit=True, regularization=float(regularization))
            with single_threaded_blas():
                obj.solve_rows(objective, data, X, np.ascontiguousarray(Y, dtype=X.dtype),
                               "users", obj.all_rows(X.shape[0]), use_cg=use_cg,
                               cg_steps=cg_steps, num_threads=effective_n_threads(num_threads))

        return solve

    # ------------------------------------------------------------ serving

    def recommend(self, userid, user_items, N=10, filter_already_liked_items=True,
                  filter_items=None, recalculate_user=False, items=None):
        self._check_factors()
        if filter_already_liked_items or recalculate_user:
            _warn_if_not_csr(user_items)
            user_items = fit_columns(user_items, self.item_factors.shape[0], "user_items")
        ids, scores = super().recommend(userid, user_items, N, filter_already_liked_items,
                                        filter_items, recalculate_user, items)
        if items is None:
            return _pad(ids, scores, N)
        ids, scores = _pad(ids, scores, min(N, np.size(items)))
        if filter_already_liked_items:
            rows = self._query_rows(user_items, len(np.atleast_1d(userid)),
                                    self.item_factors.shape[0])
            ids, scores = _liked_last(ids, scores, items, rows)
        return _in_subset_dtype(ids, items), scores

    recommend.__doc__ = ImplicitALS.recommend.__doc__.replace(
        "``min(N, candidates)`` columns", "``N`` columns (``min(N, len(items))``\n"
        "            with ``items``)")

    def similar_items(self, itemid, N=10, recalculate_item=False, item_users=None,
                      filter_items=None, items=None):
        """Items most similar to ``itemid`` by cosine, ``N`` per list (see the class)."""
        self._check_factors()
        if recalculate_item:
            _warn_if_not_csr(item_users)
            item_users = fit_columns(item_users, self.user_factors.shape[0], "item_users")
        ids, scores = _pad(*super().similar_items(itemid, N, recalculate_item, item_users,
                                                  filter_items, items), N)
        return (ids if items is None else _in_subset_dtype(ids, items)), scores

    def similar_users(self, userid, N=10, filter_users=None, users=None):
        """Users most similar to ``userid`` by cosine, ``N`` per list (see the class)."""
        ids, scores = _pad(*super().similar_users(userid, N, filter_users, users), N)
        return (ids if users is None else _in_subset_dtype(ids, users)), scores

    def recalculate_user(self, userid, user_items):
        _warn_if_not_csr(user_items)
        self._check_factors()
        return super().recalculate_user(
            userid, fit_columns(user_items, self.item_factors.shape[0], "user_items"))

    recalculate_user.__doc__ = ImplicitALS.recalculate_user.__doc__

    def recalculate_item(self, itemid, item_users):
        _warn_if_not_csr(item_users)
        self._check_factors()
        return super().recalculate_item(
            itemid, fit_columns(item_users, self.user_factors.shape[0], "item_users"))

    recalculate_item.__doc__ = ImplicitALS.recalculate_item.__doc__

    def explain(self, userid, user_items, itemid, user_weights=None, N=10):
        _warn_if_not_csr(user_items)
        return super().explain(userid, user_items, itemid, user_weights, N)

    explain.__doc__ = ImplicitALS.explain.__doc__

    def partial_fit_users(self, userids, user_items):
        _warn_if_not_csr(user_items)
        return super().partial_fit_users(userids, user_items)

    partial_fit_users.__doc__ = ImplicitALS.partial_fit_users.__doc__

    def partial_fit_items(self, itemids, item_users):
        _warn_if_not_csr(item_users)
        return super().partial_fit_items(itemids, item_users)

    partial_fit_items.__doc__ = ImplicitALS.partial_fit_items.__doc__

    # ------------------------------------------------------------ files

    def save(self, fileobj_or_path):
        """Write the model to one ``.npz`` file (see :func:`fastunlearn.save`).

        A model that was never fitted is written as implicit writes it: its
        hyperparameters, no factors (``load`` gives back an unfitted model).
        """
        if self.user_factors is None and self.item_factors is None and \
                self.state.data is None:
            # implicit's members without the factors (persistence's own
            # writer, atomic for paths; the file module is the engine's)
            return persistence.write_arrays(persistence.implicit_members(self), fileobj_or_path)
        return super().save(fileobj_or_path)

    def rank_items(self, userid, user_items, selected_items, recalculate_user=False):
        """Deprecated in implicit 0.7: ``recommend(..., items=selected_items,
        filter_already_liked_items=False)``."""
        warnings.warn("rank_items is deprecated. Use recommend with the 'items' parameter "
                      "instead", DeprecationWarning, stacklevel=2)
        return self.recommend(userid, user_items, recalculate_user=recalculate_user,
                              items=selected_items, filter_already_liked_items=False)

    def recommend_all(self, user_items, N=10, recalculate_user=False,
                      filter_already_liked_items=True, filter_items=None, users_items_offset=0):
        """Deprecated in implicit 0.7: the ids of ``recommend`` for users
        ``users_items_offset + arange(len(user_items))``."""
        warnings.warn("recommend_all is deprecated. Use recommend with an array of userids "
                      "instead", DeprecationWarning, stacklevel=2)
        userids = np.arange(user_items.shape[0]) + users_items_offset
        ids, _ = self.recommend(userids, user_items, N=N,
                                filter_already_liked_items=filter_already_liked_items,
                                filter_items=filter_items, recalculate_user=recalculate_user)
        return ids


