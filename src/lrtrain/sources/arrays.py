"""Arrays: inline in the config, a .npy file (memory-mapped: read where the epochs need it), or an
.npz archive (read with NumPy's own loader)."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from lrtrain.config import InlineData, NpyData
from lrtrain.errors import DataError
from lrtrain.sources.base import Table, available_memory, default_names, gigabytes, open_checked


def inline(spec: InlineData) -> Table:
    x = np.asarray(spec.x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    y = np.asarray(spec.y, dtype=np.float64)
    if len(x) != len(y):
        raise DataError(
            f"inline data: data.x has {len(x)} rows but data.y has {len(y)} values. Give one target per row of x."
        )
    return Table(x, y, default_names(x.shape[1]), "y", "inline data (data.x, data.y)")


def npy(spec: NpyData) -> Table:
    path = Path(spec.path)
    open_checked(path, ".npy")
    try:
        if path.suffix.lower() == ".npz" or zipfile.is_zipfile(path):
            x, y = _npz_arrays(path, spec.x_key, spec.y_key)
            shapes = (x.shape, y.shape)  # as saved, for a message
            if x.ndim == 1:
                x = x[:, None]
            features = default_names(x.shape[1]) if x.ndim == 2 else []
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
            features, target = default_names(x.shape[1]), f"column {t}"
            shapes = (x.shape, y.shape)
    except (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile):
        raise DataError(
            f"data file {path} is not a readable NumPy file (damaged, encrypted, not .npy/.npz, or holding Python "
            "objects). Write it with numpy.save or numpy.savez, or with `lrtrain data make`."
        ) from None
    if x.ndim != 2 or y.ndim != 1:
        raise DataError(
            f"data file {path}: x must be 1-D or 2-D and y 1-D; got shapes {shapes[0]} and {shapes[1]}. Save y as "
            "a 1-D array (y.ravel() for a column)."
        )
    real = (np.integer, np.floating)
    if not (any(np.issubdtype(x.dtype, t) for t in real) and any(np.issubdtype(y.dtype, t) for t in real)):
        raise DataError(f"data file {path} holds {x.dtype}/{y.dtype} arrays; lrtrain needs numbers.")
    if len(x) != len(y):
        raise DataError(f"data file {path}: x has {len(x)} rows but y has {len(y)}. Give one target per row.")
    return Table(_floating(x), _floating(y), features, target, f"data file {path}")


def _npz_arrays(path: Path, x_key: str, y_key: str) -> tuple[np.ndarray, np.ndarray]:
    """The arrays x_key and y_key of an .npz archive, each read whole."""
    with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:  # closed however it fails
        for key in (x_key, y_key):
            if key not in archive.files:
                raise DataError(
                    f"data file {path} has no array {key!r}; it holds {', '.join(archive.files) or 'nothing'}. "
                    "Set data.x_key and data.y_key to the arrays' names."
                )
        _check_members(path, archive.zip, (x_key, y_key))
        return archive[x_key], archive[y_key]


def _check_members(path: Path, archive: zipfile.ZipFile, keys: tuple[str, str]) -> None:
    """Before an array is unpacked: its .npy header's shape x itemsize must be what the member's declared size
    holds (more is a damaged or forged header), and the members together must fit in the memory available (a
    zip bomb declares gigabytes in a small archive; zipfile never unpacks more than the declared size)."""
    total = 0
    for key in dict.fromkeys(keys):
        name = key if key in archive.namelist() else f"{key}.npy"
        info = archive.getinfo(name)
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            room = info.file_size - member.tell()
        claimed = math.prod(shape) * dtype.itemsize
        if claimed > room:
            raise DataError(
                f"data file {path}: array {key!r} (member {name}) claims shape {shape} of {dtype}, "
                f"{claimed:,} bytes, but the member holds {max(room, 0):,}: the archive is damaged. "
                "Write it again with numpy.savez or `lrtrain data make`."
            )
        total += info.file_size
    if total > available_memory():
        raise DataError(
            f"data file {path}: arrays {' and '.join(repr(k) for k in dict.fromkeys(keys))} unpack to "
            f"{gigabytes(total)}, more than the {gigabytes(available_memory())} of memory available, and an .npz "
            "archive is read whole. Save the data as one 2-D .npy instead (read from disk as training goes: "
            "features and the target in columns), or free memory."
        )


def _floating(a: np.ndarray) -> np.ndarray:
    """Integers become float64; float32 and float64 stay as they are (no copy of a mapped file)."""
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)
