"""The run folder: its file names, reserving a fresh one, saving a finished run or a checkpoint
(each file whole or absent), resuming, and listing the runs.

Light at import (the standard library alone): `lrtrain predict` finds the newest model through
here without NumPy; NumPy and the config are imported where a checkpoint or a config is read.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lrtrain import __version__
from lrtrain.errors import ConfigError, LrtrainError, SaveError, read_limit, read_limited
from lrtrain.files import (
    STALE_SECONDS,
    atomic_writer,
    leftovers,
    read_json,
    remove_stale,
    write_json,
    writer_alive,
)

if TYPE_CHECKING:
    from lrtrain.config import Config
    from lrtrain.engine import EpochLog, FitResult, State
    from lrtrain.prepare import Prepared

MODEL_FILE = "model.json"
CHECKPOINT_FILE = "checkpoint.json"
CHECKPOINT_VERSION = 5  # 2: the row order comes from lrtrain.order; 3: the data's fingerprint is by blocks;
# 4: the stop rules keep the lowest objective and the best epoch's weights (divergence, restore_best);
# 5: a SHA-256 of its own content (CHECKSUM_FIELD), so that a damaged or edited checkpoint is refused
CHECKSUM_FIELD = "content_sha256"
METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.yaml"
LOCK_FILE = ".resume.lock"  # held (flock) by the process that resumes the run; it holds that process's PID


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
        if existing.is_symlink():  # a link to nothing: no folder can be made through it
            raise ConfigError(
                f"cannot create a run folder under output.dir = {root}: {existing} is a link to "
                f"{os.readlink(existing)}, which does not exist. Create that folder, or set output.dir to another "
                "(--set output.dir=DIR), or --set output.save=false to keep nothing."
            )
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot create a run folder under output.dir = {root}: {exc.strerror}. Set output.dir to a folder "
            "you can write (--set output.dir=DIR), or --set output.save=false to keep nothing."
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
    """Create a fresh run folder under output.dir; concurrent fits never share one. What killed writers left in
    the run folders there goes first, as `lrtrain runs` removes it."""
    root = Path(config.output.dir)
    base = f"{config.run_name()}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_leftovers(root)
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


def remove_stale_leftovers(root: Path) -> None:
    """Remove the atomic writer's temporary files under `root` (in it and in each run folder, links not followed)
    whose writer is gone and which are stale (files.remove_stale): a live writer's, or a young one's, stay."""
    remove_stale(root)
    with contextlib.suppress(OSError):
        with os.scandir(root) as entries:
            folders = [Path(entry.path) for entry in entries if entry.is_dir(follow_symlinks=False)]
        for folder in folders:
            remove_stale(folder)


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
    writing = _Writing()
    try:
        _write_config_and_metrics(
            run_dir, config, features, checkpoint.rows if checkpoint else [], result.history, writing
        )
        write_json(writing(run_dir / MODEL_FILE), model)
    except BaseException as exc:
        if resumed is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(exc, OSError):
            kept = (
                f"the run was not saved; its checkpoint in {run_dir} is kept, so `lrtrain fit --resume {run_dir}` "
                "trains the epochs since then again"
                if resumed is not None
                else "the run was not saved (its folder was removed)"
            )
            raise SaveError(f"{writing.failed(exc)}; {kept}. {SAVE_FIX}") from None
        raise
    (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
    return run_dir


def save_checkpoint(
    run_dir: Path, config: Config, checkpoint: Checkpoint, prepared: Prepared, earlier: Checkpoint | None
) -> None:
    """config.yaml, metrics.csv of the epochs so far, then checkpoint.json; no model.json. SaveError names the
    file the machine refused to write (a full disk)."""
    rows = earlier.rows if earlier else []
    writing = _Writing()
    try:
        _write_checkpoint(run_dir, config, checkpoint, prepared, rows, writing)
    except OSError as exc:
        raise SaveError(writing.failed(exc)) from None


SAVE_FIX = "Free some space (or fix the folder) and run it again, or set output.dir to another disk."


class _Writing:
    """Which file of a run folder is being written, to name it when the machine refuses (a full disk)."""

    def __init__(self) -> None:
        self.path: Path | None = None

    def __call__(self, path: Path) -> Path:
        self.path = path
        return path

    def failed(self, exc: OSError) -> str:
        reason = exc.strerror.lower() if exc.strerror else f"{exc.__class__.__name__}: {exc}"
        return f"{reason} while writing {self.path or exc.filename}"


def _write_checkpoint(
    run_dir: Path,
    config: Config,
    checkpoint: Checkpoint,
    prepared: Prepared,
    rows: list[list[str]],
    writing: _Writing,
) -> None:
    _write_config_and_metrics(run_dir, config, prepared.raw.features, rows, checkpoint.history, writing)
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
    payload = json.loads(json.dumps(payload, allow_nan=True))  # the values as they will read back
    payload[CHECKSUM_FIELD] = content_checksum(payload)
    write_json(writing(run_dir / CHECKPOINT_FILE), payload, allow_nan=True)


def content_checksum(payload: dict[str, Any]) -> str:
    """SHA-256 of the checkpoint's canonical JSON (sorted keys, no spaces), the checksum field left out."""
    content = {key: value for key, value in payload.items() if key != CHECKSUM_FIELD}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


@contextlib.contextmanager
def resuming(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock (flock on LOCK_FILE, which names the holder) while the run is resumed: a
    second `fit --resume` of it is refused at once, instead of both training and one result replacing the
    other. The lock goes with the process, however it ends; a clean end removes the file too."""
    path = run_dir / LOCK_FILE
    fd = _locked(path, run_dir)
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                path.unlink()  # before the lock is let go: a waiter that opened this file sees it gone, retries
            os.close(fd)


def _locked(path: Path, run_dir: Path) -> int | None:
    """An open, flock-ed descriptor of `path` holding this process's PID; None where the folder cannot hold one
    (no such folder, read-only: load_checkpoint says what is wrong)."""
    import fcntl

    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"--resume {run_dir}: that run is already being resumed by process {holder}. Wait for it to "
                f"finish (lrtrain runs shows it), or stop it first (kill -INT {holder} saves a checkpoint)."
            ) from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino  # not a file its last holder removed meanwhile
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            return fd
        os.close(fd)


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
    remove_stale(run_dir)  # what a killed writer left behind (kill -9) goes before the run continues
    path = run_dir / CHECKPOINT_FILE
    try:
        payload = read_json(path, "checkpoint", ConfigError, f"--resume {run_dir}: the checkpoint")
        metrics = read_limited(run_dir / METRICS_FILE, "metrics", ConfigError, f"--resume {run_dir}: the metrics")
        table = list(csv.reader(io.StringIO(metrics.decode("utf-8"), newline="")))
        rows = table[1:]
    except FileNotFoundError as exc:
        raise ConfigError(
            f"--resume {run_dir}: {Path(exc.filename).name} is missing, so the run cannot be continued. "
            "Only a fit stopped by Ctrl-C or SIGTERM leaves a checkpoint; start a new run instead."
        ) from None
    except (OSError, ValueError, csv.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{exc.__class__.__name__}: {exc}"
        raise ConfigError(f"--resume {run_dir}: the checkpoint is damaged ({reason}). Start a new run.") from None
    if not isinstance(payload, dict) or payload.get("format") != "lrtrain.checkpoint":
        raise ConfigError(f"--resume {run_dir}: {CHECKPOINT_FILE} is not an lrtrain checkpoint. Start a new run.")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise ConfigError(
            f"--resume {run_dir}: the checkpoint has format version {payload.get('format_version')!r}, and this "
            f"lrtrain continues version {CHECKPOINT_VERSION} only: each version changed what a checkpoint holds "
            "or how it is checked, so the run would not continue as it was. Start a new run."
        )
    if payload.get(CHECKSUM_FIELD) != content_checksum(payload):
        raise ConfigError(
            f"--resume {run_dir}: the checkpoint is damaged: its content does not match its checksum "
            f"({CHECKSUM_FIELD}), so it was changed after it was written. Start a new run."
        )
    damaged = _damaged_fields(payload, prepared.features, len(rows))
    if damaged:
        raise ConfigError(f"--resume {run_dir}: the checkpoint is damaged: {'; '.join(damaged)}. Start a new run.")
    wrong = _damaged_metrics(table, prepared.raw.features, payload["epoch"])
    if wrong:
        raise ConfigError(f"--resume {run_dir}: {METRICS_FILE} is damaged: {wrong}. Start a new run.")
    velocity = payload["velocity_w"]
    state = State(
        payload["epoch"],
        np.asarray(payload["weights"], dtype=np.float64),
        float(payload["bias"]),
        None if velocity is None else np.asarray(velocity, dtype=np.float64),
        float(payload["velocity_b"]),
    )
    if payload["data_sha256"] != prepared.fingerprint:  # under torchrun, each rank hashed its share
        raise ConfigError(
            f"--resume {run_dir}: the training data changed since the checkpoint ({prepared.raw.origin}), so "
            "the run cannot continue the same trajectory. Restore the data or start a new run."
        )
    changed = _differences(payload["trajectory"], trajectory_settings(config))
    if changed:
        period = "train.schedule.period_epochs"
        cosine = (
            f" A cosine schedule's period ({period}; null: train.epochs) is fixed when the run starts, so its "
            "train.epochs cannot change on resume; start a new run with the period you want instead."
            if period in changed
            else ""
        )
        verb = "differs" if len(changed) == 1 else "differ"
        raise ConfigError(
            f"--resume {run_dir}: {', '.join(changed)} {verb} from the interrupted run's, so it would not continue "
            "the same trajectory. Drop the options that change them (--set, --engine, --device; train.epochs, "
            f"logging and output may change).{cosine}"
        )
    # metrics.csv is written before checkpoint.json: rows past the checkpoint are from a save cut short
    return Checkpoint(state, _stop_rules(payload["stop_rules"]), float(payload["seconds"]), [], rows[: state.epoch])


def _damaged_metrics(table: list[list[str]], features: list[str], epochs: int) -> str | None:
    """What is wrong with metrics.csv as the run wrote it (its header, then a row of numbers per epoch up to the
    checkpoint's), or None: a resumed run keeps those rows, and they must still plot and read."""
    header = ["epoch", "loss", "val_loss", "lr", "bias", *[f"w_{name}" for name in features]]
    if not table or table[0] != header:
        return f"its first line is not the header {','.join(header[:6])}{',...' if len(header) > 6 else ''}"
    for epoch, row in enumerate(table[1 : epochs + 1], start=1):
        try:
            numbers = len(row) == len(header) and int(row[0]) == epoch and [float(v) for v in row[1:] if v]
        except ValueError:
            numbers = False
        if not numbers:
            return f"line {epoch + 1} is not epoch {epoch}'s row of {len(header)} numbers ({','.join(row)[:80]!r})"
    return None


def _damaged_fields(payload: dict[str, Any], features: int, rows: int) -> list[str]:
    """What is wrong with each field of a checkpoint, in words; none for a sound one. `features` is the data's,
    `rows` the epochs metrics.csv holds."""

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    def finite(v: Any) -> bool:
        return number(v) and math.isfinite(v)

    def count(v: Any, most: int) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= most

    def vector(v: Any) -> bool:
        return isinstance(v, list) and len(v) == features and all(finite(x) for x in v)

    epoch = payload.get("epoch")
    fields: dict[str, tuple[Callable[[Any], bool], str]] = {
        "epoch": (lambda v: count(v, rows), f"a whole number from 0 to {rows} (the epochs in {METRICS_FILE})"),
        "weights": (vector, f"a list of {features} finite numbers (one per feature)"),
        "bias": (finite, "a finite number"),
        "velocity_w": (lambda v: v is None or vector(v), f"null or a list of {features} finite numbers"),
        "velocity_b": (finite, "a finite number"),
        "seconds": (lambda v: finite(v) and v >= 0, "a finite number >= 0"),
        "data_sha256": (lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) is not None, "a SHA-256"),
        "trajectory": (lambda v: isinstance(v, dict), "a mapping of settings"),
    }
    problems = [f"'{key}' must be {what}" for key, (fits, what) in fields.items() if not fits(payload.get(key))]
    rules = payload.get("stop_rules")
    if not isinstance(rules, dict) or set(rules) != set(STOP_RULE_COUNTS) | set(STOP_RULE_NUMBERS) | {"best_state"}:
        return [*problems, f"'stop_rules' must hold exactly {', '.join((*STOP_RULE_COUNTS, *STOP_RULE_NUMBERS))} "
                "and best_state"]  # fmt: skip
    most = epoch if isinstance(epoch, int) and count(epoch, rows) else rows
    problems += [f"'stop_rules.{k}' must be a whole number >= 0" for k in STOP_RULE_COUNTS if not count(rules[k], most)]
    problems += [f"'stop_rules.{k}' must be a number" for k in STOP_RULE_NUMBERS if not number(rules[k])]
    best = rules["best_state"]
    if best is not None and not (
        isinstance(best, list) and len(best) == 3 and count(best[0], most) and vector(best[1]) and finite(best[2])
    ):
        problems.append(f"'stop_rules.best_state' must be null or [epoch, {features} finite weights, finite bias]")
    return problems


STOP_RULE_COUNTS = ("growing", "since_best")  # stopping.StopRules: epochs counted
STOP_RULE_NUMBERS = ("previous", "first_growth", "first", "lowest", "best")  # losses, inf or nan before any


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


def list_runs(root: Path, checked: Callable[[Path], object] | None = None) -> list[RunInfo]:
    """The run folders under `root`, oldest first; unreadable ones are listed with the reason. `checked` reads a
    model.json as predict and summary do (model.load): one they would refuse is not listed as finished."""
    for kind in ("model", "checkpoint", "config"):  # a malformed limit is said once, not as every run's damage
        read_limit(kind)
    try:
        folders = sorted(root.iterdir()) if root.exists() else []
    except NotADirectoryError:
        raise ConfigError(
            f"--dir {root} is a file; give the folder that holds the runs (output.dir, e.g. runs)."
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot list the runs in {root}: {exc.strerror or exc}.") from None
    return sorted(
        (run for run in (_run_info(folder, checked) for folder in folders) if run is not None),
        key=lambda run: (run.when, str(run.path)),
    )


def _run_info(folder: Path, checked: Callable[[Path], object] | None = None) -> RunInfo | None:
    """What a run folder holds (None: not a run folder, it has no config.yaml, model.json or checkpoint)."""
    model_file, checkpoint_file, config_file = (
        folder / MODEL_FILE,
        folder / CHECKPOINT_FILE,
        folder / CONFIG_FILE,
    )
    removed = remove_stale(folder)
    left = [(path.name, pid, writer_alive(pid)) for path, pid in leftovers(folder)]
    cut_short = _cut_short(removed, left)
    if not any(f.is_file() for f in (config_file, model_file, checkpoint_file)):  # a model predict uses is a run
        if not cut_short:
            return None
        when = datetime.fromtimestamp(_modified(folder)).astimezone()
        return RunInfo(folder, "incomplete", when, problem=cut_short)  # a save killed before its first file
    written = next(f for f in (model_file, checkpoint_file, config_file) if f.is_file())
    when = datetime.fromtimestamp(written.stat().st_mtime).astimezone()  # local time, with its offset
    reading = model_file
    try:
        if model_file.is_file():
            if checked is not None:
                checked(model_file)
            payload = read_json(model_file, "model", ConfigError, "model file")
            metrics = payload["metrics"]
            engine, epochs = str(payload["engine"]), int(metrics["epochs"])
            return RunInfo(folder, "finished", when, engine, epochs, float(metrics["loss"]), float(metrics["r2"]))
        if checkpoint_file.is_file():
            reading = checkpoint_file
            epoch = int(read_json(checkpoint_file, "checkpoint", ConfigError, "checkpoint")["epoch"])
            reading = config_file
            from lrtrain.config import load_config

            return RunInfo(folder, "interrupted", when, load_config(config_file).train.engine, epoch)
        return RunInfo(folder, "incomplete", when, problem=cut_short)
    except (OSError, ValueError, KeyError, TypeError, OverflowError, LrtrainError) as exc:
        # one damaged folder is listed as such; it never hides the others
        detail = f"no {exc} field" if isinstance(exc, KeyError) else str(exc)
        return RunInfo(folder, "unreadable", when, problem=f"{reading.name} is damaged ({detail})")


def _cut_short(removed: list[str], left: list[tuple[str, int | None, bool]]) -> str | None:
    """What the atomic writer's temporary files in a run folder say: a save in progress, or one cut short
    (kill -9, a power cut) whose leftovers were removed or will be once they are stale."""
    notes = [f"being written by process {pid} ({name})" for name, pid, alive in left if alive]
    notes += [
        f"a save was cut short: leftover {name}, removed after {STALE_SECONDS // 60} minutes"
        for name, _, alive in left
        if not alive
    ]
    notes += [f"a save was cut short: removed its leftover {name}" for name in removed]
    return "; ".join(notes) or None


def _modified(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:
        return 0.0


def _stop_rules(saved: dict[str, Any]) -> dict[str, Any]:
    """The stop rules' state as saved (checked by _damaged_fields): counts of epochs, losses, and `best_state`
    null or [epoch, [weights], bias]."""
    rules: dict[str, Any] = {k: int(saved[k]) for k in STOP_RULE_COUNTS} | {
        k: float(saved[k]) for k in STOP_RULE_NUMBERS
    }
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
    run_dir: Path,
    config: Config,
    features: list[str],
    rows: list[list[str]],
    history: list[EpochLog],
    writing: _Writing,
) -> None:
    from lrtrain.config import to_yaml

    with atomic_writer(writing(run_dir / CONFIG_FILE)) as handle:
        handle.write(to_yaml(config))
    with atomic_writer(writing(run_dir / METRICS_FILE)) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["epoch", "loss", "val_loss", "lr", "bias", *[f"w_{n}" for n in features]])
        writer.writerows(rows)
        for log in history:
            val_loss = "" if log.val_loss is None else repr(log.val_loss)
            weights = [repr(float(w)) for w in log.weights]
            writer.writerow([log.epoch, repr(log.loss), val_loss, repr(log.lr), repr(log.bias), *weights])


def _floats(a: Any) -> list[float]:
    return [float(v) for v in a]
