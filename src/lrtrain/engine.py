"""The engine contract: what every engine is told (`Schedule`), where it starts (`State`), what it yields
(`EpochLog`), and the result a fit builds from them (`FitResult`); plus the loss helpers.

An engine is a module with `train(data: Prepared, schedule: Schedule, start: State)`, a generator
of one `EpochLog` per epoch. It never prints, reads files or exits: `training` owns the loop
around it. Engines import this module and `prepare`, never `training`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lrtrain import order
from lrtrain.blocks import passing
from lrtrain.parallel import SINGLE, Shard

if TYPE_CHECKING:
    from lrtrain.stats import Summary


@dataclass(frozen=True)
class State:
    """Where an engine starts: the weights, bias and SGD momentum buffers after `epoch` epochs."""

    epoch: int
    weights: np.ndarray
    bias: float
    velocity_w: np.ndarray | None = None  # None: no step taken yet, or no momentum
    velocity_b: float = 0.0


@dataclass(frozen=True)
class EpochLog:
    """One epoch: the loss of its forward pass (before the step), the state after it."""

    epoch: int
    loss: float
    weights: np.ndarray
    bias: float
    lr: float
    val_loss: float | None = None
    velocity_w: np.ndarray | None = None
    velocity_b: float = 0.0

    def state(self) -> State:
        return State(self.epoch, self.weights, self.bias, self.velocity_w, self.velocity_b)


@dataclass(frozen=True)
class LrSchedule:
    """How the lr changes between epochs (see `Schedule.lr_at`); each kind reads only its own parameters."""

    kind: str = "constant"  # constant | step | cosine | inverse_time
    step_epochs: int = 1  # step: multiply by gamma every step_epochs epochs
    gamma: float = 1.0
    period_epochs: int = 1  # cosine: from lr down to min_lr·lr over this many epochs
    min_lr: float = 0.0  # a fraction of the base lr
    decay: float = 0.0  # inverse_time


@dataclass(frozen=True)
class Schedule:
    """What every engine is told: the same steps, the same batch order, the same lr in every epoch."""

    epochs: int
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int | None
    shuffle: bool
    seed: int
    bias: bool
    dtype: str
    device: str
    statistics: bool = False  # full-batch epochs from sufficient statistics (engines that can)
    threads: int | None = None
    lr_schedule: LrSchedule = LrSchedule()
    first_lr: float | None = None  # momentum: auto's first epoch: one gradient step of this size (lrtrain.steps)

    def lr_at(self, epoch: int) -> float:
        """The lr of every step of epoch `epoch` (1-based). It changes once per epoch, after the epoch, as
        torch's `scheduler.step()` after each epoch does; t below counts the epochs before this one."""
        if epoch == 1 and self.first_lr is not None:
            return self.first_lr
        s, lr, t = self.lr_schedule, self.lr, epoch - 1
        if s.kind == "step":
            return lr * s.gamma ** (t // s.step_epochs)  # StepLR: lr·γ^⌊t/k⌋
        if s.kind == "cosine":
            low = s.min_lr * lr  # CosineAnnealingLR: low + (lr − low)·(1 + cos(πt/T))/2
            return low + (lr - low) * (1 + math.cos(math.pi * t / s.period_epochs)) / 2
        if s.kind == "inverse_time":
            return lr / (1 + s.decay * t)  # lr/(1 + decay·t)
        return lr

    def carried(self, epoch: int) -> float:
        """What the momentum buffers are multiplied by after epoch `epoch`: first_lr/lr after a first epoch of
        first_lr, so that the buffer is the step just taken in units of lr (heavy ball's w_k − w_{k−1}); else 1."""
        return self.first_lr / self.lr if epoch == 1 and self.first_lr is not None else 1.0

    def batches(self, epoch: int, n: int, shard: Shard = SINGLE) -> Iterator[tuple[int, slice | np.ndarray]]:
        """One epoch's minibatches of the n training rows: (the global batch size, the shard's rows of the
        batch); a fresh order every epoch when shuffling (see lrtrain.order)."""
        return order.batches(n, self.batch_size, self.shuffle, self.seed, epoch, shard)


@dataclass
class FitResult:
    engine: str
    device: str
    dtype: str
    weights: np.ndarray  # raw-feature units
    bias: float
    epochs: int
    loss: float  # MSE of the final model on the training rows, float64
    val_loss: float | None
    r2: float
    seconds: float
    stopped: str
    optimum_loss: float
    optimum_weights: np.ndarray
    optimum_bias: float
    history: list[EpochLog] = field(repr=False)
    predictions: list[tuple[list[float], float, float]]  # (input, before, after)
    rows: int = 0
    run_dir: Path | None = None
    summary: Summary | str | None = None  # OLS inference on the training rows; str: why there is none
    gap: float = math.nan  # the loss's gap to the optimum's: relative, or absolute for an exact fit (see stopping)
    gap_relative: bool = True  # which of the two (stopping.Target.exact)
    converged: bool | None = None  # within train.target_gap; None: no target
    r2_centered: bool = True  # about ȳ: with a bias, or features that make a constant (else about 0)
    shortfall: str | None = None  # what to say when it stopped short of the target

    @property
    def max_dw_to_optimum(self) -> float:
        return max_abs_diff(self.weights, self.bias, self.optimum_weights, self.optimum_bias)

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs, 1)


def max_abs_diff(w1: np.ndarray, b1: float, w2: np.ndarray, b2: float) -> float:
    """max |Δ| over the weights and the bias."""
    return float(np.max(np.abs(np.append(w1 - w2, b1 - b2))))


def squared_errors(x: np.ndarray, y: np.ndarray, models: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """|Xw + b - y|² for each model (w, b), float64, in one blocked pass over X: X @ [w₁ w₂ …] per block."""
    w = np.column_stack([np.asarray(m[0], dtype=np.float64) for m in models])
    b = np.array([m[1] for m in models], dtype=np.float64)
    total = np.zeros(len(models))
    for x_part, y_part in passing(x, y):
        r = np.asarray(x_part, dtype=np.float64) @ w + b - np.asarray(y_part, dtype=np.float64)[:, None]
        total += np.einsum("ij,ij->j", r, r)  # column j: rᵀr of model j
    return total


def mse(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> float:
    """mean((Xw + b - y)²) in float64, in blocks."""
    return float(squared_errors(x, y, [(w, b)])[0]) / len(y)


def mean_squares(
    x: np.ndarray, y: np.ndarray, rows: int, shard: Shard, models: list[tuple[np.ndarray, float]]
) -> list[float]:
    """mean((Xw + b - y)²) per model over `rows` rows, of which this rank holds (x, y): its sums, all-reduced."""
    return [float(v) for v in shard.reduce(squared_errors(x, y, models)) / rows]
