"""Where a CSV's rows start and end, in bytes: at line ends outside quoted cells (RFC 4180: a cell is quoted
whole and a quote inside it doubled, so a line end ends a row when the quotes before it pair up).

The range reader cuts its ranges with `row_end`; under torchrun each rank's share of the file
starts at `line_start` of its span and, when the quotes counted before it say that line start
lies inside a quoted cell, at `row_start`.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

CUT_BYTES = 1 << 12  # the line end that cuts a share is looked for in pieces of this size
LINE_BYTES = 1 << 20  # pyarrow parses a block of this size at a time (ReadOptions.block_size): no row is longer


def line_start(path: Path, at: int, skip: int, size: int) -> int:
    """The first line start at or after byte `at`: just after the first line end from byte at - 1 on."""
    if at <= skip or at >= size:
        return min(max(at, skip), size)
    base = at - 1  # the byte each piece begins at
    with path.open("rb") as handle:
        handle.seek(base)
        while piece := handle.read(CUT_BYTES):
            end = piece.find(b"\n")
            if end >= 0:
                return base + end + 1
            base += len(piece)
    return size


def row_start(path: Path, at: int) -> int:
    """The first row start after byte `at`, which lies inside a quoted cell: just after the first line end with an
    even number of quote characters from `at` on (the one that closes the cell, then pairs). When none comes within
    LINE_BYTES (a parser's block, which a row cannot outgrow), or before the end, the quotes do not pair up (a
    quote inside an unquoted cell, which pyarrow reads as text): `at`, a line start, is a row start then."""
    inside, start = True, at
    with path.open("rb") as handle:
        handle.seek(at)
        while (piece := handle.read(CUT_BYTES)) and at - start <= LINE_BYTES:
            seen = 0
            while (end := piece.find(b"\n", seen)) >= 0:
                inside ^= piece.count(b'"', seen, end) % 2 == 1
                if not inside:
                    return at + end + 1
                seen = end + 1
            inside ^= piece.count(b'"', seen) % 2 == 1
            at += len(piece)
    return start


def row_end(data: bytearray, end: int, delimiter: str = ",") -> int:
    """Where the last whole row of data[:end] ends (just after its line end), 0 when no row ends there.

    The data begins at a row's start. Rows end where pyarrow ends them: at a line end outside a
    quoted cell, where a quote opens a quoted cell only at a cell's start, runs to the quote that
    closes it (a doubled quote inside is text) and may hold line ends; a quote elsewhere (12", an
    inch) is text. Without a quote every line end ends a row (a search, at memory speed). With
    quotes that pair up as RFC 4180 has them, a line end ends a row when the quotes before it are
    even in number (counted); a quote that opens a pair away from a cell's start is text, whose
    count would turn every cut after it over, and then the rows are matched as pyarrow reads them
    (a regular expression, 4 to 8 ms a megabyte).
    """
    return cut_rows(data, end, delimiter)[0]


def cut_rows(data: bytearray, end: int, delimiter: str = ",", judge: bool = False) -> tuple[int, bool]:
    """`row_end`, and (with `judge`: only the shares under torchrun ask) whether counting the quotes of data[:end]
    tells the row starts (see `countable`)."""
    if data.find(b'"', 0, end) < 0:
        return data.rfind(b"\n", 0, end) + 1, True
    if _paired(data, end, delimiter):
        return _even_end(data, end), True
    cut = _matched(data, end, delimiter)
    return cut, not judge or _flat(data, cut, delimiter)


def countable(data: bytearray, end: int, delimiter: str = ",") -> bool:
    """Whether counting the quotes of data[:end] (from a row's start) tells which line starts are row starts, as
    under torchrun the shares' cuts ask: the quotes pair up as RFC 4180 has them, every pair opening at a cell's
    start; or, where a quote inside an unquoted cell (12", text to pyarrow) throws the count off, no line end
    lies inside a quoted cell, so that every line start is a row start whatever the count says."""
    if data.find(b'"', 0, end) < 0 or _paired(data, end, delimiter):
        return True
    whole = _matched(data, end, delimiter)
    return data.find(b"\n", whole, end) < 0 and _flat(data, whole, delimiter)


def _matched(data: bytearray, end: int, delimiter: str, flat: bool = False) -> int:
    """Just after the last of the whole rows `_rows` matches from the start of data[:end]; 0 when none. (A match
    that did not end just after a line end would be a regular-expression engine's fault: none is taken then.)"""
    match = _rows(delimiter, flat).match(data, 0, end)
    cut = match.end() if match else 0
    return cut if cut == 0 or data[cut - 1] == ord("\n") else 0


def _flat(data: bytearray, cut: int, delimiter: str) -> bool:
    """Whether the whole rows of data[:cut] hold no line end inside a quoted cell."""
    return _matched(data, cut, delimiter, flat=True) == cut


def _paired(data: bytearray, end: int, delimiter: str) -> bool:
    """Whether every quote that a count would take to open a quoted cell (the 1st, 3rd, ...) stands at a cell's
    start (the data's, or after the delimiter or a line end) or right after the one before it (a doubled quote)."""
    import numpy as np

    text = np.frombuffer(data, dtype=np.uint8, count=end)
    quotes = np.flatnonzero(text == ord('"'))
    opening, closing = quotes[0::2], quotes[1::2]
    before = text[np.maximum(opening - 1, 0)]
    doubled = np.zeros(len(opening), dtype=bool)
    doubled[1:] = closing[: len(opening) - 1] == opening[1:] - 1
    at_start = (before == ord(delimiter)) | (before == ord("\n")) | doubled
    at_start[0] |= opening[0] == 0
    return bool(at_start.all())


def _even_end(data: bytearray, end: int) -> int:
    """Just after the last line end of data[:end] with an even number of quotes before it; 0 when none has."""
    cut = data.rfind(b"\n", 0, end)
    total = data.count(b'"', 0, end)
    after, hi = 0, end  # the quotes after the line end at `cut`
    while cut >= 0:
        after += data.count(b'"', cut, hi)
        if (total - after) % 2 == 0:
            return cut + 1
        hi, cut = cut, data.rfind(b"\n", 0, cut)
    return 0


@functools.cache
def _rows(delimiter: str, flat: bool = False) -> re.Pattern[bytes]:
    """Whole rows from the start, as pyarrow parses them (see `row_end`); `flat`: rows whose quoted cells hold no
    line end. Atomic throughout, so a row that does not end within the data is given up at once, never
    backtracked into."""
    d = re.escape(delimiter.encode())
    inside = rb'[^"\n]' if flat else rb'[^"]'
    # atomic groups (?>...), which every Python 3.11 keeps, rather than possessive quantifiers (3.11.5 mended them)
    cell = rb'(?:"(?>(?:' + inside + rb'|"")*)"(?>[^' + d + rb"\n]*)|[^" + d + rb'\n"](?>[^' + d + rb"\n]*)|)"
    return re.compile(rb"(?>(?:" + cell + rb"(?>(?:" + d + cell + rb")*)\n)*)")
