"""The privacy layer's reach and memory, on a small lake of its own (seconds): which tables an
erasure deletes from comes from the contracts in checks/, a table no contract declares is
scrubbed (never skipped, never deleted from on a guess), and a lake whose audit is still in its
former home (`reverse_etl/erasure_audit`) keeps its requests done when the audit moves."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from assets.privacy import audit
from assets.privacy.match import Needles
from assets.privacy.reach import reach
from assets.privacy.tables import erase_table
from checks.catalog import declared
from checks.contract import Column, TableContract
from checks.privacy import ERASURE_AUDIT
from resources.lake import LakeResource

ANN, BOB = "ann.lee@example.com", "bob.ray@example.com"


@pytest.fixture
def lake(tmp_path) -> LakeResource:
    return LakeResource(root=str(tmp_path / "lake"))


def _people() -> pa.Table:
    return pa.table(
        {
            "id": ["c1", "c2", "c3"],
            "email": [ANN, BOB, "cy@example.com"],
            "note": ["", f"invited by {ANN}", ""],
        }
    )


def test_what_is_deleted_and_what_is_scrubbed_follows_the_contracts(lake, monkeypatch):
    """A personal-record table loses the person's rows (only theirs, by its subject_key), a
    table of account facts keeps them scrubbed, and so does a table no contract declares,
    which the log names. A new contract is all it takes: no list of table names."""
    own = TableContract(
        "hr",
        "people",
        "People, each row a person's own record.",
        (Column("id", identifies_person=True), Column("email", pii=True), Column("note")),
        personal_record=True,
        subject_key="id",
    )
    facts = TableContract("hr", "notes", "Account facts naming people.", (Column("email"),))
    contracts = {**declared(), own.name: own, facts.name: facts}
    monkeypatch.setattr("assets.privacy.reach.declared", lambda: contracts)
    for name in ("hr/people", "hr/notes", "hr/unknown"):
        lake.publish(*name.split("/"), _people())
    lake.publish(".dagster", "runs", _people())  # Dagster's own storage: not the erasure's
    logged: list[str] = []

    tables = {r.table: r for r in reach(lake, logged.append)}

    assert sorted(tables) == ["hr/notes", "hr/people", "hr/unknown"]
    assert (tables["hr/people"].delete, tables["hr/people"].subject_key) == (True, "id")
    assert not tables["hr/notes"].delete and not tables["hr/unknown"].delete
    assert [m for m in logged if "hr/unknown" in m] and not [m for m in logged if "notes" in m]
    needles = Needles([ANN, "c1"])
    with duckdb.connect() as con:
        counts = {n: erase_table(con, lake, r, needles) for n, r in tables.items()}
    assert (counts["hr/people"].deleted, counts["hr/people"].redacted) == (1, 1)
    people = lake.read("hr", "people").to_pylist()
    assert [r["id"] for r in people] == ["c2", "c3"]  # Bob's record stays, Ann erased from it
    assert people[0]["note"] == "invited by [erased]"
    for name in ("hr/notes", "hr/unknown"):
        rows = lake.read(*name.split("/")).to_pylist()
        assert [r["id"] for r in rows] == [None, "c2", "c3"], name  # every row kept
        assert rows[0]["email"] is None and rows[1]["email"] == BOB, name


def _audit_row(request_id: str) -> dict:
    now = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return {
        "request_id": request_id,
        "requested_at": now,
        "erased_at": now,
        "batch_id": "b1",
        "actor": "test",
        "status": "erased",
        "persons": 1,
        "source_records": 3,
        "identifiers": 5,
        "rows_deleted": 4,
        "rows_redacted": 2,
        "tables": "{}",
        "files_rewritten": 1,
        "histories_purged": 9,
        "destinations": "{}",
        "verified": True,
    }


def test_an_audit_in_its_former_home_moves_and_its_requests_stay_done(lake):
    """A request audited at reverse_etl/erasure_audit is done: it is not carried out again
    before or after the move, and moving twice (a crash after the copy) copies once."""
    schema = ERASURE_AUDIT.schema
    legacy = pa.Table.from_pylist([_audit_row("cns_erase_1"), _audit_row("cns_erase_2")], schema)
    lake.publish(*audit.LEGACY_AUDIT, legacy)
    assert audit.recorded(lake) == {"cns_erase_1", "cns_erase_2"}

    lake.publish(*audit.AUDIT, legacy.slice(0, 1))  # a move that crashed before the removal
    assert audit.adopt_legacy(lake) == 1
    assert not lake.exists(*audit.LEGACY_AUDIT)
    moved = lake.read(*audit.AUDIT)
    assert sorted(moved["request_id"].to_pylist()) == ["cns_erase_1", "cns_erase_2"]
    assert moved.sort_by("request_id").to_pylist() == legacy.sort_by("request_id").to_pylist()
    assert audit.adopt_legacy(lake) == 0
    assert audit.recorded(lake) == {"cns_erase_1", "cns_erase_2"}
