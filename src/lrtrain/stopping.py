"""When training stops before its last epoch: convergence to the least-squares optimum, divergence (with
advice that fits the run's batch size and momentum), and early stopping; and what to say when a run
ends short of its target."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lrtrain import steps
from lrtrain.blocks import largest_magnitude
from lrtrain.config import Config
from lrtrain.engine import EpochLog
from lrtrain.errors import TrainingFailed
from lrtrain.moments import Moments
from lrtrain.prepare import Prepared
from lrtrain.sources import own_rows

DIVERGENCE_FACTOR = 100.0  # an objective this many times its best, and above where it started, has diverged
SCREEN = 100.0  # the epoch's own loss is checked against this many times the target before the exact check
EXACT_FIT = 1e-12  # an optimum below this fraction of the loss of predicting the mean is an exact fit: 0


def mse_from_moments(moments: Moments, w: np.ndarray, b: float) -> float:
    """mean((Xw + b − y)²) from the centered moments, O(D²), float64: with X = A + 1μᵀ and y = t + ȳ,
    Σ(Xw + b − y)² = wᵀGw − 2cᵀw + tᵀt + n(μᵀw + b − ȳ)² (the cross terms vanish: ΣA = 0, Σt = 0)."""
    w = np.asarray(w, dtype=np.float64)
    offset = float(moments.x_mean @ w) + float(b) - moments.y_mean
    sse = float(w @ moments.gram @ w) - 2 * float(moments.cross @ w) + moments.tt + moments.n * offset * offset
    return max(sse, 0.0) / moments.n


class Target:
    """train.target_gap: the objective the engines minimise, the training loss plus (λ/2)|w|² with
    train.weight_decay = λ, within that relative gap of the optimum's (absolute when the optimum is an exact
    fit). Checked after every epoch from the moments, O(D²), without a pass over the rows. (The loss alone
    would not do under weight decay: on the way to the ridge optimum it dips below the optimum's own.)"""

    def __init__(self, config: Config, prepared: Prepared, optimum: tuple[np.ndarray, float]) -> None:
        self.gap = config.train.target_gap
        self.decay = config.train.weight_decay
        self.dtype = config.model.dtype
        self.moments = prepared.moments
        self.best = optimum[0]  # in the trained (standardized) space
        self.optimum = self.objective(mse_from_moments(self.moments, *optimum), optimum[0])
        spread = self.moments.tt / self.moments.n  # the loss of predicting the mean
        self.exact = self.optimum <= EXACT_FIT * spread

    def objective(self, loss: float, weights: np.ndarray) -> float:
        """The loss of `weights` (trained space) plus their penalty, (λ/2)|w|²; the bias has none."""
        w = np.asarray(weights, dtype=np.float64)
        return loss + self.decay / 2 * float(w @ w) if self.decay else loss

    def gap_of(self, loss: float, weights: np.ndarray, optimum: float | None = None) -> float:
        """How far the objective of `weights` with this `loss` is above the optimum's (or `optimum`, a loss)."""
        reference = self.optimum if optimum is None else self.objective(optimum, self.best)
        value = self.objective(loss, weights)
        return value - reference if self.exact else (value - reference) / reference

    def reached(self, log: EpochLog) -> bool:
        """After this epoch's step, are the weights within the gap? The epoch's own loss (before the step, or
        a minibatch average) screens first, for free: only near the target is the loss of the weights after
        the step worked out from the moments."""
        if self.gap == 0 or not self.gap_of(log.loss, log.weights) <= SCREEN * self.gap:
            return False
        return self.gap_of(mse_from_moments(self.moments, log.weights, log.bias), log.weights) <= self.gap

    def shortfall(self, history: list[EpochLog], gap: float, pace: float | None, advice: list[str]) -> str:
        """What to say when the run ends above the gap: how far, how many epochs more at the pace of its last
        epochs, and the settings that get there faster."""
        kind = "" if self.exact else " (relative)"
        text = (
            f"the run stopped short of train.target_gap = {self.gap:g}: its training "
            f"{'objective (loss + (λ/2)|w|²)' if self.decay else 'loss'} is {gap:.3g}{kind} above the "
            f"{'ridge optimum' if self.decay else 'least-squares optimum'} after {history[-1].epoch} epochs."
        )
        recent = [self.gap_of(log.loss, log.weights) for log in history[-max(5, min(len(history) // 5, 100)) :]]
        stalled = len(recent) >= 5 and min(recent[: len(recent) // 2]) <= min(recent[len(recent) // 2 :])
        if pace is not None and 0 < pace < 1 and stalled:  # the spectrum promises progress the run no longer makes
            text += (
                f" Its last {len(recent)} epochs made no progress: in {self.dtype} the loss has reached the floor its "
                "rounding leaves, and more epochs will not lower it."
            )
            if self.dtype == "float32":
                advice = ["model.dtype: float64", *advice]
        elif pace is not None and 0 < pace < 1:  # full batch: the slowest direction's pace, from the spectrum
            more = math.ceil(math.log(self.gap / gap) / math.log(pace))
            text += (
                f" At the pace of its slowest direction (×{pace_text(pace)} an epoch, from the Hessian's eigenvalues "
                f"and the run's lr and momentum) it needs about {more} more epochs "
                f"(--set train.epochs={history[-1].epoch + more})."
            )
        elif pace is None:  # minibatches: the pace observed over the last fifth of the run, noise and all
            window = [self.gap_of(log.loss, log.weights) for log in history[-max(5, min(len(history) // 5, 100)) :]]
            rate = math.log(window[-1] / window[0]) / (len(window) - 1) if len(window) > 1 and min(window) > 0 else 0
            if rate < -1e-12:
                more = math.ceil(math.log(self.gap / gap) / rate)
                text += (
                    f" At the pace of its last {len(window)} epochs (×{math.exp(rate):.4g} an epoch) it needs about "
                    f"{more} more epochs (--set train.epochs={history[-1].epoch + more})."
                )
            else:
                text += f" Its last {len(window)} epochs made no progress: it is at the minibatch noise floor."
        return text + (" Faster: " + "; ".join(advice) + "." if advice else "")


def pace_text(pace: float) -> str:
    """A factor an epoch, as the advice shows it: 0.994021, or (1 − 3.2e-09) where six digits would say 1."""
    shown = f"{pace:.6g}"
    return shown if shown != "1" else f"(1 − {1 - pace:.2g})"


class StopRules:
    """Divergence and early stopping.

    Diverged: the loss or weights are non-finite; or the objective (MSE + (λ/2)|w|²) grew for
    `diverge_patience` epochs in a row to above its value at the first epoch (the second condition
    keeps the harmless rises of momentum and of the MSE under weight decay from counting); or,
    however it got there (minibatch noise and momentum make a blow-up climb unevenly), the objective
    is above its value at the first epoch and DIVERGENCE_FACTOR times the lowest it reached.

    Heavy-ball momentum β converges with a transient: along a direction the error can first grow,
    for about 1/(1 − √β) epochs and by about that factor (the iteration matrix is nearly a Jordan
    block at Polyak's choice), before it shrinks by √β an epoch. Both rules make room for it: the
    patience is multiplied by 1/(1 − √β), the factor by its square (the loss is quadratic in the error).
    """

    def __init__(self, config: Config, prepared: Prepared, momentum: float = 0.0) -> None:
        self.config = config
        self.prepared = prepared
        self.momentum = momentum  # the run's, `auto` resolved
        transient = 1.0 / (1.0 - math.sqrt(momentum))
        self.patience = math.ceil(config.train.diverge_patience * transient)
        self.factor = DIVERGENCE_FACTOR * transient**2
        self.growing = 0
        self.previous = math.inf
        self.first_growth = math.nan
        self.first = math.inf
        self.lowest = math.inf
        self.best = math.inf
        self.since_best = 0
        self.best_state: list[Any] | None = None  # [epoch, weights, bias] of the best epoch, raw units

    _COUNTERS = ("growing", "previous", "first_growth", "first", "lowest", "best", "since_best", "best_state")

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._COUNTERS}

    def restore(self, state: dict[str, Any]) -> None:
        for name in self._COUNTERS:
            setattr(self, name, state[name])

    def check_divergence(self, log: EpochLog) -> None:
        finite = math.isfinite(log.loss) and bool(np.all(np.isfinite(log.weights))) and math.isfinite(log.bias)
        blown = False
        if finite:
            with np.errstate(over="ignore"):  # weights near 1e154 and up: an infinite objective, which grew
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
            self.lowest = min(self.lowest, objective)
            blown = objective > self.first and objective > self.factor * self.lowest
        growing = self.growing >= self.patience and self.previous > self.first
        if not finite or growing or blown:
            if not finite:
                how = "the loss or weights became non-finite"
            elif growing:
                how = (
                    f"the loss grew for {self.growing} epochs in a row, from {self.first_growth:.4g} to {log.loss:.4g}"
                )
            else:
                how = f"the loss rose to {log.loss:.4g}, over {self.factor:.3g} times the lowest it reached"
            raise TrainingFailed(  # from the all-reduced loss: every rank stops here alike
                f"training diverged at epoch {log.epoch}: {how} (lr = {log.lr:g}). {self._advice(finite)}"
            ).shared("job")

    def _advice(self, finite: bool) -> str:
        config, prepared = self.config, self.prepared
        raw, shard = prepared.raw, prepared.shard
        mine = own_rows(raw, shard)  # this rank's rows as read
        own = [0.0, 0.0]
        for x, y in raw.blocks(mine.start, mine.stop):
            own = [max(own[0], largest_magnitude(x)), max(own[1], largest_magnitude(y[:, None]))]
        largest = float(np.max(shard.gather(np.array(own))))
        if not finite and config.model.dtype == "float32" and largest > 1e18:
            return (
                f"The data holds values up to {largest:.3g}, whose squares overflow float32 (max 3.4e38): "
                "use --set model.dtype=float64, or rescale the data. No model was written."
            )
        bound, suggested = steps.stable(config, prepared, self.momentum)
        text = f"{bound}; try --set train.lr={suggested:.3g} (what lr: auto picks for these settings)."
        # standardized features have mean 0 and the Hessian (2/n)·S⁻¹GS⁻¹ (plus 2 for the bias); without a bias
        # they are scaled about the origin, and G is XᵀX: no scaled copy of the data is needed to know it
        moments = prepared.moments if config.model.bias else prepared.moments.uncentered()
        variance = np.diag(moments.gram) / prepared.rows
        if not config.data.standardize and np.all(variance > 0) and steps.full_batch(config, prepared):
            inverse = 1.0 / np.sqrt(variance)
            scaled = (2.0 / prepared.rows) * moments.gram * np.outer(inverse, inverse)
            curvature = max(float(np.linalg.eigvalsh(scaled)[-1]), 2.0 if config.model.bias else 0.0)
            beta = self.momentum
            text += (
                " Standardizing the features (--set data.standardize=true) would allow lr up to "
                f"{2 * (1 + beta) / (curvature + config.train.weight_decay):.4g}."
            )
        elif not config.data.standardize:
            text += " Standardizing the features (--set data.standardize=true) lowers the curvature too."
        return text + " No model was written."

    def stalled(self, log: EpochLog, state: list[Any]) -> bool:
        """Early stopping, on the validation loss if there is one, else the training loss; `state` is
        [epoch, weights, bias] of the weights that metric is the loss of, kept while it is the best."""
        patience = self.config.train.early_stopping.patience
        metric = log.val_loss if log.val_loss is not None else log.loss
        if metric < self.best - self.config.train.early_stopping.tolerance:
            self.best, self.since_best, self.best_state = metric, 0, state
        else:
            self.since_best += 1
        return self.since_best >= patience
