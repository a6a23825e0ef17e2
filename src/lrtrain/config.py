"""The typed config: every default in one place, loading (YAML file, --set overrides), validation.

Reading YAML with line numbers and putting validation errors into words is config_text's job.
Precedence is defaults < YAML file < --set. Unknown keys and wrong types are errors, never
silently coerced; every error names the key, the value, the allowed range, where the value
came from (file and line, or --set) and how to fix it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from lrtrain.config_paths import expand_home, imply_source, run_name_of
from lrtrain.config_text import Key, Positions, Schema, describe, did_you_mean, parse_value, read_yaml_file
from lrtrain.errors import ConfigError

Engine = Literal["manual", "torch", "exact"]
DType = Literal["float32", "float64"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True, allow_inf_nan=False)


def _check_x(value: list[Any]) -> list[Any]:
    """Accept a flat list of numbers (one feature) or a list of equal-length rows."""
    if not value:
        raise ValueError("must not be empty")
    if all(_is_number(v) for v in value):
        return [float(v) for v in value]
    if not any(isinstance(v, list) for v in value):  # a flat list: the first item that is not a number
        bad = next(i for i, v in enumerate(value) if not _is_number(v))
        raise ValueError(f"must be a list of finite numbers (one feature); item {bad} is {value[bad]!r}")
    rows: list[list[float]] = []
    for i, row in enumerate(value):
        if not isinstance(row, list) or not all(_is_number(v) for v in row):
            raise ValueError(
                f"must be a list of numbers (one feature) or a list of rows of numbers "
                f"(several features); item {i} is {row!r}"
            )
        if rows and len(row) != len(rows[0]):
            raise ValueError(f"rows must have equal length; row 0 has {len(rows[0])} values, row {i} has {len(row)}")
        rows.append([float(v) for v in row])
    return rows


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


SOURCE_HELP = "where the data comes from: inline, synthetic, csv, parquet or npy"


class _DataCommon(_Strict):
    validation: float = Field(
        0.0, ge=0.0, lt=1.0, description="fraction of rows held out for validation, in [0, 1); 0 = none"
    )
    standardize: bool = Field(
        False, description="train on standardized features; saved and printed weights stay in original units"
    )


class InlineData(_DataCommon):
    source: Literal["inline"] = Field("inline", description=SOURCE_HELP)
    x: Annotated[list[Any], AfterValidator(_check_x)] = Field(
        default_factory=lambda: [1.0, 2.0, 3.0, 4.0],
        description="inputs: a flat list (one feature) or a list of rows (several features)",
        json_schema_extra={"items": {"anyOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}]}},
    )
    y: list[float] = Field(
        default_factory=lambda: [2.0, 4.0, 6.0, 8.0], min_length=1, description="targets, one per row of x"
    )


class SyntheticData(_DataCommon):
    source: Literal["synthetic"] = Field(description=SOURCE_HELP)
    rows: int = Field(1000, ge=1, description="number of rows, >= 1")
    features: int = Field(1, ge=1, description="number of features, >= 1")
    weights: list[float] | None = Field(
        None, description="true weights, one per feature; null draws them from N(0, 1) with the seed"
    )
    bias: float = Field(0.0, description="true bias (intercept)")
    noise: float = Field(0.1, ge=0.0, description="standard deviation of the Gaussian noise added to y, >= 0")
    seed: int | None = Field(None, ge=0, description="seed of the generated data, >= 0; null uses the top-level seed")

    @model_validator(mode="after")
    def _weights_match_features(self) -> SyntheticData:
        if self.weights is not None and len(self.weights) != self.features:
            raise ValueError(
                f"data.weights has {len(self.weights)} values but data.features is {self.features}; "
                "give one weight per feature or set data.weights to null"
            )
        return self


class _Columns(_DataCommon):
    """A table whose data.target and data.features name columns (or give their indices)."""

    categorical: list[str | int] = Field(
        default_factory=list,
        description="feature columns (names or 0-based indices) encoded as indicators against their first level",
    )
    missing: Literal["error", "drop"] = Field(
        "error", description="a row with an empty or null cell in a used column: error, or drop the row"
    )

    @field_validator("target", "features", "categorical", mode="before", check_fields=False)
    @classmethod
    def _no_yaml_boolean(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, bool) or (isinstance(value, list) and any(isinstance(v, bool) for v in value)):
            example = "'\"YES\"'" if info.field_name == "target" else "'[\"YES\", b]'"
            raise ValueError(
                "holds a boolean: YAML reads an unquoted yes, no, on, off, true or false (any case) as one, never as "
                f"a column name. Quote the name, e.g. --set data.{info.field_name}={example}"
            )
        return value


class CsvData(_Columns):
    source: Literal["csv"] = Field(description=SOURCE_HELP)
    path: str = Field(min_length=1, description="CSV file; a relative path is relative to the config file")
    header: bool = Field(True, description="the first line holds column names")
    target: str | int | None = Field(None, description="target column: a name or a 0-based index; null = last column")
    features: list[str | int] | None = Field(
        None, min_length=1, description="feature columns (names or 0-based indices); null = every column but the target"
    )
    delimiter: str = Field(
        ",", min_length=1, max_length=1, description="field separator, one character (not a quote or a line break)"
    )

    @field_validator("delimiter", mode="before")
    @classmethod
    def _tab(cls, delimiter: Any) -> Any:
        return TAB_NAMES.get(delimiter.lower(), delimiter) if isinstance(delimiter, str) else delimiter

    @field_validator("delimiter")
    @classmethod
    def _separable(cls, delimiter: str) -> str:
        return separable(delimiter)


TAB_NAMES = {"\\t": "\t", "tab": "\t"}  # a tab as typed in a shell or unquoted YAML: \t, or the word


def separable(delimiter: str) -> str:
    """`delimiter` when it can separate a CSV's fields; else a ValueError that says why (data.delimiter, and
    --delimiter for a table to score)."""
    if len(delimiter) != 1:
        raise ValueError(f"{delimiter!r} is not one character; give one, e.g. ',' or ';'")
    if delimiter in '"\r\n':
        raise ValueError(f"{delimiter!r} cannot separate fields: it quotes them or ends lines; use e.g. ',' or ';'")
    if not delimiter.isascii():  # the parser splits bytes
        raise ValueError(f"{delimiter!r} is not an ASCII character: the CSV parser splits on a byte, e.g. ';'")
    return delimiter


class ParquetData(_Columns):
    source: Literal["parquet"] = Field(description=SOURCE_HELP)
    path: str = Field(
        min_length=1,
        description=".parquet file, or a folder of them read as one table in name order; relative to the config file",
    )
    target: str | int | None = Field(None, description="target column: a name or a 0-based index; null = last column")
    features: list[str | int] | None = Field(
        None,
        min_length=1,
        description="feature columns (names or 0-based indices), numeric; null = every column but the target",
    )


class NpyData(_DataCommon):
    source: Literal["npy"] = Field(description=SOURCE_HELP)
    path: str = Field(
        min_length=1,
        description=".npy (2-D, target in one column) or .npz (arrays x and y); relative to the config file",
    )
    target: int = Field(-1, description=".npy only: index of the target column (negative counts from the end)")
    x_key: str = Field("x", description=".npz only: name of the feature array")
    y_key: str = Field("y", description=".npz only: name of the target array")


DataSpec = Annotated[InlineData | SyntheticData | CsvData | ParquetData | NpyData, Discriminator("source")]
DATA_SOURCES: dict[str, type[_DataCommon]] = {
    "inline": InlineData,
    "synthetic": SyntheticData,
    "csv": CsvData,
    "parquet": ParquetData,
    "npy": NpyData,
}


class ModelSpec(_Strict):
    bias: bool = Field(True, description="learn an intercept b in y = x.w + b")
    init: Literal["zeros", "normal", "torch"] = Field(
        "torch",
        description="initial weights: zeros; normal (N(0, init_std)); torch (nn.Linear's U(-1/sqrt(D), 1/sqrt(D))). "
        "Always drawn from the seed, so every engine starts equal",
    )
    init_std: float = Field(0.01, gt=0.0, description="standard deviation for init: normal, > 0")
    dtype: DType = Field(
        "float32", description="floating-point type of data, weights and arithmetic (exact: always float64)"
    )


class EarlyStopping(_Strict):
    patience: int = Field(
        0, ge=0, description="stop after this many epochs without improvement (validation loss if any); 0 = off"
    )
    tolerance: float = Field(0.0, ge=0.0, description="an improvement must exceed this to count, >= 0")
    restore_best: bool = Field(
        True, description="when it stops, keep the weights of the best epoch (validation loss if any), not the last"
    )


def _check_lr(value: object) -> float | str:
    if value == "auto":
        return "auto"
    if not _is_number(value):  # finite numbers only
        raise ValueError(f"must be a number > 0 or 'auto'; got {value!r}")
    if not float(value) > 0:  # type: ignore[arg-type]
        raise ValueError(f"must be greater than 0 (or 'auto'); got {value!r}")
    return float(value)  # type: ignore[arg-type]


_LR_SCHEMA = {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"const": "auto"}]}


def _check_momentum(value: object) -> float | str:
    if value == "auto":
        return "auto"
    if not _is_number(value):  # finite numbers only
        raise ValueError(f"must be a number in [0, 1) or 'auto'; got {value!r}")
    if not 0 <= float(value) < 1:  # type: ignore[arg-type]
        raise ValueError(f"must be in [0, 1) (or 'auto'); got {value!r}")
    return float(value)  # type: ignore[arg-type]


_MOMENTUM_SCHEMA = {"anyOf": [{"type": "number", "minimum": 0, "exclusiveMaximum": 1}, {"const": "auto"}]}


class ScheduleSpec(_Strict):
    kind: Literal["constant", "step", "cosine", "inverse_time"] = Field(
        "constant",
        description="how the lr changes after each epoch: constant; step (times gamma every step_epochs); "
        "cosine (down to min_lr over period_epochs); inverse_time (lr / (1 + decay·t) after t epochs)",
    )
    step_epochs: int = Field(30, ge=1, description="step: multiply the lr by gamma every this many epochs, >= 1")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="step: the factor, in (0, 1]")
    period_epochs: int | None = Field(
        None, ge=1, description="cosine: epochs from lr down to min_lr, >= train.epochs; null = train.epochs"
    )
    min_lr: float = Field(
        0.0, ge=0.0, le=1.0, description="cosine: the lr at the end of the period, a fraction of train.lr, in [0, 1]"
    )
    decay: float = Field(0.1, gt=0.0, description="inverse_time: the epoch after t epochs uses lr / (1 + decay·t), > 0")

    PARAMETERS: ClassVar[dict[str, tuple[str, ...]]] = {
        "constant": (),
        "step": ("step_epochs", "gamma"),
        "cosine": ("period_epochs", "min_lr"),
        "inverse_time": ("decay",),
    }

    @field_validator(*(name for names in PARAMETERS.values() for name in names))
    @classmethod
    def _used_by_the_kind(cls, value: object, info: ValidationInfo) -> object:
        kind = info.data.get("kind")  # absent when kind itself was invalid: that error is enough
        owner = next(k for k, names in cls.PARAMETERS.items() if info.field_name in names)
        default = cls.model_fields[str(info.field_name)].default
        if kind is not None and kind != owner and value != default:
            raise ValueError(
                f"{value!r} does nothing with train.schedule.kind = {kind}: it is a parameter of kind {owner}. "
                f"Set train.schedule.kind to {owner}, or {info.field_name} back to its default ({json.dumps(default)})"
            )
        return value

    def settings(self, epochs: int) -> dict[str, Any]:
        """The kind and the parameters it uses, the cosine period resolved (null: train.epochs = `epochs`)."""
        settings = {"kind": self.kind, **{name: getattr(self, name) for name in self.PARAMETERS[self.kind]}}
        if self.kind == "cosine" and self.period_epochs is None:
            settings["period_epochs"] = epochs
        return settings


class TrainSpec(_Strict):
    engine: Engine = Field(
        "manual", description="manual (NumPy), torch (nn.Linear + optim.SGD) or exact (least squares)"
    )
    device: str = Field("cpu", description="torch engine only: cpu, cuda, cuda:N, mps or auto")
    epochs: int = Field(100, ge=1, description="passes over the training data, >= 1")
    lr: Annotated[float | Literal["auto"], PlainValidator(_check_lr), WithJsonSchema(_LR_SCHEMA)] = Field(
        0.01, description="learning rate, > 0, or auto: 1/L, L the largest eigenvalue of the loss's Hessian"
    )
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec, description="how the lr changes from epoch to epoch")
    batch_size: int | None = Field(None, ge=1, description="rows per step, >= 1; null = full batch")
    shuffle: bool = Field(True, description="minibatches: reshuffle the rows every epoch (from the seed)")
    momentum: Annotated[float | Literal["auto"], PlainValidator(_check_momentum), WithJsonSchema(_MOMENTUM_SCHEMA)] = (
        Field(
            0.0,
            description="SGD (heavy-ball) momentum, in [0, 1), or auto (full batch): the optimum for the Hessian's "
            "extreme eigenvalues",
        )
    )
    weight_decay: float = Field(0.0, ge=0.0, description="L2 penalty on the weights (not the bias), >= 0")
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping, description="stop when the loss stalls")
    target_gap: float = Field(
        1e-6,
        ge=0.0,
        description="stop once the training loss is within this relative gap of the least-squares optimum "
        "(absolute when the optimum is 0), so train.epochs is a cap; 0 = always train every epoch",
    )
    diverge_patience: int = Field(5, ge=1, description="epochs of loss growth in a row that count as divergence, >= 1")
    statistics: Literal["auto", "always", "never"] = Field(
        "auto",
        description="manual engine, full batch: epochs from the sufficient statistics (XᵀX, Xᵀy, ...) gathered in one "
        "pass, O(D²) per epoch instead of O(N·D); auto = in float64 when cheaper (float32 stays on the data)",
    )
    threads: int | None = Field(
        None, ge=1, description="threads for BLAS and torch, >= 1; null = the libraries' default (every core)"
    )
    predict: list[float | list[float]] | None = Field(
        None,
        description="inputs to predict before and after training, each a number or a list of one per feature; "
        "null = [5] (the sheet's f(5)) for one-feature data, none otherwise",
    )

    @field_validator("device")
    @classmethod
    def _device_spelling(cls, device: str) -> str:
        if not re.fullmatch(r"cpu|auto|mps|cuda(:\d+)?", device):
            raise ValueError(f"must be cpu, cuda, cuda:N, mps or auto; got {device!r}")
        return device

    @model_validator(mode="after")
    def _cosine_period_covers_the_epochs(self) -> TrainSpec:
        period = self.schedule.period_epochs
        if self.schedule.kind == "cosine" and period is not None and period < self.epochs:
            raise ValueError(
                f"train.schedule.period_epochs is {period}, shorter than train.epochs = {self.epochs}: past its "
                "period a cosine schedule would raise the lr again. Set period_epochs to at least train.epochs, "
                "or to null for train.epochs"
            )
        return self


class LogSpec(_Strict):
    every: int = Field(10, ge=1, description="print every N-th epoch (epochs 1, N+1, 2N+1, ...), >= 1")
    header: bool = Field(True, description="print 'Number of samples: N, number of features: D' first")
    bias: bool = Field(True, description="show the bias on epoch lines")
    precision: int = Field(3, ge=0, le=17, description="decimals shown for weights and predictions, 0..17")


class OutputSpec(_Strict):
    dir: str = Field(
        "runs", min_length=1, description="folder that holds run folders, relative to the working directory"
    )
    save: bool = Field(True, description="write a run folder (config, model.json, metrics.csv)")


class CompareSpec(_Strict):
    tolerance: float | None = Field(
        None,
        gt=0.0,
        description="largest allowed max|dw| / max(1, max|w|) between engines; "
        "null = 1e-4 for float32, 1e-8 for float64",
    )


class Config(_Strict):
    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$",
        max_length=100,
        description="run name (letters, digits, _ . + -; it names the run folder); null = the config file's name",
    )
    seed: int = Field(0, ge=0, description="seed of initial weights, shuffling, validation split and synthetic data")
    data: DataSpec = Field(default_factory=InlineData, description="where the training data comes from")
    model: ModelSpec = Field(default_factory=ModelSpec, description="the linear model")
    train: TrainSpec = Field(default_factory=TrainSpec, description="the optimizer and its stop rules")
    log: LogSpec = Field(default_factory=LogSpec, description="what the epoch lines show")
    output: OutputSpec = Field(default_factory=OutputSpec, description="where runs are written")
    compare: CompareSpec = Field(default_factory=CompareSpec, description="`lrtrain compare` settings")

    def run_name(self) -> str:
        return self.name or "default"

    def tolerance(self) -> float:
        if self.compare.tolerance is not None:
            return self.compare.tolerance
        return 1e-4 if self.model.dtype == "float32" else 1e-8


# --------------------------------------------------------------------------- YAML


# --------------------------------------------------------------------------- loading


def load_config(path: Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults < YAML file < --set overrides, validated; relative data paths resolved."""
    raw: dict[str, Any] = {}
    positions: Positions = {}
    if path is not None:
        raw, positions = read_yaml_file(path)
    set_keys: set[tuple[str, ...]] = set()
    for item in overrides:
        key, value = _parse_override(item)
        _set_path(raw, key, value)
        set_keys.add(key)
    expand_home(raw)
    if isinstance(raw.get("data"), dict):
        base = path.parent if path is not None and ("data", "path") not in set_keys else Path.cwd()
        imply_source(raw["data"], base)
        raw["data"].setdefault("source", "inline")
    if path is not None and "name" not in raw:
        raw["name"] = run_name_of(path)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        source = f"config file {path}" if path is not None else "the built-in default config"
        raise ConfigError(describe(exc, raw, positions, set_keys, source, _schema())) from None
    data_path = getattr(config.data, "path", None)
    if data_path is not None and not Path(data_path).is_absolute():  # saved configs rerun from anywhere
        base = path.parent if path is not None and ("data", "path") not in set_keys else Path.cwd()
        try:
            resolved = (base / data_path).resolve()
        except (OSError, RuntimeError):  # a loop of symbolic links: reading the file names it
            resolved = (base / data_path).absolute()
        config.data.path = str(resolved)  # type: ignore[union-attr]
    return config


def _parse_override(item: str) -> tuple[tuple[str, ...], Any]:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(
            f"--set {item!r} is not KEY=VALUE. Write it as e.g. --set train.lr=0.1 "
            "(keys are dotted paths; `lrtrain config show` lists them)."
        )
    parts = tuple(key.split("."))
    _check_key_exists(parts, item)
    value = parse_value(text, f"--set {item[:200]!r}") if text.strip() else None
    if parts in (("data", "target"), ("data", "features")) and isinstance(value, bool):
        raise ConfigError(
            f"--set {item!r}: YAML reads {text.strip()} as the boolean {json.dumps(value)}, not a column name. "
            f"Quote the name: --set {key}='\"{text.strip()}\"'."
        )
    return parts, value


def _check_key_exists(parts: tuple[str, ...], item: str) -> None:
    fields: dict[str, Any] = Config.model_fields
    for depth, part in enumerate(parts):
        if part not in fields:
            dotted = ".".join(parts[: depth + 1])
            raise ConfigError(f"--set {item!r}: unknown key '{dotted}'.{did_you_mean(part, fields, parts[:depth])}")
        annotation = fields[part].annotation
        if depth == len(parts) - 1:
            return
        if parts[: depth + 1] == ("data",):
            fields = {k: v for model in DATA_SOURCES.values() for k, v in model.model_fields.items()}
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = annotation.model_fields
        else:
            dotted = ".".join(parts[: depth + 1])
            raise ConfigError(
                f"--set {item!r}: '{dotted}' is a value, not a section; it has no key '{parts[depth + 1]}'. "
                f"Set the value itself, e.g. --set {dotted}=VALUE; `lrtrain config show` lists every key."
            )


def _set_path(raw: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


# --------------------------------------------------------------------------- output


def to_dict(config: Config) -> dict[str, Any]:
    return config.model_dump(mode="json")


def to_yaml(config: Config, comments: bool = True) -> str:
    """The resolved config as YAML, every key present, each with its description as a comment."""
    lines: list[str] = []
    _emit(to_dict(config), type(config), type(config.data), 0, lines, comments)
    return "\n".join(lines) + "\n"


def _emit(
    values: dict[str, Any],
    model: type[BaseModel],
    data_model: type[BaseModel],
    indent: int,
    lines: list[str],
    comments: bool,
) -> None:
    pad = "  " * indent
    if "source" in values:  # the data source first: it decides which keys follow
        values = {"source": values["source"], **values}
    for key, value in values.items():
        field = model.model_fields.get(key)
        note = f"  # {field.description}" if comments and field and field.description else ""
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:{note}")
            sub = data_model if key == "data" and model is Config else _submodel(model, key)
            _emit(value, sub, data_model, indent + 1, lines, comments)
        else:
            # YAML's own spelling: 1.0e-06, not JSON's 1e-06 (a string to YAML 1.1 readers), and .inf
            scalar = yaml.safe_dump(value, default_flow_style=True, width=float("inf")).removesuffix("\n...\n")
            lines.append(f"{pad}{key}: {scalar.strip()}{note}")


def _submodel(model: type[BaseModel], key: str) -> type[BaseModel]:
    annotation = model.model_fields[key].annotation
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        raise TypeError(f"{model.__name__}.{key} is not a section")
    return annotation


def schema() -> dict[str, Any]:
    result = Config.model_json_schema()
    result["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    result["title"] = "lrtrain config"
    return result


def _schema() -> Schema:
    return Schema(Config, dict(DATA_SOURCES), reference())


def reference() -> list[Key]:
    """Every config key with its default, allowed values or range, and description."""
    keys: list[Key] = []

    def visit(model: type[BaseModel], prefix: str, source: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            annotation = field.annotation
            if key == "data":
                for tag, source_model in DATA_SOURCES.items():
                    visit(source_model, "data.", tag)
                continue
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                visit(annotation, f"{key}.", "")
                continue
            own = source if name not in _DataCommon.model_fields else ""
            if any(k.key == key and k.source == own for k in keys):
                continue
            keys.append(Key(key, _default_text(field), _allowed(field), field.description or "", own))

    visit(Config, "", "")
    return keys


def _default_text(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.is_required():
        return "required"
    else:
        value = field.default
    return value if isinstance(value, str) else json.dumps(value)


def _allowed(field: Any) -> str:
    if get_origin(field.annotation) is Literal:
        return ", ".join(str(v) for v in get_args(field.annotation))
    parts = []
    for item in field.metadata:
        for attr, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(item, attr, None)
            if bound is not None and not (isinstance(bound, float) and math.isinf(bound)):
                parts.append(f"{symbol} {bound:g}")
    return ", ".join(parts)
