"""What an erasure did, as the audit keeps it: one row per request, counts and table names only,
never an erased value. The audit is also the erasure's memory: a request it holds is done.

The audit lived at `reverse_etl/erasure_audit` before privacy became a layer of its own; a lake
that still has it there keeps its requests done (`recorded` reads both) and the erasure moves
its rows to `privacy/erasure_audit` (`adopt_legacy`) before it next writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from checks.privacy import ERASURE_AUDIT
from resources.lake import LakeResource

if TYPE_CHECKING:
    from assets.privacy.intake import Subject
    from assets.privacy.landing import FileRewrite
    from assets.privacy.tables import TableErasure

AUDIT = (ERASURE_AUDIT.layer, ERASURE_AUDIT.table)
LEGACY_AUDIT = ("reverse_etl", "erasure_audit")
AUDITS = ("/".join(AUDIT), "/".join(LEGACY_AUDIT))  # never erased from: they hold no values


def recorded(lake: LakeResource) -> set[str]:
    """Ids of the requests the audit holds (carried out), in its home or its former one."""
    return recorded_in(lake, AUDIT) | recorded_in(lake, LEGACY_AUDIT)


def recorded_in(lake: LakeResource, where: tuple[str, str]) -> set[str]:
    if not lake.exists(*where):
        return set()
    return set(lake.read(*where, columns=["request_id"])["request_id"].to_pylist())


def adopt_legacy(lake: LakeResource) -> int:
    """Move the audit's rows from its former home to `privacy/erasure_audit`, then remove the
    former table. Safe to repeat after a crash: rows already moved are not appended twice.
    Returns the rows moved."""
    if not lake.exists(*LEGACY_AUDIT):
        return 0
    c = ERASURE_AUDIT
    old = lake.read(*LEGACY_AUDIT).select(c.schema.names).cast(c.schema)
    have = recorded_in(lake, AUDIT)
    moved = old.filter(pa.array([r not in have for r in old["request_id"].to_pylist()]))
    if moved.num_rows:
        lake.publish(c.layer, c.table, moved, description=c.description)
    lake.drop(*LEGACY_AUDIT)
    return moved.num_rows


@dataclass
class Outcome:
    """One erasure of a batch of requests, across the lake."""

    tables: list[TableErasure]
    files: list[FileRewrite]
    ingest_log_rows: int
    purged_tables: int
    purged_files: int
    remaining: dict[str, int]  # table or file -> matches a rescan still found

    @property
    def deleted(self) -> int:
        return sum(t.deleted for t in self.tables)

    @property
    def redacted(self) -> int:
        return sum(t.redacted for t in self.tables)

    def table_counts(self) -> dict[str, dict[str, int]]:
        return {
            t.table: {"deleted": t.deleted, "redacted": t.redacted}
            for t in self.tables
            if t.deleted or t.redacted
        }


def audit_rows(
    subjects: list[Subject],
    outcome: Outcome,
    destinations: dict[str, str],
    batch_id: str,
    actor: str,
    now: datetime,
) -> pa.Table:
    """One row per request, with counts and table names only: never an erased value."""
    rows = []
    for s in subjects:
        tables = s.done.get("tables", {})
        deleted = sum(c["deleted"] for c in tables.values())
        redacted = sum(c["redacted"] for c in tables.values())
        rows.append(
            {
                "request_id": s.request_id,
                "requested_at": datetime.fromisoformat(s.requested_at) if s.requested_at else None,
                "erased_at": now,
                "batch_id": batch_id,
                "actor": actor,
                "status": "erased"
                if s.person_ids or outcome.deleted or outcome.redacted
                else "not_found",
                "persons": len(s.person_ids),
                "source_records": len(s.records),
                "identifiers": len(s.identifiers),
                "rows_deleted": deleted,
                "rows_redacted": redacted,
                "tables": json.dumps(tables, sort_keys=True),
                "files_rewritten": s.done.get("files_rewritten", 0),
                "histories_purged": outcome.purged_tables,
                "destinations": json.dumps(destinations, sort_keys=True),
                "verified": not outcome.remaining,
            }
        )
    return pa.Table.from_pylist(rows, ERASURE_AUDIT.schema)
