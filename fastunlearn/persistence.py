"""Saving and loading models: one ``.npz`` file, no pickle, written atomically.

The file holds the factors, the retained interactions (CSR arrays), the
hyperparameters (as JSON), the estimator kind, a format version and optional
metadata (external id maps, forget receipts).  :func:`load` trusts nothing in
the file: every array is checked before a model is built, so a damaged or
hostile file gives a :class:`ModelFileError` and never a half-loaded model.
"""
import json
import os
import tempfile
import zipfile

import numpy as np
import scipy.sparse as sp

from .validation import check_dtype, index_dtype

FORMAT_VERSION = 1
_KINDS = ("implicit", "explicit")
_REQUIRED = ("format_version", "kind", "hyperparameters", "user_factors", "item_factors",
             "indptr", "indices", "data", "shape")
# JSON metadata the CLI keeps with a model (id maps live in arrays below)
_META_KEYS = ("user_ids", "item_ids")


class ModelFileError(ValueError):
    """A model file that cannot be loaded: damaged, hostile or from the future."""


def _npz_path(path):
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def save(model, path, metadata=None):
    """Write ``model`` to ``path`` atomically.

    The file is written to a temporary name in the same directory, flushed to
    disk and then renamed over ``path``, so a crash never leaves a partial
    file at ``path``.  As implicit does, ``.npz`` is appended when missing.

    Parameters
    ----------
    model : ImplicitALS or ExplicitALS
        A fitted model.
    path : str or os.PathLike
    metadata : dict, optional
        Extra items: ``user_ids`` / ``item_ids`` (arrays of external ids)
        and ``history`` (a list of JSON-serialisable forget receipts).

    Returns
    -------
    str
        The path written.
    """
    model._check_fitted()
    metadata = dict(metadata or getattr(model, "metadata", None) or {})
    path = _npz_path(path)
    indptr, indices, data = model._data.by_user.arrays()
    params = model.get_params()
    params["dtype"] = np.dtype(params["dtype"]).name
    if not isinstance(params.get("random_state"), (int, type(None))):
        params["random_state"] = None  # generators are not part of the model
    arrays = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "kind": np.array("implicit" if model._implicit else "explicit"),
        "hyperparameters": np.array(json.dumps(params)),
        "user_factors": model.user_factors,
        "item_factors": model.item_factors,
        "indptr": indptr,
        "indices": indices,
        "data": data,
        "shape": np.array(model._data.shape, dtype=np.int64),
        "history": np.array(json.dumps(metadata.pop("history", []))),
    }
    for key in _META_KEYS:
        if metadata.get(key) is not None:
            arrays[key] = np.asarray(metadata[key])
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastunlearn-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load(path):
    """Load a model written by :func:`save`.

    Raises
    ------
    ModelFileError
        When the file is not a fastunlearn model, is truncated or corrupt,
        has another format version, holds object (pickled) arrays, or its
        arrays disagree with each other.
    FileNotFoundError
        When neither ``path`` nor ``path + ".npz"`` exists.
    """
    path = os.fspath(path)
    if not os.path.exists(path) and os.path.exists(path + ".npz"):
        path = path + ".npz"
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in _REQUIRED if key not in npz.files]
            if missing:
                raise ModelFileError(f"{path}: not a fastunlearn model (missing {missing})")
            arrays = {key: npz[key] for key in npz.files}
    except ModelFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        # allow_pickle=False turns object arrays into ValueError
        raise ModelFileError(f"{path}: unreadable model file ({exc})") from exc
    return _build(arrays, path)


def _scalar(arrays, key, kind, path):
    arr = arrays[key]
    if arr.shape != () or arr.dtype.kind != kind:
        raise ModelFileError(f"{path}: '{key}' must be a scalar of kind {kind!r}")
    return arr.item()


def _build(arrays, path):
    from .models import ExplicitALS, ImplicitALS

    version = _scalar(arrays, "format_version", "i", path)
    if version != FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {version}, this fastunlearn reads version {FORMAT_VERSION}"
        )
    kind = _scalar(arrays, "kind", "U", path)
    if kind not in _KINDS:
        raise ModelFileError(f"{path}: unknown model kind {kind!r}")
    try:
        params = json.loads(_scalar(arrays, "hyperparameters", "U", path))
        history = json.loads(_scalar(arrays, "history", "U", path)) if "history" in arrays else []
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: damaged hyperparameters ({exc})") from exc
    if not isinstance(params, dict) or not isinstance(history, list):
        raise ModelFileError(f"{path}: damaged hyperparameters")
    cls = ImplicitALS if kind == "implicit" else ExplicitALS
    unknown = set(params) - set(cls._param_names)
    if unknown:
        raise ModelFileError(f"{path}: unknown hyperparameters {sorted(unknown)}")
    try:
        model = cls(**params)
        dtype = check_dtype(model.dtype)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid hyperparameters ({exc})") from exc

    X, Y = arrays["user_factors"], arrays["item_factors"]
    shape = arrays["shape"]
    if shape.shape != (2,) or shape.dtype.kind != "i" or shape.min() < 0:
        raise ModelFileError(f"{path}: 'shape' must be two non-negative integers")
    n_users, n_items = (int(v) for v in shape)
    k = model.factors
    for name, arr, n in (("user_factors", X, n_users), ("item_factors", Y, n_items)):
        if arr.dtype != dtype or arr.shape != (n, k):
            raise ModelFileError(
                f"{path}: '{name}' is {arr.dtype} {arr.shape}, expected {dtype} {(n, k)}")
        if not np.all(np.isfinite(arr)):
            raise ModelFileError(f"{path}: '{name}' contains NaN or infinite values")
    user_items = _check_csr(arrays, (n_users, n_items), dtype, path)
    model._set_state(np.ascontiguousarray(X), np.ascontiguousarray(Y), user_items)
    model.metadata = {"history": history}
    for key in _META_KEYS:
        if key in arrays:
            ids = arrays[key]
            if ids.ndim != 1 or ids.dtype.kind not in "iuU":
                raise ModelFileError(f"{path}: '{key}' must be a 1-D array of ids")
            if len(ids) != (n_users if key == "user_ids" else n_items):
                raise ModelFileError(f"{path}: '{key}' has {len(ids)} ids for "
                                     f"{n_users if key == 'user_ids' else n_items} rows")
            model.metadata[key] = ids
    return model


def _check_csr(arrays, shape, dtype, path):
    """Validate raw CSR arrays fully before they reach any kernel."""
    indptr, indices, data = arrays["indptr"], arrays["indices"], arrays["data"]
    for name, arr, kinds in (("indptr", indptr, "iu"), ("indices", indices, "iu"),
                             ("data", data, "f")):
        if arr.ndim != 1 or arr.dtype.kind not in kinds:
            raise ModelFileError(f"{path}: '{name}' must be a 1-D numeric array")
    if data.dtype != dtype:
        raise ModelFileError(f"{path}: 'data' is {data.dtype}, the factors are {dtype}")
    nnz = len(data)
    if len(indptr) != shape[0] + 1 or len(indices) != nnz:
        raise ModelFileError(f"{path}: CSR arrays disagree with shape {shape} / nnz {nnz}")
    if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr.astype(np.int64)) < 0):
        raise ModelFileError(f"{path}: 'indptr' is not a valid row pointer")
    if nnz and (indices.min() < 0 or indices.max() >= shape[1]):
        raise ModelFileError(f"{path}: 'indices' out of range [0, {shape[1]})")
    # canonical: strictly increasing within each row
    if nnz > 1:
        step = np.diff(indices.astype(np.int64))
        row_start = np.zeros(nnz, dtype=bool)
        row_start[indptr[1:-1][indptr[1:-1] < nnz].astype(np.int64)] = True
        if np.any((step <= 0) & ~row_start[1:]):
            raise ModelFileError(f"{path}: 'indices' are unsorted or duplicated within a row")
    if not np.all(np.isfinite(data)):
        raise ModelFileError(f"{path}: 'data' contains NaN or infinite values")
    idx = index_dtype(shape, nnz)
    return sp.csr_matrix(
        (data.copy(), indices.astype(idx), indptr.astype(idx)), shape=shape, copy=False)
