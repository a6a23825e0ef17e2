"""The `lrtrain` console script.

`lrtrain predict ...` in a shell loop is start-up and little else, so its plain forms take a
path that imports neither typer (which brings pydantic) nor NumPy: the model is JSON and the
arithmetic is Python's. Anything else, `predict --help` included, goes to the full CLI.

Once a command is over, its output flushed and its files closed, the console script leaves
without tearing the interpreter down (see `_leave`); `python -m lrtrain`, which a program may run
in its own process (runpy), returns as any module does.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn


def main(leave: bool = True) -> None:
    """The console script; `leave`: exit at once when the command is over (see `_leave`)."""
    from lrtrain.errors import one_process, tolerant_streams

    tolerant_streams()  # before anything is written: an ASCII-only stdout escapes "R²", it does not fail on it
    args = sys.argv[1:]
    if args[:1] == ["predict"] and one_process():  # under torchrun the CLI refuses predict
        plain = _plain_predict(args[1:])
        if plain is not None:
            sys.exit(_predict(*plain))
    from lrtrain.cli import main as full

    if not leave:
        full()
        return
    try:
        full()
    except SystemExit as done:
        _leave(done.code)


def _leave(code: str | int | None) -> NoReturn:
    """Exit with `code` once the command is over (cli.main has flushed stdout): atexit's handlers run as in any
    exit, but the interpreter is not torn down object by object.

    That teardown frees every module and array one by one, and returning a large table's pages to the
    kernel from a process whose BLAS and Arrow threads are still alive costs each of them a TLB flush: 0.05 s
    of a 0.5 s fit of a 1e6 x 20 Parquet table. The kernel takes the pages back at exit all the same. Under
    torchrun, with another Python thread still running, or under a tool that traces or profiles the process
    (coverage, cProfile: they write their results after the program returns), the exit is the ordinary one.
    """
    import atexit
    import threading

    from lrtrain.errors import one_process

    if not isinstance(code, int) or threading.active_count() > 1 or not one_process():
        sys.exit(code)
    if _watched():
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # stdout's failures were said already
            stream.flush()
    with contextlib.suppress(OSError, AttributeError, TypeError):  # what C libraries left in their stdio buffers
        import ctypes

        ctypes.CDLL(None).fflush(None)
    os._exit(code)


def _watched() -> bool:
    """Whether a tracer or profiler watches this process (sys.settrace, sys.setprofile, or, from Python 3.12,
    a sys.monitoring tool)."""
    if sys.gettrace() is not None or sys.getprofile() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)
    return monitoring is not None and any(monitoring.get_tool(tool) is not None for tool in range(6))


def _plain_predict(args: list[str]) -> tuple[list[str], str | None, bool, str | None] | None:
    """(values, model, json, interval) for `predict VALUE... [--model PATH] [--interval L] [--json]`;
    None for anything else."""
    values: list[str] = []
    options: dict[str, str | None] = {"--model": None, "--interval": None}
    json_output = False
    rest = iter(args)
    for arg in rest:
        name, equals, value = arg.partition("=")
        name = "--model" if name == "-m" else name
        if name in options and not equals:
            options[name] = next(rest, None)
            if options[name] is None:
                return None
        elif name in options:
            options[name] = value
        elif arg == "--json":
            json_output = True
        elif arg == "-" or not arg.startswith("-") or _is_number(arg):
            values.append(arg)
        else:
            return None  # --help, a typo: the full CLI explains it
    if not values or options["--model"] == "":  # an empty path: the full CLI explains it
        return None
    return (values, options["--model"], json_output, options["--interval"])


def _is_number(text: str) -> bool:
    from lrtrain.samples import is_number

    return is_number(text.replace(",", " ").split(maxsplit=1)[0]) if text.strip() else False


def _predict(values: list[str], model: str | None, json_output: bool, interval: str | None) -> int:
    from pathlib import Path

    from lrtrain.errors import ExitCode, LrtrainError, report
    from lrtrain.model import predict
    from lrtrain.samples import parse_level

    try:
        level = parse_level(interval) if interval is not None else None
        predict(
            values, Path(model) if model is not None else None, json_output, sys.stdin, sys.stdout, sys.stderr, level
        )
    except LrtrainError as exc:
        report(exc.exit_code, f"error: {exc}", json_output)
        return int(exc.exit_code)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug: said as plainly as the full CLI says it
        message = f"internal error: {exc.__class__.__name__}: {exc}. Report it with the output of `lrtrain --version`."
        report(ExitCode.TRAINING_FAILED, message, json_output)
        return int(ExitCode.TRAINING_FAILED)
    return int(ExitCode.OK)
