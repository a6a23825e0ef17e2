"""Stopping after an epoch and resuming gives the uninterrupted result, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lrtrain import sources
from lrtrain.config import Config, load_config
from lrtrain.engine import FitResult
from lrtrain.errors import ConfigError, Interrupted
from lrtrain.runs import CHECKPOINT_VERSION
from lrtrain.sources import fingerprint
from lrtrain.training import fit

from .conftest import cli


def config(*overrides: str) -> Config:
    return load_config(
        None,
        [
            "data.source=synthetic",
            "data.rows=300",
            "data.features=3",
            "data.validation=0.2",
            "train.epochs=60",
            "train.lr=0.02",
            *overrides,
        ],
    )


def stop_after(epochs: int) -> object:
    calls = {"n": 0}

    def should_stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= epochs

    return should_stop


def interrupted_run(cfg: Config, at: int, resume: Path | None = None) -> Path:
    with pytest.raises(Interrupted) as stopped:
        fit(cfg, should_stop=stop_after(at), resume=resume)  # type: ignore[arg-type]
    (run,) = {p.parent for p in Path(cfg.output.dir).glob("*/checkpoint.json")}
    assert f"lrtrain fit --resume {run}" in str(stopped.value)
    return run


def same(a: FitResult, b: FitResult) -> None:
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.bias == b.bias
    assert a.epochs == b.epochs
    assert a.stopped == b.stopped


CASES = {
    "manual full batch": ["train.engine=manual"],
    "manual minibatch momentum decay": [
        "train.batch_size=32",
        "train.momentum=0.9",
        "train.weight_decay=0.01",
        "train.target_gap=0",
    ],
    "torch minibatch momentum": ["train.engine=torch", "train.batch_size=32", "train.momentum=0.5"],
    "torch float64 standardized": ["train.engine=torch", "model.dtype=float64", "data.standardize=true"],
}


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_resumed_run_equals_the_uninterrupted_one(overrides: list[str]) -> None:
    cfg = config(*overrides)
    straight = fit(config(*overrides, "output.save=false"))
    run = interrupted_run(cfg, at=17)
    resumed = fit(load_config(run / "config.yaml"), resume=run)
    same(resumed, straight)
    assert resumed.run_dir == run
    assert not (run / "checkpoint.json").exists()


@pytest.mark.usefixtures("workdir")
def test_a_run_interrupted_twice_still_ends_where_it_would_have() -> None:
    cfg = config("train.momentum=0.9", "train.batch_size=50")
    straight = fit(config("train.momentum=0.9", "train.batch_size=50", "output.save=false"))
    run = interrupted_run(cfg, at=10)
    interrupted_run(load_config(run / "config.yaml"), at=25, resume=run)
    resumed = fit(load_config(run / "config.yaml"), resume=run)
    same(resumed, straight)
    lines = (run / "metrics.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(1, 61))


@pytest.mark.usefixtures("workdir")
def test_early_stopping_state_survives_the_interruption() -> None:
    overrides = ["train.epochs=3000", "train.lr=0.2", "train.early_stopping.patience=4"]
    straight = fit(config(*overrides, "output.save=false"))
    assert straight.stopped.startswith("early stopping")
    run = interrupted_run(config(*overrides), at=straight.epochs - 2)
    resumed = fit(load_config(run / "config.yaml"), resume=run)
    same(resumed, straight)


def test_resume_refuses_a_finished_run_changed_data_and_a_second_config(workdir: Path) -> None:
    finished = fit(config("train.epochs=3")).run_dir
    assert finished is not None
    with pytest.raises(ConfigError, match="finished"):
        fit(config("train.epochs=3"), resume=finished)
    run = interrupted_run(config(), at=5)
    with pytest.raises(ConfigError, match="data changed"):
        fit(config("data.noise=0.3"), resume=run)
    result = cli("fit", "--resume", str(run), "--config", str(run / "config.yaml"))
    assert result.exit_code == 2
    assert "drop --config" in result.stderr
    missing = cli("fit", "--resume", str(workdir / "nowhere"))
    assert missing.exit_code == 2
    assert "config.yaml" in missing.stderr


def test_a_resume_whose_data_file_is_gone_says_to_restore_it_not_to_make_new_data(workdir: Path) -> None:
    assert cli("data", "make", "d.csv", "--rows", "300", "--features", "2").exit_code == 0
    run = interrupted_run(load_config(None, ["data.path=d.csv", "train.epochs=60", "train.lr=0.02"]), at=5)
    (workdir / "d.csv").unlink()
    result = cli("fit", "--resume", str(run))
    assert result.exit_code == 2
    assert f"d.csv does not exist: the run in {run} was trained on it" in result.stderr
    assert "Restore the file there" in result.stderr
    assert "data make" not in result.stderr
    assert result.stdout == ""


@pytest.mark.usefixtures("workdir")
def test_resume_refuses_a_checkpoint_of_another_format_version() -> None:
    run = interrupted_run(config("train.batch_size=32"), at=5)
    checkpoint = run / "checkpoint.json"
    version = f'"format_version": {CHECKPOINT_VERSION}'
    checkpoint.write_text(checkpoint.read_text().replace(version, '"format_version": 2'))
    result = cli("fit", "--resume", str(run))
    assert result.exit_code == 2
    assert "format version 2" in result.stderr
    assert "Start a new run" in result.stderr
    assert not (run / "model.json").exists()


def test_a_second_signal_while_the_checkpoint_is_written_leaves_no_folder(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrtrain import runs

    def cut(path: Path, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the second Ctrl-C, after config.yaml and metrics.csv

    monkeypatch.setattr(runs, "write_json", cut)
    with pytest.raises(KeyboardInterrupt):
        fit(config(), should_stop=stop_after(5))  # type: ignore[arg-type]
    assert list((workdir / "runs").iterdir()) == []


@pytest.mark.usefixtures("workdir")
def test_metrics_written_past_the_checkpoint_by_a_save_cut_short_are_dropped_on_resume() -> None:
    cfg = config("train.batch_size=32")
    straight = fit(config("train.batch_size=32", "output.save=false"))
    run = interrupted_run(cfg, at=17)
    metrics = run / "metrics.csv"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([*lines, *(line.replace("17,", f"{e},", 1) for e in (18, 19) for line in lines[-1:])]))
    resumed = fit(cfg, resume=run)
    same(resumed, straight)
    epochs = [int(line.split(",")[0]) for line in metrics.read_text().splitlines()[1:]]
    assert epochs == list(range(1, 61))


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda lines: [*lines[:3], "x,y,z", *lines[4:]], "line 4 is not epoch 3's row"),
        (lambda lines: [*lines[:-1], lines[-1][: len(lines[-1]) // 2]], "line 11 is not epoch 10's row"),
        (lambda lines: ["epoch,loss,oops", *lines[1:]], "its first line is not the header epoch,loss,val_loss"),
    ],
    ids=["a row of words", "a row cut short", "another header"],
)
def test_resume_refuses_metrics_it_would_carry_damaged_into_the_run(workdir: Path, damage: Any, said: str) -> None:
    """The rows before the checkpoint are kept as they are: damaged, they would finish a run that plot refuses."""
    run = interrupted_run(config(), at=10)
    metrics = run / "metrics.csv"
    metrics.write_text("\n".join(damage(metrics.read_text().splitlines())) + "\n")
    result = cli("fit", "--resume", str(run))
    assert result.exit_code == 2
    assert "metrics.csv is damaged" in result.stderr
    assert said in result.stderr
    assert not (run / "model.json").exists()


def test_interrupt_without_saving_says_nothing_was_saved(workdir: Path) -> None:
    with pytest.raises(Interrupted, match="nothing was saved"):
        fit(config("output.save=false"), should_stop=stop_after(3))  # type: ignore[arg-type]
    assert list(workdir.iterdir()) == []


def test_resume_refuses_settings_that_change_the_trajectory(workdir: Path) -> None:
    run = interrupted_run(config("data.standardize=true"), at=5)
    changed = cli("fit", "--resume", str(run), "--set", "data.standardize=false", "--set", "train.lr=0.03")
    assert changed.exit_code == 2
    assert "data.standardize, train.lr differ" in changed.stderr
    longer = cli("fit", "--resume", str(run), "--set", "train.epochs=80", "--set", "log.every=20")
    assert longer.exit_code == 0, longer.output


@pytest.mark.usefixtures("workdir")
def test_the_checkpoint_and_the_model_record_the_fingerprint_of_the_data() -> None:
    cfg = config()
    digest = fingerprint(sources.load(cfg))
    run = interrupted_run(cfg, at=5)
    assert json.loads((run / "checkpoint.json").read_text())["data_sha256"] == digest
    fit(load_config(run / "config.yaml"), resume=run)
    assert json.loads((run / "model.json").read_text())["data"]["sha256"] == digest
    straight = fit(config())
    assert straight.run_dir is not None
    assert json.loads((straight.run_dir / "model.json").read_text())["data"]["sha256"] == digest


def test_runs_lists_an_interrupted_run_with_its_engine_and_epoch(workdir: Path) -> None:
    finished = fit(config("train.epochs=3")).run_dir
    assert finished is not None
    run = interrupted_run(config("train.engine=torch", "train.batch_size=32"), at=7)
    listed = cli("runs")
    assert listed.exit_code == 0, listed.output
    assert listed.stderr == ""
    (line,) = [line for line in listed.stdout.splitlines() if line.startswith(str(Path("runs") / run.name))]
    assert {"status=interrupted", "engine=torch", "epochs=7"} <= set(line.split())
    as_json = cli("runs", "--json")
    assert as_json.exit_code == 0, as_json.output
    records = {Path(r["run"]).name: r for r in map(json.loads, as_json.stdout.splitlines())}
    assert set(records) == {finished.name, run.name}
    assert (records[run.name]["status"], records[run.name]["engine"], records[run.name]["epochs"]) == (
        "interrupted",
        "torch",
        7,
    )
    assert records[run.name]["loss"] is None  # no final loss before the run has finished
    assert (records[finished.name]["status"], records[finished.name]["epochs"]) == ("finished", 3)
