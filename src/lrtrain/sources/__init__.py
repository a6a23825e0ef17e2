"""Where the rows come from: one module per format, each returning a `Source` (see sources.base)."""

from __future__ import annotations

from lrtrain.config import Config, CsvData, InlineData, ParquetData, SyntheticData
from lrtrain.parallel import SINGLE, Shard
from lrtrain.sources import arrays, delimited, parquet, synthetic
from lrtrain.sources.base import Source, Table, checked, fingerprint, own_rows, row_count

__all__ = ["Source", "Table", "checked", "dropped_note", "fingerprint", "load", "own_rows", "row_count"]


def load(config: Config, group: Shard = SINGLE) -> Source:
    """The data as read, every value checked to be finite. Under torchrun (`group`: this process's place
    in the job) each rank reads only its share of a CSV or Parquet table (lrtrain.sources.shares) and
    checks only its share of the rows, and the ranks agree on what to report."""
    spec = config.data
    full = not config.model.bias  # no intercept: the first categorical column is coded in full (lrtrain.design)
    scratch = group.world > 1  # rows a rank reads go to a mapped temporary file, not its own memory
    if isinstance(spec, SyntheticData):
        return synthetic.read(spec, config.seed, scratch)  # finite by construction; every rank makes them all
    if isinstance(spec, CsvData):
        return checked(delimited.read(spec, scratch, group, full), group)
    if isinstance(spec, ParquetData):
        return checked(parquet.read(spec, scratch, group, full), group)
    return checked(arrays.inline(spec) if isinstance(spec, InlineData) else arrays.npy(spec), group)


def dropped_note(source: Source) -> str | None:
    """What data.missing: drop left out, for stderr; None when it dropped nothing."""
    dropped = source.dropped
    if dropped is None:
        return None
    read = row_count(source) + dropped.rows
    where = ", ".join(f"{name} {count}" for name, count in dropped.columns.items())
    return (
        f"note: dropped {dropped.rows} of {read} rows of {source.origin} with a missing cell (data.missing: drop); "
        f"missing cells per column: {where}."
    )
