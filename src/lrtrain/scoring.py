"""A saved model on a table: `lrtrain predict --data` (the table plus predictions, as CSV) and `lrtrain evaluate`
(MSE, RMSE, MAE and R² on it).

The table is a CSV (.csv, .tsv, compressed .gz/.bz2/.zst) or Parquet file, read batch by batch with pyarrow
(`open_csv`, `ParquetFile.iter_batches`), so memory is bounded by a batch, never the file. Its columns are
matched to the model's features by name in one place, lrtrain.cells. CSV cells are read as text: `predict`
writes them back exactly as they were, and a cell that is not a number is named by its line and column.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from lrtrain.cells import inputs
from lrtrain.config import TAB_NAMES, separable
from lrtrain.errors import DataError, InputError, ModelError, ScratchError, printable, unwritten
from lrtrain.files import atomic_writer, is_stream, read_json, remove_stale
from lrtrain.model import Model
from lrtrain.sources.text import COMPRESSION, header_cells, line_one, records

CSV_BATCH_BYTES = 1 << 19  # CSV bytes per batch; pyarrow reads up to about 32 ahead: memory ~16 MB, whatever the file
PARQUET_BATCH_ROWS = 1 << 16  # Parquet rows decoded per batch
SPOOL_CHARACTERS = 1 << 20  # the predictions printed on stdout at a time, once all are made
PREDICTED = ("prediction", "lower", "upper")  # the columns `predict --data` adds
FORMATS = "CSV (.csv, .tsv, also compressed: .csv.gz, .csv.bz2, .csv.zst) or Parquet (.parquet)"


@dataclass(frozen=True)
class TableFile:
    """A CSV or Parquet file, its column names read, no rows yet."""

    path: Path
    kind: str  # "csv" or "parquet"
    names: list[str]
    compression: str | None = None
    delimiter: str = ","
    files: tuple[Path, ...] = ()  # a folder of Parquet files: them, in order (sources.parquet reads them so)

    @property
    def origin(self) -> str:
        return f"data folder {self.path}" if self.files else f"data file {self.path}"

    def at(self, row: int) -> str:
        """Where data row `row` (0-based, over every file) is, for messages: the file and its line (CSV: records
        counted as pyarrow reads them, over empty lines and line ends in quoted cells), or the file and its own
        row (Parquet, 0-based; a folder's file that holds it)."""
        if self.kind == "csv":
            line = next((line for k, (line, _) in enumerate(records(self.path, self.compression, self.delimiter))
                         if k == row), row + 2)  # fmt: skip
            return f"{self.origin}, line {line}"
        from lrtrain.sources.parquet import open_file

        for file in self.files:
            held = open_file(file).metadata.num_rows
            if row < held:
                return f"data file {file}, row {row}"
            row -= held
        return f"{self.origin}, row {row}"

    def batches(self) -> Iterator[tuple[Any, int]]:
        """(pyarrow RecordBatch, index of its first row); CSV columns as text, Parquet columns as stored."""
        import pyarrow as pa

        at = 0
        try:
            for batch in self._csv() if self.kind == "csv" else self._parquet():
                if batch.num_rows:
                    yield batch, at
                    at += batch.num_rows
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            if self.compression is not None and "compress" in reason.lower():
                raise DataError(
                    f"{self.origin} cannot be decompressed as {self.compression} ({reason}): it is "
                    "cut short or damaged. Compress it again from the original."
                ) from None
            if at == 0 and "Could not skip initial" in reason:  # a header with no line end, and nothing below
                raise DataError(f"{self.origin} has a header but no data rows. Add rows below the header.") from None
            what = "CSV" if self.kind == "csv" else "Parquet"
            width = len(self.names)
            if self.kind == "csv":  # a row of another width: named by its line
                for line, fields in records(self.path, self.compression, self.delimiter):
                    if len(fields) != width:
                        raise DataError(
                            f"{self.origin}, line {line}: has {len(fields)} fields but the header has {width}. Every "
                            f"row needs {width} fields separated by {self.delimiter!r}; check that line (or "
                            "--delimiter)."
                        ) from None
            near = f" near {self.at(at).removeprefix(self.origin + ', ')}" if self.kind == "csv" else ""
            raise DataError(
                f"{self.origin} could not be read as {what}{near} ({reason}). Check the file: it must be {FORMATS}, "
                "with the same number of fields on every line, in UTF-8."
            ) from None
        if at == 0:
            if self.kind == "parquet":
                raise DataError(f"{self.origin} has no rows. Write the table with its rows.")
            raise DataError(f"{self.origin} has a header but no data rows. Add rows below the header.")

    def _csv(self) -> Iterator[Any]:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        keys = [f"c{i}" for i in range(len(self.names))]  # our own names: the header is read (and checked) by us
        reader = pacsv.open_csv(
            pa.input_stream(str(self.path), compression=self.compression),
            read_options=pacsv.ReadOptions(column_names=keys, skip_rows=1, block_size=CSV_BATCH_BYTES),
            parse_options=pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True),  # "a<LF>b": a cell
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(keys, pa.string()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        with reader:
            for batch in reader:
                yield pa.RecordBatch.from_arrays(batch.columns, names=self.names)

    def _parquet(self) -> Iterator[Any]:
        from lrtrain.sources.parquet import open_file

        for file in self.files or (self.path,):
            for batch in open_file(file).iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=True):
                # a folder's files may hold the columns in another order: each batch in the first file's
                yield batch if batch.schema.names == self.names else batch.select(self.names)


def _parquet_folder(path: Path, delimiter: str | None) -> TableFile:
    """A folder of Parquet files as fit reads it (sources.parquet): every file, in name order, one schema."""
    from lrtrain.sources.parquet import open_part, table_files

    if delimiter is not None:
        raise InputError(f"--delimiter is for a CSV table; data folder {path} holds Parquet. Leave --delimiter out.")
    files = table_files(path)
    names = [list(open_part(file).schema_arrow.names) for file in files]
    differs = next((file for file, these in zip(files, names, strict=True) if set(these) != set(names[0])), None)
    if differs is not None:  # the same columns in another order are the same table, as fit reads it
        raise DataError(
            f"data folder {path}: {differs} has other columns than {files[0]} ({', '.join(names[0][:6])}). Every "
            "file of a folder is a part of one table: give them the same columns."
        )
    return TableFile(path, "parquet", names[0], files=tuple(files))


def open_table(path: Path, delimiter: str | None = None) -> TableFile:
    """The table in `path`, its format from its name (a CSV's fields separated by `delimiter`, by default ',' or,
    for .tsv, a tab); an error that says what to do when it is not one."""
    import pyarrow as pa

    if delimiter is not None:
        delimiter = TAB_NAMES.get(delimiter.lower(), delimiter)
        try:
            separable(delimiter)
        except ValueError as exc:
            raise InputError(f"--delimiter {printable(repr(delimiter))}: {exc}.") from None

    if str(path) == "-":  # stdin is read once, and a table is read more than once
        raise DataError(
            "--data - would read the table from stdin, but a table is read from a file. Save it to a file and give "
            "--data that; rows of numbers on stdin go to `lrtrain predict -`."
        )
    try:
        info = path.stat()
    except FileNotFoundError:
        raise DataError(
            f"data file {path} does not exist. Check the path (--data FILE): a CSV or Parquet file."
        ) from None
    except OSError as exc:  # a loop of links, a folder on the way without permission
        raise DataError(
            f"data file {path} cannot be opened: {exc.strerror or exc}. Check the path (--data FILE)."
        ) from None
    if path.is_dir():
        return _parquet_folder(path, delimiter)
    if not stat.S_ISREG(info.st_mode):  # a pipe's size is 0, and the table is read more than once
        raise DataError(
            f"data file {path} is a pipe or a device, not a file. Save the table to a file and give --data that."
        )
    if info.st_size == 0:
        raise DataError(f"data file {path} is empty. It needs a header line and at least one data row.")
    suffixes = [s.lower() for s in path.suffixes]
    compression = COMPRESSION.get(suffixes[-1]) if suffixes else None
    kind = suffixes[-2 if compression else -1] if len(suffixes) > int(compression is not None) else ""
    if kind == ".parquet" and compression is None:
        from lrtrain.sources.parquet import open_file

        if delimiter is not None:
            raise InputError(f"--delimiter is for a CSV table; data file {path} is Parquet. Leave --delimiter out.")

        try:
            names = list(open_file(path).schema_arrow.names)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(
                f"data file {path} is not a readable Parquet file ({str(exc).splitlines()[0]}). "
                "Write it with pyarrow, pandas, polars or Spark, or give a CSV file."
            ) from None
        table = TableFile(path, "parquet", names)
    elif kind in (".csv", ".tsv"):
        delimiter = delimiter or ("\t" if kind == ".tsv" else ",")
        table = TableFile(path, "csv", _header(path, compression, delimiter), compression, delimiter)
    else:
        raise DataError(
            f"data file {path}: lrtrain reads {FORMATS} tables, and the name says neither. "
            "Rename the file if it is one of these, or convert it."
        )
    if not table.names and table.kind == "parquet":
        raise DataError(f"{table.origin} has no columns. Write the table with its columns.")
    if not table.names or table.names == [""]:
        raise DataError(f"{table.origin} has no column names. Its first line must name the columns.")
    other = next((mark for mark in (";", "\t", "|", ",") if mark != table.delimiter and mark in table.names[0]), None)
    if table.kind == "csv" and len(table.names) == 1 and other is not None:
        raise DataError(
            f"{table.origin} has one column, {table.names[0]!r}: its fields look separated by {other!r}, and they "
            f"are read as separated by {table.delimiter!r}. Say which with --delimiter {other!r}"
            f"{' (or tab)' if other == chr(9) else ''}."
        )
    if len(set(table.names)) != len(table.names):
        twice = next(n for n in table.names if table.names.count(n) > 1)
        raise DataError(f"{table.origin}: column name {twice!r} appears twice. Rename one of them.")
    return table


def _header(path: Path, compression: str | None, delimiter: str) -> list[str]:
    """The column names on the CSV's first line."""
    import pyarrow as pa

    try:
        with pa.input_stream(str(path), compression=compression) as stream:
            line = line_one(stream, path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"data file {path} cannot be read{f' as {compression}' if compression else ''} "
            f"({str(exc).splitlines()[0]}). Is it really {FORMATS}?"
        ) from None
    first = line.rstrip(b"\n").rstrip(b"\r")
    try:
        text = first.decode("utf-8-sig")  # -sig: a BOM (Excel) is not a name
    except UnicodeDecodeError:
        raise DataError(f"data file {path} is not UTF-8 text, so not a CSV file. Save it as UTF-8 CSV.") from None
    return [name.strip() for name in header_cells(text, delimiter, path)]


# --------------------------------------------------------------------------- columns to numbers


# --------------------------------------------------------------------------- predict --data


def check_output(output: Path, data: Path) -> None:
    """`-o OUT` names a new or existing file in an existing folder, other than the input, and a CSV by its name
    (not .parquet, .json, ...; .gz, .bz2 or .zst compress it), or a pipe or device that takes the text as it is."""
    if output.is_dir():
        raise DataError(f"-o {output} is a folder; name the CSV file to write, e.g. {output / 'predictions.csv'}.")
    target = output.resolve()
    if not target.parent.is_dir():
        via = f" (it links to {target})" if output.is_symlink() else ""
        named = target if via else output  # the path as the user wrote it, unless a link leads elsewhere
        blocker = next((p for p in (named.parent, *named.parent.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise DataError(f"-o {output}{via}: {blocker} is a file, not a folder. Write into a folder, or elsewhere.")
        raise DataError(f"-o {output}{via}: the folder {named.parent} does not exist. Create it, or write elsewhere.")
    if output.exists() and data.exists() and output.resolve() == data.resolve():
        raise DataError(f"-o {output} is the input file itself. Write the predictions to another file.")
    suffixes = [s.lower() for s in output.suffixes]
    if suffixes and suffixes[-1] in COMPRESSION:
        suffixes.pop()
    if not is_stream(output) and suffixes and suffixes[-1] in (".parquet", ".json", ".npy", ".npz", ".xlsx", ".yaml"):
        raise DataError(
            f"-o {output}: predict writes CSV, not {suffixes[-1][1:]}. Name the file .csv (.csv.gz, .csv.bz2 or "
            ".csv.zst compress it)."
        )


def _write(output: Path, chunks: Iterator[tuple[str, int]]) -> int:
    """The CSV text of `chunks` into `output` (files.atomic_writer: a file whole or not at all); its rows. A .gz, .bz2
    or .zst name compresses it."""
    import bz2
    import gzip

    rows = 0
    codec = None if is_stream(output) else COMPRESSION.get(output.suffix.lower())
    if not is_stream(output):  # what an earlier writer killed mid-write left there (kill -9), as fit removes its own
        remove_stale(output.resolve().parent)
    with atomic_writer(output, "wb") as raw:
        packed: Any = raw
        if codec == "gzip":
            packed = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0)  # closing it leaves `raw` open
        elif codec == "bz2":
            packed = bz2.BZ2File(raw, "wb")
        elif codec == "zstd":
            import pyarrow as pa

            packed = pa.CompressedOutputStream(_Unclosed(raw), "zstd")
        with contextlib.closing(packed) if packed is not raw else contextlib.nullcontext():
            for text, count in chunks:
                packed.write(text.encode())
                rows += count
    return rows


class _Unclosed:
    """A binary file whose close() only flushes: a compressing stream around it must not close the atomic writer's."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.closed = False

    def write(self, data: bytes) -> int:
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.flush()
        self.closed = True


def predictions(
    model: Model, table: TableFile, level: float | None = None, delimiter: str = ","
) -> Iterator[tuple[str, int]]:
    """The table as CSV text (fields separated by `delimiter`) with `prediction` (and, with `level`, `lower` and
    `upper`) added: (text, rows) per batch, the header with the first."""
    added = list(PREDICTED if level is not None else PREDICTED[:1])
    taken = [name for name in added if name in table.names]
    read = {levels.column for levels in model.categorical} | set(model.features)
    if taken and not read & set(taken):
        raise DataError(
            f"{table.origin} already has a column {taken[0]!r}, which predict adds. Rename or drop that column."
        )
    while taken:  # the model takes a column of that name: the added ones get names the table does not hold
        added = [f"{name}_" for name in added]
        taken = [name for name in added if name in table.names]
    header = True
    for batch, first in table.batches():
        x, _ = inputs(model, batch, table, first)
        columns = [_cells(batch.column(j)) for j in range(batch.num_columns)]  # CSV: the cells as read
        y_hat = predicted(model, x, table, first)
        columns.append([model.format(v) for v in y_hat.tolist()])
        if level is not None:
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    low, high = intervals(model, x, y_hat, level)
            except InputError as exc:  # the batch's first row, which the model's own checks take: named too
                raise DataError(f"{table.at(first)}: {exc}") from None
            why = "the interval's leverage, the values squared, goes beyond about 1.8e308"
            _finite(np.minimum(low, high), table, first, "the prediction interval's bound", why)
            columns += [[model.format(v) for v in low.tolist()], [model.format(v) for v in high.tolist()]]
        text = io.StringIO()
        writer = csv.writer(text, delimiter=delimiter, lineterminator="\n")
        if header:
            writer.writerow([*table.names, *added])
            header = False
        writer.writerows(zip(*columns, strict=True))
        yield text.getvalue(), batch.num_rows


def _cells(column: Any) -> list[Any]:
    """A column's cells to write back: as read (a CSV's text), a Parquet list, map or struct as JSON."""
    import pyarrow as pa

    cells: list[Any] = column.to_pylist()
    if pa.types.is_nested(column.type):
        return [None if cell is None else json.dumps(cell, default=str, ensure_ascii=False) for cell in cells]
    return cells


def predicted(model: Model, x: np.ndarray, table: TableFile, first: int) -> np.ndarray:
    """The model's predictions for the rows `x` of a batch whose first row is `first`; a prediction float64
    cannot hold is an error naming its row."""
    total, correction = np.zeros(len(x)), np.zeros(len(x))
    with np.errstate(over="ignore", invalid="ignore"):  # model.compensated, on every row at once: the same bits
        for term in [*(x[:, j] * weight for j, weight in enumerate(model.weights)), np.full(len(x), model.bias)]:
            step = total + term
            correction += np.where(np.abs(total) >= np.abs(term), (total - step) + term, (term - step) + total)
            total = step
        value = total + correction
    return _finite(np.where(np.isfinite(value), value, total), table, first, "the prediction")


def _finite(
    values: np.ndarray,
    table: TableFile,
    first: int,
    what: str,
    why: str = "the values times the weights go beyond about 1.8e308",
) -> np.ndarray:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"{table.at(first + row)}: {what} is {values[row]}, not a number float64 can hold: "
            f"{why}. Rescale the values (the model's units are those it was trained in), or leave that row out."
        )
    return values


def intervals(model: Model, x: np.ndarray, y_hat: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the `level` prediction interval at each row of `x`, as `Model.interval` gives them:
    ŷ ± t_((1 + level)/2, df) · √(σ²·(1 + x̃ᵀCx̃)), x̃ = [1, x] with an intercept."""
    from scipy.special import stdtrit

    statistics = model.interval_statistics()  # the model's own checks: statistics, covariance, df
    model.interval([float(v) for v in x[0]], level, statistics)  # and a first row too large for one
    covariance = np.array(statistics["unscaled_covariance"], dtype=np.float64)  # null (nan) stays nan
    means = statistics.get("means")
    if statistics["intercept"] and means is not None:  # centered, as stats.prediction_interval takes it
        centered = x - np.asarray(means, dtype=np.float64)
        leverage = 1 / statistics["n"] + np.einsum("ij,jk,ik->i", centered, covariance[1:, 1:], centered)
    else:
        rows = np.hstack([np.ones((len(x), 1)), x]) if statistics["intercept"] else x
        leverage = np.einsum("ij,jk,ik->i", rows, covariance, rows)
    sigma2 = math.nan if statistics["sigma2"] is None else float(statistics["sigma2"])
    half = -float(stdtrit(statistics["df_resid"], (1 - level) / 2)) * np.sqrt(sigma2 * (1 + np.maximum(leverage, 0)))
    return y_hat - half, y_hat + half


# --------------------------------------------------------------------------- evaluate


@dataclass(frozen=True)
class Evaluation:
    model: str
    data: str
    target: str
    rows: int
    mse: float
    rmse: float
    mae: float
    r2: float
    r2_centered: bool  # 1 − SSE/Σ(y − ȳ)² for a model with a bias; 1 − SSE/Σy² without one, as `fit` reports it


def evaluate(model: Model, table: TableFile) -> Evaluation:
    """The model's errors on every row of `table`, in one pass: sums of squared and absolute residuals, and the
    target's spread merged batch by batch (Chan et al.), so memory is one batch's."""
    if model.target not in table.names:
        raise DataError(
            f"{table.origin} has no column {model.target!r}, the target of the model in {model.path}: evaluate "
            f"compares the predictions with it. The file's columns are: {', '.join(table.names)}. "
            "Add the true values under that name, or use `lrtrain predict --data` for predictions alone."
        )
    n, sse, sae, mean, m2, squares = 0, 0.0, 0.0, 0.0, 0.0, 0.0
    for batch, first in table.batches():
        x, target = inputs(model, batch, table, first, target=True)
        y = np.asarray(target)
        with np.errstate(over="ignore", invalid="ignore"):  # sums beyond float64 are refused below, in words
            residual = y - predicted(model, x, table, first)
            sse += float(np.dot(residual, residual))
            sae += float(np.abs(residual).sum())
            squares += float(np.dot(y, y))
            k = len(y)  # merge the batch's (k, mean, M2) into the running one: no cancellation, whatever the offset
            batch_mean = float(y.mean())
            batch_m2 = float(np.dot(y - batch_mean, y - batch_mean))
            delta = batch_mean - mean
            mean += delta * k / (n + k)
            m2 += batch_m2 + delta * delta * n * k / (n + k)
        n += k
    if not all(math.isfinite(v) for v in (sse, sae, squares, m2)):
        raise DataError(
            f"{table.origin}: the squared errors of the model in {model.path} on it, or the squares of its target "
            f"{model.target!r}, go beyond float64 (about 1.8e308: values near 1e154 or larger), so the MSE and R² "
            "cannot be taken. Rescale the target and the features (the model's units are those it was trained in)."
        )
    centered = centered_r2(model)
    total = m2 if centered else squares
    r2 = 1.0 - sse / total if total > 0 else (1.0 if sse == 0 else 0.0)
    mse = sse / n
    return Evaluation(str(model.path), str(table.path), model.target, n, mse, math.sqrt(mse), sae / n, r2, centered)


def centered_r2(model: Model) -> bool:
    """Whether the model's R² is taken about ȳ, as `fit` took it: fitted with a bias (model.bias in its config),
    or without one on features that make a constant (a categorical column coded in full)."""
    statistics = model.statistics
    if any(levels.full for levels in model.categorical):
        return True
    if isinstance(statistics, dict) and isinstance(statistics.get("intercept"), bool):
        return bool(statistics["intercept"]) or statistics.get("implicit_constant") is True
    try:
        config = read_json(model.path, "model", ModelError, "model file").get("config")
        return bool(config["model"]["bias"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return model.bias != 0.0


def _spooled(chunks: Iterator[tuple[str, int]]) -> Iterator[str]:
    """The chunks' text once every one is made, so that a bad row anywhere prints nothing (as -o writes nothing):
    kept meanwhile in a nameless temporary file, so that memory stays one batch's. Given in pieces of whole lines."""
    with contextlib.ExitStack() as stack:
        try:
            spool = stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8", newline="", prefix="lrtrain-"))
            for text, _ in chunks:
                spool.write(text)
            spool.seek(0)
        except OSError as exc:
            raise _unspooled(exc) from None
        carry = ""
        while piece := spool.read(SPOOL_CHARACTERS):
            piece = carry + piece
            end = piece.rfind("\n") + 1
            carry = piece[end:]
            if end:
                yield piece[:end]
        if carry:
            yield carry


def _unspooled(exc: OSError) -> ScratchError:
    return ScratchError(
        f"the predictions are kept in a temporary file in {tempfile.gettempdir()} ($TMPDIR) until every row is "
        f"checked, and it could not be written: {exc.strerror or exc}. Free some space there, set TMPDIR to a "
        "folder on a disk with room, or write them with -o FILE."
    )


def predict_file(
    model: Path | None,
    data: Path,
    output: Path | None,
    level: float | None,
    warn: Callable[[str], None],
    line: Callable[[str], None],
    delimiter: str | None = None,
) -> None:
    """`lrtrain predict --data`: the table's rows with their predictions, as CSV on stdout (`line`, a line at a
    time) or into `output`, written whole or not at all; `warn` takes the notes for stderr; `delimiter` separates
    the table's fields (see `open_table`)."""
    from lrtrain import model as model_module

    if output is not None and str(output) == "-":  # -o -: stdout, as the Unix tools read it
        output = None
    if output is not None:
        check_output(output, data)
    loaded = model_module.load(model) if model is not None else model_module.load_latest(Path("runs"), warn)
    if output is not None and output.resolve().parent == loaded.path.resolve().parent:
        raise DataError(
            f"-o {output} is in the run folder of the model ({loaded.path.parent}), whose files are the run's own. "
            "Write the predictions elsewhere."
        )
    table = open_table(data, delimiter)
    if level is not None:
        for note in loaded.require_statistics("predict --interval")["warnings"]:
            warn(f"note: {note}")
    named = [s.lower() for s in output.suffixes] if output is not None else []
    tabs = named[-2:-1] == [".tsv"] if named[-1:] and named[-1] in COMPRESSION else named[-1:] == [".tsv"]
    chunks = predictions(loaded, table, level, "\t" if tabs else ",")  # -o NAME.tsv: separated as it says
    if output is None:
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None:  # the rows are data: UTF-8, as -o writes them, whatever the locale's encoding
            with contextlib.suppress(ValueError, OSError):  # (an ASCII one would turn a name into \U0001f600)
                reconfigure(encoding="utf-8")
        for text in _spooled(chunks):
            line(text.removesuffix("\n"))
        return
    try:
        rows = _write(output, chunks)
    except OSError as exc:  # no permission, a full disk: the file is whole or absent
        raise unwritten(output, exc) from None
    line(printable(f"wrote {output}: {rows} rows with predictions"))
