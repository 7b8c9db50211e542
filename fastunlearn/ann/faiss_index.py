"""Faiss inverted-file indexes (``IndexIVFFlat``) that forget with the model:
implicit's ``implicit.ann.faiss.FaissModel`` over fastunlearn (docs/ann.md)."""
import contextlib
import struct

import numpy as np

from ..validation import check_positive_int
from .base import Slot, augmented, fits_bound, norm_bound, unit_rows
from .indexed import IndexedModel


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - the extra is missing
        raise ImportError("FaissModel needs faiss: pip install \"fastunlearn[ann]\" "
                          "(faiss-cpu)") from exc
    return faiss


# Updates of fewer rows than this run on one OpenMP thread: starting faiss's
# thread team costs more than the work (a one-user forget moves tens of rows).
_SMALL_UPDATE = 1024


@contextlib.contextmanager
def _one_thread(n_rows):
    faiss = _faiss()
    threads = faiss.omp_get_max_threads()
    if n_rows < _SMALL_UPDATE:
        faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


class _IVFSlot(Slot):
    """An ``IndexIVFFlat`` by inner product with a hash-table id map, so
    one id is removed, reconstructed or added without a scan.

    The inner-product index holds the augmented rows (``base.augmented``:
    implicit's FaissModel indexes the raw rows, whose k-means cells then
    follow the norms; equal norms make them follow the angles and raised
    recall at every setting measured, docs/ann.md); the cosine index the
    unit rows.
    """

    def __init__(self, dim, nlist, nprobe, cosine):
        self.dim, self.nlist, self.nprobe, self.cosine = dim, nlist, nprobe, cosine
        self.width = dim if cosine else dim + 1
        self.bound = None
        self.index = None

    def _new(self):
        faiss = _faiss()
        quantizer = faiss.IndexFlatIP(self.width)
        # (faiss's Python wrapper keeps the quantizer alive with the index)
        return faiss.IndexIVFFlat(quantizer, self.width, self.nlist,
                                  faiss.METRIC_INNER_PRODUCT)

    def vectors(self, rows):
        return unit_rows(rows) if self.cosine else augmented(rows, self.bound)

    def accepts(self, rows):
        return self.cosine or fits_bound(rows, self.bound)

    def build(self, rows, ids):
        if len(ids) < self.nlist:
            raise ValueError(f"nlist={self.nlist} needs at least that many items to train on, "
                             f"the model has {len(ids)}: take nlist near sqrt(items) "
                             "(docs/ann.md)")
        if not self.cosine:
            self.bound = norm_bound(rows)
        index = self._new()
        vectors = self.vectors(rows)
        index.train(vectors)
        index.set_direct_map_type(_faiss().DirectMap.Hashtable)
        index.add_with_ids(vectors, np.asarray(ids, np.int64))
        index.nprobe = self.nprobe
        self.index = index

    def remove(self, ids):
        with _one_thread(len(ids)):
            self.index.remove_ids(np.asarray(ids, np.int64))

    def add(self, rows, ids):
        with _one_thread(len(ids)):
            self.index.add_with_ids(self.vectors(rows), np.asarray(ids, np.int64))

    def search(self, queries, k):
        queries = unit_rows(queries) if self.cosine else \
            np.hstack([queries, np.zeros((len(queries), 1), np.float32)])
        scores, ids = self.index.search(np.ascontiguousarray(queries, np.float32), int(k))
        return ids, scores

    def stored(self, ids):
        return np.stack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else \
            np.zeros((0, self.width), np.float32)

    def __len__(self):
        return 0 if self.index is None else int(self.index.ntotal)

    def to_bytes(self):
        return struct.pack("<d", self.bound or 0.0) + \
            _faiss().serialize_index(self.index).tobytes()

    def load_bytes(self, data, n_ids):
        faiss = _faiss()
        (bound,) = struct.unpack("<d", data[:8])
        index = faiss.deserialize_index(np.frombuffer(data[8:], np.uint8))
        if not isinstance(index, faiss.IndexIVFFlat) or index.d != self.width or \
                index.nlist != self.nlist:
            raise ValueError(f"expected an IndexIVFFlat of dimension {self.width} and "
                             f"{self.nlist} lists")
        index.nprobe = self.nprobe
        self.index = index
        self.bound = None if self.cosine else float(bound)


class FaissModel(IndexedModel):
    """implicit's ``FaissModel`` over a fastunlearn model, kept in line with it.

    ``recommend`` searches an inner-product ``IndexIVFFlat`` of the item
    factors and ``similar_items`` one of the unit-length item factors (as
    implicit); ``forget``, ``forget_users``, ``forget_items``,
    ``partial_fit`` and ``settle`` change the model and then the indexes
    (moved rows removed and added again, forgotten items removed, a washout
    rebuilt): see :class:`~fastunlearn.ann.indexed.IndexedModel` and docs/ann.md.

    Parameters
    ----------
    model : fastunlearn model
    approximate_similar_items, approximate_recommend : bool
        Build that index (else the method ranks exactly with the model).
    nlist : int
        Inverted lists (k-means cells).  implicit's 400 suits catalogues of
        tens of thousands of items; for small ones take about
        ``sqrt(n_items)`` (docs/ann.md gives measured settings).
    nprobe : int
        Lists visited per query.
    use_gpu : bool
        Must be False (faiss-cpu).
    """

    _backend = "faiss-ivf"

    def __init__(self, model, approximate_similar_items=True, approximate_recommend=True,
                 nlist=400, nprobe=20, use_gpu=False):
        if use_gpu:
            raise ValueError("use_gpu=True needs a GPU build of faiss; fastunlearn's ann "
                             "extra installs faiss-cpu: pass use_gpu=False")
        self.nlist = check_positive_int(nlist, "nlist")
        self.nprobe = check_positive_int(nprobe, "nprobe")
        if self.nprobe > self.nlist:
            raise ValueError(f"nprobe must be <= nlist, got nprobe={nprobe} and nlist={nlist}")
        self.use_gpu = False
        _faiss()
        super().__init__(model, approximate_similar_items, approximate_recommend)

    def _make_slot(self, kind):
        return _IVFSlot(self.model.factors, self.nlist, self.nprobe, cosine=kind == "similar")

    def _params(self):
        return {"approximate_similar_items": self.approximate_similar_items,
                "approximate_recommend": self.approximate_recommend,
                "nlist": self.nlist, "nprobe": self.nprobe}
