"""Top-N ranking of candidates for queries: the Python side of ``_topk``."""
import numpy as np

from . import _topk

PAD_SCORE = _topk.PAD_SCORE


def top_n(queries, candidates, N, *, skip=None, excluded=None, num_threads=1):
    """Best ``N`` candidates per query by inner product.

    Parameters
    ----------
    queries : ndarray (n_queries, k)
    candidates : ndarray (n_candidates, k), same dtype
    N : int
        List length; the result has ``min(N, n_candidates)`` columns.
    skip : scipy.sparse.csr_matrix (n_queries, n_candidates), optional
        Stored entries of row q are candidates query q may not get.
    excluded : array of int, optional
        Candidates no query gets.

    Returns
    -------
    ids : ndarray of int32 (n_queries, width)
    scores : ndarray (n_queries, width)
        Lists shorter than ``width`` after filtering are padded with id -1
        and score ``PAD_SCORE`` (what implicit pads with).
    """
    queries = np.ascontiguousarray(queries)
    candidates = np.ascontiguousarray(candidates, dtype=queries.dtype)
    nq, m = queries.shape[0], candidates.shape[0]
    width = max(0, min(int(N), m))
    ids = np.full((nq, width), -1, dtype=np.int32)
    scores = np.full((nq, width), PAD_SCORE, dtype=queries.dtype)
    if skip is None:
        skip_indptr = np.zeros(nq + 1, dtype=np.int64)
        skip_indices = np.zeros(0, dtype=np.int64)
    else:
        skip_indptr = skip.indptr.astype(np.int64)
        skip_indices = skip.indices.astype(np.int64)
    excluded = np.zeros(0, np.int64) if excluded is None else np.asarray(excluded, np.int64)
    _topk.topk(queries, candidates, width, skip_indptr, skip_indices, excluded, ids, scores,
               num_threads)
    return ids, scores


def normalized(factors):
    """Rows scaled to unit length (zero rows stay zero), for cosine ranking."""
    norms = np.linalg.norm(factors, axis=1)
    norms[norms == 0] = 1e-10
    return factors / norms[:, None].astype(factors.dtype)


def count_below(sorted_rows, rows, values, strict):
    """For each ``(rows[j], values[j])``, how many entries of the ascending row
    ``sorted_rows[rows[j]]`` are ``< values[j]`` (``strict``) or ``<=``.

    A binary search run for all pairs at once: ``log2(n_cols)`` vectorised steps.
    """
    n_cols = sorted_rows.shape[1]
    lo = np.zeros(len(rows), dtype=np.int64)
    hi = np.full(len(rows), n_cols, dtype=np.int64)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        probe = sorted_rows[rows, np.minimum(mid, n_cols - 1)]
        right = (probe < values) if strict else (probe <= values)
        lo = np.where(active & right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
