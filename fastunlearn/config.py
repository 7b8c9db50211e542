"""Threading and build configuration: how many threads the kernels use, and
keeping BLAS single-threaded inside them."""
import contextlib
import functools
import os
import sys

from threadpoolctl import ThreadpoolController, threadpool_info

from . import _als, isa
from ._version import __version__


@functools.lru_cache(maxsize=None)
def _cpu_quota():
    """CPUs allowed by the container's cgroup quota, or None when unlimited.

    Read once per process: a container's quota does not change under a
    running process in practice, and reading it cost each small forget
    three file opens."""
    try:  # cgroup v2
        with open("/sys/fs/cgroup/cpu.max") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            return max(1, int(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as fh:
            quota = int(fh.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as fh:
            period = int(fh.read())
        if quota > 0 and period > 0:
            return max(1, quota // period)
    except (OSError, ValueError):
        pass
    return None


def available_cpus():
    """CPUs this process may use: affinity mask, then cgroup quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    quota = _cpu_quota()
    return min(n, quota) if quota else n


def effective_n_threads(num_threads=0):
    """Threads the kernels will use for ``num_threads``.

    Positive values are taken as given; 0 means ``OMP_NUM_THREADS`` when set,
    else every CPU the process may use.  Without OpenMP it is always 1.
    """
    if not _als.openmp_enabled():
        return 1
    if num_threads > 0:
        return int(num_threads)
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return available_cpus()


@contextlib.contextmanager
def single_threaded_blas():
    """Keep BLAS to one thread while the kernels (OpenMP threads) call it.

    Each kernel thread calls BLAS on small blocks; a multi-threaded BLAS
    would start its own pool inside every call and oversubscribe the cores
    (implicit reports up to 10x slowdowns from this).  With one kernel
    thread too: OpenBLAS's threads change the rounding of ?potrf/?syrk
    (k > 192), and results are promised bitwise identical for any
    ``num_threads``.
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


@functools.cache
def _blas_controller():
    """One controller for the process: finding the loaded libraries scans
    the process's memory map, a noticeable part of a small forget.  Created
    on first use, when the BLAS the kernels call (SciPy's, loaded with
    ``_als``) is already loaded."""
    return ThreadpoolController()


def config_info():
    """The build and runtime configuration, as a dict (what
    :func:`show_config` prints).

    Returns
    -------
    dict
        ``version``, ``python``, ``numpy``, ``scipy``, ``openmp`` (compiled in), ``threads`` (what
        ``num_threads=0`` resolves to), ``cpus``, ``omp_num_threads``,
        ``isa`` (the kernel variant in use, the variants built and those
        this CPU runs, ``FASTUNLEARN_ISA`` and why it was refused, if it
        was; see ``fastunlearn.isa``) and ``blas`` (one entry per BLAS
        library loaded: name, version, threading layer and its own thread
        count).
    """
    import numpy
    import scipy

    info = {
        "version": __version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "openmp": _als.openmp_enabled(),
        "threads": effective_n_threads(0),
        "cpus": available_cpus(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "isa": isa.info(),
        "blas": [
            {
                "library": lib.get("internal_api"),
                "version": lib.get("version"),
                "threading_layer": lib.get("threading_layer"),
                "num_threads": lib.get("num_threads"),
                "path": lib.get("filepath"),
            }
            for lib in threadpool_info()
            if lib.get("user_api") == "blas"
        ],
    }
    return info


def show_config(file=None, mode="stdout"):
    """Print the build and runtime configuration; return None, as
    ``numpy.show_config`` and ``implicit.show_config`` do (so a REPL shows
    it once).

    Parameters
    ----------
    file : writable text file, optional
        Where to print (default ``sys.stdout``).
    mode : {"stdout", "dicts"}
        "dicts" prints nothing and returns :func:`config_info`'s dict
        instead (NumPy's ``show_config(mode="dicts")``).
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"mode must be 'stdout' or 'dicts', got {mode!r}")
    info = config_info()
    if mode == "dicts":
        return info
    out = file if file is not None else sys.stdout
    print(f"fastunlearn {info['version']} (Python {info['python']}, NumPy {info['numpy']}, "
          f"SciPy {info['scipy']})", file=out)
    print(f"  OpenMP compiled in: {info['openmp']}", file=out)
    print(f"  kernel threads (num_threads=0): {info['threads']} of {info['cpus']} usable CPUs; "
          f"OMP_NUM_THREADS={info['omp_num_threads']}", file=out)
    variants = info["isa"]
    native = (f"; built with -march=native: {' '.join(variants['baseline_native'])}"
              if variants["baseline_native"] else "")
    print(f"  kernels: {variants['selected']} (built: {', '.join(variants['built'])}; "
          f"this CPU runs: {', '.join(variants['runnable'])}{native})", file=out)
    if variants["forced"]:
        print(f"  {isa.ENV}={variants['forced']}"
              + (f" refused: {variants['refused']}" if variants["refused"] else ""), file=out)
    for lib in info["blas"]:
        print(f"  BLAS: {lib['library']} {lib['version']} ({lib['threading_layer']}, "
              f"{lib['num_threads']} threads; forced to 1 inside kernels)", file=out)
    return None
