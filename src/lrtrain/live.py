"""What a terminal shows while training: the epoch lines as they come and, on stderr, a one-line live
status (lrtrain.status), redrawn at most ten times a second and erased before each line on stdout."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Self

from lrtrain.config import Config
from lrtrain.engine import EpochLog
from lrtrain.errors import printable
from lrtrain.render import Out, console, inputs_text, summary_number, weights_text
from lrtrain.training import Start

if TYPE_CHECKING:
    from rich.console import Console

    from lrtrain.status import Status


class _Watching:
    """The live status on stderr when stdout and stderr are terminals and there is no --json (else none);
    a context manager, so the status is erased and the cursor shown again however training ends."""

    waiting = "loading the data ..."

    def __init__(self, out: Out, err: Console | None, live: bool = True) -> None:
        self.out = out
        # Rich on stderr only beside Rich on stdout: --json writes its notes as plain lines, without loading Rich
        self.err = err or (console(sys.stderr) if out.mode != "json" else None)
        self.status: Status | None = None
        if live and out.mode == "rich" and self.err and self.err.is_terminal and not self.err.is_dumb_terminal:
            from lrtrain.status import Status

            self.status = Status(self.err)

    def __enter__(self) -> Self:
        if self.status:
            self.status.open(self.waiting)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status:
            self.status.close()

    def note(self, text: str) -> None:
        """A message on stderr, above the live status."""
        if self.err is None:
            sys.stderr.write(printable(text) + "\n")
            sys.stderr.flush()
            return
        from rich.text import Text

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
            precision = self.config.log.precision  # as the cheat sheet prints it, but never 300 digits
            shown = f"{value:.{precision}f}" if abs(value) < 1e15 else summary_number(value, precision)
            self._line(f"Prediction before training: f({inputs_text(sample)}) = {shown}")
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
