"""Categorical columns (indicators against a baseline, as statsmodels' C(column)) and data.missing: drop."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import statsmodels.formula.api as smf

from lrtrain import model, sources
from lrtrain.config import load_config
from lrtrain.design import Levels, indicators, levels_of, number_text, ordered
from lrtrain.errors import DataError, ModelError

from .conftest import SUBPROCESS_TIMEOUT, cli, run_installed

CITIES = ["Paris", "Berlin", "Lyon", "Nice"]


def frame(rows: int = 300, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(CITIES, size=rows)
    x1 = rng.normal(size=rows) * 3 + 10
    effect = {"Paris": 2.0, "Berlin": 0.0, "Lyon": -1.0, "Nice": 0.5}
    y = 1.5 * x1 + np.array([effect[c] for c in city]) + 3 + rng.normal(scale=0.5, size=rows)
    return pd.DataFrame({"x1": x1, "city": city, "y": y})


def fit_json(*args: str) -> list[dict[str, object]]:
    result = cli("fit", *args, "--json")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def fail(*args: str) -> str:
    result = cli("fit", *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    return " ".join(result.stderr.split())


@pytest.mark.parametrize("kind", ["csv", "parquet", "parquet-dictionary"])
def test_fit_equals_statsmodels_formula_with_c_column(workdir: Path, kind: str) -> None:
    df = frame()
    if kind == "csv":
        df.to_csv(workdir / "d.csv", index=False, float_format="%.17g")
        path = "d.csv"
    else:
        table = pa.Table.from_pandas(df, preserve_index=False)
        if kind == "parquet-dictionary":
            table = table.set_column(1, "city", table.column("city").dictionary_encode())
        pq.write_table(table, workdir / "d.parquet")
        path = "d.parquet"
    records = fit_json(
        "--set", f"data.path={path}", "--set", "data.categorical=[city]", "--engine", "exact", "--summary"
    )
    fitted, summary = records[-2], records[-1]
    reference = smf.ols("y ~ x1 + C(city)", data=df).fit()
    names = [t["name"] for t in summary["terms"]]  # type: ignore[index, union-attr]
    assert names == ["intercept", "x1", "city[Lyon]", "city[Nice]", "city[Paris]"]  # Berlin, first sorted, is the base
    theirs = {"intercept": "Intercept", "x1": "x1"} | {
        f"city[{c}]": f"C(city)[T.{c}]" for c in ("Lyon", "Nice", "Paris")
    }
    coef = {t["name"]: t["coef"] for t in summary["terms"]}  # type: ignore[index, union-attr]
    for ours, name in theirs.items():
        np.testing.assert_allclose(coef[ours], reference.params[name], rtol=1e-8)
    w, b = np.array(fitted["weights"]), float(fitted["bias"])  # type: ignore[arg-type]
    design = np.column_stack([df.x1, *(df.city == c for c in ("Lyon", "Nice", "Paris"))]).astype(float)
    np.testing.assert_allclose(design @ w + b, reference.fittedvalues, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(summary["r2"], reference.rsquared, rtol=1e-8)
    np.testing.assert_allclose(summary["f_stat"], reference.fvalue, rtol=1e-8)
    saved = json.loads(next((workdir / "runs").glob("*/model.json")).read_text())
    assert saved["categorical"] == [
        {"column": "city", "levels": ["Berlin", "Lyon", "Nice", "Paris"], "baseline": "Berlin"}
    ]
    loaded = model.load(next((workdir / "runs").glob("*/model.json")))
    assert loaded.categorical == (Levels("city", ("Berlin", "Lyon", "Nice", "Paris")),)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_without_a_bias_the_first_categorical_column_is_coded_in_full_as_statsmodels_codes_it(
    workdir: Path, kind: str
) -> None:
    df = frame()
    df["size"] = np.random.default_rng(5).choice(["S", "M", "L"], size=len(df))
    df = df[["x1", "city", "size", "y"]]
    if kind == "csv":
        df.to_csv(workdir / "d.csv", index=False, float_format="%.17g")
    else:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), workdir / "d.parquet")
    settings = [f"data.path=d.{kind}", "data.categorical=[city, size]", "model.bias=false"]
    records = fit_json(*(a for s in settings for a in ("--set", s)), "--engine", "exact", "--summary")
    fitted, summary = records[-2], records[-1]
    reference = smf.ols("y ~ 0 + x1 + C(city) + C(size)", data=df).fit()  # no intercept: city has every level
    theirs = {"x1": "x1"} | {f"city[{c}]": f"C(city)[{c}]" for c in sorted(CITIES)}
    theirs |= {f"size[{s}]": f"C(size)[T.{s}]" for s in ("M", "S")}  # L, first sorted, is size's baseline
    coef = {t["name"]: t["coef"] for t in summary["terms"]}  # type: ignore[index, union-attr]
    assert list(coef) == list(theirs)
    for ours, name in theirs.items():
        np.testing.assert_allclose(coef[ours], reference.params[name], rtol=1e-8)
    assert fitted["r2_kind"] == "centered"  # the city columns sum to 1: statsmodels' implicit constant
    for ours, attribute in [("r2", "rsquared"), ("adj_r2", "rsquared_adj"), ("f_stat", "fvalue")]:
        np.testing.assert_allclose(summary[ours], getattr(reference, attribute), rtol=1e-8)
    np.testing.assert_allclose(fitted["r2"], reference.rsquared, rtol=1e-8)
    assert (summary["df_model"], summary["df_resid"]) == (reference.df_model, reference.df_resid)
    saved = json.loads(next((workdir / "runs").glob("*/model.json")).read_text())
    assert saved["categorical"][0] == {"column": "city", "levels": sorted(CITIES), "baseline": None}
    assert saved["categorical"][1]["baseline"] == "L"
    sample = df.iloc[0]
    predicted = cli("predict", f"{float(sample.x1)!r},{sample.city},{sample['size']}")
    assert predicted.exit_code == 0, predicted.output
    np.testing.assert_allclose(float(predicted.stdout), reference.fittedvalues.iloc[0], rtol=1e-9)
    evaluated = cli("evaluate", "--data", f"d.{kind}", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["r2"] == pytest.approx(reference.rsquared, rel=1e-9)
    scored = cli("predict", "--data", f"d.{kind}", "-o", "scored.csv")
    assert scored.exit_code == 0, scored.output
    np.testing.assert_allclose(pd.read_csv(workdir / "scored.csv")["prediction"], reference.fittedvalues, rtol=1e-9)


def test_a_null_spelling_in_a_csv_categorical_column_is_a_missing_cell_in_both_modes(workdir: Path) -> None:
    rows = [(i, ["NA", "Paris", "Lyon"][i % 3], i + (i % 3)) for i in range(1, 13)]
    (workdir / "na.csv").write_text("x,c,y\n" + "".join(f"{x},{c},{y}\n" for x, c, y in rows))
    settings = ["--set", "data.path=na.csv", "--set", "data.categorical=[c]", "--engine", "exact"]
    assert "na.csv, line 4, column 'c': 'NA' is not a level: it marks a missing cell" in fail(*settings)
    records = fit_json(*settings, "--set", "data.missing=drop")
    assert len(records[-1]["weights"]) == 2  # x and c[Paris]: no level NA, its rows dropped, as pandas reads them
    (workdir / "new.csv").write_text("x,c,y\n1,Paris,2\n2,NULL,3\n")
    for command in (["predict", "--data", "new.csv"], ["evaluate", "--data", "new.csv"]):
        refused = cli(*command)
        assert refused.exit_code == 2, refused.output
        assert "new.csv, line 3, column 'c': 'NULL' is not a level: it marks a missing cell" in refused.stderr
    pq.write_table(pa.table({"x": [1.0, 2, 3, 4], "c": ["NA", "b", "NA", "b"], "y": [1.0, 2, 2, 5]}), "s.parquet")
    parquet = fit_json("--set", "data.path=s.parquet", "--set", "data.categorical=[c]", "--engine", "exact")
    assert len(parquet[-1]["weights"]) == 2  # x and c[b]: in Parquet a null is a null, and the text NA a level


def test_standardizing_leaves_the_saved_weights_in_indicator_units(workdir: Path) -> None:
    frame().to_csv(workdir / "d.csv", index=False, float_format="%.17g")
    common = ["--set", "data.path=d.csv", "--set", "data.categorical=[city]", "--engine", "exact"]
    raw = fit_json(*common)[-1]
    scaled = fit_json(*common, "--set", "data.standardize=true")[-1]
    np.testing.assert_allclose(scaled["weights"], raw["weights"], rtol=1e-8)  # type: ignore[arg-type]
    np.testing.assert_allclose(scaled["bias"], raw["bias"], rtol=1e-8)  # type: ignore[arg-type]


def test_a_text_column_not_declared_categorical_says_how(workdir: Path) -> None:
    frame().to_csv(workdir / "d.csv", index=False)
    message = fail("--set", "data.path=d.csv")
    assert "d.csv, line 2, column 'city'" in message
    assert "'Berlin'" in message or "'Paris'" in message
    assert "data.categorical: [city]" in message
    pq.write_table(pa.Table.from_pandas(frame(), preserve_index=False), workdir / "d.parquet")
    message = fail("--set", "data.path=d.parquet")
    assert "column 'city' holds text, not numbers ('" in message
    assert "data.categorical: [city]" in message
    assert not (workdir / "runs").exists()


def test_a_single_level_and_a_categorical_target_are_refused(workdir: Path) -> None:
    df = frame()
    df["city"] = "Paris"
    df.to_csv(workdir / "d.csv", index=False)
    message = fail("--set", "data.path=d.csv", "--set", "data.categorical=[city]")
    assert "categorical column 'city' has a single level ('Paris' in every row)" in message
    message = fail("--set", "data.path=d.csv", "--set", "data.categorical=[y]")
    assert "column 'y' is the target" in message
    message = fail("--set", "data.path=d.csv", "--set", "data.categorical=[x1]", "--set", "data.features=[city]")
    assert "not among the features" in message


def test_a_level_that_validation_takes_whole_is_named_in_a_note(workdir: Path) -> None:
    """40 rows, one of level 'rare', held out for validation by the seed: no training row has it, its weight is 0
    and the model predicts it as the baseline; the run says so instead of leaving it to a summary's footnote."""
    from lrtrain.order import held_out

    rng = np.random.default_rng(2)
    lines = ["a,b,c,y"] + [
        f"{a:.6f},{b:.6f},{'rare' if i == 7 else ['p', 'q'][i % 2]},{2 * a + 3 * b + i % 2 + rng.normal():.6f}"
        for i, (a, b) in enumerate(rng.normal(size=(40, 2)))
    ]
    (workdir / "d.csv").write_text("\n".join(lines) + "\n")
    seed = next(s for s in range(100) if 7 in held_out(40, 20, s, 0, 40)[1])
    common = ["--set", "data.path=d.csv", "--set", "data.categorical=[c]", "--engine", "exact", "--json"]
    result = cli("fit", *common, "--set", "data.validation=0.5", "--set", f"seed={seed}")
    assert result.exit_code == 0, result.output
    assert "note: 1 level(s) occur only in the 20 validation rows" in result.stderr
    assert "c[rare] (baseline 'p')" in result.stderr
    whole = cli("fit", *common)
    assert "occur only in" not in whole.stderr
    summary = cli("fit", *common, "--set", "data.validation=0.5", "--set", f"seed={seed}", "--summary")
    assert "'c[rare]' is 0 in every row" in summary.stdout  # not "duplicates the intercept": it is all zeros
    standardized = ["--set", "data.validation=0.5", "--set", f"seed={seed}", "--set", "data.standardize=true"]
    refused = cli("fit", *common, *standardized)
    assert refused.exit_code == 2
    said = " ".join(refused.stderr.split())
    assert "the categorical level [rare] of column 'c' occurs only in the validation rows" in said
    assert "Drop it with data.features" not in said  # an indicator is not a column data.features can drop


def test_indicators_encode_known_levels_and_name_an_unseen_one() -> None:
    levels = levels_of("city", ["Paris", "Berlin", "Paris", "Lyon"], "test")
    assert levels == Levels("city", ("Berlin", "Lyon", "Paris"))
    assert levels.baseline == "Berlin"
    assert levels.names == ["city[Lyon]", "city[Paris]"]
    np.testing.assert_array_equal(indicators(levels, ["Lyon", "Berlin", "Paris"]), [[1, 0], [0, 0], [0, 1]])
    with pytest.raises(
        DataError, match=r"data file new\.csv, line 9, column 'city': level 'Rome' was not seen"
    ) as info:
        indicators(levels, ["Paris", "Rome"], lambda row: f"data file new.csv, line {row + 8}")
    assert "'Berlin', 'Lyon', 'Paris'" in str(info.value)
    assert ordered(["10", "9", "1.5"]) == ["1.5", "9", "10"]  # numbers in numeric order, as statsmodels sorts them
    assert ordered(["b", "10", "a"]) == ["10", "a", "b"]


def test_damaged_levels_in_a_model_file_are_refused(workdir: Path) -> None:
    frame().to_csv(workdir / "d.csv", index=False, float_format="%.17g")
    fit_json("--set", "data.path=d.csv", "--set", "data.categorical=[city]", "--engine", "exact")
    path = next((workdir / "runs").glob("*/model.json"))
    saved = json.loads(path.read_text())
    saved["categorical"][0]["baseline"] = "Paris"
    path.write_text(json.dumps(saved))
    with pytest.raises(ModelError, match="categorical levels are missing or malformed"):
        model.load(path)
    saved["categorical"][0]["baseline"] = None  # full coding needs a feature for every level: Berlin has none
    path.write_text(json.dumps(saved))
    with pytest.raises(ModelError, match="categorical levels are missing or malformed"):
        model.load(path)


MESSY = (
    "x1,city,y\n1,Paris,2.5\n2,,3\n3,Berlin,NA\n4,Lyon,5\n5,Paris,7.5\n"
    "6,Berlin,8\n7,Lyon,8\n8,Paris,11\n9,Berlin,10\n10,Lyon,11\n"
)


def test_missing_cells_are_an_error_by_default_naming_the_line(workdir: Path) -> None:
    (workdir / "d.csv").write_text(MESSY)
    message = fail("--set", "data.path=d.csv", "--set", "data.categorical=[city]")
    assert "d.csv, line 3, column 'city': '' is not a level: the cell is empty" in message
    assert "data.missing: drop" in message
    (workdir / "n.csv").write_text("x1,y\n1,2\n2,\n3,4\n")
    message = fail("--set", "data.path=n.csv")
    assert "n.csv, line 3, column 'y': '' is not a number: the cell is empty" in message


def test_drop_leaves_out_rows_with_a_missing_cell_and_says_so(workdir: Path) -> None:
    (workdir / "d.csv").write_text(MESSY)
    clean = "\n".join(line for i, line in enumerate(MESSY.splitlines()) if i not in (2, 3)) + "\n"
    (workdir / "clean.csv").write_text(clean)
    common = ["--set", "data.categorical=[city]", "--set", "data.validation=0.25", "--engine", "exact"]
    result = cli("fit", "--set", "data.path=d.csv", "--set", "data.missing=drop", *common, "--json")
    assert result.exit_code == 0, result.output
    assert f"note: dropped 2 of 10 rows of data file {workdir / 'd.csv'} with a missing cell" in result.stderr
    assert "city 1, y 1" in result.stderr
    dropped = json.loads(result.stdout.splitlines()[-1])
    reference = fit_json("--set", "data.path=clean.csv", *common)[-1]
    assert dropped["weights"] == reference["weights"]
    assert dropped["val_loss"] == reference["val_loss"]
    first, second = sorted((workdir / "runs").glob("*/model.json"))
    saved, clean_model = json.loads(first.read_text()), json.loads(second.read_text())
    assert saved["data"]["dropped"] == {"rows": 2, "columns": {"city": 1, "y": 1}}
    assert saved["data"]["rows"] == 8
    assert saved["data"]["sha256"] == clean_model["data"]["sha256"]
    assert clean_model["data"]["dropped"] is None


def test_drop_takes_a_cell_of_blanks_for_a_missing_one(workdir: Path) -> None:
    """A fixed-width export pads an empty cell with spaces or tabs: without drop it is refused as empty, and the
    fix that message gives (data.missing: drop) drops its row, in a number column and a categorical one."""
    (workdir / "s.csv").write_text("x1,x2,c,y\n   ,2,a,5\n2,1,\t,4\n3,5,b,13\n4,3,a,10.5\n5,0,b,5.2\n6,1,a,8\n")
    (workdir / "kept.csv").write_text("x1,x2,c,y\n3,5,b,13\n4,3,a,10.5\n5,0,b,5.2\n6,1,a,8\n")
    common = ["--set", "data.categorical=[c]", "--engine", "exact", "--set", "output.save=false"]
    refused = cli("fit", "--set", "data.path=s.csv", *common)
    assert refused.exit_code == 2
    assert "the cell is empty" in refused.stderr
    assert "data.missing=drop" in refused.stderr
    result = cli("fit", "--set", "data.path=s.csv", "--set", "data.missing=drop", *common, "--json")
    assert result.exit_code == 0, result.output
    assert "dropped 2 of 6 rows" in result.stderr
    assert "x1 1, c 1" in result.stderr
    reference = fit_json("--set", "data.path=kept.csv", *common)[-1]
    assert json.loads(result.stdout.splitlines()[-1])["weights"] == reference["weights"]


def test_drop_in_parquet_counts_nulls_and_keeps_numbers_checked(workdir: Path) -> None:
    table = pa.table({"a": [1.0, None, 3.0, 4.0, 5.0], "b": [1, 2, None, 4, 0], "y": [1.0, 2.0, 3.0, 5.0, 4.0]})
    pq.write_table(table, workdir / "d.parquet")
    message = fail("--set", "data.path=d.parquet")
    assert "d.parquet, row 1, column 'a': the value is missing (null)" in message
    (workdir / "c.yaml").write_text("data: {path: d.parquet, missing: drop}\n")
    source = sources.load(load_config(workdir / "c.yaml"))
    assert source.rows == 3
    assert source.dropped is not None
    assert source.dropped.to_json() == {"rows": 2, "columns": {"a": 1, "b": 1}}
    pq.write_table(pa.table({"a": [1.0, None, np.inf, 2.0], "y": [1.0, 2.0, 3.0, 4.0]}), workdir / "i.parquet")
    message = fail("--set", "data.path=i.parquet", "--set", "data.missing=drop")
    assert "i.parquet, row 2, column 'a': the value is inf, not a finite number" in message


def test_nulls_in_numeric_columns_are_filled_without_importing_pandas(workdir: Path) -> None:
    """A null filled through a pyarrow scalar imports pandas (0.2 s, tens of MB) where it is installed."""
    pq.write_table(pa.table({"a": [1.0, None, 3.0, 4.0], "b": [1, 2, None, 4], "y": [1.0, 2.0, 3.0, 5.0]}), "d.parquet")
    (workdir / "d.csv").write_text("a,b,y\n1,1,1\n,2,2\n3,,3\n4,4,5\n")
    pq.write_table(
        pa.table({"a": [1.0, 2.0, 3.0, 4.0], "c": ["u", None, "v", "u"], "y": [1.0, 2.0, 3.0, 4.0]}), "k.parquet"
    )
    script = textwrap.dedent(
        """
        import sys
        from lrtrain import sources
        from lrtrain.config import load_config

        for path in ("d.parquet", "d.csv"):
            for missing in ("drop", "error"):
                try:
                    table = sources.load(load_config(None, [f"data.path={path}", f"data.missing={missing}"]))
                    print(path, table.x.tolist(), table.y.tolist())
                except Exception as exc:
                    print(path, str(exc).replace("\\n", " "))
        config = load_config(None, ["data.path=k.parquet", "data.categorical=[c]", "data.missing=drop"])
        print("k.parquet", sources.load(config).y.tolist())
        print("pandas" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "False"
    assert lines[0] == "d.parquet [[1.0, 1.0], [4.0, 4.0]] [1.0, 5.0]"
    assert lines[2] == "d.csv [[1.0, 1.0], [4.0, 4.0]] [1.0, 5.0]"
    assert "d.parquet, row 1, column 'a': the value is missing (null)" in lines[1]
    assert "d.csv, line 3, column 'a'" in lines[3]
    assert lines[4] == "k.parquet [1.0, 3.0, 4.0]"


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_evaluate_and_predict_data_encode_level_names_as_training_did(workdir: Path, kind: str) -> None:
    df = frame()
    train, test = df.iloc[:200], df.iloc[200:]
    if kind == "csv":
        train.to_csv(workdir / "train.csv", index=False, float_format="%.17g")
        test[["city", "x1", "y"]].to_csv(workdir / "test.csv", index=False, float_format="%.17g")  # columns reordered
    else:
        pq.write_table(pa.Table.from_pandas(train, preserve_index=False), workdir / "train.parquet")
        pq.write_table(pa.Table.from_pandas(test, preserve_index=False), workdir / "test.parquet")
    source = "train.csv" if kind == "csv" else "train.parquet"
    fitted = cli("fit", "--set", f"data.path={source}", "--set", "data.categorical=[city]", "--engine", "exact")
    assert fitted.exit_code == 0, fitted.output
    reference = smf.ols("y ~ x1 + C(city)", data=train).fit()
    test_file = "test.csv" if kind == "csv" else "test.parquet"
    predicted = cli("predict", "--data", test_file)
    assert predicted.exit_code == 0, predicted.output
    rows = [line.split(",") for line in predicted.stdout.splitlines()]
    column = rows[0].index("prediction")
    values = np.array([float(row[column]) for row in rows[1:]])
    np.testing.assert_allclose(values, reference.predict(test).to_numpy(), rtol=1e-9)
    evaluated = cli("evaluate", "--data", test_file, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    record = json.loads(evaluated.stdout.splitlines()[-1])
    residual = test["y"].to_numpy() - reference.predict(test).to_numpy()
    assert record["mse"] == pytest.approx(float(np.mean(residual**2)), rel=1e-9)
    unseen = test.assign(city=["Rome", *test["city"].iloc[1:]])
    unseen[["x1", "city", "y"]].to_csv(workdir / "unseen.csv", index=False)
    refused = cli("predict", "--data", "unseen.csv")
    assert refused.exit_code == 2
    assert "level 'Rome' was not seen in training" in refused.stderr
    assert "'Berlin'" in refused.stderr


def test_a_cell_names_a_level_by_its_number_when_every_cell_is_one_else_by_its_text() -> None:
    numeric = levels_of("c", ["1", "1.0", "01", " 1", "+1e0", "2.50", "10", "-0"], "test")
    assert numeric.levels == ("0", "1", "2.5", "10")  # one level per number, named by its shortest text
    assert numeric.numeric
    assert [numeric.find(cell) for cell in ("1.00", " 10 ", "25e-1", "-0.0", "3", "one")] == [1, 3, 2, 0, None, None]
    mixed = levels_of("c", ["1", "1.0", "a", " a ", "b"], "test")
    assert mixed.levels == ("1", "1.0", "a", "b")  # text, as pandas keeps a column that is not all numbers
    assert not mixed.numeric
    assert [mixed.find(cell) for cell in ("1", " 1.0", "01", "a ")] == [0, 1, None, 2]
    assert number_text("12345678901234567891") == "12345678901234567891"  # integers exactly, however long
    big = levels_of("c", ["9007199254740992", "9007199254740993", "9007199254740994"], "test")  # past 2^53
    spelled = ("9007199254740993.0", "9.007199254740993e15", "9007199254740992.0")
    assert [big.find(cell) for cell in spelled] == [1, 1, 0]
    assert [number_text(cell) for cell in ("1_000", "inf", "nan", "1e999", "١", "", "9" * 5000)] == [None] * 7
    assert Levels("c", ("1.0", "2.0")).find("1") is None  # levels that are not shortest texts match as text


SPELLINGS = {1: ["1", "1.0", "01", " 1", "+1"], 2: ["2", "2.0", "2e0"], 3: ["3", "3.00"]}


def spelled(rows: int = 90, seed: int = 6) -> tuple[pd.DataFrame, list[str]]:
    """Rows with a numeric category c (1, 2 or 3), and c's cells written in several ways each."""
    rng = np.random.default_rng(seed)
    c = rng.choice([1, 2, 3], size=rows)
    x1 = rng.normal(size=rows)
    y = 2 * x1 + np.array([0.0, 1.5, -0.5])[c - 1] + 1 + rng.normal(scale=0.3, size=rows)
    cells = [SPELLINGS[v][i % len(SPELLINGS[v])] for i, v in enumerate(c)]
    return pd.DataFrame({"x1": x1, "c": c, "y": y}), cells


def test_numeric_levels_spelled_differently_are_one_level_in_csv_and_parquet_as_statsmodels_has_them(
    workdir: Path,
) -> None:
    df, cells = spelled()
    lines = [f"{x!r},{cell},{y!r}" for x, cell, y in zip(df.x1, cells, df.y, strict=True)]
    (workdir / "d.csv").write_text("x1,c,y\n" + "\n".join(lines) + "\n")
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), workdir / "int.parquet")
    pq.write_table(pa.Table.from_pandas(df.astype({"c": float}), preserve_index=False), workdir / "float.parquet")
    reference = smf.ols("y ~ x1 + C(c)", data=pd.read_csv(workdir / "d.csv")).fit()  # pandas reads c as 1.0, 2.0, 3.0
    fits = {}
    for path in ("d.csv", "int.parquet", "float.parquet"):
        fits[path] = fit_json(
            "--set", f"data.path={path}", "--set", "data.categorical=[c]", "--engine", "exact", "--summary"
        )
    for records in fits.values():
        summary = records[-1]
        assert [t["name"] for t in summary["terms"]] == ["intercept", "x1", "c[2]", "c[3]"]  # type: ignore[index, union-attr]
        coef = [t["coef"] for t in summary["terms"]]  # type: ignore[index, union-attr]
        theirs = reference.params[["Intercept", "x1", "C(c)[T.2.0]", "C(c)[T.3.0]"]].to_numpy()
        np.testing.assert_allclose(coef, theirs, rtol=1e-8)
        np.testing.assert_allclose(summary["r2"], reference.rsquared, rtol=1e-8)
        np.testing.assert_allclose(summary["f_stat"], reference.fvalue, rtol=1e-8)
        np.testing.assert_allclose(records[-2]["weights"], fits["d.csv"][-2]["weights"], rtol=1e-12)  # type: ignore[arg-type]
    for path in (workdir / "runs").glob("*/model.json"):
        assert json.loads(path.read_text())["categorical"] == [
            {"column": "c", "levels": ["1", "2", "3"], "baseline": "1"}
        ]


@pytest.mark.parametrize("kind", ["csv", "parquet-float"])
def test_predict_data_and_evaluate_find_a_numeric_level_however_it_is_spelled(workdir: Path, kind: str) -> None:
    df, _ = spelled()
    df.to_csv(workdir / "train.csv", index=False, float_format="%.17g")  # c written 1, 2, 3
    assert (
        cli("fit", "--set", "data.path=train.csv", "--set", "data.categorical=[c]", "--engine", "exact").exit_code == 0
    )
    reference = smf.ols("y ~ x1 + C(c)", data=df).fit()
    test, cells = spelled(rows=40, seed=7)
    expected = reference.predict(test).to_numpy()
    if kind == "csv":
        lines = [f"{x!r},{cell},{y!r}" for x, cell, y in zip(test.x1, cells, test.y, strict=True)]
        (workdir / "test.csv").write_text("x1,c,y\n" + "\n".join(lines) + "\n")
        name = "test.csv"
    else:
        pq.write_table(pa.Table.from_pandas(test.astype({"c": float}), preserve_index=False), workdir / "test.parquet")
        name = "test.parquet"
    predicted = cli("predict", "--data", name)
    assert predicted.exit_code == 0, predicted.output
    rows = [line.split(",") for line in predicted.stdout.splitlines()[1:]]
    np.testing.assert_allclose([float(row[-1]) for row in rows], expected, rtol=1e-9)
    evaluated = cli("evaluate", "--data", name, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    mse = float(np.mean((test.y.to_numpy() - expected) ** 2))
    assert json.loads(evaluated.stdout)["mse"] == pytest.approx(mse, rel=1e-9)
    (workdir / "new.csv").write_text("x1,c,y\n0.5,2.0,1\n0.5,4.0,1\n")
    refused = cli("evaluate", "--data", "new.csv")
    assert refused.exit_code == 2
    assert refused.stdout == ""
    message = " ".join(refused.stderr.split())
    assert "new.csv, line 3, column 'c': level '4.0' was not seen in training" in message
    assert "The known levels are '1', '2', '3'" in message


def test_text_levels_are_read_without_surrounding_spaces_and_booleans_round_trip(workdir: Path) -> None:
    df = frame(rows=120)
    spaced = df.assign(city=[f" {c}" if i % 3 == 0 else c for i, c in enumerate(df.city)])
    spaced.to_csv(workdir / "d.csv", index=False, float_format="%.17g")
    records = fit_json("--set", "data.path=d.csv", "--set", "data.categorical=[city]", "--engine", "exact")
    reference = smf.ols("y ~ x1 + C(city)", data=df).fit()
    np.testing.assert_allclose(records[-1]["bias"], reference.params["Intercept"], rtol=1e-8)  # type: ignore[arg-type]
    saved = json.loads(next((workdir / "runs").glob("*/model.json")).read_text())
    assert saved["categorical"][0]["levels"] == ["Berlin", "Lyon", "Nice", "Paris"]
    flag = pa.table({"x1": df.x1, "member": df.city.isin(["Paris", "Lyon"]), "y": df.y})
    pq.write_table(flag, workdir / "flag.parquet")
    fitted = cli("fit", "--set", "data.path=flag.parquet", "--set", "data.categorical=[member]", "--engine", "exact")
    assert fitted.exit_code == 0, fitted.output
    evaluated = cli("evaluate", "--data", "flag.parquet", "--json")  # the training table, read again
    assert evaluated.exit_code == 0, evaluated.output
    frame_flag = flag.to_pandas()
    r2 = smf.ols("y ~ x1 + C(member)", data=frame_flag).fit().rsquared
    assert json.loads(evaluated.stdout)["r2"] == pytest.approx(r2, rel=1e-9)
    pacsv.write_csv(flag, workdir / "flag.csv")  # pyarrow spells the booleans true and false
    exported = cli("evaluate", "--data", "flag.csv", "--json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["r2"] == pytest.approx(r2, rel=1e-9)
    spelled = (workdir / "flag.csv").read_text().replace("true", "TRUE").replace("false", "False")
    (workdir / "spelled.csv").write_text(spelled)  # pandas' spellings, mixed: the same two levels
    member = ["--set", "data.categorical=[member]", "--engine", "exact"]
    from_csv = fit_json("--set", "data.path=spelled.csv", *member)
    from_parquet = fit_json("--set", "data.path=flag.parquet", *member)
    np.testing.assert_allclose(from_csv[-1]["weights"], from_parquet[-1]["weights"], rtol=1e-12)  # type: ignore[arg-type]
    levels = [json.loads(m.read_text())["categorical"][0]["levels"] for m in (workdir / "runs").glob("*/model.json")]
    assert levels.count(["False", "True"]) == 3, levels  # the Parquet runs and the CSV one alike
    assert cli("predict", "1.5,true").exit_code == 0


def test_a_blank_or_nan_categorical_cell_is_missing_not_a_level(workdir: Path) -> None:
    (workdir / "d.csv").write_text("x1,c,y\n1,a,1\n2,  ,2\n3,b,4\n4,a,4\n5,b,7\n")
    message = fail("--set", "data.path=d.csv", "--set", "data.categorical=[c]")
    assert "d.csv, line 3, column 'c': '' is not a level: the cell is empty" in message
    table = pa.table({"x1": [1.0, 2, 3, 4, 5], "c": [1.0, np.nan, 2.0, 1.0, 2.0], "y": [1.0, 2, 4, 4, 7]})
    pq.write_table(table, workdir / "d.parquet")
    for path in ("d.csv", "d.parquet"):
        result = cli("fit", "--set", f"data.path={path}", "--set", "data.categorical=[c]", "--set", "data.missing=drop")
        assert result.exit_code == 0, result.output
        assert "dropped 1 of 5 rows" in result.stderr
    for path in (workdir / "runs").glob("*/model.json"):
        saved = json.loads(path.read_text())
        assert saved["data"]["dropped"] == {"rows": 1, "columns": {"c": 1}}
        assert saved["categorical"][0]["levels"] in (["a", "b"], ["1", "2"])


def shops(rows: int = 200, seed: int = 8) -> pd.DataFrame:
    """A table whose categorical column comes first, between it and the target two numbers."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["New York", *CITIES], size=rows)
    x1, x2 = rng.normal(size=rows) * 2 + 10, rng.normal(size=rows)
    effect = {"New York": 4.0, "Paris": 2.0, "Berlin": 0.0, "Lyon": -1.0, "Nice": 0.5}
    y = 1.5 * x1 - 2 * x2 + np.array([effect[c] for c in city]) + rng.normal(scale=0.5, size=rows)
    return pd.DataFrame({"city": city, "x1": x1, "x2": x2, "y": y})


@pytest.fixture
def shop_model(workdir: Path) -> smf.ols:
    """A model fitted on shops() (levels Berlin, Lyon, New York, Nice, Paris) and statsmodels' fit of it."""
    df = shops()
    df.to_csv(workdir / "d.csv", index=False, float_format="%.17g")
    fitted = cli("fit", "--set", "data.path=d.csv", "--set", "data.categorical=[city]", "--engine", "exact")
    assert fitted.exit_code == 0, fitted.output
    return smf.ols("y ~ C(city) + x1 + x2", data=df).fit()


ASKED = pd.DataFrame({"city": ["Paris", "Berlin", "New York", "Nice", "Lyon"], "x1": [12, 9.5, 10, 11, 8],
                      "x2": [0.5, -1, 0, 2, 1]})  # fmt: skip


def test_predict_takes_one_value_per_column_a_level_name_for_a_categorical_one(shop_model: smf.ols) -> None:
    expected = shop_model.predict(ASKED).to_numpy()
    result = cli("predict", "Paris,12,0.5", "Berlin 9.5 -1", "New York, 10, 0", "-", input=" Nice,11,2\nLyon 8 1\n")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    np.testing.assert_allclose([float(v) for v in result.stdout.split()], expected, rtol=1e-9)
    records = [json.loads(line) for line in cli("predict", "Paris,12,0.5", "--json").stdout.splitlines()]
    assert records[0]["input"] == ["Paris", 12.0, 0.5]
    assert records[0]["prediction"] == pytest.approx(expected[0], rel=1e-9)
    told = " ".join(cli("predict", "--help").stdout.split())
    assert "takes one value per column of its training table, in order, a level name for a categorical one" in told


def test_predict_interval_on_a_categorical_model_equals_statsmodels(shop_model: smf.ols) -> None:
    samples = [",".join(str(v) for v in row) for row in ASKED.itertuples(index=False)]
    result = cli("predict", *samples, "--interval", "0.9")
    assert result.exit_code == 0, result.output
    ours = np.array([[float(v) for v in line.split()] for line in result.stdout.splitlines()])
    frame_ = shop_model.get_prediction(ASKED).summary_frame(alpha=0.1)
    np.testing.assert_allclose(ours[:, 0], frame_["mean"], rtol=1e-9)
    np.testing.assert_allclose(ours[:, 1], frame_["obs_ci_lower"], rtol=1e-8)
    np.testing.assert_allclose(ours[:, 2], frame_["obs_ci_upper"], rtol=1e-8)


@pytest.mark.parametrize(
    ("sample", "said"),
    [
        ("Rome,12,0.5", ["argument 2 ('Rome,12,0.5'): column 'city': level 'Rome' was not seen in training",
                         "The known levels are 'Berlin', 'Lyon', 'New York', 'Nice', 'Paris'."]),
        ("0,1,0,0,12,0.5", ["takes 3 value(s), one per column of its training table: city (a level: 'Berlin', "
                            "'Lyon', 'New York', 'Nice', 'Paris'), x1 (a number), x2 (a number); but got 6",
                            "include the indicator columns city[Lyon], city[New York], city[Nice], city[Paris], "
                            "which predict makes from the level name", "e.g. lrtrain predict Berlin,1,1."]),
        ("12,0.5", ["takes 3 value(s)", "but got 2: 12, 0.5. Give each sample"]),
        ("Paris,twelve,0.5", ["argument 2 ('Paris,twelve,0.5'): 'twelve' is not a number", "Column 'x1' takes"]),
        ("Paris,,0.5", ["field 2 of 'Paris,,0.5' is empty", "Give one value between each pair of commas"]),
    ],
    ids=["unseen level", "indicator values", "too few", "not a number", "empty field"],
)  # fmt: skip
def test_predict_on_a_categorical_model_refuses_a_bad_sample_naming_it(
    shop_model: smf.ols, sample: str, said: list[str]
) -> None:
    result = cli("predict", "Paris,12,0.5", sample)
    assert result.exit_code == 2
    assert result.stdout == ""  # arguments are all checked before any is answered
    message = " ".join(result.stderr.split())
    assert message.startswith("error: ")
    assert "Traceback" not in message
    for part in said:
        assert part in message
    streamed = cli("predict", "-", input=f"Paris,12,0.5\n{sample}\n")
    assert streamed.exit_code == 2
    assert len(streamed.stdout.splitlines()) == 1  # the line before it was answered
    assert "stdin line 2" in streamed.stderr


def test_a_numeric_categorical_column_takes_its_level_in_any_spelling(workdir: Path) -> None:
    df, cells = spelled()
    lines = [f"{x!r},{cell},{y!r}" for x, cell, y in zip(df.x1, cells, df.y, strict=True)]
    (workdir / "d.csv").write_text("x1,c,y\n" + "\n".join(lines) + "\n")
    assert cli("fit", "--set", "data.path=d.csv", "--set", "data.categorical=[c]", "--engine", "exact").exit_code == 0
    reference = smf.ols("y ~ x1 + C(c)", data=df).fit()
    expected = reference.predict(pd.DataFrame({"x1": [0.5] * 4, "c": [2, 2, 2, 3]})).to_numpy()
    result = cli("predict", "0.5,2", "0.5,2.0", "0.5 02", "0.5,3e0")
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose([float(v) for v in result.stdout.split()], expected, rtol=1e-9)
    refused = cli("predict", "0.5,4")
    assert refused.exit_code == 2
    assert "column 'c': level '4' was not seen in training" in refused.stderr
    assert "The known levels are '1', '2', '3'" in " ".join(refused.stderr.split())


def test_a_model_of_one_categorical_column_takes_the_level_spaces_and_all(workdir: Path) -> None:
    df = shops()
    df.to_csv(workdir / "d.csv", index=False, float_format="%.17g")
    settings = ["--set", "data.features=[city]", "--set", "data.categorical=[city]", "--engine", "exact"]
    assert cli("fit", "--set", "data.path=d.csv", *settings).exit_code == 0
    result = cli("predict", "New York", "-", input="Paris\n")
    assert result.exit_code == 0, result.output
    means = df.groupby("city")["y"].mean()  # one indicator per level: each prediction is its level's mean
    np.testing.assert_allclose([float(v) for v in result.stdout.split()], means[["New York", "Paris"]], rtol=1e-9)


@pytest.mark.slow
def test_installed_predict_encodes_levels_without_numpy(shop_model: smf.ols, workdir: Path) -> None:
    args = ["predict", "Paris,12,0.5", "New York,10,0", "--interval", "0.9"]
    in_process = cli(*args)
    assert in_process.exit_code == 0, in_process.output
    interval = run_installed(*args, cwd=workdir)  # the fast path, as a shell loop runs it
    assert (interval.returncode, interval.stdout, interval.stderr) == (0, in_process.stdout, "")
    plain = run_installed("predict", "Paris,12,0.5", cwd=workdir, python_flags=("-X", "importtime"))
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == in_process.stdout.split()[0] + "\n"
    assert not re.search(r"\|\s*(numpy|pyarrow|typer|torch)(\.|$)", plain.stderr, re.MULTILINE)
    refused = run_installed("predict", "Rome,12,0.5", cwd=workdir)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert "level 'Rome' was not seen in training" in refused.stderr


def test_a_level_that_holds_a_comma_is_given_in_quotes_as_in_a_csv_cell(workdir: Path) -> None:
    (workdir / "lev.csv").write_text('x,c,y\n1,"w,v",1\n2,z,3\n3,"w,v",2\n4,z,5\n5,q,6\n6,q,7\n')
    assert cli("fit", "--engine", "exact", "--set", "data.path=lev.csv", "--set", "data.categorical=[c]").exit_code == 0
    quoted = cli("predict", '1,"w,v"', "-", input='3, "w,v"\n')
    assert quoted.exit_code == 0, quoted.output
    first, second = map(float, quoted.stdout.split())
    table = pd.read_csv(workdir / "lev.csv")
    reference = smf.ols("y ~ x + C(c)", data=table).fit()
    expected = reference.predict(pd.DataFrame({"x": [1, 3], "c": ["w,v", "w,v"]}))
    np.testing.assert_allclose([first, second], expected, rtol=1e-9)
    bare = cli("predict", "1,w,v")
    assert bare.exit_code == 2
    assert 'A level that holds a comma goes in quotes, as in a CSV cell: "w,v"' in bare.stderr
    unclosed = cli("predict", '1,"w,v')
    assert unclosed.exit_code == 2
    assert "has a quote that does not close" in unclosed.stderr
    (workdir / "q.csv").write_text('x,c,y\n1,"say ""hi"", ok",1\n2,z,3\n3,"say ""hi"", ok",2\n4,z,5\n')
    assert cli("fit", "--engine", "exact", "--set", "data.path=q.csv", "--set", "data.categorical=[c]").exit_code == 0
    hinted = cli("predict", '1,say "hi", ok')
    assert hinted.exit_code == 2
    quoted_level = '"say ""hi"", ok"'  # its quotes doubled, as in a CSV cell
    assert f"goes in quotes, as in a CSV cell: {quoted_level}" in hinted.stderr
    assert cli("predict", f"1,{quoted_level}").exit_code == 0  # the hint, followed, works


def test_a_model_that_has_na_as_a_level_takes_it_from_a_csv_too(workdir: Path) -> None:
    rng = np.random.default_rng(1)
    region = rng.choice(["EU", "NA", "AS"], size=60)
    x = rng.normal(size=60)
    table = pd.DataFrame({"x": x, "region": region, "y": 1 + 2 * x + (region == "NA") * 3 + rng.normal(size=60) * 0.1})
    table.to_parquet(workdir / "region.parquet", index=False)  # in Parquet the text NA is a level, as pandas has it
    table.to_csv(workdir / "region.csv", index=False)
    trained = cli("fit", "--engine", "exact", "--set", "data.path=region.parquet", "--set", "data.categorical=[region]")
    assert trained.exit_code == 0, trained.output
    scored = cli("predict", "--data", "region.csv")
    assert scored.exit_code == 0, scored.output  # a level the model knows is that level, in a CSV too
    reference = smf.ols("y ~ x + C(region)", data=table).fit()
    np.testing.assert_allclose(pd.read_csv(io.StringIO(scored.stdout))["prediction"], reference.fittedvalues, rtol=1e-9)


def test_a_level_written_composed_or_decomposed_is_one_level_in_fit_and_in_predict(workdir: Path) -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"  # the same word to the eye: one level, as the user reads it
    rows = [f"{i},{(composed, decomposed, 'tea')[i % 3]},{2 * i + (5 if i % 3 < 2 else 0)}" for i in range(12)]
    (workdir / "d.csv").write_text("x,drink,y\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = cli("fit", "--engine", "exact", "--set", "data.path=d.csv", "--set", "data.categorical=[drink]")
    assert result.exit_code == 0, result.output
    (path,) = workdir.glob("runs/*/model.json")
    model = json.loads(path.read_text(encoding="utf-8"))
    assert model["categorical"] == [{"column": "drink", "levels": [composed, "tea"], "baseline": composed}]
    answers = {float(cli("predict", f"1,{spelling}").stdout) for spelling in (composed, decomposed)}
    assert len(answers) == 1
    assert answers.pop() == pytest.approx(7.0)
    (workdir / "p.csv").write_text(f"x,drink\n1,{decomposed}\n", encoding="utf-8")
    assert float(cli("predict", "--data", "p.csv").stdout.splitlines()[1].split(",")[-1]) == pytest.approx(7.0)
