"""CSV files: a header (or none), a delimiter, the target and feature columns by name or index.

A file up to LRTRAIN_CSV_STREAM_BYTES (256 MB) is parsed in one go; a larger one, or any under
torchrun, in chunks into a memory-mapped table in a nameless temporary file, so memory stays
bounded by the chunk. Every problem names the file, the line and the column.
"""

from __future__ import annotations

import csv
import itertools
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np

from lrtrain.config import CsvData
from lrtrain.errors import DataError
from lrtrain.sources.base import Table, open_checked, scratch_mapping


def read(spec: CsvData, scratch: bool = False) -> Table:
    """The CSV's columns as float64; with `scratch` (under torchrun) parsed into a mapped temporary table."""
    path = Path(spec.path)
    open_checked(path, "CSV")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a BOM (Excel) is not a name
            first = next(csv.reader(handle, delimiter=spec.delimiter), [])
    except UnicodeDecodeError:
        raise DataError(f"data file {path} is not UTF-8 text. Is it a CSV file? Save it as UTF-8 CSV.") from None
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}. Check its permissions.") from None
    width = len(first)
    names = [n.strip() for n in first] if spec.header else [f"x{i}" for i in range(width)]
    if spec.header and len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"data file {path}: column name {dup!r} appears twice in the header. Rename one of them.")
    target = _column(spec.target if spec.target is not None else width - 1, names, path, "data.target", spec.header)
    if spec.features is None:
        features = [i for i in range(width) if i != target]
    else:
        features = [_column(f, names, path, "data.features", spec.header) for f in spec.features]
        if target in features:
            raise DataError(
                f"data file {path}: column {names[target]!r} is both the target and a feature. "
                "Remove it from data.features or choose another data.target."
            )
    if not features:
        raise DataError(
            f"data file {path} has only one column ({names[target]!r}), the target: there are no features. "
            f"A CSV needs at least two columns; if its fields are not separated by {spec.delimiter!r}, "
            "set data.delimiter (e.g. ';' or '\\t')."
        )
    columns = [*features, target]
    try:
        if scratch or path.stat().st_size > _stream_bytes():
            table = _csv_streamed(path, spec, names, columns)
        else:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                if spec.header:
                    handle.readline()
                table = _csv_parsed(handle, spec, names, columns, path)
    except UnicodeDecodeError as exc:  # a bad byte past the first line
        raise DataError(
            f"data file {path} is not UTF-8 text: byte {exc.start} of a read block cannot be decoded. "
            "Save the file as UTF-8 CSV."
        ) from None
    if table.shape[0] == 0:
        raise DataError(f"data file {path} has a header but no data rows. Add rows of numbers below the header.")
    x, y, first_line = table[:, :-1], table[:, -1], 2 if spec.header else 1
    return Table(x, y, [names[i] for i in features], names[target], f"data file {path}", first_line)


CSV_CHUNK_ROWS = 65536  # rows parsed at a time when a CSV file is streamed


def _stream_bytes() -> int:
    """CSV files above this size are parsed in chunks into a memory-mapped table on disk."""
    return int(os.environ.get("LRTRAIN_CSV_STREAM_BYTES", str(256 << 20)))


def _csv_parsed(lines: Iterable[str], spec: CsvData, names: list[str], columns: list[int], path: Path) -> np.ndarray:
    """Rows of numbers, columns in the order asked for; any problem becomes an exact DataError."""
    every_column = len(columns) == len(names)  # then rows of the wrong length are caught too
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": reported by the caller, in words
            table = np.loadtxt(
                lines,
                delimiter=spec.delimiter,
                usecols=None if every_column else columns,
                ndmin=2,
                dtype=np.float64,
                comments=None,
                quotechar='"',
            )
    except UnicodeDecodeError:
        raise
    except (ValueError, IndexError):
        raise DataError(_csv_problem(path, spec, names, columns)) from None
    if table.shape[0] > 0 and table.shape[1] != (len(names) if every_column else len(columns)):
        raise DataError(_csv_problem(path, spec, names, columns))  # e.g. one data row, shorter than the header
    return table[:, columns] if every_column and columns != list(range(len(names))) else table


def _csv_streamed(path: Path, spec: CsvData, names: list[str], columns: list[int]) -> np.ndarray:
    """Parse a large CSV chunk by chunk into a float64 table in a temporary file, memory-mapped:
    memory stays bounded by the chunk, whatever the file's size."""

    def fill(out: IO[bytes]) -> tuple[int, ...]:
        rows = 0
        with path.open(newline="", encoding="utf-8-sig") as handle:
            if spec.header:
                handle.readline()
            while chunk := list(itertools.islice(handle, CSV_CHUNK_ROWS)):
                table = _csv_parsed(chunk, spec, names, columns, path)
                table.tofile(out)
                rows += len(table)
        return (rows, len(columns))

    return scratch_mapping(fill, np.dtype(np.float64))


def _column(ref: str | int, names: list[str], path: Path, key: str, header: bool) -> int:
    if isinstance(ref, int):
        index = ref if ref >= 0 else len(names) + ref
        if not 0 <= index < len(names):
            raise DataError(
                f"data file {path} has {len(names)} columns, so {key} = {ref} is out of range. "
                f"Use an index from 0 to {len(names) - 1}."
            )
        return index
    if not header:
        raise DataError(
            f"{key} = {ref!r} names a column, but data.header is false so {path} has no column names. "
            "Use a 0-based column index, or set data.header to true."
        )
    if ref not in names:
        import difflib

        close = difflib.get_close_matches(ref, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"data file {path} has no column {ref!r} ({key}).{hint} Its columns are: {', '.join(names)}.")
    return names.index(ref)


def _csv_problem(path: Path, spec: CsvData, names: list[str], columns: list[int]) -> str:
    """Find the first malformed row for an exact message (the fast parser's is vague)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=spec.delimiter)
        width = len(names)
        for line_number, row in enumerate(reader, start=1):
            if line_number == 1 and spec.header:
                continue
            if not row:
                continue
            if len(row) != width:
                return (
                    f"data file {path}, line {line_number}: has {len(row)} fields but the first line has {width}. "
                    f"Every row needs {width} fields separated by {spec.delimiter!r}; check that line "
                    "(or data.delimiter)."
                )
            for col in columns:
                try:
                    float(row[col])
                except ValueError:
                    fix = (
                        "Fix the cell or drop the row (this is the target column)."
                        if col == columns[-1]
                        else "Fix the cell, or leave the column out by listing the others in data.features."
                    )
                    return (
                        f"data file {path}, line {line_number}, column {names[col]!r}: {row[col]!r} is not a number. "
                        + fix
                    )
    return f"data file {path} could not be parsed as CSV with delimiter {spec.delimiter!r}. Check data.delimiter."
