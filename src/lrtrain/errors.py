"""Domain errors and the exit codes they map to: the one place both are defined."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from enum import IntEnum


class ExitCode(IntEnum):
    """What `lrtrain` returns to the shell."""

    OK = 0
    TRAINING_FAILED = 1  # diverged, the loss became non-finite, or stdout could not be written (as `cat` exits 1)
    USAGE = 2  # invalid command line, config, data, model or input
    DISAGREE = 3  # `compare`: engines disagree beyond the tolerance
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


class LrtrainError(Exception):
    """An error the user can fix; its message is one paragraph that says what and how."""

    exit_code = ExitCode.USAGE


class ConfigError(LrtrainError):
    """The config file or a --set override is invalid."""


class DataError(LrtrainError):
    """The training data cannot be read or is unusable."""


class ModelError(LrtrainError):
    """A model file is missing, corrupt or of an unknown format."""


class InputError(LrtrainError):
    """Values given to `predict` are malformed."""


class DeviceError(LrtrainError):
    """The requested device does not exist here."""


class TrainingFailed(LrtrainError):
    """Training diverged or produced non-finite numbers."""

    exit_code = ExitCode.TRAINING_FAILED


class EnginesDisagree(LrtrainError):
    """`compare` found engines whose weights differ beyond the tolerance."""

    exit_code = ExitCode.DISAGREE


class OutputError(LrtrainError):
    """stdout cannot be written (a full disk, /dev/full); a reader that went away is not this, but exit 0."""

    exit_code = ExitCode.TRAINING_FAILED


class Interrupted(LrtrainError):
    """Ctrl-C or SIGTERM stopped training after a completed epoch; `checkpoint` holds it."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, checkpoint: object = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


def report(code: ExitCode, message: str, json_output: bool, stderr: bool = True) -> None:
    """How every error reaches the user: one paragraph on stderr; with --json, a last record on stdout too."""
    if json_output:
        text = message.removeprefix("error: ")
        record = json.dumps({"schema": "lrtrain/1", "event": "error", "exit_code": int(code), "message": text})
        try:
            print(record, flush=True)
        except OSError:  # stdout is what failed: the paragraph on stderr still says why
            discard_stdout()
    if stderr:
        print(message, file=sys.stderr, flush=True)


def discard_stdout() -> None:
    """Point stdout at /dev/null, so that nothing buffered is written again at exit, where it would fail
    again with a traceback (the Python `signal` documentation's note on SIGPIPE)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def writing_stdout() -> Iterator[None]:
    """Around a write to stdout: a reader that went away (`| head`) stays BrokenPipeError, for a quiet end;
    any other failure (a full disk, /dev/full) becomes OutputError, for one line on stderr."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        discard_stdout()  # what is still buffered would fail again at exit
        raise OutputError(f"cannot write the results to stdout: {exc.strerror or exc}.") from None
