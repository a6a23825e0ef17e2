"""A table's cells as a saved model's inputs, for `predict --data` and `evaluate` (lrtrain.scoring).

Each of the model's features is the table's column of the same name, and a categorical column's
level names become its indicator features, `column[level]` (lrtrain.design, as in training).
Every cell is checked: one that is missing, one that is not a finite number, a level the model
never saw. When a batch holds several bad cells, the first in the file is named (row by row, and
in a row column by column), as training names the first bad cell of its data.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import numpy as np

from lrtrain.design import Levels, cell_text, indicators
from lrtrain.errors import DataError
from lrtrain.model import Model
from lrtrain.sources.columns import doubles
from lrtrain.sources.delimited import MISSING, NUMBER, decimal_comma

MISSING_CELLS = frozenset(cell.strip() for cell in MISSING)  # as training reads a categorical column's cells

T = TypeVar("T")


class TableFile(Protocol):
    """What a message needs of the table (lrtrain.scoring.TableFile): its name and where a row is."""

    @property
    def kind(self) -> str: ...  # "csv" or "parquet"

    @property
    def origin(self) -> str: ...

    def at(self, row: int) -> str: ...  # the file and the line or row of data row `row`


class BadCell(DataError):
    """A bad cell, said in words (what follows its place), and the row of the table it is in: `inputs` names the
    first of several, its place found only for it (a CSV's line takes a read of the file up to it)."""

    def __init__(self, what: str, row: int) -> None:
        super().__init__(what)
        self.row = row


def inputs(
    model: Model, batch: Any, table: TableFile, first_row: int, target: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's inputs for the rows of `batch` (the first is row `first_row` of the table), (rows, features)
    float64, and with `target` the target column's values (else None); the first bad cell is an error naming it."""
    names = batch.schema.names
    coded = {levels.column: levels for levels in model.categorical}
    made = {feature: name for name, levels in coded.items() for feature in levels.names}  # indicator -> column
    missing = sorted({made.get(name, name) for name in model.features if made.get(name, name) not in names})
    if missing:
        raise DataError(
            f"{table.origin} has no column {', '.join(map(repr, missing))}, which the model in {model.path} takes "
            f"as input (its features: {', '.join(model.features)}). The file's columns are: {', '.join(names)}. "
            "Name the file's columns as the model's features, or use a model trained on these columns."
        )
    failures: list[tuple[int, int, BadCell]] = []

    def checked(column: str, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except BadCell as exc:  # the other columns are still read: one of them may hold an earlier bad cell
            failures.append((exc.row, names.index(column), exc))
            return None

    encoded = {
        name: checked(name, functools.partial(_coded, batch, levels, table, first_row))
        for name, levels in coded.items()
    }
    plain = {
        name: checked(name, functools.partial(numbers, batch.column(name), name, table, first_row))
        for name in model.features
        if name not in made
    }
    y = None
    if target:
        column = batch.column(model.target)
        y = checked(model.target, functools.partial(numbers, column, model.target, table, first_row))
    if failures:
        row, _, first = min(failures, key=lambda failure: failure[:2])
        raise DataError(f"{table.at(row)}, {first}")
    x = np.empty((batch.num_rows, len(model.features)))
    for j, name in enumerate(model.features):
        x[:, j] = encoded[made[name]][name] if name in made else plain[name]  # type: ignore[index]
    return x, y


def _coded(batch: Any, levels: Levels, table: TableFile, first_row: int) -> dict[str, np.ndarray]:
    """A categorical column's indicator features by name, each cell's level checked first: a missing cell (empty,
    null, or a CSV's NA, NULL, nan, ...: as training read it) or a level the model never saw is an error naming it."""
    texts = _texts(batch.column(levels.column))
    nulls = MISSING_CELLS if table.kind == "csv" else frozenset({""})
    known: dict[str, bool] = {}  # each distinct cell is looked up once
    for row, text in enumerate(texts):
        if known.setdefault(text, levels.find(text) is not None):
            continue
        if text.strip() not in nulls:
            raise BadCell(levels.unseen(text), first_row + row)
        why = "the cell is empty" if text.strip() == "" else "it marks a missing cell"
        raise BadCell(
            f"column {levels.column!r}: {text.strip()!r} is not a level: {why}, and a prediction needs the "
            "level. Fill it, or leave the row out.",
            first_row + row,
        )
    return dict(zip(levels.names, indicators(levels, texts).T, strict=True))


def _texts(column: Any) -> list[str]:
    """A categorical column's cells as the text training read its levels from (lrtrain.design.cell_text)."""
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return [cell_text(value) for value in column.to_pylist()]


def numbers(column: Any, name: str, table: TableFile, first_row: int) -> np.ndarray:
    """A column as finite float64 values; an error naming the first cell that is missing or not a finite number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        column = pc.utf8_trim_whitespace(column)
        try:
            column = pc.cast(column, pa.float64())
        except pa.ArrowInvalid:
            raise _not_numbers(column.to_pylist(), name, table, first_row) from None
    elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
        raise DataError(
            f"{table.origin}: column {name!r} holds {kind} values, not numbers. "
            "Write it as a numeric column (integer, float or decimal)."
        )
    column = pc.cast(column, pa.float64(), safe=False)  # an integer beyond 2**53 rounds, as in training
    empty = pc.index(pc.is_null(column), True).as_py() if column.null_count else -1
    values = doubles(pc.fill_null(column, 0.0) if column.null_count else column)
    bad = ~np.isfinite(values)
    row = int(np.argmax(bad)) if bad.any() else -1
    if empty >= 0 and (row < 0 or empty < row):
        raise _missing(first_row + empty, name)
    if row >= 0:
        raise _not_finite(first_row + row, name, float(values[row]))
    return values


def _not_numbers(cells: list[str], name: str, table: TableFile, first_row: int) -> DataError:
    """The first cell of a text column that is empty or not a number, in words."""
    for row, cell in enumerate(cells):
        if not cell:
            return _missing(first_row + row, name)
        if not NUMBER.fullmatch(cell):
            fix = decimal_comma(cell) or " Fix the cell, or remove the row from the file."
            return BadCell(f"column {name!r}: {cell!r} is not a number.{fix}", first_row + row)
        if not math.isfinite(value := float(cell)):
            return _not_finite(first_row + row, name, value)
    return DataError(f"{table.at(first_row)} or below it, column {name!r}: a cell is not a number.")


def _not_finite(row: int, name: str, value: float) -> BadCell:
    return BadCell(
        f"column {name!r}: the value is {value}, not a finite number. Fix the cell, or remove the row from the file.",
        row,
    )


def _missing(row: int, name: str) -> BadCell:
    return BadCell(
        f"column {name!r}: the cell is empty. "
        "Every row needs a number for each of the model's features (and the target in evaluate): "
        "fill the cell, or remove the row from the file.",
        row,
    )
