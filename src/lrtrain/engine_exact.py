"""The closed-form least-squares optimum in float64: the reference every run is measured against."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from lrtrain.data import Prepared
from lrtrain.training import EpochLog, Schedule, State


def solve(x: np.ndarray, y: np.ndarray, bias: bool, weight_decay: float = 0.0) -> tuple[np.ndarray, float]:
    """argmin over (w, b) of mean((Xw + b - y)²) + (λ/2)|w|², by Householder QR.

    The bias is handled by centering (it carries no penalty); the penalty by appending the rows
    sqrt(nλ/2)·I, so that one QR solves both. Rank-deficient problems fall back to the
    minimum-norm solution (SVD).
    """
    x64 = np.asarray(x, dtype=np.float64)
    y64 = np.asarray(y, dtype=np.float64)
    n, d = x64.shape
    x_mean = x64.mean(axis=0) if bias else np.zeros(d)
    y_mean = float(y64.mean()) if bias else 0.0
    a, t = x64 - x_mean, y64 - y_mean
    if weight_decay > 0:
        a = np.vstack([a, np.sqrt(n * weight_decay / 2) * np.eye(d)])
        t = np.concatenate([t, np.zeros(d)])
    q, r = np.linalg.qr(a)
    diagonal = np.abs(np.diag(r))
    if a.shape[0] >= d and diagonal.min(initial=np.inf) > diagonal.max(initial=0.0) * d * np.finfo(np.float64).eps:
        w = np.linalg.solve(r, q.T @ t)  # R w = Qᵀt
    else:
        w = np.linalg.lstsq(a, t, rcond=None)[0]
    return w, y_mean - float(x_mean @ w)


def train(data: Prepared, schedule: Schedule, start: State) -> Iterator[EpochLog]:
    w, b = solve(data.x, data.y, schedule.bias, schedule.weight_decay)
    r = data.x.astype(np.float64) @ w + b - data.y
    yield EpochLog(1, float(np.mean(r * r)), w, b, 0.0)
