"""How epochs, summaries and comparisons look: Rich on a terminal, plain lines when piped, JSON lines.

What to show is decided here; where it goes (terminal or pipe, colour or not) is decided by the
Console from the stream, NO_COLOR and TERM.
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import IO, Any, Literal

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lrtrain.config import Config
from lrtrain.training import SCHEMA, Comparison, EpochLog, FitResult, Start

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


class FitView:
    """Listener for training: prints the header, predictions before training and epoch lines."""

    def __init__(self, config: Config, out: Console, mode: Mode, err: Console | None = None) -> None:
        self.config = config
        self.out = out
        self.mode = mode
        self.err = err or console(sys.stderr)

    def _line(self, text: str, style: str | None = None) -> None:
        if self.mode != "json":
            self.out.print(Text(text, style=style or ""))

    def started(self, start: Start) -> None:
        if start.curvature is not None:  # lr: auto, said once so the user learns the number
            self.err.print(
                Text(
                    f"lr = auto: 1/L = {start.lr:.6g}, L = {start.curvature:.6g} the largest eigenvalue of the "
                    "loss's Hessian (2/L would be the edge of divergence)"
                )
            )
        if self.config.log.header:
            self._line(f"Number of samples: {start.rows}, number of features: {start.features}")
        for sample, value in start.predictions:
            self._line(f"Prediction before training: f({_inputs(sample)}) = {value:.{self.config.log.precision}f}")

    def epoch(self, log: EpochLog) -> None:
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
        table = Table(title="Fit summary", show_header=False, title_justify="left", box=None, padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for key, value in rows:
            table.add_row(key, value)
        out.print(table)
    else:
        for key, value in rows:
            out.print(Text(f"{key}: {value}"))


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
