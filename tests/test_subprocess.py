"""The installed console script, run as a user runs it: exit codes, streams, imports, signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import SUBPROCESS_TIMEOUT, lrtrain_path, run_installed

pytestmark = pytest.mark.slow  # every test here runs the installed lrtrain in a process

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
    assert "typer" not in modules  # the plain forms of predict skip the CLI framework (and its pydantic)
    assert "pydantic" not in modules


@pytest.mark.parametrize(
    "args",
    [["predict", "--help"], ["predict", "5", "--bogus"], ["predict"]],
    ids=["help", "unknown option", "no values"],
)
def test_predict_forms_off_the_fast_path_still_get_the_full_cli(trained: Path, args: list[str]) -> None:
    result = run_installed(*args, cwd=trained)
    assert ("Usage: lrtrain predict" in result.stdout) if "--help" in args else (result.returncode == 2)
    assert "Traceback" not in result.stderr


def test_an_empty_model_path_on_the_fast_path_is_the_full_cli_error_not_the_working_folder(trained: Path) -> None:
    result = run_installed("predict", "--model", "", "5", cwd=trained)
    assert result.returncode == 2
    assert "Invalid value for '--model' / '-m': an empty path names no file or folder" in result.stderr
    assert not result.stdout


def test_fast_predict_errors_match_the_full_cli(trained: Path) -> None:
    fast = run_installed("predict", "--json", "1,2", cwd=trained)
    assert fast.returncode == 2
    assert json.loads(fast.stdout)["event"] == "error"
    assert fast.stderr.startswith("error: the model in ")
    assert "takes 1 feature(s)" in fast.stderr


def test_fit_with_json_loads_no_rich_and_still_says_its_notes(tmp_path: Path) -> None:
    """--json is for programs: records on stdout, notes as plain lines on stderr; Rich (0.02 s) draws nothing."""
    args = ("fit", "--json", "--set", "train.lr=auto", "--set", "output.save=false")
    result = run_installed(*args, cwd=tmp_path, python_flags=("-X", "importtime"))
    assert result.returncode == 0, result.stderr
    assert "rich" not in imported_modules(result.stderr)
    notes = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    assert any(line.startswith("lr = auto: 1/L = ") for line in notes), notes
    assert json.loads(result.stdout.splitlines()[-1])["event"] == "fit"


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


def test_json_usage_error_is_a_json_record_too(tmp_path: Path) -> None:
    result = run_installed("fit", "--json", "--no-such-option", cwd=tmp_path)
    assert result.returncode == 2
    record = json.loads(result.stdout)
    assert record["event"] == "error"
    assert "--no-such-option" in record["message"]
    assert "No such option" in result.stderr


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


def test_piped_output_is_plain_greppable_lines(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    plain_lines = {
        "fit": "Final loss: ",
        "compare": "manual  device=cpu  dtype=float32  final_loss=",
        "config": "train:",
    }
    for args in (["fit"], ["compare", "manual", "torch"], ["config", "show"]):
        result = subprocess.run(
            [lrtrain_path(), *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            env={**env, "TERM": "xterm-256color"},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert not ANSI.search(result.stdout), args
        assert any(line.startswith(plain_lines[args[0]]) for line in result.stdout.splitlines()), result.stdout


def start_fit(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [lrtrain_path(), "fit", "--set", "log.every=1", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def interrupt_after(process: subprocess.Popen[str], line_start: str, signum: int) -> str:
    """Send `signum` once a stdout line starts with `line_start`; return stderr."""
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        assert process.stdout is not None
        while not process.stdout.readline().startswith(line_start):
            assert time.monotonic() < deadline, "training never started"
            assert process.poll() is None, "training ended before the signal"
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
        return stderr
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


RESUMABLE = [
    "--set", "data.source=synthetic", "--set", "data.rows=2000", "--set", "data.features=5",
    "--set", "data.validation=0.1", "--set", "train.batch_size=64", "--set", "train.momentum=0.9",
    "--set", "train.lr=0.001", "--set", "train.early_stopping.patience=100000",
]  # fmt: skip


@pytest.mark.parametrize(
    ("engine", "epochs", "signum"),
    [("manual", 2000, signal.SIGINT), ("torch", 400, signal.SIGTERM)],
    ids=["manual-SIGINT", "torch-SIGTERM"],
)
def test_interrupted_then_resumed_run_ends_with_the_uninterrupted_weights(
    tmp_path: Path, engine: str, epochs: int, signum: int
) -> None:
    args = ["--engine", engine, *RESUMABLE, "--set", f"train.epochs={epochs}"]
    process = start_fit(tmp_path, *args)
    stderr = interrupt_after(process, "Epoch 3:", signum)
    assert process.returncode == 130, stderr
    assert "stopping at the end of this epoch" in stderr
    assert "Traceback" not in stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert f"lrtrain fit --resume {run.relative_to(tmp_path)}" in stderr
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.json", "config.yaml", "metrics.csv"]
    stopped_at = json.loads((run / "checkpoint.json").read_text())["epoch"]
    assert 3 <= stopped_at < epochs
    assert run_installed("predict", "1,2,3,4,5", cwd=tmp_path).returncode == 2  # no model yet

    resumed = run_installed("fit", "--resume", str(run), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Epoch {stopped_at + 1}:" in resumed.stdout
    assert f"Epoch {stopped_at}:" not in resumed.stdout
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "metrics.csv", "model.json"]
    metrics = (run / "metrics.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in metrics[1:]] == list(range(1, epochs + 1))

    from lrtrain.config import load_config
    from lrtrain.training import fit

    straight = fit(
        load_config(None, [*(a for a in args[2:] if a != "--set"), f"train.engine={engine}", "output.save=false"])
    )
    model = json.loads((run / "model.json").read_text())
    assert model["weights"] == [float(w) for w in straight.weights]
    assert model["bias"] == straight.bias
    assert model["metrics"]["epochs"] == epochs


def test_python_dash_m_works(tmp_path: Path) -> None:
    result = run_installed("--version", cwd=tmp_path, python_flags=("-I",))
    assert result.returncode == 0
    assert result.stdout.startswith("lrtrain ")


LEAVING = """
import atexit, os, sys
class Torn:
    def __del__(self, write=os.write):
        write(2, b"torn down\\n")
kept = Torn()  # freed only by the interpreter's teardown
atexit.register(lambda: sys.stderr.write("atexit ran\\n"))
if sys.argv[1] == "traced":
    sys.settrace(lambda *args: None)
import ctypes
ctypes.CDLL(None).printf(b"from C\\n")  # held in C's stdout buffer: the pipe is no terminal
sys.argv = ["lrtrain", *sys.argv[2:]]
from lrtrain.entry import main
main()
"""


@pytest.mark.parametrize(("args", "code"), [(["--version"], 0), (["fit", "--set", "train.epochs=0"], 2)])
def test_the_console_script_leaves_without_teardown_but_runs_atexit(tmp_path: Path, args: list[str], code: int) -> None:
    """Once the command is over, the exit skips the object-by-object teardown (a large table's pages freed with
    BLAS and Arrow threads alive cost 10% of a Parquet fit), not the exit code, the output or atexit's handlers;
    under a tracer (coverage) the exit is the ordinary one."""
    for mode, torn in (("plain", False), ("traced", True)):
        done = subprocess.run(
            [sys.executable, "-c", LEAVING, mode, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},  # C's stdout buffered on a pipe
        )
        assert done.returncode == code, done.stderr
        assert "atexit ran" in done.stderr
        assert ("torn down" in done.stderr) is torn, (mode, done.stderr)
        assert ("lrtrain" in done.stdout) is (code == 0)  # --version's line, flushed before the exit
        assert "from C" in done.stdout  # and what a C library left in its buffer


@pytest.mark.parametrize(
    ("shell", "code", "said"),
    [
        ("lrtrain fit --set output.save=false >&-", 1, "cannot write the results to stdout: Bad file descriptor"),
        ("lrtrain fit --json --set output.save=false >&-", 1, "cannot write the results to stdout"),
        ("lrtrain predict 5 >&-", 1, "cannot write the results to stdout"),
        ("lrtrain predict - <&-", 2, "cannot read the samples on stdin ('-'): Bad file descriptor"),
        ("lrtrain fit --set output.dir=closed 2>&-", 0, ""),
        ("lrtrain predict 5 <&- 2>&-", 0, ""),
        ("lrtrain --help >&-", 1, "cannot write the results to stdout: Bad file descriptor"),
        ("lrtrain predict --help > /dev/full", 1, "cannot write the results to stdout: No space left on device"),
    ],
    ids=[
        "fit, stdout closed",
        "fit --json, stdout closed",
        "predict, stdout closed",
        "predict -, stdin closed",
        "fit, stderr closed",
        "predict, stdin and stderr closed",
        "help, stdout closed",
        "help, stdout full",
    ],
)
def test_a_closed_standard_stream_is_a_failure_to_write_or_read_not_an_internal_error(
    trained: Path, shell: str, code: int, said: str
) -> None:
    """A stream the shell closed (`>&-`) is None to Python: results that cannot be written are exit 1, as `echo
    >&-` fails; a closed stdin cannot be read (exit 2); a closed stderr silences messages, not the work."""
    closes_stderr = "2>&-" in shell
    command = f"PATH={Path(lrtrain_path()).parent}:$PATH; {shell}{'' if closes_stderr else ' 2>err.txt'}"
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=trained,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    stderr = "" if closes_stderr else (trained / "err.txt").read_text()
    assert done.returncode == code, (done.stdout, stderr)
    assert "internal error" not in stderr
    assert "Traceback" not in stderr
    assert said in stderr
    if "output.dir=closed" in shell:
        assert len(list((trained / "closed").iterdir())) == 1  # the run is saved all the same
