"""Categorical columns as indicator columns: treatment coding against a baseline level.

A categorical column with levels l0 < l1 < ... < lk (sorted: as numbers when every level is one,
else as text, the order statsmodels' `C(column)` uses) becomes k indicator columns named
`column[l1]` ... `column[lk]`, each 1 where the row holds that level and 0 elsewhere; the
baseline l0 is the row of zeros, so each weight is that level's difference from the baseline.
In a model without an intercept the first categorical column is coded in full, as R and
statsmodels code it (`y ~ 0 + C(column)`): k + 1 indicators, `column[l0]` too, each weight that
level's own constant; without it, the baseline level would be forced through the origin.

What a cell names is decided per column, as pandas' `read_csv` decides a column's type before
statsmodels sees it: when every cell is a number, the levels are numbers (1, 1.0, 01 and +1e0 are
one level, named by the number's shortest text: "1", "2.5"), so a CSV column and the same column
stored as integers or floats in Parquet have the same levels; otherwise the levels are the cells'
text, without surrounding spaces. Training encodes the rows read with `indicators`; the levels are
saved in model.json so that rows given later are encoded by the same rule, a level unseen in
training being an error. NumPy is imported only by `indicators`: `lrtrain predict` encodes a few
samples with `Levels.find` and `Levels.row` in plain Python.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lrtrain.errors import DataError

if TYPE_CHECKING:
    import numpy as np

INTEGER = re.compile(r"[+-]?[0-9]+")
# a boolean cell as pandas' read_csv takes one (and a Parquet boolean's str()): a column of these alone is a
# column of booleans, its levels False and True however a file spells them (pyarrow writes true and false)
BOOLEAN = {"True": "True", "TRUE": "True", "true": "True", "False": "False", "FALSE": "False", "false": "False"}
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # ASCII only, as predict reads numbers


def number_text(cell: str) -> str | None:
    """The shortest text of the finite number a cell holds ('1' for 1, 1.0, 01, ' +1' and 1e0; '2.5' for 2.50),
    exact for integers of any length; None when the cell is not one."""
    text = cell.strip()
    if INTEGER.fullmatch(text) and len(text) <= 4000:  # Python converts at most 4300 digits
        return str(int(text))
    if not NUMBER.fullmatch(text):
        return None
    value = float(text)
    if not math.isfinite(value):  # 1e999
        return None
    from decimal import Decimal  # here: predict's start-up pays for it only for a level such as 1.0

    exact = Decimal(text)  # 9007199254740993.0 is that integer, which float64 would round to …992
    return str(int(exact)) if exact == exact.to_integral_value() else repr(value)


def cell_text(value: Any) -> str:
    """A table cell as the text a level is read from: '' for a null or a NaN (a missing cell), else str()."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return canonical(str(value))


def canonical(text: str) -> str:
    """Text in Unicode's composed form (NFC): 'café' typed with an accented é or with e and a combining accent
    looks the same and is one level, as the user reads it."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class Levels:
    """A categorical column's levels in order; the first is the baseline, unless the column is coded in `full`
    (an indicator for every level: the first categorical column of a model without an intercept)."""

    column: str
    levels: tuple[str, ...]
    full: bool = False

    @property
    def baseline(self) -> str | None:
        return None if self.full else self.levels[0]

    @property
    def coded(self) -> tuple[str, ...]:
        """The levels that have an indicator column: all of them in full coding, else all but the baseline."""
        return self.levels if self.full else self.levels[1:]

    @property
    def names(self) -> list[str]:
        """The indicator columns' names: `column[level]` for every level but the baseline (every one in full)."""
        return [f"{self.column}[{level}]" for level in self.coded]

    @cached_property
    def numeric(self) -> bool:
        """Whether the levels are numbers (each in its shortest text), so that a cell names one by its value."""
        return all(number_text(level) == level for level in self.levels)

    @cached_property
    def boolean(self) -> bool:
        """Whether the levels are False and True, so that a cell names one in any of pandas' spellings."""
        return self.levels == ("False", "True")

    @cached_property
    def _index(self) -> dict[str, int]:
        return {canonical(level): i for i, level in enumerate(self.levels)}

    def find(self, cell: str) -> int | None:
        """The place of the level a cell names (its number when the levels are numbers, else its text without
        surrounding spaces); None when it names none."""
        text = canonical(cell.strip())
        key = number_text(cell) if self.numeric else BOOLEAN.get(text, text) if self.boolean else text
        return None if key is None else self._index.get(key)

    def row(self, code: int) -> list[float]:
        """The indicator values of the level at `code`: 1 in its column, 0 elsewhere (all 0 for the baseline)."""
        return [float(i == code) for i in range(len(self.levels) - len(self.coded), len(self.levels))]

    def unseen(self, cell: str) -> str:
        """Why `cell` has no weight, and what to do: for an error that first says where the cell is."""
        known = ", ".join(repr(level) for level in self.levels[:20])
        more = f" and {len(self.levels) - 20} more" if len(self.levels) > 20 else ""
        return (
            f"column {self.column!r}: level {cell.strip()!r} was not seen in training, so the model has no weight "
            f"for it. The known levels are {known}{more}. Map it to one of them, or retrain with rows that hold it."
        )

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "levels": list(self.levels), "baseline": self.baseline}


def _as_number(text: str) -> float | None:
    return float(text) if number_text(text) is not None else None


def ordered(values: Iterable[str]) -> list[str]:
    """The distinct values sorted as statsmodels sorts a column's levels: numerically when every one is a
    number (9 before 10), else as text."""
    distinct = set(values)
    numbers = {v: _as_number(v) for v in distinct}
    if all(n is not None for n in numbers.values()):
        return sorted(distinct, key=lambda v: (numbers[v], v))
    return sorted(distinct)


def levels_of(column: str, values: Iterable[str], origin: str, full: bool = False) -> Levels:
    """The levels of a column whose cells are `values` (none empty): numbers when every cell is one, else the
    cells' text without surrounding spaces; coded in `full` or against the first. A single level is an error
    (an indicator would be constant)."""
    cells = [value.strip() for value in values]
    if cells and all(cell in BOOLEAN for cell in cells):  # true, FALSE, ...: booleans, as pandas reads them
        cells = [BOOLEAN[cell] for cell in cells]
    numbers = [number_text(cell) for cell in cells]
    levels = tuple(ordered(cells if None in numbers else [n for n in numbers if n is not None]))
    if len(levels) < 2:
        only = f" ({levels[0]!r} in every row)" if levels else ""
        raise DataError(
            f"{origin}: categorical column {column!r} has a single level{only}, so it contrasts nothing and "
            "its indicator would be constant. Leave it out of data.features and data.categorical."
        )
    return Levels(column, levels, full)


def indicators(
    levels: Levels, values: Sequence[str] | np.ndarray, place: Callable[[int], str] = lambda row: f"row {row}"
) -> np.ndarray:
    """The (rows, levels - 1) float64 indicator columns of `values` (the column's cells as text; rows × levels
    in full coding); a value that names none of the levels is an error naming it, where it is (`place` of its
    index: a file's line or row), the column and the levels known."""
    import numpy as np

    found: dict[str, int | None] = {}  # each distinct cell is looked up once
    codes = np.empty(len(values), dtype=np.intp)
    for row, value in enumerate(values):
        code = found.get(value, -1)
        if code == -1:
            code = found[value] = levels.find(value)
        if code is None:
            raise DataError(f"{place(row)}, {levels.unseen(value)}")
        codes[row] = code
    skipped = len(levels.levels) - len(levels.coded)  # the baseline's code, 0, has no column but in full coding
    out = np.zeros((len(codes), len(levels.coded)))
    rows = np.flatnonzero(codes >= skipped)
    out[rows, codes[rows] - skipped] = 1.0
    return out
