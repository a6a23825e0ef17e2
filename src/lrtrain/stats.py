"""OLS inference for a fitted linear model, as statsmodels' `OLS(...).fit().summary()` reports it.

`summarize` takes the training rows' sufficient statistics (`lrtrain.moments.Moments`), the final
weights — the exact optimum or wherever gradient descent stopped — and their residual sum of
squares, and returns standard errors, t statistics, p-values, confidence intervals, R², F, the
log-likelihood, AIC/BIC and the condition number. It never touches the N×D data, so it costs
O(D³) whatever N is. Conventions follow statsmodels: `k_constant` = 1 with an intercept
(`df_resid` = n − D − 1, centered R²) and 0 without (`df_resid` = n − D, uncentered R²).

The distribution functions (regularized incomplete beta, Student t, F) are pure `math`, and so
is `prediction_interval`, so `lrtrain predict --interval` runs without NumPy: NumPy is imported
inside `summarize` only. They keep full relative accuracy deep in the tails (p ≈ 1e-300) and
for large degrees of freedom (1e7).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from lrtrain.moments import Moments

CONDITION_WARNING = 1000.0  # statsmodels' summary notes a condition number above this
RANK_TOLERANCE = 1e-13  # eigenvalues of the equilibrated Gram matrix below this · largest count as zero


# --------------------------------------------------------------------------- special functions

_EPS = sys.float_info.epsilon
_TINY = 1e-300  # Lentz's guard against a zero denominator
_LOG_2PI = math.log(2 * math.pi)
_LOG_MAX = 709.78  # log of the largest float, rounded down
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156, -3617 / 122400)


def _stirling_tail(z: float) -> float:
    """δ(z) = lgamma(z) − [(z − ½)·log z − z + ½·log 2π], for z ≥ 10 (error below 1e-17)."""
    inv, inv2 = 1 / z, 1 / (z * z)
    total = 0.0
    for coefficient in reversed(_STIRLING):  # Σ B₂ₖ / (2k(2k−1) z^(2k−1)), Horner in 1/z²
        total = total * inv2 + coefficient
    return total * inv


def _log_beta(a: float, b: float) -> float:
    """log B(a, b) = lgamma(a) + lgamma(b) − lgamma(a + b), without the cancellation of large lgammas."""
    small, large = min(a, b), max(a, b)
    if large < 10:
        return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    if small < 10:
        # lgamma(L + s) − lgamma(L) = (L − ½)·log1p(s/L) + s·log(L + s) − s + δ(L + s) − δ(L)
        rise = (
            (large - 0.5) * math.log1p(small / large)
            + small * math.log(large + small)
            - small
            + _stirling_tail(large + small)
            - _stirling_tail(large)
        )
        return math.lgamma(small) - rise
    # Stirling for all three: ½·log 2π − (a − ½)·log1p(b/a) − (b − ½)·log1p(a/b) − ½·log(a + b) + δ(a) + δ(b) − δ(a + b)
    return (
        0.5 * _LOG_2PI
        - (a - 0.5) * math.log1p(b / a)
        - (b - 0.5) * math.log1p(a / b)
        - 0.5 * math.log(a + b)
        + _stirling_tail(a)
        + _stirling_tail(b)
        - _stirling_tail(a + b)
    )


def _beta_fraction(a: float, b: float, x: float, y: float) -> float:
    """The continued fraction of I_x(a, b) by modified Lentz (Numerical Recipes' betacf), y = 1 − x.

    It converges for x < (a + 1)/(a + b + 2), in O(√max(a, b)) terms. The odd terms are
    1 − x·(1 − ε) ≈ 0 when x is near 1 (a ≫ b): they are formed as y + x·ε from the exact y,
    never as 1 − x, which would leave only the digits of 1 − x that x carries.
    """

    def guarded(value: float) -> float:
        return value if abs(value) > _TINY else _TINY

    def odd_delta(m: int) -> float:  # 1 + d₂ₘ₊₁, d₂ₘ₊₁ = −(a + m)(a + b + m)x / ((a + 2m)(a + 2m + 1))
        span = (a + 2 * m) * (a + 2 * m + 1)
        epsilon = (a * (2 * m + 1 - b) + 3 * m * m + 2 * m - b * m) / span  # 1 − (a + m)(a + b + m)/span
        return y + x * epsilon

    d = 1 / guarded(odd_delta(0))  # NR: c = 1, d = 1/(1 − (a + b)x/(a + 1)), h = d
    c, h = 1.0, d
    for m in range(1, 200 + 20 * int(math.sqrt(max(a, b)))):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))  # d₂ₘ
        z = even * d
        d = 1 / guarded(1 + z)
        one_minus_d = z * d  # 1 − 1/(1 + z), without the subtraction
        c_minus_one = even / c
        c = guarded(1 + c_minus_one)
        h *= d * c
        delta = odd_delta(m)  # odd step: 1 + d₂ₘ₊₁·D = δ·D + (1 − D),  1 + d₂ₘ₊₁/C = (C − 1 + δ)/C
        d_new = 1 / guarded(delta * d + one_minus_d)
        c = guarded((c_minus_one + delta) / c)
        d = d_new
        step = d * c
        h *= step
        if abs(step - 1) <= 1e-15:
            break
    return h


def _beta_front(a: float, b: float, x: float, y: float, log_x: float, log_y: float) -> float:
    """I_x(a, b) = x^a (1 − x)^b / (a·B(a, b)) · betacf, with the powers taken in logs (y = 1 − x)."""
    exponent = a * log_x + b * log_y - _log_beta(a, b)
    return math.exp(exponent) / a * _beta_fraction(a, b, x, y) if exponent > -800 else 0.0  # e^-800: 0 anyway


def _beta_split(a: float, b: float, log_u: float) -> tuple[float, float]:
    """(I_x(a, b), 1 − I_x(a, b)) at x = 1/(1 + u), each to about 1e-14 relative however small.

    u is given as log u, so that x and 1 − x = u/(1 + u) both keep their digits at either end.
    The continued fraction is summed on its fast side, x < (a + 1)/(a + b + 2), where the value
    is the smaller tail; the other comes from the symmetry I_x(a, b) = 1 − I_(1−x)(b, a).
    """
    if log_u > 0:  # log y = −log(1 + 1/u), log x = log y − log u
        log_y = -math.log1p(math.exp(-log_u))
        log_x = log_y - log_u
    else:
        log_x = -math.log1p(math.exp(log_u))
        log_y = log_x + log_u
    x, y = math.exp(log_x), math.exp(log_y)
    if x < (a + 1) / (a + b + 2):
        lower = _beta_front(a, b, x, y, log_x, log_y)
        return lower, 1 - lower
    upper = _beta_front(b, a, y, x, log_y, log_x)
    return 1 - upper, upper


def _log_ratio(numerator: float, denominator: float) -> float:
    """log(numerator/denominator) for positive finite values, even where the ratio over- or underflows."""
    ratio = numerator / denominator
    if 1e-300 < ratio < math.inf:
        return math.log(ratio)
    return math.log(numerator) - math.log(denominator)


def t_two_sided(t: float, df: float) -> float:
    """P(|T| ≥ |t|) for Student's t with df degrees of freedom: I_(df/(df + t²))(df/2, ½)."""
    if math.isnan(t) or math.isnan(df) or df <= 0:
        return math.nan
    if math.isinf(t):
        return 0.0
    if t == 0:
        return 1.0
    return _beta_split(df / 2, 0.5, 2 * _log_ratio(abs(t), math.sqrt(df)))[0]  # u = t²/df


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom."""
    half = 0.5 * t_two_sided(t, df)
    return half if t >= 0 or math.isnan(half) else 1 - half


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with df degrees of freedom."""
    return t_sf(-t, df)


def _t_log_pdf(t: float, df: float) -> float:
    # f(t) = (1 + t²/df)^(−(df + 1)/2) / (√df · B(df/2, ½))
    log1p_u = math.log1p((t / math.sqrt(df)) ** 2) if abs(t) < 1e150 else 2 * math.log(abs(t) / math.sqrt(df))
    return -(df + 1) / 2 * log1p_u - 0.5 * math.log(df) - _log_beta(df / 2, 0.5)


def t_isf(p: float, df: float) -> float:
    """The t with P(T > t) = p (Student's t, df degrees of freedom), to about 1e-15 relative.

    Safeguarded Newton on log P(T > e^v) = log p over v = log t, where the tails are nearly
    straight lines; the root stays bracketed and a step that leaves the bracket bisects it.
    """
    if math.isnan(p) or math.isnan(df) or df <= 0 or not 0 <= p <= 1:
        return math.nan
    if p > 0.5:
        return -t_isf(1 - p, df)
    if p == 0.5:
        return 0.0
    if p == 0:
        return math.inf
    log_p = math.log(p)

    def excess(v: float) -> tuple[float, float]:  # (log P(T > e^v) − log p, its slope in v); decreasing in v
        t = math.exp(v)
        tail = t_sf(t, df)
        if tail <= 0:
            return -math.inf, -math.inf
        log_tail = math.log(tail)
        return log_tail - log_p, -t * math.exp(_t_log_pdf(t, df) - log_tail)  # d/dv log P(T > e^v) = −t·f(t)/P

    # bracket [low, high] with excess(low) > 0 > excess(high), in steps that double
    low, high = -math.inf, math.inf
    v, step = 0.0, 1.0
    while True:
        value, _ = excess(v)
        if value > 0:
            low = v
        else:
            high = v
        if low > -math.inf and high < math.inf:
            break
        if abs(v) >= _LOG_MAX:  # t beyond the floating-point range
            return math.inf if value > 0 else 0.0
        v = min(v + step, _LOG_MAX) if value > 0 else max(v - step, -_LOG_MAX)
        step *= 2
    v = (low + high) / 2
    for _ in range(100):
        value, slope = excess(v)
        if value == 0:
            break
        if value > 0:
            low = v
        else:
            high = v
        guess = v - value / slope if -math.inf < slope < 0 else math.nan  # Newton
        if not low < guess < high:
            guess = (low + high) / 2  # bisection
        tolerance = 2 * _EPS * max(1.0, abs(v))
        converged = abs(guess - v) <= tolerance or high - low <= tolerance
        v = guess
        if converged:
            break
    return math.exp(v)


def t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student's t with df degrees of freedom."""
    return t_isf(1 - q, df) if q >= 0.5 else -t_isf(q, df)


def f_sf(f: float, df1: float, df2: float) -> float:
    """P(F > f) for the F distribution with (df1, df2) degrees of freedom: I_(df2/(df2 + df1·f))(df2/2, df1/2)."""
    if math.isnan(f) or math.isnan(df1) or math.isnan(df2) or df1 <= 0 or df2 <= 0:
        return math.nan
    if f <= 0:
        return 1.0
    if math.isinf(f):
        return 0.0
    return _beta_split(df2 / 2, df1 / 2, _log_ratio(f, df2 / df1))[0]  # u = df1·f/df2


# --------------------------------------------------------------------------- the summary


@dataclass(frozen=True)
class Term:
    """One row of the coefficient table."""

    name: str
    coef: float
    std_err: float
    t: float
    p_value: float  # two-sided: P(|T| ≥ |t|), T ~ Student t with df_resid degrees of freedom
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Summary:
    """What statsmodels' OLS summary shows; nan where a statistic is undefined (see `warnings`)."""

    terms: tuple[Term, ...]  # the intercept first (statsmodels' "const"), then the features in order
    intercept: bool  # k_constant = 1
    n: int
    df_model: int  # rank − k_constant
    df_resid: int  # n − rank
    level: float  # of the confidence intervals
    r2: float  # 1 − RSS/Σ(y − ȳ)² with an intercept; 1 − RSS/Σy² (uncentered) without, as statsmodels
    adj_r2: float  # 1 − (n − k_constant)/df_resid · (1 − R²)
    f_stat: float  # (ESS/df_model)/(RSS/df_resid): all weights zero against the model
    f_p_value: float
    rss: float
    sigma2: float  # RSS/df_resid, the scale
    residual_std_error: float  # √σ²
    log_likelihood: float  # −n/2·(log 2π + log(RSS/n) + 1)
    aic: float  # −2·llf + 2·(df_model + k_constant)
    bic: float  # −2·llf + log n·(df_model + k_constant)
    condition_number: float  # σ_max/σ_min of [1 X] (of X without an intercept), uncentered, as statsmodels
    unscaled_covariance: tuple[tuple[float, ...], ...]  # (X̃ᵀX̃)⁻¹ over the terms, in their order; σ²· it is Cov
    warnings: tuple[str, ...]

    def to_dict(self, covariance: bool = True) -> dict[str, Any]:
        """Plain JSON-ready data: dicts, lists, str, int, float, and None for nan or ±inf (JSON has neither);
        without the covariance (None in its place) unless asked, since it has (D + 1)² numbers."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "unscaled_covariance"}
        plain: dict[str, Any] = _plain({**fields, "terms": [dataclasses.asdict(term) for term in self.terms]})
        plain["unscaled_covariance"] = _plain(self.unscaled_covariance) if covariance else None
        return plain


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _ratio(numerator: float, denominator: float) -> float:
    """numerator/denominator for denominator ≥ 0 or nan: ±inf over zero, nan for 0/0, never an exception."""
    if denominator == 0:
        return math.nan if numerator == 0 or math.isnan(numerator) else math.copysign(math.inf, numerator)
    return numerator / denominator


def summarize(
    moments: Moments,
    weights: np.ndarray | Sequence[float],
    bias: float | None,
    rss: float,
    features: Sequence[str],
    level: float = 0.95,
) -> Summary:
    """OLS inference for the given weights (and bias; None: a model without an intercept).

    `moments` are the training rows' centered sums in raw feature units, as `lrtrain.moments.moments`
    gives them (without an intercept they are taken about the origin here); `rss` is Σ(ŷ − y)² of
    these weights on these rows. The weights need not be the optimum: σ² = RSS/df_resid is theirs.
    """
    import numpy as np

    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    d = len(w)
    if len(features) != d or moments.gram.shape != (d, d):
        raise ValueError(f"{d} weights, {len(features)} feature names and a {moments.gram.shape} Gram matrix")
    if moments.n < 1 or not rss >= 0 or not 0 < level < 1:
        raise ValueError(f"need n ≥ 1, rss ≥ 0 and 0 < level < 1; got n = {moments.n}, rss = {rss}, level = {level}")
    intercept = bias is not None
    stats = moments if intercept else moments.uncentered()
    n, k_constant = stats.n, int(intercept)
    gram_inverse, rank_gram, factor, constant, dependent = _decompose(stats.gram)
    rank = rank_gram + k_constant
    df_model, df_resid = rank - k_constant, n - rank
    names = ["intercept", *features] if intercept else list(features)
    coef = ([float(bias)] if bias is not None else []) + [float(v) for v in w]
    if intercept:
        # X̃ = [1 X] = [1 A]·T, T = [[1, μᵀ], [0, I]]  ⇒  (X̃ᵀX̃)⁻¹ = T⁻¹·diag(1/n, G⁻¹)·T⁻ᵀ
        #   = [[1/n + μᵀG⁻¹μ, −(G⁻¹μ)ᵀ], [−G⁻¹μ, G⁻¹]]: Var(b) = σ²(1/n + μᵀG⁻¹μ), Cov(w, b) = −σ²G⁻¹μ
        g_mu = gram_inverse @ stats.x_mean
        covariance = np.empty((d + 1, d + 1))
        covariance[0, 0] = 1 / n + float(stats.x_mean @ g_mu)
        covariance[0, 1:] = covariance[1:, 0] = -g_mu
        covariance[1:, 1:] = gram_inverse
        # singular values of X̃ are those of R = [[√n, √n μᵀ], [0, Fᵀ]] (G = FFᵀ), since X̃ᵀX̃ = RᵀR
        r_factor = np.zeros((d + 1, d + 1))
        r_factor[0, 0], r_factor[0, 1:], r_factor[1:, 1:] = math.sqrt(n), math.sqrt(n) * stats.x_mean, factor
    else:
        covariance, r_factor = gram_inverse, factor  # XᵀX = FFᵀ
    singular_values = np.linalg.svd(r_factor, compute_uv=False) if r_factor.size else np.ones(1)
    condition = float(singular_values[0] / singular_values[-1]) if singular_values[-1] > 0 else math.inf

    sigma2 = rss / df_resid if df_resid > 0 else math.nan  # σ² = RSS/(n − rank)
    quantile = t_isf((1 - level) / 2, df_resid)  # t_((1 + level)/2, df_resid)
    terms = []
    for i, (name, value) in enumerate(zip(names, coef, strict=True)):
        variance = float(covariance[i, i])  # 0 only for a term the pseudo-inverse dropped: not identifiable
        std_err = math.sqrt(sigma2 * variance) if variance > 0 else math.nan  # √(σ²·(X̃ᵀX̃)⁻¹ᵢᵢ)
        t = _ratio(value, std_err)
        margin = quantile * std_err
        terms.append(Term(name, value, std_err, t, t_two_sided(t, df_resid), value - margin, value + margin))

    tss = stats.tt  # Σ(y − ȳ)² with an intercept, Σy² without
    r2 = 1 - rss / tss if tss > 0 else math.nan
    adj_r2 = 1 - (n - k_constant) / df_resid * (1 - r2) if df_resid > 0 else math.nan
    f_stat = _ratio((tss - rss) / df_model, sigma2) if df_model > 0 and df_resid > 0 else math.nan  # ESS = TSS − RSS
    # llf = −n/2·log 2π − n/2·log(RSS/n) − n/2: +inf for an exact fit, as statsmodels
    log_likelihood = -n / 2 * (_LOG_2PI + math.log(rss / n) + 1) if rss > 0 else math.inf
    k_params = df_model + k_constant

    notes = []
    if df_resid <= 0:
        notes.append(
            f"{n} rows for {rank} parameters leave no residual degrees of freedom (df_resid = {df_resid}): "
            "standard errors, t, p-values, intervals, adjusted R² and F are undefined (nan). Use more rows."
        )
    elif rss == 0:
        notes.append("The model fits every row exactly (RSS = 0): standard errors are 0 and t statistics infinite.")
    if rank < len(names):
        notes.append(
            f"The design is singular (rank {rank} for {len(names)} terms): "
            f"{_describe(constant, dependent, features, intercept)}. "
            "Their coefficients are not identifiable; the standard errors use a pseudo-inverse (nan for a "
            "constant or all-zero feature)."
        )
    elif condition > CONDITION_WARNING:
        notes.append(
            f"The condition number is large ({condition:.3g} > {CONDITION_WARNING:g}): the features are nearly "
            "collinear (the constant column included) or on very different scales, so small changes in the data "
            "move the coefficients a lot."
        )
    return Summary(
        terms=tuple(terms),
        intercept=intercept,
        n=n,
        df_model=df_model,
        df_resid=df_resid,
        level=level,
        r2=r2,
        adj_r2=adj_r2,
        f_stat=f_stat,
        f_p_value=f_sf(f_stat, df_model, df_resid),
        rss=float(rss),
        sigma2=sigma2,
        residual_std_error=math.sqrt(sigma2),
        log_likelihood=log_likelihood,
        aic=-2 * log_likelihood + 2 * k_params,
        bic=-2 * log_likelihood + math.log(n) * k_params,
        condition_number=condition,
        unscaled_covariance=tuple(tuple(float(v) for v in row) for row in covariance),
        warnings=tuple(notes),
    )


def _decompose(gram: np.ndarray) -> tuple[np.ndarray, int, np.ndarray, list[int], list[list[int]]]:
    """(G⁺, rank, Fᵀ with G = FFᵀ, the constant features, the groups of linearly dependent ones).

    From the eigendecomposition of the equilibrated G: C = SGS with S = diag(1/√Gᵢᵢ), so the
    rank test is blind to the features' units. A constant feature (Gᵢᵢ = 0) drops out of C.
    """
    import numpy as np

    diagonal = np.diag(gram)
    live = diagonal > 0
    root = np.sqrt(np.where(live, diagonal, 0.0))  # √Gᵢᵢ, 0 for a constant feature
    scale = np.divide(1.0, root, out=np.zeros_like(root), where=live)
    eigenvalues, vectors = np.linalg.eigh(gram * np.outer(scale, scale))  # C = V Λ Vᵀ
    kept = eigenvalues > RANK_TOLERANCE * eigenvalues.max(initial=0.0)
    z = scale[:, None] * vectors[:, kept]
    inverse = (z / eigenvalues[kept]) @ z.T  # G⁺ = S V Λ⁺ Vᵀ S: G⁻¹ when nothing is dropped
    factor = np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * vectors.T * root  # Fᵀ = Λ^½ Vᵀ S⁻¹
    dependent: list[list[int]] = []
    for column in vectors[:, ~kept].T:  # each null direction, by the features it mixes
        weight = np.where(live, np.abs(column), 0.0)
        if np.linalg.norm(weight) < 1e-3:  # the direction of a constant feature (said above), plus rounding
            continue
        group = [int(i) for i in np.flatnonzero(weight > 0.1 * weight.max())]
        if group and group not in dependent:
            dependent.append(group)
    return inverse, int(kept.sum()), factor, [int(i) for i in np.flatnonzero(~live)], dependent


def _describe(constant: list[int], dependent: list[list[int]], features: Sequence[str], intercept: bool) -> str:
    what = "is constant, so it duplicates the intercept" if intercept else "is 0 in every row"
    parts = [f"{features[i]!r} {what}" for i in constant]
    parts += [", ".join(repr(features[i]) for i in group) + " are linearly dependent" for group in dependent]
    return "; ".join(parts)


# --------------------------------------------------------------------------- prediction intervals (pure math)


def prediction_interval(
    sample: Sequence[float],
    weights: Sequence[float],
    bias: float | None,
    covariance: Sequence[Sequence[float]],
    sigma2: float,
    df_resid: int,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """(ŷ, low, high): the `level` interval for a new observation at `sample` (raw feature units).

    ŷ ± t_((1 + level)/2, df_resid) · √(σ²·(1 + x̃ᵀCx̃)), with C = (X̃ᵀX̃)⁻¹ as
    `Summary.unscaled_covariance` holds it: over [intercept, *weights] and x̃ = [1, *sample] when
    `bias` is not None, over the weights and x̃ = sample without. Pure `math`, no NumPy.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    row = [1.0, *map(float, sample)] if bias is not None else [float(v) for v in sample]
    if len(sample) != len(weights) or len(covariance) != len(row) or any(len(r) != len(row) for r in covariance):
        raise ValueError(
            f"a sample of {len(sample)} values, {len(weights)} weights and a {len(covariance)}-row covariance "
            f"(need {len(row)} × {len(row)})"
        )
    prediction = math.fsum(w * x for w, x in zip(weights, sample, strict=True)) + (bias or 0.0)  # ŷ = w·x + b
    leverage = math.fsum(row[i] * covariance[i][j] * row[j] for i in range(len(row)) for j in range(len(row)))
    sigma2_new = sigma2 * (1 + max(leverage, 0.0)) if df_resid > 0 else math.nan  # Var(y − ŷ) = σ²(1 + x̃ᵀCx̃)
    half = t_isf((1 - level) / 2, df_resid) * (math.sqrt(sigma2_new) if sigma2_new >= 0 else math.nan)
    return prediction, prediction - half, prediction + half
