"""What every command of the command line shares: the exit codes' help, the command class, the common
options, the error handling that turns lrtrain's errors into one paragraph and an exit code, and the
writers of result lines and notices. The commands themselves are in lrtrain.cli.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand

from lrtrain.errors import (
    ExitCode,
    Interrupted,
    LrtrainError,
    OutputError,
    discard_stdout,
    notice,
    printable,
    report,
    writing_stdout,
)
from lrtrain.interrupts import Signals

EXIT_CODES = (
    "Exit codes: 0 ok, 1 training failed (diverged or non-finite) or a write refused (stdout, the run, $TMPDIR), "
    "2 usage or invalid config/data/model/input, 3 engines disagree (compare), 130 interrupted."
)


class Command(TyperCommand):
    """A command whose help lists each argument by its name alone: typer would add its Python type
    (`VALUE <list[str]>`), which says nothing to a user."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.display_type_rich = _no_type  # type: ignore[method-assign]


def _no_type(ctx: object) -> None:
    return None


def given_path(text: str) -> Path:
    """A path argument as typed: an empty one (an unset shell variable, say) is a usage error, not the folder '.'."""
    if not text:
        raise typer.BadParameter("an empty path names no file or folder (is a shell variable unset?). Give the path.")
    return Path(text)


DEBUG = {"on": os.environ.get("LRTRAIN_DEBUG", "") not in ("", "0")}

F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="FILE",
        help="YAML config file. Default: the built-in config (the cheat sheet's x = 1..4, y = 2x).",
        parser=given_path,
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a config key, e.g. --set train.lr=0.1 (value read as YAML). Repeatable; wins over the file.",
    ),
]
RunArgument = Annotated[
    Path | None,
    typer.Argument(
        help="A run folder (runs/NAME-TIME) or its model.json. Default: the newest finished run in ./runs.",
        metavar="RUN",
        show_default=False,
        parser=given_path,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="stdout: one JSON object per line (schema lrtrain/1), nothing else.")
]


def complete_engine(incomplete: str) -> list[tuple[str, str]]:
    engines = [
        ("manual", "NumPy gradient descent"),
        ("torch", "nn.Linear + SGD on train.device"),
        ("torch:cpu", "torch on the CPU"),
        ("torch:cuda", "torch on the first GPU"),
        ("torch:mps", "torch on Apple silicon"),
        ("exact", "the least-squares optimum"),
    ]
    return [(name, help_) for name, help_ in engines if name.startswith(incomplete)]


def complete_device(incomplete: str) -> list[str]:
    return [d for d in ("cpu", "cuda", "cuda:0", "mps", "auto") if d.startswith(incomplete)]


DataOption = Annotated[
    Path,
    typer.Option(
        "--data",
        metavar="FILE",
        help="A table: CSV (.csv, .tsv, also .gz, .bz2, .zst) or Parquet (.parquet), its columns matched by name "
        "to the model's features.",
        parser=given_path,
    ),
]
DelimiterOption = Annotated[
    str | None,
    typer.Option(
        "--delimiter",
        metavar="CHAR",
        help="With a CSV table (--data): the character between its fields, e.g. ';' or '|' ('\\t' or tab for a "
        "tab). Default: ',' (a tab for .tsv).",
    ),
]


def handled(command: F) -> F:
    """Turn domain errors into one paragraph on stderr and an exit code; no traceback unless --debug."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        json_output = bool(kwargs.get("json_output"))
        try:
            return command(*args, **kwargs)
        except Interrupted as exc:
            from lrtrain.parallel import is_main

            if not is_main():  # under torchrun, every rank stopped after the same epoch: rank 0 says so
                raise typer.Exit(int(exc.exit_code)) from None
            fail(exc.exit_code, f"error: {exc}", json_output)
        except LrtrainError as exc:
            fail(exc.exit_code, f"error: {exc}", json_output, exc.alike)
        except KeyboardInterrupt:  # Ctrl-C outside fit and compare, or their "stop now" (Signals.check)
            fail(ExitCode.INTERRUPTED, "interrupted: stopped before finishing; nothing was saved.", json_output)
        except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
            discard_stdout()
            raise typer.Exit(0) from None
        except typer.Exit:
            raise
        except Exception as exc:  # a bug: say so plainly
            fail(
                ExitCode.TRAINING_FAILED,
                f"internal error: {exc.__class__.__name__}: {exc}. Run again with --debug for the traceback, "
                "and report it with the output of `lrtrain --version`.",
                json_output,
            )

    return wrapper  # type: ignore[return-value]


def fail(code: ExitCode, message: str, json_output: bool, alike: str | None = None) -> None:
    """Say the error (under torchrun: once, by the process that speaks for those that raise it alike; a JSON
    record by process 0 alone, stdout being its) and exit with `code`."""
    from lrtrain import parallel

    if DEBUG["on"]:
        traceback.print_exc(file=sys.stderr)
    if parallel.speaks(alike):
        report(code, message, json_output and parallel.is_main())
    raise typer.Exit(int(code))


def warn(text: str) -> None:
    notice(text)


def line(text: str) -> None:
    """A line of results on stdout, by the one writer."""
    from lrtrain import render

    render.write_line(text)


def read_config(config: Path | None, overrides: list[str] | None, extra: list[str] = ()) -> Any:  # type: ignore[assignment]
    from lrtrain.config import load_config

    try:
        return load_config(config, [*(overrides or []), *extra])
    except LrtrainError as exc:  # the same file and options: every process on the machine refuses it alike
        raise exc.shared("node") from None


def output(json_output: bool, signals: Signals | None = None) -> Any:
    from lrtrain import render

    return render.Out(json_output, safe_point=signals.check) if signals else render.Out(json_output)


def usage_error(exc: Exception) -> None:
    """A usage error as click shows it (usage, where to find help, the error), the error printable and bounded:
    it may echo what was typed, which can hold control characters or be megabytes long."""
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and type(exc).__name__ == "NoArgsIsHelpError":  # `lrtrain`, `lrtrain config`: the help
        print(ctx.get_help(), file=sys.stderr)  # our own text, line by line (its message would be one escaped line)
        return
    if ctx is not None:
        names = ctx.help_option_names if ctx.command.get_help_option(ctx) is not None else []
        hint = f"Try '{ctx.command_path} {names[0]}' for help.\n" if names else ""
        print(printable(ctx.get_usage()), hint, sep="\n", file=sys.stderr)
    format_message = getattr(exc, "format_message", None)
    print(printable(f"Error: {format_message() if callable(format_message) else exc}"), file=sys.stderr)


def flushed(code: int) -> int:
    """Write what print() left in stdout's buffer (config show, data make), by the writer's rules."""
    try:
        with writing_stdout():
            sys.stdout.flush()
    except BrokenPipeError:
        discard_stdout()
    except OutputError as exc:
        report(exc.exit_code, f"error: {exc}", json_output=False)
        return int(exc.exit_code)
    return code
