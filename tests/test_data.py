"""Data sources: CSV, .npy/.npz, synthetic; split and standardization."""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from lrtrain import sources
from lrtrain.blocks import BLOCK_ROWS
from lrtrain.config import load_config
from lrtrain.errors import LrtrainError
from lrtrain.prepare import prepare
from lrtrain.sources import Table, base, delimited, fingerprint, synthetic
from lrtrain.sources.writers import write

from .conftest import ThreadShard


def load(tmp_path: Path, yaml_text: str) -> Table:
    (tmp_path / "c.yaml").write_text(yaml_text)
    return sources.load(load_config(tmp_path / "c.yaml"))


def test_csv_named_target_and_features_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "houses.csv").write_text(
        'id,area,rooms,"price",note\n1,50,2,100,a\n2,80,3,"160",b\n3,65,2,130,c\n'
    )
    dataset = load(
        tmp_path,
        "data:\n  source: csv\n  path: sub/houses.csv\n  target: price\n  features: [area, rooms]\n",
    )
    assert dataset.features == ["area", "rooms"]
    assert dataset.target == "price"
    np.testing.assert_array_equal(dataset.x, [[50, 2], [80, 3], [65, 2]])
    np.testing.assert_array_equal(dataset.y, [100, 160, 130])


def test_csv_without_header_by_index_and_delimiter(tmp_path: Path) -> None:
    (tmp_path / "d.tsv").write_text("5\t1\t2\n6\t3\t4\n7\t5\t6\n")
    dataset = load(tmp_path, 'data: {source: csv, path: d.tsv, header: false, target: 0, delimiter: "\\t"}\n')
    np.testing.assert_array_equal(dataset.y, [5, 6, 7])
    np.testing.assert_array_equal(dataset.x, [[1, 2], [3, 4], [5, 6]])
    assert dataset.features == ["x1", "x2"]


def test_npy_target_column_and_npz_arrays(tmp_path: Path) -> None:
    table = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "d.npy", table)
    dataset = load(tmp_path, "data: {source: npy, path: d.npy, target: 0}\n")
    np.testing.assert_array_equal(dataset.y, table[:, 0])
    np.testing.assert_array_equal(dataset.x, table[:, 1:])
    np.savez(tmp_path / "d.npz", inputs=np.arange(4.0), outputs=np.arange(4.0) * 2)
    dataset = load(tmp_path, "data: {source: npy, path: d.npz, x_key: inputs, y_key: outputs}\n")
    assert dataset.x.shape == (4, 1)


@pytest.mark.parametrize("order", ["C", "F"])
def test_a_numpy_savez_npz_is_read_by_numpys_loader_with_the_same_numbers(tmp_path: Path, order: str) -> None:
    rng = np.random.default_rng(3)
    x, y = np.asarray(rng.normal(size=(300, 4)), order=order), rng.normal(size=300).astype(np.float32)
    np.savez(tmp_path / "d.npz", notes=np.arange(3), x=x, y=y)
    dataset = load(tmp_path, "data: {source: npy, path: d.npz}\n")
    np.testing.assert_array_equal(dataset.x, x)
    np.testing.assert_array_equal(dataset.y, y)
    assert dataset.y.dtype == np.float32  # a file's own float32 stays float32, as with .npy


def test_a_member_whose_header_promises_more_rows_than_it_holds_is_refused(tmp_path: Path) -> None:
    x = np.ones((100, 3))
    np.savez(tmp_path / "d.npz", x=x, y=np.ones(150))
    raw = bytearray((tmp_path / "d.npz").read_bytes())
    at = raw.index(b"(100, 3)")
    raw[at : at + 8] = b"(150, 3)"  # the same length: the zip stays readable, the array is cut short
    (tmp_path / "d.npz").write_bytes(bytes(raw))
    with pytest.raises(LrtrainError, match="is not a readable NumPy file"):
        load(tmp_path, "data: {source: npy, path: d.npz}\n")


def test_a_compressed_npz_is_read_whole_with_the_same_numbers(tmp_path: Path) -> None:
    x = np.arange(40.0).reshape(10, 4)
    np.savez_compressed(tmp_path / "d.npz", x=x, y=x.sum(axis=1))
    dataset = load(tmp_path, "data: {source: npy, path: d.npz}\n")
    np.testing.assert_array_equal(dataset.x, x)
    np.testing.assert_array_equal(dataset.y, x.sum(axis=1))


def test_a_truncated_npz_is_reported_as_unreadable(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.ones((1000, 3)), y=np.ones(1000))
    raw = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "d.npz").write_bytes(raw[:12000])  # cut inside x's data: the directory at the end is gone too
    with pytest.raises(LrtrainError, match="is not a readable NumPy file"):
        load(tmp_path, "data: {source: npy, path: d.npz}\n")


def test_an_npz_is_written_chunk_by_chunk_and_read_back(tmp_path: Path) -> None:
    spec = load_config(None, ["data.source=synthetic", "data.rows=200000", "data.features=4"]).data
    chunks = synthetic.chunks(spec, seed=0, chunk_rows=10_000)  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        write(tmp_path / "d.npz", chunks, 200_000, 4, ["x0", "x1", "x2", "x3"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000  # a few 10 000-row chunks (400 kB each), not the 8 MB of rows (16 MB to concatenate)
    write(tmp_path / "d.npy", synthetic.chunks(spec, seed=0), 200_000, 4, ["x0", "x1", "x2", "x3"])  # type: ignore[arg-type]
    packed = load(tmp_path, "data: {source: npy, path: d.npz}\n")
    table = load(tmp_path, "data: {source: npy, path: d.npy}\n")
    np.testing.assert_array_equal(packed.x, table.x)
    np.testing.assert_array_equal(packed.y, table.y)
    with np.load(tmp_path / "d.npz") as archive:  # numpy reads it as its own
        np.testing.assert_array_equal(archive["y"], table.y)


def fingerprints_in_ranks(x: np.ndarray, y: np.ndarray, world: int) -> list[str]:
    """Dataset.sha256 as each of `world` ranks (threads) computes it."""
    shared: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(world)
    found: dict[int, str] = {}

    def rank(r: int) -> None:
        group = ThreadShard(r, world, 0, 0, shared, barrier)
        found[r] = fingerprint(Table(x, y, ["a", "b", "c"], "y", "test"), group)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return [found[r] for r in range(world)]


def test_the_data_fingerprint_is_the_same_for_any_number_of_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "HASH_ROWS", 100)  # 1001 rows: 11 blocks, shared unevenly by 1, 2 or 3 ranks
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1001, 3)), rng.normal(size=1001)
    single = fingerprint(Table(x, y, ["a", "b", "c"], "y", "test"))
    for world in (2, 3):
        assert fingerprints_in_ranks(x, y, world) == [single] * world
    changed = y.copy()
    changed[555] = np.nextafter(changed[555], 1.0)  # one bit of one value
    assert fingerprint(Table(x, changed, ["a", "b", "c"], "y", "test")) != single


def test_validation_split_is_seeded_and_disjoint() -> None:
    config = load_config(None, ["data.source=synthetic", "data.rows=100", "data.validation=0.2"])
    first = prepare(sources.load(config), config)
    again = prepare(sources.load(config), config)
    assert first.rows == 80
    assert first.x_val is not None
    assert len(first.x_val) == 20
    np.testing.assert_array_equal(first.x, again.x)
    rows = {tuple(r) for r in first.x} | {tuple(r) for r in first.x_val}
    assert len(rows) == 100


def test_standardization_uses_training_rows_only() -> None:
    config = load_config(
        None, ["data.source=synthetic", "data.rows=100", "data.validation=0.3", "data.standardize=true"]
    )
    prepared = prepare(sources.load(config), config)
    np.testing.assert_allclose(prepared.x.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(prepared.x.std(axis=0), 1, atol=1e-6)
    w_raw, b_raw = prepared.scaling.to_original(np.array([2.0]), 1.0)
    w, b = prepared.scaling.to_trained(w_raw, b_raw)
    assert w == pytest.approx([2.0])
    assert b == pytest.approx(1.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_split_standardization_and_cast_make_one_copy_of_the_rows(tmp_path: Path, dtype: str) -> None:
    import tracemalloc

    n = 100_000
    np.save(tmp_path / "d.npy", np.random.default_rng(0).normal(size=(n, 9)))  # mapped: not in traced memory
    settings = ["data.source=npy", f"data.path={tmp_path / 'd.npy'}", "data.validation=0.2", "data.standardize=true"]
    config = load_config(None, [*settings, f"model.dtype={dtype}"])
    dataset = sources.load(config)
    tracemalloc.start()
    try:
        prepared = prepare(dataset, config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    held = sum(a.nbytes for a in (prepared.x, prepared.y, prepared.x_val, prepared.y_val) if a is not None)
    assert held == n * 9 * np.dtype(dtype).itemsize
    indices = 16 * n  # the split's permutation of the row numbers, and the two sorted parts
    block = BLOCK_ROWS * 8 * 8  # a block of rows in float64
    assert peak < held + indices + 8 * block, (peak, held)  # one float64 copy of the rows would exceed it


def test_synthetic_rows_do_not_depend_on_the_chunk_size() -> None:
    config = load_config(None, ["data.source=synthetic", "data.rows=1000", "data.features=4"])
    spec = config.data
    whole = list(synthetic.chunks(spec, 3, chunk_rows=1000))  # type: ignore[arg-type]
    parts = list(synthetic.chunks(spec, 3, chunk_rows=64))  # type: ignore[arg-type]
    np.testing.assert_array_equal(whole[0][0], np.concatenate([p[0] for p in parts]))
    np.testing.assert_array_equal(whole[0][1], np.concatenate([p[1] for p in parts]))


def test_synthetic_data_follows_the_true_weights() -> None:
    config = load_config(
        None,
        ["data.source=synthetic", "data.rows=20000", "data.features=2", "data.weights=[2, -3]", "data.bias=1"],
    )
    dataset = sources.load(config)
    design = np.column_stack([dataset.x, np.ones(len(dataset.y))])
    coef = np.linalg.lstsq(design, dataset.y, rcond=None)[0]
    np.testing.assert_allclose(coef, [2, -3, 1], atol=0.01)


def test_csv_with_a_byte_order_mark_keeps_clean_column_names(tmp_path: Path) -> None:
    (tmp_path / "excel.csv").write_bytes("\ufeffsqft,rooms,price\n50,2,100\n80,3,160\n65,2,130\n".encode())
    dataset = load(tmp_path, "data: {source: csv, path: excel.csv, target: price, features: [sqft]}\n")
    assert dataset.features == ["sqft"]
    np.testing.assert_array_equal(dataset.x[:, 0], [50, 80, 65])


def test_a_large_csv_streams_into_a_mapped_table_with_the_same_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    table = rng.normal(size=(1000, 4))
    lines = "a,b,c,y\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in table) + "\n"
    (tmp_path / "d.csv").write_text(lines)
    in_memory = load(tmp_path, "data: {source: csv, path: d.csv, features: [c, a]}\n")
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 9000)  # about 8 ranges
    streamed = load(tmp_path, "data: {source: csv, path: d.csv, features: [c, a]}\n")
    assert isinstance(streamed.x.base, np.memmap) or isinstance(streamed.x, np.memmap)
    np.testing.assert_array_equal(streamed.x, in_memory.x)
    np.testing.assert_array_equal(streamed.y, in_memory.y)
    np.testing.assert_array_equal(streamed.x[:, 0], table[:, 2])


def test_a_streamed_csv_still_names_the_bad_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [f"{i},{2 * i}" for i in range(500)]
    rows[321] = "5,oops"
    (tmp_path / "d.csv").write_text("x,y\n" + "\n".join(rows) + "\n")
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 500)
    with pytest.raises(LrtrainError, match=r"line 323, column 'y': 'oops' is not a number"):
        load(tmp_path, "data: {source: csv, path: d.csv}\n")
