"""Data-parallel training equals one process: two ranks on gloo, spawned, and one torchrun smoke test."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lrtrain
from lrtrain import parallel, sources
from lrtrain.config import load_config
from lrtrain.engine import FitResult
from lrtrain.errors import DataError, Interrupted, LrtrainError, TrainingFailed
from lrtrain.parallel import Shard
from lrtrain.prepare import prepare
from lrtrain.sources import Table, base, checked, delimited, fingerprint, parquet, row_count, synthetic
from lrtrain.sources.writers import write
from lrtrain.stats import Summary
from lrtrain.training import fit

from .conftest import (
    SUBPROCESS_TIMEOUT,
    ThreadShard,
    cli,
    file_lines,
    quoted_columns,
    run_installed,
    write_quoted_csv,
)
from .parallel_worker import run_rank

SYNTHETIC = ["data.source=synthetic", "data.rows=1001", "data.features=4"]
BASE = [*SYNTHETIC, "train.epochs=40", "train.lr=0.05"]


def in_ranks(
    tmp_path: Path,
    overrides: list[str],
    stop_after: tuple[int | None, ...] = (None, None),
    resume: Path | None = None,
    world: int = 2,
) -> list[dict[str, Any]]:
    """Each rank's report: its result, or the error it stopped with, and what it read and held after preparing.
    Rank r asks to stop after stop_after[r] epochs; `resume` continues that run."""
    context = multiprocessing.get_context("spawn")  # never fork a process that ran torch ops
    outs = [tmp_path / f"rank{r}.json" for r in range(world)]
    store = tmp_path / "store"
    store.unlink(missing_ok=True)  # a fresh rendezvous for each job
    resumed = str(resume) if resume else None
    stops = [*stop_after, *[None] * world][:world]
    ranks = [
        context.Process(target=run_rank, args=(r, world, str(store), overrides, str(outs[r]), stops[r], resumed))
        for r in range(world)
    ]
    run_to_the_end(ranks)
    assert all(p.exitcode == 0 for p in ranks), [p.exitcode for p in ranks]
    return [json.loads(out.read_text()) for out in outs]


def run_to_the_end(ranks: list[Any]) -> None:
    """Start the rank processes and wait for each, within the timeout: one still alive then is killed."""
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=SUBPROCESS_TIMEOUT)
    for process in ranks:
        if process.is_alive():
            process.kill()
            process.join(timeout=10)


def trained_in_ranks(
    tmp_path: Path, overrides: list[str], resume: Path | None = None, world: int = 2
) -> list[dict[str, Any]]:
    results = in_ranks(tmp_path, overrides, resume=resume, world=world)
    assert all("error" not in r for r in results), results
    return results


def npy_source(tmp_path: Path) -> list[str]:
    """The synthetic rows written to a .npy file: read memory-mapped, so each rank reads only its own."""
    spec = load_config(None, SYNTHETIC).data
    path = tmp_path / "data.npy"
    write(path, synthetic.chunks(spec, seed=0), 1001, 4, ["x0", "x1", "x2", "x3"])  # type: ignore[arg-type]
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
    assert all(rank["weights"] == ranks[0]["weights"] for rank in ranks)  # every rank takes the same step


def assert_each_rank_holds_its_half(ranks: list[dict[str, Any]]) -> None:
    """The prepared arrays hold only the rank's half of the rows as read, split into training and validation."""
    held = [rank["held"] for rank in ranks]
    rows, val_rows = held[0]["rows"], held[0]["val_rows"]
    assert all(h["y"] == [h["x"][0]] for h in held)
    assert all(h["raw_held"] is None for h in held)  # every rank holds every row as read (a mapped file)
    if not val_rows:
        assert [h["x"][0] for h in held] == [rows // 2, rows - rows // 2]
        return
    n = rows + val_rows
    assert [h["x"][0] + h["x_val"][0] for h in held] == [n // 2, n - n // 2]
    assert sum(h["x"][0] for h in held) == rows
    assert sum(h["x_val"][0] for h in held) == val_rows


def assert_each_rank_holds_what_it_read(ranks: list[dict[str, Any]], rows: int) -> list[tuple[int, int]]:
    """Each rank read its own share of the `rows` (about rows/world of them, the shares in order) and prepared
    only those, split into training and validation rows; the shares."""
    shares = [(int(lo), int(hi)) for lo, hi in (rank["held"]["raw_held"] for rank in ranks)]
    assert [lo for lo, _ in shares] == [0, *(hi for _, hi in shares[:-1])]  # in order, none left out or twice
    assert shares[-1][1] == rows
    assert all(abs((hi - lo) - rows / len(ranks)) < 0.1 * rows / len(ranks) for lo, hi in shares)
    for (lo, hi), rank in zip(shares, ranks, strict=True):
        held = rank["held"]
        assert held["x"][0] + (held["x_val"][0] if held["x_val"] else 0) == hi - lo
    return shares


CASES = {
    "manual full batch float64": ["train.engine=manual", "model.dtype=float64"],
    "manual full batch float64 on the data": ["train.engine=manual", "model.dtype=float64", "train.statistics=never"],
    "manual minibatch momentum float32": ["train.engine=manual", "train.batch_size=100", "train.momentum=0.9"],
    "torch minibatch float64": ["train.engine=torch", "model.dtype=float64", "train.batch_size=64"],
}


@pytest.mark.slow
@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_two_ranks_reach_the_single_process_weights(tmp_path: Path, overrides: list[str]) -> None:
    single = fit(load_config(None, [*BASE, *overrides, "output.save=false"]))
    ranks = trained_in_ranks(tmp_path, [*BASE, *overrides])
    assert_same_as_one_process(ranks, single, rtol=1e-12 if "float64" in " ".join(overrides) else 1e-5)
    assert_each_rank_holds_its_half(ranks)
    assert all(rank["held"]["raw_mapped"] for rank in ranks)  # the synthetic rows of each rank: a mapped file


@pytest.mark.slow
def test_each_rank_parses_its_byte_range_of_a_csv_into_a_mapped_table_with_the_one_process_result(
    tmp_path: Path,
) -> None:
    spec = load_config(None, SYNTHETIC).data
    path = tmp_path / "data.csv"
    write(path, synthetic.chunks(spec, seed=0), 1001, 4, ["x0", "x1", "x2", "x3"])  # type: ignore[arg-type]
    settings = ["data.source=csv", f"data.path={path}", "train.epochs=40", "model.dtype=float64", *PREPARED]
    single = fit(load_config(None, [*settings, "output.save=false"]))
    ranks = trained_in_ranks(tmp_path, settings)
    assert_same_as_one_process(ranks, single, rtol=1e-12)
    assert_each_rank_holds_what_it_read(ranks, 1001)
    assert all(rank["held"]["raw_mapped"] for rank in ranks)  # not each rank's anonymous memory


PREPARED = ["data.standardize=true", "data.validation=0.2", "train.lr=auto"]
NPY_CASES = {
    "manual minibatch float64": ["train.engine=manual", "model.dtype=float64", "train.batch_size=100"],
    "manual full batch float64 on statistics": ["train.engine=manual", "model.dtype=float64"],
    "torch minibatch momentum float32": ["train.engine=torch", "train.batch_size=64", "train.momentum=0.9"],
}


@pytest.mark.slow
@pytest.mark.parametrize("overrides", NPY_CASES.values(), ids=NPY_CASES.keys())
def test_standardized_validated_auto_lr_from_a_mapped_file_equals_one_process(
    tmp_path: Path, overrides: list[str]
) -> None:
    settings = [*npy_source(tmp_path), "train.epochs=40", *PREPARED, *overrides]
    single = fit(load_config(None, [*settings, "output.save=false"]))
    ranks = trained_in_ranks(tmp_path, settings)
    assert_same_as_one_process(ranks, single, rtol=1e-12 if "float64" in " ".join(overrides) else 1e-5)
    assert_each_rank_holds_its_half(ranks)
    assert ranks[0]["held"]["rows"] == 801  # 1001 rows less round(0.2 · 1001) for validation
    assert ranks[0]["held"]["val_rows"] == 200


@pytest.mark.slow
@pytest.mark.parametrize("source", ["synthetic", "csv"], ids=["made by every rank", "a csv read a share a rank"])
def test_divergence_advice_is_the_single_process_one_on_every_rank(tmp_path: Path, source: str) -> None:
    data = SYNTHETIC
    if source == "csv":  # the largest value is looked for in each rank's own share
        spec = load_config(None, SYNTHETIC).data
        write(tmp_path / "d.csv", synthetic.chunks(spec, seed=0), 1001, 4, ["x0", "x1", "x2", "x3"])  # type: ignore[arg-type]
        data = [f"data.path={tmp_path / 'd.csv'}"]
    settings = [*data, "train.epochs=40", "train.lr=5"]
    with pytest.raises(TrainingFailed) as failed:
        fit(load_config(None, [*settings, "output.save=false"]))
    ranks = in_ranks(tmp_path, settings)
    assert [r["error"] for r in ranks] == [f"TrainingFailed: {failed.value}"] * 2


@pytest.mark.slow
def test_an_ill_conditioned_optimum_is_the_least_squares_one_across_ranks(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    t = np.sort(rng.uniform(1, 2, 2000))
    x = np.column_stack([t**k for k in range(1, 9)])  # cond(AᵀA) ~ 1e19: the QR path, TSQR across ranks
    y = x @ rng.normal(size=8) + 0.5 + 0.1 * rng.normal(size=2000)  # noisy: half the rows would give another fit
    np.save(tmp_path / "poly.npy", np.column_stack([x, y]))
    settings = ["data.source=npy", f"data.path={tmp_path / 'poly.npy'}", "model.dtype=float64", "train.lr=auto"]
    single = fit(load_config(None, [*settings, "train.epochs=3", "output.save=false"]), with_summary=True)
    ranks = trained_in_ranks(tmp_path, [*settings, "train.epochs=3"])
    for rank in ranks:  # the weights of so ill-posed a problem carry cond(A)·ε; its least-squares loss does not
        assert rank["optimum"][-1] == pytest.approx(single.optimum_loss, rel=1e-11)
        fitted = x @ np.array(rank["optimum"][:-2]) + rank["optimum"][-2]
        np.testing.assert_allclose(fitted, x @ single.optimum_weights + single.optimum_bias, rtol=1e-9)
    assert ranks[0]["optimum"] == ranks[1]["optimum"]
    # the summary takes the design's R from the rows (TSQR across the ranks): the same rank and covariance, which
    # the moments (cond(AᵀA) ~ 1e19) would have called singular
    assert isinstance(single.summary, Summary)
    assert single.summary.df_model == 8
    assert not any("singular" in w for w in single.summary.warnings)
    covariance = np.array(single.summary.unscaled_covariance)
    for rank in ranks:
        assert rank["summary"]["df_model"] == 8
        np.testing.assert_allclose(rank["summary"]["unscaled_covariance"], covariance, rtol=1e-6)


@pytest.mark.slow
def test_a_process_that_dies_mid_run_is_said_in_words_by_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRTRAIN_DIST_TIMEOUT", "20")  # a dead peer is found at once or at this timeout
    context = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    store = tmp_path / "store"
    settings = [*BASE, "train.epochs=100000", "train.batch_size=10"]  # long enough to be mid-run
    ranks = [
        context.Process(target=run_rank, args=(r, 2, str(store), settings, str(outs[r]), None, None, 30 if r else None))
        for r in range(2)
    ]
    run_to_the_end(ranks)
    assert ranks[1].exitcode == 9
    survivor = json.loads(outs[0].read_text())
    assert survivor["error"].startswith("TrainingFailed: process 0 lost the other processes of this torchrun job")
    assert "LRTRAIN_DIST_TIMEOUT" in survivor["error"]


TORCHRUN = Path(sys.executable).parent / "torchrun"
needs_torchrun = pytest.mark.skipif(not TORCHRUN.is_file(), reason="no torchrun")


def torchrun_fit(settings: list[str], *options: str) -> tuple[list[str], dict[str, str]]:
    """`torchrun … -m lrtrain fit` on two processes, and its environment."""
    code = str(Path(lrtrain.__file__).resolve().parents[1])  # the processes run the code under test
    command = [str(TORCHRUN), "--standalone", "--nproc-per-node=2", "--local-addr=127.0.0.1", "-m", "lrtrain", "fit"]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "PYTHONPATH": code}
    return [*command, *options, *(f"--set={o}" for o in settings)], env


@pytest.mark.slow
@needs_torchrun
def test_torchrun_two_processes_write_one_run_equal_to_one_process(tmp_path: Path) -> None:
    settings = [*BASE, "model.dtype=float64", "train.statistics=never", "data.validation=0.2", "data.standardize=true"]
    command, env = torchrun_fit(settings, "--json")
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, env=env, check=False
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


@pytest.mark.slow
@needs_torchrun
def test_torchrun_ranks_reading_their_byte_ranges_of_a_csv_write_the_one_process_model(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    write_quoted_csv(path, quoted_columns(4000, missing=0.03))
    settings = [f"data.path={path}", *QUOTED, "data.validation=0.2", "model.dtype=float64", "train.lr=auto"]
    command, env = torchrun_fit(settings, "--json")
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("note: dropped") == 1  # rank 0 alone, with every rank's count
    (run,) = (tmp_path / "runs").iterdir()
    model = json.loads((run / "model.json").read_text())
    alone = fit(load_config(None, [*settings, f"output.dir={tmp_path / 'alone'}"]))
    assert alone.run_dir is not None
    single = json.loads((alone.run_dir / "model.json").read_text())
    np.testing.assert_allclose(model["weights"], single["weights"], rtol=1e-12)
    assert model["metrics"]["val_loss"] == pytest.approx(single["metrics"]["val_loss"], rel=1e-12)
    assert (model["features"], model["categorical"], model["data"]) == (
        single["features"],
        single["categorical"],
        single["data"],  # the rows, the fingerprint and the rows dropped, per column
    )


@pytest.mark.slow
@needs_torchrun
@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (["data.path=b.csv"], "line 4, column 'y': 'oops' is not a number"),  # a bad cell, agreed by the shares
        (["data.path=b.csv", "bogus=1"], "unknown key 'bogus'"),  # the config, read alike by every process
    ],
    ids=["data", "config"],
)
def test_an_error_every_process_meets_is_said_once_and_one_json_record_is_written(
    tmp_path: Path, settings: list[str], said: str
) -> None:
    (tmp_path / "b.csv").write_text("x,y\n1,2\n2,4\n3,oops\n4,8\n5,10\n6,12\n")
    command, env = torchrun_fit(settings, "--json")
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, env=env, check=False
    )
    assert done.returncode != 0
    (record,) = [json.loads(line) for line in done.stdout.splitlines()]  # stdout is process 0's alone
    assert record["event"] == "error"
    assert said in record["message"]
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [f"error: {record['message']}"]


@pytest.mark.parametrize(
    ("rank", "local", "speaking"),
    [("0", "0", {"job", "node", None}), ("2", "0", {"node", None}), ("3", "1", {None})],
)
def test_under_torchrun_an_error_is_said_by_the_process_that_speaks_for_those_that_meet_it(
    monkeypatch: pytest.MonkeyPatch, rank: str, local: str, speaking: set[str | None]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("LOCAL_RANK", local)
    assert {alike for alike in ("job", "node", None) if parallel.speaks(alike)} == speaking
    result = cli("fit", "--json", "--set", "bogus=1")  # a config error: before the processes join
    assert result.exit_code == 2
    assert ("unknown key 'bogus'" in result.stderr) == (local == "0")
    assert (result.stdout != "") == (rank == "0")


@pytest.mark.parametrize("setting", ["abc", "-5", "0"])
def test_a_malformed_dist_timeout_is_refused_in_one_process_too(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv("LRTRAIN_DIST_TIMEOUT", setting)
    result = cli("fit", "--set", "output.save=false")
    assert result.exit_code == 2
    assert f"the environment variable LRTRAIN_DIST_TIMEOUT is '{setting}'" in result.stderr
    assert result.stdout == ""


def test_a_stray_rank_variable_names_the_others_to_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "x")
    result = cli("fit", "--set", "output.save=false")
    assert result.exit_code == 2
    assert "unset RANK (and WORLD_SIZE, LOCAL_RANK)" in result.stderr


def test_gloo_s_message_is_said_without_its_source_file_or_its_joke() -> None:
    gloo = RuntimeError(
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:538] Connection closed by peer "
        "[127.0.0.1]:4242. GLHF! \U0001f3d6\ufe0f\nmore"
    )
    assert parallel._first_line(gloo) == "Connection closed by peer [127.0.0.1]:4242"


STOPPED = [
    "train.epochs=40",
    "train.lr=0.05",
    "train.engine=manual",
    "model.dtype=float64",
    "train.batch_size=100",
    "train.momentum=0.9",
    "data.validation=0.2",
    "output.save=true",
]


@pytest.mark.slow
def test_a_stop_asked_on_one_rank_stops_both_after_the_same_epoch_and_one_process_resumes_it(tmp_path: Path) -> None:
    settings = [*SYNTHETIC, *STOPPED, f"output.dir={tmp_path / 'runs'}"]
    ranks = in_ranks(tmp_path, settings, stop_after=(None, 7))  # only rank 1 is asked
    assert ranks[0]["epoch"] == ranks[1]["epoch"]
    assert 7 <= ranks[0]["epoch"] < 40
    (run,) = (tmp_path / "runs").iterdir()
    assert f"lrtrain fit --resume {run}" in ranks[0]["interrupted"]  # rank 0 wrote the checkpoint
    assert json.loads((run / "checkpoint.json").read_text())["epoch"] == ranks[0]["epoch"]
    resumed = fit(load_config(run / "config.yaml"), resume=run)
    single = fit(load_config(None, [*settings, "output.save=false"]))
    np.testing.assert_allclose(resumed.weights, single.weights, rtol=1e-12)
    np.testing.assert_allclose(resumed.val_loss, single.val_loss, rtol=1e-12)  # type: ignore[arg-type]
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 40
    assert (run / "model.json").is_file()
    assert not (run / "checkpoint.json").exists()


@pytest.mark.slow
def test_two_ranks_resume_a_one_process_checkpoint_to_the_one_process_result(tmp_path: Path) -> None:
    settings = [*SYNTHETIC, *STOPPED, f"output.dir={tmp_path / 'runs'}"]
    with pytest.raises(Interrupted):
        fit(load_config(None, settings), should_stop=lambda: True)  # after epoch 1
    (run,) = (tmp_path / "runs").iterdir()
    ranks = trained_in_ranks(tmp_path, ["output.save=true"], resume=run)
    single = fit(load_config(None, [*settings, "output.save=false"]))
    for rank in ranks:
        assert rank["epochs"] == 40
        np.testing.assert_allclose(rank["weights"], single.weights, rtol=1e-12)
        np.testing.assert_allclose(rank["losses"], [log.loss for log in single.history[1:]], rtol=1e-11)
        np.testing.assert_allclose([rank["loss"], rank["val_loss"]], [single.loss, single.val_loss], rtol=1e-12)
    assert json.loads((run / "model.json").read_text())["weights"] == ranks[0]["weights"]


@pytest.mark.slow
def test_data_changed_since_the_checkpoint_stops_every_rank_with_the_same_error(tmp_path: Path) -> None:
    settings = [*npy_source(tmp_path), *STOPPED, f"output.dir={tmp_path / 'runs'}"]
    with pytest.raises(Interrupted):
        fit(load_config(None, settings), should_stop=lambda: True)
    (run,) = (tmp_path / "runs").iterdir()
    table = np.load(tmp_path / "data.npy")
    table[500, 0] += 1.0  # rank 1's half of the rows: only rank 0 hashes the data, and tells rank 1
    np.save(tmp_path / "data.npy", table)
    ranks = in_ranks(tmp_path, [], resume=run)
    assert ranks[0]["error"] == ranks[1]["error"]
    assert "the training data changed since the checkpoint" in ranks[0]["error"]


class TwoRanks:
    """A shard of two ranks whose other rank never asks to stop; counts the votes (all_reduces)."""

    rank, world = 0, 2

    def __init__(self) -> None:
        self.votes: list[int] = []

    def gather(self, values: np.ndarray) -> np.ndarray:
        self.votes.append(len(self.votes))
        return np.vstack([values, [0.0, 123.0]])  # the other rank's time must not matter


@pytest.mark.parametrize(("seconds_per_epoch", "votes"), [(0.001, range(50, 60)), (1.0, range(1000, 1001))])
def test_the_ranks_vote_on_stopping_about_every_fifth_of_a_second(seconds_per_epoch: float, votes: range) -> None:
    now = {"t": 0.0}
    shard = TwoRanks()
    vote = parallel.StopVote(shard, asked=lambda: False, clock=lambda: now["t"])  # type: ignore[arg-type]
    for _ in range(1000 if seconds_per_epoch == 1.0 else 10_000):
        now["t"] += seconds_per_epoch
        assert not vote()
    assert len(shard.votes) in votes  # fast epochs: intervals 1, 2, 4 … 128, then 200 epochs (0.2 s)


def test_a_stop_asked_between_votes_is_kept_for_the_next_one() -> None:
    now = {"t": 0.0}
    asked = {"epoch": 0}
    shard = TwoRanks()
    vote = parallel.StopVote(shard, asked=lambda: asked["epoch"] == 700, clock=lambda: now["t"])  # type: ignore[arg-type]
    for epoch in range(1, 2000):
        now["t"] += 0.001
        asked["epoch"] = epoch  # asked during epoch 700 only, as a signal handler's flag would be read once
        if vote():
            break
    assert 700 <= epoch <= 900  # the next vote, at most 0.2 s of epochs later


@pytest.mark.slow
@needs_torchrun
def test_ctrl_c_on_torchrun_saves_a_checkpoint_that_one_process_resumes(tmp_path: Path) -> None:
    settings = [
        *BASE,
        "model.dtype=float64",
        "train.statistics=never",
        "train.epochs=1000000",
        "log.every=1",
        "train.target_gap=0",
    ]
    command, env = torchrun_fit(settings)
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        job = subprocess.Popen(command, cwd=tmp_path, stdout=stdout, stderr=stderr, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + SUBPROCESS_TIMEOUT
            while out.read_text().count("Epoch") < 20 and job.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            job.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal does: torchrun passes it on
            job.wait(timeout=SUBPROCESS_TIMEOUT)
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait(timeout=10)
    said = err.read_text()
    assert said.count("stopping at the end of an epoch, all processes together") == 1, said  # rank 0 alone
    assert said.count("interrupted after epoch") == 1, said
    (run,) = (tmp_path / "runs").iterdir()
    epoch = json.loads((run / "checkpoint.json").read_text())["epoch"]
    assert epoch >= 20
    assert f"--resume {run.relative_to(tmp_path)}" in said
    more = f"train.epochs={epoch + 5}"
    resumed = fit(load_config(run / "config.yaml", [more]), resume=run)
    single = fit(load_config(None, [*settings, more, "output.save=false"]))
    np.testing.assert_allclose(resumed.weights, single.weights, rtol=1e-12)
    assert resumed.epochs == single.epochs == epoch + 5


@pytest.mark.slow
def test_each_rank_checks_its_own_rows_and_all_report_the_first_bad_value(tmp_path: Path) -> None:
    settings = npy_source(tmp_path)
    table = np.load(tmp_path / "data.npy")
    table[900, 2] = np.nan  # x, in rank 1's half of the rows
    table[10, -1] = np.inf  # y, in rank 0's: x is reported first, as one process does
    np.save(tmp_path / "data.npy", table)
    with pytest.raises(LrtrainError) as single:
        fit(load_config(None, [*settings, "output.save=false"]))
    assert "row 900, column 'x2': the value is nan" in str(single.value)
    ranks = in_ranks(tmp_path, settings)
    assert [r["error"] for r in ranks] == [f"DataError: {single.value}"] * 2


def test_under_torchrun_a_repeated_signal_changes_nothing() -> None:
    import os

    from lrtrain.interrupts import Signals

    said: list[str] = []
    with Signals(distributed=True) as stop:
        stop.say = said.append
        for _ in range(3):  # one Ctrl-C delivered twice, or pressed again: torchrun kills what is slow to stop
            os.kill(os.getpid(), signal.SIGINT)
            stop.check()  # the next safe point
        assert stop.requested()
    assert said == ["stopping at the end of an epoch, all processes together"]
    with Signals() as alone:
        alone.say = said.append
        os.kill(os.getpid(), signal.SIGINT)
        alone.check()
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):  # in one process a second Ctrl-C stops at the next safe point
            alone.check()


@pytest.mark.parametrize("command", [["compare", "manual", "torch"], ["summary"], ["data", "make", "d.csv"]])
def test_commands_other_than_fit_refuse_to_run_under_torchrun(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")  # each process would run the command whole, alone
    result = cli(*command)
    assert result.exit_code == 2
    assert f"`lrtrain {command[0]}` runs in one process, but WORLD_SIZE is 2" in result.stderr
    assert "only `lrtrain fit` trains across processes" in result.stderr
    assert list(workdir.iterdir()) == []


@pytest.mark.slow
def test_the_fast_predict_path_refuses_under_torchrun_too(workdir: Path) -> None:
    assert cli("fit").exit_code == 0
    alone = run_installed("predict", "5", cwd=workdir)
    assert alone.returncode == 0, alone.stderr
    ranked = run_installed("predict", "5", cwd=workdir, env={"WORLD_SIZE": "2"})
    assert ranked.returncode == 2
    assert "`lrtrain predict` runs in one process, but WORLD_SIZE is 2" in ranked.stderr
    assert ranked.stdout == ""


# --------------------------------------------------------------------------- each rank reads its share of a table


def in_threads(world: int, work: Callable[[Shard], Any]) -> list[Any]:
    """What `work(group)` returns, or the error it raises, on each of `world` ranks run as threads (their
    all_reduces through shared memory: conftest.ThreadShard; a rank left waiting gives up after 30 s)."""
    shared: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(world)
    found: dict[int, Any] = {}

    def rank(r: int) -> None:
        try:
            found[r] = work(ThreadShard(r, world, 0, 0, shared, barrier))
        except Exception as exc:  # handed to the test
            found[r] = exc

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SUBPROCESS_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    return [found[r] for r in range(world)]


@pytest.mark.parametrize("world", [2, 3])
def test_shares_of_the_rows_give_the_one_process_fingerprint_split_and_first_bad_value(
    monkeypatch: pytest.MonkeyPatch, world: int
) -> None:
    monkeypatch.setattr(base, "HASH_ROWS", 100)  # 11 blocks of the fingerprint, some spanning two shares
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(1001, 3)), rng.normal(size=1001)
    x[::7, 1] = -0.0  # the sign of a zero is data too
    whole = Table(x, y, ["a", "b", "c"], "y", "test")
    bounds = [0, *sorted(rng.choice(np.arange(1, 1001), world - 1, replace=False)), 1001]  # uneven shares
    shares = [Table(x[lo:hi], y[lo:hi], ["a", "b", "c"], "y", "test", offset=lo, total=1001)
              for lo, hi in itertools.pairwise(bounds)]  # fmt: skip
    digests = in_threads(world, lambda group: fingerprint(shares[group.rank], group))
    assert digests == [fingerprint(whole)] * world
    config = load_config(None, ["data.validation=0.3", "data.standardize=true", "model.dtype=float64"])
    single = prepare(whole, config)
    ranks = in_threads(world, lambda group: prepare(shares[group.rank], config, group))
    for mine, theirs in (("x", "x"), ("y", "y"), ("x_val", "x_val"), ("y_val", "y_val")):  # in order, scaled alike
        np.testing.assert_allclose(
            np.concatenate([getattr(r, mine) for r in ranks]), getattr(single, theirs), atol=1e-14
        )
    assert [(r.rows, r.val_rows) for r in ranks] == [(single.rows, single.val_rows)] * world
    x[bounds[-2] + 5, 2] = np.inf  # in the last share
    with pytest.raises(DataError) as one:
        checked(whole)
    assert f"row {bounds[-2] + 5}, column 'c'" in str(one.value)
    assert [str(error) for error in in_threads(world, lambda group: checked(shares[group.rank], group))] == [
        str(one.value)
    ] * world


def thread_read_bytes() -> int:
    """The bytes this thread has read through read() calls (Linux's /proc/thread-self/io rchar)."""
    fields = dict(line.split(": ") for line in Path("/proc/thread-self/io").read_text().splitlines())
    return int(fields["rchar"])


def assert_shares_make_the_table(tables: list[Any], single: Table, spread: float = 0.15) -> None:
    """The ranks' tables hold consecutive shares of the rows, 1/world each give or take `spread` of that, that
    together are the rows one process reads, with its features, levels, dropped rows and row count."""
    world = len(tables)
    shares = [table.held for table in tables]
    assert [lo for lo, _ in shares] == [0, *(hi for _, hi in shares[:-1])]
    assert shares[-1][1] == single.rows
    assert all(abs(hi - lo - single.rows / world) < spread * single.rows / world for lo, hi in shares), shares
    np.testing.assert_array_equal(np.concatenate([table.x for table in tables]), single.x)
    np.testing.assert_array_equal(np.concatenate([table.y for table in tables]), single.y)
    for table in tables:
        assert (table.features, table.levels, table.dropped, table.rows) == (
            single.features,
            single.levels,
            single.dropped,
            single.rows,
        )


QUOTED = ["data.features=[x0, x1, kind]", "data.categorical=[kind]", "data.missing=drop"]


@pytest.mark.parametrize("world", [2, 3])
def test_each_rank_reads_only_its_byte_range_of_a_csv(tmp_path: Path, world: int) -> None:
    spec = load_config(None, ["data.source=synthetic", "data.rows=40000", "data.features=4"]).data
    path = tmp_path / "d.csv"
    write(path, synthetic.chunks(spec, seed=0), 40000, 4, ["x0", "x1", "x2", "x3"])  # type: ignore[arg-type]
    config = load_config(None, ["data.source=csv", f"data.path={path}"])
    single = sources.load(config)
    assert isinstance(single, Table)

    def read(group: Shard) -> tuple[Any, int, str]:
        before = thread_read_bytes()
        table = sources.load(config, group)
        return table, thread_read_bytes() - before, fingerprint(table, group)

    ranks = in_threads(world, read)
    assert_shares_make_the_table([table for table, _, _ in ranks], single)
    size = path.stat().st_size
    for _, read_bytes, _ in ranks:  # its range, the header line and the pieces where its range is cut
        assert 0.9 * size / world < read_bytes < size / world + 300_000, (read_bytes, size)
    assert [digest for _, _, digest in ranks] == [fingerprint(single)] * world


@pytest.mark.parametrize("world", [2, 3])
def test_csv_shares_cut_at_row_ends_even_inside_quoted_cells_make_the_one_process_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world: int
) -> None:
    columns = quoted_columns(3000, missing=0.03)  # the level 'late' only in the last third; missing cells dropped
    path = tmp_path / "d.csv"
    write_quoted_csv(path, columns)
    data = path.read_bytes()
    header = data.index(b"\n") + 1
    spans = [header + (len(data) - header) * r // world for r in range(1, world)]
    inside = [data.count(b'"', 0, data.index(b"\n", at - 1)) % 2 == 1 for at in spans]
    assert any(inside)  # the first line end of some rank's equal span of bytes lies inside a quoted cell
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 20_000)  # a share is parsed in several ranges
    config = load_config(None, ["data.source=csv", f"data.path={path}", *QUOTED])
    single = sources.load(config)
    assert isinstance(single, Table)
    assert single.dropped is not None
    assert single.dropped.rows > 100
    tables = in_threads(world, lambda group: sources.load(config, group))
    assert_shares_make_the_table(tables, single)
    assert "kind[late]" in tables[0].features  # a level rank 0 never read
    digests = in_threads(world, lambda group: fingerprint(tables[group.rank], group))
    assert digests == [fingerprint(single)] * world


def test_csv_shares_stay_even_when_a_quote_inside_an_unquoted_cell_leaves_the_quotes_unpaired(tmp_path: Path) -> None:
    inch = 'pipe 12" long'  # pyarrow reads the quote as text
    rows = ["a,note,y"] + [f"{i},{inch if i == 10 else 'word'},{i % 7}" for i in range(30_000)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")  # every cut after an odd number of quotes
    config = load_config(None, ["data.source=csv", f"data.path={tmp_path / 'd.csv'}", "data.features=[a]"])
    single = sources.load(config)
    assert isinstance(single, Table)
    for world in (2, 3):
        assert_shares_make_the_table(in_threads(world, lambda group: sources.load(config, group)), single)


@pytest.mark.parametrize("world", [2, 3])
def test_csv_shares_with_inch_marks_and_quoted_line_ends_are_read_as_one_process_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world: int
) -> None:
    """An inch mark (12", text to pyarrow) turns the quote count over, and with line ends inside quoted cells the
    count can no longer tell where a share's rows start: every rank then reads the whole file (as a compressed
    one) and takes its block, and the rows are still those of one process."""
    notes, inch = ['"two\nlines"', "word", '"a, b"', "word"], 'pipe 12" long'
    rows = ["a,note,y"] + [f"{i},{inch if i in (7, 2500) else notes[i % 4]},{(3 * i) % 11}" for i in range(6000)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 5_000)
    config = load_config(None, ["data.source=csv", f"data.path={tmp_path / 'd.csv'}", "data.features=[a]"])
    single = sources.load(config)
    assert isinstance(single, Table)
    assert len(single.y) == 6000
    fitted = load_config(None, ["data.source=csv", f"data.path={tmp_path / 'd.csv'}", "data.features=[a]"])
    one = prepare(single, fitted)
    ranks = in_threads(world, lambda group: prepare(sources.load(config, group), fitted, group))
    np.testing.assert_array_equal(np.concatenate([r.x for r in ranks]), one.x)
    np.testing.assert_array_equal(np.concatenate([r.y for r in ranks]), one.y)


@pytest.mark.parametrize("world", [3, 4])
def test_a_share_whose_first_reading_stops_short_still_counts_every_quote_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world: int
) -> None:
    """Rank 1's span begins inside a long quoted cell whose closing quote begins a line, and no quote follows: read
    first from there, the count finds no row end in a parser's block and the reading stops. The quotes after that
    point must still be counted, or rank 2 judges its start from a short count."""
    rows = ["a,note,y"] + [f"{i},plain,{i % 13}" for i in range(3000)]
    middle = len(rows) // world
    rows[middle] = f'{middle - 1},"{"a line of the note" + chr(10)}' * 1 + "a line\n" * 400 + f'",{middle % 13}'
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 3000)
    monkeypatch.setattr(delimited, "LINE_BYTES", 2000)
    config = load_config(None, ["data.source=csv", f"data.path={tmp_path / 'd.csv'}", "data.features=[a]"])
    single = sources.load(config)
    assert isinstance(single, Table)
    ranks = in_threads(world, lambda group: prepare(sources.load(config, group), config, group))
    one = prepare(single, config)
    np.testing.assert_array_equal(np.concatenate([r.x for r in ranks]), one.x)
    np.testing.assert_array_equal(np.concatenate([r.y for r in ranks]), one.y)


def compressed_csv(path: Path, columns: dict[str, list[Any]], compression: str) -> Path:
    """The columns as CSV (write_quoted_csv), compressed as `compression` says; the compressed file."""
    import pyarrow as pa

    write_quoted_csv(path, columns)
    packed = path.with_name(f"{path.name}.{ {'gzip': 'gz', 'bz2': 'bz2', 'zstd': 'zst'}[compression] }")
    with pa.CompressedOutputStream(str(packed), compression) as out:
        out.write(path.read_bytes())
    path.unlink()
    return packed


def spy_on_parsed_rows(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """The CSV rows each thread has pyarrow parse, from here on."""
    parsed: dict[int, int] = {}
    take = delimited._Reader._take

    def counted(self: Any, table: Any, *args: Any) -> int:
        ident = threading.get_ident()
        parsed[ident] = parsed.get(ident, 0) + table.num_rows
        return take(self, table, *args)

    monkeypatch.setattr(delimited._Reader, "_take", counted)
    return parsed


@pytest.mark.parametrize(("compression", "world"), [("gzip", 2), ("bz2", 3), ("zstd", 3)])
def test_each_rank_parses_only_its_share_of_a_compressed_csv_and_stops_reading_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: str, world: int
) -> None:
    """A compressed file cannot be entered midway: each rank decompresses it from the start and cuts it where one
    process does (quoted line ends and all), but parses only the rows read while the decompressor is in its
    span of the compressed bytes, and reads no further."""
    path = compressed_csv(tmp_path / "d.csv", quoted_columns(40_000, missing=0.03), compression)
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 50_000)  # ranges far shorter than a share
    config = load_config(None, ["data.source=csv", f"data.path={path}", *QUOTED])
    single = sources.load(config)
    assert isinstance(single, Table)
    assert single.dropped is not None
    parsed = spy_on_parsed_rows(monkeypatch)

    def read(group: Shard) -> tuple[Any, int, int, str]:
        before = thread_read_bytes()
        table = sources.load(config, group)
        return table, thread_read_bytes() - before, parsed[threading.get_ident()], fingerprint(table, group)

    ranks = in_threads(world, read)
    tables = [table for table, _, _, _ in ranks]
    assert_shares_make_the_table(tables, single, spread=0.3)  # even up to the decompressor's blocks of the file
    assert "kind[late]" in tables[0].features  # a level rank 0 never read
    read_rows = single.rows + single.dropped.rows
    parsed_rows = [rows for _, _, rows, _ in ranks]  # the rows of its share (kept or dropped), not the file's
    assert all(rows < 1.4 * read_rows / world for rows in parsed_rows), (parsed_rows, read_rows)
    size = path.stat().st_size
    reads = [bytes_read for _, bytes_read, _, _ in ranks]  # up to its span's end, and the blocks read ahead
    assert all(reads[rank] < size * (rank + 1) / world + 300_000 for rank in range(world - 1)), (reads, size)
    assert [digest for _, _, _, digest in ranks] == [fingerprint(single)] * world


def test_a_bad_cell_in_a_share_of_a_compressed_csv_stops_every_rank_with_the_one_process_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    columns = quoted_columns(40_000)
    columns["x1"][25_000], columns["x0"][39_000] = "oops", "bad"  # in the second and third shares
    path = compressed_csv(tmp_path / "d.csv", columns, "gzip")
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 50_000)
    config = load_config(None, ["data.source=csv", f"data.path={path}", *QUOTED[:2]])
    with pytest.raises(DataError) as single:
        sources.load(config)
    assert "line " in str(single.value)
    assert "'oops'" in str(single.value)
    ranks = in_threads(3, lambda group: sources.load(config, group))
    assert [str(error) for error in ranks] == [str(single.value)] * 3


@pytest.mark.parametrize("world", [2, 3])
def test_a_compressed_csv_too_small_to_share_is_read_whole_by_every_rank_with_the_one_process_rows(
    tmp_path: Path, world: int
) -> None:
    """The decompressor reads a small file in one or two blocks: some rank's span then holds no rows, and every
    rank reads the whole file and keeps its block of the rows."""
    path = compressed_csv(tmp_path / "d.csv", quoted_columns(300, missing=0.03), "gzip")
    config = load_config(None, ["data.source=csv", f"data.path={path}", *QUOTED, "data.validation=0.2"])
    one = prepare(sources.load(config), config)
    ranks = in_threads(world, lambda group: prepare(sources.load(config, group), config, group))
    for mine in ("x", "y", "x_val", "y_val"):
        np.testing.assert_array_equal(np.concatenate([getattr(r, mine) for r in ranks]), getattr(one, mine))


def spy_on_row_groups(monkeypatch: pytest.MonkeyPatch) -> dict[int, set[tuple[str, int]]]:
    """The (file name, row group) pairs each thread has pyarrow decode, from here on."""
    decoded: dict[int, set[tuple[str, int]]] = {}
    opened = parquet.open_part

    def spied(file: Path) -> Any:
        handle = opened(file)
        iter_batches = handle.iter_batches

        def counted(*args: Any, row_groups: list[int] | None = None, **kwargs: Any) -> Any:
            groups = range(handle.metadata.num_row_groups) if row_groups is None else row_groups
            decoded.setdefault(threading.get_ident(), set()).update((file.name, g) for g in groups)
            return iter_batches(*args, row_groups=row_groups, **kwargs)

        handle.iter_batches = counted
        return handle

    monkeypatch.setattr(parquet, "open_part", spied)
    return decoded


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("folder", [False, True], ids=["file", "folder"])
def test_each_rank_decodes_only_the_row_groups_of_its_rows_of_a_parquet_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world: int, folder: bool
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(quoted_columns(1200, missing=0.03))
    path = tmp_path / ("parts" if folder else "d.parquet")
    if folder:  # three files of uneven sizes, read as one table in name order
        path.mkdir()
        for name, (lo, hi) in zip("abc", [(0, 430), (430, 450), (450, 1200)], strict=True):
            pq.write_table(table.slice(lo, hi - lo), path / f"{name}.parquet", row_group_size=50)
    else:
        pq.write_table(table, path, row_group_size=50)
    config = load_config(None, ["data.source=parquet", f"data.path={path}", *QUOTED])
    single = sources.load(config)
    assert isinstance(single, Table)
    decoded = spy_on_row_groups(monkeypatch)
    tables = in_threads(world, lambda group: sources.load(config, group))
    assert_shares_make_the_table(tables, single)
    assert "kind[late]" in tables[0].features  # a level rank 0 never read
    assert len(decoded) == world
    for groups in decoded.values():  # its rows' groups of 50 rows, and the parts of two more at its ends
        assert len(groups) <= 1200 / world / 50 + 2, sorted(groups)
    digests = in_threads(world, lambda group: fingerprint(tables[group.rank], group))
    assert digests == [fingerprint(single)] * world


BAD_CELLS = {  # (source, [(column, row, cell)], missing) -> every rank says what one process says
    "csv: a cell pyarrow refuses, in the last share": ("csv", [("x1", 2500, "oops")], "error"),
    "csv: a nan the finite check finds, in the last share": ("csv", [("x0", 2600, "nan")], "error"),
    "csv: an empty level, in the middle share": ("csv", [("kind", 1500, None)], "error"),
    "csv: an infinity with missing cells dropped": ("csv", [("x0", 2900, "inf")], "drop"),
    "csv: bad cells in the first and last shares": ("csv", [("x1", 200, "oops"), ("x0", 2600, "bad")], "error"),
    "parquet: a null, in the last share": ("parquet", [("x1", 2500, None)], "error"),
    "parquet: an empty level, in the middle share": ("parquet", [("kind", 1500, None)], "error"),
}


@pytest.mark.parametrize(("source", "cells", "missing"), BAD_CELLS.values(), ids=BAD_CELLS.keys())
def test_a_bad_cell_in_one_share_stops_every_rank_with_the_one_process_message(
    tmp_path: Path, source: str, cells: list[tuple[str, int, Any]], missing: str
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = quoted_columns(3000)
    for column, row, cell in cells:
        columns[column][row] = cell
    path = tmp_path / f"d.{source}"
    if source == "csv":
        write_quoted_csv(path, columns)
    else:
        pq.write_table(pa.table(columns), path, row_group_size=100)
    settings = [f"data.source={source}", f"data.path={path}", *QUOTED[:2], f"data.missing={missing}"]
    config = load_config(None, settings)
    with pytest.raises(DataError) as single:
        sources.load(config)
    _, row, _ = cells[0]
    place = f"line {file_lines(path)[row]}" if source == "csv" else f"row {row}"
    assert f"{path}, {place}, column " in str(single.value)  # the first bad cell, by its file line
    ranks = in_threads(3, lambda group: sources.load(config, group))
    assert [type(error) for error in ranks] == [DataError] * 3
    assert [str(error) for error in ranks] == [str(single.value)] * 3
    assert [error.alike for error in ranks] == ["job"] * 3  # under torchrun, process 0 alone says it


@pytest.mark.parametrize("source", ["csv", "parquet"])
def test_a_temporary_table_that_fails_on_one_rank_stops_every_rank_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """Not only a bad cell: a full $TMPDIR on one rank is every rank's error (else the others wait for it)."""
    import threading

    import pyarrow as pa
    import pyarrow.parquet as pq

    from lrtrain.errors import ScratchError
    from lrtrain.sources import csv_shares, parquet

    path = tmp_path / f"d.{source}"
    if source == "csv":
        write_quoted_csv(path, quoted_columns(3000))
    else:
        pq.write_table(pa.table(quoted_columns(3000)), path, row_group_size=100)
    config = load_config(None, [f"data.source={source}", f"data.path={path}", *QUOTED[:2]])
    module = csv_shares if source == "csv" else parquet
    real, lock, calls = module.scratch_mapping, threading.Lock(), []

    def failing_on_one_rank(*args: Any, **kwargs: Any) -> Any:  # the thread that asks first: its disk is full
        with lock:
            calls.append(threading.current_thread().name)
        if threading.current_thread().name == calls[0]:
            raise ScratchError("a table this large could not grow: No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "scratch_mapping", failing_on_one_rank)
    ranks = in_threads(3, lambda group: sources.load(config, group))
    assert [type(error) for error in ranks] == [ScratchError] * 3
    assert {str(error) for error in ranks} == {"a table this large could not grow: No space left on device"}


TRAINED = [
    *QUOTED,
    "data.validation=0.2",
    "data.standardize=true",
    "train.engine=manual",
    "model.dtype=float64",
    "train.batch_size=100",
    "train.momentum=0.9",
    "train.epochs=30",
    "train.lr=auto",
]


@pytest.mark.slow
@pytest.mark.parametrize(("source", "world"), [("csv", 3), ("parquet", 2)], ids=["csv, 3 ranks", "parquet folder, 2"])
def test_ranks_that_read_only_their_shares_train_the_one_process_model(tmp_path: Path, source: str, world: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = quoted_columns(6000, missing=0.03)
    path = tmp_path / ("d.csv" if source == "csv" else "parts")
    if source == "csv":
        write_quoted_csv(path, columns)
    else:
        path.mkdir()
        for name, (lo, hi) in zip("ab", [(0, 4000), (4000, 6000)], strict=True):
            pq.write_table(pa.table(columns).slice(lo, hi - lo), path / f"{name}.parquet", row_group_size=256)
    settings = [f"data.source={source}", f"data.path={path}", *TRAINED]
    single = fit(load_config(None, [*settings, "output.save=false"]))
    one = sources.load(load_config(None, settings))
    ranks = trained_in_ranks(tmp_path, settings, world=world)
    assert_same_as_one_process(ranks, single, rtol=1e-12)
    assert_each_rank_holds_what_it_read(ranks, row_count(one))
    assert one.dropped is not None
    for rank in ranks:
        held = rank["held"]
        assert held["fingerprint"] == fingerprint(one)  # what a resume compares
        assert held["dropped"] == one.dropped.to_json()
        assert held["levels"] == [levels.to_json() for levels in one.levels]
        if source == "csv":  # its own byte range (twice where a cut fell inside a quoted cell), not the file
            assert held["read_bytes"] < 0.9 * path.stat().st_size, held["read_bytes"]


@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz"])
def test_an_unclosed_quote_deep_in_a_large_csv_is_refused_by_its_line_however_many_read_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """pyarrow's fast parse lets an unclosed quote swallow the rest of its block without failing: rows would be
    lost silently, as many as the block boundary and the process count decide. Refused instead, by its line."""
    import gzip

    lines = ["x0,x1,x2,y"] + [f"{i % 7}.25,{i % 5}.5,{i % 3}.75,{i % 11}.125" for i in range(60_000)]
    lines[15_001] = '"' + lines[15_001]  # file line 15002
    text = ("\n".join(lines) + "\n").encode()
    (tmp_path / name).write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    config = load_config(None, ["data.source=csv", f"data.path={tmp_path / name}"])
    with pytest.raises(DataError) as single:
        sources.load(config)
    said = f"{name}, line 15002: a quote at the start of a cell there opens a quoted cell that does not close"
    assert said in str(single.value)
    for world in (2, 3):
        assert {str(error) for error in in_threads(world, lambda group: sources.load(config, group))} == {
            str(single.value)
        }
    with monkeypatch.context() as patched:  # a file read in ranges (larger than the stream threshold) says it alike
        patched.setenv("LRTRAIN_CSV_STREAM_BYTES", "100000")
        patched.setattr(delimited, "LINE_BYTES", 200_000)  # the quote runs on past a parser's block
        with pytest.raises(DataError) as ranged:
            sources.load(config)
        assert str(ranged.value) == str(single.value)


@pytest.mark.parametrize("name", ["d.csv", "d.csv.gz"])
def test_an_infinity_in_an_early_range_is_named_before_a_bad_cell_in_a_later_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Read whole, the file's first bad cell (the inf) is named; read in ranges, in shares or decompressed, each
    range is checked for an infinity before the next is parsed, so the same cell is named, not the later one."""
    import gzip

    lines = ["x0,x1,y"] + [f"{i % 7}.25,{i % 5}.5,{i % 11}.125" for i in range(60_000)]
    lines[10_001], lines[50_001] = "1.5,inf,2", "1.5,oops,2"  # file lines 10002 and 50002
    text = ("\n".join(lines) + "\n").encode()
    (tmp_path / name).write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    config = load_config(None, ["data.source=csv", f"data.path={tmp_path / name}"])
    said = f"{name}, line 10002, column 'x1': the value is inf, not a finite number"
    with pytest.raises(DataError) as whole:
        sources.load(config)
    assert said in str(whole.value)
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 50_000)
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "100000")
    with pytest.raises(DataError) as ranged:
        sources.load(config)
    assert str(ranged.value) == str(whole.value)
    for world in (2, 3):
        assert {str(error) for error in in_threads(world, lambda group: sources.load(config, group))} == {
            str(whole.value)
        }
