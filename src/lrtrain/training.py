"""One fit (data -> engine -> stop rules -> artifact), the engine registry, and `compare`."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import re
import shutil
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from lrtrain import inference, model, notices, parallel, runs, steps, system
from lrtrain.config import Config
from lrtrain.engine import EpochLog, FitResult, LrSchedule, Schedule, State, max_abs_diff, mean_squares
from lrtrain.engine_exact import unrepresentable
from lrtrain.errors import ConfigError, DataError, Interrupted, LrtrainError, SaveError, TrainingFailed
from lrtrain.moments import Moments, squares_hold
from lrtrain.prepare import Prepared, load, prepare
from lrtrain.runs import Checkpoint
from lrtrain.stopping import StopRules, Target, mse_from_moments

ENGINES = {"manual": "lrtrain.engine_manual", "torch": "lrtrain.engine_torch", "exact": "lrtrain.engine_exact"}
SCHEMA = "lrtrain/1"


class Listener(Protocol):
    """Told when training starts and after every epoch (it decides which epochs to show)."""

    def started(self, start: Start) -> None: ...
    def epoch(self, log: EpochLog) -> None: ...
    def note(self, text: str) -> None: ...  # a line for stderr


@dataclass(frozen=True)
class Start:
    engine: str
    device: str
    rows: int
    features: int
    predictions: list[tuple[list[float], float]]  # (input, prediction) with the initial weights
    lr: float
    rates: str | None  # how lr or momentum `auto` was chosen, for stderr
    epochs: int = 0  # the epochs this fit will have trained when it completes
    done: int = 0  # epochs already trained (a resumed run)


def parse_engine(text: str, default_device: str) -> tuple[str, str]:
    """'manual' | 'torch' | 'torch:cuda' | 'exact' -> (engine, device)."""
    name, colon, device = text.partition(":")
    if colon and not device:
        raise ConfigError(f"engine {text!r} ends in a colon: name the device after it (torch:cuda), or leave it out.")
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
    with np.errstate(over="ignore"):
        w = w.astype(dtype)
    if not np.all(np.isfinite(w)):
        raise ConfigError(
            f"model.init_std = {config.model.init_std:g} draws initial weights beyond what {dtype} holds (about "
            f"{float(np.finfo(dtype).max):.2g}). Lower model.init_std (0.01 is common), or use model.init: torch."
        )
    return w, float(dtype.type(b)) if config.model.bias else 0.0


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
    rank 0) and `Interrupted` is raised. `resume` continues such a run, with any number of ranks;
    its folder stays locked (by rank 0) until the run is saved, so that no other process resumes it too.
    """
    held = runs.resuming(resume) if resume is not None and parallel.is_main() else contextlib.nullcontext()
    with held:
        return _fit(config, listener, should_stop, resume, with_summary)


def _fit(
    config: Config,
    listener: Listener | None,
    should_stop: Callable[[], bool] | None,
    resume: Path | None,
    with_summary: bool,
) -> FitResult:
    engine, device = config.train.engine, config.train.device
    if engine != "torch" and device not in ("cpu", "auto"):
        raise ConfigError(
            f"train.device is {device!r}, but only the torch engine runs on a device and train.engine is "
            f"{engine!r} (it runs on the CPU). Use --engine torch --device {device}, or leave the device at cpu."
        ).shared("node")
    if parallel.world_size() > 1 and engine == "exact":
        raise ConfigError("the exact engine runs in one process; run it without torchrun.").shared("node")
    if engine == "exact":
        config = _in_float64(config)
    device = parallel.local_device(device)
    _engine(engine, device)  # a missing device fails before the data is even read,
    system.check_threads(config.train.threads)  # and so do more threads than the machine can take
    main = parallel.is_main()  # under torchrun, rank 0 speaks and writes; the others only train
    save = config.output.save and main
    finished = False
    group = parallel.start(device)  # under torchrun, join the others: from here on every rank must keep step
    try:
        with np.errstate(over="ignore"):  # a value beyond float32 casts to inf: train() refuses it, in words
            prepared = prepare(load(config, group), config, group)  # under torchrun, this rank's rows only
        notices.check_scale(prepared, config)  # by every rank: the moments are a collective
        for note in notices.of_data(prepared, config):
            if listener is not None and main:
                listener.note(note)
        if config.output.save or resume is not None:  # now, by every rank: not after a Ctrl-C (torchrun kills
            prepared.fingerprint  # noqa: B018  a process slow to stop), nor on rank 0 alone once the others left
        checkpoint = runs.load_checkpoint(resume, prepared, config) if resume is not None else None
        if config.output.save and resume is None:  # on every rank, so that all of them fail alike
            runs.check_writable(Path(config.output.dir))
        result = train(config, prepared, engine, device, listener if main else None, should_stop, checkpoint)
        # by every rank: where the moments cannot give the summary's digits, a pass over the data (a collective)
        factor = inference.design_factor(config, prepared) if config.output.save or with_summary else None
    except Interrupted as stop:
        if not save or not isinstance(stop.checkpoint, Checkpoint):
            raise
        _save_checkpoint(config, prepared, stop.checkpoint, resume, checkpoint)
    else:
        finished = True
    finally:
        parallel.stop(finished)  # a barrier only when every rank got here the same way
    if save or with_summary:  # O(D³) from the moments: for the model file, or when asked
        result.summary = inference.summarize(config, prepared, result, factor)
    if save:
        artifact = model.payload(config, result, prepared)
        result.run_dir = runs.save_run(config, result, artifact, prepared.raw.features, resume, checkpoint)
    return result


def _save_checkpoint(
    config: Config, prepared: Prepared, stopped: Checkpoint, resume: Path | None, earlier: Checkpoint | None
) -> NoReturn:
    """Write an interrupted run's checkpoint (into its own folder when it was resumed), then say where."""
    reached = f"interrupted after epoch {stopped.state.epoch} of {config.train.epochs}, but"
    try:
        run_dir = resume or runs.reserve_run_dir(config)
    except LrtrainError as exc:  # never lost silently: the epoch reached and why it was not kept
        raise SaveError(f"{reached} no checkpoint could be saved: {exc}") from None
    try:
        runs.save_checkpoint(run_dir, config, stopped, prepared, earlier)
    except BaseException as exc:  # e.g. a second Ctrl-C while saving: "stop now, saving nothing"
        if resume is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(exc, SaveError):  # a full disk: say what is lost, and what is kept
            kept = (
                f"the checkpoint of epoch {earlier.state.epoch if earlier else 0} in {run_dir} is kept, so "
                f"`lrtrain fit --resume {run_dir}` continues from there"
                if resume is not None
                else "nothing was kept"
            )
            raise SaveError(f"{reached} the checkpoint could not be saved: {exc}; {kept}. {runs.SAVE_FIX}") from None
        raise
    raise Interrupted(
        f"interrupted after epoch {stopped.state.epoch} of {config.train.epochs}; the run so far "
        f"(config, metrics, checkpoint) is in {run_dir}. Resume it with: lrtrain fit --resume {run_dir}",
        stopped,
    ) from None


def train(
    config: Config,
    prepared: Prepared,
    engine: str,
    device: str,
    listener: Listener | None,
    should_stop: Callable[[], bool] | None = None,
    resume: Checkpoint | None = None,
    optimum: Optimum | None = None,
) -> FitResult:
    """Train one engine on prepared data; `optimum` is the exact solution in raw units, if already solved.

    Under torchrun every rank runs this with its own block of the rows: each number that sums over
    rows is all-reduced, so every rank computes what one process would, collective for collective.
    """
    module, device = _engine(engine, device)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # overflow is checked just below, in words
        moments = prepared.moments  # under torchrun a collective: gathered here, at the same point on every rank
    if not all(np.all(np.isfinite(v)) for v in (moments.gram, moments.cross, moments.x_mean, moments.tt)):
        raise DataError(unrepresentable(prepared, "the sum of squares of the data")).shared("job")
    w0, b0 = initial_weights(config, prepared.features)
    samples = _prediction_inputs(config, prepared.features)
    initial = prepared.scaling.to_original(w0, b0)
    _check_decay(config, moments)
    rates = steps.choose(config, prepared)
    schedule = _schedule(config, prepared, rates, device) if engine != "exact" else None  # before anything is said
    if listener:
        before = [(s, _predict(*initial, s)) for s in samples]
        epochs, done = 1 if engine == "exact" else config.train.epochs, resume.state.epoch if resume else 0
        label = device if engine == "torch" else "cpu"
        listener.started(
            Start(engine, label, prepared.rows, prepared.features, before, rates.lr, rates.why, epochs, done)
        )
    started = time.perf_counter()  # the exact engine's run is the solve
    solved = optimum or _optimum(prepared, config)
    w_opt, b_opt = solved.weights, solved.bias
    if not (np.all(np.isfinite(w_opt)) and math.isfinite(b_opt)):
        raise DataError(unrepresentable(prepared, "the least-squares optimum")).shared("job")
    best = prepared.scaling.to_trained(w_opt, b_opt)
    target = Target(config, prepared, best)
    stop = StopRules(config, prepared, rates.momentum)
    start, seconds_before = (resume.state, resume.seconds) if resume else (State(0, w0, b0), 0.0)
    if resume is not None:
        stop.restore(resume.stop_rules)
    optimum_loss = math.nan
    if engine == "exact":  # the optimum just solved is the run's one epoch: not solved again, its loss taken once
        with np.errstate(over="ignore", invalid="ignore"):
            (optimum_loss,) = (
                [solved.loss]
                if solved.loss is not None
                else mean_squares(prepared.x, prepared.y, prepared.rows, prepared.shard, [best])
            )
        logs = _solved(EpochLog(1, optimum_loss, *best, 0.0))
    else:
        started = time.perf_counter()
        assert schedule is not None
        logs = module.train(prepared, schedule, start)
    history, stopped, kept = _walk(config, prepared, logs, stop, target, start, listener, should_stop, seconds_before)
    seconds = seconds_before + time.perf_counter() - started
    if not history:
        raise ConfigError(
            f"nothing to train: the run had already reached train.epochs = {config.train.epochs}. "
            "Raise it with --set train.epochs=N to train further."
        ).shared("job")
    w_raw, b_raw = kept.weights, kept.bias
    scaling = prepared.scaling
    with np.errstate(over="ignore", invalid="ignore"):
        if engine == "exact":
            loss = optimum_loss
        else:
            loss, optimum_loss = _losses(prepared, [scaling.to_trained(w_raw, b_raw), best])
    if not (math.isfinite(loss) and math.isfinite(optimum_loss)):  # never "Final loss: nan" and exit 0
        raise DataError(
            unrepresentable(prepared, "the final loss" if math.isfinite(optimum_loss) else "the optimum's loss")
        ).shared("job")
    gap = target.gap_of(loss, best[0] if engine == "exact" else scaling.to_trained(w_raw, b_raw)[0], optimum_loss)
    centered = config.model.bias or prepared.moments.spans_constant()  # R² about ȳ: a constant, or one made
    result = FitResult(
        engine=engine,
        device=device if engine == "torch" else "cpu",
        dtype="float64" if engine == "exact" else config.model.dtype,
        weights=w_raw,
        bias=b_raw,
        epochs=history[-1].epoch,
        loss=loss,
        val_loss=kept.val_loss,
        r2=_r2(prepared, centered, loss),
        r2_centered=centered,
        seconds=seconds,
        stopped=stopped,
        optimum_loss=optimum_loss,
        optimum_weights=w_opt,
        optimum_bias=b_opt,
        history=history,
        predictions=[(s, _predict(*initial, s), _predict(w_raw, b_raw, s)) for s in samples],
        rows=prepared.rows,
        gap=gap,
        gap_relative=not target.exact,
        converged=None if target.gap == 0 else gap <= target.gap or stopped == "converged",  # (to rounding)
    )
    if result.converged is False and engine != "exact" and stopped == "completed":
        result.shortfall = target.shortfall(
            history, gap, steps.pace(config, prepared, rates), _faster(config, prepared)
        )
    return result


def _losses(prepared: Prepared, models: list[tuple[np.ndarray, float]]) -> list[float]:
    """The training loss of each model: from the moments, O(D²), where float64 rows and a sum of squares they hold
    (moments.squares_hold) allow; else a pass over the rows."""
    moments = prepared.moments
    if prepared.x.dtype == np.float64:
        losses = [mse_from_moments(moments, *model) for model in models]
        if all(squares_hold(moments, loss * moments.n) for loss in losses):
            return losses
    return mean_squares(prepared.x, prepared.y, prepared.rows, prepared.shard, models)


def _solved(log: EpochLog) -> Generator[EpochLog, None, None]:
    yield log


def _r2(prepared: Prepared, centered: bool, loss: float) -> float:
    """R² = 1 − SSE/TSS, TSS = |y − ȳ|² with a bias (or features that make a constant) and |y|² without
    (uncentered, as the summary and statsmodels have it), both gathered with the moments: no float64 copy of y."""
    moments = prepared.moments
    total = moments.tt if centered else moments.tt + moments.n * moments.y_mean * moments.y_mean
    return 1.0 - loss * prepared.rows / total if total > 0 else (1.0 if loss == 0 else 0.0)


def _faster(config: Config, prepared: Prepared) -> list[str]:
    """The settings that would reach the target sooner than these."""
    advice = []
    whole = steps.full_batch(config, prepared)  # a batch_size of at least the rows is a full batch
    if whole and config.train.momentum != "auto":
        advice.append("train.momentum: auto (with train.lr: auto), √κ instead of κ epochs")
    if not config.data.standardize:
        advice.append("data.standardize: true, which often lowers κ a lot")
    if not whole:
        advice.append("a decaying train.schedule, or larger batches, to get below the minibatch noise")
    advice.append("--engine exact, the optimum in one solve")
    return advice


def _walk(
    config: Config,
    prepared: Prepared,
    logs: Generator[EpochLog, None, None],
    stop: StopRules,
    target: Target,
    start: State,
    listener: Listener | None,
    should_stop: Callable[[], bool] | None,
    seconds_before: float,
) -> tuple[list[EpochLog], str, EpochLog]:
    """Run the engine's epochs through the stop rules: the epochs in raw units, why training ended, and the
    epoch whose weights the run keeps (the last, or with early_stopping.restore_best the best)."""
    history: list[EpochLog] = []
    vote = parallel.StopVote(prepared.shard, should_stop) if should_stop is not None else None  # every rank alike
    started = time.perf_counter()
    watching = config.train.early_stopping.patience > 0  # then keep the weights each loss belongs to
    before = [start.epoch, *_listed(*prepared.scaling.to_original(start.weights, start.bias))] if watching else []
    limits = threadpool_limits(config.train.threads) if config.train.threads else contextlib.nullcontext()
    with limits, contextlib.closing(logs):
        for log in logs:
            if prepared.x_val is not None and prepared.y_val is not None:
                model = [(log.weights, log.bias)]
                (val_loss,) = mean_squares(prepared.x_val, prepared.y_val, prepared.val_rows, prepared.shard, model)
                log = dataclasses.replace(log, val_loss=val_loss)
            w_raw, b_raw = prepared.scaling.to_original(log.weights, log.bias)
            shown = dataclasses.replace(log, weights=w_raw, bias=b_raw)
            history.append(shown)
            stop.check_divergence(log)
            if listener:
                listener.epoch(shown)
            if watching:
                after = [log.epoch, *_listed(w_raw, b_raw)]
                if stop.stalled(log, after if log.val_loss is not None else before):  # the loss is before the step
                    return history, *_early_stop(config, stop, history)
                before = after
            if target.reached(log):
                return history, "converged", shown
            if vote is not None and vote() and log.epoch < config.train.epochs:
                elapsed = seconds_before + time.perf_counter() - started
                raise Interrupted(
                    f"interrupted after epoch {log.epoch} of {config.train.epochs}; "
                    "nothing was saved (output.save is false).",
                    Checkpoint(log.state(), stop.state(), elapsed, history),
                )
    return history, "completed", history[-1] if history else EpochLog(0, math.nan, start.weights, start.bias, 0.0)


def _listed(w: np.ndarray, b: float) -> list[Any]:
    return [[float(v) for v in w], float(b)]


def _early_stop(config: Config, stop: StopRules, history: list[EpochLog]) -> tuple[str, EpochLog]:
    patience, last = config.train.early_stopping.patience, history[-1]
    why = f"early stopping at epoch {last.epoch}: no improvement for {patience} epochs"
    if not config.train.early_stopping.restore_best or stop.best_state is None:
        return why, last
    epoch, weights, bias = stop.best_state
    kept = EpochLog(
        epoch, math.nan, np.asarray(weights), float(bias), last.lr, stop.best if last.val_loss is not None else None
    )
    return f"{why}; kept the weights of epoch {epoch}, the best", kept


def _check_decay(config: Config, moments: Moments) -> None:
    """train.weight_decay within what float64 takes in the Hessian, 2(G/n + λI), and the least-squares system,
    G + (nλ/2)I: beyond it the solve would meet infinities."""
    decay, n = config.train.weight_decay, moments.n
    diagonal = float(np.max(np.diag(moments.gram), initial=0.0))
    if math.isfinite(2 * (diagonal / n + decay)) and math.isfinite(n * decay / 2 + diagonal):
        return
    raise ConfigError(
        f"train.weight_decay = {decay:g} is too large for float64 with {n} rows: the ridge term of the least-squares "
        f"system, n·λ/2, or the Hessian's 2λ goes beyond about 1.8e308. Lower it: the weights shrink as 1/λ, so "
        "a far smaller decay already holds them at about 0."
    ).shared("job")


def _schedule(config: Config, prepared: Prepared, rates: steps.Rates, device: str) -> Schedule:
    train = config.train
    largest = float(np.finfo(np.dtype(config.model.dtype)).max)
    for key, value in (
        ("train.lr", rates.lr),
        ("train.momentum", rates.momentum),
        ("train.weight_decay", train.weight_decay),
    ):
        with np.errstate(over="ignore"):
            rounded = float(np.dtype(config.model.dtype).type(value))  # the engines take it in the run's dtype
        if abs(value) > largest or (value != 0 and rounded == 0):  # where it would be inf, or 0
            also = ", or set model.dtype: float64" if config.model.dtype == "float32" else ""
            raise ConfigError(
                f"{key} = {value:g} is {'beyond' if rounded else 'below'} what {config.model.dtype} holds (about "
                f"{largest if rounded else float(np.finfo(np.dtype(config.model.dtype)).smallest_subnormal):.2g}), "
                f"the run's model.dtype, where it would be {rounded:g}. {'Lower' if rounded else 'Raise'} it{also}."
            ).shared("job")
    return Schedule(
        epochs=train.epochs,
        lr=rates.lr,
        momentum=rates.momentum,
        weight_decay=train.weight_decay,
        batch_size=train.batch_size,
        shuffle=train.shuffle,
        seed=config.seed,
        bias=config.model.bias,
        dtype=config.model.dtype,
        device=device,
        statistics=_use_statistics(config, prepared),
        threads=train.threads,
        lr_schedule=LrSchedule(**train.schedule.settings(train.epochs)),
        first_lr=rates.first_lr,
    )


def _epochs_of(config: Config, epochs: int) -> Config:
    """The config for an engine that must take exactly `epochs` epochs, converged or not (compare)."""
    schedule = config.train.schedule
    if schedule.kind == "cosine" and schedule.period_epochs is None:  # the period stays the one it had
        schedule = schedule.model_copy(update={"period_epochs": config.train.epochs})
    train = config.train.model_copy(update={"epochs": epochs, "target_gap": 0.0, "schedule": schedule})
    return config.model_copy(update={"train": train})


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


def _use_statistics(config: Config, prepared: Prepared) -> bool:
    """Full-batch epochs from XᵀX and friends: O(N·D²) once, then O(D²) per epoch instead of O(N·D)."""
    choice = config.train.statistics
    full_batch = config.train.batch_size is None or config.train.batch_size >= prepared.rows
    if choice == "never" or not full_batch:
        return False
    if choice == "always":
        return True
    cheaper = prepared.features < 4 * config.train.epochs  # N·D² once < 4·N·D per epoch
    return config.model.dtype == "float64" and cheaper  # float32 keeps its rounding, step for step


class Optimum(NamedTuple):
    weights: np.ndarray  # raw units
    bias: float
    loss: float | None  # its MSE on the training rows (trained units), when the solve's own pass gave it


def _optimum(prepared: Prepared, config: Config) -> Optimum:
    from lrtrain.engine_exact import solution

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # the caller checks the result is finite
        found = solution(
            prepared.x, prepared.y, config.model.bias, config.train.weight_decay, prepared.moments, prepared.shard
        )
        loss = None if found.squares is None else found.squares / prepared.rows
        return Optimum(*prepared.scaling.to_original(found.weights, found.bias), loss)


def _predict(w: np.ndarray, b: float, sample: list[float]) -> float:
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float64: shown as inf, a sample given to look at
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
                worst = max(worst, max_abs_diff(a.weights, a.bias, b.weights, b.bias) / scale)
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
    system.check_threads(config.train.threads)
    source = load(config)
    with np.errstate(over="ignore"):  # a value beyond float32 casts to inf: train() refuses it, in words
        prepared = prepare(source, config)
    notices.check_scale(prepared, config)
    _check_decay(config, prepared.moments)
    optimum = _optimum(prepared, config)  # one solve, the reference for every engine
    exact = prepared if config.model.dtype == "float64" else None
    results: list[FitResult] = []
    walked = config  # once an engine has walked its trajectory, the others walk as many epochs
    for index, (text, (name, device)) in enumerate(zip(engines, specs, strict=True)):
        listener = watch(text, index) if watch else None
        try:
            if name == "exact":  # as in fit: the optimum of the data itself, in float64
                exact = exact or prepare(source, _in_float64(config))
                reference = optimum if exact is prepared else None
                results.append(train(_in_float64(config), exact, name, device, listener, optimum=reference))
            else:
                results.append(train(walked, prepared, name, device, listener, optimum=optimum))
                walked = _epochs_of(walked, results[-1].epochs)
        except TrainingFailed as failed:
            raise TrainingFailed(f"{text}: {failed}") from None
    labels = list(engines)
    first = results[0]
    deltas = [max_abs_diff(r.weights, r.bias, first.weights, first.bias) for r in results]
    return Comparison(results, labels, deltas, config.tolerance())
