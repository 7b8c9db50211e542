"""The error and warning that every interaction reader raises."""

import os
from typing import Any


class DataFormatError(ValueError):
    """Interaction data that cannot be read.

    The message names the file and, where there is one, the 1-based line
    (or, for ``.npz`` files, the stored entry; for Parquet files and data
    frames, the row) at fault, e.g.
    ``"ratings.csv, line 17: expected 2 to 4 fields, got 1"``.

    Parameters
    ----------
    path : str or os.PathLike
        The file being read, as the caller named it (for a data frame, a
        description such as ``"pandas.DataFrame"``).
    line : int or None
        1-based line (or entry, or row) number, or None when the problem
        concerns the input as a whole.
    reason : str
        What is wrong.
    unit : str, default "line"
        Word used before the number in the message.

    Attributes
    ----------
    path : str
    line : int or None
    reason : str
    """

    def __init__(self, path: Any, line: int | None, reason: str, *, unit: str = "line"):
        self.path = os.fspath(path)
        self.line = None if line is None else int(line)
        self.reason = reason
        self.unit = unit
        where = self.path if line is None else f"{self.path}, {unit} {self.line}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):
        # The default reduction would call __init__ with the formatted
        # message only, which breaks pickling (multiprocessing, pytest-xdist).
        return (_rebuild, (self.path, self.line, self.reason, self.unit))


def _rebuild(path, line, reason, unit):
    return DataFormatError(path, line, reason, unit=unit)


class DataWarning(UserWarning):
    """Data that reads, but whose shape suggests a mistake (a value column of
    Unix times, header columns that name nothing this reader uses)."""
