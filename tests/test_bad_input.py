"""A catalogue of bad input, met the way a user meets it: through the CLI, in an empty folder.

Every case checks the same promise: the documented exit code (2 for a bad config, data file,
model, input or usage; DESIGN keeps 1 for training that fails), one paragraph on stderr that
names the culprit (key, file, line, column or row) and says how to fix it, no traceback, no
Python warning leaking out, nothing on stdout, and no file created or changed in the folder.

Each check raises its own AssertionError subclass, so a strict xfail names the one check a known
bug breaks (``raises=``): any other failure in that case still fails the test.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import os
import socket
import stat
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lrtrain.errors import InputError

from .conftest import cli, files_under, run_installed


class WrongExitCode(AssertionError):
    pass


class TracebackShown(AssertionError):
    pass


class MissingInStderr(AssertionError):
    pass


class UnwantedInStderr(AssertionError):
    pass


class WarningLeaked(AssertionError):
    pass


class StdoutNotEmpty(AssertionError):
    pass


class FilesChanged(AssertionError):
    pass


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


CUDA = _cuda_available()


def _mps_available() -> bool:
    import torch

    return bool(torch.backends.mps.is_available())


NO_CUDA = pytest.mark.skipif(CUDA, reason="checks the error for a missing CUDA device; this machine has one")

# Python shows these to a user by default (DeprecationWarning and friends are hidden outside __main__).
_HIDDEN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)

# Fixes lrtrain's config errors end with; each config case also names its own key.
CONFIG_FIX = "Fix the value in the file or override it with --set KEY=VALUE"
CSV_CONFIG = "data: {source: csv, path: d.csv}\n"
GOOD_CSV = "x,y\n1,2\n2,4\n3,6\n"

Files = dict[str, str | bytes | None]  # name -> text, bytes, or None for a folder
Setup = Callable[[Path], None]


# --------------------------------------------------------------------------- setups run before the snapshot


def fitted(folder: Path) -> None:
    """A real run folder under runs/, from a quick fit on the built-in default (one feature)."""
    result = cli("fit", "--set", "train.epochs=2")
    assert result.exit_code == 0, result.stderr


def fitted_v99(folder: Path) -> None:
    """A valid model.json written by `fit`, then marked as format_version 99 (from a future lrtrain)."""
    fitted(folder)
    (model,) = folder.glob("runs/*/model.json")
    payload = json.loads(model.read_text(encoding="utf-8"))
    payload["format_version"] = 99
    model.write_text(json.dumps(payload, indent=2), encoding="utf-8")


def npy_1d(folder: Path) -> None:
    np.save(folder / "d.npy", np.arange(5.0))


def npz_upper_case_without_y(folder: Path) -> None:
    with (folder / "D.NPZ").open("wb") as handle:  # np.savez would append .npz to the name
        np.savez(handle, x=np.arange(5.0))


def npz_without_y(folder: Path) -> None:
    np.savez(folder / "d.npz", x=np.arange(5.0))


def npz_claiming_a_huge_shape(folder: Path) -> None:
    """An .npz whose x.npy header claims 2**40 float64 values (8 TiB) in a member of a few bytes."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)})
    y = io.BytesIO()
    np.save(y, np.arange(4.0))
    with zipfile.ZipFile(folder / "d.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(32))
        archive.writestr("y.npy", y.getvalue())


def symlink_loop(folder: Path) -> None:
    (folder / "d.npy").symlink_to("d.npy")


def folder_named_like_a_file(folder: Path) -> None:
    (folder / "d.csv").mkdir()


def a_fifo(name: str) -> Setup:
    """A named pipe that no process writes to: reading it would wait for ever."""
    return lambda folder: os.mkfifo(folder / name)


def a_socket(name: str) -> Setup:
    """A Unix socket file, left behind by a server that is gone (bound by a relative name: the path may be long)."""

    def setup(folder: Path) -> None:
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(name)  # the test runs in `folder`

    return setup


def a_link(name: str, target: str) -> Setup:
    return lambda folder: (folder / name).symlink_to(target)


def a_parquet_folder(folder: Path) -> None:
    (folder / "d").mkdir()
    (folder / "d" / "a.parquet").write_text("not parquet")


def a_parquet_cut_short(folder: Path) -> None:
    """d.parquet with the middle of its pages gone and its footer kept: pyarrow opens it, then cannot decode."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"x": [float(i) for i in range(20_000)], "y": [2.0 * i for i in range(20_000)]}), "w.parquet"
    )
    whole = Path("w.parquet").read_bytes()
    (folder / "d.parquet").write_bytes(whole[: len(whole) // 2] + whole[-2000:])
    Path("w.parquet").unlink()


MODEL_HEAD = '{"format": "lrtrain.model", "format_version": 1, '
MODEL_TAIL = '"features": ["x"], "target": "y", "dtype": "float64"}'
HUGE = "9" * 5000  # Python refuses to convert an integer of more than 4,300 digits
BIG = "9" * 400  # converts, but overflows a float


# --------------------------------------------------------------------------- the catalogue


def case(
    id: str,
    *args: str,
    files: Files | None = None,
    setup: Setup | None = None,
    input: str | None = None,
    code: int = 2,
    stderr: tuple[str, ...] = (),
    absent: tuple[str, ...] = (),
    bug: tuple[type[AssertionError], str] | None = None,
    marks: tuple[Any, ...] = (),
) -> Any:
    """One row of the table; `bug` = (the check it breaks, the bug) makes it a strict xfail."""
    all_marks = list(marks)
    if bug is not None:
        all_marks.append(pytest.mark.xfail(strict=True, raises=bug[0], reason=bug[1]))
    return pytest.param(args, files or {}, setup, input, code, stderr, absent, id=id, marks=all_marks)


CONFIG_CASES = [
    case(
        "config-not-yaml",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train: [1,"},
        stderr=("c.yaml", "line 1, column 11", "not valid YAML", "Fix the syntax"),
    ),
    case(
        "config-empty",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": ""},
        stderr=("c.yaml", "is empty", "Put at least one key"),
    ),
    case(
        "config-only-a-comment",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "# nothing here yet\n"},
        stderr=("c.yaml", "is empty", "Put at least one key"),
    ),
    case(
        "config-a-list",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "- train\n- lr\n"},
        stderr=("c.yaml", "holds a list", "mapping of keys to values", "lrtrain config show"),
    ),
    case(
        "config-a-string",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "hello\n"},
        stderr=("c.yaml", "holds a string", "mapping of keys to values"),
    ),
    case(
        "config-unknown-key-did-you-mean",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  epochs: 3\n  lrr: 0.1\n"},
        stderr=("c.yaml, line 3", "unknown key 'train.lrr'", "Did you mean 'train.lr'?"),
    ),
    case(
        "config-unknown-section-did-you-mean",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "seed: 1\ntrian:\n  lr: 0.1\n"},
        stderr=("c.yaml, line 2", "unknown key 'trian'", "Did you mean 'train'?"),
    ),
    case(
        "config-unknown-nested-key",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  early_stopping:\n    patiense: 3\n"},
        stderr=("line 3", "'train.early_stopping.patiense'", "Did you mean 'train.early_stopping.patience'?"),
    ),
    case(
        "config-epochs-not-an-integer",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  epochs: ten\n"},
        stderr=("c.yaml, line 2", "'train.epochs' must be an integer", "'ten'", CONFIG_FIX),
    ),
    case(
        "config-lr-not-a-number",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  lr: fast\n"},
        stderr=("c.yaml, line 2", "'train.lr' must be a number", "'fast'", CONFIG_FIX),
    ),
    case(
        "config-bias-not-a-boolean",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "model:\n  bias: 3\n"},
        stderr=("c.yaml, line 2", "'model.bias' must be true or false", "got 3", CONFIG_FIX),
    ),
    case(
        "config-lr-zero",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  lr: 0\n"},
        stderr=("line 2", "'train.lr' must be greater than 0", "got 0", CONFIG_FIX),
    ),
    case(
        "config-lr-negative",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  lr: -1\n"},
        stderr=("line 2", "'train.lr' must be greater than 0", "got -1", CONFIG_FIX),
    ),
    case(
        "config-epochs-zero",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  epochs: 0\n"},
        stderr=("line 2", "'train.epochs' must be at least 1", "got 0", CONFIG_FIX),
    ),
    case(
        "config-validation-one",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "seed: 1\ndata:\n  validation: 1.0\n"},
        stderr=("c.yaml, line 3", "'data.validation' must be less than 1", "got 1.0", CONFIG_FIX),
    ),
    case(
        "config-validation-negative",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data:\n  source: inline\n  validation: -0.1\n"},
        stderr=("line 3", "'data.validation' must be at least 0", "got -0.1", CONFIG_FIX),
    ),
    case(
        "config-batch-size-zero",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  batch_size: 0\n"},
        stderr=("line 2", "'train.batch_size' must be at least 1", "got 0", CONFIG_FIX),
    ),
    case(
        "config-momentum-one",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  momentum: 1.0\n"},
        stderr=("line 2", "'train.momentum' must be in [0, 1) (or 'auto')", "got 1.0", CONFIG_FIX),
    ),
    case(
        "config-delimiter-two-characters",
        "fit",
        "--set",
        "data.path=d.csv",
        "--set",
        "data.delimiter=;;",
        files={"d.csv": "a,b\n1,2\n2,4\n3,7\n"},
        stderr=("'data.delimiter' must be at most 1 character long", "got ';;'", CONFIG_FIX),
    ),
    case(
        "config-delimiter-a-quote",
        "fit",
        "--set",
        "data.path=d.csv",
        "--set",
        'data.delimiter="',
        files={"d.csv": "a,b\n1,2\n2,4\n3,7\n"},
        stderr=("'data.delimiter'", "cannot separate fields", CONFIG_FIX),
    ),
    case(
        "config-delimiter-not-ascii",
        "fit",
        "--set",
        "data.path=d.csv",
        "--set",
        "data.delimiter=§",
        files={"d.csv": "a§b\n1§2\n2§4\n3§7\n"},
        stderr=("'data.delimiter'", "'§' is not an ASCII character", CONFIG_FIX),
    ),
    case(
        "config-dtype-float16",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "model:\n  dtype: float16\n"},
        stderr=("line 2", "'model.dtype' must be 'float32' or 'float64'", "'float16'", CONFIG_FIX),
    ),
    case(
        "config-engine-sklearn",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  engine: sklearn\n"},
        stderr=("line 2", "'train.engine' must be 'manual', 'torch' or 'exact'", "'sklearn'", CONFIG_FIX),
    ),
    case(
        "config-device-misspelled",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "seed: 1\ntrain:\n  epochs: 3\n  device: gpu\n"},
        stderr=("c.yaml, line 4", "train.device", "'gpu'", "cpu, cuda, cuda:N, mps or auto"),
    ),
    case(
        "config-duplicate-key",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  lr: 0.1\n  lr: 0.2\n"},
        stderr=("c.yaml, line 3", "'train.lr' appears twice", "lines 2 and 3", "Keep one"),
    ),
    case(
        "config-missing-file",
        "fit",
        "-c",
        "nope.yaml",
        stderr=("nope.yaml", "does not exist", "Check the path"),
    ),
    case(
        "config-is-a-directory",
        "fit",
        "-c",
        "confdir",
        files={"confdir": None},
        stderr=("confdir", "is a directory", "Pass the file itself"),
    ),
    case(
        "config-csv-without-path",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data:\n  source: csv\n"},
        stderr=("line 1", "'data.path' is required", "add it"),
    ),
    case(
        "config-unknown-data-source",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data:\n  source: excel\n"},
        stderr=("line 2", "data.source", "'excel'", "inline, synthetic, csv, parquet, npy"),
    ),
    case(
        "config-validate-checks-too",
        "config",
        "validate",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  lrr: 0.1\n"},
        stderr=("c.yaml, line 2", "Did you mean 'train.lr'?"),
    ),
]

SET_CASES = [
    case("set-nul-in-a-path", "fit", "--set", 'data.path="a\\0b.csv"', stderr=("holds a NUL character", "Remove it")),
    case("set-nul-in-the-runs-folder", "fit", "--set", 'output.dir="ru\\0ns"', stderr=("holds a NUL character",)),
    case("set-surrogate-in-a-path", "fit", "--set", 'data.path="\\ud800.csv"', stderr=("a lone surrogate (\\ud800)",)),
    case(
        "config-nul-in-a-path",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": 'data:\n  path: "\\u0000"\n'},
        stderr=("c.yaml, key 'data.path'", "holds a NUL character"),
    ),
    case(
        "set-unknown-key-did-you-mean",
        "fit",
        "--set",
        "train.epoch=3",
        stderr=("--set 'train.epoch=3'", "unknown key 'train.epoch'", "Did you mean 'train.epochs'?"),
    ),
    case(
        "set-wrong-type",
        "fit",
        "--set",
        "train.epochs=abc",
        stderr=("from the command line", "'train.epochs' must be an integer", "'abc'", "--set KEY=VALUE"),
    ),
    case(
        "set-no-equals",
        "fit",
        "--set",
        "train.epochs",
        stderr=("--set 'train.epochs'", "is not KEY=VALUE", "--set train.lr=0.1"),
    ),
    case(
        "set-no-key",
        "fit",
        "--set",
        "=3",
        stderr=("--set '=3'", "is not KEY=VALUE", "--set train.lr=0.1"),
    ),
    case(
        "set-into-a-value",
        "fit",
        "--set",
        "train.lr.x=3",
        stderr=("--set 'train.lr.x=3'", "'train.lr' is a value, not a section", "lrtrain config show"),
    ),
    case(
        "set-section-to-a-scalar",
        "fit",
        "--set",
        "train=3",
        stderr=("from the command line", "'train' must be a mapping of keys to values", CONFIG_FIX),
    ),
    case(
        "set-data-key-on-default",
        "fit",
        "--set",
        "data.validation=1.0",
        stderr=("from the command line", "'data.validation' must be less than 1", "got 1.0", CONFIG_FIX),
    ),
    case(
        "engine-option-unknown",
        "fit",
        "--engine",
        "sklearn",
        stderr=("'train.engine' must be 'manual', 'torch' or 'exact'", "'sklearn'"),
    ),
    case(
        "device-option-misspelled",
        "fit",
        "--device",
        "gpu",
        stderr=("train.device", "'gpu'", "cpu, cuda, cuda:N, mps or auto"),
        absent=("built-in default config",),
    ),
    case(
        "unknown-option",
        "fit",
        "--epochs",
        "3",
        stderr=("No such option: --epochs", "lrtrain fit -h"),
    ),
]

DATA_CASES = [
    case(
        "csv-missing",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG},
        stderr=("d.csv", "does not exist", "data.path", "relative to the config file"),
    ),
    case(
        "csv-is-a-directory",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": None},
        stderr=("d.csv", "is a directory", "Point data.path at a CSV file"),
    ),
    case(
        "csv-empty",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": ""},
        stderr=("d.csv", "is empty", "needs a header line"),
    ),
    case(
        "csv-header-only",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,y\n"},
        stderr=("d.csv", "has a header but no data rows", "Add rows"),
    ),
    case(
        "csv-row-too-short",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,y\n1,2\n2\n3,6\n"},
        stderr=("d.csv, line 3", "has 1 fields but the first line has 2", "check that line"),
    ),
    case(
        "csv-row-too-long",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,y\n1,2\n2,4,5\n3,6\n4,8\n"},
        stderr=("d.csv, line 3", "has 3 fields but the first line has 2", "check that line"),
    ),
    case(
        "csv-not-a-number",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,y\n1,2\n2,abc\n3,6\n"},
        stderr=("d.csv, line 3, column 'y'", "'abc' is not a number", "Fix the cell"),
    ),
    case(
        "csv-nan",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,y\n1,2\n2,4\nnan,6\n"},
        stderr=("d.csv, line 4, column 'x'", "nan", "not a finite number", "Fix or drop those rows"),
    ),
    case(
        "csv-inf",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,y\n1,2\n2,4\n3,inf\n"},
        stderr=("d.csv, line 4, column 'y'", "inf", "not a finite number", "Fix or drop those rows"),
    ),
    case(
        "csv-not-utf8",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": b"\xff\xfe\x00x,y\n1,2\n"},
        stderr=("d.csv", "is not UTF-8 text", "Save it as UTF-8 CSV"),
    ),
    case(
        "csv-duplicate-column",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,x,y\n1,2,2\n2,4,3\n3,6,4\n4,1,1\n"},
        stderr=("d.csv", "column name 'x' appears twice", "Rename one"),
    ),
    case(
        "csv-wrong-delimiter",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x;y\n1;2\n2;4\n3;6\n"},
        stderr=("d.csv", "only one column", "'x;y'", "data.delimiter"),
    ),
    case(
        "csv-unknown-target",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: csv, path: d.csv, target: z}\n", "d.csv": GOOD_CSV},
        stderr=("d.csv", "no column 'z' (data.target)", "Its columns are: x, y"),
    ),
    case(
        "csv-target-index-out-of-range",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: csv, path: d.csv, target: 5}\n", "d.csv": GOOD_CSV},
        stderr=("d.csv", "data.target = 5 is out of range", "Use an index from 0 to 1"),
    ),
    case(
        "csv-unknown-feature",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: csv, path: d.csv, features: [xx]}\n", "d.csv": GOOD_CSV},
        stderr=("d.csv", "no column 'xx' (data.features)", "Did you mean 'x'?"),
    ),
    case(
        "csv-underdetermined",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "a,b,c,y\n1,2,3,4\n2,3,1,5\n"},
        stderr=("d.csv", "2 training rows for 3 features and a bias", "needs at least 4 rows", "Add rows"),
    ),
    case(
        "csv-constant-feature-standardized",
        "fit",
        "-c",
        "c.yaml",
        files={
            "c.yaml": "data: {source: csv, path: d.csv, standardize: true}\n",
            "d.csv": "a,b,y\n1,5,2\n2,5,4\n3,5,6\n4,5,9\n",
        },
        stderr=("d.csv", "feature 'b' is constant", "data.standardize to false"),
    ),
    case(
        "validation-leaves-no-training-rows",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: inline, validation: 0.9}\n"},
        stderr=("data.validation = 0.9", "0 training rows", "another fraction"),
    ),
    case(
        "inline-x-y-lengths-differ",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: inline, x: [1, 2, 3], y: [1, 2]}\n"},
        stderr=("data.x has 3 rows but data.y has 2 values", "one target per row"),
    ),
    case(
        "npy-one-dimensional",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: npy, path: d.npy}\n"},
        setup=npy_1d,
        stderr=("d.npy", "shape (5,)", "2-D with at least two columns", "Use .npz"),
    ),
    case(
        "npz-without-y",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: npy, path: d.npz}\n"},
        setup=npz_without_y,
        stderr=("d.npz", "no array 'y'", "it holds x", "data.y_key"),
    ),
    case(
        "npy-not-numpy",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: npy, path: d.npy}\n", "d.npy": "hello"},
        stderr=("d.npy", "not a readable NumPy file", "numpy.save"),
    ),
]

MODEL_CASES = [
    case(
        "predict-without-runs",
        "predict",
        "5",
        stderr=("no model found", "runs/", "lrtrain fit", "--model"),
    ),
    case(
        "predict-missing-model",
        "predict",
        "5",
        "--model",
        "gone.json",
        stderr=("gone.json", "does not exist", "lrtrain fit"),
    ),
    case(
        "predict-corrupt-model",
        "predict",
        "5",
        "--model",
        "broken.json",
        files={"broken.json": "{not json"},
        stderr=("broken.json", "not a readable lrtrain model", "lrtrain fit"),
    ),
    case(
        "predict-json-not-a-model",
        "predict",
        "5",
        "--model",
        "other.json",
        files={"other.json": '{"a": 1}'},
        stderr=("other.json", "is not an lrtrain model", "written by `lrtrain fit`"),
    ),
    case(
        "predict-future-format-version",
        "predict",
        "5",
        setup=fitted_v99,
        stderr=("model.json", "format version 99", "reads version 1", "upgrade lrtrain"),
    ),
    case(
        "predict-wrong-feature-count",
        "predict",
        "1,2",
        setup=fitted,
        stderr=("takes 1 feature(s) (x) but got 2", "lrtrain predict 1"),
    ),
    case(
        "predict-not-a-number",
        "predict",
        "abc",
        setup=fitted,
        stderr=("argument 1 ('abc')", "is not a number", "numbers separated by commas"),
    ),
    case(
        "predict-nan",
        "predict",
        "nan",
        setup=fitted,
        stderr=("argument 1 ('nan')", "not a finite number", "Give finite feature values"),
    ),
    case(
        "predict-second-argument-bad",
        "predict",
        "5",
        "abc",
        setup=fitted,
        stderr=("argument 2 ('abc')", "is not a number"),
    ),
]

ENGINE_CASES = [
    case("engine-empty", "fit", "--engine", "", stderr=("--engine is empty", "--engine exact")),
    case("device-empty", "fit", "--engine", "torch", "--device", "", stderr=("--device is empty",)),
    case("compare-engine-ending-in-a-colon", "compare", "manual", "torch:", stderr=("'torch:' ends in a colon",)),
    case(
        "compare-unknown-engine",
        "compare",
        "manual",
        "foo",
        stderr=("unknown engine 'foo'", "Engines: manual, torch"),
    ),
    case(
        "compare-device-on-exact",
        "compare",
        "manual",
        "exact:cuda",
        stderr=("engine 'exact:cuda'", "only the torch engine takes a device"),
    ),
    case(
        "compare-no-engines",
        "compare",
        stderr=("Missing argument", "lrtrain compare -h"),
    ),
    case(
        "fit-device-cuda-default-engine",
        "fit",
        "--device",
        "cuda",
        stderr=("'cuda'", "only the torch engine runs on a device", "--engine torch --device cuda"),
    ),
    case(
        "fit-torch-device-cuda",
        "fit",
        "--engine",
        "torch",
        "--device",
        "cuda",
        stderr=("device 'cuda' is not available", "available: cpu", "--device cpu"),
        marks=(NO_CUDA,),
    ),
    case(
        "compare-torch-cuda",
        "compare",
        "manual",
        "torch:cuda",
        stderr=("device 'cuda' is not available", "available: cpu", "--device cpu"),
        marks=(NO_CUDA,),
    ),
]

NUMBER_AND_NAME_CASES = [
    case(
        "config-lr-infinite",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  lr: 1e400\n"},
        stderr=("line 2", "'train.lr' must be a number > 0 or 'auto'", "inf", CONFIG_FIX),
    ),
    case(
        "set-init-std-infinite",
        "fit",
        "--set",
        "model.init_std=.inf",
        stderr=("'model.init_std' must be a finite number", "inf", CONFIG_FIX),
    ),
    case("set-inline-y-nan", "fit", "--set", "data.y=[1, 2, .nan, 4]", stderr=("'data.y[2]' must be a finite number",)),
    case("set-seed-negative", "fit", "--set", "seed=-5", stderr=("'seed' must be at least 0", "got -5", CONFIG_FIX)),
    case("set-name-with-slash", "fit", "--set", "name=a/b", stderr=("'name' names a folder", "'a/b'")),
    case("set-name-climbing-out", "fit", "--set", "name=../../evil", stderr=("'name' names a folder", "'../../evil'")),
    case(
        "output-dir-unwritable",
        "fit",
        "--set",
        "output.dir=/proc/lrtrain-cannot-write-here",
        stderr=("cannot create a run folder", "output.dir", "--set output.save=false"),
    ),
    case("make-bias-nan", "data", "make", "d.csv", "--bias", "nan", stderr=("--bias nan is not a finite number",)),
    case("make-noise-infinite", "data", "make", "d.csv", "--noise", "inf", stderr=("--noise inf is not a finite",)),
    case("make-weights-nan", "data", "make", "d.csv", "--weights", "nan", stderr=("not a finite number",)),
    case("make-seed-negative", "data", "make", "d.csv", "--seed", "-1", stderr=("--seed",)),
    case(
        "config-is-a-csv-file",
        "fit",
        "-c",
        "d.csv",
        files={"d.csv": GOOD_CSV},
        stderr=("holds a string", "looks like data", "--set data.source=csv"),
    ),
    case(
        "csv-bad-byte-after-8kb",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": ("x,y\n" + "1,2\n" * 5000).encode() + b"\xff,3\n"},
        stderr=("d.csv", "not UTF-8", "Save the file as UTF-8"),
    ),
    case(
        "npz-with-upper-case-suffix",
        "fit",
        "--set",
        "data.source=npy",
        "--set",
        "data.path=D.NPZ",
        setup=npz_upper_case_without_y,
        stderr=("D.NPZ", "no array 'y'"),
    ),
    case(
        "npy-complex-numbers",
        "fit",
        "--set",
        "data.source=npy",
        "--set",
        "data.path=c.npy",
        setup=lambda folder: np.save(folder / "c.npy", np.ones((4, 2)) * (1 + 2j)),
        stderr=("c.npy", "lrtrain needs numbers"),
    ),
    case("compare-device-misspelled", "compare", "manual", "torch:tpu", stderr=("'torch:tpu'", "cpu, cuda, cuda:N")),
]

# An endless file, a "billion laughs" and a huge model are in test_faults.py: without their limits they
# would take the machine's memory, so they run in a process of their own with a memory limit.
LIMIT_CASES = [
    case(
        "config-larger-than-the-limit",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "#" * (4 * 2**20 + 1)},
        stderr=("c.yaml", "larger than 4 MB", "4,194,305 bytes", "LRTRAIN_MAX_CONFIG_MB"),
    ),
    case(
        "config-alias-inside-itself",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train: &t {lr: 0.1, more: *t}\n"},
        stderr=("c.yaml, line 1", "alias refers to a node that contains it"),
    ),
    case(
        "npz-member-claims-a-huge-shape",
        "fit",
        "--set",
        "data.source=npy",
        "--set",
        "data.path=d.npz",
        setup=npz_claiming_a_huge_shape,
        stderr=("d.npz", "'x' (member x.npy)", "claims shape (1099511627776,)", "damaged"),
    ),
]

OVERFLOW_AND_PATH_CASES = [
    case(
        "config-integer-of-thousands-of-digits",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": f"seed: {HUGE}\n"},
        stderr=("c.yaml, line 1, column 7", "(5,000 characters)", "64-bit range", "floating point"),
    ),
    case(
        "config-lr-of-hundreds-of-digits",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": f"train:\n  lr: {BIG}\n"},
        stderr=("c.yaml, line 2", "(400 characters)", "64-bit range"),
    ),
    case(
        "config-integer-in-inline-data",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": f"data:\n  x: [1, 2, {BIG}, 4]\n"},
        stderr=("c.yaml, line 2", "64-bit range"),
    ),
    case(
        "set-epochs-of-thousands-of-digits",
        "fit",
        "--set",
        f"train.epochs={HUGE}",
        stderr=("--set 'train.epochs=", "64-bit range"),
    ),
    case(
        "config-int-tag-without-digits",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "seed: !!int\n"},
        stderr=("c.yaml", "not valid YAML", "a value cannot be read", "!!tag"),
    ),
    case(
        "predict-model-integer-of-thousands-of-digits",
        "predict",
        "5",
        "--model",
        "m.json",
        files={"m.json": MODEL_HEAD + f'"weights": [{HUGE}], "bias": 0, ' + MODEL_TAIL},
        stderr=("m.json", "not a readable lrtrain model", "integer of 5,000 digits"),
    ),
    case(
        "predict-model-weight-beyond-float",
        "predict",
        "5",
        "--model",
        "m.json",
        files={"m.json": MODEL_HEAD + f'"weights": [1], "bias": {BIG}, ' + MODEL_TAIL},
        stderr=("m.json", "integer of 400 digits"),
    ),
    case(
        "predict-model-weights-a-string",
        "predict",
        "5",
        "--model",
        "m.json",
        files={"m.json": MODEL_HEAD + '"weights": "12", "bias": 0, ' + MODEL_TAIL},
        stderr=("m.json", "damaged: weights missing or malformed", "Retrain it"),
    ),
    case(
        "predict-model-nested-deeply",
        "predict",
        "5",
        "--model",
        "m.json",
        files={"m.json": MODEL_HEAD + '"x": ' + "[" * 100_000 + "]" * 100_000 + "}"},
        stderr=("m.json", "nested too deeply"),
    ),
    case(
        "data-path-symlink-loop",
        "fit",
        "--set",
        "data.source=npy",
        "--set",
        "data.path=d.npy",
        setup=symlink_loop,
        stderr=("d.npy", "cannot be opened", "symbolic links", "data.path"),
    ),
    case(
        "make-force-into-a-folder",
        "data",
        "make",
        "d.csv",
        "--force",
        setup=folder_named_like_a_file,
        stderr=("d.csv is a folder", "Name a file"),
    ),
    case(
        "synthetic-rows-beyond-memory",
        "config",
        "validate",
        "--set",
        "data.source=synthetic",
        "--set",
        "data.rows=10000000000000",
        stderr=("data.rows = 10,000,000,000,000", "GB available", "Lower data.rows", "lrtrain data make data.npy"),
    ),
]

MESSAGE_CASES = [
    case(
        "config-path-with-escape-sequences",
        "fit",
        "-c",
        "a\x1b[31mred\nerror: fake line.yaml",
        stderr=("a\\x1b[31mred\\x0aerror: fake line.yaml", "does not exist"),
        absent=("\x1b", "red\n"),
    ),
    case(
        "config-key-with-escape-sequences",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": 'train:\n  "lr\\e[2J\\x9b": 1\n'},
        stderr=("unknown key 'train.lr\\x1b[2J\\x9b'",),
        absent=("\x1b", "\x9b"),
    ),
    case(
        "summary-of-a-missing-run",
        "summary",
        "nowhere",
        stderr=("nowhere", "does not exist", "as RUN"),
        absent=("--model",),
    ),
]

# Hostile shapes of a config: wrong types at every level, YAML features lrtrain does not take, files of no use.
CONFIG_SHAPE_CASES = [
    case(
        "config-tab-indentation",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n\tlr: 0.1\n"},
        stderr=("c.yaml, line 2, column 1", "not valid YAML", "cannot start any token"),
    ),
    case(
        "config-two-documents",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train: {lr: 0.1}\n---\nseed: 1\n"},
        stderr=("c.yaml, line 2", "not valid YAML", "another document"),
    ),
    case(
        "config-utf16-with-bom",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "seed: 1\n".encode("utf-16")},
        stderr=("c.yaml", "is not UTF-8 text", "Save it as UTF-8"),
    ),
    case(
        "config-key-of-100000-characters",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": f"? {'k' * 100_000}\n: 1\n"},
        stderr=("c.yaml, line 1", "unknown key 'kkkk", "characters cut", "lrtrain config show"),
    ),
    case(
        "config-section-a-list",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train: [1, 2]\n"},
        stderr=("c.yaml, line 1", "'train' must be a mapping of keys to values", "got [1, 2] (list)", CONFIG_FIX),
    ),
    case(
        "config-value-a-mapping",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  lr: {a: 1}\n"},
        stderr=("c.yaml, line 2", "'train.lr' must be a number > 0 or 'auto'", "{'a': 1}", CONFIG_FIX),
    ),
    case(
        "config-data-null",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: null\n"},
        stderr=("c.yaml, line 1", "'data' must be a mapping of keys to values", "got None", CONFIG_FIX),
    ),
    case(
        "config-epochs-null",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  epochs: ~\n"},
        stderr=("c.yaml, line 2", "'train.epochs' must be an integer", "got None", CONFIG_FIX),
    ),
    case(
        "config-required-path-null",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data:\n  source: csv\n  path: null\n"},
        stderr=("c.yaml, line 3", "'data.path' must be a string", "got None", CONFIG_FIX),
    ),
    case(
        "config-unknown-key-three-levels-down",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  early_stopping:\n    deeper:\n      x: 1\n"},
        stderr=("c.yaml, line 3", "unknown key 'train.early_stopping.deeper'", "train.early_stopping.patience"),
    ),
    case(
        "config-key-a-number",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  epochs: 3\n  1: 2\n"},
        stderr=("c.yaml, line 3", "a key under 'train' is the number 1, not a name", "quote one"),
        absent=("Keys should be strings",),
    ),
    case(
        "config-key-null",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "seed: 1\n~: 1\n"},
        stderr=("c.yaml, line 2", "a key at the top level is null, not a name"),
        absent=("'None'",),
    ),
    case(
        "config-key-a-boolean",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  epochs: 3\n  lr: 0.1\n  yes: 2\n"},
        stderr=("c.yaml, line 4", "a key under 'train' is the boolean True, not a name"),
    ),
    case(
        "config-key-a-boolean-after-a-quoted-yes",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": 'train:\n  lr: 0.1\n  "yes": 1\n  on: 2\n'},
        stderr=("line 4: a key under 'train' is the boolean True", "line 3: unknown key 'train.yes'"),
    ),
    case(
        "config-python-object-tag",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": 'train: !!python/object/apply:os.system ["touch pwned"]\n'},
        stderr=("c.yaml, line 1", "not valid YAML", "python/object/apply:os.system"),
    ),
    case(
        "config-seed-a-date",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "seed: 2001-12-14\n"},
        stderr=("c.yaml, line 1", "'seed' must be an integer", "datetime.date(2001, 12, 14)"),
    ),
    case(
        "config-name-binary",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "name: !!binary aGVsbG8=\n"},
        stderr=("c.yaml, line 1", "'name' must be a string", "b'hello'"),
    ),
    case(
        "config-section-a-set",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train: !!set {a, b}\n"},
        stderr=("c.yaml, line 1", "'train' must be a mapping of keys to values"),
    ),
    case(
        "config-nul-byte",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": b"seed: 1\x00\n"},
        stderr=("c.yaml", "not valid YAML", "#x0000"),
        absent=("\x00",),
    ),
    case(
        "config-dev-null", "fit", "-c", "/dev/null", stderr=("config file /dev/null is empty", "Put at least one key")
    ),
    case(
        "config-a-socket",
        "fit",
        "-c",
        "c.yaml",
        setup=a_socket("c.yaml"),
        stderr=("cannot read config file c.yaml", "No such device or address"),
    ),
    case(
        "config-dangling-link",
        "fit",
        "-c",
        "c.yaml",
        setup=a_link("c.yaml", "nowhere.yaml"),
        stderr=("config file c.yaml does not exist", "Check the path"),
    ),
]

# Numbers as YAML 1.1 or Python would read them, and lrtrain does not: 1_000, 010 (octal), 1:30 (base 60), ...
NUMBER_SYNTAX = "A number is plain ASCII: digits with an optional sign, point and exponent (1000, -2.5, 1e-3)"
NUMBER_CASES = [
    case(
        "config-lr-with-underscores",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  lr: 1_000\n"},
        stderr=(
            "c.yaml, line 2, column 7, key 'train.lr'",
            "1_000 is not a number as lrtrain reads one",
            NUMBER_SYNTAX,
        ),
    ),
    case(
        "config-epochs-octal",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "train:\n  epochs: 010\n"},
        stderr=("key 'train.epochs'", "(YAML would read it as 8)", NUMBER_SYNTAX),
    ),
    case(
        "set-lr-base-60",
        "fit",
        "--set",
        "train.lr=1:30",
        stderr=("--set 'train.lr=1:30'", "(YAML would read it as 90)", NUMBER_SYNTAX),
    ),
    case(
        "set-epochs-full-width-digits",
        "fit",
        "--set",
        "train.epochs=\uff11\uff10",
        stderr=("'train.epochs' must be an integer", "is text, not a number as lrtrain reads one", NUMBER_SYNTAX),
    ),
    case(
        "set-epochs-fractional",
        "fit",
        "--set",
        "train.epochs=2.5",
        stderr=("'train.epochs' must be an integer", "got 2.5 (number)", CONFIG_FIX),
    ),
    case(
        "set-key-with-an-empty-part",
        "fit",
        "--set",
        "train..lr=3",
        stderr=("--set 'train..lr=3'", "unknown key 'train.'", "train.lr"),
    ),
    case(
        "set-features-an-empty-list",
        "fit",
        "--set",
        "data.path=d.csv",
        "--set",
        "data.features=[]",
        files={"d.csv": GOOD_CSV},
        stderr=("'data.features' must hold at least 1 item", "null = every column but the target", "got []"),
        absent=("only one column", "data.features=1"),
    ),
]

# A data.path that is no file: a device, a pipe that nobody writes to, a socket; empty or junk files.
FILE_KIND_CASES = [
    case(
        "data-path-a-device",
        "fit",
        "--set",
        "data.source=csv",
        "--set",
        "data.path=/dev/zero",
        stderr=("data file /dev/zero is a device, not a file", "Save the data to a CSV file"),
        absent=("is empty",),
    ),
    case(
        "data-path-a-pipe",
        "fit",
        "--set",
        "data.path=d.csv",
        setup=a_fifo("d.csv"),
        stderr=("d.csv is a pipe, not a file", "Save the data to a CSV file"),
        absent=("is empty",),
    ),
    case(
        "data-path-a-socket",
        "fit",
        "--set",
        "data.path=d.npy",
        setup=a_socket("d.npy"),
        stderr=("d.npy is a socket, not a file", "Save the data to a .npy file"),
    ),
    case(
        "npy-empty-file",
        "fit",
        "--set",
        "data.path=d.npy",
        files={"d.npy": b""},
        stderr=("d.npy is empty", "It needs an array"),
        absent=("header line",),
    ),
    case(
        "parquet-folder-of-junk",
        "fit",
        "--set",
        "data.source=parquet",
        "--set",
        "data.path=d",
        setup=a_parquet_folder,
        stderr=("d/a.parquet is not a readable Parquet file", "pyarrow"),
    ),
    case(
        "parquet-cut-short",
        "fit",
        "--set",
        "data.path=d.parquet",
        setup=a_parquet_cut_short,
        stderr=("d.parquet cannot be decoded after", "damaged or cut short", "Write it again"),
    ),
    case(
        "parquet-folder-empty",
        "fit",
        "--set",
        "data.source=parquet",
        "--set",
        "data.path=d",
        files={"d": None},
        stderr=("holds no Parquet files", "data.path"),
    ),
]

# CSV files a demanding user (or a broken export) hands over.
TABLE = "a,y\n1,2\n2,3\n3,5\n"


def a_parquet_with_an_unnamed_column(folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "": [1.0, 0.0, 2.0], "y": [2.0, 3.0, 5.0]}), folder / "d.parquet")


def a_gzip_cut_short(folder: Path) -> None:
    fitted(folder)
    rows = "".join(f"{i % 7},{i % 5},{i % 3}\n" for i in range(100_000))
    packed = gzip.compress(("x0,x1,y\n" + rows).encode(), mtime=0)
    (folder / "t.csv.gz").write_bytes(packed[: len(packed) // 2])


MISNAMED_CASES = [
    case(
        "evaluate-gzip-cut-short",
        "evaluate",
        "--data",
        "t.csv.gz",
        setup=a_gzip_cut_short,
        stderr=("t.csv.gz cannot be decompressed as gzip", "cut short or damaged"),
        absent=("near line",),
    ),
    case(
        "parquet-column-without-a-name",
        "fit",
        "--set",
        "data.path=d.parquet",
        setup=a_parquet_with_an_unnamed_column,
        stderr=("d.parquet: column 2 has no name", "data.features"),
    ),
    case(
        "csv-categorical-named-twice",
        "fit",
        "--set",
        "data.path=d.csv",
        "--set",
        "data.categorical=[c, c]",
        files={"d.csv": "a,c,y\n1,p,2\n2,q,3\n3,p,5\n4,q,4\n"},
        stderr=("data.categorical names column 'c' twice",),
    ),
    case(
        "csv-gzip-named-csv",
        "fit",
        "--set",
        "data.path=d.csv",
        files={"d.csv": gzip.compress(TABLE.encode(), mtime=0)},
        stderr=("d.csv is gzip-compressed, not CSV text", "name it d.csv.gz"),
    ),
    case(
        "csv-bzip2-named-csv",
        "evaluate",
        "--data",
        "d.csv",
        setup=fitted,
        files={"d.csv": bz2.compress(TABLE.encode())},
        stderr=("d.csv is bzip2-compressed, not CSV text", "name it d.csv.bz2"),
    ),
    case(
        "csv-utf16-without-bom",
        "fit",
        "--set",
        "data.path=d.csv",
        files={"d.csv": TABLE.encode("utf-16-le")},
        stderr=("d.csv is not UTF-8 text", "UTF-16", "iconv"),
    ),
    case(
        "csv-nul-in-the-header",
        "fit",
        "--set",
        "data.path=d.csv",
        files={"d.csv": b"a\x00,y\n1,2\n2,3\n3,5\n"},
        stderr=("d.csv: line 1 holds a NUL byte",),
    ),
    case(
        "csv-header-alone-without-a-line-end",
        "fit",
        "--set",
        "data.path=d.csv",
        files={"d.csv": "x1,x2,y"},
        stderr=("d.csv has a header but no data rows",),
        absent=("Could not skip", "data.delimiter"),
    ),
    case(
        "csv-thousands-separator",
        "fit",
        "--set",
        "data.path=d.csv",
        files={"d.csv": 'a,y\n"1,000",2\n2,3\n3,5\n'},
        stderr=("thousands separator (1000)",),
    ),
    case(
        "predict-data-from-a-pipe",
        "predict",
        "--data",
        "p.csv",
        setup=lambda folder: (fitted(folder), os.mkfifo(folder / "p.csv")),
        stderr=("p.csv is a pipe or a device, not a file",),
        absent=("is empty",),
    ),
    case(
        "evaluate-data-through-a-link-loop",
        "evaluate",
        "--data",
        "loop.csv",
        setup=lambda folder: (fitted(folder), (folder / "loop.csv").symlink_to("loop.csv")),
        stderr=("loop.csv cannot be opened", "symbolic links"),
        absent=("does not exist",),
    ),
]

CSV_HOSTILE_CASES = [
    case(
        "csv-unclosed-quote",
        "fit",
        "--set",
        "data.path=d.csv",
        files={"d.csv": 'a,b,y\n1,2,3\n"4,5,6\n7,8,9\n10,11,12\n'},
        stderr=("d.csv, line 3: a quote at the start of a cell there opens a quoted cell that does not close",),
    ),
    case(
        "csv-decimal-comma",
        "fit",
        "--set",
        "data.path=d.csv",
        "--set",
        "data.delimiter=;",
        files={"d.csv": "a;b;y\n1,5;2,0;3,1\n2,5;1,0;4,1\n3,0;2,5;5,0\n"},
        stderr=("d.csv, line 2, column 'a': '1,5' is not a number", "decimal comma (1.5)", "decimal points"),
        absent=("categorical",),
    ),
    case(
        "csv-nul-in-a-cell",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": b"x,y\n1,2\n2,\x004\n3,6\n"},
        stderr=("d.csv, line 3, column 'y'", "'\\x004' is not a number"),
        absent=("\x00",),
    ),
    case(
        "csv-empty-column-name",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,,y\n1,2,3\n2,4,5\n3,6,8\n4,1,2\n"},
        stderr=("d.csv: column 2 of the header has no name", "'x,,y'", "Name it"),
    ),
    case(
        "csv-trailing-delimiter",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,y,\n1,2,\n2,4,\n3,6,\n"},
        stderr=("d.csv: column 3 of the header has no name", "at the end of each line makes an empty last one"),
    ),
    case(
        "csv-blank-first-line",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "\n\nx,y\n1,2\n2,4\n"},
        stderr=("d.csv: line 1 is blank", "column names", "Remove the blank lines"),
        absent=("out of range",),
    ),
    case(
        "csv-cell-beyond-float",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,y\n1,2\n2,1e400\n3,6\n"},
        stderr=("d.csv, line 3, column 'y'", "the value is inf, not a finite number"),
    ),
    case(
        "csv-full-width-digit",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,y\n1,2\n2,\uff14\n3,6\n"},
        stderr=("d.csv, line 3, column 'y'", "'\uff14' is not a number", "Fix the cell"),
        absent=("Check data.delimiter",),
    ),
    case(
        "csv-line-of-ten-million-characters",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x,y\n1,2\n1," + "9" * 10_000_000 + "\n"},
        stderr=("d.csv, line 3: a field is longer than 131,072 characters", "Check the file there"),
    ),
    case(
        "csv-header-without-a-line-end",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x" * 3_000_000},
        stderr=("d.csv: line 1 goes on past 1,048,576 bytes without a line end", "Is it a CSV file"),
    ),
    case(
        "csv-lines-ended-by-carriage-returns",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": b"x,y\r1,2\r2,4\r3,6.5\r"},
        stderr=("d.csv ends its lines with a carriage return alone", "\\n or \\r\\n", "tr '\\r' '\\n'"),
    ),
    case(
        "csv-gz-lines-ended-by-carriage-returns",
        "fit",
        "--set",
        "data.path=d.csv.gz",
        files={"d.csv.gz": gzip.compress(b"x,y\r1,2\r2,4\r3,6.5\r")},
        stderr=("d.csv.gz ends its lines with a carriage return alone",),
    ),
    case(
        "csv-header-name-too-long",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": CSV_CONFIG, "d.csv": "x" * 200_000 + ",y\n1,2\n"},
        stderr=("d.csv: a field of line 1 is longer than 131,072 characters", "Check that line"),
    ),
    case(
        "csv-gz-not-gzip",
        "fit",
        "--set",
        "data.path=d.csv.gz",
        files={"d.csv.gz": GOOD_CSV},
        stderr=("d.csv.gz cannot be decompressed as gzip", "Rename or recompress it"),
    ),
    case(
        "csv-gz-truncated",
        "fit",
        "--set",
        "data.path=d.csv.gz",
        files={"d.csv.gz": gzip.compress(GOOD_CSV.encode())[:12]},
        stderr=("d.csv.gz cannot be decompressed as gzip", "Rename or recompress it"),
    ),
    case(
        "csv-target-index-below-the-first",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: csv, path: d.csv, target: -5}\n", "d.csv": GOOD_CSV},
        stderr=("d.csv has 2 columns", "data.target = -5 is out of range", "from 0 to 1"),
    ),
    case(
        "csv-target-also-a-feature",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: csv, path: d.csv, target: x, features: [x]}\n", "d.csv": GOOD_CSV},
        stderr=("column 'x' is both the target and a feature",),
    ),
    case(
        "csv-feature-listed-twice",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: csv, path: d.csv, features: [x, x]}\n", "d.csv": GOOD_CSV},
        stderr=("data.features names column 'x' twice", "List each column once"),
    ),
    case(
        "csv-categorical-target",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data: {source: csv, path: d.csv, categorical: [y]}\n", "d.csv": GOOD_CSV},
        stderr=("column 'y' is the target", "must be numeric"),
    ),
]

# `data make` asked for nothing, or for what it cannot write; more than the machine holds is in test_faults.py,
# in a process with a memory and a file size limit.
MAKE_CASES = [
    case("make-rows-zero", "data", "make", "d.csv", "--rows", "0", stderr=("Invalid value for '--rows'",)),
    case("make-rows-fractional", "data", "make", "d.csv", "--rows", "1.5", stderr=("Invalid value for '--rows'",)),
    case(
        "make-weights-for-other-features",
        "data",
        "make",
        "d.csv",
        "--features",
        "2",
        "--weights",
        "1",
        stderr=("--weights has 1 value(s) but --features is 2",),
    ),
    case(
        "make-unknown-suffix",
        "data",
        "make",
        "d.txt",
        stderr=("cannot write d.txt", ".csv, .parquet, .npy or .npz"),
    ),
]

# predict, evaluate and the model files and run folders they read.
M_TAIL = '"features": ["x"], "target": "y", "dtype": "float64"}'
SERVE_CASES = [
    case(
        "predict-interval-zero",
        "predict",
        "5",
        "--interval",
        "0",
        setup=fitted,
        stderr=("--interval '0' is not a probability between 0 and 1", "--interval 0.95"),
    ),
    case(
        "predict-interval-hundred-percent",
        "predict",
        "5",
        "--interval",
        "100%",
        setup=fitted,
        stderr=("--interval '100%' is not a probability between 0 and 1",),
    ),
    case(
        "predict-number-of-5000-digits",
        "predict",
        HUGE,
        setup=fitted,
        stderr=("argument 1", "characters cut", "is not a finite number"),
    ),
    case(
        "evaluate-table-without-the-feature",
        "evaluate",
        "--data",
        "t.csv",
        setup=fitted,
        files={"t.csv": "y\n1\n2\n"},
        stderr=("t.csv has no column 'x'", "The file's columns are: y"),
    ),
    case(
        "evaluate-table-separated-by-semicolons",
        "evaluate",
        "--data",
        "t.csv",
        setup=fitted,
        files={"t.csv": "x;y\n1;2\n2;4\n"},
        stderr=("t.csv has one column, 'x;y'", "separated by ';'", "read as separated by ','", "--delimiter ';'"),
    ),
    case(
        "predict-gz-table-separated-by-tabs",
        "predict",
        "--data",
        "t.csv.gz",
        setup=fitted,
        files={"t.csv.gz": gzip.compress(b"x\ty\n1\t2\n")},
        stderr=("t.csv.gz has one column", "separated by '\\t'", "read as separated by ','", "--delimiter '\\t'"),
    ),
    case(
        "evaluate-table-lines-ended-by-carriage-returns",
        "evaluate",
        "--data",
        "t.csv",
        setup=fitted,
        files={"t.csv": b"x,y\r1,2\r2,4\r"},
        stderr=("t.csv ends its lines with a carriage return alone",),
    ),
    case(
        "evaluate-table-header-only",
        "evaluate",
        "--data",
        "t.csv",
        setup=fitted,
        files={"t.csv": "x,y\n"},
        stderr=("t.csv has a header but no data rows",),
    ),
    case(
        "evaluate-table-header-without-a-line-end",
        "evaluate",
        "--data",
        "t.csv",
        setup=fitted,
        files={"t.csv": "x" * 3_000_000},
        stderr=("t.csv: line 1 goes on past 1,048,576 bytes",),
    ),
    case(
        "predict-table-header-name-too-long",
        "predict",
        "--data",
        "t.csv",
        setup=fitted,
        files={"t.csv": "x" * 200_000 + "\n1\n"},
        stderr=("t.csv: a field of line 1 is longer than 131,072 characters",),
    ),
    case(
        "predict-values-and-a-table",
        "predict",
        "5",
        "--data",
        "t.csv",
        setup=fitted,
        files={"t.csv": "x\n1\n"},
        stderr=("predict takes VALUEs or --data FILE, not both",),
    ),
    case(
        "predict-output-without-a-table",
        "predict",
        "5",
        "-o",
        "out.csv",
        setup=fitted,
        stderr=("-o out.csv writes the predictions of a table", "--data FILE"),
    ),
    case(
        "model-without-bias",
        "predict",
        "5",
        "--model",
        "m.json",
        files={"m.json": MODEL_HEAD + '"weights": [2], ' + M_TAIL},
        stderr=("m.json is damaged: bias missing or malformed", "Retrain it"),
    ),
    case(
        "model-weights-booleans",
        "predict",
        "5",
        "--model",
        "m.json",
        files={"m.json": MODEL_HEAD + '"weights": [true], "bias": 0, ' + M_TAIL},
        stderr=("m.json is damaged: weights missing or malformed",),
    ),
    case(
        "model-bias-nan",
        "predict",
        "5",
        "--model",
        "m.json",
        files={"m.json": MODEL_HEAD + '"weights": [2], "bias": NaN, ' + M_TAIL},
        stderr=("m.json is damaged: bias missing or malformed (a finite number)",),
    ),
    case(
        "model-dtype-unknown",
        "predict",
        "5",
        "--model",
        "m.json",
        files={"m.json": MODEL_HEAD + '"weights": [2], "bias": 0, "features": ["x"], "target": "y", "dtype": "int8"}'},
        stderr=("m.json is damaged: dtype missing or malformed (float32 or float64)",),
        absent=("weights", "bias"),
    ),
    case(
        "model-more-weights-than-features",
        "predict",
        "5",
        "--model",
        "m.json",
        files={"m.json": MODEL_HEAD + '"weights": [2, 3], "bias": 0, ' + M_TAIL},
        stderr=("m.json is damaged: 2 weights but 1 feature names",),
    ),
    case(
        "model-a-list",
        "predict",
        "5",
        "--model",
        "m.json",
        files={"m.json": "[1, 2]"},
        stderr=("m.json is not an lrtrain model", '"format": "lrtrain.model"'),
    ),
    case(
        "model-empty-file",
        "predict",
        "5",
        "--model",
        "m.json",
        files={"m.json": ""},
        stderr=("m.json is not a readable lrtrain model", "truncated"),
    ),
    case(
        "model-a-link-to-an-endless-device",
        "predict",
        "5",
        "--model",
        "m.json",
        setup=a_link("m.json", "/dev/zero"),
        stderr=("m.json is not a file", "a device"),
    ),
    case(
        "summary-of-a-model-without-statistics",
        "summary",
        "m.json",
        files={"m.json": MODEL_HEAD + '"weights": [2], "bias": 0, ' + M_TAIL},
        stderr=("m.json holds no training statistics", "Retrain it"),
    ),
    case("runs-dir-a-file", "runs", "--dir", "f", files={"f": "x"}, stderr=("--dir f is a file",)),
    case(
        "resume-a-folder-without-checkpoint",
        "fit",
        "--resume",
        "r",
        files={"r": None, "r/config.yaml": "seed: 1\n"},
        stderr=("--resume r: checkpoint.json is missing", "start a new run"),
    ),
    case(
        "resume-with-another-config",
        "fit",
        "--resume",
        "r",
        "-c",
        "c.yaml",
        files={"r": None, "c.yaml": "seed: 1\n"},
        stderr=("--resume r continues with the run's own config", "drop --config"),
    ),
    case("plot-a-file", "plot", "f", files={"f": "x"}, stderr=("f is a file, but plotting reads a run folder",)),
]


def scaled_table(scale: float, target: float = 1.0) -> str:
    """Rows of x0, x1 (scaled by `scale`) and y (by `target`): a well-posed fit in other units."""
    rows = [(i % 7 - 3.0, (i * 5) % 11 - 5.0) for i in range(40)]
    targets = [(2 * a - b + 1 + (i % 3) * 0.1) * target for i, (a, b) in enumerate(rows)]
    lines = [f"{a * scale!r},{b * scale!r},{t!r}" for (a, b), t in zip(rows, targets, strict=True)]
    return "x0,x1,y\n" + "\n".join(lines) + "\n"


def fitted_steep(folder: Path) -> None:
    """A run of y = 10x + 1 (exact), so that x = 1e308 predicts beyond float64."""
    (folder / "train.csv").write_text("x,y\n1,11\n2,21\n3,31\n")
    result = cli("fit", "--engine", "exact", "--set", "data.path=train.csv")
    assert result.exit_code == 0, result.stderr


# tables whose predictions or errors go beyond float64: said with the row, as `predict VALUE` says it
BEYOND_FLOAT64_CASES = [
    case(
        "predict-data-beyond-float64",
        "predict",
        "--data",
        "t.csv",
        "-o",
        "out.csv",
        setup=fitted_steep,
        files={"t.csv": "x\n1\n1e308\n"},
        stderr=("t.csv, line 3", "the prediction is", "Rescale the values"),
        absent=("RuntimeWarning",),
    ),
    case(
        "predict-data-interval-beyond-float64",
        "predict",
        "--data",
        "t.csv",
        "--interval",
        "0.9",
        setup=fitted_steep,
        files={"t.csv": "x\n1\n1e160\n"},
        stderr=("t.csv, line 3", "prediction interval's bound", "leverage"),
        absent=("RuntimeWarning",),
    ),
    case(
        "evaluate-errors-beyond-float64",
        "evaluate",
        "--data",
        "t.csv",
        setup=fitted_steep,
        files={"t.csv": "x,y\n1,2\n2,1e200\n"},
        stderr=("t.csv", "go beyond float64", "MSE and R² cannot be taken"),
        absent=("RuntimeWarning", "inf"),
    ),
]


def parquet_without_rows_or_columns(folder: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    fitted(folder)
    pq.write_table(pa.table({"x": pa.array([], pa.float64())}), folder / "rows0.parquet")
    pq.write_table(pa.table({}), folder / "columns0.parquet")


# cells and tables whose message named the wrong cause (the delimiter, a CSV header) or none
NAMED_CAUSE_CASES = [
    case(
        "cell-with-a-no-break-space",
        "fit",
        "--set",
        "data.path=t.csv",
        files={"t.csv": "a,y\n1,2\n2,4.1\n3,5.9\n4\u00a0,8\n"},
        stderr=("line 5, column 'a'", "U+00A0", "no-break space"),
        absent=("Check data.delimiter",),
    ),
    case(
        "quoted-number-with-a-line-end",
        "fit",
        "--set",
        "data.path=t.csv",
        files={"t.csv": 'a,y\n1,2\n"2\n",4.1\n3,5.9\n'},
        stderr=("line 3, column 'a'", "its quotes hold a line end"),
        absent=("Check data.delimiter",),
    ),
    case(
        "predict-data-header-without-line-end",
        "predict",
        "--data",
        "h.csv",
        setup=fitted,
        files={"h.csv": "x,y"},
        stderr=("h.csv has a header but no data rows",),
        absent=("Could not skip",),
    ),
    case(
        "predict-data-parquet-without-rows",
        "predict",
        "--data",
        "rows0.parquet",
        setup=parquet_without_rows_or_columns,
        stderr=("rows0.parquet has no rows",),
        absent=("header",),
    ),
    case(
        "predict-data-parquet-without-columns",
        "predict",
        "--data",
        "columns0.parquet",
        setup=parquet_without_rows_or_columns,
        stderr=("columns0.parquet has no columns",),
        absent=("first line",),
    ),
]


# config keys a union refuses twice, or that belong to another data.source: one sentence that says which
UNION_KEY_CASES = [
    case(
        "target-neither-name-nor-index",
        "fit",
        "--set",
        "data.path=t.csv",
        "--set",
        "data.target=1.5",
        files={"t.csv": TABLE},
        stderr=("'data.target' must be a string, or an integer; got 1.5",),
        absent=("data.target' must be an integer",),
    ),
    case(
        "predict-entry-beyond-float64",
        "fit",
        "--set",
        "train.predict=[1e400]",
        stderr=("'train.predict[0]' must be a finite number, or a list; got inf",),
        absent=("train.predict[0]' must be a list",),
    ),
    case(
        "synthetic-key-on-csv-data",
        "fit",
        "--set",
        "data.path=t.csv",
        "--set",
        "data.rows=5",
        files={"t.csv": TABLE},
        stderr=("'data.rows' is a key of data.source: synthetic", "data.source is csv", "--set data.source=synthetic"),
        absent=("unknown key", "the default)"),
    ),
    case(
        "csv-key-on-the-built-in-data",
        "fit",
        "--set",
        "data.target=y",
        stderr=("'data.target' is a key of data.source: csv, parquet or npy", "data.source is inline"),
        absent=("unknown key",),
    ),
]


def a_run_whose_model_is_a_folder(folder: Path) -> None:
    (folder / "runs" / "bad-20260101-000000" / "model.json").mkdir(parents=True)


# messages whose words did not fit the case: a folder named model.json, a plot name with no suffix, mps
WORDING_CASES = [
    case(
        "model-json-is-a-folder",
        "predict",
        "--model",
        "runs/bad-20260101-000000",
        "5",
        setup=a_run_whose_model_is_a_folder,
        stderr=("model.json is a folder, not a model file",),
        absent=("model.json/model.json",),
    ),
    case(
        "plot-name-without-suffix",
        "plot",
        "-o",
        "x",
        setup=fitted,
        stderr=("this name has no suffix", "x.png"),
        absent=("'no suffix'",),
    ),
    case(
        "device-mps-elsewhere",
        "fit",
        "--engine",
        "torch",
        "--device",
        "mps",
        stderr=("device 'mps' is not available here", "the GPU of Apple silicon Macs"),
        absent=("without CUDA",),
        marks=(pytest.mark.skipif(_mps_available(), reason="mps is there"),),
    ),
]


HUGE_TARGET = "x,y\n1,1.5e200\n2,3.1e200\n3,2.2e200\n4,0.3e200\n"  # squares beyond float64, a Python float's too

# a target whose squares overflow: said in words on every path, never Python's OverflowError from a float's power
HUGE_CASES = [
    case(
        f"huge-target-{name}",
        *args,
        "--set",
        "data.path=t.csv",
        files={"t.csv": HUGE_TARGET},
        stderr=("t.csv", "not a finite number", "Rescale the data"),
        absent=("internal error", "OverflowError", "Warning"),
    )
    for name, args in [
        ("exact", ("fit", "--engine", "exact")),
        ("float64", ("fit", "--set", "model.dtype=float64")),
        ("no-bias", ("fit", "--set", "model.dtype=float64", "--set", "model.bias=false")),
        ("exact-no-bias", ("fit", "--engine", "exact", "--set", "model.bias=false")),
        ("compare", ("compare", "manual", "exact", "--set", "model.dtype=float64")),
    ]
]


# values so small that their squares underflow: every sum of squares loses its digits, a column looks constant
UNDERFLOW_CASES = [
    case(
        f"underflow-{name}",
        command,
        *(["manual", "exact"] if command == "compare" else ["--engine", engine]),
        "--set",
        "data.path=t.csv",
        *(["--set", "model.dtype=float64"] if engine != "manual" else []),
        files={"t.csv": table},
        stderr=said,
        absent=("Traceback", "internal error"),
    )
    for name, command, engine, table, said in [
        ("features-1e-157", "fit", "exact", scaled_table(1e-157), ("feature 'x0'", "about 2.0e-157", "by 1e156")),
        ("features-1e-200", "fit", "exact", scaled_table(1e-200), ("feature 'x0'", "float64 cannot hold")),
        ("target-1e-200", "fit", "exact", scaled_table(1.0, 1e-200), ("the target", "the weights and the bias scale")),
        ("float32-1e-20", "fit", "manual", scaled_table(1e-20), ("float32", "or set model.dtype to float64")),
        ("float32-1e-45", "fit", "manual", scaled_table(1e-45), ("float32", "feature 'x0'")),
        ("compare-1e-157", "compare", "", scaled_table(1e-157), ("feature 'x0'", "Rescale the column")),
    ]
]


def parquet_of(path: Path, **columns: list[Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)


def runs_linked_to_nothing(folder: Path) -> None:
    (folder / "runs").symlink_to(folder / "gone" / "deeper")


# a setting the data turns into an infinity, or that a float32 run cannot hold: refused before a line is printed
DECAY = ("train.weight_decay = 1e+308 is too large for float64 with 4 rows", "Lower it")
SETTING_RANGE_CASES = [
    case(
        "weight-decay-beyond-float64-exact",
        "fit",
        "--engine",
        "exact",
        "--set",
        "train.weight_decay=1e308",
        stderr=DECAY,
    ),
    case("weight-decay-beyond-float64-manual", "fit", "--set", "train.weight_decay=1e308", stderr=DECAY),
    case(
        "weight-decay-beyond-float64-auto-lr",
        "fit",
        "--set",
        "train.weight_decay=1.7e308",
        "--set",
        "train.lr=auto",
        stderr=("train.weight_decay = 1.7e+308 is too large",),
    ),
    case(
        "weight-decay-beyond-float64-compare",
        "compare",
        "manual",
        "torch",
        "--set",
        "train.weight_decay=1e308",
        stderr=DECAY,
    ),
    case("inline-x-text-third", "fit", "--set", "data.x=[1,2,a,4]", stderr=("'data.x'", "item 2 is 'a'")),
    case("inline-x-infinity-last", "fit", "--set", "data.x=[1,2,3,1e400]", stderr=("'data.x'", "item 3 is inf")),
    case(
        "npz-y-a-column",
        "fit",
        "--set",
        "data.path=z.npz",
        setup=lambda folder: np.savez(folder / "z.npz", x=np.arange(4.0), y=np.arange(4.0)[:, None]),
        stderr=("z.npz", "got shapes (4,) and (4, 1)", "y.ravel()"),
    ),
    case(
        "make-noise-squares-beyond-float64", "data", "make", "w.csv", "--noise", "1e308", stderr=("sum of its squares",)
    ),
    case("make-bias-squares-beyond-float64", "data", "make", "w.csv", "--bias", "1e160", stderr=("bias 1e+160",)),
    case(
        "make-weights-empty-field",
        "data",
        "make",
        "w.csv",
        "--weights",
        "1,,2",
        "--features",
        "3",
        stderr=("value 2 is empty",),
    ),
    case("make-seed-beyond-fit", "data", "make", "w.csv", "--seed", "99999999999999999999", stderr=("'--seed'",)),
    case(
        "csv-infinity-before-an-empty-cell",
        "fit",
        "--set",
        "data.path=d.csv",
        files={"d.csv": "a,b,y\n1,2,3\n2,inf,4\n,3,4\n"},
        stderr=("d.csv, line 3, column 'b': the value is inf, not a finite number",),
    ),
    case(
        "csv-nan-before-a-word",
        "fit",
        "--set",
        "data.path=d.csv",
        files={"d.csv": "a,b,y\n1,2,3\n2,3,nan\n3,x,4\n"},
        stderr=("d.csv, line 3, column 'y': the value is nan, not a finite number",),
    ),
    case(
        "parquet-infinity-before-a-null",
        "fit",
        "--set",
        "data.path=n.parquet",
        setup=lambda folder: parquet_of(folder / "n.parquet", a=[1.0, float("inf"), None, 2.0], y=[1.0, 2.0, 3.0, 4.0]),
        stderr=("n.parquet, row 1, column 'a': the value is inf, not a finite number",),
    ),
    case(
        "parquet-boolean-feature-not-declared",
        "fit",
        "--set",
        "data.path=b.parquet",
        setup=lambda folder: parquet_of(
            folder / "b.parquet", b=[True, False, True], x=[1.0, 2.0, 3.0], y=[1.0, 3.0, 2.0]
        ),
        stderr=("column 'b' holds booleans, not numbers", "data.categorical: [b]"),
    ),
    case(
        "parquet-boolean-target",
        "fit",
        "--set",
        "data.path=b.parquet",
        setup=lambda folder: parquet_of(folder / "b.parquet", x=[1.0, 2.0, 3.0], y=[True, False, True]),
        stderr=("column 'y', the target, holds booleans, not numbers", "0 and 1"),
        absent=("data.features",),
    ),
    case(
        "output-dir-a-link-to-nothing",
        "fit",
        setup=runs_linked_to_nothing,
        stderr=("output.dir = runs: runs is a link to", "gone/deeper, which does not exist", "Create that folder"),
    ),
    case(
        "lr-below-float32", "fit", "--set", "train.lr=1e-300", stderr=("train.lr = 1e-300 is below what float32 holds",)
    ),
    case("lr-beyond-float32", "fit", "--set", "train.lr=1e300", stderr=("train.lr = 1e+300 is beyond what float32",)),
    case(
        "momentum-below-float32",
        "fit",
        "--set",
        "train.momentum=1e-300",
        stderr=("train.momentum = 1e-300 is below what float32 holds",),
    ),
]

EMPTY = "an empty path names no file or folder"  # '' (an unset shell variable) is not the folder '.'
# every path a command takes, given as '': an error that names the option, never the working folder read or written
EMPTY_PATH_CASES = [
    case("empty-config", "fit", "--config", "", stderr=("'--config'", EMPTY)),
    case("empty-resume", "fit", "--resume", "", stderr=("'--resume'", EMPTY)),
    case("empty-compare-plot", "compare", "manual", "torch", "--plot", "", stderr=("'--plot'", EMPTY)),
    case("empty-plot-output", "plot", "-o", "", setup=fitted, stderr=("'--output' / '-o'", EMPTY)),
    case("empty-plot-run", "plot", "", setup=fitted, stderr=("'RUN'", EMPTY)),
    case("empty-summary-run", "summary", "", setup=fitted, stderr=("'RUN'", EMPTY)),
    case("empty-evaluate-data", "evaluate", "--data", "", setup=fitted, stderr=("'--data'", EMPTY)),
    case("empty-predict-model", "predict", "--model", "", "5", setup=fitted, stderr=("'--model' / '-m'", EMPTY)),
    case("empty-predict-data", "predict", "--data", "", setup=fitted, stderr=("'--data'", EMPTY)),
    case("empty-predict-output", "predict", "--data", "t.csv", "-o", "", setup=fitted, stderr=("'-o'", EMPTY)),
    case("empty-runs-dir", "runs", "--dir", "", setup=fitted, stderr=("'--dir'", EMPTY)),
    case("empty-data-make-path", "data", "make", "", stderr=("'PATH'", EMPTY)),
    case(
        "empty-data-path", "fit", "--set", "data.source=csv", "--set", "data.path=''", stderr=("'data.path'", "got ''")
    ),
    case("empty-output-dir", "fit", "--set", "output.dir=''", stderr=("'output.dir'", "got ''")),
    case(
        "empty-parquet-path-in-file",
        "fit",
        "-c",
        "c.yaml",
        files={"c.yaml": "data:\n  source: parquet\n  path: ''\n"},
        stderr=("c.yaml, line 3", "'data.path'", "got ''"),
    ),
]

CASES = (
    CONFIG_CASES
    + SET_CASES
    + DATA_CASES
    + MODEL_CASES
    + ENGINE_CASES
    + NUMBER_AND_NAME_CASES
    + LIMIT_CASES
    + OVERFLOW_AND_PATH_CASES
    + MESSAGE_CASES
    + CONFIG_SHAPE_CASES
    + NUMBER_CASES
    + FILE_KIND_CASES
    + CSV_HOSTILE_CASES
    + MISNAMED_CASES
    + MAKE_CASES
    + SERVE_CASES
    + UNDERFLOW_CASES
    + BEYOND_FLOAT64_CASES
    + NAMED_CAUSE_CASES
    + UNION_KEY_CASES
    + WORDING_CASES
    + HUGE_CASES
    + EMPTY_PATH_CASES
    + SETTING_RANGE_CASES
)


# --------------------------------------------------------------------------- the one test


def snapshot(folder: Path) -> dict[str, str | None]:
    """Every path under the folder with its content's hash (None for a folder)."""
    result: dict[str, str | None] = {}
    for name in sorted(files_under(folder)):
        path = folder / name
        if path.is_symlink():  # a link is its target's name (it may point nowhere, or at itself)
            result[name] = f"-> {path.readlink()}"
            continue
        if not path.is_dir() and not path.is_file():  # a pipe or a socket: reading it could wait for ever
            result[name] = f"special {stat.S_IFMT(path.lstat().st_mode):o}"
            continue
        result[name] = None if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def write_files(folder: Path, files: Files) -> None:
    for name, content in files.items():
        path = folder / name
        if content is None:
            path.mkdir(parents=True)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize(("args", "files", "setup", "input", "code", "stderr", "absent"), CASES)
def test_bad_input(
    workdir: Path,
    args: tuple[str, ...],
    files: Files,
    setup: Setup | None,
    input: str | None,
    code: int,
    stderr: tuple[str, ...],
    absent: tuple[str, ...],
) -> None:
    write_files(workdir, files)
    if setup is not None:
        setup(workdir)
    before = snapshot(workdir)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cli(*args, input=input)
    shown = [w for w in caught if not issubclass(w.category, _HIDDEN)]

    err = result.stderr
    context = f"\nexit code: {result.exit_code}\nstdout: {result.stdout!r}\nstderr: {err!r}"
    if "Traceback" in err or (result.exception is not None and not isinstance(result.exception, SystemExit)):
        raise TracebackShown(f"a traceback or an uncaught {result.exception!r}{context}")
    if result.exit_code != code:
        raise WrongExitCode(f"expected exit code {code}{context}")
    missing = [s for s in stderr if s not in err]
    if missing:
        raise MissingInStderr(f"stderr lacks {missing}{context}")
    unwanted = [s for s in absent if s in err]
    if unwanted:
        raise UnwantedInStderr(f"stderr has {unwanted}{context}")
    if shown:
        raise WarningLeaked(f"Python warnings reach the user: {[str(w.message) for w in shown]}{context}")
    if result.stdout:
        raise StdoutNotEmpty(f"stdout must be empty on an error{context}")
    after = snapshot(workdir)
    if after != before:
        changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
        raise FilesChanged(
            f"created {sorted(after.keys() - before.keys())}, removed {sorted(before.keys() - after.keys())}, "
            f"changed {changed}{context}"
        )


def test_a_learning_rate_that_blows_up_in_float64_is_divergence_in_words_without_warnings(workdir: Path) -> None:
    result = cli("fit", "--set", "train.lr=1e300", "--set", "model.dtype=float64", "--set", "output.save=false")
    assert result.exit_code == 1, result.output
    assert "training diverged at epoch" in result.stderr
    assert "Warning" not in result.stderr


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 150
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"


def test_predict_streams_stdin_and_stops_at_the_first_bad_line(workdir: Path) -> None:
    """stdin is a stream: lines before a bad one are answered, then exit 2 names the line."""
    assert cli("fit", "--engine", "exact").exit_code == 0
    result = cli("predict", "-", input="5\nabc\n6\n")
    assert result.exit_code == 2
    assert result.stdout == "10.0\n"
    assert "stdin line 2" in result.stderr
    assert "'abc' is not a number" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- found by hostile use: each in words


def test_rows_with_no_feature_are_refused_before_training(workdir: Path) -> None:
    before = files_under(workdir)
    result = cli("fit", "--set", "data.x=[[],[],[],[]]")
    assert result.exit_code == 2, result.output
    assert "has no features" in result.stderr
    assert "Traceback" not in result.output
    assert files_under(workdir) == before


def exact_run(workdir: Path) -> Path:
    result = cli("fit", "--engine", "exact", "--set", "data.x=[[1,2],[2,1],[3,5],[4,4],[0,1]]", "--set",
                 "data.y=[1,2,3,4,5]")  # fmt: skip
    assert result.exit_code == 0, result.output
    return next((workdir / "runs").iterdir())


def test_a_prediction_beyond_float64_is_an_error_not_inf(workdir: Path) -> None:
    run = exact_run(workdir)
    saved = json.loads((run / "model.json").read_text())
    (workdir / "big").mkdir()
    (workdir / "big" / "model.json").write_text(json.dumps({**saved, "weights": [1e308, 1e308]}))
    result = cli("predict", "--model", str(workdir / "big"), "10,10")
    assert result.exit_code == 2, result.output
    assert "not a number float64 can hold" in result.stderr
    result = cli("predict", "--model", str(run), "1e200,1e200", "--interval", "0.95")
    assert result.exit_code == 2
    assert "internal error" not in result.stderr
    result = cli("predict", "--model", str(run), "1e160,1", "--interval", "0.95")
    assert result.exit_code == 2
    assert "too large for an interval" in result.stderr
    assert "damaged" not in result.stderr


def test_a_stdin_line_without_end_is_refused_not_read_whole(workdir: Path) -> None:
    from lrtrain import model, samples

    run = exact_run(workdir)
    endless = io.StringIO("1,2\n" + "9" * (samples.LINE_LIMIT + 10))
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(InputError, match="stdin line 2 is longer than"):
        model.predict(["-"], run, False, endless, out, err, None)
    assert out.getvalue().count("\n") == 1  # the first sample was predicted


def test_a_pipe_where_a_run_keeps_its_model_is_skipped_not_waited_on(workdir: Path) -> None:
    run = exact_run(workdir)
    (workdir / "runs" / "zz-newer").mkdir()
    os.mkfifo(workdir / "runs" / "zz-newer" / "model.json")
    os.utime(workdir / "runs" / "zz-newer", (2e9, 2e9))
    result = run_installed("predict", "5,5", cwd=workdir)
    assert "is not a file (a pipe" in result.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == cli("predict", "--model", str(run), "5,5").stdout.strip()


def test_every_writer_writes_through_a_link_and_into_a_pipe_without_replacing_them(workdir: Path) -> None:
    """files.atomic_writer, under data make, plot -o and predict -o alike: a link keeps pointing at the file it
    names, which gets the content; a pipe is written into, as a shell's > would (it was replaced by a plain file)."""
    import threading

    (workdir / "table.csv").write_text("old\n")
    (workdir / "link.csv").symlink_to("table.csv")
    made = cli("data", "make", "link.csv", "--rows", "20", "--features", "2", "--force")
    assert made.exit_code == 0, made.output
    assert (workdir / "link.csv").is_symlink()
    assert (workdir / "table.csv").read_text().startswith("x0,x1,y\n")
    assert cli("fit", "--set", "data.path=table.csv", "--engine", "exact").exit_code == 0
    (workdir / "loss.png").write_bytes(b"")
    (workdir / "plot-link.png").symlink_to("loss.png")
    assert cli("plot", "-o", "plot-link.png").exit_code == 0
    assert (workdir / "plot-link.png").is_symlink()
    assert (workdir / "loss.png").read_bytes().startswith(b"\x89PNG")
    os.mkfifo(workdir / "fifo.csv")
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append((workdir / "fifo.csv").read_text()))
    reader.start()
    made = cli("data", "make", "fifo.csv", "--rows", "20", "--features", "2", "--force")
    reader.join(timeout=30)
    assert made.exit_code == 0, made.output
    assert (workdir / "fifo.csv").is_fifo()
    assert len(got) == 1
    assert got[0].startswith("x0,x1,y\n")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["data", "make", "x.csv", "--rows", "5", "--noise", "1e308"], "goes beyond float64"),
        (["data", "make", "x.csv", "--rows", "5", "--weights", "1e308", "--bias", "1e308"], "goes beyond float64"),
        (["fit", "--set", "train.weight_decay=1e300"], "train.weight_decay = 1e+300 is beyond what float32 holds"),
        (["fit", "--set", "model.init=normal", "--set", "model.init_std=1e308"], "model.init_std = 1e+308 draws"),
    ],
    ids=["noise", "weights and bias", "weight decay", "init std"],
)
def test_numbers_near_the_float_limit_are_refused_in_words_without_warnings(
    workdir: Path, args: list[str], said: str
) -> None:
    before = files_under(workdir)
    result = run_installed(*args, cwd=workdir)
    assert result.returncode == 2, result.stderr
    assert said in result.stderr
    assert "Warning" not in result.stderr
    assert files_under(workdir) == before


def test_a_prediction_of_1e308_asked_of_fit_is_shown_short_and_without_warnings(workdir: Path) -> None:
    result = run_installed("fit", "--set", "output.save=false", "--set", "train.predict=[1e308]", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "Prediction before training: f(1e+308) = 2.74e+307\n" in result.stdout
    assert "Prediction after training: f(1e+308) = inf\n" in result.stdout
    assert "Warning" not in result.stderr


@pytest.mark.parametrize("args", [[], ["config"], ["data"]], ids=["lrtrain", "lrtrain config", "lrtrain data"])
def test_a_group_without_a_command_shows_its_help_line_by_line(workdir: Path, args: list[str]) -> None:
    result = run_installed(*args, cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.startswith(f"Usage: lrtrain {' '.join([*args, ''])}[OPTIONS] COMMAND [ARGS]...\n")
    assert "\nCommands:\n" in result.stderr
    assert "\\x0a" not in result.stderr


def test_runs_lists_a_model_predict_would_refuse_as_unreadable_with_its_reason(workdir: Path) -> None:
    run = exact_run(workdir)
    saved = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**saved, "weights": [None, 1.0]}))
    listed = cli("runs", "--json")
    assert listed.exit_code == 0, listed.output
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["status"] == "unreadable"
    assert "weights missing or malformed" in row["problem"]
    assert "Python" not in row["problem"]
    assert "subscriptable" not in row["problem"]


def test_model_files_with_a_key_twice_or_a_feature_named_twice_are_damaged(workdir: Path) -> None:
    run = exact_run(workdir)
    text = (run / "model.json").read_text()
    (run / "model.json").write_text(text.replace('"weights": [', '"bias": 1e6,\n  "weights": [', 1))
    twice = cli("predict", "--model", str(run), "1,2")
    assert twice.exit_code == 2
    assert "the key 'bias' appears twice" in twice.stderr
    saved = json.loads(text)
    (run / "model.json").write_text(json.dumps({**saved, "features": ["x0", "x0"]}))
    named = cli("predict", "--model", str(run), "1,2")
    assert named.exit_code == 2
    assert "the feature 'x0' is named twice" in named.stderr


def test_a_learning_rate_that_rounds_to_zero_in_the_runs_dtype_is_refused(workdir: Path) -> None:
    result = cli("fit", "--set", "train.lr=1e-320")
    assert result.exit_code == 2
    assert "below what float32 holds" in result.stderr
    assert "where it would be 0" in result.stderr


def test_predict_data_to_dash_writes_stdout(workdir: Path) -> None:
    run = exact_run(workdir)
    (workdir / "t.csv").write_text("x0,x1\n1,2\n3,4\n")
    dashed = cli("predict", "--model", str(run), "--data", "t.csv", "-o", "-")
    assert dashed.exit_code == 0, dashed.output
    assert dashed.stdout == cli("predict", "--model", str(run), "--data", "t.csv").stdout
    assert not (workdir / "-").exists()


def test_a_float32_run_says_which_features_float32_cannot_hold_the_spread_of(workdir: Path) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=100) + 1e9, rng.normal(size=100)
    y = 0.5 * (a - 1e9) - b + 0.1 * rng.normal(size=100)
    rows = "".join(f"{float(u)!r},{float(v)!r},{float(w)!r}\n" for u, v, w in zip(a, b, y, strict=True))
    (workdir / "m9.csv").write_text("a,b,y\n" + rows)
    common = ["fit", "--set", "data.path=m9.csv", "--set", "train.lr=auto", "--set", "output.save=false"]
    said = cli(*common)
    assert said.exit_code == 0, said.output
    assert "feature(s) keep fewer than 3 digits of their spread" in said.stderr
    assert "'a' (spread 0 about 1e+09)" in said.stderr
    assert "'b'" not in said.stderr
    for setting in ("data.standardize=true", "model.dtype=float64"):
        quiet = cli(*common, "--set", setting)
        assert quiet.exit_code == 0, quiet.output
        assert "digits of their spread" not in quiet.stderr
