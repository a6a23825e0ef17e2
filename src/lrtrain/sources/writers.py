"""Data files for `lrtrain data make`: .csv, .parquet, .npy (target last column) or .npz, written atomically."""

from __future__ import annotations

import math
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lrtrain.errors import ConfigError, DataError, unwritten
from lrtrain.files import atomic_writer
from lrtrain.sources.base import available_memory, gigabytes


def write(
    path: Path, chunks: Iterator[tuple[np.ndarray, np.ndarray]], rows: int, features: int, names: list[str]
) -> None:
    """Write chunks of (x, y) to .csv, .parquet, .npy (target last column) or .npz, atomically."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with atomic_writer(path, "w") as handle:
            handle.write(",".join([*names, "y"]) + "\n")
            for x, y in chunks:
                np.savetxt(handle, np.column_stack([x, y]), delimiter=",", fmt="%.17g")
    elif suffix == ".npy":
        with atomic_writer(path, "wb") as handle:
            header = {"descr": "<f8", "fortran_order": False, "shape": (rows, features + 1)}
            np.lib.format.write_array_header_1_0(handle, header)
            for x, y in chunks:
                handle.write(np.column_stack([x, y]).astype("<f8").tobytes())
    elif suffix == ".npz":  # as numpy.savez writes it (uncompressed), chunk by chunk
        with (
            atomic_writer(path, "wb") as handle,
            zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
            tempfile.TemporaryFile(dir=path.parent) as targets,  # y waits on disk, beside the output
        ):
            with archive.open("x.npy", "w", force_zip64=True) as member:
                header = {"descr": "<f8", "fortran_order": False, "shape": (rows, features)}
                np.lib.format.write_array_header_1_0(member, header)
                for x, y in chunks:
                    member.write(np.asarray(x, dtype="<f8").tobytes())
                    targets.write(np.asarray(y, dtype="<f8").tobytes())
            with archive.open("y.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (rows,)})
                targets.seek(0)
                shutil.copyfileobj(targets, member, 1 << 18)
    elif suffix == ".parquet":  # a row group per chunk, float64 columns named as in the CSV
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([(name, pa.float64()) for name in [*names, "y"]])
        with atomic_writer(path, "wb") as handle, pq.ParquetWriter(handle, schema) as writer:
            for x, y in chunks:
                writer.write_table(pa.table([*(x[:, j] for j in range(features)), y], schema=schema))
    else:
        raise DataError(f"cannot write {path}: the name must end in .csv, .parquet, .npy or .npz.")


CHUNK_BYTES = 1 << 25  # the rows drawn at a time: memory stays bounded by this, not by --rows or --features


def _room(path: Path, rows: int, features: int) -> int:
    """The rows to draw at a time; a DataError, before anything is written, when a row does not fit in memory or
    the file would not fit on its disk (float64 is a lower bound: CSV text takes about 2.5 times as much)."""
    row = (features + 1) * 8
    if 4 * row > available_memory():  # a row as drawn, stacked with its target, converted and written
        raise DataError(
            f"cannot write {path}: one row of {features:,} features takes {gigabytes(row)}, and writing it needs "
            f"about four times that, more than the {gigabytes(available_memory())} of memory available. Lower "
            "--features."
        )
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:  # the write says what is wrong with the folder
        free = None
    if free is not None and rows * row > free:
        raise DataError(
            f"cannot write {path}: {rows:,} rows of {features:,} feature(s) and a target take at least "
            f"{gigabytes(rows * row)}, more than the {gigabytes(free)} free on the disk that holds {folder}. Lower "
            "--rows or --features, or write to another disk."
        )
    return max(1, min(1 << 16, CHUNK_BYTES // row))


def make(
    path: Path, rows: int, features: int, weights: str | None, bias: float, noise: float, seed: int, force: bool
) -> None:
    """`lrtrain data make`: check the options as given on the command line, then write the synthetic rows."""
    from lrtrain.config import SyntheticData
    from lrtrain.sources import synthetic

    if path.suffix.lower() not in (".csv", ".parquet", ".npy", ".npz"):
        raise DataError(
            f"cannot write {path}: the name must end in .csv, .parquet, .npy or .npz (that picks the format)."
        )
    if path.is_dir():
        raise DataError(
            f"{path} is a folder; `data make` writes a file, and --force overwrites files only. "
            f"Name a file, e.g. {path / ('data' + path.suffix.lower())}."
        )
    if path.exists() and not force:
        raise DataError(
            f"{path} already exists; nothing was written. Pass --force to overwrite it, or pick another name."
        )
    for option, value in (("--bias", bias), ("--noise", noise)):
        if not math.isfinite(value):
            raise ConfigError(f"{option} {value} is not a finite number; give a finite one.")
    true_weights = None
    if weights is not None:
        fields = [v.strip() for v in weights.split(",")] if "," in weights else weights.split()
        if "" in fields:
            raise ConfigError(
                f"--weights {weights!r}: value {fields.index('') + 1} is empty; give a number for each feature, "
                "e.g. --weights 2,-1,0.5."
            )
        try:
            true_weights = [float(v) for v in fields]
        except ValueError:
            raise ConfigError(
                f"--weights {weights!r} is not a comma-separated list of numbers, e.g. --weights 2,-1,0.5."
            ) from None
        if not all(math.isfinite(w) for w in true_weights):
            raise ConfigError(f"--weights {weights!r} holds a value that is not a finite number.")
        if len(true_weights) != features:
            raise ConfigError(
                f"--weights has {len(true_weights)} value(s) but --features is {features}; give one weight per feature."
            )
    spec = SyntheticData(
        source="synthetic", rows=rows, features=features, weights=true_weights, bias=bias, noise=noise, seed=seed
    )
    chunk_rows = _room(path, rows, features)
    names = ["x"] if features == 1 else [f"x{i}" for i in range(features)]
    try:
        write(path, synthetic.chunks(spec, seed, chunk_rows), rows, features, names)
    except OSError as exc:  # no such folder, no permission, a full disk: the file is whole or absent
        raise unwritten(path, exc) from None
