"""Tests for fastunlearn/synthetic.py (seeded synthetic data generators)."""


import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from fastunlearn import synthetic as syn

SMALL = dict(n_users=2000, n_items=1000, nnz=20_000, rank=8)


def _assert_same(a, b):
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


def _assert_canonical(x, shape):
    assert isinstance(x, sp.csr_matrix)
    assert x.shape == shape
    assert x.indices.dtype == np.int32 and x.indptr.dtype == np.int32
    assert len(x.indptr) == shape[0] + 1 and x.indptr[0] == 0
    assert x.indptr[-1] == len(x.indices) == len(x.data) == x.nnz
    assert np.all(np.diff(x.indptr) >= 0)
    if x.nnz:
        assert x.indices.min() >= 0 and x.indices.max() < shape[1]
    # Within each row the column indices must be strictly increasing
    # (sorted, no duplicates); only positions that start a row are exempt.
    step = np.diff(x.indices.astype(np.int64))
    row_start = np.zeros(x.nnz, dtype=bool)
    row_start[x.indptr[:-1][np.diff(x.indptr) > 0]] = True
    assert np.all((step > 0) | row_start[1:])
    # Independent check: SciPy's own canonicalisation changes nothing.
    y = sp.csr_matrix((x.data.copy(), x.indices.copy(), x.indptr.copy()), shape=shape)
    y.has_canonical_format = False
    y.sum_duplicates()
    assert y.nnz == x.nnz


def test_same_seed_same_matrix():
    _assert_same(syn.make_implicit(**SMALL, seed=7), syn.make_implicit(**SMALL, seed=7))
    _assert_same(
        syn.make_ratings(500, 300, 5000, seed=7),
        syn.make_ratings(500, 300, 5000, seed=7),
    )


def test_different_seeds_differ():
    a = syn.make_implicit(**SMALL, seed=1)
    b = syn.make_implicit(**SMALL, seed=2)
    assert not (
        np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    )
    r1 = syn.make_ratings(500, 300, 5000, seed=1)
    r2 = syn.make_ratings(500, 300, 5000, seed=2)
    assert not np.array_equal(r1.indices, r2.indices)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_format_and_values(dtype):
    x = syn.make_implicit(**SMALL, seed=0, dtype=dtype)
    _assert_canonical(x, (2000, 1000))
    assert x.data.dtype == dtype
    assert x.data.min() >= 1 and x.data.max() <= 100
    np.testing.assert_array_equal(x.data, np.round(x.data))  # counts
    # Drawn counts only (no engagement term): mostly 1, some repeats.
    raw = syn.make_implicit(**SMALL, seed=0, extra_mean=0)
    assert raw.data.min() == 1 and 0.5 < np.mean(raw.data == 1) < 1
    clipped = syn.make_implicit(**SMALL, seed=0, max_value=2)
    assert clipped.data.max() == 2


@pytest.mark.parametrize(
    "n_users, n_items, nnz",
    [
        (2000, 1000, 20_000),  # 1% dense
        (1000, 400, 40_000),  # 10%, many capped / dense users
        (200, 50, 2_500),  # 25%
        (3000, 10_000, 300_000),  # large catalogue, dense-user selection loop
        (7, 5, 0),
    ],
)
def test_nnz_close_to_request(n_users, n_items, nnz):
    x = syn.make_implicit(n_users, n_items, nnz, rank=4, seed=3)
    _assert_canonical(x, (n_users, n_items))
    assert x.nnz <= nnz
    assert x.nnz >= 0.98 * nnz


def test_popularity_and_activity_skew():
    x = syn.make_implicit(**SMALL, seed=0)
    item_counts = np.bincount(x.indices, minlength=x.shape[1])
    top = np.sort(item_counts)[::-1][: x.shape[1] // 100]
    share = top.sum() / x.nnz
    assert share > 0.05  # 1% of the items hold far more than 1% of entries
    assert syn.describe(x)["item_top1pct_share"] == pytest.approx(share)
    user_counts = np.diff(x.indptr)
    assert np.quantile(user_counts, 0.9) > 2 * np.median(user_counts)
    # Most users and items still have entries.
    assert np.mean(user_counts > 0) > 0.9 and np.mean(item_counts > 0) > 0.9
    # Without the skews the same statistics are unremarkable.
    flat = syn.make_implicit(
        **SMALL, seed=0, popularity_exponent=0.0, activity_sigma=0.0,
        topic_concentration=1e6,
    )
    flat_counts = np.sort(np.bincount(flat.indices, minlength=1000))[::-1]
    assert flat_counts[:10].sum() / flat.nnz < 0.03


def _leading_energy(b, rank):
    """Squared singular values 2..rank of a binarised matrix.

    The first component mostly reflects degrees (activity x popularity),
    which the null model keeps, so it is left out.
    """
    b = b.astype(np.float64)
    b.data[:] = 1.0
    s = svds(b, k=rank, return_singular_vectors=False, solver="propack", random_state=0)
    s = np.sort(s)
    return float((s[:-1] ** 2).sum())


def _degree_preserving_shuffle(x, seed):
    """Shuffle column indices across all entries: row and column degrees are
    kept (up to the few collisions this creates), structure is destroyed."""
    rng = np.random.default_rng(seed)
    b = sp.csr_matrix(
        (np.ones(x.nnz), rng.permutation(x.indices), x.indptr.copy()), shape=x.shape
    )
    b.sum_duplicates()
    return b


def _structure_ratio(x, rank, seed):
    return _leading_energy(x, rank) / _leading_energy(
        _degree_preserving_shuffle(x, seed), rank
    )


def test_planted_structure_is_low_rank():
    x = syn.make_implicit(**SMALL, seed=5)
    assert _structure_ratio(x, 8, seed=5) > 1.45  # observed ~1.7-2.0
    # Control: with (practically) identical user topic mixtures there is no
    # user-specific structure and the statistic stays near the null.
    flat = syn.make_implicit(**SMALL, seed=5, topic_concentration=1e6)
    assert _structure_ratio(flat, 8, seed=5) < 1.35  # observed ~1.1-1.2


def test_entries_follow_planted_factors():
    x, theta, item_f = syn.make_implicit(**SMALL, seed=4, return_factors=True)
    assert theta.shape == (2000, 8) and item_f.shape == (1000, 8)
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(item_f.sum(axis=0), 1.0, rtol=1e-9)
    _assert_same(x, syn.make_implicit(**SMALL, seed=4))
    # A user's own items are more likely under its own topic mixture than
    # under a random other user's (same items, so popularity cancels).
    counts = np.diff(x.indptr)
    rows = np.repeat(np.arange(x.shape[0]), counts)
    other = np.random.default_rng(0).permutation(x.shape[0])
    own = np.log(np.einsum("ij,ij->i", theta[rows], item_f[x.indices]))
    alt = np.log(np.einsum("ij,ij->i", theta[other][rows], item_f[x.indices]))
    starts = x.indptr[:-1][counts > 0]
    wins = np.add.reduceat(own, starts) > np.add.reduceat(alt, starts)
    assert np.mean(wins[counts[counts > 0] >= 3]) > 0.9  # observed ~0.97


def test_ratings():
    x, p, q = syn.make_ratings(3000, 800, 30_000, seed=2, return_factors=True)
    _assert_canonical(x, (3000, 800))
    assert x.nnz >= 0.98 * 30_000
    assert x.data.min() >= 1 and x.data.max() <= 5
    np.testing.assert_array_equal(x.data * 2, np.round(x.data * 2))  # halves
    assert len(np.unique(x.data)) == 9
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    signal = np.einsum("ij,ij->i", p[rows], q[x.indices])
    assert np.corrcoef(signal, x.data)[0, 1] > 0.6  # planted factors drive it
    cont = syn.make_ratings(300, 100, 3000, seed=2, step=None)
    assert len(np.unique(cont.data)) > 100


def test_describe():
    data = np.array([1.0, 2.0, 3.0, 4.0])
    indices = np.array([0, 1, 0, 0])
    indptr = np.array([0, 2, 3, 4, 4])  # last user has no entries
    x = sp.csr_matrix((data, indices, indptr), shape=(4, 3))
    d = syn.describe(x)
    assert d["shape"] == (4, 3) and d["nnz"] == 4
    assert d["density"] == pytest.approx(4 / 12)
    assert d["users_with_entries"] == pytest.approx(0.75)
    assert d["items_with_entries"] == pytest.approx(2 / 3)
    assert d["user_activity"]["max"] == 2 and d["user_activity"]["min"] == 0
    assert d["item_top1pct_share"] == pytest.approx(0.75)  # item 0: 3 of 4
    assert d["item_gini"] > 0.3
    assert d["value"] == {"min": 1.0, "mean": 2.5, "max": 4.0}


def test_invalid_arguments():
    with pytest.raises(ValueError):
        syn.make_implicit(10, 10, 101)
    with pytest.raises(ValueError):
        syn.make_implicit(10, 10, 5, rank=0)
