"""Gradient descent that finishes the job: momentum and lr auto, stopping at the target gap, divergence
that cannot hide, the truth when a run stops short, early stopping that keeps the best weights."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from lrtrain import sources
from lrtrain.config import Config, load_config
from lrtrain.errors import ConfigError, TrainingFailed
from lrtrain.sources.writers import write
from lrtrain.training import compare, fit

from .conftest import cli


def ill_conditioned(workdir: Path, rows: int = 400, seed: int = 2, scale: float = 10.0) -> Path:
    """Three features on scales 1, `scale` and 1/`scale` with a correlated pair: κ of the Hessian in the
    thousands for the default scale."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    x[:, 2] = 0.98 * x[:, 0] + 0.2 * x[:, 2]
    x *= [1.0, scale, 1 / scale]
    y = x @ [1.0, -0.2, 3.0] + 2.0 + rng.normal(scale=0.3, size=rows)
    write(workdir / "ill.npy", iter([(x, y)]), rows, 3, ["a", "b", "c"])
    return workdir / "ill.npy"


def config_for(path: Path, *overrides: str) -> Config:
    base = ["data.source=npy", f"data.path={path}", "model.dtype=float64", "output.save=false", "model.init=zeros"]
    return load_config(None, [*base, *overrides])


def hessian_of(config: Config) -> np.ndarray:
    """(2/n)·X̃ᵀX̃ straight from the rows: the reference the moments-based spectrum must match."""
    raw = sources.load(config)
    design = np.column_stack([raw.x, np.ones(len(raw.y))])
    return 2.0 / len(raw.y) * design.T @ design


def test_momentum_auto_is_polyaks_choice_and_reaches_the_target_in_sqrt_kappa_epochs(workdir: Path) -> None:
    path = ill_conditioned(workdir)
    eigenvalues = np.linalg.eigvalsh(hessian_of(config_for(path)))
    big, small = eigenvalues[-1], eigenvalues[0]
    kappa = big / small
    assert kappa > 1000
    heavy = fit(config_for(path, "train.lr=auto", "train.momentum=auto", "train.epochs=20000"))
    first, second = heavy.history[:2]
    beta = ((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)) ** 2
    assert second.lr == pytest.approx(4 / (math.sqrt(big) + math.sqrt(small)) ** 2, rel=1e-9)
    assert first.lr == pytest.approx((1 + math.sqrt(beta)) / big, rel=1e-9)  # the warm first step
    assert first.velocity_w is not None
    # no transient: heavy ball from rest would first climb about √κ/e-fold in the stiffest direction
    assert max(log.loss for log in heavy.history) <= heavy.history[0].loss
    assert heavy.stopped == "converged"
    assert heavy.converged is True
    assert heavy.gap <= 1e-6
    assert heavy.loss == pytest.approx(heavy.optimum_loss, rel=1e-6)
    assert heavy.epochs <= math.sqrt(kappa) * math.log(1e6) * 2  # √κ·ln(1/ε)/2, with room for the transient
    plain = fit(config_for(path, "train.lr=auto", f"train.epochs={heavy.epochs}"))
    assert plain.converged is False  # gradient descent needs ~κ epochs: far from done after as many
    torch_run = fit(
        config_for(path, "train.lr=auto", "train.momentum=auto", "train.epochs=20000", "train.engine=torch")
    )
    assert torch_run.epochs == heavy.epochs  # the same recursion: torch.optim.SGD's momentum is heavy ball
    np.testing.assert_allclose(torch_run.weights, heavy.weights, rtol=1e-9)
    chosen = re.search(r"momentum = auto: ([0-9.e-]+)", stderr_of(["fit", "--set", f"data.path={path}"], workdir))
    assert chosen is not None
    assert float(chosen.group(1)) == pytest.approx(beta, rel=1e-5)


def stderr_of(args: list[str], workdir: Path) -> str:
    base = ["--set", "data.source=npy", "--set", "model.dtype=float64", "--set", "train.momentum=auto"]
    result = cli(*args, *base, "--set", "train.lr=auto", "--set", "output.save=false", "--set", "train.epochs=5")
    assert result.exit_code == 0, result.output
    return result.stderr


def test_momentum_auto_with_a_given_lr_is_the_smallest_beta_that_contracts_every_direction(workdir: Path) -> None:
    path = ill_conditioned(workdir)
    eigenvalues = np.linalg.eigvalsh(hessian_of(config_for(path)))
    lr = 1 / eigenvalues[-1]
    config = config_for(path, f"train.lr={lr}", "train.momentum=auto", "train.epochs=3", "train.target_gap=0")
    first, second = fit(config).history[:2]
    expected = max((1 - math.sqrt(lr * eigenvalues[0])) ** 2, (1 - math.sqrt(lr * eigenvalues[-1])) ** 2)
    # the buffer after epoch 2 is β·(the buffer after epoch 1) + the gradient at epoch 1's weights: recover β
    raw = sources.load(config)
    design = np.column_stack([raw.x, np.ones(len(raw.y))])
    gradient = 2 / len(raw.y) * design.T @ (design @ np.append(first.weights, first.bias) - raw.y)
    assert first.velocity_w is not None
    assert second.velocity_w is not None
    before = np.append(first.velocity_w, first.velocity_b)
    after = np.append(second.velocity_w, second.velocity_b)
    np.testing.assert_allclose((after - gradient) / before, expected, rtol=1e-6)
    with pytest.raises(ConfigError, match=r"too large for momentum: auto.*lr < 4/L"):
        fit(config_for(path, f"train.lr={5 * lr}", "train.momentum=auto"))


def test_lr_auto_takes_momentum_and_the_batch_size_into_account(workdir: Path) -> None:
    path = ill_conditioned(workdir, rows=300)
    config = config_for(path, "data.standardize=true")
    raw = sources.load(config)
    x = (raw.x - raw.x.mean(axis=0)) / raw.x.std(axis=0)
    design = np.column_stack([x, np.ones(len(x))])
    big = np.linalg.eigvalsh(2 / len(x) * design.T @ design)[-1]
    heavy = fit(config_for(path, "data.standardize=true", "train.lr=auto", "train.momentum=0.5", "train.epochs=2"))
    assert heavy.history[0].lr == pytest.approx(1.5 / big, rel=1e-9)  # (1 + β)/L, half the heavy-ball edge
    n, b, beta = 300, 16, 0.9
    one_row = 2 * np.max(np.sum(design**2, axis=1))  # the curvature of a single row
    batch = n * (b - 1) / (b * (n - 1)) * big + (n - b) / (b * (n - 1)) * one_row
    settings = ["data.standardize=true", "train.lr=auto", f"train.momentum={beta}", f"train.batch_size={b}"]
    mini = fit(config_for(path, *settings, "train.epochs=2"))
    assert mini.history[0].lr == pytest.approx((1 - beta) / batch, rel=1e-9)
    with pytest.raises(ConfigError, match=r"momentum = auto is for full-batch training"):
        fit(config_for(path, "train.momentum=auto", f"train.batch_size={b}"))


def test_training_stops_once_converged_and_epochs_become_a_cap(workdir: Path) -> None:
    path = ill_conditioned(workdir)
    settings = ["data.standardize=true", "train.lr=auto", "train.epochs=5000"]
    stopped = fit(config_for(path, *settings, "train.target_gap=1e-8"))
    assert stopped.stopped == "converged"
    assert stopped.epochs < 5000
    assert stopped.gap <= 1e-8
    assert (stopped.loss - stopped.optimum_loss) / stopped.optimum_loss <= 1e-8  # the exact pass agrees
    before = fit(config_for(path, *settings, "train.target_gap=0", f"train.epochs={stopped.epochs - 1}"))
    assert before.gap > 1e-8  # it stopped at the first epoch that got there
    every = fit(config_for(path, *settings, "train.target_gap=0"))
    assert every.epochs == 5000
    assert every.stopped == "completed"
    assert every.converged is None


@pytest.mark.parametrize("engine", ["manual", "torch"])
@pytest.mark.parametrize("settings", [["train.momentum=0.9"], ["data.standardize=true"]], ids=["momentum", "plain"])
def test_under_weight_decay_converged_means_at_the_ridge_optimum(
    workdir: Path, engine: str, settings: list[str]
) -> None:
    """The target is the objective (MSE + (λ/2)|w|²): the MSE alone dips below the ridge optimum's on the way,
    and a run stopped there as 'converged' with weights 10-100% off."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(50, 2)) * [1.0, 3.0]
    y = x @ [2.0, -0.5] + 3.0 + rng.normal(scale=0.5, size=50)
    write(workdir / "wd.csv", iter([(x, y)]), 50, 2, ["a", "b"])
    common = ["--set", "data.path=wd.csv", "--set", "train.weight_decay=0.5", "--set", "model.dtype=float64"]
    common += ["--set", "train.lr=auto", "--set", "train.epochs=100000", "--set", "output.save=false", "--json"]
    common += [arg for setting in settings for arg in ("--set", setting)]
    ridge = json.loads(cli("fit", *common, "--engine", "exact").stdout.splitlines()[-1])
    walked = cli("fit", *common, "--engine", engine)
    assert walked.exit_code == 0, walked.output
    result = json.loads(walked.stdout.splitlines()[-1])
    assert result["stopped"] == "converged"
    assert 0 <= result["gap"] <= 1e-6
    np.testing.assert_allclose(result["weights"], ridge["weights"], rtol=2e-3)
    assert result["bias"] == pytest.approx(ridge["bias"], rel=2e-3)


def test_an_exact_fit_is_judged_by_the_absolute_gap(workdir: Path) -> None:
    result = cli("fit", "--json", "--set", "output.save=false", "--set", "train.epochs=5000")  # y = 2x exactly
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.splitlines()[-1])
    assert record["stopped"] == "converged"
    assert record["converged"] is True
    assert record["gap"] <= 1e-6
    assert record["optimum"]["loss"] < 1e-20
    assert record["epochs"] < 5000


def test_a_run_that_stops_short_says_how_far_how_long_and_what_would_get_there(workdir: Path) -> None:
    path = ill_conditioned(workdir, scale=3.0)
    args = ["--set", "data.source=npy", "--set", f"data.path={path}", "--set", "model.dtype=float64"]
    result = cli("fit", *args, "--set", "train.lr=auto", "--set", "output.save=false")
    assert result.exit_code == 0, result.output
    message = result.stderr
    assert "stopped short of train.target_gap = 1e-06" in message
    gap = float(re.search(r"its training loss is ([0-9.e+-]+) \(relative\)", message).group(1))  # type: ignore[union-attr]
    more = int(re.search(r"needs about (\d+) more epochs", message).group(1))  # type: ignore[union-attr]
    assert "train.momentum: auto" in message
    assert "data.standardize: true" in message
    assert "--engine exact" in message
    assert gap > 1e-6
    record = cli("fit", *args, "--set", "train.lr=auto", "--set", "output.save=false", "--json")
    final = json.loads(record.stdout.splitlines()[-1])
    assert final["converged"] is False
    assert final["gap"] == pytest.approx(gap, rel=1e-2)
    # of the right size: at half of it the target is not reached yet, at one and a half times it, it is
    short = fit(config_for(path, "train.lr=auto", f"train.epochs={100 + more // 2}"))
    assert short.converged is False
    enough = fit(config_for(path, "train.lr=auto", f"train.epochs={100 + 3 * more // 2}"))
    assert enough.converged is True


def test_a_run_stalled_at_the_rounding_floor_says_so_instead_of_promising_epochs(workdir: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2))
    x = np.column_stack([x, 2 * x[:, 0] - x[:, 1]])  # one column the others make: float32 cannot resolve it
    y = x @ [1.0, 2.0, 3.0] + 5 + 0.1 * rng.normal(size=50)
    write(workdir / "c.csv", iter([(x, y)]), 50, 3, ["x0", "x1", "x2"])
    settings = ["data.path=c.csv", "data.standardize=true", "train.lr=auto", "train.epochs=2000"]
    result = cli("fit", *(a for s in settings for a in ("--set", s)), "--set", "output.save=false")
    assert result.exit_code == 0, result.output
    assert "made no progress: in float32 the loss has reached the floor its rounding leaves" in result.stderr
    assert "needs about" not in result.stderr  # 2000 epochs stalled: a promise of 8 more would be false
    assert "model.dtype: float64" in result.stderr


def test_a_pace_that_six_digits_would_round_to_1_is_shown_as_its_distance_from_1() -> None:
    from lrtrain.stopping import pace_text

    assert pace_text(0.994021) == "0.994021"
    assert pace_text(1 - 3.2e-9) == "(1 − 3.2e-09)"  # not ×1, which reads as no progress at all


BLOW_UP = ["data.source=synthetic", "data.rows=2000", "data.features=5", "data.standardize=true"]


@pytest.mark.parametrize("engine", ["manual", "torch"])
def test_a_minibatch_blow_up_that_climbs_unevenly_is_caught_and_the_advice_works(engine: str) -> None:
    settings = [*BLOW_UP, "train.batch_size=32", "train.momentum=0.9", f"train.engine={engine}", "output.save=false"]
    with pytest.raises(TrainingFailed) as failed:
        fit(load_config(None, [*settings, "train.lr=0.5"]))
    message = str(failed.value)
    assert "With batches of 32 rows and momentum 0.9" in message
    advised = re.search(r"try --set train\.lr=([0-9.e+-]+)", message)
    assert advised is not None
    following = fit(load_config(None, [*settings, f"train.lr={advised.group(1)}", "train.epochs=200"]))
    assert following.loss < 2 * following.optimum_loss  # stable, and near the optimum


def test_a_blow_up_exits_1_writes_nothing_and_compare_names_the_engine(workdir: Path) -> None:
    args = [f"--set={s}" for s in [*BLOW_UP, "train.batch_size=32", "train.momentum=0.9", "train.lr=0.5"]]
    result = cli("fit", *args)
    assert result.exit_code == 1
    assert "training diverged" in result.stderr
    assert not (workdir / "runs").exists()
    compared = cli("compare", "manual", "torch", *args)
    assert compared.exit_code == 1
    assert compared.stderr.startswith("error: manual: training diverged")


def test_compare_stops_every_engine_where_the_first_converged(workdir: Path) -> None:
    path = ill_conditioned(workdir)
    config = config_for(path, "data.standardize=true", "train.lr=auto", "train.epochs=5000")
    result = compare(config, ["manual", "torch", "exact"])
    manual, torch_run, _ = result.results
    assert manual.stopped == "converged"
    assert torch_run.epochs == manual.epochs
    assert result.agree


def test_early_stopping_keeps_the_best_validation_weights_unless_told_otherwise(workdir: Path) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 20))  # many features, few rows: training on noise overfits
    y = x[:, 0] + rng.normal(scale=1.0, size=60)
    write(workdir / "noisy.npy", iter([(x, y)]), 60, 20, [f"x{i}" for i in range(20)])
    settings = ["data.validation=0.3", "train.lr=0.05", "train.epochs=3000", "train.early_stopping.patience=20"]
    kept = fit(config_for(workdir / "noisy.npy", *settings))
    assert kept.stopped.startswith("early stopping")
    best = min(kept.history, key=lambda log: log.val_loss if log.val_loss is not None else math.inf)
    assert best.epoch < kept.epochs
    assert f"kept the weights of epoch {best.epoch}" in kept.stopped
    np.testing.assert_array_equal(kept.weights, best.weights)
    assert kept.val_loss == best.val_loss
    last = fit(config_for(workdir / "noisy.npy", *settings, "train.early_stopping.restore_best=false"))
    np.testing.assert_array_equal(last.weights, last.history[-1].weights)
    assert last.val_loss is not None
    assert kept.val_loss is not None
    assert kept.val_loss < last.val_loss


def test_r2_without_a_bias_is_the_uncentered_one_everywhere(workdir: Path) -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(6)
    x = rng.normal(loc=3.0, size=(100, 2))
    y = x @ [0.5, -1.0] + 4.0 + rng.normal(size=100)  # a big intercept the model cannot have: centered R² < 0
    write(workdir / "d.npy", iter([(x, y)]), 100, 2, ["u", "v"])
    args = ["--set", "data.source=npy", "--set", "data.path=d.npy", "--set", "model.bias=false", "--engine", "exact"]
    fitted = cli("fit", *args, "--json")
    assert fitted.exit_code == 0, fitted.output
    record = json.loads(fitted.stdout.splitlines()[-1])
    reference = sm.OLS(y, x).fit()
    assert record["r2_kind"] == "uncentered"
    assert record["r2"] == pytest.approx(reference.rsquared, rel=1e-9)
    summary = json.loads(cli("summary", "--json").stdout.splitlines()[-1])
    assert summary["r2"] == pytest.approx(record["r2"], rel=1e-12)
    listed = re.search(r"r2=([0-9.e+-]+)", cli("runs").stdout)
    assert listed is not None
    assert float(listed.group(1)) == pytest.approx(record["r2"], rel=1e-12)
    plain = cli("fit", *args)
    assert "R² (uncentered: no bias)" in plain.stdout


@pytest.mark.parametrize(
    "settings",
    [
        ["train.lr=auto", "train.momentum=auto"],
        ["train.lr=auto", "train.momentum=0.5", "train.batch_size=50", "train.schedule.kind=cosine"],
        ["train.lr=auto", "train.batch_size=64", "train.schedule.kind=inverse_time", "train.schedule.decay=0.05"],
        ["train.lr=auto", "data.validation=0.2", "train.early_stopping.patience=3", "train.weight_decay=0.01"],
    ],
    ids=["momentum auto", "cosine minibatches", "inverse time", "early stopping and ridge"],
)
def test_compare_agrees_with_every_new_setting(workdir: Path, settings: list[str]) -> None:
    path = ill_conditioned(workdir, scale=3.0)
    config = config_for(path, "data.standardize=true", "train.epochs=300", *settings)
    result = compare(config, ["manual", "torch"])
    assert result.agree, result.worst
    manual, torch_run = result.results
    assert manual.epochs == torch_run.epochs


def test_momentum_auto_on_a_perfectly_conditioned_loss_is_no_momentum_on_both_engines() -> None:
    settings = ["data.source=synthetic", "data.features=1", "data.standardize=true", "model.dtype=float64"]
    config = load_config(None, [*settings, "train.lr=auto", "train.momentum=auto", "output.save=false"])
    result = compare(config, ["manual", "torch"])
    assert result.agree
    assert all(log.velocity_w is None for log in result.results[0].history)  # κ = 1: β = 0
    assert result.results[0].stopped == "converged"


def test_the_gap_of_an_exact_fit_is_said_absolute_as_it_is_taken(workdir: Path) -> None:
    """y is a function of the columns (levels spelled 1, 1.0, 02, 3e0): the optimum's loss is 0 but for rounding,
    the gap is taken absolute (stopping.Target.exact), and the summary line must not call it relative."""
    (workdir / "d.csv").write_text("a,k,y\n1,1,2.1\n2,1.0,3.1\n3,02,5.1\n4,3e0,7.1\n5, 3,8.1\n6,1,7.1\n")
    settings = ["--set", "data.path=d.csv", "--set", "data.categorical=[k]", "--set", "train.epochs=5"]
    result = cli("fit", *settings, "--set", "output.save=false")
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("Gap to optimum")]
    assert "relative" not in line
    assert "(relative)" not in result.stderr
