"""Learning-rate schedules: the formulas, torch's schedulers against them, both engines on one trajectory,
exact resume, the config's checks, and a minibatch run that gets past the noise floor of a constant lr."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from lrtrain.config import load_config
from lrtrain.engine import LrSchedule, Schedule
from lrtrain.runs import trajectory_settings
from lrtrain.training import compare, fit

from .conftest import cli
from .test_resume import config as resume_config
from .test_resume import interrupted_run, same

KINDS = {
    "step": ["train.schedule.kind=step", "train.schedule.step_epochs=7", "train.schedule.gamma=0.5"],
    "cosine": ["train.schedule.kind=cosine", "train.schedule.min_lr=0.05"],
    "inverse_time": ["train.schedule.kind=inverse_time", "train.schedule.decay=0.3"],
}


def schedule(lr: float, **settings: object) -> Schedule:
    return Schedule(100, lr, 0, 0, None, True, 0, True, "float64", "cpu", lr_schedule=LrSchedule(**settings))  # type: ignore[arg-type]


def test_lr_at_follows_each_formula() -> None:
    constant = schedule(0.1)
    assert [constant.lr_at(e) for e in (1, 2, 50)] == [0.1, 0.1, 0.1]
    step = schedule(0.1, kind="step", step_epochs=3, gamma=0.5)
    assert [step.lr_at(e) for e in range(1, 11)] == [0.1] * 3 + [0.05] * 3 + [0.025] * 3 + [0.0125]
    cosine = schedule(0.2, kind="cosine", period_epochs=10, min_lr=0.25)  # from 0.2 down to 0.05
    assert cosine.lr_at(1) == 0.2
    assert cosine.lr_at(6) == pytest.approx(0.125, rel=1e-15)  # half-way: the mean of the two ends
    assert cosine.lr_at(11) == pytest.approx(0.05, rel=1e-15)  # the end of the period, one epoch past the run
    lrs = [cosine.lr_at(e) for e in range(1, 11)]
    assert all(a > b for a, b in itertools.pairwise(lrs))
    inverse = schedule(0.3, kind="inverse_time", decay=0.5)
    assert [inverse.lr_at(e) for e in (1, 2, 3, 5)] == [0.3, 0.3 / 1.5, 0.3 / 2, 0.3 / 3]


def torch_lrs(lr_schedule: LrSchedule, lr: float, epochs: int, done: int = 0) -> list[float]:
    """The lr torch's scheduler gives each epoch after `done`, stepped as the torch engine steps it."""
    import torch

    from lrtrain.engine_torch import _scheduler

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=lr)
    scheduler = _scheduler(optimizer, schedule(lr, **vars(lr_schedule)), done)
    assert scheduler is not None
    lrs = []
    for _ in range(done, epochs):
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
    return lrs


TORCH_CASES = {
    "step": LrSchedule("step", step_epochs=3, gamma=0.9),
    "cosine": LrSchedule("cosine", period_epochs=3000),
    "cosine to a floor": LrSchedule("cosine", period_epochs=2000, min_lr=0.01),
    "inverse_time": LrSchedule("inverse_time", decay=0.37),
}


@pytest.mark.parametrize("lr_schedule", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_torch_schedulers_give_lr_at_of_every_epoch_and_resume_to_the_bit(lr_schedule: LrSchedule) -> None:
    lr, epochs = 0.05, 2000
    formula = [schedule(lr, **vars(lr_schedule)).lr_at(e) for e in range(1, epochs + 1)]
    straight = torch_lrs(lr_schedule, lr, epochs)
    # StepLR and CosineAnnealingLR compute each lr from the previous one: equal up to rounding, not to the bit
    np.testing.assert_allclose(straight, formula, rtol=1e-13, atol=0)
    assert torch_lrs(lr_schedule, lr, epochs, done=1234) == straight[1234:]  # replayed: no warning, same bits


def test_a_constant_lr_has_no_torch_scheduler() -> None:
    import torch

    from lrtrain.engine_torch import _scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert _scheduler(optimizer, schedule(0.1), 17) is None


def synthetic(*overrides: str) -> list[str]:
    base = ["data.source=synthetic", "data.rows=200", "data.features=3", "data.noise=0.5", "data.bias=1.5"]
    return [*base, "output.save=false", "model.dtype=float64", "train.epochs=60", "train.lr=0.05", *overrides]


BATCHES = {"full batch": [], "minibatch, shuffled": ["train.batch_size=16"], "momentum": ["train.momentum=0.9"]}


@pytest.mark.parametrize("batches", BATCHES.values(), ids=BATCHES.keys())
@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_torch_walks_the_same_trajectory_as_manual_with_each_schedule(kind: list[str], batches: list[str]) -> None:
    cmp = compare(load_config(None, synthetic(*kind, *batches)), ["manual", "torch"])
    manual, torch_result = cmp.results
    assert manual.epochs == torch_result.epochs == 60
    scale = max(1.0, float(np.max(np.abs(manual.weights))))
    np.testing.assert_allclose(torch_result.weights, manual.weights, rtol=0, atol=1e-10 * scale)
    assert torch_result.bias == pytest.approx(manual.bias, abs=1e-10 * scale)
    lrs = [log.lr for log in manual.history]
    np.testing.assert_allclose([log.lr for log in torch_result.history], lrs, rtol=1e-13)
    assert lrs[-1] < lrs[0] / 2  # the schedule did act
    assert cmp.agree


@pytest.mark.parametrize("kind", KINDS.values(), ids=KINDS.keys())
def test_full_batch_epochs_from_the_statistics_follow_the_schedule_as_those_from_the_data(kind: list[str]) -> None:
    on_data = fit(load_config(None, synthetic(*kind, "train.statistics=never")))
    on_stats = fit(load_config(None, synthetic(*kind, "train.statistics=always")))
    np.testing.assert_allclose(on_stats.weights, on_data.weights, rtol=1e-12, atol=1e-13)
    assert [log.lr for log in on_stats.history] == [log.lr for log in on_data.history]


def test_metrics_csv_shows_the_lr_of_every_epoch(workdir: Path) -> None:
    cfg = load_config(None, [*synthetic(*KINDS["step"]), "output.save=true"])
    result = fit(cfg)
    assert result.run_dir is not None
    with (result.run_dir / "metrics.csv").open() as handle:
        lrs = [float(row["lr"]) for row in csv.DictReader(handle)]
    expected = LrSchedule("step", step_epochs=7, gamma=0.5)
    assert lrs == [schedule(0.05, **vars(expected)).lr_at(e) for e in range(1, 61)]
    assert lrs[6:8] == [0.05, 0.025]  # the lr of epoch 8 is the first one halved


def test_torch_logs_copied_in_chunks_keep_the_lr_of_each_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    from lrtrain import engine_torch

    config = load_config(None, synthetic(*KINDS["cosine"], "train.engine=torch", "train.epochs=23"))
    one_by_one = fit(config)
    monkeypatch.setattr(engine_torch._Logs, "chunks", {"cpu": 7})
    monkeypatch.setattr(engine_torch._Logs, "seconds", 1e9)
    chunked = fit(config)
    assert [log.lr for log in chunked.history] == [log.lr for log in one_by_one.history]
    assert len({log.lr for log in chunked.history}) == 23


RESUME_CASES = {
    f"{engine} {name}": [f"train.engine={engine}", "train.batch_size=32", "train.momentum=0.5", *kind]
    for engine in ("manual", "torch")
    for name, kind in KINDS.items()
}


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize("overrides", RESUME_CASES.values(), ids=RESUME_CASES.keys())
def test_a_resumed_run_with_a_schedule_equals_the_uninterrupted_one(overrides: list[str]) -> None:
    straight = fit(resume_config(*overrides, "output.save=false"))
    run = interrupted_run(resume_config(*overrides), at=17)
    resumed = fit(load_config(run / "config.yaml"), resume=run)
    same(resumed, straight)
    assert [log.lr for log in resumed.history] == [log.lr for log in straight.history[17:]]


def test_resume_refuses_another_schedule(workdir: Path) -> None:
    run = interrupted_run(resume_config(*KINDS["step"]), at=5)
    changed = cli("fit", "--resume", str(run), "--set", "train.schedule.gamma=0.6")
    assert changed.exit_code == 2
    assert "train.schedule.gamma differ" in changed.stderr
    other = cli("fit", "--resume", str(run), "--set", "train.schedule={kind: inverse_time}")
    assert other.exit_code == 2
    assert "train.schedule.decay, train.schedule.gamma, train.schedule.kind, train.schedule.step_epochs" in (
        other.stderr
    )
    constant = interrupted_run(resume_config("output.dir=constant"), at=5)  # a folder of its own
    added = cli("fit", "--resume", str(constant), "--set", "train.schedule.kind=cosine")
    assert added.exit_code == 2
    assert "train.schedule differs" in added.stderr


def test_resume_keeps_the_cosine_period_the_run_started_with(workdir: Path) -> None:
    run = interrupted_run(resume_config("train.schedule.kind=cosine"), at=5)
    longer = cli("fit", "--resume", str(run), "--set", "train.epochs=80")
    assert longer.exit_code == 2
    assert "train.schedule.period_epochs differs" in longer.stderr
    assert "cannot change on resume" in longer.stderr
    shorter = cli("fit", "--resume", str(run), "--set", "train.epochs=40")
    assert "cannot change on resume" in shorter.stderr  # lowered as much as raised: the period is fixed
    engine = cli("fit", "--resume", str(run), "--engine", "exact")
    assert engine.exit_code == 2
    assert "train.engine differ" in engine.stderr  # with model.dtype: the exact engine is float64
    assert "Drop the options that change them (--set, --engine, --device" in engine.stderr
    fixed = load_config(None, ["train.epochs=60", "train.schedule.kind=cosine", "train.schedule.period_epochs=100"])
    assert trajectory_settings(fixed)["train"]["schedule"] == {"kind": "cosine", "period_epochs": 100, "min_lr": 0.0}
    raised = fixed.model_copy(update={"train": fixed.train.model_copy(update={"epochs": 90})})
    assert trajectory_settings(raised) == trajectory_settings(fixed)  # an explicit period leaves room to go on


def test_a_constant_lr_leaves_the_trajectory_settings_as_before_schedules() -> None:
    assert "schedule" not in trajectory_settings(load_config(None, []))["train"]
    assert "schedule" not in trajectory_settings(load_config(None, ["train.schedule.kind=constant"]))["train"]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["train.schedule.gamma=0.5"], ["'train.schedule.gamma': 0.5 does nothing", "kind to step"]),
        (
            ["train.schedule.kind=step", "train.schedule.decay=0.2"],
            ["'train.schedule.decay': 0.2 does nothing with train.schedule.kind = step", "default (0.1)"],
        ),
        (
            ["train.schedule.kind=cosine", "train.schedule.period_epochs=50"],
            ["period_epochs is 50, shorter than train.epochs = 100", "or to null"],
        ),
        (["train.schedule.kind=step", "train.schedule.gamma=1.5"], ["'train.schedule.gamma' must be at most 1"]),
        (["train.schedule.kind=step", "train.schedule.step_epochs=0"], ["'train.schedule.step_epochs' must be at"]),
        (["train.schedule.kind=inverse_time", "train.schedule.decay=0"], ["'train.schedule.decay' must be greater"]),
        (["train.schedule.kind=cosine", "train.schedule.min_lr=-0.1"], ["'train.schedule.min_lr' must be at least"]),
        (["train.schedule.kind=linear"], ["'train.schedule.kind' must be 'constant', 'step', 'cosine' or"]),
    ],
    ids=["unused", "another kind's", "short period", "gamma", "step_epochs", "decay", "min_lr", "kind"],
)
def test_invalid_schedules_are_config_errors_that_name_the_key(overrides: list[str], words: list[str]) -> None:
    result = cli("config", "validate", *(arg for item in overrides for arg in ("--set", item)))
    assert result.exit_code == 2
    assert result.stdout == ""
    for word in words:
        assert word in result.stderr


def test_a_schedule_gets_a_minibatch_run_past_the_noise_floor_of_a_constant_lr() -> None:
    # batch_size 8 on noisy data: with a constant lr the weights keep jumping around the optimum (the noise of
    # each batch's gradient, times lr); a decaying lr lets them settle, in the same number of epochs
    base = ["data.source=synthetic", "data.rows=500", "data.features=3", "data.noise=1.0", "output.save=false"]
    base += ["model.dtype=float64", "train.batch_size=8", "train.lr=0.05", "train.epochs=40"]
    constant = fit(load_config(None, base)).max_dw_to_optimum
    cosine = fit(load_config(None, [*base, "train.schedule.kind=cosine"])).max_dw_to_optimum
    inverse = fit(load_config(None, [*base, "train.schedule.kind=inverse_time", "train.schedule.decay=0.5"]))
    assert constant > 0.03
    assert cosine < constant / 20
    assert inverse.max_dw_to_optimum < constant / 20
    assert math.isclose(inverse.history[-1].lr, 0.05 / (1 + 0.5 * 39))
