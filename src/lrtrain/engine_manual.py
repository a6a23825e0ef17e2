"""NumPy gradient descent on the mean squared error, step for step what torch.optim.SGD does.

Two ways to get the gradient, the same mathematics: from the data, batch by batch (the sheet's
way, and the only way for minibatches), or, for full-batch epochs, from the sufficient
statistics gathered in one pass, so each later epoch costs O(D²) instead of O(N·D).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np

from lrtrain.engine import EpochLog, Schedule, State
from lrtrain.parallel import Shard
from lrtrain.prepare import Prepared


class _SGD:
    """w, b and the momentum buffers in the run's dtype; `step` is torch.optim.SGD's update."""

    def __init__(self, schedule: Schedule, start: State) -> None:
        dtype = self.dtype = np.dtype(schedule.dtype)
        self.w = start.weights.astype(dtype)
        self.b = dtype.type(start.bias)
        self.lr, self.mu, self.decay = (dtype.type(v) for v in (schedule.lr, schedule.momentum, schedule.weight_decay))
        self.velocity_w = np.zeros_like(self.w) if start.velocity_w is None else start.velocity_w.astype(dtype)
        self.velocity_b = dtype.type(start.velocity_b)
        self.bias = schedule.bias

    def set_lr(self, lr: float) -> float:
        """Set the lr of the epoch's steps (kept in the run's dtype, like w and b); return it as given."""
        self.lr = self.dtype.type(lr)
        return lr

    def step(self, grad_w: np.ndarray, grad_b: np.floating) -> None:
        grad_w = grad_w + self.decay * self.w  # weight decay: + λw (not on the bias)
        if self.mu:
            self.velocity_w = self.mu * self.velocity_w + grad_w  # v = μv + g
            self.velocity_b = self.mu * self.velocity_b + grad_b
            grad_w, grad_b = self.velocity_w, self.velocity_b
        self.w = self.w - self.lr * grad_w  # w ← w − lr·∂L/∂w
        if self.bias:
            self.b = self.b - self.lr * grad_b  # b ← b − lr·∂L/∂b

    def carry(self, factor: float) -> None:
        """Scale the momentum buffers (Schedule.carried)."""
        if factor != 1.0:
            self.velocity_w = self.velocity_w * self.dtype.type(factor)
            self.velocity_b = self.velocity_b * self.dtype.type(factor)

    def log(self, epoch: int, loss: float, lr: float) -> EpochLog:
        velocity = (self.velocity_w.astype(np.float64), float(self.velocity_b)) if self.mu else (None, 0.0)
        return EpochLog(epoch, loss, self.w.astype(np.float64), float(self.b), lr, None, *velocity)


def train(data: Prepared, schedule: Schedule, start: State) -> Generator[EpochLog, None, None]:
    sgd = _SGD(schedule, start)
    epochs = range(start.epoch + 1, schedule.epochs + 1)
    if schedule.statistics:
        yield from _on_statistics(data, schedule, sgd, epochs)
    else:
        yield from _on_data(data, schedule, sgd, epochs)


def _on_data(data: Prepared, schedule: Schedule, sgd: _SGD, epochs: range) -> Generator[EpochLog, None, None]:
    shard = data.shard  # the rows data.x holds: all of them, or under torchrun this rank's block
    x, y, n = data.x, data.y, data.rows  # n: every rank's rows together
    for epoch in epochs:
        lr = sgd.set_lr(schedule.lr_at(epoch))
        total = 0.0
        with np.errstate(over="ignore", invalid="ignore"):  # overflow shows as a non-finite loss: divergence
            for m, mine in schedule.batches(epoch, n, shard):  # m: the global batch size
                loss, grad_w, grad_b = _gradient(x, y, mine, sgd, m)
                if shard.world > 1:  # each rank holds part of each sum: add them up
                    grad_w, grad_b, loss = _summed(shard, grad_w, grad_b, loss)
                sgd.step(grad_w, grad_b)
                total += float(loss) * m
        sgd.carry(schedule.carried(epoch))
        yield sgd.log(epoch, total / n, lr)


CACHE_BYTES = 1 << 18  # a block of rows this size stays in cache between its two uses
NARROW = 32  # below this many features, per-row work dominates and blocks pay; above, BLAS streams X well


def _gradient(x: np.ndarray, y: np.ndarray, rows: slice | np.ndarray, sgd: _SGD, m: int) -> tuple[Any, Any, Any]:
    """Loss and gradient sums over `rows`, divided by the batch size m.

    With few features, a long run of rows is taken in cache-sized blocks, so each block of X and
    its residuals are used while still in cache (measured: 19× one read of X at D = 1 became
    7–10×); wide rows go to BLAS whole, which streams them better than many small calls.
    """
    xs, ys = x[rows], y[rows]
    block = max(256, CACHE_BYTES // max(1, xs.shape[1] * xs.itemsize)) if xs.shape[1] < NARROW else max(len(ys), 1)
    loss, grad_w, grad_b = 0.0, np.zeros_like(sgd.w), sgd.dtype.type(0)
    for start in range(0, max(len(ys), 1), block):
        xb, yb = xs[start : start + block], ys[start : start + block]
        r = xb @ sgd.w + sgd.b - yb  # residual r = Xw + b - y
        g = (2.0 / m) * r  # dL/dprediction = 2r/m
        loss += float(np.sum(r * r))  # m·L, L = mean(r²) before the step
        grad_w += xb.T @ g  # dL/dw = Xᵀ(2r/m)
        grad_b += g.sum()  # dL/db = Σ 2r/m
    return sgd.dtype.type(loss / m), grad_w, grad_b  # the loss in the run's dtype, as torch reports it


def _summed(shard: Shard, grad_w: np.ndarray, grad_b: np.floating, loss: np.floating) -> tuple[Any, Any, Any]:
    packed = shard.reduce(np.concatenate([grad_w, [grad_b, loss]]).astype(grad_w.dtype))
    return packed[:-2], packed[-2], packed[-1]


def _on_statistics(data: Prepared, schedule: Schedule, sgd: _SGD, epochs: range) -> Generator[EpochLog, None, None]:
    """With A = X − μ, t = y − ȳ and s = μ·w + b − ȳ, the residual is r = (Aw − t) + s, and
    mean(r²) = (wᵀGw − 2wᵀc + tᵀt)/n + s², Xᵀr = Gw − c + n·s·μ, Σr = n·s   (G = AᵀA, c = Aᵀt).
    """
    stats = data.moments  # centered, float64, one blocked pass (shared with lr: auto and the optimum)
    n, mu, gram, cross = stats.n, stats.x_mean, stats.gram, stats.cross
    for epoch in epochs:
        lr = sgd.set_lr(schedule.lr_at(epoch))
        with np.errstate(over="ignore", invalid="ignore"):
            w = sgd.w.astype(np.float64)
            s = float(mu @ w) + float(sgd.b) - stats.y_mean
            gw = gram @ w
            loss = max((float(w @ gw) - 2 * float(w @ cross) + stats.tt) / n + s * s, 0.0)
            grad_w = (2.0 / n) * (gw - cross + n * s * mu)  # dL/dw = (2/n)·Xᵀr
            sgd.step(grad_w.astype(sgd.dtype), sgd.dtype.type(2.0 * s))  # dL/db = (2/n)·Σr = 2s
        sgd.carry(schedule.carried(epoch))
        yield sgd.log(epoch, loss, lr)
