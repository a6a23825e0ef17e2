"""Under torchrun, each rank reads only its share of a CSV or Parquet table; here the ranks agree on the rest.

The CSV reader gives each rank a byte range of the file cut at row ends, the Parquet reader its
block of the rows the footers count (decoding only the row groups that hold them). A rank parses
just that share. Then one all_reduce tells every rank whether any failed and how many rows each
read and kept: a problem is reported by every rank alike (the first rank's, the one a single
process meets first, since the shares follow the file's order), and each rank learns the place
of its rows in the whole table. Categorical levels are the union of every share's, dropped rows
are counted over every share, and the table the rank keeps says which rows it holds (Table.total
and Table.offset), so the split, the checks and the fingerprint are those of one process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from lrtrain.errors import ConfigError, DataError, LrtrainError, ScratchError
from lrtrain.moments import Tally
from lrtrain.parallel import Shard
from lrtrain.sources.base import Dropped, Table
from lrtrain.sources.columns import Coder, finish

KINDS = {kind.__name__: kind for kind in (DataError, ConfigError, ScratchError)}  # a rank's failure, on every rank


def agree(group: Shard, failure: LrtrainError | None, numbers: list[float]) -> np.ndarray:
    """Every rank's `numbers`, one row each (one all_reduce), once no rank failed; if any did, every rank
    raises the error of the first that did (its kind and text: a second all_reduce)."""
    table = group.gather(np.array([float(failure is not None), *numbers], dtype=np.float64))
    failed = np.flatnonzero(table[:, 0])
    if failed.size:
        first = int(failed[0])
        kind, message = group.texts([type(failure).__name__, str(failure)] if group.rank == first else [])
        raise KINDS.get(kind, DataError)(message).shared("job")
    return table[:, 1:]


def table(
    rows: np.ndarray | None,
    failure: LrtrainError | None,
    names: list[str],
    coders: dict[int, Coder],
    counts: np.ndarray,
    read: int,
    origin: str,
    first_line: int | None,
    group: Shard,
    tally: Tally,
    nothing: str | None = None,
    lines: Callable[[int], int] | None = None,
    full: bool = False,
) -> Table:
    """This rank's share as a source of the whole table, or every rank's error: `rows` (float64, categorical
    columns as codes) are the share's rows kept of the `read` it read, `counts` its missing cells per column
    (data.missing: drop), `tally` the sums of its rows as read, `failure` what stopped its reading (None:
    nothing), `nothing` the error when no share has a row (None: the one finish gives), and `lines(i)` the
    file line of the share's row i. One all_reduce, two with a failure, one more per categorical column."""
    width = len(names)
    mine = [0.0] * (2 + width) if rows is None or failure is not None else [read, len(rows), *counts]
    everyone = agree(group, failure, mine)
    assert rows is not None  # no rank failed
    reads, kept = everyone[:, 0].astype(int), everyone[:, 1].astype(int)
    total = int(kept.sum())
    if reads.sum() == 0 and nothing is not None:
        raise DataError(nothing)
    if total == 0:  # the error one process gives: no row, or every row dropped
        finish(rows[:0], names, coders, counts, int(reads.sum()), origin, first_line, True, Tally(width - 1))
    if not kept.all():
        empty = int(np.flatnonzero(kept == 0)[0])
        held = f"its {total} rows are" if total != 1 else "its one row is"
        raise DataError(
            f"{origin}: {held} shared by {group.world} processes, and process {empty}'s share holds none of them "
            "(too few rows, or rows of very uneven length). Use fewer processes, or more data."
        ).shared("job")
    local = finish(rows, names, coders, counts, read, origin, first_line, True, tally, union=group.texts, full=full)
    dropped = None
    if reads.sum() > total:  # the rows after a dropped one are no longer at first_line + row: no line then
        columns = everyone[:, 2:].sum(axis=0).astype(int)
        dropped = Dropped(int(reads.sum()) - total, {n: int(c) for n, c in zip(names, columns, strict=True) if c})
        first_line, lines = None, None
    offset = int(kept[: group.rank].sum())
    return dataclasses.replace(local, first_line=first_line, dropped=dropped, offset=offset, total=total, lines=lines)
