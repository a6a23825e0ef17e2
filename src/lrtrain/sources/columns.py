"""From Arrow columns to the float64 rows of a table: categorical columns coded, missing cells refused or dropped.

The CSV and Parquet readers hand every batch of their chosen columns here. A categorical column is
first stored as codes (its levels in order of appearance), since its levels are known only once
every row is read; `expand` then turns the codes into the indicator columns of lrtrain.design,
the function that will encode rows given for prediction too. With data.missing: drop, a row with
a missing cell (null, or NaN) in any chosen column is left out here and counted per column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np

from lrtrain.blocks import BLOCK_ROWS
from lrtrain.config import CsvData, ParquetData
from lrtrain.design import Levels, cell_text, indicators, levels_of
from lrtrain.errors import DataError
from lrtrain.moments import Tally
from lrtrain.sources.base import Dropped, Table, resident, scratch_mapping

Place = Callable[[int], str]  # a row of the batch -> "data file F, line L" (or row R), for messages


def doubles(array: Any) -> np.ndarray:
    """A float64 Arrow array without nulls as a NumPy view of its buffer (no copy; Array.to_numpy would import
    pandas, 60 MB and 0.2 s, where it is installed)."""
    view: np.ndarray = np.frombuffer(array.buffers()[1], dtype=np.float64, count=len(array), offset=array.offset * 8)
    return view


class Coder:
    """A categorical column's codes: each distinct cell's place in the order of first appearance. A cell is kept
    as its text without surrounding spaces (a number's text: lrtrain.design.levels_of decides, once every cell is
    read, whether the column's levels are numbers). A cell of text in `nulls` (a CSV's NA, NULL, nan, ...) is
    missing, as in a numeric column of the same file, whatever data.missing says."""

    def __init__(self, name: str, nulls: frozenset[str] = frozenset()) -> None:
        self.name = name
        self.nulls = nulls
        self.seen: list[str] = []
        self.index: dict[str, int] = {}

    def codes(self, array: Any, missing: str, place: Place) -> np.ndarray:
        """The column's codes as float64, NaN where a cell is missing: null, NaN, empty text (spaces alone), or
        text in `nulls`."""
        import pyarrow as pa
        import pyarrow.compute as pc

        encoded = array if pa.types.is_dictionary(array.type) else pc.dictionary_encode(array)
        values = [cell_text(v).strip() for v in encoded.dictionary.to_pylist()]
        mapping = np.array([np.nan if v == "" or v in self.nulls else float(self._code(v)) for v in values] + [np.nan])
        indices = pc.cast(encoded.indices, pa.int64())  # a null's slot filled in NumPy, not through a pyarrow
        at = np.frombuffer(indices.buffers()[1], dtype=np.int64, count=len(indices), offset=indices.offset * 8)
        if indices.null_count:  # scalar (which imports pandas): the last place of `mapping`, NaN
            at = np.where(_valid(indices), at, len(values))
        out = mapping[at]
        if missing == "error" and np.isnan(out).any():
            row = int(np.flatnonzero(np.isnan(out))[0])
            cell = values[at[row]] if at[row] < len(values) else ""
            why = "the cell is empty" if cell == "" else "it marks a missing cell, as in a column of numbers"
            raise DataError(
                f"{place(row)}, column {self.name!r}: {cell!r} is not a level: {why}. Fill it, or drop the rows with "
                "a missing cell: data.missing: drop (--set data.missing=drop)."
            )
        return out

    def _code(self, value: str) -> int:
        code = self.index.get(value)
        if code is None:
            code = self.index[value] = len(self.seen)
            self.seen.append(value)
        return code


def batch_rows(
    columns: list[Any], names: list[str], coders: dict[int, Coder], missing: str, place: Place, counts: np.ndarray
) -> np.ndarray:
    """One batch of the chosen columns as float64 rows, categorical columns as codes. A null is an error, or
    with data.missing: drop its row is left out and counted in `counts` (per column), as is a NaN then."""
    rows = len(columns[0]) if columns else 0
    out = np.empty((rows, len(columns)))
    for j, column in enumerate(columns):
        out[:, j] = _values(j, column, names, coders, missing, place)
    if missing == "error":
        return out
    gaps = np.isnan(out)
    counts += gaps.sum(axis=0)
    bad = np.isinf(out)
    if bad.any():  # named here, where the row's place is still known (dropping moves the rows after it)
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{place(row)}, column {names[col]!r}: the value is {out[row, col]}, not a finite number. "
            "Fix or drop those rows."
        )
    keep = ~gaps.any(axis=1)
    return out if keep.all() else out[keep]


def batch_into(
    columns: list[Any], names: list[str], coders: dict[int, Coder], place: Place, into: Filling
) -> tuple[np.ndarray, np.ndarray]:
    """One batch of the chosen columns (data.missing: error: every row is kept) written straight into the
    table's next rows, column by column: no batch of rows is made on the way. Those rows (features, target)."""
    rows = len(columns[0]) if columns else 0
    x, y = into.next_rows(rows)
    for j, column in enumerate(columns):
        (x[:, j] if j < x.shape[1] else y)[:] = _values(j, column, names, coders, "error", place)
    return x, y


def _values(j: int, column: Any, names: list[str], coders: dict[int, Coder], missing: str, place: Place) -> np.ndarray:
    """Column j of a batch as float64 values (codes for a categorical one), NaN for a null with data.missing: drop."""
    import pyarrow as pa

    if j in coders:
        return coders[j].codes(column, missing, place)
    if column.type != pa.float64():
        import pyarrow.compute as pc  # only here: a plain float64 column needs none of it (nor its memory)

        column = pc.cast(column, pa.float64(), safe=False)  # an integer beyond 2**53 rounds, as NumPy's astype does
    if not column.null_count:
        return doubles(column)
    valid = _valid(column)  # in NumPy: a null filled through a pyarrow scalar would import pandas (0.2 s)
    if missing == "error":
        first = int(np.flatnonzero(~valid)[0])
        values = doubles(column)[:first]  # an infinity above the null is the first bad cell
        if not np.all(np.isfinite(values)):
            row = int(np.argmax(~np.isfinite(values)))
            raise DataError(
                f"{place(row)}, column {names[j]!r}: the value is {values[row]}, not a finite number. Fix or drop "
                "those rows."
            )
        raise DataError(
            f"{place(first)}, column {names[j]!r}: the value is missing (null). Fill it, "
            "drop the rows with a missing cell (data.missing: drop), or leave the column out with data.features."
        )
    return np.where(valid, doubles(column), np.nan)


def _valid(array: Any) -> np.ndarray:
    """Which cells of an Arrow array hold a value (its validity bitmap, one bit a cell from its offset)."""
    bits = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little")[array.offset : array.offset + len(array)].astype(bool)


class Filling:
    """A table read into memory: the features (N, D) and the target (N,) as two C-contiguous arrays, so that
    every later pass over X is one BLAS call on contiguous memory. Its pages are mapped up front (see
    sources.base.resident). `expected` is the row count when known, else an estimate: the arrays grow
    (by half again, a copy) when more rows come."""

    def __init__(self, expected: int, width: int) -> None:
        self.x, self.y = resident((expected, width - 1)), np.empty(expected)
        self.rows = 0

    def next_rows(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The places of the next `count` rows (features, target), which the caller fills."""
        start, self.rows = self.rows, self.rows + count
        if self.rows > len(self.y):
            size = max(self.rows, len(self.y) * 3 // 2)
            x, y = resident((size, self.x.shape[1])), np.empty(size)
            x[:start], y[:start] = self.x[:start], self.y[:start]
            self.x, self.y = x, y
        return self.x[start : self.rows], self.y[start : self.rows]

    def append(self, block: np.ndarray) -> None:
        """Rows already made (features, then the target)."""
        x, y = self.next_rows(len(block))
        x[:], y[:] = block[:, :-1], block[:, -1]

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[: self.rows], self.y[: self.rows]


def finish(
    table: np.ndarray | tuple[np.ndarray, np.ndarray],
    names: list[str],
    coders: dict[int, Coder],
    counts: np.ndarray,
    read: int,
    origin: str,
    first_line: int | None,
    scratch: bool,
    tally: Tally,
    union: Callable[[list[str]], list[str]] = list,
    full: bool = False,
) -> Table:
    """The source: the rows (features, then the target; or the pair of them, as a Filling gives them) with
    each categorical column's codes expanded to its indicator columns, and what data.missing: drop left out
    of the `read` rows. `tally` holds the sums of the rows as read (categorical columns as codes), which the
    table keeps as its moments; with categorical columns those of the expanded rows are tallied here. `union`
    gives a column's levels in every process's rows from those in this one's (under torchrun, where each read
    a share of the rows). With `full` (a model without an intercept) the first categorical column is coded in
    full, an indicator for each of its levels (lrtrain.design)."""
    x, y = (table[:, :-1], table[:, -1]) if isinstance(table, np.ndarray) else table
    n = len(y)
    if n == 0:
        what = "every row has a missing cell (data.missing: drop)" if read else "it has no rows"
        raise DataError(f"{origin} has no rows to train on: {what}. Training needs at least one row.")
    dropped = None
    if read > n:
        dropped = Dropped(read - n, {name: int(c) for name, c in zip(names, counts, strict=True) if c})
        first_line = None  # the rows after a dropped one are no longer at first_line + row
    if not coders:
        return Table(x, y, names[:-1], names[-1], origin, first_line, (), dropped, **_known(tally))
    levels: dict[int, Levels] = {}
    for j, coder in coders.items():
        present = np.zeros(len(coder.seen), dtype=bool)
        for at in range(0, n, BLOCK_ROWS):  # the levels of the rows kept, not of those dropped
            present[x[at : at + BLOCK_ROWS, j].astype(np.intp)] = True
        cells = union([v for v, kept in zip(coder.seen, present, strict=True) if kept])
        levels[j] = levels_of(names[j], cells, origin, full=full and j == min(coders))
    features = [name for j, column in enumerate(names[:-1]) for name in (levels[j].names if j in levels else [column])]
    width = len(features) + 1
    tally = Tally(width - 1, sums=tally.summing)

    def expanded() -> Iterator[np.ndarray]:
        for at in range(0, n, BLOCK_ROWS):
            part = np.asarray(x[at : at + BLOCK_ROWS])
            pieces = []
            for j in range(part.shape[1]):
                if j in levels:
                    seen = np.array(coders[j].seen, dtype=object)
                    # the levels were made from these very cells, so each names one: no error to place
                    pieces.append(indicators(levels[j], seen[part[:, j].astype(np.intp)]))
                else:
                    pieces.append(part[:, j : j + 1])
            pieces.append(np.asarray(y[at : at + BLOCK_ROWS])[:, None])
            rows = np.hstack(pieces)
            tally.add(rows[:, :-1], rows[:, -1])
            yield rows

    def fill(out: IO[bytes]) -> tuple[int, ...]:
        for part in expanded():
            part.tofile(out)
        return (n, width)

    kept = tuple(levels[j] for j in sorted(levels))
    if scratch:
        rows = scratch_mapping(fill, np.dtype(np.float64))
        return Table(rows[:, :-1], rows[:, -1], features, names[-1], origin, first_line, kept, dropped, **_known(tally))
    filling = Filling(n, width)
    for part in expanded():
        filling.append(part)
    x, y = filling.table()
    return Table(x, y, features, names[-1], origin, first_line, kept, dropped, **_known(tally))


def tally_for(spec: CsvData | ParquetData, d: int) -> Tally:
    """What a reader tallies of the rows it makes (moments.Tally): their sums of products, where the rows as read
    are the rows trained on (no validation split, no standardization); else only their sums."""
    return Tally(d, sums=spec.validation == 0 and not spec.standardize)


def _known(tally: Tally) -> dict[str, Any]:
    """What the sums of the rows tell a table: that its values are finite, and its moments."""
    return {"finite": tally.finite, "moments": tally.moments()}
