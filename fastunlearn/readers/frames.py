"""Tables in memory (pandas, polars, pyarrow, or a mapping of columns) to
interactions, through the same id rules as files.

pandas and polars are never imported here: a frame of theirs converts itself
to Arrow (docs/design.md, section 6).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from .columns import Bad
from .errors import DataFormatError
from .matrix import Redo, Repeat
from .table import Collector, unix_time_warning


def to_arrow(table) -> tuple[pa.Table, str]:
    """``table`` as a pyarrow Table, and a name for it in messages."""
    module = type(table).__module__.split(".")[0]
    name = f"{module}.{type(table).__name__}"
    if isinstance(table, pa.Table):
        return table, name
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table]), name
    if module == "pandas" and hasattr(table, "columns"):
        return pa.Table.from_pandas(table, preserve_index=False), name
    if module == "polars" and hasattr(table, "to_arrow"):
        return table.to_arrow(), name
    if isinstance(table, Mapping):
        return pa.table({str(k): _column(v) for k, v in table.items()}), "mapping of columns"
    if hasattr(table, "__arrow_c_stream__"):  # any table speaking the Arrow C interface
        return pa.table(table), name
    raise TypeError(f"table must be a pandas or polars DataFrame, a pyarrow Table or a "
                    f"mapping of column names to arrays, got {type(table).__name__}")


def _column(values):
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"every column must be 1-D, got shape {arr.shape}")
    return arr


def read_frame(table, *, user, item, value=None, timestamp=None, duplicates: str,
               default_value: float, keep: bool = False):
    """(matrix, user ids, item ids) of a table with one row per interaction."""
    arrow, name = to_arrow(table)
    given = {"user": user, "item": item, "value": value, "timestamp": timestamp}
    for role, column in given.items():
        if column is None and role in ("value", "timestamp"):
            continue
        if column not in arrow.column_names:
            raise KeyError(f"{role}={column!r} is not a column of the {name}; "
                           f"it has {arrow.column_names}")
    collector = Collector(default_value, keep=keep, expected=arrow.num_rows)
    try:
        for batch in arrow.to_batches():
            get = {role: batch.column(c) if c is not None else None for role, c in given.items()}
            collector.add(get["user"], get["item"], get["value"], get["timestamp"])
        if collector.n == 0:
            raise DataFormatError(name, None, "no interactions")
        matrix, user_ids, item_ids = collector.finish(duplicates)
    except Redo:
        return read_frame(table, user=user, item=item, value=value, timestamp=timestamp,
                          duplicates=duplicates, default_value=default_value, keep=True)
    except Bad as e:
        raise DataFormatError(name, e.row + 1, e.reason, unit="row") from None
    except Repeat as e:
        u, i = collector.pair(e.repeat)
        raise DataFormatError(name, e.repeat + 1, f"duplicate pair (user {u!r}, item {i!r}), "
                                                  f"first on row {e.first + 1}", unit="row") \
            from None
    if value is not None:
        unix_time_warning(matrix.data, name, repr(value),
                          f"pass timestamp={value!r} and leave value out")
    return matrix, user_ids, item_ids
