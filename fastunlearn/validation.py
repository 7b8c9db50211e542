"""Input validation at the public boundary.

Every public entry point validates here once; the compiled kernels then
assume valid input and carry no checks of their own.  Errors name the
parameter, what was received and what was expected.
"""
import numbers
import warnings

import numpy as np
import scipy.sparse as sp

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INT32_MAX = np.iinfo(np.int32).max
# The kernels size per-thread scratch as k * k in C int arithmetic, so k above
# floor(sqrt(2**31 - 1)) would overflow it.
MAX_FACTORS = 46340
# No machine runs this many kernel threads; asking OpenMP for far more than
# that makes thread creation fail, which kills the process.
MAX_THREADS = 1024


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before it has factors."""


class IdOutOfRangeError(IndexError, ValueError):
    """An id outside the model; an IndexError (as implicit raises) and a ValueError."""


class ModelFitError(RuntimeError):
    """A fit whose factors became NaN or infinite (implicit's ``ModelFitError``)."""


def _implicit_parameter_warning():
    """implicit's ``ParameterWarning`` as a tuple of bases (empty without implicit).

    Code written for implicit catches that class (``pytest.warns``, warning
    filters); deriving from it when implicit is installed makes those catch
    fastunlearn's warning too, without depending on implicit.
    """
    import importlib.util

    try:
        if importlib.util.find_spec("implicit") is None:
            return ()
        from implicit.utils import ParameterWarning as theirs
    except Exception:  # noqa: BLE001 - a broken implicit install must not break this package
        return ()
    return (theirs,) if isinstance(theirs, type) and issubclass(theirs, Warning) else ()


class ParameterWarning(UserWarning, *_implicit_parameter_warning()):
    """Input that works but costs a conversion; a subclass of implicit's
    ``implicit.utils.ParameterWarning`` when implicit is installed."""


def check_dtype(dtype):
    """Return ``dtype`` as a supported factor dtype (float32 or float64)."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def check_positive_int(value, name, minimum=1, maximum=None):
    """Return ``value`` as an int, requiring ``minimum <= value <= maximum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def check_nonnegative_float(value, name, strictly_positive=False):
    """Return ``value`` as a finite float >= 0 (> 0 when ``strictly_positive``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (strictly_positive and value == 0):
        expected = "> 0" if strictly_positive else ">= 0"
        raise ValueError(f"{name} must be finite and {expected}, got {value}")
    return value


def check_fraction(value, name="fraction"):
    """Return ``value`` as a float strictly between 0 and 1."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not 0.0 < float(value) < 1.0:  # NaN fails the comparison too
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def index_dtype(shape, nnz):
    """int32 indices where every index and offset fits, int64 otherwise.

    CSR arrays hold column indices (< ``shape[1]``), row offsets (<= ``nnz``)
    and, in the item-major copy, user indices (< ``shape[0]``); all three
    must fit.  With more than ``2**31 - 1`` stored entries (or rows, or
    columns) every index array of a model, and the kernels reading them,
    use int64.
    """
    return np.int32 if max(shape[0], shape[1], nnz) <= INT32_MAX else np.int64


def check_sparse(matrix, name="user_items"):
    """Require a 2-D scipy.sparse matrix of real numbers (raises otherwise)."""
    if not sp.issparse(matrix):
        raise TypeError(f"{name} must be a scipy.sparse matrix (users x items), got "
                        f"{type(matrix).__name__}{_dense_advice(matrix)}")
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {matrix.shape}")
    if matrix.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {matrix.dtype}")


def _dense_advice(data):
    """How to turn what was passed instead of a sparse matrix into one."""
    frame = "fastunlearn.data.Interactions.from_frame"
    names = getattr(data, "column_names", None)  # pyarrow, before its .columns (arrays)
    if names is None and hasattr(data, "columns"):  # pandas, polars
        names = list(data.columns)
    if names is not None:
        from .readers.layout import SPELLINGS, normalise

        names = [str(c) for c in names]
        roles = {}
        for role in ("user", "item", "value"):
            hits = [c for c in names if normalise(c) in SPELLINGS[role]]
            if hits:
                roles[role] = hits[0]
        guess = ", ".join(f"{r}={c!r}" for r, c in roles.items()) or "user=..., item=..."
        return (f" with columns {names[:8]}: a table of interactions (one row per user and "
                f"item) becomes one with inter = {frame}(table, {guess}) (check the "
                f"columns), then fit(inter.matrix); inter.user_ids and inter.item_ids map "
                f"rows and columns back to your ids")
    shape = getattr(data, "shape", None)
    if shape is not None and len(shape) == 2 and 2 <= shape[1] <= 4 and shape[0] > shape[1]:
        return (f" of shape {tuple(shape)}: if its rows are (user, item[, value]) records, "
                f"read them with inter = {frame}({{'user': a[:, 0], 'item': a[:, 1], "
                f"'value': a[:, 2]}}, user='user', item='item', value='value') and fit("
                f"inter.matrix); if it is a dense users x items matrix, convert it with "
                f"scipy.sparse.csr_matrix")
    return "; convert dense data with scipy.sparse.csr_matrix"


def check_user_items(user_items, dtype, name="user_items"):
    """Validate an interaction matrix and return it as canonical CSR.

    Canonical means: CSR, ``dtype`` values, sorted indices, duplicate entries
    summed, index arrays of one width (int32 when everything fits), its own
    copy of the data (the caller's matrix is never aliased or modified).

    Raises
    ------
    TypeError
        For anything but a 2-D scipy.sparse matrix of real numbers.
    ValueError
        For NaN or infinite stored values.
    """
    check_sparse(user_items, name)
    csr = sp.csr_matrix(user_items, dtype=dtype, copy=True)
    if not np.all(np.isfinite(csr.data)):
        raise ValueError(f"{name} contains NaN or infinite values")
    csr.sum_duplicates()  # also sorts indices
    idx = index_dtype(csr.shape, csr.nnz)
    csr.indptr = csr.indptr.astype(idx, copy=False)
    csr.indices = csr.indices.astype(idx, copy=False)
    return csr


def check_ids(ids, n, name):
    """Validate ids against ``range(n)``; returns (int64 array, was_scalar)."""
    scalar = np.isscalar(ids) or (isinstance(ids, np.ndarray) and ids.ndim == 0)
    arr = np.asarray(ids)
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            warnings.warn(f"{name}: float ids converted to integers", stacklevel=3)
        else:
            raise TypeError(f"{name} must be integer ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        bad = arr[(arr < 0) | (arr >= n)][:5]
        raise IdOutOfRangeError(f"{name} out of range [0, {n}): {bad.tolist()}")
    return arr, scalar


# ids that only count rows (recalculate_user, partial_fit_users) need not
# be below any model size
ANY_ID = np.iinfo(np.int64).max


def check_factors(factors, name, dtype, factors_count=None):
    """Validate a factor matrix: 2-D, finite, real; returns a C-contiguous copy."""
    arr = np.asarray(factors)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows x factors), got shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if factors_count is not None and arr.shape[1] != factors_count:
        raise ValueError(f"{name} has {arr.shape[1]} columns, expected {factors_count}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one column")
    arr = np.array(arr, dtype=dtype, order="C", copy=True)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr
