"""The installed console script, run as a user runs it: exit codes, streams, imports, signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import SUBPROCESS_TIMEOUT, lrtrain_path, run_installed

ANSI = re.compile(r"\x1b\[")


def imported_modules(stderr: str) -> set[str]:
    """Top-level package names from `python -X importtime` output."""
    names = set()
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", line)
        if match:
            names.add(match.group(1).split(".")[0])
    return names


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    result = run_installed("fit", "--engine", "exact", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path


def test_exit_0_results_on_stdout_nothing_on_stderr(trained: Path) -> None:
    result = run_installed("predict", "5", "7", cwd=trained)
    assert result.returncode == 0
    assert result.stdout == "10.0\n14.0\n"
    assert result.stderr == ""


def test_predict_imports_neither_torch_nor_numpy(trained: Path) -> None:
    result = run_installed("predict", "5", cwd=trained, python_flags=("-X", "importtime"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "10.0\n"
    modules = imported_modules(result.stderr)
    assert "lrtrain" in modules
    assert "torch" not in modules
    assert "numpy" not in modules
    assert "rich" not in modules


@pytest.mark.parametrize("args", [["--help"], ["fit", "--help"], ["--version"], ["config", "schema"]])
def test_help_and_version_do_not_import_torch(tmp_path: Path, args: list[str]) -> None:
    result = run_installed(*args, cwd=tmp_path, python_flags=("-X", "importtime"))
    assert result.returncode == 0, result.stderr
    assert "torch" not in imported_modules(result.stderr)


def test_fit_on_the_manual_engine_does_not_import_torch(tmp_path: Path) -> None:
    result = run_installed("fit", cwd=tmp_path, python_flags=("-X", "importtime"))
    assert result.returncode == 0, result.stderr
    assert "torch" not in imported_modules(result.stderr)


def test_exit_1_training_failed(tmp_path: Path) -> None:
    result = run_installed("fit", "--set", "train.lr=1", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: training diverged")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_exit_2_usage_error_from_the_parser(tmp_path: Path) -> None:
    result = run_installed("fit", "--no-such-option", cwd=tmp_path)
    assert result.returncode == 2
    assert "No such option" in result.stderr
    assert result.stdout == ""


def test_exit_2_invalid_config(tmp_path: Path) -> None:
    result = run_installed("fit", "--set", "train.epochs=0", cwd=tmp_path)
    assert result.returncode == 2
    assert "train.epochs" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "runs").exists()


def test_exit_3_engines_disagree(tmp_path: Path) -> None:
    # a nonsense-small tolerance cannot be met once float32 rounding differs between engines
    result = run_installed(
        "compare",
        "manual",
        "torch",
        "--set",
        "data.source=synthetic",
        "--set",
        "data.rows=5000",
        "--set",
        "data.features=50",
        "--set",
        "compare.tolerance=1e-300",
        "--set",
        "train.epochs=20",
        cwd=tmp_path,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "DISAGREE" in result.stdout
    assert "engines disagree" in result.stderr


def test_debug_shows_a_traceback_without_locals(tmp_path: Path) -> None:
    result = run_installed("--debug", "fit", "--set", "train.epochs=0", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert "locals" not in result.stderr.lower()


def test_json_error_record_on_stdout(tmp_path: Path) -> None:
    result = run_installed("fit", "--json", "--set", "train.epochs=0", cwd=tmp_path)
    assert result.returncode == 2
    record = json.loads(result.stdout)
    assert record["event"] == "error"
    assert record["exit_code"] == 2
    assert "train.epochs" in record["message"]


def test_piped_output_has_no_escape_codes(tmp_path: Path) -> None:
    for args in (["fit"], ["compare", "manual", "exact"], ["config", "show"]):
        result = run_installed(*args, cwd=tmp_path, env={"FORCE_COLOR": "", "TERM": "xterm-256color"})
        assert result.returncode == 0, result.stderr
        assert not ANSI.search(result.stdout), args


def test_sigint_stops_training_with_130_and_saves_nothing(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [lrtrain_path(), "fit", "--set", "train.epochs=100000000", "--set", "log.every=1000000"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while "Epoch 1:" not in process.stdout.readline():  # training has started
            assert time.monotonic() < deadline
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == 130
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_sigterm_is_an_interrupt_too(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [lrtrain_path(), "fit", "--set", "train.epochs=100000000", "--set", "log.every=1000000"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        while "Epoch 1:" not in process.stdout.readline():
            pass
        process.terminate()
        _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    assert process.returncode == 130
    assert "interrupted" in stderr


def test_python_dash_m_works(tmp_path: Path) -> None:
    result = run_installed("--version", cwd=tmp_path, python_flags=("-I",))
    assert result.returncode == 0
    assert result.stdout.startswith("lrtrain ")
