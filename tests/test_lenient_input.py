"""predict reads only what is plainly a number: no empty fields, no 1_000 or other scripts' digits; a byte-order
mark on stdin is fine; a wrong feature count names its line; a damaged covariance is an error, not "nan nan".
A config, in its file or by --set, reads numbers by the same rule, not by YAML 1.1's or Python's."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import SUBPROCESS_TIMEOUT, cli, lrtrain_path

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


def test_bytes_that_are_not_utf8_on_stdin_are_named_as_such(two_features: Path) -> None:
    strict = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # stdin as in a UTF-8 locale (en_US.UTF-8), not C
    result = subprocess.run(
        [lrtrain_path(), "predict", "-"], input=b"1,2\n\xff\xfe3,4\n", capture_output=True, timeout=SUBPROCESS_TIMEOUT,
        env=strict,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stdout.decode().splitlines()) == 1  # line 1, predicted before line 2 was read
    assert "stdin line 2 is not UTF-8 text (it holds the byte 0xff)" in result.stderr.decode()
    assert "\\udc" not in result.stderr.decode()


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


# --------------------------------------------------------------------------- numbers in a config

# What YAML 1.1 reads as a number and lrtrain does not: the value YAML would give, which a run would silently use
YAML_NUMBERS = {
    "underscore": ("train.lr", "1_000", "1000"),
    "underscore in a float": ("train.lr", "1__0.5", "10.5"),
    "octal": ("train.epochs", "010", "8"),
    "hexadecimal": ("train.epochs", "0x10", "16"),
    "binary": ("train.epochs", "0b11", "3"),
    "base 60": ("train.epochs", "1:30", "90"),
    "tagged hexadecimal": ("seed", "!!int 0x1F", "31"),
    "in a list": ("data.y", "[1, 2, 0x3, 4]", "3"),
}
# What Python's int() or float() would take from a string: YAML reads it as text, and text is no number either
TEXT_NUMBERS = {
    "full-width digits": ("train.epochs", "\uff11\uff10", "is text, not a number"),
    "arabic-indic digit": ("train.lr", "\u0663", "is text, not a number"),
    "quoted underscore": ("train.epochs", '"1_000"', "is text, not a number"),
    "quoted plain number": ("train.lr", "'0.5'", "is quoted, so it is text: drop the quotes"),
}
SYNTAX = "A number is plain ASCII: digits with an optional sign, point and exponent (1000, -2.5, 1e-3)"


@pytest.mark.parametrize(("key", "text", "read_as"), YAML_NUMBERS.values(), ids=YAML_NUMBERS.keys())
def test_a_set_value_yaml_would_read_as_a_number_is_refused(workdir: Path, key: str, text: str, read_as: str) -> None:
    result = cli("fit", "--set", f"{key}={text}")
    assert result.exit_code == 2, result.output
    assert f"--set '{key}={text}'" in result.stderr
    assert f"is not a number as lrtrain reads one (YAML would read it as {read_as})" in result.stderr
    assert SYNTAX in result.stderr
    assert "Traceback" not in result.stderr
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize(("key", "text", "read_as"), YAML_NUMBERS.values(), ids=YAML_NUMBERS.keys())
def test_a_config_value_yaml_would_read_as_a_number_is_refused_naming_its_key(
    workdir: Path, key: str, text: str, read_as: str
) -> None:
    section, _, name = key.rpartition(".")
    body = f"{section}:\n  {name}: {text}\n" if section else f"{name}: {text}\n"
    (workdir / "c.yaml").write_text(body, encoding="utf-8")
    result = cli("fit", "-c", "c.yaml")
    assert result.exit_code == 2, result.output
    line = 2 if section else 1
    shown = f"{key}[2]" if text.startswith("[") else key
    assert f"config file c.yaml, line {line}, column " in result.stderr
    assert f"key '{shown}': " in result.stderr
    assert f"(YAML would read it as {read_as})" in result.stderr
    assert SYNTAX in result.stderr
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize(("key", "text", "words"), TEXT_NUMBERS.values(), ids=TEXT_NUMBERS.keys())
def test_text_that_python_would_read_as_a_number_is_refused_and_says_what_a_number_is(
    workdir: Path, key: str, text: str, words: str
) -> None:
    for source in ("--set", "file"):
        if source == "file":
            section, _, name = key.rpartition(".")
            (workdir / "c.yaml").write_text(f"{section}:\n  {name}: {text}\n", encoding="utf-8")
            result = cli("fit", "-c", "c.yaml")
        else:
            result = cli("fit", "--set", f"{key}={text}")
        assert result.exit_code == 2, result.output
        assert f"'{key}' must be " in result.stderr
        assert words in result.stderr
        if words.startswith("is text"):
            assert SYNTAX in result.stderr
        assert not (workdir / "runs").exists()


@pytest.mark.parametrize(
    ("key", "text", "shown"),
    [("seed", "-0", "seed: 0"), ("seed", "+5", "seed: 5"), ("train.epochs", "100", "epochs: 100")]
    + [("model.init_std", t, f"init_std: {v}") for t, v in [("1e3", "1000.0"), (".5", "0.5"), ("5.", "5.0")]]
    + [("model.init_std", t, f"init_std: {v}") for t, v in [("1.5e-3", "0.0015"), ("1E+2", "100.0")]],
)
def test_plain_ascii_numbers_are_still_read(workdir: Path, key: str, text: str, shown: str) -> None:
    result = cli("config", "show", "--set", f"{key}={text}")
    assert result.exit_code == 0, result.output
    assert any(line.strip().startswith(f"{shown}  #") for line in result.stdout.splitlines()), result.stdout
