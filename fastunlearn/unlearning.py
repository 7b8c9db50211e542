"""The forgetting façade of the estimators: forget pairs, users and items,
settle and add data (:class:`Unlearning`, local and distributed alike),
and implicit's row updates (:class:`RowUpdates`, local).  Each method
validates, builds the request and hands it to :mod:`fastunlearn.forgetting`
over the model's backend."""
import numpy as np
import scipy.sparse as sp

from . import forgetting
from .config import single_threaded_blas
from .validation import ANY_ID, check_ids, check_user_items


class Unlearning:
    """Forgetting and adding data, for an estimator with ``_backend()`` (a
    :class:`~fastunlearn.forgetting.engine.Backend` for one request),
    ``_check_fitted()`` and ``_factors_changed()``."""

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
            converged than it was; when the washout refits, the higher of
            that and the refit's own certificate, a retrain's convergence.
        max_sweeps : int, default 50
            Most masked (or full) sweeps after the local phase.
        strategy : {"masked", "full"}
            "masked" re-solves only rows whose gradient exceeds the tolerance;
            "full" is plain Unlearn-ALS (warm start, full sweeps), the baseline.
        missing : {"raise", "ignore"}
            What to do with pairs that are not stored (never, or forgotten
            before): an error naming them, or skip them, counted in
            ``report.n_skipped``; a repeated request is then a no-op.
        washout : "auto" (default) or int
            Completeness.  A stationary point is not enough: along directions
            in which ALS converges slowly a removal's trace outlives the
            certificate, and membership inference still tells the forgotten
            pairs from held-out ones.  A washout removes it: two
            over-relaxed sweeps (three, stronger, for 2 % of the stored
            entries or more), one plain sweep with the model's solver and a
            measurement, about four fit iterations' work.  Plain explicit
            models (``ExplicitALS`` without weighted regularization) are
            refitted from their ``random_state`` instead, a fit's work: for
            their objective every relaxed washout either left a trace or
            raised the test error past a retrain's.  Any model refits at
            its second washout since a fit: the washouts of a model that
            earlier ones converged leave a trace (``RELAXED_BETWEEN_FITS``;
            docs/design.md, section 5).
            ``"auto"`` washes out when the removals not yet washed out, this
            one included, reach 0.1 % of the stored entries (``pending_limit``
            overrides the count), and otherwise leaves this removal pending:
            certified stationary now, washed out by a later request or by
            :meth:`settle`.  ``"refit"`` washes out now by refitting, whatever
            the model.  An int ``N > 0`` washes out now with ``N``
            over-relaxed sweeps, never a refit; 0 never washes out in this call, which
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
        backend = self._backend()
        shape = backend.shape
        if sp.issparse(userids) and itemids is None:
            users, items = forgetting.pairs_from_request(shape, userids, None)
        else:
            if itemids is None:
                raise ValueError("forget needs itemids paired with userids (or one sparse "
                                 "matrix); use forget_users to remove whole users")
            users, items = forgetting.pairs_from_request(shape, userids, itemids)
        self._factors_changed()
        return forgetting.remove(backend, users, items, options)

    def forget_users(self, userids, **options):
        """Remove every interaction of ``userids`` (see :meth:`forget` for options)."""
        return self._forget_rows("users", userids, options)

    def forget_items(self, itemids, **options):
        """Remove every interaction with ``itemids`` (see :meth:`forget` for options)."""
        return self._forget_rows("items", itemids, options)

    def _forget_rows(self, side, ids, options):
        self._check_fitted()
        options = forgetting.ForgetOptions(**options)
        backend = self._backend()
        users, items = backend.entries(ids, side)
        self._factors_changed()
        return forgetting.remove(backend, users, items, options)

    @property
    def washout_policy(self):
        """Which washout this model runs: ``"default"``, the rule tuned on
        MovieLens 100K (:func:`fastunlearn.forgetting.washout_for`), or
        ``"refit"``, a refit at every washout (a retrain's cost, and a
        retrain's membership signal).

        :func:`fastunlearn.audit.calibrate_washout` measures which one the
        model's setting needs and sets it.  It stays through fits, files
        and copies to and from a cluster; set it by hand to either value.
        """
        return self._policy_holder().washout_policy

    @washout_policy.setter
    def washout_policy(self, value):
        self._policy_holder().washout_policy = forgetting.check_policy(value)

    @property
    def pending(self):
        """Removals no washout has covered yet: ``{"entries": n, "requests": m}``.

        Bounded: a default ``forget`` washes out once the entries reach 0.1 %
        of the stored ones; :meth:`settle` washes them out now.
        """
        entries, requests = self._backend().pending
        return {"entries": int(entries), "requests": int(requests)}

    def settle(self, **options):
        """Wash out every pending removal now (see ``washout`` in :meth:`forget`).

        Does nothing (and costs nothing beyond the certificate) when nothing
        is pending.  The command line calls it before it saves a model.
        Options as :meth:`forget` (``tolerance``, ``max_sweeps``,
        ``strategy``, ``washout`` as the number of over-relaxed sweeps or
        ``"refit"``, ``exact_certificate``, ``show_progress``).
        ``washout="refit"`` brings any model to a retrain's level at a
        fit's cost: the way to parity for a model that many washouts have
        converged past its fit (docs/design.md, section 5, "Where the
        washout falls short").

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
        backend = self._backend()
        return forgetting.add(backend, backend.user_items(), user_items_delta,
                              forgetting.ForgetOptions(**options))


class RowUpdates:
    """implicit's row updates (``partial_fit_users``, ``partial_fit_items``)
    for an in-memory estimator with ``_state`` (a
    :class:`~fastunlearn.state.ModelState`) and :class:`Unlearning`."""


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
        if self._state.data is None:
            self._update_rows(side, ids, rows)
            return None, None
        leave, arrive = forgetting.replaced_entries(self._state.data, side, ids, rows)
        if leave is None and arrive is None:
            return None, None
        # both steps aim at the certificate the model had before the call:
        # the second would otherwise take over whatever the first reached
        with single_threaded_blas():
            before = self._state.measures(self.objective, self._threads())
        tolerance = before.certificate().max_row
        removal = addition = None
        if leave is not None:
            removal = self.forget(*leave, tolerance=tolerance)
        if arrive is not None:
            addition = self.partial_fit(arrive, tolerance=tolerance)
        return removal, addition
