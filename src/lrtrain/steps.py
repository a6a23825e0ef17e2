"""Step sizes from the loss's curvature: `lr: auto`, `momentum: auto`, and the stable rates that the
divergence advice quotes.

The objective MSE + (λ/2)|w|² has the Hessian H = (2/n)·X̃ᵀX̃ + λ·P (X̃ = [X, 1] with a bias, P the
identity on the weights and 0 on the bias), known from the moments without a pass over the rows.
Its extreme eigenvalues L ≥ μ (μ the smallest that is not 0: a direction with no curvature has no
gradient either) decide the full-batch steps:

- Gradient descent is stable for lr < 2/L; `lr: auto` takes half of that, 1/L.
- Heavy-ball momentum β, which is torch's SGD momentum (v ← βv + g, w ← w − lr·v is the recursion
  w ← w − lr·g + β(w − w_prev)), is stable for lr < 2(1 + β)/L; `lr: auto` takes (1 + β)/L.
- `momentum: auto` is Polyak's choice for a quadratic: lr = 4/(√L + √μ)² and β = ((√κ − 1)/(√κ + 1))²,
  κ = L/μ. Every direction then shrinks by √β an epoch, so a gap ε takes about √κ·ln(1/ε)/2 epochs
  instead of gradient descent's κ·ln(1/ε)/2. With a given lr, it is the smallest β at which every
  direction shrinks by √β: max((1 − √(lr·μ))², (1 − √(lr·L))²).
- Started from rest, heavy ball's stiffest direction (h = L, a double root −√β at Polyak's choice)
  first grows about √κ/e-fold before it shrinks, which on κ ≈ 1e5 costs a thousand epochs. So the
  first epoch of `momentum: auto` is one gradient step of lr₁ = (lr·L + 1 − β)/(2L) ((1 + √β)/L at
  Polyak's choice), which puts that direction on its path without growth, and the momentum buffer
  is then scaled by lr₁/lr, making it the step just taken in units of lr (w₁ − w₀ in heavy ball's
  w ← w − lr·g + β(w − w_prev)). With a schedule other than constant the first step is plain.

Minibatches of B of the n rows meet more curvature than the whole: the expected smoothness of
sampling B rows without replacement (Gower et al., "SGD: general analysis and improved rates",
2019) is L_B = n(B − 1)/(B(n − 1))·L + (n − B)/(B(n − 1))·L_row, L_row = max_i 2|x̃_i|² + λ the
curvature of a single row: L for the full batch, L_row for one row at a time. `lr: auto` takes
(1 − β)/L_B, which keeps momentum's effective step lr/(1 − β) at 1/L_B. `momentum: auto` is for
full-batch training only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lrtrain.blocks import row_blocks
from lrtrain.config import Config
from lrtrain.errors import ConfigError
from lrtrain.moments import EIGH_MAX_SIZE, Moments, largest_curvature
from lrtrain.prepare import Prepared

ZERO_CURVATURE = 1e-10  # eigenvalues below this · L are directions without curvature (rank deficiency)


@dataclass(frozen=True)
class Rates:
    """The learning rate and momentum a run uses, and where they came from (None: set in the config)."""

    lr: float
    momentum: float
    why: str | None = None  # how an `auto` value was chosen, for stderr
    first_lr: float | None = None  # momentum: auto: the first epoch's gradient step (see the module docstring)


def full_batch(config: Config, prepared: Prepared) -> bool:
    return config.train.batch_size is None or config.train.batch_size >= prepared.rows


def choose(config: Config, prepared: Prepared) -> Rates:
    """The configured lr and momentum, with `auto` replaced by the values the module docstring gives."""
    train = config.train
    if train.lr != "auto" and train.momentum != "auto":
        return Rates(float(train.lr), float(train.momentum))
    if not full_batch(config, prepared):
        if train.momentum == "auto":
            raise ConfigError(
                f"train.momentum = auto is for full-batch training, and train.batch_size is {train.batch_size}. "
                "Set train.batch_size to null, or train.momentum to a number (0.9 is common: lr: auto then "
                "scales the rate by 1 − momentum)."
            )
        beta = float(train.momentum)
        batch = batch_curvature(config, prepared)
        return Rates((1 - beta) / batch, beta, f"lr = auto: (1 − momentum)/L_B = {(1 - beta) / batch:.6g}, "
                     f"L_B = {batch:.6g} the curvature a batch of {train.batch_size} rows can have")  # fmt: skip
    if train.momentum != "auto":
        beta = float(train.momentum)
        largest = curvature(config, prepared.moments)
        lr = (1 + beta) / largest if largest > 0 else 1.0
        rule = "(1 + momentum)/L" if beta else "1/L"
        edge = "2(1 + momentum)/L" if beta else "2/L"
        return Rates(lr, beta, f"lr = auto: {rule} = {lr:.6g}, L = {largest:.6g} the largest eigenvalue of the "
                     f"loss's Hessian ({edge} would be the edge of divergence)")  # fmt: skip
    largest, smallest = spectrum(config, prepared.moments)
    if largest <= 0:
        return Rates(1.0 if train.lr == "auto" else float(train.lr), 0.0, "momentum = auto: 0, the loss is flat")
    kappa = largest / smallest
    if train.lr == "auto":
        lr = 4 / (math.sqrt(largest) + math.sqrt(smallest)) ** 2
        beta = ((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)) ** 2
        how = f"lr = auto: 4/(√L + √μ)² = {lr:.6g}"
    else:
        lr = float(train.lr)
        beta = max((1 - math.sqrt(lr * smallest)) ** 2, (1 - math.sqrt(lr * largest)) ** 2)
        if beta >= 1:
            raise ConfigError(
                f"train.lr = {lr:g} is too large for momentum: auto: heavy-ball momentum needs lr < 4/L = "
                f"{4 / largest:.4g} on this data (L = {largest:.4g}). Lower train.lr, or set it to auto."
            )
        how = f"lr = {lr:g}"
    warm = beta > 0 and config.train.schedule.kind == "constant"  # no momentum, no transient to avoid
    first = (lr * largest + 1 - beta) / (2 * largest) if warm else None
    return Rates(lr, beta, f"momentum = auto: {beta:.6g}, {how}; L = {largest:.6g}, μ = {smallest:.6g} "
                 f"(κ = {kappa:.4g}), the extreme eigenvalues of the loss's Hessian", first)  # fmt: skip


def hessian(moments: Moments, bias: bool, weight_decay: float) -> np.ndarray:
    """H = (2/n)·X̃ᵀX̃ + λ·P, from the centered moments (XᵀX = AᵀA + nμμᵀ)."""
    n, mu = moments.n, moments.x_mean
    xtx = moments.gram + n * np.outer(mu, mu)
    gram = np.block([[xtx, n * mu[:, None]], [n * mu[None, :], np.array([[float(n)]])]]) if bias else xtx
    h = gram * (2.0 / n)
    h[np.arange(len(mu)), np.arange(len(mu))] += weight_decay
    return h


def curvature(config: Config, moments: Moments) -> float:
    """L of the objective, weight decay included."""
    return largest_curvature(moments, config.model.bias) + config.train.weight_decay


def spectrum(config: Config, moments: Moments) -> tuple[float, float]:
    """(L, μ): the largest eigenvalue of the Hessian and the smallest that is not 0."""
    h = hessian(moments, config.model.bias, config.train.weight_decay)
    if len(h) <= EIGH_MAX_SIZE:
        values = np.linalg.eigvalsh(h)
    else:  # Lanczos at both ends: a full decomposition of a matrix this size takes minutes
        from scipy.sparse.linalg import eigsh

        values = np.concatenate([eigsh(h, k=1, which="SA", return_eigenvectors=False),
                                 eigsh(h, k=1, which="LA", return_eigenvectors=False)])  # fmt: skip
    largest = float(values[-1])
    curved = values[values > ZERO_CURVATURE * largest]
    return largest, float(curved[0]) if len(curved) else largest


def row_curvature(config: Config, prepared: Prepared) -> float:
    """L_row = max_i 2|x̃_i|² + λ over every training row: one pass over them (under torchrun, each rank's)."""
    largest = 0.0
    for _, part in row_blocks(prepared.x):
        rows = np.asarray(part, dtype=np.float64)
        largest = max(largest, float(np.max(np.einsum("ij,ij->i", rows, rows), initial=0.0)))
    largest = float(np.max(prepared.shard.gather(np.array([largest]))))
    return 2.0 * (largest + float(config.model.bias)) + config.train.weight_decay


def batch_curvature(config: Config, prepared: Prepared) -> float:
    """L_B for the run's batch size (see the module docstring); L for the full batch."""
    n, size = prepared.rows, config.train.batch_size
    largest = curvature(config, prepared.moments)
    if size is None or size >= n:
        return largest
    whole = n * (size - 1) / (size * (n - 1))
    return whole * largest + (1 - whole) * row_curvature(config, prepared)


def stable(config: Config, prepared: Prepared, beta: float) -> tuple[str, float]:
    """For the divergence advice: the rule that bounds this run's lr (in words, with its value) and the lr
    to try, the one `lr: auto` would take with the run's batch size and momentum β."""
    if full_batch(config, prepared):
        largest = curvature(config, prepared.moments)
        limit = 2 * (1 + beta) / largest if largest > 0 else math.inf
        rule = "2(1 + momentum)/L" if beta else "2/L"
        return (
            f"The largest stable learning rate for this data is {rule} = {limit:.4g} (L = {largest:.4g}, the largest "
            "eigenvalue of the loss's Hessian)",
            limit / 2,
        )
    batch = batch_curvature(config, prepared)
    return (
        f"With batches of {config.train.batch_size} rows{f' and momentum {beta:g}' if beta else ''}, a batch's "
        f"curvature can reach L_B = {batch:.4g}, and lr = (1 − momentum)/L_B = {(1 - beta) / batch:.4g} is stable",
        (1 - beta) / batch,
    )


def pace(config: Config, prepared: Prepared, rates: Rates) -> float | None:
    """Full batch: the factor by which the loss's gap shrinks an epoch once only the slowest direction is left,
    max over the Hessian's extreme eigenvalues h of ρ(h)², ρ the spectral radius of the heavy-ball iteration
    [[1 + β − lr·h, −β], [1, 0]] (for β = 0, |1 − lr·h|). None for minibatches, whose pace is noise, and for
    an lr that changes from epoch to epoch."""
    if not full_batch(config, prepared) or config.train.schedule.kind != "constant":
        return None
    largest, smallest = spectrum(config, prepared.moments)
    radius = 0.0
    for h in (smallest, largest):
        trace = 1 + rates.momentum - rates.lr * h
        roots = np.roots([1.0, -trace, rates.momentum])  # z² − (1 + β − lr·h)z + β = 0
        radius = max(radius, float(np.max(np.abs(roots))))
    return radius**2
