"""What a request did: the reports, the receipts and their keyed digests
(never the removed pairs)."""
import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import objective as obj


@dataclass(frozen=True)
class RunReport:
    """What one run of the engine did: the fields every report shares.

    Attributes
    ----------
    rows_solved : int
        Row solves in total; ``rows_solved_by_phase`` splits them into
        ``local``, ``washout`` and ``sweeps``.
    sweeps : int
        Masked (or full) sweeps after the local phase and the washout.
    seconds : float
        Wall time of the whole call.
    loss_before, loss_after : float
        Objective on the data before and after the change.
    certificate_before, certificate_after : Certificate
    tolerance : float
        Target for ``certificate_after.max_row`` (after a refit under the
        default tolerance, at least the refit's own certificate).
    converged : bool
        Whether ``certificate_after.max_row <= tolerance``.
    """

    rows_solved: int
    rows_solved_by_phase: dict
    sweeps: int
    seconds: float
    loss_before: float
    loss_after: float
    certificate_before: obj.Certificate
    certificate_after: obj.Certificate
    tolerance: float
    converged: bool

    def to_dict(self):
        """A JSON-serialisable dict (certificates as nested dicts)."""
        return asdict(self)


@dataclass(frozen=True)
class ForgetReport(RunReport):
    """What a ``forget`` (or ``partial_fit``) did; never the removed pairs.

    ``partial_fit`` returns its subclass :class:`PartialFitReport`.  The
    fields of :class:`RunReport`, and:

    Attributes
    ----------
    n_removed : int
        Stored interactions removed (added, for ``partial_fit``).
    users_affected, items_affected : int
        Distinct users and items those interactions belonged to.
    strategy : str
    digest : str
        HMAC-SHA256, under ``receipt_key``, of the sorted (user, item) index
        pairs removed: the receipt kept in the model's history.  With the
        key, whoever holds the request can check which request was carried
        out (:func:`verify_receipt`); without it, the digest reveals nothing
        about the pairs, not even for a request of one pair.
    receipt_key : str
        Hex key of the digest, new for every request.  Returned to the
        caller only: it is in neither the receipt, the history nor a saved
        file, so hand it to whoever made the request.
    n_added : int
        Entries added (``partial_fit``); 0 for ``forget``.
    washout : int
        Sweeps over every row the washout of this call ran: over-relaxed
        ones, or the sweeps of a refit (0: no washout ran).
    refit : bool
        Whether the washout refitted the model from its seed (plain
        explicit models, a model's second washout since its fit, or
        ``washout="refit"``; docs/design.md, section 5).
    settled : bool
        Whether every removal so far, this one included, has been washed
        out (a washout in this call settles the earlier pending ones too).
    pending_entries, pending_requests : int
        Removed entries, and the requests they came in, that no washout has
        covered yet, after this call (0 when ``settled``).
    n_skipped : int
        Distinct pairs asked for that were not stored (never, or forgotten
        by an earlier request), skipped under ``missing="ignore"``.  A
        request whose every pair is skipped is a no-op: ``n_removed`` 0, no
        receipt in the history, the factors untouched.
    """

    n_removed: int
    users_affected: int
    items_affected: int
    strategy: str
    digest: str = field(repr=False)
    receipt_key: str = field(repr=False)
    n_added: int = 0
    washout: int = 0
    settled: bool = True
    pending_entries: int = 0
    pending_requests: int = 0
    n_skipped: int = 0
    refit: bool = False

    def receipt(self):
        """The part kept in the model's history: counts, outcome and digest."""
        return {"digest": self.digest, "n_removed": self.n_removed,
                "users_affected": self.users_affected, "items_affected": self.items_affected,
                "certificate_after": self.certificate_after.max_row,
                "tolerance": self.tolerance, "converged": self.converged,
                "settled": self.settled, "pending_entries": self.pending_entries,
                "time": _now()}


@dataclass(frozen=True)
class PartialFitReport(ForgetReport):
    """What a ``partial_fit`` did: the fields of :class:`ForgetReport`, with
    ``n_added`` the entries added (``n_removed`` is 0) and ``digest`` the
    keyed hash of the pairs added."""


def run_fields(outcome, start, phases=None):
    """The :class:`RunReport` fields of the engine's ``outcome`` (an
    ``engine.Outcome``) for a call that began at ``start``
    (``time.perf_counter()``), ``rows_solved_by_phase`` kept to ``phases``
    if given: the one place every report takes them from."""
    by_phase = outcome.rows_solved if phases is None else \
        {k: outcome.rows_solved[k] for k in phases}
    return dict(rows_solved=sum(outcome.rows_solved.values()), rows_solved_by_phase=by_phase,
                sweeps=outcome.sweeps, seconds=time.perf_counter() - start,
                loss_before=outcome.loss_before, loss_after=outcome.loss_after,
                certificate_before=outcome.certificate_before,
                certificate_after=outcome.certificate_after, tolerance=outcome.tolerance,
                converged=outcome.converged)


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class SettleReport(RunReport):
    """What :meth:`MatrixFactorization.settle` did: the fields of
    :class:`RunReport` (``rows_solved_by_phase`` has ``washout`` and
    ``sweeps``), and:

    Attributes
    ----------
    entries, requests : int
        Pending removed entries and requests the washout covered (0 and 0
        when nothing was pending and nothing ran).
    refit : bool
        Whether the washout refitted the model from its seed.
    """

    entries: int
    requests: int
    refit: bool = False

    def record(self):
        """The entry kept in the model's history."""
        return {"event": "settle", "entries": self.entries, "requests": self.requests,
                "certificate_after": self.certificate_after.max_row,
                "tolerance": self.tolerance, "converged": self.converged, "time": _now()}


def digest_pairs(users, items, key):
    """HMAC-SHA256 hex digest of (user, item) pairs under ``key`` (bytes),
    independent of their order.

    Keyed because a plain hash of a few index pairs is inverted by trying
    every (user, item) combination.
    """
    pairs = np.stack(unique_pairs(users, items), axis=1).astype("<i8")
    return hmac.new(key, pairs.tobytes(), hashlib.sha256).hexdigest()


def unique_pairs(users, items):
    """(users, items) int64 arrays of the distinct pairs, sorted by user then
    item: what ``np.unique(..., axis=0)`` gives, without its structured-array
    sort, which dominates a small request (bench/forget.py measures requests)."""
    users, items = np.asarray(users, np.int64).ravel(), np.asarray(items, np.int64).ravel()
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    first = np.ones(len(users), dtype=bool)
    first[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    return users[first], items[first]


def make_receipt(users, items):
    """(digest, hex key) for a request, with a fresh random key."""
    key = secrets.token_bytes(32)
    return digest_pairs(users, items, key), key.hex()


def verify_receipt(userids, itemids, receipt_key, digest):
    """Whether ``digest`` is the receipt of forgetting exactly these
    (user, item) index pairs (in any order), given the request's key."""
    expected = digest_pairs(userids, itemids, bytes.fromhex(receipt_key))
    return hmac.compare_digest(expected, digest)
