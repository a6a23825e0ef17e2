"""Watching a fit: the live status on stderr, the terminal loss curve, `runs`, `info` and the plot commands."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from lrtrain import live, render, status
from lrtrain.config import load_config
from lrtrain.engine import EpochLog
from lrtrain.training import Start

from .conftest import cli, files_under, run_installed, run_on_terminal

PNG = b"\x89PNG\r\n\x1a\n"
TERMINAL = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")} | {"TERM": "xterm-256color"}


def terminal(width: int = 100) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=width, color_system="standard"), buffer


def stdout(mode: render.Mode = "rich") -> tuple[render.Out, io.StringIO]:
    buffer = io.StringIO()
    return render.Out(stream=buffer, mode=mode), buffer


def logs(count: int, validation: bool = False) -> list[EpochLog]:
    return [
        EpochLog(e, 10.0 / e, np.array([2.0 - 1 / e]), 0.0, 0.01, val_loss=(11.0 / e if validation else None))
        for e in range(1, count + 1)
    ]


def start(epochs: int) -> Start:
    return Start("manual", "cpu", 4, 1, [], 0.01, None, epochs, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def erased_at_the_end(stderr: str) -> bool:
    """The cursor hidden once and shown again, and nothing but control codes after the last draw's text."""
    shown = stderr.rfind("\x1b[?25h")
    return stderr.count("\x1b[?25l") == stderr.count("\x1b[?25h") == 1 and not CONTROL.sub("", stderr[shown:])


def test_live_status_redraws_at_most_ten_times_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(status.time, "monotonic", clock)
    out, printed = stdout()
    err, stderr = terminal()
    config = load_config(None, ["train.epochs=1000", "log.every=250"])
    with live.FitView(config, out, err) as view:
        view.started(start(1000))
        for log in logs(1000, validation=True):
            clock.now += 0.001  # 1000 epochs a second for one second
            view.epoch(log)
    draws = re.findall(r"epoch (\d+)/1000", stderr.getvalue())
    assert 5 <= len(draws) <= 12, draws  # ten a second, one as training starts and one as Rich erases it
    assert "best val" in stderr.getvalue()
    assert "epochs/s" in stderr.getvalue()
    assert "ETA" in stderr.getvalue()
    assert erased_at_the_end(stderr.getvalue())
    assert "epoch " not in printed.getvalue()  # the status never goes to stdout
    assert printed.getvalue().count("Epoch ") == 4  # the epoch lines still do (every 250th)


@pytest.mark.parametrize("width", [8, 30, 60])
def test_the_status_line_never_reaches_the_last_column_of_a_narrow_terminal(
    width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(status.time, "monotonic", clock)
    out, _ = stdout()
    err, stderr = terminal(width)
    config = load_config(None, ["train.epochs=1000", "log.every=1000"])
    with live.FitView(config, out, err) as view:
        view.started(start(1000))
        for log in logs(50, validation=True):
            clock.now += 0.5
            view.epoch(log)
    drawn = [CONTROL.sub("", part) for part in re.split(r"\r|\n", stderr.getvalue())]
    drawn = [line for line in drawn if line.strip()]
    assert len(drawn) >= 40
    assert all(len(line) <= width - 1 for line in drawn), drawn  # a full last column would wrap the line
    assert ("━" in drawn[-1]) == (width >= status.NARROW_TERMINAL)


def test_status_is_erased_before_each_epoch_line_and_on_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(status.time, "monotonic", clock)
    err, stderr = terminal()
    events: list[str] = []

    class Stdout(io.StringIO):  # what the terminal shows from stderr when a line reaches stdout
        def write(self, text: str) -> int:
            events.append(stderr.getvalue()[-4:])
            return super().write(text)

    out = render.Out(stream=Stdout(), mode="rich")
    config = load_config(None, ["train.epochs=10", "log.every=1"])
    view = live.FitView(config, out, err)

    def train_then_fail() -> None:
        with view:
            view.started(start(10))
            for log in logs(3):
                clock.now += 1.0
                view.epoch(log)
            raise RuntimeError("diverged")

    with pytest.raises(RuntimeError):
        train_then_fail()
    assert len(events) == 4
    assert all(event.endswith("\x1b[2K") for event in events[1:]), events  # stdout only after an erase
    assert erased_at_the_end(stderr.getvalue())


@pytest.mark.parametrize("mode", ["plain", "json"])
def test_no_live_view_when_piped_or_json(mode: render.Mode) -> None:
    out, _ = stdout(mode)
    err, stderr = terminal()
    config = load_config(None, ["train.epochs=50"])
    with live.FitView(config, out, err) as view:
        view.started(start(50))
        for log in logs(50):
            view.epoch(log)
    assert stderr.getvalue() == ""


def test_loss_sparkline_spans_the_losses_on_a_log_scale() -> None:
    console, buffer = terminal(120)
    losses = list(30 * 0.5 ** np.arange(40))
    chart = render.sparklines({"train": losses, "validation": [v * 1.1 for v in losses]})
    assert chart is not None
    console.print(chart)
    lines = CONTROL.sub("", buffer.getvalue()).splitlines()
    train, validation, axis = lines
    assert train.split()[:3] == ["train", "loss", "30"]
    assert train.split()[-1] == f"{losses[-1]:.3g}"
    assert validation.split()[:3] == ["validation", "loss", "33"]
    blocks = train.split()[3]
    assert len(blocks) == 40  # one character per epoch when they fit
    assert blocks == "".join(sorted(blocks, reverse=True))  # a falling loss falls
    assert blocks[-1] == "▁"
    assert validation.split()[3][0] == "█"  # the largest loss of all
    assert "epoch 1 … 40, log scale" in axis


def test_loss_sparkline_needs_two_epochs_and_survives_zero_or_infinite_losses() -> None:
    assert render.sparklines({"train": [1.0]}) is None
    assert render.sparklines({"train": [0.0, 0.0]}) is None
    assert render.sparklines({"train": [4.0, 0.0, float("inf"), 1.0]}) is not None
    console, buffer = terminal()
    console.print(render.sparklines({"train": list(np.geomspace(100, 1, 5000))}))
    assert len(CONTROL.sub("", buffer.getvalue()).splitlines()[0].split()[3]) == 48  # many epochs: 48 characters


@pytest.mark.slow
def test_fit_on_a_terminal_shows_the_live_view_and_a_loss_curve(tmp_path: Path) -> None:
    seen, _ = run_on_terminal(
        ["fit", "--set", "train.epochs=20000", "--set", "log.every=5000", "--set", "train.target_gap=0"],
        tmp_path,
        TERMINAL,
    )
    assert b"epochs/s" in seen
    assert b"ETA" in seen
    assert seen.count(b"Epoch ") == 4
    assert b"log scale" in seen
    assert re.search(r"train loss +26.5 +[▁▂▃▄▅▆▇█]{48} \S+", CONTROL.sub("", seen.decode()))
    assert seen.count(b"\x1b[?25l") == seen.count(b"\x1b[?25h") == 1  # the cursor hidden once, shown again


@pytest.mark.slow
def test_fit_with_stdout_piped_has_no_live_view_even_on_a_terminal(tmp_path: Path) -> None:
    on_terminal, piped = run_on_terminal(
        ["fit", "--set", "train.epochs=20000", "--set", "train.target_gap=0"], tmp_path, TERMINAL, stdout_piped=True
    )
    assert b"epochs/s" not in on_terminal
    assert b"\x1b[" not in on_terminal
    assert b"log scale" not in piped
    assert b"Final loss" in piped


# --------------------------------------------------------------------------- runs, info


def test_runs_lists_finished_interrupted_and_broken_folders(workdir: Path) -> None:
    assert cli("fit").exit_code == 0
    assert cli("fit", "--engine", "exact").exit_code == 0
    (workdir / "runs" / "broken").mkdir()
    (workdir / "runs" / "broken" / "config.yaml").write_text("train: {}\n")
    (workdir / "runs" / "broken" / "model.json").write_text("{not json")
    (workdir / "runs" / "notes").mkdir()  # not a run folder: no config.yaml
    result = cli("runs")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert "status=unreadable" in next(line for line in lines if line.startswith("runs/broken"))
    finished = [line for line in lines if "status=finished" in line]
    assert [re.search(r"engine=(\w+)", line).group(1) for line in finished] == ["manual", "exact"]  # type: ignore[union-attr]
    records = [json.loads(line) for line in cli("runs", "--json").stdout.splitlines()]
    assert {r["event"] for r in records} == {"run"}
    exact = next(r for r in records if r["engine"] == "exact")
    assert exact["r2"] == pytest.approx(1.0)
    assert exact["loss"] < 1e-20
    assert exact["epochs"] == 1


def test_runs_lists_a_folder_whose_config_is_gone_as_predict_still_uses_its_model(workdir: Path) -> None:
    assert cli("fit", "--engine", "exact", "--set", "name=kept").exit_code == 0
    (config,) = workdir.glob("runs/kept-*/config.yaml")
    config.unlink()
    listed = cli("runs").stdout
    assert listed.startswith(f"{config.parent.relative_to(workdir)}  status=finished  engine=exact"), listed
    assert cli("predict", "5").stdout == "10.0\n"


def test_runs_says_when_there_are_none(workdir: Path) -> None:
    result = cli("runs", "--dir", "elsewhere")
    assert result.exit_code == 0
    assert "no runs under elsewhere/" in result.stdout
    assert not (workdir / "elsewhere").exists()


def test_info_names_versions_blas_and_devices() -> None:
    result = cli("info", "--json")
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["event"] == "info"
    assert record["python"].startswith(sys.version.split()[0])
    assert "cpu" in record["torch"]["devices"]
    assert record["packages"]["numpy"] == np.__version__
    assert all(b["threads"] >= 1 for b in record["blas"])
    plain = cli("info")
    assert plain.exit_code == 0
    assert "Devices: cpu" in plain.stdout
    assert "BLAS:" in plain.stdout


# --------------------------------------------------------------------------- plot commands


def test_plot_writes_a_png_beside_the_newest_run(workdir: Path) -> None:
    assert cli("fit").exit_code == 0
    result = cli("plot")
    assert result.exit_code == 0, result.output
    (run,) = (workdir / "runs").iterdir()
    assert result.stdout == f"wrote runs/{run.name}/loss.png (loss and fit)\n"
    assert (run / "loss.png").read_bytes().startswith(PNG)


def test_plot_refuses_other_formats_and_missing_runs_writing_nothing(workdir: Path) -> None:
    result = cli("plot")
    assert result.exit_code == 2
    assert "no model found" in result.stderr
    assert cli("fit").exit_code == 0
    before = files_under(workdir)
    result = cli("plot", "-o", "loss.jpg")
    assert result.exit_code == 2
    assert "PNG only" in result.stderr
    result = cli("plot", "runs/nowhere")
    assert result.exit_code == 2
    assert "runs/nowhere" in result.stderr
    assert files_under(workdir) == before


def test_plot_without_matplotlib_says_how_to_get_it(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli("fit").exit_code == 0
    before = files_under(workdir)
    result = cli("plot")
    assert result.exit_code == 2
    assert "pip install 'lrtrain[plot]'" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli("compare", "manual", "torch", "--plot", "curves.png")
    assert result.exit_code == 2
    assert "lrtrain[plot]" in result.stderr
    assert result.stdout == ""
    assert files_under(workdir) == before


def test_compare_plot_writes_the_curves_and_keeps_json_stdout_clean(workdir: Path) -> None:
    result = cli("compare", "manual", "torch", "exact", "--plot", "curves.png", "--json")
    assert result.exit_code == 0, result.output
    assert all(json.loads(line) for line in result.stdout.splitlines())
    assert "wrote curves.png" in result.stderr
    assert (workdir / "curves.png").read_bytes().startswith(PNG)


def test_compare_refuses_a_bad_plot_name_before_training(workdir: Path) -> None:
    result = cli("compare", "manual", "torch", "--plot", "curves.svg")
    assert result.exit_code == 2
    assert "PNG only" in result.stderr
    assert result.stdout == ""
    assert files_under(workdir) == set()


def watch_two_engines(clock: Clock, runs: list[list[EpochLog]], mode: render.Mode = "rich") -> str:
    """What CompareView draws on a terminal for two engines that log these epochs."""
    err, stderr = terminal()
    with live.CompareView(["manual", "torch"], stdout(mode)[0], err) as view:
        for index, (label, epochs) in enumerate(zip(["manual", "torch"], runs, strict=True)):
            listener = view.watch(label, index)
            listener.started(start(len(epochs)))
            for log in epochs:
                clock.now += 0.05
                listener.epoch(log)
    return stderr.getvalue()


def test_compare_view_shows_each_engine_in_turn_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(status.time, "monotonic", clock)
    text = watch_two_engines(clock, [logs(20), logs(20)])
    assert "manual (1 of 2)" in text
    assert "torch (2 of 2)" in text
    assert erased_at_the_end(text)
    assert watch_two_engines(clock, [logs(20), logs(20)], mode="plain") == ""


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("lrtrain su", "1", ["summary"]),
        ("lrtrain compare man", "2", ["manual"]),
        ("lrtrain fit --device cu", "3", ["cuda", "cuda:0"]),
    ],
)
@pytest.mark.slow
def test_shell_completion_knows_commands_engines_and_devices(
    tmp_path: Path, words: str, cword: str, expected: list[str]
) -> None:
    env = {"_LRTRAIN_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
    result = run_installed(cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected


def test_plot_output_may_be_a_folder_and_must_be_writable_before_training(workdir: Path) -> None:
    assert cli("fit").exit_code == 0
    (workdir / "plots").mkdir()
    result = cli("plot", "-o", "plots")
    assert result.exit_code == 0, result.output
    assert (workdir / "plots" / "loss.png").read_bytes().startswith(PNG)
    blocked = workdir / "blocked"
    blocked.write_text("a file, not a folder")
    result = cli("compare", "manual", "torch", "--set", "train.epochs=5", "--plot", "blocked/curves.png")
    assert result.exit_code == 2
    assert "cannot write the plot to blocked/curves.png" in result.stderr
    assert result.stdout == ""  # refused before training, so agree or disagree is never hidden


def test_runs_refuses_a_file_for_a_folder(workdir: Path) -> None:
    (workdir / "runs.txt").write_text("")
    result = cli("runs", "--dir", "runs.txt")
    assert result.exit_code == 2
    assert "--dir runs.txt is a file" in result.stderr


def test_only_the_first_rank_draws_the_live_view() -> None:
    out, _ = stdout()
    err, stderr = terminal()
    config = load_config(None, ["train.epochs=5"])
    with live.FitView(config, out, err, live=False) as view:  # a rank other than 0 under torchrun
        view.started(start(5))
    assert stderr.getvalue() == ""


def test_compare_view_starts_each_engine_with_no_best_validation_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(status.time, "monotonic", clock)
    clock.now = 100.0  # far from the first draw: each engine's first epoch is drawn
    first, second = ([EpochLog(1, 5.0, np.array([1.0]), 0.0, 0.1, val_loss=v)] for v in (0.5, 7.0))
    text = watch_two_engines(clock, [first, second])
    assert "best val 0.5" in text
    assert "best val 7" in text  # not engine 1's 0.5 carried over
