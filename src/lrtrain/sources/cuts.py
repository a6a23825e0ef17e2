"""Where a CSV's rows start and end, in bytes: at line ends outside quoted cells (RFC 4180: a cell is quoted
whole and a quote inside it doubled, so a line end ends a row when the quotes before it pair up).

The range reader cuts its ranges with `row_end`; under torchrun each rank's share of the file
starts at `line_start` of its span and, when the quotes counted before it say that line start
lies inside a quoted cell, at `row_start`.
"""

from __future__ import annotations

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


def row_end(data: bytearray, end: int) -> int:
    """Where the last whole row of data[:end] ends (just after its line end), 0 when no row ends there.

    The data begins at a row's start, outside quotes, so a line end ends a row when the quote
    characters before it are even in number (RFC 4180: a cell is quoted whole, a quote inside
    it doubled); an odd number means the line end lies inside a quoted cell, part of its text.
    """
    cut = data.rfind(b"\n", 0, end)
    if cut < 0 or data.find(b'"', 0, end) < 0:
        return cut + 1
    total = data.count(b'"', 0, end)
    after, hi = 0, end  # the quotes after the line end at `cut`
    while cut >= 0:
        after += data.count(b'"', cut, hi)
        if (total - after) % 2 == 0:
            return cut + 1
        hi, cut = cut, data.rfind(b"\n", 0, cut)
    return 0
