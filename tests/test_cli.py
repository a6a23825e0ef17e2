"""The commands as a user meets them: exit codes, stdout and stderr apart, files written or not."""

from __future__ import annotations

import csv
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from lrtrain import __version__
from lrtrain.config import reference
from lrtrain.engine import EpochLog

from .conftest import CONFIGS, REPO, cli, files_under


def only_run(workdir: Path) -> Path:
    runs = [p for p in (workdir / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"lrtrain {__version__}\n"


COMMANDS = [["fit"], ["compare"], ["predict"], ["summary"], ["plot"], ["runs"], ["info"]]
COMMANDS += [["config", "show"], ["config", "validate"], ["config", "schema"], ["data", "make"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_naming_its_arguments_in_words(command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert "<list[" not in result.stdout  # no Python types: VALUE, not VALUE <list[str]>
    assert "<str>" not in result.stdout
    assert re.search(r"\{[a-z]", result.stdout) is None  # upper-case names: {PATH}, not {path}


def test_help_states_defaults_ranges_and_exit_codes() -> None:
    top = " ".join(cli("--help").stdout.split())
    assert "130 interrupted" in top
    fit_help = cli("fit", "--help").stdout
    assert "built-in config" in fit_help
    assert "Default: train.engine (manual)" in " ".join(fit_help.split())
    make_help = " ".join(cli("data", "make", "--help").stdout.split())
    assert ">= 1" in make_help
    assert "default: 1000" in make_help


def test_fit_default_trains_the_cheat_sheet_data_and_writes_a_run(workdir: Path) -> None:
    result = cli("fit")
    assert result.exit_code == 0, result.output
    # the sheet's lr of 0.01 is slow: 100 epochs end short of the optimum, and fit says so
    assert result.stderr.startswith("warning: the run stopped short of train.target_gap = 1e-06")
    assert "train.momentum: auto" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Number of samples: 4, number of features: 1"
    assert lines[1].startswith("Prediction before training: f(5) = ")
    assert sum(line.startswith("Epoch ") for line in lines) == 10  # 100 epochs, every 10th
    for key in ("Final loss:", "R²:", "Weights:", "Bias:", "Gap to optimum:", "Epochs: 100 in", "Run saved:"):
        assert any(line.startswith(key) for line in lines), key
    run = only_run(workdir)
    assert run.name.startswith("default-")
    assert {"config.yaml", "model.json", "metrics.csv"} <= {p.name for p in run.iterdir()}
    model = json.loads((run / "model.json").read_text())
    assert model["format"] == "lrtrain.model"
    assert model["features"] == ["x"]
    assert model["metrics"]["epochs"] == 100
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 100
    assert float(rows[-1]["w_x"]) == pytest.approx(model["weights"][0])
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["train"]["lr"] == 0.01
    assert resolved["data"]["x"] == [1.0, 2.0, 3.0, 4.0]


def test_saved_config_reproduces_the_run(workdir: Path) -> None:
    assert cli("fit", "--set", "train.epochs=7").exit_code == 0
    first = only_run(workdir)
    again = cli("fit", "--config", str(first / "config.yaml"), "--set", "output.dir=again")
    assert again.exit_code == 0, again.output
    second = next((workdir / "again").iterdir())
    assert (
        json.loads((first / "model.json").read_text())["weights"]
        == json.loads((second / "model.json").read_text())["weights"]
    )


def test_fit_json_prints_only_json_lines(workdir: Path) -> None:
    result = cli("fit", "--json", "--set", "log.every=25")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["event"] for r in records] == ["epoch"] * 4 + ["fit"]
    assert all(r["schema"] == "lrtrain/1" for r in records)
    assert [r["epoch"] for r in records[:-1]] == [1, 26, 51, 76]
    final = records[-1]
    assert final["epochs"] == 100
    assert final["predictions"][0]["input"] == [5.0]
    assert Path(final["run_dir"]).is_dir()


def test_engine_and_device_flags_override_the_config(workdir: Path) -> None:
    result = cli("fit", "--engine", "exact", "--json")
    assert result.exit_code == 0, result.output
    final = json.loads(result.stdout.splitlines()[-1])
    assert final["engine"] == "exact"
    assert final["weights"] == pytest.approx([2.0])
    assert final["optimum"]["max_abs_dw"] == pytest.approx(0.0, abs=1e-12)
    saved = yaml.safe_load((only_run(workdir) / "config.yaml").read_text())
    assert saved["train"]["engine"] == "exact"


def test_diverging_fit_exits_1_with_the_stable_learning_rate_and_writes_nothing(workdir: Path) -> None:
    result = cli("fit", "--set", "train.lr=0.5")
    assert result.exit_code == 1
    assert "diverged" in result.stderr
    assert "2/L = 0.1198" in result.stderr  # L = 16.70, top eigenvalue of (2/n)[x 1]ᵀ[x 1], x = 1..4
    assert "data.standardize=true" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


def test_diverging_fit_json_ends_with_an_error_record(workdir: Path) -> None:
    result = cli("fit", "--json", "--set", "train.lr=0.5")
    assert result.exit_code == 1
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["event"] == "error"
    assert last["exit_code"] == 1


def test_overflow_in_float32_is_caught_before_a_model_is_written(workdir: Path) -> None:
    result = cli("fit", "--set", "data.y=[1e30, 2e30, 3e30, 4e30]", "--set", "train.lr=1")
    assert result.exit_code == 1, result.output
    assert "non-finite" in result.stderr or "diverged" in result.stderr
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


def test_no_save_writes_no_files(workdir: Path) -> None:
    result = cli("fit", "--set", "output.save=false")
    assert result.exit_code == 0, result.output
    assert files_under(workdir) == set()


def test_compare_works_with_no_file() -> None:
    result = cli("compare", "manual", "torch", "--set", "output.dir=/nonexistent")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("manual  device=cpu  dtype=float32")
    assert lines[1].startswith("torch  device=cpu  dtype=float32")
    assert "max_abs_dw_vs_first=0" in lines[1]
    assert lines[-1].startswith("Engines agree")


def test_compare_exits_3_when_engines_disagree(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import lrtrain.engine_torch

    honest = lrtrain.engine_torch.train

    def off_by_a_little(*args: Any) -> Iterator[EpochLog]:  # a torch engine with a bug in its last digits
        for log in honest(*args):
            yield dataclasses.replace(log, weights=log.weights + 1e-3)

    monkeypatch.setattr(lrtrain.engine_torch, "train", off_by_a_little)
    result = cli("compare", "manual", "torch")
    assert result.exit_code == 3, result.output
    assert "DISAGREE" in result.stdout
    assert "engines disagree" in result.stderr
    assert "or float64 (--set model.dtype=float64)" in result.stderr  # a float32 run
    again = cli("compare", "manual", "torch", "--set", "model.dtype=float64")
    assert again.exit_code == 3, again.output
    assert "Compare fewer epochs or a smaller lr to see" in again.stderr  # already float64: not advised again


def test_a_section_check_broken_by_a_set_key_is_said_to_come_from_the_command_line(workdir: Path) -> None:
    cosine = ["--set", "train.schedule.kind=cosine", "--set", "train.schedule.period_epochs=99"]
    alone = cli("fit", *cosine)
    assert alone.exit_code == 2
    assert alone.stderr.startswith("error: invalid config: from the command line: 'train': ")
    (workdir / "c.yaml").write_text("train:\n  schedule:\n    kind: cosine\n    period_epochs: 50\n")
    mixed = cli("fit", "-c", "c.yaml", "--set", "train.epochs=60")
    assert mixed.stderr.startswith("error: invalid config: config file c.yaml and the command line: 'train': ")


def test_a_batch_of_all_the_rows_is_advised_as_a_full_batch(workdir: Path) -> None:
    result = cli("fit", "--set", "train.batch_size=1000", "--set", "output.save=false")
    assert result.exit_code == 0, result.output
    assert "stopped short" in result.stderr
    assert "train.momentum: auto" in result.stderr
    assert "larger batches" not in result.stderr


def test_compare_json(workdir: Path) -> None:
    result = cli("compare", "manual", "exact", "torch:cpu", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["event"] for r in records] == ["engine", "engine", "engine", "compare"]
    assert [r["label"] for r in records[:3]] == ["manual", "exact", "torch:cpu"]
    assert records[1]["dtype"] == "float64"
    assert records[-1]["agree"] is True
    assert files_under(workdir) == set()


def test_predict_uses_the_newest_run(workdir: Path) -> None:
    assert cli("fit", "--engine", "exact").exit_code == 0
    result = cli("predict", "5")
    assert result.exit_code == 0, result.output
    assert result.stdout == "10.0\n"
    assert result.stderr == ""
    assert cli("fit", "--engine", "exact", "--set", "data.y=[3, 6, 9, 12]").exit_code == 0
    assert float(cli("predict", "5").stdout) == pytest.approx(15.0, rel=1e-12)


def test_predict_several_values_negative_values_and_stdin(workdir: Path) -> None:
    assert cli("fit", "--engine", "exact").exit_code == 0
    assert cli("predict", "1", "-3", "2.5").stdout == "2.0\n-6.0\n5.0\n"
    assert cli("predict", "-", input="1\n2\n 3 \n").stdout == "2.0\n4.0\n6.0\n"


def test_predict_several_features_from_stdin_with_commas_or_spaces(workdir: Path) -> None:
    config = workdir / "c.yaml"
    config.write_text("data:\n  x: [[1, 0], [0, 1], [1, 1], [2, 1]]\n  y: [1, 2, 3, 4]\nmodel: {bias: false}\n")
    assert cli("fit", "--config", str(config), "--engine", "exact").exit_code == 0
    result = cli("predict", "-", "--model", str(next((workdir / "runs").iterdir())), input="1,1\n2 0\n0, 3\n")
    assert result.exit_code == 0, result.output
    assert [float(v) for v in result.stdout.split()] == pytest.approx([3.0, 2.0, 6.0])


def test_predict_json(workdir: Path) -> None:
    assert cli("fit", "--engine", "exact").exit_code == 0
    result = cli("predict", "5", "--json")
    assert json.loads(result.stdout) == {
        "schema": "lrtrain/1",
        "event": "prediction",
        "input": [5.0],
        "prediction": 10.0,
    }


def test_float32_model_predictions_print_the_shortest_float32_text(workdir: Path) -> None:
    assert cli("fit", "--config", str(CONFIGS / "seed-torch.yaml")).exit_code == 0
    model = json.loads(next((workdir / "runs").glob("*/model.json")).read_text())
    text = cli("predict", "5").stdout.strip()
    exact = model["weights"][0] * 5 + model["bias"]
    assert float(text) == pytest.approx(exact, rel=1e-6)
    assert np.float32(text) == np.float32(exact)
    assert len(text) <= 10


def test_config_show_prints_every_key_with_comments() -> None:
    result = cli("config", "show", "--set", "train.lr=0.5")
    assert result.exit_code == 0, result.output
    parsed = yaml.safe_load(result.stdout)
    assert parsed["train"]["lr"] == 0.5
    assert parsed["train"]["epochs"] == 100
    assert "# learning rate, > 0" in result.stdout


def test_config_show_writes_numbers_that_any_yaml_reader_reads_as_numbers() -> None:
    """PyYAML (YAML 1.1) reads 1e-06, without a point, as a string: shown as 1.0e-06 it is a number to every reader."""
    result = cli("config", "show", "--set", "train.target_gap=1e-6", "--set", "data.x=[1e-7, 2.5e20, 3]")
    assert result.exit_code == 0, result.output
    parsed = yaml.safe_load(result.stdout)
    assert parsed["train"]["target_gap"] == 1e-6
    assert parsed["data"]["x"] == [1e-7, 2.5e20, 3.0]
    assert all(isinstance(v, float) for v in parsed["data"]["x"])


def test_config_show_output_is_a_valid_config(workdir: Path) -> None:
    shown = cli("config", "show", "--config", str(CONFIGS / "seed-manual.yaml")).stdout
    (workdir / "copy.yaml").write_text(shown)
    again = cli("config", "show", "--config", str(workdir / "copy.yaml"))
    assert again.exit_code == 0, again.output
    assert again.stdout == shown


def test_config_validate(workdir: Path) -> None:
    ok = cli("config", "validate", "--config", str(CONFIGS / "seed-torch.yaml"))
    assert ok.exit_code == 0, ok.output
    assert "4 rows, 1 feature(s)" in ok.stdout
    bad = cli("config", "validate", "--set", "train.lr=-1")
    assert bad.exit_code == 2
    assert "train.lr" in bad.stderr


def test_config_schema_is_json_schema_with_every_section() -> None:
    result = cli("config", "schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert set(schema["properties"]) == {"name", "seed", "data", "model", "train", "log", "output", "compare"}


@pytest.mark.parametrize("name", ["default.yaml", "seed-manual.yaml", "seed-torch.yaml", "synthetic.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    result = cli("config", "validate", "--config", str(CONFIGS / name))
    assert result.exit_code == 0, result.output


def test_readme_documents_every_config_key() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [k.key for k in reference() if f"`{k.key}`" not in readme]
    assert not missing


def test_data_make_then_fit_on_csv_and_npy(workdir: Path) -> None:
    for name, source in (("d.csv", "csv"), ("d.npy", "npy"), ("d.npz", "npy")):
        made = cli("data", "make", name, "--rows", "300", "--features", "2", "--weights", "3,-1", "--bias", "2")
        assert made.exit_code == 0, made.output
        result = cli(
            "fit", "--engine", "exact", "--json", "--set", f"data.source={source}", "--set", f"data.path={name}"
        )
        assert result.exit_code == 0, result.output
        final = json.loads(result.stdout.splitlines()[-1])
        assert final["weights"] == pytest.approx([3.0, -1.0], abs=0.05)
        assert final["bias"] == pytest.approx(2.0, abs=0.05)


def test_data_make_refuses_to_overwrite(workdir: Path) -> None:
    (workdir / "d.csv").write_text("keep me")
    result = cli("data", "make", "d.csv")
    assert result.exit_code == 2
    assert "--force" in result.stderr
    assert (workdir / "d.csv").read_text() == "keep me"
    assert cli("data", "make", "d.csv", "--force").exit_code == 0
    assert (workdir / "d.csv").read_text().startswith("x,y\n")


def test_data_make_matches_the_synthetic_source(workdir: Path) -> None:
    assert cli("data", "make", "d.npy", "--rows", "100000", "--features", "3", "--seed", "7").exit_code == 0
    table = np.load(workdir / "d.npy")
    from lrtrain import sources
    from lrtrain.config import load_config

    config = load_config(None, ["data.source=synthetic", "data.rows=100000", "data.features=3", "seed=7"])
    dataset = sources.load(config)
    np.testing.assert_array_equal(table[:, :-1], dataset.x)
    np.testing.assert_array_equal(table[:, -1], dataset.y)


def test_written_files_follow_the_umask(workdir: Path) -> None:
    old = os.umask(0o022)
    try:
        assert cli("fit", "--set", "train.epochs=2").exit_code == 0
        assert cli("data", "make", "d.csv", "--rows", "10").exit_code == 0
    finally:
        os.umask(old)
    run = only_run(workdir)
    for path in [run / "model.json", run / "config.yaml", run / "metrics.csv", workdir / "d.csv"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_a_run_from_a_relative_set_path_reruns_from_its_saved_config(workdir: Path) -> None:
    assert cli("data", "make", "d.csv", "--rows", "50").exit_code == 0
    assert cli("fit", "--set", "data.source=csv", "--set", "data.path=d.csv", "--engine", "exact").exit_code == 0
    saved = only_run(workdir) / "config.yaml"
    assert yaml.safe_load(saved.read_text())["data"]["path"] == str(workdir / "d.csv")
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    again = cli("fit", "--config", str(saved), "--set", "output.save=false")
    assert again.exit_code == 0, again.output


def test_device_auto_reports_the_device_it_used(workdir: Path) -> None:
    import torch

    result = cli("fit", "--engine", "torch", "--device", "auto", "--json", "--set", "train.epochs=2")
    assert result.exit_code == 0, result.output
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert json.loads(result.stdout.splitlines()[-1])["device"] == expected


def test_predict_skips_blank_stdin_lines(workdir: Path) -> None:
    assert cli("fit", "--engine", "exact").exit_code == 0
    assert cli("predict", "-", input="1\n\n2\n\n").stdout == "2.0\n4.0\n"


def test_json_error_message_has_no_prefix() -> None:
    result = cli("fit", "--json", "--set", "train.epochs=0")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["message"].startswith("invalid config:")


def test_a_tilde_in_data_path_or_output_dir_is_the_home_folder(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = workdir / "home"
    home.mkdir()
    (home / "d.csv").write_text("x,y\n1,2\n2,4\n3,6\n")
    monkeypatch.setenv("HOME", str(home))
    result = cli("fit", "--engine", "exact", "--set", "data.path=~/d.csv", "--set", "output.dir=~/runs")
    assert result.exit_code == 0, result.output
    assert len(list((home / "runs").iterdir())) == 1
    assert not (workdir / "~").exists()  # never a folder named ~ beside the working directory
