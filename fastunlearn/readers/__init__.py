"""Interaction readers: text, Parquet, ``.npz`` and tables in memory.

pyarrow parses (docs/design.md, section 6); :mod:`.columns` and
:mod:`.matrix` turn any reader's columns into id maps and a canonical CSR
matrix, so every input follows the same id and duplicate rules.  The public
entry points are :func:`fastunlearn.data.read_interactions` and
:meth:`fastunlearn.data.Interactions.from_frame`; this package imports
pyarrow only when it is used.
"""

from __future__ import annotations

import os

from .errors import DataFormatError


def read_path(path, fmt: str, *, auto: bool, duplicates: str, default_value: float,
              header, columns: dict):
    """(matrix, user ids, item ids) of the file or directory at ``path``."""
    if fmt == "npz":
        from .npz import read_npz

        return read_npz(path, duplicates=duplicates)
    if fmt == "parquet":
        from .parquet import read_parquet

        return read_parquet(path, columns=columns, duplicates=duplicates,
                            default_value=default_value)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{os.fspath(path)}: is a directory")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: no such file or directory")
    from .layout import choose, unused_columns_warning
    from .text import read_text

    layout = choose(path, fmt, header=header, columns=columns, auto=auto)
    unused_columns_warning(path, layout, columns)
    return read_text(path, layout, duplicates=duplicates, default_value=default_value)


__all__ = ["DataFormatError", "read_path"]
