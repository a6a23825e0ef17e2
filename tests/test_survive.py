"""Surviving the machine, the numbers, leftovers and races, and lenient input: full disks, an ASCII stdout, too
many threads, values near the float limits, constant features, killed writers, concurrent resumes, and predict's
strict number syntax."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lrtrain import files, model, runs
from lrtrain.config import load_config
from lrtrain.errors import Interrupted, SaveError
from lrtrain.training import fit

from .conftest import cli, run_installed

# --------------------------------------------------------------------------- failures of the environment


def full_disk_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The disk is full when the atomic writer makes `name` durable (fsync is where a delayed ENOSPC surfaces)."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(f".{name}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)


@pytest.mark.parametrize("name", ["config.yaml", "metrics.csv", "model.json"])
def test_a_full_disk_while_saving_is_one_line_naming_the_file_and_leaves_no_folder(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    full_disk_at(monkeypatch, name)
    result = cli("fit")
    assert result.exit_code == 1, result.output
    assert "no space left on device while writing runs/default-" in result.stderr
    assert f"/{name}; the run was not saved" in result.stderr
    assert "internal error" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list((workdir / "runs").iterdir()) == []  # whole or absent: no folder, no temporary file


def test_a_full_disk_at_ctrl_c_says_the_checkpoint_is_lost_with_the_epoch(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_disk_at(monkeypatch, "checkpoint.json")
    calls = iter(range(100))
    with pytest.raises(SaveError, match=r"interrupted after epoch 3 of 100, but the checkpoint could not be saved: "
                       r"no space left on device while writing runs/.*checkpoint.json; nothing was kept"):  # fmt: skip
        fit(load_config(None, []), should_stop=lambda: next(calls) >= 2)
    assert list((workdir / "runs").iterdir()) == []


def test_a_full_disk_when_a_resumed_run_saves_keeps_its_checkpoint(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = iter(range(100))
    with pytest.raises(Interrupted):
        fit(load_config(None, []), should_stop=lambda: next(calls) >= 2)
    (run,) = (workdir / "runs").iterdir()
    full_disk_at(monkeypatch, "model.json")
    result = cli("fit", "--resume", str(run))
    assert result.exit_code == 1, result.output
    assert f"its checkpoint in {run} is kept" in result.stderr
    monkeypatch.undo()
    assert cli("fit", "--resume", str(run)).exit_code == 0  # and the run still finishes once there is room


@pytest.mark.slow
@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C", "PYTHONUTF8": "0", "LANG": ""}])
def test_an_ascii_only_stdout_gets_escapes_not_a_failure(tmp_path: Path, env: dict[str, str]) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIOENCODING"))}
    environ.update(env)
    if env.get("LC_ALL") == "C":
        environ["PYTHONIOENCODING"] = "ascii"  # Python coerces C to UTF-8 where it can; force the plain one
    result = run_installed("fit", cwd=tmp_path, env=environ)
    assert result.returncode == 0, result.stderr
    assert "R\\xb2: " in result.stdout
    summary = run_installed("summary", cwd=tmp_path, env=environ)
    assert summary.returncode == 0, summary.stderr


@pytest.mark.parametrize("engine", ["torch", "manual", "exact"])
def test_threads_far_beyond_the_machine_are_refused_before_torch_crashes(workdir: Path, engine: str) -> None:
    result = cli("fit", "--engine", engine, "--set", "train.threads=100000")
    assert result.exit_code == 2, result.output
    cores = len(os.sched_getaffinity(0))
    assert f"train.threads = 100000 is far more than this machine's {cores} usable CPU core" in result.stderr
    assert f"--set train.threads={cores}" in result.stderr
    assert result.stdout == ""  # refused before the data is read, as a missing device is
    compared = cli("compare", "manual", "exact", "--set", "train.threads=100000")
    assert compared.exit_code == 2
    assert "train.threads = 100000 is far more" in compared.stderr


def test_runs_lists_an_unreadable_folder_and_still_the_others(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("fit").exit_code == 0
    assert cli("fit", "--set", "name=other").exit_code == 0
    real = runs.read_json

    def read_json(path: Path, *args: object) -> object:
        if "other" in str(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(runs, "read_json", read_json)
    result = cli("runs")
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.stdout
    assert "Permission denied" in result.stdout
    assert "finished" in result.stdout


# --------------------------------------------------------------------------- numbers at the edge


@pytest.mark.parametrize("engine", ["manual", "torch", "exact"])
@pytest.mark.parametrize("size", ["1e155", "1e200"])
def test_data_whose_squares_overflow_is_refused_without_a_warning_or_lr_advice(
    workdir: Path, engine: str, size: str
) -> None:
    # filterwarnings = error: a RuntimeWarning anywhere would be an internal error (exit 1), not exit 2
    x = f"data.x=[{size},2{size[1:]},3{size[1:]},4.5{size[1:]}]"
    result = cli("fit", "--engine", engine, "--set", x, "--set", "data.y=[1,2,3,4]", "--set", "model.dtype=float64")
    assert result.exit_code == 2, result.output
    assert "is not a finite number" in result.stderr
    assert "Rescale the data" in result.stderr
    assert "Warning" not in result.stderr
    assert "lr" not in result.stderr
    assert not (workdir / "runs").exists() or not list((workdir / "runs").iterdir())


def test_standardizing_values_whose_squares_overflow_is_refused_in_words(workdir: Path) -> None:
    x = "data.x=[1e200,2e200,3e200]"
    result = cli("fit", "--set", x, "--set", "data.y=[1,2,3]", "--set", "data.standardize=true")
    assert result.exit_code == 2, result.output
    assert "squares overflow float64" in result.stderr


@pytest.mark.slow
def test_near_the_float_limits_no_warning_reaches_stderr(tmp_path: Path) -> None:
    result = run_installed(
        "fit", "--set", "data.x=[1e155,2e155,3e155,4.5e155]", "--set", "data.y=[1,2,3,4]", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "RuntimeWarning" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_feature_of_tiny_spread_is_not_constant_and_the_exact_engine_fits_it(workdir: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(1e-13, 5e-13, size=(50, 2))
    x[:, 1] = rng.normal(size=50)
    y = x @ [3e12, 2.0] + 1.0 + rng.normal(scale=0.01, size=50)
    np.save(workdir / "x.npy", np.column_stack([x, y]))
    sets = ["data.source=npy", "data.path=x.npy", "data.standardize=true", "output.save=false"]
    result = fit(load_config(None, [*sets, "train.engine=exact"]))
    design = np.column_stack([x, np.ones(50)])
    expected = np.linalg.lstsq(design, y, rcond=None)[0]
    assert np.allclose([*result.weights, result.bias], expected, rtol=1e-9)


@pytest.mark.parametrize("value", ["0.1", "0", "-7.3e-5", "1e150"])
def test_a_feature_of_one_repeated_value_is_still_constant(workdir: Path, value: str) -> None:
    rows = ",".join(f"[{value},{i}]" for i in range(1000))
    y = ",".join(str(i % 7) for i in range(1000))
    result = cli("fit", "--set", f"data.x=[{rows}]", "--set", f"data.y=[{y}]", "--set", "data.standardize=true")
    assert result.exit_code == 2, result.output
    assert "feature 'x0' is constant" in result.stderr


# --------------------------------------------------------------------------- leftovers and races


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_atomic_writer_names_its_temporary_file_with_its_pid(tmp_path: Path) -> None:
    with files.atomic_writer(tmp_path / "model.json") as handle:
        handle.write("{}")
        (temporary,) = tmp_path.iterdir()
        assert temporary.name.startswith(f".model.json.{os.getpid()}.")
        assert temporary.name.endswith(".tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_runs_lists_a_folder_holding_only_a_leftover_and_removes_it_once_stale(workdir: Path) -> None:
    folder = workdir / "runs" / "default-20260101-000000"
    folder.mkdir(parents=True)
    pid = dead_pid()
    leftover = folder / f".config.yaml.{pid}.k2j4h.tmp"
    leftover.write_text("name: x\n")
    fresh = cli("runs")
    assert fresh.exit_code == 0, fresh.output
    assert "incomplete" in fresh.stdout
    assert leftover.name in fresh.stdout.replace("\n", "")
    assert leftover.exists()  # young: it is left alone a while (a PID may belong to another machine)
    old = time.time() - files.STALE_SECONDS - 60
    os.utime(leftover, (old, old))
    stale = cli("runs")
    assert "removed its leftover" in stale.stdout
    assert not leftover.exists()


def test_a_live_writers_temporary_file_is_never_removed(workdir: Path) -> None:
    folder = workdir / "runs" / "default-20260101-000000"
    folder.mkdir(parents=True)
    live = folder / f".model.json.{os.getpid()}.abc.tmp"
    live.write_text("{")
    os.utime(live, (0, 0))
    assert files.remove_stale(folder) == []
    assert live.exists()
    result = cli("runs")
    assert f"being written by process {os.getpid()}" in result.stdout.replace("\n", "")


def test_a_new_run_removes_killed_writers_stale_leftovers_and_never_a_live_writers(workdir: Path) -> None:
    old_run, half_made = workdir / "runs" / "default-20260101-000000", workdir / "runs" / "default-20260101-000001"
    old_run.mkdir(parents=True)
    half_made.mkdir()
    stale = [old_run / f".model.json.{dead_pid()}.a1.tmp", half_made / f".config.yaml.{dead_pid()}.b2.tmp"]
    young = old_run / f".metrics.csv.{dead_pid()}.c3.tmp"  # its PID may be another machine's: left a while
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live = half_made / f".model.json.{writer.pid}.d4.tmp"
        for path in [*stale, young, live]:
            path.write_text("{")
        for path in [*stale, live]:
            os.utime(path, (0, 0))
        result = cli("fit", "--set", "train.epochs=2")
        assert result.exit_code == 0, result.output
        assert not any(path.exists() for path in stale)
        assert young.exists()
        assert live.exists()
    finally:
        writer.kill()
        writer.wait(timeout=60)


def test_resume_removes_a_killed_writers_leftovers(workdir: Path) -> None:
    calls = iter(range(100))
    with pytest.raises(Interrupted):
        fit(load_config(None, []), should_stop=lambda: next(calls) >= 2)
    (run,) = (workdir / "runs").iterdir()
    leftover = run / f".model.json.{dead_pid()}.x1.tmp"
    leftover.write_text("{")
    os.utime(leftover, (0, 0))
    assert cli("fit", "--resume", str(run)).exit_code == 0
    assert not leftover.exists()


def test_a_second_resume_of_the_same_run_is_refused_while_the_first_holds_it(workdir: Path) -> None:
    calls = iter(range(100))
    with pytest.raises(Interrupted):
        fit(load_config(None, []), should_stop=lambda: next(calls) >= 2)
    (run,) = (workdir / "runs").iterdir()
    with runs.resuming(run):  # another open file description: flock treats it as another process
        result = cli("fit", "--resume", str(run))
    assert result.exit_code == 2, result.output
    assert f"already being resumed by process {os.getpid()}" in result.stderr
    assert not (run / "model.json").exists()
    assert cli("fit", "--resume", str(run)).exit_code == 0  # the lock went with its holder
    assert not (run / runs.LOCK_FILE).exists()  # and a clean end leaves no lock file in the folder


@pytest.mark.slow
def test_two_concurrent_resumes_one_wins_one_is_refused(workdir: Path) -> None:
    calls = iter(range(100))
    config = load_config(None, ["train.epochs=3000000", "train.target_gap=0"])
    with pytest.raises(Interrupted):
        fit(config, should_stop=lambda: next(calls) >= 2)
    (run,) = (workdir / "runs").iterdir()
    first = subprocess.Popen(
        [sys.executable, "-m", "lrtrain", "fit", "--resume", str(run)], cwd=workdir, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        lock = run / runs.LOCK_FILE
        while not (lock.exists() and lock.read_text().strip() == str(first.pid)):
            assert time.monotonic() < deadline
            assert first.poll() is None
            time.sleep(0.05)
        second = run_installed("fit", "--resume", str(run), cwd=workdir)
        assert second.returncode == 2, second.stderr
        assert f"already being resumed by process {first.pid}" in second.stderr
    finally:
        first.kill()
        first.communicate(timeout=60)


def test_predict_survives_the_newest_run_vanishing_between_listing_and_reading(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("fit", "--set", "name=older").exit_code == 0
    time.sleep(0.01)
    assert cli("fit", "--set", "name=newer", "--set", "train.epochs=1").exit_code == 0
    real = model.newest_models

    def racing(root: Path) -> list[Path]:
        found = real(root)
        shutil.rmtree(found[0].parent)  # another shell's `rm -r` lands right now
        return found

    monkeypatch.setattr(model, "newest_models", racing)
    result = cli("predict", "5")
    assert result.exit_code == 0, result.output
    assert float(result.stdout) == pytest.approx(10.0, abs=0.2)  # the older, trained run
    assert "skipping the newer" in result.stderr
