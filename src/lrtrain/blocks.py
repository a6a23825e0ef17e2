"""Passes over rows in blocks, so that no pass holds N×D temporaries and a memory-mapped file is read
only where it is needed.

The kernel counts the pages of a mapped file that a process has read as its own memory until they
are unmapped, so a pass over a file-backed table larger than memory would end holding all of it:
each pass here releases a block's pages (madvise MADV_DONTNEED: the file stays in the page cache,
a later read maps them again) once it has moved on to the next.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Callable, Iterator

import numpy as np
from numpy.lib.array_utils import byte_bounds

BLOCK_ROWS = 8192  # rows per block when a pass over the data must not hold it all in memory


def passing(
    x: np.ndarray, y: np.ndarray, start: int = 0, stop: int | None = None, size: int = BLOCK_ROWS
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(x, y) of the rows start..stop in blocks of `size`; a block of a read-only mapped file leaves this
    process's memory when the next one is asked for."""
    stop = len(y) if stop is None else min(stop, len(y))
    for at in range(start, stop, size):
        end = min(at + size, stop)
        yield x[at:end], y[at:end]
        release(x[at:end])
        release(y[at:end])


def release(part: np.ndarray) -> None:
    """Unmap the whole pages of `part` from this process when it is a view of a file mapped read-only
    (np.memmap, mode 'r'); anything else (memory of its own, a copy-on-write mapping) is left alone."""
    if not mapped(part) or part.size == 0 or _madvise is None:
        return
    low, high = byte_bounds(part)
    start, stop = -(-low // mmap.PAGESIZE) * mmap.PAGESIZE, high // mmap.PAGESIZE * mmap.PAGESIZE
    if stop > start:
        _madvise(ctypes.c_void_p(start), ctypes.c_size_t(stop - start), getattr(mmap, "MADV_DONTNEED", 4))


def mapped(a: np.ndarray) -> bool:
    """Whether `a` is a view of a file mapped read-only (np.memmap, mode 'r'): a pass over it in one piece
    would map all of it into this process."""
    owner: np.ndarray | None = a
    while owner is not None and not isinstance(owner, np.memmap):
        owner = owner.base if isinstance(owner.base, np.ndarray) else None
    return owner is not None and owner.mode == "r"


def _libc_madvise() -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):  # not a POSIX C library: pages stay mapped, as without this
        return None
    return function


_madvise = _libc_madvise() if hasattr(mmap, "MADV_DONTNEED") else None


def row_blocks(a: np.ndarray, rows: slice | np.ndarray = slice(None)) -> Iterator[tuple[slice, np.ndarray]]:
    """a[rows] block by block, each with its place in a[rows]: the selection is never copied whole, and a
    memory-mapped file is read only at the selected rows."""
    source, index = (a[rows], None) if isinstance(rows, slice) else (a, rows)
    for start in range(0, len(source) if index is None else len(index), BLOCK_ROWS):
        place = slice(start, start + BLOCK_ROWS)
        part = source[place] if index is None else a[index[place]]
        yield place, part
        release(part)


def blocked_sum(a: np.ndarray, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
    """Column sums of a[rows], float64."""
    total = np.zeros(a.shape[1])
    for _, part in row_blocks(a, rows):
        total += np.sum(part, axis=0, dtype=np.float64)
    return total


def largest_magnitude(a: np.ndarray) -> float:
    """max |a|, block by block."""
    return float(max((np.max(np.abs(part)) for _, part in row_blocks(a)), default=0.0))
