"""The sets a forget is audited with: CURE4Rec's unlearning sets (random,
core, edge), never-seen pairs and held-out pairs of the same users.

Part of :mod:`fastunlearn.audit` (docs/design.md, section 7).
"""
import math

import numpy as np
import scipy.sparse as sp

from ..pairs import canonical, check_matrix, is_stored, pair_keys, row_of
from ..validation import check_fraction, check_ids

UNLEARNING_SETS = ("random", "core", "edge")


# ----------------------------------------------------------------------------
# validation helpers (the shared ones live in evaluation and validation)
# ----------------------------------------------------------------------------
def checked_pairs(pairs, shape, name):
    """(users, items) int64 arrays from a tuple of id arrays or a sparse matrix."""
    if sp.issparse(pairs):
        coo = check_matrix(pairs, name, shape).tocoo()
        return coo.row.astype(np.int64), coo.col.astype(np.int64)
    if not isinstance(pairs, (tuple, list)) or len(pairs) != 2:
        raise TypeError(f"{name} must be a (users, items) pair of id arrays or a sparse "
                        f"matrix, got {type(pairs).__name__}")
    users, _ = check_ids(pairs[0], shape[0], f"{name} users")
    items, _ = check_ids(pairs[1], shape[1], f"{name} items")
    if users.shape != items.shape:
        raise ValueError(f"{name}: users and items must pair up, got {users.size} users and "
                         f"{items.size} items")
    return users, items


# ----------------------------------------------------------------------------
# unlearning sets
# ----------------------------------------------------------------------------
def unlearning_set(user_items, fraction, how="random", seed=0):
    """Stored interactions to forget, chosen as CURE4Rec chooses them.

    The set has ``round(fraction * nnz)`` entries (at least 1), drawn without
    replacement from the stored entries of ``user_items``:

    * ``"random"``: uniformly from all stored entries;
    * ``"core"``: from the most active users.  Users are taken from the most
      active down (ties in random order) until their entries reach the set
      size, and the set is drawn uniformly from the entries of those users.
      Every chosen entry thus belongs to a user at least as active as any
      user left out, and the set has exactly the requested size (the least
      active of the chosen users may keep part of her history);
    * ``"edge"``: the same from the least active users (users without any
      entry are skipped).

    Parameters
    ----------
    user_items : scipy.sparse matrix (n_users, n_items)
        Duplicates are summed first; stored zeros count as entries.
    fraction : float in (0, 1)
    how : {"random", "core", "edge"}
    seed : int, numpy Generator or None

    Returns
    -------
    users, items : ndarray of int64
        Paired ids of distinct stored entries, sorted by user then item.

    Raises
    ------
    ValueError
        For a fraction outside (0, 1), an unknown ``how`` or a matrix without
        stored entries.
    """
    csr = canonical(user_items, "user_items")
    fraction = check_fraction(fraction)
    if how not in UNLEARNING_SETS:
        raise ValueError(f"how must be one of {UNLEARNING_SETS}, got {how!r}")
    if csr.nnz == 0:
        raise ValueError("user_items has no stored entries to forget")
    rng = np.random.default_rng(seed)
    n = int(np.clip(math.floor(fraction * csr.nnz + 0.5), 1, csr.nnz))
    rows = row_of(csr)
    if how == "random":
        pool = np.arange(csr.nnz)
    else:
        counts = np.diff(csr.indptr).astype(np.int64)
        users = np.flatnonzero(counts)
        # primary key activity, secondary a random key: ties in random order
        activity = -counts[users] if how == "core" else counts[users]
        order = users[np.lexsort((rng.random(len(users)), activity))]
        m = int(np.searchsorted(np.cumsum(counts[order]), n)) + 1
        pool = np.flatnonzero(np.isin(rows, order[:m]))
    pick = np.sort(rng.choice(pool, size=n, replace=False))  # CSR order: by user, then item
    return rows[pick], csr.indices[pick].astype(np.int64)


def sample_unseen(user_items, users, seed=None):
    """For each user in ``users``, one item uniformly among those she never had.

    The non-members of a membership-inference test: pairs that were never
    stored in ``user_items``, for the same users as the members, so that an
    attacker cannot win by recognising users.

    Parameters
    ----------
    user_items : scipy.sparse matrix (n_users, n_items)
        Every interaction the pairs must avoid: the original training data,
        plus the test data if test interactions should not count as unseen.
    users : array of int
        One pair is drawn per entry (repeats give independent draws, so the
        same pair may come out twice).
    seed : int, numpy Generator or None

    Returns
    -------
    users, items : ndarray of int64

    Raises
    ------
    ValueError
        When one of ``users`` has every item stored.
    """
    csr = canonical(user_items, "user_items")
    n_users, n_items = csr.shape
    users, _ = check_ids(users, n_users, "users")
    full = np.diff(csr.indptr)[users] >= n_items
    if np.any(full):
        raise ValueError(f"user {int(users[full][0])} has every item stored: no unseen pair "
                         "can be drawn for her")
    rng = np.random.default_rng(seed)
    keys = pair_keys(csr)
    items = rng.integers(0, n_items, size=len(users), dtype=np.int64)
    todo = np.flatnonzero(is_stored(keys, users * n_items + items))
    while len(todo):  # rejection sampling; each round keeps >= 1/n_items of the rest
        items[todo] = rng.integers(0, n_items, size=len(todo), dtype=np.int64)
        todo = todo[is_stored(keys, users[todo] * n_items + items[todo])]
    return users.copy(), items


def held_out_pairs(test, users):
    """Every stored pair of ``test`` whose user is in ``users``.

    The non-members of the completeness test: interactions that really
    happened, by the same people as the forgotten ones, that no model was
    trained on.  A model that never saw the forgotten pairs cannot tell
    them from these any better than a retrain can; a forget that left a
    trace can.  (Unseen pairs from :func:`sample_unseen` are a weaker test:
    a retrain already tells real interactions from random pairs well.)

    Parameters
    ----------
    test : scipy.sparse matrix (n_users, n_items)
        Held-out interactions, disjoint from the training data.
    users : array of int

    Returns
    -------
    users, items : ndarray of int64
        Sorted by user, then item.
    """
    csr = canonical(test, "test")
    wanted, _ = check_ids(users, csr.shape[0], "users")
    keep = np.zeros(csr.shape[0], dtype=bool)
    keep[wanted] = True
    rows = row_of(csr)
    mask = keep[rows]
    return rows[mask].astype(np.int64), csr.indices[mask].astype(np.int64)
