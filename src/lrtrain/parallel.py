"""Data-parallel training under `torchrun`: which rows this process owns, and summing across processes.

Each rank takes its own contiguous block of the N rows as read, less the rows held out for
validation, which it keeps as its block of the validation rows (lrtrain.order decides which are
held out, row by row, so no rank draws a permutation of all N). `prepare.prepare` splits,
standardizes and casts just that block, so the prepared arrays take ~N/world rows of memory
per rank, and a memory-mapped .npy file is read only there. Each rank also checks only its own
rows for NaN and infinity (the ranks agree on the first bad value to report), and hashes its
own share of the data's fingerprint (sources.fingerprint), which a run records and a resume
checks. A CSV or Parquet table is read a share per rank as well (lrtrain.sources.shares): a
byte range of the CSV cut at row ends, the Parquet row groups that hold the rank's block, into
a mapped temporary file; the rank's rows are then those it read, wherever the cut fell, and
the ranks learn each other's row counts to place them in the whole table (a compressed CSV:
the rows read while the decompressor is in the rank's span of its bytes, lrtrain.sources.csv_shares).
Synthetic data is still made whole by every rank, into a mapped temporary file (page cache, not
the rank's own memory).

Everything computed from the rows is a sum over them, and each sum is all-reduced, so every
rank holds the numbers one process would: the standardization statistics, the moments (lr:
auto, the exact optimum), the gradient of every step, the validation loss of every epoch, the
final loss and R². Every step, each rank computes its part of the gradient *sum*, scaled by the
*global* batch size; every rank then takes the same step, so the weights equal a single
process's. Minibatches are global too: each epoch's order is a seeded permutation, and each
rank finds where its own rows fall in it (lrtrain.order), so every rank takes the same number
of steps even when its share of a batch is empty. Collectives must come in the same
order on every rank, or the job hangs until LRTRAIN_DIST_TIMEOUT (seconds) runs out.

Ctrl-C (SIGINT/SIGTERM; torchrun passes it on to every process) stops every rank after the same
epoch, agreed by `StopVote`; rank 0 writes the checkpoint, and `--resume` continues it with any
number of processes, or in one.

torch.distributed is the transport (gloo on CPU, NCCL for one GPU per rank). This module owns
it, and imports it only when a job really has more than one process: `lrtrain predict` and a
one-process fit without the torch engine never load torch.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np

from lrtrain.errors import ConfigError, TrainingFailed, environment_number, printable

if TYPE_CHECKING:
    import torch

TIMEOUT_SECONDS = 300.0  # LRTRAIN_DIST_TIMEOUT's default; torch's is 30 minutes


@dataclass(frozen=True)
class Shard:
    """This process's rows of the training data (global rows start to stop), and how to sum an array over all
    processes."""

    rank: int
    world: int
    start: int
    stop: int

    def owned(self, rows: slice) -> slice:
        """The part of a global range of rows in this shard, as indices into the shard."""
        lo, hi, _ = rows.indices(1 << 62)
        lo, hi = max(lo, self.start), min(hi, self.stop)
        return slice(lo - self.start, max(hi, lo) - self.start)

    def reduce(self, values: np.ndarray) -> np.ndarray:
        """Sum over every process, in place (one all_reduce); a single process keeps its own."""
        if self.world > 1:
            _all_reduce_numpy(values)
        return values

    def slot(self, values: np.ndarray) -> np.ndarray:
        """A (world, k) buffer with `values` in this rank's row and zeros in the others': summed over the
        processes, it holds every rank's values."""
        slots = np.zeros((self.world, len(values)))
        slots[self.rank] = values
        return slots

    def gather(self, values: np.ndarray) -> np.ndarray:
        """Every rank's `values`, one row per rank, on every rank (one all_reduce)."""
        return self.reduce(self.slot(values))

    def texts(self, values: list[str]) -> list[str]:
        """Every rank's `values`, in rank order, on every rank (two all_reduces: the sizes, then the UTF-8 bytes,
        each byte from one rank and zeros from the others, so the sum is exact)."""
        if self.world == 1:
            return list(values)
        mine = b"".join(len(v.encode()).to_bytes(8, "little") + v.encode() for v in values)
        sizes = self.gather(np.array([float(len(mine))]))[:, 0].astype(int)
        if not sizes.any():
            return []
        at = int(sizes[: self.rank].sum())
        packed = np.zeros(int(sizes.sum()), dtype=np.uint8)
        packed[at : at + len(mine)] = np.frombuffer(mine, dtype=np.uint8)
        data = self.reduce(packed).tobytes()
        found, at = [], 0
        while at < len(data):
            size = int.from_bytes(data[at : at + 8], "little")
            found.append(data[at + 8 : at + 8 + size].decode())
            at += 8 + size
        return found


class StopVote:
    """Whether to stop after this epoch: the same answer on every rank.

    A Ctrl-C reaches each process at its own moment, perhaps epochs apart, but every rank must
    stop after the same epoch, or the others wait in a collective until the timeout. So the
    ranks vote: each says whether it was asked to stop, in one all_reduce, and all stop when any
    was. A vote after every epoch would cost an all_reduce per epoch (milliseconds over gloo,
    against microseconds for an epoch from the moments), so votes are spaced about `seconds`
    apart: the first after one epoch, then the interval at most doubles each time, toward the
    epochs rank 0 trained in `seconds`. It is computed from numbers that come out of the vote,
    bit for bit the same on every rank, so every rank votes after the same epochs.
    """

    def __init__(
        self, shard: Shard, asked: Callable[[], bool], seconds: float = 0.2, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.shard, self.asked, self.seconds, self.clock = shard, asked, seconds, clock
        self.every = self.left = 1  # epochs between votes, and until the next one
        self.wanted = False
        self.since = clock()

    def __call__(self) -> bool:
        """Called after every epoch, on every rank."""
        if self.shard.world == 1:
            return self.asked()
        self.wanted = self.wanted or self.asked()  # asked every epoch, told at the next vote
        self.left -= 1
        if self.left > 0:
            return False
        votes = self.shard.gather(np.array([float(self.wanted), self.clock() - self.since]))
        per_epoch = float(votes[0, 1]) / self.every  # rank 0's time: one number for all
        fitting = int(self.seconds / per_epoch) if per_epoch > 0 else 2 * self.every
        self.every = self.left = max(1, min(2 * self.every, fitting))
        self.since = self.clock()
        return bool(votes[:, 0].sum() > 0)


SINGLE = Shard(0, 1, 0, 1 << 62)  # one process: every row


def world_size() -> int:
    """The processes torchrun started (WORLD_SIZE; 1 without torchrun)."""
    return _launched("WORLD_SIZE", 1, 1, "the number of processes")


def _launched(variable: str, default: int, low: int, what: str) -> int:
    """A whole number torchrun sets in the environment (`what` it is); a stray one in words."""
    setting = os.environ.get(variable, "").strip()
    if not setting:
        return default
    try:
        value = int(setting)
    except ValueError:
        value = low - 1
    if value < low:
        raise ConfigError(
            f"the environment variable {variable} is {printable(repr(setting))}, not a whole number >= {low}: torchrun "
            f"sets it to {what}. Run lrtrain under torchrun, or unset {variable} (and "
            f"{', '.join(v for v in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK') if v != variable)}) to run it in one process."
        )
    return value


def block(rows: int, rank: int, world: int) -> Shard:
    """Rank's contiguous block of `rows` rows; the blocks tile them in order, their sizes differ by at most one."""
    bounds = np.linspace(0, rows, world + 1).astype(int)
    return Shard(rank, world, int(bounds[rank]), int(bounds[rank + 1]))


def start(device: str) -> Shard:
    """Join the process group torchrun set up (if any): this process's rank and the world, no rows yet."""
    world = world_size()
    what = "the seconds a process waits for the others at each step (torch's own default is 30 minutes)"
    timeout = environment_number("LRTRAIN_DIST_TIMEOUT", TIMEOUT_SECONDS, what, least=0.001, most=1e9)
    if world == 1:  # the setting is checked all the same: a malformed one is an error wherever it is
        return SINGLE
    rank = _launched("RANK", -1, 0, "this process's place among them")
    if not 0 <= rank < world:
        given = "unset" if rank < 0 else f"{rank}"
        raise ConfigError(
            f"WORLD_SIZE is {world} but RANK is {given}: torchrun sets both (RANK from 0 to WORLD_SIZE - 1). Run "
            "lrtrain under torchrun, or unset WORLD_SIZE, RANK and LOCAL_RANK to run it in one process."
        )
    _join(rank, world, device, timeout, os.environ.get("LRTRAIN_DIST_INIT"))
    return Shard(rank, world, 0, 0)


def take(rows: int, group: Shard) -> Shard:
    """This rank's block of the `rows` training rows (all of them in one process)."""
    if group.world == 1:
        return SINGLE
    if rows < group.world:
        raise ConfigError(
            f"{group.world} processes need at least {group.world} training rows; there are {rows}. Start fewer "
            "processes (torchrun --nproc-per-node), or train on more rows."
        ).shared("job")
    return block(rows, group.rank, group.world)


def stop(finished: bool = True) -> None:
    """Leave the process group; wait for the others only after a normal finish (after an error
    the other ranks may be inside a different collective, and a barrier would hang)."""
    if world_size() > 1:
        _leave(finished)


def is_main() -> bool:
    return world_size() == 1 or _launched("RANK", 0, 0, "this process's place among them") == 0


def speaks(alike: str | None) -> bool:
    """Whether this process says an error that the processes `alike` (LrtrainError.alike) raise alike: process 0
    for the job's, each machine's first (LOCAL_RANK 0) for a machine's, every process for its own."""
    try:
        if world_size() == 1 or alike is None:
            return True
        variable = "RANK" if alike == "job" else "LOCAL_RANK"
        return _launched(variable, 0, 0, "this process's place among them") == 0
    except ConfigError:  # a malformed variable: that error is said by every process, and so is this one
        return True


def local_device(device: str) -> str:
    """Under torchrun, `cuda` means this rank's GPU (NCCL takes one GPU per rank)."""
    if world_size() > 1 and device.startswith("cuda"):
        return f"cuda:{_launched('LOCAL_RANK', 0, 0, 'the GPU of this process on its machine')}"
    return device


# --------------------------------------------------------------------------- the transport: torch.distributed


def _join(rank: int, world: int, device: str, timeout: float, init: str | None) -> None:
    """gloo on CPU, NCCL for one GPU per rank; `init` e.g. file:///tmp/store (default: torchrun's env://)."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device))
    try:
        dist.init_process_group(
            backend, init_method=init, rank=rank, world_size=world, timeout=timedelta(seconds=timeout)
        )
    except ValueError as exc:  # env:// without MASTER_ADDR or MASTER_PORT: set by hand, not by torchrun
        raise ConfigError(
            f"WORLD_SIZE is {world}, but the processes cannot find each other: {_first_line(exc)}. Start them with "
            "torchrun (it sets MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE), or unset WORLD_SIZE, RANK "
            "and LOCAL_RANK to run in one process."
        ) from None
    except RuntimeError as exc:  # the others never came, or the address cannot be reached
        raise TrainingFailed(
            f"process {rank} of {world} could not join the others: {_first_line(exc)}. Check that every process "
            "started (torchrun --nproc-per-node, --nnodes) and can reach the address in MASTER_ADDR; "
            f"each waits LRTRAIN_DIST_TIMEOUT seconds ({timeout:g})."
        ) from None


def _first_line(exc: Exception) -> str:
    """The first line of gloo's or NCCL's message, without the source file it names or its jokes."""
    line = (str(exc).splitlines() or [exc.__class__.__name__])[0]
    line = re.sub(r"\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", line)  # [/__w/pytorch/.../pair.cc:538]
    line = re.split(r"\s*GLHF", line)[0]
    return line.strip().rstrip(".") or exc.__class__.__name__


def _all_reduce_numpy(values: np.ndarray) -> None:
    """Sum a NumPy array over every rank, in place."""
    import torch
    import torch.distributed as dist

    tensor = torch.from_numpy(values)  # shares memory with `values`
    with _peers():
        if dist.get_backend() == "nccl":  # NCCL reduces device memory only
            on_device = tensor.to(f"cuda:{torch.cuda.current_device()}")
            dist.all_reduce(on_device)
            tensor.copy_(on_device.cpu())
        else:
            dist.all_reduce(tensor)


def all_reduce_tensor(tensor: torch.Tensor) -> None:
    """Sum a tensor (on this rank's device) over every rank, in place."""
    import torch.distributed as dist

    with _peers():
        dist.all_reduce(tensor)


@contextlib.contextmanager
def _peers() -> Iterator[None]:
    """A collective whose other side is gone: a process that died (killed, out of memory) or that stopped answering
    within LRTRAIN_DIST_TIMEOUT is said in words (exit 1), not as gloo's or NCCL's RuntimeError."""
    try:
        yield
    except RuntimeError as exc:
        rank = os.environ.get("RANK", "?")
        raise TrainingFailed(
            f"process {rank} lost the other processes of this torchrun job: {_first_line(exc)}. Another process "
            "died (see its own output above: killed, out of memory, an error of its own) or stopped answering for "
            "LRTRAIN_DIST_TIMEOUT seconds. Nothing was saved; run the job again, with a larger "
            "LRTRAIN_DIST_TIMEOUT if a process is slow rather than gone."
        ) from None


def _leave(finished: bool) -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        if finished:
            with _peers():
                dist.barrier()
        dist.destroy_process_group()
