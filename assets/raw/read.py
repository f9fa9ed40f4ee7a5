"""Read one landing file into Arrow without losing a row.

Every line (CSV, JSONL), record (JSON array) or row (parquet) becomes a row with its line
number and its text as it arrived (a parquet row: as a JSON object); nothing is typed here. Lines
the reader itself cannot split (a CSV row with the wrong number of fields) come back as rejects
with the rule they broke; a file it cannot read at all (not UTF-8, a broken gzip stream, JSON cut
short, another format than the object declares) is one reject at line 0 naming the rule and,
where it can, the line at fault. Any format may arrive gzipped (`<name>.gz`).
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
import pyarrow.parquet as pq

from checks.raw import (
    ENCODING,
    FIELD_COUNT,
    GZIP,
    JSON_SYNTAX,
    NOT_AN_OBJECT,
    PARQUET,
    UNREADABLE,
    CsvDialect,
    RawContract,
    wrong_format,
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


class WrongFormat(ValueError):
    """The file is plainly another format than the object declares."""


PARQUET_MAGIC = b"PAR1"
SNIFF_BYTES = 64 * 1024


def read_file(path: Path, contract: RawContract) -> FileRows:
    """The rows of one landing file of `contract`'s object, in its declared format."""
    if path.stat().st_size == 0:
        return FileRows(rows=_no_rows(), fields=[])
    fmt = contract.format
    try:
        _check_format(path, fmt, contract.csv)
        if fmt == "csv":
            return _read_csv(path, contract.csv, _headerless_names(contract))
        if fmt == "jsonl":
            return _read_jsonl(path)
        if fmt == "parquet":
            return _read_parquet(path)
        return _read_json_array(path, contract.records_path)
    except WrongFormat as exc:
        reject = Reject(0, wrong_format(fmt), str(exc)[:500], None)
        return FileRows(rows=_no_rows(), fields=[], rejects=[reject])
    except (OSError, EOFError, zlib.error, pa.ArrowInvalid, ValueError) as exc:
        rule, detail = _file_fault(path, exc, fmt)
        reject = Reject(0, rule, detail[:500], None)
        return FileRows(rows=_no_rows(), fields=[], rejects=[reject])


def _headerless_names(contract: RawContract) -> list[str]:
    """Field names of a CSV without a header row: the declared columns' sources, in order."""
    return [c.source_name for c in contract.columns if not c.name.startswith("_")]


def _head(path: Path) -> bytes:
    """The first bytes of the file's content (gunzipped): enough to tell its format."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            return fh.read(SNIFF_BYTES)
    with path.open("rb") as fh:
        return fh.read(SNIFF_BYTES)


def _check_format(path: Path, fmt: str, dialect: CsvDialect) -> None:
    """Refuse a file that is plainly another format than declared (a CSV export dropped where
    JSON is expected, a parquet file where CSV is), naming both, before any parser guesses."""
    head = _head(path)
    if fmt == "parquet":
        if head and not head.startswith(PARQUET_MAGIC):
            raise WrongFormat(
                f"expected a parquet file (it starts with {PARQUET_MAGIC!r}), found "
                f"{_looks_like(head, dialect)}"
            )
        return
    if head.startswith(PARQUET_MAGIC):
        raise WrongFormat(f"expected {_FORMAT_WORDS[fmt]}, found a parquet file")
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if not text or text[0] == "\ufffd":  # not UTF-8: the reader names the encoding rule
        return
    first = text[0]
    if fmt == "json_array" and first not in "[{":
        raise WrongFormat(
            f"expected {_FORMAT_WORDS[fmt]}, found {_looks_like(head, dialect)} "
            f"(it starts {text[:60]!r})"
        )
    if fmt == "jsonl":
        if first == "[":
            raise WrongFormat(
                "expected JSON Lines (one object per line), found a JSON array document"
            )
        lines = [ln.strip() for ln in text.splitlines()[:-1] if ln.strip()] or [text.strip()]
        if not any(ln.startswith("{") for ln in lines):
            raise WrongFormat(
                f"expected {_FORMAT_WORDS[fmt]}, found {_looks_like(head, dialect)} "
                f"(it starts {text[:60]!r})"
            )
    if fmt == "csv" and first in "[{":
        raise WrongFormat(f"expected {_FORMAT_WORDS[fmt]}, found JSON (it starts {text[:60]!r})")


_FORMAT_WORDS = {
    "csv": "a CSV file",
    "json_array": "a JSON array of records",
    "jsonl": "JSON Lines (one object per line)",
    "parquet": "a parquet file",
}


def _looks_like(head: bytes, dialect: CsvDialect) -> str:
    """What the file seems to be instead, in words."""
    if head.startswith(PARQUET_MAGIC):
        return "a parquet file"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text[:1] == "[":
        return "a JSON array document"
    if text[:1] == "{":
        return "JSON"
    first_line = text.split("\n", 1)[0]
    if any(d in first_line for d in {dialect.delimiter, ",", ";", "\t"}):
        return "delimited text (a CSV file?)"
    return "text that is neither"


def _file_fault(path: Path, exc: Exception, fmt: str = "") -> tuple[str, str]:
    """The file rule a reader error broke, and where in the file, in words."""
    text = f"{type(exc).__name__}: {exc}"
    if path.suffix == ".gz" and isinstance(exc, OSError | EOFError | zlib.error):
        return GZIP, f"the gzip stream is corrupt or cut short ({text})"
    if fmt == "parquet":
        return PARQUET, f"the parquet file cannot be read ({text})"
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


def _csv_args(dialect: CsvDialect) -> dict:
    """The dialect for Python's csv module."""
    return {
        "delimiter": dialect.delimiter,
        "quotechar": dialect.quote,
        "escapechar": dialect.escape,
        "quoting": csv.QUOTE_MINIMAL if dialect.quote else csv.QUOTE_NONE,
        "doublequote": dialect.escape is None,
    }


def _read_csv(path: Path, dialect: CsvDialect, names: list[str]) -> FileRows:
    if dialect.header:
        with _open_text(path) as fh:
            header = next(csv.reader([fh.readline()], **_csv_args(dialect)), [])
        header = [h.strip() for h in header]
    else:
        header = list(names)
    if not any(header):  # an empty file delivers no rows: nothing to type, nothing lost
        return FileRows(rows=_no_rows(), fields=[])
    if len(set(header)) != len(header):
        raise ValueError(f"duplicate column names in header: {header}")
    first = 2 if dialect.header else 1  # the line the data starts on
    bad: list[Reject] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        detail = f"expected {row.expected_columns} fields, found {row.actual_columns}"
        bad.append(Reject(row.number or 0, FIELD_COUNT, detail, row.text))
        return "skip"

    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(
            column_names=header,
            skip_rows=first - 1,
            use_threads=False,
            block_size=BLOCK_BYTES,
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=dialect.delimiter,
            quote_char=dialect.quote or False,
            escape_char=dialect.escape or False,
            double_quote=dialect.escape is None,
            invalid_row_handler=on_invalid,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            strings_can_be_null=False,  # keep "" as it arrived; typing treats it as missing
        ),
    )
    if table.num_rows + len(bad) != _data_lines(path, first - 1):
        # Blank lines or records spanning lines (a quoted newline, an unclosed quote): only a
        # record-by-record read knows on which line each record starts.
        return _read_csv_by_record(path, header, dialect)
    # One record per line: rejected lines are skipped in the output.
    skipped = {r.line for r in bad}
    lines, n = [], first
    while len(lines) < table.num_rows:
        if n not in skipped:
            lines.append(n)
        n += 1
    payload = _csv_payload(table)
    table = table.append_column("_line", pa.array(lines, pa.int64()))
    table = table.append_column("_payload", payload)
    return FileRows(rows=table, fields=header, rejects=bad)


def _data_lines(path: Path, header_lines: int = 1) -> int:
    """Lines after the header, the last one counted even without its newline."""
    opener = gzip.open if path.suffix == ".gz" else open
    lines, last = 0, b"\n"
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines - header_lines + (last != b"\n")


def _read_csv_by_record(path: Path, header: list[str], dialect: CsvDialect) -> FileRows:
    """The slow, exact reader: each record with the line it starts on, blank lines skipped. A
    record with the wrong field count that spans lines (an unclosed quote swallows the lines
    after it) is rejected line by line, so every line a person counts is accounted for."""
    physical: list[str] = []
    rows: list[list[str]] = []
    lines: list[int] = []
    bad: list[Reject] = []
    with _open_text(path) as fh:
        reader = csv.reader(_tap(fh, physical), **_csv_args(dialect))
        if dialect.header:
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


def _read_json_array(path: Path, records_path: str | None = None) -> FileRows:
    with _open_text(path) as fh:
        text = fh.read()
    if not text.strip():
        return FileRows(rows=_no_rows(), fields=[])
    data = json.loads(text)
    if records_path:
        for key in records_path.split("."):
            if not isinstance(data, dict) or key not in data:
                raise WrongFormat(
                    f"expected the records as an array under {records_path!r}: "
                    f"no key {key!r} in the document"
                )
            data = data[key]
        if not isinstance(data, list):
            raise WrongFormat(
                f"expected an array of records under {records_path!r}, found {type(data).__name__}"
            )
    elif isinstance(data, dict) and isinstance(data.get("records"), list):
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


def _read_parquet(path: Path) -> FileRows:
    """Each row as a JSON object (its `_payload`), numbered from 1; typed like JSON records."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            source: io.BytesIO | Path = io.BytesIO(fh.read())
    else:
        source = path
    pf = pq.ParquetFile(source)
    payloads: list[str] = []
    for batch in pf.iter_batches(batch_size=65_536):
        payloads += [
            json.dumps(r, ensure_ascii=False, default=_json_value) for r in batch.to_pylist()
        ]
    rows = pa.table(
        {
            "_line": pa.array(range(1, len(payloads) + 1), pa.int64()),
            "_payload": pa.array(payloads, pa.string()),
        }
    )
    return FileRows(rows=rows, fields=[])


def _json_value(value: object) -> object:
    """Parquet values JSON has no type for: times as ISO 8601, decimals and bytes as text."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
