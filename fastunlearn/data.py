"""Interactions: a sparse matrix with the external ids of its rows and columns.

The CLI trains, erases and serves with the user's own ids, while the
factorisation code works with row and column numbers.  This module holds
:class:`Interactions` (a canonical CSR matrix plus the external id of every
row and column) and the entry points that make one: :func:`read_interactions`
for files (CSV, TSV, MovieLens, Parquet, ``.npz``) and
:meth:`Interactions.from_frame` for tables in memory.  The readers themselves
live in :mod:`fastunlearn.readers` (pyarrow does the parsing; see
docs/design.md, section 6), the id maps in :mod:`fastunlearn.idmaps`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from .idmaps import UnknownIdError, lookup_ids, to_external, to_internal  # noqa: F401
from .readers.errors import DataFormatError, DataWarning
from .readers.layout import check_columns
from .readers.layout import guess_format as _guess_format

__all__ = [
    "DataFormatError",
    "DataWarning",
    "Interactions",
    "UnknownIdError",
    "load_movielens",
    "read_interactions",
    "to_external",
    "to_internal",
]

FORMATS = ("auto", "csv", "tsv", "movielens", "movielens-dat", "parquet", "npz")
DUPLICATE_POLICIES = ("sum", "last", "max", "error")
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, eq=False)
class Interactions:
    """An interaction matrix together with the external ids of its axes.

    Parameters
    ----------
    matrix : scipy.sparse.csr_matrix
        Users x items, float32 values, canonical format (sorted indices, no
        duplicate entries).  Every observed pair is stored, even when its
        value is zero, so the sparsity pattern is exactly the set of pairs
        that occurred in the input.
    user_ids : numpy.ndarray
        External id of each row, sorted ascending: int64 when every user id
        is an integer (stored as one, or written canonically: ``"42"``,
        ``"-7"``; not ``"007"``), otherwise a unicode (``str_``) array.
    item_ids : numpy.ndarray
        External id of each column, under the same rules as `user_ids`.

    Notes
    -----
    Equality is identity (``eq=False``): element-wise array comparison has no
    single truth value.
    """

    matrix: scipy.sparse.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    def __post_init__(self):
        n_users, n_items = self.matrix.shape
        if len(self.user_ids) != n_users or len(self.item_ids) != n_items:
            raise ValueError(
                f"matrix shape {self.matrix.shape} does not match "
                f"{len(self.user_ids)} user ids and {len(self.item_ids)} item ids"
            )

    @property
    def n_users(self) -> int:
        """Number of rows (users)."""
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        """Number of columns (items)."""
        return self.matrix.shape[1]

    @classmethod
    def from_frame(cls, table: Any, user: str, item: str, value: str | None = None,
                   timestamp: str | None = None, *, duplicates: str = "sum",
                   default_value: float = 1.0) -> "Interactions":
        """Interactions from a table with one row per (user, item) interaction.

        Parameters
        ----------
        table : pandas.DataFrame, polars.DataFrame, pyarrow.Table or mapping
            The interactions; a mapping takes column names to 1-D arrays.
        user, item : str
            Columns of the user and item ids (integers or strings; the id
            rules are those of files, see the class docstring).
        value : str or None
            Column of interaction values; None gives every interaction
            `default_value`.
        timestamp : str or None
            Column of times, checked to be finite numbers but not kept.
        duplicates, default_value
            As for :func:`read_interactions`.

        Returns
        -------
        Interactions

        Raises
        ------
        DataFormatError
            For a missing id, a value that is not a finite float32 number, or
            a repeat under ``duplicates="error"``; the message names the row.
        KeyError
            For a column the table does not have.
        """
        from .readers.frames import read_frame

        _check_common(duplicates, default_value)
        return cls(*read_frame(table, user=user, item=item, value=value, timestamp=timestamp,
                               duplicates=duplicates, default_value=default_value))


def read_interactions(
    path: str | os.PathLike,
    *,
    fmt: str = "auto",
    duplicates: str = "sum",
    default_value: float = 1.0,
    header: bool | None = None,
    user: str | int | None = None,
    item: str | int | None = None,
    value: str | int | bool | None = None,
    timestamp: str | int | bool | None = None,
) -> Interactions:
    """Read an interaction file (or a directory of Parquet files).

    Parameters
    ----------
    path : str or os.PathLike
        File to read (text: UTF-8, a byte-order mark is ignored).
    fmt : {"auto", "csv", "tsv", "movielens", "movielens-dat", "parquet", "npz"}
        ``"csv"`` and ``"tsv"``: delimited text, quoted fields allowed; with
        ``"auto"`` the delimiter (comma, tab, semicolon or bar) is detected
        from the content.  ``"movielens"``: MovieLens 100K ``u.data`` (tab
        separated ``user item rating timestamp``).  ``"movielens-dat"``:
        MovieLens 1M ``ratings.dat`` (``user::item::rating::timestamp``).
        ``"parquet"``: a Parquet file or a (hive-partitioned) directory of
        them.  ``"npz"``: a matrix saved by :func:`scipy.sparse.save_npz`;
        its ids are ``0..n-1``.  ``"auto"`` chooses by name: a directory,
        ``.parquet`` -> parquet, ``.npz`` -> npz, ``.dat`` -> movielens-dat,
        ``u.data`` or ``.data`` -> movielens, anything else -> delimited
        text (tab by default for ``.tsv``/``.tab``).
    duplicates : {"sum", "last", "max", "error"}
        What to do when a (user, item) pair occurs more than once: add the
        values (default), keep the one nearest the end of the input, keep
        the largest, or raise :class:`DataFormatError` naming the line of
        the first repeat.
    default_value : float, default 1.0
        Value of every interaction when there is no value column.
    header : bool or None, default None
        Whether the first line of a text file is a header; None detects it
        (docs/design.md, section 6: a third field that is not a number, two
        known names, names over a column of integers, or a name given below).
    user, item, value, timestamp : str, int, False or None
        Which column holds what.  None chooses: by the header's names (under
        common spellings: ``user``, ``userId``, ``customer_id``, ...;
        ``item``, ``movieId``, ``product``, ...; ``rating``, ``count``,
        ``score``, ...; ``timestamp``, ``time``, ...), else by position
        (user, item, value, timestamp).  A str names a header (or Parquet)
        column, an int is a 0-based position, and False (value and timestamp
        only) says there is no such column.

    Returns
    -------
    Interactions
        Rows and columns follow the sorted unique ids (numerically when the
        ids are integers), so the result does not depend on row order.

    Raises
    ------
    DataFormatError
        For an empty input (or a header alone), a header that names no user
        or item column (the message lists the columns found), a line with
        the wrong number of fields (2 to 4 without a header, the same on
        every line), an empty id, a value or timestamp that is not a finite
        number (or a value outside float32 range), a repeated pair under
        ``duplicates="error"``, bad quoting or bad UTF-8.  The message names
        the file and the first bad line (for Parquet, the file and row).
    FileNotFoundError
        If `path` does not exist.
    ValueError
        For an unknown `fmt` or `duplicates`, a non-finite `default_value`,
        or a column choice of the wrong type.

    Warns
    -----
    DataWarning
        When every value is an integer of Unix-time size, or header columns
        go unused while no value column was found; it says what to do.

    Notes
    -----
    Ids have surrounding whitespace removed.  Lines that are empty or all
    whitespace are skipped wherever they occur; there is no comment syntax.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown fmt {fmt!r}; expected one of {', '.join(FORMATS)}")
    _check_common(duplicates, default_value)
    if header not in (None, True, False):
        raise ValueError(f"header must be None, True or False, got {header!r}")
    columns = check_columns(user=user, item=item, value=value, timestamp=timestamp)
    from .readers import read_path

    auto = fmt == "auto"
    fmt = _guess_format(path) if auto else fmt
    return Interactions(*read_path(path, fmt, auto=auto, duplicates=duplicates,
                                   default_value=float(default_value), header=header,
                                   columns=columns))


def load_movielens(path: str | os.PathLike, *, duplicates: str = "sum") -> Interactions:
    """Read a MovieLens ratings file.

    Parameters
    ----------
    path : str or os.PathLike
        The MovieLens directory (containing ``u.data`` for 100K or
        ``ratings.dat`` for 1M) or the ratings file itself.
    duplicates : str, default "sum"
        Passed to :func:`read_interactions`; MovieLens has no repeats.

    Returns
    -------
    Interactions
        Ratings as values, integer user and item ids.

    Raises
    ------
    FileNotFoundError
        If `path` is a directory with neither ratings file, or is missing.
    """
    p = Path(path)
    if p.is_dir():
        for name, fmt in (("u.data", "movielens"), ("ratings.dat", "movielens-dat")):
            if (p / name).is_file():
                return read_interactions(p / name, fmt=fmt, duplicates=duplicates)
        raise FileNotFoundError(f"{os.fspath(path)}: no u.data or ratings.dat in this directory")
    if not p.exists():
        raise FileNotFoundError(f"{os.fspath(path)}: no such file or directory")
    fmt = "movielens-dat" if p.suffix.lower() == ".dat" else "movielens"
    return read_interactions(p, fmt=fmt, duplicates=duplicates)


def _check_common(duplicates, default_value) -> None:
    if duplicates not in DUPLICATE_POLICIES:
        raise ValueError(
            f"unknown duplicates policy {duplicates!r}; "
            f"expected one of {', '.join(DUPLICATE_POLICIES)}"
        )
    default_value = float(default_value)
    if not np.isfinite(default_value) or abs(default_value) > _F32_MAX:
        raise ValueError(f"default_value must be a finite float32 number, got {default_value!r}")
