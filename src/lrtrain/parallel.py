"""Data-parallel training under `torchrun`: which rows this process owns, and summing across processes.

Each rank trains on its own contiguous block of the training rows. Every step, each rank
computes its part of the gradient *sum*, scaled by the *global* batch size, and the parts are
all-reduced; every rank then takes the same step, so the weights equal a single process's.
Minibatches are global too: the permutation of an epoch is drawn from the seed, and each rank
takes the rows of each global batch that fall in its block, so every rank takes the same
number of steps even when its share of a batch is empty.

torch.distributed is the transport (gloo on CPU, NCCL for one GPU per rank). It lives with the
rest of torch in engine_torch, which is imported only when a job really has more than one process.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from lrtrain.errors import ConfigError

TIMEOUT_SECONDS = float(os.environ.get("LRTRAIN_DIST_TIMEOUT", "300"))  # torch's default is 30 minutes


@dataclass(frozen=True)
class Shard:
    """This process's rows of the training data, and how to sum an array over all processes."""

    rank: int
    world: int
    start: int
    stop: int

    def count(self, rows: slice | np.ndarray, n: int) -> int:
        """Rows in a global selection (a batch's size, the same on every rank)."""
        if isinstance(rows, slice):
            lo, hi, _ = rows.indices(n)
            return max(hi - lo, 0)
        return len(rows)

    def owned(self, rows: slice | np.ndarray) -> slice | np.ndarray:
        """The part of a global row selection in this shard, as indices into the shard."""
        if isinstance(rows, slice):
            lo, hi, _ = rows.indices(1 << 62)
            lo, hi = max(lo, self.start), min(hi, self.stop)
            return slice(lo - self.start, max(hi, lo) - self.start)
        mine = rows[(rows >= self.start) & (rows < self.stop)]
        return mine - self.start

    def reduce(self, values: np.ndarray) -> np.ndarray:
        """Sum over every process, in place (one all_reduce); a single process keeps its own."""
        if self.world > 1:
            _transport().all_reduce_numpy(values)
        return values


SINGLE = Shard(0, 1, 0, 1 << 62)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def start(rows: int, device: str) -> Shard:
    """Join the process group torchrun set up (if any) and take this rank's block of rows."""
    world = world_size()
    if world == 1:
        return SINGLE
    rank = int(os.environ["RANK"])
    _transport().join_process_group(rank, world, device, TIMEOUT_SECONDS, os.environ.get("LRTRAIN_DIST_INIT"))
    if rows < world:
        raise ConfigError(f"{world} processes need at least {world} training rows; there are {rows}.")
    bounds = np.linspace(0, rows, world + 1).astype(int)
    return Shard(rank, world, int(bounds[rank]), int(bounds[rank + 1]))


def stop(finished: bool = True) -> None:
    """Leave the process group; wait for the others only after a normal finish (after an error
    the other ranks may be inside a different collective, and a barrier would hang)."""
    if world_size() > 1:
        _transport().leave_process_group(finished)


def _transport() -> Any:
    """torch.distributed, through the one module that imports torch."""
    return importlib.import_module("lrtrain.engine_torch")


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def local_device(device: str) -> str:
    """Under torchrun, `cuda` means this rank's GPU (NCCL takes one GPU per rank)."""
    if world_size() > 1 and device.startswith("cuda"):
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device
