"""What a config's paths say: the data format a data.path's name gives, and the run name a config file gives."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from lrtrain.errors import ConfigError

# what a data.path's name says it is (a compressed CSV ends in one of COMPRESSED after .csv or .tsv)
FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".npy": "npy", ".npz": "npy"}
COMPRESSED = (".gz", ".bz2", ".zst")


def imply_source(data: dict[str, Any], base: Path) -> None:
    """Without data.source, a data.path whose name says the format chooses it (a folder: Parquet);
    a .tsv file read as CSV is tab-separated unless data.delimiter says otherwise."""
    where = data.get("path")
    if not isinstance(where, str):
        return
    name = where.lower()
    for suffix in COMPRESSED:
        if name.endswith((f".csv{suffix}", f".tsv{suffix}")):
            name = name.removesuffix(suffix)
    suffix = Path(name).suffix
    if "source" not in data:
        if suffix in FORMATS:
            data["source"] = FORMATS[suffix]
        elif (base / where).is_dir():
            data["source"] = "parquet"
        else:
            raise ConfigError(
                f"data.path = {where!r}: its name does not say what it holds (.csv, .csv.gz, .csv.bz2, .csv.zst, "
                ".tsv, .parquet or a folder of them, .npy, .npz). Set data.source to csv, parquet or npy."
            )
    if data["source"] == "csv" and suffix == ".tsv" and "delimiter" not in data:
        data["delimiter"] = "\t"


def expand_home(raw: dict[str, Any]) -> None:
    """A data.path or output.dir that starts with ~ (or ~user) is in that home folder, as a shell would read it:
    --set output.dir=~/runs is not expanded by the shell, and a folder named ~ in the working directory is a trap
    (a later `rm -rf ~` removes the home folder)."""
    for section, key in (("data", "path"), ("output", "dir")):
        values = raw.get(section)
        if isinstance(values, dict) and isinstance(values.get(key), str) and values[key].startswith("~"):
            values[key] = os.path.expanduser(values[key])


def run_name_of(path: Path) -> str:
    """The run name a config file gives when it sets none: its name made a valid `name` (the characters a
    folder name may hold, starting with a letter, digit or _, at most 100), so that no file name is refused."""
    name = re.sub(r"[^A-Za-z0-9_.+-]", "_", path.stem).lstrip(".-+")[:100]
    return name or "run"
