"""The run folder: its file names, reserving a fresh one, saving a finished run or a checkpoint
(each file whole or absent), resuming, and listing the runs.

Light at import (the standard library alone): `lrtrain predict` finds the newest model through
here without NumPy; NumPy and the config are imported where a checkpoint or a config is read.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrtrain import __version__
from lrtrain.errors import ConfigError
from lrtrain.files import atomic_writer, write_json

if TYPE_CHECKING:
    from lrtrain.config import Config
    from lrtrain.engine import EpochLog, FitResult, State
    from lrtrain.prepare import Prepared

MODEL_FILE = "model.json"
CHECKPOINT_FILE = "checkpoint.json"
CHECKPOINT_VERSION = 4  # 2: the row order comes from lrtrain.order; 3: the data's fingerprint is by blocks;
# 4: the stop rules keep the lowest objective and the best epoch's weights (divergence, restore_best)
METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"


@dataclass
class Checkpoint:
    """A run stopped after a completed epoch: enough to continue it exactly."""

    state: State  # in the trained (standardized) space, values exact in the run's dtype
    stop_rules: dict[str, Any]  # stopping.StopRules.state(): numbers, and the best epoch's weights
    seconds: float
    history: list[EpochLog] = field(repr=False)  # the epochs trained since the last start, raw units
    rows: list[list[str]] = field(default_factory=list, repr=False)  # metrics.csv rows of earlier starts


def check_writable(root: Path) -> None:
    """Fail before training, not after hours of it, when no run folder can be made under `root`. Nothing is
    created: where `root` does not exist yet, the nearest folder above it must be writable (a fit that fails
    later leaves no empty `runs/` behind)."""
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot create a run folder under output.dir = {root}: {exc.strerror}. Set output.dir to a folder "
            "you can write (e.g. --set output.dir=runs), or --set output.save=false to keep nothing."
        ) from None


def resume_config(resume: Path, config: Path | None) -> Path:
    """The config a resumed run continues with: the one saved in its folder."""
    if config is not None:
        raise ConfigError(
            f"--resume {resume} continues with the run's own config ({resume / CONFIG_FILE}); "
            "drop --config (--set still applies on top of it)."
        )
    saved = resume / CONFIG_FILE
    if not saved.is_file():
        raise ConfigError(
            f"--resume {resume}: no {saved.name} there. Pass a run folder made by `lrtrain fit`, e.g. runs/NAME-TIME."
        )
    return saved


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
    model: dict[str, Any],
    features: list[str],
    resumed: Path | None = None,
    checkpoint: Checkpoint | None = None,
) -> Path:
    """Write config.yaml, metrics.csv and `model` as model.json (last) into the run folder."""
    run_dir = resumed or reserve_run_dir(config)
    try:
        _write_config_and_metrics(run_dir, config, features, checkpoint.rows if checkpoint else [], result.history)
        write_json(run_dir / MODEL_FILE, model)
    except BaseException:
        if resumed is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    return run_dir


def save_checkpoint(
    run_dir: Path, config: Config, checkpoint: Checkpoint, prepared: Prepared, earlier: Checkpoint | None
) -> None:
    """config.yaml, metrics.csv of the epochs so far, then checkpoint.json; no model.json."""
    rows = earlier.rows if earlier else []
    _write_config_and_metrics(run_dir, config, prepared.raw.features, rows, checkpoint.history)
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
        "data_sha256": prepared.fingerprint,
        "trajectory": trajectory_settings(config),
    }
    write_json(run_dir / CHECKPOINT_FILE, payload, allow_nan=True)


def trajectory_settings(config: Config) -> dict[str, Any]:
    """The settings a resumed run must share with the interrupted one to walk the same path."""
    from lrtrain.config import to_dict

    settings = to_dict(config)
    for key in ("name", "log", "output", "compare"):
        settings.pop(key)
    for key in ("epochs", "threads", "early_stopping", "diverge_patience", "predict"):
        settings["train"].pop(key)
    # the lr schedule: only what its kind uses, with the cosine period that train.epochs stood for at the start;
    # none for a constant lr, so that checkpoints from before schedules existed still resume
    schedule = config.train.schedule.settings(config.train.epochs)
    settings["train"]["schedule"] = schedule
    if schedule["kind"] == "constant":
        settings["train"].pop("schedule")
    return settings


def load_checkpoint(run_dir: Path, prepared: Prepared, config: Config) -> Checkpoint:
    """The checkpoint of an interrupted run, checked against the data and the settings it must continue with."""
    import numpy as np

    from lrtrain.engine import State

    if not run_dir.is_dir():
        raise ConfigError(f"--resume {run_dir}: no such run folder. Pass a folder under runs/ that holds a checkpoint.")
    if (run_dir / MODEL_FILE).exists():
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
        stop_rules = _stop_rules(payload["stop_rules"])
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
    if digest != prepared.fingerprint:  # under torchrun, each rank hashed its share
        raise ConfigError(
            f"--resume {run_dir}: the training data changed since the checkpoint ({prepared.raw.origin}), so "
            "the run cannot continue the same trajectory. Restore the data or start a new run."
        )
    changed = _differences(settings, trajectory_settings(config))
    if changed:
        period = "train.schedule.period_epochs"
        cosine = (
            f" A cosine schedule's period ({period}; null: train.epochs) is fixed when the run starts, so its "
            "train.epochs cannot be raised on resume; start a new run with a longer period instead."
            if period in changed
            else ""
        )
        raise ConfigError(
            f"--resume {run_dir}: {', '.join(changed)} differ from the interrupted run's, so it would not continue "
            f"the same trajectory. Drop those --set overrides (train.epochs, logging and output may change).{cosine}"
        )
    if len(state.weights) != prepared.features or len(rows) < state.epoch:
        raise ConfigError(f"--resume {run_dir}: checkpoint and metrics.csv disagree. Start a new run.")
    # metrics.csv is written before checkpoint.json: rows past the checkpoint are from a save cut short
    return Checkpoint(state, stop_rules, seconds, [], rows[: state.epoch])


def newest_models(root: Path) -> list[Path]:
    """The model.json of every finished run under `root`, newest first; a folder that vanishes meanwhile is
    left out."""
    found = []
    for path in root.glob(f"*/{MODEL_FILE}") if root.is_dir() else []:
        try:
            found.append((path.stat().st_mtime_ns, str(path), path))
        except OSError:
            continue
    return [path for *_, path in sorted(found, reverse=True)]


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
        folder / MODEL_FILE,
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
            from lrtrain.config import load_config

            return RunInfo(folder, "interrupted", when, load_config(config_file).train.engine, epoch)
        return RunInfo(folder, "incomplete", when)
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
        detail = f"no {exc} field" if isinstance(exc, KeyError) else str(exc)
        return RunInfo(folder, "unreadable", when, problem=f"{reading.name} is damaged ({detail})")


def _stop_rules(saved: dict[str, Any]) -> dict[str, Any]:
    """The stop rules' state as saved: numbers, and `best_state` null or [epoch, [weights], bias]."""
    rules: dict[str, Any] = {k: float(v) for k, v in saved.items() if k != "best_state"}
    best = saved["best_state"]
    if best is not None:
        epoch, weights, bias = best
        best = [int(epoch), [float(w) for w in weights], float(bias)]
    rules["best_state"] = best
    return rules


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for key in sorted(set(old) | set(new))
            for d in _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        ]
    return [prefix.rstrip(".")] if old != new else []


def _write_config_and_metrics(
    run_dir: Path, config: Config, features: list[str], rows: list[list[str]], history: list[EpochLog]
) -> None:
    from lrtrain.config import to_yaml

    with atomic_writer(run_dir / CONFIG_FILE) as handle:
        handle.write(to_yaml(config))
    with atomic_writer(run_dir / METRICS_FILE) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["epoch", "loss", "val_loss", "lr", "bias", *[f"w_{n}" for n in features]])
        writer.writerows(rows)
        for log in history:
            val_loss = "" if log.val_loss is None else repr(log.val_loss)
            weights = [repr(float(w)) for w in log.weights]
            writer.writerow([log.epoch, repr(log.loss), val_loss, repr(log.lr), repr(log.bias), *weights])


def _floats(a: Any) -> list[float]:
    return [float(v) for v in a]
