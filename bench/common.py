"""Helpers shared by the benchmarks: machine description, data, medians, output."""
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
MOVIELENS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-100k" / "u.data"


def set_results_dir(path):
    """Send every later ``write`` (and plot) to ``path`` instead of bench/results."""
    global RESULTS
    RESULTS = Path(path).resolve()


def results_dir():
    return RESULTS


def movielens():
    """MovieLens 100K ratings as a users x items float32 CSR (None when the file is absent).

    Read with ``fastunlearn.data.load_movielens``; in ML-100K every user id
    1..943 and item id 1..1682 occurs, so row ``u - 1`` is user ``u`` and
    column ``i - 1`` item ``i``.
    """
    if not MOVIELENS.exists():
        return None
    from fastunlearn.data import load_movielens

    return load_movielens(MOVIELENS).matrix


def median_user(user_items, kind=None):
    """The user at the middle of the users with entries, ordered by entry count.

    Many users share the median count, so which of them is chosen depends on
    the sort: bench/forget.py uses NumPy's default ``kind`` (quicksort, not
    stable), bench/scaling.py ``"stable"``; each is the rule its committed
    results were measured with (they choose different users of the same count).
    """
    counts = np.diff(user_items.indptr)
    active = np.flatnonzero(counts)
    return int(active[np.argsort(counts[active], kind=kind)[len(active) // 2]])


def machine():
    """What the numbers were measured on."""
    import scipy

    import fastunlearn

    info = {"python": sys.version.split()[0], "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "numpy": np.__version__, "scipy": scipy.__version__,
            "fastunlearn": fastunlearn.__version__,
            "openmp": fastunlearn.config_info()["openmp"]}
    try:
        import implicit

        info["implicit"] = implicit.__version__
    except ImportError:
        info["implicit"] = None
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{"internal_api": lib.get("internal_api"), "version": lib.get("version")}
                        for lib in threadpool_info() if lib.get("user_api") == "blas"]
    except ImportError:
        info["blas"] = None
    return info


def commit():
    """``git describe --always --dirty`` of the checkout bench/ is in (None without git)."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"],
                             cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def median(values):
    return float(statistics.median(values))


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 2 ms."""

    def __enter__(self):
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def extra_bytes(self):
        return self.peak - self.base


def _rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def table(header, rows):
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write(name, payload, table_rows, header, sections=(), notes="", *, params):
    """Write results/NAME.json and results/NAME.md (a Markdown table).

    The JSON holds the machine (with its BLAS), the date, the git commit
    (``None`` outside a git checkout), ``params`` (the benchmark's
    hyperparameters) and then ``payload``.  ``sections`` are further
    ``(title, header, rows)`` tables appended to the Markdown under a
    ``### title`` heading each, then ``notes`` (Markdown).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "commit": commit(), "params": params, **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float))
    text = table(header, table_rows)
    for title, sub_header, rows in sections:
        text += f"\n### {title}\n\n" + table(sub_header, rows)
    if notes:
        text += "\n" + notes.strip() + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    return payload


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out
