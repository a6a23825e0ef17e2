"""How epochs, summaries and comparisons look, and the one writer of stdout.

Results are text: plain lines and JSON records go to stdout through `write_line`, never through
Rich, so a pipe gets whole lines whatever the terminal's width. Rich only decorates a terminal:
the tables there, and the live status on stderr. What to show is decided here; whether the
stream is a terminal, and its colours, the Console decides from the stream, NO_COLOR and TERM.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import IO, Any, Literal, Self

import numpy as np
from rich import box
from rich.console import Console, RenderableType
from rich.constrain import Constrain
from rich.control import Control
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID
from rich.segment import ControlType
from rich.table import Column, Table
from rich.text import Text

from lrtrain.config import Config
from lrtrain.engine import EpochLog, FitResult
from lrtrain.errors import writing_stdout
from lrtrain.runs import RunInfo
from lrtrain.training import SCHEMA, Comparison, Start

Mode = Literal["rich", "plain", "json"]

MIN_WIDTH = 20  # a terminal narrower than this (COLUMNS=0 says "unknown") is drawn as if this wide


def console(stream: IO[str] | None = None) -> Console:
    stream = stream or sys.stdout
    plain = os.environ.get("TERM") == "dumb" or "NO_COLOR" in os.environ
    out = Console(
        file=stream,
        highlight=False,
        color_system=None if plain else "auto",
        no_color=plain,
        soft_wrap=True,
        emoji=False,
    )
    if out.width < MIN_WIDTH:  # Rich takes COLUMNS=0 at its word, and a table drawn 0 wide is nothing at all
        out.width = MIN_WIDTH
    return out


def choose_mode(out: Console, json_output: bool) -> Mode:
    if json_output:
        return "json"
    return "rich" if out.is_terminal and not out.is_dumb_terminal else "plain"


def write_line(text: str, stream: IO[str] | None = None) -> None:
    """The one writer of results: a plain line or a JSON record, as text on stdout, flushed at once so that
    a reader sees each event when it happens.

    A reader that went away (`| head`) raises BrokenPipeError: the command then ends quietly. A stream
    that cannot be written (a full disk) raises OutputError: one line on stderr, exit 1.
    """
    stream = stream or sys.stdout
    with writing_stdout():
        stream.write(text + "\n")
        stream.flush()


def _nothing() -> None:
    return None


class Out:
    """stdout for one command: plain lines and JSON records through `write_line`, and on a terminal Rich tables.

    `safe_point` runs before each write: the command's signal guard acts there (cli._Signals).
    """

    def __init__(
        self,
        json_output: bool = False,
        stream: IO[str] | None = None,
        safe_point: Callable[[], None] = _nothing,
        mode: Mode | None = None,
    ) -> None:
        self.stream = stream or sys.stdout
        self.console = console(self.stream)
        self.mode: Mode = mode or choose_mode(self.console, json_output)
        self.safe_point = safe_point

    def line(self, text: str) -> None:
        self.safe_point()
        write_line(text, self.stream)

    def record(self, event: str, **fields: Any) -> None:
        self.line(json_record(event, **fields))

    def draw(self, renderable: RenderableType) -> None:
        """A table or chart, on a terminal only."""
        self.safe_point()
        with writing_stdout():
            self.console.print(renderable)


def json_record(event: str, **fields: Any) -> str:
    return json.dumps({"schema": SCHEMA, "event": event, **_finite(fields)}, allow_nan=False)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_finite(float(v)) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def weights_text(w: np.ndarray, precision: int) -> str:
    values = [f"{v:.{precision}f}" for v in w]
    if len(values) == 1:
        return values[0]
    if len(values) > 6:
        return "[" + ", ".join(values[:5]) + f", ... ({len(values)} weights)]"
    return "[" + ", ".join(values) + "]"


def _inputs(sample: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in sample)


class _Watching:
    """The live status on stderr when stdout and stderr are terminals and there is no --json (else none);
    a context manager, so the status is erased and the cursor shown again however training ends."""

    waiting = "loading the data ..."

    def __init__(self, out: Out, err: Console | None, live: bool = True) -> None:
        self.out = out
        self.err = err or console(sys.stderr)
        live = live and out.mode == "rich" and self.err.is_terminal and not self.err.is_dumb_terminal
        self.status = Status(self.err) if live else None

    def __enter__(self) -> Self:
        if self.status:
            self.status.open(self.waiting)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status:
            self.status.close()

    def note(self, text: str) -> None:
        """A message on stderr, above the live status."""
        self.err.print(Text(text))


class FitView(_Watching):
    """Listener for training: the header, predictions before training and epoch lines on stdout and, on a
    terminal, the live status on stderr. Every epoch is a safe point for the signal guard (`Out.safe_point`)."""

    waiting = "loading the data and starting the engine ..."

    def __init__(self, config: Config, out: Out, err: Console | None = None, live: bool = True) -> None:
        super().__init__(out, err, live)
        self.config = config

    def _line(self, text: str) -> None:
        if self.out.mode != "json":
            self._clear()
            self.out.line(text)

    def _clear(self) -> None:
        if self.status:
            self.status.clear()

    def started(self, start: Start) -> None:
        self.out.safe_point()
        if start.curvature is not None:  # lr: auto, said once so the user learns the number
            self.note(
                f"lr = auto: 1/L = {start.lr:.6g}, L = {start.curvature:.6g} the largest eigenvalue of the "
                "loss's Hessian (2/L would be the edge of divergence)"
            )
        if self.config.log.header:
            self._line(f"Number of samples: {start.rows}, number of features: {start.features}")
        for sample, value in start.predictions:
            self._line(f"Prediction before training: f({_inputs(sample)}) = {value:.{self.config.log.precision}f}")
        if self.status:
            self.status.start(start.epochs, start.done, f"{start.engine} on {start.device}")

    def epoch(self, log: EpochLog) -> None:
        self.out.safe_point()
        if (log.epoch - 1) % self.config.log.every == 0:
            self._epoch_line(log)
        if self.status:
            self.status.update(log)

    def _epoch_line(self, log: EpochLog) -> None:
        if self.out.mode == "json":
            bias = log.bias if self.config.model.bias else None
            self.out.record(
                "epoch",
                epoch=log.epoch,
                loss=log.loss,
                val_loss=log.val_loss,
                weights=log.weights,
                bias=bias,
                lr=log.lr,
            )
            return
        text = f"Epoch {log.epoch}: w = {weights_text(log.weights, self.config.log.precision)}, loss = {log.loss:.8f}"
        if self.config.log.bias and self.config.model.bias:
            text += f", b = {log.bias:.{self.config.log.precision}f}"
        if log.val_loss is not None:
            text += f", val_loss = {log.val_loss:.8f}"
        self._line(text)


class CompareView(_Watching):
    """`compare`'s listener: each engine's epochs are safe points for the signal guard; on a terminal, the live
    status on stderr shows each engine in turn (`torch (2 of 3)`)."""

    def __init__(self, engines: list[str], out: Out, err: Console | None = None) -> None:
        super().__init__(out, err)
        self.engines = engines
        self.label = ""

    def watch(self, label: str, index: int) -> CompareView:
        """The listener for one engine's training."""
        self.label = f"{label} ({index + 1} of {len(self.engines)})"
        if self.status:
            self.status.message(f"starting {self.label} ...")
        return self

    def started(self, start: Start) -> None:
        self.out.safe_point()
        if self.status:
            self.status.start(start.epochs, start.done, self.label)

    def epoch(self, log: EpochLog) -> None:
        self.out.safe_point()
        if self.status:
            self.status.update(log)


NARROW_TERMINAL = 48  # columns below which the live status drops its progress bar


class _Numbers(ProgressColumn):
    """epoch, loss, best validation loss, ETA, epochs per second and what trains; or, before training, a message."""

    def __init__(self) -> None:
        super().__init__(table_column=Column())  # wraps, so the table narrows it first; the text itself is cut

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text(task.description, style="dim", no_wrap=True, overflow="ellipsis")
        parts = [f"epoch {int(task.completed)}/{int(task.total)}"]
        if math.isfinite(task.fields["loss"]):
            parts.append(f"loss {task.fields['loss']:.6g}")
        if math.isfinite(task.fields["best_val"]):
            parts.append(f"best val {task.fields['best_val']:.6g}")
        rate = task.speed
        if rate:
            parts.append(f"ETA {_clock(max(task.total - task.completed, 0) / rate)}")
            parts.append(f"{rate:,.0f} epochs/s" if rate >= 10 else f"{rate:.2g} epochs/s")
        return Text("  ".join([*parts, task.description]), no_wrap=True, overflow="ellipsis")


class _OneLine(Progress):
    """A Progress whose line stops one column short of the terminal's width: a line that fills the last
    column wraps on some terminals, and a status that wraps can no longer be erased."""

    def __init__(self, *columns: ProgressColumn, console: Console, **options: Any) -> None:
        self.width = max(console.width - 1, 1)
        super().__init__(*columns, console=console, **options)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield Constrain(self.make_tasks_table(self.tasks), self.width)


class Status:
    """The live status on stderr: `rich.progress`, transient, drawn by the main thread alone (no refresh
    thread, so nothing races the lines written to stdout) at most ten times a second however fast the epochs
    run, and erased before each line goes to stdout, so the two streams never mix on the terminal."""

    INTERVAL = 0.1  # seconds between redraws

    def __init__(self, err: Console) -> None:
        self.err = err
        bar = BarColumn(bar_width=16, table_column=Column(no_wrap=True))
        columns = [_Numbers()] if err.width < NARROW_TERMINAL else [bar, _Numbers()]
        self.progress = _OneLine(
            *columns,
            console=err,
            transient=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
            get_time=lambda: time.monotonic(),
        )
        self.task: TaskID | None = None
        self.drawn = -math.inf  # when the line was last drawn
        self.visible = False

    def open(self, text: str) -> None:
        self.progress.start()  # hides the cursor; `close` shows it again
        self.message(text)

    def message(self, text: str) -> None:
        self._task(text, None)

    def start(self, total: int, done: int, label: str) -> None:
        self._task(label, total, done)

    def _task(self, description: str, total: int | None, done: int = 0) -> None:
        """A fresh task (Progress cannot take a total back to none, nor forget an engine's speed): drawn at once."""
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(description, total=total, completed=done, loss=math.nan, best_val=math.inf)
        self.drawn = -math.inf  # the first epoch is drawn at once
        self.visible = True

    def update(self, log: EpochLog) -> None:
        assert self.task is not None, "start() comes first"
        best = self.progress.tasks[0].fields["best_val"]
        if log.val_loss is not None and log.val_loss < best:
            best = log.val_loss
        self.progress.update(self.task, completed=log.epoch, loss=log.loss, best_val=best)
        if time.monotonic() - self.drawn >= self.INTERVAL:
            self._draw()

    def _draw(self) -> None:
        self.drawn = time.monotonic()
        self.visible = True
        self.progress.refresh()

    def clear(self) -> None:
        """Erase the line (before something goes to stdout); the next draw puts it back."""
        if self.visible:
            self.err.control(Control(ControlType.CARRIAGE_RETURN, (ControlType.ERASE_IN_LINE, 2)))
            self.visible = False

    def close(self) -> None:
        self.progress.stop()  # transient: erased, and the cursor shown


def _clock(seconds: float) -> str:
    """0:07, 12:34, 3:02:01."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def fit_summary(config: Config, result: FitResult, out: Out) -> None:
    precision = config.log.precision
    if out.mode == "json":
        out.record("fit", **fit_fields(config, result))
        return
    for sample, _, after in result.predictions:
        out.line(f"Prediction after training: f({_inputs(sample)}) = {after:.{precision}f}")
    bias = f"{result.bias:.{precision}f}" if config.model.bias else "off"
    rows = [
        ("Engine", f"{result.engine} on {result.device}, {result.dtype}"),
        ("Epochs", f"{result.epochs} in {result.seconds:.3g} s ({result.stopped})"),
        ("Final loss", f"{result.loss:.6g} (MSE on {result.rows} training rows)"),
        ("R²", f"{result.r2:.6f}"),
    ]
    if result.val_loss is not None:
        rows.append(("Validation loss", f"{result.val_loss:.6g}"))
    rows += [
        ("Weights", weights_text(result.weights, precision)),
        ("Bias", bias),
        (
            "Gap to optimum",
            f"loss {max(result.loss - result.optimum_loss, 0.0):+.3g}, max |w - w*| {result.max_dw_to_optimum:.3g} "
            "(least squares, float64)",
        ),
    ]
    if result.run_dir is not None:
        rows.append(("Run saved", str(result.run_dir)))
    if out.mode == "rich":
        curves = {"train": [log.loss for log in result.history]}
        if result.val_loss is not None:
            curves["validation"] = [math.nan if log.val_loss is None else log.val_loss for log in result.history]
        curve = sparklines(curves)
        if curve is not None:
            out.draw(curve)
    _key_values(rows, out, "Fit summary")


def _key_values(rows: list[tuple[str, str]], out: Out, title: str | None = None) -> None:
    """A two-column table on a terminal; `key: value` lines when piped."""
    if out.mode != "rich":
        for key, value in rows:
            out.line(f"{key}: {value}")
        return
    table = Table(title=title, show_header=False, title_justify="left", box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    out.draw(table)


BLOCKS = "▁▂▃▄▅▆▇█"


def sparklines(curves: dict[str, list[float]], width: int = 48) -> Table | None:
    """Loss per epoch on one log scale, a line of block characters per curve (each character the mean over a
    span of epochs); None when there is nothing to draw. `lrtrain plot` draws the full picture."""
    logs = {}
    for name, values in curves.items():
        v = np.asarray(values, dtype=np.float64)
        kept = v[np.isfinite(v) & (v > 0)]
        if len(v) >= 2 and len(kept) >= 2:
            logs[name] = np.log10(kept)
    if not logs:
        return None
    low = min(float(v.min()) for v in logs.values())
    span = max(float(v.max()) for v in logs.values()) - low or 1.0
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim")
    grid.add_column(justify="right")
    grid.add_column(no_wrap=True)
    grid.add_column()
    for index, (name, v) in enumerate(logs.items()):
        means = [float(part.mean()) for part in np.array_split(v, min(width, len(v)))]
        levels = [round((m - low) / span * (len(BLOCKS) - 1)) for m in means]
        blocks = Text("".join(BLOCKS[level] for level in levels), style=("cyan", "magenta")[index % 2])
        grid.add_row(f"{name} loss", f"{10 ** v[0]:.3g}", blocks, f"{10 ** v[-1]:.3g}")
    epochs = max(len(values) for values in curves.values())
    grid.add_row("", "", Text(f"epoch 1 … {epochs}, log scale", style="dim"), "")
    return grid


def fit_fields(config: Config, result: FitResult) -> dict[str, Any]:
    return {
        "engine": result.engine,
        "device": result.device,
        "dtype": result.dtype,
        "epochs": result.epochs,
        "stopped": result.stopped,
        "seconds": result.seconds,
        "loss": result.loss,
        "val_loss": result.val_loss,
        "r2": result.r2,
        "weights": result.weights,
        "bias": result.bias if config.model.bias else None,
        "optimum": {
            "loss": result.optimum_loss,
            "weights": result.optimum_weights,
            "bias": result.optimum_bias if config.model.bias else None,
            "max_abs_dw": result.max_dw_to_optimum,
        },
        "predictions": [{"input": s, "before": before, "after": after} for s, before, after in result.predictions],
        "run_dir": None if result.run_dir is None else str(result.run_dir),
    }


def comparison(config: Config, cmp: Comparison, out: Out) -> None:
    precision = config.log.precision
    verdict = "agree" if cmp.agree else "DISAGREE"
    conclusion = (
        f"Engines {verdict}: largest relative |Δw| between trained engines {cmp.worst:.3g}, "
        f"tolerance {cmp.tolerance:.0e} ({config.model.dtype})."
    )
    if cmp.trained < 2:
        conclusion = (
            "Nothing to hold to the tolerance: fewer than two trained engines (exact is the reference). "
            "Name two, e.g. lrtrain compare manual torch."
        )
    if out.mode == "json":
        for label, result, delta in zip(cmp.labels, cmp.results, cmp.deltas, strict=True):
            out.record("engine", label=label, max_abs_dw_vs_first=delta, **fit_fields(config, result))
        out.record("compare", agree=cmp.agree, worst=cmp.worst, tolerance=cmp.tolerance, engines=cmp.labels)
        return
    columns = [  # (table heading, key of the plain line)
        ("engine", "engine"),
        ("device", "device"),
        ("dtype", "dtype"),
        ("final loss", "final_loss"),
        ("weights", "weights"),
        ("bias", "bias"),
        ("epochs", "epochs"),
        ("per epoch", "time_per_epoch"),
        ("|Δw| vs 1st", "max_abs_dw_vs_first"),
        ("gap to w*", "gap_to_optimum"),
    ]
    rows = [
        [
            label,
            r.device,
            r.dtype,
            f"{r.loss:.6g}",
            weights_text(r.weights[:3], precision) + (" ..." if len(r.weights) > 3 else ""),
            f"{r.bias:.{precision}f}" if config.model.bias else "off",
            str(r.epochs),
            duration(r.seconds_per_epoch),
            f"{delta:.2g}",
            f"{r.max_dw_to_optimum:.2g}",
        ]
        for label, r, delta in zip(cmp.labels, cmp.results, cmp.deltas, strict=True)
    ]
    if out.mode == "rich":
        table = Table(  # one column per engine: narrow enough for a terminal whatever the metrics
            title="Engines on the same data, initial weights and batch order",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
        )
        table.add_column("")
        for row in rows:
            table.add_column(row[0], justify="right")
        for index, (heading, _) in enumerate(columns[1:], start=1):
            table.add_row(heading, *(row[index] for row in rows), style="bold" if index == 3 else None)
        out.draw(table)
        out.draw(Text(conclusion, style="green" if cmp.agree else "bold red"))
    else:
        for row in rows:
            fields = [row[0]] + [
                f"{key}={value.replace(' ', '')}" for (_, key), value in zip(columns[1:], row[1:], strict=True)
            ]
            out.line("  ".join(fields))
        out.line(conclusion)


def duration(seconds: float) -> str:
    """1.23 µs, 45.6 ms, 7.89 s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def runs(found: list[RunInfo], root: str, out: Out) -> None:
    """`lrtrain runs`: one row per run folder, oldest first."""
    rows: list[dict[str, Any]] = [
        {
            "run": str(run.path),
            "status": run.status,
            "engine": run.engine,
            "epochs": run.epochs,
            "loss": run.loss,
            "r2": run.r2,
            "when": run.when.isoformat(timespec="seconds"),
            "problem": run.problem,
        }
        for run in found
    ]
    if out.mode == "json":
        for row in rows:
            out.record("run", **row)
        return
    if not rows:
        out.line(f"no runs under {root}/ yet; `lrtrain fit` writes one there.")
        return

    def cell(value: object, spec: str = "") -> str:
        return "-" if value is None else format(value, spec)

    if out.mode == "plain":  # one greppable line per run; absent fields left out
        for row in rows:
            path = row.pop("run")
            out.line("  ".join([path, *(f"{k}={v}" for k, v in row.items() if v is not None)]))
        return
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    table.add_column("run", no_wrap=True)
    for heading in ("status", "engine", "epochs", "final loss", "R²", "when"):
        table.add_column(heading, justify="right" if heading in ("epochs", "final loss", "R²") else "left")
    for run in found:
        style = {"finished": None, "interrupted": "yellow"}.get(run.status, "red")
        status = run.status if run.problem is None else f"{run.status}: {run.problem}"
        when = run.when.strftime("%H:%M" if run.when.date() == datetime.now().date() else "%Y-%m-%d")
        table.add_row(
            run.path.name,
            status,
            cell(run.engine),
            cell(run.epochs),
            cell(run.loss, ".4g"),
            cell(run.r2, ".4f"),
            when,
            style=style,
        )
    out.draw(table)


def info(facts: dict[str, Any], out: Out) -> None:
    """`lrtrain info`: versions, BLAS and devices, as a bug report would quote them."""
    if out.mode == "json":
        out.record("info", **facts)
        return
    torch = facts["torch"]
    packages = facts["packages"]
    rows = [
        ("lrtrain", facts["lrtrain"]),
        ("Python", facts["python"]),
        ("Platform", facts["platform"]),
        ("CPU", f"{facts['cpu']['model']}, {facts['cpu']['usable']} of {facts['cpu']['cores']} cores usable"),
        ("Packages", ", ".join(f"{k} {v or 'not installed'}" for k, v in packages.items() if k != "torch")),
    ]
    rows += [
        ("BLAS", f"{b['library']} {b['version']} ({b['architecture']}), {b['threads']} threads: {b['path']}")
        for b in facts["blas"]
    ]
    build = f"CUDA {torch['cuda_build']}" if torch["cuda_build"] else "CPU-only build"
    cudnn = f", cuDNN {torch['cudnn']}" if torch["cudnn"] else ""
    rows.append(("torch", f"{torch['version']} ({build}{cudnn}), {torch['threads']} threads"))
    rows += [
        (g["device"], f"{g['name']}, {g['memory_gib']} GiB, compute capability {g['capability']}")
        for g in torch["cuda"]
    ]
    if not torch["cuda"]:
        rows.append(("CUDA", "no CUDA device" + ("" if torch["cuda_build"] else " (this torch has no CUDA support)")))
    rows.append(("MPS", "available" if torch["mps"] else "not available"))
    rows.append(("Devices", ", ".join(torch["devices"]) + "  (for --device / compare torch:DEVICE)"))
    _key_values(rows, out)


def statistics(summary: dict[str, Any], heading: str, out: Out) -> None:
    """The OLS table, statsmodels style: model statistics, one row per term, then the warnings."""
    if out.mode == "json":
        fields = {k: v for k, v in summary.items() if k != "unscaled_covariance"}
        out.record("summary", source=heading, **fields)
        return

    def number(value: float | None, spec: str = ".4g") -> str:
        return "—" if value is None else format(value, spec)  # None: undefined or infinite (see the notes)

    level = summary["level"]
    r2_label = "R²" if summary["intercept"] else "R² (uncentered)"  # statsmodels' convention without a constant
    top = Table.grid(padding=(0, 2))
    for _ in range(4):
        top.add_column()
    pairs = [
        ("Observations", str(summary["n"]), r2_label, number(summary["r2"], ".6f")),
        ("Df model", str(summary["df_model"]), "Adj. R²", number(summary["adj_r2"], ".6f")),
        ("Df residuals", str(summary["df_resid"]), "F-statistic", number(summary["f_stat"])),
        (
            "Residual std. error",
            number(summary["residual_std_error"]),
            "Prob (F-statistic)",
            number(summary["f_p_value"], ".3g"),
        ),
        ("Log-likelihood", number(summary["log_likelihood"], ".6g"), "AIC", number(summary["aic"], ".6g")),
        ("Condition number", number(summary["condition_number"], ".3g"), "BIC", number(summary["bic"], ".6g")),
    ]
    for left, left_value, right, right_value in pairs:
        top.add_row(Text(left, style="bold"), left_value, Text(right, style="bold"), right_value)
    terms = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False)
    lower, upper = f"[{(1 - level) / 2:.3g}", f"{(1 + level) / 2:.3g}]"
    for index, name in enumerate(("", "coef", "std err", "t", "P>|t|", lower, upper)):
        terms.add_column(name, justify="left" if index == 0 else "right", no_wrap=index == 0, overflow="fold")
    for term in summary["terms"]:
        terms.add_row(
            term["name"],
            number(term["coef"], ".5g"),
            number(term["std_err"], ".3g"),
            number(term["t"], ".4g"),
            number(term["p_value"], ".3g"),
            number(term["ci_low"], ".5g"),
            number(term["ci_high"], ".5g"),
        )
    for part in (Text(f"OLS summary: {heading}", style="bold"), top, terms):
        if out.mode == "rich":
            out.draw(part)
        else:
            for line in plain_lines(part):
                out.line(line)
    for number_, warning in enumerate(summary["warnings"], start=1):
        if out.mode == "rich":
            out.draw(Text(f"[{number_}] {warning}", style="yellow"))
        else:
            out.line(f"[{number_}] {warning}")


def plain_lines(renderable: RenderableType) -> list[str]:
    """A table as plain text lines, every number whole: laid out 1000 columns wide (the tables do not expand),
    without colour or trailing blanks."""
    layout = Console(file=io.StringIO(), width=1000, color_system=None, highlight=False, emoji=False)
    with layout.capture() as captured:
        layout.print(renderable)
    return [line.rstrip() for line in captured.get().splitlines()]
