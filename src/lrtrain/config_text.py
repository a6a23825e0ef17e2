"""Config text: YAML read with the line of every key, and validation errors put into words.

Nothing here knows the config's keys: `describe` is handed the schema (the root model, the
data-source models and the documented keys), so every message can name the key, where it came
from (file and line, or --set), the value, the allowed range and the fix.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import BaseModel, ValidationError

from lrtrain.errors import ConfigError, read_limited

ALIAS_NODES = 100_000  # nodes that aliases (*name) may repeat in all: a config has no use for more, and a
# "billion laughs" (aliases of aliases, each doubling what the last stands for) would need billions
INT_LIMIT = 2**63 - 1  # integers beyond 64 bits mean nothing to any key, NumPy or torch


class Key(NamedTuple):
    """One config key, as documented in `config show`, the README and error messages."""

    key: str
    default: str
    allowed: str
    description: str
    source: str  # the data source the key belongs to; "" when it applies everywhere


@dataclass(frozen=True)
class Schema:
    """What error messages need to know of the config's shape."""

    root: type[BaseModel]
    sources: dict[str, type[BaseModel]]  # data.source -> its model; the first is the default
    keys: list[Key]


class Loader(yaml.SafeLoader):
    """SafeLoader that also reads 1e-3 as a float (YAML 1.1 insists on a dot: 1.0e-3)."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


class Refused(yaml.MarkedYAMLError):
    """YAML that parses but that lrtrain does not build: `problem` says what, `note` the fix."""


# A number as lrtrain reads one, here as on predict's command line (samples.is_number): ASCII digits with a sign, a
# point and an exponent. YAML 1.1 reads more as numbers: 1_000, 0x1F, 0b101, 010 (octal: 8), 1:30 (base 60: 90).
PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
# .inf and .nan pass here: the check for finite numbers refuses them later, naming the key
PLAIN_FLOAT = re.compile(
    r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)
NUMBER_SYNTAX = (
    "A number is plain ASCII: digits with an optional sign, point and exponent (1000, -2.5, 1e-3), not 1_000, "
    "0x10, 010, 1:30 or other scripts' digits"
)


def _not_plain(node: yaml.ScalarNode, read_as: object) -> Refused:
    text = _shown(str(node.value))
    return Refused(
        problem=f"{text} is not a number as lrtrain reads one (YAML would read it as {read_as!r})",
        problem_mark=node.start_mark,
        note=f"{NUMBER_SYNTAX}. Write the number that way, or quote it to mean text.",
    )


def _shown(text: str) -> str:
    return text if len(text) <= 30 else f"{text[:12]}...{text[-4:]} ({len(text):,} characters)"


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    if not PLAIN_FLOAT.fullmatch(str(node.value)):
        raise _not_plain(node, value)
    return value


Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """An integer within 64 bits; longer text is not even converted (Python refuses 4,300 digits, slowly)."""
    text = str(node.value)
    value = yaml.SafeLoader.construct_yaml_int(loader, node) if len(text) <= 100 else None
    if not PLAIN_INT.fullmatch(text):
        raise _not_plain(node, value if value is not None else "an integer")
    if value is None or abs(value) > INT_LIMIT:
        raise Refused(
            problem=f"the integer {_shown(text)} is beyond the 64-bit range lrtrain reads (±{INT_LIMIT})",
            problem_mark=node.start_mark,
            note="Use a smaller value; to mean a real number, write it in floating point (e.g. 1.5e30).",
        )
    return value


Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

Positions = dict[tuple[str, ...], int]
STR_TAG = "tag:yaml.org,2002:str"


def parse_yaml(text: str, where: str) -> tuple[Any, Positions]:
    """Parse YAML and record the 1-based line of every key path."""
    loader: Loader | None = None
    node: yaml.Node | None = None
    try:
        loader = Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _check_aliases(node)  # before anything walks the nodes as a tree
        positions: Positions = {}
        _walk(node, (), positions, where)
        return check_text(_construct(loader, node), where), positions
    except Refused as exc:
        mark = exc.problem_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        key = _key_at(node, mark.index) if node is not None and mark else None
        at += f", key '{key}'" if key else ""
        raise ConfigError(f"{where}{at}: {exc.problem}. {exc.note}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            f"{where}{at} is not valid YAML: {problem}. Fix the syntax there "
            "(a mapping of keys to values, e.g. 'train:\\n  lr: 0.01')."
        ) from None
    except yaml.YAMLError as exc:  # e.g. control characters, which YAML forbids
        raise ConfigError(f"{where} is not valid YAML: {exc}. Fix the file (plain UTF-8 text).") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to be a config. Fix the file.") from None
    finally:
        if loader is not None:
            loader.dispose()


def parse_value(text: str, where: str) -> Any:
    """A value given on the command line (--set KEY=VALUE), read as YAML with the limits of a config file;
    text that is not valid YAML stays the string it is."""
    loader = Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node)
        return check_text(_construct(loader, node), where)
    except Refused as exc:
        raise ConfigError(f"{where}: {exc.problem}. {exc.note}") from None
    except (yaml.YAMLError, RecursionError):
        return check_text(text, where)
    finally:
        loader.dispose()


def _key_at(root: yaml.Node, index: int) -> str | None:
    """The dotted key ('train.lr', 'data.x[2]') of the scalar that starts at character `index`, for a message."""
    seen: set[int] = set()  # an alias is its anchor's node: each is looked at once

    def find(node: yaml.Node, path: tuple[int | str, ...]) -> str | None:
        if id(node) in seen:
            return None
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            return _dotted(path) if node.start_mark.index == index and path else None
        children: list[tuple[int | str, yaml.Node]] = []
        if isinstance(node, yaml.MappingNode):
            children = [(str(key.value), value) for key, value in node.value]
        elif isinstance(node, yaml.SequenceNode):
            children = list(enumerate(node.value))
        return next((found for part, child in children if (found := find(child, (*path, part)))), None)

    try:
        return find(root, ())
    except RecursionError:
        return None


def _construct(loader: Loader, node: yaml.Node) -> Any:
    """The document's values. PyYAML fails with IndexError, ValueError or AttributeError on some tagged values
    (`!!int` with no digits, `!!float abc`, `!!timestamp x`): those are YAML errors too, at the value's line."""
    try:
        return loader.construct_document(node)
    except (Refused, RecursionError):
        raise
    except (ArithmeticError, LookupError, ValueError, AttributeError, TypeError) as exc:
        raise yaml.MarkedYAMLError(
            problem=f"a value cannot be read ({exc.__class__.__name__}: {exc}); check its !!tag", problem_mark=None
        ) from None


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a document whose aliases repeat more than ALIAS_NODES nodes, or refer to a node that holds them.

    An alias is the node of its anchor itself, so the document is a graph: each node's size as a tree (1 +
    its children's) is counted once, from its children's, and the work is linear in the text."""
    sizes: dict[int, int] = {}
    within: set[int] = set()  # the nodes on the path from the root: an alias to one of them is a loop
    cap = 10**18  # sizes stop growing here: enough to compare, and never a number of a million digits

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in within:
            raise Refused(
                problem="an alias refers to a node that contains it, a loop no config can hold",
                problem_mark=node.start_mark,
                note="Write the value out instead of the alias.",
            )
        within.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        total = min(cap, 1 + sum(size(child) for child in children))
        within.discard(id(node))
        sizes[id(node)] = total
        return total

    total = size(root)
    if total - len(sizes) > ALIAS_NODES:
        repeated = f"{total - len(sizes):,}" if total < cap else "more than 10^18"
        raise Refused(
            problem=f"its aliases (*name) repeat {repeated} nodes, more than the {ALIAS_NODES:,} a config may "
            "hold (aliases of aliases multiply)",
            problem_mark=root.start_mark,
            note="Write the values out, or use fewer aliases.",
        )


def _walk(node: yaml.Node, path: tuple[str, ...], positions: Positions, where: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                dotted = ".".join((*path, key))
                raise ConfigError(
                    f"{where}, line {line}: key '{dotted}' appears twice (lines {seen[key]} and {line}). "
                    "Keep one of them."
                )
            seen[key] = line
            positions[(*path, key)] = line
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != STR_TAG:  # 1, yes, ~: no name
                with contextlib.suppress(yaml.YAMLError):
                    positions[(*path, _typed(yaml.safe_load(key_node.value)))] = line
            _walk(value_node, (*path, key), positions, where)


def read_yaml_file(path: Path) -> tuple[dict[str, Any], Positions]:
    try:
        text = read_limited(path, "config", ConfigError, "config file").decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist. Check the path, or run without --config to train "
            "the built-in default; `lrtrain config show > my.yaml` writes a template."
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory, not a YAML file. Pass the file itself.") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (is it a YAML file?). Save it as UTF-8, or pass the YAML config."
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}. Check the file and its permissions."
        ) from None
    data, positions = parse_yaml(text, f"config file {path}")
    if data is None:
        raise ConfigError(
            f"config file {path} is empty. Put at least one key in it (e.g. 'train:\\n  epochs: 100'), "
            "or run without --config for the built-in default."
        )
    if not isinstance(data, dict):
        hint = ""
        if path.suffix.lower() in (".csv", ".npy", ".npz", ".txt", ".tsv"):
            source = "npy" if path.suffix.lower() in (".npy", ".npz") else "csv"
            hint = f" {path} looks like data: train on it with --set data.source={source} --set data.path={path}."
        raise ConfigError(
            f"config file {path} holds a {yaml_kind(data)}, but a config is a mapping of keys to values "
            f"(e.g. 'train:\\n  lr: 0.01'). See `lrtrain config show` for every key.{hint}"
        )
    return data, positions


def yaml_kind(value: object) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "scalar")


def did_you_mean(key: str, fields: dict[str, Any], prefix: tuple[str, ...]) -> str:
    dotted = [".".join((*prefix, name)) for name in fields]
    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.5)
    hint = f" Did you mean '{'.'.join((*prefix, close[0]))}'?" if close else ""
    return f"{hint} Known keys here: {', '.join(dotted)}."


def describe(
    exc: ValidationError,
    raw: dict[str, Any],
    positions: Positions,
    set_keys: set[tuple[str, ...]],
    source: str,
    schema: Schema,
) -> str:
    """Every validation error as a sentence naming the key, where it came from, the value and the fix."""
    problems: list[tuple[tuple[str, str], str]] = []  # ((where, key), what is wrong)
    example = ""
    for error in exc.errors():
        loc = _clean_loc(error["loc"], schema)
        if error["type"] == "union_tag_invalid":
            loc = (*loc, "source")
        dotted = _dotted(loc) or "(top level)"
        str_loc = tuple(str(p) for p in loc if isinstance(p, str))
        if str_loc in set_keys or any(str_loc[: len(k)] == k for k in set_keys):
            where = "from the command line"
        elif str_loc and any(k[: len(str_loc)] == str_loc for k in set_keys):  # a section's check, a key set in it
            where = "from the command line" if source.startswith("the built-in") else f"{source} and the command line"
        else:
            line = _line_of(str_loc, positions)
            if error["type"] == "invalid_key":  # the key itself is a number, a boolean or null: its own line
                parent = tuple(str(p) for p in loc[:-1] if isinstance(p, str))
                line = _key_line(parent, error.get("input"), positions) or line
            where = f"{source}, line {line}" if line else source
        said = _explain(error, dotted, loc, raw, schema)
        if problems and problems[-1][0] == (where, dotted):  # one key a union refused twice: one sentence for both
            said = _either(problems[-1][1], said)
            problems.pop()
        problems.append(((where, dotted), said))
        key = _key_of(dotted, raw, schema) if error["type"] != "extra_forbidden" else None
        default = key.default if key is not None and key.default != "required" else None
        if default is not None and not example:
            example = f" (e.g. --set {dotted}={default}, the default)"
    fix = (
        f"Fix the value in the file or override it with --set KEY=VALUE{example}; "
        "`lrtrain config show` prints every key with its default and range."
    )
    return "invalid config: " + " ".join(f"{where}: {said}" for (where, _), said in problems) + " " + fix


def _either(first: str, second: str) -> str:
    """Two sentences "'k' must be A; got V." and "'k' must be B; got V." as "'k' must be A, or B; got V." (a key
    whose type is a union: each branch refused the value); the first alone when they are not of that form."""
    one, two = (re.fullmatch(r"('[^']*' must be )(.+?)(; got .*)", text) for text in (first, second))
    if one is None or two is None:
        return first
    return f"{one[1]}{one[2]}, or {two[2]}{one[3]}"


def _clean_loc(loc: tuple[int | str, ...], schema: Schema) -> tuple[int | str, ...]:
    """Drop pydantic's union-branch labels (data source tags, 'float', 'list[float]') from an error location."""
    return tuple(
        p
        for i, p in enumerate(loc)
        if not (i == 1 and loc[0] == "data" and p in schema.sources)
        and not (isinstance(p, str) and (p in ("float", "int", "str", "bool") or re.fullmatch(r"\w+\[.+\]", p)))
    )


def _dotted(loc: tuple[int | str, ...]) -> str:
    """('train', 'predict', 0) -> 'train.predict[0]'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _key_line(parent: tuple[str, ...], key: Any, positions: Positions) -> int | None:
    """The line of the key under `parent` that YAML read as the value `key` (1 from `1`, True from `yes`), as
    `_walk` recorded it (a quoted "yes" is a name, not this key)."""
    return positions.get((*parent, _typed(key)))


def _typed(value: Any) -> str:
    """A key that is no name, as a position's last part: no key text starts with NUL."""
    return f"\0{type(value).__name__}:{value!r}"


def _line_of(loc: tuple[str, ...], positions: Positions) -> int | None:
    while loc:
        if loc in positions:
            return positions[loc]
        loc = loc[:-1]
    return None


def _explain(error: Any, dotted: str, loc: tuple[int | str, ...], raw: dict[str, Any], schema: Schema) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx", {})
    if kind == "extra_forbidden":
        *prefix, key = (str(p) for p in loc)
        fields = _fields_at(tuple(prefix), raw, schema)
        others = [name for name, model in schema.sources.items() if key in model.model_fields]
        data = raw.get("data")
        if prefix == ["data"] and others and isinstance(data, dict):
            chosen = data.get("source", next(iter(schema.sources)))
            kinds = ", ".join(others[:-1]) + " or " + others[-1] if len(others) > 1 else others[0]
            return (
                f"'{dotted}' is a key of data.source: {kinds}, and this config's data.source is "
                f"{chosen}. Set data.source (e.g. --set data.source={others[0]}) to use it, or leave it out."
            )
        return f"unknown key '{dotted}'.{did_you_mean(key, fields, tuple(prefix))}"
    if kind == "invalid_key":  # YAML reads an unquoted 1, yes or ~ as a number, a boolean or null
        where = f"under '{_dotted(loc[:-1])}'" if loc[:-1] else "at the top level"
        what = "null" if value is None else f"the {yaml_kind(value)} {value!r}"
        return f"a key {where} is {what}, not a name: config keys are names such as 'lr' (quote one to make it text)."
    if kind == "missing":
        return f"'{dotted}' is required here but missing; add it."
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words, name = {
            "greater_than": ("greater than", "gt"),
            "greater_than_equal": ("at least", "ge"),
            "less_than": ("less than", "lt"),
            "less_than_equal": ("at most", "le"),
        }[kind]
        bound = f"{words} {ctx.get(name, 0):g}"
        return f"'{dotted}' must be {bound}{_range_of(dotted, raw, schema)}; got {value!r}."
    if kind == "too_short":
        size = ctx.get("min_length")
        items = f"{size} item{'s' if size != 1 else ''}"
        return f"'{dotted}' must hold at least {items}{_range_of(dotted, raw, schema)}; got {value!r}."
    if kind == "finite_number":
        return f"'{dotted}' must be a finite number; got {value!r}."
    if kind in ("string_too_short", "string_too_long") and dotted != "name":
        size = ctx.get("max_length") if kind == "string_too_long" else ctx.get("min_length")
        bound = "at most" if kind == "string_too_long" else "at least"
        return f"'{dotted}' must be {bound} {size} character{'s' if size != 1 else ''} long; got {value!r}."
    if kind in ("string_pattern_mismatch", "string_too_long"):
        return (
            f"'{dotted}' names a folder, so it may hold only letters, digits and _ . + - "
            f"(at most 100, not starting with . or -); got {value!r}."
        )
    if kind == "union_tag_invalid":
        return f"'{dotted}' must be one of {', '.join(schema.sources)}; got {ctx.get('tag')!r}."
    if kind == "union_tag_not_found":
        return f"'{dotted}' needs a 'source' key: one of {', '.join(schema.sources)}."
    if kind == "literal_error":
        return f"'{dotted}' must be {ctx.get('expected')}; got {value!r}."
    if kind.endswith("_type") or kind.endswith("_parsing"):
        wanted = {
            "int_type": "an integer",
            "float_type": "a number",
            "bool_type": "true or false",
            "string_type": "a string",
            "list_type": "a list",
            "model_type": "a mapping of keys to values",
            "model_attributes_type": "a mapping of keys to values",
            "dict_type": "a mapping of keys to values",
        }.get(kind, error["msg"].removeprefix("Input should be ").lower())
        return f"'{dotted}' must be {wanted}; got {value!r} ({yaml_kind(value)}).{_text_not_number(value)}"
    if kind == "value_error":
        message = error["msg"].removeprefix("Value error, ")
        if not message.startswith("must"):
            return f"'{dotted}': {message}."
        return f"'{dotted}' {message}.{_text_not_number(value) if message.startswith('must be a number') else ''}"
    return f"'{dotted}': {error['msg']}; got {value!r}."


def _text_not_number(value: object) -> str:
    """Why a string that Python's int() or float() would take (' 1_000', '１０', '٣', a quoted '5') is not a number."""
    if not isinstance(value, str) or not any(char.isdigit() for char in value):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    if PLAIN_FLOAT.fullmatch(value):
        return f" {value!r} is quoted, so it is text: drop the quotes to give the number."
    return f" {value!r} is text, not a number as lrtrain reads one. {NUMBER_SYNTAX}."


def _fields_at(prefix: tuple[str, ...], raw: dict[str, Any], schema: Schema) -> dict[str, Any]:
    model: type[BaseModel] = schema.root
    node: Any = raw
    for part in prefix:
        node = node.get(part) if isinstance(node, dict) else None
        if model is schema.root and part == "data":
            default = next(iter(schema.sources))
            source = node.get("source", default) if isinstance(node, dict) else default
            model = schema.sources.get(source, schema.sources[default])
            continue
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return {}
        model = annotation
    return dict(model.model_fields)


def _range_of(dotted: str, raw: dict[str, Any], schema: Schema) -> str:
    key = _key_of(dotted, raw, schema)
    return f" ({key.description})" if key is not None and key.description else ""


def _key_of(dotted: str, raw: dict[str, Any], schema: Schema) -> Key | None:
    """The documented key `dotted`; of a data key that several sources have (data.features), the config's source's."""
    data = raw.get("data")
    source = data.get("source", next(iter(schema.sources))) if isinstance(data, dict) else next(iter(schema.sources))
    keys = [k for k in schema.keys if k.key == dotted]
    return next((k for k in keys if k.source in ("", source)), keys[0] if keys else None)


def check_text(value: Any, where: str, key: tuple[str, ...] = ()) -> Any:
    """`value`, after refusing a NUL or a surrogate that stands for no byte (\\ud800, which YAML's escapes can
    write) in any of its keys or values: no file, column or run name can hold one, and the error would otherwise
    come from deep inside a path call. (\\udc80 to \\udcff stand for the bytes of a name that is not UTF-8.)"""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        check_text(name, where, key)
        check_text(item, where, (*key, str(name)))
    bad = next((c for c in value if c == "\x00" or _unencodable(c)), None) if isinstance(value, str) else None
    if bad is not None:
        what = "a NUL character" if bad == "\x00" else f"a lone surrogate ({bad.encode('unicode_escape').decode()})"
        shown = value.encode("unicode_escape").decode()[:200]
        place = f", key '{'.'.join(key)}'" if key else ""
        reason = "no file, column or run name can hold"
        raise ConfigError(f"{where}{place}: '{shown}' holds {what}, which {reason}. Remove it.")
    return value


def _unencodable(char: str) -> bool:
    return "\ud800" <= char <= "\udfff" and not "\udc80" <= char <= "\udcff"
