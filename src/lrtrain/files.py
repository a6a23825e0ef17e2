"""Files that are whole or absent: written to a temporary file beside the target, then renamed; and JSON
files read back with a size limit and a parser that fails only with ValueError."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from lrtrain.errors import LrtrainError, read_limited

INT_DIGITS = 40  # an integer in lrtrain's JSON (an epoch, a count) has a few digits; thousands are damage


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path`, fsync, then rename: readers see old or new, never torn."""
    import tempfile  # not at the top: `predict` never writes, and every millisecond of start-up counts

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())  # as open() would have made it, not mkstemp's private 0600
    text = "b" not in mode
    try:
        with open(fd, mode, encoding="utf-8" if text else None, newline="" if text else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, payload: dict[str, Any], allow_nan: bool = False) -> None:
    with atomic_writer(path) as handle:
        json.dump(payload, handle, indent=2, allow_nan=allow_nan)
        handle.write("\n")


def read_json(path: Path, kind: str, error: type[LrtrainError], what: str) -> Any:
    """The JSON in `path`, read with the limit of its `kind` (errors.READ_LIMITS; `error` beyond it). Whatever
    the bytes are, a failure to parse them is a ValueError that says why (not UTF-8, not JSON, nested too
    deeply, an integer of thousands of digits); OSError is the caller's."""
    data = read_limited(path, kind, error, what)
    try:
        return json.loads(data.decode("utf-8"), parse_int=_int)
    except RecursionError:
        raise ValueError("nested too deeply to be an lrtrain file") from None


def _int(text: str) -> int:
    if len(text.lstrip("-")) > INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-')):,} digits ({text[:12]}...)")
    return int(text)
