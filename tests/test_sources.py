"""The Source interface: a reader that meets it needs nothing else for preparation, checks and training."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from lrtrain.config import load_config
from lrtrain.errors import DataError
from lrtrain.prepare import prepare
from lrtrain.sources import Table, checked, fingerprint, row_count
from lrtrain.training import train


@dataclass
class Streamed:
    """A source that knows no row count and hands out fresh copies in blocks of 7 rows, as a file reader would."""

    inputs: np.ndarray  # not named x and y: nothing may reach past the interface
    outputs: np.ndarray
    features: list[str]
    target: str = "y"
    origin: str = "a streamed test source"
    rows: int | None = None
    held: tuple[int, int] | None = None  # every row
    finite: bool = False  # not known: the check reads the rows
    moments: None = None  # not tallied: preparation gathers them

    def line(self, row: int) -> int:
        return row + 2  # a header line, then a row a line

    def blocks(
        self, start: int = 0, stop: int | None = None, size: int | None = 7
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        stop = len(self.outputs) if stop is None else min(stop, len(self.outputs))
        step = max(stop - start, 1) if size is None else size
        for at in range(start, stop, step):
            end = min(at + step, stop)
            yield self.inputs[at:end].copy(), self.outputs[at:end].copy()
        if start >= stop and size is None:
            yield self.inputs[:0].copy(), self.outputs[:0].copy()


def rows(n: int = 203, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(n, d)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    return x, x @ [1.5, -0.25, 4.0] + 0.5 + rng.normal(scale=0.1, size=n)


@pytest.mark.parametrize(
    "overrides",
    [[], ["data.standardize=true"], ["data.validation=0.2", "data.standardize=true", "model.dtype=float32"]],
    ids=["plain", "standardized", "validation, float32"],
)
def test_a_new_reader_prepares_and_trains_exactly_like_arrays_in_memory(overrides: list[str]) -> None:
    x, y = rows()
    config = load_config(None, ["train.epochs=40", "train.lr=auto", "output.save=false", *overrides])
    streamed = Streamed(x, y, ["a", "b", "c"])
    in_memory = Table(x, y, ["a", "b", "c"], "y", "test")
    assert row_count(streamed) == 203  # counted by reading, since the reader does not know
    results = [train(config, prepare(source, config), "manual", "cpu", None) for source in (streamed, in_memory)]
    np.testing.assert_array_equal(results[0].weights, results[1].weights)
    assert results[0].loss == results[1].loss
    assert results[0].val_loss == results[1].val_loss
    assert fingerprint(streamed) == fingerprint(in_memory)


def test_a_bad_value_is_named_by_its_file_line_through_the_interface() -> None:
    x, y = rows()
    x[150, 1] = np.nan
    with pytest.raises(DataError, match=r"a streamed test source, line 152, column 'b': the value is nan"):
        checked(Streamed(x, y, ["a", "b", "c"]))
