"""What every approximate index does, whatever its library: a :class:`Slot`
per index (how it stores, updates, searches and serialises item factor
rows; :mod:`.faiss_index`, :mod:`.hnsw_index`), and the row arithmetic
they share (which rows moved, norm bounds for inner-product search).
The model that serves through them is :class:`~.indexed.IndexedModel`.
"""
import numpy as np


def moved_rows(before, after):
    """Rows of ``after`` that differ from ``before`` (or are new).

    The one place that finds what a request moved: a row-wise comparison of
    the factors the index holds with the model's, linear in their size and
    far cheaper than an index rebuild.  When the engine reports the rows a
    request solved, this can read that report instead.
    """
    n = min(len(before), len(after))
    changed = np.flatnonzero((before[:n] != after[:n]).any(axis=1))
    return np.concatenate([changed, np.arange(n, len(after))]).astype(np.int64)


class Slot:
    """One index over item ids (the interface a backend implements).

    ``vectors(rows)`` maps factor rows to what the index stores (``remove``
    must not keep the removed vectors, in memory or in ``to_bytes``);
    ``queries(rows)`` maps query rows likewise; ``search`` returns
    ``(ids, scores)`` with id -1 where it found fewer; ``accepts(rows)`` is
    False when rows do not fit the current structure (a rebuild is needed).
    """

    def build(self, rows, ids):
        raise NotImplementedError

    def remove(self, ids):
        raise NotImplementedError

    def add(self, rows, ids):
        raise NotImplementedError

    def update(self, rows, ids, present):
        """Hold ``rows`` under ``ids``; ``present`` marks the ids it holds
        now (removed first, then added again)."""
        if present.any():
            self.remove(ids[present])
        self.add(rows, ids)

    def accepts(self, rows):
        return True

    def search(self, queries, k):
        raise NotImplementedError

    def stored(self, ids):
        raise NotImplementedError

    def vectors(self, rows):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    def to_bytes(self):
        raise NotImplementedError

    def load_bytes(self, data, n_ids):
        raise NotImplementedError


# Room above the largest item norm when an inner-product index is built: a
# moved row up to this much longer is added in place; a longer one rebuilds.
NORM_HEADROOM = 1.2


def norm_bound(rows):
    """The norm ``B`` every augmented row gets (docs/ann.md)."""
    top = float(np.linalg.norm(rows, axis=1).max()) if len(rows) else 0.0
    return max(top * NORM_HEADROOM, 1e-6)


def augmented(rows, bound):
    """``[y, sqrt(B^2 - |y|^2)]`` per row: every row of norm ``B``, so that
    ranking by inner product with ``[x, 0]`` (the model's score) is ranking
    by angle, which both index structures partition and link by."""
    rows = np.asarray(rows, dtype=np.float32)
    norms2 = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    extra = np.sqrt(np.maximum(bound * bound - norms2, 0.0))
    return np.hstack([rows, extra[:, None].astype(np.float32)])


def fits_bound(rows, bound):
    return not len(rows) or float(np.linalg.norm(rows, axis=1).max()) <= bound


def unit_rows(rows):
    """Rows scaled to unit length, zero rows kept zero (the cosine index)."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1)
    norms[norms == 0] = 1e-10
    return (rows / norms[:, None]).astype(np.float32)
