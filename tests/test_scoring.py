"""`predict --data` and `evaluate`: a saved model on a CSV or Parquet table, as a user meets it, every number
against NumPy and scikit-learn on the same file."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from lrtrain import scoring
from lrtrain.model import load

from .conftest import SUBPROCESS_TIMEOUT, cli, files_under, run_installed

WEIGHTS = np.array([2.0, -1.0, 0.5])


def _fit(workdir: Path, bias: bool = True) -> Path:
    """An exact model of y on a, b, c (with or without a bias); its run folder."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = x @ WEIGHTS + (3.0 if bias else 0.0) + rng.normal(scale=0.1, size=200)
    with (workdir / "train.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "c", "y"])
        writer.writerows(np.column_stack([x, y]).tolist())
    settings = ["--set", "data.path=train.csv", "--set", f"model.bias={str(bias).lower()}", "--engine", "exact"]
    result = cli("fit", *settings)
    assert result.exit_code == 0, result.output
    return next((workdir / "runs").iterdir())


def _test_table(rows: int = 150, offset: float = 3.0, seed: int = 1) -> dict[str, np.ndarray]:
    """Test rows, the columns in another order than the model's and with an extra text column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    y = x @ WEIGHTS + offset + rng.normal(scale=0.2, size=rows)
    return {"id": np.array([f"r{i}" for i in range(rows)]), "c": x[:, 2], "y": y, "b": x[:, 1], "a": x[:, 0]}


def _write_csv(path: Path, table: dict[str, np.ndarray], delimiter: str = ",") -> Path:
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter, lineterminator="\n")
    writer.writerow(list(table))
    writer.writerows(zip(*(col.tolist() for col in table.values()), strict=True))
    data = text.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _reference(model_dir: Path, table: dict[str, np.ndarray], centered: bool = True) -> dict[str, float]:
    model = load(model_dir)
    x = np.column_stack([table[name] for name in model.features])
    y_true, y_hat = table["y"], x @ np.array(model.weights) + model.bias
    mse = mean_squared_error(y_true, y_hat)
    total = np.sum((y_true - y_true.mean()) ** 2) if centered else np.sum(y_true**2)
    r2 = r2_score(y_true, y_hat) if centered else 1 - np.sum((y_true - y_hat) ** 2) / total
    return {"mse": mse, "rmse": np.sqrt(mse), "mae": mean_absolute_error(y_true, y_hat), "r2": r2}


def _evaluation(*args: str) -> dict[str, object]:
    result = cli("evaluate", *args, "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    (line,) = result.stdout.splitlines()
    record: dict[str, object] = json.loads(line)
    assert record["schema"] == "lrtrain/1"
    assert record["event"] == "evaluation"
    return record


@pytest.mark.parametrize("name", ["test.csv", "test.csv.gz", "test.tsv", "test.parquet"])
def test_evaluate_matches_scikit_learn_in_every_format(workdir: Path, name: str) -> None:
    run = _fit(workdir)
    table = _test_table()
    path = workdir / name
    if name.endswith(".parquet"):
        pq.write_table(pa.table(table), path)
    else:
        _write_csv(path, table, "\t" if name.endswith(".tsv") else ",")
    record = _evaluation("--data", str(path))  # the newest run, as summary finds it
    expected = _reference(run, table)
    assert record["rows"] == 150
    assert record["r2_centered"] is True
    assert record["target"] == "y"
    for key, value in expected.items():
        assert record[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_evaluate_in_many_batches_is_exact_far_from_zero(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of a few hundred bytes (CSV) or 7 rows (Parquet): the same numbers; and a target around 1e8,
    whose spread a one-pass Σy² − (Σy)²/n would lose, gives NumPy's two-pass R²."""
    run = _fit(workdir)
    monkeypatch.setattr(scoring, "CSV_BATCH_BYTES", 512)
    monkeypatch.setattr(scoring, "PARQUET_BATCH_ROWS", 7)
    table = _test_table(rows=1000, offset=1e8, seed=2)
    _write_csv(workdir / "far.csv", table)
    pq.write_table(pa.table(table), workdir / "far.parquet")
    expected = _reference(run, table)
    for path in ("far.csv", "far.parquet"):
        record = _evaluation(str(run), "--data", path)
        assert record["rows"] == 1000
        assert record["mse"] == pytest.approx(expected["mse"], rel=1e-12)
        assert record["mae"] == pytest.approx(expected["mae"], rel=1e-12)
        assert record["r2"] == pytest.approx(expected["r2"], rel=1e-9, abs=1e-12)


def test_quoted_line_ends_in_cells_are_read_in_every_batch(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A text column whose cells hold line ends ("a<LF>b"), in batches of a few hundred bytes, so that batches end
    inside them: evaluate and predict --data read every row, as fit does, and the cells come out whole."""
    run = _fit(workdir)
    monkeypatch.setattr(scoring, "CSV_BATCH_BYTES", 512)
    table = _test_table(rows=400, seed=3)
    table["id"] = np.array([f"row {i}\nsecond line, with a comma" for i in range(400)])
    _write_csv(workdir / "notes.csv", table)
    record = _evaluation(str(run), "--data", "notes.csv")
    assert record["rows"] == 400
    assert record["mse"] == pytest.approx(_reference(run, table)["mse"], rel=1e-12)
    result = cli("predict", "--model", str(run), "--data", "notes.csv", "-o", "out.csv")
    assert result.exit_code == 0, result.output
    with (workdir / "out.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["id"] for row in rows] == table["id"].tolist()


def test_a_folder_of_parquet_files_is_read_as_fit_reads_it(workdir: Path) -> None:
    """Every file under the folder in name order, as one table: the same predictions and errors as one file."""
    run = _fit(workdir)
    table = _test_table(rows=90)
    whole = pa.table(table)
    (workdir / "parts").mkdir()
    pq.write_table(whole.slice(0, 40), workdir / "parts" / "a.parquet")
    later = whole.slice(40)  # the same columns in another order: the same table, as fit reads it
    pq.write_table(later.select(list(reversed(later.column_names))), workdir / "parts" / "b.parquet")
    (workdir / "parts" / "_SUCCESS").write_text("")
    pq.write_table(whole, workdir / "one.parquet")
    parted, single = _evaluation(str(run), "--data", "parts"), _evaluation(str(run), "--data", "one.parquet")
    assert parted["rows"] == single["rows"] == 90
    for key in ("mse", "rmse", "mae", "r2"):
        assert parted[key] == pytest.approx(single[key], rel=1e-12), key
    parts = cli("predict", "--model", str(run), "--data", "parts")
    assert parts.exit_code == 0, parts.output
    assert parts.stdout == cli("predict", "--model", str(run), "--data", "one.parquet").stdout
    pq.write_table(whole.drop_columns(["id"]), workdir / "parts" / "c.parquet")
    other = cli("evaluate", str(run), "--data", "parts")
    assert other.exit_code == 2
    assert "c.parquet has other columns than" in other.stderr


def test_evaluate_without_a_bias_reports_the_uncentered_r2_as_fit_does(workdir: Path) -> None:
    run = _fit(workdir, bias=False)
    table = _test_table(offset=0.0)
    _write_csv(workdir / "test.csv", table)
    record = _evaluation(str(run / "model.json"), "--data", "test.csv")
    assert record["r2_centered"] is False
    assert record["r2"] == pytest.approx(_reference(run, table, centered=False)["r2"], rel=1e-12)
    # on the training rows, evaluate's R² is fit's
    stored = json.loads((run / "model.json").read_text())["metrics"]["r2"]
    assert _evaluation(str(run), "--data", "train.csv")["r2"] == pytest.approx(stored, rel=1e-9)


@pytest.mark.parametrize(("delimiter", "given"), [(";", ";"), ("|", "|"), ("\t", "\\t"), ("\t", "tab")])
def test_evaluate_and_predict_read_a_table_separated_as_delimiter_says(
    workdir: Path, delimiter: str, given: str
) -> None:
    """A test table saved with ';' (a European spreadsheet), '|' or tabs in a .csv file: --delimiter says so."""
    run = _fit(workdir)
    table = _test_table()
    _write_csv(workdir / "test.csv", table, delimiter)
    record = _evaluation("--data", "test.csv", "--delimiter", given)
    for key, value in _reference(run, table).items():
        assert record[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    result = cli("predict", "--data", "test.csv", "--delimiter", given)
    assert result.exit_code == 0, result.output
    model = load(run)
    rows = _predict_rows(result.stdout)  # written as CSV, comma-separated
    assert len(rows) == 150
    first = [float(rows[0][name]) for name in model.features]
    assert float(rows[0]["prediction"]) == pytest.approx(model.predict(first), rel=1e-12)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["evaluate", "--data", "t.csv", "--delimiter", ";;"], ("--delimiter ';;'", "not one character")),
        (["evaluate", "--data", "t.csv", "--delimiter", '"'], ("cannot separate fields",)),
        (["evaluate", "--data", "t.parquet", "--delimiter", ";"], ("--delimiter is for a CSV table", "Parquet")),
        (["predict", "5", "--delimiter", ";"], ("give the table with --data FILE",)),
    ],
    ids=["two characters", "a quote", "parquet", "no table"],
)
def test_a_delimiter_that_cannot_apply_is_exit_2(workdir: Path, args: list[str], words: tuple[str, ...]) -> None:
    _fit(workdir)
    _write_csv(workdir / "t.csv", _test_table(), ";")
    pq.write_table(pa.table(_test_table()), workdir / "t.parquet")
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    for word in words:
        assert word in result.stderr, (word, result.stderr)


def test_evaluate_prints_key_value_lines_when_piped(workdir: Path) -> None:
    _fit(workdir)
    _write_csv(workdir / "test.csv", _test_table())
    result = cli("evaluate", "--data", "test.csv")
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert list(lines) == ["model", "data", "target", "rows", "mse", "rmse", "mae", "r2"]
    assert lines["rows"] == "150"
    assert lines["r2"].startswith("0.9")


def _predict_rows(result_stdout: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(result_stdout)))


def test_predict_data_writes_the_table_and_a_prediction_per_row(workdir: Path) -> None:
    run = _fit(workdir)
    (workdir / "t.csv").write_text('id,c,a,b\n"x, 1",1.50,0,2\nplain, -1 ,3e0,0.25\n')
    result = cli("predict", "--data", "t.csv")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "id,c,a,b,prediction"
    assert lines[1].startswith('"x, 1",1.50,0,2,')  # the cells as they were, quoted where needed
    assert lines[2].startswith("plain, -1 ,3e0,0.25,")
    model = load(run)
    for row, sample in zip(_predict_rows(result.stdout), ([0, 2, 1.5], [3, 0.25, -1]), strict=True):
        assert float(row["prediction"]) == pytest.approx(model.predict([float(v) for v in sample]), rel=1e-12)


def test_predict_data_from_parquet_in_batches_matches_predict_values(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _fit(workdir)
    monkeypatch.setattr(scoring, "PARQUET_BATCH_ROWS", 16)
    table = _test_table(rows=100)
    pq.write_table(pa.table(table), workdir / "t.parquet")
    result = cli("predict", "--model", str(run), "--data", "t.parquet", "--interval", "0.9")
    assert result.exit_code == 0, result.output
    rows = _predict_rows(result.stdout)
    assert len(rows) == 100
    assert list(rows[0]) == ["id", "c", "y", "b", "a", "prediction", "lower", "upper"]
    model = load(run)
    for i, row in enumerate(rows):
        sample = [table[name][i] for name in model.features]
        expected = model.interval(sample, 0.9)  # the one-sample path, plain Python
        got = [float(row[key]) for key in ("prediction", "lower", "upper")]
        assert got == pytest.approx(list(expected), rel=1e-10)
        assert row["id"] == f"r{i}"
        assert float(row["a"]) == table["a"][i]


def test_predict_data_to_a_file_is_atomic(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fit(workdir)
    table = _test_table(rows=400)
    _write_csv(workdir / "t.csv", table)
    result = cli("predict", "--data", "t.csv", "-o", "out.csv")
    assert result.exit_code == 0, result.output
    assert result.stdout == "wrote out.csv: 400 rows with predictions\n"
    written = (workdir / "out.csv").read_text()
    assert written == cli("predict", "--data", "t.csv").stdout
    # a bad cell in the last batch: the earlier batches were predicted, but nothing is written, out.csv kept
    monkeypatch.setattr(scoring, "CSV_BATCH_BYTES", 1024)
    text = (workdir / "t.csv").read_text().splitlines()
    text[-1] = "r399,oops," + text[-1].split(",", 2)[2]
    (workdir / "bad.csv").write_text("\n".join(text) + "\n")
    before = files_under(workdir)
    result = cli("predict", "--data", "bad.csv", "-o", "out.csv")
    assert result.exit_code == 2
    assert "bad.csv, line 401, column 'c': 'oops' is not a number" in result.stderr
    assert result.stdout == ""
    assert files_under(workdir) == before
    assert (workdir / "out.csv").read_text() == written


BAD_INPUTS = {
    "missing feature": ("a,b,y\n1,2,3\n", "t.csv", "has no column 'c', which the model in"),
    "not a number": ("a,b,c,y\n1,2,3,4\n1,x,3,4\n", "t.csv", "t.csv, line 3, column 'b': 'x' is not a number"),
    "empty cell": ("a,b,c,y\n1,2,3,4\n1,2,,4\n", "t.csv", "t.csv, line 3, column 'c': the cell is empty"),
    "not finite": ("a,b,c,y\n1,2,inf,4\n", "t.csv", "t.csv, line 2, column 'c': the value is inf, not a finite"),
    "empty file": ("", "t.csv", "t.csv is empty"),
    "header only": ("a,b,c,y\n", "t.csv", "has a header but no data rows"),
    "ragged line": ("a,b,c,y\n1,2,3,4\n1,2\n", "t.csv", "t.csv, line 3: has 2 fields but the header has 4"),
    "not a table": ("\x93NUMPY", "t.npy", "lrtrain reads CSV"),
    "csv named parquet": ("a,b,c,y\n1,2,3,4\n", "t.parquet", "is not a readable Parquet file"),
    "not utf-8": (b"a,b,c,y\n1,2,3,\xff\n", "t.csv", "could not be read as CSV"),
    "bad gzip": ("a,b,c,y\n1,2,3,4\n", "t.csv.gz", "t.csv.gz cannot be read as gzip"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_bad_input_exits_2_naming_the_file_and_writes_nothing(workdir: Path, case: str, command: str) -> None:
    _fit(workdir)
    content, name, expected = BAD_INPUTS[case]
    path = workdir / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = files_under(workdir)
    args = ["--data", name] + (["-o", "out.csv"] if command == "predict" else [])
    result = cli(command, *args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert expected in result.stderr
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1  # one paragraph
    assert "Traceback" not in result.stderr
    assert files_under(workdir) == before


def test_missing_column_names_the_file_columns_and_the_fix(workdir: Path) -> None:
    _fit(workdir)
    (workdir / "t.csv").write_text("a,x,y\n1,2,3\n")
    result = cli("predict", "--data", "t.csv")
    assert result.exit_code == 2
    assert "has no column 'b', 'c'" in result.stderr
    assert "The file's columns are: a, x, y" in result.stderr
    assert "Name the file's columns as the model's features" in result.stderr


def test_evaluate_needs_the_target(workdir: Path) -> None:
    _fit(workdir)
    (workdir / "t.csv").write_text("a,b,c\n1,2,3\n")
    result = cli("evaluate", "--data", "t.csv")
    assert result.exit_code == 2
    assert "has no column 'y', the target of the model" in result.stderr
    assert "lrtrain predict --data" in result.stderr
    assert cli("predict", "--data", "t.csv").exit_code == 0  # predict does not need it


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("missing/out.csv", "the folder missing does not exist"),
        ("folder", "is a folder"),
        ("t.csv", "input file"),
        ("out.parquet", "predict writes CSV, not parquet"),
        ("out.json.gz", "predict writes CSV, not json"),
        ("runs/RUN/model.json", "predict writes CSV, not json"),
        ("runs/RUN/other.csv", "in the run folder of the model"),
    ],
)
def test_output_into_a_missing_folder_onto_a_folder_or_the_input_is_refused(
    workdir: Path, output: str, expected: str
) -> None:
    run = _fit(workdir)
    _write_csv(workdir / "t.csv", _test_table())
    (workdir / "folder").mkdir()
    before = files_under(workdir)
    model_before = (run / "model.json").read_bytes()
    result = cli("predict", "--data", "t.csv", "-o", output.replace("RUN", run.name))
    assert result.exit_code == 2
    assert expected in result.stderr
    assert files_under(workdir) == before
    assert (run / "model.json").read_bytes() == model_before


def test_an_output_file_replaced_keeps_its_permissions_and_a_full_disk_is_exit_1(workdir: Path) -> None:
    _fit(workdir)
    _write_csv(workdir / "t.csv", _test_table())
    (workdir / "out.csv").write_text("old\n")
    (workdir / "out.csv").chmod(0o640)
    assert cli("predict", "--data", "t.csv", "-o", "out.csv").exit_code == 0
    assert stat.S_IMODE((workdir / "out.csv").stat().st_mode) == 0o640  # replaced whole, permissions kept
    assert (workdir / "out.csv").read_text().splitlines()[0].endswith(",prediction")
    full = cli("predict", "--data", "t.csv", "-o", "/dev/full")
    assert full.exit_code == 1, full.output  # the machine's fault, as a full stdout: not a usage error
    assert "No space left on device" in full.stderr
    if os.geteuid() != 0:  # root may write a read-only file, as it may open() it
        (workdir / "out.csv").chmod(0o444)
        refused = cli("predict", "--data", "t.csv", "-o", "out.csv")
        assert refused.exit_code == 2
        assert "read-only" in refused.stderr


@pytest.mark.parametrize("name", ["out.csv.gz", "out.csv.bz2", "out.csv.zst"])
def test_predict_data_compresses_the_output_its_name_says(workdir: Path, name: str) -> None:
    import pyarrow.csv as pacsv

    _fit(workdir)
    _write_csv(workdir / "t.csv", _test_table())
    result = cli("predict", "--data", "t.csv", "-o", name)
    assert result.exit_code == 0, result.output
    plain = cli("predict", "--data", "t.csv").stdout
    codec = {"gz": "gzip", "bz2": "bz2", "zst": "zstd"}[name.rsplit(".", 1)[1]]
    with pa.input_stream(str(workdir / name), compression=codec) as stream:
        assert stream.read().decode() == plain
    assert pacsv.read_csv(workdir / name).num_rows == 150  # and any reader that knows the name reads it back


def test_predict_data_writes_into_a_link_pipe_or_device_without_replacing_it(workdir: Path) -> None:
    """-o onto a link writes the file it links to, and leaves the link; onto a pipe or a device (/dev/stdout,
    /dev/null) it writes into it, as a shell's > would: none of them is replaced by a file."""
    import os
    import threading

    _fit(workdir)
    _write_csv(workdir / "t.csv", _test_table())
    plain = cli("predict", "--data", "t.csv").stdout
    (workdir / "target.csv").write_text("old\n")
    (workdir / "link.csv").symlink_to("target.csv")
    assert cli("predict", "--data", "t.csv", "-o", "link.csv").exit_code == 0
    assert (workdir / "link.csv").is_symlink()
    assert (workdir / "target.csv").read_text() == plain
    os.mkfifo(workdir / "fifo")
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append((workdir / "fifo").read_text()))
    reader.start()
    assert cli("predict", "--data", "t.csv", "-o", "fifo").exit_code == 0
    reader.join(timeout=30)
    assert got == [plain]
    assert (workdir / "fifo").is_fifo()
    assert cli("predict", "--data", "t.csv", "-o", "/dev/null").exit_code == 0
    assert Path("/dev/null").is_char_device()


def test_predict_refuses_values_with_data_json_with_data_and_output_without_data(workdir: Path) -> None:
    _fit(workdir)
    _write_csv(workdir / "t.csv", _test_table())
    for args, expected in [
        (["1,2,3", "--data", "t.csv"], "VALUEs or --data FILE, not both"),
        (["--data", "t.csv", "--json"], "predict --data writes CSV"),
        (["1,2,3", "-o", "out.csv"], "give the table with --data FILE"),
    ]:
        result = cli("predict", *args)
        assert result.exit_code == 2, args
        assert expected in result.stderr


def test_predict_without_values_or_data_is_still_a_usage_error(workdir: Path) -> None:
    result = cli("predict")
    assert result.exit_code == 2
    assert "Missing argument 'VALUE'" in result.stderr
    result = cli("evaluate")
    assert result.exit_code == 2
    assert "Missing option '--data'" in result.stderr


def test_evaluate_without_a_run_says_how_to_make_one(workdir: Path) -> None:
    _write_csv(workdir / "t.csv", _test_table())
    result = cli("evaluate", "--data", "t.csv")
    assert result.exit_code == 2
    assert "no model found" in result.stderr


@pytest.mark.slow
def test_installed_predict_data_into_a_closed_pipe_ends_quietly(workdir: Path) -> None:
    _fit(workdir)
    _write_csv(workdir / "t.csv", _test_table(rows=200_000))
    script = f"{sys.executable} -m lrtrain predict --data t.csv | head -n 2"
    pipeline = ["bash", "-o", "pipefail", "-c", script]
    done = subprocess.run(pipeline, cwd=workdir, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines()[0] == "id,c,y,b,a,prediction"
    plain = run_installed("predict", "5,1,1", cwd=workdir)  # the fast path is untouched
    assert plain.returncode == 0, plain.stderr


@pytest.mark.slow
def test_memory_is_bounded_by_the_batch_not_the_file(workdir: Path) -> None:
    """A 32 MB CSV evaluated and predicted in a fresh process with batches of 128 KiB: Python's heap (tracemalloc,
    after the imports) and Arrow's pool (which reads some 32 batches ahead) each peak far below the file."""
    run = _fit(workdir)
    rng = np.random.default_rng(3)
    rows = 400_000
    x = rng.normal(size=(rows, 3))
    data = np.column_stack([x, x @ WEIGHTS + 3.0])
    np.savetxt(workdir / "big.csv", data, delimiter=",", header="a,b,c,y", comments="", fmt="%.17g")
    size = (workdir / "big.csv").stat().st_size
    assert size > 30e6
    probe = textwrap.dedent(
        f"""
        import json, tracemalloc
        from pathlib import Path
        import pyarrow as pa
        from lrtrain import scoring
        from lrtrain.model import load
        scoring.CSV_BATCH_BYTES = 128 << 10
        model, table = load(Path({str(run)!r})), scoring.open_table(Path("big.csv"))
        small = scoring.open_table(Path("train.csv"))  # the imports, before the count starts
        scoring.evaluate(model, small), list(scoring.predictions(model, small, 0.95))
        tracemalloc.start()
        result = scoring.evaluate(model, table)
        written = sum(len(text) for text, _ in scoring.predictions(model, table, 0.95))
        _, peak = tracemalloc.get_traced_memory()
        print(json.dumps({{"rows": result.rows, "peak": peak, "arrow": pa.default_memory_pool().max_memory(),
                          "written": written}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["rows"] == rows
    assert found["written"] > size
    assert found["peak"] < size / 4, found
    assert found["arrow"] < size / 4, found


def test_a_column_named_prediction_is_refused_unless_the_model_takes_it(workdir: Path) -> None:
    _fit(workdir)
    (workdir / "stale.csv").write_text("a,b,c,prediction\n1,2,3,9\n")  # a predict --data output, read again
    stale = cli("predict", "--data", "stale.csv")
    assert stale.exit_code == 2
    assert "already has a column 'prediction', which predict adds" in stale.stderr
    (workdir / "pn.csv").write_text("a,prediction,y\n1,2,3\n2,1,4\n3,5,9\n4,4,7\n5,0,5\n")
    assert cli("fit", "--engine", "exact", "--set", "data.path=pn.csv").exit_code == 0
    newest = max((workdir / "runs").iterdir(), key=lambda run: run.stat().st_mtime_ns)
    taken = cli("predict", "--model", str(newest), "--data", "pn.csv", "--interval", "0.9")
    assert taken.exit_code == 0, taken.output  # a feature named prediction: the added columns are named apart
    assert taken.stdout.splitlines()[0] == "a,prediction,y,prediction_,lower_,upper_"


def test_predictions_on_stdout_are_utf8_whatever_the_locale_says(workdir: Path) -> None:
    (workdir / "u.csv").write_text("größe,b,y\n1,2,3\n2,1,4\n3,5,9\n4,4,7\n", encoding="utf-8")
    assert cli("fit", "--engine", "exact", "--set", "data.path=u.csv").exit_code == 0
    done = run_installed("predict", "--data", "u.csv", cwd=workdir, env={"PYTHONIOENCODING": "ascii"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "größe,b,y,prediction"  # data, not gr\\xf6\\xdfe: the column keeps its name


def _fit_categorical(workdir: Path) -> None:
    """An exact model of y on a and the levels p, q, r of kind."""
    rows = [f"{i % 5},{'pqr'[i % 3]},{(i % 5) * 2 + i % 3 + 0.1 * (i % 7)}" for i in range(60)]
    (workdir / "train.csv").write_text("a,kind,y\n" + "\n".join(rows) + "\n")
    settings = ["--set", "data.path=train.csv", "--set", "data.categorical=[kind]", "--engine", "exact"]
    result = cli("fit", *settings)
    assert result.exit_code == 0, result.output


FIRST_BAD_CELL = {  # the table, and the first bad cell in the file's order: row by row, in a row column by column
    "a number before a level": ("a,kind,y\n1,p,2\nx,q,3\n2,zz,4\n", "line 3, column 'a': 'x' is not a number"),
    "a level before a number": ("a,kind,y\n1,p,2\n2,zz,4\nx,q,3\n", "line 3, column 'kind': level 'zz'"),
    "one row, a level first": ("kind,a,y\np,1,2\nzz,x,3\n", "line 3, column 'kind': level 'zz'"),
    "one row, a number first": ("a,kind,y\n1,p,2\nx,zz,3\n", "line 3, column 'a': 'x' is not a number"),
    "an empty level before a number": ("a,kind,y\n1,,2\nx,q,3\n", "line 2, column 'kind': '' is not a level"),
    "the target before a feature": ("a,kind,y\n1,p,\nx,q,3\n", "line 2, column 'y': the cell is empty"),
    "an infinity before an empty cell": ("a,kind,y\ninf,p,1\n,q,3\n", "line 2, column 'a': the value is inf"),
}


@pytest.mark.parametrize("case", list(FIRST_BAD_CELL))
def test_the_first_bad_cell_in_the_file_is_named_whatever_its_column(workdir: Path, case: str) -> None:
    _fit_categorical(workdir)
    content, expected = FIRST_BAD_CELL[case]
    (workdir / "t.csv").write_text(content)
    for command in ("evaluate", "predict"):
        if command == "predict" and "the target" in case:
            continue  # predict reads no target
        result = cli(command, "--data", "t.csv")
        assert result.exit_code == 2, result.output
        assert f"t.csv, {expected}" in result.stderr, (command, result.stderr)


def test_in_parquet_an_infinity_before_a_null_is_named_first(workdir: Path) -> None:
    _fit_categorical(workdir)
    a = pa.array([1.0, float("inf"), None, 2.0])
    pq.write_table(pa.table({"a": a, "kind": ["p", "q", "r", "p"], "y": [1.0, 2.0, 3.0, 4.0]}), workdir / "t.parquet")
    result = cli("evaluate", "--data", "t.parquet")
    assert result.exit_code == 2, result.output
    assert "t.parquet, row 1, column 'a': the value is inf, not a finite number" in result.stderr


WHERE = {  # a table, and where its bad cell is: the file line, over empty lines and line ends in quoted cells
    "after empty lines": ("a,b,c\n1,2,3\n\n\n4,5,zz\n", "line 5, column 'c': 'zz'"),
    "after a quoted cell of three lines": ('a,b,c,note\n1,2,3,"x\ny\nz"\n4,5,zz,q\n', "line 5, column 'c': 'zz'"),
    "a short row after empty lines": ("a,b,c\n1,2,3\n\n\n1,2\n", "line 5: has 2 fields but the header has 3"),
    "in CRLF lines": ("a,b,c\r\n1,2,3\r\n\r\n4,,6\r\n", "line 4, column 'b': the cell is empty"),
}


@pytest.mark.parametrize("case", list(WHERE))
def test_a_bad_cell_is_named_by_its_file_line(workdir: Path, case: str) -> None:
    _fit(workdir)
    content, said = WHERE[case]
    (workdir / "t.csv").write_bytes(content.encode())
    result = cli("predict", "--data", "t.csv")
    assert result.exit_code == 2
    assert f"data file t.csv, {said}" in result.stderr


def test_a_bad_cell_in_a_parquet_folder_is_named_by_its_file_and_its_own_row(workdir: Path) -> None:
    _fit(workdir)
    (workdir / "parts").mkdir()
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": [1.0, 2.0], "c": [1.0, 2.0]}), workdir / "parts" / "p1.parquet")
    pq.write_table(pa.table({"a": [1.0, None], "b": [1.0, 2.0], "c": [1.0, 2.0]}), workdir / "parts" / "p2.parquet")
    result = cli("predict", "--data", "parts")
    assert result.exit_code == 2
    assert f"data file {Path('parts') / 'p2.parquet'}, row 1, column 'a': the cell is empty" in result.stderr


def test_a_bad_row_in_a_later_batch_prints_nothing_on_stdout(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows are printed once every one is checked (kept meanwhile in a temporary file), as -o writes them."""
    _fit(workdir)
    monkeypatch.setattr(scoring, "CSV_BATCH_BYTES", 1 << 10)  # many batches
    monkeypatch.setattr(scoring, "SPOOL_CHARACTERS", 100)  # printed in many pieces, each of whole lines
    rows = [f"{i % 7},{i % 5},{i % 3}" for i in range(2000)]
    (workdir / "t.csv").write_text("a,b,c\n" + "\n".join(rows) + "\n")
    good = cli("predict", "--data", "t.csv")
    assert good.exit_code == 0
    assert [line.rsplit(",", 1)[0] for line in good.stdout.splitlines()] == ["a,b,c", *rows]
    (workdir / "t.csv").write_text("a,b,c\n" + "\n".join(rows) + "\n1,2,oops\n")
    bad = cli("predict", "--data", "t.csv")
    assert bad.exit_code == 2
    assert "line 2002, column 'c': 'oops' is not a number" in bad.stderr
    assert bad.stdout == ""


def test_a_row_gets_the_same_prediction_to_the_last_bit_on_stdin_and_in_a_table(workdir: Path) -> None:
    """Both sum w·x + b in order with the same compensated steps (model.compensated), within about one rounding of
    the exact sum whatever the magnitudes; BLAS's dot product differed from it in the last digit."""
    from fractions import Fraction

    run = _fit(workdir)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 3)) * 10.0 ** rng.integers(-8, 9, size=(500, 3))
    lines = [",".join(repr(float(v)) for v in row) for row in x]
    (workdir / "t.csv").write_text("a,b,c\n" + "\n".join(lines) + "\n")
    table = [line.rsplit(",", 1)[1] for line in cli("predict", "--data", "t.csv").stdout.splitlines()[1:]]
    piped = cli("predict", "--model", str(run), "-", input="\n".join(lines) + "\n").stdout.splitlines()
    assert table == piped
    model = load(run / "model.json")
    for row, said in zip(x, table, strict=True):
        exact = sum(Fraction(w) * Fraction(float(v)) for w, v in zip(model.weights, row, strict=True))
        exact += Fraction(model.bias)
        scale = max([abs(float(w) * float(v)) for w, v in zip(model.weights, row, strict=True)] + [abs(model.bias)])
        assert abs(Fraction(float(said)) - exact) <= Fraction(scale) * Fraction(4, 2**53)


def test_a_first_row_too_large_for_an_interval_is_named_by_its_line(workdir: Path) -> None:
    _fit(workdir)
    (workdir / "t.csv").write_text("a,b,c\n1e160,0,0\n")
    result = cli("predict", "--data", "t.csv", "--interval", "0.95")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: data file t.csv, line 2: the sample (1e+160, 0.0, 0.0) is too large")


def test_predict_data_small_cases_of_naming_and_writing(workdir: Path) -> None:
    _fit(workdir)
    (workdir / "t.csv").write_text("a,b,c\n1,2,3\n")
    stdin = cli("predict", "--data", "-")
    assert stdin.exit_code == 2
    assert "a table is read from a file" in stdin.stderr
    into_a_file = cli("predict", "--data", "t.csv", "-o", "t.csv/out.csv")
    assert into_a_file.exit_code == 2
    assert "-o t.csv/out.csv: t.csv is a file, not a folder" in into_a_file.stderr
    (workdir / "link.csv").symlink_to(workdir / "gone" / "out.csv")
    dangling = cli("predict", "--data", "t.csv", "-o", "link.csv")
    assert dangling.exit_code == 2
    assert f"-o link.csv (it links to {workdir / 'gone' / 'out.csv'}): the folder" in dangling.stderr
    deeper = cli("predict", "--data", "t.csv", "-o", "t.csv/sub/out.csv")
    assert "-o t.csv/sub/out.csv: t.csv is a file, not a folder" in deeper.stderr
    odd = cli("predict", "--data", "t.csv", "-o", "bad\nname.csv")
    assert odd.stdout == "wrote bad\\x0aname.csv: 1 rows with predictions\n"
    for name in ("out.tsv", "out.tsv.gz"):
        assert cli("predict", "--data", "t.csv", "-o", name).exit_code == 0
        data = (workdir / name).read_bytes()
        text = (gzip.decompress(data) if name.endswith(".gz") else data).decode()
        assert text.splitlines()[0] == "a\tb\tc\tprediction"
    nested = pa.table({"a": [1.0], "b": [2.0], "c": [3.0], "s": [{"p": 1, "q": "z"}], "l": [[1, 2]]})
    pq.write_table(nested, workdir / "n.parquet")
    row = next(csv.reader(io.StringIO(cli("predict", "--data", "n.parquet").stdout.splitlines()[1])))
    assert row[3:5] == ['{"p": 1, "q": "z"}', "[1, 2]"]


def test_predict_to_a_file_removes_what_a_writer_killed_there_left(workdir: Path) -> None:
    _fit(workdir)
    (workdir / "t.csv").write_text("a,b,c\n1,2,3\n")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=True,
    )
    left = workdir / f".out.csv.{int(dead.stdout)}.abcd1234.tmp"  # as kill -9 leaves one mid-write
    left.write_text("a,b,c,prediction\n1,2")
    os.utime(left, (0, 0))  # long untouched
    assert cli("predict", "--data", "t.csv", "-o", "out.csv").exit_code == 0
    assert not left.exists()
    assert (workdir / "out.csv").read_text().startswith("a,b,c,prediction\n1,2,3,")


def test_a_table_with_bad_cells_in_several_columns_is_read_for_a_line_once(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CSV line takes a read of the file up to it: only the first bad cell's is looked for, not every column's."""
    _fit(workdir)
    (workdir / "t.csv").write_text("a,b,c\n1,2,3\n1,x,3\nz,2,3\n1,2,\n")
    calls: list[int] = []
    at = scoring.TableFile.at

    def counted(self: scoring.TableFile, row: int) -> str:
        calls.append(row)
        return at(self, row)

    monkeypatch.setattr(scoring.TableFile, "at", counted)
    result = cli("predict", "--data", "t.csv")
    assert result.exit_code == 2
    assert "t.csv, line 3, column 'b': 'x' is not a number" in result.stderr
    assert calls == [1]
