"""Memory a fit needs, and refusing to start one the machine cannot hold.

A fit that runs out of memory half-way either dies to the kernel's OOM killer
(taking the process and everything it held with it) or raises deep inside
SciPy with a message about one temporary array.  Estimating the peak first
and comparing it with what the machine (or its container) has left turns
that into an immediate :class:`MemoryError` that says what was needed, what
is available and what to change.

The estimate follows what ``fit`` allocates: the retained interactions in
both orientations (``storage.TrainingData``), the two factor matrices (their
random start is scaled in place), the per-half-sweep row lists, the Gram
matrices, and the scratch each kernel thread allocates in ``_als.pyx``, plus
a fixed 1 MiB for small Python objects.  It leaves out the caller's own input
matrix, which exists before ``fit``.  tests/test_resources.py checks it
against the peak ``tracemalloc`` measures for CSR input: never below it, and
at most 25 % plus 1 MiB above it (most of the excess on small problems is the
fixed 1 MiB).
"""
import os

import numpy as np

from . import _als
from .validation import index_dtype as _choose_index_dtype

__all__ = ["available_memory", "check_memory", "estimate_fit_memory"]

ENV_LIMIT = "FASTUNLEARN_MEMORY_LIMIT"

# Kernel constants that size the scratch (rows per syrk gather, rows per CG
# block, the fixed partial sums of _als.gram), from the compiled module itself
_GATHER = _als.SCRATCH_CONSTANTS["gather"]
_CG_BLOCK = _als.SCRATCH_CONSTANTS["cg_block"]
_GRAM_PARTS = _als.SCRATCH_CONSTANTS["gram_parts"]
# Python-side allocations that do not grow with the problem (progress bar,
# thread-pool bookkeeping, small temporaries): measured well under 1 MiB.
_OVERHEAD = 2**20


def estimate_fit_memory(n_users, n_items, nnz, factors, dtype, index_dtype=None, threads=1):
    """Peak bytes that ``fit`` allocates for a problem of this size.

    Parameters
    ----------
    n_users, n_items : int
        Shape of the interaction matrix.
    nnz : int
        Stored entries (an upper bound is fine: duplicates of a COO input
        count once each).
    factors : int
        Latent dimension k.
    dtype : float32 or float64
        Factor and value dtype.
    index_dtype : int32 or int64, optional
        Index width of the CSR arrays; by default the one
        :func:`fastunlearn.validation.index_dtype` chooses for this size.
    threads : int
        Kernel threads (each allocates its own scratch).

    Returns
    -------
    int
        Bytes.  The larger of the Cholesky and CG scratch is counted, so the
        estimate holds for either solver.

    Examples
    --------
    >>> estimate_fit_memory(1000, 500, 20_000, 32, "float32") > 0
    True
    """
    n_users, n_items, nnz, k, threads = (int(v) for v in (n_users, n_items, nnz, factors,
                                                          threads))
    if min(n_users, n_items, nnz, k, threads) < 0:
        raise ValueError("sizes, factors and threads must be >= 0")
    fsize = np.dtype(dtype).itemsize
    isize = np.dtype(_choose_index_dtype((n_users, n_items), nnz)
                     if index_dtype is None else index_dtype).itemsize
    threads = max(threads, 1)

    # user-major (the canonical copy of the input) and item-major CSR
    interactions = (n_users + 1 + n_items + 1) * isize + 2 * nnz * (isize + fsize)
    # X and Y (fit scales its random start in place: no temporary)
    factor_bytes = (n_users + n_items) * k * fsize
    # per half-sweep: int64 row list and int32 solve status for every row of
    # the larger side; float64 per-user losses when the loss is computed
    per_row = max(n_users, n_items) * (8 + 4) + n_users * 8
    # Gram matrix: partial sums, their total, mirrored copy, dense part
    gram = (_GRAM_PARTS + 4) * k * k * fsize
    cholesky = (k * k + k + 2 * _GATHER * k) * fsize
    cg = (4 * _CG_BLOCK * k + _CG_BLOCK) * fsize + _CG_BLOCK
    gradient = 2 * _CG_BLOCK * k * fsize + k * 8
    scratch = threads * max(cholesky, cg, gradient)
    return int(interactions + factor_bytes + per_row + gram + scratch + _OVERHEAD)


def _meminfo_available():
    """MemAvailable of /proc/meminfo in bytes, or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available(root="/sys/fs/cgroup"):
    """What the container's memory limit leaves (cgroup v2, then v1), or None."""
    for limit_file, usage_file in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        try:
            with open(os.path.join(root, limit_file)) as fh:
                limit = fh.read().strip()
            if limit == "max":  # cgroup v2: no limit
                return None
            limit = int(limit)
            with open(os.path.join(root, usage_file)) as fh:
                usage = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if limit >= 2**60:  # cgroup v1 writes a huge number for "no limit"
            return None
        return max(limit - usage, 0)
    return None


def available_memory():
    """Bytes this process can still allocate, and where that figure comes from.

    Returns
    -------
    (int or None, str)
        ``FASTUNLEARN_MEMORY_LIMIT`` (bytes) when set; otherwise the smaller
        of MemAvailable (/proc/meminfo, else ``os.sysconf``) and what the
        cgroup memory limit leaves; ``(None, reason)`` when unknown.
    """
    env = os.environ.get(ENV_LIMIT, "").strip()
    if env:
        try:
            limit = int(env)
        except ValueError:
            raise ValueError(f"{ENV_LIMIT} must be a number of bytes, got {env!r}") from None
        if limit < 0:
            raise ValueError(f"{ENV_LIMIT} must be >= 0, got {limit}")
        return limit, ENV_LIMIT
    candidates = []
    meminfo = _meminfo_available()
    if meminfo is not None:
        candidates.append((meminfo, "MemAvailable in /proc/meminfo"))
    else:
        try:
            pages, page_size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            if pages > 0 and page_size > 0:  # -1: not known on this platform
                candidates.append((pages * page_size, "free physical memory (sysconf)"))
        except (AttributeError, ValueError, OSError):
            pass
    cgroup = _cgroup_available()
    if cgroup is not None:
        candidates.append((cgroup, "the container's cgroup memory limit"))
    if not candidates:
        return None, "unknown"
    return min(candidates)


def _size(n):
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def check_memory(estimate, what="fit"):
    """Raise :class:`MemoryError` when ``estimate`` bytes are not available.

    Nothing is checked when the available memory cannot be determined.

    Parameters
    ----------
    estimate : int
        Bytes needed, e.g. from :func:`estimate_fit_memory`.
    what : str
        The operation, for the message.

    Raises
    ------
    MemoryError
        Naming the bytes needed, the bytes available and their source.
    ValueError
        When ``FASTUNLEARN_MEMORY_LIMIT`` is set but not a byte count.
    """
    available, source = available_memory()
    if available is None or estimate <= available:
        return
    raise MemoryError(
        f"{what} needs about {_size(estimate)} ({estimate} bytes) but only "
        f"{_size(available)} ({available} bytes) is available ({source}); use fewer "
        f"factors, dtype=float32, fewer threads or a smaller data set (set {ENV_LIMIT} "
        "to a byte count to override the available figure)"
    )
