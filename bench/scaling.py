"""Scaling: wall time of fit (per iteration) and of forget (one median user's
history; a random 1% of the entries) against the number of stored entries,
and against the number of factors, on seeded synthetic data.

Fit time per iteration is the median over the iterations of one fit (the
fit callback times each sweep alone); each forget is timed ``repeats`` times
from the same fitted factors and the median reported, on a measured model
(steady state: ``certificate()`` ran before the clock) and cold (the first
request pays one exact pass over the data).  The factors sweep reuses the
nnz sweep's data and measurement where the two meet (2M entries, factors 64).

Then the Dask estimator on a LocalCluster of this machine (2 worker
processes, 1 thread each, one block per worker and side): fit seconds per
iteration against the local fit with the same total threads, and the
forgets above with their wall time and the bytes the workers sent (to
each other and to the client; ``transfer_outgoing_bytes_total``), against
the bytes of one broadcast of the item factors.
"""
import time

import numpy as np

import fastunlearn as fu
import plots
from common import median, median_user, write
from fastunlearn import audit
from fastunlearn.synthetic import make_implicit

SIZES = (1_000_000, 2_000_000, 5_000_000, 10_000_000, 20_000_000)
FACTORS = (32, 64, 128, 256)
FACTORS_NNZ = 2_000_000
PARAMS = dict(regularization=0.05, alpha=1.0, use_cg=True, random_state=0)


def data(nnz):
    """Synthetic implicit data of ``nnz`` entries at the density of bench/forget.py's
    2M set (100k users x 20k items): 20 entries per user, 100 per item."""
    return make_implicit(max(nnz // 20, 100), max(nnz // 100, 100), nnz, seed=0)


def measure(R, factors, iterations, repeats, threads):
    params = dict(PARAMS, factors=factors, iterations=iterations, num_threads=threads)
    per_iteration = []
    model = fu.ImplicitALS(**params)
    model.fit(R, show_progress=False, callback=lambda it, s, loss: per_iteration.append(s))

    user = median_user(model.user_items, kind="stable")
    history = model.user_items[user].indices.astype(np.int64)
    requests = {
        "forget_user": (np.full(len(history), user, dtype=np.int64), history),
        "forget_1pct": audit.unlearning_set(model.user_items, 0.01, "random", seed=0),
    }
    record = {"nnz": int(R.nnz), "users": R.shape[0], "items": R.shape[1],
              "factors": factors, "iterations": iterations,
              "data_bytes": int(2 * (R.data.nbytes + R.indices.nbytes + R.indptr.nbytes)
                                + (R.shape[0] + R.shape[1]) * factors * 4),
              "fit_per_iteration": {"seconds": median(per_iteration), "runs": per_iteration}}
    for key, (users, items) in requests.items():
        runs, cold, receipt = [], [], None
        for _ in range(repeats):
            for measured in (True, False):
                copy = fu.ImplicitALS.from_factors(model.user_factors, model.item_factors,
                                                   model.user_items, **params)
                if measured:  # steady state: the model's measures are known
                    copy.certificate()
                start = time.perf_counter()
                receipt = copy.forget(users, items)
                (runs if measured else cold).append(time.perf_counter() - start)
                del copy
        record[key] = {"seconds": median(runs), "runs": runs, "cold_seconds": median(cold),
                       "cold_runs": cold, "removed": int(len(users)),
                       "rows_solved": receipt.rows_solved, "sweeps": receipt.sweeps,
                       "converged": receipt.converged}
    return record


def distributed(R, factors, iterations, repeats):
    """The Dask section (see the module docstring); None without dask."""
    try:
        from distributed import Client, LocalCluster

        from fastunlearn.dask import DaskImplicitALS
    except ImportError:
        return None
    params = dict(PARAMS, factors=factors, iterations=iterations, num_threads=1)
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=0,
                           dashboard_address=":0")
    client = Client(cluster)

    def sent():
        return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
                   .values())

    try:
        fits, local_fits = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            DaskImplicitALS(client, **params).fit(R)
            fits.append((time.perf_counter() - start) / iterations)
            start = time.perf_counter()
            local = fu.ImplicitALS(**{**params, "num_threads": 2}).fit(R, show_progress=False)
            local_fits.append((time.perf_counter() - start) / iterations)
        user = median_user(local.user_items, kind="stable")
        history = local.user_items[user].indices.astype(np.int64)
        coo = local.user_items.tocoo()
        ten = np.isin(coo.row, np.random.default_rng(0).choice(
            np.flatnonzero(np.diff(local.user_items.indptr)), 10, replace=False))
        requests = {
            "forget_user": (np.full(len(history), user, dtype=np.int64), history),
            "forget_10_users": (coo.row[ten].astype(np.int64), coo.col[ten].astype(np.int64)),
            "forget_1pct": audit.unlearning_set(local.user_items, 0.01, "random", seed=0),
        }
        record = {"nnz": int(R.nnz), "factors": factors, "workers": 2,
                  "fit_per_iteration": {"seconds": median(fits), "runs": fits,
                                        "local_seconds": median(local_fits),
                                        "local_runs": local_fits},
                  "item_factors_bytes": int(R.shape[1] * factors * 4)}
        for key, (users, items) in requests.items():
            runs, moved, report = [], [], None
            for _ in range(repeats):
                twin = DaskImplicitALS.from_local(client, local)
                before = sent()
                start = time.perf_counter()
                report = twin.forget(users, items)
                runs.append(time.perf_counter() - start)
                moved.append(sent() - before)
                del twin
            record[key] = {"seconds": median(runs), "runs": runs,
                           "bytes_sent": int(median(moved)), "bytes_runs": moved,
                           "removed": int(len(users)), "washout": report.washout,
                           "converged": report.converged}
        return record
    finally:
        client.close()
        cluster.close()


DIST_REQUESTS = (("forget_user", "one median user"), ("forget_10_users", "10 random users"),
                 ("forget_1pct", "1% random entries"))
DIST_HEADER = ["nnz", "factors", "fit s/iter (dask)", "fit s/iter (local)", "request",
               "entries", "washout", "forget s", "bytes sent", "bytes / item factors"]


def _dist_rows(r):
    """One row per request: its size, time and bytes against one broadcast
    of the item factors."""
    out = []
    for key, label in DIST_REQUESTS:
        q = r[key]
        out.append([f"{r['nnz']:,}", r["factors"], f"{r['fit_per_iteration']['seconds']:.3f}",
                    f"{r['fit_per_iteration']['local_seconds']:.3f}", label,
                    f"{q['removed']:,}", "yes" if q["washout"] else "no",
                    f"{q['seconds']:.3f}", f"{q['bytes_sent']:,}",
                    f"{q['bytes_sent'] / r['item_factors_bytes']:.3f}"])
    return out


def _row(r):
    return [f"{r['nnz']:,}", f"{r['users']:,} x {r['items']:,}", r["factors"],
            f"{r['fit_per_iteration']['seconds']:.3f}",
            f"{r['forget_user']['seconds']:.4f}", f"{r['forget_user']['cold_seconds']:.3f}",
            r["forget_user"]["removed"], r["forget_user"]["rows_solved"],
            f"{r['forget_1pct']['seconds']:.3f}", f"{r['forget_1pct']['cold_seconds']:.3f}",
            f"{r['forget_1pct']['removed']:,}",
            f"{r['forget_1pct']['rows_solved']:,}",
            f"{r['forget_1pct']['seconds'] / r['fit_per_iteration']['seconds']:.2f}",
            f"{r['data_bytes'] / 2**20:.0f}"]


HEADER = ["nnz", "users x items", "factors", "fit s/iter", "forget user s",
          "forget user s (cold)", "user entries", "user rows solved", "forget 1% s",
          "forget 1% s (cold)", "1% entries", "1% rows solved",
          "forget 1% / fit iteration", "CSR+T+factors MiB"]


def run(quick=False, repeats=3, threads=2):
    if quick:
        sizes, factors, factors_nnz, iterations = (20_000, 50_000), (8, 16), 20_000, 2
    else:
        sizes, factors, factors_nnz, iterations = SIZES, FACTORS, FACTORS_NNZ, 10
    nnz_factors = 8 if quick else 64
    by_nnz, by_factors = [], []
    shared = None  # the nnz sweep's record and data at factors_nnz entries
    for nnz in sizes:
        start = time.perf_counter()
        R = data(nnz)
        by_nnz.append(measure(R, nnz_factors, iterations, repeats, threads))
        print(f"nnz {nnz:,}: {time.perf_counter() - start:.1f} s", flush=True)
        if nnz == factors_nnz:
            shared = by_nnz[-1], R
        del R
    R = shared[1] if shared else data(factors_nnz)
    for k in factors:
        if shared and k == nnz_factors:  # measured already in the nnz sweep
            by_factors.append(shared[0])
            continue
        start = time.perf_counter()
        by_factors.append(measure(R, k, iterations, repeats, threads))
        print(f"factors {k}: {time.perf_counter() - start:.1f} s", flush=True)
    dist = distributed(R, nnz_factors, iterations, repeats)
    name = "scaling-quick" if quick else "scaling"
    params = {**PARAMS, "factors": nnz_factors, "iterations": iterations, "num_threads": threads}
    sections = [(f"Against factors ({factors_nnz:,} entries)", HEADER,
                 [_row(r) for r in by_factors])]
    if dist is not None:
        sections.append(("Dask, LocalCluster of 2 worker processes x 1 thread", DIST_HEADER,
                         _dist_rows(dist)))
    payload = write(name, {"threads": threads, "repeats": repeats, "factors_swept": list(factors),
                           "nnz": by_nnz, "factors": by_factors, "distributed": dist},
                    [_row(r) for r in by_nnz], HEADER, sections, params=params)
    plots.scaling(payload, name)
    return payload
