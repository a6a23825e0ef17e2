"""Domain errors and the exit codes they map to: the one place both are defined; how an error reaches the
user (printable, bounded); and the bounded read that every file lrtrain parses whole goes through (here,
in the lowest room, so that the config text below `files` can use it too)."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO, TextIO


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
    # under torchrun, who raises it alike and so who alone says it: "job", every process (it comes from numbers
    # they share), said by process 0; "node", every process on a machine (its files: the config), said by each
    # machine's first; None, this process only (its device, its view of the data), said by it
    alike: str | None = None

    def shared(self, alike: str) -> LrtrainError:
        """This error, marked as raised alike by every process of the `alike` ("job" or "node")."""
        self.alike = self.alike or alike
        return self


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


class SaveError(LrtrainError):
    """A run folder could not be written (a full disk, a quota, a vanished folder): what was trained is fine, the
    machine is not, so the exit code is that of an unwritable stdout, not of a mistake in the command."""

    exit_code = ExitCode.TRAINING_FAILED


# a write that failed for want of room or a working disk: the machine, not the command (exit 1, as a run not saved)
MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG})


def unwritten(path: Path, exc: OSError, what: str = "") -> LrtrainError:
    """The error for an output file that could not be written: a full disk, a quota or an I/O error is the
    machine's (SaveError, exit 1, as a full stdout); a missing folder or no permission is the command's
    (DataError, exit 2)."""
    machine = exc.errno in MACHINE_ERRNOS
    fix = "Free some space, or write elsewhere." if machine else "Choose a file in a folder you can write."
    text = f"cannot write {what or path}: {exc.strerror or exc}. {fix}"
    return SaveError(text) if machine else DataError(text)


class ScratchError(LrtrainError):
    """The temporary file a large table is kept in could not be written (a full $TMPDIR, a file size limit):
    the machine, not the command, so the exit code is that of a run that could not be saved."""

    exit_code = ExitCode.TRAINING_FAILED


class Interrupted(LrtrainError):
    """Ctrl-C or SIGTERM stopped training after a completed epoch; `checkpoint` holds it."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, checkpoint: object = None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


MESSAGE_LIMIT = 4000  # characters of an error message shown: the middle of a longer one is cut out


def report(code: ExitCode, message: str, json_output: bool, stderr: bool = True) -> None:
    """How every error reaches the user: one paragraph on stderr; with --json, a last record on stdout too.
    The message is made printable and bounded first: it may quote a path, a YAML value or a CSV header."""
    message = printable(message)
    if json_output:
        text = message.removeprefix("error: ")
        record = json.dumps({"schema": "lrtrain/1", "event": "error", "exit_code": int(code), "message": text})
        try:
            print(record, flush=True)
        except OSError:  # stdout is what failed: the paragraph on stderr still says why
            discard_stdout()
    if stderr:  # one write, line end and all: under torchrun two processes' messages never run into one line
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def notice(text: str, stream: TextIO | None = None) -> None:
    """A warning or note on stderr (or `stream`), printable and bounded as an error is: it may quote a path."""
    print(printable(text), file=stream or sys.stderr)


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


def tolerant_streams() -> None:
    """Let stdout and stderr write any text: on a terminal or pipe whose encoding cannot say "R²" (ASCII, LC_ALL=C
    before Python 3.7's UTF-8 coercion, PYTHONIOENCODING=ascii), such a character becomes its escape (R\\xb2)
    instead of failing a command whose work is already done. And let stdin read any bytes: one its encoding
    cannot decode reaches the reader as a surrogate (as under the C locale), which predict names in words,
    instead of a UnicodeDecodeError (a strict UTF-8 locale such as en_US.UTF-8)."""
    _reopen_closed()
    for stream, errors in (
        (sys.stdout, "backslashreplace"),
        (sys.stderr, "backslashreplace"),
        (sys.stdin, "surrogateescape"),
    ):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors=errors)


def _reopen_closed() -> None:
    """A standard stream the shell closed (`<&-`, `>&-`, `2>&-`), which Python leaves as None: its descriptor is
    held on /dev/null, so that no file opened later takes it (and a library's write to fd 2 lands in no data
    file); reading a closed stdin or writing results to a closed stdout fails as on its descriptor, EBADF (as
    `cat <&-`, `echo >&-`), while messages for a closed stderr go nowhere."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            with contextlib.suppress(OSError):
                null = os.open(os.devnull, os.O_RDWR)
                if null != fd:
                    os.dup2(null, fd)
                    os.close(null)
    if sys.stdin is None:
        sys.stdin = _Closed()
    if sys.stdout is None:
        sys.stdout = _Closed()
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115  the process's stderr, to its end


class _Closed(io.TextIOBase):
    """stdin or stdout closed by the shell: every read and write fails as on a closed descriptor."""

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


def printable(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` safe to show on a terminal: every character that is not printable (C0 and C1 controls, DEL, so
    the ESC that starts an ANSI sequence, line breaks, Unicode format characters) becomes its escape, as
    `\\x1b`; beyond `limit` characters the middle is cut out, with a note of how much."""
    head, used = _escaped(text, limit)
    if used == len(text):
        return "".join(head)
    room = (limit - 60) // 2  # the note takes the rest
    head, start = _escaped(text, room)
    tail, end = _escaped(reversed(text), room)
    return f"{''.join(head)} [... {len(text) - start - end:,} characters cut ...] {''.join(reversed(tail))}"


def _escaped(chars: Iterable[str], room: int) -> tuple[list[str], int]:
    """The leading characters, each printable or escaped, that fit in `room`, and how many of them there are.
    Only what fits is looked at: a message of megabytes costs no more than a short one."""
    pieces: list[str] = []
    used = count = 0
    for char in chars:
        piece = char if char.isprintable() else _escape(char)
        if used + len(piece) > room:
            break
        pieces.append(piece)
        used += len(piece)
        count += 1
    return pieces, count


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


# --------------------------------------------------------------------------- reading with a limit

# What lrtrain reads whole, the most it reads of each (megabytes) and the variable that raises it. A config is
# a page of keys (inline data included, 4 MB is thousands of rows); a model.json holds up to 256 x 256
# covariance numbers (~1.5 MB) beside the weights; a checkpoint holds three weight vectors (weights, momentum,
# the best epoch's), so four times a model's room; a run's metrics.csv, one row of weights per epoch (plot and
# resume read it), 10,000 epochs of 1,000 weights in 200 MB.
READ_LIMITS = {
    "config": (4, "LRTRAIN_MAX_CONFIG_MB"),
    "model": (64, "LRTRAIN_MAX_MODEL_MB"),
    "checkpoint": (256, "LRTRAIN_MAX_CHECKPOINT_MB"),
    "metrics": (1024, "LRTRAIN_MAX_METRICS_MB"),
}


def one_process() -> bool:
    """Whether this is one process, not a rank under torchrun: WORLD_SIZE unset, blank or 1 (01 too); anything
    else is a rank, or a value the full CLI says is wrong (lrtrain.parallel)."""
    world = os.environ.get("WORLD_SIZE", "").strip()
    try:
        return not world or int(world) == 1
    except ValueError:
        return False


def environment_number(
    variable: str, default: float, what: str, least: float = 0.0, most: float = 1e15, whole: bool = False
) -> float:
    """The number in the environment variable `variable` (`what` it sets), or `default` when it is unset or
    blank; a value that is not a number from `least` to `most` (a whole one with `whole`) is a ConfigError that
    names the variable, its value and the fix."""
    setting = os.environ.get(variable, "").strip()
    if not setting:
        return default
    try:
        value = float(setting)
    except ValueError:
        value = math.nan
    if not (least <= value <= most) or (whole and value != int(value)):
        kind = "a whole number" if whole else "a number"
        raise ConfigError(
            f"the environment variable {variable} is {printable(repr(setting))}, not {kind} from {least:g} to "
            f"{most:g}; it sets {what}. Set it to such a number (the default is {default:.15g}), or unset it."
        )
    return value


def read_limit(kind: str) -> float:
    """The most lrtrain reads of a `kind` file (a READ_LIMITS key), in megabytes; a malformed setting is the
    setting's fault, not a file's: a ConfigError that names the variable (never a file called damaged)."""
    default, variable = READ_LIMITS[kind]
    setting = os.environ.get(variable, "").strip()
    if not setting:
        return float(default)
    try:
        megabytes = float(setting)
    except ValueError:
        megabytes = -1.0
    if not 0 < megabytes < 1 << 40:
        raise ConfigError(
            f"the environment variable {variable} is {printable(repr(setting))}, not a size in megabytes; it "
            f"sets the most lrtrain reads of a {kind} file. Set it to a number such as {default * 4} (the "
            f"default is {default}), or unset it."
        )
    return megabytes


def read_limited(path: Path, kind: str, error: type[LrtrainError], what: str) -> bytes:
    """The bytes of `path`, which holds a `kind` (a READ_LIMITS key), read up to the limit and no further:
    beyond it (a huge file, /dev/zero, an endless pipe) `error` names the file, the limit and how to raise it.
    OSError (missing, a folder, no permission) is the caller's to put into words."""
    megabytes, variable = read_limit(kind), READ_LIMITS[kind][1]
    limit = int(megabytes * (1 << 20))
    if kind != "config":  # a run's files are files: opening a pipe there would wait for a writer that never comes
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):  # a folder: open() says so, as before
            raise error(
                f"{what} {path} is not a file (a pipe, a socket or a device). Name a file instead; such an entry "
                "in a run folder was left there by another program, and removing it is safe."
            )
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        size = info.st_size if stat.S_ISREG(info.st_mode) else None
        data = _read_upto(handle, limit + 1) if size is None or size <= limit else b""
    if (size or 0) > limit or len(data) > limit:
        how_big = f"it has {size:,} bytes" if size else "it goes on past that: a device, a stream or a growing file"
        raise error(
            f"{what} {path} is larger than {megabytes:g} MB, the most lrtrain reads of a {kind} file ({how_big}). "
            f"Check that it is the right file; if it is, raise the limit with the environment variable "
            f"{variable} (megabytes), e.g. {variable}={max(megabytes * 4, 2 * (size or 0) / (1 << 20)):.2g}."
        )
    return data


def _read_upto(handle: BinaryIO, most: int) -> bytes:
    """Up to `most` bytes of `handle`, in pieces: a read(most) would ask for all of it at once (a limit of
    terabytes from the environment is a MemoryError before one byte is read)."""
    pieces, total = [], 0
    while total < most:
        piece = handle.read(min(most - total, 1 << 20))
        if not piece:
            break
        pieces.append(piece)
        total += len(piece)
    return b"".join(pieces)
