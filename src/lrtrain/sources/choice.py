"""Which columns of a table are the features and the target, and which features are categorical: by name or
0-based index, as data.features, data.target and data.categorical give them (CSV and Parquet alike)."""

from __future__ import annotations

from pathlib import Path

from lrtrain.errors import DataError


def chosen_columns(
    target_ref: str | int | None, feature_refs: list[str | int] | None, names: list[str], path: Path, header: bool
) -> tuple[list[int], int]:
    """The feature columns and the target column (indices into `names`) that data.features and data.target give:
    by default every column but the target, the last."""
    target = column_index(target_ref if target_ref is not None else -1, names, path, "data.target", header)
    if feature_refs is None:
        return [i for i in range(len(names)) if i != target], target
    features = [column_index(f, names, path, "data.features", header) for f in feature_refs]
    if target in features:
        raise DataError(
            f"data file {path}: column {names[target]!r} is both the target and a feature. "
            "Remove it from data.features or choose another data.target."
        )
    if len(set(features)) != len(features):
        twice = next(names[f] for f in features if features.count(f) > 1)
        raise DataError(f"data file {path}: data.features names column {twice!r} twice. List each column once.")
    return features, target


def column_index(ref: str | int, names: list[str], path: Path, key: str, header: bool) -> int:
    if isinstance(ref, int):
        index = ref if ref >= 0 else len(names) + ref
        if header and str(ref) in names and (not 0 <= index < len(names) or names[index] != str(ref)):
            quoted = f"'\"{ref}\"'" if key == "data.target" else f"'[\"{ref}\", ...]'"
            raise DataError(
                f"{key} = {ref} is read as a 0-based column index (YAML reads an unquoted {ref} as a number), "
                f"but data file {path} has a column named '{ref}'. To mean that column, quote its name: "
                f'--set {key}={quoted} (in a config file: "{ref}"). To mean the index, give the column\'s name.'
            )
        if not 0 <= index < len(names):
            raise DataError(
                f"data file {path} has {len(names)} columns, so {key} = {ref} is out of range. "
                f"Use an index from 0 to {len(names) - 1}."
            )
        return index
    if not header:
        raise DataError(
            f"{key} = {ref!r} names a column, but data.header is false so {path} has no column names. "
            "Use a 0-based column index, or set data.header to true."
        )
    if ref not in names:
        import difflib

        close = difflib.get_close_matches(ref, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"data file {path} has no column {ref!r} ({key}).{hint} Its columns are: {', '.join(names)}.")
    return names.index(ref)


def categorical_columns(
    refs: list[str | int], names: list[str], features: list[int], target: int, path: Path, header: bool
) -> set[int]:
    """The feature columns data.categorical names (or gives the indices of)."""
    chosen = set()
    for ref in refs:
        index = column_index(ref, names, path, "data.categorical", header)
        if index == target:
            raise DataError(
                f"data file {path}: column {names[index]!r} is the target, and the target must be numeric; "
                "data.categorical lists feature columns. Remove it from data.categorical or choose another data.target."
            )
        if index not in features:
            raise DataError(
                f"data file {path}: data.categorical names column {names[index]!r}, which is not among the features "
                "(data.features). Add it to data.features or remove it from data.categorical."
            )
        if index in chosen:
            raise DataError(f"data file {path}: data.categorical names column {names[index]!r} twice. List it once.")
        chosen.add(index)
    return chosen
