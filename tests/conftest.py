"""Shared helpers: run the CLI in-process (CliRunner) or as the installed console script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from lrtrain.cli import app

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
