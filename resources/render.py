"""Query results as text for people (aligned columns, Markdown) or for programs (CSV, JSON).

Text and Markdown are for reading: floats are shortened, times shown to the second, long cells
cut at `max_width`. CSV and JSON keep every value whole.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import math
from collections.abc import Sequence
from typing import Any, TextIO

FORMATS = ("text", "csv", "json", "markdown")
NULL = "NULL"


def cell(value: Any, max_width: int = 0) -> str:
    """One value as a person reads it."""
    if value is None:
        text = NULL
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = _float(value)
    elif isinstance(value, decimal.Decimal):
        text = f"{value.normalize():f}" if value.is_finite() else str(value)
    elif isinstance(value, dt.datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if value.utcoffset() == dt.timedelta(0):
            text += " UTC"
        elif value.tzinfo is not None:
            text += value.strftime(" %z")
    elif isinstance(value, dt.date):
        text = value.isoformat()
    elif isinstance(value, (list, dict)):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = str(value)
    text = " ".join(text.split()) if "\n" in text or "\t" in text else text
    if max_width and len(text) > max_width:
        text = text[: max_width - 1] + "…"
    return text


def _float(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if value != 0 and abs(value) < 1e-4:
        return f"{value:.3g}"
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)


def render(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str,
    out: TextIO,
    max_width: int = 0,
) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_plain(v) for v in row] for row in rows)
    elif fmt == "json":
        records = [dict(zip(columns, map(_jsonable, row), strict=True)) for row in rows]
        json.dump(records, out, ensure_ascii=False, indent=1, allow_nan=False)
        out.write("\n")
    elif fmt == "markdown":
        _markdown(columns, rows, out, max_width)
    elif fmt == "text":
        _text(columns, rows, out, max_width)
    else:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")


def _text(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO, width: int) -> None:
    cells = [[cell(v, width) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    right = [_right(rows, i) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out.write(line(columns) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row) + "\n")


def _markdown(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO, width: int
) -> None:
    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    out.write(line(columns) + "\n")
    out.write("|" + "|".join("---:" if _right(rows, i) else "---" for i in range(len(columns))))
    out.write("|\n")
    for row in rows:
        out.write(line([cell(v, width) for v in row]) + "\n")


def _right(rows: Sequence[Sequence[Any]], i: int) -> bool:
    return bool(rows) and all(_numeric(r[i]) or r[i] is None for r in rows)


def _plain(value: Any) -> Any:
    """CSV: empty for NULL, ISO-8601 times, everything else as Python writes it."""
    if value is None:
        return ""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime, dt.time, dt.timedelta)):
        return value.isoformat() if not isinstance(value, dt.timedelta) else str(value)
    if isinstance(value, decimal.Decimal):
        as_float = float(value)  # a number where it is exact, else the digits as text
        return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def record(pairs: Sequence[tuple[str, Any]], out: TextIO, width: int = 100) -> None:
    """A single row as `name  value` lines, two pairs a line when they fit in `width`."""
    if not pairs:
        out.write("  none\n")
        return
    label = max(len(k) for k, _ in pairs)
    items = [f"{k.ljust(label)}  {cell(v, width // 2 - label - 4)}" for k, v in pairs]
    half = (len(items) + 1) // 2
    left, right = items[:half], items[half:]
    col = max(len(i) for i in left) + 3
    if col + max((len(i) for i in right), default=0) > width:
        for item in items:
            out.write(f"  {item}\n")
        return
    for i, item in enumerate(left):
        other = right[i] if i < len(right) else ""
        out.write(f"  {item.ljust(col)}{other}".rstrip() + "\n")


def result(cursor: Any, fmt: str, out: TextIO, limit: int = 0, max_width: int = 0) -> bool:
    """Print a DuckDB cursor's result (nothing for a statement without one); `limit` rows at
    most (0: all). True when rows were left out."""
    if cursor is None or cursor.description is None:
        return False
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchmany(limit + 1) if limit else cursor.fetchall()
    more = bool(limit) and len(rows) > limit
    rows = rows[:limit] if limit else rows
    render(columns, rows, fmt, out, max_width)
    if fmt == "text":
        out.write(f"({len(rows):,}{'+' if more else ''} row{'' if len(rows) == 1 else 's'})\n")
    return more
