"""Shared checks and keys for (user, item) pairs, used by evaluation and
audit: canonical CSR copies, sorted int64 pair keys and membership, and
the Mann-Whitney AUC both compute (one formula, two ways of ranking).
"""
import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from .validation import NotFittedError, check_sparse


def check_model(model, name=None):
    """(n_users, n_items) of a fitted model; ``name`` names it in the error."""
    if not getattr(model, "is_fitted", False):
        what = f"this {type(model).__name__}" if name is None else \
            f"{name} ({type(model).__name__})"
        raise NotFittedError(f"{what} is not fitted yet: call fit() or from_factors() first")
    return model.user_factors.shape[0], model.item_factors.shape[0]


def canonical(matrix, name):
    """Canonical CSR copy (sorted indices, duplicates summed) of a sparse ``matrix``."""
    check_sparse(matrix, name)
    csr = sp.csr_matrix(matrix, copy=True)
    csr.sum_duplicates()  # also sorts the indices
    return csr


def check_matrix(matrix, name, shape):
    """Canonical CSR copy of ``matrix``, whose shape must be ``shape``."""
    csr = canonical(matrix, name)
    if csr.shape != shape:
        raise ValueError(f"{name} has shape {csr.shape} but the model has {shape[0]} users x "
                         f"{shape[1]} items")
    return csr


def row_of(csr):
    """Row number (int64) of every stored entry of ``csr``."""
    return np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))


def pair_keys(csr):
    """Sorted int64 keys ``user * n_items + item`` of the stored entries of canonical ``csr``."""
    return row_of(csr) * csr.shape[1] + csr.indices.astype(np.int64)


def is_stored(sorted_keys, keys):
    """Whether each of ``keys`` (any shape) is in the ascending ``sorted_keys``."""
    if not len(sorted_keys):
        return np.zeros(np.shape(keys), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def auc_from_ranks(rank_sum, n_pos, n_neg):
    """Mann-Whitney AUC, P(pos > neg) + P(pos == neg) / 2, from the sum of the
    positives' 1-based mid-ranks among positives and negatives (NaN where a
    side is empty; arrays broadcast)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (np.asarray(rank_sum, np.float64) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return np.where((np.asarray(n_pos) > 0) & (np.asarray(n_neg) > 0), out, np.nan)


def two_sample_auc(pos, neg):
    """:func:`auc_from_ranks` of two samples of scores (mid-ranks for ties)."""
    n_pos, n_neg = len(pos), len(neg)
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]).astype(np.float64))
    return float(auc_from_ranks(ranks[:n_pos].sum(), n_pos, n_neg))
