"""Data-parallel training equals one process: two ranks on gloo, spawned, and one torchrun smoke test."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lrtrain.config import load_config
from lrtrain.training import fit

from .conftest import SUBPROCESS_TIMEOUT
from .parallel_worker import run_rank

BASE = ["data.source=synthetic", "data.rows=1001", "data.features=4", "train.epochs=40", "train.lr=0.05"]


def in_two_ranks(tmp_path: Path, overrides: list[str]) -> list[dict[str, object]]:
    context = multiprocessing.get_context("spawn")  # never fork a process that ran torch ops
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    ranks = [
        context.Process(target=run_rank, args=(r, 2, str(tmp_path / "store"), overrides, str(outs[r])))
        for r in range(2)
    ]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=SUBPROCESS_TIMEOUT)
    for process in ranks:
        if process.is_alive():
            process.kill()
            process.join(timeout=10)
    assert all(p.exitcode == 0 for p in ranks), [p.exitcode for p in ranks]
    results = [json.loads(out.read_text()) for out in outs]
    assert all("error" not in r for r in results), results
    return results


CASES = {
    "manual full batch float64": ["train.engine=manual", "model.dtype=float64"],
    "manual minibatch momentum float32": ["train.engine=manual", "train.batch_size=100", "train.momentum=0.9"],
    "torch minibatch float64": ["train.engine=torch", "model.dtype=float64", "train.batch_size=64"],
}


@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_two_ranks_reach_the_single_process_weights(tmp_path: Path, overrides: list[str]) -> None:
    single = fit(load_config(None, [*BASE, *overrides, "output.save=false"]))
    ranks = in_two_ranks(tmp_path, [*BASE, *overrides])
    rtol = 1e-12 if "float64" in " ".join(overrides) else 1e-5
    for rank in ranks:
        assert rank["epochs"] == single.epochs
        np.testing.assert_allclose(rank["weights"], single.weights, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(rank["losses"], [log.loss for log in single.history], rtol=rtol * 10)
    assert ranks[0]["weights"] == ranks[1]["weights"]  # every rank takes the same step


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_torchrun_two_processes_write_one_run_equal_to_one_process(tmp_path: Path) -> None:
    args = [f"--set={o}" for o in [*BASE, "model.dtype=float64", "train.statistics=never"]]
    torchrun = str(Path(sys.executable).parent / "torchrun")
    command = [
        torchrun,
        "--standalone",
        "--nproc-per-node=2",
        "--local-addr=127.0.0.1",
        "-m",
        "lrtrain",
        "fit",
        "--json",
    ]
    done = subprocess.run(
        [*command, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        env={**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["event"] for r in records].count("fit") == 1  # rank 0 alone reports
    (run,) = (tmp_path / "runs").iterdir()
    model = json.loads((run / "model.json").read_text())
    single = fit(load_config(None, [*BASE, "model.dtype=float64", "output.save=false"]))
    np.testing.assert_allclose(model["weights"], single.weights, rtol=1e-12)
