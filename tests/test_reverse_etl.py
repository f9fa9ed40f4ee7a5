"""The CRM sync: only what changed, exactly once, never without consent, never a shadow model."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa
import pytest

from assets.reverse_etl.sync import (
    PAYLOAD,
    InjectedCrash,
    SyncResult,
    fingerprint,
    last_decisions,
    sync,
    updates_sql,
)
from checks.reverse_etl import (
    CRM_ACCOUNT_UPDATES,
    REVIEW_QUEUE,
    SYNC_AUDIT,
    SYNC_STATE,
    SYNC_STATUSES,
)
from resources.destinations import RowResult, SQLiteDestination

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def updates(n: int = 10, overrides: dict[int, dict] | None = None) -> pa.Table:
    rows = []
    for i in range(n):
        row = {
            "crm_account_id": f"001{i:05d}",
            "account_id": f"acc_{i}",
            "churn_risk": 0.05,
            "churn_risk_band": "low",
            "expansion_propensity": 0.02,
            "expansion_band": "low",
            "lifecycle_stage": "paying",
            "health_score": 95,
            "next_best_action": "monitor",
            "top_reasons": json.dumps(["usage fell 10% month over month"]),
            "churn_model_version": "3",
            "expansion_model_version": "2",
            "data_age_days": 1,
            "identity_confidence": 1.0,
            "consent_crm_sync": True,
            "model_reliability": 1.0,
            "data_freshness": 1.0,
            "action_confidence": 1.0,
            "confidence_note": "model 1.00 x data 1.00 x identity 1.00",
        }
        row.update((overrides or {}).get(i, {}))
        rows.append(row)
    return (
        pa.Table.from_pylist(rows)
        .select(CRM_ACCOUNT_UPDATES.schema.names)
        .cast(CRM_ACCOUNT_UPDATES.schema)
    )


def run(table, state, dest, **kw):
    return sync(table, state, dest, threshold=0.5, now=NOW, sync_id="s", **kw)


def sent_per_record(*results: SyncResult) -> dict[str, int]:
    """crm id -> its `sent` audit rows over these syncs: each record must be sent once."""
    return dict(
        Counter(
            r["crm_account_id"]
            for result in results
            for r in result.audit.to_pylist()
            if r["status"] == "sent"
        )
    )


@pytest.fixture
def crm(tmp_path):
    return SQLiteDestination(tmp_path / "crm.db")


def test_a_second_sync_sends_nothing_and_a_changed_score_sends_that_row(crm):
    first = run(updates(), SYNC_STATE.schema.empty_table(), crm)
    assert first.counts["sent"] == 10 and len(crm.rows()) == 10
    second = run(updates(), first.state, crm)
    assert second.counts["sent"] == 0 and second.counts["unchanged"] == 10
    changed = updates(overrides={3: {"churn_risk": 0.2, "health_score": 80}})
    third = run(changed, second.state, crm)
    assert third.counts["sent"] == 1
    sent = [r for r in third.audit.to_pylist() if r["status"] == "sent"]
    assert [r["crm_account_id"] for r in sent] == ["00100003"]
    assert crm.rows()["00100003"]["churn_risk"] == 0.2


def test_a_crash_between_batches_and_a_rerun_leave_each_record_once(crm):
    table = updates(25)
    with pytest.raises(InjectedCrash):
        run(table, SYNC_STATE.schema.empty_table(), crm, batch_size=10, crash_after_batches=2)
    assert len(crm.rows()) == 20  # two batches landed before the crash; no state was written
    rerun = run(table, SYNC_STATE.schema.empty_table(), crm, batch_size=10)
    again = run(table, rerun.state, crm, batch_size=10)
    # the crashed sync returned no audit (nothing of it was kept); counted in the audit, not
    # by the CRM's primary key, which would hide a record sent twice
    assert sent_per_record(rerun, again) == {f"001{i:05d}": 1 for i in range(25)}
    assert sorted(crm.rows()) == [f"001{i:05d}" for i in range(25)]


def test_no_consent_and_low_confidence_never_reach_the_crm(crm):
    table = updates(
        6,
        overrides={
            1: {"consent_crm_sync": False},
            2: {
                "next_best_action": "retention_call",
                "churn_risk": 0.35,
                "action_confidence": 0.35,
            },
            3: {"next_best_action": "retention_call", "churn_risk": 0.8, "action_confidence": 0.8},
        },
    )
    result = run(table, SYNC_STATE.schema.empty_table(), crm)
    held = crm.rows()
    assert "00100001" not in held and "00100002" not in held
    assert "00100003" in held and held["00100003"]["next_best_action"] == "retention_call"
    assert result.counts == {
        "sent": 4,
        "failed": 0,
        "skipped_consent": 1,
        "queued_review": 1,
        "unchanged": 0,
    }
    assert result.review["crm_account_id"].to_pylist() == ["00100002"]
    skipped = [r for r in result.audit.to_pylist() if r["status"] == "skipped_consent"]
    assert skipped[0]["payload"] == "{}"  # the audit keeps nothing of a record without consent


def test_a_dry_run_writes_nothing(crm):
    result = run(updates(), SYNC_STATE.schema.empty_table(), crm, dry_run=True)
    assert crm.rows() == {} and result.counts["would_send"] == 10
    assert set(result.audit["status"].to_pylist()) == {"dry_run"}
    assert result.state.num_rows == 0


def test_a_failed_row_is_recorded_and_retried(crm):
    class Flaky(SQLiteDestination):
        fail = {"00100004"}

        def upsert(self, rows, key):
            ok = [r for r in rows if r[key] not in self.fail]
            res = {r.key: r for r in super().upsert(ok, key)}
            return [res.get(r[key]) or RowResult(r[key], False, "503 from CRM") for r in rows]

    flaky = Flaky(crm.path)
    first = run(updates(), SYNC_STATE.schema.empty_table(), flaky)
    assert first.counts["failed"] == 1 and "00100004" not in crm.rows()
    failed = [r for r in first.audit.to_pylist() if r["status"] == "failed"]
    assert failed[0]["error"] == "503 from CRM"
    Flaky.fail = set()
    retry = run(updates(), first.state, flaky)
    assert retry.counts["sent"] == 1 and "00100004" in crm.rows()


def test_a_shadow_model_never_syncs():
    """The CRM reads the scores from the 360, which takes only the champion's: a challenger's
    0.9 acts on nothing."""
    from assets.c360.scores import scores_sql
    from assets.reverse_etl.confidence import EVIDENCE_SCHEMA

    con = duckdb.connect()
    day = date(2026, 10, 31)
    scores = pa.Table.from_pylist(
        [
            {
                "account_id": "acc_1",
                "probability": p,
                "risk_band": band,
                "model_version": version,
                "reasons": "[]",
                "role": role,
                "shadow": role != "champion",
                "scored_at": day,
                "scored_run_at": NOW,
            }
            for p, band, version, role in (
                (0.1, "medium", "3", "champion"),
                (0.9, "high", "4", "challenger"),
            )
        ]
    )
    con.register("churn_scores", scores)
    con.register("expansion_scores", scores)
    con.register("account", pa.table({"account_id": ["acc_1"], "primary_crm_account_id": ["001"]}))
    profile = con.sql(scores_sql(day, {"churn", "expansion"})).to_arrow_table()
    con.register(
        "c360",
        profile.append_column("lifecycle_state", pa.array(["paying"]))
        .append_column("as_of", pa.array([day]))
        .append_column("last_recorded_on", pa.array([day]))
        .append_column("identity_confidence", pa.array([1.0]))
        .append_column("identity_note", pa.array([None], pa.string())),
    )
    con.register(
        "people",
        pa.table(
            {
                "person_id": ["per_1"],
                "account_id": ["acc_1"],
                "accounts": [json.dumps([{"account_id": "acc_1", "role": "admin"}])],
                "consent_crm_sync": pa.array([True]),
            }
        ),
    )
    con.register("band_evidence", EVIDENCE_SCHEMA.empty_table())
    rows = con.sql(updates_sql()).to_arrow_table().to_pylist()
    assert len(rows) == 1
    assert rows[0]["churn_model_version"] == "3" and rows[0]["churn_risk"] == 0.1
    assert rows[0]["next_best_action"] == "monitor"  # the challenger's 0.9 acts on nothing


@pytest.fixture
def http_crm():
    """A local HTTP batch-upsert API holding records by key (a stand-in for a SaaS CRM API);
    it checks the bearer token and can be told to reject one record."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    store: dict[str, dict] = {}
    reject: set[str] = set()
    seen_auth: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen_auth.append(self.headers.get("Authorization", ""))
            key, results = body.get("key"), []
            if self.path == "/upsert":
                for rec in body["records"]:
                    k = rec[key]
                    if k in reject:
                        results.append({"key": k, "ok": False, "error": "422 invalid record"})
                    else:
                        store[k] = rec
                        results.append({"key": k, "ok": True})
            elif self.path == "/delete":
                for k in body["keys"]:
                    store.pop(k, None)
                    results.append({"key": k, "ok": True})
            if self.path == "/erase":
                ids = {i.lower() for i in body["identifiers"]}
                for k in [
                    k for k, rec in store.items() if ids & {str(v).lower() for v in rec.values()}
                ]:
                    del store[k]
                data = json.dumps({"ok": True}).encode()
            else:
                data = json.dumps({"results": results}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", store, reject, seen_auth
    server.shutdown()


def test_the_http_destination_upserts_once_retries_rejections_and_sends_the_token(http_crm):
    from resources.destinations import HttpBatchDestination

    url, store, reject, seen_auth = http_crm
    dest = HttpBatchDestination(url, token="t0ken-from-env")
    reject.add("00100002")
    first = run(updates(), SYNC_STATE.schema.empty_table(), dest, batch_size=4)
    assert first.counts["sent"] == 9 and first.counts["failed"] == 1
    assert set(store) == {f"001{i:05d}" for i in range(10)} - {"00100002"}
    assert set(seen_auth) == {"Bearer t0ken-from-env"}
    reject.clear()
    second = run(updates(), first.state, dest, batch_size=4)
    third = run(updates(), second.state, dest)
    # counted in the audit (the stand-in's dict, like a primary key, would hide a second send)
    assert sent_per_record(first, second, third) == {f"001{i:05d}": 1 for i in range(10)}
    assert sent_per_record(second) == {"00100002": 1}  # only the rejected row was retried
    assert set(store) == {f"001{i:05d}" for i in range(10)}
    # an unreachable API fails every row of the batch, recorded, nothing lost
    down = HttpBatchDestination("http://127.0.0.1:9", timeout=2)
    changed = updates(overrides={0: {"churn_risk": 0.3}})
    failed = run(changed, second.state, down)
    assert failed.counts == {
        "sent": 0,
        "failed": 1,
        "skipped_consent": 0,
        "queued_review": 0,
        "unchanged": 9,
    }
    assert failed.state.equals(second.state)  # retried by the next sync


def test_the_http_destination_crash_and_rerun_send_each_record_once(http_crm):
    from resources.destinations import HttpBatchDestination

    url, store, _, _ = http_crm
    dest = HttpBatchDestination(url)
    table, ids = updates(10), [f"001{i:05d}" for i in range(10)]
    with pytest.raises(InjectedCrash):
        run(table, SYNC_STATE.schema.empty_table(), dest, batch_size=4, crash_after_batches=1)
    assert sorted(store) == ids[:4]  # the first batch was acknowledged; no state was written
    rerun = run(table, SYNC_STATE.schema.empty_table(), dest, batch_size=4)
    again = run(table, rerun.state, dest, batch_size=4)
    assert sent_per_record(rerun, again) == dict.fromkeys(ids, 1)  # counted in the audit
    assert sorted(store) == ids


@pytest.fixture(scope="module")
def postgres_dsn():
    from servers import postgres_server

    with postgres_server() as dsn:
        yield dsn


def test_postgres_destination_crash_and_rerun_leave_each_record_once(postgres_dsn):
    import psycopg

    from resources.destinations import PostgresDestination

    dest = PostgresDestination(postgres_dsn)
    assert "postgres@" not in dest.name  # the audit names the destination, never credentials
    table = updates(25)
    with pytest.raises(InjectedCrash):
        run(table, SYNC_STATE.schema.empty_table(), dest, batch_size=10, crash_after_batches=1)
    assert len(dest.rows()) == 10
    rerun = run(table, SYNC_STATE.schema.empty_table(), dest, batch_size=10)
    again = run(table, rerun.state, dest)
    # counted in the audit, not by the table's primary key (which hides a second send)
    assert sent_per_record(rerun, again) == {f"001{i:05d}": 1 for i in range(25)}
    with psycopg.connect(postgres_dsn) as con:
        held = [r[0] for r in con.execute("SELECT crm_account_id FROM crm_account_updates")]
    assert sorted(held) == [f"001{i:05d}" for i in range(25)]
    changed = updates(25, overrides={7: {"lifecycle_stage": "at_risk"}})
    assert sent_per_record(run(changed, again.state, dest)) == {"00100007": 1}
    assert dest.rows()["00100007"]["lifecycle_stage"] == "at_risk"


def _erase_and_check(dest) -> None:
    """A row naming the person goes, in any case; every other row stays, including those that
    name someone whose id or address merely contains the person's, and a blank identifier
    erases nobody."""
    neighbours = json.dumps(["per_abc1234 and nosomeone@example.com left", "xper_abc123"])
    table = updates(
        4,
        overrides={
            1: {"top_reasons": json.dumps(["champion PER_ABC123 left"])},
            2: {"top_reasons": neighbours},
            3: {"top_reasons": json.dumps(["mail Someone@Example.com"])},
        },
    )
    run(table, SYNC_STATE.schema.empty_table(), dest)
    assert dest.erase(["", "  "]).ok and len(dest.rows()) == 4
    answer = dest.erase(["per_abc123", "someone@example.com"])
    assert answer.ok
    assert sorted(dest.rows()) == ["00100000", "00100002"]


def test_sqlite_destination_erases_a_person(crm):
    _erase_and_check(crm)
    assert b"champion PER_ABC123" not in crm.path.read_bytes()  # no freed page keeps it


def test_postgres_destination_erases_a_person(postgres_dsn):
    from resources.destinations import PostgresDestination

    dest = PostgresDestination(postgres_dsn, table="crm_erasure_test")
    _erase_and_check(dest)


def test_http_destination_is_told_to_erase(http_crm):
    from resources.destinations import HttpBatchDestination

    url, store, _, _ = http_crm
    dest = HttpBatchDestination(url)
    run(updates(3), SYNC_STATE.schema.empty_table(), dest)
    assert dest.erase(["00100001"]).ok and sorted(store) == ["00100000", "00100002"]
    assert not HttpBatchDestination("http://127.0.0.1:9", timeout=2).erase(["x"]).ok


def test_a_record_held_back_again_for_the_same_reason_is_audited_once(crm):
    """No consent / low confidence with unchanged inputs: the second sync adds no audit rows,
    and the review queue still lists the pending action."""

    table = updates(3, {0: {"consent_crm_sync": False}, 1: {"action_confidence": 0.1}})
    first = run(table, SYNC_STATE.schema.empty_table(), crm)
    assert sorted(first.audit["status"].to_pylist()) == ["queued_review", "sent", "skipped_consent"]
    second = run(table, first.state, crm, decided=last_decisions(first.audit))
    assert second.audit.num_rows == 0
    assert second.review["crm_account_id"].to_pylist() == ["00100001"]
    assert second.counts["unchanged"] == 3

    changed = updates(3, {0: {"consent_crm_sync": False, "health_score": 40}})
    third = run(changed, second.state, crm, decided=last_decisions(first.audit))
    assert third.audit["status"].to_pylist() == ["skipped_consent", "sent"]


def _payload(row: dict) -> dict:
    return {k: row[k] for k in PAYLOAD}


def test_every_audit_row_says_which_sync_sent_what_where_when_and_by_whom(crm):
    """The audit is the record of every automated write: each row names its sync, destination,
    actor and time, and keeps the payload canonically (sorted keys) with its fingerprint."""
    table = updates(3, {1: {"action_confidence": 0.1}, 2: {"consent_crm_sync": False}})
    result = sync(
        table,
        SYNC_STATE.schema.empty_table(),
        crm,
        threshold=0.5,
        now=NOW,
        sync_id="sync-42",
        actor="ops@example.org",
    )
    rows = result.audit.to_pylist()
    assert sorted(r["status"] for r in rows) == ["queued_review", "sent", "skipped_consent"]
    assert {(r["sync_id"], r["destination"], r["actor"], r["attempted_at"]) for r in rows} == {
        ("sync-42", crm.name, "ops@example.org", NOW)
    }
    sent = next(r for r in rows if r["status"] == "sent")
    expected = _payload(table.to_pylist()[0])
    assert list(expected) != sorted(expected)  # so the canonical form below is a real check
    assert sent["payload"] == json.dumps(expected, sort_keys=True, default=str)
    assert sent["inputs_fingerprint"] == fingerprint(expected)


def test_a_dry_run_audits_the_payload_it_would_send(crm):
    table = updates(2)
    result = run(table, SYNC_STATE.schema.empty_table(), crm, dry_run=True)
    for audited, row in zip(result.audit.to_pylist(), table.to_pylist(), strict=True):
        assert audited["payload"] == json.dumps(_payload(row), sort_keys=True, default=str)
        assert audited["inputs_fingerprint"] == fingerprint(_payload(row))


def test_every_record_held_back_again_counts_as_unchanged(crm):
    table = updates(4, {0: {"consent_crm_sync": False}, 1: {"consent_crm_sync": False}})
    first = run(table, SYNC_STATE.schema.empty_table(), crm)
    second = run(table, first.state, crm, decided=last_decisions(first.audit))
    assert second.audit.num_rows == 0
    assert second.counts == {
        "sent": 0,
        "failed": 0,
        "skipped_consent": 0,
        "queued_review": 0,
        "unchanged": 4,
    }


def test_a_destination_that_answers_for_fewer_records_fails_the_sync(crm):
    """A record the destination did not answer for would be neither sent nor failed: the
    sync stops instead of leaving it unaccounted."""

    class Short:
        name = "short"

        def upsert(self, rows, key):
            return [RowResult(str(r[key]), True, None) for r in rows[:-1]]

    with pytest.raises(ValueError, match="zip"):
        run(updates(3), SYNC_STATE.schema.empty_table(), Short())


def test_the_sync_tables_keep_their_declared_schemas_even_when_empty(crm):
    empty = run(CRM_ACCOUNT_UPDATES.schema.empty_table(), SYNC_STATE.schema.empty_table(), crm)
    full = run(updates(3, {1: {"action_confidence": 0.1}}), SYNC_STATE.schema.empty_table(), crm)
    for result in (empty, full):
        assert result.audit.schema == SYNC_AUDIT.schema
        assert result.review.schema == REVIEW_QUEUE.schema
        assert result.state.schema == SYNC_STATE.schema


def test_what_every_kind_of_sync_writes_passes_its_tables_suites(crm):
    """The contracts' rules hold on every outcome the sync records (sent, failed, held back for
    consent or review, a dry run, a second sync over the first's state): the gate that runs
    before the sync's tables are written refuses only a broken batch, never a normal one."""
    from checks.gate import validate

    class RejectsOne(SQLiteDestination):
        def upsert(self, rows, key):
            return [
                RowResult(r[key], False, "409 conflict") if r[key] == "00100005" else res
                for r, res in zip(rows, super().upsert(rows, key), strict=True)
            ]

    table = updates(
        6, {1: {"consent_crm_sync": False}, 2: {"action_confidence": 0.2, "health_score": None}}
    )

    def once(updates_, state, dest, sync_id, **kw):
        return sync(updates_, state, dest, threshold=0.5, now=NOW, sync_id=sync_id, **kw)

    first = once(table, SYNC_STATE.schema.empty_table(), RejectsOne(crm.path), "s1")
    again = once(updates(6, {4: {"churn_risk": 0.9}}), first.state, crm, "s2")
    dry = once(table, first.state, crm, "s3", dry_run=True)
    audit = pa.concat_tables([x.audit for x in (first, again, dry)])
    assert set(audit["status"].to_pylist()) == set(SYNC_STATUSES)
    assert first.review.num_rows and first.state.num_rows < again.state.num_rows
    for contract, rows in (
        (SYNC_AUDIT, audit),
        (REVIEW_QUEUE, first.review),
        (SYNC_STATE, again.state),
    ):
        gate = validate(contract.name, contract.suite(), rows)
        assert gate.passed, gate.report()
