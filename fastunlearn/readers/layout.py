"""What a text file looks like before it is read: its format, delimiter,
header, and which columns hold the user, item, value and timestamp.

Everything here looks at the first few kilobytes only (docs/design.md,
section 6, "Reading interactions").
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DataFormatError

TEXT_FORMATS = ("csv", "tsv", "movielens", "movielens-dat")
ROLES = ("user", "item", "value", "timestamp")

# Column names (lower case, runs of spaces and dashes as "_") that say what
# a column holds.  Single letters are included because "u,i,r" headers are
# common in examples; they only ever choose a column in a header.
SPELLINGS = {
    "user": {"user", "users", "user_id", "userid", "uid", "u", "customer", "customer_id",
             "customerid", "client", "client_id", "visitor", "visitor_id", "member",
             "member_id", "account", "account_id", "reader", "listener", "viewer"},
    "item": {"item", "items", "item_id", "itemid", "iid", "i", "movie", "movies", "movie_id",
             "movieid", "product", "product_id", "productid", "sku", "asin", "isbn", "book",
             "book_id", "track", "track_id", "song", "song_id", "artist", "artist_id",
             "article", "article_id", "video", "video_id", "post", "post_id", "object",
             "object_id", "content", "content_id", "offer", "offer_id"},
    "value": {"value", "values", "rating", "ratings", "score", "r", "v", "count", "counts",
              "weight", "confidence", "strength", "plays", "play_count", "playcount",
              "clicks", "click_count", "quantity", "qty", "stars", "preference", "label",
              "y", "target", "implicit", "feedback"},
    "timestamp": {"timestamp", "timestamps", "time", "ts", "t", "unix_time", "unixtime",
                  "epoch", "time_stamp", "event_time", "created", "created_at"},
}

# The delimiters tried on content, in order of preference on a tie.
_CANDIDATES = (",", "\t", ";", "|")
_FORMAT_DELIMITER = {"csv": ",", "tsv": "\t", "movielens": "\t", "movielens-dat": "::"}
_SAMPLE_BYTES = 1 << 16
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


@dataclass(frozen=True)
class Layout:
    """How to read a text file.

    Attributes
    ----------
    fmt : str
        One of TEXT_FORMATS.
    delimiter : str
        One character, or ``"::"`` for MovieLens 1M.
    quoting : bool
        Whether double quotes delimit fields.
    header : bool
        Whether the first non-blank line holds column names.
    width : int
        Fields on the first non-blank line.
    first_line : int
        1-based physical line of the first non-blank line (the header, if
        there is one).
    names : tuple of str
        Column names: the header's, or ``column 1``, ``column 2``, ...
    columns : dict
        Role (``user``, ``item``, ``value``, ``timestamp``) -> 0-based field
        index; ``value`` and ``timestamp`` may be missing.
    """

    fmt: str
    delimiter: str
    quoting: bool
    header: bool
    width: int
    first_line: int
    names: tuple
    columns: dict


def check_columns(**columns) -> dict:
    """Validate column choices (name, 0-based position, False or None)."""
    for role, c in columns.items():
        optional = role in ("value", "timestamp")
        ok = c is None or isinstance(c, str) or (c is False and optional) or (
            isinstance(c, int) and not isinstance(c, bool) and c >= 0)
        if not ok:
            raise ValueError(f"{role} must be a column name, a 0-based position"
                             f"{', False' if optional else ''} or None, got {c!r}")
    return columns


def guess_format(path) -> str:
    """The format ``read_interactions(fmt="auto")`` chooses from the name."""
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir() or suffix in (".parquet", ".pq", ".parq"):
        return "parquet"
    if suffix == ".npz":
        return "npz"
    if suffix == ".dat":
        return "movielens-dat"
    if p.name.lower() == "u.data" or suffix == ".data":
        return "movielens"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    return "csv"


def is_number(s: str) -> bool:
    """Whether ``s`` (stripped) is written as a decimal number (or nan/inf)."""
    s = s.strip()
    return bool(_NUMBER.fullmatch(s) or _NON_FINITE.fullmatch(s))


def normalise(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def sample_lines(path, fmt: str, auto: bool) -> tuple[list, int, str, bool]:
    """The first non-blank records of the file (split), the 1-based line of
    the first one, the delimiter and whether quotes are honoured."""
    with open(path, "rb") as f:
        raw = f.read(_SAMPLE_BYTES)
        complete = not f.read(1)
    text = raw.decode("utf-8-sig", errors="replace")
    if not complete:  # the last line may be cut short
        text = text[: max(text.rfind("\n"), text.rfind("\r"), 0)]
    physical = re.split(r"\r\n|\r|\n", text)
    first = next((j for j, ln in enumerate(physical) if ln.strip()), 0) + 1
    text = "\n".join(physical[first - 1:first + 400])
    quoting = fmt in ("csv", "tsv")
    delimiter = _FORMAT_DELIMITER[fmt]
    if auto and quoting:
        delimiter = _detect_delimiter(text, delimiter)
    return _split(text, delimiter, quoting), first, delimiter, quoting


def _split(text: str, delimiter: str, quoting: bool) -> list:
    """The first (up to 50) non-blank records of ``text``."""
    if delimiter != "::" and quoting:
        try:
            rows = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True,
                              strict=True)
            return [r for r in itertools.islice(rows, 200) if r and "".join(r).strip()][:50]
        except csv.Error:
            pass
    return [ln.split(delimiter) for ln in text.split("\n") if ln.strip()][:50]


def _detect_delimiter(text: str, preferred: str) -> str:
    """The candidate that splits every sampled record into the same number
    (2 or more) of fields; the format's own delimiter wins ties."""
    def consistent(d):
        counts = {len(r) for r in _split(text, d, True)}
        return len(counts) == 1 and counts.pop() >= 2

    if not text.strip() or consistent(preferred):
        return preferred
    for d in _CANDIDATES:
        if d != preferred and consistent(d):
            return d
    return preferred


def _looks_like_header(first: list, rows: list) -> bool:
    """Whether the first record names columns (docs/design.md, section 6)."""
    cells = [c.strip() for c in first]
    if len(cells) >= 3:
        return not is_number(cells[2])
    if any(is_number(c) for c in cells):
        return False
    known = SPELLINGS["user"] | SPELLINGS["item"]
    if all(normalise(c) in known for c in cells):
        return True
    # Names over a column of integers; without that evidence a two-column
    # first line of strings is data, since dropping it would lose a pair.
    return any(rows and all(re.fullmatch(r"-?[0-9]+", r[j].strip()) for r in rows
                            if len(r) > j) for j in range(len(cells)))


def choose(path, fmt: str, *, header, columns: dict, auto: bool) -> Layout:
    """Sniff the file at ``path`` and decide how to read it.

    Parameters
    ----------
    columns : dict
        Role -> None (choose), str (a header name), int (0-based position)
        or False (no such column; value and timestamp only).

    Raises
    ------
    DataFormatError
        For a header that names no user or item column (the message lists
        the columns found), or a name that is not in the header.
    """
    rows, first_line, delimiter, quoting = sample_lines(path, fmt, auto)
    if not rows:  # width 0: nothing to read
        return Layout(fmt, delimiter, quoting, False, 0, 1, (), {})
    first = rows[0]
    width = len(first)
    named = {role: c for role, c in columns.items() if isinstance(c, str)}
    if header is None:
        cells = {c.strip() for c in first}
        header = _looks_like_header(first, rows[1:]) or any(n in cells for n in named.values())
    if header:
        names = tuple(c.strip() for c in first)
        chosen = by_name(path, names, columns)
    else:
        if named:
            raise DataFormatError(path, None, f"columns named {sorted(named.values())} need a "
                                              "header line, and this file has none")
        names = tuple(f"column {j + 1}" for j in range(width))
        chosen = _by_position(columns, width)
    outside = {r: j for r, j in chosen.items() if not 0 <= j < width}
    if outside:
        role, j = next(iter(outside.items()))
        raise DataFormatError(path, None, f"the {role} column is number {j + 1} (1-based), but "
                                          f"lines have {width} fields")
    return Layout(fmt, delimiter, quoting, bool(header), width, first_line, names, chosen)


def _by_position(columns: dict, width: int) -> dict:
    chosen = {}
    for j, role in enumerate(ROLES):
        given = columns.get(role)
        if given is False:
            continue
        if isinstance(given, int):
            chosen[role] = given
        elif j < width and j not in chosen.values():
            chosen[role] = j
    return chosen


def by_name(path, names: tuple, columns: dict) -> dict:
    keys = [normalise(n) for n in names]
    chosen = {}
    for role in ROLES:
        given = columns.get(role)
        if given is False:
            continue
        if isinstance(given, int):
            chosen[role] = given
        elif isinstance(given, str):
            if given.strip() not in names:
                raise DataFormatError(path, None, f"no column named {given!r} for the {role}; "
                                                  f"the header has {_listing(names)}")
            chosen[role] = names.index(given.strip())
        else:
            hits = [j for j, k in enumerate(keys) if k in SPELLINGS[role]
                    and j not in chosen.values()]
            if hits:
                chosen[role] = hits[0]
    missing = [r for r in ("user", "item") if r not in chosen]
    if missing:
        raise DataFormatError(
            path, None,
            f"the header names no {' and no '.join(missing)} column (found {_listing(names)}); "
            f"name them in the header (e.g. user,item,rating) or choose them with "
            f"{', '.join(f'{r}=' for r in missing)} (command line: "
            f"{', '.join(f'--{r}-col' for r in missing)})")
    return chosen


def _listing(names) -> str:
    return ", ".join(repr(n) for n in names)


def unused_columns_warning(path, layout: Layout, columns: dict) -> None:
    """Warn when a header has columns this read ignores and no value column
    was found among them: one of them may be the values under another name."""
    import warnings

    from .errors import DataWarning

    if not layout.header or "value" in layout.columns or columns.get("value") is False:
        return
    unused = [n for j, n in enumerate(layout.names) if j not in layout.columns.values()]
    if unused:
        warnings.warn(
            f"{path}: no value column recognised, so every interaction gets the default "
            f"value; unused columns: {_listing(unused)}. To use one "
            f"as the values pass value=NAME (command line: --value-col NAME), or "
            f"value=False (--value-col none) to silence this", DataWarning, stacklevel=4)
