"""How epochs, summaries and comparisons look, and the one writer of stdout.

Results are text: plain lines and JSON records go to stdout through `write_line`, never through
Rich, so a pipe gets whole lines whatever the terminal's width. Rich only decorates a terminal:
the tables there, and the live status on stderr. What to show is decided here; whether the
stream is a terminal, and its colours, the Console decides from the stream, NO_COLOR and TERM.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np

from lrtrain.config import Config
from lrtrain.engine import FitResult
from lrtrain.errors import printable, writing_stdout
from lrtrain.runs import RunInfo
from lrtrain.training import SCHEMA, Comparison

if TYPE_CHECKING:  # Rich is imported where a table is drawn: --json never loads it
    from rich.console import Console, RenderableType
    from rich.table import Table

Mode = Literal["rich", "plain", "json"]

MIN_WIDTH = 40  # a terminal narrower than this (COLUMNS=0 says "unknown") is drawn as if this wide: at 20 the
# tables had room for their labels only, and their numbers were cut away


def console(stream: IO[str] | None = None) -> Console:
    from rich.console import Console

    stream = stream or sys.stdout
    plain = os.environ.get("TERM") == "dumb" or "NO_COLOR" in os.environ
    out = Console(
        file=stream,
        # a terminal only when the stream is one: FORCE_COLOR and TTY_COMPATIBLE (set by CI systems), which Rich
        # takes for a terminal, must not turn the plain lines of a pipe into a table
        force_terminal=_isatty(stream),
        highlight=False,
        color_system=None if plain else "auto",
        no_color=plain,
        soft_wrap=True,
        emoji=False,
        markup=False,  # text is shown as it is: a column named "[/b]" is a name, not a style
    )
    if out.width < MIN_WIDTH:  # Rich takes COLUMNS=0 at its word, and a table drawn 0 wide is nothing at all
        out.width = MIN_WIDTH
    return out


def choose_mode(out: Console, json_output: bool) -> Mode:
    if json_output:
        return "json"
    return "rich" if out.is_terminal and not out.is_dumb_terminal else "plain"


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # closed, or a stream without a descriptor
        return False


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
        self.mode: Mode = mode or ("json" if json_output else choose_mode(self.console, json_output))
        self.safe_point = safe_point

    @functools.cached_property
    def console(self) -> Console:
        """Rich on this stream: asked only to tell a terminal, or to draw on one."""
        return console(self.stream)

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


def weights_text(w: np.ndarray, precision: int, summary: bool = False) -> str:
    """Epoch lines: `precision` decimals (the cheat sheet's format); a `summary` shows small values too."""
    values = [summary_number(v, precision) if summary else f"{v:.{precision}f}" for v in w]
    if len(values) == 1:
        return values[0]
    if len(values) > 6:
        return "[" + ", ".join(values[:5]) + f", ... ({len(values)} weights)]"
    return "[" + ", ".join(values) + "]"


def summary_number(value: float, precision: int) -> str:
    """`precision` decimals, as on epoch lines, unless they keep fewer than two significant digits of the value
    (0.000 for 0.0004), or it is 1e15 or more (a line of 300 digits for 1e300): then `precision` (at least two)
    significant digits."""
    if value != 0 and not 10.0 ** (1 - precision) <= abs(value) < 1e15:
        return f"{value:.{max(precision, 2)}g}"
    return f"{value:.{precision}f}"


def inputs_text(sample: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in sample)


def fit_summary(config: Config, result: FitResult, out: Out) -> None:
    precision = config.log.precision
    if out.mode == "json":
        out.record("fit", **fit_fields(config, result))
        return
    for sample, _, after in result.predictions:
        out.line(f"Prediction after training: f({inputs_text(sample)}) = {summary_number(after, precision)}")
    bias = summary_number(result.bias, precision) if config.model.bias else "off"
    rows = [
        ("Engine", f"{result.engine} on {result.device}, {result.dtype}"),
        ("Epochs", f"{result.epochs} in {result.seconds:.3g} s ({result.stopped})"),
        ("Final loss", f"{result.loss:.6g} (MSE on {result.rows} training rows)"),
        ("R²" if result.r2_centered else "R² (uncentered: no bias)", f"{result.r2:.6f}"),
    ]
    if result.val_loss is not None:
        rows.append(("Validation loss", f"{result.val_loss:.6g}"))
    rows += [
        ("Weights", weights_text(result.weights, precision, summary=True)),
        ("Bias", bias),
        ("Gap to optimum", _gap_text(config, result)),
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


def _gap_text(config: Config, result: FitResult) -> str:
    """How far the final loss is from the least-squares optimum's, and whether that met train.target_gap."""
    relative = " relative" if result.gap_relative and not math.isnan(result.gap) else ""
    verdict = ""
    if result.converged is not None:
        verdict = f", {'within' if result.converged else 'above'} the target {config.train.target_gap:g}"
    what, reference = ("objective", "ridge") if config.train.weight_decay else ("loss", "least squares")
    return (
        f"{what} {max(result.gap, 0.0):.3g}{relative}{verdict}; max |w - w*| {result.max_dw_to_optimum:.3g} "
        f"({reference}, float64)"
    )


def _key_values(rows: list[tuple[str, str]], out: Out, title: str | None = None) -> None:
    """A two-column table on a terminal; `key: value` lines when piped."""
    rows = [(key, printable(value, sys.maxsize)) for key, value in rows]  # names may hold any character
    if out.mode != "rich":
        for key, value in rows:
            out.line(f"{key}: {value}")
        return
    from rich.table import Table

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
    from rich.table import Table
    from rich.text import Text

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
        "r2_kind": "centered" if result.r2_centered else "uncentered",
        "gap": result.gap,
        "converged": result.converged,
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
        from rich import box
        from rich.table import Table
        from rich.text import Text

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
    """`lrtrain runs`: one row per run folder, oldest first. A folder's name may hold anything a file name can (a
    line break, an ANSI escape): the table and the plain lines show it printable; JSON escapes it by itself."""
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
        out.line(printable(f"no runs under {root}/ yet; `lrtrain fit` writes one there."))
        return

    def cell(value: object, spec: str = "") -> str:
        return "-" if value is None else format(value, spec)

    if out.mode == "plain":  # one greppable line per run; absent fields left out
        for row in rows:
            path = row.pop("run")
            out.line(printable("  ".join([path, *(f"{k}={v}" for k, v in row.items() if v is not None)])))
        return
    from rich.table import Table

    table = Table(box=None, padding=(0, 1), pad_edge=False)
    table.add_column("run", no_wrap=True)
    for heading in ("status", "engine", "epochs", "final loss", "R²", "when"):
        table.add_column(heading, justify="right" if heading in ("epochs", "final loss", "R²") else "left")
    for run in found:
        style = {"finished": None, "interrupted": "yellow"}.get(run.status, "red")
        status = run.status if run.problem is None else f"{run.status}: {run.problem}"
        when = run.when.strftime("%H:%M" if run.when.date() == datetime.now().date() else "%Y-%m-%d")
        table.add_row(
            printable(run.path.name),
            printable(status),
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


def evaluation(fields: dict[str, Any], out: Out) -> None:
    """`lrtrain evaluate`: the model's errors on a table; one `evaluation` record with --json."""
    if out.mode == "json":
        out.record("evaluation", **fields)
        return
    convention = "1 - SSE/sum((y - mean y)^2)" if fields["r2_centered"] else "1 - SSE/sum(y^2), uncentered: no bias"
    rows = [
        ("model", fields["model"]),
        ("data", fields["data"]),
        ("target", fields["target"]),
        ("rows", str(fields["rows"])),
        *((key, f"{fields[key]:.6g}") for key in ("mse", "rmse", "mae")),
        ("r2", f"{fields['r2']:.6g}  ({convention})"),
    ]
    _key_values(rows, out)


def statistics(summary: dict[str, Any], heading: str, out: Out) -> None:
    """The OLS table, statsmodels style: model statistics, one row per term, then the warnings."""
    if out.mode == "json":
        fields = {k: v for k, v in summary.items() if k != "unscaled_covariance"}
        out.record("summary", source=heading, **fields)
        return

    from rich import box
    from rich.table import Table
    from rich.text import Text

    def number(value: float | None, spec: str = ".4g") -> str:
        return "—" if value is None else format(value, spec)  # None: undefined or infinite (see the notes)

    level = summary["level"]
    centered = summary["intercept"] or summary.get("implicit_constant") is True
    r2_label = "R²" if centered else "R² (uncentered)"  # statsmodels' convention without a constant
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
            printable(term["name"], sys.maxsize),
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
    from rich.console import Console

    layout = Console(file=io.StringIO(), width=1000, color_system=None, highlight=False, emoji=False, markup=False)
    with layout.capture() as captured:
        layout.print(renderable)
    return [line.rstrip() for line in captured.get().splitlines()]
