"""What a fit says of its data on stderr before it trains: the rows data.missing: drop left out, the categorical
levels that validation took every row of, and the features float32 cannot hold the spread of; and the values too
small for the sums of squares every engine takes, which it refuses."""

from __future__ import annotations

from typing import Any

import numpy as np

from lrtrain import sources
from lrtrain.config import Config
from lrtrain.errors import DataError
from lrtrain.prepare import Prepared

# a column whose values are below this times the square root of the smallest normal number of the dtype its
# sums of squares are taken in (1.5e-154 in float64, 1.1e-19 in float32) has squares in the subnormal range,
# where they lose their digits or become 0: the Gram matrix, the summary and the solvers go wrong
UNDERFLOW_MARGIN = 100.0


def check_scale(prepared: Prepared, config: Config) -> None:
    """Refuse features or a target whose values are so small that their squares underflow: the sums of squares
    (float64 always, and float32 too for a float32 run) then lose every digit, or a column looks constant.
    Under torchrun every rank must ask (the moments are a collective)."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        moments = prepared.moments
        found = [*_sizes(moments.gram, moments.x_mean, moments.n), *_sizes(moments.tt, moments.y_mean, moments.n)]
        names = [*prepared.raw.features, prepared.raw.target]
        limits: list[tuple[type[np.floating[Any]], int]] = [(np.float64, len(found))]
        raw = prepared.raw.moments
        if config.model.dtype == "float32" and raw is not None:  # the values before the cast to float32
            found += [*_sizes(raw.gram, raw.x_mean, raw.n), *_sizes(raw.tt, raw.y_mean, raw.n)]
            names += names
            limits.append((np.float32, len(found)))
    for dtype, upto in limits:
        tiny = float(np.finfo(dtype).tiny)
        small = [j for j, size in enumerate(found[:upto]) if 0 < size < UNDERFLOW_MARGIN * np.sqrt(tiny)]
        if small:
            j = small[0]
            target = names[j] == prepared.raw.target
            kind = "the target" if target else f"feature {names[j]!r}"
            power = int(np.floor(-np.log10(found[j])))
            scales = "the weights and the bias scale with it" if target else f"its weight scales by 1e-{power}"
            raise DataError(
                f"{prepared.raw.origin}: {kind} holds values of about {found[j]:.1e}, so small that {dtype.__name__} "
                f"cannot hold their squares (its smallest normal number is {tiny:.2g}), and every sum of squares the "
                f"fit takes would lose its digits. Rescale the column: multiply it by 1e{power} ({scales})"
                + (", or set model.dtype to float64." if dtype == np.float32 else ".")
            ).shared("job")


def _sizes(squares: np.ndarray | float, mean: np.ndarray | float, n: int) -> np.ndarray:
    """Each column's magnitude, max(|mean|, spread), from its centered sum of squares (the diagonal of a Gram
    matrix), without squaring the mean: a mean of 1e-200 squares to 0."""
    diagonal = np.diag(squares) if isinstance(squares, np.ndarray) else np.array([squares])
    sizes: np.ndarray = np.maximum(np.abs(np.atleast_1d(mean)), np.sqrt(np.maximum(diagonal, 0) / max(n, 1)))
    return sizes


def of_data(prepared: Prepared, config: Config) -> list[str]:
    """The notes, in that order. Under torchrun every rank must ask (the moments are a collective)."""
    found = (sources.dropped_note(prepared.raw), unseen_levels(prepared), float32_spread(prepared, config))
    return [note for note in found if note]


def unseen_levels(prepared: Prepared) -> str | None:
    """A note for the levels that validation took every row of: their indicators are 0 on every training row, so
    their weights stay 0 and the model predicts them as the baseline. None when there are none."""
    if not prepared.raw.levels or not prepared.val_rows:
        return None
    with np.errstate(over="ignore", invalid="ignore"):  # a sum beyond float64 is refused by train(), in words
        moments = prepared.moments
    index = {name: j for j, name in enumerate(prepared.raw.features)}
    unseen = [
        (levels, name)
        for levels in prepared.raw.levels
        for name in levels.names
        if moments.x_mean[index[name]] == 0 and moments.gram[index[name], index[name]] == 0
    ]
    if not unseen:
        return None
    named = ", ".join(name if levels.full else f"{name} (baseline {levels.baseline!r})" for levels, name in unseen)
    full = " (a column coded in full, without a bias: with no constant)" if any(lv.full for lv, _ in unseen) else ""
    return (
        f"note: {len(unseen)} level(s) occur only in the {prepared.val_rows} validation rows (data.validation), so "
        f"no training row has them: {named}. Their weights stay 0 and the model predicts them as the baseline{full}. "
        "Use more data, a smaller data.validation, or another seed."
    )


def float32_spread(prepared: Prepared, config: Config) -> str | None:
    """A note for features that float32 holds to fewer than 3 digits of their spread about their mean (a column
    around 1e9 with a spread of 1 casts to one value): a float32 run learns little from them, and the cure is a
    setting. None when there are none, or the run is float64 or standardized."""
    if config.model.dtype != "float32" or config.data.standardize:
        return None
    with np.errstate(over="ignore", invalid="ignore"):  # a sum beyond float64 is refused by train(), in words
        moments = prepared.moments  # under torchrun a collective: asked by every rank
        spread = np.sqrt(np.maximum(np.diag(moments.gram), 0) / moments.n)
        size = np.abs(moments.x_mean)
    lost = np.flatnonzero((size > 0) & (spread < FLOAT32_SPREAD * size))
    if not lost.size:
        return None
    names = prepared.raw.features
    shown = ", ".join(f"{names[j]!r} (spread {spread[j]:.2g} about {moments.x_mean[j]:.6g})" for j in lost[:5])
    return (
        f"note: in float32 (about 7 digits) {len(lost)} feature(s) keep fewer than 3 digits of their spread about "
        f"their mean: {shown}{', ...' if lost.size > 5 else ''}. The run learns little from them; set "
        "data.standardize: true (or model.dtype: float64)."
    )


FLOAT32_SPREAD = 1e3 * float(np.finfo(np.float32).eps)  # a spread under 1000 float32 steps at the mean: 1.2e-4
