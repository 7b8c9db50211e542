"""Delimited text files (CSV, TSV, MovieLens) through pyarrow's CSV reader.

pyarrow splits, unquotes and converts the columns in parallel, a block at a
time, so memory stays near the size of the numbered triples; ids stay in
Arrow until they are numbered.  Any problem sends the file to the careful
pass (:mod:`.locate`), which names the line (docs/design.md, section 6).
"""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.csv as pcsv

from . import locate
from .columns import Bad
from .errors import DataFormatError
from .layout import Layout
from .matrix import Redo, Repeat
from .table import Collector, unix_time_warning

_BLOCK = 1 << 20  # bytes per parsed block: pyarrow's default; few blocks in flight


def read_text(path, layout: Layout, *, duplicates: str, default_value: float, keep=False):
    """(matrix, user ids, item ids) of the text file at ``path``."""
    if layout.width == 0 or not (layout.header or 2 <= layout.width <= 4):
        raise _fail(path, layout, None) or DataFormatError(path, None, "no interactions")
    collector = Collector(default_value, unquote=layout.quoting, keep=keep,
                          expected=_expected_rows(path))
    cols = layout.columns
    try:
        with _open(path, layout) as reader:
            for batch in reader:
                get = {role: batch.column(_name(j)) for role, j in cols.items()}
                collector.add(get["user"], get["item"], get.get("value"), get.get("timestamp"))
        if collector.n == 0:
            raise _fail(path, layout, None) or DataFormatError(path, None, "no interactions")
        matrix, user_ids, item_ids = collector.finish(duplicates)
    except Redo:
        return read_text(path, layout, duplicates=duplicates, default_value=default_value, keep=True)
    except Bad as e:
        raise _fail(path, layout, e) from None
    except Repeat as e:
        lines = locate.lines_of(path, layout, [e.first, e.repeat])
        raise DataFormatError(path, lines[e.repeat], _repeat_reason(collector, e, lines)) \
            from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as e:
        raise _fail(path, layout, None) or DataFormatError(
            path, None, f"cannot be read ({str(e).splitlines()[0]})") from None
    if "value" in cols:
        j = cols["value"]
        unix_time_warning(matrix.data, str(path), f"column {j + 1}, {layout.names[j]!r}",
                          _unix_advice(layout), stacklevel=5)
    return matrix, user_ids, item_ids


def _repeat_reason(collector, e: Repeat, lines: dict) -> str:
    user, item = collector.pair(e.repeat)
    return (f"duplicate pair (user {user!r}, item {item!r}), first on line "
            f"{lines[e.first]}")


def _unix_advice(layout: Layout) -> str:
    j = layout.columns["value"]
    if layout.header:
        return (f"rename it in the header (to 'timestamp'), or pass value=False, "
                f"timestamp={layout.names[j]!r} (command line: --value-col none "
                f"--timestamp-col {layout.names[j]})")
    return (f"pass value=False, timestamp={j} (command line: --value-col none "
            f"--timestamp-col {j + 1}), or give the file a header line such as "
            f"user,item,timestamp")


def _fail(path, layout: Layout, bad: Bad | None) -> DataFormatError | None:
    """The error to raise: the careful pass's first bad line, else ``bad``
    placed on its line."""
    error = locate.first_error(path, layout, _suspect(layout))
    if error is not None or bad is None:
        return error
    line = locate.lines_of(path, layout, [bad.row]).get(bad.row)
    return DataFormatError(path, line, bad.reason)


def _suspect(layout: Layout):
    """Whether a piece of the file (whole lines) fails the fast reader;
    None when the layout has no user and item columns to read."""
    if not {"user", "item"} <= set(layout.columns):
        return None

    def fails(raw: bytes, first: bool) -> bool:
        collector = Collector(unquote=layout.quoting, keep=True)
        try:
            with _open(io.BytesIO(raw), layout, first) as reader:
                for batch in reader:
                    get = {role: batch.column(_name(j)) for role, j in layout.columns.items()}
                    collector.add(get["user"], get["item"], get.get("value"),
                                  get.get("timestamp"))
            if collector.n:
                collector.finish("last")
        except (Bad, pa.ArrowException, UnicodeDecodeError):
            return True
        return False

    return fails


def _expected_rows(path) -> int:
    """Lines in the file, estimated from its first 256 KiB (a little over)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(1 << 18)
    lines = head.count(b"\n") or head.count(b"\r") or 1
    return int(size * lines / max(len(head), 1) * 1.1) + 1024


def _name(j: int) -> str:
    return f"f{j}"


def _open(path, layout: Layout, first: bool = True):
    colon = layout.delimiter == "::"
    # "::" is two characters; with ":" every other column is the empty text
    # between the two colons, and the real column j is column 2j.
    step = 2 if colon else 1
    width = layout.width * step - (step - 1)
    names = [_name(j // step) if j % step == 0 else f"_sep{j}" for j in range(width)]
    chosen = {role: _name(j) for role, j in layout.columns.items()}
    types = {chosen[r]: pa.string() for r in ("user", "item")}
    types.update({chosen[r]: pa.float64() for r in ("value", "timestamp") if r in chosen})
    skip = layout.first_line if layout.header and first else 0
    read = pcsv.ReadOptions(column_names=names, skip_rows=skip, block_size=_BLOCK)
    parse = pcsv.ParseOptions(delimiter=":" if colon else layout.delimiter,
                              quote_char='"' if layout.quoting else False,
                              newlines_in_values=layout.quoting, ignore_empty_lines=True,
                              invalid_row_handler=_skip_blank)
    convert = pcsv.ConvertOptions(column_types=types, include_columns=list(types),
                                  null_values=[""], strings_can_be_null=False)
    # The system allocator hands freed blocks back at once, which keeps the
    # peak near the data kept rather than the blocks parsed.
    return pcsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert,
                         memory_pool=pa.system_memory_pool())


def _skip_blank(row) -> str:
    # Whitespace-only lines are blank, as in the careful pass; anything else
    # with the wrong number of fields is an error.
    return "skip" if row.text is not None and not row.text.strip() else "error"
