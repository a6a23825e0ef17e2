"""One rank of a data-parallel test run (spawned processes import their target by module name)."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np


def read_bytes() -> int:
    """The bytes this process has read through read() calls so far (Linux's /proc/self/io rchar)."""
    # imported before a count starts: they are not the data
    for module in ("pyarrow.csv", "pyarrow.parquet", "pyarrow.compute"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)

    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["rchar"])


def run_rank(
    rank: int,
    world: int,
    store: str,
    overrides: list[str],
    out: str,
    stop_after: int | None = None,
    resume: str | None = None,
    die_after: int | None = None,
) -> None:
    """Fit with `overrides` (output.save=false unless they say otherwise), or continue the run `resume`;
    `stop_after` epochs, this rank asks to stop."""
    import torch

    torch.set_num_threads(1)  # two ranks on two cores
    os.environ.update(
        {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "LRTRAIN_DIST_INIT": f"file://{store}"}
    )
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    from lrtrain import sources, training
    from lrtrain.config import load_config
    from lrtrain.errors import Interrupted
    from lrtrain.training import fit

    held: dict[str, Any] = {}
    prepare, load = training.prepare, sources.load

    def loaded(*args: Any, **kwargs: Any) -> Any:
        before = read_bytes()
        source = load(*args, **kwargs)
        held["read_bytes"] = read_bytes() - before  # what reading the data read from files (pyarrow imported)
        return source

    def recorded(*args: Any, **kwargs: Any) -> Any:
        prepared = prepare(*args, **kwargs)
        held["x"], held["y"] = list(prepared.x.shape), list(prepared.y.shape)
        held["x_val"] = None if prepared.x_val is None else list(prepared.x_val.shape)
        held["rows"], held["val_rows"] = prepared.rows, prepared.val_rows
        raw = prepared.raw.x
        while not isinstance(raw, np.memmap) and isinstance(raw.base, np.ndarray):
            raw = raw.base
        held["raw_mapped"] = isinstance(raw, np.memmap)  # the data as read: a file, not anonymous memory
        held["raw_held"] = prepared.raw.held  # the rows this rank read, when it read only its share
        held["fingerprint"] = prepared.fingerprint  # a collective: every rank asks here
        held["dropped"] = None if prepared.raw.dropped is None else prepared.raw.dropped.to_json()
        held["levels"] = [levels.to_json() for levels in prepared.raw.levels]
        return prepared

    training.prepare = recorded  # type: ignore[assignment]  # what this rank holds after preparing
    sources.load = loaded  # type: ignore[assignment]  # and what it read to get there
    calls = {"epochs": 0}

    def should_stop() -> bool:
        calls["epochs"] += 1
        if die_after is not None and calls["epochs"] >= die_after:
            os._exit(9)  # as a process killed mid-run: no goodbye to the others
        return stop_after is not None and calls["epochs"] >= stop_after

    payload: dict[str, Any] = {}
    try:
        config = load_config(Path(resume) / "config.yaml" if resume else None, ["output.save=false", *overrides])
        result = fit(config, should_stop=should_stop, resume=Path(resume) if resume else None, with_summary=True)
        payload = {"weights": [float(w) for w in result.weights], "bias": result.bias, "epochs": result.epochs}
        payload["losses"] = [log.loss for log in result.history]
        payload["val_losses"] = [log.val_loss for log in result.history]
        payload |= {"loss": result.loss, "val_loss": result.val_loss, "r2": result.r2, "rows": result.rows}
        payload["optimum"] = [*map(float, result.optimum_weights), result.optimum_bias, result.optimum_loss]
        summary = result.summary
        payload["summary"] = summary if summary is None or isinstance(summary, str) else summary.to_dict()
    except Interrupted as stop:
        payload = {"interrupted": str(stop), "epoch": stop.checkpoint.state.epoch}  # type: ignore[union-attr]
    except Exception as exc:  # report it to the test instead of dying silently
        payload = {"error": f"{exc.__class__.__name__}: {exc}"}
    payload["held"] = held
    Path(out).write_text(json.dumps(payload))
    sys.stdout.flush()
