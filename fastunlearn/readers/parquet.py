"""Parquet files and partitioned Parquet directories through pyarrow.

Columns are chosen by name as in text headers; a directory is read file by
file (hive partition columns included), and errors name the file and the
row within it (docs/design.md, section 6).
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .columns import Bad
from .errors import DataFormatError
from .layout import by_name
from .matrix import Redo, Repeat
from .table import Collector, unix_time_warning


def dataset(path):
    """The Parquet dataset at ``path`` (a file, or a directory of files)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: no such file or directory")
    try:
        data = ds.dataset(os.fspath(path), format="parquet", partitioning="hive")
    except Exception as e:  # pyarrow raises several kinds for a file that is not Parquet
        raise DataFormatError(path, None, f"not a Parquet file or directory ({e})") from None
    if not data.files:
        raise DataFormatError(path, None, "a directory without Parquet files")
    return data


def read_parquet(path, *, columns: dict, duplicates: str, default_value: float,
                 positions: bool = False, keep: bool = False, dtype=np.float32):
    """(matrix, user ids, item ids) of the Parquet data at ``path``.

    Parameters
    ----------
    columns : dict
        Role -> None (choose by name), str (column name) or False, as for
        text files with a header.
    positions : bool
        Ids are row and column numbers (see :class:`~.table.Collector`).
    dtype : float32 or float64
        Values of the matrix.
    """
    data = dataset(path)
    names = tuple(data.schema.names)
    chosen = by_name(path, names, columns)
    wanted = {role: names[j] for role, j in chosen.items()}
    collector = Collector(default_value, positions=positions, keep=keep, dtype=dtype,
                          expected=data.count_rows())
    files = data.files
    where = []  # (first data row, file) of each file read
    try:
        for fragment in data.get_fragments():
            where.append((collector.n, fragment.path))
            for batch in _batches(fragment, list(wanted.values()), data.schema):
                get = {role: batch.column(name) for role, name in wanted.items()}
                collector.add(get["user"], get["item"], get.get("value"), get.get("timestamp"))
        if collector.n == 0:
            raise DataFormatError(path, None, "no interactions")
        matrix, user_ids, item_ids = collector.finish(duplicates)
    except Redo:
        return read_parquet(path, columns=columns, duplicates=duplicates,
                            default_value=default_value, positions=positions, keep=True,
                            dtype=dtype)
    except Bad as e:
        raise _at(path, where, e.row, e.reason) from None
    except Repeat as e:
        user, item = collector.pair(e.repeat)
        first = _at(path, where, e.first, "")
        raise _at(path, where, e.repeat, f"duplicate pair (user {user!r}, item {item!r}), "
                                         f"first on row {first.line} of {first.path}") from None
    except (OSError, pa.ArrowException) as e:
        raise DataFormatError(files[0] if len(files) == 1 else path, None,
                              f"cannot be read ({e})") from None
    if "value" in wanted:
        unix_time_warning(matrix.data, os.fspath(path), repr(wanted["value"]),
                          f"pass value=False, timestamp={wanted['value']!r} (command line: "
                          f"--value-col none --timestamp-col {wanted['value']})", stacklevel=5)
    return matrix, user_ids, item_ids


def _batches(fragment, columns, schema):
    """Batches of ``columns`` of one file: through ParquetFile, whose decoding
    holds far less memory than a dataset scan, unless a column is a
    partition key that only the dataset knows."""
    parquet = pq.ParquetFile(fragment.path)
    if set(columns) <= set(parquet.schema_arrow.names):
        return parquet.iter_batches(batch_size=1 << 16, columns=columns)
    return fragment.to_batches(columns=columns, schema=schema, batch_size=1 << 16,
                               memory_pool=pa.system_memory_pool())


def _at(path, where, row, reason) -> DataFormatError:
    """The error at data row ``row``, named by its file and 1-based row there."""
    start, file = where[0] if where else (0, os.fspath(path))
    for s, f in where:
        if s <= row:
            start, file = s, f
    return DataFormatError(file, row - start + 1, reason, unit="row")

