"""Tables read with pyarrow: CSV (whole, in ranges, compressed) and Parquet, against independent readers."""

from __future__ import annotations

import bz2
import gzip
import json
import math
import re
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from lrtrain import sources
from lrtrain.config import load_config
from lrtrain.errors import DataError, LrtrainError
from lrtrain.sources import Table, delimited

from .conftest import SUBPROCESS_TIMEOUT, cli, file_lines, quoted_columns, write_quoted_csv


def load(tmp_path: Path, yaml_text: str) -> Table:
    (tmp_path / "c.yaml").write_text(yaml_text)
    table = sources.load(load_config(tmp_path / "c.yaml"))
    assert isinstance(table, Table)
    return table


def messy_csv(rows: int = 3000, seed: int = 5) -> tuple[str, np.ndarray]:
    """A CSV with a header, CRLF line ends, quoted and blank-padded cells, blank lines and a text column."""
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(rows, 4)) * [1.0, 1e6, 1e-6, 3.0]
    lines = ["a,b,note,c,y"]
    for i, (a, b, c, y) in enumerate(table.tolist()):
        lines.append(f'{a!r},"{b!r}",word {i}, {c:.17g} ,{y!r}')
        if i % 700 == 0:
            lines.append("")
    return "\r\n".join(lines) + "\r\n", table


def test_csv_numbers_equal_numpys_parse_whole_and_in_ranges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, table = messy_csv()
    (tmp_path / "d.csv").write_text(text, newline="")
    reference = np.loadtxt(tmp_path / "d.csv", delimiter=",", skiprows=1, usecols=(0, 1, 3, 4), quotechar='"')
    np.testing.assert_array_equal(reference, table)  # the file holds the numbers exactly
    whole = load(tmp_path, "data: {source: csv, path: d.csv, features: [a, b, c]}\n")
    assert not isinstance(whole.x.base, np.memmap)
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")
    for size in (40, 5000, 70_000):  # shorter than a line, a few lines, a few ranges
        monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", size)
        ranged = load(tmp_path, "data: {source: csv, path: d.csv, features: [a, b, c]}\n")
        assert isinstance(ranged.x.base, np.memmap)
        np.testing.assert_array_equal(ranged.x, reference[:, :3])
        np.testing.assert_array_equal(ranged.y, reference[:, 3])
    np.testing.assert_array_equal(whole.x, reference[:, :3])
    np.testing.assert_array_equal(whole.y, reference[:, 3])


def test_quoted_cells_with_line_ends_are_read_whole_and_in_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    columns = quoted_columns(5000)
    write_quoted_csv(tmp_path / "d.csv", columns)
    assert (tmp_path / "d.csv").stat().st_size > 1 << 20  # more than one block of pyarrow's parser threads
    levels = sorted(set(columns["kind"]))
    indicators = [[float(kind == level) for kind in columns["kind"]] for level in levels[1:]]
    expected = np.column_stack([columns["x0"], columns["x1"], *indicators])
    config = "data: {source: csv, path: d.csv, features: [x0, x1, kind], categorical: [kind]}\n"
    read = [load(tmp_path, config)]
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")
    for size in (3000, 70_000):  # ranges cut inside quoted cells if the cut looked for a line end only
        monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", size)
        read.append(load(tmp_path, config))
    for table in read:
        assert table.features == ["x0", "x1", *(f"kind[{level}]" for level in levels[1:])]
        np.testing.assert_array_equal(table.x, expected)
        np.testing.assert_array_equal(table.y, columns["y"])


@pytest.mark.parametrize(("column", "row", "cell", "said"), [("x1", 450, "oops", "'oops' is not a number"),
                                                             ("x0", 500, "nan", "the value is nan")])  # fmt: skip
def test_a_bad_cell_after_quoted_line_ends_is_named_by_its_file_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, column: str, row: int, cell: str, said: str
) -> None:
    columns = quoted_columns(600)
    columns[column][row] = cell  # found by the parser (oops), or by the check of the values read (nan)
    write_quoted_csv(tmp_path / "d.csv", columns)
    line = file_lines(tmp_path / "d.csv")[row]
    assert line > row + 2 + 600  # the cells of note before it hold more line ends than there are rows
    config = "data: {source: csv, path: d.csv, features: [x0, x1, kind], categorical: [kind]}\n"
    expected = f"data file {tmp_path / 'd.csv'}, line {line}, column '{column}': {said}"
    for size in (None, 2000, 50_000):  # whole; in ranges, the row in a later one
        if size is not None:
            monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")
            monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", size)
        with pytest.raises(DataError) as error:
            load(tmp_path, config)
        assert str(error.value).startswith(expected), (size, str(error.value))


def inch_csv(path: Path, rows: int = 40_000, bad: int | None = None) -> np.ndarray:
    """A CSV whose unused text column holds a quote inside an unquoted cell (12"), which pyarrow reads as text,
    early on; `bad`: that row's first cell is nan. The numbers of columns a and y."""
    rng = np.random.default_rng(1)
    table = rng.normal(size=(rows, 2))
    notes = ['pipe 12" long' if i == 100 else "word" for i in range(rows)]
    cells = [
        ("nan" if i == bad else repr(a), note, repr(y))
        for i, ((a, y), note) in enumerate(zip(table.tolist(), notes, strict=True))
    ]
    path.write_text("a,note,y\n" + "".join(f"{a},{note},{y}\n" for a, note, y in cells))
    return table


def test_a_quote_inside_an_unquoted_cell_is_text_and_ranges_stay_small(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = inch_csv(tmp_path / "d.csv")
    text = (tmp_path / "d.csv").read_text()
    (tmp_path / "plain.csv").write_text(text.replace('12"', "12"))  # the same without the quote
    whole = load(tmp_path, "data: {source: csv, path: d.csv, features: [a]}\n")
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 20_000)
    peaks = {}
    for name in ("plain.csv", "d.csv", "plain.csv"):  # the first read imports what reading needs
        tracemalloc.start()
        try:
            ranged = load(tmp_path, f"data: {{source: csv, path: {name}, features: [a]}}\n")
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks["d.csv"] < peaks["plain.csv"] + 200_000  # a few ranges of 20 kB, not the rest of a 1.7 MB file
    for read in (whole, ranged):
        np.testing.assert_array_equal(read.x[:, 0], table[:, 0])
        np.testing.assert_array_equal(read.y, table[:, 1])
    inch_csv(tmp_path / "d.csv", bad=30_000)  # after the quote: its line is still its row's, plus the header's
    with pytest.raises(DataError, match=r"d.csv, line 30002, column 'a': the value is nan"):
        load(tmp_path, "data: {source: csv, path: d.csv, features: [a]}\n")


def test_a_large_csv_whose_table_fits_in_memory_is_read_in_ranges_into_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the threshold, the file is parsed in ranges; its float64 table (smaller than the text) is kept in
    memory, features and target each contiguous, even when the first lines make the row count look smaller."""
    rng = np.random.default_rng(3)
    table = rng.normal(size=(6000, 3))
    lines = ["a,b,y"] + [f"{a!r},{b!r},{y!r}" for a, b, y in table[:200].tolist()]
    lines += [f"{a:.3f},{b:.3f},{y:.3f}" for a, b, y in table[200:].tolist()]  # shorter lines after the sampled ones
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    reference = np.loadtxt(tmp_path / "d.csv", delimiter=",", skiprows=1)
    size = (tmp_path / "d.csv").stat().st_size
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", str(size // 2))  # the file is over it, its table under it
    monkeypatch.setattr(delimited, "SAMPLE_BYTES", 2000)  # long lines only: the row count estimated falls short
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 9000)
    ranged = load(tmp_path, "data: {source: csv, path: d.csv}\n")
    assert not isinstance(ranged.x.base, np.memmap)
    assert ranged.x.flags.c_contiguous
    assert ranged.y.flags.c_contiguous
    np.testing.assert_array_equal(ranged.x, reference[:, :2])
    np.testing.assert_array_equal(ranged.y, reference[:, 2])
    monkeypatch.setattr(delimited, "SAMPLE_BYTES", 1 << 20)  # every line: the estimate is about right
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", str(size * 4 // 5))  # the table is over it too: on disk
    assert size * 4 // 5 < 6000 * 3 * 8
    cached = load(tmp_path, "data: {source: csv, path: d.csv}\n")
    assert isinstance(cached.x.base, np.memmap)
    np.testing.assert_array_equal(cached.x, reference[:, :2])


def test_a_resident_table_is_an_ordinary_writable_array_and_falls_back_where_it_cannot_be_mapped() -> None:
    script = textwrap.dedent(
        """
        import re
        import resource
        from pathlib import Path
        import numpy as np
        from lrtrain.sources.base import resident

        def anonymous():
            return int(re.search(r"RssAnon:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) >> 10

        def huge():
            rollup = Path("/proc/self/smaps_rollup").read_text()
            return int(re.search(r"AnonHugePages:\\s+(\\d+)", rollup).group(1)) >> 10

        before, huge_before = anonymous(), huge()
        table = resident((1 << 20, 5))  # 40 MB: mapped at once, before a value is written
        print(anonymous() - before, huge() - huge_before)
        table[:] = 1.5
        assert table.dtype == np.float64 and table.shape == (1 << 20, 5) and table.flags.c_contiguous
        assert float(table.sum()) == 1.5 * 5 * (1 << 20)
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, hard))
        try:
            resident((1 << 30, 8))  # 64 GB: neither the mapping nor NumPy's array fits
        except MemoryError:
            print("refused")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, check=True
    )
    resident_mb, huge_mb, refused = done.stdout.split()
    assert int(resident_mb) >= 38, f"{resident_mb} MB of the 40 MB table mapped before it was written"
    assert refused == "refused"
    offered = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if offered.exists() and "[never]" not in offered.read_text():  # 2 MB pages asked for: 20 faults, not 10,000
        assert int(huge_mb) >= 2, f"{huge_mb} MB of the 40 MB table in 2 MB pages"


def test_a_last_line_without_a_line_end_is_read_in_ranges_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d.csv").write_text("x,y\n1,2\n3,4\n5,6")
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 4)
    table = load(tmp_path, "data: {source: csv, path: d.csv}\n")
    np.testing.assert_array_equal(table.y, [2, 4, 6])


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_ranges_are_cut_where_pyarrow_ends_rows_whatever_the_quotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delimiter: str
) -> None:
    """A quote opens a quoted cell only at a cell's start (pyarrow's reading); elsewhere it is text (12", an inch).
    Counting quotes, one inch mark turned every cut after it over, and with quoted line ends in the file a range
    could end inside a quoted cell: an error on a valid file, or rows read wrongly. Every range size gives the
    rows of the whole file, read at once."""
    rng = np.random.default_rng(11)
    notes = ['12" pipe', '"line one\nline two"', '"say ""hi""\n"', '15"', "plain", '"a\n\nb"', 'x"y"z']
    lines = [f"size{delimiter}note{delimiter}y"]
    for i in range(400):
        size = int(rng.integers(0, 50))
        lines.append(f"{size}{delimiter}{notes[int(rng.integers(0, len(notes)))]}{delimiter}{2.0 * size + i % 3}")
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    spec = f"data: {{source: csv, path: d.csv, delimiter: {json.dumps(delimiter)}, features: [size]}}\n"
    whole = load(tmp_path, spec)
    assert len(whole.y) == 400
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")
    monkeypatch.setattr(delimited, "LINE_BYTES", 64)
    for size in (37, 64, 100, 257, 1000):
        monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", size)
        ranged = load(tmp_path, spec)
        np.testing.assert_array_equal(ranged.x, whole.x)
        np.testing.assert_array_equal(ranged.y, whole.y)


def test_a_quoted_cell_that_never_closes_is_named_before_it_fills_the_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "d.csv").write_text('x,y\n1,2\n3,"4\n' + "5,6\n" * 100)
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 64)
    monkeypatch.setattr(delimited, "LINE_BYTES", 64)
    with pytest.raises(DataError, match=r"line 3: a quote at the start of a cell there .* closing quote missing"):
        load(tmp_path, "data: {source: csv, path: d.csv}\n")


@pytest.mark.parametrize("spelled", ["\\t", "tab", "TAB"])
def test_data_delimiter_takes_a_tab_as_a_shell_types_it(tmp_path: Path, spelled: str) -> None:
    (tmp_path / "d.csv").write_text("x\ty\n1\t2\n2\t4.5\n3\t6\n")
    config = load_config(None, ["data.source=csv", f"data.path={tmp_path / 'd.csv'}", f"data.delimiter={spelled}"])
    table = sources.load(config)
    np.testing.assert_array_equal(table.y, [2, 4.5, 6])


def test_a_header_alone_read_in_ranges_has_no_rows_to_estimate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d.csv").write_text("x0,x1,y\n")
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "0")  # every CSV in ranges
    with pytest.raises(DataError, match="has a header but no data rows"):
        load(tmp_path, "data: {source: csv, path: d.csv}\n")


def compress(kind: str, raw: bytes) -> bytes:
    if kind == "gz":
        return gzip.compress(raw)
    if kind == "bz2":
        return bz2.compress(raw)
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as stream:
        stream.write(raw)
    return bytes(sink.getvalue())


@pytest.mark.parametrize("kind", ["gz", "bz2", "zst"])
def test_compressed_csv_is_streamed_with_the_same_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    text, _ = messy_csv(rows=2000)
    (tmp_path / "d.csv").write_text(text, newline="")
    (tmp_path / f"d.csv.{kind}").write_bytes(compress(kind, text.encode()))
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 3000)
    plain = load(tmp_path, "data: {source: csv, path: d.csv, features: [a, b, c]}\n")
    packed = load(tmp_path, f"data: {{source: csv, path: d.csv.{kind}, features: [a, b, c]}}\n")
    assert isinstance(packed.x.base, np.memmap)  # a compressed file always streams into the cache
    np.testing.assert_array_equal(packed.x, plain.x)
    np.testing.assert_array_equal(packed.y, plain.y)
    assert packed.features == ["a", "b", "c"]


def test_a_bad_cell_deep_in_a_compressed_file_is_named_by_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [f"{i},{2 * i}" for i in range(3000)]
    rows[2345] = "7,"  # an empty cell: not a silent null
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(("x,y\n" + "\n".join(rows) + "\n").encode()))
    monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 1000)
    with pytest.raises(DataError, match=r"d\.csv\.gz, line 2347, column 'y': '' is not a number"):
        load(tmp_path, "data: {source: csv, path: d.csv.gz}\n")


def test_a_file_named_gz_that_is_not_gzip_is_refused_in_words(tmp_path: Path) -> None:
    (tmp_path / "d.csv.gz").write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match=r"d\.csv\.gz cannot be decompressed as gzip .*really gzip-compressed"):
        load(tmp_path, "data: {source: csv, path: d.csv.gz}\n")


def test_text_in_a_column_not_chosen_is_never_parsed(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(b"x,city,y\n1,K\xf6ln,2\n2,Z\xfcrich,4\n3,Paris,7\n")  # Latin-1 names
    table = load(tmp_path, "data: {source: csv, path: d.csv, features: [x]}\n")
    np.testing.assert_array_equal(table.y, [2, 4, 7])


def test_a_feature_listed_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,3\n")
    with pytest.raises(DataError, match=r"data\.features names column 'a' twice"):
        load(tmp_path, "data: {source: csv, path: d.csv, features: [a, 0]}\n")


@pytest.mark.slow
def test_a_streamed_csv_holds_a_range_in_memory_not_the_file(tmp_path: Path) -> None:
    """Peak resident memory of a process reading a 40 MB CSV in 1 MB ranges, over what imports take."""
    rng = np.random.default_rng(0)
    np.savetxt(
        tmp_path / "d.csv",
        rng.normal(size=(200_000, 10)),
        delimiter=",",
        fmt="%.17g",
        header="a,b,c,d,e,f,g,h,i,y",
        comments="",
    )
    script = textwrap.dedent(
        f"""
        import re
        from pathlib import Path
        import numpy as np, pyarrow, pyarrow.csv
        from lrtrain.config import load_config
        from lrtrain.sources import delimited

        def status(key):
            return int(re.search(key + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) >> 10

        delimited.CSV_RANGE_BYTES = 1 << 20
        spec = load_config(None, ["data.source=csv", "data.path={tmp_path / "d.csv"}"]).data
        before = status("VmRSS")
        table = delimited.read(spec, scratch=True)
        assert table.x.shape == (200_000, 9)
        print(status("VmHWM") - before)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, check=True
    )
    grown = int(done.stdout.split()[-1])
    # the ranges, pyarrow's threads and buffers: about 20 MB; the whole file parsed at once: 32 MB of numbers and more
    assert grown < 30, f"{grown} MB over the imports for 1 MB ranges of a 40 MB file"


def test_passes_over_a_table_cached_on_disk_hold_a_block_of_it_at_a_time_not_all_they_read() -> None:
    """The finite check, the fingerprint, the moments, the exact solve's refinement and the loss each read a
    48 MB table mapped from disk whole; the pages each has read leave the process as it moves on (else the
    kernel counts all 48 MB as the process's own, and a 4 GB file as 4 GB)."""
    script = textwrap.dedent(
        """
        import re
        from pathlib import Path
        import numpy as np
        from lrtrain.engine import mean_squares
        from lrtrain.engine_exact import solve
        from lrtrain.moments import moments
        from lrtrain.parallel import SINGLE
        from lrtrain.sources.base import Table, checked, fingerprint, scratch_mapping

        def status(key):
            return int(re.search(key + r":\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) >> 10

        rng = np.random.default_rng(4)
        block = rng.normal(size=(50_000, 20))
        block[:, -1] = block[:, :-1] @ np.arange(19.0) + rng.normal(size=50_000)
        expected = solve(block[:, :-1], block[:, -1], True)[0]

        def fill(out):
            for _ in range(6):
                block.tofile(out)
            return (300_000, 20)

        rows = scratch_mapping(fill, np.dtype(np.float64))
        table = Table(rows[:, :-1], rows[:, -1], [f"x{i}" for i in range(19)], "y", "test")
        before = status("VmHWM")
        checked(table)
        fingerprint(table)
        stats = moments(table.x, table.y)
        w, b = solve(table.x, table.y, True, centered=stats)
        mean_squares(table.x, table.y, 300_000, SINGLE, [(w, b)])
        print(status("VmHWM") - before, float(np.max(np.abs(w - expected))))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, check=True
    )
    grown, error = done.stdout.split()
    assert int(grown) < 16, f"the passes over a 48 MB mapped table grew the peak by {grown} MB"
    assert float(error) < 1e-9  # six copies of a block: the same least squares as the block


def test_the_finite_check_and_the_moments_each_read_a_table_on_disk_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass over a table cached on disk costs a read of the file: the finite check reads x and y together, and
    the moments need no pass for the means first (each block centered on its own, merged exactly)."""
    from lrtrain import blocks
    from lrtrain.moments import moments
    from lrtrain.sources.base import Table, checked, scratch_mapping

    rng = np.random.default_rng(5)
    numbers = rng.normal(size=(40_000, 6)) + 1e6 * rng.normal(size=6)  # means far beyond the spread
    numbers[:, -1] = numbers[:, :-1] @ np.arange(5.0) + rng.normal(size=40_000)

    def fill(out: object) -> tuple[int, int]:
        numbers.tofile(out)
        return numbers.shape

    rows = scratch_mapping(fill, np.dtype(np.float64))
    table = Table(rows[:, :-1], rows[:, -1], [f"x{i}" for i in range(5)], "y", "test")
    read = {"x": 0, "y": 0}
    release = blocks.release

    def counted(part: np.ndarray) -> None:
        read["x" if part.ndim == 2 else "y"] += len(part)
        release(part)

    monkeypatch.setattr(blocks, "release", counted)
    checked(table)
    assert read == {"x": 40_000, "y": 40_000}
    stats = moments(table.x, table.y)
    assert read == {"x": 80_000, "y": 80_000}
    means = np.array([math.fsum(column) / len(column) for column in numbers.T])  # exactly rounded
    a, t = numbers[:, :-1] - means[:-1], numbers[:, -1] - means[-1]
    np.testing.assert_allclose(stats.x_mean, means[:-1], rtol=1e-14)
    assert stats.y_mean == pytest.approx(means[-1], rel=1e-14)
    np.testing.assert_allclose(stats.gram, a.T @ a, rtol=1e-11)
    np.testing.assert_allclose(stats.cross, a.T @ t, rtol=1e-11)
    assert stats.tt == pytest.approx(t @ t, rel=1e-11)


TALLIED = [
    "csv whole",
    "csv in ranges",
    "csv on disk",
    "csv gzip",
    "csv drop",
    "csv categorical",
    "parquet",
    "parquet on disk",
]


@pytest.mark.parametrize("how", TALLIED)
def test_a_table_read_from_a_file_comes_checked_and_with_its_moments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The readers tally the rows as they make them (moments.Tally): the source arrives known to be finite, so
    the check reads none of it, and with its moments, equal to those of a pass over it (centered block by
    block), whether it is kept in memory or on disk, with rows dropped or categorical columns expanded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lrtrain.moments import _merged
    from lrtrain.sources import parquet

    rng = np.random.default_rng(8)
    numbers = rng.normal(size=(3000, 4)) * [1.0, 1e-3, 50.0, 2.0] + [1e6, -3.0, 0.0, 7.0]  # a mean of 1e6
    names = ["a", "b", "c", "y"]
    cells = [[repr(v) for v in row] for row in numbers.tolist()]
    if how == "csv drop":
        cells[17][1] = cells[2000][3] = ""
    if how == "csv categorical":
        for i, row in enumerate(cells):
            row[2] = ["red", "green", "blue"][i % 3]
    text = "\n".join([",".join(names), *(",".join(row) for row in cells)]) + "\n"
    settings = ["data.missing=drop"] if how == "csv drop" else []
    settings += ["data.categorical=[c]"] if how == "csv categorical" else []
    if how.startswith("parquet"):
        path = tmp_path / "d.parquet"
        pq.write_table(pa.table(dict(zip(names, numbers.T, strict=True))), path, row_group_size=700)
    elif how == "csv gzip":
        path = tmp_path / "d.csv.gz"
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path = tmp_path / "d.csv"
        path.write_text(text)
    if how.endswith("on disk"):
        monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")
    if how == "csv in ranges":
        monkeypatch.setattr(delimited, "stream_bytes", lambda: 200_000)  # the file is over it, its table under it
        monkeypatch.setattr(delimited, "CSV_RANGE_BYTES", 9000)
    monkeypatch.setattr(parquet, "BATCH_ROWS", 500)

    def unread(*args: object, **kwargs: object) -> None:
        raise AssertionError("the finite check read the rows")

    with monkeypatch.context() as patched:
        patched.setattr(Table, "blocks", unread)
        table = sources.load(load_config(None, [f"data.path={path}", *settings]))
    assert isinstance(table, Table)
    assert table.finite
    assert table.moments is not None
    assert isinstance(table.x.base, np.memmap) == how.endswith(("on disk", "gzip"))
    x, y = np.asarray(table.x), np.asarray(table.y)
    assert len(y) == (2998 if how == "csv drop" else 3000)
    assert x.shape[1] == (4 if how == "csv categorical" else 3)
    passed = _merged(x, y)
    np.testing.assert_allclose(table.moments.x_mean, passed.x_mean, rtol=1e-14)
    assert table.moments.y_mean == pytest.approx(passed.y_mean, rel=1e-14)
    np.testing.assert_allclose(table.moments.gram, passed.gram, rtol=1e-11, atol=1e-11 * np.max(passed.gram))
    np.testing.assert_allclose(table.moments.cross, passed.cross, rtol=1e-11, atol=1e-11 * np.max(passed.cross))
    assert table.moments.tt == pytest.approx(passed.tt, rel=1e-12)


@pytest.mark.parametrize(
    ("settings", "tallied"),
    [
        ([], True),
        (["data.validation=0.2"], False),
        (["data.standardize=true"], False),
        (["model.dtype=float32"], False),
    ],
    ids=["as read", "split", "standardized", "float32"],
)
def test_the_exact_model_of_a_csv_reads_its_rows_only_to_parse_them(
    tmp_path: Path, settings: list[str], tallied: bool, request: pytest.FixtureRequest
) -> None:
    """Rows trained on as they were read: the exact fit is the parse and nothing more (rows of NaN put in their
    place after it give numpy's least squares), and so are lr: auto, the epochs from the statistics and the final
    loss. A split, a standardization (both known to the reader, which then only sums the rows, for the check)
    or a cast makes other rows, whose moments are gathered by a pass."""
    import dataclasses

    from lrtrain.engine import mean_squares
    from lrtrain.parallel import SINGLE
    from lrtrain.prepare import prepare
    from lrtrain.training import train

    rng = np.random.default_rng(9)
    numbers = rng.normal(size=(4000, 4)) + np.array([10.0, -5.0, 0.0, 0.0])
    numbers[:, -1] = numbers[:, :-1] @ [1.0, -2.0, 0.5] + 4.0 + rng.normal(size=4000)
    np.savetxt(tmp_path / "d.csv", numbers, delimiter=",", header="a,b,c,y", comments="", fmt="%.17g")
    config_args = [f"data.path={tmp_path / 'd.csv'}", "model.dtype=float64", *settings]
    config = load_config(None, config_args)
    source = sources.load(config)
    assert source.finite  # known without a pass, whatever rows are trained on
    assert (source.moments is None) == ("split" in request.node.name or "standardized" in request.node.name)
    prepared = prepare(source, config)
    assert (prepared.tallied is not None) == tallied
    if not tallied:
        return
    spoiled = dataclasses.replace(prepared, x=np.full_like(prepared.x, np.nan), y=np.full_like(prepared.y, np.nan))
    result = train(config, spoiled, "exact", "cpu", None)
    design = np.column_stack([numbers[:, :3], np.ones(len(numbers))])
    coef, residual = np.linalg.lstsq(design, numbers[:, 3], rcond=None)[:2]
    np.testing.assert_allclose(result.weights, coef[:3], rtol=1e-12)
    assert result.bias == pytest.approx(coef[3], rel=1e-12)
    assert result.loss == pytest.approx(residual[0] / len(numbers), rel=1e-11)
    walked = load_config(None, [*config_args, "train.lr=auto", "train.statistics=always", "train.epochs=30"])
    result = train(walked, spoiled, "manual", "cpu", None)  # lr: auto, the epochs and the loss: the moments alone
    assert result.epochs == 30
    assert result.loss == pytest.approx(
        mean_squares(prepared.x, prepared.y, 4000, SINGLE, [(result.weights, result.bias)])[0], rel=1e-11
    )


def test_a_value_the_sums_cannot_vouch_for_is_still_checked_and_its_moments_taken_in_a_pass(tmp_path: Path) -> None:
    """A square beyond float64 (1e200²) leaves the sums infinite: the check then reads the rows (they are finite,
    so nothing is refused there), and no tallied moments stand in for a pass."""
    (tmp_path / "d.csv").write_text("a,y\n1e200,1\n2,2\n3,1\n")
    table = load(tmp_path, "data: {path: d.csv}\n")
    assert not table.finite
    assert table.moments is None
    (tmp_path / "e.csv").write_text("a,y\n1,1\n2,inf\n3,1\n")
    with pytest.raises(DataError, match=r"e.csv, line 3, column 'y': the value is inf"):
        load(tmp_path, "data: {path: e.csv}\n")


def parquet_table(rows: int = 5000, seed: int = 2) -> tuple[object, np.ndarray]:
    """A table with int32, float32 and float64 columns and a text column; also its numbers as float64."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    a = rng.integers(-1000, 1000, size=rows).astype(np.int32)
    b = rng.normal(size=rows).astype(np.float32)
    y = 2.0 * a - 3.0 * b + rng.normal(size=rows)
    table = pa.table({"a": a, "city": [f"c{i % 7}" for i in range(rows)], "b": b, "y": y})
    return table, np.column_stack([a.astype(np.float64), b.astype(np.float64), y])


@pytest.mark.parametrize("batch", [300, 1000], ids=["batches of row groups", "row groups whole"])
def test_parquet_columns_by_name_equal_the_numbers_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    import pyarrow.parquet as pq

    from lrtrain.sources import parquet

    table, numbers = parquet_table()
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=1000)  # 5 row groups
    monkeypatch.setattr(parquet, "BATCH_ROWS", batch)  # groups of up to 2 batches are read whole
    read = load(tmp_path, "data: {source: parquet, path: d.parquet, features: [a, b], target: y}\n")
    assert (read.features, read.target, read.first_line) == (["a", "b"], "y", None)
    assert not isinstance(read.x.base, np.memmap)
    np.testing.assert_array_equal(read.x, numbers[:, :2])
    np.testing.assert_array_equal(read.y, numbers[:, 2])
    monkeypatch.setenv("LRTRAIN_CSV_STREAM_BYTES", "1")
    mapped = load(tmp_path, "data: {source: parquet, path: d.parquet, features: [0, b]}\n")  # an index works too
    assert isinstance(mapped.x.base, np.memmap)
    np.testing.assert_array_equal(mapped.x, numbers[:, :2])
    np.testing.assert_array_equal(mapped.y, numbers[:, 2])


def test_a_folder_of_parquet_files_is_one_table_in_name_order(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    table, numbers = parquet_table(rows=3000)
    (tmp_path / "set" / "part=b").mkdir(parents=True)
    pq.write_table(table.slice(0, 1000), tmp_path / "set" / "a-0.parquet")
    pq.write_table(table.slice(1000, 1500), tmp_path / "set" / "a-1.parquet")
    pq.write_table(table.slice(2500), tmp_path / "set" / "part=b" / "z.parquet")
    (tmp_path / "set" / "_SUCCESS").write_text("")
    (tmp_path / "set" / ".a-0.parquet.crc").write_text("not parquet")
    read = load(tmp_path, "data: {source: parquet, path: set, features: [a, b]}\n")
    assert read.origin.startswith("data folder")
    np.testing.assert_array_equal(read.x, numbers[:, :2])
    np.testing.assert_array_equal(read.y, numbers[:, 2])


def test_every_file_of_a_parquet_folder_is_read_whatever_its_name_ends_in(tmp_path: Path) -> None:
    """As pyarrow's datasets: a file named .PARQUET, or with no extension at all (part-0, as Hive writes them), is
    part of the table; rows are never silently left out."""
    import pyarrow.parquet as pq

    table, numbers = parquet_table(rows=3000)
    (tmp_path / "set").mkdir()
    pq.write_table(table.slice(0, 1000), tmp_path / "set" / "a.PARQUET")
    pq.write_table(table.slice(1000, 1000), tmp_path / "set" / "b")
    pq.write_table(table.slice(2000), tmp_path / "set" / "c.snappy.parquet")
    read = load(tmp_path, "data: {source: parquet, path: set, features: [a, b]}\n")
    np.testing.assert_array_equal(read.x, numbers[:, :2])


@pytest.mark.parametrize("intruder", ["README.txt", "broken link", "pipe", "empty file"])
def test_a_parquet_folder_with_a_file_it_cannot_read_names_it(tmp_path: Path, intruder: str) -> None:
    import os

    import pyarrow.parquet as pq

    table, _ = parquet_table(rows=100)
    (tmp_path / "set").mkdir()
    pq.write_table(table, tmp_path / "set" / "a.parquet")
    other = tmp_path / "set" / "b.parquet"
    if intruder == "README.txt":
        other = tmp_path / "set" / "README.txt"
        other.write_text("the data of 2026\n")
    elif intruder == "broken link":
        other.symlink_to(tmp_path / "gone.parquet")
    elif intruder == "pipe":
        os.mkfifo(other)
    else:
        other.write_bytes(b"")
    with pytest.raises(DataError, match=re.escape(str(other))) as caught:
        load(tmp_path, "data: {source: parquet, path: set, features: [a, b]}\n")
    assert "leading _" in str(caught.value) or "or .)" in str(caught.value)


@pytest.mark.parametrize(
    ("column", "message"),
    [("city", r"column 'city' holds text, not numbers"), ("kind", r"column 'kind' holds categories")],
)
def test_a_text_or_categorical_parquet_column_is_refused_by_name(tmp_path: Path, column: str, message: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table, _ = parquet_table(rows=10)
    table = table.append_column("kind", pa.array(["u", "v"] * 5).dictionary_encode())
    pq.write_table(table, tmp_path / "d.parquet")
    with pytest.raises(DataError, match=message + r".*data\.features"):
        load(tmp_path, f"data: {{source: parquet, path: d.parquet, features: [a, {column}], target: y}}\n")
    assert load(tmp_path, "data: {source: parquet, path: d.parquet, features: [a, b], target: y}\n").x.shape == (10, 2)


def test_a_null_in_parquet_is_named_by_file_row_and_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lrtrain.sources import parquet

    b = [float(i) for i in range(500)]
    b[432] = None  # type: ignore[call-overload]
    pq.write_table(pa.table({"a": np.arange(500.0), "b": b, "y": np.ones(500)}), tmp_path / "d.parquet")
    monkeypatch.setattr(parquet, "BATCH_ROWS", 100)
    with pytest.raises(DataError, match=r"d\.parquet, row 432, column 'b': the value is missing \(null\)"):
        load(tmp_path, "data: {source: parquet, path: d.parquet}\n")


def test_integers_beyond_float64s_exact_range_are_rounded_as_numpy_rounds_them(workdir: Path) -> None:
    """uint64 and int64 beyond 2**53 have no exact float64: they round (as NumPy's astype does), not fail."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    big = rng.integers(0, 2**62, size=400, dtype=np.uint64) + np.uint64(2**62)
    other = rng.normal(size=400)
    y = big.astype(np.float64) * 1e-18 + 2.0 * other + rng.normal(size=400) * 0.01
    pq.write_table(pa.table({"big": big, "other": other, "y": y}), workdir / "d.parquet")
    result = cli("fit", "--set", "data.path=d.parquet", "--engine", "exact", "--json")
    assert result.exit_code == 0, result.output
    fitted = json.loads(result.stdout.splitlines()[-1])
    design = np.column_stack([big.astype(np.float64), other, np.ones(400)])
    scale = np.linalg.norm(design, axis=0)  # columns of 1e18 and of 1: solved on equal footing
    reference = np.linalg.lstsq(design / scale, y, rcond=None)[0] / scale
    np.testing.assert_allclose(fitted["weights"], reference[:2], rtol=1e-6)
    evaluated = cli("evaluate", "--data", "d.parquet", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["rows"] == 400


def test_a_file_that_is_not_parquet_is_refused_in_words(tmp_path: Path) -> None:
    (tmp_path / "d.parquet").write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match=r"d\.parquet is not a readable Parquet file"):
        load(tmp_path, "data: {source: parquet, path: d.parquet}\n")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"data folder .*empty holds no Parquet files"):
        load(tmp_path, "data: {source: parquet, path: empty}\n")


def test_the_exact_model_from_parquet_is_numpys_least_squares(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from lrtrain.prepare import prepare
    from lrtrain.training import train

    table, numbers = parquet_table(rows=2000)
    pq.write_table(table, tmp_path / "d.parquet")
    path = tmp_path / "d.parquet"
    config = load_config(
        None, ["data.source=parquet", f"data.path={path}", "data.features=[a, b]", "model.dtype=float64"]
    )
    result = train(config, prepare(sources.load(config), config), "exact", "cpu", None)
    design = np.column_stack([numbers[:, :2], np.ones(len(numbers))])
    coef = np.linalg.lstsq(design, numbers[:, 2], rcond=None)[0]
    np.testing.assert_allclose(result.weights, coef[:2], rtol=1e-10)
    assert result.bias == pytest.approx(coef[2], rel=1e-9)


@pytest.mark.parametrize(
    ("name", "source", "delimiter"),
    [
        ("d.csv", "csv", ","),
        ("d.CSV.GZ", "csv", ","),
        ("d.csv.bz2", "csv", ","),
        ("d.tsv.zst", "csv", "\t"),
        ("d.tsv", "csv", "\t"),
        ("d.parquet", "parquet", None),
        ("d.npy", "npy", None),
        ("d.npz", "npy", None),
    ],
)
def test_a_data_path_whose_name_says_the_format_needs_no_source(name: str, source: str, delimiter: str | None) -> None:
    data = load_config(None, [f"data.path={name}"]).data
    assert data.source == source
    assert getattr(data, "delimiter", None) == delimiter


def test_a_folder_is_parquet_and_a_given_source_or_delimiter_wins(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    (tmp_path / "c.yaml").write_text("data:\n  path: set\n")
    assert load_config(tmp_path / "c.yaml").data.source == "parquet"  # relative to the config file
    data = load_config(None, ["data.path=d.tsv", "data.delimiter=;"]).data
    assert getattr(data, "delimiter", None) == ";"
    assert load_config(None, ["data.path=d.txt", "data.source=csv"]).data.source == "csv"
    with pytest.raises(LrtrainError, match=r"data\.path = 'd\.txt'.*Set data\.source to csv, parquet or npy"):
        load_config(None, ["data.path=d.txt"])


def test_data_make_parquet_then_fit_without_a_source(workdir: Path) -> None:
    import pyarrow.parquet as pq

    made = cli("data", "make", "d.parquet", "--rows", "300", "--features", "2", "--weights", "2,-1", "--noise", "0")
    assert made.exit_code == 0, made.output
    assert "lrtrain fit --set data.path=d.parquet" in made.stdout
    table = pq.read_table(workdir / "d.parquet")
    assert table.column_names == ["x0", "x1", "y"]
    x = np.column_stack([table.column("x0").to_numpy(), table.column("x1").to_numpy()])
    np.testing.assert_allclose(table.column("y").to_numpy(), x @ [2.0, -1.0], atol=1e-12)
    fit = cli("fit", "--set", "data.path=d.parquet", "--engine", "exact", "--json", "--set", "model.dtype=float64")
    assert fit.exit_code == 0, fit.output
    final = json.loads(fit.stdout.splitlines()[-1])
    assert final["weights"] == pytest.approx([2.0, -1.0], abs=1e-9)
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_a_header_of_numbers_is_a_data_row_and_says_to_turn_the_header_off(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("1.5,2,3\n4,5,6\n7,8,10\n")
    with pytest.raises(
        DataError, match=r"d\.csv: the header line holds only numbers \(1\.5, 2, 3\).*data\.header: false"
    ):
        load(tmp_path, "data: {source: csv, path: d.csv}\n")
    table = load(tmp_path, "data: {source: csv, path: d.csv, header: false}\n")
    np.testing.assert_array_equal(table.y, [3, 6, 10])
    (tmp_path / "d.csv").write_text("x,2020\n4,5\n")  # one name that is a number is a name
    assert load(tmp_path, "data: {source: csv, path: d.csv}\n").target == "2020"


@pytest.mark.parametrize("place", ["target", "features"])
def test_a_column_name_that_yaml_read_as_a_number_says_to_quote_it(tmp_path: Path, place: str) -> None:
    (tmp_path / "d.csv").write_text("year,2020,2021,y\n1,2,3,4\n2,3,5,7\n3,5,8,12\n")
    path = tmp_path / "d.csv"
    setting = "data.target=2021" if place == "target" else "data.features=[2020]"
    with pytest.raises(DataError, match=rf"data\.{place} = 202\d is read as a 0-based column index.*quote its name"):
        sources.load(load_config(None, [f"data.path={path}", setting]))
    quoted = load_config(None, [f"data.path={path}", "data.target='2021'", "data.features=['2020', year]"])
    table = sources.load(quoted)
    assert (table.target, table.features) == ("2021", ["2020", "year"])
    np.testing.assert_array_equal(table.y, [3, 5, 8])
    (tmp_path / "e.csv").write_text("2,a,b,y\n1,2,3,4\n")  # index 2 is 'b', but a column is named '2'
    with pytest.raises(DataError, match=r"data\.target = 2 is read as a 0-based column index"):
        sources.load(load_config(None, [f"data.path={tmp_path / 'e.csv'}", "data.target=2"]))


def test_a_column_name_that_yaml_read_as_a_boolean_says_to_quote_it(workdir: Path) -> None:
    (workdir / "d.csv").write_text("x,YES\n1,2\n2,4\n3,7\n")
    result = cli("fit", "--set", "data.path=d.csv", "--set", "data.target=YES")
    assert result.exit_code == 2
    assert "YAML reads YES as the boolean true" in result.stderr
    assert "--set data.target='\"YES\"'" in result.stderr
    (workdir / "c.yaml").write_text("data:\n  path: d.csv\n  features: [x]\n  target: yes\n")
    result = cli("fit", "-c", "c.yaml")
    assert result.exit_code == 2
    assert "c.yaml, line 4" in result.stderr
    assert "'data.target': holds a boolean" in result.stderr
    assert "Quote the name" in result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["c.yaml", "d.csv"]  # nothing written
    result = cli("fit", "--set", "data.path=d.csv", "--set", "data.target='YES'", "--engine", "exact")
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_parquet_fit_loads_no_remote_filesystem_support(workdir: Path) -> None:
    """pyarrow.fs loads OpenSSL on Linux (a tenth of a 1e6-row fit); a local file needs neither."""
    assert cli("data", "make", "t.parquet", "--rows", "100", "--features", "2").exit_code == 0
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['lrtrain', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('lrtrain', run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0, done.code\n"
        "print('loaded:', sorted(m for m in ('ssl', 'pyarrow.fs') if m in sys.modules), file=sys.stderr)\n"
    )
    fit = ["fit", "--engine", "exact", "--set", "data.path=t.parquet", "--set", "output.save=false"]
    done = subprocess.run(
        [sys.executable, "-c", probe, *fit], cwd=workdir, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )
    assert "loaded: []" in done.stderr, done.stderr


def test_a_pyarrow_without_the_bare_reader_reads_parquet_through_parquetfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lrtrain.sources import parquet

    path = tmp_path / "t.parquet"
    assert cli("data", "make", str(path), "--rows", "5000", "--features", "3").exit_code == 0
    config = load_config(None, [f"data.path={path}"])
    direct = sources.load(config)
    assert isinstance(parquet.open_file(path), parquet._Local)
    import pyarrow._parquet

    class Changed:  # a pyarrow whose reader takes other arguments
        def open(self, source: str) -> None:
            raise AssertionError("not reached")

    monkeypatch.setattr(pyarrow._parquet, "ParquetReader", Changed)
    assert not isinstance(parquet.open_file(path), parquet._Local)
    wrapped = sources.load(config)
    np.testing.assert_array_equal(wrapped.x, direct.x)
    np.testing.assert_array_equal(wrapped.y, direct.y)


@pytest.mark.slow
def test_help_and_predict_never_import_pyarrow(workdir: Path) -> None:
    assert cli("fit", "--set", "train.epochs=2").exit_code == 0
    probe = (
        "import runpy, sys\n"
        "sys.argv = ['lrtrain', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('lrtrain', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('pyarrow imported:', 'pyarrow' in sys.modules, file=sys.stderr)\n"
    )
    for args in (["--help"], ["predict", "5"]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
        )
        assert "pyarrow imported: False" in done.stderr, (args, done.stderr)


def test_a_wide_table_is_only_summed_as_it_is_read_and_its_moments_gathered_on_every_core(tmp_path: Path) -> None:
    """Past moments.ONE_THREAD_MAX_D features the products, on the reader's one thread, would cost more than a pass
    of them on every core: the reader sums the rows for the finite check alone."""
    from lrtrain.moments import ONE_THREAD_MAX_D

    d = ONE_THREAD_MAX_D + 1
    numbers = np.random.default_rng(6).normal(size=(300, d + 1))
    header = ",".join([*(f"x{i}" for i in range(d)), "y"])
    np.savetxt(tmp_path / "d.csv", numbers, delimiter=",", header=header, comments="", fmt="%.17g")
    table = load(tmp_path, "data: {path: d.csv}\n")
    assert table.finite
    assert table.moments is None
    numbers[7, 3] = np.nan
    np.savetxt(tmp_path / "e.csv", numbers, delimiter=",", header=header, comments="", fmt="%.17g")
    with pytest.raises(DataError, match=r"e.csv, line 9, column 'x3': the value is nan"):
        load(tmp_path, "data: {path: e.csv}\n")


def test_a_batch_whose_every_row_is_dropped_leaves_the_tally_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data.missing: drop can leave a batch with no row: the tally takes nothing from it (no mean of an empty
    batch, which NumPy warns of), and the moments are those of the rows kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lrtrain.moments import _merged
    from lrtrain.sources import parquet

    rng = np.random.default_rng(3)
    a, y = rng.normal(size=2000) + 50.0, rng.normal(size=2000)
    holes = pa.array([None if i < 500 else float(v) for i, v in enumerate(a)])
    pq.write_table(pa.table({"a": holes, "y": y}), tmp_path / "d.parquet")
    monkeypatch.setattr(parquet, "BATCH_ROWS", 500)  # the first batch: every row has a missing cell
    table = load(tmp_path, "data: {path: d.parquet, missing: drop}\n")
    assert len(table.y) == 1500
    assert table.moments is not None
    passed = _merged(np.asarray(table.x), np.asarray(table.y))
    np.testing.assert_allclose(table.moments.gram, passed.gram, rtol=1e-12)
    assert table.moments.y_mean == pytest.approx(passed.y_mean, rel=1e-12)
