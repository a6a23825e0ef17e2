"""Sufficient statistics of (X, y) for the mean squared error: counts, means and centered sums of
products, gathered in one blocked pass and merged exactly across processes. Everything that needs
XᵀX — the exact optimum, `lr: auto`, full-batch epochs from the statistics, the OLS summary —
starts here, so no later step makes another pass over the N×D data."""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Any

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
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run's weights: judged non-finite, in words
            w_raw = w64 / self.scale
            return w_raw, float(b) - float(w_raw @ self.mean)

    def to_trained(self, w_raw: np.ndarray, b_raw: float) -> tuple[np.ndarray, float]:
        with np.errstate(over="ignore", invalid="ignore"):
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
    amplified: float = 1.0  # how much centering the sums may have amplified their rounding: 1 + (mean offset)²/spread

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
            self.amplified,
        )

    def spans_constant(self) -> bool:
        """Whether the features can make a column of ones: a constant column that is not 0, or columns whose
        sum is constant (a categorical column coded in full). A model without a bias then has a constant
        anyway, and R² is taken centered, as statsmodels decides (its implicit constant). From the centered
        sums: a combination v of the columns is constant when Gv = 0, and not 0 when μᵀv is not."""
        live, scale, eigenvalues, vectors = equilibrated(self.gram)
        size = np.sqrt(np.diag(self.gram) / max(self.n, 1) + self.x_mean**2)  # each column's root mean square
        if np.any(~live & (self.x_mean != 0)):
            return True
        if not live.any():
            return False
        null = vectors[:, eigenvalues <= SPAN_TOLERANCE * eigenvalues.max()] * scale[:, None]  # Gv ≈ 0
        constant = np.abs(self.x_mean[live] @ null)  # Xv = Av + (μᵀv)·1, Av ≈ 0
        return bool(np.any(constant > 1e-6 * (size[live] @ np.abs(null))))

    def uncentered(self) -> Moments:
        """The same sums about the origin (μ = 0, ȳ = 0), for a model without a bias."""
        n, mu, ybar = self.n, self.x_mean, self.y_mean
        return Moments(
            n,
            np.zeros_like(mu),
            0.0,
            self.gram + n * np.outer(mu, mu),
            self.cross + n * mu * ybar,
            self.tt + n * ybar * ybar,  # not ** 2: a Python float's power raises past float64, a product is inf
            self.amplified,
        )


SPAN_TOLERANCE = 1e-13  # the equilibrated G's eigenvalues below this · largest: the directions G has none of


def equilibrated(gram: np.ndarray, vectors: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(live, s, Λ, V) of C = S·G·S over the columns with a spread (live: Gᵢᵢ > 0), S = diag(s) = 1/√Gᵢᵢ: the
    Gram matrix with its columns scaled to unit length, blind to the features' units, and its eigendecomposition
    C = VΛVᵀ (ascending; V empty unless `vectors`, which costs about three times the values alone)."""
    diagonal = np.diag(gram)
    live = diagonal > 0
    scale = 1 / np.sqrt(diagonal[live])
    scaled = gram[np.ix_(live, live)] * np.outer(scale, scale)
    with np.errstate(over="ignore", invalid="ignore"):
        if vectors:
            values, found = np.linalg.eigh(scaled)
            return live, scale, values, found
        return live, scale, np.linalg.eigvalsh(scaled), np.empty((0, 0))


CANCELLATION_LIMIT = 1e3  # offset² / variance above which XᵀX - nmmᵀ would lose more than 3 digits
ONE_THREAD_MAX_D = 64  # up to this many features the products are memory-bound: BLAS runs on one thread


def moments(x: np.ndarray, y: np.ndarray) -> Moments:
    """Centered sums of products, float64, memory O(block · D).

    Fast path, for float64 X in memory: the sums of products, centered algebraically
    (G = XᵀX - nμμᵀ), which is exact enough unless a mean dwarfs its spread. With few features
    they are one pass over X (a `Tally`): each block of rows, copied beside its y and a column of
    ones (in cache) and less the first block's means, gives all of XᵀX, Xᵀy, yᵀy and the sums in
    one BLAS syrk; with many, a gemm Xᵀ[1 y] and a syrk XᵀX. When a mean (its offset from the
    first block's, for a Tally) dwarfs its spread, and for float32, strided or file-mapped data
    (whose pages a block-by-block pass releases as it goes: lrtrain.blocks), the products are
    taken block by block on rows centered on their block's means, in one pass (`_merged`).

    With few features (D ≤ ONE_THREAD_MAX_D) every BLAS call is a thin product that streams X
    once; a second BLAS thread only adds its wake-ups per block (on 2 busy cores, 1e6 × 19:
    0.07 s on one thread, 0.3 s to 23 s on two), so the pass runs on one.
    """
    few = x.shape[1] <= ONE_THREAD_MAX_D
    with _one_thread() if few else contextlib.nullcontext():
        return _moments(x, y)


def _moments(x: np.ndarray, y: np.ndarray) -> Moments:
    n, d = x.shape
    if x.dtype == np.float64 and y.dtype == np.float64 and x.flags.c_contiguous and not mapped(x):
        if d <= ONE_THREAD_MAX_D:
            tally = Tally(d, n)
            tally.add(x, y)
            exact = tally.moments()
        else:
            sums_and_xty = x.T @ np.column_stack([np.ones(n), y])
            sums = (x.T @ x, sums_and_xty[:, 1], sums_and_xty[:, 0], float(y @ y), float(y.sum()))
            exact = _centered(n, *sums, np.zeros(d), 0.0)
        if exact is not None:
            return exact
    return _merged(x, y)


def _centered(
    n: int,
    xtx: np.ndarray,
    xty: np.ndarray,
    x_sums: np.ndarray,
    yty: float,
    y_sum: float,
    x_shift: np.ndarray,
    y_shift: float,
) -> Moments | None:
    """The moments from the sums of products of the rows less a shift (x - x_shift, y - y_shift), centered
    algebraically (G = XᵀX - nmmᵀ, m the mean's offset from the shift); None when an offset dwarfs its spread
    (CANCELLATION_LIMIT), or a spread is 0, where that would lose digits."""
    x_offset, y_offset = x_sums / n, y_sum / n
    gram = xtx - n * np.outer(x_offset, x_offset)
    cross = xty - n * x_offset * y_offset
    tt = yty - n * y_offset * y_offset
    spread = np.append(np.diag(gram), tt) / n
    offsets = np.append(x_offset, y_offset) ** 2
    if np.all(offsets <= CANCELLATION_LIMIT * spread) and np.all(spread > 0):
        amplified = 1.0 + float(np.max(offsets / spread))
        return Moments(n, x_shift + x_offset, float(y_shift + y_offset), gram, cross, float(tt), amplified)
    return None


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
        tt += float(t @ t) + weight * epsilon * epsilon
        x_offset += share * delta
        y_offset += share * epsilon
    return Moments(n, x_shift + x_offset, y_shift + y_offset, gram, cross, tt)


AUGMENTED_BLOCK_BYTES = 1 << 21  # a block of [X y 1] rows: within a core's cache
AUGMENTED_MIN_ROWS = 256
SHIFT_ROWS = 4096  # the first rows whose means are the shift: a sample, not a pass


class Tally:
    """The moments of rows met block by block (`add`), as `moments` takes them from a table in memory or a reader
    makes them: the rows are copied beside their y and a column of ones into a block that stays in cache, and
    each full block adds its [X y 1]ᵀ[X y 1] (one BLAS syrk, on one thread) to the sums; `moments` centers them.
    Where a mean dwarfs its spread, the rows are taken less a shift, the means of the first rows added, so that
    centering the sums at the end subtracts only the small offset of the mean from it (a mean of 1e6 loses no
    digits to its square); elsewhere they are copied as they are, which is faster and loses nothing.

    A table tallied as it is read needs no pass of its own for its moments, nor for the finite check: the sums
    of squares are finite only if every value is (a NaN or an infinity makes its column's one), and when they
    are not (that, or a square beyond float64), `finite` says so and the check's own pass names the value.

    A reader asks for the sums (`sums`) only where they can serve: the rows as read are the rows trained on
    (no validation split, no standardization), and there are at most ONE_THREAD_MAX_D features (wider, the
    products cost more than a pass of them on every core). Otherwise the rows are only summed, for `finite`.
    """

    def __init__(self, d: int, rows: int | None = None, sums: bool = True) -> None:
        self.summing = sums and d <= ONE_THREAD_MAX_D
        size = max(AUGMENTED_MIN_ROWS, AUGMENTED_BLOCK_BYTES // ((d + 2) * 8)) if self.summing else 0
        self._block = np.empty((size if rows is None else min(size, max(rows, 1)), d + 2))
        self._block[:, d + 1] = 1.0  # the column of ones: never written again
        self._filled = 0
        self._sums = np.zeros((d + 2, d + 2))
        self._shift: np.ndarray | None = None  # (x, y) subtracted from every row, once the first block set it
        self._total = 0.0  # without the sums: the sum of every value, not finite if one is not
        self.n = 0

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        if not len(y):  # a batch whose every row data.missing: drop left out
            return
        if not self.summing:
            with np.errstate(over="ignore", invalid="ignore"):
                self._total += float(np.sum(x)) + float(np.sum(y))
            self.n += len(y)
            return
        d, at = x.shape[1], 0
        if self._shift is None:  # the first rows' means: the rows are taken less them where a mean dwarfs its spread
            first = np.column_stack([x[:SHIFT_ROWS], y[:SHIFT_ROWS]]).astype(np.float64)
            with np.errstate(over="ignore", invalid="ignore"):  # a value not finite: `finite` says so
                mean, spread = first.mean(axis=0), first.var(axis=0)
                self._shift = np.where(mean**2 > spread, mean, 0.0)  # else a plain copy (faster) loses no digits
        shift = self._shift if np.any(self._shift) else None
        while at < len(y):
            part = self._block[self._filled : self._filled + len(y) - at]
            if shift is None:
                part[:, :d], part[:, d] = x[at : at + len(part)], y[at : at + len(part)]
            else:
                with np.errstate(over="ignore", invalid="ignore"):
                    np.subtract(x[at : at + len(part)], shift[:d], out=part[:, :d])  # copied and shifted at once
                    np.subtract(y[at : at + len(part)], shift[d], out=part[:, d])
            self._filled += len(part)
            at += len(part)
            if self._filled == len(self._block):
                self._flush()
        self.n += len(y)

    def _flush(self) -> None:
        part = self._block[: self._filled]
        if not len(part):
            return
        with np.errstate(over="ignore", invalid="ignore"), _one_thread():  # a value not finite: `finite` says so
            self._sums += part.T @ part  # BLAS syrk
        self._filled = 0

    @property
    def finite(self) -> bool:
        """Every value added is finite (no square's sum is NaN or infinite; without the sums, no sum of values)."""
        self._flush()
        return bool(np.all(np.isfinite(np.diag(self._sums)))) and math.isfinite(self._total)

    def moments(self) -> Moments | None:
        """The moments of every row added; None without the sums, when there is no row, a sum is not finite, or
        `_centered` declines."""
        if not (self.summing and self.n and self.finite):
            return None
        s, d, shift = self._sums, len(self._sums) - 2, self._shift
        assert shift is not None  # rows were added
        with np.errstate(over="ignore", invalid="ignore"):  # a product beyond float64 fails _centered's test, quietly
            return _centered(
                self.n, s[:d, :d], s[:d, d], s[:d, -1], float(s[d, d]), float(s[d, -1]), shift[:d], shift[d]
            )


@functools.cache
def _blas() -> Any:
    from threadpoolctl import ThreadpoolController  # here: start-up of commands that gather no moments skips it

    return ThreadpoolController()


def _one_thread() -> Any:
    """BLAS on one thread while in the context (a few µs: the libraries are found once)."""
    return _blas().limit(limits=1, user_api="blas")


def combined(local: Moments, shard: Shard) -> Moments:
    """The moments of every rank's rows from each rank's own centered ones, exactly (Chan et al.):

        n = Σ n_r,  μ = Σ n_r μ_r / n,  ȳ = Σ n_r ȳ_r / n,  δ_r = μ_r − μ,  ε_r = ȳ_r − ȳ
        G = Σ G_r + Σ n_r δ_r δ_rᵀ,   c = Σ c_r + Σ n_r δ_r ε_r,   tᵀt = Σ t_rᵀt_r + Σ n_r ε_r²

    One all_reduce: the sums of G_r, c_r and t_rᵀt_r, then each rank's (n_r, μ_r, ȳ_r) in its own slot.
    """
    if shard.world == 1:
        return local
    d = len(local.cross)
    own = np.concatenate([[local.n], local.x_mean, [local.y_mean, local.amplified]])
    packed = shard.reduce(np.concatenate([local.gram.ravel(), local.cross, [local.tt], shard.slot(own).ravel()]))
    grams, cross, tts, ranks = np.split(packed, np.cumsum([d * d, d, 1]))
    ranks = ranks.reshape(shard.world, d + 3)
    counts, x_means, y_means = ranks[:, 0], ranks[:, 1 : d + 1], ranks[:, d + 1]
    n = int(counts.sum())
    x_mean, y_mean = counts @ x_means / n, float(counts @ y_means) / n
    delta, epsilon = x_means - x_mean, y_means - y_mean
    gram = grams.reshape(d, d) + (delta.T * counts) @ delta
    cross += delta.T @ (counts * epsilon)
    tt = float(tts[0]) + float(counts @ epsilon**2)
    return Moments(n, x_mean, y_mean, gram, cross, tt, float(ranks[:, -1].max()))


SETTLED_FIT = 1e3  # tᵀt / |r|² (1 / (1 − R²)) up to which a sum of squares from the moments holds about 13 digits


def squares_hold(stats: Moments, squares: float) -> bool:
    """Whether a sum of squared residuals |t − Aw|² taken from the moments (tᵀt − 2cᵀw + wᵀGw) holds its digits:
    the rounding of tᵀt, amplified by the centering's, is small beside it (not a fit that is almost exact)."""
    return bool(stats.amplified * stats.tt <= SETTLED_FIT * squares)


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
