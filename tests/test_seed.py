"""The cheat sheet's two gradient-descent examples, reproduced line for line."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lrtrain.config import load_config
from lrtrain.training import initial_weights

from .conftest import CONFIGS, cli

# The sheet's printed output for the manual approach, verbatim.
SHEET_MANUAL_OUTPUT = """\
Prediction before training: f(5) = 0.000
Epoch 1: w = 1.200, loss = 30.00000000
Epoch 3: w = 1.872, loss = 0.76800019
Epoch 5: w = 1.980, loss = 0.01966083
Epoch 7: w = 1.997, loss = 0.00050332
Epoch 9: w = 1.999, loss = 0.00001288
Epoch 11: w = 2.000, loss = 0.00000033
Epoch 13: w = 2.000, loss = 0.00000001
Epoch 15: w = 2.000, loss = 0.00000000
Epoch 17: w = 2.000, loss = 0.00000000
Epoch 19: w = 2.000, loss = 0.00000000
Prediction after training: f(5) = 10.000
"""


def sheet_manual_approach() -> str:
    """The sheet's manual-approach code, run as written; returns what it prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        X = np.array([1, 2, 3, 4], dtype=np.float32)
        Y = np.array([2, 4, 6, 8], dtype=np.float32)
        w = 0.0

        def forward(x):  # type: ignore[no-untyped-def]
            return w * x

        def loss(y, y_predicted):  # type: ignore[no-untyped-def]
            return ((y_predicted - y) ** 2).mean()

        def gradient(x, y, y_predicted):  # type: ignore[no-untyped-def]
            return np.dot(2 * x, y_predicted - y).mean()

        print(f"Prediction before training: f(5) = {forward(5):.3f}")
        learning_rate = 0.01
        n_iters = 20
        for epoch in range(n_iters):
            y_pred = forward(X)
            l = loss(Y, y_pred)  # noqa: E741
            dw = gradient(X, Y, y_pred)
            w -= learning_rate * dw
            if epoch % 2 == 0:
                print(f"Epoch {epoch + 1}: w = {w:.3f}, loss = {l:.8f}")
        print(f"Prediction after training: f(5) = {forward(5):.3f}")
    return out.getvalue()


def sheet_training_pipeline(weight: float, bias: float) -> str:
    """The sheet's torch training pipeline, run as written, from the given initial weight and bias."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        X = torch.tensor([[1], [2], [3], [4]], dtype=torch.float32)
        Y = torch.tensor([[2], [4], [6], [8]], dtype=torch.float32)
        X_test = torch.tensor([5], dtype=torch.float32)
        n_samples, n_features = X.shape
        print(f"Number of samples: {n_samples}, number of features: {n_features}")
        model = nn.Linear(n_features, n_features)
        with torch.no_grad():  # the one change: lrtrain's seeded start instead of torch's global RNG
            model.weight.fill_(weight)
            model.bias.fill_(bias)
        print(f"Prediction before training: f(5) = {model(X_test).item():.3f}")
        learning_rate = 0.01
        n_iters = 100
        loss = nn.MSELoss()
        optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate)
        for epoch in range(n_iters):
            y_pred = model(X)
            l = loss(Y, y_pred)  # noqa: E741
            l.backward()
            optimizer.step()
            optimizer.zero_grad()
            if epoch % 10 == 0:
                [w, b] = model.parameters()  # noqa: RUF059
                print(f"Epoch {epoch + 1}: w = {w[0][0].item():.3f}, loss = {l:.8f}")
        print(f"Prediction after training: f(5) = {model(X_test).item():.3f}")
    return out.getvalue()


def sheet_lines_of(stdout: str, count: int) -> str:
    return "".join(stdout.splitlines(keepends=True)[:count])


def test_sheet_code_prints_its_documented_output() -> None:
    assert sheet_manual_approach() == SHEET_MANUAL_OUTPUT


def test_the_sheet_file_documents_the_same_output() -> None:
    sheet = Path(__file__).resolve().parents[2] / "shared" / "seed" / "pytorch-cheatsheet.md"
    if not sheet.exists():
        pytest.skip("the cheat sheet is not beside this checkout")
    documented = [
        line.removeprefix("# ") for line in sheet.read_text().splitlines() if re.match(r"# (Epoch|Pred)", line)
    ]
    assert "\n".join(documented) + "\n" == SHEET_MANUAL_OUTPUT


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize("engine", ["manual", "torch"])
def test_seed_manual_config_prints_the_sheet_byte_for_byte(engine: str) -> None:
    result = cli("fit", "--config", str(CONFIGS / "seed-manual.yaml"), "--engine", engine)
    assert result.exit_code == 0, result.output
    assert sheet_lines_of(result.stdout, 12) == SHEET_MANUAL_OUTPUT
    assert result.stderr == ""


@pytest.mark.usefixtures("workdir")
@pytest.mark.parametrize("engine", ["torch", "manual"])
def test_seed_torch_config_prints_the_sheet_pipeline_line_for_line(engine: str) -> None:
    config = load_config(CONFIGS / "seed-torch.yaml")
    w0, b0 = initial_weights(config, 1)
    expected = sheet_training_pipeline(float(w0[0]), b0)
    result = cli("fit", "--config", str(CONFIGS / "seed-torch.yaml"), "--engine", engine)
    assert result.exit_code == 0, result.output
    assert sheet_lines_of(result.stdout, 13) == expected
