"""Erasing subjects from a Delta table, through `LakeResource` (local disk or object store).

The rows naming a subject are found by one bound regular expression over every text column
(lists included), and rewritten in one new version: deleted where the table's reach says they
are the subjects' own records, scrubbed everywhere else. A partitioned table rewrites only the
partitions holding a match.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from assets.privacy.match import Needles
from assets.privacy.reach import Reach
from resources.lake import LakeResource
from resources.sql import ident, literal

ERASURE_COMMIT = {"lakehouse.operation": "erasure"}


@dataclass(frozen=True)
class TableErasure:
    table: str
    deleted: int = 0
    redacted: int = 0


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _text_columns(schema: pa.Schema) -> tuple[list[pa.Field], list[pa.Field]]:
    strings = [f for f in schema if _is_text(f.type)]
    lists = [
        f
        for f in schema
        if (pa.types.is_list(f.type) or pa.types.is_large_list(f.type))
        and _is_text(f.type.value_type)
    ]
    return strings, lists


def _match_sql(strings: list[pa.Field], lists: list[pa.Field]) -> str | None:
    """Whether a row names a subject: the pattern is the bound parameter $find."""
    terms = [f"regexp_matches({ident(f.name)}, $find, 'i')" for f in strings]
    terms += [f"regexp_matches(array_to_string({ident(f.name)}, ';'), $find, 'i')" for f in lists]
    return "coalesce(" + " OR ".join(terms) + ", false)" if terms else None


def count_matches(con: duckdb.DuckDBPyConnection, dt: DeltaTable, needles: Needles) -> int:
    """Rows of a table's current version that name a subject."""
    strings, lists = _text_columns(pa.schema(dt.schema().to_arrow()))
    where = _match_sql(strings, lists)
    if where is None:
        return 0
    con.register("t", dt.to_pyarrow_dataset())
    query = f"SELECT count(*) FROM t WHERE {where}"
    return con.execute(query, needles.params(query)).fetchall()[0][0]


def _redacted(f: pa.Field) -> str:
    """SQL for a text value with the subjects erased (same rules as `Needles.redact`), over the
    bound patterns $exact, $erase, $to."""
    gone = "NULL" if f.nullable else "$erased"

    def one(x: str, null: str) -> str:
        sub = f"regexp_replace({x}, $erase, $to, 'gi')"
        return (
            f"CASE WHEN regexp_full_match(trim({x}), $exact, 'i') THEN {null} "
            f"ELSE regexp_replace({sub}, $erase, $to, 'gi') END"
        )

    col = ident(f.name)
    if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
        return f"list_filter(list_transform({col}, x -> {one('x', 'NULL')}), x -> x IS NOT NULL)"
    return one(col, gone)


def _partitions_matched(
    con: duckdb.DuckDBPyConnection, parts: list[str], found: pa.Table
) -> tuple[str, str]:
    """The DuckDB scope and the delta-rs replace predicate of the partitions holding a match:
    only those are read and replaced."""
    keys = sorted({tuple(r[p] for p in parts) for r in found.select(parts).to_pylist()}, key=str)
    con.register(
        "_scope",
        pa.table(
            {p: [None if k[i] is None else str(k[i]) for k in keys] for i, p in enumerate(parts)}
        ),
    )
    same = " AND ".join(
        f"CAST(t.{ident(p)} AS VARCHAR) IS NOT DISTINCT FROM _scope.{ident(p)}" for p in parts
    )
    scope = f"EXISTS (SELECT 1 FROM _scope WHERE {same})"
    # delta-rs takes its replace predicate as text: partition values the table itself holds.
    predicate = " OR ".join(
        "("
        + " AND ".join(
            f"{ident(p)} IS NULL" if v is None else f"{ident(p)} = {literal(str(v))}"
            for p, v in zip(parts, k, strict=True)
        )
        + ")"
        for k in keys
    )
    return scope, predicate


def erase_table(
    con: duckdb.DuckDBPyConnection, lake: LakeResource, reach: Reach, needles: Needles
) -> TableErasure:
    """Delete (the subjects' own records) or scrub (everything else) the rows naming a subject,
    in one new version of the table."""
    layer, table = reach.layer_and_table
    dt = lake.table(layer, table)
    schema = pa.schema(dt.schema().to_arrow())
    strings, lists = _text_columns(schema)
    where = _match_sql(strings, lists)
    if where is None:
        return TableErasure(reach.table)
    con.register("t", dt.to_pyarrow_dataset())
    parts = list(dt.metadata().partition_columns)
    cols = ", ".join(ident(p) for p in parts)
    count = f"SELECT {cols + ', ' if cols else ''}count(*) AS n FROM t WHERE {where}" + (
        " GROUP BY ALL" if cols else ""
    )
    found = con.sql(count, params=needles.params(count)).to_arrow_table()
    matched = sum(found["n"].to_pylist())
    if not matched:
        return TableErasure(reach.table)
    scope, predicate = _partitions_matched(con, parts, found) if parts else ("true", None)
    deleted = matched if reach.delete else 0
    select = ", ".join(
        f"CASE WHEN _m THEN {_redacted(f)} ELSE {ident(f.name)} END AS {ident(f.name)}"
        if f in strings + lists and f.name not in parts
        else ident(f.name)
        for f in schema
    )
    key = reach.subject_key
    if reach.delete and key is None:
        query = f"SELECT * FROM t WHERE {scope} AND NOT ({where})"
    elif reach.delete:  # the subjects' records go; other records naming them stay, scrubbed
        theirs = (
            f"coalesce(regexp_full_match(trim(CAST({ident(key)} AS VARCHAR)), $ids, 'i'), false)"
        )
        mine = f"SELECT count(*) FROM t WHERE {where} AND {theirs}"
        deleted = con.execute(mine, needles.params(mine)).fetchall()[0][0]
        query = (
            f"SELECT {select} FROM (SELECT *, {where} AS _m FROM t WHERE {scope}) "
            f"WHERE NOT (_m AND {theirs})"
        )
    else:
        query = f"SELECT {select} FROM (SELECT *, {where} AS _m FROM t WHERE {scope})"
    data = con.sql(query, params=needles.params(query)).to_arrow_table()
    lake.replace(layer, table, data, predicate=predicate, commit_metadata=ERASURE_COMMIT)
    return TableErasure(reach.table, deleted=deleted, redacted=matched - deleted)
