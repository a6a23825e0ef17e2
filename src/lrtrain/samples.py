"""How `lrtrain predict` reads a sample: numbers (and level names) from its arguments and from stdin, line by
line with a limit, and the level of `--interval`. The standard library alone: predict's fast path."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from lrtrain.errors import InputError

# ASCII decimal or float syntax only: float() alone also takes 1_000, full-width and other scripts' digits
NUMBER = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)", re.IGNORECASE)


def is_number(text: str) -> bool:
    """Whether `text` is one number as lrtrain reads it (ASCII digits, a point, an exponent)."""
    return NUMBER.fullmatch(text) is not None


def parse_sample(text: str, where: str) -> list[float]:
    """'1.5, 2' or '1.5 2' -> [1.5, 2.0]; an empty field between commas ('1,,2') is an error, not skipped."""
    return [parse_number(field, text, where) for field in fields(text, where, commas_only=False)]


def fields(text: str, where: str, commas_only: bool) -> list[str]:
    """The values of a sample: separated by commas and spaces, or with `commas_only`, by its commas alone when it
    has any (so that a level name may hold a space) and by spaces when it has none."""
    if not text.strip():
        raise InputError(f"{where} is empty. Give one sample per line: feature values separated by commas or spaces.")
    undecoded = next((c for c in text if "\udc80" <= c <= "\udcff"), None)  # a byte stdin could not decode
    if undecoded is not None:
        raise InputError(
            f"{where} is not UTF-8 text (it holds the byte 0x{ord(undecoded) - 0xDC00:02x}). Give samples as UTF-8 "
            "text: numbers, and level names for categorical columns."
        )
    if commas_only and "," not in text:
        return text.split()
    if commas_only and '"' in text:  # "w,v": a level that holds a comma, quoted as in a CSV cell
        import csv

        try:
            quoted = next(csv.reader([text], skipinitialspace=True, strict=True))
        except csv.Error:
            raise InputError(
                f"{where}: {text.strip()!r} has a quote that does not close. Quote a level that holds a comma "
                'whole, as in a CSV file: 3.5,"red, dark".'
            ) from None
        if any(not field.strip() for field in quoted):
            raise InputError(f"{where}: {text.strip()!r} has an empty field. Give one value between each comma.")
        return [field.strip() for field in quoted]
    fields = []
    for place, part in enumerate(text.split(","), start=1):
        words = part.split() if not commas_only else [part.strip()] if part.strip() else []
        if not words:
            what = "value" if commas_only else "number"
            raise InputError(
                f"{where}: field {place} of {text.strip()!r} is empty (two commas in a row, or one at an end). "
                f"Give one {what} between each pair of commas."
            )
        fields += words
    return fields


def parse_number(field: str, text: str, where: str, column: str | None = None) -> float:
    """A feature value; an error naming it (and the `column` that takes it) when it is not a finite number."""
    if not is_number(field):
        how = "Give feature values as numbers separated by commas or spaces"
        if column is not None:
            how = f"Column {column!r} takes a number"
        raise InputError(
            f"{where}: {field!r} is not a number (in {text.strip()!r}). {how}, in plain ASCII (1000, -2.5, 1e-3; "
            "not 1_000 nor other scripts' digits)."
        )
    value = float(field)
    if not math.isfinite(value):
        raise InputError(f"{where}: {field!r} is not a finite number. Give finite feature values.")
    return value


Sample = TypeVar("Sample")  # what predict_lines reads: numbers, or numbers and level names


def predict_lines(
    values: list[str], stdin: Iterable[str], parse: Callable[[str, str], Sample], check: Callable[[Sample], None]
) -> Iterator[Sample]:
    """Samples from arguments (all parsed and checked before the first is used) and, for '-', stdin as a stream
    (a UTF-8 byte-order mark before its first line is skipped); an error on stdin names its line."""
    parsed = [None if v == "-" else parse(v, f"argument {i} ({v!r})") for i, v in enumerate(values, start=1)]
    for sample in parsed:
        if sample is not None:
            check(sample)
    for sample in parsed:
        if sample is not None:
            yield sample
            continue
        lines = enumerate(_lines(stdin), start=1)
        while True:
            try:
                number, line = next(lines)
            except StopIteration:
                break
            except OSError as exc:  # a closed stdin (<&-), a device that fails
                raise InputError(
                    f"cannot read the samples on stdin ('-'): {exc.strerror or exc}. Pipe them in, one per line, "
                    "or give them as arguments."
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")  # Notepad and PowerShell start a UTF-8 file with one
            if line.strip():  # blank lines (a trailing one from an editor, say) are not samples
                yield _checked(check, parse(line, f"stdin line {number}"), f"stdin line {number}")


LINE_LIMIT = 1 << 24  # characters of a stdin line: a sample of a million features, not /dev/zero read whole


def _lines(stdin: Iterable[str]) -> Iterator[str]:
    """The lines of `stdin`, each read up to LINE_LIMIT characters: a longer one is an InputError, not a read
    without end (a stream with no line end, /dev/zero)."""
    readline = getattr(stdin, "readline", None)
    if readline is None:  # a list of lines (tests, callers in Python)
        yield from stdin
        return
    number = 0
    while line := readline(LINE_LIMIT + 1):
        number += 1
        if len(line) > LINE_LIMIT:
            raise InputError(
                f"stdin line {number} is longer than {LINE_LIMIT:,} characters: it is not a sample (is stdin a file "
                "of another kind, or a device?). Pipe in the samples one per line, their values separated by commas."
            )
        yield line


def _checked(check: Callable[[Sample], None], sample: Sample, where: str) -> Sample:
    """`sample`, checked; a wrong one's error starts with `where` it came from."""
    try:
        check(sample)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    return sample


def parse_level(text: str) -> float:
    """`--interval 0.95` or `--interval 95%` -> 0.95, a probability strictly between 0 and 1."""
    text = text.strip()
    number, percent = (text[:-1], 100.0) if text.endswith("%") else (text, 1.0)
    level = float(number) / percent if is_number(number.strip()) else math.nan  # ASCII numbers only: not 9_5
    if not 0 < level < 1:
        hint = f" (for {text}% write {float(text) / 100:g})" if _is_percent(text) else ""
        raise InputError(
            f"--interval {text!r} is not a probability between 0 and 1{hint}. Give the interval's level, "
            "e.g. --interval 0.95 (or 95%) for a 95% prediction interval."
        )
    return level


def _is_percent(text: str) -> bool:
    return is_number(text) and 1 < float(text) < 100
