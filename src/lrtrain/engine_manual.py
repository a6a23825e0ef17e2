"""NumPy gradient descent on the mean squared error, step for step what torch.optim.SGD does."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from lrtrain.data import Prepared
from lrtrain.training import EpochLog, Schedule, State


def train(data: Prepared, schedule: Schedule, start: State) -> Iterator[EpochLog]:
    dtype = np.dtype(schedule.dtype)
    x, y = data.x, data.y
    n = len(y)
    w = start.weights.astype(dtype)
    b = dtype.type(start.bias)
    lr, mu, decay = (dtype.type(v) for v in (schedule.lr, schedule.momentum, schedule.weight_decay))
    velocity_w = np.zeros_like(w) if start.velocity_w is None else start.velocity_w.astype(dtype)
    velocity_b = dtype.type(start.velocity_b)
    for epoch in range(start.epoch + 1, schedule.epochs + 1):
        total = 0.0
        with np.errstate(over="ignore", invalid="ignore"):  # overflow shows as a non-finite loss: divergence
            for rows in schedule.batches(epoch, n):
                xb, yb = x[rows], y[rows]
                m = len(yb)
                r = xb @ w + b - yb  # residual r = Xw + b - y
                loss = np.mean(r * r)  # L = mean(r²), before the step
                g = (2.0 / m) * r  # dL/dprediction = 2r/m
                grad_w = xb.T @ g + decay * w  # dL/dw = Xᵀ(2r/m) + λw
                grad_b = g.sum()  # dL/db = Σ 2r/m (no decay on the bias)
                if mu:
                    velocity_w = mu * velocity_w + grad_w  # v = μv + g, as torch.optim.SGD
                    velocity_b = mu * velocity_b + grad_b
                    grad_w, grad_b = velocity_w, velocity_b
                w = w - lr * grad_w  # w ← w − lr·∂L/∂w
                if schedule.bias:
                    b = b - lr * grad_b  # b ← b − lr·∂L/∂b
                total += float(loss) * m
        velocity = (velocity_w.astype(np.float64), float(velocity_b)) if mu else (None, 0.0)
        yield EpochLog(epoch, total / n, w.astype(np.float64), float(b), schedule.lr, None, *velocity)
