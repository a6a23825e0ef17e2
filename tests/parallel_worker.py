"""One rank of a data-parallel test run (spawned processes import their target by module name)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def run_rank(rank: int, world: int, store: str, overrides: list[str], out: str) -> None:
    import torch

    torch.set_num_threads(1)  # two ranks on two cores
    os.environ.update(
        {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "LRTRAIN_DIST_INIT": f"file://{store}"}
    )
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    from lrtrain import data
    from lrtrain.config import load_config
    from lrtrain.training import fit

    held: dict[str, Any] = {}
    prepare = data.prepare

    def recorded(*args: Any, **kwargs: Any) -> data.Prepared:
        prepared = prepare(*args, **kwargs)
        held["x"], held["y"] = list(prepared.x.shape), list(prepared.y.shape)
        held["x_val"] = None if prepared.x_val is None else list(prepared.x_val.shape)
        held["rows"], held["val_rows"] = prepared.rows, prepared.val_rows
        return prepared

    data.prepare = recorded  # what this rank holds after preparing
    payload: dict[str, Any] = {}
    try:
        result = fit(load_config(None, [*overrides, "output.save=false"]))
        payload = {"weights": [float(w) for w in result.weights], "bias": result.bias, "epochs": result.epochs}
        payload["losses"] = [log.loss for log in result.history]
        payload["val_losses"] = [log.val_loss for log in result.history]
        payload |= {"loss": result.loss, "val_loss": result.val_loss, "r2": result.r2, "rows": result.rows}
        payload["optimum"] = [*map(float, result.optimum_weights), result.optimum_bias, result.optimum_loss]
    except Exception as exc:  # report it to the test instead of dying silently
        payload = {"error": f"{exc.__class__.__name__}: {exc}"}
    payload["held"] = held
    Path(out).write_text(json.dumps(payload))
    sys.stdout.flush()
