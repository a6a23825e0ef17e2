"""lrtrain.stats against an independent reference: statsmodels' OLS for the summary and the
prediction intervals."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.regression.linear_model import RegressionResults
from statsmodels.tools.sm_exceptions import SingularMatrixWarning

from lrtrain import stats
from lrtrain.moments import moments

RTOL = 1e-8  # against statsmodels, at the exact optimum


# --------------------------------------------------------------------------- data sets


def correlated() -> tuple[np.ndarray, np.ndarray]:
    """200 rows, 4 correlated features with nonzero means, one of them with no effect."""
    rng = np.random.default_rng(0)
    covariance = [[1, 0.8, 0.3, 0], [0.8, 1, 0.5, 0.2], [0.3, 0.5, 1, 0.6], [0, 0.2, 0.6, 1]]
    x = rng.multivariate_normal([1, -2, 3, 0.5], covariance, size=200)
    return x, x @ [1.5, -0.7, 0.2, 0.0] + 2 + rng.normal(size=200)


def one_feature() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, size=(15, 1))
    return x, 3 * x[:, 0] - 1 + rng.normal(size=15)


def polynomial() -> tuple[np.ndarray, np.ndarray]:
    """u, u², u³, u⁴ for u in [1, 5]: condition number about 2e4."""
    rng = np.random.default_rng(2)
    u = rng.uniform(1, 5, size=100)
    return np.column_stack([u, u**2, u**3, u**4]), 1 - u + 0.5 * u**2 + 0.1 * u**3 + rng.normal(scale=0.3, size=100)


def strong() -> tuple[np.ndarray, np.ndarray]:
    """A strong signal in little noise: p-values near 1e-240, which 1 − cdf would round to 0."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 2))
    return x, x @ [2.0, 0.05] + 1 + rng.normal(scale=0.3, size=300)


DATASETS = [correlated, one_feature, polynomial, strong]


def names(x: np.ndarray) -> list[str]:
    return [f"x{i}" for i in range(x.shape[1])]


def fit(
    x: np.ndarray, y: np.ndarray, intercept: bool = True, factored: bool = False
) -> tuple[stats.Summary, RegressionResults]:
    """Our summary at the lstsq optimum, and statsmodels' results on the same data; `factored`: the summary
    takes the design's R (of a QR of the rows about their means, or about the origin) instead of the moments."""
    design = sm.add_constant(x, has_constant="add") if intercept else x
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    rss = float(np.sum((y - design @ solution) ** 2))
    weights, bias = (solution[1:], float(solution[0])) if intercept else (solution, None)
    factor = np.linalg.qr(x - x.mean(axis=0) if intercept else x, mode="r") if factored else None
    summary = stats.summarize(moments(x, y), weights, bias, rss, names(x), factor=factor)
    return summary, sm.OLS(y, design).fit()


def assert_matches(summary: stats.Summary, reference: RegressionResults) -> None:
    def column(field: str) -> np.ndarray:
        return np.array([getattr(term, field) for term in summary.terms])

    interval = reference.conf_int(alpha=0.05)
    for ours, theirs in [
        (column("coef"), reference.params),
        (column("std_err"), reference.bse),
        (column("t"), reference.tvalues),
        (column("p_value"), reference.pvalues),
        (column("ci_low"), interval[:, 0]),
        (column("ci_high"), interval[:, 1]),
        (np.array(summary.unscaled_covariance), reference.normalized_cov_params),
        (summary.r2, reference.rsquared),
        (summary.adj_r2, reference.rsquared_adj),
        (summary.f_stat, reference.fvalue),
        (summary.f_p_value, reference.f_pvalue),
        (summary.sigma2, reference.scale),
        (summary.residual_std_error, np.sqrt(reference.scale)),
        (summary.log_likelihood, reference.llf),
        (summary.aic, reference.aic),
        (summary.bic, reference.bic),
        (summary.condition_number, reference.condition_number),
    ]:
        np.testing.assert_allclose(ours, theirs, rtol=RTOL)
    assert (summary.n, summary.df_model, summary.df_resid) == (reference.nobs, reference.df_model, reference.df_resid)


# --------------------------------------------------------------------------- the summary against statsmodels


@pytest.mark.parametrize("factored", [False, True], ids=["from moments", "from R"])
@pytest.mark.parametrize("make", DATASETS, ids=lambda make: make.__name__)
def test_summary_matches_statsmodels(make: Callable[[], tuple[np.ndarray, np.ndarray]], factored: bool) -> None:
    x, y = make()
    summary, reference = fit(x, y, factored=factored)
    assert_matches(summary, reference)
    assert [term.name for term in summary.terms] == ["intercept", *names(x)]


def test_confidence_level_is_respected() -> None:
    x, y = correlated()
    summary, reference = fit(x, y)
    at_90 = stats.summarize(
        moments(x, y), [t.coef for t in summary.terms[1:]], summary.terms[0].coef, summary.rss, names(x), level=0.9
    )
    interval = reference.conf_int(alpha=0.1)
    np.testing.assert_allclose([t.ci_low for t in at_90.terms], interval[:, 0], rtol=RTOL)
    np.testing.assert_allclose([t.ci_high for t in at_90.terms], interval[:, 1], rtol=RTOL)


@pytest.mark.parametrize("factored", [False, True], ids=["from moments", "from R"])
def test_summary_without_intercept_matches_statsmodels(factored: bool) -> None:
    summary, reference = fit(*correlated(), intercept=False, factored=factored)
    assert reference.k_constant == 0
    assert_matches(summary, reference)  # R² here is the uncentered 1 − RSS/yᵀy, as statsmodels'
    assert [term.name for term in summary.terms] == names(correlated()[0])


@pytest.mark.parametrize("factored", [False, True], ids=["from moments", "from R"])
@pytest.mark.parametrize("constant", ["a constant column", "indicators of every level"])
def test_without_intercept_features_that_make_a_constant_center_r2_as_statsmodels(
    constant: str, factored: bool
) -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(120, 2))
    made = np.full((120, 1), 2.5) if constant == "a constant column" else np.eye(3)[rng.integers(0, 3, size=120)]
    design = np.column_stack([x, made])
    y = design @ rng.normal(size=design.shape[1]) + rng.normal(scale=0.4, size=120)
    summary, reference = fit(design, y, intercept=False, factored=factored)
    assert reference.k_constant == 1  # statsmodels finds the constant the features make
    assert summary.implicit_constant
    assert_matches(summary, reference)  # R², adjusted R², F and df_model about ȳ


def test_condition_number_warning_follows_statsmodels_threshold() -> None:
    ill, _ = fit(*polynomial())
    assert ill.condition_number > 1e4
    assert len(ill.warnings) == 1
    assert "condition number is large" in ill.warnings[0]
    well, _ = fit(*correlated())
    assert well.condition_number < 1000
    assert well.warnings == ()


def test_weights_off_the_optimum_use_their_own_rss() -> None:
    x, y = correlated()
    w, b = np.array([1.4, -0.6, 0.25, 0.05]), 2.1  # e.g. where gradient descent stopped
    rss = float(np.sum((x @ w + b - y) ** 2))
    summary = stats.summarize(moments(x, y), w, b, rss, names(x))
    assert [term.coef for term in summary.terms] == [b, *w]
    assert summary.sigma2 == pytest.approx(rss / (200 - 5), rel=1e-15)
    assert summary.r2 == pytest.approx(1 - rss / float(np.sum((y - y.mean()) ** 2)), rel=1e-12)
    _, reference = fit(x, y)  # the covariance depends on the design only
    np.testing.assert_allclose(np.array(summary.unscaled_covariance), reference.normalized_cov_params, rtol=RTOL)


def test_to_dict_is_plain_json() -> None:
    summary, _ = fit(*one_feature())
    plain = summary.to_dict()
    assert json.loads(json.dumps(plain, allow_nan=False)) == plain
    assert plain["terms"][0]["name"] == "intercept"
    assert plain["unscaled_covariance"] == [list(row) for row in summary.unscaled_covariance]


# --------------------------------------------------------------------------- edge cases


def test_no_residual_degrees_of_freedom_gives_nan_and_a_warning() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(3, 2)), rng.normal(size=3)  # 3 rows, 3 parameters: an exact fit
    summary, _ = fit(x, y)
    assert summary.df_resid == 0
    for term in summary.terms:
        assert math.isfinite(term.coef)
        assert all(math.isnan(v) for v in (term.std_err, term.t, term.p_value, term.ci_low, term.ci_high))
    assert all(math.isnan(v) for v in (summary.adj_r2, summary.f_stat, summary.f_p_value, summary.sigma2))
    assert len(summary.warnings) == 1
    assert "no residual degrees of freedom" in summary.warnings[0]
    json.dumps(summary.to_dict(), allow_nan=False)  # nan became None
    _, low, high = stats.prediction_interval(
        [0.1, 0.2], [0.0, 0.0], 0.0, summary.unscaled_covariance, summary.sigma2, 0
    )
    assert math.isnan(low)
    assert math.isnan(high)


@pytest.mark.parametrize("factored", [False, True], ids=["from moments", "from R"])
def test_singular_design_warns_and_matches_statsmodels_where_identifiable(factored: bool) -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(size=(50, 2))
    x = np.column_stack([base, base[:, 0], np.full(50, 3.0)])  # a duplicated and a constant feature
    y = base @ [1.0, -2.0] + rng.normal(size=50)
    with pytest.warns(SingularMatrixWarning):
        summary, reference = fit(x, y, factored=factored)
    assert (summary.df_model, summary.df_resid) == (reference.df_model, reference.df_resid) == (2, 47)
    assert len(summary.warnings) == 1
    assert "singular" in summary.warnings[0]
    assert "'x3' is constant" in summary.warnings[0]
    assert "'x0', 'x2' are linearly dependent" in summary.warnings[0]
    assert math.isnan(summary.terms[4].std_err)  # the constant feature
    # x1 is identifiable: its standard error does not depend on the generalized inverse
    np.testing.assert_allclose(summary.terms[2].std_err, reference.bse[2], rtol=RTOL)
    np.testing.assert_allclose(summary.terms[2].p_value, reference.pvalues[2], rtol=RTOL)


def test_a_constant_feature_alone_is_named_without_inventing_a_dependency() -> None:
    rng = np.random.default_rng(6)
    x = np.column_stack([rng.normal(size=40), np.full(40, 3.0), rng.normal(size=40)])
    y = x[:, 0] - x[:, 2] + rng.normal(size=40)
    with pytest.warns(SingularMatrixWarning):
        summary, _ = fit(x, y)
    (warning,) = summary.warnings
    assert "'x1' is constant" in warning
    assert "dependent" not in warning


# --------------------------------------------------------------------------- p-values in the tails and at the edges


def test_p_values_far_in_the_tail_keep_their_digits() -> None:
    summary, reference = fit(*strong())
    assert min(term.p_value for term in summary.terms) < 1e-200
    assert summary.f_p_value < 1e-200
    assert_matches(summary, reference)  # relative, so a p-value of 0 would fail here


def test_p_values_of_an_exact_fit_and_of_weights_worse_than_none() -> None:
    x = np.arange(1.0, 11.0)[:, None]
    exact = stats.summarize(moments(x, 2 * x[:, 0] + 1), [2.0], 1.0, 0.0, ["x0"])  # RSS = 0: t, F infinite
    assert [term.p_value for term in exact.terms] == [0.0, 0.0]
    assert exact.f_p_value == 0.0
    assert exact.warnings == (
        "The model fits every row exactly (RSS = 0): standard errors are 0 and t statistics infinite.",
    )
    x, y = correlated()
    rss = float(np.sum((y - 100.0) ** 2))  # all weights 0 and a bias far off: RSS > TSS, so F < 0
    off = stats.summarize(moments(x, y), np.zeros(4), 100.0, rss, names(x))
    assert off.f_stat < 0
    assert off.f_p_value == 1.0  # every F is above a negative one, as scipy.stats.f.sf(-1, ...) says


# --------------------------------------------------------------------------- prediction intervals


@pytest.mark.parametrize("intercept", [True, False])
def test_prediction_interval_matches_statsmodels(intercept: bool) -> None:
    x, y = correlated()
    summary, reference = fit(x, y, intercept)
    stored = json.loads(json.dumps(summary.to_dict()))  # as a model file would hold it
    weights = [term["coef"] for term in stored["terms"]][int(intercept) :]
    bias = stored["terms"][0]["coef"] if intercept else None
    samples = np.array([[1.0, -2.0, 3.0, 0.5], [4.0, 1.0, -1.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    design = sm.add_constant(samples, has_constant="add") if intercept else samples
    frame = reference.get_prediction(design).summary_frame(alpha=0.05)
    for i, sample in enumerate(samples.tolist()):
        prediction, low, high = stats.prediction_interval(
            sample, weights, bias, stored["unscaled_covariance"], stored["sigma2"], stored["df_resid"], 0.95
        )
        np.testing.assert_allclose(
            [prediction, low, high], frame.loc[i, ["mean", "obs_ci_lower", "obs_ci_upper"]], rtol=RTOL
        )


@pytest.mark.slow
def test_prediction_interval_imports_scipy_special_only_when_called_and_nothing_above_stats() -> None:
    script = (
        "import sys\n"
        "from lrtrain.stats import prediction_interval\n"
        "assert not {'numpy', 'scipy'} & set(sys.modules), 'importing lrtrain.stats imported numpy or scipy'\n"
        "print(prediction_interval([2.0], [3.0], 1.0, [[0.5, -0.1], [-0.1, 0.05]], 0.25, 10, 0.95))\n"
        "assert 'scipy.special' in sys.modules\n"
        "heavy = {'lrtrain.training', 'lrtrain.prepare', 'lrtrain.sources', 'lrtrain.cli', 'torch', 'typer',"
        " 'pydantic', 'rich'}\n"
        "assert not heavy & set(sys.modules), sorted(heavy & set(sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
