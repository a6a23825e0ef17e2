"""PNG plots of runs: loss per epoch, and the data with the fitted line when there is one feature.

matplotlib is an optional extra (`pip install 'lrtrain[plot]'`), imported only inside the functions
here. The figures are drawn with `Figure` and the Agg canvas directly: no pyplot, no global state,
no display.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lrtrain import config as config_module
from lrtrain import model as model_module
from lrtrain import sources
from lrtrain.errors import ConfigError, LrtrainError, ModelError, read_limited, unwritten
from lrtrain.files import atomic_writer, read_json
from lrtrain.runs import CONFIG_FILE, METRICS_FILE, MODEL_FILE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PANEL_INCHES = (8.0, 4.5)  # one panel; a second one widens the figure
SECOND_PANEL_INCHES = 5.0
DPI = 120
MAX_POINTS = 5000  # scatter points drawn at most; more rows are subsampled with a fixed seed


@dataclass(frozen=True)
class RunPlot:
    """What `plot_run` wrote, and what the caller should tell the user on stderr."""

    path: Path
    panels: tuple[str, ...]  # "loss", and "fit" when the data and fitted line were drawn
    warnings: list[str]  # one paragraph each; the PNG was written regardless


def require() -> None:
    """Raise ConfigError, with how to install it, when matplotlib is not importable."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(
            "plotting needs matplotlib, an optional extra of lrtrain that is not installed in this environment "
            f"({sys.executable}). Install it with: pip install 'lrtrain[plot]' (or {sys.executable} -m pip install "
            "matplotlib, so it lands beside lrtrain), then run the command again."
        ) from None


def plot_run(run_dir: Path, out: Path) -> RunPlot:
    """Plot a finished or checkpointed run folder (metrics.csv, model.json, config.yaml) into the PNG `out`."""
    epochs, losses, val_losses = _read_metrics(run_dir)
    out = check_output(out)
    warnings: list[str] = []
    model, engine = _read_model(run_dir, warnings)
    config = None
    try:
        if not (run_dir / CONFIG_FILE).is_file():  # a pipe there would be waited on for ever
            raise ConfigError("it is not a file")
        config = config_module.load_config(run_dir / CONFIG_FILE)
    except LrtrainError as exc:
        warnings.append(f"{run_dir / CONFIG_FILE} could not be read, so the plot may lack the engine and data: {exc}")
    engine = engine or (config.train.engine if config is not None else None)
    scatter = None
    if model is not None and len(model.features) == 1:
        scatter = _data_points(run_dir, config, model, out, warnings)

    panels = ("loss", "fit") if scatter is not None else ("loss",)
    width = PANEL_INCHES[0] + (SECOND_PANEL_INCHES if scatter is not None else 0.0)
    fig = _figure((width, PANEL_INCHES[1]))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    state = "" if model is not None else f", checkpoint after epoch {epochs[-1]}"
    fig.suptitle(_text(f"{run_dir.name} ({engine or 'engine unknown'}{state})"))
    curves = [("train", epochs, losses)]
    val = [(e, v) for e, v in zip(epochs, val_losses, strict=True) if v is not None]
    if val:
        curves.append(("validation", [e for e, _ in val], [v for _, v in val]))
    _loss_panel(axes[0], curves)
    axes[0].set_title("loss per epoch")
    if scatter is not None and model is not None:
        _fit_panel(axes[1], model, *scatter)
    _save(fig, out)
    return RunPlot(out, panels, warnings)


def plot_curves(out: Path, curves: dict[str, list[tuple[int, float]]], title: str) -> Path:
    """Loss per epoch of several engines in one PNG; a one-point curve (exact) is a dashed reference line."""
    out = check_output(out, "compare.png")
    fig = _figure(PANEL_INCHES)
    ax = fig.subplots()
    lines = [(label, [e for e, _ in points], [v for _, v in points]) for label, points in curves.items() if points]
    _loss_panel(ax, lines)
    ax.set_title(_text(title))
    _save(fig, out)
    return out


# --------------------------------------------------------------------------- reading


def check_output(out: Path, default_name: str = "loss.png") -> Path:
    """The PNG to write (`default_name` inside `out` when it is a folder), with matplotlib to draw it and a
    folder that takes it: all checked before any work that the plot would crown."""
    require()
    if out.is_dir():
        out = out / default_name
    if out.suffix.lower() != ".png":
        suggestion = default_name if out.name.lower() == ".png" else f"{out.stem}.png"  # '.png' is a hidden name
        raise ConfigError(
            f"{out}: plots are written as PNG only (NAME.png), and this name "
            f"{f'ends in {out.suffix!r}' if out.suffix else 'has no suffix'}. Name the output with .png, e.g. "
            f"{out.parent / suggestion}."
        )
    folder = out.parent.absolute()
    while not folder.exists():  # the folders to be made when the plot is saved: their nearest existing one
        folder = folder.parent
    why = "is not a folder" if not folder.is_dir() else None
    if why is None:
        try:
            with tempfile.TemporaryFile(dir=folder):  # the real test: permissions alone do not tell (root, /proc)
                pass
        except OSError as exc:
            why = f"cannot be written ({exc.strerror or exc})"
    if why:
        raise ConfigError(f"cannot write the plot to {out}: {folder} {why}. Choose a file in a folder you can write.")
    return out


def _read_metrics(run_dir: Path) -> tuple[list[int], list[float], list[float | None]]:
    """metrics.csv -> epochs, training losses, validation losses (None where there are none)."""
    if not run_dir.exists():
        raise ConfigError(
            f"run folder {run_dir} does not exist. Pass a folder under runs/ written by `lrtrain fit` "
            "(e.g. runs/NAME-TIME), or train one first with `lrtrain fit`."
        )
    if not run_dir.is_dir():
        raise ConfigError(
            f"{run_dir} is a file, but plotting reads a run folder. Pass the folder that holds it "
            f"({run_dir.parent}), or a folder under runs/ written by `lrtrain fit`."
        )
    path = run_dir / METRICS_FILE
    try:
        text = read_limited(path, "metrics", ConfigError, "the run's metrics").decode("utf-8")
        header, *rows = list(csv.reader(io.StringIO(text, newline=""))) or [[]]
        if header[:3] != ["epoch", "loss", "val_loss"]:
            raise ValueError(f"its first line is not the header epoch,loss,val_loss,... ({','.join(header)[:60]!r})")
        for line, row in enumerate(rows, start=2):
            _check_row(row, len(header), line)
        epochs = [int(row[0]) for row in rows]
        losses = [float(row[1]) for row in rows]
        val_losses = [float(row[2]) if row[2] else None for row in rows]
    except FileNotFoundError:
        raise ConfigError(
            f"{run_dir} holds no {METRICS_FILE}, so there is nothing to plot. Pass a run folder written by "
            "`lrtrain fit` (runs/NAME-TIME), or train one first with `lrtrain fit`."
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"{path} is damaged ({exc}), so the run cannot be plotted. "
            f"Train it again: lrtrain fit --config {run_dir / CONFIG_FILE}"
        ) from None
    if not rows:
        raise ConfigError(
            f"{path} holds no epochs, so there is nothing to plot. Train the run again: "
            f"lrtrain fit --config {run_dir / CONFIG_FILE}"
        )
    return epochs, losses, val_losses


def _check_row(row: list[str], width: int, line: int) -> None:
    """A row of metrics.csv as the run wrote it, or a ValueError that says what is wrong: every field, the epoch
    counted from 1 line by line, a finite loss of 0 or more, and a validation loss the same or empty."""
    if len(row) != width:
        raise ValueError(f"line {line} has {len(row)} fields, the header {width}: a line cut short or run on")
    epoch, loss, val_loss = row[:3]
    if epoch.strip() != str(line - 1):
        raise ValueError(
            f"line {line} is epoch {epoch!r}, not {line - 1}: epochs are missing, repeated or out of order"
        )
    for name, value in (("loss", loss), ("val_loss", val_loss or "0")):
        number = float(value)  # a ValueError names a cell that is no number
        if not (math.isfinite(number) and number >= 0):
            raise ValueError(f"line {line}: the {name} is {value}, not a finite number of 0 or more")


def _read_model(run_dir: Path, warnings: list[str]) -> tuple[model_module.Model | None, str | None]:
    """model.json and the engine that trained it; None for a checkpointed run (or, with a warning, a damaged file)."""
    path = run_dir / MODEL_FILE
    if not path.exists():
        return None, None
    try:
        model = model_module.load(path)
        payload = read_json(path, "model", ModelError, "model file")  # with the size limit of every model read
        engine = payload.get("engine") if isinstance(payload, dict) else None
    except (LrtrainError, OSError, ValueError) as exc:
        warnings.append(f"the fitted line is left out: {exc}")
        return None, None
    return model, str(engine) if engine else None


def _data_points(
    run_dir: Path, config: config_module.Config | None, model: model_module.Model, out: Path, warnings: list[str]
) -> tuple[np.ndarray, np.ndarray, float, float, int] | None:
    """The run's data for the scatter (at most MAX_POINTS rows) and its full x range; None, with a warning, if gone."""
    if config is None:
        return None
    try:
        dataset = sources.load(config)
    except LrtrainError as exc:
        warnings.append(f"{out} shows the loss only: the data of {run_dir} could not be loaded ({exc})")
        return None
    if dataset.features != model.features:
        warnings.append(
            f"{out} shows the loss only: the data now has the features {dataset.features}, but the model in "
            f"{run_dir} was trained on {model.features}."
        )
        return None
    n = sources.row_count(dataset)
    rows = np.sort(np.random.default_rng(0).choice(n, size=MAX_POINTS, replace=False)) if n > MAX_POINTS else None
    xs, ys, low, high, at = [], [], math.inf, -math.inf, 0
    for block_x, block_y in dataset.blocks():
        column = np.asarray(block_x[:, 0], dtype=np.float64)
        low, high = min(low, float(np.min(column))), max(high, float(np.max(column)))
        mine = slice(None) if rows is None else rows[(rows >= at) & (rows < at + len(block_y))] - at
        xs.append(column[mine])
        ys.append(np.asarray(block_y[mine], dtype=np.float64))
        at += len(block_y)
    return np.concatenate(xs), np.concatenate(ys), low, high, n


# --------------------------------------------------------------------------- drawing


def _figure(size: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _loss_panel(ax: Axes, curves: list[tuple[str, list[int], list[float]]]) -> None:
    """Loss curves on a log axis; a one-point curve becomes a dashed horizontal line.

    A log axis cannot show 0 (an exact fit): values <= 0 are drawn at the smallest positive loss, and
    the axis label says so. Non-finite values are left out. Without any positive value the axis is linear.
    """
    from matplotlib.ticker import MaxNLocator

    finite = [v for _, _, values in curves for v in values if math.isfinite(v)]
    positive = [v for v in finite if v > 0]
    floor = min(positive) if positive else None
    clipped = floor is not None and any(v <= 0 for v in finite)
    for i, (label, epochs, values) in enumerate(curves):
        points = [(e, v if floor is None else max(v, floor)) for e, v in zip(epochs, values, strict=True)]
        points = [(e, v) for e, v in points if math.isfinite(v)]
        if not points:
            continue
        color = f"C{i}"
        if len(points) == 1:
            epoch, value = points[0]
            kind = "optimum" if label.partition(":")[0] == "exact" else f"epoch {epoch}"
            if floor is not None and values[0] <= 0:
                kind += f", loss {values[0]:g}: drawn at the axis floor"
            ax.axhline(value, color=color, linestyle="--", linewidth=1.2, label=_text(f"{label} ({kind})"))
            ax.plot([epoch], [value], color=color, marker="o", linestyle="none")
        else:
            marker = "o" if len(points) <= 30 else None
            xs, ys = [e for e, _ in points], [v for _, v in points]
            ax.plot(xs, ys, color=color, marker=marker, markersize=3, label=_text(label))
    if floor is not None:
        ax.set_yscale("log")
    scale = "log scale" if floor is not None else "linear scale: no positive loss"
    note = f"; values ≤ 0 drawn at {floor:.1e}" if clipped else ""
    ax.set_ylabel(f"loss (MSE, {scale}{note})")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    seen = {e for _, curve_epochs, _ in curves for e in curve_epochs}
    if len(seen) == 1:  # one epoch (exact): a single tick, not fractions of an epoch
        ax.set_xticks(sorted(seen))
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def _fit_panel(
    ax: Axes, model: model_module.Model, x: np.ndarray, y: np.ndarray, low: float, high: float, total: int
) -> None:
    """The data as a scatter and the fitted line y = w·x + b over the data's x range."""
    w, b = model.weights[0], model.bias
    shown = f"{total} rows" if len(x) == total else f"{len(x)} of {total} rows, sampled"
    few = len(x) <= 200
    ax.scatter(
        x, y, s=30 if few else 8, alpha=0.9 if few else 0.5, color="C0", linewidths=0, zorder=3, label=f"data ({shown})"
    )
    line_x = np.array([low, high])
    equation = f"y = {w:.4g}·x {'+' if b >= 0 else '−'} {abs(b):.4g}"
    ax.plot(line_x, w * line_x + b, color="C3", linewidth=2, label=f"fit: {equation}")
    ax.set_xlabel(_text(model.features[0]))
    ax.set_ylabel(_text(model.target))
    ax.set_title("data and fitted line")
    ax.grid(True, alpha=0.3)
    ax.legend()


def _text(text: str) -> str:
    """User text (column names, labels) shown as is: a '$' would otherwise start matplotlib's math mode."""
    return text.replace("$", r"\$")


def _save(fig: Figure, out: Path) -> None:
    """Write the PNG atomically: a failure leaves the old file, or none, never half of one."""
    try:
        with atomic_writer(out, "wb") as handle:
            fig.savefig(handle, format="png", dpi=DPI)
    except OSError as exc:
        raise unwritten(out, exc, f"the plot to {out}") from None
