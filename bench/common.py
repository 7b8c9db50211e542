"""Helpers shared by the benchmarks: machine description, medians, output."""
import json
import os
import platform
import statistics
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
    """MovieLens 100K ratings as a users x items CSR (None when the file is absent)."""
    if not MOVIELENS.exists():
        return None
    import scipy.sparse as sp

    raw = np.loadtxt(MOVIELENS, dtype=np.int64)
    return sp.csr_matrix((raw[:, 2].astype(np.float32), (raw[:, 0] - 1, raw[:, 1] - 1)))


def machine():
    """What the numbers were measured on."""
    import scipy

    import fastunlearn

    info = {"python": sys.version.split()[0], "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "numpy": np.__version__, "scipy": scipy.__version__,
            "fastunlearn": fastunlearn.__version__,
            "openmp": fastunlearn.show_config(file=open(os.devnull, "w"))["openmp"]}
    try:
        import implicit

        info["implicit"] = implicit.__version__
    except ImportError:
        info["implicit"] = None
    return info


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


def write(name, payload, table_rows, header, sections=(), notes=""):
    """Write results/NAME.json and results/NAME.md (a Markdown table).

    ``sections`` are further ``(title, header, rows)`` tables appended to the
    Markdown under a ``### title`` heading each, then ``notes`` (Markdown).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               **payload}
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
