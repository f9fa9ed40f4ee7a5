"""Read one landing file into Arrow without losing a row.

Every line (CSV, JSONL) or record (JSON array) becomes a row with its line number and its text
as it arrived; nothing is typed here. Lines the reader itself cannot split (a CSV row with the
wrong number of fields) come back as rejects with the rule they broke; a file it cannot read at
all (not UTF-8, a broken gzip stream, JSON cut short) is one reject at line 0 naming the rule
and, where it can, the line at fault.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from checks.raw import (
    ENCODING,
    FIELD_COUNT,
    GZIP,
    JSON_SYNTAX,
    NOT_AN_OBJECT,
    UNREADABLE,
    FileFormat,
)

BLOCK_BYTES = 1 << 24  # Arrow's parse block: a record (one line) longer than this is unreadable


@dataclass
class Reject:
    line: int  # 0 = the whole file
    rule: str
    detail: str
    payload: str | None


@dataclass
class FileRows:
    """Rows of one file: `_line`, `_payload` and, for CSV, one string column per header field."""

    rows: pa.Table
    fields: list[str]
    rejects: list[Reject] = field(default_factory=list)


def read_file(path: Path, fmt: FileFormat) -> FileRows:
    if path.stat().st_size == 0:
        return FileRows(rows=_no_rows(), fields=[])
    try:
        if fmt == "csv":
            return _read_csv(path)
        if fmt == "jsonl":
            return _read_jsonl(path)
        return _read_json_array(path)
    except (OSError, EOFError, zlib.error, pa.ArrowInvalid, ValueError) as exc:
        rule, detail = _file_fault(path, exc)
        reject = Reject(0, rule, detail[:500], None)
        return FileRows(rows=_no_rows(), fields=[], rejects=[reject])


def _file_fault(path: Path, exc: Exception) -> tuple[str, str]:
    """The file rule a reader error broke, and where in the file, in words."""
    text = f"{type(exc).__name__}: {exc}"
    if path.suffix == ".gz" and isinstance(exc, OSError | EOFError | zlib.error):
        return GZIP, f"the gzip stream is corrupt or cut short ({text})"
    if isinstance(exc, UnicodeDecodeError) or "UTF8" in str(exc):
        return ENCODING, _first_non_utf8(path) or text
    if isinstance(exc, json.JSONDecodeError):
        return JSON_SYNTAX, f"line {exc.lineno} column {exc.colno}: {exc.msg}"
    return UNREADABLE, text


def _first_non_utf8(path: Path) -> str | None:
    """Where a file stops being UTF-8: the line a person opens to see the wrong encoding."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            for n, line in enumerate(fh, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    byte = line[exc.start]
                    return (
                        f"line {n} is not UTF-8 (byte 0x{byte:02x} at column {exc.start + 1}):"
                        " the file must be UTF-8 encoded"
                    )
    except (OSError, EOFError, zlib.error):  # a broken stream too: the reader's error stands
        pass
    return None


def _no_rows() -> pa.Table:
    return pa.table({"_line": pa.array([], pa.int64()), "_payload": pa.array([], pa.string())})


def _open_text(path: Path) -> io.TextIOBase:
    """Text of a plain or gzip file; a UTF-8 byte-order mark is dropped."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _read_csv(path: Path) -> FileRows:
    with _open_text(path) as fh:
        header = next(csv.reader([fh.readline()]), [])
    header = [h.strip() for h in header]
    if not any(header):  # an empty file delivers no rows: nothing to type, nothing lost
        return FileRows(rows=_no_rows(), fields=[])
    if len(set(header)) != len(header):
        raise ValueError(f"duplicate column names in header: {header}")
    bad: list[Reject] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        detail = f"expected {row.expected_columns} fields, found {row.actual_columns}"
        bad.append(Reject(row.number or 0, FIELD_COUNT, detail, row.text))
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(
            column_names=header, skip_rows=1, use_threads=False, block_size=BLOCK_BYTES
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            strings_can_be_null=False,  # keep "" as it arrived; typing treats it as missing
        ),
    )
    if table.num_rows + len(bad) != _data_lines(path):
        # Blank lines or records spanning lines (a quoted newline, an unclosed quote): only a
        # record-by-record read knows on which line each record starts.
        return _read_csv_by_record(path, header)
    # One record per line: data starts on line 2; rejected lines are skipped in the output.
    skipped = {r.line for r in bad}
    lines, n = [], 2
    while len(lines) < table.num_rows:
        if n not in skipped:
            lines.append(n)
        n += 1
    payload = _csv_payload(table)
    table = table.append_column("_line", pa.array(lines, pa.int64()))
    table = table.append_column("_payload", payload)
    return FileRows(rows=table, fields=header, rejects=bad)


def _data_lines(path: Path) -> int:
    """Lines after the header, the last one counted even without its newline."""
    opener = gzip.open if path.suffix == ".gz" else open
    lines, last = 0, b"\n"
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines - 1 + (last != b"\n")


def _read_csv_by_record(path: Path, header: list[str]) -> FileRows:
    """The slow, exact reader: each record with the line it starts on, blank lines skipped. A
    record with the wrong field count that spans lines (an unclosed quote swallows the lines
    after it) is rejected line by line, so every line a person counts is accounted for."""
    physical: list[str] = []
    rows: list[list[str]] = []
    lines: list[int] = []
    bad: list[Reject] = []
    with _open_text(path) as fh:
        reader = csv.reader(_tap(fh, physical))
        next(reader)
        start = reader.line_num + 1
        for record in reader:
            end = reader.line_num
            if len(record) == len(header):
                rows.append(record)
                lines.append(start)
            elif end == start and record:
                detail = f"expected {len(header)} fields, found {len(record)}"
                bad.append(Reject(start, FIELD_COUNT, detail, physical[start - 1].rstrip("\r\n")))
            elif record:
                detail = (
                    f"expected {len(header)} fields, found {len(record)} in a record spanning "
                    f"lines {start}-{end} (an unclosed quote?)"
                )
                bad += [
                    Reject(n, FIELD_COUNT, detail, physical[n - 1].rstrip("\r\n"))
                    for n in range(start, end + 1)
                    if physical[n - 1].strip()
                ]
            start = end + 1
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(header)
    table = pa.table(
        {h: pa.array(col, pa.string()) for h, col in zip(header, columns, strict=True)}
    )
    payload = _csv_payload(table)
    table = table.append_column("_line", pa.array(lines, pa.int64()))
    table = table.append_column("_payload", payload)
    return FileRows(rows=table, fields=header, rejects=bad)


def _tap(lines: Iterator[str], seen: list[str]) -> Iterator[str]:
    for line in lines:
        seen.append(line)
        yield line


def _csv_payload(table: pa.Table) -> pa.Array:
    """The row as a JSON object of header -> text, exactly the strings that arrived."""
    if table.num_rows == 0:
        return pa.array([], pa.string())
    names = table.column_names
    cols = [c.to_pylist() for c in table.columns]
    return pa.array(
        [json.dumps(dict(zip(names, vals, strict=True))) for vals in zip(*cols, strict=True)],
        pa.string(),
    )


def _read_jsonl(path: Path) -> FileRows:
    """One row per line, read by Arrow's CSV reader with a delimiter that never occurs."""
    with _open_text(path) as fh:
        if not fh.read(4096).strip():
            return FileRows(rows=_no_rows(), fields=[])
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=["_payload"], block_size=BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(
            delimiter="\x1f", quote_char=False, escape_char=False, ignore_empty_lines=False
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={"_payload": pa.string()},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    lines = pa.array(range(1, table.num_rows + 1), pa.int64())
    table = table.append_column("_line", lines)
    # Blank lines carry no record: they are not rows.
    blank = pa.compute.equal(pa.compute.utf8_trim_whitespace(table["_payload"]), "")
    return FileRows(rows=table.filter(pa.compute.invert(blank)), fields=[])


def _read_json_array(path: Path) -> FileRows:
    with _open_text(path) as fh:
        text = fh.read()
    if not text.strip():
        return FileRows(rows=_no_rows(), fields=[])
    data = json.loads(text)
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        data = data["records"]
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON array of records, found {type(data).__name__}")
    rejects, lines, payloads = [], [], []
    for i, record in enumerate(data, start=1):
        text = json.dumps(record, ensure_ascii=False)
        if not isinstance(record, dict):
            rejects.append(Reject(i, NOT_AN_OBJECT, f"record is {type(record).__name__}", text))
            continue
        lines.append(i)
        payloads.append(text)
    rows = pa.table(
        {"_line": pa.array(lines, pa.int64()), "_payload": pa.array(payloads, pa.string())}
    )
    return FileRows(rows=rows, fields=[], rejects=rejects)
