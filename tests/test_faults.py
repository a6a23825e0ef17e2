"""Faults and fuzzing: random input only ever gives a valid result or an LrtrainError; writes are atomic."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrtrain import sources
from lrtrain.config import Config, load_config
from lrtrain.errors import LrtrainError
from lrtrain.prepare import prepare

from .conftest import SUBPROCESS_TIMEOUT, lrtrain_path, run_on_terminal

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
keys = st.sampled_from(
    ["name", "seed", "data", "model", "train", "log", "output", "compare", "source", "x", "y", "lr", "epochs",
     "rows", "features", "path", "bias", "dtype", "every", "batch_size", "momentum", "validation", "predict", "zzz"]
)  # fmt: skip
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=20
)


def loads_or_explains(path: Path) -> Config | None:
    try:
        return load_config(path)
    except LrtrainError as exc:
        message = str(exc)
    assert message.strip(), "an error must say something"
    return None


@pytest.mark.slow
@FUZZ
@given(text=st.text(max_size=200))
def test_any_text_as_a_config_is_valid_or_an_lrtrain_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    loads_or_explains(path)


@pytest.mark.slow
@FUZZ
@given(document=st.dictionaries(keys, documents, max_size=6))
def test_any_yaml_mapping_is_valid_or_an_lrtrain_error(tmp_path: Path, document: dict[str, Any]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    config = loads_or_explains(path)
    if config is not None and config.data.source == "inline":
        with contextlib.suppress(LrtrainError):
            prepare(sources.load(config), config)


cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["", " ", "a", '"1"', "1e5", "-", "nan", "1,2", '"', "\t"]),
)


@pytest.mark.slow
@FUZZ
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=4), max_size=8), header=st.booleans())
def test_any_csv_text_is_a_dataset_or_an_lrtrain_error(tmp_path: Path, rows: list[list[str]], header: bool) -> None:
    (tmp_path / "d.csv").write_text("\n".join(",".join(r) for r in rows), encoding="utf-8")
    config = load_config(None, ["data.source=csv", f"data.path={tmp_path / 'd.csv'}", f"data.header={header}"])
    try:
        dataset = sources.load(config)
    except LrtrainError:
        return
    assert dataset.x.shape[0] == dataset.y.shape[0] > 0
    assert dataset.x.shape[1] == len(dataset.features) >= 1


@pytest.mark.slow
@FUZZ
@given(raw=st.binary(max_size=300))
def test_any_bytes_as_a_model_file_is_a_model_or_an_lrtrain_error(tmp_path: Path, raw: bytes) -> None:
    from lrtrain import model

    (tmp_path / "model.json").write_bytes(raw)
    with contextlib.suppress(LrtrainError):
        model.load(tmp_path / "model.json")


WRITER = """
import sys
from pathlib import Path
from lrtrain.files import write_json
path = Path(sys.argv[1])
payloads = [{"which": i, "pad": [float(i)] * 50000} for i in range(2)]
print("ready", flush=True)
i = 0
while True:
    write_json(path, payloads[i % 2])
    i += 1
"""


@pytest.mark.slow
def test_kill_9_while_writing_leaves_the_old_or_the_new_file_never_a_torn_one(tmp_path: Path) -> None:
    target = tmp_path / "model.json"
    for attempt in range(12):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline() == "ready\n"
            time.sleep(0.05 + 0.02 * attempt)
            os.killpg(writer.pid, signal.SIGKILL)
            writer.wait(timeout=SUBPROCESS_TIMEOUT)
        finally:
            if writer.poll() is None:
                os.killpg(writer.pid, signal.SIGKILL)
                writer.wait(timeout=10)
            if writer.stdout is not None:
                writer.stdout.close()
        if target.exists():
            payload = json.loads(target.read_text())  # never torn
            assert payload["pad"] == [float(payload["which"])] * 50000
    assert target.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.json"]
    assert all(name.startswith(".model.json.") for name in leftovers)  # at most the killed writer's temp file


@pytest.mark.slow
def test_two_fits_started_at_once_get_separate_run_folders(tmp_path: Path) -> None:
    processes = [
        subprocess.Popen([lrtrain_path(), "fit", "--set", f"data.y=[{k}, {2 * k}, {3 * k}, {4 * k}]"], cwd=tmp_path,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for k in (1, 2, 3)
    ]  # fmt: skip
    for process in processes:
        _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
        assert process.returncode == 0, stderr
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 3
    finals = {json.loads((r / "model.json").read_text())["data"]["sha256"] for r in runs}
    assert len(finals) == 3


ESCAPE = re.compile(rb"\x1b\[[0-9;]*m")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "coloured"),
    [
        ({"TERM": "xterm-256color"}, True),
        ({"TERM": "xterm-256color", "NO_COLOR": "1"}, False),
        ({"TERM": "dumb"}, False),
    ],
    ids=["terminal", "NO_COLOR", "TERM=dumb"],
)
def test_colour_only_on_a_terminal_that_wants_it(tmp_path: Path, env: dict[str, str], coloured: bool) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    output, _ = run_on_terminal(["compare", "manual", "exact"], tmp_path, {**clean, **env})
    assert b"Nothing to hold to the tolerance" in output  # one trained engine: nothing to compare
    assert bool(ESCAPE.search(output)) is coloured
