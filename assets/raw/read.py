"""Read one landing file into Arrow without losing a row.

Every line (CSV, JSONL) or record (JSON array) becomes a row with its line number and its text
as it arrived; nothing is typed here. Lines the reader itself cannot split (a CSV row with the
wrong number of fields, an unreadable file) come back as rejects with the rule they broke.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from checks.raw import FileFormat


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
    except (OSError, EOFError, pa.ArrowInvalid, UnicodeDecodeError, ValueError) as exc:
        reject = Reject(0, "unreadable_file", f"{type(exc).__name__}: {exc}"[:500], None)
        return FileRows(rows=_no_rows(), fields=[], rejects=[reject])


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
        bad.append(Reject(row.number or 0, "field_count", detail, row.text))
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, use_threads=False),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            strings_can_be_null=False,  # keep "" as it arrived; typing treats it as missing
        ),
    )
    # Line numbers: data starts on line 2; rejected lines are skipped in the output order.
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
        read_options=pacsv.ReadOptions(column_names=["_payload"], block_size=1 << 24),
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
            rejects.append(Reject(i, "not_an_object", f"record is {type(record).__name__}", text))
            continue
        lines.append(i)
        payloads.append(text)
    rows = pa.table(
        {"_line": pa.array(lines, pa.int64()), "_payload": pa.array(payloads, pa.string())}
    )
    return FileRows(rows=rows, fields=[], rejects=rejects)
