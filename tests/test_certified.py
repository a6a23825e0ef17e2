"""The exact engine and the summary against NIST's certified results (StRD, linear least squares).

The eleven datasets, from NIST's Statistical Reference Datasets, are in tests/data/nist as NIST gives them (y and
x; Longley y and x1..x6), with their certified values (to 15 digits, from exact arithmetic) in certified.json. A
polynomial model gets its powers of x as columns, as a user would write them. Each is fitted with
`lrtrain fit --engine exact --summary --json` and scored in correct significant digits (the log relative error,
LRE), the measure NIST's own assessments use: coefficients, their standard errors, the residual standard
deviation, R², F and the degrees of freedom.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from .conftest import cli

DATA = Path(__file__).parent / "data" / "nist"
CERTIFIED: dict[str, dict[str, Any]] = json.loads((DATA / "certified.json").read_text())

# correct digits required, by NIST's difficulty: the polynomial designs (Filip's condition number is 1.8e15, its
# centered and scaled one 4e9; Wampler5's residuals dwarf its fit) keep what a QR solve in float64 can
DIGITS = {"Filip": 7.0, "Wampler3": 9.0, "Wampler4": 8.5, "Wampler5": 6.5}
DEFAULT_DIGITS = 9.0


def correct_digits(certified: float, value: float | None) -> float:
    """LRE: −log10 of the relative error (of the absolute one for a certified 0), capped at 15."""
    if value is None:  # a statistic the summary left undefined
        return 0.0
    error = abs(value - certified) / abs(certified) if certified else abs(value)
    return 15.0 if error == 0 else max(0.0, min(15.0, -math.log10(error)))


def table(name: str, folder: Path) -> Path:
    """NIST's rows as a CSV with the model's columns: x, x2, … x10 for a polynomial; target y last."""
    lines = (DATA / f"{name}.csv").read_text().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    degree = CERTIFIED[name]["degree"]
    path = folder / f"{name}.csv"
    with path.open("w") as out:
        if degree is None:
            features = header[1:]
            out.write(",".join([*features, "y"]) + "\n")
            out.writelines(",".join([*row[1:], row[0]]) + "\n" for row in rows)
        else:
            out.write(",".join(["x", *(f"x{k}" for k in range(2, degree + 1)), "y"]) + "\n")
            for y, x in rows:
                powers = [repr(float(x) ** k) for k in range(2, degree + 1)]
                out.write(",".join([x, *powers, y]) + "\n")
    return path


def fitted_summary(name: str, folder: Path) -> dict[str, Any]:
    certified = CERTIFIED[name]
    settings = [f"data.path={table(name, folder)}", "data.target=y", "model.dtype=float64", "output.save=false"]
    if not certified["intercept"]:
        settings.append("model.bias=false")
    result = cli("fit", "--engine", "exact", "--summary", "--json", *(a for s in settings for a in ("--set", s)))
    assert result.exit_code == 0, result.output
    (summary,) = [r for r in map(json.loads, result.stdout.splitlines()) if r["event"] == "summary"]
    return summary


@pytest.mark.parametrize("name", sorted(CERTIFIED))
def test_certified_results_of_nist_strd(name: str, tmp_path: Path, workdir: Path) -> None:
    certified, summary = CERTIFIED[name], fitted_summary(name, tmp_path)
    needed = DIGITS.get(name, DEFAULT_DIGITS)
    terms = summary["terms"]
    assert len(terms) == len(certified["params"])
    anova = certified["anova"]
    assert (summary["df_model"], summary["df_resid"]) == (anova["df_reg"], anova["df_res"])
    digits = {}
    for term, (estimate, deviation) in zip(terms, certified["params"], strict=True):
        digits[f"{term['name']} coef"] = correct_digits(float(estimate), term["coef"])
        digits[f"{term['name']} std_err"] = correct_digits(float(deviation), term["std_err"])
    digits["residual sd"] = correct_digits(float(certified["residual_sd"]), summary["residual_std_error"])
    digits["R²"] = correct_digits(float(certified["r_squared"]), summary["r2"])
    if anova["F"] != "Infinity":  # Wampler1 and 2 are exact fits: F is 1e31 here, infinite in exact arithmetic
        digits["F"] = correct_digits(float(anova["F"]), summary["f_stat"])
    short = {what: round(got, 1) for what, got in digits.items() if got < needed}
    assert not short, f"{name}: fewer than {needed} correct digits in {short}"
    singular = [w for w in summary["warnings"] if "singular" in w]
    assert not singular, singular
