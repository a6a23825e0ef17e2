"""`lrtrain summary`, `fit --summary` and `predict --interval`, checked against statsmodels OLS."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm

from lrtrain.sources.writers import write

from .conftest import cli, run_installed

SCALAR_FIELDS = {
    "r2": "rsquared",
    "adj_r2": "rsquared_adj",
    "f_stat": "fvalue",
    "f_p_value": "f_pvalue",
    "log_likelihood": "llf",
    "aic": "aic",
    "bic": "bic",
    "condition_number": "condition_number",
}


def correlated_csv(path: Path, rows: int = 300, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(rows, 3))
    x = np.column_stack([base[:, 0] * 50 + 1000, base[:, 0] * 0.6 + base[:, 1] * 0.8, base[:, 2] - 3])
    y = x @ np.array([0.02, -1.5, 0.0]) + 4 + rng.normal(scale=0.7, size=rows)  # one weight is truly zero
    write(path, iter([(x, y)]), rows, 3, ["size", "mix", "noise"])
    return x, y


def summary_of(run_args: list[str]) -> dict[str, object]:
    result = cli("fit", *run_args, "--set", "output.save=false", "--summary", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    (summary,) = [r for r in records if r["event"] == "summary"]
    return summary


def assert_matches_statsmodels(summary: dict[str, object], reference: object, names: list[str]) -> None:
    terms = summary["terms"]
    assert isinstance(terms, list)
    assert [t["name"] for t in terms] == names
    for key, attribute in [("coef", "params"), ("std_err", "bse"), ("t", "tvalues"), ("p_value", "pvalues")]:
        np.testing.assert_allclose([t[key] for t in terms], getattr(reference, attribute), rtol=1e-8)
    interval = reference.conf_int(alpha=0.05)  # type: ignore[attr-defined]
    np.testing.assert_allclose([t["ci_low"] for t in terms], interval[:, 0], rtol=1e-8)
    np.testing.assert_allclose([t["ci_high"] for t in terms], interval[:, 1], rtol=1e-8)
    for ours, theirs in SCALAR_FIELDS.items():
        np.testing.assert_allclose(summary[ours], getattr(reference, theirs), rtol=1e-8)
    np.testing.assert_allclose(summary["residual_std_error"], np.sqrt(reference.scale), rtol=1e-8)  # type: ignore[attr-defined]
    assert summary["n"] == reference.nobs  # type: ignore[attr-defined]
    assert summary["df_resid"] == reference.df_resid  # type: ignore[attr-defined]


@pytest.mark.parametrize("standardize", [False, True], ids=["raw", "standardized"])
def test_exact_fit_summary_equals_statsmodels_on_correlated_features(workdir: Path, standardize: bool) -> None:
    x, y = correlated_csv(workdir / "d.csv")
    summary = summary_of(
        ["--set", "data.source=csv", "--set", "data.path=d.csv", "--engine", "exact",
         "--set", f"data.standardize={str(standardize).lower()}"]
    )  # fmt: skip
    reference = sm.OLS(y, sm.add_constant(x)).fit()
    assert_matches_statsmodels(summary, reference, ["intercept", "size", "mix", "noise"])
    # the one note: size's mean (1000) dwarfs its spread, which statsmodels notes past the same 1000
    (note,) = summary["warnings"]  # type: ignore[misc]
    assert "condition number is large" in note
    assert reference.condition_number > 1000


def test_gradient_descent_to_the_optimum_gives_the_same_summary(workdir: Path) -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=(500, 2))
    y = x @ np.array([1.0, -2.0]) + 0.3 + rng.normal(scale=0.5, size=500)
    write(workdir / "d.npy", iter([(x, y)]), 500, 2, ["a", "b"])
    summary = summary_of(
        ["--set", "data.source=npy", "--set", "data.path=d.npy", "--set", "model.dtype=float64",
         "--set", "train.lr=auto", "--set", "train.epochs=400", "--set", "train.target_gap=0"]
    )  # fmt: skip
    assert_matches_statsmodels(summary, sm.OLS(y, sm.add_constant(x)).fit(), ["intercept", "x0", "x1"])  # .npy: x0, x1
    assert summary["warnings"] == []


def test_without_a_bias_the_summary_is_statsmodels_without_a_constant(workdir: Path) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(loc=1.0, size=(80, 2))
    y = x @ np.array([0.5, 2.0]) + rng.normal(scale=0.2, size=80)
    write(workdir / "d.csv", iter([(x, y)]), 80, 2, ["u", "v"])
    summary = summary_of(
        ["--set", "data.source=csv", "--set", "data.path=d.csv", "--engine", "exact", "--set", "model.bias=false"]
    )
    assert_matches_statsmodels(summary, sm.OLS(y, x).fit(), ["u", "v"])


def test_unconverged_weights_and_weight_decay_are_flagged(workdir: Path) -> None:
    summary = summary_of(
        ["--set", "data.source=synthetic", "--set", "data.rows=100", "--set", "train.epochs=5",
         "--set", "train.weight_decay=0.1"]
    )  # fmt: skip
    text = " ".join(summary["warnings"])  # type: ignore[arg-type]
    assert "not yet the least-squares optimum" in text
    assert "ridge weights" in text


def test_summary_command_reads_the_newest_run_and_prints_a_table(workdir: Path) -> None:
    assert cli("fit", "--set", "data.source=synthetic", "--set", "data.features=2", "--engine", "exact").exit_code == 0
    result = cli("summary")
    assert result.exit_code == 0, result.output
    (run,) = (workdir / "runs").iterdir()
    assert result.stdout.startswith(f"OLS summary: runs/{run.name}\n")
    for heading in ("R²", "Adj. R²", "F-statistic", "Prob (F-statistic)", "AIC", "BIC", "Condition number", "P>|t|"):
        assert heading in result.stdout
    assert [line.split()[0] for line in result.stdout.splitlines()[-3:]] == ["intercept", "x0", "x1"]
    as_json = json.loads(cli("summary", str(run), "--json").stdout)
    assert as_json["event"] == "summary"
    assert "unscaled_covariance" not in as_json


@pytest.mark.slow
def test_summary_of_a_model_without_statistics_says_to_retrain(workdir: Path) -> None:
    assert cli("fit").exit_code == 0
    (run,) = (workdir / "runs").iterdir()
    payload = json.loads((run / "model.json").read_text())
    del payload["statistics"]
    (run / "model.json").write_text(json.dumps(payload))
    result = cli("summary")
    assert result.exit_code == 2
    assert "no training statistics" in result.stderr
    assert "lrtrain fit" in result.stderr
    result = run_installed("predict", "1", "--interval", "0.95", cwd=workdir)
    assert result.returncode == 2
    assert "no training statistics" in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_predict_interval_equals_statsmodels_on_the_fast_path(workdir: Path) -> None:
    x, y = correlated_csv(workdir / "d.csv")
    fitted = cli("fit", "--set", "data.source=csv", "--set", "data.path=d.csv", "--engine", "exact")
    assert fitted.exit_code == 0, fitted.output
    samples = ["1000,0.5,-3", "950,-1,0"]
    result = run_installed("predict", *samples, "--interval", "0.9", cwd=workdir)
    assert result.returncode == 0, result.stderr
    ours = np.array([[float(v) for v in line.split()] for line in result.stdout.splitlines()])
    reference = sm.OLS(y, sm.add_constant(x)).fit()
    exog = sm.add_constant(np.array([[1000, 0.5, -3], [950, -1, 0]]), has_constant="add")
    frame = reference.get_prediction(exog).summary_frame(alpha=0.1)
    np.testing.assert_allclose(ours[:, 0], frame["mean"], rtol=1e-9)
    np.testing.assert_allclose(ours[:, 1], frame["obs_ci_lower"], rtol=1e-8)
    np.testing.assert_allclose(ours[:, 2], frame["obs_ci_upper"], rtol=1e-8)
    records = [json.loads(line) for line in run_installed("predict", samples[0], "--interval=0.9", "--json",
                                                          cwd=workdir).stdout.splitlines()]  # fmt: skip
    assert records[0]["interval"]["level"] == 0.9
    np.testing.assert_allclose(records[0]["interval"]["low"], ours[0, 1], rtol=1e-15)
    as_percent = run_installed("predict", *samples, "--interval", "90%", cwd=workdir)
    assert as_percent.returncode == 0, as_percent.stderr
    assert as_percent.stdout == result.stdout


def test_intervals_for_a_feature_whose_mean_dwarfs_its_spread_keep_their_width(workdir: Path) -> None:
    """A feature around 1e9 with a spread of 1: x̃ᵀCx̃ summed as it stands cancels 1e18-sized terms down to a
    leverage near 1/n, and its widths were off by 76% to 190%; taken centered they are statsmodels' (on the
    centered data, which has the same intervals), for predict and for predict --data alike."""
    rng = np.random.default_rng(9)
    a = rng.normal(size=60)
    b = rng.normal(size=60)
    y = 0.5 * a - b + rng.normal(scale=0.3, size=60)
    write(workdir / "m9.csv", iter([(np.column_stack([a + 1e9, b]), y)]), 60, 2, ["a", "b"])
    fitted = cli("fit", "--set", "data.path=m9.csv", "--engine", "exact")
    assert fitted.exit_code == 0, fitted.output
    new = np.array([[1e9 + 0.5, 0.25], [1e9 - 2.0, 1.5]])
    samples = [f"{float(u)!r},{float(v)!r}" for u, v in new]
    result = run_installed("predict", *samples, "--interval", "0.9", cwd=workdir)
    assert result.returncode == 0, result.stderr
    ours = np.array([[float(v) for v in line.split()] for line in result.stdout.splitlines()])
    reference = sm.OLS(y, sm.add_constant(np.column_stack([a, b]))).fit()
    centered = sm.add_constant(new - [1e9, 0.0], has_constant="add")
    frame = reference.get_prediction(centered).summary_frame(alpha=0.1)
    half = (frame["obs_ci_upper"] - frame["obs_ci_lower"]).to_numpy() / 2
    np.testing.assert_allclose((ours[:, 2] - ours[:, 1]) / 2, half, rtol=1e-6)
    (workdir / "new.csv").write_text("a,b\n" + "\n".join(samples) + "\n")
    table = cli("predict", "--data", "new.csv", "--interval", "0.9")
    assert table.exit_code == 0, table.output
    rows = [line.split(",") for line in table.stdout.splitlines()[1:]]
    np.testing.assert_allclose([(float(r[4]) - float(r[3])) / 2 for r in rows], half, rtol=1e-6)


@pytest.mark.slow
def test_only_predict_interval_pays_for_scipy_and_neither_form_for_the_cli(workdir: Path) -> None:
    assert cli("fit", "--set", "data.source=synthetic", "--set", "data.rows=50").exit_code == 0
    imported = {}
    for name, extra in (("plain", []), ("interval", ["--interval", "0.95"])):
        result = run_installed("predict", "5", *extra, cwd=workdir, python_flags=("-X", "importtime"))
        assert result.returncode == 0, result.stderr
        imported[name] = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", result.stderr, re.MULTILINE))
    assert not {"numpy", "scipy"} & imported["plain"]
    assert "scipy.special" in imported["interval"]
    for modules in imported.values():
        heavy = {"torch", "typer", "pydantic", "rich", "lrtrain.cli", "lrtrain.training", "lrtrain.prepare"}
        assert not heavy & modules


@pytest.mark.slow
@pytest.mark.parametrize("level", ["95", "0", "1", "x", "-0.5", "nan", "100%", "0%", "%"])
def test_predict_interval_refuses_a_level_outside_0_1(workdir: Path, level: str) -> None:
    assert cli("fit").exit_code == 0
    in_process = cli("predict", "1", "--interval", level)
    installed = run_installed("predict", "1", "--interval", level, cwd=workdir)  # the fast path
    assert in_process.exit_code == installed.returncode == 2
    for stderr, stdout in ((in_process.stderr, in_process.stdout), (installed.stderr, installed.stdout)):
        assert f"--interval {level!r} is not a probability between 0 and 1" in stderr
        assert stdout == ""


def test_piped_summary_keeps_every_number_whole_with_long_names(workdir: Path) -> None:
    rng = np.random.default_rng(2)
    names = [f"a_rather_long_feature_name_{i}" for i in range(4)]
    x = rng.normal(size=(60, 4)) * [1e5, 1, 1e-5, 1]
    y = x @ [1e-5, 2, 3e5, 0] - 123456.789 + rng.normal(size=60)
    write(workdir / "d.csv", iter([(x, y)]), 60, 4, names)
    assert cli("fit", "--set", "data.source=csv", "--set", "data.path=d.csv", "--engine", "exact").exit_code == 0
    result = cli("summary")
    assert result.exit_code == 0
    assert "…" not in result.stdout
    stored = json.loads(cli("summary", "--json").stdout)["terms"]
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines() if len(line.split()) > 1}
    for term in stored:
        np.testing.assert_allclose(float(rows[term["name"]]), term["coef"], rtol=1e-4)  # .5g, whole


def test_weights_short_of_an_exact_fit_are_flagged(workdir: Path) -> None:
    summary = summary_of([])  # the built-in data, y = 2x exactly, 100 epochs of gradient descent
    assert any("not yet the least-squares optimum" in w for w in summary["warnings"])  # type: ignore[union-attr]
    exact = summary_of(["--engine", "exact"])
    (note,) = exact["warnings"]  # type: ignore[misc]
    assert "fits every row exactly (RSS = 0)" in note  # and no "not yet" beside it
    rows = "".join(f"{a},{b},{2 * a + b!r}\n" for a, b in ((i * 0.37 % 1, i * 0.61 % 1) for i in range(30)))
    (workdir / "e.csv").write_text("a,c,y\n" + rows)  # an exact fit in floating point: its optimum is about 1e-32
    short = summary_of(["--set", "data.path=e.csv", "--set", "train.epochs=5"])
    (flag,) = [w for w in short["warnings"] if "not yet" in w]  # type: ignore[union-attr]
    assert "not about 0" in flag
    assert "%" not in flag  # no percentage of an optimum that is rounding


def test_summary_of_an_interrupted_run_says_how_to_finish_it(workdir: Path) -> None:
    run = workdir / "runs" / "stopped"
    run.mkdir(parents=True)
    (run / "checkpoint.json").write_text("{}")
    result = cli("summary", "runs/stopped")
    assert result.exit_code == 2
    assert "interrupted run" in result.stderr
    assert "lrtrain fit --resume runs/stopped" in result.stderr


@pytest.mark.slow
def test_predict_interval_repeats_the_summary_notes_on_stderr(workdir: Path) -> None:
    assert cli("fit").exit_code == 0  # 100 epochs: short of the optimum
    result = run_installed("predict", "5", "--interval", "0.95", cwd=workdir)
    assert result.returncode == 0
    assert len(result.stdout.split()) == 3
    assert result.stderr.startswith("note: the weights are not yet the least-squares optimum")


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda s: s.pop("level"), "level"),
        (lambda s: s.update(warnings=5), "warnings"),
        (lambda s: s["terms"].pop(), "terms"),
        (lambda s: s.update(unscaled_covariance=[[1.0]]), "unscaled_covariance"),
        (lambda s: s.update(df_resid="2"), "df_resid"),
    ],
    ids=["no level", "warnings not a list", "a term missing", "covariance of the wrong size", "df as text"],
)
def test_damaged_statistics_are_an_error_not_a_crash(workdir: Path, damage: object, field: str) -> None:
    assert cli("fit", "--set", "data.source=synthetic", "--set", "data.rows=50").exit_code == 0
    (run,) = (workdir / "runs").iterdir()
    payload = json.loads((run / "model.json").read_text())
    damage(payload["statistics"])  # type: ignore[operator]
    (run / "model.json").write_text(json.dumps(payload))
    for result in (cli("summary"), cli("predict", "1", "--interval", "0.9")):
        assert result.exit_code == 2
        assert f"damaged statistics ({field} missing or malformed)" in result.stderr
        assert result.stdout == ""
    assert cli("predict", "1").exit_code == 0  # the weights themselves are fine


def test_standardizing_without_a_bias_keeps_the_model_without_an_intercept(workdir: Path) -> None:
    x, y = correlated_csv(workdir / "d.csv")
    reference = sm.OLS(y, x).fit()  # no constant: the model lrtrain fits without a bias, standardized or not
    for standardize in ("false", "true"):
        args = ["--set", "data.path=d.csv", "--set", "model.bias=false", "--set", f"data.standardize={standardize}"]
        summary = summary_of([*args, "--engine", "exact"])
        assert_matches_statsmodels(summary, reference, ["size", "mix", "noise"])
    result = cli("fit", "--set", "data.path=d.csv", "--set", "model.bias=false", "--set", "data.standardize=true")
    assert result.exit_code == 0, result.output
    (run,) = (workdir / "runs").iterdir()
    saved = json.loads((run / "model.json").read_text())
    assert saved["bias"] == 0.0  # scaled about the origin, not centered: no intercept of −w·mean comes back
    assert saved["standardization"]["mean"] == [0.0, 0.0, 0.0]
    assert cli("summary").exit_code == 0


@pytest.mark.parametrize(
    ("text", "level"), [("0.95", 0.95), ("95%", 0.95), (" 95% ", 0.95), ("95 %", 0.95), ("9e1%", 0.9)]
)
def test_an_interval_level_is_a_probability_or_a_percentage(text: str, level: float) -> None:
    from lrtrain.samples import parse_level

    assert parse_level(text) == pytest.approx(level, rel=1e-15)


def names_that_look_like_markup(folder: Path) -> None:
    """A CSV whose column names and categorical levels hold square brackets, as Rich's markup has them."""
    rng = np.random.default_rng(4)
    levels = ["b", "red", "link https://x", "/i"]
    lines = ["x,[/b],c,y"] + [
        f"{a:.6f},{b:.6f},{levels[i % 4]},{a + 2 * b + i % 4 + rng.normal():.6f}"
        for i, (a, b) in enumerate(rng.normal(size=(80, 2)))
    ]
    (folder / "m.csv").write_text("\n".join(lines) + "\n")


def test_names_with_square_brackets_are_shown_as_they_are_not_as_styles(workdir: Path) -> None:
    names_that_look_like_markup(workdir)
    args = ["--set", "data.path=m.csv", "--set", "data.categorical=[c]", "--engine", "exact"]
    result = cli("fit", *args, "--summary")
    assert result.exit_code == 0, result.output
    for name in ("[/b]", "c[link https://x]", "c[red]", "c[b]"):  # "/i" sorts first: the baseline
        assert name in result.stdout, name
    shown = cli("summary")
    assert shown.exit_code == 0, shown.output
    assert "c[link https://x]" in shown.stdout


@pytest.mark.slow
def test_names_with_square_brackets_or_controls_are_shown_whole_and_escaped_on_a_terminal(workdir: Path) -> None:
    import os

    from .conftest import run_on_terminal

    names_that_look_like_markup(workdir)
    text = (workdir / "m.csv").read_text().replace("x,[/b]", '"x\x1b[31m1",[/b]', 1)
    (workdir / "m.csv").write_text(text)
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
    args = ["fit", "--set", "data.path=m.csv", "--set", "data.categorical=[c]", "--engine", "exact", "--summary"]
    seen, _ = run_on_terminal(args, workdir, env)
    shown = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", seen.replace(b"\x1b[31m1", b"")).decode()
    assert "internal error" not in shown
    for name in ("[/b]", "c[link https://x]", "c[red]", "x\\x1b[31m1"):
        assert name in shown, (name, shown)


EDITS = {  # a model.json changed by hand: statistics that contradict each other or the model's weights
    "a negative noise variance": lambda m: m["statistics"].update(sigma2=-1.0),
    "a negative residual df": lambda m: m["statistics"].update(df_resid=-3),
    "counts that miss the rows": lambda m: m["statistics"].update(n=m["statistics"]["n"] + 5),
    "a nan in the covariance": lambda m: m["statistics"]["unscaled_covariance"][0].__setitem__(0, float("nan")),
    "weights other than the coefficients": lambda m: m.update(weights=[w + 1.0 for w in m["weights"]]),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_statistics_edited_into_nonsense_are_refused_by_summary_and_predict(workdir: Path, edit: str) -> None:
    assert cli("fit", "--engine", "exact", "--set", "train.epochs=2").exit_code == 0
    (path,) = workdir.glob("runs/*/model.json")
    payload = json.loads(path.read_text())
    EDITS[edit](payload)
    (workdir / "m.json").write_text(json.dumps(payload))
    for args in (["summary", "m.json"], ["predict", "--model", "m.json", "--interval", "0.9", "5"]):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "m.json has damaged statistics" in result.stderr
        assert result.stdout == ""


def test_the_summary_of_a_model_json_outside_a_run_folder_names_the_file(workdir: Path) -> None:
    assert cli("fit", "--engine", "exact").exit_code == 0
    (path,) = workdir.glob("runs/*/model.json")
    (workdir / "model.json").write_bytes(path.read_bytes())
    assert cli("summary", "model.json").stdout.startswith("OLS summary: model.json\n")
    assert cli("summary").stdout.startswith(f"OLS summary: {path.parent.relative_to(workdir)}\n")
