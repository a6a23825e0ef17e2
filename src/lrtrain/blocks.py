"""Passes over rows in blocks, so that no pass holds N×D temporaries and a memory-mapped file is read
only where it is needed."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

BLOCK_ROWS = 8192  # rows per block when a pass over the data must not hold it all in memory


def row_blocks(a: np.ndarray, rows: slice | np.ndarray = slice(None)) -> Iterator[tuple[slice, np.ndarray]]:
    """a[rows] block by block, each with its place in a[rows]: the selection is never copied whole, and a
    memory-mapped file is read only at the selected rows."""
    source, index = (a[rows], None) if isinstance(rows, slice) else (a, rows)
    for start in range(0, len(source) if index is None else len(index), BLOCK_ROWS):
        place = slice(start, start + BLOCK_ROWS)
        yield place, source[place] if index is None else a[index[place]]


def blocked_sum(a: np.ndarray, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
    """Column sums of a[rows], float64."""
    total = np.zeros(a.shape[1])
    for _, part in row_blocks(a, rows):
        total += np.sum(part, axis=0, dtype=np.float64)
    return total


def largest_magnitude(a: np.ndarray) -> float:
    """max |a|, block by block."""
    return float(max((np.max(np.abs(part)) for _, part in row_blocks(a)), default=0.0))
