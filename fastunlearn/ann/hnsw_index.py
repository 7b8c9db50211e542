"""hnswlib graph indexes (HNSW) that forget with the model (docs/ann.md)."""
import os
import struct
import tempfile

import numpy as np

from ..validation import check_positive_int
from .base import Slot, unit_rows
from .indexed import IndexedModel


def _hnswlib():
    try:
        import hnswlib
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise ImportError("HNSWModel needs hnswlib: pip install \"fastunlearn[ann]\"") from exc
    return hnswlib


class _HNSWSlot(Slot):
    """An hnswlib graph in its inner-product space, labels = item ids.

    The inner-product index stores the rows as they are and searches by
    inner product (hnswlib's "ip" space).  implicit's graph models augment
    the rows to equal norms first (``base.augmented``); measured here, that
    cost recall badly where item norms spread widely (0.59-0.74 against
    1.00 at recall@10 on the synthetic set, docs/ann.md), as most augmented
    rows crowd around the extra axis.  The cosine index stores unit rows.
    A removed item is overwritten with zeros and marked deleted (hnswlib
    keeps deleted elements in the graph).
    """

    def __init__(self, dim, M, ef_construction, ef, cosine):
        self.dim, self.M, self.ef_construction, self.ef = dim, M, ef_construction, ef
        self.cosine = cosine
        self.index = None
        self.count = 0

    @property
    def width(self):
        return self.dim

    def vectors(self, rows):
        return unit_rows(rows) if self.cosine else np.ascontiguousarray(rows, np.float32)

    def build(self, rows, ids):
        index = _hnswlib().Index(space="ip", dim=self.width)
        capacity = int(ids.max()) + 1 if len(ids) else 1
        index.init_index(max_elements=capacity, ef_construction=self.ef_construction, M=self.M)
        if len(ids):
            index.add_items(self.vectors(rows), np.asarray(ids, np.int64))
        index.set_ef(self.ef)
        self.index, self.count = index, len(ids)

    def _grow(self, ids):
        need = int(np.max(ids)) + 1
        if need > self.index.get_max_elements():
            self.index.resize_index(max(need, int(self.index.get_max_elements() * 1.25)))

    def remove(self, ids):
        ids = np.asarray(ids, np.int64)
        # overwrite first: a deleted element's vector stays in the graph
        self.index.add_items(np.zeros((len(ids), self.width), np.float32), ids)
        for i in ids:
            self.index.mark_deleted(int(i))
        self.count -= len(ids)

    def update(self, rows, ids, present):
        # hnswlib re-inserts an existing (or deleted) label in place:
        # its vector replaced, its links chosen again
        self._grow(ids)
        self.index.add_items(self.vectors(rows), np.asarray(ids, np.int64))
        self.count += int((~present).sum())

    def add(self, rows, ids):
        self.update(rows, np.asarray(ids, np.int64), np.zeros(len(ids), bool))

    def search(self, queries, k):
        queries = np.asarray(queries, np.float32)
        k = int(min(k, self.count))
        self.index.set_ef(max(self.ef, k))
        try:
            labels, distances = self.index.knn_query(queries, k=k)
        except RuntimeError:
            # some query reached fewer than k live elements (deleted ones
            # cut the graph): ask each query for what it can give
            return self._search_each(queries, k)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)

    def _search_each(self, queries, k):
        ids = np.full((len(queries), k), -1, np.int64)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        for q, query in enumerate(queries):
            want = k
            while want > 0:
                try:
                    labels, distances = self.index.knn_query(query[None], k=want)
                    break
                except RuntimeError:
                    want //= 2
            if want:
                ids[q, :want], scores[q, :want] = labels[0], 1.0 - distances[0]
        return ids, scores

    def stored(self, ids):
        if not len(ids):
            return np.zeros((0, self.width), np.float32)
        return np.asarray(self.index.get_items(np.asarray(ids, np.int64), return_type="numpy"),
                          dtype=np.float32)

    def __len__(self):
        return self.count

    def to_bytes(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "index.bin")
            self.index.save_index(path)
            with open(path, "rb") as fh:
                graph = fh.read()
        return struct.pack("<q", self.count) + graph

    def load_bytes(self, data, n_ids):
        (count,) = struct.unpack("<q", data[:8])
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "index.bin")
            with open(path, "wb") as fh:
                fh.write(data[8:])
            index = _hnswlib().Index(space="ip", dim=self.width)
            index.load_index(path, max_elements=max(n_ids, 1))
        index.set_ef(self.ef)
        self.index, self.count = index, int(count)


class HNSWModel(IndexedModel):
    """A fastunlearn model served from hnswlib graphs, kept in line with it.

    The interface of :class:`~fastunlearn.ann.FaissModel` (implicit's ANN
    models): ``recommend`` from an inner-product graph of the item factors
    (raw inner products: see ``_HNSWSlot`` for why not implicit's
    augmentation),
    ``similar_items`` from a graph of the unit-length item factors.

    Parameters
    ----------
    model : fastunlearn model
    approximate_similar_items, approximate_recommend : bool
    M : int
        Links per element (hnswlib's ``M``).
    ef_construction : int
        Candidate list while building.
    ef : int
        Candidate list while searching (raised to the number asked for).
    """

    _backend = "hnswlib"

    def __init__(self, model, approximate_similar_items=True, approximate_recommend=True,
                 M=16, ef_construction=200, ef=100):
        self.M = check_positive_int(M, "M", minimum=2)
        self.ef_construction = check_positive_int(ef_construction, "ef_construction")
        self.ef = check_positive_int(ef, "ef")
        _hnswlib()
        super().__init__(model, approximate_similar_items, approximate_recommend)

    def _make_slot(self, kind):
        return _HNSWSlot(self.model.factors, self.M, self.ef_construction, self.ef,
                         cosine=kind == "similar")

    def _params(self):
        return {"approximate_similar_items": self.approximate_similar_items,
                "approximate_recommend": self.approximate_recommend,
                "M": self.M, "ef_construction": self.ef_construction, "ef": self.ef}
