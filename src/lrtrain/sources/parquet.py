"""Parquet: a .parquet file, or a folder of them read as one table; numeric columns by name or index.

The footers give the column names, types and the row count before a row is read; the rows are
then read in record batches (threads decode the columns) into a float64 table: in memory when it
is small, else appended to a memory-mapped table in a nameless temporary file, so memory stays
bounded by a batch (and the row group pyarrow decodes it from), never the file. Under torchrun
each rank reads only its block of the rows, from the row groups that hold it (lrtrain.sources.shares
puts the blocks together).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

import lrtrain.sources.shares as shares
from lrtrain import parallel
from lrtrain.config import ParquetData
from lrtrain.errors import DataError, LrtrainError
from lrtrain.interrupts import loading_point
from lrtrain.parallel import SINGLE, Shard
from lrtrain.sources.base import Table, open_checked, scratch_mapping
from lrtrain.sources.choice import categorical_columns, chosen_columns
from lrtrain.sources.columns import Coder, Filling, batch_into, batch_rows, finish, tally_for
from lrtrain.sources.delimited import stream_bytes

BATCH_ROWS = 1 << 16  # rows decoded at a time
PAGE_BUFFER_BYTES = 1 << 20  # bytes of a column chunk read at a time


def read(spec: ParquetData, scratch: bool = False, group: Shard = SINGLE, full: bool = False) -> Table:
    """The chosen columns as float64; with `scratch` (under torchrun), or when large, in a mapped temporary table,
    and there (`group`: this process's place in the job) only this rank's block of the rows. `full`: the first
    categorical column is coded in full (a model without an intercept: lrtrain.design)."""
    import pyarrow as pa

    path = Path(spec.path)
    files = table_files(path)
    opened = [open_part(file) for file in files]
    schema = opened[0].schema_arrow
    names = list(schema.names)
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"data file {files[0]}: column name {dup!r} appears twice. Rename one of them.")
    if not names:
        raise DataError(f"data file {files[0]} has no columns. Write the table with its columns.")
    features, target = chosen_columns(spec.target, spec.features, names, path, True)
    if not features:
        raise DataError(f"data file {path} has only one column ({names[target]!r}), the target: there are no features.")
    chosen = [names[i] for i in [*features, target]]
    if "" in chosen:
        raise DataError(
            f"data file {files[0]}: column {names.index('') + 1} has no name, and the model names each feature. "
            "Name it when writing the table, or leave it out with data.features."
        )
    text = {chosen.index(names[i]) for i in categorical_columns(spec.categorical, names, features, target, path, True)}
    for file, handle in zip(files, opened, strict=True):
        _check_columns(file, handle, chosen, text, schema, pa)
    rows = sum(handle.metadata.num_rows for handle in opened)
    origin = f"data folder {path}" if path.is_dir() else f"data file {path}"
    reading = _Reading(files, opened, chosen, {j: Coder(chosen[j]) for j in text}, spec)
    if group.world > 1:
        return _share(reading, rows, origin, group, full)
    table: np.ndarray | tuple[np.ndarray, np.ndarray]
    if scratch or rows * len(chosen) * 8 > stream_bytes():
        table = scratch_mapping(reading.append, np.dtype(np.float64))
    else:
        filling = Filling(rows, len(chosen))
        reading.fill(filling)
        table = filling.table()
    return finish(table, chosen, reading.coders, reading.counts, rows, origin, None, scratch, reading.tally, full=full)


def _share(reading: _Reading, rows: int, origin: str, group: Shard, full: bool) -> Table:
    """Under torchrun: this rank's block of the `rows`, read alone into a mapped table; or every rank's error."""
    mine = parallel.block(rows, group.rank, group.world)
    table: np.ndarray | None = None
    failure: LrtrainError | None = None
    try:
        fill = functools.partial(reading.append, start=mine.start, stop=mine.stop)
        table = scratch_mapping(fill, np.dtype(np.float64))
    except LrtrainError as exc:  # a bad cell, a full $TMPDIR: said by every rank alike
        failure = exc
    read = mine.stop - mine.start
    coders, counts, tally = reading.coders, reading.counts, reading.tally
    return shares.table(table, failure, reading.chosen, coders, counts, read, origin, None, group, tally, full=full)


def table_files(path: Path) -> list[Path]:
    """The Parquet files of `path`: itself, or every file under the folder in name order, as pyarrow's datasets
    take them (whatever their names end in; hidden and _ names left out, as Spark and pyarrow write them beside
    the data). Something there that cannot be read is an error that names it, never rows silently left out."""
    if not path.is_dir():
        open_checked(path, "Parquet")
        return [path]
    found = []
    for entry in sorted(path.rglob("*")):
        if any(part.startswith((".", "_")) for part in entry.relative_to(path).parts) or entry.is_dir():
            continue
        if not entry.is_file():
            raise DataError(
                f"data folder {path} holds {entry}, which is not a file (a broken link, a pipe or a device), so its "
                "rows cannot be read. Remove it from the folder, or name it with a leading _ to leave it out."
            )
        if entry.stat().st_size == 0:
            raise DataError(
                f"data folder {path} holds {entry}, which is empty. Remove it, or name it with a leading _ to leave "
                "it out."
            )
        found.append(entry)
    if not found:
        raise DataError(
            f"data folder {path} holds no Parquet files (data.path). Point data.path at one or at a folder of them."
        )
    return found


def open_part(file: Path) -> Any:
    """A Parquet file's reader (see `open_file`); a file that is not Parquet is a DataError naming it."""
    import pyarrow as pa

    try:
        return open_file(file)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"data file {file} is not a readable Parquet file ({str(exc).splitlines()[0]}). "
            "Write it with pyarrow, pandas, polars or Spark, or give the CSV with data.source: csv. In a folder, every "
            "file is read (but those whose names start with _ or .)."
        ) from None


def open_file(file: Path) -> Any:
    """A local Parquet file, its footer read and no rows yet: what lrtrain uses of pyarrow's ParquetFile
    (metadata, schema_arrow, iter_batches by column name).

    pyarrow.parquet imports pyarrow.fs, which on Linux loads OpenSSL to find TLS certificates for remote
    filesystems: a tenth of a 0.4 s fit of a 1e6 x 20 table. The reader ParquetFile wraps (pyarrow._parquet)
    reads a local path alone, so it is opened directly; with a pyarrow whose reader differs, ParquetFile.
    """
    try:
        from pyarrow._parquet import ParquetReader

        reader = ParquetReader()
        # pages read through a 1 MB buffer, not each row group's column chunks read whole first (pre_buffer):
        # 1e6 x 20 float64, 16 row groups: 200 MB less memory, no slower
        reader.open(str(file), buffer_size=PAGE_BUFFER_BYTES, pre_buffer=False)
        return _Local(reader)
    except (ImportError, TypeError, AttributeError):
        import pyarrow.parquet as pq

        return pq.ParquetFile(file, pre_buffer=False, buffer_size=PAGE_BUFFER_BYTES)


class _Local:
    """ParquetFile's interface, as lrtrain uses it, on pyarrow's own reader of a flat table."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    @property
    def metadata(self) -> Any:
        return self.reader.metadata

    @property
    def schema_arrow(self) -> Any:
        return self.reader.schema_arrow

    def iter_batches(
        self,
        batch_size: int,
        row_groups: list[int] | None = None,
        columns: list[str] | None = None,
        use_threads: bool = True,
    ) -> Iterator[Any]:
        metadata = self.reader.metadata
        groups = range(metadata.num_row_groups) if row_groups is None else row_groups
        indices = None if columns is None else [self.reader.column_name_idx(name) for name in columns]
        if all(metadata.row_group(g).num_rows <= 2 * batch_size for g in groups):
            return self._row_groups(groups, indices, use_threads)
        batches: Iterator[Any] = self.reader.iter_batches(
            batch_size, row_groups=groups, column_indices=indices, use_threads=use_threads
        )
        return batches

    def _row_groups(self, groups: Sequence[int], indices: list[int] | None, use_threads: bool) -> Iterator[Any]:
        """Row groups of about a batch each, one at a time: read whole, their columns decoded side by side, a
        tenth faster than the batch reader (1e6 x 20 float64 in 16 groups: 0.07 s against 0.08 s)."""
        for group in groups:
            yield from self.reader.read_row_group(group, column_indices=indices, use_threads=use_threads).to_batches()


def _check_columns(file: Path, handle: Any, chosen: list[str], text: set[int], first: Any, pa: Any) -> None:
    """Every chosen column is there, of the first file's type, and numeric, or text (or numeric, or boolean) when
    categorical."""
    schema = handle.schema_arrow
    for j, name in enumerate(chosen):
        if name not in schema.names:
            raise DataError(
                f"data file {file} has no column {name!r}, which the first file of the folder has. "
                "Every file of a folder must hold the same columns."
            )
        kind = schema.field(name).type
        if kind != first.field(name).type:
            raise DataError(
                f"data file {file}: column {name!r} holds {kind} values but the first file's holds "
                f"{first.field(name).type}. Write every file of the folder with the same types."
            )
        textual = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind)
        if j in text:
            numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
            if not (textual or numeric or pa.types.is_boolean(kind)):  # numbers: levels as a CSV's numbers give
                raise DataError(
                    f"data file {file}: column {name!r} holds {kind} values; a categorical column (data.categorical) "
                    "holds text, categories, booleans or numbers. Remove it from data.categorical, or write it as one "
                    "of those."
                )
            continue
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
            what = "categories (dictionary-encoded)" if pa.types.is_dictionary(kind) else "text" if textual else None
            what = "booleans" if pa.types.is_boolean(kind) else what  # a categorical of two levels, False and True
            if j == len(chosen) - 1:
                raise DataError(
                    f"data file {file}: column {name!r}, the target, holds {what or f'{kind} values'}, not numbers: "
                    "a linear model's target is a number. Write it as numbers (e.g. 0 and 1 for booleans), or name "
                    "another column in data.target."
                )
            if what is None:
                raise DataError(
                    f"data file {file}: column {name!r} holds {what or f'{kind} values'}, not numbers; lrtrain reads "
                    "numeric columns and text ones declared categorical. Leave it out by listing the other columns "
                    "in data.features, or encode it as numbers."
                )
            shown = ", ".join(repr(v) for v in _some_values(handle, name))
            raise DataError(
                f"data file {file}: column {name!r} holds {what}, not numbers ({shown}, ...). To use it as a "
                f"categorical feature, one indicator column per level, declare it: data.categorical: [{name}] "
                f"(--set 'data.categorical=[{name}]'); or leave it out by listing the other columns in data.features."
            )


def _some_values(handle: Any, name: str) -> list[str]:
    """A few distinct values of a column, from its first rows."""
    values: list[str] = []
    for batch in handle.iter_batches(batch_size=100, columns=[name]):
        for value in batch.column(0).to_pylist():
            if value is not None and str(value) not in values:
                values.append(str(value))
        break
    return values[:4]


class _Reading:
    """The chosen columns of every file, batch by batch, as float64 rows (categorical columns as codes)."""

    def __init__(
        self, files: list[Path], opened: list[Any], chosen: list[str], coders: dict[int, Coder], spec: ParquetData
    ) -> None:
        self.files, self.opened, self.chosen, self.coders, self.missing = files, opened, chosen, coders, spec.missing
        self.counts = np.zeros(len(chosen), dtype=np.int64)  # missing cells per column (data.missing: drop)
        self.tally = tally_for(spec, len(chosen) - 1)  # the rows' sums, as they are made

    def blocks(self) -> Iterator[np.ndarray]:
        """The batches' rows (categorical columns as codes; with data.missing: drop, the rows kept)."""
        for file, at, batch in self._batches():
            place = functools.partial(_place, file, at)
            yield self._tallied(batch_rows(batch.columns, self.chosen, self.coders, self.missing, place, self.counts))

    def _tallied(self, block: np.ndarray) -> np.ndarray:
        self.tally.add(block[:, :-1], block[:, -1])
        return block

    def fill(self, into: Filling) -> None:
        """Every batch written into the table in memory: column by column when every row is kept, else the rows
        data.missing: drop keeps."""
        if self.missing != "error":
            for block in self.blocks():
                into.append(block)
            return
        for file, at, batch in self._batches():
            place = functools.partial(_place, file, at)
            self.tally.add(*batch_into(batch.columns, self.chosen, self.coders, place, into))

    def _batches(self) -> Iterator[tuple[Path, int, Any]]:
        """(file, the file's row of the batch's first, batch) for every batch of every file."""
        for file, handle in zip(self.files, self.opened, strict=True):
            at = 0
            for batch in _batches(file, handle, columns=self.chosen):
                yield file, at, batch
                at += batch.num_rows

    def append(self, out: IO[bytes], start: int = 0, stop: int | None = None) -> tuple[int, ...]:
        """The rows start..stop (of every file's together; None: to the end) appended to `out`; the shape."""
        rows = 0
        for block in self.blocks() if start == 0 and stop is None else self.between(start, stop):
            block.tofile(out)
            rows += len(block)
        return (rows, len(self.chosen))

    def between(self, start: int, stop: int | None) -> Iterator[np.ndarray]:
        """The rows start..stop (of every file's together; None: to the end) only: the footers say which row
        groups hold them, and only those are decoded (the first and last perhaps in part)."""
        done = 0  # rows of the files before
        for file, handle in zip(self.files, self.opened, strict=True):
            sizes = [handle.metadata.row_group(g).num_rows for g in range(handle.metadata.num_row_groups)]
            bounds = np.cumsum([0, *sizes])  # each row group's first row in the file, then the file's rows
            lo, hi = start - done, (bounds[-1] if stop is None else stop - done)
            groups = [g for g in range(len(sizes)) if bounds[g] < hi and bounds[g + 1] > lo]
            done += int(bounds[-1])
            if not groups:
                continue
            at = int(bounds[groups[0]])  # the file's row of the batch's first
            for batch in _batches(file, handle, row_groups=groups, columns=self.chosen):
                first, last = max(lo - at, 0), min(hi - at, batch.num_rows)
                if first < last:
                    part = batch.slice(first, last - first)
                    place = functools.partial(_place, file, at + first)
                    rows = batch_rows(part.columns, self.chosen, self.coders, self.missing, place, self.counts)
                    yield self._tallied(rows)
                at += batch.num_rows
                if at >= hi:
                    break


def _batches(file: Path, handle: Any, **which: Any) -> Iterator[Any]:
    """The record batches of `which` row groups and columns; a file that cannot be decoded (cut short, damaged
    pages) is a DataError that names it and the rows read, not pyarrow's bare OSError."""
    import pyarrow as pa

    rows = 0
    batches = handle.iter_batches(batch_size=BATCH_ROWS, use_threads=True, **which)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            raise DataError(
                f"data file {file} cannot be decoded after {rows:,} rows ({reason}): the file is damaged or cut "
                "short. Write it again (pyarrow, pandas, polars or Spark)."
            ) from None
        rows += batch.num_rows
        loading_point()  # Ctrl-C while a large table loads stops here
        yield batch


def _place(file: Path, at: int, row: int) -> str:
    return f"data file {file}, row {at + row}"
