"""Where given ids stand in a text file: the first line of each, for errors
found after reading (an id the model does not know, or has forgotten).

The readers keep no line numbers (docs/design.md, section 6); this pass
reads the file again, record by record, only when such an error is to be
reported.
"""
from __future__ import annotations

from .layout import choose
from .locate import _records

TEXT = ("csv", "tsv", "movielens", "movielens-dat")


def _canonical(text: str) -> str:
    """An id as the id maps match it: stripped, integers without leading
    zeros or sign noise (``"007"`` stays, as the readers keep it a string)."""
    text = text.strip().strip('"').strip()
    if text.lstrip("-").isdigit() and str(int(text)) == text:
        return str(int(text))
    return text


def first_lines(path, fmt: str, role: str, ids, *, columns: dict, auto: bool) -> dict:
    """``{id: 1-based line}`` of the first record whose ``role`` column
    (``"user"`` or ``"item"``) holds each of ``ids``; ids not found are
    left out, and so is every id of a file that is not text (``fmt`` not
    in :data:`TEXT`).  ``columns`` and ``auto`` as the readers take them."""
    return _first(path, fmt, (role,), [(i,) for i in ids], columns, auto,
                  lambda found: {key[0]: line for key, line in found.items()})


def pair_lines(path, fmt: str, pairs, *, columns: dict, auto: bool) -> dict:
    """``{(user, item): 1-based line}`` of the first record of each of
    ``pairs``, as :func:`first_lines`."""
    return _first(path, fmt, ("user", "item"), [tuple(p) for p in pairs], columns, auto,
                  lambda found: found)


def _first(path, fmt, roles, keys, columns, auto, shape):
    if fmt not in TEXT:
        return {}
    layout = choose(path, fmt, header=None, columns=columns, auto=auto)
    index = [layout.columns[role] for role in roles]
    wanted = {tuple(_canonical(str(k)) for k in key): key for key in keys}
    out = {}
    for n, (line, fields) in enumerate(_records(path, layout)):
        if (n == 0 and layout.header) or max(index) >= len(fields):
            continue
        key = tuple(_canonical(fields[i]) for i in index)
        if key in wanted and wanted[key] not in out:
            out[wanted[key]] = line
            if len(out) == len(wanted):
                break
    return shape(out)
