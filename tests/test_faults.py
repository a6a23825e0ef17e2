"""Faults and fuzzing: random input only ever gives a valid result or an LrtrainError; writes are atomic."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrtrain import sources
from lrtrain.config import Config, load_config
from lrtrain.errors import LrtrainError
from lrtrain.prepare import prepare

from .conftest import SUBPROCESS_TIMEOUT, cli, lrtrain_path, run_installed, run_on_terminal

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


# --------------------------------------------------------------------------- limits: nothing read or built without one


def limited(
    args: list[str],
    cwd: Path,
    stdin: Any = subprocess.DEVNULL,
    memory: int = 3 << 30,
    cpu: int = 60,
    file_size: int = resource.RLIM_INFINITY,
) -> subprocess.CompletedProcess[str]:
    """The installed lrtrain with at most `memory` bytes of address space, `cpu` seconds and files of `file_size`
    bytes (the kernel ends it past any), and a timeout: a run that reads or writes without a limit dies instead of
    taking the machine with it."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    return subprocess.run([lrtrain_path(), *args], cwd=cwd, stdin=stdin, capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT, preexec_fn=limits, check=False)  # fmt: skip


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "internal error" not in result.stderr
    assert "Traceback" not in result.stderr
    assert all(word in result.stderr for word in words), result.stderr


def test_a_streamed_csv_line_longer_than_any_parse_is_refused_as_it_is_read(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrtrain.sources import delimited

    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")  # read in ranges, as a file of gigabytes is
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 1 << 16)
    (workdir / "d.csv").write_text("x,y\n1,2\n2,4\n" + "7" * 3_000_000)  # as endless, for the reader: no line end
    result = cli("fit", "--set", "data.path=d.csv")
    assert result.exit_code == 2, result.output
    assert "d.csv, line 4 goes on past 1,048,576 bytes without a line end" in result.stderr
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_fit_waiting_on_a_config_pipe_stops_at_a_signal(tmp_path: Path, signum: int) -> None:
    """A config read that waits (a named pipe whose writer writes nothing) ends at Ctrl-C or SIGTERM, as `cat`
    would: no epoch has started, so there is nothing to stop at the end of."""
    os.mkfifo(tmp_path / "c.yaml")
    process = subprocess.Popen([lrtrain_path(), "fit", "-c", "c.yaml"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    writer = None
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        while writer is None:  # a writer can open the pipe once lrtrain holds it open for reading
            assert time.monotonic() < deadline
            assert process.poll() is None
            with contextlib.suppress(OSError):
                writer = os.open(tmp_path / "c.yaml", os.O_WRONLY | os.O_NONBLOCK)
            time.sleep(0.05)
        time.sleep(0.2)  # lrtrain now waits in read()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 130, stderr
        assert "interrupted: stopped before finishing; nothing was saved." in stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
    finally:
        if writer is not None:
            os.close(writer)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--rows", str(10**15)], ("1,000,000,000,000,000 rows", "free on the disk", "Lower --rows")),
        (["--rows", "2", "--features", str(10**12)], ("one row of 1,000,000,000,000 features", "Lower --features")),
    ],
    ids=["rows beyond the disk", "a row beyond the memory"],
)
def test_data_make_beyond_the_machine_is_refused_before_writing(
    tmp_path: Path, args: list[str], words: tuple[str, ...]
) -> None:
    result = limited(["data", "make", "d.npy", *args], tmp_path, memory=2 << 30, cpu=20, file_size=64 << 20)
    refused(result, "cannot write d.npy", *words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("source", ["csv", "parquet"])
def test_a_temporary_table_that_cannot_grow_is_said_in_one_line_and_nothing_is_written(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """A table over the memory threshold is kept in a temporary file; a full $TMPDIR (here: a file size limit)
    is the machine's failure, named, with the fix: exit 1, not an internal error."""
    rng = np.random.default_rng(0)
    table = rng.normal(size=(20_000, 5))
    if source == "csv":
        np.savetxt(workdir / "d.csv", table, delimiter=",", header="a,b,c,d,y", comments="")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({n: table[:, i] for i, n in enumerate("abcdy")}), workdir / "d.parquet")
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")  # any table goes to the temporary file
    result = limited(["fit", "--set", f"data.path=d.{source}"], workdir, file_size=200_000)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "internal error" not in result.stderr
    assert "Traceback" not in result.stderr
    assert "temporary file" in result.stderr
    assert "could not grow past" in result.stderr
    assert "File too large" in result.stderr
    assert "TMPDIR" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (workdir / "runs").exists()


def test_synthetic_data_that_cannot_determine_the_fit_is_refused_before_it_is_drawn(tmp_path: Path) -> None:
    """Its shape is in the config: 2 rows for 1e9 features is refused at once, not after drawing 16 GB."""
    args = ["fit", "--set", "data.source=synthetic", "--set", "data.rows=2", "--set", "data.features=1000000000"]
    result = limited(args, tmp_path, cpu=20)
    refused(result, "synthetic data (2 rows, seed 0)", "underdetermined (needs at least 1000000001 rows)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_config_of_dev_zero_or_an_endless_pipe_is_refused_at_the_limit(tmp_path: Path) -> None:
    refused(limited(["fit", "-c", "/dev/zero"], tmp_path), "/dev/zero", "4 MB", "LRTRAIN_MAX_CONFIG_MB")
    endless = subprocess.Popen(["yes", "a: 1"], stdout=subprocess.PIPE)
    try:
        refused(limited(["fit", "-c", "/dev/stdin"], tmp_path, stdin=endless.stdout), "goes on past that")
    finally:
        endless.kill()
        endless.wait(timeout=10)
        if endless.stdout is not None:
            endless.stdout.close()


@pytest.mark.slow
def test_a_model_of_dev_zero_is_refused_without_reading_it(tmp_path: Path) -> None:
    refused(limited(["predict", "5", "--model", "/dev/zero"], tmp_path), "/dev/zero is not a file", "a device")


BILLION_LAUGHS = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.slow
def test_billion_laughs_is_refused_at_once_in_little_memory(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(BILLION_LAUGHS)
    started = time.monotonic()
    result = limited(["config", "validate", "-c", "c.yaml"], tmp_path, memory=2 << 30, cpu=20)
    refused(result, "c.yaml, line 1", "aliases", "more than the 100,000", "fewer aliases")
    assert len(result.stderr) < 1000
    assert time.monotonic() - started < 20
    laughs = "[&a [1, 1, 1, 1, 1, 1, 1, 1], " + ", ".join(
        f"&{n} [{', '.join([f'*{p}'] * 8)}]" for p, n in zip("abcdefg", "bcdefgh", strict=True)
    )
    result = limited(["fit", "--set", f"train.predict={laughs}]"], tmp_path, memory=2 << 30, cpu=20)
    refused(result, "--set 'train.predict=", "aliases")


def npz_bomb(path: Path, declared: int) -> None:
    """An .npz of a few hundred bytes whose member x.npy declares `declared` bytes unpacked, its header agreeing,
    as a zip bomb's does (the sizes are patched: compressing gigabytes would take the test's time)."""
    import io
    import struct
    import zipfile

    import numpy as np

    header = io.BytesIO()
    header_fields = {"descr": "<f8", "fortran_order": False, "shape": ((declared - 128) // 8,)}
    np.lib.format.write_array_header_1_0(header, header_fields)
    assert len(header.getvalue()) == 128
    y = io.BytesIO()
    np.save(y, np.arange(4.0))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(64))
        archive.writestr("y.npy", y.getvalue())
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, declared)  # uncompressed size, local header
    struct.pack_into("<I", data, central + 24, declared)  # and central directory
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("x.npy").file_size == declared


@pytest.mark.slow
def test_an_npz_bomb_is_refused_before_it_is_unpacked(tmp_path: Path) -> None:
    npz_bomb(tmp_path / "d.npz", 0xFFFFFF00)  # 4 GB declared, in a 2 GB address space
    result = limited(["fit", "--set", "data.source=npy", "--set", "data.path=d.npz"], tmp_path, memory=2 << 30)
    refused(result, "d.npz", "'x'", "GB of memory available", "read whole")
    assert (tmp_path / "d.npz").stat().st_size < 1000


@pytest.mark.slow
def test_synthetic_rows_beyond_the_memory_left_are_refused(tmp_path: Path) -> None:
    # 2.4 GB of rows: fine on most machines, not in the 2 GB address space the process has
    args = ["fit", "--set", "data.source=synthetic", "--set", "data.rows=100000000", "--set", "data.features=2"]
    refused(limited(args, tmp_path, memory=2 << 30), "Lower data.rows", "lrtrain data make data.npy")


def test_the_read_limits_can_be_raised_and_a_bad_setting_is_named(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "c.yaml").write_text("train:\n  epochs: 2\n" + "#" * (2 << 20) + "\n")
    monkeypatch.setenv("LRTRAIN_MAX_CONFIG_MB", "1")
    small = cli("config", "validate", "-c", "c.yaml")
    assert small.exit_code == 2
    assert "larger than 1 MB" in small.stderr
    assert "LRTRAIN_MAX_CONFIG_MB=4" in small.stderr
    monkeypatch.setenv("LRTRAIN_MAX_CONFIG_MB", "3")
    assert cli("config", "validate", "-c", "c.yaml").exit_code == 0
    monkeypatch.setenv("LRTRAIN_MAX_CONFIG_MB", "500000")  # a limit far beyond memory is a limit, not an allocation
    assert cli("config", "validate", "-c", "c.yaml").exit_code == 0
    monkeypatch.setenv("LRTRAIN_MAX_CONFIG_MB", "lots")
    bad = cli("config", "validate", "-c", "c.yaml")
    assert bad.exit_code == 2
    assert "the environment variable LRTRAIN_MAX_CONFIG_MB is 'lots', not a size in megabytes" in bad.stderr


@pytest.mark.parametrize("args", [["predict", "5"], ["summary"], ["runs"], ["evaluate", "--data", "t.csv"]])
def test_a_bad_model_size_limit_is_the_setting_s_error_not_every_run_s(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    assert cli("fit", "--set", "train.epochs=2").exit_code == 0
    (workdir / "t.csv").write_text("x,y\n1,2\n")
    monkeypatch.setenv("LRTRAIN_MAX_MODEL_MB", "abc")
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: the environment variable LRTRAIN_MAX_MODEL_MB is 'abc'")
    assert "skipping" not in result.stderr
    assert "damaged" not in result.stdout + result.stderr


def test_a_too_small_read_limit_suggests_one_the_file_fits_under(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("fit", "--set", "train.epochs=2").exit_code == 0
    (model,) = workdir.glob("runs/*/model.json")
    monkeypatch.setenv("LRTRAIN_MAX_MODEL_MB", "0.000001")
    result = cli("predict", "--model", str(model), "5")
    assert result.exit_code == 2
    suggested = float(result.stderr.split("LRTRAIN_MAX_MODEL_MB=")[-1].rstrip(".\n"))
    assert suggested * (1 << 20) > model.stat().st_size


def test_aliases_within_reason_still_work(workdir: Path) -> None:
    (workdir / "c.yaml").write_text("data:\n  x: &xs [1, 2, 3, 4]\n  y: [2, 4, 6, 8]\ntrain:\n  predict: *xs\n")
    result = cli("config", "show", "-c", "c.yaml")
    assert result.exit_code == 0, result.stderr
    assert "predict: [1.0, 2.0, 3.0, 4.0]" in result.stdout


# --------------------------------------------------------------------------- the checkpoint: refused when it lies


def checkpointed(workdir: Path, *overrides: str) -> Path:
    """An interrupted run (Ctrl-C after epoch 5) of 3 features with momentum, so every field is in use."""
    from lrtrain.errors import Interrupted
    from lrtrain.training import fit

    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] >= 5

    settings = ["data.source=synthetic", "data.rows=200", "data.features=3", "train.epochs=40", "train.lr=0.05"]
    config = load_config(None, [*settings, "train.momentum=0.5", "train.early_stopping.patience=30", *overrides])
    with pytest.raises(Interrupted):
        fit(config, should_stop=stop)
    (run,) = (workdir / "runs").iterdir()
    return run


def edit(run: Path, change: Any, checksum: bool) -> None:
    """Change the checkpoint's payload; with `checksum`, write the checksum of the changed content too (a
    deliberate edit), else leave the one of the original (damage)."""
    from lrtrain.runs import CHECKSUM_FIELD, content_checksum

    path = run / "checkpoint.json"
    payload = json.loads(path.read_text())
    change(payload)
    if checksum:
        payload[CHECKSUM_FIELD] = content_checksum(payload)
    path.write_text(json.dumps(payload))


def put(key: str, value: Any) -> Any:
    def change(payload: dict[str, Any]) -> None:
        target, *path = key.split(".")
        node = payload
        for part in path:
            node = node[target]
            target = part
        node[target] = value

    return change


LIES = {
    "momentum buffer null": (put("velocity_w", None), "content does not match"),
    "momentum buffer shortened": (lambda p: p["velocity_w"].pop(), "content does not match"),
    "a weight edited": (lambda p: p["weights"].__setitem__(0, p["weights"][0] + 1e-9), "content does not match"),
    "fractional epoch": (put("epoch", 4.5), "content does not match"),
}
STRICT = {
    "negative epoch": (put("epoch", -1), "'epoch' must be a whole number from 0 to 5"),
    "fractional epoch": (put("epoch", 4.5), "'epoch' must be a whole number"),
    "epoch past metrics.csv": (put("epoch", 6), "'epoch' must be a whole number from 0 to 5"),
    "epoch a string": (put("epoch", "5"), "'epoch' must be"),
    "epoch true": (put("epoch", True), "'epoch' must be"),
    "momentum buffer shortened": (lambda p: p["velocity_w"].pop(), "'velocity_w' must be null or a list of 3"),
    "a weight a string": (lambda p: p["weights"].__setitem__(1, "0.5"), "'weights' must be a list of 3 finite"),
    "a weight NaN": (lambda p: p["weights"].__setitem__(1, math.nan), "'weights' must be a list of 3 finite"),
    "bias null": (put("bias", None), "'bias' must be a finite number"),
    "seconds negative": (put("seconds", -3.0), "'seconds' must be a finite number >= 0"),
    "data digest a number": (put("data_sha256", 7), "'data_sha256' must be a SHA-256"),
    "stop rule missing": (lambda p: p["stop_rules"].pop("lowest"), "'stop_rules' must hold exactly"),
    "stop rule count fractional": (put("stop_rules.since_best", 1.5), "'stop_rules.since_best' must be a whole"),
    "best state short": (put("stop_rules.best_state", [1, [0.0], 0.0]), "'stop_rules.best_state' must be null or"),
    "trajectory a list": (put("trajectory", []), "'trajectory' must be a mapping"),
    "an integer of 5,000 digits": (put("seconds", "INT"), "integer of 5,000 digits"),
}


@pytest.mark.parametrize(("change", "words"), LIES.values(), ids=LIES.keys())
def test_a_damaged_checkpoint_is_refused_by_its_checksum(workdir: Path, change: Any, words: str) -> None:
    run = checkpointed(workdir)
    edit(run, change, checksum=False)
    result = cli("fit", "--resume", str(run))
    assert result.exit_code == 2, result.output
    assert words in result.stderr
    assert "Start a new run" in result.stderr
    assert not (run / "model.json").exists()


@pytest.mark.parametrize(("change", "words"), STRICT.values(), ids=STRICT.keys())
def test_a_checkpoint_with_a_matching_checksum_is_still_checked_field_by_field(
    workdir: Path, change: Any, words: str
) -> None:
    run = checkpointed(workdir)
    edit(run, change, checksum=True)
    path = run / "checkpoint.json"
    path.write_text(path.read_text().replace('"INT"', "9" * 5000))
    result = cli("fit", "--resume", str(run))
    assert result.exit_code == 2, result.output
    assert words in result.stderr, result.stderr
    assert "internal error" not in result.stderr


def test_an_untouched_checkpoint_resumes_and_its_checksum_covers_every_field(workdir: Path) -> None:
    from lrtrain.runs import CHECKSUM_FIELD, STOP_RULE_COUNTS, STOP_RULE_NUMBERS, content_checksum
    from lrtrain.stopping import StopRules

    assert {*STOP_RULE_COUNTS, *STOP_RULE_NUMBERS, "best_state"} == set(StopRules._COUNTERS)
    run = checkpointed(workdir)
    payload = json.loads((run / "checkpoint.json").read_text())
    assert payload[CHECKSUM_FIELD] == content_checksum(payload)
    assert payload["stop_rules"]["best_state"] is not None
    assert payload["velocity_w"] is not None
    result = cli("fit", "--resume", str(run))
    assert result.exit_code == 0, result.output


def test_a_checkpoint_beyond_its_read_limit_is_refused(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = checkpointed(workdir)
    edit(run, put("padding", "x" * (2 << 20)), checksum=True)
    monkeypatch.setenv("LRTRAIN_MAX_CHECKPOINT_MB", "1")
    result = cli("fit", "--resume", str(run))
    assert result.exit_code == 2, result.output
    assert "larger than 1 MB" in result.stderr
    assert "LRTRAIN_MAX_CHECKPOINT_MB" in result.stderr


def test_a_runs_metrics_beyond_their_read_limit_stop_resume_and_plot_in_words(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """metrics.csv, one row of weights per epoch, is read with a limit too: by resume, and by plot."""
    run = checkpointed(workdir)
    monkeypatch.setenv("LRTRAIN_MAX_METRICS_MB", "0.0001")  # 104 bytes: less than the run's metrics
    for args in (["fit", "--resume", str(run)], ["plot", str(run), "-o", str(workdir / "loss.png")]):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert "metrics.csv is larger than 0.0001 MB" in result.stderr
        assert "LRTRAIN_MAX_METRICS_MB" in result.stderr
    assert not (workdir / "loss.png").exists()
    assert not (run / "model.json").exists()


@pytest.mark.slow
def test_metrics_of_dev_zero_are_refused_without_reading_them(workdir: Path) -> None:
    run = checkpointed(workdir)
    (run / "metrics.csv").unlink()
    (run / "metrics.csv").symlink_to("/dev/zero")
    refused(limited(["plot", str(run), "-o", "loss.png"], workdir), "metrics.csv is not a file", "a device")
    refused(limited(["fit", "--resume", str(run)], workdir), "metrics.csv is not a file", "a device")


# --------------------------------------------------------------------------- one bad run folder hides none


def test_runs_lists_a_deeply_nested_or_huge_model_as_unreadable_and_the_others_still(workdir: Path) -> None:
    assert cli("fit", "--set", "train.epochs=2").exit_code == 0
    (good,) = (workdir / "runs").iterdir()
    for name, text in (("deep", "[" * 100_000 + "]" * 100_000), ("huge", '{"metrics": {"epochs": 1e400}}')):
        bad = workdir / "runs" / name
        shutil.copytree(good, bad)
        (bad / "model.json").write_text(text)
    result = cli("runs", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    text = json.dumps(records)
    assert "nested too deeply" in text
    assert good.name in text
    assert text.count("unreadable") == 2, text


# --------------------------------------------------------------------------- messages: printable, bounded


def test_a_message_of_megabytes_is_cut_in_the_middle_and_keeps_its_fix(workdir: Path) -> None:
    assert cli("fit", "--set", "train.epochs=2").exit_code == 0
    values = ",".join(["1"] * 300_000)
    for json_output in ((), ("--json",)):
        result = cli("predict", values, *json_output)
        assert result.exit_code == 2
        message = result.stderr.rstrip("\n")
        assert len(message) <= 4000
        assert message.startswith("error: the model in ")
        assert "characters cut" in message
        assert message.endswith("lrtrain predict 1.")  # the fix, at the end, is kept
    record = json.loads(result.stdout)
    assert len(record["message"]) <= 4000
    assert "characters cut" in record["message"]


def test_printable_escapes_every_control_character_and_keeps_the_rest() -> None:
    from lrtrain.errors import printable

    assert printable("a\x1b[31mb\nc\td\x7fe\x9bf\u202eg") == "a\\x1b[31mb\\x0ac\\x09d\\x7fe\\x9bf\\u202eg"
    assert printable("R² = 0.9 · w = [1, 2] 'é'") == "R² = 0.9 · w = [1, 2] 'é'"
    cut = printable("a" * 10_000 + "\x1b" * 10_000, limit=4000)
    assert len(cut) <= 4000
    assert "\x1b" not in cut
    assert "characters cut" in cut
    assert cut.startswith("a" * 1900)
    assert cut.endswith("\\x1b" * 400)


# ESC (an ANSI colour), a line break (a fake line), a bell, a right-to-left override (text shown backwards)
HOSTILE = "r\x1b[31m\nerror: fake\x07\u202eb"
HOSTILE_SHOWN = "r\\x1b[31m\\x0aerror: fake\\x07\\u202eb"
RAW = ("\x1b", "\x07", "\u202e", "\nerror: fake")


@pytest.mark.parametrize(
    "args",
    [("fit", f"--set{HOSTILE}"), (HOSTILE,), ("runs", HOSTILE), ("fit", f"--{HOSTILE * 2000}")],
    ids=["unknown option", "unknown command", "extra argument", "an option of 40,000 characters"],
)
def test_a_usage_error_echoes_what_was_typed_printable_and_bounded(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run_installed(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert not any(raw in result.stderr for raw in RAW), result.stderr[:500]
    assert "r\\x1b[31m" in result.stderr  # as click's repr() or lrtrain's escapes write it
    error = result.stderr.splitlines()[-1]
    assert error.startswith("Error: ")
    assert len(error) <= 4000
    assert "Try 'lrtrain" in result.stderr
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_warning_lines_show_a_path_printable(workdir: Path) -> None:
    assert cli("fit", "--set", "train.epochs=2").exit_code == 0
    damaged = workdir / "runs" / HOSTILE
    damaged.mkdir()
    (damaged / "model.json").write_text("{")
    os.utime(damaged / "model.json", (time.time() + 60, time.time() + 60))  # the newest run: predict skips it
    for result in (cli("predict", "5"), run_installed("predict", "5", cwd=workdir)):
        stderr = result.stderr
        assert (result.exit_code if hasattr(result, "exit_code") else result.returncode) == 0, stderr
        assert stderr.startswith(f"warning: skipping the newer runs/{HOSTILE_SHOWN}/model.json")
        assert not any(raw in stderr for raw in RAW), stderr
        assert stderr.count("\n") == 1


def test_the_runs_table_shows_a_folder_name_printable(workdir: Path) -> None:
    from lrtrain import render
    from lrtrain.runs import list_runs

    assert cli("fit", "--set", "train.epochs=2").exit_code == 0
    (run,) = (workdir / "runs").iterdir()
    run.rename(workdir / "runs" / HOSTILE)
    plain = cli("runs")
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.startswith(f"runs/{HOSTILE_SHOWN}  status=finished")
    assert plain.stdout.count("\n") == 1
    empty = cli("runs", "--dir", HOSTILE)
    assert empty.stdout == f"no runs under {HOSTILE_SHOWN}/ yet; `lrtrain fit` writes one there.\n"
    table = io.StringIO()
    render.runs(list_runs(workdir / "runs"), "runs", render.Out(stream=table, mode="rich"))
    assert HOSTILE_SHOWN in table.getvalue()
    for shown in (plain.stdout, empty.stdout, table.getvalue()):
        assert not any(raw in shown for raw in RAW), shown


@pytest.mark.parametrize(
    ("file", "name"),
    [("-x.yaml", "x"), (".-+hidden.yaml", "hidden"), (f"{'long' * 60}.yaml", "long" * 25), ("---.yaml", "run")],
    ids=["leading dash", "leading dot dash plus", "240 characters", "only dashes"],
)
def test_a_config_file_name_always_gives_a_valid_run_name(workdir: Path, file: str, name: str) -> None:
    (workdir / file).write_text("train:\n  epochs: 2\n")
    result = cli("fit", "-c", f"./{file}")
    assert result.exit_code == 0, result.output
    (run,) = (workdir / "runs").iterdir()
    assert run.name.rsplit("-", 2)[0] == name


def test_the_fit_summary_shows_small_weights_and_bias_with_significant_digits(workdir: Path) -> None:
    result = cli("fit", "--engine", "exact", "--set", "data.y=[0.00012, 0.00024, 0.00036, 0.00049]")
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert lines["Weights"] == "0.000123"  # fixed decimals: 0.000
    assert lines["Bias"] == "-5e-06"
    assert lines["Prediction after training"] == "f(5) = 0.00061"


# --------------------------------------------------------------------------- fuzz: the bounded readers

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**40), 2**63])
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
model_fields = st.fixed_dictionaries(
    {"format": st.just("lrtrain.model"), "format_version": st.sampled_from([1, 1.0, True, "1"])},
    optional={key: json_values for key in ("weights", "bias", "features", "target", "dtype", "statistics")},
)
YAML_PIECES = ["a: ", "&x ", "*x", "[", "]", "{", "}", ", ", "\n", "  ", "- ", "train:", "lr: ", "9" * 400, "1e400",
               "data:", "x: ", "'", "\\e", "\x1b", "!!int ", "0x", "<<: ", "seed: ", "~", "#"]  # fmt: skip


def exits_0_or_2(result: Any) -> None:
    assert result.exit_code in (0, 2), result.output
    assert "internal error" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200) | st.lists(st.sampled_from(YAML_PIECES), max_size=30).map("".join).map(str.encode))
def test_any_config_file_validates_or_is_refused_with_exit_2(workdir: Path, raw: bytes) -> None:
    (workdir / "c.yaml").write_bytes(raw)
    exits_0_or_2(cli("config", "validate", "-c", "c.yaml"))


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=json_values | model_fields, raw=st.binary(max_size=100), as_bytes=st.booleans())
def test_any_model_file_predicts_or_is_refused_with_exit_2(
    workdir: Path, payload: Any, raw: bytes, as_bytes: bool
) -> None:
    (workdir / "m.json").write_bytes(raw if as_bytes else json.dumps(payload).encode())
    exits_0_or_2(cli("predict", "1", "--model", "m.json"))


TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LRTRAIN_DIST_TIMEOUT")


@pytest.mark.parametrize(
    ("environment", "words"),
    [
        ({"LRTRAIN_CSV_STREAM_BYTES": "abc"}, ("LRTRAIN_CSV_STREAM_BYTES is 'abc'", "whole number", "unset it")),
        ({"LRTRAIN_CSV_STREAM_BYTES": "1.5"}, ("LRTRAIN_CSV_STREAM_BYTES is '1.5'", "268435456")),
        ({"LRTRAIN_CSV_STREAM_BYTES": "-5"}, ("LRTRAIN_CSV_STREAM_BYTES is '-5'",)),
        ({"WORLD_SIZE": "abc"}, ("WORLD_SIZE is 'abc'", "torchrun sets it", "unset WORLD_SIZE")),
        ({"WORLD_SIZE": "0"}, ("WORLD_SIZE is '0'", "whole number >= 1")),
        ({"WORLD_SIZE": "2"}, ("WORLD_SIZE is 2 but RANK is unset", "torchrun")),
        ({"WORLD_SIZE": "2", "RANK": "2"}, ("WORLD_SIZE is 2 but RANK is 2", "RANK from 0 to WORLD_SIZE - 1")),
        ({"WORLD_SIZE": "2", "RANK": "x"}, ("RANK is 'x'",)),
        ({"WORLD_SIZE": "2", "RANK": "0"}, ("cannot find each other", "MASTER_ADDR", "torchrun")),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "LRTRAIN_DIST_TIMEOUT": "soon"},
            ("LRTRAIN_DIST_TIMEOUT is 'soon'", "the default is 300"),
        ),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "LRTRAIN_DIST_TIMEOUT": "1e15"},  # past what a timedelta holds
            ("LRTRAIN_DIST_TIMEOUT is '1e15'", "from 0.001 to 1e+09"),
        ),
    ],
    ids=lambda v: ",".join(f"{k}={v[k]}" for k in v) if isinstance(v, dict) else None,
)
def test_a_stray_or_malformed_environment_variable_is_named_not_an_internal_error(
    tmp_path: Path, environment: dict[str, str], words: tuple[str, ...]
) -> None:
    (tmp_path / "d.csv").write_text("x,y\n1,2\n2,4\n3,6.5\n")
    clean = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
    done = subprocess.run(
        [lrtrain_path(), "fit", "--set", "data.path=d.csv", "--set", "train.epochs=2"],
        cwd=tmp_path,
        env={**clean, **environment},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert done.returncode == 2, done.stderr
    assert "internal error" not in done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr, (word, done.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv"]


@pytest.mark.parametrize(
    "settings",
    [
        {"WORLD_SIZE": " ", "LRTRAIN_CSV_STREAM_BYTES": "", "LRTRAIN_DIST_TIMEOUT": "", "RANK": "3"},
        {"WORLD_SIZE": "01", "LRTRAIN_CSV_STREAM_BYTES": "0"},  # one process; every CSV read in ranges
    ],
    ids=["blank", "one"],
)
def test_blank_variables_are_unset_and_a_stray_rank_alone_changes_nothing(
    tmp_path: Path, settings: dict[str, str]
) -> None:
    """WORLD_SIZE= (blank) or 01 is one process; RANK=3 left in the shell without WORLD_SIZE is no torchrun rank:
    the run prints and saves as ever, and predict takes its fast path."""
    (tmp_path / "d.csv").write_text("x,y\n1,2\n2,4\n3,6.5\n")
    clean = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARIABLES}
    for args in (["fit", "--set", "data.path=d.csv", "--engine", "exact"], ["predict", "5"]):
        done = subprocess.run(
            [lrtrain_path(), *args],
            cwd=tmp_path,
            env={**clean, **settings},
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
        )
        assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(131 / 12, rel=1e-9)  # y = 2.25 x - 1/3 at x = 5
    assert (tmp_path / "runs").is_dir()


def test_ctrl_c_while_the_data_loads_stops_there_and_saves_nothing(tmp_path: Path) -> None:
    """Before the first epoch there is nothing to save: a signal while a large table is drawn (or parsed) stops
    the command at the next batch, instead of after all of it and an epoch, with a checkpoint of that epoch."""
    args = ["fit", "--set", "data.source=synthetic", "--set", "data.rows=30000000", "--set", "data.features=4"]
    process = subprocess.Popen([lrtrain_path(), *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT
        status = Path(f"/proc/{process.pid}/status")
        while int(re.search(r"VmRSS:\s+(\d+)", status.read_text()).group(1)) < 400_000:  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            assert process.poll() is None
            time.sleep(0.02)  # drawing: the rows fill the memory (1 GB in all)
        signalled = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        assert "interrupted: stopped before finishing; nothing was saved." in stderr
        assert not (tmp_path / "runs").exists()  # without the stop while loading: epoch 1's checkpoint
        assert time.monotonic() - signalled < 3.0  # the rest of the draw alone takes longer
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
