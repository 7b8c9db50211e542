"""Serving: exact top-10 against each approximate index (fastunlearn.ann),
and what it costs to keep an index equal to the model after a forget.

On the synthetic set (``make_implicit``, k 64): recommend-all throughput
(users per second, liked items filtered) of the model's exact ranking, of
``FaissModel`` and of ``HNSWModel``, their tie-aware recall@10 against the
exact lists, their build time, and the index update after a one-user
forget (the rows it moved removed and added again) against a rebuild,
medians over ``repeats`` users.  Every method runs on one thread (the
benchmark machine is shared; the ratios are what it reports).
"""
import numpy as np

import fastunlearn as fu
from common import median, timed, write

FULL = dict(users=100_000, items=20_000, nnz=2_000_000)
# a second size (bench/results/serve-scaled.md): python -c "import sys;
# sys.path.insert(0, 'bench'); import serve; serve.run(scale=serve.SCALED)"
SCALED = dict(users=25_000, items=10_000, nnz=500_000)
QUICK = dict(users=5_000, items=2_000, nnz=60_000)
PARAMS = dict(factors=64, regularization=0.05, alpha=1.0, iterations=8, random_state=0,
              num_threads=1)
QUERY_USERS = 2_000  # users ranked for throughput and recall (a dense score block each)


def _recall(approx, exact_scores, kth):
    got = np.take_along_axis(exact_scores, np.maximum(approx, 0), axis=1)
    return float(((approx >= 0) & (got >= kth[:, None] - 1e-5 * np.abs(kth[:, None])))
                 .sum(axis=1).mean() / approx.shape[1])


def run(quick=False, repeats=3, scale=None):
    import faiss

    from fastunlearn.ann import FaissModel, HNSWModel
    from fastunlearn.synthetic import make_implicit

    faiss.omp_set_num_threads(1)
    size = dict(scale or (QUICK if quick else FULL))
    R = make_implicit(size["users"], size["items"], size["nnz"], seed=0)
    fit_seconds, model = timed(lambda: fu.AlternatingLeastSquares(
        **{**PARAMS, "num_threads": 0}).fit(R, show_progress=False))
    model.num_threads = 1  # serving: one thread, as the indexes
    rng = np.random.default_rng(0)
    users = np.sort(rng.choice(R.shape[0], min(QUERY_USERS, R.shape[0]), replace=False))
    rows = R[users]

    exact_seconds, (exact_ids, _) = timed(lambda: model.recommend(users, rows, N=10))
    scores = model.user_factors[users] @ model.item_factors.T
    scores[rows.toarray() > 0] = np.nan
    kth = np.nanmin(np.take_along_axis(scores, exact_ids.astype(np.int64), axis=1), axis=1)

    nlist = 400 if size["items"] >= 8_000 else max(8, int(np.sqrt(size["items"])))
    probes = (20, 50, 100) if nlist == 400 else (nlist * 3 // 10, nlist * 6 // 10)
    indexes = {f"faiss nlist={nlist} nprobe={p}":
               (lambda p=p: FaissModel(model, nlist=nlist, nprobe=p)) for p in probes}
    indexes["hnsw M=16 efC=200 ef=100"] = lambda: HNSWModel(model, M=16, ef_construction=200,
                                                            ef=100)
    rows_out = [["exact (model.recommend)", f"{len(users) / exact_seconds:,.0f}", "1.000",
                 "", "", "", ""]]
    payload = {"size": size, "fit_seconds": fit_seconds, "exact_users_per_s":
               len(users) / exact_seconds, "indexes": {}}
    # users to forget: near the median activity, a different one each repeat
    counts = np.diff(R.indptr)
    median_users = np.flatnonzero(counts == int(np.median(counts)))
    for number, (name, make) in enumerate(indexes.items()):
        wrapper = make()
        builds = []
        for _ in range(repeats):
            builds.append(timed(wrapper.rebuild)[0])
            _with_one_hnsw_thread(wrapper)  # searches and updates (hnswlib builds on all)
        seconds, (ids, _) = timed(lambda: wrapper.recommend(users, rows, N=10))
        recall = _recall(ids, scores, kth)
        updates, moved = [], []
        # the indexes share the model: each forgets users of its own
        for user in median_users[number * repeats:(number + 1) * repeats]:
            wrapper.forget_users([int(user)])
            assert not wrapper.last_update["rebuilt"]
            updates.append(wrapper.last_update["seconds"])
            moved.append(wrapper.last_update["moved"])
        build, update = median(builds), median(updates)
        payload["indexes"][name] = {"users_per_s": len(users) / seconds, "recall_at_10": recall,
                                    "build_seconds": builds, "update_seconds": updates,
                                    "moved_rows": moved}
        rows_out.append([name, f"{len(users) / seconds:,.0f}", f"{recall:.3f}",
                         f"{build:.2f}", f"{update * 1000:.1f}", f"{median(moved):.0f}",
                         f"1/{build / max(update, 1e-9):.0f}"])
    header = ["method", "users/s (top-10)", "recall@10", "build s", "update ms (1-user forget)",
              "rows moved", "update / build"]
    name = "serve-quick" if quick else "serve"
    if scale is not None:
        name = "serve-scaled"
    notes = (f"{size['users']:,} users x {size['items']:,} items, {R.nnz:,} interactions, "
             f"factors {PARAMS['factors']}, {PARAMS['iterations']} fit iterations "
             f"({fit_seconds:.0f} s); throughput over {len(users):,} users, one thread each. "
             "A one-user forget: the default forget of a median-activity user (no washout "
             "due); its update is the index work after it (moved rows found by comparing "
             "the factors, removed and added again), the model's own forget not included.")
    write(name, payload, rows_out, header, notes=notes, params={**PARAMS, **size})


def _with_one_hnsw_thread(wrapper):
    for _, slot in wrapper._slots():
        index = getattr(slot, "index", None)
        if hasattr(index, "set_num_threads"):
            index.set_num_threads(1)
