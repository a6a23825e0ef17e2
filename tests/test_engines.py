"""Engines against independent references: np.linalg.lstsq, scikit-learn and each other."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, Ridge
from threadpoolctl import threadpool_info, threadpool_limits

from lrtrain import sources
from lrtrain.config import Config, load_config
from lrtrain.engine import EpochLog, Schedule, State
from lrtrain.engine_exact import CHOLESKY_MAX_CONDITION, solution, solve
from lrtrain.moments import Scaling, largest_curvature, moments
from lrtrain.parallel import SINGLE, Shard
from lrtrain.prepare import Prepared, prepare
from lrtrain.sources import Table
from lrtrain.training import Start, compare, fit

from .conftest import ThreadShard


def synthetic_config(*overrides: str, rows: int = 200, features: int = 3) -> Config:
    return load_config(
        None,
        [
            "data.source=synthetic",
            f"data.rows={rows}",
            f"data.features={features}",
            "data.noise=0.5",
            "data.bias=1.5",
            "output.save=false",
            "train.target_gap=0",  # every epoch: these tests follow trajectories (stopping has its own tests)
            *overrides,
        ],
    )


def reference_lstsq(config: Config) -> tuple[np.ndarray, float]:
    raw = sources.load(config)
    design = np.column_stack([raw.x, np.ones(len(raw.y))])
    coef = np.linalg.lstsq(design, raw.y, rcond=None)[0]
    return coef[:-1], float(coef[-1])


def test_manual_converges_to_lstsq() -> None:
    config = synthetic_config("model.dtype=float64", "train.epochs=2000", "train.lr=0.2")
    result = fit(config)
    w_ref, b_ref = reference_lstsq(config)
    np.testing.assert_allclose(result.weights, w_ref, rtol=0, atol=1e-10)
    assert result.bias == pytest.approx(b_ref, abs=1e-10)
    assert result.max_dw_to_optimum < 1e-10


def test_standardized_training_reports_weights_in_original_units() -> None:
    config = synthetic_config("model.dtype=float64", "train.epochs=500", "train.lr=0.3", "data.standardize=true")
    raw = sources.load(config)
    raw_scaled = raw.x * np.array([100.0, 0.01, 1.0])  # very different scales
    config.data.weights = None  # type: ignore[union-attr]
    prepared = prepare(Table(raw_scaled, raw.y, raw.features, raw.target, "test"), config)
    from lrtrain.training import train

    result = train(config, prepared, "manual", "cpu", None)
    design = np.column_stack([raw_scaled, np.ones(len(raw.y))])
    coef = np.linalg.lstsq(design, raw.y, rcond=None)[0]
    np.testing.assert_allclose(result.weights, coef[:-1], rtol=1e-9)
    assert result.bias == pytest.approx(coef[-1], rel=1e-9)


def test_exact_matches_sklearn_linear_regression() -> None:
    config = synthetic_config(rows=500, features=8)
    raw = sources.load(config)
    w, b = solve(raw.x, raw.y, bias=True)
    reference = LinearRegression().fit(raw.x, raw.y)
    np.testing.assert_allclose(w, reference.coef_, rtol=1e-10)
    assert b == pytest.approx(reference.intercept_, rel=1e-10)


def test_exact_without_bias_matches_lstsq() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=50)
    w, b = solve(x, y, bias=False)
    np.testing.assert_allclose(w, np.linalg.lstsq(x, y, rcond=None)[0], rtol=1e-12)
    assert b == 0.0


def test_weight_decay_optimum_matches_sklearn_ridge_and_gradient_descent() -> None:
    # GD minimises mean(r²) + (λ/2)|w|²; sklearn's Ridge minimises |r|² + α|w|², so α = nλ/2.
    config = synthetic_config("model.dtype=float64", "train.weight_decay=0.3", "train.epochs=3000", "train.lr=0.2")
    raw = sources.load(config)
    w, b = solve(raw.x, raw.y, bias=True, weight_decay=0.3)
    reference = Ridge(alpha=len(raw.y) * 0.3 / 2).fit(raw.x, raw.y)
    np.testing.assert_allclose(w, reference.coef_, rtol=1e-10)
    assert b == pytest.approx(reference.intercept_, rel=1e-10)
    result = fit(config)
    np.testing.assert_allclose(result.weights, w, atol=1e-10)


@pytest.mark.parametrize("bias", [True, False])
def test_weight_decay_on_the_qr_path_matches_sklearn_ridge(bias: bool) -> None:
    rng = np.random.default_rng(11)
    t = np.sort(rng.uniform(1, 2, 2000))
    x = np.column_stack([t**k for k in range(1, 9)])  # cond(AᵀA) ~ 1e17: the normal equations would lose it
    y = x @ rng.normal(size=8) + 0.5 + 0.1 * rng.normal(size=2000)
    decay = 1e-7
    # lrtrain minimises mean(r²) + (λ/2)|w|², the bias unpenalised; × n it is |r|² + (nλ/2)|w|², which is
    # sklearn's Ridge objective |r|² + α|w|² (its intercept unpenalised too) with α = nλ/2
    alpha = len(y) * decay / 2
    a = x - x.mean(axis=0) if bias else x
    eigenvalues = np.linalg.eigvalsh(a.T @ a + alpha * np.eye(8))
    assert eigenvalues[-1] / eigenvalues[0] > 10 * CHOLESKY_MAX_CONDITION  # so the exact engine takes Householder QR
    w, b = solve(x, y, bias=bias, weight_decay=decay)
    reference = Ridge(alpha=alpha, fit_intercept=bias, solver="svd").fit(x, y)  # its default, Cholesky, keeps 5 digits
    np.testing.assert_allclose(w, reference.coef_, rtol=1e-8)
    assert b == pytest.approx(reference.intercept_, rel=1e-9, abs=1e-12)
    assert not np.allclose(w, solve(x, y, bias=bias)[0], rtol=0.1)  # the penalty changed the answer


def test_rank_deficient_data_gives_the_minimum_norm_solution() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 2))
    x = np.column_stack([x, x[:, 0]])  # a duplicated column
    y = x @ np.array([1.0, 2.0, 3.0])
    w, _ = solve(x, y, bias=False)
    np.testing.assert_allclose(w, np.linalg.pinv(x) @ y, atol=1e-10)


CASES: list[tuple[str, list[str]]] = [
    ("full batch", []),
    ("minibatch, shuffled", ["train.batch_size=16"]),
    ("minibatch, in order", ["train.batch_size=32", "train.shuffle=false"]),
    ("momentum and weight decay", ["train.momentum=0.9", "train.weight_decay=0.01", "train.lr=0.01"]),
    ("no bias, normal init", ["model.bias=false", "model.init=normal", "model.init_std=0.5"]),
    ("validation split, standardized", ["data.validation=0.25", "data.standardize=true"]),
]


@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize(("case", "overrides"), CASES, ids=[c[0] for c in CASES])
def test_torch_walks_the_same_trajectory_as_manual(dtype: str, rtol: float, case: str, overrides: list[str]) -> None:
    config = synthetic_config(f"model.dtype={dtype}", "train.epochs=60", "train.lr=0.05", *overrides)
    cmp = compare(config, ["manual", "torch"])
    manual, torch_result = cmp.results
    assert manual.epochs == torch_result.epochs == 60
    scale = max(1.0, float(np.max(np.abs(manual.weights))))
    np.testing.assert_allclose(torch_result.weights, manual.weights, rtol=0, atol=rtol * scale)
    assert torch_result.bias == pytest.approx(manual.bias, abs=rtol * scale)
    losses_manual = np.array([log.loss for log in manual.history])
    losses_torch = np.array([log.loss for log in torch_result.history])
    np.testing.assert_allclose(losses_torch, losses_manual, rtol=rtol * 10)
    assert cmp.agree


def test_minibatches_actually_change_the_trajectory() -> None:
    full = fit(synthetic_config("train.epochs=5"))
    mini = fit(synthetic_config("train.epochs=5", "train.batch_size=8"))
    assert not np.allclose(full.weights, mini.weights)
    assert mini.loss < full.loss  # 25 steps per epoch instead of one


def test_momentum_matches_torch_sgd_formula_by_hand() -> None:
    # two full-batch steps of heavy-ball momentum on y = 2x from w = 0, no bias, computed by hand
    config = load_config(
        None,
        [
            *("model.bias=false", "model.init=zeros", "model.dtype=float64"),
            *("train.epochs=2", "train.lr=0.01", "train.momentum=0.5", "output.save=false"),
        ],
    )
    result = fit(config)
    x, y = np.array([1.0, 2, 3, 4]), np.array([2.0, 4, 6, 8])
    w, v = 0.0, 0.0
    for _ in range(2):
        g = np.mean(2 * x * (w * x - y))
        v = 0.5 * v + g
        w -= 0.01 * v
    assert result.weights[0] == pytest.approx(w, rel=1e-14)


def test_early_stopping_on_validation_loss_stops_before_the_epoch_limit() -> None:
    config = synthetic_config(
        "train.epochs=5000",
        "train.lr=0.2",
        "data.validation=0.2",
        "train.early_stopping.patience=5",
        "train.early_stopping.tolerance=1e-9",
    )
    result = fit(config)
    assert result.epochs < 5000
    assert result.stopped.startswith("early stopping")
    assert result.val_loss is not None


def curvature(x: np.ndarray) -> float:
    """L of the MSE with a bias, from the rows."""
    return largest_curvature(moments(x, np.zeros(len(x))), bias=True)


def test_largest_curvature_is_the_top_eigenvalue_of_the_hessian() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(100, 5)) * np.arange(1, 6)
    design = np.column_stack([x, np.ones(100)])
    expected = np.linalg.eigvalsh(2 / 100 * design.T @ design)[-1]
    assert curvature(x) == pytest.approx(expected, rel=1e-12)


def top_eigenvalue(x: np.ndarray, bias: bool) -> float:
    """The largest eigenvalue of (2/n)·X̃ᵀX̃, from the n×n matrix (2/n)·X̃X̃ᵀ, which has the same nonzero ones."""
    design = np.column_stack([x, np.ones(len(x))]) if bias else x
    return float(np.linalg.eigvalsh(2 / len(x) * design @ design.T)[-1])


def curvature_designs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(12)
    centered = rng.normal(size=(300, 10))
    close = centered - centered.mean(axis=0)
    close[:, :2] *= [3.0, 2.97]  # the two largest eigenvalues 1% apart: the iteration converges slowly
    return {
        "scaled, off the origin": rng.normal(size=(300, 10)) * np.arange(1, 11) + np.arange(10),
        "centered": centered - centered.mean(axis=0),
        "a close top pair": close,
    }


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("design", curvature_designs().keys())
def test_largest_curvature_by_power_iteration_is_the_top_eigenvalue(
    monkeypatch: pytest.MonkeyPatch, design: str, bias: bool
) -> None:
    import lrtrain.moments

    monkeypatch.setattr(lrtrain.moments, "EIGH_MAX_SIZE", 4)  # the power iteration from 5 parameters up
    x = curvature_designs()[design]
    found = largest_curvature(moments(x, np.zeros(len(x))), bias)
    assert found == pytest.approx(top_eigenvalue(x, bias), rel=1e-8)


def test_largest_curvature_of_more_parameters_than_eigh_takes_is_the_top_eigenvalue() -> None:
    from lrtrain.moments import EIGH_MAX_SIZE

    rng = np.random.default_rng(13)
    x = rng.normal(size=(200, 2100)) + rng.normal(size=2100)  # 2101 parameters with the bias
    assert x.shape[1] + 1 > EIGH_MAX_SIZE
    found = largest_curvature(moments(x, np.zeros(len(x))), bias=True)
    assert found == pytest.approx(top_eigenvalue(x, bias=True), rel=1e-8)


def test_divergence_bound_is_sharp_for_gradient_descent() -> None:
    base = ["data.source=synthetic", "data.rows=100", "model.dtype=float64", "output.save=false", "train.epochs=300"]
    config = load_config(None, base)
    prepared = prepare(sources.load(config), config)
    limit = 2 / curvature(prepared.x)
    stable = fit(load_config(None, [*base, f"train.lr={limit * 0.95}"]))
    assert stable.max_dw_to_optimum < 1e-3
    from lrtrain.errors import TrainingFailed

    with pytest.raises(TrainingFailed, match="diverged"):
        fit(load_config(None, [*base, f"train.lr={limit * 1.05}"]))


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.cuda
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("dtype", "rtol"), [("float64", 1e-10), ("float32", 1e-5)])
def test_torch_on_cuda_walks_the_same_trajectory_as_manual(dtype: str, rtol: float) -> None:
    config = synthetic_config(f"model.dtype={dtype}", "train.epochs=40", "train.lr=0.05", "train.batch_size=32")
    cmp = compare(config, ["manual", "torch:cuda"])
    manual, cuda = cmp.results
    assert cuda.device.startswith("cuda")
    np.testing.assert_allclose(cuda.weights, manual.weights, rtol=0, atol=rtol * max(1.0, np.abs(manual.weights).max()))
    assert cmp.agree


def householder_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Plain Householder QR on [X, 1]: the accuracy the exact engine must match."""
    design = np.column_stack([x, np.ones(len(y))])
    q, r = np.linalg.qr(design)
    return np.linalg.solve(r, q.T @ y)


def relative_error(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(found - truth) / np.linalg.norm(truth))


@pytest.mark.parametrize(("low", "high", "degree"), [(0, 4, 8), (1, 2, 8), (1, 3, 10), (1, 2, 12)])
def test_exact_keeps_the_digits_of_a_qr_solve_on_ill_conditioned_polynomials(low: int, high: int, degree: int) -> None:
    rng = np.random.default_rng(degree)
    t = np.sort(rng.uniform(low, high, 2000))
    x = np.column_stack([t**k for k in range(1, degree + 1)])
    truth = np.append(rng.normal(size=degree), 0.5)
    y = x @ truth[:-1] + truth[-1]  # no noise: the true coefficients are the answer
    condition = np.linalg.cond(np.column_stack([x, np.ones(len(t))]))
    assert 1e7 < condition < 1e16  # the range asked for: 1e7 to 1e15
    w, b = solve(x, y, bias=True)
    ours = relative_error(np.append(w, b), truth)
    reference = relative_error(householder_reference(x, y), truth)
    assert ours <= 10 * reference + 1e-13, (condition, ours, reference)


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e6])
def test_exact_on_the_normal_equations_path_is_as_accurate_as_qr(scale: float) -> None:
    # correlated features far from the origin: cond(A) ~ 1e2-1e3, so Cholesky + refinement is chosen
    rng = np.random.default_rng(4)
    base = rng.normal(size=(5000, 20))
    x = base @ (np.eye(20) + 0.9 * rng.normal(size=(20, 20)) / np.sqrt(20)) * scale + 100 * scale
    truth = np.append(rng.normal(size=20), 3.0)
    y = x @ truth[:-1] + truth[-1]
    w, b = solve(x, y, bias=True)
    ours = relative_error(np.append(w, b), truth)
    reference = relative_error(householder_reference(x, y), truth)
    assert ours <= max(10 * reference, 1e-13), (ours, reference)


def long_double_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares with a bias in 80-bit long double (centered normal equations, Gaussian elimination with
    pivoting): the coefficients, and the sum of squared residuals taken row by row."""
    a, t = x.astype(np.longdouble), y.astype(np.longdouble)
    a_mean, t_mean = a.mean(axis=0), t.mean()
    a, t = a - a_mean, t - t_mean
    system = np.column_stack([a.T @ a, a.T @ t])
    for i in range(len(system)):
        pivot = i + int(np.argmax(np.abs(system[i:, i])))
        system[[i, pivot]] = system[[pivot, i]]
        system[i] /= system[i, i]
        for j in range(len(system)):
            if j != i:
                system[j] -= system[j, i] * system[i]
    weights = system[:, -1]
    residuals = t - a @ weights
    return np.append(weights, t_mean - a_mean @ weights).astype(np.float64), float(residuals @ residuals)


@pytest.mark.parametrize(("mixing", "noise"), [(0.0, 1.0), (0.3, 0.3), (0.0, 0.1)], ids=["plain", "mixed", "close"])
def test_a_well_conditioned_problem_is_solved_from_its_moments_without_reading_the_rows(
    mixing: float, noise: float
) -> None:
    """Condition up to SETTLED_CONDITION and R² up to 1 − 1/SETTLED_FIT: the normal equations hold about 13
    digits, so no refinement pass is made (rows of NaN give the same answer), and the sum of squares comes
    from the moments to as many digits, means of 1e6 included."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(20_000, 6)) @ (np.eye(6) + mixing * rng.normal(size=(6, 6))) + 1e6
    y = x @ rng.normal(size=6) + noise * rng.normal(size=20_000)
    stats = moments(x, y)
    found = solution(np.full_like(x, np.nan), np.full_like(y, np.nan), True, centered=stats)
    coefficients, squares = long_double_fit(x, y)
    assert relative_error(found.weights, coefficients[:-1]) < 1e-12
    assert found.bias == pytest.approx(coefficients[-1], rel=1e-12)
    assert found.squares == pytest.approx(squares, rel=1e-12)
    assert np.array_equal(found.weights, solution(x, y, True, centered=stats).weights)


@pytest.mark.parametrize(
    ("mixing", "noise"), [(0.0, 1e-4), (0.0, 1e-9), (30.0, 1.0)], ids=["R² 1-1e-8", "R² 1-1e-18", "cond 1e4"]
)
def test_a_nearly_exact_or_ill_conditioned_fit_is_refined_against_the_rows(mixing: float, noise: float) -> None:
    """Past SETTLED_FIT (R² near 1) or SETTLED_CONDITION the moments alone would lose digits: the refinement's
    pass over the rows is made (rows of NaN spoil it), and keeps the weights and the sum of squares exact."""
    rng = np.random.default_rng(13)
    x = rng.normal(size=(20_000, 4))
    x[:, 1] = x[:, 0] + x[:, 1] / mixing if mixing else x[:, 1]
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + 7.0 + noise * rng.normal(size=20_000)
    stats = moments(x, y)
    spoiled = solution(np.full_like(x, np.nan), np.full_like(y, np.nan), True, centered=stats)
    assert not np.all(np.isfinite(spoiled.weights))
    found = solution(x, y, True, centered=stats)
    coefficients, squares = long_double_fit(x, y)
    assert relative_error(found.weights, coefficients[:-1]) < 1e-13
    assert found.squares == pytest.approx(squares, rel=1e-8)


def test_a_tally_takes_rows_about_its_first_block_so_a_mean_of_1e9_keeps_its_digits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Summed about the origin, a mean of 1e9 with a spread of 1 would leave XᵀX − nμμᵀ 18 digits short, and
    the moments would need a pass centered block by block; about the first block's means, the one pass holds."""
    import lrtrain.moments

    def no_second_pass(*args: object) -> None:
        raise AssertionError("the moments took a second pass")

    monkeypatch.setattr(lrtrain.moments, "_merged", no_second_pass)
    rng = np.random.default_rng(14)
    x = rng.normal(size=(30_000, 3)) + np.array([1e9, -1e9, 0.0])
    y = x @ np.array([1.0, 2.0, 3.0]) + rng.normal(size=30_000)
    stats = moments(x, y)
    exact_means = np.array([math.fsum(column) / len(column) for column in x.T])
    a = x - exact_means
    np.testing.assert_allclose(stats.x_mean, exact_means, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(stats.gram, a.T @ a, rtol=1e-9, atol=1e-9 * np.max(a.T @ a))
    assert stats.amplified < 1.01
    tally = lrtrain.moments.Tally(3)
    for start in range(0, 30_000, 977):
        tally.add(x[start : start + 977], y[start : start + 977])
    tallied = tally.moments()
    assert tallied is not None
    np.testing.assert_allclose(tallied.gram, stats.gram, rtol=1e-12)
    assert tallied.tt == pytest.approx(stats.tt, rel=1e-12)


@pytest.mark.parametrize(
    "overrides",
    [[], ["train.momentum=0.9", "train.weight_decay=0.05"], ["model.bias=false"], ["data.standardize=true"]],
    ids=["plain", "momentum and decay", "no bias", "standardized"],
)
def test_sufficient_statistics_walk_the_data_path_trajectory(overrides: list[str]) -> None:
    base = ["model.dtype=float64", "train.epochs=80", "train.lr=0.05", "data.validation=0.1", *overrides]
    on_data = fit(synthetic_config(*base, "train.statistics=never"))
    on_stats = fit(synthetic_config(*base, "train.statistics=always"))
    np.testing.assert_allclose(on_stats.weights, on_data.weights, rtol=1e-12, atol=1e-13)
    assert on_stats.bias == pytest.approx(on_data.bias, rel=1e-12, abs=1e-13)
    np.testing.assert_allclose(
        [log.loss for log in on_stats.history], [log.loss for log in on_data.history], rtol=1e-10
    )


def trajectory(*overrides: str) -> np.ndarray:
    """Every epoch's loss, weights and bias, one row per epoch."""
    return np.array([[log.loss, *log.weights, log.bias] for log in fit(synthetic_config(*overrides)).history])


def test_statistics_are_used_automatically_only_where_they_keep_every_digit() -> None:
    # the two ways to a full-batch gradient round differently, so which one `auto` took shows in the last bits
    base = ["train.epochs=40", "train.lr=0.05"]
    on_stats, on_data, auto = (trajectory(*base, "model.dtype=float64", f"train.statistics={c}") for c in STATISTICS)
    assert not np.array_equal(on_stats, on_data)  # else nothing below could tell the paths apart
    np.testing.assert_allclose(on_stats, on_data, rtol=1e-10)
    np.testing.assert_array_equal(auto, on_stats)  # float64, full batch: from the statistics
    on_stats, on_data, auto = (trajectory(*base, "model.dtype=float32", f"train.statistics={c}") for c in STATISTICS)
    assert not np.array_equal(on_stats, on_data)  # `always` is obeyed in float32 too
    np.testing.assert_array_equal(auto, on_data)  # float32 keeps its rounding, step for step
    minibatch = [*base, "model.dtype=float64", "train.batch_size=50"]
    np.testing.assert_array_equal(trajectory(*minibatch), trajectory(*minibatch, "train.statistics=never"))


STATISTICS = ("always", "never", "auto")


def test_lr_auto_is_one_over_the_largest_curvature_and_converges() -> None:
    config = synthetic_config("train.lr=auto", "model.dtype=float64", "train.epochs=400", "data.standardize=true")
    prepared = prepare(sources.load(config), config)
    result = fit(config)
    assert result.history[0].lr == pytest.approx(1 / curvature(prepared.x), rel=1e-12)
    assert result.max_dw_to_optimum < 1e-8


class BlasThreads:
    """A listener that asks, after every epoch of a fit, how many threads each BLAS library may use."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def started(self, start: Start) -> None:
        pass

    def epoch(self, log: EpochLog) -> None:
        self.seen += [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_threads_setting_limits_blas_and_gives_the_same_result() -> None:
    limited, free = BlasThreads(), BlasThreads()
    with threadpool_limits(2, user_api="blas"):  # two threads unless the setting says otherwise, on any machine
        one = fit(synthetic_config("train.threads=1", "train.epochs=20"), limited)
        default = fit(synthetic_config("train.epochs=20"), free)
    assert len(limited.seen) >= 20  # a BLAS was found, every epoch
    assert set(limited.seen) == {1}
    assert set(free.seen) == {2}
    np.testing.assert_allclose(one.weights, default.weights, rtol=1e-6)


def as_prepared(x: np.ndarray, y: np.ndarray, shard: Shard = SINGLE, rows: int | None = None) -> Prepared:
    """Rows handed to an engine as they are: no split, no scaling; `shard` holds them among `rows` in all."""
    d = x.shape[1]
    table = Table(x, y, [f"x{i}" for i in range(d)], "y", "test")
    return Prepared(x, y, None, None, Scaling(np.zeros(d), np.ones(d)), table, shard, rows or len(y), 0)


def one_schedule(batch_size: int | None = None) -> Schedule:
    """One float64 epoch of plain gradient descent at lr 0.1: no momentum, no decay; minibatches shuffled."""
    return Schedule(1, 0.1, 0.0, 0.0, batch_size, True, 7, True, "float64", "cpu")


@pytest.mark.parametrize("features", [1, 40])  # D = 1: the rows in cache-sized blocks; D = 40: in one BLAS call
def test_a_full_batch_epoch_is_the_analytic_mse_gradient_step(features: int) -> None:
    import lrtrain.engine_manual as manual

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(100_003, features)), rng.normal(size=100_003)
    w0, b0 = rng.normal(size=features), 0.3
    (log,) = manual.train(as_prepared(x, y), one_schedule(), State(0, w0, b0))
    r = x @ w0 + b0 - y  # the residual before the step
    assert log.loss == pytest.approx(np.mean(r * r), rel=1e-12)
    np.testing.assert_allclose(log.weights, w0 - 0.1 * (x.T @ (2 * r / len(y))), rtol=1e-12)  # w - lr·Xᵀ(2r/n)
    assert log.bias == pytest.approx(b0 - 0.1 * np.sum(2 * r / len(y)), rel=1e-12)  # b - lr·Σ 2r/n


@pytest.mark.parametrize("d", [2, 40])  # rows in cache-sized blocks, or in one BLAS call
def test_ranks_whose_share_of_a_batch_is_empty_still_take_every_step(d: int) -> None:
    import lrtrain.engine_manual as manual

    rng = np.random.default_rng(6)
    n, batch = 20, 2  # shuffled batches of 2 rows from 20 split 9 + 11: some lie in one rank alone
    x, y, w0 = rng.normal(size=(n, d)), rng.normal(size=n), rng.normal(size=d)
    schedule = one_schedule(batch_size=batch)
    bounds, shared, barrier = (0, 9, n), {}, threading.Barrier(2)
    shards = [ThreadShard(r, 2, bounds[r], bounds[r + 1], shared, barrier) for r in range(2)]
    shares = [[len(np.arange(s.stop - s.start)[rows]) for _, rows in schedule.batches(1, n, s)] for s in shards]
    assert [0 in share for share in shares] == [True, True]  # each rank has a batch it holds no row of
    found: dict[int, list[EpochLog]] = {}
    start = State(0, w0, 0.0)

    def rank(s: ThreadShard) -> None:
        try:
            found[s.rank] = list(
                manual.train(as_prepared(x[s.start : s.stop], y[s.start : s.stop], s, n), schedule, start)
            )
        except BaseException:
            barrier.abort()  # the other rank stops waiting for this one
            raise

    threads = [threading.Thread(target=rank, args=(s,)) for s in shards]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    w, b, total = w0.copy(), 0.0, 0.0
    for m, rows in schedule.batches(1, n, SINGLE):  # the same steps by hand, on all the rows
        r = x[rows] @ w + b - y[rows]
        total += float(np.sum(r * r))
        w, b = w - 0.1 * (x[rows].T @ (2 * r / m)), b - 0.1 * float(np.sum(2 * r / m))
    for logs in (found[0], found[1]):
        (log,) = logs
        np.testing.assert_allclose(log.weights, w, rtol=1e-12)
        assert log.bias == pytest.approx(b, rel=1e-12)
        assert log.loss == pytest.approx(total / n, rel=1e-12)


def test_divergence_advice_gives_the_standardized_limit_without_copying_the_data() -> None:
    import re

    from lrtrain.errors import TrainingFailed

    base = ["data.source=synthetic", "data.rows=500", "data.features=3", "output.save=false", "train.lr=5"]
    config = load_config(None, base)
    raw = sources.load(config)
    scaled = (raw.x - raw.x.mean(axis=0)) / raw.x.std(axis=0)
    with pytest.raises(TrainingFailed) as failed:
        fit(config)
    allowed = float(re.search(r"would allow lr up to ([0-9.e+-]+)\.", str(failed.value)).group(1))  # type: ignore[union-attr]
    assert allowed == pytest.approx(2 / curvature(scaled), rel=1e-3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_r2_matches_sklearn_on_the_training_rows(dtype: str) -> None:
    from sklearn.metrics import r2_score

    config = synthetic_config(f"model.dtype={dtype}", "train.epochs=30", "train.lr=0.05", "data.noise=2")
    raw = sources.load(config)
    x, y = (a.astype(dtype).astype(np.float64) for a in (raw.x, raw.y))  # the rows as trained on
    result = fit(config)
    assert result.r2 == pytest.approx(r2_score(y, x @ result.weights + result.bias), rel=1e-12)


def test_final_and_optimum_losses_are_the_mse_of_the_rows() -> None:
    config = synthetic_config("model.dtype=float64", "train.epochs=50", "train.lr=0.1")
    result = fit(config)
    raw = sources.load(config)
    for w, b, loss in (
        (result.weights, result.bias, result.loss),
        (result.optimum_weights, result.optimum_bias, result.optimum_loss),
    ):
        assert loss == pytest.approx(np.mean((raw.x @ w + b - raw.y) ** 2), rel=1e-13)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("decay", [0.0, 0.05])
@pytest.mark.parametrize("layout", ["in memory", "far from the origin", "read-only", "float32"])
def test_the_solve_gives_its_residual_sum_of_squares_as_a_pass_over_the_rows_would(
    bias: bool, decay: float, layout: str
) -> None:
    """The exact engine's loss comes from the refinement's own pass (|r|² less the refinement's gain), not a
    pass of its own: it equals |Xw + b - y|² summed over the rows, for every kind of table the pass sees."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(5000, 6)) @ rng.normal(size=(6, 6))  # correlated columns: the refinement moves w
    y = x @ rng.normal(size=6) + 2.0 + rng.normal(scale=0.3, size=5000)
    if layout == "far from the origin":
        x = x + 1e4
    if layout == "read-only":
        x.flags.writeable = False
    if layout == "float32":
        x, y = x.astype(np.float32), y.astype(np.float32)
    found = solution(x, y, bias, decay)
    assert found.squares is not None
    rows = (x.astype(np.float64) @ found.weights + found.bias - y.astype(np.float64)) ** 2
    assert found.squares == pytest.approx(rows.sum(), rel=1e-11)
    w, b = solve(x, y, bias, decay)
    np.testing.assert_array_equal(w, found.weights)
    assert b == found.bias


def test_an_exact_fit_reports_a_loss_of_zero_not_a_negative_one() -> None:
    x = np.linspace(0, 1, 50)[:, None] ** np.arange(1, 4)
    y = x @ np.array([1.0, -2.0, 3.0]) + 0.5
    found = solution(x, y, True)
    assert found.squares is not None
    assert 0.0 <= found.squares < 1e-25


def test_a_solve_by_qr_leaves_the_sum_of_squares_to_a_pass_of_its_own() -> None:
    x = np.random.default_rng(3).normal(size=(200, 2))
    x = np.column_stack([x, x[:, 0] + 1e-9 * x[:, 1]])  # cond(G) far beyond CHOLESKY_MAX_CONDITION
    found = solution(x, x @ np.ones(3), True)
    assert found.squares is None


def test_compare_gives_every_engine_the_optimum_of_the_data() -> None:
    config = synthetic_config("train.epochs=20", "train.lr=0.1", "model.dtype=float64")
    first, second = compare(config, ["manual", "torch"]).results
    assert first.optimum_loss == second.optimum_loss
    np.testing.assert_array_equal(first.optimum_weights, second.optimum_weights)
    w_ref, b_ref = reference_lstsq(config)
    np.testing.assert_allclose(first.optimum_weights, w_ref, rtol=1e-10)
    assert first.optimum_bias == pytest.approx(b_ref, rel=1e-10)


def laid_out(table: np.ndarray, layout: str) -> np.ndarray:
    """The feature columns of (x | y) as a data source may hand them over."""
    if layout == "read-only":
        x = np.ascontiguousarray(table[:, :-1])
        x.flags.writeable = False  # as a mapped .npy file holding x alone would be
        return x
    if layout == "mapped columns":
        mapped = table.copy()
        mapped.flags.writeable = False  # a .npy file of (x | y) mapped with mode "r": x is a strided view of it
        return mapped[:, :-1]
    return np.asfortranarray(table[:, :-1])  # as an .npz written from a column-major array


@pytest.mark.parametrize("layout", ["read-only", "column-major", "mapped columns"])
def test_torch_trains_on_rows_in_any_layout_as_manual_does(layout: str) -> None:
    # torch.from_numpy warns of a read-only array (an error here): such rows reach torch as a copy
    import lrtrain.engine_manual as manual
    import lrtrain.engine_torch as engine_torch

    table = np.random.default_rng(10).normal(size=(200, 4))
    x = laid_out(table, layout)
    schedule = Schedule(8, 0.05, 0.9, 0.0, 32, True, 0, True, "float64", "cpu")
    start = State(0, np.zeros(3), 0.0)
    walks = [list(engine.train(as_prepared(x, table[:, -1]), schedule, start)) for engine in (engine_torch, manual)]
    for a, b in zip(*walks, strict=True):
        np.testing.assert_allclose(a.weights, b.weights, rtol=1e-10)
        assert a.loss == pytest.approx(b.loss, rel=1e-10)


def test_the_torch_engine_leaves_the_rows_it_trains_on_as_they_were() -> None:
    import lrtrain.engine_torch as engine_torch

    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(300, 4)), rng.normal(size=300)  # C-contiguous float64: the run's own dtype
    kept = x.copy(), y.copy()
    schedule = Schedule(5, 0.05, 0.9, 0.01, 32, True, 0, True, "float64", "cpu")
    logs = list(engine_torch.train(as_prepared(x, y), schedule, State(0, np.zeros(4), 0.0)))
    assert len(logs) == 5
    np.testing.assert_array_equal(x, kept[0])
    np.testing.assert_array_equal(y, kept[1])


def test_exact_solves_in_float64_in_fit_and_in_compare_alike() -> None:
    overrides = ["data.source=synthetic", "data.rows=500", "data.features=3", "output.save=false"]
    config = load_config(None, [*overrides, "model.dtype=float32", "train.engine=exact"])
    alone = fit(config)
    (among,) = [r for r in compare(config, ["manual", "exact"]).results if r.engine == "exact"]
    in_float64 = fit(load_config(None, [*overrides, "model.dtype=float64", "train.engine=exact"]))
    assert alone.dtype == among.dtype == "float64"
    np.testing.assert_array_equal(alone.weights, in_float64.weights)
    np.testing.assert_array_equal(among.weights, in_float64.weights)


@pytest.mark.parametrize(
    "overrides",
    [["train.momentum=0.9", "train.batch_size=64"], ["train.momentum=0", "model.bias=false"]],
    ids=["momentum, minibatches", "plain, no bias"],
)
def test_torch_logs_copied_in_chunks_are_the_logs_of_every_epoch(
    monkeypatch: pytest.MonkeyPatch, overrides: list[str]
) -> None:
    """On a GPU the logs leave the device in chunks; forced on the CPU, every log must be unchanged."""
    from lrtrain import engine_torch

    base = ["data.source=synthetic", "data.rows=300", "data.features=3", "train.engine=torch", "train.epochs=23"]
    config = load_config(None, [*base, *overrides, "output.save=false", "model.dtype=float64"])
    one_by_one = fit(config)
    # no setting chooses the chunk: it follows the device type, and a CPU has nothing to wait for
    monkeypatch.setattr(engine_torch._Logs, "chunks", {"cpu": 7})
    monkeypatch.setattr(engine_torch._Logs, "seconds", 1e9)
    chunked = fit(config)
    assert [log.epoch for log in chunked.history] == list(range(1, 24))
    for a, b in zip(one_by_one.history, chunked.history, strict=True):
        assert (a.loss, a.bias, a.velocity_b) == (b.loss, b.bias, b.velocity_b)
        np.testing.assert_array_equal(a.weights, b.weights)
        assert (a.velocity_w is None) == (b.velocity_w is None)
        if a.velocity_w is not None:
            np.testing.assert_array_equal(a.velocity_w, b.velocity_w)
    ran: list[int] = []

    class Watched(Schedule):
        def batches(self, epoch: int, n: int, shard: Shard = SINGLE) -> Iterator[tuple[int, slice | np.ndarray]]:
            ran.append(epoch)
            return super().batches(epoch, n, shard)

    prepared = prepare(sources.load(config), config)
    watched = Watched(23, 0.01, 0.0, 0.0, None, True, 0, True, "float64", "cpu")
    next(engine_torch.train(prepared, watched, State(0, np.zeros(3), 0.0)))
    assert ran == list(range(1, 8))  # the first log came with a chunk of 7 epochs: the copies were chunked
