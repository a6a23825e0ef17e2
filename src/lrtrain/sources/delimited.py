"""CSV files: a header (or none), a delimiter, the target and feature columns by name or index.

pyarrow parses them, the chosen columns typed float64 up front (no type inference), on every
core. A file up to LRTRAIN_CSV_STREAM_BYTES (256 MB) is parsed in one go; a larger one, a
compressed one (.gz, .bz2, .zst) or any under torchrun is read in ranges of CSV_RANGE_BYTES cut
where pyarrow ends rows (lrtrain.sources.cuts: a quoted cell may hold line ends), each range
parsed (still threaded); lrtrain.sources.text opens, decompresses and counts the bytes. The
rows go to a table in memory when its float64 numbers fit under the same threshold (estimated
from the first lines' length), else to a memory-mapped table in a nameless temporary file, so
memory stays bounded by the range, never the file. Under torchrun each rank reads only its
byte range of the file (lrtrain.sources.csv_shares; lrtrain.sources.shares puts the shares together). Every
problem names the file, the line and the column: when pyarrow refuses a block, the block is
scanned again row by row for the exact cell.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import itertools
import math
import mmap
import re
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

import lrtrain.sources.csv_shares as csv_shares
import lrtrain.sources.shares as shares
from lrtrain.config import CsvData
from lrtrain.errors import DataError, environment_number
from lrtrain.interrupts import loading_point
from lrtrain.parallel import SINGLE, Shard
from lrtrain.sources.base import Table, open_checked, scratch_mapping
from lrtrain.sources.choice import categorical_columns, chosen_columns
from lrtrain.sources.columns import Coder, Filling, batch_into, batch_rows, finish, tally_for
from lrtrain.sources.cuts import LINE_BYTES, countable, cut_rows
from lrtrain.sources.text import (
    COMPRESSION,
    HEADER_BYTES,
    fill,
    header_cells,
    open_bytes,
    open_counted,
    opening_line,
    quote_count,
    quoted_rows,
    skip_to,
    unclosed,
    unreadable,
)

if TYPE_CHECKING:
    import pyarrow as pa

CSV_RANGE_BYTES = 8 << 20  # bytes parsed at a time when a file is streamed: threads, and memory bounded by it
SAMPLE_BYTES = 1 << 20  # the lines whose mean length estimates the row count of a large file

# the cells data.missing: drop counts as missing: pyarrow's default null_values (pyarrow.csv.ConvertOptions), and blanks
MISSING = (
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"),
    *("N/A", "NA", "NULL", "NaN", "n/a", "nan", "null"),
    *(" " * k for k in range(1, 17)),  # a blank cell padded with spaces or tabs, as a fixed-width export leaves it
    *("\t" * k for k in range(1, 5)),
)

ASCII_BLANKS = " \t"  # what pyarrow trims around a number; a no-break space or a quoted line end it refuses
# a number as pyarrow's float parser takes it (after trimming blanks): the reference for exact messages
NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE | re.ASCII)
DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+", re.ASCII)  # 1,5 for 1.5, as some locales write numbers


def decimal_comma(cell: str) -> str:
    """The words for a cell that is a number written with a decimal comma; '' for any other cell."""
    cell = cell.strip()
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?", cell, re.ASCII):  # 1,000: thousands more likely than 1.000
        return (
            f" It looks like a number with a thousands separator ({cell.replace(',', '')}) or a decimal comma "
            f"({cell.replace(',', '.')}): lrtrain reads plain digits and a decimal point. Save the file without "
            "separators (a spreadsheet's General number format, or pandas' to_csv())."
        )
    if not DECIMAL_COMMA.fullmatch(cell):
        return ""
    return (
        f" It looks like a number written with a decimal comma ({cell.replace(',', '.')}): lrtrain reads "
        "a decimal point. Save the file with decimal points (a spreadsheet in an English locale, or pandas' "
        "to_csv(decimal='.'))."
    )


def read(spec: CsvData, scratch: bool = False, group: Shard = SINGLE, full: bool = False) -> Table:
    """The CSV's columns as float64; with `scratch` (under torchrun) parsed into a mapped temporary table, and
    there (`group`: this process's place in the job) only this rank's byte range of a file not compressed.
    `full`: the first categorical column is coded in full (a model without an intercept: lrtrain.design)."""
    path = Path(spec.path)
    open_checked(path, "CSV")
    compression = COMPRESSION.get(path.suffix.lower())
    first = opening_line(path, compression)
    try:
        text = first.decode("utf-8-sig")  # -sig: a BOM (Excel) is not a name
    except UnicodeDecodeError:
        raise DataError(f"data file {path} is not UTF-8 text. Is it a CSV file? Save it as UTF-8 CSV.") from None
    if not first:
        raise DataError(f"data file {path} is empty. It needs a header line and at least one data row.")
    cells = header_cells(text, spec.delimiter, path)
    width = len(cells)
    if not "".join(cells).strip():
        raise DataError(
            f"data file {path}: line 1 is blank, but it must hold the column names (with data.header: false, the "
            "first row). Remove the blank lines at the top of the file."
        )
    names = [n.strip() for n in cells] if spec.header else [f"x{i}" for i in range(width)]
    if "" in names:
        raise DataError(
            f"data file {path}: column {names.index('') + 1} of the header has no name ({text.strip()!r}). Name it, "
            f"or remove the column (a {spec.delimiter!r} at the end of each line makes an empty last one)."
        )
    if spec.header and width > 1 and all(NUMBER.fullmatch(name) for name in names):
        shown = ", ".join(names[:5]) + (", ..." if width > 5 else "")
        raise DataError(
            f"data file {path}: the header line holds only numbers ({shown}), so it looks like a data row, not "
            "column names. If the file has no header, set data.header: false (--set data.header=false): the columns "
            "are then x0, x1, ... and data.target and data.features take 0-based indices."
        )
    if spec.header and len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"data file {path}: column name {dup!r} appears twice in the header. Rename one of them.")
    features, target = chosen_columns(spec.target, spec.features, names, path, spec.header)
    if not features:
        raise DataError(
            f"data file {path} has only one column ({names[target]!r}), the target: there are no features. "
            f"A CSV needs at least two columns; if its fields are not separated by {spec.delimiter!r}, "
            "set data.delimiter (e.g. ';' or '\\t')."
        )
    columns = [*features, target]
    categorical = categorical_columns(spec.categorical, names, features, target, path, spec.header)
    reader = _Reader(path, spec, names, columns, categorical)
    first_line = 2 if spec.header else 1
    skip = len(first) if spec.header else 0
    chosen = [names[i] for i in columns]
    origin = f"data file {path}"
    nothing = f"data file {path} has a header but no data rows. Add rows of numbers below the header."
    if spec.header and not first.endswith(b"\n"):  # line 1 ran to the end of the file: there is nothing below it
        raise DataError(nothing)
    if group.world > 1:
        shared = csv_shares.share(reader, skip, group, compression)
        if shared is not None:
            reader, rows, failure, start = shared
            lines = functools.partial(reader._row_line, compression, start)
            coders, counts, read, tally = reader.coders, reader.counts, reader.read, reader.tally
            return shares.table(
                rows, failure, chosen, coders, counts, read, origin, first_line, group, tally, nothing, lines, full
            )
        reader = reader.fresh()
    size = path.stat().st_size
    table: np.ndarray | tuple[np.ndarray, np.ndarray]
    if scratch or compression is not None or _table_bytes(path, skip, size, len(columns)) > stream_bytes():
        table = scratch_mapping(lambda out: reader.streamed(compression, skip, out), np.dtype(np.float64))
    elif size > stream_bytes():  # the table fits in memory, the parse of the whole file might not: in ranges
        filling = Filling(_rows_in(path, skip, size), len(columns))
        reader.streamed(None, skip, filling)
        table = filling.table()
    else:
        table = reader.whole(skip)
    if reader.read == 0:
        raise DataError(nothing)
    coders, counts, tally = reader.coders, reader.counts, reader.tally
    source = finish(table, chosen, coders, counts, reader.read, origin, first_line, scratch, tally, full=full)
    if source.first_line is None:  # rows were dropped: a message names the row among those kept
        return source
    return dataclasses.replace(source, lines=functools.partial(reader._row_line, compression, skip))


def stream_bytes() -> int:
    """CSV files above this size are parsed in ranges; tables (CSV or Parquet) above it are kept in a
    memory-mapped file on disk, not in memory."""
    what = "the table size in bytes above which a CSV is parsed in ranges and a table is kept on disk"
    return int(environment_number("LRTRAIN_CSV_STREAM_BYTES", 256 << 20, what, whole=True))


def _file_rows(path: Path, skip: int) -> int | None:
    """text.quoted_rows of the file after its first `skip` bytes (the header line)."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return quoted_rows(data, skip, len(data))


def _rows_in(path: Path, skip: int, size: int) -> int:
    """About how many data lines the file has, a little more rather than less: its size over the mean length
    of the lines in its first SAMPLE_BYTES."""
    with path.open("rb") as handle:
        handle.seek(skip)
        sample = handle.read(SAMPLE_BYTES)
    if not sample:  # a header and nothing else: no rows to make room for
        return 0
    lines = max(sample.count(b"\n"), 1)
    return int((size - skip) / (len(sample) / lines) * 1.05) + lines


def _table_bytes(path: Path, skip: int, size: int, width: int) -> int:
    """About how large the float64 table of the file's `width` chosen columns is."""
    return _rows_in(path, skip, size) * width * 8 if size > stream_bytes() else size


class _Reader:
    """Parses the CSV's chosen columns with pyarrow, in one go or range by range."""

    def __init__(self, path: Path, spec: CsvData, names: list[str], columns: list[int], categorical: set[int]) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        self.path, self.spec, self.names, self.columns = path, spec, names, columns
        keys = [f"c{i}" for i in range(len(names))]  # our own names: the header is read (and checked) by us
        drop = spec.missing == "drop"
        self.parse = pacsv.ParseOptions(delimiter=spec.delimiter)
        self.multiline = pacsv.ParseOptions(delimiter=spec.delimiter, newlines_in_values=True)
        self.convert = pacsv.ConvertOptions(
            column_types={keys[i]: pa.string() if i in categorical else pa.float64() for i in columns},
            include_columns=[keys[i] for i in columns],
            null_values=list(MISSING) if drop else [],  # without drop, an empty cell is an error, not a silent null
            strings_can_be_null=drop,
            quoted_strings_can_be_null=drop,
        )
        self.keys = keys
        self.text = categorical
        nulls = frozenset(cell.strip() for cell in MISSING)  # the null spellings: missing in every column
        self.coders = {j: Coder(names[i], nulls) for j, i in enumerate(columns) if i in categorical}
        self.counts = np.zeros(len(columns), dtype=np.int64)  # missing cells per column (data.missing: drop)
        self.read = 0  # data rows parsed, before any is dropped
        self.quotes = 0  # quote characters in the ranges parsed (under torchrun: are the shares cut at row ends?)
        self.countable = True  # and does their count tell which line starts are row starts? (cuts.countable)
        self.shared = False  # a share under torchrun: only then is `countable` asked
        self.counted = 0  # the byte up to which quotes are counted
        self.begun: int | None = None  # where the first range given starts (a compressed file's share)
        self.tally = tally_for(spec, len(columns) - 1)  # the rows' sums, as they are made

    def fresh(self) -> _Reader:
        """A reader of the same file and columns that has read nothing yet."""
        return _Reader(self.path, self.spec, self.names, self.columns, self.text)

    def _take(self, table: pa.Table, line: Callable[[int], int], into: IO[bytes] | Filling) -> int:
        """A parsed table's rows, batch by batch, into the table in memory `into` or appended to the file `into`;
        the rows kept. With data.missing: error every row is kept, and a batch goes into a table in memory column
        by column, no rows made on the way. `line(k)` is the file line of the table's k-th row (for a message)."""
        names = [self.names[i] for i in self.columns]
        at = kept = 0
        for batch in table.to_batches():
            place = functools.partial(_line, self.path, line, at)
            if isinstance(into, Filling) and self.spec.missing == "error":
                self.tally.add(*batch_into(batch.columns, names, self.coders, place, into))
                kept += batch.num_rows
            else:
                block = batch_rows(batch.columns, names, self.coders, self.spec.missing, place, self.counts)
                self.tally.add(block[:, :-1], block[:, -1])
                if isinstance(into, Filling):
                    into.append(block)
                else:
                    block.tofile(into)
                kept += len(block)
            at += batch.num_rows
            self.read += batch.num_rows
        return kept

    def _parsed(self, source: Callable[[], object], skip_rows: int, rows: Callable[[], int | None]) -> pa.Table:
        """pyarrow's table of the CSV text `source()` opens. Its threads cut the text into blocks at line ends;
        when one falls inside a quoted cell, the parse fails (the block ends inside the cell), and the text is
        parsed again with line ends allowed in cells (20% slower, so only then; a file that really is malformed
        fails again). The first parse can also lose rows without failing: an unclosed quote swallows the rest of
        its block. So where the text holds quotes, `rows()` (text.quoted_rows) counts its non-empty lines, and a
        table of fewer rows is parsed again the second way, which refuses the unclosed quote."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        options = {"read_options": self._options(skip_rows), "convert_options": self.convert}
        try:
            table = pacsv.read_csv(source(), parse_options=self.parse, **options)
            if (lines := rows()) is None or table.num_rows == lines:
                return table
        except pa.ArrowInvalid:
            pass
        return pacsv.read_csv(source(), parse_options=self.multiline, **options)

    def _options(self, skip: int) -> object:
        import pyarrow.csv as pacsv

        return pacsv.ReadOptions(column_names=self.keys, skip_rows=skip, use_threads=True)

    def whole(self, skip: int) -> tuple[np.ndarray, np.ndarray]:
        """The file parsed at once (it is under the streaming threshold)."""
        import pyarrow as pa

        try:
            table = self._parsed(
                lambda: str(self.path), 1 if skip else 0, functools.partial(_file_rows, self.path, skip)
            )
        except pa.ArrowInvalid as exc:
            with self.path.open("rb") as handle:
                handle.seek(skip)
                raise DataError(self._problem(handle.read(), 2 if skip else 1, exc)) from None
        filling = Filling(table.num_rows, len(self.columns))
        self._take(table, functools.partial(self._row_line, None, skip), filling)
        return filling.table()

    def streamed(
        self, compression: str | None, skip: int, out: IO[bytes] | Filling, stop: int | None = None
    ) -> tuple[int, ...]:
        """Parse range by range the bytes from `skip` (a row's start) to `stop` (the end of the file: None),
        appending float64 rows to `out` (a file, or a table in memory); returns the table's shape."""
        return self.parsed(self._ranges(compression, skip, stop), compression, out)

    def parsed(
        self,
        ranges: Iterator[tuple[memoryview, int]],
        compression: str | None,
        out: IO[bytes] | Filling,
        placed: bool = True,
    ) -> tuple[int, ...]:
        """Parse the `ranges` (of self._ranges) one by one, appending float64 rows to `out` (a file, or a table in
        memory); the table's shape. Not `placed`: a problem's message says line 0, not the line counted from the
        file's start."""
        import pyarrow as pa

        rows, flagged = 0, False
        for data, start in ranges:
            try:
                counted = functools.partial(quoted_rows, data.obj, 0, len(data))  # data: a view of a bytearray's start
                table = self._parsed(lambda: pa.BufferReader(pa.py_buffer(data)), 0, counted)  # noqa: B023  at once
            except pa.ArrowInvalid as exc:
                line = self._line_at(compression, start) if placed else 0
                raise DataError(self._problem(bytes(data), line, exc)) from None
            # the file line of the range's k-th row, counted only for a message
            lines = functools.partial(self._row_line, compression, start) if placed else _unplaced
            rows += self._take(table, lines, out)
            if self.spec.missing == "error" and not flagged and not self.tally.finite:  # an inf or NaN came in:
                flagged = True  # named now, as one parse of the whole file names it, before a later range's problem
                line = self._line_at(compression, start) if placed else 0
                found = self._not_finite(bytes(data).decode("utf-8", errors="replace"), line)
                if found is not None:
                    raise DataError(found)
            loading_point()  # Ctrl-C while a large file loads stops here
            del table
        pa.default_memory_pool().release_unused()  # the parser's buffers: ~40 MB the allocator would keep
        return (rows, len(self.columns))

    def _ranges(
        self, compression: str | None, skip: int, stop: int | None = None, span: tuple[int, int] | None = None
    ) -> Iterator[tuple[memoryview, int]]:
        """The data lines from byte `skip` to `stop` (None: the end) in ranges of about CSV_RANGE_BYTES, each cut
        after a row's line end, with the byte offset (in the decompressed file) each starts at. One range is in
        memory at a time, in one buffer that every range reuses (its pages are faulted in once), after the tail
        of the one before: the consumer is done with a range when it asks for the next. The quote characters
        of every range are counted in self.quotes.

        `span` (a compressed file's share under torchrun): only the ranges read while the decompressor was (halfway
        through each) between bytes span[0] and span[1] of the file; those before are read and cut (where one
        process cuts them) but not given, and the reading stops at span[1]. self.begun is where the first range
        given starts."""
        start = skip
        carry = b""
        data = bytearray()
        left = -1 if stop is None else stop - skip  # bytes still to read; -1: to the end
        try:
            read: Callable[[], int] = lambda: 0  # noqa: E731  no span: every range is given
            if span is None:
                stream = open_bytes(self.path, compression)
            else:
                stream, read = open_counted(self.path, compression or "")
            low, high = span or (0, 1)
            with stream:
                skip_to(stream, skip, compression)  # the header line (read and checked), or the shares before this one
                while True:
                    before = read()
                    if before >= high:
                        return  # the next share's
                    size = len(carry) + CSV_RANGE_BYTES
                    if len(data) < size:
                        data = bytearray(size + HEADER_BYTES)  # room for the tails of ordinary lines
                    data[: len(carry)] = carry
                    want = size if left < 0 else min(size, len(carry) + left)
                    got = fill(stream, memoryview(data)[len(carry) : want])
                    left = left if left < 0 else left - got
                    end = len(carry) + got
                    mine = low <= (before + read()) // 2 < high  # where the decompressor was, halfway through
                    if end < size:  # the end of the file or share: the last line may have no line end
                        if end and mine:
                            self.begun = start if self.begun is None else self.begun
                            self.quotes += quote_count(data, end)
                            self.counted = start + end
                            self.countable &= not self.shared or countable(data, end, self.spec.delimiter)
                            yield memoryview(data)[:end], start
                        return
                    cut, counts = cut_rows(data, end, self.spec.delimiter, judge=self.shared)
                    self.countable &= counts
                    if cut == 0 and end > LINE_BYTES:  # no row ends within a parser's block: refused before the
                        line = self._line_at(compression, start)  # row fills the memory
                        if data.rfind(b"\n", 0, end) < 0:
                            raise DataError(
                                f"data file {self.path}, line {line} goes on past {LINE_BYTES:,} bytes without a line "
                                "end, longer than any CSV line lrtrain can parse. Check the file there."
                            )
                        raise DataError(unclosed(self.path, line))  # as a parse of the whole file says it
                    if cut == 0:  # one row longer than a range: read on
                        carry = bytes(data[:end])
                        continue
                    if mine:
                        self.begun = start if self.begun is None else self.begun
                        self.quotes += quote_count(data, cut)
                        self.counted = start + cut
                        yield memoryview(data)[:cut], start
                    start += cut
                    carry = bytes(data[cut:end])
        except OSError as exc:
            raise unreadable(self.path, compression, exc) from None

    def _line_at(self, compression: str | None, offset: int) -> int:
        """The file line that starts at byte `offset` of the (decompressed) file: the line ends before it, counted
        again from the start (only a message needs it)."""
        ends = 0
        try:
            with open_bytes(self.path, compression) as stream:
                while offset > 0 and (piece := stream.read(min(offset, CSV_RANGE_BYTES))):
                    ends += piece.count(b"\n")
                    offset -= len(piece)
        except OSError as exc:
            raise unreadable(self.path, compression, exc) from None
        return 1 + ends

    def _row_line(self, compression: str | None, offset: int, k: int) -> int:
        """The file line on which the k-th data row after byte `offset` (a row's start) begins: Python's csv
        module reads the rows as pyarrow does (a line end inside a quoted cell continues the row, an empty line
        is no row, a quote inside an unquoted cell is text), again from the start, as only a message needs it."""
        line = self._line_at(compression, offset)
        before = 0  # the lines before the row
        try:
            with io.BufferedReader(open_bytes(self.path, compression), HEADER_BYTES) as stream:
                skip_to(stream, offset, compression)
                text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
                reader = csv.reader(text, delimiter=self.spec.delimiter)
                for row in reader:
                    if row:
                        if k == 0:
                            break
                        k -= 1
                    before = reader.line_num
        except OSError as exc:
            raise unreadable(self.path, compression, exc) from None
        except csv.Error:  # a cell over the csv module's size limit: the line reached is the best answer
            pass
        return line + before

    def _not_finite(self, text: str, line: int) -> str | None:
        """The first cell of `text` (starting on file line `line`) that is a number but not a finite one, in words;
        None when its sums went beyond float64 from finite values alone (the finite check says so later)."""
        reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=self.spec.delimiter)
        before = 0
        with contextlib.suppress(csv.Error):
            for row in reader:
                number, before = line + before, reader.line_num
                for col in (c for c in self.columns if c not in self.text and c < len(row)):
                    cell = row[col].strip(ASCII_BLANKS)
                    if NUMBER.fullmatch(cell) and not math.isfinite(value := float(cell)):
                        return (
                            f"data file {self.path}, line {number}, column {self.names[col]!r}: the value is {value}, "
                            "not a finite number. Fix or drop those rows."
                        )
        return None

    def _problem(self, data: bytes, line: int, exc: Exception) -> str:
        """The first malformed row of `data` (which starts on file line `line`), in words; pyarrow's message
        names neither the line nor the column."""
        text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
        try:
            return self._first_bad_row(text, line, exc)
        except csv.Error:  # a field past the csv module's limit, which pyarrow could not take either
            limit = csv.field_size_limit()
            long = next((i for i, piece in enumerate(text.split("\n")) if len(piece) > limit), None)
            at = f", line {line + long}" if long is not None else ""
            return (
                f"data file {self.path}{at}: a field is longer than {limit:,} characters, far more than a number or a "
                "level needs (an unclosed quote joins the lines after it into one field). Check the file there."
            )

    def _first_bad_row(self, text: str, line: int, exc: Exception) -> str:
        path, names, columns, delimiter = self.path, self.names, self.columns, self.spec.delimiter
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        width = len(names)
        before = 0  # the lines before the row (a quoted cell may hold line ends)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error:  # a field past the csv module's limit: a quote that never closes, on the row's line
                if '"' not in text:  # or a field that long without one (_problem says so)
                    raise
                return unclosed(path, line + before)
            number, before = line + before, reader.line_num
            if not row:
                continue
            if len(row) != width:
                span = reader.line_num - (number - line)  # the lines the row took
                runs_on = span > 1 and any("\n" in cell or "\r" in cell for cell in row)
                if runs_on and next(reader, None) is None:  # its quoted cell ran on to the end: it never closes
                    return unclosed(path, number)
                quote = f" A quote on it opens a cell that runs on for {span} lines: is its closing quote missing?"
                quote = quote if runs_on else ""
                return (
                    f"data file {path}, line {number}: has {len(row)} fields but the first line has {width}.{quote} "
                    f"Every row needs {width} fields separated by {delimiter!r}; check that line "
                    "(or data.delimiter)."
                )
            for col in columns:
                cell = row[col]
                if self.spec.missing == "drop" and cell.strip() in MISSING:
                    continue
                if "\ufffd" in cell:
                    return (
                        f"data file {path}, line {number}, column {names[col]!r}: the cell is not UTF-8 text. "
                        "Save the file as UTF-8 CSV."
                    )
                where = f"data file {path}, line {number}, column {names[col]!r}"
                if (
                    cell.strip() in MISSING
                    and not NUMBER.fullmatch(cell.strip())
                    and (col not in self.text or not cell)
                ):
                    noun = "a level" if col in self.text else "a number"
                    what = f"{cell!r} is not {noun}: the cell is {'missing' if cell.strip() else 'empty'}"
                    return (
                        f"{where}: {what}. Fill it, or drop the rows with a missing cell: "
                        "data.missing: drop (--set data.missing=drop)."
                    )
                if col in self.text:
                    continue
                if not NUMBER.fullmatch(cell.strip(ASCII_BLANKS)):  # pyarrow trims ASCII blanks, not U+00A0
                    if comma := decimal_comma(cell):
                        return f"{where}: {cell!r} is not a number.{comma}"
                    if NUMBER.fullmatch(cell.strip()) and ("\n" in cell or "\r" in cell):
                        return f"{where}: {cell!r} is not a number: its quotes hold a line end. Remove it there."
                    if NUMBER.fullmatch(cell.strip()):  # a number beside an invisible character
                        odd = next(c for c in cell if c.isspace() and c not in ASCII_BLANKS)
                        return (
                            f"{where}: {cell!r} is not a number: it holds the invisible character U+{ord(odd):04X} "
                            f"({unicodedata.name(odd, 'a space').lower()}), as spreadsheets write for a thousands "
                            "separator or padding. Remove it from the file (e.g. sed 's/\\xc2\\xa0//g' for U+00A0)."
                        )
                    words = _words(text, col, delimiter)
                    if col != columns[-1] and words:
                        shown = ", ".join(repr(w) for w in words)
                        return (
                            f"{where}: {cell!r} is not a number: the column holds text ({shown}, ...). To use it as a "
                            f"categorical feature, one indicator column per level, declare it: data.categorical: "
                            f"[{names[col]}] (--set 'data.categorical=[{names[col]}]'); or leave it out by listing "
                            "the other columns in data.features."
                        )
                    fix = (
                        "Fix the cell or drop the row (this is the target column)."
                        if col == columns[-1]
                        else "Fix the cell, or leave the column out by listing the others in data.features."
                    )
                    return f"{where}: {cell!r} is not a number. " + fix
                if not math.isfinite(value := float(cell.strip(ASCII_BLANKS))):  # before the cell pyarrow refused
                    return f"{where}: the value is {value}, not a finite number. Fix or drop those rows."
        reason = str(exc).splitlines()[0]
        return (
            f"data file {path} could not be parsed as CSV with delimiter {delimiter!r} ({reason}). "
            "Check data.delimiter."
        )


def _words(text: str, col: int, delimiter: str, rows: int = 1000) -> list[str]:
    """A few distinct cells of column `col` when most of its first `rows` cells are text, not numbers; else []."""
    words: list[str] = []
    numbers = others = 0
    for row in itertools.islice(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), rows):
        if len(row) <= col or not row[col].strip():
            continue
        if NUMBER.fullmatch(row[col].strip()):
            numbers += 1
            continue
        others += 1
        if row[col] not in words and len(words) < 4:
            words.append(row[col])
    return words if others > numbers else []


def _unplaced(row: int) -> int:
    return 0


def _line(path: Path, line: Callable[[int], int], at: int, row: int) -> str:
    return f"data file {path}, line {line(at + row)}"
