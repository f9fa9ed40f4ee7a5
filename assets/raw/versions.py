"""Which version of each landing file is current, from `raw/ingest_log`.

Raw tables are append-only: when a file comes again under the same path with new content (a
corrected export), its rows are appended beside the old version's. The log says which version of
each path is current, so the layers above read each record once, from the current version: the
rows of a superseded version are hidden (never deleted: the raw table stays the audit trail).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.dataset as pads

from checks.raw import DUPLICATE, EFFECTIVE, INGEST_LOG, INGESTED
from resources.lake import LakeResource

LOG_COLUMNS = [
    "source_file",
    "file_sha256",
    "duplicate_of",
    "decision",
    "supersedes",
    "seq",
    "ingested_at",
    "raw_version",
]


@dataclass(frozen=True)
class Entry:
    source_file: str
    sha256: str
    decision: str
    supersedes: str | None


@dataclass
class LogState:
    """The ingest log of one raw table, as decisions read it."""

    latest: dict[str, Entry] = field(default_factory=dict)  # path -> its latest decision
    effective: dict[str, str] = field(default_factory=dict)  # path -> its current content
    first: dict[str, Entry] = field(default_factory=dict)  # content -> first entry holding it
    superseded: set[str] = field(default_factory=set)  # contents some later version replaced
    last_seq: int = 0

    @classmethod
    def of(cls, rows: list[dict]) -> LogState:
        """From log rows, oldest decision first (logs written before `seq` keep file order)."""
        state = cls()
        ordered = sorted(
            enumerate(rows),
            key=lambda ir: (ir[1].get("seq") or 0, ir[1].get("ingested_at") or 0, ir[0]),
        )
        for _, r in ordered:
            e = Entry(r["source_file"], r["file_sha256"], _decision(r), r.get("supersedes"))
            state.latest[e.source_file] = e
            if e.decision in EFFECTIVE:
                state.effective[e.source_file] = e.sha256
            if e.decision != DUPLICATE:
                state.first.setdefault(e.sha256, e)
            if e.supersedes:
                state.superseded.add(e.supersedes)
            state.last_seq = max(state.last_seq, r.get("seq") or 0)
        return state

    @property
    def hidden(self) -> set[str]:
        """Contents whose rows the layers above must not see: superseded by a later version
        and current under no path."""
        return self.superseded - set(self.effective.values())


def _decision(row: dict) -> str:
    """Logs written before decisions were recorded hold ingested files and duplicates only."""
    if row.get("decision"):
        return row["decision"]
    return DUPLICATE if row.get("duplicate_of") else INGESTED


def log_columns(schema: pa.Schema) -> list[str]:
    """The columns decisions read, of those a log has (older logs lack the later ones)."""
    return [c for c in LOG_COLUMNS if c in schema.names]


def log_filter(table: str) -> pads.Expression:
    return pads.field("table_name") == table


def log_rows(lake: LakeResource, table: str) -> list[dict]:
    """The log rows of one raw table, as the log is now."""
    if not lake.exists("raw", INGEST_LOG.table):
        return []
    schema = pa.schema(lake.table("raw", INGEST_LOG.table).schema().to_arrow())
    return lake.read(
        "raw", INGEST_LOG.table, columns=log_columns(schema), filter=log_filter(table)
    ).to_pylist()


def log_state(lake: LakeResource, table: str) -> LogState:
    return LogState.of(log_rows(lake, table))


def hidden_versions(lake: LakeResource, table: str) -> list[str]:
    """Content hashes of `raw/<table>` rows superseded by a newer version of their file."""
    return sorted(log_state(lake, table).hidden)
