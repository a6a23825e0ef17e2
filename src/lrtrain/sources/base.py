"""The interface every data source meets, and what is checked through it alone.

A source is a table of numbers: feature columns and a target, with names, a row count when it
is known, and its rows in blocks. Preparation (split, standardization, cast, this process's
share), the finite-value check and the data's fingerprint read a source only through this
interface, so a new format is one module that returns a `Source`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import mmap
import os
import resource
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol

import numpy as np

from lrtrain.blocks import BLOCK_ROWS, passing
from lrtrain.design import Levels
from lrtrain.errors import DataError, ScratchError
from lrtrain.moments import Moments
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
    def held(self) -> tuple[int, int] | None: ...  # the rows this process read, when only its share (torchrun)
    @property
    def levels(self) -> tuple[Levels, ...]: ...  # the categorical columns' levels (their indicators are features)
    @property
    def dropped(self) -> Dropped | None: ...  # data.missing: drop: the rows left out, None when nothing was
    @property
    def finite(self) -> bool: ...  # every value this process holds is known to be finite (no check pass needed)
    @property
    def moments(self) -> Moments | None: ...  # the moments of the rows this process holds, when gathered as read

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
    """A source whose rows are arrays: in memory, or a memory-mapped file that is read only where asked.

    Under torchrun a reader that read only this process's share of a file sets `total` (every
    share's rows together) and `offset` (the row of the whole table that x[0] is); rows are then
    still asked for by their place in the whole table, and only those of the share can be.
    """

    x: np.ndarray  # (N, D), or the share's rows
    y: np.ndarray  # (N,)
    features: list[str]
    target: str
    origin: str
    first_line: int | None = None  # the file line of row 0, when each row is one line
    levels: tuple[Levels, ...] = ()
    dropped: Dropped | None = None
    offset: int = 0
    total: int | None = None  # None: x and y hold every row
    lines: Callable[[int], int] | None = None  # the file line of x[i], given i (counted when a message asks)
    finite: bool = False  # True: the reader's sums showed every value in x and y finite
    moments: Moments | None = None  # the moments of x and y, tallied as the reader made the rows (None: not)

    @property
    def rows(self) -> int:
        return len(self.y) if self.total is None else self.total

    @property
    def held(self) -> tuple[int, int] | None:
        return None if self.total is None else (self.offset, self.offset + len(self.y))

    def line(self, row: int) -> int | None:
        if self.lines is not None:
            return self.lines(row - self.offset)
        return None if self.first_line is None else self.first_line + row

    def blocks(
        self, start: int = 0, stop: int | None = None, size: int | None = BLOCK_ROWS
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if start < self.offset:
            raise IndexError(f"row {start} is not in this process's share of the rows ({self.held})")
        start -= self.offset
        stop = len(self.y) if stop is None else min(stop - self.offset, len(self.y))
        if size is None:
            yield self.x[start:stop], self.y[start:stop]
            return
        yield from passing(self.x, self.y, start, stop, size)


def row_count(source: Source) -> int:
    """The source's rows, counted by reading them when the source does not know."""
    return source.rows if source.rows is not None else sum(len(y) for _, y in source.blocks())


def own_rows(source: Source, group: Shard = SINGLE) -> Shard:
    """The rows of `source` this process reads (their places in the whole table): under torchrun the share it
    read, when its reader read only that, else its block of every row; in one process, all of them."""
    held = source.held
    if held is not None:
        return dataclasses.replace(group, start=held[0], stop=held[1])  # summed as `group` sums
    return block(row_count(source), group.rank, group.world)


def checked(source: Source, group: Shard = SINGLE) -> Source:
    """Reject a NaN or infinity, naming the first (in x, then in y; by row, then column).

    A source whose reader tallied its rows as it made them (`Source.finite`) is known finite without a
    pass. Under torchrun each rank reads only its own rows, and one all_reduce gathers every rank's
    first find (with its file line, which only the rank that read the row knows), so every
    rank reports the same one, the one a single process would.
    """
    n = row_count(source)
    if n == 0:
        raise DataError(f"{source.origin} has zero rows. Training needs at least one row.")
    mine = own_rows(source, group)
    none = np.array([np.inf, 0.0, 0.0, -1.0])  # (position in x-then-y order, column, value, line); inf: none
    in_x, in_y = none, none
    at = mine.start
    blocks = () if source.finite else source.blocks(mine.start, mine.stop)
    for x, y in blocks:  # one pass: x's first find ends it, y's is kept till then
        in_x = _first_bad(source, x, at, 0)
        if np.isfinite(in_x[0]):
            break
        if not np.isfinite(in_y[0]):
            in_y = _first_bad(source, y[:, None], at, n)
        at += len(y)
    finds = group.gather(in_x if np.isfinite(in_x[0]) else in_y)  # every rank's first find, one row each
    position, col, value, line = finds[int(np.argmin(finds[:, 0]))]
    if np.isfinite(position):
        which, row = divmod(int(position), n)
        name = (source.features, [source.target])[which][int(col)]
        place = f"line {int(line)}" if line >= 0 else f"row {row}"
        raise DataError(
            f"{source.origin}, {place}, column {name!r}: the value is {value}, not a finite number. "
            "Fix or drop those rows."
        ).shared("job")  # every rank's first find, gathered
    return source


def fingerprint(source: Source, group: Shard = SINGLE) -> str:
    """A SHA-256 fingerprint of the values as float64.

    It is the hash of the shape and of the hashes of blocks of HASH_ROWS rows (each: the block's
    x, row-major, then its y), so under torchrun (`group`, a collective then) each rank hashes
    only its share of the blocks and one all_reduce gathers the block hashes; the result is the
    same for any number of processes. A memory-mapped file is read block by block. Where each
    rank read only its own rows, a block that spans two ranks' shares is first put together on
    every rank (an all_reduce of its values' bits: each from one rank, zeros from the others).
    """
    n = row_count(source)
    count = -(-n // HASH_ROWS)
    table = np.zeros((count, 32))  # each block's digest, a byte per number (exact in an all_reduce)
    spans = [(b * HASH_ROWS, min((b + 1) * HASH_ROWS, n)) for b in range(count)]
    if source.held is None:  # every row can be read here: hash a block of the blocks
        mine = block(count, group.rank, group.world)
        for b in range(mine.start, mine.stop):
            table[b] = _digest(functools.partial(source.blocks, *spans[b]))
    else:
        shares = group.gather(np.array(source.held, dtype=float)).astype(int)  # every rank's rows
        for b, (start, stop) in enumerate(spans):
            owners = [r for r, (lo, hi) in enumerate(shares) if lo < stop and hi > start]
            if owners == [group.rank]:
                table[b] = _digest(functools.partial(source.blocks, start, stop))
            elif len(owners) > 1:  # every rank takes part in the all_reduce, in the same order
                table[b] = _spanning(source, group, start, stop, owners)
    group.reduce(table)  # every rank's block digests (a single process: its own, all of them)
    whole = hashlib.sha256(f"{n}x{len(source.features)}:".encode())
    whole.update(table.astype(np.uint8).tobytes())
    return whole.hexdigest()


def _digest(parts: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]) -> np.ndarray:
    """The SHA-256 of a block's x, row-major, then its y, as float64: 32 bytes, one number each. `parts()` gives
    the block's rows in parts, asked twice (for x, then y): each part is hashed while the source still holds it."""
    digest = hashlib.sha256()
    for which in (0, 1):
        for part in parts():
            digest.update(np.ascontiguousarray(part[which], dtype=np.float64).tobytes())
    return np.frombuffer(digest.digest(), dtype=np.uint8).astype(np.float64)


def _spanning(source: Source, group: Shard, start: int, stop: int, owners: list[int]) -> np.ndarray:
    """The digest of the rows start..stop, which several ranks' shares hold: every rank gets the rows as the
    bits of their float64 values (so the sum is exact, -0.0 included); the first owner's digest counts."""
    d = len(source.features)
    bits = np.zeros((stop - start, d + 1), dtype=np.int64)
    held = source.held
    if held is not None and group.rank in owners:
        lo, hi = max(start, held[0]), min(stop, held[1])
        at = lo - start
        for x, y in source.blocks(lo, hi):
            bits[at : at + len(y), :d] = np.asarray(x, dtype=np.float64).view(np.int64)
            bits[at : at + len(y), d] = np.asarray(y, dtype=np.float64).view(np.int64)
            at += len(y)
    group.reduce(bits)
    if group.rank != owners[0]:
        return np.zeros(32)
    rows = bits.view(np.float64)
    return _digest(lambda: [(rows[:, :d], rows[:, d])])


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
    if not stat.S_ISREG(info.st_mode):  # read more than once, and in ranges: a stream would be read up to the end
        kind = "a pipe" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device"
        raise DataError(
            f"data file {path} is {kind}, not a file (data.path). Save the data to a {what} file and point "
            "data.path at it."
        )
    if info.st_size == 0:
        needs = {"CSV": "a header line and at least one data row", "Parquet": "a table (pyarrow, pandas, polars)"}
        raise DataError(f"data file {path} is empty. It needs {needs.get(what, 'an array')}.")


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


def _first_bad(source: Source, part: np.ndarray, at: int, offset: int) -> np.ndarray:
    """(position, column, value, line) of the first NaN or infinity in `part` (rows from `at`; positions from
    `offset`: 0 for x, N for y), by row then column; position inf when there is none."""
    bad = ~np.isfinite(part)
    if not bad.any():
        return np.array([np.inf, 0.0, 0.0, -1.0])
    row, col = (int(i) for i in np.argwhere(bad)[0])
    line = source.line(at + row)
    return np.array([offset + at + row, col, part[row, col], -1.0 if line is None else line])


def resident(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialized float64 array whose pages are all mapped at once, for a table about to be filled.

    A fresh array's pages are otherwise mapped one fault at a time as they are first written: 4 KB
    each, 40,000 for a 1e6 x 20 table, which can cost more than parsing the rows that fill it. The
    mapping asks for 2 MB pages (MADV_HUGEPAGE, as NumPy asks for its own large arrays) and maps them
    all in one call (MADV_POPULATE_WRITE, Linux 5.14): 152 MB in about 0.01 s. Where either is refused,
    4 KB pages mapped at once (MAP_POPULATE: 0.05 s); elsewhere it is np.empty.
    """
    size = math.prod(shape) * 8
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if size < POPULATE_MIN_BYTES or not populate:
        return np.empty(shape)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    memory: mmap.mmap | None = None
    try:
        memory = mmap.mmap(-1, size, flags=flags)
        memory.madvise(mmap.MADV_HUGEPAGE)
        memory.madvise(MADV_POPULATE_WRITE)
    except (OSError, AttributeError):  # an older kernel, no huge pages: 4 KB pages, mapped at once
        if memory is not None:
            memory.close()  # what it mapped goes before the second mapping comes
        try:
            memory = mmap.mmap(-1, size, flags=flags | populate)
        except OSError:  # no room for it at once (ulimit -v): let NumPy's allocator say so, as for any array
            return np.empty(shape)
    return np.frombuffer(memory, dtype=np.float64).reshape(shape)


MADV_POPULATE_WRITE = 23  # Linux's value (mmap names it from Python 3.13)
POPULATE_MIN_BYTES = 1 << 24  # below this, the faults cost little


def scratch_mapping(
    fill: Callable[[IO[bytes]], tuple[int, ...]], dtype: np.dtype[Any], order: Literal["C", "F"] = "C"
) -> np.ndarray:
    """An array that `fill` writes (returning its shape) into a temporary file, memory-mapped read-only.

    The file has no name from the start (tempfile.TemporaryFile, in $TMPDIR): the mapping keeps
    its pages, and nothing is left on disk however the process ends.
    """
    with tempfile.TemporaryFile(prefix="lrtrain-", buffering=0) as handle:  # no buffer left to fail at close
        try:
            shape = fill(handle)
        except OSError as exc:
            raise _unwritable(handle, exc) from None
        if math.prod(shape) == 0:
            return np.zeros(shape, dtype=dtype)
        mapped: np.ndarray = np.memmap(handle, dtype=dtype, mode="r", shape=shape, order=order)
        return mapped


def _unwritable(handle: IO[bytes], exc: OSError) -> Exception:
    """`exc` in words when it is the temporary file that cannot grow (a full disk, a file size limit: NumPy's
    tofile says only how much it wrote, so one more page is tried); else `exc` itself, the reader's."""
    written = os.lseek(handle.fileno(), 0, os.SEEK_END)
    try:
        os.write(handle.fileno(), bytes(mmap.PAGESIZE))
    except OSError as again:
        reason = again.strerror or str(again)
        return ScratchError(
            f"a table this large is kept in a temporary file in {tempfile.gettempdir()} ($TMPDIR), and it could not "
            f"grow past {written:,} bytes: {reason}. Free some space there, or set TMPDIR to a folder on a disk "
            "with room for the table (8 bytes a number)."
        )
    return exc
