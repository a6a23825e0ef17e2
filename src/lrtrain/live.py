"""What a terminal shows while training: the epoch lines as they come and, on stderr, a one-line live
status (rich.progress), redrawn at most ten times a second and erased before each line on stdout."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable
from typing import Any, Self

from rich.console import Console, RenderableType
from rich.constrain import Constrain
from rich.control import Control
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID
from rich.segment import ControlType
from rich.table import Column
from rich.text import Text

from lrtrain.config import Config
from lrtrain.engine import EpochLog
from lrtrain.errors import printable
from lrtrain.render import Out, console, inputs_text, weights_text
from lrtrain.training import Start


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
        self.err.print(Text(printable(text)))


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
        if start.rates is not None:  # lr or momentum auto: said once, so the user learns the numbers
            self.note(start.rates)
        if self.config.log.header:
            self._line(f"Number of samples: {start.rows}, number of features: {start.features}")
        for sample, value in start.predictions:
            self._line(f"Prediction before training: f({inputs_text(sample)}) = {value:.{self.config.log.precision}f}")
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
