"""Shared helpers: run the CLI in-process (CliRunner) or as the installed console script."""

from __future__ import annotations

import csv
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from lrtrain.cli import app
from lrtrain.parallel import Shard

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SUBPROCESS_TIMEOUT = 120


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, so runs/ and written files stay inside the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return tmp_path


def cli(*args: str, input: str | None = None) -> Result:
    """Invoke lrtrain in-process, stdout and stderr kept apart."""
    return CliRunner().invoke(app, list(args), input=input)


def lrtrain_path() -> str:
    script = Path(sys.executable).parent / "lrtrain"
    found = str(script) if script.exists() else shutil.which("lrtrain")
    assert found, "the lrtrain console script is not installed (pip install -e .)"
    return found


def run_installed(
    *args: str,
    cwd: Path,
    input: str | None = None,
    env: dict[str, str] | None = None,
    python_flags: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script (or `python FLAGS -m lrtrain`) as a user would, with a timeout."""
    command = [sys.executable, *python_flags, "-m", "lrtrain", *args] if python_flags else [lrtrain_path(), *args]
    return subprocess.run(
        command,
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def run_on_terminal(args: list[str], cwd: Path, env: dict[str, str], stdout_piped: bool = False) -> tuple[bytes, bytes]:
    """The installed lrtrain with stderr (and stdout unless piped) on a pseudo-terminal, as a user's shell
    would run it, in exactly the environment `env`; returns (what the terminal got, the piped stdout)."""
    leader, follower = pty.openpty()
    stdout = subprocess.PIPE if stdout_piped else follower
    process = subprocess.Popen([lrtrain_path(), *args], cwd=cwd, stdout=stdout, stderr=follower, env=env,
                               start_new_session=True)  # fmt: skip
    os.close(follower)
    piped: list[bytes] = []
    reader = threading.Thread(target=lambda: piped.append(process.stdout.read() if process.stdout else b""))
    reader.start()  # drain the pipe while the terminal is read, or a full pipe would block the process
    seen, deadline = b"", time.monotonic() + SUBPROCESS_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if not select.select([leader], [], [], 1.0)[0]:
                continue  # nothing yet: look at the clock again
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            seen += chunk
        process.wait(timeout=10)
    finally:
        os.close(leader)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        reader.join(timeout=10)
        if process.stdout:
            process.stdout.close()
    assert process.returncode == 0, seen
    return seen, b"".join(piped)


@dataclass(frozen=True)
class ThreadShard(Shard):
    """A rank of `world` run as a thread: `reduce` sums through shared memory, as the all_reduce would."""

    shared: dict[int, np.ndarray] = field(compare=False)
    barrier: threading.Barrier = field(compare=False)

    def reduce(self, values: np.ndarray) -> np.ndarray:
        self.shared[self.rank] = values.copy()
        self.barrier.wait(timeout=30)
        values[...] = sum(self.shared[r] for r in range(self.world))
        self.barrier.wait(timeout=30)
        return values


KINDS = ["north\nside", 'say "hi"', "a, b", "plain"]  # quoted in a CSV: a line end, quotes doubled, a comma


def quoted_columns(rows: int, seed: int = 4, missing: float = 0.0) -> dict[str, list[Any]]:
    """Columns x0, x1, kind (categorical), note (text of several lines, never a feature) and y. The level
    'late' appears only in the last third of the rows; with `missing`, that fraction of x1 and of kind is
    missing (None)."""
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(size=rows), 10 * rng.normal(size=rows)
    kind = [KINDS[k] for k in rng.integers(0, len(KINDS), rows)]
    for i in range(2 * rows // 3, rows, 4):
        kind[i] = "late"
    effect = {level: 0.5 * i for i, level in enumerate([*KINDS, "late"])}
    y = 2 * x0 - 0.5 * x1 + np.array([effect[k] for k in kind]) + 0.1 * rng.normal(size=rows)
    note = [f'row {i} says "see"\n' + "a line of words, quoted\n" * int(rng.integers(1, 12)) for i in range(rows)]
    columns: dict[str, list[Any]] = {"x0": x0.tolist(), "x1": x1.tolist(), "kind": kind, "note": note, "y": y.tolist()}
    for name, gaps in (("x1", rng.random(rows) < missing), ("kind", rng.random(rows) < missing)):
        columns[name] = [None if gap else value for value, gap in zip(columns[name], gaps, strict=True)]
    return columns


def write_quoted_csv(path: Path, columns: dict[str, list[Any]]) -> None:
    """The columns as CSV (Python's csv module: a cell with a line end, a quote or a comma is quoted; numbers
    as repr, exact); a missing cell is empty."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(columns)
        for row in zip(*columns.values(), strict=True):
            out.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in row])


def file_lines(path: Path) -> list[int]:
    """The file line on which each data row of a CSV begins (Python's csv module: the independent reference)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        starts = []
        before = reader.line_num
        for row in reader:
            if row:
                starts.append(before + 1)
            before = reader.line_num
    return starts
