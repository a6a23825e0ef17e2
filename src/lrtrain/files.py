"""Files that are whole or absent: written to a temporary file beside the target, then renamed; and JSON
files read back with a size limit and a parser that fails only with ValueError."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from lrtrain.errors import LrtrainError, read_limited

TEMP_SUFFIX = ".tmp"
TEMP_NAME = re.compile(r"\.(?P<target>.+?)\.(?:(?P<pid>[0-9]+)\.)?[^.]+\.tmp")  # .NAME.PID.RANDOM.tmp; older: no PID
STALE_SECONDS = 600  # a temporary file untouched this long whose writer is gone is a leftover
INT_DIGITS = 40  # an integer in lrtrain's JSON (an epoch, a count) has a few digits; thousands are damage


def is_stream(path: Path) -> bool:
    """Whether `path` is a pipe, a terminal or a device (/dev/stdout, /dev/null): written into, never replaced."""
    with contextlib.suppress(OSError):
        return not stat.S_ISREG(path.stat().st_mode) and not path.is_dir()
    return False


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside `path`, fsync, then rename: readers see old or new, never torn. Through a
    link, the file it names is replaced and the link stays; a pipe or a device takes the text as it comes, as a
    shell's > would write it (replacing it would leave a plain file where /dev/stdout or a FIFO was)."""
    import tempfile  # not at the top: `predict` never writes, and every millisecond of start-up counts

    text = "b" not in mode
    if is_stream(path):
        with open(path, mode, encoding="utf-8" if text else None, newline="" if text else None) as handle:
            yield handle
        return
    path = path.resolve() if path.is_symlink() else path
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = _regular(path)
    if existing is not None and not os.access(path, os.W_OK):  # as open() would refuse it (root may write it)
        raise PermissionError(errno.EACCES, "Permission denied (the file is read-only)", str(path))
    # the writer's PID in the name: a leftover of a writer killed mid-write (kill -9) can be told from a live one
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX)
    # a file replaced keeps its permissions, as one written in place would; a new one gets what open() gives it,
    # not mkstemp's private 0600
    os.fchmod(fd, stat.S_IMODE(existing.st_mode) if existing is not None else 0o666 & ~_umask())
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


def _regular(path: Path) -> os.stat_result | None:
    """The status of the regular file at `path`; None when there is none (or something else is there)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status if stat.S_ISREG(status.st_mode) else None


def leftovers(folder: Path) -> list[tuple[Path, int | None]]:
    """The atomic writer's temporary files in `folder` with their writer's PID (None in an older name)."""
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = TEMP_NAME.fullmatch(entry.name)
            if match:
                found.append((Path(entry.path), int(match["pid"]) if match["pid"] else None))
    return sorted(found)


def writer_alive(pid: int | None) -> bool:
    """Whether the process that named a temporary file still runs (unknown for an older name: assumed gone)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user
        return True
    return True


def remove_stale(folder: Path, stale_seconds: float = STALE_SECONDS) -> list[str]:
    """Remove the temporary files in `folder` whose writer is gone and which nobody touched for `stale_seconds`
    (a PID may be reused, or belong to another machine's namespace: the age keeps a live write safe); their
    names."""
    removed = []
    now = time.time()
    for path, pid in leftovers(folder):
        try:
            if writer_alive(pid) or now - path.stat().st_mtime < stale_seconds:
                continue
            path.unlink()
        except OSError:
            continue
        removed.append(path.name)
    return removed


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
    deeply, an integer of thousands of digits, a key twice in an object); OSError is the caller's."""
    data = read_limited(path, kind, error, what)
    try:
        return json.loads(data.decode("utf-8"), parse_int=_int, object_pairs_hook=_unique)
    except RecursionError:
        raise ValueError("nested too deeply to be an lrtrain file") from None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are distinct: JSON's last-one-wins would let an edit hide behind an earlier value."""
    found = dict(pairs)
    if len(found) != len(pairs):
        twice = next(key for key in found if sum(k == key for k, _ in pairs) > 1)
        raise ValueError(f"the key {twice!r} appears twice in one object")
    return found


def _int(text: str) -> int:
    if len(text.lstrip("-")) > INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-')):,} digits ({text[:12]}...)")
    return int(text)
