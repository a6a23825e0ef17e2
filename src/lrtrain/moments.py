"""Sufficient statistics of (X, y) for the mean squared error: counts, means and centered sums of
products, gathered in one blocked pass and merged exactly across processes. Everything that needs
XᵀX — the exact optimum, `lr: auto`, full-batch epochs from the statistics, the OLS summary —
starts here, so no later step makes another pass over the N×D data."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np

from lrtrain.blocks import mapped, passing
from lrtrain.parallel import Shard


@dataclass(frozen=True)
class Scaling:
    """x_trained = (x - mean) / scale; identity when standardization is off."""

    mean: np.ndarray
    scale: np.ndarray

    def to_original(self, w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
        """Weights learned on scaled features, expressed for raw features."""
        w64 = np.asarray(w, dtype=np.float64)
        w_raw = w64 / self.scale
        return w_raw, float(b) - float(w_raw @ self.mean)

    def to_trained(self, w_raw: np.ndarray, b_raw: float) -> tuple[np.ndarray, float]:
        w = np.asarray(w_raw, dtype=np.float64) * self.scale
        return w, float(b_raw) + float(np.asarray(w_raw, dtype=np.float64) @ self.mean)


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of (X, y) for the MSE, centered for accuracy (float64)."""

    n: int
    x_mean: np.ndarray  # μ (zeros without a bias)
    y_mean: float  # ȳ (0 without a bias)
    gram: np.ndarray  # G = AᵀA, A = X - μ
    cross: np.ndarray  # c = Aᵀt, t = y - ȳ
    tt: float  # tᵀt

    def in_original_units(self, scaling: Scaling) -> Moments:
        """The moments of the raw features, from those of x_trained = (x − mean)/scale: x = x_trained·scale + mean."""
        scale = scaling.scale
        return Moments(
            self.n,
            self.x_mean * scale + scaling.mean,
            self.y_mean,
            self.gram * np.outer(scale, scale),  # AᵀA scales by s_i·s_j; centering removes the shift
            self.cross * scale,
            self.tt,
        )

    def uncentered(self) -> Moments:
        """The same sums about the origin (μ = 0, ȳ = 0), for a model without a bias."""
        n, mu, ybar = self.n, self.x_mean, self.y_mean
        return Moments(
            n,
            np.zeros_like(mu),
            0.0,
            self.gram + n * np.outer(mu, mu),
            self.cross + n * mu * ybar,
            self.tt + n * ybar**2,
        )


CANCELLATION_LIMIT = 1e3  # mean² / variance above which XᵀX - nμμᵀ would lose more than 3 digits
ONE_THREAD_MAX_D = 64  # up to this many features the products are memory-bound: BLAS runs on one thread


def moments(x: np.ndarray, y: np.ndarray) -> Moments:
    """Centered sums of products, float64, memory O(block · D).

    Fast path, for float64 X in memory: the raw sums of products, centered algebraically
    (G = XᵀX - nμμᵀ), which is exact enough unless a mean dwarfs its spread. With few features
    they are one pass over X: each block of rows, copied beside its y and a column of ones (in
    cache), gives all of XᵀX, Xᵀy, yᵀy and the sums in one BLAS syrk; with many, a gemm Xᵀ[1 y]
    and a syrk XᵀX. When a mean dwarfs its spread, and for float32, strided or file-mapped data
    (whose pages a block-by-block pass releases as it goes: lrtrain.blocks), the products are
    taken block by block on rows centered on their block's means, in one pass (`_merged`).

    With few features (D ≤ ONE_THREAD_MAX_D) every BLAS call is a thin product that streams X
    once; a second BLAS thread only adds its wake-ups per block (on 2 busy cores, 1e6 × 19:
    0.07 s on one thread, 0.3 s to 23 s on two), so the pass runs on one.
    """
    from threadpoolctl import threadpool_limits  # here: start-up of commands that gather no moments skips it

    few = x.shape[1] <= ONE_THREAD_MAX_D
    with threadpool_limits(1, user_api="blas") if few else contextlib.nullcontext():
        return _moments(x, y)


def _moments(x: np.ndarray, y: np.ndarray) -> Moments:
    n, d = x.shape
    if x.dtype == np.float64 and y.dtype == np.float64 and x.flags.c_contiguous and not mapped(x):
        if d <= ONE_THREAD_MAX_D:
            products = _augmented_products(x, y)  # [X y 1]ᵀ[X y 1]
            xtx, xty, x_sums, yty, y_sum = products[:d, :d], products[:d, d], products[:d, -1], *products[d, d:]
        else:
            sums_and_xty = x.T @ np.column_stack([np.ones(n), y])
            xtx, xty, x_sums, yty, y_sum = x.T @ x, sums_and_xty[:, 1], sums_and_xty[:, 0], y @ y, y.sum()
        x_mean, y_mean = x_sums / n, float(y_sum) / n
        gram = xtx - n * np.outer(x_mean, x_mean)
        cross = xty - n * x_mean * y_mean
        tt = float(yty) - n * y_mean**2
        spread = np.append(np.diag(gram), tt) / n
        means = np.append(x_mean, y_mean) ** 2
        if np.all(means <= CANCELLATION_LIMIT * spread) and np.all(spread > 0):
            return Moments(n, x_mean, y_mean, gram, cross, tt)
    return _merged(x, y)


def _merged(x: np.ndarray, y: np.ndarray) -> Moments:
    """One pass over the rows: each block's products about its own means, merged into those of the blocks
    before it exactly (Chan et al., as `combined` merges ranks), so no pass for the means comes first.

    The rows are taken about a fixed shift (the first block's means) and the running means kept as offsets
    from it: a block's offset from the blocks before it (the merge's δ) is then a difference of small
    numbers, not rounded at the last digit of a mean of 1e6.
    """
    n, d = x.shape
    x_shift, y_shift = np.zeros(d), 0.0
    x_offset, y_offset, seen = np.zeros(d), 0.0, 0
    gram, cross, tt = np.zeros((d, d)), np.zeros(d), 0.0
    for x_part, y_part in passing(x, y):
        if not seen:
            x_shift, y_shift = np.mean(x_part, axis=0, dtype=np.float64), float(np.mean(y_part, dtype=np.float64))
        a = np.subtract(x_part, x_shift, dtype=np.float64)  # copies, centered in place
        t = np.subtract(y_part, y_shift, dtype=np.float64)
        a_mean, t_mean = a.mean(axis=0), float(t.mean())
        a -= a_mean
        t -= t_mean
        delta, epsilon = a_mean - x_offset, t_mean - y_offset
        seen += len(t)
        share = len(t) / seen
        weight = (seen - len(t)) * share  # n_before · n_block / n_both
        gram += a.T @ a + weight * np.outer(delta, delta)  # BLAS syrk
        cross += a.T @ t + weight * epsilon * delta
        tt += float(t @ t) + weight * epsilon**2
        x_offset += share * delta
        y_offset += share * epsilon
    return Moments(n, x_shift + x_offset, y_shift + y_offset, gram, cross, tt)


def _augmented_products(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[X y 1]ᵀ[X y 1] in one pass over X: block by block, the rows copied into a block that stays in cache."""
    n, d = x.shape
    rows = max(AUGMENTED_MIN_ROWS, AUGMENTED_BLOCK_BYTES // ((d + 2) * 8))
    block = np.empty((min(n, rows), d + 2))
    block[:, d + 1] = 1.0
    total = np.zeros((d + 2, d + 2))
    for start in range(0, n, rows):
        part = block[: min(rows, n - start)]
        part[:, :d], part[:, d] = x[start : start + len(part)], y[start : start + len(part)]
        total += part.T @ part  # BLAS syrk
    return total


AUGMENTED_BLOCK_BYTES = 1 << 21  # a block of [X y 1] rows: within a core's cache
AUGMENTED_MIN_ROWS = 256


def combined(local: Moments, shard: Shard) -> Moments:
    """The moments of every rank's rows from each rank's own centered ones, exactly (Chan et al.):

        n = Σ n_r,  μ = Σ n_r μ_r / n,  ȳ = Σ n_r ȳ_r / n,  δ_r = μ_r − μ,  ε_r = ȳ_r − ȳ
        G = Σ G_r + Σ n_r δ_r δ_rᵀ,   c = Σ c_r + Σ n_r δ_r ε_r,   tᵀt = Σ t_rᵀt_r + Σ n_r ε_r²

    One all_reduce: the sums of G_r, c_r and t_rᵀt_r, then each rank's (n_r, μ_r, ȳ_r) in its own slot.
    """
    if shard.world == 1:
        return local
    d = len(local.cross)
    own = np.concatenate([[local.n], local.x_mean, [local.y_mean]])
    packed = shard.reduce(np.concatenate([local.gram.ravel(), local.cross, [local.tt], shard.slot(own).ravel()]))
    grams, cross, tts, ranks = np.split(packed, np.cumsum([d * d, d, 1]))
    ranks = ranks.reshape(shard.world, d + 2)
    counts, x_means, y_means = ranks[:, 0], ranks[:, 1:-1], ranks[:, -1]
    n = int(counts.sum())
    x_mean, y_mean = counts @ x_means / n, float(counts @ y_means) / n
    delta, epsilon = x_means - x_mean, y_means - y_mean
    gram = grams.reshape(d, d) + (delta.T * counts) @ delta
    cross += delta.T @ (counts * epsilon)
    tt = float(tts[0]) + float(counts @ epsilon**2)
    return Moments(n, x_mean, y_mean, gram, cross, tt)


def largest_curvature(centered: Moments, bias: bool) -> float:
    """L, the largest eigenvalue of the MSE's Hessian (2/n)·X̃ᵀX̃, X̃ = [X, 1] with a bias."""
    n, mu = centered.n, centered.x_mean
    xtx = centered.gram + n * np.outer(mu, mu)  # XᵀX = AᵀA + nμμᵀ
    gram = np.block([[xtx, n * mu[:, None]], [n * mu[None, :], np.array([[float(n)]])]]) if bias else xtx
    gram = gram * (2.0 / n)
    if gram.shape[0] <= EIGH_MAX_SIZE:
        return float(np.linalg.eigvalsh(gram)[-1])
    v = np.ones(gram.shape[0]) / math.sqrt(gram.shape[0])  # power iteration
    value = 0.0
    for _ in range(1000):
        u = gram @ v
        new = float(np.linalg.norm(u))
        v = u / new
        if abs(new - value) <= 1e-10 * new:
            break
        value = new
    return new


EIGH_MAX_SIZE = 2048  # up to this many parameters, all eigenvalues (LAPACK); beyond, the power iteration
