"""When training stops early: divergence (with advice on the learning rate) and early stopping."""

from __future__ import annotations

import math

import numpy as np

from lrtrain.blocks import largest_magnitude
from lrtrain.config import Config
from lrtrain.engine import EpochLog
from lrtrain.errors import TrainingFailed
from lrtrain.moments import largest_curvature
from lrtrain.parallel import block
from lrtrain.prepare import Prepared


class StopRules:
    """Divergence and early stopping.

    Diverged: the loss or weights are non-finite, or the objective (MSE + (λ/2)|w|²) grew for
    `diverge_patience` epochs in a row to above its value at the first epoch. The second condition
    keeps the harmless rises of momentum and of the MSE under weight decay from counting.
    """

    def __init__(self, config: Config, prepared: Prepared) -> None:
        self.config = config
        self.prepared = prepared
        self.growing = 0
        self.previous = math.inf
        self.first_growth = math.nan
        self.first = math.inf
        self.best = math.inf
        self.since_best = 0

    _COUNTERS = ("growing", "previous", "first_growth", "first", "best", "since_best")

    def state(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self._COUNTERS}

    def restore(self, state: dict[str, float]) -> None:
        for name in self._COUNTERS:
            setattr(self, name, state[name])

    def check_divergence(self, log: EpochLog) -> None:
        finite = math.isfinite(log.loss) and bool(np.all(np.isfinite(log.weights))) and math.isfinite(log.bias)
        if finite:
            objective = log.loss + self.config.train.weight_decay / 2 * float(log.weights @ log.weights)
            if objective > self.previous:
                if self.growing == 0:
                    self.first_growth = log.loss
                self.growing += 1
            else:
                self.growing = 0
            self.previous = objective
            if math.isinf(self.first):
                self.first = objective
        growing = self.growing >= self.config.train.diverge_patience and self.previous > self.first
        if not finite or growing:
            how = (
                "the loss or weights became non-finite"
                if not finite
                else f"the loss grew for {self.growing} epochs in a row, from {self.first_growth:.4g} to {log.loss:.4g}"
            )
            raise TrainingFailed(
                f"training diverged at epoch {log.epoch}: {how} (lr = {log.lr:g}). {self._advice(finite)}"
            )

    def _advice(self, finite: bool) -> str:
        config, prepared = self.config, self.prepared
        raw, shard = prepared.raw, prepared.shard
        mine = block(
            prepared.rows + prepared.val_rows, shard.rank, shard.world
        )  # this rank's share of the rows as read
        own = [0.0, 0.0]
        for x, y in raw.blocks(mine.start, mine.stop):
            own = [max(own[0], largest_magnitude(x)), max(own[1], largest_magnitude(y[:, None]))]
        largest = float(np.max(shard.gather(np.array(own))))
        if not finite and config.model.dtype == "float32" and largest > 1e18:
            return (
                f"The data holds values up to {largest:.3g}, whose squares overflow float32 (max 3.4e38): "
                "use --set model.dtype=float64, or rescale the data. No model was written."
            )
        mu = config.train.momentum
        factor = 2.0 * (1.0 + mu)  # heavy-ball momentum is stable for lr < 2(1+μ)/L
        curvature = largest_curvature(prepared.moments, config.model.bias)
        limit = factor / curvature if curvature > 0 else math.inf
        text = (
            f"The largest stable learning rate for this data is {'2(1+momentum)' if mu else '2'}/L = {limit:.4g} "
            f"(L = {curvature:.4g}, the largest eigenvalue of the loss's Hessian); try --set train.lr={limit / 2:.3g}."
        )
        variance = np.diag(prepared.moments.gram) / prepared.rows
        if not config.data.standardize and np.all(variance > 0):
            # standardized features have mean 0 and the Hessian (2/n)·S⁻¹GS⁻¹ (plus 2 for the bias):
            # no scaled copy of the data is needed to know it
            inverse = 1.0 / np.sqrt(variance)
            scaled = (2.0 / prepared.rows) * prepared.moments.gram * np.outer(inverse, inverse)
            curvature = max(float(np.linalg.eigvalsh(scaled)[-1]), 2.0 if config.model.bias else 0.0)
            text += (
                " Standardizing the features (--set data.standardize=true) would allow lr up to "
                f"{factor / curvature:.4g}."
            )
        return text + " No model was written."

    def stalled(self, log: EpochLog) -> bool:
        patience = self.config.train.early_stopping.patience
        if patience == 0:
            return False
        metric = log.val_loss if log.val_loss is not None else log.loss
        if metric < self.best - self.config.train.early_stopping.tolerance:
            self.best, self.since_best = metric, 0
        else:
            self.since_best += 1
        return self.since_best >= patience
