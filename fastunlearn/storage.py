"""The retained interactions, stored user-major and item-major.

Both orientations are kept because every half-sweep reads the rows of one
side.  Entries can be removed in place (forgetting) and the removal undone
if the operation that asked for it fails, so that a model is never left
half-edited.
"""
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from . import _csr
from .validation import index_dtype


class _CSRBuffers:
    """CSR arrays whose ``indices``/``data`` buffers may be longer than nnz.

    Removing entries shifts the kept ones left inside the same buffers rather
    than allocating a copy of the data set; the slack at the end is zeroed.
    """

    def __init__(self, csr):
        self.shape = csr.shape
        self.indptr = csr.indptr
        self.indices = csr.indices
        self.data = csr.data
        self.nnz = int(csr.indptr[-1])

    def arrays(self):
        """(indptr, indices, data) views of the stored entries."""
        n = self.nnz
        return self.indptr[:], self.indices[:n], self.data[:n]

    def matrix(self):
        """The stored entries as a csr_matrix sharing these buffers."""
        indptr, indices, data = self.arrays()
        m = sp.csr_matrix((data, indices, indptr), shape=self.shape, copy=False)
        m.has_sorted_indices = True
        return m

    def positions(self, rows, cols):
        """Positions of (row, col) pairs in ``indices``; -1 where not stored."""
        return _csr.find_positions(self.indptr, self.indices, rows, cols)

    def remove(self, positions):
        """Remove the entries at sorted, distinct ``positions``; returns an undo record."""
        n = self.nnz
        # everything that allocates happens before the first write
        old_indptr = self.indptr.copy()
        # every row boundary moves left by the removals before it
        new_indptr = self.indptr - np.searchsorted(positions, self.indptr).astype(
            self.indptr.dtype)
        removed_indices = _csr.compact(self.indices, n, positions)
        removed_data = _csr.compact(self.data, n, positions)
        self.indptr[:] = new_indptr
        self.nnz = n - len(positions)
        self.indices[self.nnz:n] = 0
        self.data[self.nnz:n] = 0
        return _Undo(positions, removed_indices, removed_data, old_indptr, n)

    def restore(self, undo):
        """Put back what ``remove`` took out (exactly, in place)."""
        _csr.expand(self.indices, undo.nnz, undo.positions, undo.indices)
        _csr.expand(self.data, undo.nnz, undo.positions, undo.data)
        self.indptr[:] = undo.indptr
        self.nnz = undo.nnz


@dataclass
class _Undo:
    positions: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    indptr: np.ndarray
    nnz: int

    def wipe(self):
        """Overwrite the removed values so no copy of them outlives the call."""
        for arr in (self.indices, self.data):
            arr[...] = 0


class TrainingData:
    """Retained interactions of a model, in both orientations.

    Parameters
    ----------
    user_items : scipy.sparse.csr_matrix
        Canonical CSR (see :func:`fastunlearn.validation.check_user_items`);
        owned by this object from now on.
    """

    def __init__(self, user_items):
        # the kernels take indptr and indices of one integer width
        idx = index_dtype(user_items.shape, user_items.nnz)
        item_users = user_items.T.tocsr()
        item_users.sort_indices()
        for m in (user_items, item_users):
            m.indptr = m.indptr.astype(idx, copy=False)
            m.indices = m.indices.astype(idx, copy=False)
        self.by_user = _CSRBuffers(user_items)
        self.by_item = _CSRBuffers(item_users)

    @property
    def shape(self):
        return self.by_user.shape

    @property
    def nnz(self):
        return self.by_user.nnz

    def side(self, side):
        """CSR buffers of ``side`` ("users" or "items")."""
        return self.by_user if side == "users" else self.by_item

    def user_items(self):
        """users x items csr_matrix view of the retained interactions."""
        return self.by_user.matrix()

    def counts(self, side):
        """Stored entries per row of ``side``."""
        return np.diff(self.side(side).indptr).astype(np.int64)
