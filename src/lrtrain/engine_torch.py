"""nn.Linear + nn.MSELoss + torch.optim.SGD on a device: the cheat sheet's training pipeline."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch
import torch._dynamo
from torch import nn
from torch.optim import lr_scheduler

from lrtrain import parallel
from lrtrain.engine import EpochLog, Schedule, State
from lrtrain.errors import DeviceError
from lrtrain.prepare import Prepared
from lrtrain.system import check_threads


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def describe() -> dict[str, object]:
    """torch's build and every device it can use here, for `lrtrain info`."""
    cuda = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            cuda.append(
                {
                    "device": f"cuda:{index}",
                    "name": props.name,
                    "memory_gib": round(props.total_memory / 2**30, 1),
                    "capability": f"{props.major}.{props.minor}",
                }
            )
    return {
        "version": torch.__version__,
        "cuda_build": torch.version.cuda,  # None: a CPU-only build
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,  # type: ignore[no-untyped-call]
        "threads": torch.get_num_threads(),
        "cuda": cuda,
        "mps": bool(torch.backends.mps.is_available()),
        "devices": available_devices(),
    }


def resolve_device(name: str) -> torch.device:
    """The device asked for, or a DeviceError saying what exists here; never a silent fallback."""
    here = available_devices()
    if name == "auto":
        return torch.device(here[1] if len(here) > 1 else "cpu")
    canonical = "cuda:0" if name == "cuda" else name
    if canonical not in here:
        build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a build without CUDA")
        if canonical.startswith("mps"):  # Apple's GPU: no build of torch has it on another machine
            build = f"torch {torch.__version__}; mps is the GPU of Apple silicon Macs"
        raise DeviceError(
            f"device {name!r} is not available here ({build}); available: {', '.join(here)}. "
            "Choose one of those (fit --device cpu, compare torch:cpu), or auto for the best one present."
        )
    return torch.device(canonical)


def train(data: Prepared, schedule: Schedule, start: State) -> Iterator[EpochLog]:
    device = resolve_device(schedule.device)
    check_threads(schedule.threads)
    if schedule.threads:
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(schedule.threads)
    try:
        yield from _epochs(data, schedule, start, device)
    finally:
        if schedule.threads:
            torch.set_num_threads(previous_threads)


def _epochs(data: Prepared, schedule: Schedule, start: State, device: torch.device) -> Iterator[EpochLog]:
    dtype = getattr(torch, schedule.dtype)
    if device.type == "mps" and dtype == torch.float64:
        raise DeviceError("device 'mps' does not support float64. Use --set model.dtype=float32 or --device cpu.")
    shard = data.shard  # the rows data.x holds: all of them, or under torchrun this rank's block
    x = _tensor(data.x, schedule.dtype, device)
    y = _tensor(data.y, schedule.dtype, device).unsqueeze(1)
    n, d = data.rows, data.features  # n: every rank's rows together
    model = nn.Linear(d, 1, bias=schedule.bias, device=device, dtype=dtype)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(start.weights[None, :], dtype=dtype))
        if model.bias is not None:
            model.bias.fill_(start.bias)
    loss_fn = nn.MSELoss()
    groups: list[dict[str, object]] = [{"params": [model.weight], "weight_decay": schedule.weight_decay}]
    if model.bias is not None:
        groups.append({"params": [model.bias], "weight_decay": 0.0})  # no decay on the bias
    optimizer = torch.optim.SGD(groups, lr=schedule.lr, momentum=schedule.momentum)
    if start.velocity_w is not None:  # resuming: SGD's momentum buffers as they were
        optimizer.state[model.weight]["momentum_buffer"] = torch.tensor(
            start.velocity_w[None, :], dtype=dtype, device=device
        )
        if model.bias is not None:
            optimizer.state[model.bias]["momentum_buffer"] = torch.tensor(
                [start.velocity_b], dtype=dtype, device=device
            )
    scheduler = _scheduler(optimizer, schedule, start.epoch)
    logs = _Logs(model, optimizer, n, device)
    for epoch in range(start.epoch + 1, schedule.epochs + 1):
        if schedule.carried(epoch) != 1.0:  # momentum: auto's first epoch (a constant lr: no scheduler)
            for group in optimizer.param_groups:
                group["lr"] = schedule.first_lr
        lr = float(optimizer.param_groups[0]["lr"])  # this epoch's, set by the scheduler after the last one
        total = torch.zeros((), dtype=torch.float64, device=device)
        sizes, rows = zip(*schedule.batches(epoch, n, shard), strict=True)
        for m, mine in zip(sizes, _on_device(list(rows), device), strict=True):  # m: the global batch size
            xb, yb = x[mine], y[mine]
            # one process: the sheet's nn.MSELoss; under torchrun: this rank's part of the global mean
            loss = loss_fn(model(xb), yb) if shard.world == 1 else ((model(xb) - yb) ** 2).sum() / m
            loss.backward()
            if shard.world > 1:
                loss = _all_reduce(model, loss)
            optimizer.step()
            optimizer.zero_grad()
            total += loss.detach().double() * m
        if scheduler is not None:
            scheduler.step()  # once per epoch, after it
        if (factor := schedule.carried(epoch)) != 1.0:
            with torch.no_grad():
                for group in optimizer.param_groups:
                    group["lr"] = schedule.lr
                    for p in group["params"]:
                        if "momentum_buffer" in optimizer.state[p]:
                            optimizer.state[p]["momentum_buffer"].mul_(factor)
        yield from logs.add(epoch, total, lr)
    yield from logs.flush()


def _scheduler(optimizer: torch.optim.SGD, schedule: Schedule, done: int) -> lr_scheduler.LRScheduler | None:
    """torch's scheduler for the schedule's kind (its lrs equal `Schedule.lr_at` up to rounding), stepped past
    the `done` epochs a resumed run has behind it. Step and cosine compute each lr from the previous one, so a
    resumed run replays every step from the start: then each later lr is the uninterrupted run's, to the bit."""
    s = schedule.lr_schedule
    scheduler: lr_scheduler.LRScheduler
    if s.kind == "step":
        scheduler = lr_scheduler.StepLR(optimizer, step_size=s.step_epochs, gamma=s.gamma)
    elif s.kind == "cosine":
        scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.period_epochs, eta_min=s.min_lr * schedule.lr)
    elif s.kind == "inverse_time":  # LambdaLR: base lr·λ(t), each from the base (MultiplicativeLR would compound)
        scheduler = lr_scheduler.LambdaLR(optimizer, lambda t: 1 / (1 + s.decay * t))
    else:
        return None
    with warnings.catch_warnings():  # the replay steps before any optimizer step, on purpose
        warnings.filterwarnings("ignore", "Detected call of", UserWarning)
        for _ in range(done):
            scheduler.step()
    return scheduler


class _Logs:
    """The epochs' logs, copied from the device in chunks: a copy waits for the device (a sync), which on
    a GPU costs more than a small epoch, so each epoch's loss, weights, bias and momentum buffers are
    kept on the device, and copied in one go every `chunk` epochs or every `seconds` of wall time,
    whichever comes first. On the CPU every epoch is copied at once (nothing to wait for). The engine may
    so run up to a chunk ahead of what training has seen; every log is still exactly its epoch's."""

    chunks: ClassVar[dict[str, int]] = {"cuda": 256, "mps": 256}  # epochs per copy, by device type; 1 elsewhere
    seconds = 0.1  # and at least this often, so logs, the live view and Ctrl-C stay responsive

    def __init__(self, model: nn.Linear, optimizer: torch.optim.SGD, n: int, device: torch.device) -> None:
        self.model, self.optimizer, self.n = model, optimizer, n
        self.chunk = self.chunks.get(device.type, 1)
        self.rows: list[torch.Tensor] = []  # per epoch: [loss sum, w..., b, has momentum, v_w..., v_b]
        self.epochs: list[tuple[int, float]] = []  # per epoch: (epoch, lr)
        self.copied = time.perf_counter()

    def add(self, epoch: int, total: torch.Tensor, lr: float) -> Iterator[EpochLog]:
        if self.chunk == 1:  # nothing to wait for: read the state now (a dozen tensor ops a row would cost more)
            yield self.now(epoch, total, lr)
            return
        model, d = self.model, self.model.weight.shape[1]
        bias = model.bias.detach() if model.bias is not None else torch.zeros(1, device=total.device)
        buffer_w = self.optimizer.state[model.weight].get("momentum_buffer")
        buffer_b = self.optimizer.state[model.bias].get("momentum_buffer") if model.bias is not None else None
        velocity_w = buffer_w.detach()[0] if buffer_w is not None else torch.zeros(d, device=total.device)
        velocity_b = buffer_b.detach() if buffer_b is not None else torch.zeros(1, device=total.device)
        has_momentum = torch.ones(1, device=total.device) * (buffer_w is not None)
        parts = [total.reshape(1), model.weight.detach()[0], bias, has_momentum, velocity_w, velocity_b]
        self.rows.append(torch.cat([part.to(torch.float64) for part in parts]))
        self.epochs.append((epoch, lr))
        if len(self.rows) >= self.chunk or time.perf_counter() - self.copied >= self.seconds:
            yield from self.flush()

    def now(self, epoch: int, total: torch.Tensor, lr: float) -> EpochLog:
        model, optimizer = self.model, self.optimizer
        # copies: on the CPU in float64, `.to` would hand back the live tensors the next step changes in place
        weights = model.weight.detach()[0].to("cpu", torch.float64, copy=True).numpy()
        bias = float(model.bias.detach().item()) if model.bias is not None else 0.0
        buffer_w = optimizer.state[model.weight].get("momentum_buffer")  # None: no step yet, or no momentum
        buffer_b = optimizer.state[model.bias].get("momentum_buffer") if model.bias is not None else None
        velocity_w = None if buffer_w is None else buffer_w.detach()[0].to("cpu", torch.float64, copy=True).numpy()
        velocity_b = float(buffer_b.item()) if buffer_b is not None else 0.0
        return EpochLog(epoch, float(total.item()) / self.n, weights, bias, lr, None, velocity_w, velocity_b)

    def flush(self) -> Iterator[EpochLog]:
        if not self.rows:
            return
        table = torch.stack(self.rows).cpu().numpy()  # the one wait for the device
        d = self.model.weight.shape[1]
        epochs, self.rows, self.epochs = self.epochs, [], []
        self.copied = time.perf_counter()
        for (epoch, lr), row in zip(epochs, table, strict=True):
            velocity_w = row[d + 3 : 2 * d + 3].copy() if row[d + 2] else None
            velocity_b = float(row[2 * d + 3]) if row[d + 2] else 0.0
            weights, bias = row[1 : d + 1].copy(), float(row[d + 1])
            yield EpochLog(epoch, float(row[0]) / self.n, weights, bias, lr, None, velocity_w, velocity_b)


def _on_device(selections: list[slice | np.ndarray], device: torch.device) -> list[slice | torch.Tensor]:
    """An epoch's row selections for indexing on the device: every index array in one copy to the device
    (a copy per minibatch would make the host wait for the device each time)."""
    arrays = [s for s in selections if not isinstance(s, slice)]
    placed: list[slice | torch.Tensor] = [s for s in selections if isinstance(s, slice)]
    if not arrays:
        return placed  # every selection a slice (full batch, no shuffling): nothing to copy
    indices = torch.from_numpy(np.concatenate(arrays)).to(device)
    placed, start = [], 0
    for selection in selections:
        if isinstance(selection, slice):
            placed.append(selection)
        else:
            placed.append(indices[start : start + len(selection)])
            start += len(selection)
    return placed


def _tensor(a: np.ndarray, dtype: str, device: torch.device) -> torch.Tensor:
    """`a` as a tensor on the device; on the CPU, when it already is C-contiguous in the run's dtype,
    the array's own memory (no copy of the data; nothing here ever writes into it). A read-only
    array, such as a mapped file, is copied: torch tensors are writable."""
    if device.type == "cpu" and a.dtype == np.dtype(dtype) and a.flags.c_contiguous and a.flags.writeable:
        return torch.from_numpy(a)
    return torch.tensor(a, dtype=getattr(torch, dtype), device=device)


def _all_reduce(model: nn.Linear, loss: torch.Tensor) -> torch.Tensor:
    """Sum the gradients and the loss over every rank (what DDP does, without its teardown hazards)."""
    parts = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([t.reshape(-1) for t in parts] + [loss.detach().reshape(1)])
    parallel.all_reduce_tensor(flat)
    offset = 0
    for grad in parts:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()
    return flat[-1]
