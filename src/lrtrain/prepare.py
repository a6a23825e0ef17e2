"""What the engines train on: the rows of a source, split into training and validation rows,
standardized if asked, cast to the run's dtype, and under torchrun only this process's share.

It reads the data only through the `Source` interface (sources.base): a new format needs
nothing here.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrtrain import order, parallel, sources
from lrtrain.blocks import blocked_sum, row_blocks
from lrtrain.config import Config, SyntheticData
from lrtrain.errors import DataError
from lrtrain.moments import Moments, Scaling, combined, moments
from lrtrain.parallel import SINGLE, Shard
from lrtrain.sources import Source, fingerprint, own_rows, row_count, synthetic

# a column is constant when its spread about the mean is below this fraction of the mean's rounding offset: every
# value is the same float64, only the summation's rounding made a spread (relative to the feature's own magnitude,
# so a real spread of 1e-13 around 0 is a feature, as the exact engine shows)
CONSTANT = 1e-3


@dataclass(frozen=True)
class Prepared:
    """What the engines train on: split, scaled, cast to the config's dtype.

    x and y are the training rows `shard.start` to `shard.stop`: all of them in one process, this
    rank's block under torchrun; x_val and y_val are the same rank's block of the validation rows.
    `rows`, `val_rows`, the scaling and the moments are those of every rank's rows together.
    """

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    scaling: Scaling
    raw: Source  # the rows as read
    shard: Shard  # which training rows x holds, and the all-reduce over the ranks
    rows: int  # training rows, all ranks together
    val_rows: int  # validation rows, all ranks together
    tallied: Moments | None = None  # the moments of x and y, when the reader gathered them as it read the rows

    @functools.cached_property
    def moments(self) -> Moments:
        """Centered sufficient statistics of the training rows, gathered once and shared: those the reader
        tallied, when the rows are the ones it read (no split, no standardization, float64), else in a pass.
        Under torchrun the first use is a collective: every rank must ask at the same point."""
        return combined(self.tallied or moments(self.x, self.y), self.shard)

    @functools.cached_property
    def fingerprint(self) -> str:
        """The SHA-256 of the data as read (sources.fingerprint), computed once: saves, checkpoints and a
        resume all ask for it. Under torchrun the first use is a collective, as for the moments."""
        return fingerprint(self.raw, self.shard)

    @property
    def features(self) -> int:
        return int(self.x.shape[1])


def _blocked_mean_and_std(
    x: np.ndarray, rows: slice | np.ndarray, count: int, shard: Shard
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column means and (population) standard deviations of the selected rows of every rank (`count` in all),
    in two blocked passes (no N×D temporaries), each pass's sums all-reduced: μ = Σx / n, then σ² = Σ(x − μ)² / n.
    Third, how constant each column is: its spread about the rounded mean's own offset, o = Σ(x − μ) / n, compared
    with o (the corrected two-pass variance, σ² − o²): a constant column is all offset."""
    mean = shard.reduce(blocked_sum(x, rows)) / count
    d = x.shape[1]
    total = np.zeros(2 * d)  # Σ(x − μ)², then Σ(x − μ)
    with np.errstate(over="ignore", invalid="ignore"):  # squares beyond float64 are refused by the caller, in words
        for _, part in row_blocks(x, rows):
            centered = np.asarray(part, dtype=np.float64) - mean
            total[:d] += np.einsum("ij,ij->j", centered, centered)
            total[d:] += centered.sum(axis=0)
        total = shard.reduce(total) / count
        std, offset = np.sqrt(total[:d]), total[d:]
        spread = np.sqrt(np.maximum(total[:d] - offset**2, 0.0))
    return mean, std, np.where(np.isfinite(spread), spread, np.inf) <= CONSTANT * np.abs(offset)


def _taken(a: np.ndarray, rows: slice | np.ndarray, dtype: np.dtype[Any], scaling: Scaling | None) -> np.ndarray:
    """a[rows] in the training dtype, standardized when `scaling` is given, as at most one new array.

    A range of rows that needs neither stays a view (a mapped file stays on disk). Float64
    standardization works in place on its one copy (3x faster than blocks); the rest is filled
    block by block, so no float64 copy of the rows is ever made on the way to float32.
    """
    if scaling is None and a.dtype == dtype:
        return a[rows]  # a view of a range, one copy of indexed rows
    if scaling is not None and dtype == np.float64:
        selected = a[rows]
        copied = isinstance(rows, np.ndarray) and a.dtype == np.float64  # indexing made a float64 copy: reuse it
        whole: np.ndarray = np.subtract(selected, scaling.mean, out=selected if copied else None, dtype=np.float64)
        whole /= scaling.scale
        return whole
    out = np.empty((len(a[rows]) if isinstance(rows, slice) else len(rows), *a.shape[1:]), dtype=dtype)
    for place, part in row_blocks(a, rows):
        out[place] = part if scaling is None else (np.asarray(part, dtype=np.float64) - scaling.mean) / scaling.scale
    return out


def load(config: Config, group: Shard = SINGLE) -> Source:
    """The config's data (sources.load); synthetic data is first checked to determine the fit from its shape
    alone, so that data.features=1e9 with data.rows=2 is refused before gigabytes are drawn."""
    spec = config.data
    if isinstance(spec, SyntheticData):
        rows = spec.rows - validation_rows(spec.rows, spec.validation)
        determined(rows, spec.features, config, synthetic.origin_of(spec, config.seed))
    return sources.load(config, group)


def determined(rows: int, d: int, config: Config, origin: str) -> None:
    """Refuse `rows` training rows for `d` features (and a bias) that cannot determine the fit, unless a ridge
    penalty does; asked before synthetic data is drawn too (data.rows and data.features say its shape)."""
    if d == 0:
        raise DataError(
            f"{origin} has no features: its rows hold no value besides the target. Give each row of data.x at least "
            "one value (a model of y alone is its mean)."
        )
    needed = d + int(config.model.bias)
    if rows < needed and config.train.weight_decay == 0:
        raise DataError(
            f"{origin}: {_count(rows, 'training row')} for {_count(d, 'feature')}"
            f"{' and a bias' if config.model.bias else ''}; "
            f"the fit is underdetermined (needs at least {needed} rows). Add rows, drop features, "
            "lower data.validation, or set train.weight_decay > 0."
        )


def validation_rows(n: int, fraction: float) -> int:
    """round(N·fraction) of the N rows are held out for validation; both parts need a row."""
    n_val = round(n * fraction)
    if fraction > 0 and (n_val < 1 or n - n_val < 1):
        raise DataError(
            f"data.validation = {fraction} of {n} rows leaves {n_val} validation and {n - n_val} training rows; "
            "both need at least one. Use more data or another fraction (0 turns validation off)."
        )
    return n_val


def prepare(source: Source, config: Config, group: Shard = SINGLE) -> Prepared:
    """Split off validation rows, standardize if asked, cast to the config's dtype: each array at most
    one new copy of its rows (none for a range of rows already in the training dtype).

    Under torchrun (`group`: this process's place in the job) only this rank's rows are taken: its
    block of the N rows as read (or the share it read, when its reader read only that), less those
    held out for validation, which it keeps as its block of the validation rows. Each copy made
    here holds ~N/world rows, and a memory-mapped file is read only there. The training rows of
    all ranks, in rank order, are the training rows of one process, in order; the standardization
    statistics are those of all of them (sums all-reduced).
    """
    n = row_count(source)
    n_val = validation_rows(n, config.data.validation)
    rows = n - n_val
    mine = own_rows(source, group)  # the rank's rows as read, by their place among all N
    shard = parallel.take(rows, group) if source.held is None else mine  # without validation: all of them
    x, y = next(source.blocks(mine.start, mine.stop, size=None))  # a view where the rows lie in memory or a file
    train: slice | np.ndarray = slice(None)
    val: slice | np.ndarray | None = None
    if n_val:
        train, val = (kept - mine.start for kept in order.held_out(n, n_val, config.seed, mine.start, mine.stop))
        if group.world > 1:  # the rank's place among the training rows: the counts of the ranks before it
            counts = group.gather(np.array([float(len(train))]))[:, 0].astype(int)
            if not counts.all():
                raise DataError(
                    f"{source.origin}: with data.validation = {config.data.validation}, a process's share of the "
                    f"{n} rows has no training row. Use fewer processes than {group.world} or more data."
                )
            start = int(counts[: group.rank].sum())
            shard = dataclasses.replace(group, start=start, stop=start + len(train))  # summed as `group` sums
    d = len(source.features)
    determined(rows, d, config, source.origin)
    scaling = Scaling(np.zeros(d), np.ones(d))
    if config.data.standardize:
        mean, scale, flat = _blocked_mean_and_std(x, train, rows, shard)
        if not config.model.bias:  # no intercept: scaled about the origin, by the root mean square, not centered:
            with np.errstate(over="ignore"):  # centering would put an intercept, −w·mean, back into the model
                scale, mean = np.sqrt(scale**2 + mean**2), np.zeros_like(mean)
            flat = scale == 0  # only a column of zeros has no scale; a constant one is the model's intercept
        scaling = Scaling(mean, scale)
        if not np.all(np.isfinite(scale)):
            name = source.features[int(np.flatnonzero(~np.isfinite(scale))[0])]
            raise DataError(
                f"{source.origin}: feature {name!r} cannot be standardized: its squares overflow float64 (values "
                "beyond about 1e154). Rescale the data (e.g. divide that column by a power of 10), or set "
                "data.standardize to false."
            )
        constant = np.flatnonzero(flat)
        indicator = {name: lv for lv in getattr(source, "levels", ()) for name in lv.names}  # a reader may have none
        unseen = [source.features[j] for j in constant if source.features[j] in indicator]
        if unseen and n_val:  # an indicator 0 in every training row: its level is only in the validation rows
            level = unseen[0].removeprefix(indicator[unseen[0]].column)
            raise DataError(
                f"{source.origin}: the categorical level {level} of column {indicator[unseen[0]].column!r} occurs only "
                f"in the validation rows (data.validation = {config.data.validation}), so its indicator is 0 in every "
                "training row and cannot be standardized. Use more data, a smaller data.validation or another seed, "
                "or set data.standardize to false."
            )
        if constant.size:
            name, value = source.features[int(constant[0])], mean[constant[0]]
            raise DataError(
                f"{source.origin}: feature {name!r} is constant ({value:g} in every training row), so it "
                f"cannot be standardized (its {'spread' if config.model.bias else 'scale'} is 0). Drop it with "
                "data.features, or set data.standardize to false."
            )
    dtype, standardized = np.dtype(config.model.dtype), scaling if config.data.standardize else None
    as_read = not n_val and standardized is None and dtype == x.dtype and (group.world == 1 or source.held is not None)
    return Prepared(
        _taken(x, train, dtype, standardized),
        _taken(y, train, dtype, None),
        None if val is None else _taken(x, val, dtype, standardized),
        None if val is None else _taken(y, val, dtype, None),
        scaling,
        source,
        shard,
        rows,
        n_val,
        source.moments if as_read else None,
    )


def _count(n: int, noun: str) -> str:
    """1 feature, 2 features."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
