"""Ctrl-C and SIGTERM while a command trains: handlers that only count, acted on at safe points."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from lrtrain.errors import Interrupted, notice


def silent(text: str) -> None:
    return None


def loading_point() -> None:
    """Asked by the data readers after each range or batch they parse: under a command's signal guard, a Ctrl-C
    or SIGTERM that came while the data loads stops the command here, not after the whole file."""
    if _guards:
        _guards[-1].loading()


def solving_point() -> None:
    """Asked by the exact engine between the steps of its one solve: an epoch that has no end to stop at before
    the answer, and nothing to checkpoint, so a Ctrl-C or SIGTERM there stops the command as one while the data
    loads does, saving nothing."""
    loading_point()


class Signals:
    """SIGINT and SIGTERM during `fit` or `compare`. The handler only counts them; the command acts on the
    count at safe points, on the main thread: after each epoch (the view's epoch callback and `requested`,
    which training asks after every epoch) and before each line written (`render.Out`). So nothing is
    printed, raised or saved half-way, as the Python `signal` documentation advises.

    `fit`, while training: the first signal stops at the end of the epoch, which saves a checkpoint; a
    second one that comes before that end stops there without saving ("stop now, saving nothing"). One
    that comes while the checkpoint is written changes nothing: the save completes, then the command exits
    130. After training (`trained`), a signal stops the printing of the results and says whether the run
    was saved. `compare` saves nothing: any signal stops it at the next epoch.

    What bounds the wait is the epoch: engines yield once per epoch, and an epoch is not cut half-way. From
    the moments an epoch takes microseconds; minibatches over a large file take one pass over it. While the
    data loads, before any epoch, there is nothing to save: the readers ask `loading_point` after each range
    or batch they parse, and a signal stops the command there (in one process; under torchrun the ranks
    may be inside a collective, so loading runs on to the first epoch's vote). Ctrl-\\ (SIGQUIT) still ends
    the process at once; while training, no run folder exists yet (it is made when saving starts), so none
    is left behind.
    """

    def __init__(self, distributed: bool = False, stop_at_once: bool = False) -> None:
        self.distributed = distributed
        self.stop_at_once = stop_at_once
        self.count = 0  # signals received (the handler's only work)
        self.seen = 0  # signals acted on
        self.after: str | None = None  # once training is over: what a signal then ends with
        self.say: Callable[[str], None] = notice
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self._count)
        _guards.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _guards.remove(self)  # first: a signal while the handlers go back raises past the rest
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def loading(self) -> None:
        """A safe point while the data loads (see `loading_point`): a signal since the last one stops the command,
        which has nothing to save yet."""
        if self.count > self.seen and not self.distributed:
            self.seen = self.count
            raise KeyboardInterrupt  # "stopped before finishing; nothing was saved": handled says so, exit 130

    def _count(self, signum: int, frame: object) -> None:
        if self.distributed and self.count:
            # one Ctrl-C can reach a torchrun worker twice (from the terminal before torch 2.2, and passed on),
            # and torchrun itself kills a worker that is slow to stop: a repeat changes nothing
            return
        self.count += 1

    def requested(self) -> bool:
        """Training asks this after every epoch (under torchrun, before the ranks vote): stop at its end?
        A safe point too, so a signal that came after the view's epoch callback is still said, or acted on."""
        self.check()
        return self.count > 0

    def trained(self, saved: str) -> None:
        """Training is over, and `saved` says where the run is (if it saves): from here a signal ends the command
        with it. One that came in the last epoch, whose end was the end of training, ends it now: the run is
        whole, and a script that was stopped must not go on as if it had not been."""
        self.after = f"interrupted while printing the results; {saved}."
        if self.count:
            self.seen = self.count
            raise Interrupted(f"interrupted in the last epoch, which ended the training; {saved}.")

    def check(self) -> None:
        """A safe point: act on the signals that came since the last one."""
        if self.count == self.seen:
            return
        first, self.seen = self.seen == 0, self.count
        if self.after is not None:
            raise Interrupted(self.after)
        if self.stop_at_once or (self.count > 1 and not self.distributed):
            raise KeyboardInterrupt  # "stop now, saving nothing": handled says so, exit 130
        if first and self.distributed:  # torchrun passes the signal on to every process, which vote on the epoch
            self.say("stopping at the end of an epoch, all processes together")
        elif first:
            self.say("stopping at the end of this epoch (press Ctrl-C again to stop now, saving nothing)")


_guards: list[Signals] = []  # the signal guards entered, innermost last
