"""Approximate serving that forgets with the model (``pip install "fastunlearn[ann]"``).

:class:`FaissModel` (faiss inverted files, implicit's ``FaissModel``) and
:class:`HNSWModel` (hnswlib graphs) serve ``recommend`` and
``similar_items`` from indexes of the item factors and keep them equal to
the model's factors through ``forget``, ``forget_users``, ``forget_items``,
``partial_fit`` and ``settle`` (docs/ann.md).
"""
from .base import moved_rows
from .indexed import REBUILD_FRACTION, IndexedModel
from .faiss_index import FaissModel
from .hnsw_index import HNSWModel

__all__ = ["REBUILD_FRACTION", "FaissModel", "HNSWModel", "IndexedModel", "moved_rows"]
