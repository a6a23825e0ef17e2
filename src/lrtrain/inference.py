"""The statistical summary of a fit: standard errors, tests and intervals of its final weights (lrtrain.stats),
from the training rows' moments, and from the data itself where the moments have lost the digits it needs.

The moments give (X̃ᵀX̃)⁻¹ in O(D³) whatever N is, but through the Gram matrix, whose condition number is the
design's squared: for a design with cond = 1e9 (NIST's Filip, a 10th-degree polynomial) the Gram matrix holds no
digit of its smallest directions, and the summary would call the design singular. There, one blocked pass over
the rows takes the design's R by QR (TSQR under torchrun), which keeps them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lrtrain import stats
from lrtrain.blocks import passing
from lrtrain.config import Config
from lrtrain.engine import FitResult
from lrtrain.moments import equilibrated
from lrtrain.prepare import Prepared

# the equilibrated Gram matrix's condition number (times the rounding its centering may have amplified) beyond
# which (X̃ᵀX̃)⁻¹ from the moments would keep fewer than about 8 digits: the summary takes R from the data
FACTOR_CONDITION = 1e8
# beyond this many features the test (an eigendecomposition) and the pass (O(N·D²)) cost more than the summary's
# other work, and the moments' answer stands
FACTOR_MAX_FEATURES = 1024


def summarize(config: Config, prepared: Prepared, result: FitResult, factor: np.ndarray | None) -> stats.Summary:
    """Standard errors, tests and intervals of the final weights, from the moments, or from `factor`
    (`design_factor`) where it was needed."""
    raw = prepared.moments.in_original_units(prepared.scaling)
    w, b, loss, optimum_loss = result.weights, result.bias, result.loss, result.optimum_loss
    bias = b if config.model.bias else None
    summary = stats.summarize(raw, w, bias, loss * prepared.rows, prepared.raw.features, factor=factor)
    notes = []
    if config.train.weight_decay > 0:
        notes.append(
            f"train.weight_decay = {config.train.weight_decay:g}: these are ridge weights, and the standard errors, "
            "tests and intervals assume ordinary least squares, so they are only indicative."
        )
    excess = loss - optimum_loss
    variance = prepared.moments.tt / prepared.rows  # of y: what "small" means for an optimum of 0
    if excess > 1e-3 * optimum_loss and excess > 1e-12 * variance:  # σ² off by more than 0.1%
        relative = optimum_loss > 1e-9 * variance  # an optimum of about 0 (an exact fit): no percentage of it
        how_far = f"{excess / optimum_loss:.2%} above the optimum's" if relative else f"{loss:.3g}, not about 0"
        notes.append(
            f"the weights are not yet the least-squares optimum (their MSE is {how_far}), and the statistics use "
            "their residuals: train longer, or use --engine exact."
        )
    return dataclasses.replace(summary, warnings=(*summary.warnings, *notes))


def design_factor(config: Config, prepared: Prepared) -> np.ndarray | None:
    """The upper-triangular R of a QR of the training design in raw units (the rows about their means with a
    bias, about the origin without), when the moments would lose the summary's digits (FACTOR_CONDITION);
    None where they hold them. Under torchrun a collective: every rank decides alike, from the same moments."""
    if prepared.features > FACTOR_MAX_FEATURES:
        return None
    bias = config.model.bias
    moments = prepared.moments if bias else prepared.moments.uncentered()
    live, _, eigenvalues, _ = equilibrated(moments.gram, vectors=False)  # a constant feature: told apart already
    if not live.any():
        return None
    if moments.amplified * eigenvalues[-1] <= FACTOR_CONDITION * eigenvalues[0]:
        return None
    d = prepared.features
    center = moments.x_mean  # the training units' means with a bias, zeros without
    r = np.zeros((0, d))
    for x_part, _ in passing(prepared.x, prepared.y):
        a = np.asarray(x_part, dtype=np.float64) - center
        r = _triangle(np.vstack([r, a]))  # R of the rows so far: [R; A_block] = Q'R'
    if prepared.shard.world > 1:  # TSQR: the R of every rank's R stacked is the R of all the rows
        r = _triangle(prepared.shard.gather(_square(r, d).ravel()).reshape(prepared.shard.world * d, d))
    raw: np.ndarray = _square(r, d) * prepared.scaling.scale  # A_raw = A_trained·diag(scale): R scales by column
    return raw


def _triangle(a: np.ndarray) -> np.ndarray:
    r: np.ndarray = np.linalg.qr(a, mode="r")  # type: ignore[assignment]  # mode "r" returns R alone
    return r


def _square(r: np.ndarray, d: int) -> np.ndarray:
    """R of fewer rows than columns (fewer rows than features so far), zero-padded to d × d."""
    square = np.zeros((d, d))
    square[: len(r)] = r
    return square
