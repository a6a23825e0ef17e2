"""stdout as pipes and shells meet it: any terminal width, a reader that leaves, a full disk, and signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import SUBPROCESS_TIMEOUT, lrtrain_path, run_installed, run_on_terminal

pytestmark = pytest.mark.slow

QUICK = ["--set", "output.save=false"]
CHECKPOINT = ["checkpoint.json", "config.yaml", "metrics.csv"]


def timeless(text: str) -> str:
    """Output with its measured times blanked: the only thing two runs may differ in."""
    text = re.sub(r'"seconds": [0-9.e+-]+', '"seconds": _', text)
    text = re.sub(r"Epochs: (\d+) in \S+ s", r"Epochs: \1 in _ s", text)
    return re.sub(r"time_per_epoch=\S+", "time_per_epoch=_", text)


def columns(value: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return env if value is None else {**env, "COLUMNS": value}


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [lrtrain_path(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )


def test_columns_0_still_prints_every_json_record(tmp_path: Path) -> None:
    unset = run(["fit", "--json", *QUICK], tmp_path, columns(None))
    zero = run(["fit", "--json", *QUICK], tmp_path, columns("0"))
    assert zero.returncode == unset.returncode == 0, zero.stderr
    assert [json.loads(line)["event"] for line in zero.stdout.splitlines()] == ["epoch"] * 10 + ["fit"]
    assert timeless(zero.stdout) == timeless(unset.stdout)


@pytest.mark.parametrize("args", [["fit", *QUICK], ["compare", "manual", "torch"], ["runs"], ["info"]], ids=str)
def test_the_terminal_width_never_changes_the_plain_lines(tmp_path: Path, args: list[str]) -> None:
    assert run(["fit", "--engine", "exact"], tmp_path, columns(None)).returncode == 0  # a run for `runs` to list
    printed = {width: run(args, tmp_path, columns(width)) for width in ("0", "5", "100000")}
    assert all(result.returncode == 0 for result in printed.values()), printed
    lines = {width: timeless(result.stdout).splitlines() for width, result in printed.items()}
    assert lines["0"], "nothing printed"
    assert lines["0"] == lines["5"] == lines["100000"]
    assert max(len(line) for line in lines["5"]) > 5  # whole lines, not folded to the width


@pytest.mark.parametrize("args", [["fit", *QUICK], ["runs"]], ids=str)
def test_force_color_on_a_pipe_still_prints_plain_lines(tmp_path: Path, args: list[str]) -> None:
    """FORCE_COLOR (set by many CI systems) makes Rich take a pipe for a terminal: the lines stay plain all the same."""
    assert run(["fit", "--engine", "exact"], tmp_path, columns(None)).returncode == 0
    plain = run(args, tmp_path, columns(None))
    forced = run(args, tmp_path, {**columns(None), "FORCE_COLOR": "1"})
    assert forced.returncode == 0, forced.stderr
    assert "\x1b" not in forced.stdout
    assert timeless(forced.stdout).splitlines() == timeless(plain.stdout).splitlines()


@pytest.mark.parametrize("width", ["0", "1", "20"])
def test_a_terminal_too_narrow_still_shows_the_numbers(tmp_path: Path, width: str) -> None:
    env = {**columns(width), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    seen, _ = run_on_terminal(["fit", "--engine", "exact", "--set", "output.save=false"], tmp_path, env)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode())
    rows = {line.split()[0]: line for line in text.splitlines() if line.split()}
    for label in ("Weights", "Bias"):
        assert re.search(r"\d", rows[label].removeprefix(label)), text  # the value beside its label, not cut away


def read_one_line_then_close(args: list[str], cwd: Path) -> tuple[int, str]:
    """`lrtrain ARGS | head -1`: the reader takes one line and goes away; (exit code, stderr)."""
    process = subprocess.Popen(
        [lrtrain_path(), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        process.stdout.close()
        _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert first
    return process.returncode, stderr


def test_a_reader_that_leaves_ends_the_command_quietly(tmp_path: Path) -> None:
    args = ["fit", "--set", "train.epochs=3000", "--set", "log.every=1", *QUICK]
    assert read_one_line_then_close(args, tmp_path) == (0, "")
    result = subprocess.run(
        f"{lrtrain_path()} fit --set train.epochs=3000 --set log.every=1 --set output.save=false | head -1",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert result.stdout == "Number of samples: 4, number of features: 1\n"
    assert result.stderr == ""


def test_a_reader_that_leaves_during_a_saving_fit_leaves_no_run_folder(tmp_path: Path) -> None:
    args = ["fit", "--set", "train.epochs=200000", "--set", "log.every=1", "--set", "train.target_gap=0"]
    assert read_one_line_then_close(args, tmp_path) == (0, "")
    assert not (tmp_path / "runs").exists()  # not even an empty runs/


@pytest.mark.parametrize("args", [["--version"], ["fit", "--json"], ["config", "show"], ["runs"]], ids=" ".join)
def test_an_unwritable_stdout_is_one_line_on_stderr(tmp_path: Path, args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [lrtrain_path(), *args], cwd=tmp_path, stdout=full, stderr=subprocess.PIPE, text=True,
            timeout=SUBPROCESS_TIMEOUT,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == "error: cannot write the results to stdout: No space left on device.\n"
    assert not (tmp_path / "runs").exists()  # a fit stops at its first record, before anything is saved


@pytest.mark.parametrize("args", [["predict", "5"], ["predict", "-", "--json"]], ids=" ".join)
def test_an_unwritable_stdout_is_one_line_on_stderr_on_predicts_fast_path_too(tmp_path: Path, args: list[str]) -> None:
    subprocess.run([lrtrain_path(), "fit", "--engine", "exact"], cwd=tmp_path, capture_output=True, check=True,
                   timeout=SUBPROCESS_TIMEOUT)  # fmt: skip
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [lrtrain_path(), *args], cwd=tmp_path, input="5\n", stdout=full, stderr=subprocess.PIPE, text=True,
            timeout=SUBPROCESS_TIMEOUT,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == "error: cannot write the results to stdout: No space left on device.\n"


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [lrtrain_path(), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return process.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def folders(root: Path) -> list[list[str]]:
    return [sorted(p.name for p in run.iterdir()) for run in root.iterdir()] if root.exists() else []


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.2, 0.4])
def test_two_quick_ctrl_c_never_end_in_an_internal_error_or_an_empty_folder(tmp_path: Path, delay: float) -> None:
    # short epochs: the two signals land anywhere, in an epoch, in the checkpoint's save or while it is said
    process = start(
        ["fit", "--set", "train.epochs=100000000", "--set", "log.every=1000", "--set", "train.target_gap=0"], tmp_path
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith("Number of samples")
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    time.sleep(0.002)
    process.send_signal(signal.SIGINT)
    _, stderr = finish(process)
    assert process.returncode == 130, stderr
    assert "internal error" not in stderr
    assert "Traceback" not in stderr
    saved = folders(tmp_path / "runs")
    assert saved in ([], [CHECKPOINT]), saved  # nothing, or a whole checkpoint: never an empty or half folder
    assert ("nothing was saved" in stderr) == (saved == []), stderr


def test_two_ctrl_c_within_a_long_epoch_stop_there_saving_nothing(tmp_path: Path) -> None:
    # one-row minibatches over 200,000 rows: an epoch takes seconds, and both signals come inside the first
    args = ["fit", "--set", "data.source=synthetic", "--set", "data.rows=200000", "--set", "train.batch_size=1"]
    process = start([*args, "--set", "log.header=false"], tmp_path)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("Prediction before training")
    time.sleep(0.2)  # into the first epoch
    process.send_signal(signal.SIGINT)
    # apart enough to be two: signals that arrive before the interpreter runs its handler count as one
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = finish(process)
    assert process.returncode == 130
    assert stderr == "interrupted: stopped before finishing; nothing was saved.\n"
    assert "Epoch 2:" not in stdout
    assert folders(tmp_path / "runs") == []


def test_a_signal_in_the_last_epoch_saves_the_whole_run_and_still_exits_130(tmp_path: Path) -> None:
    # one epoch of one-row minibatches over 200,000 rows: the signal comes inside it, and its end ends training
    args = ["fit", "--set", "data.source=synthetic", "--set", "data.rows=200000", "--set", "train.batch_size=1"]
    process = start([*args, "--set", "train.epochs=1", "--set", "log.header=false"], tmp_path)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("Prediction before training")
    time.sleep(0.2)  # into the epoch
    process.send_signal(signal.SIGTERM)
    _, stderr = finish(process)
    (run,) = (tmp_path / "runs").iterdir()
    assert process.returncode == 130, stderr  # a script that was stopped must not go on
    assert stderr.endswith(
        f"error: interrupted in the last epoch, which ended the training; the run finished and is saved in "
        f"runs/{run.name}.\n"
    )
    assert (run / "model.json").is_file()
    assert not (run / "checkpoint.json").exists()


def test_a_signal_during_the_exact_solve_stops_it_saving_nothing(tmp_path: Path) -> None:
    # 3,000 features: the solve's eigendecompositions take seconds, and the signal comes between them
    args = ["fit", "--engine", "exact", "--set", "data.source=synthetic", "--set", "data.rows=4000"]
    process = start([*args, "--set", "data.features=3000"], tmp_path)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("Number of samples")
    time.sleep(0.5)  # into the solve
    process.send_signal(signal.SIGTERM)
    _, stderr = finish(process)
    assert process.returncode == 130, stderr
    assert stderr == "interrupted: stopped before finishing; nothing was saved.\n"
    assert folders(tmp_path / "runs") == []


def test_sigterm_while_the_results_print_after_the_save_says_the_run_was_saved(tmp_path: Path) -> None:
    # 1,200 rows of statistics overfill the pipe (64 KiB), so the fit is still printing them when the signal comes
    args = ["fit", "--engine", "exact", "--summary", "--set", "data.source=synthetic", "--set", "data.rows=2000"]
    process = start([*args, "--set", "data.features=1200"], tmp_path)
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    while not list((tmp_path / "runs").glob("*/model.json")):
        assert time.monotonic() < deadline, "the run was never saved"
        assert process.poll() is None, "the fit ended before saving"
        time.sleep(0.05)
    time.sleep(0.5)  # blocked in a write of the statistics
    process.send_signal(signal.SIGTERM)
    stdout, stderr = finish(process)
    (run,) = (tmp_path / "runs").iterdir()
    assert process.returncode == 130, stderr
    assert stderr == (
        f"error: interrupted while printing the results; the run finished and is saved in runs/{run.name}.\n"
    )
    assert "nothing was saved" not in stderr
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "metrics.csv", "model.json"]
    assert "Run saved: " in stdout
    assert len(stdout.splitlines()) < 1200  # the printing stopped
    assert run_installed("predict", "--model", str(run), ",".join(["1"] * 1200), cwd=tmp_path).returncode == 0
