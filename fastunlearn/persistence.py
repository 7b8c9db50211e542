"""Saving and loading models: one ``.npz`` file, no pickle, written atomically.

The file holds the factors, the retained interactions (CSR arrays), the
hyperparameters (as JSON), the estimator kind, a format version and optional
metadata (external id maps, forget receipts), the removals still pending a
washout, the relaxed washouts run since the fit, the washout policy, and
the measures forgetting keeps (gradient bounds, Gram matrices, loss terms), so that the
first forget after :func:`load` starts warm.  The
measures carry a fingerprint of the factors, the interactions and
themselves; a file in which any of them was edited loads without them (they
are measured again when needed), never with stale ones.  :func:`load` trusts nothing in
the file: the archive's members, each array's header and size, and then every
value are checked before a model is built, so a damaged or hostile file gives
a :class:`ModelFileError` and never a half-loaded model.  Nothing in a file is
ever unpickled or executed.

Files travel to and from implicit 0.7: an implicit-feedback file also holds
implicit's members (``factors``, ``regularization``, ... as scalars), so
implicit's ``load`` reads it with the right hyperparameters; a file written
by implicit's ``save`` (factors and hyperparameters, no interactions) loads
here as a model that serves, and that ``ImplicitALS.from_implicit(path,
user_items)`` turns into one that can forget.  A model without interactions
is saved in implicit's format.

What a file holds of a model is its hyperparameters, ``metadata`` and
:class:`~fastunlearn.state.ModelState` (factors, interactions, kept
measures, pending and washout counts, washout policy); this module reads
and builds those, never the estimators' internals.
"""
import contextlib
import hashlib
import json
import math
import os
import tempfile
import zipfile

import numpy as np
import scipy.sparse as sp

from .forgetting.options import WASHOUT_POLICIES
from .state import checksum
from .validation import check_dtype, index_dtype

try:  # advisory locks mark a temporary file as in use by a live save (POSIX)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

FORMAT_VERSION = 1
_KINDS = ("implicit", "explicit")
_REQUIRED = ("format_version", "kind", "hyperparameters", "user_factors", "item_factors",
             "indptr", "indices", "data", "shape")
# JSON metadata the CLI keeps with a model (id maps live in arrays below)
_META_KEYS = ("user_ids", "item_ids")
_MEASURES = ("measures_user_norms", "measures_item_norms", "measures_sq_users",
             "measures_sq_items", "measures_grams", "measures_scalars", "measures_fingerprint")
# implicit 0.7's save: factors and hyperparameters (random_state only when set)
_IMPLICIT_PARAMS = ("regularization", "factors", "num_threads", "iterations", "use_native",
                    "use_cg", "cg_steps", "calculate_training_loss", "dtype", "random_state",
                    "alpha")
_IMPLICIT_KEYS = ("user_factors", "item_factors") + _IMPLICIT_PARAMS
_OPTIONAL = ("history", "pending", "washouts", "washout_policy") + _META_KEYS + _MEASURES \
    + _IMPLICIT_PARAMS
_TMP_SUFFIX = ".fastunlearn-tmp"


class ModelFileError(ValueError):
    """A model file that cannot be loaded: damaged, hostile or from the future."""


def saved_path(path):
    """The file :func:`save` writes for ``path``: ``.npz`` appended when missing."""
    path = os.fspath(path)
    return path if path.endswith(".npz") else path + ".npz"


def model_path(path):
    """The file :func:`fastunlearn.load` reads for ``path``: ``path`` itself,
    else ``path + ".npz"``; None when neither exists."""
    path = os.fspath(path)
    if os.path.exists(path):
        return path
    if os.path.exists(path + ".npz"):
        return path + ".npz"
    return None


def save(model, path, metadata=None):
    """Write ``model`` to ``path`` atomically.

    The file is written to a temporary name in the same directory, flushed to
    disk and then renamed over ``path``, so a crash (even ``SIGKILL`` or a
    power cut) never leaves a partial file at ``path``: it holds the old
    file, or none, or the complete new one.  Temporary files that killed
    saves to the same ``path`` left behind are removed (they may hold data
    that was forgotten since).  As implicit does, ``.npz`` is appended when
    missing.

    Parameters
    ----------
    model : ImplicitALS or ExplicitALS
        A fitted model, or an implicit-feedback one holding factors only
        (loaded from implicit's file, or factors set by hand), which is
        written in implicit's format.
    path : str, os.PathLike or file object
        A writable binary file object (e.g. ``io.BytesIO``) is written
        in place, not atomically.
    metadata : dict, optional
        Extra items: ``user_ids`` / ``item_ids`` (arrays of external ids)
        and ``history`` (a list of JSON-serialisable forget receipts).

    Returns
    -------
    str or file object
        The path written (or the file object).
    """
    state, spec = model.state, model.spec
    if spec.kind == "implicit" and state.data is None:
        model._check_factors()
        return write_arrays(implicit_members(model, factors_only=True), path)
    model._check_fitted()
    metadata = dict(metadata or getattr(model, "metadata", None) or {})
    indptr, indices, data = state.data.by_user.arrays()
    params = model.hyperparameters()
    params["dtype"] = np.dtype(params["dtype"]).name
    if not isinstance(params.get("random_state"), (int, type(None))):
        params["random_state"] = None  # generators are not part of the model
    arrays = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "kind": np.array(spec.kind),
        "hyperparameters": np.array(json.dumps(params)),
        "user_factors": state.user_factors,
        "item_factors": state.item_factors,
        "indptr": indptr,
        "indices": indices,
        "data": data,
        "shape": np.array(state.data.shape, dtype=np.int64),
        "history": np.array(json.dumps(metadata.pop("history", []))),
        "pending": np.array(state.pending, dtype=np.int64),
        "washouts": np.array(state.washouts, dtype=np.int64),
        "washout_policy": np.array(state.washout_policy),
    }
    arrays.update(_measure_arrays(state, spec.objective.implicit))
    if spec.kind == "implicit":
        arrays.update(implicit_members(model))
    for key in _META_KEYS:
        if metadata.get(key) is not None:
            arrays[key] = np.asarray(metadata[key])
    return write_arrays(arrays, path)


def implicit_members(model, factors_only=False):
    """The members implicit 0.7's ``save`` writes (what its ``load`` reads)."""
    members = {"regularization": float(model.regularization), "factors": int(model.factors),
               "num_threads": int(model.num_threads), "iterations": int(model.iterations),
               "use_native": bool(getattr(model, "use_native", True)),
               "use_cg": bool(model.use_cg), "cg_steps": int(model.cg_steps),
               "calculate_training_loss": bool(model.calculate_training_loss),
               "dtype": np.dtype(model.dtype).name, "alpha": float(model.alpha)}
    if isinstance(model.random_state, (int, np.integer)) and \
            not isinstance(model.random_state, bool):
        members["random_state"] = int(model.random_state)
    arrays = {key: np.array(value) for key, value in members.items()}
    if factors_only:
        arrays["user_factors"] = np.asarray(model.user_factors)
        arrays["item_factors"] = np.asarray(model.item_factors)
    return arrays


def write_arrays(arrays, path):
    """``np.savez`` to a file object, or atomically to ``path`` (".npz" appended)."""
    if hasattr(path, "write"):
        np.savez(path, **arrays)
        return path
    path = saved_path(path)
    directory, base = os.path.split(os.path.abspath(path))
    _remove_stale_temporaries(directory, base)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=_TMP_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            if fcntl is not None:  # held until closed, or until this process dies
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
    return path


def _fingerprint_of(arrays, names):
    """Hex digest identifying the bytes of ``arrays[name]`` for ``names``
    (the package's Fletcher checksums, keyed by name, dtype and shape)."""
    parts = [(name, str(arrays[name].dtype), arrays[name].shape, checksum(arrays[name]))
             for name in names]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


_FINGERPRINTED = ("user_factors", "item_factors", "indptr", "indices", "data") + \
    _MEASURES[:-1]


def _measure_arrays(state, implicit):
    """The members holding the kept measures of ``state`` (a
    :class:`~fastunlearn.state.ModelState`), if they describe it as it is
    now (nothing otherwise); ``implicit``: whether it has Gram matrices."""
    kept = state.current_measures()
    if kept is None:
        return {}
    arrays = {
        "measures_user_norms": np.asarray(kept.user_norms, dtype=np.float64),
        "measures_item_norms": np.asarray(kept.item_norms, dtype=np.float64),
        "measures_sq_users": np.asarray(kept.sq_users, dtype=np.float64),
        "measures_sq_items": np.asarray(kept.sq_items, dtype=np.float64),
        "measures_grams": (np.stack([kept.gram_users, kept.gram_items]).astype(np.float64)
                           if implicit else np.zeros((2, 0, 0))),
        "measures_scalars": np.array([kept.data_loss, float(kept.exact)]),
    }
    indptr, indices, data = state.data.by_user.arrays()
    named = {"user_factors": state.user_factors, "item_factors": state.item_factors,
             "indptr": indptr, "indices": indices, "data": data, **arrays}
    arrays["measures_fingerprint"] = np.array(_fingerprint_of(named, _FINGERPRINTED))
    return arrays


def _loaded_measures(arrays, spec, shape, path):
    """The measures a file holds, if they are intact and belong to its
    factors and interactions, else None (measured again when needed)."""
    from .objective import Measures

    if not all(name in arrays for name in _MEASURES):
        if any(name in arrays for name in _MEASURES):
            raise ModelFileError(f"{path}: incomplete measures (some of {list(_MEASURES)})")
        return None
    fingerprint = arrays["measures_fingerprint"]
    if fingerprint.shape != () or fingerprint.dtype.kind != "U":
        raise ModelFileError(f"{path}: 'measures_fingerprint' must be a string")
    n_users, n_items = shape
    k, implicit = spec.factors, spec.objective.implicit
    grams = (2, k, k) if implicit else (2, 0, 0)
    for name, shape in (("measures_user_norms", (n_users,)), ("measures_item_norms", (n_items,)),
                        ("measures_sq_users", (n_users,)), ("measures_sq_items", (n_items,)),
                        ("measures_grams", grams), ("measures_scalars", (2,))):
        arr = arrays[name]
        if arr.dtype != np.float64 or arr.shape != shape or not np.all(np.isfinite(arr)):
            raise ModelFileError(f"{path}: '{name}' must be {shape} finite float64 values")
    if fingerprint.item() != _fingerprint_of(arrays, _FINGERPRINTED):
        return None  # edited since it was measured: never trusted stale
    g = arrays["measures_grams"]
    data_loss, exact = arrays["measures_scalars"]
    return Measures(arrays["measures_user_norms"], arrays["measures_item_norms"],
                    float(data_loss), g[0] if implicit else None,
                    g[1] if implicit else None, arrays["measures_sq_users"],
                    arrays["measures_sq_items"], exact=bool(exact))


def _fsync_directory(directory):
    """Make the rename itself durable (a power cut could otherwise undo it)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_stale_temporaries(directory, base):
    """Delete temporary files of earlier saves to ``base`` whose writer died.

    A live save holds an exclusive lock on its temporary file; a file whose
    lock can be taken was left by a process that was killed mid-save.
    """
    if fcntl is None:
        return
    prefix = f".{base}."
    try:
        names = [n for n in os.listdir(directory)
                 if n.startswith(prefix) and n.endswith(_TMP_SUFFIX)]
    except OSError:
        return
    for name in names:
        full = os.path.join(directory, name)
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(full)
        except OSError:  # locked: another save is writing it right now
            pass
        finally:
            os.close(fd)


def load_as(cls, path):
    """Read the model file at ``path`` (see :func:`fastunlearn.load`) as an
    instance of ``cls``, or, when ``cls`` is the estimators' base class,
    of the estimator the file names (``cls.for_kind``)."""
    if hasattr(path, "read"):
        name = str(getattr(path, "name", None) or f"<{type(path).__name__}>")
        source = path
    else:
        source = name = model_path(path)
        if name is None:
            raise FileNotFoundError(os.fspath(path))
        if not os.path.isfile(name):  # a directory, a FIFO (which would block), a device
            raise ModelFileError(f"{name}: not a regular file")
    arrays, implicit_file = _read_arrays(source, name)
    if implicit_file:
        return _build_from_implicit(arrays, name, cls)
    return _build(arrays, name, cls)


def _estimator(cls, kind, path):
    """The class to build: ``cls`` itself when it is an estimator, else the file's kind."""
    if cls.kind is None:  # the base class: the file decides
        return cls.for_kind(kind)
    if kind != cls.kind:
        raise ModelFileError(f"{path}: holds an {kind} model, not a {cls.__name__}")
    return cls


def _read_arrays(path, name=None):
    """Every array of the ``.npz`` at ``path``, checked member by member.

    Only ``.npy`` members with the expected names, each once, are accepted;
    each header is read first, and its dtype (never an object dtype) and
    size (exactly what the member holds) are checked before its data is
    allocated or read.  ``np.load`` is not used: it returns raw bytes for
    members without ``.npy``, a bare array for ``.npy`` files, and
    allocates whatever a header claims.  ``path`` may be a file object
    (``name`` then names it in messages).

    Returns
    -------
    arrays : dict
    implicit_file : bool
        Whether the members are those of implicit's ``save``.
    """
    name = path if name is None else name
    try:
        archive = zipfile.ZipFile(path)
    except OSError as exc:
        raise ModelFileError(f"{name}: unreadable model file ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - BadZipFile, or worse for mangled archives
        # empty, truncated, a bare .npy, a pickle, any other kind of file
        raise ModelFileError(f"{name}: not a fastunlearn model file (not a complete .npz "
                             f"archive: {exc})") from exc
    try:
        with archive:
            infos = archive.infolist()
            keys, implicit_file = _check_members(infos, name)
            sizes = [_header(archive, info, name) for info in infos]
            _check_declared_memory(sizes, name)
            arrays = {}
            for key, info in zip(keys, infos):
                with archive.open(info) as fh:
                    arrays[key] = np.lib.format.read_array(fh, allow_pickle=False)
            return arrays, implicit_file
    except (ModelFileError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - anything a damaged archive raises
        # zipfile, zlib, lzma, numpy's header parser and the CRC check raise a
        # dozen exception types between them; every one means "damaged file"
        raise ModelFileError(
            f"{name}: unreadable model file ({type(exc).__name__}: {exc})") from exc


def _check_members(infos, path):
    """(member keys, whether they are implicit's) after checking the names."""
    names = [info.filename for info in infos]
    if not names:
        raise ModelFileError(f"{path}: not a fastunlearn model (an empty archive)")
    odd = [n for n in names if not n.endswith(".npy")]
    if odd:
        raise ModelFileError(f"{path}: not a fastunlearn model (members that are not "
                             f".npy arrays: {odd[:5]})")
    keys = [n[:-4] for n in names]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ModelFileError(f"{path}: damaged model file (members {repeated} appear twice)")
    encrypted = [n for n, info in zip(names, infos) if info.flag_bits & 0x1]
    if encrypted:
        raise ModelFileError(f"{path}: encrypted members {encrypted[:5]}")
    implicit_like = {"user_factors", "item_factors"} & set(keys) or \
        (set(keys) <= set(_IMPLICIT_KEYS) and "factors" in keys)  # implicit's unfitted model
    if "format_version" not in keys and implicit_like:
        unknown = sorted(set(keys) - set(_IMPLICIT_KEYS))
        if unknown:  # implicit's BPR or LMF, say: not an ALS model
            raise ModelFileError(f"{path}: unknown members {unknown[:5]} for implicit's ALS "
                                 "format (a file of another model?)")
        return keys, True
    missing = [key for key in _REQUIRED if key not in keys]
    if missing:
        raise ModelFileError(f"{path}: not a fastunlearn model (missing {missing})")
    unknown = sorted(set(keys) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ModelFileError(f"{path}: unknown members {unknown[:5]} (written by another "
                             "program or a newer fastunlearn?)")
    return keys, False


def _header(archive, info, path):
    """Bytes of data one member declares, checked against its .npy header only."""
    name = info.filename
    with archive.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ModelFileError(f"{path}: '{name}' has unsupported .npy version {version}")
        offset = fh.tell()
    if dtype.hasobject:
        raise ModelFileError(f"{path}: '{name}' holds Python objects (pickled data); "
                             "model files never do, and they are never unpickled")
    if dtype.itemsize == 0:
        raise ModelFileError(f"{path}: '{name}' has a zero-size dtype {dtype}")
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes != info.file_size:
        raise ModelFileError(f"{path}: '{name}' declares {nbytes} bytes of data but holds "
                             f"{info.file_size - offset} (truncated or tampered with)")
    return nbytes


def _check_declared_memory(sizes, path):
    """Refuse a file whose arrays would not fit, before allocating any."""
    from .resources import check_memory

    check_memory(sum(sizes), what=f"loading {path}")


def _scalar(arrays, key, kind, path):
    arr = arrays[key]
    if arr.shape != () or arr.dtype.kind != kind:
        raise ModelFileError(f"{path}: '{key}' must be a scalar of kind {kind!r}")
    return arr.item()


# The constructors check the numeric hyperparameters (a bad one becomes "invalid
# hyperparameters" in _build) but take these flags and random_state unchecked,
# as only fit uses them.
_FLAGS = ("use_native", "use_cg", "calculate_training_loss", "weighted_regularization")


def _check_params(params, path):
    for name in _FLAGS:
        if name in params and not isinstance(params[name], bool):
            raise ModelFileError(f"{path}: hyperparameter {name} must be true or false, "
                                 f"got {params[name]!r}")
    seed = params.get("random_state")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ModelFileError(f"{path}: hyperparameter random_state must be null or an "
                             f"integer >= 0, got {seed!r}")


def _build(arrays, path, cls=None):
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
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: damaged hyperparameters ({exc})") from exc
    try:
        history = json.loads(_scalar(arrays, "history", "U", path)) if "history" in arrays else []
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: damaged forget history ({exc})") from exc
    if not isinstance(params, dict):
        raise ModelFileError(f"{path}: damaged hyperparameters (not a JSON object)")
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise ModelFileError(f"{path}: damaged forget history (not a list of receipts)")
    cls = _estimator(cls, kind, path)
    unknown = set(params) - set(cls.hyperparameter_names)
    if unknown:
        raise ModelFileError(f"{path}: unknown hyperparameters {sorted(unknown)}")
    _check_params(params, path)
    try:
        model = cls.from_hyperparameters(**params)
        dtype = check_dtype(model.dtype)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid hyperparameters ({exc})") from exc

    X, Y = arrays["user_factors"], arrays["item_factors"]
    shape = arrays["shape"]
    if shape.shape != (2,) or shape.dtype.kind != "i" or shape.min() < 0:
        raise ModelFileError(f"{path}: 'shape' must be two non-negative integers")
    n_users, n_items = (int(v) for v in shape)
    k = model.spec.factors
    for name, arr, n in (("user_factors", X, n_users), ("item_factors", Y, n_items)):
        if arr.dtype != dtype or arr.shape != (n, k):
            raise ModelFileError(
                f"{path}: '{name}' is {arr.dtype} {arr.shape}, expected {dtype} {(n, k)}")
        if not np.all(np.isfinite(arr)):
            raise ModelFileError(f"{path}: '{name}' contains NaN or infinite values")
    user_items = _check_csr(arrays, (n_users, n_items), dtype, path)
    metadata = {"history": history}
    for key in _META_KEYS:
        if key in arrays:
            ids = arrays[key]
            if ids.ndim != 1 or ids.dtype.kind not in "iuU":
                raise ModelFileError(f"{path}: '{key}' must be a 1-D array of ids")
            if len(ids) != (n_users if key == "user_ids" else n_items):
                raise ModelFileError(f"{path}: '{key}' has {len(ids)} ids for "
                                     f"{n_users if key == 'user_ids' else n_items} rows")
            if len(np.unique(ids)) != len(ids):
                raise ModelFileError(f"{path}: '{key}' repeats ids")
            metadata[key] = ids
    pending = (0, 0)
    if "pending" in arrays:
        arr = arrays["pending"]
        if arr.shape != (2,) or arr.dtype.kind != "i" or arr.min() < 0:
            raise ModelFileError(f"{path}: 'pending' must be two non-negative integers")
        pending = (int(arr[0]), int(arr[1]))
    washouts = 0  # files before the count: as if fitted (their next washout relaxed)
    if "washouts" in arrays:
        arr = arrays["washouts"]
        if arr.shape != () or arr.dtype.kind != "i" or arr < 0:
            raise ModelFileError(f"{path}: 'washouts' must be a non-negative integer")
        washouts = int(arr)
    policy = "default"  # files before the policy
    if "washout_policy" in arrays:
        policy = _scalar(arrays, "washout_policy", "U", path)
        if policy not in WASHOUT_POLICIES:
            raise ModelFileError(f"{path}: 'washout_policy' must be one of "
                                 f"{WASHOUT_POLICIES}, got {policy!r}")
    _check_implicit_members(arrays, model, path)
    # only now, with everything checked, does the model get any state
    state = model.state
    state.install(np.ascontiguousarray(X), np.ascontiguousarray(Y), user_items)
    model.metadata = metadata
    state.pending, state.washouts, state.washout_policy = pending, washouts, policy
    measures = _loaded_measures(arrays, model.spec, (n_users, n_items), path)
    if measures is not None:
        state.remember(measures)
    return model


def _implicit_scalars(arrays, path):
    """implicit's hyperparameter members, type-checked, as Python values."""
    kinds = {"factors": "iu", "num_threads": "iu", "iterations": "iu", "cg_steps": "iu",
             "random_state": "iu", "regularization": "iuf", "alpha": "iuf", "use_native": "b",
             "use_cg": "b", "calculate_training_loss": "b", "dtype": "U"}
    values = {}
    for key in _IMPLICIT_PARAMS:
        if key in arrays:
            arr = arrays[key]
            if arr.shape != () or arr.dtype.kind not in kinds[key]:
                raise ModelFileError(f"{path}: '{key}' must be a scalar of kind "
                                     f"{kinds[key]!r}, got {arr.dtype} {arr.shape}")
            values[key] = arr.item()
    return values


def _check_implicit_members(arrays, model, path):
    """implicit's copies of the hyperparameters must say what the JSON says."""
    expected = {key: arr.item() for key, arr in implicit_members(model).items()} \
        if model.kind == "implicit" else {}  # an explicit model's file has no such members
    for key, value in _implicit_scalars(arrays, path).items():
        if key not in expected or value != expected[key]:
            raise ModelFileError(f"{path}: member '{key}' ({value!r}) disagrees with the "
                                 f"hyperparameters ({expected.get(key)!r})")


def _build_from_implicit(arrays, path, cls):
    """A model serving the factors of a file written by implicit's ``save``."""
    params = _implicit_scalars(arrays, path)
    X, Y = arrays.get("user_factors"), arrays.get("item_factors")
    if (X is None) != (Y is None):
        raise ModelFileError(f"{path}: holds {'user' if Y is None else 'item'}_factors "
                             "without the other side's")
    if X is not None:
        for name, arr in (("user_factors", X), ("item_factors", Y)):
            if arr.ndim != 2 or arr.dtype.kind != "f" or arr.shape[1] < 1:
                raise ModelFileError(f"{path}: '{name}' is {arr.dtype} {arr.shape}, expected "
                                     "a 2-D float array")
            if not np.all(np.isfinite(arr)):
                raise ModelFileError(f"{path}: '{name}' contains NaN or infinite values")
        if X.shape[1] != Y.shape[1] or params.get("factors", X.shape[1]) != X.shape[1]:
            raise ModelFileError(f"{path}: factors of {X.shape[1]} and {Y.shape[1]} columns "
                                 f"for factors={params.get('factors')}")
        params.setdefault("factors", X.shape[1])
        params.setdefault("dtype", X.dtype.name)
    if params.get("random_state") is not None and params["random_state"] < 0:
        raise ModelFileError(f"{path}: random_state must be >= 0, got {params['random_state']}")
    cls = _estimator(cls, "implicit", path)
    try:
        model = cls.from_hyperparameters(**params)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: invalid hyperparameters ({exc})") from exc
    if X is not None:
        # implicit keeps whatever dtype the factors had; the kernels need the model's
        model.user_factors = np.array(X, dtype=model.dtype, order="C")
        model.item_factors = np.array(Y, dtype=model.dtype, order="C")
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
