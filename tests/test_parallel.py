"""Data-parallel training equals one process: two ranks on gloo, spawned, and one torchrun smoke test."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lrtrain
from lrtrain import data
from lrtrain.config import load_config
from lrtrain.errors import TrainingFailed
from lrtrain.training import FitResult, fit

from .conftest import SUBPROCESS_TIMEOUT
from .parallel_worker import run_rank

SYNTHETIC = ["data.source=synthetic", "data.rows=1001", "data.features=4"]
BASE = [*SYNTHETIC, "train.epochs=40", "train.lr=0.05"]


def in_two_ranks(tmp_path: Path, overrides: list[str]) -> list[dict[str, Any]]:
    """Each rank's report: its result, or the error it stopped with, and the shapes it held after preparing."""
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
    return [json.loads(out.read_text()) for out in outs]


def trained_in_two_ranks(tmp_path: Path, overrides: list[str]) -> list[dict[str, Any]]:
    results = in_two_ranks(tmp_path, overrides)
    assert all("error" not in r for r in results), results
    return results


def npy_source(tmp_path: Path) -> list[str]:
    """The synthetic rows written to a .npy file: read memory-mapped, so each rank reads only its own."""
    spec = load_config(None, SYNTHETIC).data
    path = tmp_path / "data.npy"
    data.write(path, data.synthetic_chunks(spec, seed=0), 1001, 4, ["x0", "x1", "x2", "x3"])  # type: ignore[arg-type]
    return ["data.source=npy", f"data.path={path}"]


def assert_same_as_one_process(ranks: list[dict[str, Any]], single: FitResult, rtol: float) -> None:
    """Weights, per-epoch losses, final loss, R², validation losses and the optimum, on every rank."""
    optimum = [*single.optimum_weights, single.optimum_bias, single.optimum_loss]
    for rank in ranks:
        assert rank["epochs"] == single.epochs
        np.testing.assert_allclose(rank["weights"], single.weights, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(rank["losses"], [log.loss for log in single.history], rtol=rtol * 10)
        np.testing.assert_allclose([rank["loss"], rank["r2"]], [single.loss, single.r2], rtol=rtol)
        np.testing.assert_allclose(rank["optimum"], optimum, rtol=1e-12)  # float64 from the same data
        if single.val_loss is None:
            assert rank["val_loss"] is None
        else:
            np.testing.assert_allclose(rank["val_losses"], [log.val_loss for log in single.history], rtol=rtol * 10)
        assert rank["rows"] == single.rows
    assert ranks[0]["weights"] == ranks[1]["weights"]  # every rank takes the same step


def assert_each_rank_holds_its_half(ranks: list[dict[str, Any]]) -> None:
    """The prepared arrays hold only the rank's block of the training (and validation) rows."""
    held = [rank["held"] for rank in ranks]
    rows, val_rows = held[0]["rows"], held[0]["val_rows"]
    assert [h["x"][0] for h in held] == [rows // 2, rows - rows // 2]
    assert all(h["y"] == [h["x"][0]] for h in held)
    if val_rows:
        assert [h["x_val"][0] for h in held] == [val_rows // 2, val_rows - val_rows // 2]


CASES = {
    "manual full batch float64": ["train.engine=manual", "model.dtype=float64"],
    "manual full batch float64 on the data": ["train.engine=manual", "model.dtype=float64", "train.statistics=never"],
    "manual minibatch momentum float32": ["train.engine=manual", "train.batch_size=100", "train.momentum=0.9"],
    "torch minibatch float64": ["train.engine=torch", "model.dtype=float64", "train.batch_size=64"],
}


@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_two_ranks_reach_the_single_process_weights(tmp_path: Path, overrides: list[str]) -> None:
    single = fit(load_config(None, [*BASE, *overrides, "output.save=false"]))
    ranks = trained_in_two_ranks(tmp_path, [*BASE, *overrides])
    assert_same_as_one_process(ranks, single, rtol=1e-12 if "float64" in " ".join(overrides) else 1e-5)
    assert_each_rank_holds_its_half(ranks)


PREPARED = ["data.standardize=true", "data.validation=0.2", "train.lr=auto"]
NPY_CASES = {
    "manual minibatch float64": ["train.engine=manual", "model.dtype=float64", "train.batch_size=100"],
    "manual full batch float64 on statistics": ["train.engine=manual", "model.dtype=float64"],
    "torch minibatch momentum float32": ["train.engine=torch", "train.batch_size=64", "train.momentum=0.9"],
}


@pytest.mark.parametrize("overrides", NPY_CASES.values(), ids=NPY_CASES.keys())
def test_standardized_validated_auto_lr_from_a_mapped_file_equals_one_process(
    tmp_path: Path, overrides: list[str]
) -> None:
    settings = [*npy_source(tmp_path), "train.epochs=40", *PREPARED, *overrides]
    single = fit(load_config(None, [*settings, "output.save=false"]))
    ranks = trained_in_two_ranks(tmp_path, settings)
    assert_same_as_one_process(ranks, single, rtol=1e-12 if "float64" in " ".join(overrides) else 1e-5)
    assert_each_rank_holds_its_half(ranks)
    assert ranks[0]["held"]["rows"] == 801  # 1001 rows less round(0.2 · 1001) for validation
    assert ranks[0]["held"]["val_rows"] == 200


def test_divergence_advice_is_the_single_process_one_on_every_rank(tmp_path: Path) -> None:
    settings = [*SYNTHETIC, "train.epochs=40", "train.lr=5"]
    with pytest.raises(TrainingFailed) as failed:
        fit(load_config(None, [*settings, "output.save=false"]))
    ranks = in_two_ranks(tmp_path, settings)
    assert [r["error"] for r in ranks] == [f"TrainingFailed: {failed.value}"] * 2


def test_an_ill_conditioned_optimum_is_the_least_squares_one_across_ranks(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    t = np.sort(rng.uniform(1, 2, 2000))
    x = np.column_stack([t**k for k in range(1, 9)])  # cond(AᵀA) ~ 1e19: the QR path, TSQR across ranks
    y = x @ rng.normal(size=8) + 0.5 + 0.1 * rng.normal(size=2000)  # noisy: half the rows would give another fit
    np.save(tmp_path / "poly.npy", np.column_stack([x, y]))
    settings = ["data.source=npy", f"data.path={tmp_path / 'poly.npy'}", "model.dtype=float64", "train.lr=auto"]
    single = fit(load_config(None, [*settings, "train.epochs=3", "output.save=false"]))
    ranks = trained_in_two_ranks(tmp_path, [*settings, "train.epochs=3"])
    for rank in ranks:  # the weights of so ill-posed a problem carry cond(A)·ε; its least-squares loss does not
        assert rank["optimum"][-1] == pytest.approx(single.optimum_loss, rel=1e-11)
        fitted = x @ np.array(rank["optimum"][:-2]) + rank["optimum"][-2]
        np.testing.assert_allclose(fitted, x @ single.optimum_weights + single.optimum_bias, rtol=1e-9)
    assert ranks[0]["optimum"] == ranks[1]["optimum"]


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None, reason="no torchrun")
def test_torchrun_two_processes_write_one_run_equal_to_one_process(tmp_path: Path) -> None:
    settings = [*BASE, "model.dtype=float64", "train.statistics=never", "data.validation=0.2", "data.standardize=true"]
    args = [f"--set={o}" for o in settings]
    code = str(Path(lrtrain.__file__).resolve().parents[1])  # the processes run the code under test
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
        env={**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PYTHONPATH": code},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["event"] for r in records].count("fit") == 1  # rank 0 alone reports
    (run,) = (tmp_path / "runs").iterdir()
    model = json.loads((run / "model.json").read_text())
    single = fit(load_config(None, [*settings, "output.save=false"]))
    np.testing.assert_allclose(model["weights"], single.weights, rtol=1e-12)
    metrics = [model["metrics"][k] for k in ("loss", "val_loss", "r2", "optimum_loss")]
    np.testing.assert_allclose(metrics, [single.loss, single.val_loss, single.r2, single.optimum_loss], rtol=1e-12)
    assert model["data"]["rows"] == 1001
