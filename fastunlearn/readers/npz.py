"""Matrices saved by :func:`scipy.sparse.save_npz`: ids are ``0..n-1``."""

from __future__ import annotations

import numpy as np
import scipy.sparse

from .columns import Bad
from .errors import DataFormatError
from .matrix import Repeat, assemble

_F32_MAX = float(np.finfo(np.float32).max)


def read_npz(path, *, duplicates: str):
    """(matrix, user ids, item ids) of the ``.npz`` matrix at ``path``; errors
    name the stored entry (1-based)."""
    try:
        loaded = scipy.sparse.load_npz(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # zipfile, pickle and key errors all mean "not an npz matrix"
        raise DataFormatError(path, None, f"not a scipy.sparse .npz file ({e})") from None
    if loaded.ndim != 2:
        raise DataFormatError(path, None, f"expected a 2-D matrix, got {loaded.ndim}-D")
    coo = loaded.tocoo()
    if not (np.issubdtype(coo.dtype, np.floating) or np.issubdtype(coo.dtype, np.integer)
            or coo.dtype == bool):
        raise DataFormatError(path, None, f"unsupported value dtype {coo.dtype}")
    if coo.nnz == 0:
        raise DataFormatError(path, None, "no interactions")
    values = coo.data.astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (np.abs(values) > _F32_MAX)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(path, i + 1, f"value {values[i]!r} is not a finite float32 number",
                              unit="entry")
    rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
    try:
        matrix = assemble([rows, cols, values], coo.shape, duplicates)
    except Repeat as e:
        raise DataFormatError(
            path, e.repeat + 1, f"duplicate pair (user {int(rows[e.repeat])!r}, item "
            f"{int(cols[e.repeat])!r}), first on entry {e.first + 1}", unit="entry") from None
    except Bad as e:
        raise DataFormatError(path, e.row + 1, e.reason, unit="entry") from None
    n_users, n_items = coo.shape
    return matrix, np.arange(n_users, dtype=np.int64), np.arange(n_items, dtype=np.int64)
