"""What the lake holds: each table's size, Delta version, last change and description.

Everything comes from the Delta log (row counts from its file statistics: no data file is
opened), and the description from the table's metadata, written from its contract when the
table was created; a table created without one falls back to the contract declared in checks/.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

from checks.contract import TableContract
from resources.lake import LakeResource
from resources.query import LakeError, LakeQuery, TableRef


@dataclass(frozen=True)
class TableInfo:
    table: str  # layer.table
    rows: int | None
    version: int
    last_modified: dt.datetime | None
    description: str


@dataclass(frozen=True)
class ColumnInfo:
    column: str
    type: str
    description: str


def table_info(lake: LakeResource, ref: TableRef) -> TableInfo:
    delta = lake.table(ref.layer, ref.table)
    last = delta.history(1)
    millis = last[0].get("timestamp") if last else None
    return TableInfo(
        table=ref.name,
        rows=lake.describe(ref.layer, ref.table).total_rows,
        version=delta.version(),
        last_modified=dt.datetime.fromtimestamp(millis / 1000, dt.UTC) if millis else None,
        description=(delta.metadata().description or _contract_description(ref)).strip(),
    )


def columns(q: LakeQuery, ref: TableRef) -> list[ColumnInfo]:
    """The columns as SQL sees them, each with its contract's description where one exists."""
    if ref not in q.tables:
        raise_unknown(q, ref)
    contract = contracts().get(ref)
    described = {c.name: c for c in contract.columns} if contract else {}
    out = []
    for row in q.rows(f'DESCRIBE "{ref.layer}"."{ref.table}"'):
        col = described.get(row["column_name"])
        text = col.description if col else ""
        if col is not None and col.pii:
            text = f"{text} (PII)".strip()
        out.append(ColumnInfo(row["column_name"], row["column_type"], text))
    return out


def raise_unknown(q: LakeQuery, ref: TableRef) -> None:
    raise LakeError(f"no table {ref.name} in the lake.\n{q.listing()}")


def _contract_description(ref: TableRef) -> str:
    contract = contracts().get(ref)
    return contract.description if contract else ""


@cache
def contracts() -> dict[TableRef, TableContract]:
    """Every table contract declared in checks/ (checks/catalog.py). The builders of contracts
    that depend on configuration (event names, lifecycle states, consent scopes) are called with
    none: only their descriptions are read here, and those do not depend on it."""
    from checks.catalog import declared

    return {TableRef(c.layer, c.table): c for c in declared().values()}
