"""The `lrtrain` console script.

`lrtrain predict ...` in a shell loop is start-up and little else, so its plain forms take a
path that imports neither typer (which brings pydantic) nor NumPy: the model is JSON and the
arithmetic is Python's. Anything else, `predict --help` included, goes to the full CLI.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    from lrtrain.errors import tolerant_streams

    tolerant_streams()  # before anything is written: an ASCII-only stdout escapes "R²", it does not fail on it
    args = sys.argv[1:]
    if args[:1] == ["predict"] and os.environ.get("WORLD_SIZE", "1") == "1":  # under torchrun the CLI refuses
        plain = _plain_predict(args[1:])
        if plain is not None:
            sys.exit(_predict(*plain))
    from lrtrain.cli import main as full

    full()


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
    return (values, options["--model"], json_output, options["--interval"]) if values else None


def _is_number(text: str) -> bool:
    from lrtrain.model import is_number

    return is_number(text.replace(",", " ").split(maxsplit=1)[0]) if text.strip() else False


def _predict(values: list[str], model: str | None, json_output: bool, interval: str | None) -> int:
    from pathlib import Path

    from lrtrain.errors import ExitCode, LrtrainError, report
    from lrtrain.model import parse_level, predict

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
