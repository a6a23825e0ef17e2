"""The interface every data source meets, and what is checked through it alone.

A source is a table of numbers: feature columns and a target, with names, a row count when it
is known, and its rows in blocks. Preparation (split, standardization, cast, this process's
share), the finite-value check and the data's fingerprint read a source only through this
interface, so a new format is one module that returns a `Source`.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import resource
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import numpy as np

from lrtrain.blocks import BLOCK_ROWS
from lrtrain.design import Levels
from lrtrain.errors import DataError
from lrtrain.parallel import SINGLE, Shard, block

HASH_ROWS = 1 << 16  # rows per block of the data's fingerprint


class Source(Protocol):
    """Rows of (features, target) as float32 or float64."""

    @property
    def features(self) -> list[str]: ...
    @property
    def target(self) -> str: ...
    @property
    def origin(self) -> str: ...  # where the rows come from, for messages and provenance
    @property
    def rows(self) -> int | None: ...  # None: not known before the rows are read
    @property
    def levels(self) -> tuple[Levels, ...]: ...  # the categorical columns' levels (their indicators are features)
    @property
    def dropped(self) -> Dropped | None: ...  # data.missing: drop: the rows left out, None when nothing was

    def line(self, row: int) -> int | None:
        """The file line of a row this process holds (a text file's), for a message; None: say "row"."""
        ...

    def blocks(
        self, start: int = 0, stop: int | None = None, size: int | None = BLOCK_ROWS
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(x, y) of the rows start..stop in blocks of `size` rows; size None: one block, a view where the
        rows lie in memory or in a mapped file (no copy is made of them)."""
        ...


@dataclass(frozen=True)
class Dropped:
    """The rows data.missing: drop left out: how many, and how many had a missing cell in each column."""

    rows: int
    columns: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": dict(self.columns)}


@dataclass(frozen=True)
class Table:
    """A source whose rows are arrays: in memory, or a memory-mapped file that is read only where asked."""

    x: np.ndarray  # (N, D)
    y: np.ndarray  # (N,)
    features: list[str]
    target: str
    origin: str
    first_line: int | None = None  # the file line of row 0, when each row is one line
    levels: tuple[Levels, ...] = ()
    dropped: Dropped | None = None
    lines: Callable[[int], int] | None = None  # the file line of x[i], given i (counted when a message asks)

    @property
    def rows(self) -> int:
        return len(self.y)

    def line(self, row: int) -> int | None:
        if self.lines is not None:
            return self.lines(row)
        return None if self.first_line is None else self.first_line + row

    def blocks(
        self, start: int = 0, stop: int | None = None, size: int | None = BLOCK_ROWS
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        stop = len(self.y) if stop is None else min(stop, len(self.y))
        if size is None:
            yield self.x[start:stop], self.y[start:stop]
            return
        for at in range(start, stop, size):
            end = min(at + size, stop)
            yield self.x[at:end], self.y[at:end]


def row_count(source: Source) -> int:
    """The source's rows, counted by reading them when the source does not know."""
    return source.rows if source.rows is not None else sum(len(y) for _, y in source.blocks())


def checked(source: Source, group: Shard = SINGLE) -> Source:
    """Reject a NaN or infinity, naming the first (in x, then in y; by row, then column).

    Under torchrun each rank reads only its block of the rows, and one all_reduce gathers every
    rank's first find (with its file line, which only the rank that read the row may know), so
    every rank reports the same one, the one a single process would.
    """
    n = row_count(source)
    if n == 0:
        raise DataError(f"{source.origin} has zero rows. Training needs at least one row.")
    mine = block(n, group.rank, group.world)
    found = np.array([np.inf, 0.0, 0.0, -1.0])  # (position in x-then-y order, column, value, line); inf: none
    for which in (0, 1):
        at = mine.start
        for x, y in source.blocks(mine.start, mine.stop):
            part = x if which == 0 else y[:, None]
            bad = ~np.isfinite(part)
            if bad.any():
                row, col = (int(i) for i in np.argwhere(bad)[0])
                line = source.line(at + row)
                found = np.array([which * n + at + row, col, part[row, col], -1.0 if line is None else line])
                break
            at += len(y)
        if np.isfinite(found[0]):
            break
    finds = group.gather(found)  # every rank's first find, one row each
    position, col, value, line = finds[int(np.argmin(finds[:, 0]))]
    if np.isfinite(position):
        which, row = divmod(int(position), n)
        name = (source.features, [source.target])[which][int(col)]
        place = f"line {int(line)}" if line >= 0 else f"row {row}"
        raise DataError(
            f"{source.origin}, {place}, column {name!r}: the value is {value}, not a finite number. "
            "Fix or drop those rows."
        )
    return source


def fingerprint(source: Source, group: Shard = SINGLE) -> str:
    """A SHA-256 fingerprint of the values as float64.

    It is the hash of the shape and of the hashes of blocks of HASH_ROWS rows (each: the block's
    x, row-major, then its y), so under torchrun (`group`, a collective then) each rank hashes
    only its share of the blocks and one all_reduce gathers the block hashes; the result is the
    same for any number of processes. A memory-mapped file is read block by block.
    """
    n = row_count(source)
    count = -(-n // HASH_ROWS)
    mine = block(count, group.rank, group.world)
    table = np.zeros((count, 32))  # each block's digest, a byte per number (exact in an all_reduce)
    for b in range(mine.start, mine.stop):
        start, stop = b * HASH_ROWS, min((b + 1) * HASH_ROWS, n)
        digest = hashlib.sha256()
        parts = list(source.blocks(start, stop))
        for part in [x for x, _ in parts] + [y for _, y in parts]:
            digest.update(np.ascontiguousarray(part, dtype=np.float64).tobytes())
        table[b] = np.frombuffer(digest.digest(), dtype=np.uint8)
    group.reduce(table)  # every rank's block digests (a single process: its own, all of them)
    whole = hashlib.sha256(f"{n}x{len(source.features)}:".encode())
    whole.update(table.astype(np.uint8).tobytes())
    return whole.hexdigest()


def default_names(d: int) -> list[str]:
    return ["x"] if d == 1 else [f"x{i}" for i in range(d)]


def open_checked(path: Path, what: str) -> None:
    """A data file that exists, is a file and is not empty; else an error that says what to do."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DataError(
            f"data file {path} does not exist (data.path). Check the path: a relative path is relative to "
            f"the config file. `lrtrain data make {path.name}` writes a synthetic {what} file to try things."
        ) from None
    except OSError as exc:  # a loop of symbolic links, a folder without permission on the way
        raise DataError(
            f"data file {path} cannot be opened (data.path): {exc.strerror or exc}. Point data.path at a {what} file."
        ) from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"data file {path} is a directory (data.path). Point data.path at a {what} file.")
    if info.st_size == 0:
        raise DataError(f"data file {path} is empty. It needs a header line and at least one data row.")


def available_memory() -> int:
    """Bytes this process can still take: the system's available memory (Linux's MemAvailable, else all of
    it), less where `ulimit -v` (RLIMIT_AS) leaves less room."""
    available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(OSError, ValueError, KeyError):
        with open("/proc/meminfo", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        available = int(fields["MemAvailable"].split()[0]) * 1024
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        used = 0
        with contextlib.suppress(OSError, ValueError, KeyError):
            with open("/proc/self/status", encoding="ascii") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
            used = int(fields["VmSize"].split()[0]) * 1024
        available = min(available, max(soft - used, 0))
    return available


def gigabytes(size: int) -> str:
    return f"{size / 2**30:.3g} GB"


def scratch_mapping(
    fill: Callable[[IO[bytes]], tuple[int, ...]], dtype: np.dtype[Any], order: Literal["C", "F"] = "C"
) -> np.ndarray:
    """An array that `fill` writes (returning its shape) into a temporary file, memory-mapped read-only.

    The file has no name from the start (tempfile.TemporaryFile, in $TMPDIR): the mapping keeps
    its pages, and nothing is left on disk however the process ends.
    """
    with tempfile.TemporaryFile(prefix="lrtrain-") as handle:
        shape = fill(handle)
        if math.prod(shape) == 0:
            return np.zeros(shape, dtype=dtype)
        handle.flush()
        mapped: np.ndarray = np.memmap(handle, dtype=dtype, mode="r", shape=shape, order=order)
        return mapped
