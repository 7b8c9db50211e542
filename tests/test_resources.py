"""Memory estimate and check before ``fit``, and the int64 index path that
more than 2**31 - 1 stored entries take (tested without allocating them)."""
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
from fastunlearn import persistence, resources, storage, validation
from fastunlearn.resources import ENV_LIMIT, check_memory, estimate_fit_memory
from fastunlearn.validation import INT32_MAX, index_dtype


def random_csr(n_users, n_items, nnz, dtype, seed=0):
    rng = np.random.default_rng(seed)
    R = sp.csr_matrix((rng.random(nnz).astype(dtype) + 0.5,
                       (rng.integers(n_users, size=nnz), rng.integers(n_items, size=nnz))),
                      shape=(n_users, n_items))
    R.sum_duplicates()
    return R


# ------------------------------------------------------------------ the estimate

@pytest.mark.parametrize("n_users, n_items, nnz, k, dtype, use_cg, threads", [
    (20_000, 3_000, 120_000, 32, np.float32, True, 2),
    (6_000, 20_000, 60_000, 48, np.float64, False, 2),
    (400, 300, 5_000, 120, np.float64, False, 1),
])
def test_estimate_bounds_the_measured_peak(n_users, n_items, nnz, k, dtype, use_cg, threads):
    """tracemalloc sees every NumPy allocation: the estimate must cover the
    peak of fit and not overshoot it by much (it gates real work)."""
    R = random_csr(n_users, n_items, nnz, dtype)
    model = fu.ImplicitALS(factors=k, iterations=2, dtype=dtype, use_cg=use_cg,
                           num_threads=threads, random_state=0)
    tracemalloc.start()
    try:
        model.fit(R, show_progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = estimate_fit_memory(n_users, n_items, R.nnz, k, dtype, threads=threads)
    assert peak <= estimate <= 1.25 * peak + 2**20


def test_estimate_counts_each_part():
    base = dict(n_users=1000, n_items=500, nnz=10_000, factors=16, dtype=np.float32,
                index_dtype=np.int32, threads=1)
    e = estimate_fit_memory(**base)
    # each stored entry: an index and a value in each orientation
    assert estimate_fit_memory(**{**base, "nnz": 10_001}) - e == 2 * (4 + 4)
    # a user: one row pointer (the item-major copy has none), its factors, a row-list
    # entry and solve status (users are the larger side here) and its loss
    assert estimate_fit_memory(**{**base, "n_users": 1001}) - e == 4 + 16 * 4 + 8 + 4 + 8
    # int64 indices: every index and row pointer doubles
    wide = estimate_fit_memory(**{**base, "index_dtype": np.int64})
    assert wide - e == 4 * (1001 + 501 + 2 * 10_000)
    # float64: values and factors double
    double = estimate_fit_memory(**{**base, "dtype": np.float64})
    assert double - e >= 4 * (2 * 10_000 + 1500 * 16)
    # a thread adds its scratch: for k = 16 the Cholesky block dominates
    assert estimate_fit_memory(**{**base, "threads": 3}) - e == 2 * (16 * 16 + 16 + 128 * 16) * 4
    # the default index width is the one fit would choose
    assert estimate_fit_memory(**{**base, "index_dtype": None}) == e
    with pytest.raises(ValueError, match=">= 0"):
        estimate_fit_memory(**{**base, "nnz": -1})


# ------------------------------------------------------------------ the check

def test_fit_refuses_before_allocating(monkeypatch):
    # a billion users: the factors alone need 64 GB; indptr would be 4 GB
    R = sp.csr_matrix(([1.0], ([0], [0])), shape=(1, 10))
    R._shape = (10**9, 10)  # only the shape is read before the refusal
    monkeypatch.setenv(ENV_LIMIT, str(8 * 2**30))
    model = fu.ImplicitALS(factors=16, iterations=1)
    tracemalloc.start()
    try:
        with pytest.raises(MemoryError) as info:
            model.fit(R, show_progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "fit needs about" in message and "GiB" in message
    assert "8.0 GiB (8589934592 bytes) is available (FASTUNLEARN_MEMORY_LIMIT)" in message
    assert "fewer factors" in message
    assert peak < 2**20 and not model.is_fitted


def test_refused_fit_keeps_the_fitted_model(monkeypatch):
    R = random_csr(50, 40, 300, np.float64)
    model = fu.ExplicitALS(factors=3, iterations=2, dtype=np.float64, random_state=0)
    model.fit(R, show_progress=False)
    before = model.user_factors.copy()
    monkeypatch.setenv(ENV_LIMIT, "1000")
    with pytest.raises(MemoryError, match="1000 bytes"):
        model.fit(random_csr(60, 40, 300, np.float64), show_progress=False)
    assert np.array_equal(model.user_factors, before) and model.user_items.shape == (50, 40)
    monkeypatch.setenv(ENV_LIMIT, str(2**40))
    model.fit(R, show_progress=False)


def test_bad_limit_variable_is_named(monkeypatch):
    monkeypatch.setenv(ENV_LIMIT, "lots")
    with pytest.raises(ValueError, match="FASTUNLEARN_MEMORY_LIMIT must be a number of bytes"):
        check_memory(10)
    monkeypatch.setenv(ENV_LIMIT, "-5")
    with pytest.raises(ValueError, match=">= 0"):
        check_memory(10)


def test_available_memory_sources(monkeypatch):
    monkeypatch.delenv(ENV_LIMIT, raising=False)
    # unknown everywhere: nothing is checked
    monkeypatch.setattr(resources, "_meminfo_available", lambda: None)
    monkeypatch.setattr(resources, "_cgroup_available", lambda: None)
    monkeypatch.setattr(resources.os, "sysconf", lambda name: -1)
    assert resources.available_memory() == (None, "unknown")
    check_memory(2**80)
    # the smaller of the machine's and the container's
    monkeypatch.setattr(resources, "_meminfo_available", lambda: 5000)
    monkeypatch.setattr(resources, "_cgroup_available", lambda: 3000)
    assert resources.available_memory() == (3000, "the container's cgroup memory limit")
    with pytest.raises(MemoryError, match="cgroup"):
        check_memory(4000, what="forget")


def test_cgroup_files(tmp_path):
    read = resources._cgroup_available
    assert read(str(tmp_path)) is None  # no cgroup files
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("100\n")
    assert read(str(tmp_path)) is None
    (tmp_path / "memory.max").write_text("4096\n")
    assert read(str(tmp_path)) == 3996
    (tmp_path / "memory.current").write_text("9999\n")
    assert read(str(tmp_path)) == 0
    (tmp_path / "memory.max").write_text("garbage\n")
    assert read(str(tmp_path)) is None
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.limit_in_bytes").write_text(str(2**63 - 4096))
    (v1 / "memory" / "memory.usage_in_bytes").write_text("5")
    assert read(str(v1)) is None
    (v1 / "memory" / "memory.limit_in_bytes").write_text("1000")
    assert read(str(v1)) == 995


def test_machine_memory_is_read():
    available, source = resources.available_memory()
    if available is None:
        pytest.skip("this platform reports no available memory")
    assert available > 0 and source


# ------------------------------------------------------------------ int64 indices

def test_index_width_choice():
    assert index_dtype((10, 10), INT32_MAX) == np.int32
    assert index_dtype((10, 10), INT32_MAX + 1) == np.int64  # > 2**31 - 1 stored entries
    assert index_dtype((INT32_MAX + 1, 10), 5) == np.int64
    assert index_dtype((10, INT32_MAX + 1), 5) == np.int64
    assert index_dtype((INT32_MAX, INT32_MAX), INT32_MAX) == np.int32


def test_more_than_2_31_entries_are_estimated_with_int64_and_refused_clearly(monkeypatch):
    nnz = 3 * 2**31
    e64 = estimate_fit_memory(10**6, 10**5, nnz, 32, np.float32, threads=2)
    assert e64 - estimate_fit_memory(10**6, 10**5, nnz - 1, 32, np.float32, threads=2) \
        == 2 * (8 + 4)
    monkeypatch.setenv(ENV_LIMIT, str(64 * 2**30))
    with pytest.raises(MemoryError, match=r"fit needs about 144\.\d GiB .* only 64\.0 GiB"):
        check_memory(e64)


@pytest.fixture
def int64_everywhere(monkeypatch):
    """Every CSR array a model holds is int64, as for > 2**31 - 1 entries."""
    wide = lambda shape, nnz: np.int64  # noqa: E731
    for module in (validation, storage, persistence):
        monkeypatch.setattr(module, "index_dtype", wide)


def pipeline(R, cls, use_cg, tmp_path, name):
    """fit, measures, forget in three ways, partial_fit, ranking, save/load."""
    model = cls(factors=4, iterations=3, use_cg=use_cg, dtype=np.float64, random_state=2,
                num_threads=2).fit(R, show_progress=False)
    out = [model.user_factors.copy(), model.item_factors.copy(),
           np.array([model.loss(), model.certificate().max_row])]
    coo = model.user_items.tocoo()
    model.forget(coo.row[::5], coo.col[::5], tolerance=1e-6, max_sweeps=40)
    model.forget_users([1], tolerance=1e-6, max_sweeps=40)
    model.forget_items([2], tolerance=1e-6, max_sweeps=40)
    delta = sp.csr_matrix(([1.0, 3.0], ([0, R.shape[0]], [R.shape[1], 1])),
                          shape=(R.shape[0] + 1, R.shape[1] + 1))
    model.partial_fit(delta, tolerance=1e-6, max_sweeps=40)
    ids, scores = model.recommend(np.arange(3), model.user_items[:3], N=5)
    loaded = fu.load(model.save(tmp_path / name))
    widths = {a.dtype for a in (*model.state.data.by_user.arrays()[:2],
                                *model.state.data.by_item.arrays()[:2],
                                *loaded.state.data.by_user.arrays()[:2])}
    return out + [model.user_factors, model.item_factors, ids, scores,
                  loaded.item_factors, model.user_items.toarray()], widths


@pytest.mark.parametrize("cls", [fu.ImplicitALS, fu.ExplicitALS])
@pytest.mark.parametrize("use_cg", [False, True])
def test_int64_indices_give_the_int32_results(request, tmp_path, cls, use_cg):
    R = random_csr(30, 20, 150, np.float64, seed=4)
    R.data[::4] *= -1
    narrow, widths = pipeline(R, cls, use_cg, tmp_path, "narrow")
    assert widths == {np.dtype(np.int32)}
    request.getfixturevalue("int64_everywhere")
    wide, widths = pipeline(R, cls, use_cg, tmp_path, "wide")
    assert widths == {np.dtype(np.int64)}
    for a, b in zip(narrow, wide):
        assert np.array_equal(a, b)
