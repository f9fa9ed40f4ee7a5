"""Ingest landing files into a raw table: find what is new, type and rule-check it, commit it.

A file's identity is its content hash, kept in `raw/ingest_log`, so a file is ingested once even
when delivered again under another name; new content under a path already ingested is a new
version of that file, whose rows supersede the old version's for the layers above
(`assets/raw/versions.py`). Every decision about a landing entry (ingested, replaced, duplicate,
rejected, ignored, refused) is a row of the log.

Each commit is idempotent on its own target (quarantine, raw, log, in that order) and
exactly-once against a concurrent writer (a Delta transaction id), so a run killed between two
commits finishes cleanly when re-run, and two runs of the same files publish them once.

Typed rows are staged as Parquet files outside the lake while the batch is typed and gated, and
streamed into one Delta commit: a two-year backlog (10M events) never sits in memory at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from assets.raw.read import FileRows, Reject, read_file
from assets.raw.versions import LogState, log_columns, log_filter, log_rows
from checks.contract import SQL_TYPES, Column, TableContract
from checks.gate import GateResult, validate
from checks.raw import (
    DUPLICATE,
    INGEST_LOG,
    INGESTED,
    INVALID_JSON,
    LINEAGE,
    QUARANTINE,
    REJECTED,
    REPLACED,
    RawContract,
)
from resources.lake import Claim, LakeResource, Published, SchemaChangeError, WriteConflict
from resources.landing import LandingFile, LandingResource, Skipped
from resources.sql import ident, in_list, literal

# Minimum number of values in one file before "every value fails the cast" counts as a type
# change of the whole column (an error) rather than a few bad rows (quarantine).
TYPE_CHANGE_MIN_VALUES = 3
CHUNK_ROWS = 250_000  # rows typed per DuckDB pass (one staged Parquet file each)
GATE_ROWS = 1_000_000  # rows handed to the GX suite at a time
EARLIEST = dt.date(1970, 1, 1)  # a business date before it is a broken value, not history
# A date that may lie in the future (a period end, a close date) still lies before this one:
# later is a placeholder ('infinity', 9999-12-31), not a date.
LATEST_FUTURE = "DATE '2200-01-01'"
# Undeclared (drift) date columns: any date Python and Arrow can hold, and no infinity.
DRIFT_RANGE = ("DATE '0001-01-01'", "DATE '9999-12-31'")
COMMIT_ATTEMPTS = 5  # a lost race re-reads and finds the winner's rows; more would be a bug
ARROW_OF_SQL = {
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
    "VARCHAR": pa.string(),
}


@dataclass(frozen=True)
class Pending:
    file: LandingFile
    sha256: str
    duplicate_of: str | None = None  # same content already ingested: logged, not re-ingested
    supersedes: str | None = None  # the content this path held until now
    duplicate_decision: str = DUPLICATE  # REJECTED when the earlier copy was rejected whole


@dataclass
class Found:
    """What a scan of the landing zone found that the log has not decided yet."""

    pending: list[Pending] = field(default_factory=list)  # regular files: read or duplicates
    skipped: list[Skipped] = field(default_factory=list)  # ignored or refused, never opened


@dataclass
class FileCounts:
    read: int = 0
    published: int = 0
    quarantined: int = 0


@dataclass
class Batch:
    """A typed, rule-checked batch: rows staged on disk, quarantine in memory (small)."""

    contract: RawContract
    pending: list[Pending]
    staged: list[Path]  # typed rows, one Parquet file per typing pass
    schema: pa.Schema  # of the staged rows (contract columns + drift columns)
    quarantine: pa.Table
    ingested_at: dt.datetime
    counts: dict[str, FileCounts] = field(default_factory=dict)
    extras: dict[str, str] = field(default_factory=dict)  # drift columns absorbed: name -> type
    head: pa.Table | None = None  # first rows, for the preview
    skipped: list[Skipped] = field(default_factory=list)
    rejected_whole: set[str] = field(default_factory=set)  # files quarantined whole (line 0)
    deferred: list[str] = field(default_factory=list)  # changed while read: left for next run

    @property
    def refused(self) -> list[Skipped]:
        return [s for s in self.skipped if s.decision == "refused"]

    def refused_rows(self) -> pa.Table:
        """One quarantine row (line 0) per refused entry: outside the gate's share, since no
        row of it was read, but never without a word."""
        return pa.Table.from_pylist(
            [
                {
                    "table_name": self.contract.table,
                    "source_file": s.relative,
                    "line": 0,
                    "rule": s.rule,
                    "detail": s.reason,
                    "payload": None,
                    "file_sha256": s.identity(),
                    "extract_date": s.extract_date,
                    "quarantined_at": self.ingested_at,
                }
                for s in self.refused
            ],
            QUARANTINE.schema,
        )

    def quarantined(self) -> pa.Table:
        """Every quarantine row of the batch: rejected rows and refused entries."""
        return pa.concat_tables([self.quarantine, self.refused_rows()])

    def decision(self, p: Pending) -> str:
        if p.duplicate_of:
            return p.duplicate_decision
        if p.file.relative in self.rejected_whole:
            return REJECTED
        return REPLACED if p.supersedes else INGESTED

    @property
    def fresh(self) -> list[Pending]:
        """The files whose rows this batch publishes (re-deliveries are only logged)."""
        return [p for p in self.pending if not p.duplicate_of]

    @property
    def rows_read(self) -> int:
        return sum(c.read for c in self.counts.values())

    @property
    def rows_published(self) -> int:
        return sum(c.published for c in self.counts.values())

    @property
    def quarantine_share(self) -> float:
        return self.quarantine.num_rows / self.rows_read if self.rows_read else 0.0

    def summary(self) -> dict[str, float | int]:
        return {
            "files": len(self.fresh),
            "duplicate_files": len(self.pending) - len(self.fresh),
            "replaced_files": sum(1 for p in self.fresh if p.supersedes),
            "entries_ignored": len(self.skipped) - len(self.refused),
            "entries_refused": len(self.refused),
            "files_deferred": len(self.deferred),
            "rows_read": self.rows_read,
            "rows_published": self.rows_published,
            "rows_quarantined": self.quarantine.num_rows,
            "quarantine_share": round(self.quarantine_share, 6),
        }

    def dataset(self) -> pads.Dataset:
        return pads.dataset([str(p) for p in self.staged], schema=self.schema, format="parquet")

    def chunks(self, rows: int = GATE_ROWS) -> Iterator[pa.Table]:
        """The staged rows, `rows` at a time (whole staged files: a file never splits)."""
        if not self.staged:
            yield self.schema.empty_table()
            return
        part: list[pa.Table] = []
        for path in self.staged:
            part.append(pq.read_table(path, schema=self.schema))
            if sum(t.num_rows for t in part) >= rows:
                yield pa.concat_tables(part)
                part = []
        if part:
            yield pa.concat_tables(part)


# -- what is new ---------------------------------------------------------------------------------
def find_pending(contract: RawContract, landing: LandingResource, lake: LakeResource) -> Found:
    """Landing entries the log has not decided in their present form. Every file is hashed:
    its content, not its size or time, says whether it is new (an edit that keeps both is a new
    version all the same)."""
    state = LogState.of(log_rows(lake, contract.table))
    scan = landing.scan(contract.source, contract.object)
    found = Found()
    batch_first: dict[str, str] = {}  # content -> first path in this batch
    for f in scan.files:
        sha = f.sha256()
        last = state.latest.get(f.relative)
        if last is not None and last.sha256 == sha:
            continue  # decided before, unchanged since
        current = state.effective.get(f.relative)
        supersedes = current if current != sha else None
        earlier = state.first.get(sha)
        if earlier is not None:
            rejected = earlier.decision == REJECTED
            found.pending.append(
                Pending(
                    f,
                    sha,
                    duplicate_of=earlier.source_file,
                    supersedes=None if rejected else supersedes,
                    duplicate_decision=REJECTED if rejected else DUPLICATE,
                )
            )
        elif sha in batch_first:
            found.pending.append(
                Pending(f, sha, duplicate_of=batch_first[sha], supersedes=supersedes)
            )
        else:
            found.pending.append(Pending(f, sha, supersedes=supersedes))
            batch_first[sha] = f.relative
    for skipped in scan.skipped:
        last = state.latest.get(skipped.relative)
        if last is None or last.sha256 != skipped.identity():
            found.skipped.append(skipped)
    return found


# -- typing and rules ----------------------------------------------------------------------------
def build_batch(
    contract: RawContract,
    found: Found,
    lake: LakeResource,
    con: duckdb.DuckDBPyConnection,
    stage: Path,
    latest: dt.datetime | None = None,
) -> Batch:
    """Type and rule-check every pending file; typed rows go to Parquet files under `stage`.
    `latest` is the latest moment a timestamp may name (the clock plus a tolerance)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    latest = latest or now
    pending = found.pending
    rejected_whole: set[str] = set()
    counts: dict[str, FileCounts] = {p.file.relative: FileCounts() for p in pending}
    schema = _existing_schema(lake, contract)
    staged: list[Path] = []
    quarantined_parts: list[pa.Table] = [_empty_quarantine()]
    extras: dict[str, str] = {}
    rejects: list[dict] = []
    parts: list[pa.Table] = []
    header_fields: list[str] = []
    head: pa.Table | None = None
    out_schema: pa.Schema | None = None

    def flush() -> None:
        """Type one chunk of files and stage it: memory stays bounded whatever the backlog."""
        nonlocal schema, head, out_schema
        if not parts:
            return
        source = pa.concat_tables(parts, promote_options="default")
        parts.clear()
        typed, quarantined, new = _type_and_check(
            contract, source, header_fields, schema, now, latest, con
        )
        del source
        quarantined_parts.append(quarantined)
        extras.update(new)
        schema = _merge(schema, typed.schema)
        out_schema = _merge(out_schema, typed.schema)
        for file, n in _count_by_file(typed, "_source_file").items():
            counts[file].published += n
        if typed.num_rows:
            path = stage / f"part-{len(staged):05d}.parquet"
            pq.write_table(typed, path)
            staged.append(path)
            if head is None:  # a copy: a slice would keep the whole chunk alive
                head = typed.take(pa.array(range(min(10, typed.num_rows))))

    fresh = [p for p in pending if not p.duplicate_of]
    deferred: set[str] = set()
    for p in fresh:
        if not p.file.unchanged():
            deferred.add(p.file.relative)
            continue
        got: FileRows = read_file(p.file.path, contract)
        if not p.file.unchanged():  # written to while being read: its rows are not its hash's
            deferred.add(p.file.relative)
            continue
        counts[p.file.relative].read = got.rows.num_rows + len(got.rejects)
        rejects += [_reject_row(contract, p, r, now) for r in got.rejects]
        if any(r.line == 0 for r in got.rejects):
            rejected_whole.add(p.file.relative)
        header_fields += [f for f in got.fields if f not in header_fields]
        if got.rows.num_rows:
            parts.append(_with_lineage(got.rows, p))
        if sum(t.num_rows for t in parts) >= CHUNK_ROWS:
            flush()
    flush()
    if rejects:
        quarantined_parts.append(pa.Table.from_pylist(rejects, QUARANTINE.schema))
    # A file that changed since it was hashed waits for the next run, and so do its copies.
    pending = [p for p in pending if not ({p.file.relative, p.duplicate_of} & deferred)]
    quarantined = pa.concat_tables(quarantined_parts)
    for file, n in _count_by_file(quarantined, "source_file").items():
        counts[file].quarantined = n
    return Batch(
        contract,
        pending,
        staged,
        out_schema or _empty(contract).schema,
        quarantined,
        now,
        counts,
        extras,
        head,
        found.skipped,
        rejected_whole,
        sorted(deferred),
    )


def _merge(schema: pa.Schema | None, more: pa.Schema) -> pa.Schema:
    """Columns seen so far: later chunks must keep the types earlier ones settled."""
    if schema is None:
        return more
    return pa.schema([*schema, *(f for f in more if f.name not in schema.names)])


def _with_lineage(rows: pa.Table, p: Pending) -> pa.Table:
    n = rows.num_rows
    return (
        rows.append_column("_source_file", pa.array([p.file.relative] * n, pa.string()))
        .append_column("_file_sha256", pa.array([p.sha256] * n, pa.string()))
        .append_column("_extract_date", pa.array([p.file.extract_date] * n, pa.date32()))
    )


def _reject_row(contract: RawContract, p: Pending, r: Reject, now: dt.datetime) -> dict:
    return {
        "table_name": contract.table,
        "source_file": p.file.relative,
        "line": r.line,
        "rule": r.rule,
        "detail": r.detail,
        "payload": r.payload,
        "file_sha256": p.sha256,
        "extract_date": p.file.extract_date,
        "quarantined_at": now,
    }


def _existing_schema(lake: LakeResource, contract: RawContract) -> pa.Schema | None:
    if not lake.exists(contract.layer, contract.table):
        return None
    return pa.schema(lake.table(contract.layer, contract.table).schema().to_arrow())


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (name[i - 1].islower() or name[i - 1].isdigit()):
            out.append("_")
        out.append(ch.lower() if ch.isalnum() else "_")
    return "".join(out).strip("_")


def _type_and_check(
    contract: RawContract,
    source: pa.Table,
    header_fields: list[str],
    existing: pa.Schema | None,
    now: dt.datetime,
    latest: dt.datetime,
    con: duckdb.DuckDBPyConnection,
) -> tuple[pa.Table, pa.Table, dict[str, str]]:
    con.register("src", source)
    is_json = contract.format != "csv"  # JSON records, and parquet rows as JSON objects
    declared = [c for c in contract.columns if not c.name.startswith("_")]
    # Top-level fields the declared columns read (a nested path reads inside its first key).
    known = {_top_key(c, contract.format) for c in declared}
    if is_json:
        fields = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT unnest(json_keys(CASE WHEN json_valid(_payload) AND "
                "starts_with(ltrim(_payload), '{') THEN _payload ELSE '{}' END)) "
                "FROM src ORDER BY 1"
            ).fetchall()
        ]
    else:
        fields = header_fields
    extra_fields = [f for f in fields if f not in known and not f.startswith("_")]
    all_fields = [c.source_name for c in declared] + extra_fields

    # 1. Every field as trimmed text (NULL when absent or empty).
    nested = contract.format in ("json_array", "jsonl")
    json_paths = [literal(json_path(c.source_name, nested)) for c in declared] + [
        literal(json_path(f, False))
        for f in extra_fields  # drift: top-level keys
    ]
    if is_json:
        paths = ", ".join(json_paths)
        # JSON functions raise on malformed input, so they only ever see valid objects.
        ok = "CASE WHEN json_valid(_payload) THEN json_type(_payload) = 'OBJECT' ELSE FALSE END"
        cols = ", ".join(f"NULLIF(trim(_v[{i + 1}]), '') AS f{i}" for i in range(len(all_fields)))
        con.execute(
            "CREATE OR REPLACE TEMP TABLE fields AS SELECT _line, _payload, _source_file, "
            f"_file_sha256, _extract_date, _ok, {cols} FROM (SELECT *, json_extract_string("
            f"CASE WHEN _ok THEN _payload ELSE '{{}}' END, [{paths}]) AS _v "
            f"FROM (SELECT *, {ok} AS _ok FROM src))"
        )
    else:
        present = set(source.column_names)
        cols = ", ".join(
            (f"NULLIF(trim({ident(f)}), '')" if f in present else "NULL::VARCHAR") + f" AS f{i}"
            for i, f in enumerate(all_fields)
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE fields AS SELECT _line, _payload, _source_file, "
            f"_file_sha256, _extract_date, TRUE AS _ok, {cols} FROM src"
        )
    con.unregister("src")

    # 2. Drift: extra fields become typed columns; a type change is refused.
    extras = _extra_types(contract, extra_fields, len(declared), existing, con)
    _refuse_type_change(contract, declared, con)

    # 3. Cast, check each row's rules; the first rule broken sends the row to quarantine.
    select = []
    rules = [f"CASE WHEN NOT _ok THEN [{literal(INVALID_JSON)}, 'line is not a JSON object'] END"]
    for i, c in enumerate(declared):
        select.append(f"{_value(c, f'f{i}')} AS {ident(c.name)}")
        if is_json and c.type == "string":  # in a typed column an object fails its cast
            rules.append(_scalar_rule(c, f"f{i}", json_paths[i]))
        rules += _rules(c, f"f{i}", latest)
    for name, (i, sql_type) in extras.items():
        select.append(f"{_cast(f'f{i}', sql_type)} AS {ident(name)}")
        rules += _drift_rules(name, f"f{i}", sql_type)
    ts = literal(now.isoformat())
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE checked AS SELECT {', '.join(select)}, _payload, "
        f"_source_file, _line, _file_sha256, _extract_date, {ts}::TIMESTAMPTZ AS _ingested_at, "
        f"COALESCE({', '.join(rules)}) AS _q FROM fields"
    )
    names = [c.name for c in declared] + list(extras)
    lineage = [c.name for c in LINEAGE]
    out_cols = ", ".join(ident(n) for n in names + lineage)
    typed = con.sql(
        f"SELECT {out_cols} FROM checked WHERE _q IS NULL ORDER BY _source_file, _line"
    ).to_arrow_table()
    quarantined = con.sql(
        f"SELECT {literal(contract.table)} AS table_name, _source_file AS source_file, "
        "_line AS line, _q[1] AS rule, _q[2] AS detail, _payload AS payload, "
        "_file_sha256 AS file_sha256, "
        f"_extract_date AS extract_date, {ts}::TIMESTAMPTZ AS quarantined_at "
        "FROM checked WHERE _q IS NOT NULL ORDER BY source_file, line"
    ).to_arrow_table()
    con.execute("DROP TABLE fields; DROP TABLE checked")
    schema = pa.schema(
        [pa.field(c.name, c.arrow_type) for c in declared]
        + [pa.field(n, ARROW_OF_SQL[t]) for n, (_, t) in extras.items()]
        + [pa.field(c.name, c.arrow_type) for c in LINEAGE]
    )
    return (
        typed.cast(schema),
        quarantined.cast(QUARANTINE.schema),
        {n: t for n, (_, t) in extras.items()},
    )


def _top_key(c: Column, fmt: str) -> str:
    """The top-level field a column reads: a JSON path's first key, else the field itself."""
    if fmt not in ("json_array", "jsonl"):
        return c.source_name
    return c.source_name.split(".", 1)[0].split("[", 1)[0]


def json_path(source: str, nested: bool) -> str:
    """The JSONPath of a column's source: `a.b[0].c` -> `$."a"."b"[0]."c"` (nested: JSON
    objects); a plain field name (CSV headers, parquet columns, drift keys) is one key."""
    segments = source.split(".") if nested else [source]
    out = "$"
    for seg in segments:
        key, _, rest = seg.partition("[") if nested else (seg, "", "")
        out += '."' + key.replace('"', '\\"') + '"' + (f"[{rest}" if rest else "")
    return out


def _value(c: Column, f: str) -> str:
    """The stored value of column `c` from its text `f`: cast strictly, then converted by
    the declared unit (epoch seconds or milliseconds) or scale (cents -> units)."""
    if c.type == "timestamp" and c.unit in ("unix_seconds", "unix_millis"):
        per_second = 1 if c.unit == "unix_seconds" else 1000
        number = _cast(f, "DOUBLE")
        # Past year 9999 no table can hold it: NULL, so its type rule names the value.
        return (
            f"CASE WHEN abs({number}) < {253402300800 * per_second} "
            f"THEN to_timestamp({number} / {per_second}) END"
        )
    v = _cast(f, SQL_TYPES[c.type])
    if c.scale is None or c.type not in ("int", "float"):
        return v
    if c.type == "int":
        return f"({v} * {int(c.scale)})"
    inverse = 1 / c.scale
    if abs(inverse - round(inverse)) < 1e-9:  # 0.01: divide by 100, exact for cents
        return f"({v} / {round(inverse)})"
    return f"({v} * {c.scale!r})"


def _cast(expr: str, sql_type: str) -> str:
    """Strict cast: NULL unless the text is a value of the type ('0.15' is no BIGINT)."""
    if sql_type == "VARCHAR":
        return expr
    if sql_type == "BIGINT":
        is_int = f"regexp_full_match({expr}, '[+-]?[0-9]+')"
        return f"CASE WHEN {is_int} THEN TRY_CAST({expr} AS BIGINT) END"
    return f"TRY_CAST({expr} AS {sql_type})"


def _scalar_rule(c: Column, f: str, path: str) -> str:
    """A JSON object or array where a text column wants one value: its JSON text is no value
    (json_type runs only on values that start like one: 15 ms per 1M values)."""
    kind = f"json_type(_payload, {path})"
    return (
        f"CASE WHEN ({f} LIKE '{{%' OR {f} LIKE '[%') AND {kind} IN ('OBJECT', 'ARRAY') THEN "
        f"['type({c.name})', {literal(c.name + ' is a JSON ')} || lower({kind}) || "
        f"{literal(', not a ' + c.type)}] END"
    )


def _rules(c: Column, f: str, latest: dt.datetime) -> list[str]:
    """SQL for each rule of column `c`, as [rule, detail] when broken; order = precedence.
    The rules hold the stored value (after a unit or scale), the type rule the text."""
    sql_type = SQL_TYPES[c.type]
    name, v = c.name, _value(c, f)
    out = []
    if sql_type != "VARCHAR":
        out.append(
            f"CASE WHEN {f} IS NOT NULL AND {v} IS NULL THEN ['type({name})', "
            f"{literal(name + ' = ')} || left({f}, 80) || "
            f"{literal(' is not a valid ' + c.type)}] END"
        )
    if c.type == "float":
        out.append(
            f"CASE WHEN NOT isfinite({v}) THEN ['finite({name})', "
            f"{literal(name + ' = ')} || {f} || ' is not a finite number'] END"
        )
    if c.max_length is not None:
        # The detail reaches the failed gate's text in Dagster's event log: a personal value is
        # not quoted there (the quarantined payload keeps it, in the raw layer).
        quoted = "" if c.pii else f" || ': ' || left({f}, 40) || '...'"
        out.append(
            f"CASE WHEN strlen({f}) > {c.max_length} AND length({f}) > {c.max_length} THEN "
            f"['max_length({name})', "
            f"{literal(name + ' is ')} || length({f}) || "
            f"{literal(f' characters long, over {c.max_length}')}{quoted}] END"
        )
    if c.required:
        out.append(
            f"CASE WHEN {f} IS NULL THEN ['not_null({name})', "
            f"{literal(name + ' is missing or empty')}] END"
        )
    if c.accepted is not None:
        values = in_list(c.accepted)
        allowed = literal(" is not one of " + ", ".join(c.accepted))
        out.append(
            f"CASE WHEN {v} IS NOT NULL AND {v} NOT IN {values} THEN "
            f"['accepted_values({name})', {literal(name + ' = ')} || left({f}, 80) || "
            f"{allowed}] END"
        )
    if c.min is not None or c.max is not None:
        lo = f"{v} < {c.min}" if c.min is not None else "FALSE"
        hi = f"{v} > {c.max}" if c.max is not None else "FALSE"
        out.append(
            f"CASE WHEN {lo} OR {hi} THEN ['range({name})', {literal(name + ' = ')} || {f} || "
            f"{literal(f' is outside [{c.min}, {c.max}]')}] END"
        )
    if c.type in ("timestamp", "date"):
        out.append(_time_rule(name, f, v, c.future, c.earliest or EARLIEST, latest))
    return out


def _time_rule(
    name: str, f: str, v: str, future: bool, earliest: dt.date, latest: dt.datetime
) -> str:
    """Every date is finite and placed in time before it is written: 'infinity' casts, but no
    Parquet file or Python reader can hold it. Nothing lies before the column's `earliest`; only
    a column declared `future` may lie past the platform's clock (plus the landing tolerance);
    the folder a file came in does not count."""
    said = f"{literal(name + ' = ')} || left({f}, 80)"
    cap = (
        f"WHEN {v} >= {LATEST_FUTURE} THEN ['plausible_date({name})', {said} || "
        f"' is after ' || {LATEST_FUTURE}] "
        if future
        else f"WHEN {v} > {literal(latest.isoformat())}::TIMESTAMPTZ THEN ['not_future({name})', "
        f"{said} || {literal(' is after the platform clock (' + latest.isoformat())} || "
        "' with the tolerance)'] "
    )
    return (
        f"CASE WHEN NOT isfinite({v}) THEN ['finite({name})', {said} || ' is not a finite date'] "
        f"WHEN {v} < DATE {literal(earliest.isoformat())} THEN ['plausible_date({name})', "
        f"{said} || {literal(' is before ' + earliest.isoformat())}] "
        f"{cap}END"
    )


def _drift_rules(name: str, f: str, sql_type: str) -> list[str]:
    """An undeclared column's values are checked like a declared one's where the write would
    break or lie: non-finite numbers and dates, dates no reader can hold."""
    v = _cast(f, sql_type)
    said = f"{literal(name + ' = ')} || left({f}, 80)"
    if sql_type == "DOUBLE":
        return [
            f"CASE WHEN NOT isfinite({v}) THEN ['finite({name})', {said} || ' is not finite'] END"
        ]
    if sql_type == "TIMESTAMPTZ":
        lo, hi = DRIFT_RANGE
        return [
            f"CASE WHEN NOT isfinite({v}) OR {v} < {lo} OR {v} > {hi} THEN "
            f"['plausible_date({name})', {said} || ' is no date a table can hold'] END"
        ]
    return []


def _extra_types(
    contract: RawContract,
    extra_fields: list[str],
    offset: int,
    existing: pa.Schema | None,
    con: duckdb.DuckDBPyConnection,
) -> dict[str, tuple[int, str]]:
    """Columns that are not in the contract (schema drift): kept as text, never guessed (an id
    or postcode keeps its leading zeros, and a later non-numeric value is no type change). A
    table that already holds the column with another type (a lake from before) keeps it."""
    known = {c.name for c in contract.columns}
    extras: dict[str, tuple[int, str]] = {}
    for j, f in enumerate(extra_fields):
        i, name = offset + j, _snake(f)
        if name in known or name in extras:
            continue
        col = f"f{i}"
        nn = con.execute(f"SELECT count({col}) FROM fields").fetchone()[0]
        if existing is not None and name in existing.names:
            sql_type = _sql_type_of(existing.field(name).type)
            bad = con.execute(
                f"SELECT _source_file, _line, {col} FROM fields WHERE {col} IS NOT NULL "
                f"AND {_cast(col, sql_type)} IS NULL LIMIT 3"
            ).fetchall()
            if bad:
                raise SchemaChangeError(
                    f"{contract.name}: column '{name}' (field '{f}') changed type: the table "
                    f"holds {sql_type}, but {bad[0][0]} line {bad[0][1]} has {bad[0][2]!r} "
                    f"(rule: type_change({name}); e.g. {[b[2] for b in bad]})"
                )
        elif nn == 0:
            continue  # all empty so far: kept in _payload, a column once values arrive
        else:
            sql_type = "VARCHAR"
        extras[name] = (i, sql_type)
    return extras


def _sql_type_of(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    for sql, arrow in ARROW_OF_SQL.items():
        if arrow == t:
            return sql
    return "VARCHAR"


def _refuse_type_change(
    contract: RawContract, declared: list[Column], con: duckdb.DuckDBPyConnection
) -> None:
    """A file whose every value of a typed column fails the cast changed type: refuse it."""
    checks = [
        f"SELECT _source_file, {literal(c.name)}, count(f{i}), "
        f"min(_line) FILTER (f{i} IS NOT NULL), "
        f"arg_min(f{i}, _line) FILTER (f{i} IS NOT NULL) FROM fields "
        f"GROUP BY _source_file HAVING count(f{i}) >= {TYPE_CHANGE_MIN_VALUES} "
        f"AND count({_value(c, f'f{i}')}) = 0"
        for i, c in enumerate(declared)
        if c.type != "string"
    ]
    if not checks:
        return
    hit = con.execute(" UNION ALL ".join(checks) + " LIMIT 1").fetchone()
    if hit:
        file, col, n, line, example = hit
        c = next(c for c in declared if c.name == col)
        raise SchemaChangeError(
            f"{file}: column '{col}' (field '{c.source_name}') changed type: the contract says "
            f"{c.type}, but all {n} values in this file fail, from line {line}: {example!r} "
            f"(rule: type_change({col})). Nothing was ingested from this batch."
        )


def _empty(contract: RawContract) -> pa.Table:
    return contract.schema.empty_table()


def _empty_quarantine() -> pa.Table:
    return QUARANTINE.schema.empty_table()


def _count_by_file(table: pa.Table, column: str) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    grouped = table.group_by(column).aggregate([([], "count_all")])
    return dict(zip(grouped[column].to_pylist(), grouped["count_all"].to_pylist(), strict=True))


def quarantine_summary(quarantine: pa.Table, groups: int = 20, lines: int = 5) -> str:
    """Which file broke which rule on which lines, in words: what a person fixes after a batch
    fails its gate (the suite itself sees only the quarantined share)."""
    if quarantine.num_rows == 0:
        return ""
    by = quarantine.group_by(["source_file", "rule"], use_threads=False).aggregate(
        [("line", "count"), ("line", "distinct"), ("detail", "first")]
    )
    by = by.sort_by([("line_count", "descending"), ("source_file", "ascending")])
    out = [f"Quarantined in this batch: {quarantine.num_rows} row(s), by file and rule:"]
    for r in by.slice(0, groups).to_pylist():
        shown = sorted(r["line_distinct"])[:lines]
        more = ", ..." if len(r["line_distinct"]) > lines else ""
        where = ("line " if len(shown) == 1 else "lines ") + ", ".join(map(str, shown)) + more
        if shown == [0]:
            where = "line 0 (the whole file)"
        out.append(
            f"- {r['source_file']}: {r['rule']} on {r['line_count']} row(s), {where}: "
            f"{(r['detail_first'] or '')[:160]}"
        )
    if by.num_rows > groups:
        out.append(f"- ... and {by.num_rows - groups} more file/rule pair(s)")
    return "\n".join(out)


# -- commit --------------------------------------------------------------------------------------
class Refused(Exception):
    """Rows the platform wrote for one of its own tables (the quarantine, the ingest log) broke
    that table's suite: none of them was committed."""

    def __init__(self, gate: GateResult, what: str, detail: str = "") -> None:
        super().__init__(gate.report())
        self.gate, self.what, self.detail = gate, what, detail


def _gate(
    contract: TableContract, rows: pa.Table, lake: LakeResource, what: str, detail: str = ""
) -> None:
    """Validate rows bound for `contract`'s table with its suite, before they are appended: a
    platform table is gated like a source's (its Data Docs page shows the latest batch)."""
    gate = validate(contract.name, contract.suite(), rows)
    if lake.data_docs:
        gate.write_docs(lake.data_docs)
    if not gate.passed:
        raise Refused(gate, what, detail)


def commit(batch: Batch, lake: LakeResource) -> Published:
    """Quarantine, raw, then the log, each an exactly-once append (`Claim`) that skips what an
    interrupted or concurrent run of the same files already wrote. A commit that loses a race
    re-reads its table and tries again, so no row is ever written twice.

    The quarantine rows are validated with their suite before anything is committed; the log's
    rows (which name the raw version and continue the log's order) just before their append.
    A refused log leaves the log as it was: the files stay undecided, and the next run finds
    their rows already in the raw table and logs them (as after a run killed between commits).
    """
    quarantined = batch.quarantined()
    if quarantined.num_rows:
        _gate(QUARANTINE, quarantined, lake, f"The quarantine rows of {batch.contract.name}")
    _until_committed(lambda: _commit_quarantine(batch, lake))
    published = _until_committed(lambda: _commit_rows(batch, lake))
    _until_committed(lambda: _commit_log(batch, lake, published.version))
    return published


T = TypeVar("T")


def _until_committed(step: Callable[[], T]) -> T:
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return step()
        except WriteConflict:
            if attempt == COMMIT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _app(c: RawContract) -> str:
    """The writer's Delta transaction id: one per raw table, in each of the three tables."""
    return f"lakehouse raw ingest: {c.table}"


def _claim(lake: LakeResource, shared: TableContract, c: RawContract) -> Claim:
    """`c`'s claim on a table all raw tables append to (the quarantine, the ingest log)."""
    return lake.claim(
        "raw", shared.table, _app(c), shared.schema, shared.partition_by or None, shared.description
    )


def _fresh_shas(batch: Batch) -> pa.Array:
    return pa.array([p.sha256 for p in batch.fresh], pa.string())


def _commit_quarantine(batch: Batch, lake: LakeResource) -> None:
    c = batch.contract
    quarantined = batch.quarantined()
    if not quarantined.num_rows:
        return
    claim = _claim(lake, QUARANTINE, c)
    shas = pa.concat_arrays(
        [_fresh_shas(batch), pa.array([s.identity() for s in batch.refused], pa.string())]
    )
    mine = (pads.field("table_name") == c.table) & pads.field("file_sha256").isin(shas)
    quarantined = _drop_seen(quarantined, "file_sha256", claim.read(["file_sha256"], mine))
    if quarantined.num_rows:
        lake.publish(
            "raw",
            QUARANTINE.table,
            quarantined,
            count_total=False,
            commit_metadata={"table_name": c.table},
            claim=claim,
        )


def _commit_rows(batch: Batch, lake: LakeResource) -> Published:
    c = batch.contract
    claim = lake.claim(
        c.layer, c.table, _app(c), batch.schema, c.partition_by or None, c.description
    )
    keep: pads.Expression | None = None
    fresh = batch.fresh
    if fresh:
        dates = pa.array(sorted({p.file.extract_date for p in fresh}), pa.date32())
        mine = pads.field("_extract_date").isin(dates) & pads.field("_file_sha256").isin(
            _fresh_shas(batch)
        )
        done = claim.read(["_file_sha256"], mine)
        if done.num_rows:
            keep = ~pads.field("_file_sha256").isin(done["_file_sha256"].unique())
    staged = batch.dataset()
    rows = staged.count_rows(filter=keep) if batch.staged else 0
    if not rows:
        return lake.describe(c.layer, c.table)
    return lake.publish(
        c.layer,
        c.table,
        staged.scanner(filter=keep, batch_size=65_536).to_reader(),
        commit_metadata={"files": str(len(fresh)), "lakehouse.operation": "raw ingest"},
        claim=claim,
    )


def _commit_log(batch: Batch, lake: LakeResource, raw_version: int) -> None:
    """One row per decision. A decision already logged for a path in the same form (by an
    interrupted or concurrent run of the same files) is not logged again; `seq` continues the
    snapshot's, which the claim keeps ordered."""
    c = batch.contract
    if not batch.pending and not batch.skipped:
        return
    claim = _claim(lake, INGEST_LOG, c)
    state = LogState.of(_claimed_log(claim, c.table))
    rows = [_log_row(batch, p, raw_version) for p in batch.pending]
    rows += [_skip_row(batch, s, raw_version) for s in batch.skipped]
    rows = [
        r
        for r in rows
        if (last := state.latest.get(r["source_file"])) is None or last.sha256 != r["file_sha256"]
    ]
    for i, r in enumerate(rows, start=1):
        r["seq"] = state.last_seq + i
    if rows:
        log = pa.Table.from_pylist(rows, INGEST_LOG.schema)
        _gate(
            INGEST_LOG,
            log,
            lake,
            f"The ingest-log rows of {c.name}",
            f"The rows of {c.name} are committed (version {raw_version}); their files stay "
            "undecided in the log, so the next run logs them.",
        )
        lake.publish("raw", INGEST_LOG.table, log, count_total=False, claim=claim)


def _claimed_log(claim: Claim, table: str) -> list[dict]:
    columns = log_columns(pa.schema(claim.snapshot.schema().to_arrow()))
    return claim.read(columns, log_filter(table)).to_pylist()


def _log_row(batch: Batch, p: Pending, raw_version: int) -> dict:
    counts = batch.counts[p.file.relative]
    decision = batch.decision(p)
    reason = None
    if decision == REJECTED:
        reason = "cannot be split into rows: quarantined whole at line 0"
    elif decision == REPLACED:
        reason = "new content under a path already ingested: this version supersedes the last"
    return {
        "table_name": batch.contract.table,
        "source_file": p.file.relative,
        "file_sha256": p.sha256,
        "file_bytes": p.file.size,
        "file_mtime_ns": p.file.mtime_ns,
        "extract_date": p.file.extract_date,
        "rows_read": counts.read,
        "rows_published": counts.published,
        "rows_quarantined": counts.quarantined,
        "duplicate_of": p.duplicate_of,
        "raw_version": raw_version,
        "ingested_at": batch.ingested_at,
        "decision": decision,
        "supersedes": None if decision == REJECTED else p.supersedes,
        "reason": reason,
    }


def _skip_row(batch: Batch, s: Skipped, raw_version: int) -> dict:
    return {
        "table_name": batch.contract.table,
        "source_file": s.relative,
        "file_sha256": s.identity(),
        "file_bytes": s.size,
        "file_mtime_ns": s.mtime_ns,
        "extract_date": s.extract_date,
        "rows_read": 0,
        "rows_published": 0,
        "rows_quarantined": int(s.decision == "refused"),
        "duplicate_of": None,
        "raw_version": raw_version,
        "ingested_at": batch.ingested_at,
        "decision": s.decision,
        "supersedes": None,
        "reason": f"{s.rule}: {s.reason}",
    }


def _drop_seen(rows: pa.Table, key: str | list[str], seen: pa.Table) -> pa.Table:
    """`rows` whose `key` is not among the `seen` rows'."""
    if not seen.num_rows:
        return rows
    keys = [key] if isinstance(key, str) else key

    def joined(t: pa.Table) -> pa.ChunkedArray:
        return pc.binary_join_element_wise(*(t[k] for k in keys), "\x1f")

    return rows.filter(pc.invert(pc.is_in(joined(rows), joined(seen).unique())))
