"""The model artifact: versioned JSON, atomic writes, loading and prediction in pure Python.

Nothing here imports NumPy or torch at module level: `lrtrain predict` loads a model and
predicts a handful of values with the standard library alone.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from lrtrain.design import Levels
from lrtrain.errors import InputError, ModelError, notice, writing_stdout
from lrtrain.files import read_json
from lrtrain.runs import CHECKPOINT_FILE, MODEL_FILE, newest_models
from lrtrain.samples import fields as sample_fields
from lrtrain.samples import is_number, parse_number, parse_sample, predict_lines

if TYPE_CHECKING:
    from lrtrain.config import Config
    from lrtrain.engine import FitResult
    from lrtrain.prepare import Prepared

FORMAT = "lrtrain.model"
FORMAT_VERSION = 1
COVARIANCE_MAX_FEATURES = 256  # (X̃ᵀX̃)⁻¹ is stored for prediction intervals up to here (~1.5 MB of JSON)


class Model(NamedTuple):
    weights: list[float]  # in the units of the raw features
    bias: float
    features: list[str]
    target: str
    dtype: str
    path: Path
    statistics: dict[str, Any] | None = None  # the OLS summary on the training rows; None in older files
    categorical: tuple[Levels, ...] = ()  # each categorical column's levels, the baseline first (lrtrain.design)

    def require_statistics(self, command: str) -> dict[str, Any]:
        """The stored OLS summary, checked field by field (a damaged file is an error, not a crash)."""
        statistics = self.statistics
        if not isinstance(statistics, dict):
            raise ModelError(
                f"{self.path} holds no training statistics, which {command} needs: it was written by an older "
                "lrtrain. Retrain it with `lrtrain fit` (the same config gives the same weights)."
            )
        if "unavailable" in statistics:
            raise ModelError(f"{self.path}: {statistics['unavailable']}")
        terms = len(self.weights) + int(statistics.get("intercept") is True)
        shapes = {
            "terms": lambda v: isinstance(v, list) and len(v) == terms and all(_is_term(t) for t in v),
            "intercept": lambda v: isinstance(v, bool),
            "level": lambda v: isinstance(v, float) and 0 < v < 1,
            "warnings": lambda v: isinstance(v, list) and all(isinstance(w, str) for w in v),
            "unscaled_covariance": lambda v: v is None or _is_matrix(v, terms),
            "means": lambda v: v is None or (isinstance(v, list) and len(v) == terms - 1 and all(map(_is_finite, v))),
            **dict.fromkeys(("n", "df_model", "df_resid"), lambda v: isinstance(v, int) and not isinstance(v, bool)),
            **dict.fromkeys(STATISTICS_NUMBERS, _is_number_or_null),
        }
        damaged = [key for key, fits in shapes.items() if not fits(statistics.get(key))]
        if not damaged:  # and what the numbers must say of each other, and of the model's own weights
            damaged = _inconsistent(statistics, self.weights, self.bias)
        if damaged:
            raise ModelError(
                f"model file {self.path} has damaged statistics ({', '.join(damaged)} missing or malformed). "
                "Retrain it with `lrtrain fit` (the same config gives the same weights)."
            )
        return statistics

    def interval_statistics(self) -> dict[str, Any]:
        """The stored statistics, checked for what every prediction interval of this model needs (a covariance, a
        residual df, finite numbers): once per model, not once per sample."""
        statistics = self.require_statistics("predict --interval")
        covariance = statistics["unscaled_covariance"]
        if covariance is None:
            raise ModelError(
                f"{self.path} has {len(self.weights)} features; prediction intervals are kept for models of up to "
                f"{COVARIANCE_MAX_FEATURES} features (the covariance grows with the square). "
                "Predict without --interval."
            )
        if statistics["df_resid"] <= 0:
            raise ModelError(
                f"{self.path} was trained on no more rows than it has parameters (residual degrees of freedom "
                f"{statistics.get('df_resid')}), so the noise, and any interval, cannot be estimated. Train on more "
                "rows to get intervals; predict without --interval."
            )
        sigma2 = _number(statistics["sigma2"])
        finite = all(_is_finite(v) for row in covariance for v in row)
        if not (finite and math.isfinite(sigma2) and sigma2 >= 0 and all(r[i] >= 0 for i, r in enumerate(covariance))):
            raise self._damaged_noise()
        return statistics

    def _damaged_noise(self) -> ModelError:
        return ModelError(
            f"model file {self.path} has a damaged covariance or noise estimate (statistics.unscaled_covariance "
            "and sigma2 must be finite numbers), so no interval can be computed. Retrain it with `lrtrain fit` "
            "(the same config gives the same weights), or predict without --interval."
        )

    def interval(
        self, sample: list[float], level: float, statistics: dict[str, Any] | None = None
    ) -> tuple[float, float, float]:
        """(prediction, low, high) of the `level` prediction interval for a new observation at `sample`;
        `statistics`: those interval_statistics gave (else it is asked here)."""
        from lrtrain.stats import prediction_interval  # brings scipy.special (and NumPy) for the t quantile

        statistics = statistics if statistics is not None else self.interval_statistics()
        self.check(sample)
        bias = self.bias if statistics["intercept"] else None
        sigma2 = _number(statistics["sigma2"])
        covariance = statistics["unscaled_covariance"]
        prediction = self.predict(sample)
        try:
            _, low, high = prediction_interval(
                sample,
                self.weights,
                bias,
                covariance,
                sigma2,
                statistics["df_resid"],
                level,
                statistics.get("means"),
                statistics["n"],
            )
        except (OverflowError, ValueError):  # fsum of terms beyond float64 (inf - inf)
            low = high = math.nan
        if not (math.isfinite(low) and math.isfinite(high)):
            if any(abs(float(v)) > LEVERAGE_SAFE for v in sample):
                raise InputError(
                    f"the sample {_shown(sample)} is too large for an interval: its leverage (xᵀCx, values squared) "
                    "goes beyond float64. Rescale it, or predict without --interval."
                )
            raise self._damaged_noise()  # e.g. a covariance that is not positive semi-definite: a negative variance
        return prediction, low, high

    def predict(self, sample: list[float]) -> float:
        self.check(sample)
        value = compensated([*(w * x for w, x in zip(self.weights, sample, strict=True)), self.bias])
        if not math.isfinite(value):
            raise InputError(
                f"the prediction for {_shown(sample)} is {value}, not a number float64 can hold: the values times "
                "the weights go beyond about 1.8e308. Rescale the sample (the model's units are those it was "
                "trained in)."
            )
        return value

    def check(self, sample: list[float]) -> None:
        """A sample must have one value per feature."""
        if len(sample) != len(self.weights):
            raise InputError(
                f"the model in {self.path} takes {len(self.weights)} feature(s) "
                f"({', '.join(self.features)}) but got {len(sample)}: {sample}. Give each sample as one argument "
                f"(or stdin line) with its {len(self.weights)} values separated by commas, e.g. "
                f"lrtrain predict {','.join(['1'] * len(self.weights))}."
            )

    def format(self, value: float) -> str:
        return format_number(value, self.dtype)


def format_number(value: float, dtype: str = "float64") -> str:
    """Shortest text that reads back as the same number in `dtype`."""
    if dtype != "float32" or not math.isfinite(value):
        return repr(value)
    try:
        single = _to_float32(value)
    except OverflowError:
        return repr(math.copysign(math.inf, value))
    for digits in range(1, 10):
        text = f"{single:.{digits}g}"
        if _to_float32(float(text)) == single:
            return repr(float(text))
    return repr(single)


def _to_float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def load(path: Path, how_to_pass: str = "Pass a model.json or a run folder to --model") -> Model:
    """Read a model file (or a run folder holding one) and check its format, field by field."""
    if path.is_dir() and path.name != MODEL_FILE:
        if not (path / MODEL_FILE).exists() and (path / CHECKPOINT_FILE).exists():
            raise ModelError(
                f"{path} is an interrupted run: it has a checkpoint but no model yet. Finish it with "
                f"lrtrain fit --resume {path}, or name a finished run."
            )
        path = path / MODEL_FILE
    if path.is_dir():  # where a run keeps its model file, a folder
        raise ModelError(f"{path} is a folder, not a model file. Remove it, or train the run again (lrtrain fit).")
    try:
        payload = read_json(path, "model", ModelError, "model file")
    except FileNotFoundError:
        raise ModelError(f"model file {path} does not exist. {how_to_pass}, or train one with `lrtrain fit`.") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{exc.__class__.__name__}: {exc}"
        raise ModelError(
            f"model file {path} is not a readable lrtrain model ({reason}). "
            "It may be truncated or not a model at all; train a new one with `lrtrain fit`."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(
            f'{path} is not an lrtrain model (no "format": "{FORMAT}" in it). '
            "Pass a model.json written by `lrtrain fit`."
        )
    version = payload.get("format_version")
    if not isinstance(version, int | float) or isinstance(version, bool):
        raise ModelError(
            f"model file {path} is damaged: its format_version is {version!r}, not a number as lrtrain "
            f"writes it ({FORMAT_VERSION}). Restore the file, or retrain the model with `lrtrain fit`."
        )
    if version != FORMAT_VERSION:
        written_by = payload.get("lrtrain_version")
        raise ModelError(
            f"model file {path} has format version {version!r}, but this lrtrain reads version {FORMAT_VERSION}. "
            f"It was written by lrtrain {written_by if isinstance(written_by, str) else '?'}; upgrade lrtrain "
            "(pip install -U lrtrain) or retrain the model with this one."
        )
    shapes: dict[str, tuple[Callable[[Any], bool], str]] = {  # each key: its test, and what it must be
        "weights": (lambda v: isinstance(v, list) and all(_is_finite(w) for w in v), "a list of finite numbers"),
        "bias": (_is_finite, "a finite number"),
        "features": (lambda v: isinstance(v, list) and all(isinstance(f, str) for f in v), "a list of names"),
        "target": (lambda v: isinstance(v, str), "a name"),
        "dtype": (lambda v: v in ("float32", "float64"), "float32 or float64"),
    }
    damaged = [
        f"{key} missing or malformed ({what})" for key, (fits, what) in shapes.items() if not fits(payload.get(key))
    ]
    if damaged:
        raise ModelError(f"model file {path} is damaged: {'; '.join(damaged)}. Retrain it with `lrtrain fit`.")
    weights, features = [float(w) for w in payload["weights"]], payload["features"]
    if len(features) != len(weights):
        raise ModelError(
            f"model file {path} is damaged: {len(weights)} weights but {len(features)} feature names. Retrain it."
        )
    if len(set(features)) != len(features):
        twice = next(name for name in features if features.count(name) > 1)
        raise ModelError(f"model file {path} is damaged: the feature {twice!r} is named twice. Retrain it.")
    statistics = payload.get("statistics")
    return Model(
        weights,
        float(payload["bias"]),
        features,
        payload["target"],
        payload["dtype"],
        path,
        statistics if isinstance(statistics, dict) else None,
        _categorical(payload.get("categorical", []), features, path),
    )


def _categorical(entries: Any, features: list[str], path: Path) -> tuple[Levels, ...]:
    """The categorical columns' levels, checked: distinct text levels, the first the baseline, and one feature
    `column[level]` for each of the others; or a baseline of null (full coding) and a feature for every level."""
    found = []
    for entry in entries if isinstance(entries, list) else [None]:
        column = entry.get("column") if isinstance(entry, dict) else None
        levels = entry.get("levels") if isinstance(entry, dict) else None
        full = isinstance(entry, dict) and entry.get("baseline", "") is None
        if not (
            isinstance(column, str)
            and isinstance(levels, list)
            and len(levels) >= 2
            and all(isinstance(level, str) for level in levels)
            and len(set(levels)) == len(levels)
            and isinstance(entry, dict)
            and (full or entry.get("baseline") == levels[0])
            and all(f"{column}[{level}]" in features for level in levels[0 if full else 1 :])
        ):
            raise ModelError(
                f"model file {path} is damaged: its categorical levels are missing or malformed (each needs a column, "
                "two or more distinct levels, the first of them the baseline, and a feature column[level] for every "
                "other; or a null baseline and a feature for every level). Retrain it with `lrtrain fit`."
            )
        found.append(Levels(column, tuple(levels), full))
    return tuple(found)


def _is_finite(value: Any) -> bool:
    """A JSON number (not true or false) that is finite; integers are bounded by files.read_json."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> float:
    """A float from JSON, where null stands for nan."""
    return math.nan if value is None else float(value)


STATISTICS_NUMBERS = (
    *("r2", "adj_r2", "f_stat", "f_p_value", "rss", "sigma2", "residual_std_error"),
    *("log_likelihood", "aic", "bic", "condition_number"),
)


def compensated(terms: list[float]) -> float:
    """The sum of `terms` in order, compensated (Neumaier): a prediction's sum, to about one rounding of the exact
    one. scoring.predicted repeats the same operations on every row of a table at once, so that a row gets the
    same answer, to the last bit, on stdin and in a table. Beyond float64, the plain sum (±inf or nan)."""
    total = correction = 0.0
    for term in terms:
        step = total + term
        correction += (total - step) + term if abs(total) >= abs(term) else (term - step) + total
        total = step
    value = total + correction
    return value if math.isfinite(value) else total


def _is_number_or_null(value: Any) -> bool:
    """A finite number, or null (lrtrain writes a statistic that is undefined, or infinite, as null)."""
    return value is None or _is_finite(value)


def _inconsistent(statistics: dict[str, Any], weights: list[float], bias: float) -> list[str]:
    """The statistics (their shapes checked) that contradict the rest: counts that do not add up to the rows, a
    negative sum of squares, coefficients other than the model's weights (a file edited by hand)."""
    n, df_model, df_resid = statistics["n"], statistics["df_model"], statistics["df_resid"]
    wrong = [] if n >= 1 and df_model >= 0 and df_resid >= 0 and 0 <= n - df_model - df_resid <= 1 else ["n, df"]
    wrong += [key for key in ("rss", "sigma2", "residual_std_error") if (statistics[key] or 0) < 0]
    coefficients = [term["coef"] for term in statistics["terms"]]
    own = [bias, *weights] if statistics["intercept"] else weights
    if not all(c is not None and math.isclose(c, w, rel_tol=1e-12) for c, w in zip(coefficients, own, strict=True)):
        wrong.append("terms: coefficients other than the weights")
    return wrong


def _is_term(term: Any) -> bool:
    numbers = ("coef", "std_err", "t", "p_value", "ci_low", "ci_high")
    return (
        isinstance(term, dict)
        and isinstance(term.get("name"), str)
        and all(_is_number_or_null(term.get(key)) for key in numbers)
    )


def _is_matrix(rows: Any, size: int) -> bool:
    return (
        isinstance(rows, list)
        and len(rows) == size
        and all(isinstance(r, list) and len(r) == size and all(_is_number_or_null(v) for v in r) for r in rows)
    )


def find_latest(runs: Path, warn: Callable[[str], None], how_to_pass: str = "pass --model PATH") -> Path:
    """The model.json of the most recently finished run under `runs`."""
    return load_latest(runs, warn, how_to_pass).path


def load_latest(runs: Path, warn: Callable[[str], None], how_to_pass: str = "pass --model PATH") -> Model:
    """The model of the most recently finished run under `runs`; newer runs whose model cannot be read
    are skipped, each told to `warn` (one damaged folder does not hide every other run)."""
    for path in newest_models(runs):
        try:
            return load(path)
        except ModelError as exc:
            warn(f"warning: skipping the newer {path}: {exc}")
    raise ModelError(
        f"no model found: {runs}/ holds no run with a readable {MODEL_FILE}. Train one with `lrtrain fit` "
        f"(it writes runs/NAME-TIME/model.json), or {how_to_pass}."
    )


def _quoted(level: str) -> str:
    """A level as a sample's field: as it is, or in double quotes (its own doubled, as a CSV cell has them) when it
    holds a comma or a quote."""
    return '"' + level.replace('"', '""') + '"' if "," in level or '"' in level else level


class Inputs:
    """What a sample for `model` holds: one value per column of the training table, in its order, a level name for
    each categorical column (read as training read its cells: lrtrain.design), and the model's features made of
    them, the level names as indicators. A model without categorical columns takes its features."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.levels = {levels.column: levels for levels in model.categorical}
        made = {name: column for column, levels in self.levels.items() for name in levels.names}
        self.columns = list(dict.fromkeys(made.get(feature, feature) for feature in model.features))

    def read(self, text: str, where: str) -> list[float | str]:
        """An argument's or stdin line's sample: numbers, and level names; as many values as it holds (`check`
        says when that is not one per column)."""
        if not self.levels:
            return [*parse_sample(text, where)]
        fields = sample_fields(text, where, commas_only=True)
        if len(self.columns) == 1 and "," not in text:
            fields = [text.strip()]  # a model of one categorical column: the sample is its level, spaces and all
        if len(fields) != len(self.columns):
            return [*fields]
        sample: list[float | str] = []
        for column, field in zip(self.columns, fields, strict=True):
            levels = self.levels.get(column)
            if levels is None:
                sample.append(parse_number(field, text, where, column))
                continue
            code = levels.find(field)
            if code is None:
                raise InputError(f"{where}: {levels.unseen(field)}")
            sample.append(levels.levels[code])
        return sample

    def check(self, sample: Sequence[float | str]) -> None:
        """A sample must have one value per column; with none categorical, per feature (Model.check)."""
        if not self.levels:
            self.model.check([float(v) for v in sample])
            return
        if len(sample) == len(self.columns):
            return
        taken = ", ".join(
            f"{column} (a level: {self._named(self.levels[column])})"
            if column in self.levels
            else f"{column} (a number)"
            for column in self.columns
        )
        indicators = [name for levels in self.levels.values() for name in levels.names]
        hint = (
            f" Its {len(self.model.features)} features include the indicator columns {', '.join(indicators)}, which "
            "predict makes from the level name: give the level itself."
            if len(sample) == len(self.model.features) and all(is_number(str(v)) for v in sample)
            else ""
        )
        import shlex

        shown = [self.levels[c].levels[0] if c in self.levels else "1" for c in self.columns]
        example = ",".join(_quoted(value) for value in shown)
        comma = next((lv for levels in self.levels.values() for lv in levels.levels if "," in lv), None)
        if comma is not None:
            hint += f" A level that holds a comma goes in quotes, as in a CSV cell: {_quoted(comma)}."
        raise InputError(
            f"the model in {self.model.path} takes {len(self.columns)} value(s), one per column of its training table: "
            f"{taken}; but got {len(sample)}: {', '.join(str(v) for v in sample)}.{hint} Give each sample as one "
            "argument (or stdin line), its values separated by commas (or spaces, with no comma), e.g. "
            f"lrtrain predict {shlex.quote(example)}."
        )

    def features(self, sample: Sequence[float | str]) -> list[float]:
        """The model's features for a sample `read` and `check`ed: its numbers, and each level's indicators."""
        if not self.levels:
            return [float(v) for v in sample]
        values: dict[str, float] = {}
        for column, value in zip(self.columns, sample, strict=True):
            levels = self.levels.get(column)
            if levels is None:
                values[column] = float(value)
                continue
            values.update(zip(levels.names, levels.row(levels.levels.index(str(value))), strict=True))
        return [values[feature] for feature in self.model.features]

    @staticmethod
    def _named(levels: Levels) -> str:
        shown = ", ".join(repr(level) for level in levels.levels[:10])
        return shown + (f" and {len(levels.levels) - 10} more" if len(levels.levels) > 10 else "")


LEVERAGE_SAFE = 1e150  # a sample value beyond this can square past float64 in an interval's leverage


def _shown(sample: Sequence[Any]) -> str:
    """A sample in a message: its first values."""
    text = ", ".join(str(v) for v in sample[:5]) + (", ..." if len(sample) > 5 else "")
    return f"({text})"


def predict(
    values: list[str],
    path: Path | None,
    json_output: bool,
    stdin: Iterable[str],
    out: TextIO,
    err: TextIO,
    interval: float | None = None,
) -> None:
    """`lrtrain predict`: one line per sample on `out`, a number (with --interval: prediction, low, high) or a
    JSON record; notes and warnings on `err`."""

    def warn(text: str) -> None:
        notice(text, err)

    model = load(path) if path is not None else load_latest(Path("runs"), warn)
    statistics = model.interval_statistics() if interval is not None else None  # checked once, not per line
    for note in statistics["warnings"] if statistics is not None else []:
        warn(f"note: {note}")  # what `lrtrain summary` would say of these intervals
    inputs = Inputs(model)
    for sample in predict_lines(values, stdin, inputs.read, inputs.check):
        x = inputs.features(sample)
        if interval is None:
            value, bounds = model.predict(x), None
        else:
            value, *bounds = model.interval(x, interval, statistics)
        if json_output:
            record: dict[str, Any] = {"schema": "lrtrain/1", "event": "prediction", "input": sample}
            record["prediction"] = _json_number(value)
            if bounds is not None:
                record["interval"] = {
                    "level": interval,
                    "low": _json_number(bounds[0]),
                    "high": _json_number(bounds[1]),
                }
            line = json.dumps(record)
        else:
            line = " ".join(model.format(v) for v in [value, *(bounds or [])])
        with writing_stdout():  # a full disk or /dev/full: one line on stderr, exit 1
            out.write(line + "\n")
    with writing_stdout():
        out.flush()


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no infinity or nan


# --------------------------------------------------------------------------- writing


def payload(config: Config, result: FitResult, prepared: Prepared) -> dict[str, Any]:
    """The model file's contents for a finished fit."""
    from datetime import UTC, datetime

    from lrtrain import __version__
    from lrtrain.config import to_dict

    dataset, scaling = prepared.raw, prepared.scaling
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lrtrain_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "weights": [float(w) for w in result.weights],
        "bias": float(result.bias),
        "features": dataset.features,
        "target": dataset.target,
        "dtype": result.dtype,
        "engine": result.engine,
        "device": result.device,
        "standardization": (
            {"mean": _floats(scaling.mean), "scale": _floats(scaling.scale)} if config.data.standardize else None
        ),
        "metrics": {
            "loss": result.loss,
            "val_loss": result.val_loss,
            "r2": result.r2,
            "epochs": result.epochs,
            "seconds": result.seconds,
            "optimum_loss": result.optimum_loss,
            "max_abs_dw_to_optimum": result.max_dw_to_optimum,
            "stopped": result.stopped,
        },
        "categorical": [levels.to_json() for levels in dataset.levels],
        "data": {
            "origin": dataset.origin,
            "rows": prepared.rows + prepared.val_rows,
            "sha256": prepared.fingerprint,
            "dropped": dataset.dropped.to_json() if dataset.dropped is not None else None,
        },
        "statistics": _stored_statistics(result),
        "config": to_dict(config),
    }


def _stored_statistics(result: FitResult) -> dict[str, Any] | None:
    """The OLS summary for `lrtrain summary`, and what `predict --interval` needs (the covariance, for up to
    model.COVARIANCE_MAX_FEATURES features); {"unavailable": why} when there is none."""
    if result.summary is None:
        return None
    if isinstance(result.summary, str):
        return {"unavailable": result.summary}
    return result.summary.to_dict(covariance=len(result.weights) <= COVARIANCE_MAX_FEATURES)


def _floats(a: Any) -> list[float]:
    return [float(v) for v in a]
