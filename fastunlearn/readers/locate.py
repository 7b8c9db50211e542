"""The careful pass over a text file: which line is at fault.

The fast reader (:mod:`.text`) works on whole columns and does not know
line numbers.  When it finds anything wrong, this pass reads the file again
record by record, in file order, and reports the first bad line with what is
wrong on it; it also maps data rows to their lines for the errors found only
after parsing (repeated pairs).  Where the file can be cut at newlines, the
fast reader first checks it piece by piece and only the first failing piece
is read line by line (docs/design.md, section 6).
"""

from __future__ import annotations

import codecs
import csv
import io
import math

import numpy as np

from .errors import DataFormatError
from .layout import Layout, is_number

_F32_MAX = float(np.finfo(np.float32).max)
_PIECE = 1 << 22  # bytes of file checked at a time by the targeted pass


def first_error(path, layout: Layout, suspect=None) -> DataFormatError | None:
    """The first problem in the file, in file order, or None.

    Parameters
    ----------
    suspect : callable or None
        ``suspect(raw_bytes, first)`` says whether a piece of the file (whole
        lines; ``first`` for the piece holding the file's first line) fails
        the fast reader.  Given one, a file that can be cut at any newline
        (no quoted fields, no lone carriage returns) is checked piece by
        piece and only the first failing piece is read line by line.
    """
    error = _utf8_error(path)
    if error is not None:
        return error
    try:
        found = False if suspect is None else _targeted(path, layout, suspect)
        if found is not False:
            return found
        return _scan(path, layout, _records(path, layout), True)
    except _Malformed as e:
        return DataFormatError(path, e.line, e.reason)


def _targeted(path, layout, suspect):
    """The first error, found piece by piece; False when the file cannot be
    cut safely or no piece shows the error."""
    line = 1
    with open(path, "rb") as f:
        first = True
        while True:
            raw = f.read(_PIECE)
            if not raw:
                return False
            raw += f.readline()  # whole lines only
            if (layout.quoting and b'"' in raw) or raw.count(b"\r") != raw.count(b"\r\n"):
                return False
            if suspect(raw, first):
                text = raw.decode("utf-8-sig" if first else "utf-8")
                error = _scan(path, layout, _lines(io.StringIO(text, newline=""), layout, line),
                              first)
                if error is not None:
                    return error
            line += raw.count(b"\n")
            first = False


def _scan(path, layout, records, first_piece) -> DataFormatError | None:
    """Check ``records`` in order; ``first_piece`` when they start the file."""
    width, first = (None, None) if first_piece else (layout.width, layout.first_line)
    for index, (line, fields) in enumerate(records):
        if first_piece and index == 0:
            width, first = len(fields), line
            if not layout.header and not 2 <= width <= 4:
                return DataFormatError(path, line, f"expected 2 to 4 fields, got {width}")
            if layout.header:
                continue
        if len(fields) != width:
            n = len(fields)
            if 2 <= n <= 4 or width > 4:
                reason = f"expected {width} fields (as on line {first}), got {n}"
            else:
                reason = f"expected 2 to 4 fields, got {n}"
            return DataFormatError(path, line, reason)
        reason = _field_error(fields, layout.columns)
        if reason is not None:
            return DataFormatError(path, line, reason)
    return None


def lines_of(path, layout: Layout, rows) -> dict:
    """{data row index (0-based, header excluded): 1-based line} for ``rows``."""
    wanted = set(int(r) for r in rows)
    out = {}
    skip = 1 if layout.header else 0
    for index, (line, _) in enumerate(_records(path, layout)):
        row = index - skip
        if row in wanted:
            out[row] = line
            if len(out) == len(wanted):
                break
    return out


def _field_error(fields: list, columns: dict) -> str | None:
    """What is wrong with one record's chosen fields (leftmost column first)."""
    for role, j in sorted(columns.items(), key=lambda kv: kv[1]):
        s = fields[j].strip()
        if role in ("user", "item"):
            if not s:
                return f"empty {role} id"
            continue
        what = role
        if not is_number(s):
            return f"{what} {s!r} is not a number"
        x = float(s)
        if role == "value" and not (math.isfinite(x) and abs(x) <= _F32_MAX):
            return f"value {s!r} is not a finite float32 number"
        if not math.isfinite(x):
            return f"{what} {s!r} is not a finite number"
    return None


class _Malformed(Exception):
    def __init__(self, line, reason):
        super().__init__(reason)
        self.line, self.reason = line, reason


def _utf8_error(path) -> DataFormatError | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                at = max(e.start - pending, 0)
                return DataFormatError(path, line + chunk.count(b"\n", 0, at),
                                       f"not valid UTF-8 ({e.reason})")
            if not chunk:
                return None
            line += chunk.count(b"\n")


def _records(path, layout: Layout):
    """(1-based start line, fields) of each non-blank record of the file."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        yield from _lines(f, layout, 1)


def _lines(f, layout: Layout, line: int):
    """(start line, fields) of each non-blank record of text stream ``f``,
    whose first line is number ``line``."""
    if layout.delimiter == "::" or not layout.quoting and len(layout.delimiter) > 1:
        for n, text in enumerate(f, line):
            text = text.rstrip("\r\n")
            if text.strip():
                yield n, text.split(layout.delimiter)
        return
    reader = csv.reader(f, delimiter=layout.delimiter, skipinitialspace=True, strict=True,
                        quoting=csv.QUOTE_MINIMAL if layout.quoting else csv.QUOTE_NONE)
    prev = 0
    try:
        for row in reader:
            start, prev = prev + 1, reader.line_num
            # Blank: nothing but whitespace (for a tab file, tabs too).
            if not row or (not row[0].strip() and (
                    len(row) == 1 or (layout.delimiter.isspace() and not "".join(row).strip()))):
                continue
            yield start + line - 1, row
    except csv.Error as e:
        raise _Malformed(prev + line, f"malformed quoted field ({e})") from None
