"""A CSV file's bytes: opened (decompressed, as its name says), its first line, a move to an offset, a buffer
filled, quote characters counted. What the CSV reader (lrtrain.sources.delimited) and the table scorer
(lrtrain.scoring) read a text file with, each problem said as a DataError that names the file."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lrtrain.errors import DataError
from lrtrain.sources.cuts import LINE_BYTES

COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}  # by the file name's last suffix
HEADER_BYTES = 1 << 16  # the first line is read in pieces of this size
READ_BYTES = 8 << 20  # bytes read at a time when a file is skipped or counted through


def open_bytes(path: Path, compression: str | None) -> io.RawIOBase:
    """The file's bytes, decompressed as its name says."""
    if compression is None:
        return path.open("rb", buffering=0)
    import pyarrow as pa

    stream: io.RawIOBase = pa.input_stream(str(path), compression=compression)  # the same methods
    return stream


def open_counted(path: Path, compression: str) -> tuple[io.RawIOBase, Callable[[], int]]:
    """The compressed file's bytes, decompressed, and a function that tells how many bytes of the file itself
    the decompressor has read so far: in whole blocks (64 KB), so that processes which read the same file
    alike see the same counts at the same places."""
    import pyarrow as pa

    raw = pa.OSFile(str(path))
    stream: io.RawIOBase = pa.CompressedInputStream(raw, compression)  # closes `raw` when closed
    return stream, raw.tell


def records(path: Path, compression: str | None, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(the file line each data record begins on, its fields), after the header, as pyarrow reads records: an
    empty line is none, a line end inside a quoted cell continues one. Python's csv module reads them, from the
    start: only a message needs them. A file it cannot read, or a field past its size limit, ends them."""
    with contextlib.suppress(OSError, csv.Error), io.BufferedReader(open_bytes(path, compression)) as stream:
        reader = csv.reader(
            io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline=""), delimiter=delimiter
        )
        next(reader, None)  # the header
        before = reader.line_num
        for row in reader:
            if row:
                yield before + 1, row
            before = reader.line_num


def opening_line(path: Path, compression: str | None) -> bytes:
    """Line 1 with its line end, as bytes ('' for an empty file)."""
    try:
        with open_bytes(path, compression) as stream:
            return line_one(stream, path)
    except OSError as exc:
        raise unreadable(path, compression, exc) from None


def line_one(stream: Any, path: Path) -> bytes:
    """Line 1 of `stream` with its line end (a file of one line may have none), read piece by piece and no further
    than LINE_BYTES: a longer line (a file without line ends, a device), or lines ended by a carriage return
    alone, is a DataError."""
    pieces: list[bytes] = []
    size = 0
    while piece := stream.read(HEADER_BYTES):
        end = piece.find(b"\n")
        if end >= 0:
            pieces.append(piece[: end + 1])
            break
        pieces.append(piece)
        size += len(piece)
        if size > LINE_BYTES:
            break
    line = b"".join(pieces)
    _not_text(line, path)
    text = line.removesuffix(b"\n").removesuffix(b"\r")
    if b"\r" in text and b'"' not in text:  # a carriage return that ends no line end: a line end of its own
        raise DataError(
            f"data file {path} ends its lines with a carriage return alone (\\r, as old Mac programs wrote CSV); "
            "lrtrain reads lines that end in \\n or \\r\\n. Convert it, e.g. tr '\\r' '\\n' < FILE > NEW.csv."
        )
    if size > LINE_BYTES:
        raise DataError(
            f"data file {path}: line 1 goes on past {LINE_BYTES:,} bytes without a line end, longer than any "
            "CSV line lrtrain can parse. Is it a CSV file (one row per line)?"
        )
    return line


# the first bytes of files that are not CSV text, what each is, and the suffix that says so
SIGNATURES = (
    (b"\x1f\x8b", "gzip-compressed", ".gz"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", ".zst"),
    (b"PAR1", "a Parquet file", ".parquet"),
    (b"PK\x03\x04", "a zip archive (a spreadsheet workbook, say)", None),
)


def _not_text(line: bytes, path: Path) -> None:
    """A DataError for a first line that shows the file is not CSV text: compressed, Parquet, a zip, or UTF-16
    (Excel's "Unicode text"), whose every other byte is a NUL, so that it was read as one odd column."""
    kind, suffix = next(((k, s) for magic, k, s in SIGNATURES if line.startswith(magic)), (None, None))
    if kind is None and line.startswith(b"BZh") and line[4:10] == b"1AY&SY":
        kind, suffix = "bzip2-compressed", ".bz2"
    if kind is not None:
        fix = (
            f"name it {path.name}{suffix} (lrtrain reads a file's format from its name)"
            if suffix
            else ("save it as CSV (UTF-8) and point at that")
        )
        raise DataError(f"data file {path} is {kind}, not CSV text: {fix}.")
    nuls = line.count(b"\x00")
    if nuls and not line.startswith((b"\xff\xfe", b"\xfe\xff")) and nuls * 4 < len(line):
        raise DataError(
            f"data file {path}: line 1 holds a NUL byte, which no column name has (is the file binary, or cut "
            "from another?). Remove it, or export the table again."
        )
    if nuls or line.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(
            f"data file {path} is not UTF-8 text: its first line holds NUL bytes, as UTF-16 text does (Excel's "
            "'Unicode Text', PowerShell's default). Save it as UTF-8 CSV, e.g. iconv -f UTF-16 -t UTF-8 FILE > NEW.csv."
        )


def header_cells(text: str, delimiter: str, path: Path) -> list[str]:
    """The fields of line 1; one past the csv module's limit (an unclosed quote, say) is a DataError."""
    try:
        return next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error:
        raise DataError(
            f"data file {path}: a field of line 1 is longer than {csv.field_size_limit():,} characters, too long "
            "for a column name or a number (an unclosed quote joins what follows into one field). Check that line."
        ) from None


def unreadable(path: Path, compression: str | None, exc: Exception) -> DataError:
    if compression is None:
        return DataError(f"cannot read data file {path}: {getattr(exc, 'strerror', None) or exc}. Check it.")
    return DataError(
        f"data file {path} cannot be decompressed as {compression} ({str(exc).splitlines()[0]}). The name ends in "
        f"{path.suffix}: is the file really {compression}-compressed CSV? Rename or recompress it."
    )


def unclosed(path: Path, line: int) -> str:
    """A quoted cell that never closes, opened on file line `line`, in words (each reading of a CSV says it alike)."""
    return (
        f"data file {path}, line {line}: a quote at the start of a cell there opens a quoted cell that does not "
        "close (it runs on over the lines after it, longer than any cell lrtrain reads): is its closing quote "
        "missing? Check the quotes on that line."
    )


def span_quotes(path: Path, start: int, stop: int) -> int:
    """The quote characters in bytes start..stop of the file (as many as it lets be read: a failure to read is
    already the problem the share reports)."""
    quotes = 0
    with contextlib.suppress(OSError), path.open("rb") as handle:
        handle.seek(start)
        while start < stop and (piece := handle.read(min(READ_BYTES, stop - start))):
            quotes += piece.count(b'"') if b'"' in piece else 0
            start += len(piece)
    return quotes


def skip_to(stream: io.IOBase, offset: int, compression: str | None) -> None:
    """Move `stream` to byte `offset` of the (decompressed) file: a seek, or a read when it is compressed."""
    if compression is None:
        stream.seek(offset)
        return
    while offset > 0 and (piece := stream.read(min(offset, READ_BYTES))):
        offset -= len(piece)


def fill(stream: io.RawIOBase, into: memoryview) -> int:
    """Read until `into` is full or the stream ends; the bytes read."""
    done = 0
    while done < len(into) and (got := stream.readinto(into[done:])):
        done += got
    return done


EMPTY_LINE = re.compile(rb"^\r?\n", re.MULTILINE)  # a line pyarrow skips (ignore_empty_lines)


def quoted_rows(data: Any, start: int, end: int) -> int | None:
    """The non-empty lines of data[start:end] (`start` a line's start), which a parse that reads each line end as
    a row's end must turn into as many rows, when the text holds a quote character; None when it holds none
    (without quotes, lines and rows cannot part). `data`: a bytearray or an mmap."""
    if data.find(b'"', start, end) < 0:
        return None
    ends = sum(bytes(data[at : min(at + READ_BYTES, end)]).count(b"\n") for at in range(start, end, READ_BYTES))
    empty = sum(1 for _ in EMPTY_LINE.finditer(data, start, end))
    last = data.rfind(b"\n", start, end)  # a last line without its line end is a row too
    return ends - empty + int(end > last + 1 and bool(bytes(data[last + 1 : end]).strip(b"\r")))


def quote_count(data: bytearray, end: int) -> int:
    """The quote characters in data[:end]: counted (2 ms for 8 MB) only when a search (memchr, 0.1 ms) finds one."""
    return data.count(b'"', 0, end) if data.find(b'"', 0, end) >= 0 else 0
