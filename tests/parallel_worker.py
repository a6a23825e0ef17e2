"""One rank of a data-parallel test run (spawned processes import their target by module name)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def run_rank(rank: int, world: int, store: str, overrides: list[str], out: str) -> None:
    import torch

    torch.set_num_threads(1)  # two ranks on two cores
    os.environ.update(
        {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "LRTRAIN_DIST_INIT": f"file://{store}"}
    )
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    from lrtrain.config import load_config
    from lrtrain.training import fit

    try:
        result = fit(load_config(None, [*overrides, "output.save=false"]))
        payload = {"weights": [float(w) for w in result.weights], "bias": result.bias, "epochs": result.epochs}
        payload["losses"] = [log.loss for log in result.history]
    except Exception as exc:  # report it to the test instead of dying silently
        payload = {"error": f"{exc.__class__.__name__}: {exc}"}
    Path(out).write_text(json.dumps(payload))
    sys.stdout.flush()
