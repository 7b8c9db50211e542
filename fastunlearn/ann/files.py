"""Files of :class:`~fastunlearn.ann.indexed.IndexedModel`: the model,
the indexes and what they hold in one ``.npz``, checked on load."""
import io
import json
import warnings

import numpy as np

from ..persistence import ModelFileError, write_arrays
from .base import moved_rows

FORMAT_VERSION = 1


class IndexFiles:
    """``save`` and ``load`` for an :class:`~fastunlearn.ann.indexed.IndexedModel`."""

    def save(self, file):
        """Write the model, the indexes and what they hold to one ``.npz``.

        ``file`` is a path (".npz" appended when missing; written
        atomically) or a writable binary file object.
        """
        self.model._check_factors()
        buffer = io.BytesIO()
        self.model.save(buffer)
        arrays = {
            "format_version": np.array(FORMAT_VERSION, np.int64),
            "backend": np.array(self._backend),
            "params": np.array(json.dumps(self._params())),
            "model": np.frombuffer(buffer.getvalue(), np.uint8),
            "indexed": np.asarray(self._indexed),
            "forgotten_users": self.forgotten_users,
            "forgotten_items": self.forgotten_items,
        }
        for kind, slot in self._slots():
            arrays[f"index_{kind}"] = np.frombuffer(slot.to_bytes(), np.uint8)
        return write_arrays(arrays, file)

    @classmethod
    def load(cls, file, on_mismatch="rebuild"):
        """Read a file written by :meth:`save`.

        The indexes must hold exactly the model's current item factors
        (every stored vector is compared); when they do not (a file edited,
        or assembled from parts that do not belong together),
        ``on_mismatch="rebuild"`` rebuilds them from the model with a
        warning and ``"raise"`` raises :class:`~fastunlearn.ModelFileError`.
        The model part is checked as :func:`fastunlearn.load` checks it;
        the index bytes are read by the index library: load only files you
        trust (or pass ``on_mismatch="rebuild"`` after deleting them).
        """
        from .. import load as load_model

        if on_mismatch not in ("rebuild", "raise"):
            raise ValueError(f"on_mismatch must be 'rebuild' or 'raise', got {on_mismatch!r}")
        name = getattr(file, "name", file)
        try:
            with np.load(file, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except Exception as exc:  # noqa: BLE001 - any unreadable file
            raise ModelFileError(f"{name}: not an index file ({exc})") from exc
        for key in ("format_version", "backend", "params", "model", "indexed",
                    "forgotten_users", "forgotten_items"):
            if key not in arrays:
                raise ModelFileError(f"{name}: not an index file (no '{key}')")
        if int(arrays["format_version"]) != FORMAT_VERSION:
            raise ModelFileError(f"{name}: index file version {int(arrays['format_version'])}")
        if str(arrays["backend"]) != cls._backend:
            raise ModelFileError(f"{name}: holds a {arrays['backend']} index, not "
                                 f"{cls.__name__}'s {cls._backend}")
        model = load_model(io.BytesIO(arrays["model"].tobytes()))
        self = cls(model, **json.loads(str(arrays["params"])))
        self.forgotten_users = arrays["forgotten_users"].astype(np.int64)
        self.forgotten_items = arrays["forgotten_items"].astype(np.int64)
        problem = self._restore(arrays)
        if problem is not None:
            if on_mismatch == "raise":
                raise ModelFileError(f"{name}: {problem}")
            warnings.warn(f"{name}: {problem}; rebuilding the indexes from the model",
                          RuntimeWarning, stacklevel=2)
            self.rebuild()
        return self

    def _restore(self, arrays):
        """Read the indexes; None when they hold the model's rows, else why not."""
        Y = np.asarray(self.model.item_factors)
        indexed = arrays["indexed"]
        if indexed.shape != Y.shape or len(moved_rows(indexed, Y)):
            return "the indexes do not hold the model's item factors"
        self._indexed = Y.copy()
        self._in_index = self._live_items(len(Y))
        live = np.flatnonzero(self._in_index)
        for kind, wanted in (("recommend", self.approximate_recommend),
                             ("similar", self.approximate_similar_items)):
            key = f"index_{kind}"
            if wanted != (key in arrays):
                return f"'{key}' does not match approximate_{kind}"
            if not wanted:
                continue
            slot = self._make_slot(kind)
            try:
                slot.load_bytes(arrays[key].tobytes(), len(Y))
            except Exception as exc:  # noqa: BLE001 - the library's own error
                return f"'{key}' is not readable ({exc})"
            if len(slot) != len(live) or not np.array_equal(slot.stored(live),
                                                             slot.vectors(Y[live])):
                return f"'{key}' does not hold the model's item factors"
            setattr(self, "recommend_index" if kind == "recommend" else "similar_items_index",
                    slot)
        return None
