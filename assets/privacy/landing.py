"""Erasing subjects from files: the landing extracts (raw payloads as delivered) and any other
text file under the lake (review decisions, Data Docs pages), then the ingest log.

A landing extract follows its raw table's contract: in a personal-record table's extract a
record naming the person is deleted (only when its `subject_key` field is theirs, if it has
one), elsewhere it stays with the person scrubbed; a text file that is no extract is a list
about people, and a line naming the person goes. A rewritten extract keeps the rows it gave
the lake: the ingest log learns its new content hash (so nothing is ingested twice), and those
rows in its raw table and the quarantine name the new content.

The landing zone is a folder on this machine's disk in every profile (`LandingResource`); the
lake's own files are read and written through `LakeResource.files()`, on disk or object store.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from assets.privacy.match import Needles
from assets.privacy.reach import NOT_SCANNED
from assets.privacy.tables import ERASURE_COMMIT
from checks.raw import RawContract
from checks.sources import raw_contracts
from resources.lake import LakeResource
from resources.lake_files import LakeFiles
from resources.sql import ident, literal

TEXT_SUFFIXES = (".csv", ".json", ".jsonl", ".ndjson", ".txt", ".html")
LANDING, LAKE = "landing", "lake"
_SHA = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileRewrite:
    place: str  # LANDING or LAKE
    relative: str  # path under that root
    deleted: int
    redacted: int
    sha256: str
    size: int
    mtime_ns: int


# -- one file ------------------------------------------------------------------------------------
def _text(data: bytes, name: str) -> tuple[str, str]:
    """A file's text and its encoding. A file the raw layer rejected is still searched: a
    damaged gzip as far as it decompresses, text that is not UTF-8 as Latin-1 (which maps
    every byte, so a rewrite keeps the other bytes as they were)."""
    if name.endswith(".gz"):
        data = _gunzip(data)
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _gunzip(data: bytes) -> bytes:
    """What a gzip file decompresses to, up to the first damage."""
    out, stream = [], zlib.decompressobj(wbits=31)
    for start in range(0, len(data), 1 << 16):
        try:
            out.append(stream.decompress(data[start : start + (1 << 16)]))
        except zlib.error:
            break
    return b"".join(out)


def _records(kind: str, text: str) -> tuple[list, Callable[[list], str]]:
    """A file's records and how to write them back in the same format. Text that does not
    parse (a truncated JSON line, which the raw layer quarantined) is kept as a line of text:
    it is searched and erased like any other line, never a reason to stop."""
    if kind == ".json":
        try:
            data = json.loads(text)
        except ValueError:
            return _lines(text)
        if isinstance(data, list):
            return data, lambda rs: "[\n" + ",\n".join(json.dumps(r) for r in rs) + "\n]\n"
        return [data], lambda rs: json.dumps(rs[0] if rs else {}, indent=2) + "\n"
    if kind in (".jsonl", ".ndjson"):
        lines = [_json_or_text(line) for line in text.splitlines(keepends=True) if line.strip()]
        return lines, lambda rs: "".join(
            r if isinstance(r, str) else json.dumps(r) + "\n" for r in rs
        )
    if kind == ".csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, body = (rows[0], rows[1:]) if rows else ([], [])

        def write(rs: list) -> str:
            out = io.StringIO(newline="")
            w = csv.writer(out, lineterminator="\n")
            w.writerow(header)
            w.writerows(rs)
            return out.getvalue()

        return body, write
    return _lines(text)


def _lines(text: str) -> tuple[list, Callable[[list], str]]:
    return text.splitlines(keepends=True), lambda rs: "".join(rs)


def _json_or_text(line: str) -> object:
    """A JSON Lines record (an object or array), or the line as text when it is none."""
    try:
        value = json.loads(line)
    except ValueError:
        value = None
    if isinstance(value, dict | list):
        return value
    return line if line.endswith("\n") else line + "\n"


def rewrite_text(
    data: bytes, name: str, needles: Needles, own: bool, key: str | None = None
) -> tuple[bytes, int, int] | None:
    """A file's new content with the records naming a subject removed (`own`: the file holds
    people's own records) or scrubbed (everything else), and the counts; None when it names
    nobody. With `key` (the field holding a record's id), only the subjects' own records are
    removed. `name` gives the format (.json, .jsonl, .csv, plain text; .gz compressed)."""
    text, encoding = _text(data, name)
    if not needles.found_in(text):
        return None
    kind = Path(name.removesuffix(".gz")).suffix
    records, write = _records(kind, text)
    header = next(csv.reader(io.StringIO(text, newline="")), []) if kind == ".csv" else []

    def theirs(r: object) -> bool:
        if key is None or isinstance(r, str):
            return True
        if isinstance(r, dict):
            return needles.names_record(r.get(key))
        return key in header and needles.names_record(r[header.index(key)])

    kept, deleted, redacted = [], 0, 0
    for r in records:
        flat = r if isinstance(r, str) else json.dumps(r)
        if not needles.found_in(flat):
            kept.append(r)
            continue
        if own and theirs(r):
            deleted += 1
            continue
        redacted += 1
        if kind == ".csv":
            kept.append([(needles.redact(v) or "") if v else v for v in r])
        elif isinstance(r, str):  # a line of plain text
            kept.append(needles.redact(r) or "\n")
        else:
            kept.append(needles.redact(r))
    out = write(kept).encode(encoding)
    if name.endswith(".gz"):
        out = gzip.compress(out, mtime=0)
    return out, deleted, redacted


def is_text_file(name: str) -> bool:
    return name.removesuffix(".gz").endswith(TEXT_SUFFIXES)


def landing_contract(relative: str) -> RawContract | None:
    """The raw table a landing file feeds (`<landing folder>/<date>/<file>`)."""
    parts = tuple(relative.split("/"))
    return next(
        (c for c in raw_contracts() if parts[: len(c.landing_parts)] == c.landing_parts), None
    )


def _rule(contract: RawContract | None) -> tuple[bool, str | None]:
    """(own, key field in the file) for a landing file of this raw table; a file that is no
    extract is a list about people (own, no key)."""
    if contract is None:
        return True, None
    if not contract.personal_record or contract.subject_key is None:
        return contract.personal_record, None
    column = next(c for c in contract.columns if c.name == contract.subject_key)
    return True, column.source_name


# -- every file ----------------------------------------------------------------------------------
def _places(lake: LakeResource, landing_root: str) -> Iterator[tuple[str, LakeFiles, list[str]]]:
    """(place, files, relative paths) of the text files to search: the landing zone, then the
    lake's files outside its tables (and outside the landing zone, when that lies inside)."""
    landing = LakeFiles(str(Path(landing_root).resolve()), None, local=True)
    yield LANDING, landing, [p for p in landing.walk() if is_text_file(p)]
    files = lake.files()
    inside = ""
    if files.local and Path(landing.root).is_relative_to(Path(files.root).resolve()):
        inside = Path(landing.root).relative_to(Path(files.root).resolve()).as_posix() + "/"
    paths = [
        p
        for p in files.walk(skip=NOT_SCANNED)
        if is_text_file(p) and not (inside and p.startswith(inside))
    ]
    yield LAKE, files, paths


def rewrite_files(lake: LakeResource, landing_root: str, needles: Needles) -> list[FileRewrite]:
    """Rewrite every text file naming a subject; returns what was rewritten."""
    done: list[FileRewrite] = []
    for place, files, paths in _places(lake, landing_root):
        for relative in paths:
            own, key = _rule(landing_contract(relative) if place == LANDING else None)
            result = rewrite_text(files.read(relative), relative, needles, own, key)
            if result is None:
                continue
            data, deleted, redacted = result
            files.write(relative, data)
            size, mtime_ns = files.stat(relative)
            sha = hashlib.sha256(data).hexdigest()
            done.append(FileRewrite(place, relative, deleted, redacted, sha, size, mtime_ns))
    return done


def files_naming(lake: LakeResource, landing_root: str, needles: Needles) -> list[str]:
    """The text files that still name a subject (the rescan after an erasure)."""
    return [
        f"{place}:{p}"
        for place, files, paths in _places(lake, landing_root)
        for p in paths
        if needles.found_in(_text(files.read(p), p)[0])
    ]


# -- the ingest log ------------------------------------------------------------------------------
def _rename_content(
    con: duckdb.DuckDBPyConnection, lake: LakeResource, table: str, old: str, new: str
) -> None:
    """A rewritten file's rows carry its new content hash, in its raw table and the quarantine:
    the log, the rows and the file in landing keep naming one content (a later version of the
    file supersedes exactly these rows). Written as `erase_table` writes, not by delta-rs's
    UPDATE: that writes string_view Parquet columns, which pyarrow then cannot compare with a
    string in a filter (a later request by subject_ref failed on the consent table)."""
    if not (_SHA.fullmatch(old) and _SHA.fullmatch(new)):
        raise ValueError(f"not content hashes: {old!r}, {new!r}")
    for name, column, scope in (
        (table, "_file_sha256", "true"),
        ("quarantine", "file_sha256", f"table_name = {literal(table)}"),
    ):
        if not lake.exists("raw", name):
            continue
        dt = lake.table("raw", name)
        names = pa.schema(dt.schema().to_arrow()).names
        con.register("t", dt.to_pyarrow_dataset())
        # A regex, not `=`: DuckDB would push a comparison into the Arrow scan, which fails on
        # the string_view columns an earlier UPDATE may have left.
        select = ", ".join(
            f"CASE WHEN {scope} THEN {literal(new)} ELSE {ident(c)} END AS {ident(c)}"
            if c == column
            else ident(c)
            for c in names
        )
        data = con.sql(
            f"SELECT {select} FROM t WHERE regexp_full_match({ident(column)}, "
            f"{literal(old + '|' + new)})"
        ).to_arrow_table()
        if data.num_rows:
            lake.replace(
                "raw",
                name,
                data,
                predicate=f"{ident(column)} IN ({literal(old)}, {literal(new)})",
                commit_metadata=ERASURE_COMMIT,
            )


def update_ingest_log(
    con: duckdb.DuckDBPyConnection, lake: LakeResource, rewrites: list[FileRewrite]
) -> int:
    """The rewritten landing files are the ones already ingested: record their new identity."""
    rows = [
        {
            "table_name": c.table,
            "source_file": r.relative,
            "file_sha256": r.sha256,
            "file_bytes": r.size,
            "file_mtime_ns": r.mtime_ns,
        }
        for r in rewrites
        if r.place == LANDING and (c := landing_contract(r.relative))
    ]
    if not rows or not lake.exists("raw", "ingest_log"):
        return 0
    dt = lake.table("raw", "ingest_log")
    schema = pa.schema(dt.schema().to_arrow())
    con.register("t", dt.to_pyarrow_dataset())
    con.register("s", pa.Table.from_pylist(rows))
    # Only a path's latest decision names its current content; earlier versions keep theirs,
    # and a later version that superseded the old content now supersedes the new one.
    order = (
        "coalesce(seq, 0) DESC, ingested_at DESC" if "seq" in schema.names else "ingested_at DESC"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE t_now AS SELECT *, row_number() OVER (
            PARTITION BY table_name, source_file ORDER BY {order}) = 1 AS _latest FROM t"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE renamed AS SELECT n.table_name, n.file_sha256 AS old,
            min(s.file_sha256) AS new FROM t_now n JOIN s USING (table_name, source_file)
            WHERE n._latest AND n.file_sha256 <> s.file_sha256 GROUP BY ALL"""
    )
    for table, old, new in con.sql("SELECT * FROM renamed ORDER BY ALL").fetchall():
        _rename_content(con, lake, table, old, new)
    changed = ("file_sha256", "file_bytes", "file_mtime_ns")

    def column(name: str) -> str:
        q = ident(name)
        if name in changed:
            return f"CASE WHEN t._latest THEN coalesce(s.{q}, t.{q}) ELSE t.{q} END AS {q}"
        if name == "supersedes":
            return f"coalesce(r.new, t.{q}) AS {q}"
        return f"t.{q}"

    select = ", ".join(column(f.name) for f in schema)
    sup = (
        "LEFT JOIN renamed r ON r.table_name = t.table_name AND r.old = t.supersedes"
        if "supersedes" in schema.names
        else ""
    )
    data = con.sql(
        f"SELECT {select} FROM t_now t LEFT JOIN s USING (table_name, source_file) {sup}"
    ).to_arrow_table()
    lake.replace("raw", "ingest_log", data, commit_metadata=ERASURE_COMMIT)
    return len(rows)
