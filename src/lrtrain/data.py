"""Data sources (inline, synthetic, CSV, .npy/.npz) to arrays; split; standardization."""

from __future__ import annotations

import csv
import functools
import hashlib
import itertools
import math
import os
import shutil
import struct
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np

from lrtrain import order, parallel
from lrtrain.config import Config, CsvData, InlineData, NpyData, SyntheticData
from lrtrain.errors import DataError
from lrtrain.parallel import SINGLE, Shard, block

BLOCK_ROWS = 8192  # rows per block when a pass over the data must not hold it all in memory
HASH_ROWS = 1 << 16  # rows per block of the data's fingerprint (Dataset.sha256)


@dataclass(frozen=True)
class Dataset:
    """Raw data as read (float64, or a file's own float32); a .npy file stays memory-mapped."""

    x: np.ndarray  # (N, D)
    y: np.ndarray  # (N,)
    features: list[str]
    target: str
    origin: str  # where it came from, for messages and provenance
    first_line: int | None = None  # the file line of row 0 (a CSV file's), for messages

    digests: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # sha256(), once

    def sha256(self, group: Shard = SINGLE) -> str:
        """A SHA-256 fingerprint of the values as float64, computed once per data set (saves, checkpoints and
        a resume all ask for it).

        It is the hash of the shape and of the hashes of blocks of HASH_ROWS rows (each: the block's
        x, row-major, then its y), so under torchrun (`group`, a collective then) each rank hashes
        only its share of the blocks and one all_reduce gathers the block hashes; the result is the
        same for any number of processes. A memory-mapped file is read block by block.
        """
        if "sha256" not in self.digests:
            n = len(self.y)
            count = -(-n // HASH_ROWS)
            mine = block(count, group.rank, group.world)
            table = np.zeros((count, 32))  # each block's digest, a byte per number (exact in an all_reduce)
            for b in range(mine.start, mine.stop):
                rows = slice(b * HASH_ROWS, (b + 1) * HASH_ROWS)
                digest = hashlib.sha256()
                for array in (self.x, self.y):
                    for start in range(rows.start, min(rows.stop, n), BLOCK_ROWS):
                        part = array[start : min(start + BLOCK_ROWS, rows.stop)]
                        digest.update(np.ascontiguousarray(part, dtype=np.float64).tobytes())
                table[b] = np.frombuffer(digest.digest(), dtype=np.uint8)
            group.reduce(table)  # every rank's block digests (a single process: its own, all of them)
            whole = hashlib.sha256(f"{n}x{self.x.shape[1]}:".encode())
            whole.update(table.astype(np.uint8).tobytes())
            self.digests["sha256"] = whole.hexdigest()
        return self.digests["sha256"]


@dataclass(frozen=True)
class Scaling:
    """x_trained = (x - mean) / scale; identity when standardization is off."""

    mean: np.ndarray
    scale: np.ndarray

    def to_original(self, w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
        """Weights learned on scaled features, expressed for raw features."""
        w64 = np.asarray(w, dtype=np.float64)
        w_raw = w64 / self.scale
        return w_raw, float(b) - float(w_raw @ self.mean)

    def to_trained(self, w_raw: np.ndarray, b_raw: float) -> tuple[np.ndarray, float]:
        w = np.asarray(w_raw, dtype=np.float64) * self.scale
        return w, float(b_raw) + float(np.asarray(w_raw, dtype=np.float64) @ self.mean)


@dataclass(frozen=True)
class Prepared:
    """What the engines train on: split, scaled, cast to the config's dtype.

    x and y are the training rows `shard.start` to `shard.stop`: all of them in one process, this
    rank's block under torchrun; x_val and y_val are the same rank's block of the validation rows.
    `rows`, `val_rows`, the scaling and the moments are those of every rank's rows together.
    """

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    scaling: Scaling
    raw: Dataset
    shard: Shard  # which training rows x holds, and the all-reduce over the ranks
    rows: int  # training rows, all ranks together
    val_rows: int  # validation rows, all ranks together

    @functools.cached_property
    def moments(self) -> Moments:
        """Centered sufficient statistics of the training rows, gathered once and shared.
        Under torchrun the first use is a collective: every rank must ask at the same point."""
        return combined(moments(self.x, self.y), self.shard)

    @property
    def features(self) -> int:
        return int(self.x.shape[1])


# --------------------------------------------------------------------------- loading


def load(config: Config, group: Shard = SINGLE) -> Dataset:
    """The data as read, every value checked to be finite. Under torchrun (`group`: this process's place
    in the job) each rank checks only its share of the rows, and the ranks agree on what to report."""
    spec = config.data
    if isinstance(spec, SyntheticData):
        return synthetic(spec, config.seed, scratch=group.world > 1)  # finite by construction
    if isinstance(spec, CsvData):
        return _checked(_csv(spec, scratch=group.world > 1), group)
    return _checked(_inline(spec) if isinstance(spec, InlineData) else _npy(spec), group)


def _inline(spec: InlineData) -> Dataset:
    x = np.asarray(spec.x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(spec.y, dtype=np.float64)
    if len(x) != len(y):
        raise DataError(
            f"inline data: data.x has {len(x)} rows but data.y has {len(y)} values. Give one target per row of x."
        )
    return Dataset(x, y, _default_names(x.shape[1]), "y", "inline data (data.x, data.y)")


def _default_names(d: int) -> list[str]:
    return ["x"] if d == 1 else [f"x{i}" for i in range(d)]


def synthetic_chunks(
    spec: SyntheticData, seed: int, chunk_rows: int = 1 << 16
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Rows of y = x.w + bias + noise, in chunks; the same rows whatever the chunk size."""
    weights_rng, x_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    w = (
        np.asarray(spec.weights, dtype=np.float64)
        if spec.weights is not None
        else weights_rng.normal(size=spec.features)
    )
    for start in range(0, spec.rows, chunk_rows):
        n = min(chunk_rows, spec.rows - start)
        x = x_rng.standard_normal((n, spec.features))
        y = x @ w + spec.bias + spec.noise * noise_rng.standard_normal(n)
        yield x, y


def synthetic(spec: SyntheticData, seed: int, scratch: bool = False) -> Dataset:
    """The rows in memory, filled chunk by chunk; with `scratch` (under torchrun, where every rank makes
    them all) in memory-mapped temporary files instead, so a rank's anonymous memory holds only a chunk."""
    seed = spec.seed if spec.seed is not None else seed
    origin = f"synthetic data ({spec.rows} rows, seed {seed})"
    if scratch:
        with tempfile.TemporaryFile(prefix="lrtrain-") as targets:

            def fill(out: IO[bytes]) -> tuple[int, ...]:
                for x, y in synthetic_chunks(spec, seed):
                    x.tofile(out)
                    y.tofile(targets)
                return (spec.rows, spec.features)

            x = _scratch_mapping(fill, np.dtype(np.float64))
            targets.flush()
            y: np.ndarray = np.memmap(targets, dtype=np.float64, mode="r", shape=(spec.rows,))
        return Dataset(x, y, _default_names(spec.features), "y", origin)
    x, y = np.empty((spec.rows, spec.features)), np.empty(spec.rows)
    start = 0
    for xs, ys in synthetic_chunks(spec, seed):
        x[start : start + len(ys)], y[start : start + len(ys)] = xs, ys
        start += len(ys)
    return Dataset(x, y, _default_names(spec.features), "y", origin)


def _open_checked(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(
            f"data file {path} does not exist (data.path). Check the path: a relative path is relative to "
            f"the config file. `lrtrain data make {path.name}` writes a synthetic {what} file to try things."
        )
    if path.is_dir():
        raise DataError(f"data file {path} is a directory (data.path). Point data.path at a {what} file.")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty. It needs a header line and at least one data row.")


def _csv(spec: CsvData, scratch: bool = False) -> Dataset:
    """The CSV's columns as float64; with `scratch` (under torchrun) parsed into a mapped temporary table."""
    path = Path(spec.path)
    _open_checked(path, "CSV")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a BOM (Excel) is not a name
            first = next(csv.reader(handle, delimiter=spec.delimiter), [])
    except UnicodeDecodeError:
        raise DataError(f"data file {path} is not UTF-8 text. Is it a CSV file? Save it as UTF-8 CSV.") from None
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}. Check its permissions.") from None
    width = len(first)
    names = [n.strip() for n in first] if spec.header else [f"x{i}" for i in range(width)]
    if spec.header and len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"data file {path}: column name {dup!r} appears twice in the header. Rename one of them.")
    target = _column(spec.target if spec.target is not None else width - 1, names, path, "data.target", spec.header)
    if spec.features is None:
        features = [i for i in range(width) if i != target]
    else:
        features = [_column(f, names, path, "data.features", spec.header) for f in spec.features]
        if target in features:
            raise DataError(
                f"data file {path}: column {names[target]!r} is both the target and a feature. "
                "Remove it from data.features or choose another data.target."
            )
    if not features:
        raise DataError(
            f"data file {path} has only one column ({names[target]!r}), the target: there are no features. "
            f"A CSV needs at least two columns; if its fields are not separated by {spec.delimiter!r}, "
            "set data.delimiter (e.g. ';' or '\\t')."
        )
    columns = [*features, target]
    try:
        if scratch or path.stat().st_size > _stream_bytes():
            table = _csv_streamed(path, spec, names, columns)
        else:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                if spec.header:
                    handle.readline()
                table = _csv_parsed(handle, spec, names, columns, path)
    except UnicodeDecodeError as exc:  # a bad byte past the first line
        raise DataError(
            f"data file {path} is not UTF-8 text: byte {exc.start} of a read block cannot be decoded. "
            "Save the file as UTF-8 CSV."
        ) from None
    if table.shape[0] == 0:
        raise DataError(f"data file {path} has a header but no data rows. Add rows of numbers below the header.")
    x, y, first_line = table[:, :-1], table[:, -1], 2 if spec.header else 1
    return Dataset(x, y, [names[i] for i in features], names[target], f"data file {path}", first_line)


CSV_CHUNK_ROWS = 65536  # rows parsed at a time when a CSV file is streamed


def _stream_bytes() -> int:
    """CSV files above this size are parsed in chunks into a memory-mapped table on disk."""
    return int(os.environ.get("LRTRAIN_CSV_STREAM_BYTES", str(256 << 20)))


def _csv_parsed(lines: Iterable[str], spec: CsvData, names: list[str], columns: list[int], path: Path) -> np.ndarray:
    """Rows of numbers, columns in the order asked for; any problem becomes an exact DataError."""
    every_column = len(columns) == len(names)  # then rows of the wrong length are caught too
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": reported by the caller, in words
            table = np.loadtxt(
                lines,
                delimiter=spec.delimiter,
                usecols=None if every_column else columns,
                ndmin=2,
                dtype=np.float64,
                comments=None,
                quotechar='"',
            )
    except UnicodeDecodeError:
        raise
    except (ValueError, IndexError):
        raise DataError(_csv_problem(path, spec, names, columns)) from None
    if table.shape[0] > 0 and table.shape[1] != (len(names) if every_column else len(columns)):
        raise DataError(_csv_problem(path, spec, names, columns))  # e.g. one data row, shorter than the header
    return table[:, columns] if every_column and columns != list(range(len(names))) else table


def _csv_streamed(path: Path, spec: CsvData, names: list[str], columns: list[int]) -> np.ndarray:
    """Parse a large CSV chunk by chunk into a float64 table in a temporary file, memory-mapped:
    memory stays bounded by the chunk, whatever the file's size."""

    def fill(out: IO[bytes]) -> tuple[int, ...]:
        rows = 0
        with path.open(newline="", encoding="utf-8-sig") as handle:
            if spec.header:
                handle.readline()
            while chunk := list(itertools.islice(handle, CSV_CHUNK_ROWS)):
                table = _csv_parsed(chunk, spec, names, columns, path)
                table.tofile(out)
                rows += len(table)
        return (rows, len(columns))

    return _scratch_mapping(fill, np.dtype(np.float64))


def _scratch_mapping(
    fill: Callable[[IO[bytes]], tuple[int, ...]], dtype: np.dtype[Any], order: Literal["C", "F"] = "C"
) -> np.ndarray:
    """An array that `fill` writes (returning its shape) into a temporary file, memory-mapped read-only.

    The file has no name from the start (tempfile.TemporaryFile, in $TMPDIR): the mapping keeps
    its pages, and nothing is left on disk however the process ends.
    """
    with tempfile.TemporaryFile(prefix="lrtrain-") as handle:
        shape = fill(handle)
        if math.prod(shape) == 0:
            return np.zeros(shape, dtype=dtype)
        handle.flush()
        mapped: np.ndarray = np.memmap(handle, dtype=dtype, mode="r", shape=shape, order=order)
        return mapped


def _column(ref: str | int, names: list[str], path: Path, key: str, header: bool) -> int:
    if isinstance(ref, int):
        index = ref if ref >= 0 else len(names) + ref
        if not 0 <= index < len(names):
            raise DataError(
                f"data file {path} has {len(names)} columns, so {key} = {ref} is out of range. "
                f"Use an index from 0 to {len(names) - 1}."
            )
        return index
    if not header:
        raise DataError(
            f"{key} = {ref!r} names a column, but data.header is false so {path} has no column names. "
            "Use a 0-based column index, or set data.header to true."
        )
    if ref not in names:
        import difflib

        close = difflib.get_close_matches(ref, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"data file {path} has no column {ref!r} ({key}).{hint} Its columns are: {', '.join(names)}.")
    return names.index(ref)


def _csv_problem(path: Path, spec: CsvData, names: list[str], columns: list[int]) -> str:
    """Find the first malformed row for an exact message (the fast parser's is vague)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=spec.delimiter)
        width = len(names)
        for line_number, row in enumerate(reader, start=1):
            if line_number == 1 and spec.header:
                continue
            if not row:
                continue
            if len(row) != width:
                return (
                    f"data file {path}, line {line_number}: has {len(row)} fields but the first line has {width}. "
                    f"Every row needs {width} fields separated by {spec.delimiter!r}; check that line "
                    "(or data.delimiter)."
                )
            for col in columns:
                try:
                    float(row[col])
                except ValueError:
                    fix = (
                        "Fix the cell or drop the row (this is the target column)."
                        if col == columns[-1]
                        else "Fix the cell, or leave the column out by listing the others in data.features."
                    )
                    return (
                        f"data file {path}, line {line_number}, column {names[col]!r}: {row[col]!r} is not a number. "
                        + fix
                    )
    return f"data file {path} could not be parsed as CSV with delimiter {spec.delimiter!r}. Check data.delimiter."


def _npy(spec: NpyData) -> Dataset:
    path = Path(spec.path)
    _open_checked(path, ".npy")
    try:
        if path.suffix.lower() == ".npz" or zipfile.is_zipfile(path):
            x, y = _npz_arrays(path, [spec.x_key, spec.y_key])
            if x.ndim == 1:
                x = x[:, None]
            features = _default_names(x.shape[1]) if x.ndim == 2 else []
            target = spec.y_key
        else:
            table = np.load(path, allow_pickle=False, mmap_mode="r")  # read as the epochs need it
            if table.ndim != 2 or table.shape[1] < 2:
                raise DataError(
                    f"data file {path} holds an array of shape {table.shape}; a .npy data file is 2-D with "
                    "at least two columns (features and the target). Use .npz with arrays x and y otherwise."
                )
            t = spec.target % table.shape[1] if -table.shape[1] <= spec.target < table.shape[1] else None
            if t is None:
                raise DataError(
                    f"data.target = {spec.target} is out of range for {path}, which has {table.shape[1]} columns."
                )
            if t == table.shape[1] - 1:
                x = table[:, :-1]  # a view: the file is not copied
            elif t == 0:
                x = table[:, 1:]
            else:
                x = np.delete(table, t, axis=1)
            y = table[:, t]
            features, target = _default_names(x.shape[1]), f"column {t}"
    except (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile):
        raise DataError(
            f"data file {path} is not a readable NumPy file (damaged, encrypted, not .npy/.npz, or holding Python "
            "objects). Write it with numpy.save or numpy.savez, or with `lrtrain data make`."
        ) from None
    if x.ndim != 2 or y.ndim != 1:
        raise DataError(f"data file {path}: x must be 1-D or 2-D and y 1-D; got shapes {x.shape} and {y.shape}.")
    real = (np.integer, np.floating)
    if not (any(np.issubdtype(x.dtype, t) for t in real) and any(np.issubdtype(y.dtype, t) for t in real)):
        raise DataError(f"data file {path} holds {x.dtype}/{y.dtype} arrays; lrtrain needs numbers.")
    if len(x) != len(y):
        raise DataError(f"data file {path}: x has {len(x)} rows but y has {len(y)}. Give one target per row.")
    return Dataset(_floating(x), _floating(y), features, target, f"data file {path}")


def _npz_arrays(path: Path, keys: list[str]) -> list[np.ndarray]:
    """The arrays `keys` of an .npz archive. One stored uncompressed (numpy.savez, `lrtrain data make`)
    is memory-mapped in place, like a .npy file; a compressed one (numpy.savez_compressed) is read whole."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        for key in keys:
            if key not in members:
                raise DataError(
                    f"data file {path} has no array {key!r}; it holds {', '.join(members) or 'nothing'}. "
                    "Set data.x_key and data.y_key to the arrays' names."
                )
        arrays = []
        for key in keys:
            info = members[key]
            mapped = _mapped_member(path, info) if info.compress_type == zipfile.ZIP_STORED else None
            if mapped is None:
                with archive.open(info) as handle:
                    mapped = np.lib.format.read_array(handle, allow_pickle=False)
            arrays.append(mapped)
    return arrays


def _mapped_member(path: Path, info: zipfile.ZipInfo) -> np.ndarray | None:
    """An uncompressed .npy member of a zip file, memory-mapped; None when it is better read whole.

    Mapped in place when its data starts on a multiple of its item size (lrtrain's own files);
    numpy.savez leaves it unaligned, which makes BLAS 3-6x slower, so an unaligned member is
    read whole, or, when larger than the CSV streaming size, copied once into an aligned
    temporary file and mapped there. Also None for an encrypted member (reading it then
    fails in words), an empty array or a header version other than 1.0 and 2.0.
    """
    if info.flag_bits & 0x1:
        return None
    with path.open("rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)  # the local file header; its name and extra field may differ from the directory's
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise ValueError("bad local file header")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        member = info.header_offset + 30 + name_length + extra_length
        handle.seek(member)
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            return None
        offset = handle.tell()
    if dtype.hasobject:
        raise ValueError("an array of Python objects")
    size = math.prod(shape) * dtype.itemsize
    if offset + size > member + info.compress_size:  # the header promises more than the member holds
        raise ValueError(f"the array {info.filename} is cut short")
    if size == 0:
        return None
    order: Literal["C", "F"] = "F" if fortran else "C"
    if offset % dtype.alignment == 0:
        in_place: np.ndarray = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
        return in_place
    if size <= _stream_bytes():
        return None
    return _aligned_copy(path, offset, size, dtype, shape, order)


def _aligned_copy(
    path: Path, offset: int, size: int, dtype: np.dtype[Any], shape: tuple[int, ...], order: Literal["C", "F"]
) -> np.ndarray:
    """Bytes offset..offset+size of `path` copied into a temporary file and memory-mapped there (aligned)."""

    def fill(target: IO[bytes]) -> tuple[int, ...]:
        with path.open("rb") as source:
            source.seek(offset)
            for start in range(0, size, 1 << 24):
                target.write(source.read(min(1 << 24, size - start)))
        return shape

    return _scratch_mapping(fill, dtype, order)


def _floating(a: np.ndarray) -> np.ndarray:
    """Integers become float64; float32 and float64 stay as they are (no copy of a mapped file)."""
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def _checked(data: Dataset, group: Shard) -> Dataset:
    """Reject a NaN or infinity, naming the first (in x, then in y; by row, then column).

    Under torchrun each rank reads only its block of the rows, and one all_reduce gathers every
    rank's first find, so every rank reports the same one, the one a single process would.
    """
    if len(data.y) == 0:
        raise DataError(f"{data.origin} has zero rows. Training needs at least one row.")
    mine = block(len(data.y), group.rank, group.world)
    found = np.array([np.inf, 0.0, 0.0])  # (position in x-then-y order, column, value); inf: none
    for which, array in enumerate((data.x, data.y[:, None])):
        for start in range(mine.start, mine.stop, BLOCK_ROWS):  # in blocks: a mapped file is not read whole
            bad = ~np.isfinite(array[start : min(start + BLOCK_ROWS, mine.stop)])
            if bad.any():
                row, col = (int(i) for i in np.argwhere(bad)[0])
                found = np.array([which * len(data.y) + start + row, col, array[start + row, col]])
                break
        if np.isfinite(found[0]):
            break
    finds = group.gather(found)  # every rank's first find, one row each
    position, col, value = finds[int(np.argmin(finds[:, 0]))]
    if np.isfinite(position):
        which, row = divmod(int(position), len(data.y))
        name = (data.features, [data.target])[which][int(col)]
        place = f"line {row + data.first_line}" if data.first_line is not None else f"row {row}"
        raise DataError(
            f"{data.origin}, {place}, column {name!r}: the value is {value}, not a finite number. "
            "Fix or drop those rows."
        )
    return data


# --------------------------------------------------------------------------- sufficient statistics


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of (X, y) for the MSE, centered for accuracy (float64)."""

    n: int
    x_mean: np.ndarray  # μ (zeros without a bias)
    y_mean: float  # ȳ (0 without a bias)
    gram: np.ndarray  # G = AᵀA, A = X - μ
    cross: np.ndarray  # c = Aᵀt, t = y - ȳ
    tt: float  # tᵀt

    def in_original_units(self, scaling: Scaling) -> Moments:
        """The moments of the raw features, from those of x_trained = (x − mean)/scale: x = x_trained·scale + mean."""
        scale = scaling.scale
        return Moments(
            self.n,
            self.x_mean * scale + scaling.mean,
            self.y_mean,
            self.gram * np.outer(scale, scale),  # AᵀA scales by s_i·s_j; centering removes the shift
            self.cross * scale,
            self.tt,
        )

    def uncentered(self) -> Moments:
        """The same sums about the origin (μ = 0, ȳ = 0), for a model without a bias."""
        n, mu, ybar = self.n, self.x_mean, self.y_mean
        return Moments(
            n,
            np.zeros_like(mu),
            0.0,
            self.gram + n * np.outer(mu, mu),
            self.cross + n * mu * ybar,
            self.tt + n * ybar**2,
        )


CANCELLATION_LIMIT = 1e3  # mean² / variance above which XᵀX - nμμᵀ would lose more than 3 digits


def moments(x: np.ndarray, y: np.ndarray) -> Moments:
    """Centered sums of products, float64, memory O(block · D).

    Fast path: two passes over float64 X, one BLAS gemm Xᵀ[1 y] (sums and Xᵀy) and one syrk,
    centered algebraically (G = XᵀX - nμμᵀ), which is exact enough unless a mean dwarfs its
    spread; then, and for float32 or strided data, the products are taken block by block on
    the centered rows.
    """
    n, d = x.shape
    y_mean = float(np.mean(y, dtype=np.float64))
    if x.dtype == np.float64 and y.dtype == np.float64 and x.flags.c_contiguous:
        sums_and_xty = x.T @ np.column_stack([np.ones(n), y])
        x_mean = sums_and_xty[:, 0] / n
        gram = x.T @ x - n * np.outer(x_mean, x_mean)
        cross = sums_and_xty[:, 1] - n * x_mean * y_mean
        tt = float(y @ y) - n * y_mean**2
        spread = np.append(np.diag(gram), tt) / n
        means = np.append(x_mean, y_mean) ** 2
        if np.all(means <= CANCELLATION_LIMIT * spread) and np.all(spread > 0):
            return Moments(n, x_mean, y_mean, gram, cross, tt)
    x_mean = _blocked_sum(x) / n
    gram, cross, tt = np.zeros((d, d)), np.zeros(d), 0.0
    for start in range(0, n, BLOCK_ROWS):
        a = np.asarray(x[start : start + BLOCK_ROWS], dtype=np.float64) - x_mean
        t = np.asarray(y[start : start + BLOCK_ROWS], dtype=np.float64) - y_mean
        gram += a.T @ a  # BLAS syrk
        cross += a.T @ t
        tt += float(t @ t)
    return Moments(n, x_mean, y_mean, gram, cross, tt)


def combined(local: Moments, shard: Shard) -> Moments:
    """The moments of every rank's rows from each rank's own centered ones, exactly (Chan et al.):

        n = Σ n_r,  μ = Σ n_r μ_r / n,  ȳ = Σ n_r ȳ_r / n,  δ_r = μ_r − μ,  ε_r = ȳ_r − ȳ
        G = Σ G_r + Σ n_r δ_r δ_rᵀ,   c = Σ c_r + Σ n_r δ_r ε_r,   tᵀt = Σ t_rᵀt_r + Σ n_r ε_r²

    One all_reduce: the sums of G_r, c_r and t_rᵀt_r, then each rank's (n_r, μ_r, ȳ_r) in its own slot.
    """
    if shard.world == 1:
        return local
    d = len(local.cross)
    own = np.concatenate([[local.n], local.x_mean, [local.y_mean]])
    packed = shard.reduce(np.concatenate([local.gram.ravel(), local.cross, [local.tt], shard.slot(own).ravel()]))
    grams, cross, tts, ranks = np.split(packed, np.cumsum([d * d, d, 1]))
    ranks = ranks.reshape(shard.world, d + 2)
    counts, x_means, y_means = ranks[:, 0], ranks[:, 1:-1], ranks[:, -1]
    n = int(counts.sum())
    x_mean, y_mean = counts @ x_means / n, float(counts @ y_means) / n
    delta, epsilon = x_means - x_mean, y_means - y_mean
    gram = grams.reshape(d, d) + (delta.T * counts) @ delta
    cross += delta.T @ (counts * epsilon)
    tt = float(tts[0]) + float(counts @ epsilon**2)
    return Moments(n, x_mean, y_mean, gram, cross, tt)


def _row_blocks(a: np.ndarray, rows: slice | np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """a[rows] block by block, each with its place in a[rows]: the selection is never copied whole, and a
    memory-mapped file is read only at the selected rows."""
    source, index = (a[rows], None) if isinstance(rows, slice) else (a, rows)
    for start in range(0, len(source) if index is None else len(index), BLOCK_ROWS):
        place = slice(start, start + BLOCK_ROWS)
        yield place, source[place] if index is None else a[index[place]]


def _blocked_sum(a: np.ndarray, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
    total = np.zeros(a.shape[1])
    for _, part in _row_blocks(a, rows):
        total += np.sum(part, axis=0, dtype=np.float64)
    return total


def _blocked_mean_and_std(
    x: np.ndarray, rows: slice | np.ndarray, count: int, shard: Shard
) -> tuple[np.ndarray, np.ndarray]:
    """Column means and (population) standard deviations of the selected rows of every rank (`count` in all),
    in two blocked passes (no N×D temporaries), each pass's sums all-reduced: μ = Σx / n, then σ² = Σ(x − μ)² / n."""
    mean = shard.reduce(_blocked_sum(x, rows)) / count
    total = np.zeros(x.shape[1])
    for _, part in _row_blocks(x, rows):
        centered = np.asarray(part, dtype=np.float64) - mean
        total += np.einsum("ij,ij->j", centered, centered)
    return mean, np.sqrt(shard.reduce(total) / count)


def _taken(a: np.ndarray, rows: slice | np.ndarray, dtype: np.dtype[Any], scaling: Scaling | None) -> np.ndarray:
    """a[rows] in the training dtype, standardized when `scaling` is given, as at most one new array.

    A range of rows that needs neither stays a view (a mapped file stays on disk). Float64
    standardization works in place on its one copy (3x faster than blocks); the rest is filled
    block by block, so no float64 copy of the rows is ever made on the way to float32.
    """
    if scaling is None and a.dtype == dtype:
        return a[rows]  # a view of a range, one copy of indexed rows
    if scaling is not None and dtype == np.float64:
        selected = a[rows]
        copied = isinstance(rows, np.ndarray) and a.dtype == np.float64  # indexing made a float64 copy: reuse it
        whole: np.ndarray = np.subtract(selected, scaling.mean, out=selected if copied else None, dtype=np.float64)
        whole /= scaling.scale
        return whole
    out = np.empty((len(a[rows]) if isinstance(rows, slice) else len(rows), *a.shape[1:]), dtype=dtype)
    for place, part in _row_blocks(a, rows):
        out[place] = part if scaling is None else (np.asarray(part, dtype=np.float64) - scaling.mean) / scaling.scale
    return out


# --------------------------------------------------------------------------- preparing


def validation_rows(n: int, fraction: float) -> int:
    """round(N·fraction) of the N rows are held out for validation; both parts need a row."""
    n_val = round(n * fraction)
    if fraction > 0 and (n_val < 1 or n - n_val < 1):
        raise DataError(
            f"data.validation = {fraction} of {n} rows leaves {n_val} validation and {n - n_val} training rows; "
            "both need at least one. Use more data or another fraction (0 turns validation off)."
        )
    return n_val


def prepare(data: Dataset, config: Config, group: Shard = SINGLE) -> Prepared:
    """Split off validation rows, standardize if asked, cast to the config's dtype: each array at most
    one new copy of its rows (none for a range of rows already in the training dtype).

    Under torchrun (`group`: this process's place in the job) only this rank's rows are taken: its
    block of the N rows as read, less those held out for validation, which it keeps as its block
    of the validation rows. Each copy made here holds ~N/world rows, and a memory-mapped file is
    read only there. The training rows of all ranks, in rank order, are the training rows of one
    process, in order; the standardization statistics are those of all of them (sums all-reduced).
    """
    n = len(data.y)
    n_val = validation_rows(n, config.data.validation)
    rows = n - n_val
    shard = parallel.take(rows, group)  # without validation, the rank's block of every row
    train: slice | np.ndarray = slice(shard.start, shard.stop)
    val: slice | np.ndarray | None = None
    if n_val:
        mine = block(n, group.rank, group.world)
        train, val = order.held_out(n, n_val, config.seed, mine.start, mine.stop)
        if group.world > 1:  # the rank's place among the training rows: the counts of the ranks before it
            counts = group.gather(np.array([float(len(train))]))[:, 0].astype(int)
            if not counts.all():
                raise DataError(
                    f"{data.origin}: with data.validation = {config.data.validation}, a process's share of the "
                    f"{n} rows has no training row. Use fewer processes than {group.world} or more data."
                )
            start = int(counts[: group.rank].sum())
            shard = Shard(group.rank, group.world, start, start + len(train))
    d = data.x.shape[1]
    needed = d + int(config.model.bias)
    if rows < needed and config.train.weight_decay == 0:
        raise DataError(
            f"{data.origin}: {_count(rows, 'training row')} for {_count(d, 'feature')}"
            f"{' and a bias' if config.model.bias else ''}; "
            f"the fit is underdetermined (needs at least {needed} rows). Add rows, drop features, "
            "lower data.validation, or set train.weight_decay > 0."
        )
    scaling = Scaling(np.zeros(d), np.ones(d))
    if config.data.standardize:
        scaling = Scaling(*_blocked_mean_and_std(data.x, train, rows, shard))
        mean, scale = scaling.mean, scaling.scale
        constant = np.flatnonzero(scale <= 1e-12 * np.maximum(1.0, np.abs(mean)))  # rounding of a constant's mean
        if constant.size:
            name = data.features[int(constant[0])]
            raise DataError(
                f"{data.origin}: feature {name!r} is constant ({mean[constant[0]]:g} in every training row), so it "
                "cannot be standardized (its spread is 0). Drop it with data.features, "
                "or set data.standardize to false."
            )
    dtype, standardized = np.dtype(config.model.dtype), scaling if config.data.standardize else None
    return Prepared(
        _taken(data.x, train, dtype, standardized),
        _taken(data.y, train, dtype, None),
        None if val is None else _taken(data.x, val, dtype, standardized),
        None if val is None else _taken(data.y, val, dtype, None),
        scaling,
        data,
        shard,
        rows,
        n_val,
    )


# --------------------------------------------------------------------------- writing


def write(
    path: Path, chunks: Iterator[tuple[np.ndarray, np.ndarray]], rows: int, features: int, names: list[str]
) -> None:
    """Write chunks of (x, y) to .csv, .npy (target last column) or .npz, atomically."""
    from lrtrain.model import atomic_writer

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
    elif suffix == ".npz":  # as numpy.savez writes it (uncompressed, so it is read memory-mapped), chunk by chunk
        with (
            atomic_writer(path, "wb") as handle,
            zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive,
            tempfile.TemporaryFile(dir=path.parent) as targets,  # y waits on disk, beside the output
        ):
            with archive.open(_aligned_member("x.npy", handle.tell()), "w", force_zip64=True) as member:
                header = {"descr": "<f8", "fortran_order": False, "shape": (rows, features)}
                np.lib.format.write_array_header_1_0(member, header)
                for x, y in chunks:
                    member.write(np.asarray(x, dtype="<f8").tobytes())
                    targets.write(np.asarray(y, dtype="<f8").tobytes())
            with archive.open(_aligned_member("y.npy", handle.tell()), "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (rows,)})
                targets.seek(0)
                shutil.copyfileobj(targets, member, 1 << 18)
    else:
        raise DataError(f"cannot write {path}: the name must end in .csv, .npy or .npz.")


def _aligned_member(name: str, at: int) -> zipfile.ZipInfo:
    """A stored zip member whose local header, written at byte `at`, is padded (an extra field of an unused
    id) so that the .npy data after it starts on a multiple of 64 bytes, and can be mapped as it lies."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    before = at + 30 + len(name.encode()) + 20  # the local header and its zip64 field; the .npy header is 64·k
    pad = -(before + 4) % 64
    info.extra = struct.pack("<HH", 0x6C72, pad) + bytes(pad)  # id "lr"
    return info


def _count(n: int, noun: str) -> str:
    """1 feature, 2 features."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
