"""One fit (data -> engine -> stop rules -> artifact), the engine registry, and `compare`."""

from __future__ import annotations

import csv
import dataclasses
import importlib
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lrtrain import __version__
from lrtrain import config as config_module
from lrtrain import data as data_module
from lrtrain import model as model_module
from lrtrain.config import Config
from lrtrain.errors import ConfigError, TrainingFailed

ENGINES = {"manual": "lrtrain.engine_manual", "torch": "lrtrain.engine_torch", "exact": "lrtrain.engine_exact"}
SCHEMA = "lrtrain/1"


@dataclass(frozen=True)
class EpochLog:
    """One epoch: the loss of its forward pass (before the step), the weights after it."""

    epoch: int
    loss: float
    weights: np.ndarray
    bias: float
    lr: float
    val_loss: float | None = None


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

    def batches(self, epoch: int, n: int) -> list[slice | np.ndarray]:
        """Row selections for one epoch; a fresh permutation per epoch when shuffling."""
        if self.batch_size is None or self.batch_size >= n:
            return [slice(None)]
        if not self.shuffle:
            return [slice(i, i + self.batch_size) for i in range(0, n, self.batch_size)]
        order = np.random.default_rng([self.seed, 2, epoch]).permutation(n)
        return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]


class Listener(Protocol):
    def started(self, start: Start) -> None: ...
    def epoch(self, log: EpochLog) -> None: ...


@dataclass(frozen=True)
class Start:
    engine: str
    device: str
    rows: int
    features: int
    predictions: list[tuple[list[float], float]]  # (input, prediction) with the initial weights


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


def largest_curvature(x: np.ndarray, bias: bool) -> float:
    """L, the largest eigenvalue of the MSE's Hessian (2/n)·X̃ᵀX̃, X̃ = [X, 1] with a bias."""
    x64 = np.asarray(x, dtype=np.float64)
    n = x64.shape[0]
    if bias:
        x64 = np.column_stack([x64, np.ones(n)])
    gram = (2.0 / n) * (x64.T @ x64)
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


def mse(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: float) -> float:
    r = np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64) + b - np.asarray(y, dtype=np.float64)
    return float(np.mean(r * r))


def fit(
    config: Config, listener: Listener | None = None, engine: str | None = None, device: str | None = None
) -> FitResult:
    """Load the data, train one engine with the stop rules, write the run folder."""
    name = engine or config.train.engine
    device = device or config.train.device
    if name != "torch" and device not in ("cpu", "auto"):
        raise ConfigError(
            f"train.device is {device!r}, but only the torch engine runs on a device and train.engine is {name!r} "
            f"(it runs on the CPU). Use --engine torch --device {device}, or leave the device at cpu."
        )
    prepared = data_module.prepare(data_module.load(config), config)
    result = train(config, prepared, name, device, listener)
    if config.output.save:
        result.run_dir = save_run(config, result, prepared)
    return result


def train(
    config: Config, prepared: data_module.Prepared, engine: str, device: str, listener: Listener | None
) -> FitResult:
    module = importlib.import_module(ENGINES[engine])
    if hasattr(module, "resolve_device"):
        module.resolve_device(device)  # a missing device fails before anything is printed
    scaling = prepared.scaling
    w0, b0 = initial_weights(config, prepared.features)
    samples = _prediction_inputs(config, prepared.features)
    w0_raw, b0_raw = scaling.to_original(w0, b0)
    if listener:
        device_label = device if engine == "torch" else "cpu"
        listener.started(
            Start(
                engine,
                device_label,
                prepared.rows,
                prepared.features,
                [(s, _predict(w0_raw, b0_raw, s)) for s in samples],
            )
        )
    schedule = Schedule(
        epochs=config.train.epochs,
        lr=config.train.lr,
        momentum=config.train.momentum,
        weight_decay=config.train.weight_decay,
        batch_size=config.train.batch_size,
        shuffle=config.train.shuffle,
        seed=config.seed,
        bias=config.model.bias,
        dtype=config.model.dtype,
        device=device,
    )
    history: list[EpochLog] = []
    stopped = "completed"
    stop = _StopRules(config, prepared)
    started = time.perf_counter()
    logs: Iterator[EpochLog] = module.train(prepared, schedule, w0, b0)
    try:
        for log in logs:
            if prepared.x_val is not None:
                log = dataclasses.replace(log, val_loss=mse(prepared.x_val, prepared.y_val, log.weights, log.bias))  # type: ignore[arg-type]
            w_raw, b_raw = scaling.to_original(log.weights, log.bias)
            shown = dataclasses.replace(log, weights=w_raw, bias=b_raw)
            history.append(shown)
            stop.check_divergence(log)
            if listener and ((log.epoch - 1) % config.log.every == 0):
                listener.epoch(shown)
            if stop.stalled(log):
                patience = config.train.early_stopping.patience
                stopped = f"early stopping at epoch {log.epoch}: no improvement for {patience} epochs"
                break
    finally:
        close = getattr(logs, "close", None)
        if close:
            close()
    seconds = time.perf_counter() - started
    last = history[-1]
    w_opt, b_opt = _optimum(prepared, config)
    w_raw, b_raw = last.weights, last.bias
    loss = mse(prepared.x, prepared.y, *scaling.to_trained(w_raw, b_raw))
    y = prepared.y.astype(np.float64)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - loss * len(y) / total if total > 0 else (1.0 if loss == 0 else 0.0)
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
        optimum_loss=mse(prepared.x, prepared.y, *scaling.to_trained(w_opt, b_opt)),
        optimum_weights=w_opt,
        optimum_bias=b_opt,
        history=history,
        predictions=[(s, _predict(w0_raw, b0_raw, s), _predict(w_raw, b_raw, s)) for s in samples],
        rows=prepared.rows,
    )


def _optimum(prepared: data_module.Prepared, config: Config) -> tuple[np.ndarray, float]:
    from lrtrain.engine_exact import solve

    w, b = solve(prepared.x, prepared.y, config.model.bias, config.train.weight_decay)
    return prepared.scaling.to_original(w, b)


def _predict(w: np.ndarray, b: float, sample: list[float]) -> float:
    return float(np.dot(w, sample) + b)


def _prediction_inputs(config: Config, d: int) -> list[list[float]]:
    samples = [v if isinstance(v, list) else [v] for v in config.train.predict]
    if d != 1 and "predict" not in config.train.model_fields_set:
        return []  # the default f(5) only makes sense for one feature
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
        largest = max(float(np.max(np.abs(prepared.raw.x))), float(np.max(np.abs(prepared.raw.y))))
        if not finite and config.model.dtype == "float32" and largest > 1e18:
            return (
                f"The data holds values up to {largest:.3g}, whose squares overflow float32 (max 3.4e38): "
                "use --set model.dtype=float64, or rescale the data. No model was written."
            )
        mu = config.train.momentum
        factor = 2.0 * (1.0 + mu)  # heavy-ball momentum is stable for lr < 2(1+μ)/L
        curvature = largest_curvature(prepared.x, config.model.bias)
        limit = factor / curvature if curvature > 0 else math.inf
        text = (
            f"The largest stable learning rate for this data is {'2(1+momentum)' if mu else '2'}/L = {limit:.4g} "
            f"(L = {curvature:.4g}, the largest eigenvalue of the loss's Hessian); try --set train.lr={limit / 2:.3g}."
        )
        if not config.data.standardize and prepared.features >= 1:
            x = prepared.raw.x
            spread = x.std(axis=0)
            if np.all(spread > 0):
                scaled = (x - x.mean(axis=0)) / spread
                text += (
                    f" Standardizing the features (--set data.standardize=true) would allow lr up to "
                    f"{factor / largest_curvature(scaled, config.model.bias):.4g}."
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


def save_run(config: Config, result: FitResult, prepared: data_module.Prepared) -> Path:
    """Write config.yaml, metrics.csv and model.json (last) into a new folder under output.dir."""
    root = Path(config.output.dir)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = _reserve(root, f"{config.run_name()}-{stamp}")
    try:
        with model_module.atomic_writer(run_dir / "config.yaml") as handle:
            handle.write(config_module.to_yaml(config))
        with model_module.atomic_writer(run_dir / "metrics.csv") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["epoch", "loss", "val_loss", "lr", "bias", *[f"w_{n}" for n in prepared.raw.features]])
            for log in result.history:
                writer.writerow(
                    [
                        log.epoch,
                        repr(log.loss),
                        "" if log.val_loss is None else repr(log.val_loss),
                        log.lr,
                        repr(log.bias),
                    ]
                    + [repr(float(w)) for w in log.weights]
                )
        model_module.write_json(run_dir / model_module.MODEL_FILE, model_payload(config, result, prepared))
    except BaseException:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def _reserve(root: Path, base: str) -> Path:
    """Create a fresh run folder; concurrent fits never share one."""
    for attempt in range(1000):
        candidate = root / (base if attempt == 0 else f"{base}-{attempt + 1}")
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        return candidate
    raise ConfigError(f"cannot create a run folder under {root}: 1000 folders named {base}* exist. Clean up {root}.")


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
        "config": config_module.to_dict(config),
    }


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


def compare(
    config: Config, engines: list[str], on_result: Callable[[str, FitResult], None] | None = None
) -> Comparison:
    """Train each engine on the same data, initial weights and batch order."""
    specs = [parse_engine(text, config.train.device) for text in engines]
    prepared = data_module.prepare(data_module.load(config), config)
    results, labels = [], []
    for text, (name, device) in zip(engines, specs, strict=True):
        result = train(config, prepared, name, device, None)
        results.append(result)
        labels.append(text)
        if on_result:
            on_result(text, result)
    first = results[0]
    deltas = [_max_abs_diff(r.weights, r.bias, first.weights, first.bias) for r in results]
    return Comparison(results, labels, deltas, config.tolerance())
