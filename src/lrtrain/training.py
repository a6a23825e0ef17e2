"""One fit (data -> engine -> stop rules -> artifact), the engine registry, and `compare`."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import importlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from lrtrain import __version__, order, parallel, stats
from lrtrain import config as config_module
from lrtrain import data as data_module
from lrtrain import model as model_module
from lrtrain.config import Config
from lrtrain.errors import ConfigError, Interrupted, TrainingFailed

ENGINES = {"manual": "lrtrain.engine_manual", "torch": "lrtrain.engine_torch", "exact": "lrtrain.engine_exact"}
SCHEMA = "lrtrain/1"


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
class Schedule:
    """What every engine is told: the same steps, the same batch order."""

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

    def batches(
        self, epoch: int, n: int, shard: parallel.Shard = parallel.SINGLE
    ) -> Iterator[tuple[int, slice | np.ndarray]]:
        """One epoch's minibatches of the n training rows: (the global batch size, the shard's rows of the
        batch); a fresh order every epoch when shuffling (see lrtrain.order)."""
        return order.batches(n, self.batch_size, self.shuffle, self.seed, epoch, shard)


class Listener(Protocol):
    """Told when training starts and after every epoch (it decides which epochs to show)."""

    def started(self, start: Start) -> None: ...
    def epoch(self, log: EpochLog) -> None: ...


@dataclass(frozen=True)
class Start:
    engine: str
    device: str
    rows: int
    features: int
    predictions: list[tuple[list[float], float]]  # (input, prediction) with the initial weights
    lr: float
    curvature: float | None  # L, when lr is auto
    epochs: int = 0  # the epochs this fit will have trained when it completes
    done: int = 0  # epochs already trained (a resumed run)


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
    summary: stats.Summary | str | None = None  # OLS inference on the training rows; str: why there is none

    @property
    def max_dw_to_optimum(self) -> float:
        return _max_abs_diff(self.weights, self.bias, self.optimum_weights, self.optimum_bias)

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs, 1)


def _max_abs_diff(w1: np.ndarray, b1: float, w2: np.ndarray, b2: float) -> float:
    return float(np.max(np.abs(np.append(w1 - w2, b1 - b2))))


def parse_engine(text: str, default_device: str) -> tuple[str, str]:
    """'manual' | 'torch' | 'torch:cuda' | 'exact' -> (engine, device)."""
    name, _, device = text.partition(":")
    if name not in ENGINES:
        import difflib

        close = difflib.get_close_matches(name, list(ENGINES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown engine {text!r}.{hint} "
            "Engines: manual, torch, torch:cpu, torch:cuda, torch:cuda:N, torch:mps, exact."
        )
    if device and name != "torch":
        raise ConfigError(
            f"engine {text!r}: only the torch engine takes a device (torch:{device}); {name} runs on the CPU."
        )
    if device and not re.fullmatch(r"cpu|auto|mps|cuda(:\d+)?", device):
        raise ConfigError(f"engine {text!r}: the device must be cpu, cuda, cuda:N, mps or auto (e.g. torch:cuda).")
    return name, device or (default_device if name == "torch" else "cpu")


def initial_weights(config: Config, d: int) -> tuple[np.ndarray, float]:
    """Drawn once from the seed and handed to every engine, so they start equal."""
    rng = np.random.default_rng([config.seed, 0])
    init = config.model.init
    if init == "zeros":
        w, b = np.zeros(d), 0.0
    elif init == "normal":
        w, b = rng.normal(0.0, config.model.init_std, size=d), 0.0
    else:  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
        bound = 1.0 / math.sqrt(d)
        w, b = rng.uniform(-bound, bound, size=d), float(rng.uniform(-bound, bound))
    dtype = np.dtype(config.model.dtype)
    return w.astype(dtype), float(dtype.type(b)) if config.model.bias else 0.0


def largest_curvature(x: np.ndarray, bias: bool, centered: data_module.Moments | None = None) -> float:
    """L, the largest eigenvalue of the MSE's Hessian (2/n)·X̃ᵀX̃, X̃ = [X, 1] with a bias."""
    centered = centered or data_module.moments(x, np.zeros(len(x)))
    n, mu = centered.n, centered.x_mean
    xtx = centered.gram + n * np.outer(mu, mu)  # XᵀX = AᵀA + nμμᵀ
    gram = np.block([[xtx, n * mu[:, None]], [n * mu[None, :], np.array([[float(n)]])]]) if bias else xtx
    gram = gram * (2.0 / n)
    if gram.shape[0] <= 2048:
        return float(np.linalg.eigvalsh(gram)[-1])
    v = np.ones(gram.shape[0]) / math.sqrt(gram.shape[0])  # power iteration
    value = 0.0
    for _ in range(1000):
        u = gram @ v
        new = float(np.linalg.norm(u))
        v = u / new
        if abs(new - value) <= 1e-10 * new:
            break
        value = new
    return new


def squared_errors(x: np.ndarray, y: np.ndarray, models: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """|Xw + b - y|² for each model (w, b), float64, in one blocked pass over X: X @ [w₁ w₂ …] per block."""
    w = np.column_stack([np.asarray(m[0], dtype=np.float64) for m in models])
    b = np.array([m[1] for m in models], dtype=np.float64)
    total = np.zeros(len(models))
    for start in range(0, len(y), data_module.BLOCK_ROWS):
        stop = start + data_module.BLOCK_ROWS
        r = np.asarray(x[start:stop], dtype=np.float64) @ w + b - np.asarray(y[start:stop], dtype=np.float64)[:, None]
        total += np.einsum("ij,ij->j", r, r)  # column j: rᵀr of model j
    return total


def mse(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> float:
    """mean((Xw + b - y)²) in float64, in blocks."""
    return float(squared_errors(x, y, [(w, b)])[0]) / len(y)


def _mean_squares(
    x: np.ndarray, y: np.ndarray, rows: int, shard: parallel.Shard, models: list[tuple[np.ndarray, float]]
) -> list[float]:
    """mean((Xw + b - y)²) per model over `rows` rows, of which this rank holds (x, y): its sums, all-reduced."""
    return [float(v) for v in shard.reduce(squared_errors(x, y, models)) / rows]


CHECKPOINT_FILE = "checkpoint.json"
CHECKPOINT_VERSION = 3  # 2: the row order comes from lrtrain.order; 3: the data's fingerprint is by blocks
METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"


def fit(
    config: Config,
    listener: Listener | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: Path | None = None,
    with_summary: bool = False,
) -> FitResult:
    """Load the data, train one engine with the stop rules, write the run folder.

    `should_stop` is asked after every epoch (under torchrun, after the epochs the ranks vote on:
    parallel.StopVote); when it says yes, the last completed epoch is written as a checkpoint (by
    rank 0) and `Interrupted` is raised. `resume` continues such a run, with any number of ranks.
    """
    engine, device = config.train.engine, config.train.device
    if engine != "torch" and device not in ("cpu", "auto"):
        raise ConfigError(
            f"train.device is {device!r}, but only the torch engine runs on a device and train.engine is "
            f"{engine!r} (it runs on the CPU). Use --engine torch --device {device}, or leave the device at cpu."
        )
    if parallel.world_size() > 1 and engine == "exact":
        raise ConfigError("the exact engine runs in one process; run it without torchrun.")
    if engine == "exact":
        config = _in_float64(config)
    device = parallel.local_device(device)
    _engine(engine, device)  # a missing device fails before the data is even read
    main = parallel.is_main()  # under torchrun, rank 0 speaks and writes; the others only train
    save = config.output.save and main
    finished = False
    group = parallel.start(device)  # under torchrun, join the others: from here on every rank must keep step
    try:
        dataset = data_module.load(config, group)
        prepared = data_module.prepare(dataset, config, group)  # under torchrun, this rank's rows only
        if config.output.save or resume is not None:  # now, by every rank: not after a Ctrl-C (torchrun kills
            dataset.sha256(group)  # a process slow to stop), nor on rank 0 alone once the others have left
        checkpoint = load_checkpoint(resume, prepared, config) if resume is not None else None
        if config.output.save and resume is None:  # on every rank, so that all of them fail alike
            _check_writable(Path(config.output.dir))  # before training, not after hours of it
        result = train(config, prepared, engine, device, listener if main else None, should_stop, checkpoint)
    except Interrupted as stop:
        if not save or not isinstance(stop.checkpoint, Checkpoint):
            raise
        run_dir = resume or reserve_run_dir(config)
        try:
            save_checkpoint(run_dir, config, stop.checkpoint, prepared, checkpoint)
        except BaseException:  # e.g. a second Ctrl-C while saving: "stop now, saving nothing"
            if resume is None:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        raise Interrupted(
            f"interrupted after epoch {stop.checkpoint.state.epoch} of {config.train.epochs}; the run so far "
            f"(config, metrics, checkpoint) is in {run_dir}. Resume it with: lrtrain fit --resume {run_dir}",
            stop.checkpoint,
        ) from None
    else:
        finished = True
    finally:
        parallel.stop(finished)  # a barrier only when every rank got here the same way
    if save or with_summary:  # O(D³) from the moments: for the model file, or when asked
        result.summary = summarize(config, prepared, result)
    if save:
        result.run_dir = save_run(config, result, prepared, resume, checkpoint)
    return result


def train(
    config: Config,
    prepared: data_module.Prepared,
    engine: str,
    device: str,
    listener: Listener | None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    optimum: tuple[np.ndarray, float] | None = None,
) -> FitResult:
    """Train one engine on prepared data; `optimum` is the exact solution in raw units, if already solved.

    Under torchrun every rank runs this with its own block of the rows: each number that sums over
    rows is all-reduced, so every rank computes what one process would, collective for collective.
    """
    module, device = _engine(engine, device)
    scaling, shard = prepared.scaling, prepared.shard
    moments = prepared.moments  # under torchrun a collective: gathered here, at the same point on every rank
    w0, b0 = initial_weights(config, prepared.features)
    samples = _prediction_inputs(config, prepared.features)
    w0_raw, b0_raw = scaling.to_original(w0, b0)
    lr, curvature = _learning_rate(config, prepared)
    done = resume.state.epoch if resume is not None else 0
    if listener:
        device_label = device if engine == "torch" else "cpu"
        before = [(s, _predict(w0_raw, b0_raw, s)) for s in samples]
        epochs = 1 if engine == "exact" else config.train.epochs
        listener.started(
            Start(engine, device_label, prepared.rows, prepared.features, before, lr, curvature, epochs, done)
        )
    schedule = Schedule(
        epochs=config.train.epochs,
        lr=lr,
        momentum=config.train.momentum,
        weight_decay=config.train.weight_decay,
        batch_size=config.train.batch_size,
        shuffle=config.train.shuffle,
        seed=config.seed,
        bias=config.model.bias,
        dtype=config.model.dtype,
        device=device,
        statistics=_use_statistics(config, prepared),
        threads=config.train.threads,
    )
    stop = _StopRules(config, prepared)
    start, seconds_before = State(0, w0, b0), 0.0
    if resume is not None:
        start, seconds_before = resume.state, resume.seconds
        stop.restore(resume.stop_rules)
    history: list[EpochLog] = []
    stopped = "completed"
    vote = parallel.StopVote(shard, should_stop) if should_stop is not None else None  # every rank stops alike
    started = time.perf_counter()
    logs: Generator[EpochLog, None, None] = module.train(prepared, schedule, start)
    limits = threadpool_limits(config.train.threads) if config.train.threads else contextlib.nullcontext()
    with limits, contextlib.closing(logs):
        for log in logs:
            if prepared.x_val is not None:
                model = [(log.weights, log.bias)]
                (val_loss,) = _mean_squares(prepared.x_val, prepared.y_val, prepared.val_rows, shard, model)  # type: ignore[arg-type]
                log = dataclasses.replace(log, val_loss=val_loss)
            w_raw, b_raw = scaling.to_original(log.weights, log.bias)
            shown = dataclasses.replace(log, weights=w_raw, bias=b_raw)
            history.append(shown)
            stop.check_divergence(log)
            if listener:
                listener.epoch(shown)
            if stop.stalled(log):
                patience = config.train.early_stopping.patience
                stopped = f"early stopping at epoch {log.epoch}: no improvement for {patience} epochs"
                break
            if vote is not None and vote() and log.epoch < schedule.epochs:
                elapsed = seconds_before + time.perf_counter() - started
                raise Interrupted(
                    f"interrupted after epoch {log.epoch} of {schedule.epochs}; "
                    "nothing was saved (output.save is false).",
                    Checkpoint(log.state(), stop.state(), elapsed, history),
                )
    seconds = seconds_before + time.perf_counter() - started
    if not history:
        raise ConfigError(
            f"nothing to train: the run had already reached train.epochs = {config.train.epochs}. "
            "Raise it with --set train.epochs=N to train further."
        )
    last = history[-1]
    w_opt, b_opt = optimum or _optimum(prepared, config)
    w_raw, b_raw = last.weights, last.bias
    final, best = scaling.to_trained(w_raw, b_raw), scaling.to_trained(w_opt, b_opt)
    loss, optimum_loss = _mean_squares(prepared.x, prepared.y, prepared.rows, shard, [final, best])
    total = moments.tt  # |y − ȳ|², gathered with the moments: no float64 copy of y
    r2 = 1.0 - loss * prepared.rows / total if total > 0 else (1.0 if loss == 0 else 0.0)  # R² = 1 − SSE/|y − ȳ|²
    return FitResult(
        engine=engine,
        device=device if engine == "torch" else "cpu",
        dtype="float64" if engine == "exact" else config.model.dtype,
        weights=w_raw,
        bias=b_raw,
        epochs=last.epoch,
        loss=loss,
        val_loss=last.val_loss,
        r2=r2,
        seconds=seconds,
        stopped=stopped,
        optimum_loss=optimum_loss,
        optimum_weights=w_opt,
        optimum_bias=b_opt,
        history=history,
        predictions=[(s, _predict(w0_raw, b0_raw, s), _predict(w_raw, b_raw, s)) for s in samples],
        rows=prepared.rows,
    )


def summarize(config: Config, prepared: data_module.Prepared, result: FitResult) -> stats.Summary | str:
    """Standard errors, tests and intervals of the final weights, from the moments (no pass over the data);
    or why there are none."""
    if config.data.standardize and not config.model.bias:
        return (
            "no statistical summary for a model without a bias trained on standardized features: in the raw "
            "units its intercept is fixed at −w·mean, which ordinary least squares has no test for. "
            "Set model.bias to true, or data.standardize to false."
        )
    raw = prepared.moments.in_original_units(prepared.scaling)
    w, b, loss, optimum_loss = result.weights, result.bias, result.loss, result.optimum_loss
    summary = stats.summarize(raw, w, b if config.model.bias else None, loss * prepared.rows, prepared.raw.features)
    notes = []
    if config.train.weight_decay > 0:
        notes.append(
            f"train.weight_decay = {config.train.weight_decay:g}: these are ridge weights, and the standard errors, "
            "tests and intervals assume ordinary least squares, so they are only indicative."
        )
    excess = loss - optimum_loss
    variance = prepared.moments.tt / prepared.rows  # of y: what "small" means for an optimum of 0
    if excess > 1e-3 * optimum_loss and excess > 1e-12 * variance:  # σ² off by more than 0.1%
        how_far = f"{excess / optimum_loss:.2%} above the optimum's" if optimum_loss > 0 else f"{loss:.3g}, not 0"
        notes.append(
            f"the weights are not yet the least-squares optimum (their MSE is {how_far}), and the statistics use "
            "their residuals: train longer, or use --engine exact."
        )
    return dataclasses.replace(summary, warnings=(*summary.warnings, *notes))


def _in_float64(config: Config) -> Config:
    """The config for the exact engine: it solves the data as read, not a float32 copy of it."""
    if config.model.dtype == "float64":
        return config
    return config.model_copy(update={"model": config.model.model_copy(update={"dtype": "float64"})})


def _engine(name: str, device: str) -> tuple[Any, str]:
    """The engine's module, and the device it will run on ('auto' resolved; a missing one is an error)."""
    module = importlib.import_module(ENGINES[name])
    if hasattr(module, "resolve_device"):
        device = str(module.resolve_device(device))
    return module, device


def _largest_magnitude(a: np.ndarray) -> float:
    """max |a| in blocks (a mapped file stays on disk)."""
    blocks = (np.max(np.abs(a[s : s + data_module.BLOCK_ROWS])) for s in range(0, len(a), data_module.BLOCK_ROWS))
    return float(max(blocks, default=0.0))


def _learning_rate(config: Config, prepared: data_module.Prepared) -> tuple[float, float | None]:
    """The configured lr, or for `auto` 1/L: half the largest stable step of full-batch gradient descent."""
    if config.train.lr != "auto":
        return float(config.train.lr), None
    curvature = largest_curvature(prepared.x, config.model.bias, prepared.moments)
    return (1.0 / curvature if curvature > 0 else 1.0), curvature


def _use_statistics(config: Config, prepared: data_module.Prepared) -> bool:
    """Full-batch epochs from XᵀX and friends: O(N·D²) once, then O(D²) per epoch instead of O(N·D)."""
    choice = config.train.statistics
    full_batch = config.train.batch_size is None or config.train.batch_size >= prepared.rows
    if choice == "never" or not full_batch:
        return False
    if choice == "always":
        return True
    cheaper = prepared.features < 4 * config.train.epochs  # N·D² once < 4·N·D per epoch
    return config.model.dtype == "float64" and cheaper  # float32 keeps its rounding, step for step


def _optimum(prepared: data_module.Prepared, config: Config) -> tuple[np.ndarray, float]:
    from lrtrain.engine_exact import solve

    w, b = solve(prepared.x, prepared.y, config.model.bias, config.train.weight_decay, prepared.moments, prepared.shard)
    return prepared.scaling.to_original(w, b)


def _predict(w: np.ndarray, b: float, sample: list[float]) -> float:
    return float(np.dot(w, sample) + b)


def _prediction_inputs(config: Config, d: int) -> list[list[float]]:
    if config.train.predict is None:
        return [[5.0]] if d == 1 else []  # the sheet's f(5), where it makes sense
    samples = [v if isinstance(v, list) else [v] for v in config.train.predict]
    for sample in samples:
        if len(sample) != d:
            raise ConfigError(
                f"train.predict has the input {sample} with {len(sample)} value(s), but the data has {d} feature(s). "
                f"Give each input as a list of {d} numbers, e.g. train.predict: [{[0.0] * d}], or set it to []."
            )
    return samples


class _StopRules:
    """Divergence and early stopping.

    Diverged: the loss or weights are non-finite, or the objective (MSE + (λ/2)|w|²) grew for
    `diverge_patience` epochs in a row to above its value at the first epoch. The second condition
    keeps the harmless rises of momentum and of the MSE under weight decay from counting.
    """

    def __init__(self, config: Config, prepared: data_module.Prepared) -> None:
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
        mine = parallel.block(len(raw.y), shard.rank, shard.world)  # this rank's share of the rows as read
        own = [_largest_magnitude(a[mine.start : mine.stop]) for a in (raw.x, raw.y)]
        largest = float(np.max(shard.gather(np.array(own))))
        if not finite and config.model.dtype == "float32" and largest > 1e18:
            return (
                f"The data holds values up to {largest:.3g}, whose squares overflow float32 (max 3.4e38): "
                "use --set model.dtype=float64, or rescale the data. No model was written."
            )
        mu = config.train.momentum
        factor = 2.0 * (1.0 + mu)  # heavy-ball momentum is stable for lr < 2(1+μ)/L
        curvature = largest_curvature(prepared.x, config.model.bias, prepared.moments)
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


# --------------------------------------------------------------------------- the run folder


@dataclass
class Checkpoint:
    """A run stopped after a completed epoch: enough to continue it exactly."""

    state: State  # in the trained (standardized) space, values exact in the run's dtype
    stop_rules: dict[str, float]
    seconds: float
    history: list[EpochLog] = field(repr=False)  # the epochs trained since the last start, raw units
    rows: list[list[str]] = field(default_factory=list, repr=False)  # metrics.csv rows of earlier starts


def _check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot create a run folder under output.dir = {root}: {exc.strerror}. Set output.dir to a folder "
            "you can write (e.g. --set output.dir=runs), or --set output.save=false to keep nothing."
        ) from None


def reserve_run_dir(config: Config) -> Path:
    """Create a fresh run folder under output.dir; concurrent fits never share one."""
    root = Path(config.output.dir)
    base = f"{config.run_name()}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        for attempt in range(1000):
            candidate = root / (base if attempt == 0 else f"{base}-{attempt + 1}")
            try:
                os.mkdir(candidate)
            except FileExistsError:
                continue
            return candidate
    except OSError as exc:
        raise ConfigError(
            f"cannot create a run folder under output.dir = {root}: {exc.strerror}. Set output.dir to a folder "
            "you can write (e.g. --set output.dir=runs), or --set output.save=false to keep nothing."
        ) from None
    raise ConfigError(f"cannot create a run folder under {root}: 1000 folders named {base}* exist. Clean up {root}.")


def save_run(
    config: Config,
    result: FitResult,
    prepared: data_module.Prepared,
    resumed: Path | None = None,
    checkpoint: Checkpoint | None = None,
) -> Path:
    """Write config.yaml, metrics.csv and model.json (last) into the run folder."""
    run_dir = resumed or reserve_run_dir(config)
    try:
        _write_config_and_metrics(run_dir, config, prepared, checkpoint.rows if checkpoint else [], result.history)
        model_module.write_json(run_dir / model_module.MODEL_FILE, model_payload(config, result, prepared))
    except BaseException:
        if resumed is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    return run_dir


def save_checkpoint(
    run_dir: Path, config: Config, checkpoint: Checkpoint, prepared: data_module.Prepared, earlier: Checkpoint | None
) -> None:
    """config.yaml, metrics.csv of the epochs so far, then checkpoint.json; no model.json."""
    rows = earlier.rows if earlier else []
    _write_config_and_metrics(run_dir, config, prepared, rows, checkpoint.history)
    state = checkpoint.state
    payload = {
        "format": "lrtrain.checkpoint",
        "format_version": CHECKPOINT_VERSION,
        "lrtrain_version": __version__,
        "epoch": state.epoch,
        "weights": _floats(state.weights),
        "bias": state.bias,
        "velocity_w": None if state.velocity_w is None else _floats(state.velocity_w),
        "velocity_b": state.velocity_b,
        "stop_rules": checkpoint.stop_rules,
        "seconds": checkpoint.seconds,
        "data_sha256": prepared.raw.sha256(),
        "trajectory": trajectory_settings(config),
    }
    model_module.write_json(run_dir / CHECKPOINT_FILE, payload, allow_nan=True)


def trajectory_settings(config: Config) -> dict[str, Any]:
    """The settings a resumed run must share with the interrupted one to walk the same path."""
    settings = config_module.to_dict(config)
    for key in ("name", "log", "output", "compare"):
        settings.pop(key)
    for key in ("epochs", "threads", "early_stopping", "diverge_patience", "predict"):
        settings["train"].pop(key)
    return settings


def load_checkpoint(run_dir: Path, prepared: data_module.Prepared, config: Config) -> Checkpoint:
    if not run_dir.is_dir():
        raise ConfigError(f"--resume {run_dir}: no such run folder. Pass a folder under runs/ that holds a checkpoint.")
    if (run_dir / model_module.MODEL_FILE).exists():
        raise ConfigError(
            f"--resume {run_dir}: that run finished (it has a model.json); there is nothing to resume. "
            "To train longer, start a new run from its config: lrtrain fit --config "
            f"{run_dir / CONFIG_FILE} --set train.epochs=N."
        )
    path = run_dir / CHECKPOINT_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if payload["format_version"] != CHECKPOINT_VERSION:
            raise ConfigError(
                f"--resume {run_dir}: the checkpoint has format version {payload['format_version']!r}, and this "
                f"lrtrain continues version {CHECKPOINT_VERSION} only: the order of the rows or the data's "
                "fingerprint differs between them, so the run would not continue as it was. Start a new run."
            )
        with (run_dir / METRICS_FILE).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))[1:]
        velocity = payload["velocity_w"]
        state = State(
            int(payload["epoch"]),
            np.asarray(payload["weights"], dtype=np.float64),
            float(payload["bias"]),
            None if velocity is None else np.asarray(velocity, dtype=np.float64),
            float(payload["velocity_b"]),
        )
        stop_rules = {k: float(v) for k, v in payload["stop_rules"].items()}
        seconds, digest = float(payload["seconds"]), str(payload["data_sha256"])
        settings = payload["trajectory"]
    except FileNotFoundError as exc:
        raise ConfigError(
            f"--resume {run_dir}: {Path(exc.filename).name} is missing, so the run cannot be continued. "
            "Only a fit stopped by Ctrl-C or SIGTERM leaves a checkpoint; start a new run instead."
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"--resume {run_dir}: the checkpoint is damaged ({exc.__class__.__name__}: {exc}). Start a new run."
        ) from None
    if digest != prepared.raw.sha256(prepared.shard):  # under torchrun, each rank hashed its share
        raise ConfigError(
            f"--resume {run_dir}: the training data changed since the checkpoint ({prepared.raw.origin}), so "
            "the run cannot continue the same trajectory. Restore the data or start a new run."
        )
    changed = _differences(settings, trajectory_settings(config))
    if changed:
        raise ConfigError(
            f"--resume {run_dir}: {', '.join(changed)} differ from the interrupted run's, so it would not continue "
            "the same trajectory. Drop those --set overrides (train.epochs, logging and output may change)."
        )
    if len(state.weights) != prepared.features or len(rows) < state.epoch:
        raise ConfigError(f"--resume {run_dir}: checkpoint and metrics.csv disagree. Start a new run.")
    # metrics.csv is written before checkpoint.json: rows past the checkpoint are from a save cut short
    return Checkpoint(state, stop_rules, seconds, [], rows[: state.epoch])


@dataclass(frozen=True)
class RunInfo:
    """One run folder, as `lrtrain runs` lists it."""

    path: Path
    status: str  # finished | interrupted (a checkpoint) | incomplete (neither) | unreadable (see problem)
    when: datetime  # local time the model or checkpoint was written
    engine: str | None = None
    epochs: int | None = None
    loss: float | None = None
    r2: float | None = None
    problem: str | None = None  # why the folder could not be read


def list_runs(root: Path) -> list[RunInfo]:
    """The run folders under `root`, oldest first; unreadable ones are listed with the reason."""
    try:
        folders = sorted(root.iterdir()) if root.exists() else []
    except NotADirectoryError:
        raise ConfigError(
            f"--dir {root} is a file; give the folder that holds the runs (output.dir, e.g. runs)."
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot list the runs in {root}: {exc.strerror or exc}.") from None
    return sorted(
        (run for run in map(_run_info, folders) if run is not None), key=lambda run: (run.when, str(run.path))
    )


def _run_info(folder: Path) -> RunInfo | None:
    """What a run folder holds (None: not a run folder, it has no config.yaml)."""
    model_file, checkpoint_file, config_file = (
        folder / model_module.MODEL_FILE,
        folder / CHECKPOINT_FILE,
        folder / CONFIG_FILE,
    )
    if not config_file.is_file():
        return None
    written = next(f for f in (model_file, checkpoint_file, config_file) if f.is_file())
    when = datetime.fromtimestamp(written.stat().st_mtime).astimezone()  # local time, with its offset
    reading = model_file
    try:
        if model_file.is_file():
            payload = json.loads(model_file.read_text(encoding="utf-8"))
            metrics = payload["metrics"]
            engine, epochs = str(payload["engine"]), int(metrics["epochs"])
            return RunInfo(folder, "finished", when, engine, epochs, float(metrics["loss"]), float(metrics["r2"]))
        if checkpoint_file.is_file():
            reading = checkpoint_file
            epoch = int(json.loads(checkpoint_file.read_text(encoding="utf-8"))["epoch"])
            reading = config_file
            return RunInfo(folder, "interrupted", when, config_module.load_config(config_file).train.engine, epoch)
        return RunInfo(folder, "incomplete", when)
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        detail = f"no {exc} field" if isinstance(exc, KeyError) else str(exc)
        return RunInfo(folder, "unreadable", when, problem=f"{reading.name} is damaged ({detail})")


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for key in sorted(set(old) | set(new))
            for d in _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        ]
    return [prefix.rstrip(".")] if old != new else []


def _write_config_and_metrics(
    run_dir: Path, config: Config, prepared: data_module.Prepared, rows: list[list[str]], history: list[EpochLog]
) -> None:
    with model_module.atomic_writer(run_dir / CONFIG_FILE) as handle:
        handle.write(config_module.to_yaml(config))
    with model_module.atomic_writer(run_dir / METRICS_FILE) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["epoch", "loss", "val_loss", "lr", "bias", *[f"w_{n}" for n in prepared.raw.features]])
        writer.writerows(rows)
        for log in history:
            val_loss = "" if log.val_loss is None else repr(log.val_loss)
            weights = [repr(float(w)) for w in log.weights]
            writer.writerow([log.epoch, repr(log.loss), val_loss, repr(log.lr), repr(log.bias), *weights])


def model_payload(config: Config, result: FitResult, prepared: data_module.Prepared) -> dict[str, Any]:
    dataset, scaling = prepared.raw, prepared.scaling
    return {
        "format": model_module.FORMAT,
        "format_version": model_module.FORMAT_VERSION,
        "lrtrain_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "weights": [float(w) for w in result.weights],
        "bias": float(result.bias),
        "features": dataset.features,
        "target": dataset.target,
        "dtype": result.dtype,
        "engine": result.engine,
        "device": result.device,
        "standardization": (
            {"mean": _floats(scaling.mean), "scale": _floats(scaling.scale)} if config.data.standardize else None
        ),
        "metrics": {
            "loss": result.loss,
            "val_loss": result.val_loss,
            "r2": result.r2,
            "epochs": result.epochs,
            "seconds": result.seconds,
            "optimum_loss": result.optimum_loss,
            "max_abs_dw_to_optimum": result.max_dw_to_optimum,
            "stopped": result.stopped,
        },
        "data": {"origin": dataset.origin, "rows": len(dataset.y), "sha256": dataset.sha256()},
        "statistics": _stored_statistics(result),
        "config": config_module.to_dict(config),
    }


def _stored_statistics(result: FitResult) -> dict[str, Any] | None:
    """The OLS summary for `lrtrain summary`, and what `predict --interval` needs (the covariance, for up to
    model.COVARIANCE_MAX_FEATURES features); {"unavailable": why} when there is none."""
    if result.summary is None:
        return None
    if isinstance(result.summary, str):
        return {"unavailable": result.summary}
    return result.summary.to_dict(covariance=len(result.weights) <= model_module.COVARIANCE_MAX_FEATURES)


def _floats(a: np.ndarray) -> list[float]:
    return [float(v) for v in a]


# --------------------------------------------------------------------------- compare


@dataclass
class Comparison:
    results: list[FitResult]
    labels: list[str]
    deltas: list[float]  # max |Δw| (weights and bias) against the first engine
    tolerance: float

    @property
    def worst(self) -> float:
        """Largest relative disagreement between engines that walk a trajectory (exact is a reference)."""
        iterative = [r for r in self.results if r.engine != "exact"]
        worst = 0.0
        for a in iterative:
            for b in iterative:
                scale = max(1.0, float(np.max(np.abs(np.append(a.weights, a.bias)))))
                worst = max(worst, _max_abs_diff(a.weights, a.bias, b.weights, b.bias) / scale)
        return worst

    @property
    def agree(self) -> bool:
        return self.worst <= self.tolerance

    @property
    def trained(self) -> int:
        """How many engines walked a trajectory; fewer than two leaves nothing to hold to the tolerance."""
        return sum(r.engine != "exact" for r in self.results)


def compare(
    config: Config, engines: list[str], watch: Callable[[str, int], Listener | None] | None = None
) -> Comparison:
    """Train each engine on the same data, initial weights and batch order.

    `watch(label, index)` may return a listener for that engine's training (a progress view).
    """
    specs = [parse_engine(text, config.train.device) for text in engines]
    dataset = data_module.load(config)
    prepared = data_module.prepare(dataset, config)
    optimum = _optimum(prepared, config)  # one solve, the reference for every engine
    exact = prepared if config.model.dtype == "float64" else None
    results, labels = [], []
    for index, (text, (name, device)) in enumerate(zip(engines, specs, strict=True)):
        listener = watch(text, index) if watch else None
        if name == "exact":  # as in fit: the optimum of the data itself, in float64
            exact = exact or data_module.prepare(dataset, _in_float64(config))
            results.append(train(_in_float64(config), exact, name, device, listener))
        else:
            results.append(train(config, prepared, name, device, listener, optimum=optimum))
        labels.append(text)
    first = results[0]
    deltas = [_max_abs_diff(r.weights, r.bias, first.weights, first.bias) for r in results]
    return Comparison(results, labels, deltas, config.tolerance())
