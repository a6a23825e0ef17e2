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
from lrtrain.design import Levels, indicators, levels_of
from lrtrain.errors import DataError
from lrtrain.sources.base import Dropped, Table, scratch_mapping

Place = Callable[[int], str]  # a row of the batch -> "data file F, line L" (or row R), for messages


def doubles(array: Any) -> np.ndarray:
    """A float64 Arrow array without nulls as a NumPy view of its buffer (no copy; Array.to_numpy would import
    pandas, 60 MB and 0.2 s, where it is installed)."""
    view: np.ndarray = np.frombuffer(array.buffers()[1], dtype=np.float64, count=len(array), offset=array.offset * 8)
    return view


class Coder:
    """A categorical column's codes: each text value's place in the order of first appearance."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str] = []
        self.index: dict[str, int] = {}

    def codes(self, array: Any, missing: str, place: Place) -> np.ndarray:
        """The column's codes as float64, NaN where a cell is null (or empty text: missing too)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        encoded = array if pa.types.is_dictionary(array.type) else pc.dictionary_encode(array)
        values = ["" if v is None else str(v) for v in encoded.dictionary.to_pylist()]
        mapping = np.array([np.nan if v == "" else float(self._code(v)) for v in values] + [np.nan])
        indices = pc.cast(encoded.indices.fill_null(len(values)), pa.int64())
        out = mapping[
            np.frombuffer(indices.buffers()[1], dtype=np.int64, count=len(indices), offset=indices.offset * 8)
        ]
        if missing == "error" and np.isnan(out).any():
            row = int(np.flatnonzero(np.isnan(out))[0])
            raise DataError(
                f"{place(row)}, column {self.name!r}: '' is not a level: the cell is empty. Fill it, or drop the "
                "rows with a missing cell: data.missing: drop (--set data.missing=drop)."
            )
        return out

    def _code(self, value: str) -> int:
        code = self.index.get(value)
        if code is None:
            code = self.index[value] = len(self.seen)
            self.seen.append(value)
        return code


def batch_rows(
    columns: list[Any],
    names: list[str],
    coders: dict[int, Coder],
    missing: str,
    place: Place,
    counts: np.ndarray,
    into: np.ndarray | None = None,
) -> np.ndarray:
    """One batch of the chosen columns as float64 rows, categorical columns as codes. A null is an error, or
    with data.missing: drop its row is left out and counted in `counts` (per column), as is a NaN then.
    `into` (the batch's rows of the table, data.missing: error only) receives the rows, and is returned."""
    import pyarrow as pa

    rows = len(columns[0]) if columns else 0
    out = np.empty((rows, len(columns))) if into is None else into
    for j, column in enumerate(columns):
        if j in coders:
            out[:, j] = coders[j].codes(column, missing, place)
            continue
        if column.null_count or column.type != pa.float64():
            import pyarrow.compute as pc  # only here: a plain float64 column needs none of it (nor its memory)
        if column.null_count:
            if missing == "error":
                row = pc.index(pc.is_null(column), True).as_py()
                raise DataError(
                    f"{place(row)}, column {names[j]!r}: the value is missing (null). Fill it, drop the rows with a "
                    "missing cell (data.missing: drop), or leave the column out with data.features."
                )
            column = pc.fill_null(pc.cast(column, pa.float64()), np.nan)
        elif column.type != pa.float64():
            column = pc.cast(column, pa.float64())
        out[:, j] = doubles(column)
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


def finish(
    table: np.ndarray,
    names: list[str],
    coders: dict[int, Coder],
    counts: np.ndarray,
    read: int,
    origin: str,
    first_line: int | None,
    scratch: bool,
    union: Callable[[list[str]], list[str]] = list,
) -> Table:
    """The source: the rows (features, then the target) with each categorical column's codes expanded to its
    indicator columns, and what data.missing: drop left out of the `read` rows. `union` gives a column's levels
    in every process's rows from those in this one's (under torchrun, where each read a share of the rows)."""
    if table.shape[0] == 0:
        what = "every row has a missing cell (data.missing: drop)" if read else "it has no rows"
        raise DataError(f"{origin} has no rows to train on: {what}. Training needs at least one row.")
    dropped = None
    if read > table.shape[0]:
        dropped = Dropped(read - table.shape[0], {n: int(c) for n, c in zip(names, counts, strict=True) if c})
        first_line = None  # the rows after a dropped one are no longer at first_line + row
    if not coders:
        return Table(table[:, :-1], table[:, -1], names[:-1], names[-1], origin, first_line, (), dropped)
    levels: dict[int, Levels] = {}
    for j, coder in coders.items():
        present = np.zeros(len(coder.seen), dtype=bool)
        for at in range(0, table.shape[0], BLOCK_ROWS):  # the levels of the rows kept, not of those dropped
            present[table[at : at + BLOCK_ROWS, j].astype(np.intp)] = True
        levels[j] = levels_of(names[j], union([v for v, kept in zip(coder.seen, present, strict=True) if kept]), origin)
    features = [n for j, name in enumerate(names[:-1]) for n in (levels[j].names if j in levels else [name])]
    width = len(features) + 1

    def expanded() -> Iterator[np.ndarray]:
        for at in range(0, table.shape[0], BLOCK_ROWS):
            part = np.asarray(table[at : at + BLOCK_ROWS])
            pieces = []
            for j in range(part.shape[1]):
                if j in levels:
                    seen = np.array(coders[j].seen, dtype=object)
                    pieces.append(indicators(levels[j], seen[part[:, j].astype(np.intp)], origin, at))
                else:
                    pieces.append(part[:, j : j + 1])
            yield np.hstack(pieces)

    def fill(out: IO[bytes]) -> tuple[int, ...]:
        for part in expanded():
            part.tofile(out)
        return (table.shape[0], width)

    if scratch:
        rows = scratch_mapping(fill, np.dtype(np.float64))
    else:
        rows = np.empty((table.shape[0], width))
        for at, part in zip(range(0, table.shape[0], BLOCK_ROWS), expanded(), strict=True):
            rows[at : at + len(part)] = part
    kept = tuple(levels[j] for j in sorted(levels))
    return Table(rows[:, :-1], rows[:, -1], features, names[-1], origin, first_line, kept, dropped)
