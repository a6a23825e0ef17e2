"""Synthetic rows y = x·w + bias + noise, seeded: the same rows whatever the chunk size."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO

import numpy as np

from lrtrain.config import SyntheticData
from lrtrain.errors import DataError
from lrtrain.interrupts import loading_point
from lrtrain.sources.base import Table, available_memory, default_names, gigabytes, scratch_mapping


def chunks(spec: SyntheticData, seed: int, chunk_rows: int = 1 << 16) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Rows of y = x.w + bias + noise, in chunks; the same rows whatever the chunk size."""
    weights_rng, x_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    w = (
        np.asarray(spec.weights, dtype=np.float64)
        if spec.weights is not None
        else weights_rng.normal(size=spec.features)
    )
    squares = 0.0  # of the targets so far: beyond float64, fit could not train on them (its sums overflow)
    for start in range(0, spec.rows, chunk_rows):
        n = min(chunk_rows, spec.rows - start)
        x = x_rng.standard_normal((n, spec.features))
        with np.errstate(over="ignore", invalid="ignore"):
            y = x @ w + spec.bias + spec.noise * noise_rng.standard_normal(n)
            squares += float(y @ y)
        if not (np.all(np.isfinite(y)) and np.isfinite(squares)):
            raise DataError(
                f"synthetic data: y = x·w + bias + noise, or the sum of its squares that training takes, goes beyond "
                f"float64 (about 1.8e308) with {spec.rows} rows, weights up to "
                f"{float(np.max(np.abs(w), initial=0.0)):.3g}, bias {spec.bias:g} and noise {spec.noise:g}. Lower them "
                "(data.weights, data.bias, data.noise; --weights, --bias, --noise for data make)."
            )
        loading_point()  # Ctrl-C while a large table is drawn stops here
        yield x, y


def origin_of(spec: SyntheticData, seed: int) -> str:
    """Where the rows come from, for messages: the data's size and seed (data.seed, else the config's)."""
    return f"synthetic data ({spec.rows} rows, seed {spec.seed if spec.seed is not None else seed})"


def read(spec: SyntheticData, seed: int, scratch: bool = False) -> Table:
    """The rows in memory, filled chunk by chunk; with `scratch` (under torchrun, where every rank makes
    them all) in memory-mapped temporary files instead, so a rank's anonymous memory holds only a chunk."""
    seed = spec.seed if spec.seed is not None else seed
    origin = origin_of(spec, seed)
    if scratch:
        with tempfile.TemporaryFile(prefix="lrtrain-") as targets:

            def fill(out: IO[bytes]) -> tuple[int, ...]:
                for x, y in chunks(spec, seed):
                    x.tofile(out)
                    y.tofile(targets)
                return (spec.rows, spec.features)

            x = scratch_mapping(fill, np.dtype(np.float64))
            targets.flush()
            y: np.ndarray = np.memmap(targets, dtype=np.float64, mode="r", shape=(spec.rows,))
        return Table(x, y, default_names(spec.features), "y", origin)
    needed = spec.rows * (spec.features + 1) * 8  # x and y, float64
    if needed > available_memory():
        raise DataError(
            f"synthetic data: data.rows = {spec.rows:,} rows of {spec.features:,} feature(s) and a target take "
            f"{gigabytes(needed)} in memory, more than the {gigabytes(available_memory())} available. Lower data.rows, "
            f"or write the rows to a file that training reads from disk as it goes: lrtrain data make data.npy "
            f"--rows {spec.rows} --features {spec.features}, then --set data.source=npy --set data.path=data.npy."
        )
    x, y = np.empty((spec.rows, spec.features)), np.empty(spec.rows)
    start = 0
    for xs, ys in chunks(spec, seed):
        x[start : start + len(ys)], y[start : start + len(ys)] = xs, ys
        start += len(ys)
    return Table(x, y, default_names(spec.features), "y", origin)
