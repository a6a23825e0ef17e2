"""The live status on stderr while training: one line (rich.progress) of epoch, loss, ETA and speed,
redrawn at most ten times a second and erased before each line on stdout. Imported only when a
terminal shows it: `--json` and piped runs never load Rich for it."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console, RenderableType
from rich.constrain import Constrain
from rich.control import Control
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID
from rich.segment import ControlType
from rich.table import Column
from rich.text import Text

from lrtrain.engine import EpochLog

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
