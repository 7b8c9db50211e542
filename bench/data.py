"""Reading interactions: ``read_interactions`` against the pyarrow reference
pipeline, on the same file in the same run.

The reference is what a user would write by hand: ``pyarrow.csv.read_csv``
(or ``pyarrow.parquet.read_table``), ``np.unique(..., return_inverse=True)``
on both id columns, and a canonical CSR (``csr_matrix`` from COO, repeats
summed, indices sorted).  It checks nothing (no canonical-integer rule, no
finite-value or line-number checks), so a ratio near 1 means the checks are
nearly free.

Each measurement runs in a fresh process (``run.py data-child``) that first
reads a tiny file, so pyarrow's thread pools exist before the clock and the
memory baseline start; peak memory is the resident set above that baseline,
sampled every 2 ms, and is reported as a multiple of the result's own size
(CSR arrays plus id maps).  The data is generated under the system's
temporary folder (``--data-dir`` or ``$TMPDIR``), never in the repository:
500k users and 100k items drawn uniformly, ratings 1-5 (10M lines, about
140 MB; ``--quick``: 200k lines).  ``FASTUNLEARN_BENCH_DATA_LINES`` sets the
sizes instead (comma separated; ``100000000`` is about 1.5 GB on disk and
several GB of memory for the reference).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import PeakRSS, median, write

SIZES = {"quick": [200_000], "full": [10_000_000]}
N_USERS, N_ITEMS = 500_000, 100_000
PIPELINES = ("fastunlearn", "reference")


def generate(folder, n):
    """``ratings-N.csv`` and ``ratings-N.parquet`` under ``folder`` (made once)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    csv_path, parquet_path = folder / f"ratings-{n}.csv", folder / f"ratings-{n}.parquet"
    if not csv_path.exists() or not parquet_path.exists():
        rng = np.random.default_rng(0)
        step = 10_000_000
        writer = None
        with open(csv_path, "wb") as out:
            out.write(b"user,item,rating\n")
            for start in range(0, n, step):
                m = min(step, n - start)
                table = pa.table({"user": rng.integers(0, N_USERS, m),
                                  "item": rng.integers(0, N_ITEMS, m),
                                  "rating": rng.integers(1, 6, m).astype(np.float64)})
                pcsv.write_csv(table, out, pcsv.WriteOptions(include_header=False))
                writer = writer or pq.ParquetWriter(parquet_path, table.schema)
                writer.write_table(table)
        writer.close()
    return csv_path, parquet_path


def with_bad_line(folder, csv_path, n):
    """A copy of ``csv_path`` whose line at 76.5 % of the file has a bad value."""
    bad_path = folder / f"ratings-{n}-bad.csv"
    line = int(n * 0.765) + 1  # 1-based, counting the header
    if not bad_path.exists():
        with open(csv_path, "rb") as src, open(bad_path, "wb") as dst:
            for number, text in enumerate(src, 1):
                if number == line:
                    u, i, _ = text.split(b",")
                    text = b",".join((u, i, b"oops\n"))
                dst.write(text)
    return bad_path, line


def child(args):
    """One read in this process; print JSON: seconds, peak and result bytes."""
    from fastunlearn.data import read_interactions

    tiny = Path(tempfile.mkdtemp()) / "tiny.csv"
    tiny.write_text("user,item,rating\n1,2,3\n")
    read_interactions(tiny)
    _reference(tiny)
    with PeakRSS() as rss:
        start = time.perf_counter()
        if args.pipeline == "fastunlearn":
            try:
                inter = read_interactions(args.path)
                out = (inter.matrix, inter.user_ids, inter.item_ids)
                error = None
            except ValueError as e:
                out, error = None, str(e)
        else:
            out, error = _reference(args.path), None
        seconds = time.perf_counter() - start
    size = None
    if out is not None:
        m, uids, iids = out
        size = m.data.nbytes + m.indices.nbytes + m.indptr.nbytes + uids.nbytes + iids.nbytes
    print(json.dumps({"seconds": seconds, "peak_bytes": rss.extra_bytes, "result_bytes": size,
                      "error": error}))


def _reference(path):
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    import scipy.sparse as sp

    path = str(path)
    table = pq.read_table(path) if path.endswith(".parquet") else pcsv.read_csv(path)
    users, rows = np.unique(table.column(0).to_numpy(), return_inverse=True)
    items, cols = np.unique(table.column(1).to_numpy(), return_inverse=True)
    values = table.column(2).to_numpy().astype(np.float32)
    del table
    matrix = sp.csr_matrix((values, (rows.ravel(), cols.ravel())),
                           shape=(len(users), len(items)))
    matrix.sum_duplicates()  # also sorts the indices
    return matrix, users, items


def _measure(pipeline, path):
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "run.py"), "data-child",
           "--pipeline", pipeline, "--path", str(path)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick=False, repeats=3, data_dir=None):
    sizes = list(SIZES["quick" if quick else "full"])
    if not quick and os.environ.get("FASTUNLEARN_BENCH_DATA_LINES"):
        sizes = [int(n) for n in os.environ["FASTUNLEARN_BENCH_DATA_LINES"].split(",")]
    folder = Path(data_dir or tempfile.gettempdir()) / "fastunlearn-bench-data"
    folder.mkdir(parents=True, exist_ok=True)
    rows, results = [], []
    for n in sizes:
        csv_path, parquet_path = generate(folder, n)
        for kind, path in (("csv", csv_path), ("parquet", parquet_path)):
            runs = {p: [] for p in PIPELINES}
            for _ in range(repeats):
                for p in PIPELINES:  # alternated, so load drifts hit both alike
                    runs[p].append(_measure(p, path))
            record = {"lines": n, "format": kind, "bytes_on_disk": path.stat().st_size}
            for p in PIPELINES:
                record[p] = {"seconds": median([r["seconds"] for r in runs[p]]),
                             "peak_bytes": median([r["peak_bytes"] for r in runs[p]]),
                             "result_bytes": runs[p][0]["result_bytes"], "runs": runs[p]}
            ours, ref = record["fastunlearn"], record["reference"]
            record["time_ratio"] = ours["seconds"] / ref["seconds"]
            record["peak_over_result"] = ours["peak_bytes"] / ours["result_bytes"]
            record["reference_peak_over_result"] = ref["peak_bytes"] / ref["result_bytes"]
            results.append(record)
            rows.append([f"{n:,}", kind, f"{path.stat().st_size / 2**20:.0f} MB",
                         f"{ours['seconds']:.2f}", f"{ref['seconds']:.2f}",
                         f"{record['time_ratio']:.2f}",
                         f"{ours['peak_bytes'] / 2**20:.0f} MB "
                         f"({record['peak_over_result']:.1f}x)",
                         f"{ref['peak_bytes'] / 2**20:.0f} MB "
                         f"({record['reference_peak_over_result']:.1f}x)"])
        bad_path, line = with_bad_line(folder, csv_path, n)
        bad = _measure("fastunlearn", bad_path)
        results.append({"lines": n, "format": "csv with a bad value", "bad_line": line,
                        "fastunlearn": bad})
        rows.append([f"{n:,}", f"csv, bad value on line {line:,}", "",
                     f"{bad['seconds']:.2f}", "", "", f"{bad['peak_bytes'] / 2**20:.0f} MB", ""])
        assert bad["error"] and f"line {line}:" in bad["error"], bad["error"]
    notes = ("Seconds and peak memory are medians of the runs; ratio = fastunlearn / "
             "reference seconds. Peak memory is the resident set above the process's "
             "level before the read, and (in brackets) a multiple of the result's size "
             "(CSR arrays and id maps). The bad-value row times the whole failed read: "
             "the fast pass, then the careful pass that finds the line.")
    header = ["lines", "format", "on disk", "fastunlearn s", "reference s", "ratio",
              "fastunlearn peak", "reference peak"]
    name = "data-quick" if quick else "data" if sizes == SIZES["full"] else \
        "data-" + "-".join(f"{n // 1_000_000}M" for n in sizes)
    return write(name, {"repeats": repeats, "results": results},
                 rows, header, notes=notes,
                 params={"n_users": N_USERS, "n_items": N_ITEMS, "sizes": sizes})
