"""OLS inference for a fitted linear model, as statsmodels' `OLS(...).fit().summary()` reports it.

`summarize` takes the training rows' sufficient statistics (`lrtrain.moments.Moments`), the final
weights — the exact optimum or wherever gradient descent stopped — and their residual sum of
squares, and returns standard errors, t statistics, p-values, confidence intervals, R², F, the
log-likelihood, AIC/BIC and the condition number. It never touches the N×D data, so it costs
O(D³) whatever N is. Conventions follow statsmodels: `k_constant` = 1 with an intercept
(`df_resid` = n − D − 1, centered R²) and 0 without (`df_resid` = n − D, uncentered R²), unless the
features make a constant themselves (statsmodels' implicit constant: k_constant = 1, R² and F centered).

The t and F distributions are `scipy.special`'s (`stdtr`, `stdtrit`, `fdtrc`, as statsmodels
takes them through `scipy.stats`), each tail from its own function rather than 1 − cdf, so a
p-value of 1e-200 keeps its digits. scipy (and with it NumPy) is imported inside the functions
that need it, so importing this module, as `lrtrain.model` does for `predict --interval`, costs
nothing until an interval or a summary is computed; it imports nothing of lrtrain's above it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from lrtrain.moments import Moments

CONDITION_WARNING = 1000.0  # statsmodels' summary notes a condition number above this
RANK_TOLERANCE = 1e-13  # eigenvalues of the equilibrated Gram matrix below this · largest count as zero
# singular values of the equilibrated design (from its R) below this · largest count as zero: a few hundred times
# the rounding of the data's own values, as the exact engine's QR judges a column
SINGULAR_TOLERANCE = 1e-13
_LOG_2PI = math.log(2 * math.pi)


@functools.lru_cache(maxsize=64)  # predict --interval asks for the same one on every line
def _t_quantile(level: float, df: float) -> float:
    """t_((1 + level)/2, df): a `level` interval's half-width in standard errors (nan for df ≤ 0)."""
    from scipy.special import stdtrit  # imports NumPy: only summaries and intervals pay for it

    return -float(stdtrit(df, (1 - level) / 2))  # from the lower tail (1 − level)/2, which keeps its digits


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
    means: tuple[float, ...] | None = None  # the features' means, with an intercept: a leverage taken centered
    implicit_constant: bool = False  # no intercept, but the features make a constant: k_constant = 1 (statsmodels)

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
    factor: np.ndarray | None = None,
) -> Summary:
    """OLS inference for the given weights (and bias; None: a model without an intercept).

    `moments` are the training rows' centered sums in raw feature units, as `lrtrain.moments.moments`
    gives them (without an intercept they are taken about the origin here); `rss` is Σ(ŷ − y)² of
    these weights on these rows. The weights need not be the optimum: σ² = RSS/df_resid is theirs.
    `factor`, when given, is the triangular R of a QR of the same design (the rows about their means
    with an intercept, about the origin without; RᵀR is the Gram matrix): the rank and (X̃ᵀX̃)⁻¹ are
    then taken from it, which keeps digits the Gram matrix has lost (cond(G) = cond(R)²).
    """
    import numpy as np
    from scipy.special import fdtrc

    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    d = len(w)
    if len(features) != d or moments.gram.shape != (d, d):
        raise ValueError(f"{d} weights, {len(features)} feature names and a {moments.gram.shape} Gram matrix")
    if moments.n < 1 or not rss >= 0 or not 0 < level < 1:
        raise ValueError(f"need n ≥ 1, rss ≥ 0 and 0 < level < 1; got n = {moments.n}, rss = {rss}, level = {level}")
    intercept = bias is not None
    stats = moments if intercept else moments.uncentered()
    implicit = not intercept and moments.spans_constant()  # statsmodels' implicit constant: R², F centered
    n, k_constant = stats.n, int(intercept or implicit)
    gram_inverse, rank_gram, factor, constant, dependent = _decompose(stats.gram, factor)
    rank = rank_gram + int(intercept)  # the Gram matrix is centered with an intercept: its column is apart
    df_model, df_resid = rank - k_constant, n - rank
    names = ["intercept", *features] if intercept else list(features)
    coef = ([float(bias)] if bias is not None else []) + [float(v) for v in w]
    covariance, condition = _unscaled_covariance(stats, gram_inverse, factor, intercept)
    sigma2 = rss / df_resid if df_resid > 0 else math.nan  # σ² = RSS/(n − rank)
    terms = _terms(names, coef, covariance, sigma2, df_resid, level)
    tss = moments.tt if k_constant else stats.tt  # Σ(y − ȳ)² with a constant, Σy² without
    r2 = 1 - rss / tss if tss > 0 else math.nan
    adj_r2 = 1 - (n - k_constant) / df_resid * (1 - r2) if df_resid > 0 else math.nan
    f_stat = _ratio((tss - rss) / df_model, sigma2) if df_model > 0 and df_resid > 0 else math.nan  # ESS = TSS − RSS
    # P(F > f) from the survival function; an F below 0 (weights worse than none) has all of F above it
    f_p_value = 1.0 if f_stat < 0 else float(fdtrc(df_model, df_resid, f_stat))
    # llf = −n/2·log 2π − n/2·log(RSS/n) − n/2: +inf for an exact fit, as statsmodels
    log_likelihood = -n / 2 * (_LOG_2PI + math.log(rss / n) + 1) if rss > 0 else math.inf
    k_params = df_model + k_constant
    described = _describe(constant, dependent, features, intercept, stats.x_mean)
    notes = _notes(n, rank, df_resid, rss, condition, described, len(names))
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
        f_p_value=f_p_value,
        rss=float(rss),
        sigma2=sigma2,
        residual_std_error=math.sqrt(sigma2),
        log_likelihood=log_likelihood,
        aic=-2 * log_likelihood + 2 * k_params,
        bic=-2 * log_likelihood + math.log(n) * k_params,
        condition_number=condition,
        unscaled_covariance=tuple(tuple(float(v) for v in row) for row in covariance),
        warnings=tuple(notes),
        means=tuple(float(v) for v in stats.x_mean) if intercept else None,
        implicit_constant=implicit,
    )


def _unscaled_covariance(
    stats: Moments, gram_inverse: np.ndarray, factor: np.ndarray, intercept: bool
) -> tuple[np.ndarray, float]:
    """(X̃ᵀX̃)⁻¹ (a pseudo-inverse where singular) and the condition number of X̃, from the moments."""
    import numpy as np

    n, d = stats.n, len(gram_inverse)
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

    return covariance, condition


def _terms(
    names: list[str], coef: list[float], covariance: np.ndarray, sigma2: float, df_resid: int, level: float
) -> list[Term]:
    """Each coefficient with its standard error, t, two-sided p-value and confidence interval."""
    from scipy.special import stdtr

    quantile = _t_quantile(level, df_resid)
    terms = []
    for i, (name, value) in enumerate(zip(names, coef, strict=True)):
        variance = float(covariance[i, i])  # 0 only for a term the pseudo-inverse dropped: not identifiable
        std_err = math.sqrt(sigma2 * variance) if variance > 0 else math.nan  # √(σ²·(X̃ᵀX̃)⁻¹ᵢᵢ)
        t = _ratio(value, std_err)
        margin = quantile * std_err
        p_value = 2 * float(stdtr(df_resid, -abs(t)))  # P(|T| ≥ |t|) = 2·P(T ≤ −|t|): a lower tail, not 1 − cdf
        terms.append(Term(name, value, std_err, t, p_value, value - margin, value + margin))

    return terms


def _notes(n: int, rank: int, df_resid: int, rss: float, condition: float, singular: str, terms: int) -> list[str]:
    """What a reader must know: no residual freedom, an exact fit, a singular or ill-conditioned design."""
    notes = []
    if df_resid <= 0:
        notes.append(
            f"{n} rows for {rank} parameters leave no residual degrees of freedom (df_resid = {df_resid}): "
            "standard errors, t, p-values, intervals, adjusted R² and F are undefined (nan). Use more rows."
        )
    elif rss == 0:
        notes.append("The model fits every row exactly (RSS = 0): standard errors are 0 and t statistics infinite.")
    if rank < terms:
        notes.append(
            f"The design is singular (rank {rank} for {terms} terms): "
            f"{singular}. "
            "Their coefficients are not identifiable; the standard errors use a pseudo-inverse (nan for a "
            "constant or all-zero feature)."
        )
    elif condition > CONDITION_WARNING:
        notes.append(
            f"The condition number is large ({condition:.3g} > {CONDITION_WARNING:g}): the features are nearly "
            "collinear (the constant column included) or on very different scales, so small changes in the data "
            "move the coefficients a lot."
        )
    return notes


def _decompose(
    gram: np.ndarray, triangular: np.ndarray | None = None
) -> tuple[np.ndarray, int, np.ndarray, list[int], list[list[int]]]:
    """(G⁺, rank, Fᵀ with G = FFᵀ, the constant features, the groups of linearly dependent ones).

    From the equilibrated G: C = SGS with S = diag(1/√Gᵢᵢ), so the rank test is blind to the features'
    units; a constant feature (Gᵢᵢ = 0) drops out of C. With `triangular` (R, G = RᵀR) from the SVD of RS,
    whose singular values are C's eigenvalues' roots to about eps of the largest, where an eigendecomposition
    of C itself resolves them only to √eps: a design with cond(RS) = 1e9 (NIST's Filip) is not singular.
    """
    import numpy as np

    # Gᵢᵢ, from R: |R's column i|²
    diagonal = np.diag(gram) if triangular is None else np.einsum("ij,ij->j", triangular, triangular)
    live = diagonal > 0
    root = np.sqrt(np.where(live, diagonal, 0.0))  # √Gᵢᵢ, 0 for a constant feature
    scale = np.divide(1.0, root, out=np.zeros_like(root), where=live)
    if triangular is not None:
        _, singular, rows = np.linalg.svd(triangular * scale)  # RS = UΣVᵀ: C = VΣ²Vᵀ
        order = np.argsort(singular)  # ascending, as eigh gives them
        eigenvalues, vectors = singular[order] ** 2, rows[order].T
        kept = singular[order] > SINGULAR_TOLERANCE * singular.max(initial=0.0)
        factor = triangular
    else:
        eigenvalues, vectors = np.linalg.eigh(gram * np.outer(scale, scale))  # C = V Λ Vᵀ
        kept = eigenvalues > RANK_TOLERANCE * eigenvalues.max(initial=0.0)
        factor = np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * vectors.T * root  # Fᵀ = Λ^½ Vᵀ S⁻¹
    z = scale[:, None] * vectors[:, kept]
    inverse = (z / eigenvalues[kept]) @ z.T  # G⁺ = S V Λ⁺ Vᵀ S: G⁻¹ when nothing is dropped
    dependent: list[list[int]] = []
    for column in vectors[:, ~kept].T:  # each null direction, by the features it mixes
        weight = np.where(live, np.abs(column), 0.0)
        if np.linalg.norm(weight) < 1e-3:  # the direction of a constant feature (said above), plus rounding
            continue
        group = [int(i) for i in np.flatnonzero(weight > 0.1 * weight.max())]
        if group and group not in dependent:
            dependent.append(group)
    return inverse, int(kept.sum()), factor, [int(i) for i in np.flatnonzero(~live)], dependent


def _describe(
    constant: list[int], dependent: list[list[int]], features: Sequence[str], intercept: bool, means: np.ndarray
) -> str:
    def what(i: int) -> str:
        return "is constant, so it duplicates the intercept" if intercept and means[i] != 0 else "is 0 in every row"

    parts = [f"{features[i]!r} {what(i)}" for i in constant]
    parts += [", ".join(repr(features[i]) for i in group) + " are linearly dependent" for group in dependent]
    return "; ".join(parts)


# --------------------------------------------------------------------------- prediction intervals


def prediction_interval(
    sample: Sequence[float],
    weights: Sequence[float],
    bias: float | None,
    covariance: Sequence[Sequence[float]],
    sigma2: float,
    df_resid: int,
    level: float = 0.95,
    means: Sequence[float] | None = None,
    n: int | None = None,
) -> tuple[float, float, float]:
    """(ŷ, low, high): the `level` interval for a new observation at `sample` (raw feature units).

    ŷ ± t_((1 + level)/2, df_resid) · √(σ²·(1 + x̃ᵀCx̃)), with C = (X̃ᵀX̃)⁻¹ as
    `Summary.unscaled_covariance` holds it: over [intercept, *weights] and x̃ = [1, *sample] when
    `bias` is not None, over the weights and x̃ = sample without. Plain Python but for the t quantile.
    With an intercept and the features' `means` (over `n` rows), the leverage is taken centered, as
    1/n + (x − x̄)ᵀ(AᵀA)⁻¹(x − x̄) with (AᵀA)⁻¹ C's block of the weights: equal, and without the
    cancellation of x̃ᵀCx̃ when a mean dwarfs its spread (a mean of 1e9 lost every digit of it).
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
    if bias is not None and means is not None and n:
        dx = [x - m for x, m in zip(row[1:], means, strict=True)]
        terms = (dx[i] * covariance[i + 1][j + 1] * dx[j] for i in range(len(dx)) for j in range(len(dx)))
        leverage = 1 / n + math.fsum(terms)
    else:
        leverage = math.fsum(row[i] * covariance[i][j] * row[j] for i in range(len(row)) for j in range(len(row)))
    sigma2_new = sigma2 * (1 + max(leverage, 0.0)) if df_resid > 0 else math.nan  # Var(y − ŷ) = σ²(1 + x̃ᵀCx̃)
    half = _t_quantile(level, df_resid) * (math.sqrt(sigma2_new) if sigma2_new >= 0 else math.nan)
    return prediction, prediction - half, prediction + half
