"""The model artifact: round trip, formats, atomic writes, the newest run."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from lrtrain import model, samples
from lrtrain.config import load_config
from lrtrain.errors import ModelError
from lrtrain.files import atomic_writer
from lrtrain.training import fit

from .conftest import run_installed


def test_fit_save_load_predict_round_trip(workdir: Path) -> None:
    config = load_config(
        None, ["data.source=synthetic", "data.features=3", "data.standardize=true", "model.dtype=float64"]
    )
    result = fit(config)
    assert result.run_dir is not None
    loaded = model.load(result.run_dir)
    assert loaded.weights == pytest.approx(list(result.weights), rel=1e-15)
    assert loaded.bias == pytest.approx(result.bias, rel=1e-15)
    assert loaded.features == ["x0", "x1", "x2"]
    assert loaded.dtype == "float64"
    sample = [0.5, -1.0, 2.0]
    assert loaded.predict(sample) == pytest.approx(float(np.dot(result.weights, sample) + result.bias), rel=1e-14)
    payload = json.loads((result.run_dir / "model.json").read_text())
    assert payload["format_version"] == model.FORMAT_VERSION
    assert len(payload["data"]["sha256"]) == 64
    assert payload["standardization"]["scale"][0] == pytest.approx(1.0, abs=0.2)
    assert payload["config"]["data"]["features"] == 3


def test_load_accepts_a_run_folder_or_the_file(workdir: Path) -> None:
    result = fit(load_config(None, ["train.epochs=3"]))
    assert result.run_dir is not None
    assert model.load(result.run_dir) == model.load(result.run_dir / "model.json")


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"format": model.FORMAT, "format_version": 2, "lrtrain_version": "9.0"}))
    with pytest.raises(ModelError, match=r"format version 2.*lrtrain 9\.0"):
        model.load(path)


MINIMAL = {"format": model.FORMAT, "format_version": model.FORMAT_VERSION, "weights": [2.0], "bias": 0.0,
           "features": ["x"], "target": "y", "dtype": "float64"}  # fmt: skip


@pytest.mark.parametrize("version", ["1", None, [1], True])
def test_a_format_version_that_is_no_number_is_damage_not_a_reason_to_upgrade(tmp_path: Path, version: object) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({**MINIMAL, "format_version": version}))
    with pytest.raises(ModelError, match=r"is damaged: its format_version is .*, not a number") as refused:
        model.load(path)
    assert "upgrade" not in str(refused.value)


def write_runs(root: Path, names: list[str], text: str = json.dumps(MINIMAL)) -> None:
    for i, name in enumerate(names):
        (root / name).mkdir()
        (root / name / "model.json").write_text(text)
        os.utime(root / name / "model.json", ns=(10**18 + i * 10**9, 10**18 + i * 10**9))


def test_find_latest_picks_the_most_recent_model(tmp_path: Path) -> None:
    write_runs(tmp_path, ["b-run", "a-run", "c-run"])
    (tmp_path / "d-unfinished").mkdir()  # no model.json: an interrupted run
    assert model.find_latest(tmp_path, pytest.fail) == tmp_path / "c-run" / "model.json"  # nothing to warn of


def test_a_damaged_newest_model_is_skipped_with_a_warning(tmp_path: Path) -> None:
    write_runs(tmp_path, ["a-run"])
    (tmp_path / "z-run").mkdir()
    (tmp_path / "z-run" / "model.json").write_text("{truncated")
    warnings: list[str] = []
    assert model.load_latest(tmp_path, warnings.append).path == tmp_path / "a-run" / "model.json"
    assert len(warnings) == 1
    assert warnings[0].startswith(f"warning: skipping the newer {tmp_path / 'z-run' / 'model.json'}")


def test_find_latest_without_runs_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="lrtrain fit"):
        model.find_latest(tmp_path / "runs", pytest.fail)


def test_atomic_writer_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text("old")

    def crash_while_writing() -> None:
        with atomic_writer(path) as handle:
            handle.write("half of the new")
            raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError):
        crash_while_writing()
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def f32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


@pytest.mark.parametrize("value", [10.0, 9.941071629524231, 0.1, -3.5e-8, 1e30, 123456.789])
def test_float32_numbers_print_with_the_fewest_digits_that_read_back(value: float) -> None:
    text = model.format_number(value, "float32")
    assert np.float32(text) == np.float32(value)
    assert len(text) <= len(repr(float(np.float32(value))))
    assert str(np.float32(value)) in (text, text.removesuffix(".0"))


def test_float64_numbers_print_as_repr() -> None:
    assert model.format_number(0.1 + 0.2) == "0.30000000000000004"
    assert model.format_number(f32(0.1), "float64") == repr(f32(0.1))


def test_parse_sample_accepts_commas_and_spaces() -> None:
    assert samples.parse_sample(" 1, 2  3,4 \n", "x") == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.slow
def test_predict_checks_every_argument_before_printing_any(workdir: Path) -> None:
    (workdir / "runs").mkdir()
    write_runs(workdir / "runs", ["a-run"])
    result = run_installed("predict", "1", "1,2", cwd=workdir)
    assert result.returncode == 2
    assert "takes 1 feature(s) (x) but got 2: [1.0, 2.0]" in result.stderr  # the second sample, named
    assert result.stdout == ""
