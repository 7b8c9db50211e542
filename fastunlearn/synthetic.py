"""Seeded synthetic interaction matrices with planted low-rank structure.

Benchmark data for matrix-factorisation recommenders: implicit-feedback
counts (:func:`make_implicit`) and explicit 1..5 ratings
(:func:`make_ratings`).  Both share one sparsity-pattern sampler with the
properties real interaction logs have and uniform random matrices lack:

* **skewed user activity** -- per-user entry counts are log-normal;
* **power-law item popularity** -- Zipf-Mandelbrot item weights
  ``(popularity_rank + offset) ** -popularity_exponent``, with popularity
  ranks randomly permuted over item ids (id order carries no information);
* **planted rank-``rank`` structure** -- a topic / Poisson-factorisation
  model: user ``u`` has a topic mixture ``theta_u`` (sparse Dirichlet), each
  item spreads its popularity over a few topics, and every interaction of
  ``u`` picks a topic from ``theta_u`` and then an item from that topic's
  distribution ``phi_k``.  The expected count matrix
  ``diag(activity) @ Theta @ Phi`` therefore has rank ``rank`` exactly.

No Python loop runs per user or per entry.  Users are processed in blocks;
within a block the per-user topic counts are one vectorised multinomial draw,
and each topic's items are drawn at once (a multinomial over items plus a
shuffle when a topic gets many draws, inverse-CDF sampling otherwise).
Repeated draws of a (user, item) pair become its count; users left short of
their target number of *distinct* items by such collisions draw again in a
few top-up rounds.  Users wanting a large share of the catalogue are sampled
exactly without replacement instead.  Cost: O(nnz log nnz) time, the output
plus one block of scratch memory.

Everything derives from one :class:`numpy.random.SeedSequence`, so a given
``seed`` reproduces the same matrix bit for bit (for a given NumPy version).
This module deliberately depends on NumPy and SciPy only.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["make_implicit", "make_ratings", "describe"]

# Draws per user block.  Large enough that per-(block, topic) Python overhead
# is negligible, small enough that block scratch (~70 bytes per draw) stays a
# fraction of a multi-million-entry output.  Changing it changes the output.
_BLOCK_DRAWS = 1 << 20

# Top-up rounds after the first draw.  The first ones use the planted model
# only; later ones mix in uniform item draws so that users whose remaining
# planted mass sits on items they already have still converge.  They only
# produce the last fraction of a percent of the entries.
_UNIFORM_MIX = (0.0, 0.0, 0.25, 0.5, 1.0, 1.0, 1.0)

# Users whose target exceeds this share of the catalogue are sampled exactly
# without replacement (see _dense_keys) instead of by draw-and-deduplicate.
_DENSE_FRACTION = 1 / 16

# Gamma shape of the item-topic memberships.  Small, so that most items
# belong to one or two topics and topics pick out distinct item sets.
_ITEM_MEMBERSHIP_SHAPE = 0.1


def _seed_sequence(seed) -> np.random.SeedSequence:
    """Normalise ``seed`` (int, None, SeedSequence or Generator)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        # Draw from the caller's generator: repeated calls with the same
        # generator give different, but reproducible, matrices.
        return np.random.SeedSequence(int(seed.integers(2**63)))
    return np.random.SeedSequence(seed)


def _check_args(n_users, n_items, nnz, rank, topic_concentration) -> None:
    if n_users < 1 or n_items < 1:
        raise ValueError("n_users and n_items must be positive")
    if not 0 <= nnz <= n_users * n_items:
        raise ValueError(f"nnz must be in [0, n_users * n_items], got {nnz}")
    if rank < 1:
        raise ValueError("rank must be >= 1")
    if topic_concentration <= 0:
        raise ValueError("topic_concentration must be > 0")


def _user_activity(rng, n_users, n_items, nnz, sigma) -> np.ndarray:
    """Integer per-user targets: log-normal, capped at n_items, summing to nnz.

    The cap is enforced by water-filling: capped users are fixed and the
    remaining budget is spread over the others in proportion to weight.
    """
    weights = rng.lognormal(0.0, sigma, n_users) if sigma > 0 else np.ones(n_users)
    target = np.zeros(n_users)
    free = np.ones(n_users, dtype=bool)
    budget = float(nnz)
    while free.any():
        w = np.where(free, weights, 0.0)
        target = np.where(free, w * (budget / w.sum()), target)
        over = free & (target > n_items)
        if not over.any():
            break
        target[over] = n_items
        free &= ~over
        budget = nnz - target[~free].sum()
    # Cumulative rounding keeps the sum exact and each count within one of
    # its real-valued target.
    cum = np.rint(np.cumsum(target)).astype(np.int64)
    return np.minimum(np.diff(cum, prepend=0), n_items)


def _item_model(rng, n_items, rank, exponent, offset):
    """Per-topic item distributions ``phi`` (rank x n_items) and their CDFs."""
    # Zipf-Mandelbrot: the offset flattens the head so that the single most
    # popular item does not take an unrealistic share of all interactions.
    ranks = np.arange(1, n_items + 1, dtype=np.float64) + offset * n_items
    popularity = (ranks**-exponent)[rng.permutation(n_items)]
    # Each item spreads unit membership over the topics (a sparse Dirichlet).
    # Normalising per item keeps an item's total weight equal to its
    # popularity, so the marginal popularity stays Zipf.  The floor keeps
    # every item reachable from every topic (Gamma draws with small shape
    # underflow to 0) and rules out all-zero columns.
    member = rng.standard_gamma(_ITEM_MEMBERSHIP_SHAPE, size=(rank, n_items))
    member += 1e-6
    member /= member.sum(axis=0)
    phi = member * popularity
    phi /= phi.sum(axis=1, keepdims=True)
    cdf = np.cumsum(phi, axis=1)
    cdf /= cdf[:, -1:]
    return phi, cdf


def _user_topics(rng, n, rank, concentration) -> np.ndarray:
    """Dirichlet(``concentration``) topic mixtures, shape (n, rank)."""
    g = rng.standard_gamma(concentration, size=(n, rank))
    s = g.sum(axis=1, keepdims=True)
    # All-zero rows (underflow with tiny concentrations) become uniform.
    zero = s[:, 0] == 0
    g[zero] = 1.0
    s[zero] = rank
    return g / s


def _draw_keys(rng, users, counts, theta, phi, cdf, uniform_frac):
    """Draw ``counts[j]`` items, with replacement, for block user ``users[j]``.

    Returns sorted int64 keys ``user * n_items + item``: one sort both groups
    the draws by user and makes repeated (user, item) draws adjacent.
    """
    rank, n_items = phi.shape
    per_topic = rng.multinomial(counts, theta)  # (len(users), rank)
    keys = []
    for k in range(rank):
        ck = per_topic[:, k]
        m = int(ck.sum())
        if m == 0:
            continue
        owner = np.repeat(users, ck)
        n_unif = int(rng.binomial(m, uniform_frac)) if uniform_frac > 0 else 0
        m_model = m - n_unif
        if m_model >= n_items:
            # Many draws: per-item counts from one O(n_items) multinomial, then
            # a shuffle pairs them with users -- several times cheaper than
            # m binary searches.
            items = np.repeat(
                np.arange(n_items, dtype=np.int64), rng.multinomial(m_model, phi[k])
            )
        else:
            items = np.searchsorted(cdf[k], rng.random(m_model), side="right")
            np.minimum(items, n_items - 1, out=items)  # guard cdf rounding
        if n_unif:
            items = np.concatenate([items, rng.integers(0, n_items, n_unif)])
        rng.shuffle(items)
        owner *= n_items
        owner += items
        keys.append(owner)
    keys = np.concatenate(keys) if keys else np.empty(0, np.int64)
    keys.sort()
    return keys


def _duplicates_per_user(keys, n_items, n_users):
    """Surplus (repeated) draws per user in sorted ``keys``.

    Only the duplicates -- a small fraction -- are decoded back to user ids,
    which is much cheaper than dividing every key.
    """
    dup = np.flatnonzero(keys[1:] == keys[:-1]) + 1
    return np.bincount(keys[dup] // n_items, minlength=n_users)


def _dense_keys(rng, users, counts, theta, phi):
    """Exact without-replacement sampling for users wanting many items.

    Draw-and-deduplicate needs ever more top-up draws as a user's target
    approaches the size of the support it samples from, so these users take
    the ``counts[j]`` items with the smallest ``Exp(1) / weight`` keys
    (Efraimidis-Spirakis weighted sampling without replacement).  The
    O(n_items * rank) cost per user is linear in the entries produced, since
    such a user has more than ``_DENSE_FRACTION * n_items`` of them.
    """
    n_items = phi.shape[1]
    batch = max(1, (1 << 20) // n_items)
    keys = []
    for a in range(0, len(users), batch):
        w = theta[a : a + batch] @ phi  # planted weights, (batch, n_items)
        key = rng.standard_exponential(w.shape, dtype=np.float32) / w
        c = counts[a : a + batch]
        u = users[a : a + batch]
        if n_items <= 4096:
            # Small catalogue: rank every row at once (no per-user loop).
            order = np.argsort(key, axis=1)
            pos = np.empty_like(order)
            np.put_along_axis(pos, order, np.arange(n_items)[None, :], axis=1)
            rows, items = np.nonzero(pos < c[:, None])
            keys.append(u[rows] * n_items + items)
        else:
            # Large catalogue: O(n_items) selection per user; the loop cost
            # is amortised over the > n_items / 16 entries each user gets.
            for j in range(len(u)):
                if c[j] >= n_items:
                    items = np.arange(n_items)
                else:
                    items = np.sort(np.argpartition(key[j], c[j] - 1)[: c[j]])
                keys.append(items + u[j] * n_items)
    return np.concatenate(keys) if keys else np.empty(0, np.int64)


def _sample_block(rng, target, theta, phi, cdf):
    """Sample one user block; return (row_nnz, items, multiplicity).

    Users get ``target[u]`` draws; collisions leave fewer distinct items, so
    users short of their target draw again (just the shortfall) and the
    draws are merged.  ``multiplicity`` counts the draws of each stored
    pair.  Dense users (see ``_dense_keys``) have multiplicity 1.
    """
    n_users, n_items = len(target), phi.shape[1]
    dense = np.flatnonzero(target > _DENSE_FRACTION * n_items)
    sparse_target = target.copy()
    sparse_target[dense] = 0
    users = np.arange(n_users, dtype=np.int64)
    keys = _draw_keys(rng, users, sparse_target, theta, phi, cdf, 0.0)
    drawn = sparse_target.copy()
    for mix in _UNIFORM_MIX:
        short = sparse_target - drawn + _duplicates_per_user(keys, n_items, n_users)
        active = np.flatnonzero(short)
        if len(active) == 0:
            break
        new = _draw_keys(rng, active, short[active], theta[active], phi, cdf, mix)
        drawn[active] += short[active]
        # Both parts are sorted, so the stable sort (timsort) is a merge.
        keys = np.concatenate([keys, new])
        keys.sort(kind="stable")
    row_nnz = drawn - _duplicates_per_user(keys, n_items, n_users)
    if len(dense):
        dense_keys = _dense_keys(rng, dense, target[dense], theta[dense], phi)
        keys = np.concatenate([keys, dense_keys])
        keys.sort(kind="stable")
        row_nnz[dense] = target[dense]
    first = np.empty(len(keys), dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    multiplicity = np.diff(starts, append=len(keys))
    items = (keys[starts] % n_items).astype(np.int32)
    return row_nnz, items, multiplicity


def _sample_pattern(
    ss, n_users, n_items, nnz, rank, exponent, offset, sigma, concentration,
    keep_topics, values, dtype,
):
    """Shared sampler: sparsity pattern plus per-block values.

    ``values(rng, lo, row_nnz, items, multiplicity)`` returns the stored
    values of users ``lo:lo + len(row_nnz)``; it runs inside the block loop
    so that no nnz-sized scratch array is ever needed.

    Returns ``indptr, indices, data, theta, phi``; ``theta`` (n_users x rank,
    float32) is None unless ``keep_topics``.
    """
    global_ss, blocks_ss = ss.spawn(2)
    rng = np.random.default_rng(global_ss)
    activity = _user_activity(rng, n_users, n_items, nnz, sigma)
    phi, cdf = _item_model(rng, n_items, rank, exponent, offset)

    # Contiguous user blocks of ~_BLOCK_DRAWS draws; a function of the
    # arguments only, so the output is too.
    cum = np.cumsum(activity)
    total = int(cum[-1])
    cuts = np.searchsorted(cum, np.arange(_BLOCK_DRAWS, total, _BLOCK_DRAWS))
    bounds = np.unique(np.concatenate([[0], np.minimum(cuts + 1, n_users), [n_users]]))
    block_seeds = blocks_ss.spawn(len(bounds) - 1)

    # No user gets more distinct items than its target, so ``total`` bounds
    # the output: fill preallocated buffers and shrink them at the end rather
    # than concatenating per-block pieces (which would need 2x the memory).
    indices = np.empty(total, dtype=np.int32)
    data = np.empty(total, dtype=dtype)
    row_nnz = np.zeros(n_users, dtype=np.int64)
    theta_all = np.empty((n_users, rank), np.float32) if keep_topics else None
    pos = 0
    for lo, hi, bss in zip(bounds[:-1], bounds[1:], block_seeds):
        brng = np.random.default_rng(bss)
        theta = _user_topics(brng, hi - lo, rank, concentration)
        if keep_topics:
            theta_all[lo:hi] = theta
        rn, items, mult = _sample_block(brng, activity[lo:hi], theta, phi, cdf)
        end = pos + len(items)
        row_nnz[lo:hi] = rn
        indices[pos:end] = items
        data[pos:end] = values(brng, lo, rn, items, mult)
        pos = end
    if pos < total:
        # realloc shrinks in place; nothing else references these buffers.
        indices.resize(pos, refcheck=False)
        data.resize(pos, refcheck=False)
    if pos > np.iinfo(np.int32).max:
        indices = indices.astype(np.int64)
    indptr = np.zeros(n_users + 1, dtype=indices.dtype)
    np.cumsum(row_nnz, out=indptr[1:])
    return indptr, indices, data, theta_all, phi


def _csr(data, indices, indptr, shape):
    x = sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    # Rows are sorted and duplicate-free by construction; recording it spares
    # consumers a canonical-format pass.
    x.has_sorted_indices = True
    x.has_canonical_format = True
    return x


def make_implicit(
    n_users: int = 100_000,
    n_items: int = 20_000,
    nnz: int = 2_000_000,
    *,
    rank: int = 16,
    popularity_exponent: float = 1.0,
    popularity_offset: float = 0.002,
    activity_sigma: float = 1.0,
    topic_concentration: float = 0.1,
    seed=0,
    dtype=np.float32,
    max_value: float = 100.0,
    extra_mean: float = 1.0,
    return_factors: bool = False,
):
    """Implicit-feedback count matrix with planted low-rank structure.

    Parameters
    ----------
    n_users, n_items : int
        Matrix shape.
    nnz : int
        Requested number of stored entries.  The result never has more and
        normally has exactly this many or a few per million fewer: users are
        capped at ``n_items`` entries, and repeated draws are resolved in a
        bounded number of top-up rounds.  The shortfall grows with density
        but stays well under 1% below ~10% density.
    rank : int
        Number of planted topics; the expected draw-count matrix has exactly
        this rank.
    popularity_exponent : float
        Exponent ``a`` of the item base popularity
        ``(popularity_rank + popularity_offset * n_items) ** -a``, ranks
        starting at 1.  0 removes the popularity skew.
    popularity_offset : float
        Flattens the head of the popularity curve, as a fraction of
        ``n_items``.  With the defaults the top 1% of items hold ~25-30% of
        the entries and no single item more than ~0.5%.
    activity_sigma : float
        Sigma of the log-normal per-user activity; 0 gives equal activity.
    topic_concentration : float
        Dirichlet concentration of the user topic mixtures.  Smaller values
        focus users on fewer topics, i.e. stronger planted structure; large
        values (1e6) leave essentially popularity only.
    seed : int, None, SeedSequence or Generator
        Same seed, same matrix (bit for bit, for a given NumPy version).
    dtype : numpy dtype
        dtype of the stored values.
    max_value : float
        Values are clipped to this.
    extra_mean : float
        Mean of the geometric "engagement" term added to each value; 0 makes
        the value the number of times the pair was drawn.
    return_factors : bool
        Also return the planted factors.

    Returns
    -------
    X : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Canonical CSR: sorted indices, no duplicates, int32 ``indices`` and
        ``indptr`` (int64 only beyond 2**31 - 1 entries).  Values are
        ``times drawn + Geometric(extra_mean)``, so >= 1 and larger for pairs
        with high planted affinity.
    user_factors : ndarray, shape (n_users, rank), float32
        Only with ``return_factors``: user topic mixtures ``theta``.
    item_factors : ndarray, shape (n_items, rank), float64
        Only with ``return_factors``: topic item distributions ``phi.T``.  A
        user with ``c_u`` draws draws item ``i`` ``c_u * theta_u @ phi_i``
        times in expectation.

    Notes
    -----
    Some users and items may have no entries (light users; unpopular items
    when ``nnz`` is small relative to ``n_items``).  Users whose activity
    exceeds ``n_items / 16`` are sampled without replacement from the same
    planted weights, so their drawn count (before the engagement term) is 1.
    Time is O(nnz log nnz); memory is the output plus ~70 MB of scratch.
    """
    _check_args(n_users, n_items, nnz, rank, topic_concentration)
    # Geometric on {0, 1, ...} with the requested mean, as a floored
    # exponential (several times faster than Generator.geometric).
    scale = np.float32(1.0 / np.log1p(1.0 / extra_mean)) if extra_mean > 0 else None

    def values(rng, lo, row_nnz, items, mult):
        v = mult.astype(np.float32)
        if scale is not None:
            extra = rng.standard_exponential(len(v), dtype=np.float32)
            extra *= scale
            v += np.floor(extra, out=extra)
        return np.minimum(v, max_value, out=v)

    indptr, indices, data, theta, phi = _sample_pattern(
        _seed_sequence(seed), n_users, n_items, nnz, rank, popularity_exponent,
        popularity_offset, activity_sigma, topic_concentration, return_factors,
        values, dtype,
    )
    x = _csr(data, indices, indptr, (n_users, n_items))
    if return_factors:
        return x, theta, phi.T
    return x


def make_ratings(
    n_users: int = 100_000,
    n_items: int = 20_000,
    nnz: int = 2_000_000,
    *,
    rank: int = 8,
    noise: float = 0.5,
    seed=0,
    dtype=np.float32,
    popularity_exponent: float = 1.0,
    popularity_offset: float = 0.002,
    activity_sigma: float = 1.0,
    topic_concentration: float = 0.1,
    step: float | None = 0.5,
    return_factors: bool = False,
):
    """Explicit 1..5 ratings with planted low-rank structure.

    Which pairs are rated comes from the sampler of :func:`make_implicit`
    (same activity and popularity skew, ``rank`` topics).  A stored pair's
    rating is ::

        clip(3.5 + b_u + b_i + p_u @ q_i + noise * N(0, 1), 1, 5)

    rounded to a multiple of ``step``, with ``b_u ~ N(0, 0.3)``,
    ``b_i ~ N(0, 0.4)`` and ``p_u @ q_i`` of standard deviation 1.

    Parameters
    ----------
    n_users, n_items, nnz, seed, popularity_exponent, popularity_offset, \
activity_sigma, topic_concentration
        As in :func:`make_implicit`.
    rank : int
        Rank of the rating factors ``P``, ``Q`` (and number of topics).
    noise : float
        Standard deviation of the Gaussian rating noise.
    dtype : numpy dtype
        dtype of the stored values.
    step : float or None
        Rounding grid: 0.5 half stars, 1 whole stars, None continuous.
    return_factors : bool
        Also return ``P`` (n_users, rank) and ``Q`` (n_items, rank).

    Returns
    -------
    X : scipy.sparse.csr_matrix, shape (n_users, n_items)
        Canonical CSR as in :func:`make_implicit`, values in [1, 5].
    user_factors, item_factors : ndarray, float32
        Only with ``return_factors``.
    """
    _check_args(n_users, n_items, nnz, rank, topic_concentration)
    pattern_ss, rating_ss = _seed_sequence(seed).spawn(2)
    rng = np.random.default_rng(rating_ss)
    s = rank**-0.25  # entry scale giving var(p @ q) = rank * s**4 = 1
    p = (rng.standard_normal((n_users, rank)) * s).astype(np.float32)
    q = (rng.standard_normal((n_items, rank)) * s).astype(np.float32)
    b_user = rng.normal(0.0, 0.3, n_users).astype(np.float32)
    b_item = rng.normal(0.0, 0.4, n_items).astype(np.float32)
    chunk = 1 << 18  # bounds the (chunk, rank) gathers

    def values(brng, lo, row_nnz, items, mult):
        rows = np.repeat(np.arange(lo, lo + len(row_nnz)), row_nnz)
        out = np.empty(len(items), dtype=np.float32)
        for a in range(0, len(items), chunk):
            r, c = rows[a : a + chunk], items[a : a + chunk]
            v = np.einsum("ij,ij->i", p[r], q[c])
            v += b_user[r]
            v += b_item[c]
            v += brng.standard_normal(len(c), dtype=np.float32) * np.float32(noise)
            v += np.float32(3.5)
            if step:
                v = np.rint(v / np.float32(step)) * np.float32(step)
            out[a : a + chunk] = np.clip(v, 1.0, 5.0)
        return out

    indptr, indices, data, _, _ = _sample_pattern(
        pattern_ss, n_users, n_items, nnz, rank, popularity_exponent,
        popularity_offset, activity_sigma, topic_concentration, False,
        values, dtype,
    )
    x = _csr(data, indices, indptr, (n_users, n_items))
    if return_factors:
        return x, p, q
    return x


def describe(matrix) -> dict:
    """Summary statistics of an interaction matrix, for logging.

    Parameters
    ----------
    matrix : scipy sparse matrix or array
        Users in rows, items in columns.

    Returns
    -------
    dict
        ``shape``, ``nnz``, ``density``; ``users_with_entries`` and
        ``items_with_entries`` (fractions); ``user_activity`` quantiles
        (min, p25, p50, p75, p90, p99, max); ``item_top1pct_share`` (share
        of entries in the most popular 1% of items); ``item_gini`` (0 =
        uniform popularity); ``value`` min/mean/max.
    """
    x = sp.csr_matrix(matrix)
    n_users, n_items = x.shape
    nnz = int(x.nnz)
    user_counts = np.diff(x.indptr)
    item_counts = np.bincount(x.indices, minlength=n_items)
    names = ("min", "p25", "p50", "p75", "p90", "p99", "max")
    quant = np.quantile(user_counts, (0, 0.25, 0.5, 0.75, 0.9, 0.99, 1))
    asc = np.sort(item_counts).astype(np.float64)
    top = max(1, int(np.ceil(0.01 * n_items)))
    if nnz:
        share = float(asc[-top:].sum() / nnz)
        i = np.arange(1, n_items + 1)
        gini = float(
            2 * (i * asc).sum() / (n_items * asc.sum()) - (n_items + 1) / n_items
        )
        value = {
            "min": float(x.data.min()),
            "mean": float(x.data.mean()),
            "max": float(x.data.max()),
        }
    else:
        share, gini = 0.0, 0.0
        value = {"min": 0.0, "mean": 0.0, "max": 0.0}
    return {
        "shape": (int(n_users), int(n_items)),
        "nnz": nnz,
        "density": nnz / (n_users * n_items),
        "users_with_entries": float(np.mean(user_counts > 0)),
        "items_with_entries": float(np.mean(item_counts > 0)),
        "user_activity": {k: float(v) for k, v in zip(names, quant)},
        "item_top1pct_share": share,
        "item_gini": gini,
        "value": value,
    }
