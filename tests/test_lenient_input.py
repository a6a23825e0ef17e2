"""predict reads only what is plainly a number: no empty fields, no 1_000 or other scripts' digits; a byte-order
mark on stdin is fine; a wrong feature count names its line; a damaged covariance is an error, not "nan nan"."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import cli

LENIENT = {
    "empty field": ("1,,2", "field 2 of '1,,2' is empty"),
    "trailing comma": ("1,2,", "field 3 of '1,2,' is empty"),
    "underscore": ("1_000", "'1_000' is not a number"),
    "full-width digits": ("\uff11\uff12", "is not a number"),
    "arabic-indic digits": ("\u0663", "is not a number"),
    "superscript": ("\u00b2", "is not a number"),
}


@pytest.fixture
def two_features(workdir: Path) -> Path:
    rows = "data.x=[[1,2],[2,1],[3,5],[4,3],[5,5]]"
    assert cli("fit", "--set", rows, "--set", "data.y=[3,3,8,7,10]", "--engine", "exact").exit_code == 0
    (run,) = (workdir / "runs").iterdir()
    return run


def fast_path(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from lrtrain import entry

    code = entry._predict(list(args), None, False, None)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("text", "words"), LENIENT.values(), ids=LENIENT.keys())
def test_predict_refuses_what_is_not_ascii_number_syntax_on_both_paths(
    two_features: Path, capsys: pytest.CaptureFixture[str], text: str, words: str
) -> None:
    full = cli("predict", text)
    assert full.exit_code == 2, full.output
    assert words in full.stderr
    code, _, err = fast_path(capsys, text)
    assert code == 2
    assert words in err
    piped = cli("predict", "-", input=f"1,2\n{text}\n")
    assert piped.exit_code == 2
    assert "error: stdin line 2: " in piped.stderr
    assert words in piped.stderr


def test_the_fast_path_takes_a_negative_number_but_not_an_underscored_one_as_a_value(
    two_features: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lrtrain import entry

    assert entry._is_number("-1,2")
    assert entry._is_number("-1e3")
    assert entry._is_number("-.5")
    assert not entry._is_number("-1_000")
    assert not entry._is_number("--model")


def test_a_utf8_byte_order_mark_on_stdin_is_accepted(two_features: Path) -> None:
    result = cli("predict", "-", input="\ufeff1,2\n3,4\n")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2


def test_a_wrong_feature_count_on_stdin_names_the_line(two_features: Path) -> None:
    result = cli("predict", "-", input="1,2\n\n3\n")
    assert result.exit_code == 2, result.output
    assert "stdin line 3: the model in" in result.stderr
    assert "takes 2 feature(s)" in result.stderr
    arguments = cli("predict", "1,2", "3")
    assert arguments.exit_code == 2
    assert "got 1: [3.0]" in arguments.stderr


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s["unscaled_covariance"][0].__setitem__(0, math_nan()),
        lambda s: s["unscaled_covariance"][1].__setitem__(1, None),
        lambda s: s.__setitem__("sigma2", None),
        lambda s: s["unscaled_covariance"][1].__setitem__(1, -1e6),
    ],
    ids=["nan", "null", "no sigma2", "negative variance"],
)
def test_a_damaged_covariance_is_an_error_naming_the_model_not_nan(
    two_features: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[dict[str, object]], None]
) -> None:
    path = two_features / "model.json"
    payload = json.loads(path.read_text())
    damage(payload["statistics"])
    path.write_text(json.dumps(payload))
    for result in (cli("predict", "--interval", "0.95", "1,2"), fast_path_interval(capsys, "1,2")):
        code, stdout, stderr = result if isinstance(result, tuple) else (result.exit_code, result.stdout, result.stderr)
        assert code == 2, stderr
        assert "nan" not in stdout
        assert f"runs/{two_features.name}/model.json" in stderr
        assert "Retrain" in stderr


def fast_path_interval(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from lrtrain import entry

    capsys.readouterr()
    code = entry._predict(list(args), None, False, "0.95")
    out, err = capsys.readouterr()
    return code, out, err


def math_nan() -> float:
    return float("nan")


@pytest.mark.parametrize("level", ["9_5%", "0.9_5", "９５%", "0.٩٥"])
@pytest.mark.usefixtures("two_features")
def test_an_interval_level_is_an_ascii_number_only(level: str) -> None:
    result = cli("predict", "1,2", "--interval", level)
    assert result.exit_code == 2
    assert "is not a probability between 0 and 1" in result.stderr
    assert "write 0.95" not in result.stderr  # no hint read from a number that is not one
    assert cli("predict", "1,2", "--interval", "95%").exit_code == 0
