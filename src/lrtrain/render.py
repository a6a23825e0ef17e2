"""How epochs, summaries and comparisons look: Rich on a terminal, plain lines when piped, JSON lines.

What to show is decided here; where it goes (terminal or pipe, colour or not) is decided by the
Console from the stream, NO_COLOR and TERM.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, Literal, Self

import numpy as np
from rich import box
from rich.console import Console, RenderableType
from rich.control import Control
from rich.progress_bar import ProgressBar
from rich.segment import ControlType, Segments
from rich.table import Table
from rich.text import Text

from lrtrain.config import Config
from lrtrain.engine import EpochLog, FitResult
from lrtrain.runs import RunInfo
from lrtrain.training import SCHEMA, Comparison, Start

Mode = Literal["rich", "plain", "json"]


def console(stream: IO[str] | None = None) -> Console:
    stream = stream or sys.stdout
    plain = os.environ.get("TERM") == "dumb" or "NO_COLOR" in os.environ
    return Console(
        file=stream,
        highlight=False,
        color_system=None if plain else "auto",
        no_color=plain,
        soft_wrap=True,
        emoji=False,
    )


def choose_mode(out: Console, json_output: bool) -> Mode:
    if json_output:
        return "json"
    return "rich" if out.is_terminal and not out.is_dumb_terminal else "plain"


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
    """A live status line on stderr when the output is a terminal (None when piped or --json);
    used as a context manager, so the line is erased however training ends."""

    waiting = "loading the data ..."

    def __init__(self, mode: Mode, err: Console | None, live: bool = True) -> None:
        self.err = err or console(sys.stderr)
        live = live and mode == "rich" and self.err.is_terminal and not self.err.is_dumb_terminal
        self.status = LiveStatus(self.err) if live else None

    def __enter__(self) -> Self:
        if self.status:
            self.status.message(self.waiting)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status:
            self.status.close()


class FitView(_Watching):
    """Listener for training: the header, predictions before training, epoch lines on stdout and,
    on a terminal, the live status on stderr."""

    waiting = "loading the data and starting the engine ..."

    def __init__(self, config: Config, out: Console, mode: Mode, err: Console | None = None, live: bool = True) -> None:
        super().__init__(mode, err, live)
        self.config = config
        self.out = out
        self.mode = mode
        self.pending: list[str] = []  # notes from signal handlers that came while this view was writing
        self.writing = 0  # > 0 while a method of this view writes (on the main thread, where handlers run too)

    @contextlib.contextmanager
    def _writes(self) -> Iterator[None]:
        self.writing += 1
        try:
            yield
        finally:
            self.writing -= 1

    def note(self, text: str) -> None:
        """A message on stderr, clear of the live status."""
        with self._writes():
            if self.status:
                self.status.clear()
            self.err.print(Text(text))

    def __exit__(self, *exc: object) -> None:
        while self.pending:  # a signal that came while the last epoch was being shown
            self.note(self.pending.pop(0))
        super().__exit__(*exc)

    def note_later(self, text: str) -> None:
        """A message from a signal handler: shown at once while the engine computes (a long epoch gets its
        answer to Ctrl-C right away), or, when the handler interrupted this view in the middle of writing
        (a stream written from inside its own write fails), as soon as that write is done."""
        if self.writing:
            self.pending.append(text)
        else:
            self.note(text)

    def _line(self, text: str, style: str | None = None) -> None:
        if self.mode != "json":
            if self.status:
                self.status.clear()
            self.out.print(Text(text, style=style or ""))

    def started(self, start: Start) -> None:
        with self._writes():
            self._started(start)

    def _started(self, start: Start) -> None:
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
        with self._writes():
            if (log.epoch - 1) % self.config.log.every == 0:
                self._epoch_line(log)
            if self.status:
                self.status.update(log)
        while self.pending:
            self.note(self.pending.pop(0))

    def _epoch_line(self, log: EpochLog) -> None:
        if self.mode == "json":
            self.out.print(
                json_record(
                    "epoch",
                    epoch=log.epoch,
                    loss=log.loss,
                    val_loss=log.val_loss,
                    weights=log.weights,
                    bias=log.bias if self.config.model.bias else None,
                    lr=log.lr,
                ),
                markup=False,
            )
            return
        text = f"Epoch {log.epoch}: w = {weights_text(log.weights, self.config.log.precision)}, loss = {log.loss:.8f}"
        if self.config.log.bias and self.config.model.bias:
            text += f", b = {log.bias:.{self.config.log.precision}f}"
        if log.val_loss is not None:
            text += f", val_loss = {log.val_loss:.8f}"
        self._line(text)


class CompareView(_Watching):
    """`compare` on a terminal: the live status line on stderr for each engine in turn; nothing otherwise."""

    def __init__(self, engines: list[str], mode: Mode, err: Console | None = None) -> None:
        super().__init__(mode, err)
        self.engines = engines
        self.label = ""

    def watch(self, label: str, index: int) -> CompareView | None:
        """The listener for one engine's training (None when there is no live view)."""
        if not self.status:
            return None
        self.label = f"{label} ({index + 1} of {len(self.engines)})"
        self.status.message(f"starting {self.label} ...")
        return self

    def started(self, start: Start) -> None:
        if self.status:
            self.status.start(start.epochs, start.done, self.label)

    def epoch(self, log: EpochLog) -> None:
        if self.status:
            self.status.update(log)


NARROW_TERMINAL = 48  # columns below which the live status drops its progress bar


class LiveStatus:
    """One line on stderr: progress bar, epoch, loss, best validation loss, epochs per second, ETA.

    Redrawn at most ten times a second however fast the epochs run (an update between draws only
    stores numbers), and erased before a line goes to stdout, so the two streams never mix on the
    terminal. The cursor is hidden while it shows and restored by `close`.
    """

    INTERVAL = 0.1  # seconds between redraws

    def __init__(self, err: Console) -> None:
        self.err = err
        self.total = 0
        self.first = 0
        self.label = ""
        self.started = time.monotonic()
        self.drawn = -math.inf  # when the line was last drawn
        self.visible = False
        self.hidden = False  # the cursor
        self.best_val = math.inf

    def message(self, text: str) -> None:
        self._draw(Text(text, style="dim"))

    def start(self, total: int, done: int, label: str) -> None:
        self.total, self.first, self.label = total, done, label
        self.started = time.monotonic()
        self.drawn = -math.inf
        self.best_val = math.inf

    def update(self, log: EpochLog) -> None:
        if log.val_loss is not None and log.val_loss < self.best_val:
            self.best_val = log.val_loss
        now = time.monotonic()
        if now - self.drawn >= self.INTERVAL:
            self._draw(self._line(log, now))

    def _line(self, log: EpochLog, now: float) -> RenderableType:
        elapsed = now - self.started
        rate = (log.epoch - self.first) / elapsed if elapsed > 0 else 0.0
        parts = [f"epoch {log.epoch}/{self.total}", f"loss {log.loss:.6g}"]
        if math.isfinite(self.best_val):
            parts.append(f"best val {self.best_val:.6g}")
        if rate > 0:
            parts.append(f"{rate:,.0f} epochs/s" if rate >= 10 else f"{rate:.2g} epochs/s")
            parts.append(f"ETA {_clock(max(self.total - log.epoch, 0) / rate)}")
        text = Text("  ".join([*parts, self.label]), no_wrap=True, overflow="ellipsis")
        if self.err.width < NARROW_TERMINAL:  # no room for a bar: the numbers alone, cut to the width
            return text
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        grid.add_row(ProgressBar(total=max(self.total, 1), completed=log.epoch, width=24), text)
        return grid

    def _draw(self, renderable: RenderableType) -> None:
        # one column short of the width: a line that fills the last column wraps on some terminals
        options = self.err.options.update(width=max(self.err.width - 1, 1), no_wrap=True, height=1)
        line = self.err.render_lines(renderable, options, pad=False)[0]
        hide = [] if self.hidden else [Control.show_cursor(False)]
        self.visible = self.hidden = True  # first: whatever interrupts the print, close() restores the cursor
        self.drawn = time.monotonic()
        self.err.print(
            *hide, Control.move_to_column(0), Segments(line), Control((ControlType.ERASE_IN_LINE, 0)), sep="", end=""
        )

    def clear(self) -> None:
        """Erase the line (before something else is printed); a later update draws it again."""
        if self.visible:
            self.err.print(Control.move_to_column(0), Control((ControlType.ERASE_IN_LINE, 2)), sep="", end="")
            self.visible = False

    def close(self) -> None:
        self.clear()
        if self.hidden:
            self.err.print(Control.show_cursor(True), end="")
            self.hidden = False


def _clock(seconds: float) -> str:
    """0:07, 12:34, 3:02:01."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def fit_summary(config: Config, result: FitResult, out: Console, mode: Mode) -> None:
    precision = config.log.precision
    if mode == "json":
        out.print(json_record("fit", **fit_fields(config, result)), markup=False)
        return
    for sample, _, after in result.predictions:
        out.print(Text(f"Prediction after training: f({_inputs(sample)}) = {after:.{precision}f}"))
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
    if mode == "rich":
        curves = {"train": [log.loss for log in result.history]}
        if result.val_loss is not None:
            curves["validation"] = [math.nan if log.val_loss is None else log.val_loss for log in result.history]
        chart = loss_chart(curves)
        if chart is not None:
            out.print(chart)
    _key_values(rows, out, mode, "Fit summary")


def _key_values(rows: list[tuple[str, str]], out: Console, mode: Mode, title: str | None = None) -> None:
    """A two-column table on a terminal; `key: value` lines when piped."""
    if mode == "rich":
        table = Table(title=title, show_header=False, title_justify="left", box=None, padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for key, value in rows:
            table.add_row(key, value)
        out.print(table)
    else:
        for key, value in rows:
            out.print(Text(f"{key}: {value}"))


_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))  # braille dot bits by (column, row) in a cell


def loss_chart(curves: dict[str, list[float]], width: int = 56, height: int = 6) -> Table | None:
    """Loss per epoch on a log scale in braille dots (2×4 per character); None when there is nothing to draw.

    Every curve spans the full width (epoch 1 on the left, the last on the right). Where an epoch
    range shares one dot column, the dots cover its smallest to largest loss, so oscillation shows.
    """
    logs = {}
    for name, values in curves.items():
        v = np.asarray(values, dtype=np.float64)
        if len(v) >= 2 and np.any(np.isfinite(v) & (v > 0)):
            floor = float(np.min(v[np.isfinite(v) & (v > 0)]))
            logs[name] = np.log10(np.clip(np.nan_to_num(v, nan=floor, posinf=floor), floor, None))
    if not logs:
        return None
    low = min(float(v.min()) for v in logs.values())
    high = max(float(v.max()) for v in logs.values())
    span = high - low or 1.0
    levels = 4 * height
    cells = np.zeros((height, width), dtype=np.int64)
    owner = np.full((height, width), -1)
    for index, v in enumerate(logs.values()):
        edges = np.linspace(0, len(v), 2 * width + 1)
        previous = None
        for column in range(2 * width):
            part = v[int(edges[column]) : max(int(edges[column + 1]), int(edges[column]) + 1)]
            lo, hi = (np.rint((np.array([part.min(), part.max()]) - low) / span * (levels - 1))).astype(int)
            if previous is not None:  # join to the previous column, so the curve is a line, not dust
                lo, hi = min(lo, previous), max(hi, previous)
            previous = int(np.rint((part[-1] - low) / span * (levels - 1)))
            for level in range(lo, hi + 1):
                row = levels - 1 - level
                cells[row // 4, column // 2] |= _DOTS[column % 2][row % 4]
                if owner[row // 4, column // 2] < 0:
                    owner[row // 4, column // 2] = index
    styles = ["cyan", "magenta"]
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right", style="dim")
    grid.add_column(no_wrap=True)
    for row in range(height):
        line = Text()
        for column in range(width):
            bits = int(cells[row, column])
            style = styles[owner[row, column] % len(styles)] if bits else ""
            line.append(chr(0x2800 + bits) if bits else " ", style=style)
        label = f"{10**high:.3g}" if row == 0 else f"{10**low:.3g}" if row == height - 1 else ""
        grid.add_row(label, line)
    epochs = max(len(values) for values in curves.values())
    legend = Text("epoch 1 ")
    legend.append("─" * max(width - 9 - len(str(epochs)), 1), style="dim")
    legend.append(f" {epochs}")
    grid.add_row("", legend)
    names = Text("loss (log scale): ", style="dim")
    for index, name in enumerate(logs):
        names.append(f"⣿ {name}  ", style=styles[index % len(styles)])
    grid.add_row("", names)
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


def comparison(config: Config, cmp: Comparison, out: Console, mode: Mode) -> None:
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
    if mode == "json":
        for label, result, delta in zip(cmp.labels, cmp.results, cmp.deltas, strict=True):
            out.print(
                json_record("engine", label=label, max_abs_dw_vs_first=delta, **fit_fields(config, result)),
                markup=False,
            )
        out.print(
            json_record("compare", agree=cmp.agree, worst=cmp.worst, tolerance=cmp.tolerance, engines=cmp.labels),
            markup=False,
        )
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
    if mode == "rich":
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
        out.print(table)
        out.print(Text(conclusion, style="green" if cmp.agree else "bold red"))
    else:
        for row in rows:
            fields = [row[0]] + [
                f"{key}={value.replace(' ', '')}" for (_, key), value in zip(columns[1:], row[1:], strict=True)
            ]
            out.print(Text("  ".join(fields)))
        out.print(Text(conclusion))


def duration(seconds: float) -> str:
    """1.23 µs, 45.6 ms, 7.89 s."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def runs(found: list[RunInfo], root: str, out: Console, mode: Mode) -> None:
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
    if mode == "json":
        for row in rows:
            out.print(json_record("run", **row), markup=False)
        return
    if not rows:
        out.print(Text(f"no runs under {root}/ yet; `lrtrain fit` writes one there."))
        return

    def cell(value: object, spec: str = "") -> str:
        return "-" if value is None else format(value, spec)

    if mode == "plain":  # one greppable line per run; absent fields left out
        for row in rows:
            path = row.pop("run")
            out.print(Text("  ".join([path, *(f"{k}={v}" for k, v in row.items() if v is not None)])))
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
    out.print(table)


def info(facts: dict[str, Any], out: Console, mode: Mode) -> None:
    """`lrtrain info`: versions, BLAS and devices, as a bug report would quote them."""
    if mode == "json":
        out.print(json_record("info", **facts), markup=False)
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
    _key_values(rows, out, mode)


def statistics(summary: dict[str, Any], heading: str, out: Console, mode: Mode) -> None:
    """The OLS table, statsmodels style: model statistics, one row per term, then the warnings."""
    if mode == "json":
        fields = {k: v for k, v in summary.items() if k != "unscaled_covariance"}
        out.print(json_record("summary", source=heading, **fields), markup=False)
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
    width = out.width
    if mode != "rich":
        out.width = 1000  # piped: every number whole, however long the names (the tables do not expand)
    try:
        out.print(Text(f"OLS summary: {heading}", style="bold"))
        out.print(top)
        out.print(terms)
    finally:
        out.width = width
    for number_, warning in enumerate(summary["warnings"], start=1):
        out.print(Text(f"[{number_}] {warning}", style="yellow"))
