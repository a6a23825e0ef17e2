"""Categorical columns as indicator columns: treatment coding against a baseline level.

A categorical column with levels l0 < l1 < ... < lk (sorted: as numbers when every level is one,
else as text, the order statsmodels' `C(column)` uses) becomes k indicator columns named
`column[l1]` ... `column[lk]`, each 1 where the row holds that level and 0 elsewhere; the
baseline l0 is the row of zeros, so each weight is that level's difference from the baseline.
Training encodes the rows read with `indicators`; the levels are saved in model.json so that
rows given later are encoded by the same function, a level unseen in training being an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrtrain.errors import DataError


@dataclass(frozen=True)
class Levels:
    """A categorical column's levels in order; the first is the baseline."""

    column: str
    levels: tuple[str, ...]

    @property
    def baseline(self) -> str:
        return self.levels[0]

    @property
    def names(self) -> list[str]:
        """The indicator columns' names: `column[level]` for every level but the baseline."""
        return [f"{self.column}[{level}]" for level in self.levels[1:]]

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "levels": list(self.levels), "baseline": self.baseline}


def _as_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def ordered(values: Iterable[str]) -> list[str]:
    """The distinct values sorted as statsmodels sorts a column's levels: numerically when every one is a
    number (9 before 10), else as text."""
    distinct = set(values)
    numbers = {v: _as_number(v) for v in distinct}
    if all(n is not None for n in numbers.values()):
        return sorted(distinct, key=lambda v: (numbers[v], v))
    return sorted(distinct)


def levels_of(column: str, values: Iterable[str], origin: str) -> Levels:
    """The levels found in a column; a single one is an error (an indicator would be constant)."""
    levels = tuple(ordered(values))
    if len(levels) < 2:
        only = f" ({levels[0]!r} in every row)" if levels else ""
        raise DataError(
            f"{origin}: categorical column {column!r} has a single level{only}, so it contrasts nothing and "
            "its indicator would be constant. Leave it out of data.features and data.categorical."
        )
    return Levels(column, levels)


def indicators(levels: Levels, values: Sequence[str] | np.ndarray, where: str = "", first: int = 0) -> np.ndarray:
    """The (rows, levels - 1) float64 indicator columns of `values` (the column's cells as text); a value that
    is not one of the levels is an error naming it, the row (`first` + its index, in `where`), the column and
    the levels known."""
    index = {level: i for i, level in enumerate(levels.levels)}
    codes = np.empty(len(values), dtype=np.intp)
    for row, value in enumerate(values):
        code = index.get(value)
        if code is None:
            place = f"{where}, " if where else ""
            known = ", ".join(repr(level) for level in levels.levels[:20])
            more = f" and {len(levels.levels) - 20} more" if len(levels.levels) > 20 else ""
            raise DataError(
                f"{place}row {first + row}, column {levels.column!r}: level {value!r} was not seen in training, so the "
                f"model has no weight for it. The known levels are {known}{more}. Map it to one of them, or "
                "retrain with rows that hold it."
            )
        codes[row] = code
    out = np.zeros((len(codes), len(levels.levels) - 1))
    rows = np.flatnonzero(codes > 0)
    out[rows, codes[rows] - 1] = 1.0
    return out
