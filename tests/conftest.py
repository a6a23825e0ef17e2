"""Shared helpers: run the CLI in-process (CliRunner) or as the installed console script."""

from __future__ import annotations

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
