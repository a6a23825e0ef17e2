"""The closed-form least-squares optimum in float64: the reference every run is measured against.

The method is picked from the problem. The centered Gram matrix AᵀA (A = X minus its column
means) is gathered in one blocked pass (or as the rows were read: moments.Tally); when its
condition number is small enough for the normal equations to keep their digits, Cholesky solves
them. When the answer is sure to hold about 13 digits, and its sum of squares as many (a problem
that is well conditioned and not fitted almost exactly), that is all: no further pass over the
data. Otherwise one step of iterative refinement against the data (the corrected semi-normal
equations) brings the accuracy to that of a QR solve. Beyond that condition number Householder
QR of A solves the problem directly, and rank-deficient problems get the minimum-norm solution
(SVD).

Under torchrun each rank holds a block of the rows and the answer is still the one-process
optimum: the moments are those of all rows, the refinement's Aᵀ(t − Aw) is all-reduced, and
QR becomes TSQR: each rank factors its block, A_r = Q_r R_r, and one all_reduce gathers the
small [R_r | Q_rᵀt_r], whose least-squares problem has the same solutions as the whole one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lrtrain.blocks import mapped, passing
from lrtrain.engine import EpochLog, Schedule, State, mse
from lrtrain.errors import DataError
from lrtrain.interrupts import solving_point
from lrtrain.moments import Moments, combined, moments, squares_hold
from lrtrain.parallel import SINGLE, Shard
from lrtrain.prepare import Prepared

CHOLESKY_MAX_CONDITION = 1e10  # cond(AᵀA) = cond(A)²; beyond this the normal equations lose too much
# the normal equations' answer stands without refinement when the system, its columns scaled to a unit diagonal, has
# a condition number up to SETTLED_CONDITION (times the rounding the moments' centering may have amplified), and its
# sum of squares taken from the moments holds (moments.squares_hold): both then hold about 13 digits
SETTLED_CONDITION = 100.0


def solve(
    x: np.ndarray,
    y: np.ndarray,
    bias: bool,
    weight_decay: float = 0.0,
    centered: Moments | None = None,
    shard: Shard = SINGLE,
) -> tuple[np.ndarray, float]:
    """argmin over (w, b) of mean((Xw + b - y)²) + (λ/2)|w|²; the bias carries no penalty.

    `centered` are the data's moments if already gathered (the pass over the data is the cost).
    Under torchrun, (x, y) are this rank's rows of the data, `shard` sums over the ranks, and
    `centered` (if given) are the moments of all rows; every rank gets the same optimum.
    """
    found = solution(x, y, bias, weight_decay, centered, shard)
    return found.weights, found.bias


@dataclass(frozen=True)
class Solution:
    weights: np.ndarray
    bias: float
    squares: float | None  # |Xw + b - y|² over every rank's rows, when the solve made a pass that gives it


def solution(
    x: np.ndarray,
    y: np.ndarray,
    bias: bool,
    weight_decay: float = 0.0,
    centered: Moments | None = None,
    shard: Shard = SINGLE,
) -> Solution:
    """`solve`'s optimum, with its sum of squared residuals when the refinement's pass over the data gave it."""
    centered = centered or combined(moments(x, y), shard)
    solving_point()  # Ctrl-C between the steps of the one solve stops it, saving nothing
    stats = centered if bias else centered.uncentered()
    ridge = stats.n * weight_decay / 2  # mean(r²) + (λ/2)|w|²  ⇔  |r|² + (nλ/2)|w|²
    system = stats.gram + ridge * np.eye(len(stats.cross))
    eigenvalues = np.linalg.eigvalsh(system) if len(system) else np.ones(1)
    squares: float | None = None
    solving_point()
    if eigenvalues[0] > eigenvalues[-1] / CHOLESKY_MAX_CONDITION:
        w, squares = _cholesky_refined(x, y, stats, system, ridge, shard)
    else:
        w = _householder(x, y, stats, ridge, shard)
    return Solution(w, stats.y_mean - float(stats.x_mean @ w), squares)


def _cholesky_refined(
    x: np.ndarray, y: np.ndarray, stats: Moments, system: np.ndarray, ridge: float, shard: Shard
) -> tuple[np.ndarray, float]:
    """The normal equations' w and |t - Aw|² from the moments, when they hold their digits (`_settled`); else the
    refined solution w + δ, and |t - A(w + δ)|² from the same pass: |r|² - 2δᵀAᵀr + δᵀGδ, r = t - Aw (the
    correction is the small excess loss of the unrefined w; clamped at 0 against rounding)."""
    factor = np.linalg.cholesky(system)  # (G + ρI) = LLᵀ

    def solve_with(rhs: np.ndarray) -> np.ndarray:
        solution: np.ndarray = np.linalg.solve(factor.T, np.linalg.solve(factor, rhs))
        return solution

    w = solve_with(stats.cross)
    squares = stats.tt - 2 * float(w @ stats.cross) + float(w @ stats.gram @ w)  # |t - Aw|² from the moments
    if _settled(stats, system, squares):
        return w, max(squares, 0.0)
    # one refinement step against the data, not the rounded Gram matrix: g = Aᵀ(t - Aw) - ρw,
    # Aᵀ(t - Aw) summed over this rank's rows, then over the ranks
    near_origin = np.all(stats.x_mean**2 <= np.diag(stats.gram) / stats.n)  # |μ| within one spread
    if near_origin and x.dtype == np.float64 and y.dtype == np.float64 and x.flags.c_contiguous and not mapped(x):
        r = (y - stats.y_mean) - (x @ w - float(stats.x_mean @ w))  # two BLAS passes, no copies of X
        residual, squares = x.T @ r - stats.x_mean * r.sum(), float(r @ r)  # Aᵀr = Xᵀr - μΣr
    else:
        residual, squares = np.zeros(len(w)), 0.0
        for x_part, y_part in passing(x, y):
            solving_point()
            a = np.asarray(x_part, dtype=np.float64) - stats.x_mean
            r = np.asarray(y_part, dtype=np.float64) - stats.y_mean - a @ w
            residual += a.T @ r
            squares += float(r @ r)
    summed = shard.reduce(np.append(residual, squares))
    residual, squares = summed[:-1], float(summed[-1])
    step = solve_with(residual - ridge * w)
    excess = float(step @ stats.gram @ step) - 2 * float(step @ residual)
    return w + step, max(squares + excess, 0.0)


def _settled(stats: Moments, system: np.ndarray, squares: float) -> bool:
    """Whether the normal equations' answer and its sum of squares hold their digits without a pass over the
    data (SETTLED_CONDITION, moments.squares_hold)."""
    if not len(system):
        return True
    scale = 1 / np.sqrt(np.diag(system))
    eigenvalues = np.linalg.eigvalsh(system * np.outer(scale, scale))
    conditioned = stats.amplified * eigenvalues[-1] <= SETTLED_CONDITION * eigenvalues[0]
    return bool(conditioned and squares_hold(stats, squares))


def _householder(x: np.ndarray, y: np.ndarray, stats: Moments, ridge: float, shard: Shard) -> np.ndarray:
    d = x.shape[1]
    a = np.asarray(x, dtype=np.float64) - stats.x_mean
    t = np.asarray(y, dtype=np.float64) - stats.y_mean
    if shard.world > 1:
        a, t = _stacked_factors(a, t, shard)
    if ridge > 0:
        a = np.vstack([a, np.sqrt(ridge) * np.eye(d)])
        t = np.concatenate([t, np.zeros(d)])
    norms = np.linalg.norm(a, axis=0)  # QR is stable column by column: each column is judged by its own norm
    q, r = np.linalg.qr(a)
    if a.shape[0] >= d and np.all(np.abs(np.diag(r)) > norms * d * np.finfo(np.float64).eps):
        return np.asarray(np.linalg.solve(r, q.T @ t))  # R w = Qᵀt
    scale = np.where(norms > 0, norms, 1.0)  # rank-deficient: the minimum-norm solution of columns of norm 1,
    return np.asarray(np.linalg.lstsq(a / scale, t, rcond=None)[0] / scale)  # whatever units they are in


def _stacked_factors(a: np.ndarray, t: np.ndarray, shard: Shard) -> tuple[np.ndarray, np.ndarray]:
    """TSQR: A = diag(Q_1 … Q_w)·[R_1; …; R_w], so |Aw - t|² = |[R_r]w - [Q_rᵀt_r]|² + a constant, and the
    small stacked problem has the same solutions (the same minimum-norm one too). All ranks get every
    [R_r | Q_rᵀt_r] (d×(d+1), zero-padded when a rank has fewer than d rows) by one all_reduce."""
    d = a.shape[1]
    q, r = np.linalg.qr(a)  # A_r = Q_r R_r, R_r of min(n_r, d) rows
    own = np.zeros((d, d + 1))
    own[: len(r)] = np.column_stack([r, q.T @ t])
    stacked = shard.gather(own.ravel()).reshape(shard.world * d, d + 1)
    return stacked[:, :d], stacked[:, d]


def train(data: Prepared, schedule: Schedule, start: State) -> Iterator[EpochLog]:
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a non-finite answer is checked, in words
        found = solution(data.x, data.y, schedule.bias, schedule.weight_decay, data.moments, data.shard)
        w, b = found.weights, found.bias
        loss = mse(data.x, data.y, w, b) if found.squares is None else found.squares / data.rows
    if not (np.all(np.isfinite(w)) and np.isfinite(b) and np.isfinite(loss)):
        raise DataError(unrepresentable(data, "the least-squares solution"))
    yield EpochLog(1, loss, w, b, 0.0)


def unrepresentable(data: Prepared, what: str) -> str:
    """Why data that cannot be fitted in floating point is refused, and the fix."""
    float32 = data.x.dtype == np.float32
    return (
        f"{data.raw.origin}: {what} is not a finite number: the data's values are too large or too small for "
        f"their squares and sums in {data.x.dtype} (which holds magnitudes up to "
        f"{float(np.finfo(data.x.dtype).max):.2g}). Rescale the data (e.g. divide a column of values near 1e150 by "
        f"1e150; the weights scale with it){', or set model.dtype to float64' if float32 else ''}."
    )
