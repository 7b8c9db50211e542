"""The Dask estimators against the local ones, on a LocalCluster of two
worker processes with one thread each (docs/design.md, section 9)."""
import logging
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastunlearn as fu
from fastunlearn.synthetic import make_implicit

distributed = pytest.importorskip("distributed")
fud = pytest.importorskip("fastunlearn.dask")
from fastunlearn.distributed.backend import DaskBackend  # noqa: E402

PARAMS = dict(factors=8, regularization=0.1, alpha=2.0, iterations=4, random_state=0,
              num_threads=1, dtype=np.float64)


@pytest.fixture(scope="module")
def client():
    logging.getLogger("distributed").setLevel(logging.ERROR)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       memory_limit=0, dashboard_address=":0")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def data():
    return make_implicit(600, 150, 6000, seed=3)


@pytest.fixture(scope="module")
def fitted(client, data):
    """(distributed, local) fits of the same data and seed."""
    local = fu.ImplicitALS(**PARAMS).fit(data, show_progress=False)
    return fud.DaskImplicitALS(client, blocks=3, **PARAMS).fit(data), local


def twin(client, local, **kw):
    return fud.DaskImplicitALS.from_local(client, local, blocks=3, **kw)


def test_fit_equals_the_local_fit(fitted):
    dist, local = fitted
    # the same start and sweeps; only the Gram sums are added in another order
    np.testing.assert_allclose(dist.user_factors, local.user_factors, rtol=0, atol=1e-9)
    np.testing.assert_allclose(dist.item_factors, local.item_factors, rtol=0, atol=1e-9)
    assert dist.loss() == pytest.approx(local.loss(), rel=1e-10)
    cert, expected = dist.certificate(), local.certificate()
    assert cert.exact
    assert cert.max_row == pytest.approx(expected.max_row, rel=1e-6)
    assert (dist.user_items != local.user_items).nnz == 0


def test_factors_do_not_depend_on_the_number_of_workers(fitted, data):
    dist, _ = fitted
    with distributed.Client(distributed.LocalCluster(n_workers=1, threads_per_worker=1,
                                                     processes=False, memory_limit=0,
                                                     dashboard_address=":0")) as one:
        with pytest.warns(RuntimeWarning, match="blocks=3 on 1 workers"):
            alone = fud.DaskImplicitALS(one, blocks=3, **PARAMS).fit(data)
        np.testing.assert_array_equal(alone.user_factors, dist.user_factors)
        np.testing.assert_array_equal(alone.item_factors, dist.item_factors)


def test_float32_fit_matches_in_loss(client, data):
    # float32 ALS amplifies rounding into rotations of the latent space (a
    # local float32 and float64 fit of this data differ by a third of the
    # factors' scale), so at float32 the fits agree in objective, not entry
    # by entry; float64 above shows the computation is the same
    params = {**PARAMS, "dtype": np.float32}
    local = fu.ImplicitALS(**params).fit(data, show_progress=False)
    dist = fud.DaskImplicitALS(client, blocks=2, **params).fit(data)
    assert dist.user_factors.dtype == np.float32
    assert dist.loss() == pytest.approx(local.loss(), rel=1e-3)


def test_recommend_equals_local(fitted, data):
    dist, local = fitted
    users = [0, 5, 17, 599]
    ids, scores = dist.recommend(users, N=7)
    lids, lscores = local.recommend(users, data[users], N=7)
    np.testing.assert_allclose(scores, lscores, rtol=1e-9)
    np.testing.assert_array_equal(ids, lids)
    assert ids.dtype == lids.dtype and scores.dtype == lscores.dtype
    one_ids, one_scores = dist.recommend(5, N=4, filter_items=[int(lids[1, 0])])
    l_ids, l_scores = local.recommend(5, data[5], N=4, filter_items=[int(lids[1, 0])])
    np.testing.assert_array_equal(one_ids, l_ids)
    assert one_ids.dtype == l_ids.dtype
    np.testing.assert_allclose(one_scores, l_scores, rtol=1e-9)


def retained(R, users, items):
    R = R.tolil(copy=True)
    R[users, items] = 0
    R = R.tocsr()
    R.eliminate_zeros()
    return R


def check_consistent(dist, report, expected_data):
    """The distributed state is what it says: its data, its loss, a
    certificate bounding the exact one, a receipt that verifies."""
    local = dist.to_local()
    assert (local.user_items != expected_data).nnz == 0
    assert dist.loss() == pytest.approx(local.loss(), rel=1e-9)
    exact = local.certificate()  # measured afresh: from_factors keeps no measures
    assert exact.max_row <= report.certificate_after.max_row * (1 + 1e-9) + 1e-12
    assert report.converged
    assert exact.max_row <= report.tolerance * (1 + 1e-9)


def test_forget_user_is_certified_and_touches_only_what_it_disturbs(client, fitted, data):
    dist = twin(client, fitted[1])
    user = 11
    items = data[user].indices
    report = dist.forget_users([user], pending_limit=10 ** 6)  # no washout due
    assert report.n_removed == len(items)
    check_consistent(dist, report, retained(data, [user] * len(items), items))
    assert not dist.user_items[user].nnz
    assert report.rows_solved < data.shape[0] + data.shape[1]  # not a full sweep
    assert report.washout == 0 and report.pending_entries == len(items)
    assert fu.verify_receipt([user] * len(items), items, report.receipt_key, report.digest)
    assert dist.metadata["history"][-1]["digest"] == report.digest


def test_forget_pairs_with_washout_matches_a_local_forget(client, fitted, data):
    dist, local = twin(client, fitted[1]), fu.ImplicitALS.from_factors(
        fitted[1].user_factors, fitted[1].item_factors, data, **PARAMS)
    coo = data.tocoo()
    pick = np.random.default_rng(0).choice(data.nnz, 60, replace=False)
    users, items = coo.row[pick], coo.col[pick]
    report = dist.forget(users, items)
    expected = local.forget(users, items)
    assert report.washout == expected.washout > 0 and report.settled
    check_consistent(dist, report, retained(data, users, items))
    # the same washout from the same factors: the same model to rounding
    np.testing.assert_allclose(dist.user_factors, local.user_factors, atol=1e-6)
    assert report.loss_after == pytest.approx(expected.loss_after, rel=1e-6)


def test_forget_items(client, fitted, data):
    dist = twin(client, fitted[1])
    item = int(np.argmax(np.diff(data.tocsc().indptr)))
    users = data.tocsc()[:, item].indices
    report = dist.forget_items([item])
    check_consistent(dist, report, retained(data, users, [item] * len(users)))
    assert dist.user_items[:, item].nnz == 0


def test_sequential_forgets_stay_consistent(client, fitted, data):
    dist = twin(client, fitted[1])
    coo = data.tocoo()
    pick = np.random.default_rng(1).choice(data.nnz, 12, replace=False)
    expected = data
    for r in range(4):
        u, i = coo.row[pick[3 * r:3 * r + 3]], coo.col[pick[3 * r:3 * r + 3]]
        report = dist.forget(u, i)
        expected = retained(expected, u, i)
        check_consistent(dist, report, expected)


def test_missing_pair_changes_nothing(client, fitted, data):
    dist = twin(client, fitted[1])
    X, Y = dist.user_factors, dist.item_factors
    empty = np.flatnonzero(data[3].toarray().ravel() == 0)[0]
    with pytest.raises(ValueError, match="not stored"):
        dist.forget([3, 4], [int(empty), int(data[4].indices[0])])
    np.testing.assert_array_equal(dist.user_factors, X)
    np.testing.assert_array_equal(dist.item_factors, Y)
    assert (dist.user_items != data).nnz == 0
    assert "history" not in dist.metadata
    report = dist.forget([3, 4], [int(empty), int(data[4].indices[0])], missing="ignore")
    assert report.n_removed == 1


def test_a_lost_worker_leaves_the_model_whole(client, fitted, data, monkeypatch):
    """A worker dies in the middle of a forget: the request either fails and
    leaves the model exactly as it was, or completes on the survivor; in
    both cases the model is consistent and usable."""
    dist = twin(client, fitted[1], replicas=2)
    X, Y = dist.user_factors, dist.item_factors
    victim = dist._cluster.state["homes"]["items"][0]
    real = DaskBackend._solve
    calls = []

    def dying(self, *args, **kwargs):
        if not calls:
            calls.append(1)
            client.run(lambda: __import__("os")._exit(1), workers=[victim], wait=False)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DaskBackend, "_solve", dying)
    user = 20
    items = data[user].indices
    try:
        report = dist.forget_users([user], pending_limit=10 ** 6)
    except RuntimeError as error:
        assert "unchanged" in str(error)
        np.testing.assert_array_equal(dist.user_factors, X)
        np.testing.assert_array_equal(dist.item_factors, Y)
        assert (dist.user_items != data).nnz == 0
        monkeypatch.setattr(DaskBackend, "_solve", real)
        client.wait_for_workers(2, timeout=60)
        report = dist.forget_users([user], pending_limit=10 ** 6)
    check_consistent(dist, report, retained(data, [user] * len(items), items))
    assert calls
    client.wait_for_workers(2, timeout=60)


def test_task_keys_carry_nothing_of_a_request(client, fitted, data):
    """Every key the cluster holds after a forget is a function name and a
    random uuid: none is derived from the request's ids (as dask's
    content-hash keys of pure tasks would be)."""
    dist = twin(client, fitted[1])
    dist.forget_users([33])
    keys = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.tasks))
    # uuid4, with or without dashes (version nibble 4, variant 8-b): a
    # content hash would fail these two digits for most keys
    random_key = re.compile(r"^[A-Za-z_]\w*-([0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}|"
                            r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})$")
    assert keys and all(random_key.match(str(key)) for key in keys), keys[:5]


def test_spilling_workers_are_refused():
    with distributed.Client(distributed.LocalCluster(n_workers=1, threads_per_worker=1,
                                                     processes=False, memory_limit="2GiB",
                                                     dashboard_address=":0")) as spilling:
        with pytest.raises(ValueError, match="spill"):
            fud.DaskImplicitALS(spilling, **PARAMS)


def test_to_local_save_and_from_local_round_trip(client, fitted, tmp_path):
    dist, _ = fitted
    model = dist.to_local()
    np.testing.assert_array_equal(model.user_factors, dist.user_factors)
    back = fud.DaskImplicitALS.from_local(client, model, blocks=2)
    np.testing.assert_array_equal(back.item_factors, model.item_factors)
    assert back.certificate().max_row == pytest.approx(model.certificate().max_row, rel=1e-9)
    path = dist.save(tmp_path / "model.npz")
    loaded = fu.load(path)
    np.testing.assert_array_equal(loaded.user_factors, dist.user_factors)


def test_parquet_input_is_read_by_the_workers(client, data, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    coo = data.tocoo()
    half = coo.nnz // 2
    for n, part in enumerate((slice(0, half), slice(half, None))):
        table = pa.table({"user": coo.row[part], "item": coo.col[part],
                          "value": coo.data[part]})
        pq.write_table(table, tmp_path / f"part{n}.parquet")
    dist = fud.DaskImplicitALS(client, blocks=2, **PARAMS).fit(str(tmp_path))
    assert (dist.user_items != data).nnz == 0


def test_explicit_counterpart(client):
    R = sp.random(200, 80, density=0.05, random_state=0, format="csr") * 5
    params = dict(factors=6, regularization=0.1, iterations=3, random_state=0, num_threads=1,
                  dtype=np.float64)
    local = fu.ExplicitALS(**params).fit(R, show_progress=False)
    dist = fud.DaskExplicitALS(client, blocks=2, **params).fit(R)
    np.testing.assert_allclose(dist.user_factors, local.user_factors, atol=1e-9)
    coo = R.tocoo()
    report = dist.forget(coo.row[:5], coo.col[:5])
    check_consistent(dist, report, retained(R, coo.row[:5], coo.col[:5]))


def test_bad_arguments(client):
    with pytest.raises(TypeError):
        fud.DaskImplicitALS("tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="blocks"):
        fud.DaskImplicitALS(client, blocks=0)
    with pytest.raises(fu.NotFittedError):
        fud.DaskImplicitALS(client).certificate()


def test_empty_rows_and_columns(client):
    """Users and items without entries, at block ends too: they get zero
    gradient work and survive removals next to them."""
    R = make_implicit(120, 40, 900, seed=5).tolil()
    R[80:, :] = 0  # the last user block (rows 80-119 of 3 blocks) holds nothing
    R[:, 35:] = 0
    R = R.tocsr()
    R.eliminate_zeros()
    local = fu.ImplicitALS(**PARAMS).fit(R, show_progress=False)
    dist = fud.DaskImplicitALS(client, blocks=3, **PARAMS).fit(R)
    np.testing.assert_allclose(dist.user_factors, local.user_factors, atol=1e-9)
    user = 79
    items = R[user].indices
    assert len(items)
    report = dist.forget_users([user], pending_limit=10 ** 6)
    check_consistent(dist, report, retained(R, [user] * len(items), items))


def fitted_kind(kind, R):
    """A local float64 model of ``R``: implicit, explicit or ALS-WR ("weighted")."""
    if kind == "implicit":
        return fu.ImplicitALS(**PARAMS).fit(R, show_progress=False)
    return fu.ExplicitALS(factors=8, regularization=0.1, iterations=3, random_state=0,
                          num_threads=1, dtype=np.float64,
                          weighted_regularization=kind == "weighted").fit(
        R, show_progress=False)


@pytest.mark.parametrize("kind", ["implicit", "explicit", "weighted"])
def test_partial_sums_give_the_exact_gradient_norms(kind):
    """A block re-checks rows from its partners' owners' partial sums: the
    norms equal the kernels' exact gradient norms of a local model."""
    from fastunlearn.distributed import blocks
    from fastunlearn import objective as obj

    R = make_implicit(90, 40, 700, seed=8)
    R.data[::5] *= -1  # negative entries: preference 0
    model = fitted_kind(kind, R)
    X, Y = model.user_factors, model.item_factors
    items = R.T.tocsr()
    owners = [blocks.make_block("items", lo, items[lo:hi], Y[lo:hi], {})
              for lo, hi in ((0, 15), (15, 40))]
    users = blocks.make_block("users", 30, R[30:90], X[30:90], {})
    rows = np.array([0, 3, 17, 59])  # local rows of the user block
    ids = rows + 30
    partials = [blocks.partial_gradients(b, ids, X[ids], model.objective) for b in owners]
    gram = obj.gram64(Y) if model.objective.implicit else None
    block, _ = blocks.finish_norms(users, rows, partials, gram, model.objective, np.inf)
    exact = obj.gradient_norms(model.objective, model.state.data, X, Y, "users", ids,
                               num_threads=1)
    np.testing.assert_allclose(block.bounds[rows], exact, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["implicit", "explicit", "weighted"])
def test_solving_from_the_owners_normal_equations_equals_the_local_solve(kind):
    """Rows solved from their partners' owners' shares of the normal
    equations (what a popular item's block asks for instead of its users'
    factors) equal the local exact solve; the owners' raises equal the
    kernel's, and the moved rows' norms, data term change and Gram change
    are the exact ones."""
    from fastunlearn.distributed import blocks
    from fastunlearn import objective as obj

    R = make_implicit(90, 40, 900, seed=9)
    R.data[::7] *= -1
    model = fitted_kind(kind, R)
    o = model.objective
    X, Y = model.user_factors.copy(), model.item_factors.copy()
    X += 0.05 * np.random.default_rng(0).normal(size=X.shape)  # away from the fit's optimum
    Y += 0.05 * np.random.default_rng(1).normal(size=Y.shape)
    items = R.T.tocsr()
    owners = [blocks.make_block("users", lo, R[lo:hi], X[lo:hi], {})
              for lo, hi in ((0, 50), (50, 90))]
    for b in owners:
        b.bounds[:] = 0.0
    block = blocks.make_block("items", 10, items[10:40], Y[10:40], {})
    rows = np.array([1, 4, 22])  # local rows of the item block
    ids = rows + 10
    gram = obj.gram64(X) if o.implicit else None
    parts = [blocks.normal_parts(b, ids, o) for b in owners]
    solved, info = blocks.solve_parts(block, rows, parts, gram, o)

    data = model.state.data
    Xl, Yl = X.copy(), Y.copy()
    loss_before = obj.data_loss(o, data, "items", ids, Yl[ids], Xl, num_threads=1)
    obj.solve_rows(o, data, Xl, Yl, "items", ids, use_cg=False, cg_steps=0, num_threads=1)
    np.testing.assert_allclose(solved.F[rows], Yl[ids], rtol=1e-9, atol=1e-12)
    loss_after = obj.data_loss(o, data, "items", ids, Yl[ids], Xl, num_threads=1)
    assert info["dloss"] == pytest.approx(loss_after - loss_before, rel=1e-9, abs=1e-9)
    old, new = info["moves"]
    if o.implicit:
        np.testing.assert_allclose(info["delta"], new.T @ new - old.T @ old, atol=1e-12)

    expected = np.zeros(X.shape[0])
    obj.raise_partner_bounds(o, data, "items", ids, old, new, X, expected)
    partials, raised = [], np.zeros(X.shape[0])
    for b in owners:
        done, (summary, partial) = blocks.partner_work(b, ids, (old, new), o)
        raised[b.start:b.start + b.n] = done.bounds
        assert summary == done.summary()
        partials.append(partial)
    np.testing.assert_allclose(raised, expected, rtol=1e-9, atol=1e-12)
    measured, _ = blocks.finish_norms(solved, rows, partials, gram, o, np.inf)
    Ym = Y.copy()
    Ym[ids] = solved.F[rows]
    exact = obj.gradient_norms(o, data, X, Ym, "items", ids, num_threads=1)
    np.testing.assert_allclose(measured.bounds[rows], exact, rtol=1e-6, atol=1e-9)


def test_one_users_forget_sends_normal_equations_not_factors(client, monkeypatch):
    """Forgetting one user re-solves her items; their many users' factors
    stay where they are and only shares of the items' normal equations
    travel: fewer bytes between workers than routing the factors, and the
    same model to rounding."""
    R = make_implicit(3000, 60, 30000, seed=11)  # items of ~500 users each
    params = {**PARAMS, "factors": 16}
    local = fu.ImplicitALS(**params).fit(R, show_progress=False)
    user = int(np.argmax(np.diff(R.indptr)))
    items = R[user].indices

    def sent():
        return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
                   .values())

    results = {}
    for how in ("parts", "rows"):
        if how == "rows":
            monkeypatch.setattr(DaskBackend, "_parts_are_smaller", lambda self, *a: False)
        dist = fud.DaskImplicitALS.from_local(client, local, blocks=2)
        dist.certificate()
        before = sent()
        report = dist.forget_users([user], pending_limit=10 ** 6)
        results[how] = (sent() - before, dist.user_factors, dist.item_factors, report)
        check_consistent(dist, report, retained(R, [user] * len(items), items))
    (bytes_parts, X, Y, parts), (bytes_rows, Xr, Yr, rows) = results["parts"], results["rows"]
    assert bytes_parts < bytes_rows / 2, (bytes_parts, bytes_rows)
    np.testing.assert_allclose(X, Xr, atol=1e-9)
    np.testing.assert_allclose(Y, Yr, atol=1e-9)
    assert parts.loss_after == pytest.approx(rows.loss_after, rel=1e-9)


# ---------------------------------------------------------------- one engine
# The Dask model and the local one run the same phases
# (fastunlearn.forgetting.engine) over two backends: from the same factors
# and data, every request leaves the same factors and the same report.

KINDS = {
    "implicit": (fu.ImplicitALS, fud.DaskImplicitALS, PARAMS),
    "explicit": (fu.ExplicitALS, fud.DaskExplicitALS,
                 {**{k: v for k, v in PARAMS.items() if k != "alpha"},
                  "weighted_regularization": False}),
    "weighted": (fu.ExplicitALS, fud.DaskExplicitALS,
                 {**{k: v for k, v in PARAMS.items() if k != "alpha"},
                  "weighted_regularization": True}),
}
REPORT_FIELDS = ("n_removed", "users_affected", "items_affected", "rows_solved",
                 "rows_solved_by_phase", "sweeps", "strategy", "washout", "settled",
                 "pending_entries", "pending_requests", "converged", "refit")


@pytest.fixture(scope="module")
def fitted_kinds(data):
    """A local model of each objective, fitted on ``data``."""
    return {name: local_cls(**params).fit(data, show_progress=False)
            for name, (local_cls, _, params) in KINDS.items()}


def same_request(client, fitted_kinds, name, request, options):
    local_cls, dask_cls, params = KINDS[name]
    fitted = fitted_kinds[name]
    local = local_cls.from_factors(fitted.user_factors, fitted.item_factors,
                                   fitted.user_items, **params)
    dist = dask_cls.from_local(client, local, blocks=3)
    reports = [request(model, **options) for model in (local, dist)]
    return local, dist, reports


REQUESTS = {
    "users": lambda m, **o: m.forget_users([4, 9, 200], **o),
    "items": lambda m, **o: m.forget_items([2, 31], **o),
    "pairs": lambda m, **o: m.forget(*checked_pairs(m), **o),
}


def checked_pairs(model):
    coo = model.user_items.tocoo()
    pick = np.random.default_rng(5).choice(coo.nnz, 40, replace=False)
    return coo.row[pick], coo.col[pick]


# every objective with every strategy, each strategy with every kind of
# request (all 45 combinations take minutes on two cores)
STRATEGIES = {"default": dict(), "washout0": dict(washout=0), "full": dict(strategy="full"),
              "full-washout": dict(washout=1, strategy="full"), "refit": dict(washout="refit")}
CASES = [(name, request_name, strategy)
         for n, name in enumerate(sorted(KINDS))
         for s, strategy in enumerate(STRATEGIES)
         for request_name in [sorted(REQUESTS)[(n + s) % 3]]]


@pytest.mark.parametrize("name, request_name, strategy", CASES)
def test_dask_and_local_forget_alike(client, fitted_kinds, name, request_name, strategy):
    options = STRATEGIES[strategy]
    local, dist, (ours, theirs) = same_request(client, fitted_kinds, name,
                                               REQUESTS[request_name], options)
    np.testing.assert_allclose(dist.user_factors, local.user_factors, rtol=0, atol=1e-8)
    np.testing.assert_allclose(dist.item_factors, local.item_factors, rtol=0, atol=1e-8)
    for field in REPORT_FIELDS:
        assert getattr(theirs, field) == getattr(ours, field), field
    assert theirs.loss_after == pytest.approx(ours.loss_after, rel=1e-9)
    # each backend's certificate is exact or its own proven bound (per row,
    # per block; a washout measures exactly on the workers, by the fast
    # pass locally) of the same factors
    exact = local.certificate().max_row
    mine, yours = ours.certificate_after, theirs.certificate_after
    assert min(mine.max_row, yours.max_row) >= exact * (1 - 1e-9) - 1e-12
    if mine.exact and yours.exact:
        assert yours.max_row == pytest.approx(mine.max_row, rel=1e-6, abs=1e-12)
    # and settling what is pending
    ours, theirs = local.settle(), dist.settle()
    np.testing.assert_allclose(dist.item_factors, local.item_factors, rtol=0, atol=1e-8)
    assert (theirs.entries, theirs.rows_solved) == (ours.entries, ours.rows_solved)


def test_masked_sweeps_switch_to_full_sweeps_on_dask_as_locally(client, fitted_kinds):
    """A tolerance far below the model's certificate makes the masked sweeps
    solve more rows than a sweep has: both backends then switch to full
    sweeps at the same point."""
    tol = 0.02 * fitted_kinds["implicit"].certificate().max_row
    options = dict(tolerance=tol, max_sweeps=20, washout=0)
    local, dist, (ours, theirs) = same_request(client, fitted_kinds, "implicit",
                                               REQUESTS["pairs"], options)
    n_rows = sum(local.user_items.shape)
    assert ours.rows_solved >= n_rows + ours.rows_solved_by_phase["local"]  # it switched
    assert (theirs.sweeps, theirs.rows_solved) == (ours.sweeps, ours.rows_solved)
    assert theirs.converged == ours.converged
    np.testing.assert_allclose(dist.user_factors, local.user_factors, rtol=0, atol=1e-8)


def test_a_refit_on_dask_draws_from_the_seed_on_the_client(client, fitted_kinds):
    """A plain explicit model's washout refits from its ``random_state``; on
    Dask the client draws the start (the workers' spec carries no seed), so
    a ``RandomState`` seed gives the local refit's factors."""
    local_cls, dask_cls, params = KINDS["explicit"]
    fitted = fitted_kinds["explicit"]
    local = local_cls.from_factors(fitted.user_factors, fitted.item_factors,
                                   fitted.user_items, **params)
    dist = dask_cls.from_local(client, local, blocks=3)
    for model in (local, dist):
        model.set_params(random_state=np.random.RandomState(11))
    assert dist.spec.random_state is None
    reports = [REQUESTS["pairs"](model) for model in (local, dist)]
    assert reports[0].refit and reports[1].refit
    np.testing.assert_allclose(dist.user_factors, local.user_factors, rtol=0, atol=1e-8)
    np.testing.assert_allclose(dist.item_factors, local.item_factors, rtol=0, atol=1e-8)
    retrain = local_cls(**{**params, "random_state": np.random.RandomState(11)}).fit(
        local.user_items, show_progress=False)
    np.testing.assert_allclose(local.user_factors, retrain.user_factors, rtol=0, atol=1e-12)


def test_the_washout_count_travels_and_counts_on_dask_as_locally(client, fitted_kinds):
    """The relaxed washouts a model ran since its fit move with it both ways,
    and the Dask backend counts them and refits at the limit as the local
    one does (forgetting.RELAXED_BETWEEN_FITS)."""
    local_cls, dask_cls, params = KINDS["implicit"]
    fitted = fitted_kinds["implicit"]
    local = local_cls.from_factors(fitted.user_factors, fitted.item_factors,
                                   fitted.user_items, **{**params, "random_state": 3})
    limit = fu.forgetting.RELAXED_BETWEEN_FITS
    for i in range(limit):
        local.forget_users([i], washout=2)
    dist = dask_cls.from_local(client, local, blocks=3)
    assert dist.to_local().state.washouts == local.state.washouts == limit
    reports = [REQUESTS["users"](model, pending_limit=1) for model in (local, dist)]
    assert reports[0].refit and reports[1].refit
    np.testing.assert_allclose(dist.user_factors, local.user_factors, rtol=0, atol=1e-8)
    reports = [REQUESTS["items"](model, pending_limit=1) for model in (local, dist)]
    assert not reports[0].refit and not reports[1].refit
    assert dist.to_local().state.washouts == local.state.washouts == 1


@pytest.mark.parametrize("name", sorted(KINDS))
def test_dask_loss_is_the_local_loss_of_the_same_factors(client, fitted_kinds, name):
    local_cls, dask_cls, params = KINDS[name]
    dist = dask_cls.from_local(client, fitted_kinds[name], blocks=3)
    same = local_cls.from_factors(dist.user_factors, dist.item_factors, dist.user_items,
                                  **params)
    assert dist.loss() == pytest.approx(same.loss(), rel=1e-10)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_dask_and_local_partial_fit_alike(client, fitted_kinds, name):
    """Entries added to stored rows and to a new user and a new item: the
    same factors and report as the local model."""
    n_users, n_items = fitted_kinds[name].user_items.shape
    rows, cols = [0, 3, n_users, n_users, 7], [5, n_items, 2, 9, 11]
    delta = sp.csr_matrix((np.full(5, 4.0), (rows, cols)), shape=(n_users + 1, n_items + 1))

    def add(model, **options):
        return model.partial_fit(delta, **options)

    local, dist, (ours, theirs) = same_request(client, fitted_kinds, name, add, {})
    assert dist.shape == (n_users + 1, n_items + 1)
    np.testing.assert_allclose(dist.user_factors, local.user_factors, rtol=0, atol=1e-8)
    np.testing.assert_allclose(dist.item_factors, local.item_factors, rtol=0, atol=1e-8)
    for field in REPORT_FIELDS + ("n_added",):
        assert getattr(theirs, field) == getattr(ours, field), field
    assert theirs.loss_after == pytest.approx(ours.loss_after, rel=1e-9)
    assert (dist.user_items != local.user_items).nnz == 0


# ---------------------------------------------------------------- estimator protocol

def test_scikit_learn_protocol(client, fitted):
    """get_params / set_params / clone as on the local estimators: the
    clone shares the client, is unfitted and has equal parameters; bad
    values are refused and leave the model as it was."""
    sklearn_base = pytest.importorskip("sklearn.base")
    dist, local = fitted
    params = dist.get_params(deep=True)
    assert params["client"] is client and params["blocks"] == 3 and params["replicas"] == 1
    assert {k: v for k, v in params.items() if k not in ("client", "blocks", "replicas")} \
        == local.hyperparameters()
    copy = sklearn_base.clone(dist)
    assert type(copy) is type(dist) and not copy.is_fitted
    assert copy.get_params() == params and copy.client is client
    assert copy.set_params(regularization=0.5, blocks=2) is copy
    assert copy.get_params()["regularization"] == 0.5 and copy.blocks == 2
    assert copy.spec.objective.regularization == 0.5
    with pytest.raises(ValueError, match="regularization"):
        copy.set_params(regularization=-1.0, blocks=4)
    assert copy.blocks == 2 and copy.get_params()["regularization"] == 0.5
    with pytest.raises(ValueError, match="blocks"):
        copy.set_params(blocks=0)
    with pytest.raises(ValueError, match="factor"):
        copy.set_params(factorz=3)
    assert dist.get_params() == params  # the original is untouched


def test_many_small_blocks_warn(client):
    """blocks far beyond the workers on small data: a warning naming the
    faster setting; one block a worker: none."""
    R = make_implicit(200, 50, 1500, seed=5)
    with pytest.warns(RuntimeWarning, match="blocks=2 \\(one per worker\\)"):
        fud.DaskImplicitALS(client, blocks=8, **PARAMS).fit(R, show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fud.DaskImplicitALS(client, blocks=2, **PARAMS).fit(R, show_progress=False)


def test_fit_shows_progress_as_the_local_fit(client, capsys):
    """A progress bar per iteration by default, named after the estimator;
    none with show_progress=False."""
    R = make_implicit(100, 40, 600, seed=6)
    fud.DaskImplicitALS(client, **PARAMS).fit(R)
    err = capsys.readouterr().err
    assert "DaskImplicitALS" in err and f"{PARAMS['iterations']}/{PARAMS['iterations']}" in err
    fud.DaskImplicitALS(client, **PARAMS).fit(R, show_progress=False)
    assert "DaskImplicitALS" not in capsys.readouterr().err


def test_the_washout_policy_travels_with_the_model(client, fitted, data):
    """A local model's ``"refit"`` policy holds on its distributed twin, which
    then refits at its washouts as the local model does, and comes back."""
    local = fu.ImplicitALS.from_factors(fitted[1].user_factors, fitted[1].item_factors, data,
                                        **PARAMS)
    local.washout_policy = "refit"
    dist = twin(client, local)
    assert dist.washout_policy == "refit"
    coo = data.tocoo()
    pick = np.random.default_rng(5).choice(data.nnz, 3, replace=False)
    users, items = coo.row[pick], coo.col[pick]
    report = dist.forget(users, items, pending_limit=1)
    expected = local.forget(users, items, pending_limit=1)
    assert report.refit and expected.refit
    assert report.loss_after == pytest.approx(expected.loss_after, rel=1e-5)
    assert dist.to_local().washout_policy == "refit"
    with pytest.raises(ValueError, match="washout_policy"):
        dist.washout_policy = "never"
    dist.washout_policy = "default"
    assert dist.to_local().washout_policy == "default"
    left = dist.user_items.tocoo()
    assert not dist.forget(left.row[:1], left.col[:1], pending_limit=1).refit
