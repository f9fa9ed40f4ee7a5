"""The raw layer, through real Dagster runs on real Delta tables and a real GX gate."""

from __future__ import annotations

import gzip
import json
import re

import pyarrow.compute as pc
import pytest

from conftest import check_evaluations, materialized

SUBS = "billing/subscriptions/{d}/subscriptions.csv"
HEADER = (
    "subscription_id,customer_id,plan,status,mrr,seats,started_at,current_period_end,"
    "canceled_at,updated_at"
)


def sub_row(
    i: int, plan: str = "growth", mrr: str = "1200", extra: str = "", status: str = "active"
) -> str:
    return (
        f"sub_{i},cus_{i},{plan},{status},{mrr},5,2026-01-01T00:00:00Z,"
        f"2026-03-01T00:00:00Z,,2026-01-0{1 + i % 5}T08:00:00Z{extra}"
    )


def subs_file(rows: list[str], header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def good_batch(n: int = 40) -> str:
    return subs_file([sub_row(i) for i in range(n)])


def test_ingests_typed_rows_with_lineage(lakehouse):
    lakehouse.drop(SUBS.format(d="2026-01-05"), good_batch(40))
    result = lakehouse.materialize("raw/billing_subscriptions")
    assert result.success
    table = lakehouse.lake.read("raw", "billing_subscriptions")
    assert table.num_rows == 40
    assert table.schema.field("mrr").type == "double"
    assert pc.sum(table["mrr"]).as_py() == 40 * 1200
    row = table.filter(pc.equal(table["subscription_id"], "sub_3")).to_pylist()[0]
    assert row["_source_file"] == "billing/subscriptions/2026-01-05/subscriptions.csv"
    assert row["_line"] == 5  # header is line 1, sub_0 line 2
    assert '"subscription_id": "sub_3"' in row["_payload"]
    assert str(row["_extract_date"]) == "2026-01-05"
    assert row["_ingested_at"] is not None
    gate = check_evaluations(result)["raw/billing_subscriptions"]
    assert gate.passed
    assert gate.metadata["rows_validated"].value == 40
    meta = result.asset_materializations_for_node("raw__billing_subscriptions")[0].metadata
    assert meta["dagster/row_count"].value == 40
    assert meta["rows_written"].value == 40  # streamed commit: counted from its own metrics
    assert meta["delta_version"].value == 1  # version 0: the table created empty (the claim)
    assert meta["dagster/uri"].value.endswith("raw/billing_subscriptions")
    assert "mrr" in {c.name for c in meta["dagster/column_schema"].schema.columns}
    assert "| subscription_id |" in meta["preview"].value


def test_rerun_on_same_files_adds_nothing(lakehouse):
    lakehouse.drop(SUBS.format(d="2026-01-05"), good_batch(30))
    assert lakehouse.materialize("raw/billing_subscriptions").success
    version = lakehouse.lake.version("raw", "billing_subscriptions")

    assert lakehouse.materialize("raw/billing_subscriptions").success
    assert lakehouse.lake.version("raw", "billing_subscriptions") == version
    assert lakehouse.lake.read("raw", "billing_subscriptions").num_rows == 30

    # The same content delivered again under another name is recognised, not re-ingested.
    lakehouse.drop("billing/subscriptions/2026-01-12/subscriptions_resent.csv", good_batch(30))
    assert lakehouse.materialize("raw/billing_subscriptions").success
    assert lakehouse.lake.read("raw", "billing_subscriptions").num_rows == 30
    log = lakehouse.lake.read("raw", "ingest_log").to_pylist()
    resent = [r for r in log if r["source_file"].endswith("subscriptions_resent.csv")]
    assert resent and resent[0]["duplicate_of"].endswith("2026-01-05/subscriptions.csv")
    assert resent[0]["rows_published"] == 0


def test_new_file_appends_only_its_rows(lakehouse):
    lakehouse.drop(SUBS.format(d="2026-01-05"), good_batch(10))
    assert lakehouse.materialize("raw/billing_subscriptions").success
    lakehouse.drop(SUBS.format(d="2026-01-12"), subs_file([sub_row(i) for i in range(100, 105)]))
    assert lakehouse.materialize("raw/billing_subscriptions").success
    table = lakehouse.lake.read("raw", "billing_subscriptions")
    assert table.num_rows == 15
    assert lakehouse.lake.version("raw", "billing_subscriptions") == 2  # created, then two


def test_quarantine_rows_carry_file_line_and_rule(lakehouse):
    rows = [sub_row(i) for i in range(100)]  # 4 bad rows: under the 5% threshold
    rows[3] = sub_row(3, mrr="N/A")  # line 5
    rows[7] = sub_row(7, status="paused")  # line 9
    rows[10] = "sub_10,cus_10,growth"  # line 12: wrong field count
    rows[20] = sub_row(20, mrr="-5")  # line 22
    lakehouse.drop(SUBS.format(d="2026-01-05"), subs_file(rows))
    result = lakehouse.materialize("raw/billing_subscriptions", "raw/quarantine")
    assert result.success
    q = lakehouse.lake.read("raw", "quarantine").to_pylist()
    got = {(r["line"], r["rule"]) for r in q}
    assert got == {
        (5, "type(mrr)"),
        (9, "accepted_values(status)"),
        (12, "field_count"),
        (22, "range(mrr)"),
    }
    assert all(r["source_file"] == "billing/subscriptions/2026-01-05/subscriptions.csv" for r in q)
    assert all(r["table_name"] == "billing_subscriptions" for r in q)
    assert next(r for r in q if r["line"] == 5)["detail"] == "mrr = N/A is not a valid float"
    published = lakehouse.lake.read("raw", "billing_subscriptions")
    assert published.num_rows == 96
    # No rule-breaking row reached the published table.
    ids = set(published["subscription_id"].to_pylist())
    assert not ids & {"sub_3", "sub_7", "sub_10", "sub_20"}


def test_json_lines_bad_line_and_missing_id_are_quarantined(lakehouse):
    ok = (
        '{"event_id":"e%d","workspace_id":"ws_1","user_id":"usr_1","event_type":"api_call",'
        '"timestamp":"2026-01-05T10:00:00Z","session_id":"s1","feature_adoption_score":0.4}'
    )
    lines = [ok % i for i in range(50)]
    lines[4] = lines[4][:40]  # truncated line 5
    lines[9] = lines[9].replace('"event_id":"e9",', "")  # line 10: no event id
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    lakehouse.drop("product/usage_events/2026-01-05/usage_events.jsonl.gz", data)
    assert lakehouse.materialize("raw/product_usage_events").success
    q = {(r["line"], r["rule"]) for r in lakehouse.lake.read("raw", "quarantine").to_pylist()}
    assert q == {(5, "invalid_json"), (10, "not_null(event_id)")}
    assert lakehouse.lake.read("raw", "product_usage_events").num_rows == 48


def test_bad_batch_leaves_table_unchanged_and_skips_downstream(lakehouse):
    lakehouse.drop(SUBS.format(d="2026-01-05"), good_batch(20))
    assert lakehouse.materialize("raw/billing_subscriptions", "raw/quarantine").success
    version = lakehouse.lake.version("raw", "billing_subscriptions")
    before = lakehouse.lake.read("raw", "billing_subscriptions")
    q_version = lakehouse.lake.version("raw", "quarantine")

    # 10 of 20 rows break a rule: far past the 5% quarantine threshold.
    bad = [sub_row(i, mrr="N/A" if i % 2 else "900") for i in range(200, 220)]
    lakehouse.drop(SUBS.format(d="2026-01-12"), subs_file(bad))
    result = lakehouse.materialize("raw/billing_subscriptions", "raw/quarantine")

    assert not result.success
    assert lakehouse.lake.version("raw", "billing_subscriptions") == version
    assert lakehouse.lake.read("raw", "billing_subscriptions").equals(before)
    assert lakehouse.lake.version("raw", "quarantine") == q_version
    gate = check_evaluations(result)["raw/billing_subscriptions"]
    assert not gate.passed
    assert "quarantine_share" in gate.metadata["failed"].value[0]
    assert "raw/quarantine" not in materialized(result)  # downstream did not run
    # The file stays pending: it is retried (and fails again) until it is fixed or removed.
    assert not lakehouse.materialize("raw/billing_subscriptions").success


def test_schema_drift_keeps_the_new_column(lakehouse):
    """An undeclared column is kept as text, never guessed: '0.15' stays '0.15'."""
    lakehouse.drop(SUBS.format(d="2026-01-05"), good_batch(10))
    assert lakehouse.materialize("raw/billing_subscriptions").success
    drift = subs_file(
        [sub_row(i, extra=",0.15") for i in range(50, 60)], header=HEADER + ",discount_pct"
    )
    lakehouse.drop(SUBS.format(d="2026-01-12"), drift)
    result = lakehouse.materialize("raw/billing_subscriptions")
    assert result.success
    table = lakehouse.lake.read("raw", "billing_subscriptions")
    assert table.schema.field("discount_pct").type == "string"
    by_id = {r["subscription_id"]: r["discount_pct"] for r in table.to_pylist()}
    assert by_id["sub_55"] == "0.15" and by_id["sub_5"] is None
    assert table.num_rows == 20


def test_type_change_is_rejected_with_a_clear_error(lakehouse):
    """A declared typed column whose every value fails in a file is a type change: refused.
    (An undeclared column is text: a later non-numeric value there is no type change.)"""
    drift = subs_file(
        [sub_row(i, extra=",0.15") for i in range(10)], header=HEADER + ",discount_pct"
    )
    lakehouse.drop(SUBS.format(d="2026-01-05"), drift)
    assert lakehouse.materialize("raw/billing_subscriptions").success
    changed = subs_file(
        [sub_row(i, extra=",ten percent") for i in range(10, 20)], header=HEADER + ",discount_pct"
    )
    lakehouse.drop(SUBS.format(d="2026-01-12"), changed)
    assert lakehouse.materialize("raw/billing_subscriptions").success
    version = lakehouse.lake.version("raw", "billing_subscriptions")

    money = subs_file([sub_row(i, mrr="$1,200.00") for i in range(30, 40)])
    lakehouse.drop(SUBS.format(d="2026-01-19"), money.replace(",$1,200.00,", ',"$1,200.00",'))
    result = lakehouse.materialize("raw/billing_subscriptions")
    assert not result.success
    gate = check_evaluations(result)["raw/billing_subscriptions"]
    assert not gate.passed
    text = gate.description
    assert "'mrr'" in text and "2026-01-19/subscriptions.csv" in text and "type_change(mrr)" in text
    assert lakehouse.lake.version("raw", "billing_subscriptions") == version


def test_interrupted_commit_is_finished_without_duplicates(lakehouse, monkeypatch):
    """A run that died after the raw commit but before the log commit must not double rows."""
    from resources.lake import LakeResource

    lakehouse.drop(SUBS.format(d="2026-01-05"), good_batch(25))
    real_publish = LakeResource.publish

    def dies_before_log(self, layer, table, *args, **kwargs):
        if table == "ingest_log":
            raise RuntimeError("killed before the log commit")
        return real_publish(self, layer, table, *args, **kwargs)

    monkeypatch.setattr(LakeResource, "publish", dies_before_log)
    assert not lakehouse.materialize("raw/billing_subscriptions").success
    assert lakehouse.lake.read("raw", "billing_subscriptions").num_rows == 25
    monkeypatch.setattr(LakeResource, "publish", real_publish)

    assert lakehouse.materialize("raw/billing_subscriptions").success
    table = lakehouse.lake.read("raw", "billing_subscriptions")
    assert table.num_rows == 25
    assert len(lakehouse.lake.read("raw", "ingest_log")) == 1


def test_a_log_row_breaking_its_suite_fails_the_step_and_leaves_the_log(lakehouse, monkeypatch):
    """raw/ingest_log is written by the raw assets, not by an asset of its own: its rows are
    validated with its suite as they are appended. A bad decision row (here an unknown
    decision and a negative count, as a bug would write them) fails the step and leaves the
    log at its version; once fixed, the next run logs the files and publishes no row twice."""
    import assets.raw.ingest as ingest

    lakehouse.drop(SUBS.format(d="2026-01-05"), good_batch(10))
    assert lakehouse.materialize("raw/billing_subscriptions").success
    log_version = lakehouse.lake.version("raw", "ingest_log")
    log_before = lakehouse.lake.read("raw", "ingest_log")

    real_row = ingest._log_row

    def broken_row(*args, **kwargs):
        return {**real_row(*args, **kwargs), "decision": "accepted", "rows_read": -1}

    monkeypatch.setattr(ingest, "_log_row", broken_row)
    lakehouse.drop(SUBS.format(d="2026-01-12"), subs_file([sub_row(i) for i in range(50, 55)]))
    result = lakehouse.materialize("raw/billing_subscriptions")
    assert not result.success
    assert lakehouse.lake.version("raw", "ingest_log") == log_version
    assert lakehouse.lake.read("raw", "ingest_log").equals(log_before)
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.event_specific_data.error.message
    assert "raw/ingest_log" in message
    assert "[FAIL] expect_column_values_to_be_in_set(column='decision'" in message
    assert "[FAIL] expect_column_values_to_be_between(column='rows_read'" in message

    monkeypatch.setattr(ingest, "_log_row", real_row)
    assert lakehouse.materialize("raw/billing_subscriptions").success
    log = lakehouse.lake.read("raw", "ingest_log").to_pylist()
    assert sorted((r["extract_date"].isoformat(), r["decision"], r["seq"]) for r in log) == [
        ("2026-01-05", "ingested", 1),
        ("2026-01-12", "ingested", 2),
    ]
    rows = lakehouse.lake.read("raw", "billing_subscriptions")
    assert rows.num_rows == 15 and len(set(rows["subscription_id"].to_pylist())) == 15


def test_ingest_log_and_quarantine_keys_hold_where_paths_repeat(lakehouse):
    """The primary keys of the platform's own raw tables are unique where a path is decided
    more than once: a corrected file breaking the same rule on the same line is quarantined
    again (key: content hash and line, not the path), and a file put back to an earlier
    content is logged again (key: the decision's place in its table's order)."""
    from checks.gate import validate
    from checks.raw import INGEST_LOG, QUARANTINE

    rel = SUBS.format(d="2026-01-05")
    first = subs_file([sub_row(i, mrr="N/A" if i == 3 else "1200") for i in range(40)])
    second = subs_file([sub_row(i, mrr="N/A" if i == 3 else "1300") for i in range(40)])
    for content in (first, second, first):
        lakehouse.drop(rel, content)
        assert lakehouse.materialize("raw/billing_subscriptions", "raw/quarantine").success
    log = lakehouse.lake.read("raw", "ingest_log")
    quarantine = lakehouse.lake.read("raw", "quarantine")
    assert [(r["decision"], r["seq"]) for r in log.sort_by("seq").to_pylist()] == [
        ("ingested", 1),
        ("replaced", 2),
        ("duplicate", 3),
    ]
    paths = {(r["source_file"], r["file_sha256"]) for r in log.to_pylist()}
    assert len(paths) == 2  # (path, content) repeats: it is no key of the log
    assert [(r["line"], r["rule"]) for r in quarantine.to_pylist()] == [(5, "type(mrr)")] * 2
    for contract, table in ((INGEST_LOG, log), (QUARANTINE, quarantine)):
        gate = validate(contract.name, contract.suite(), table)
        assert gate.passed, gate.report()
        keys = {tuple(r[k] for k in contract.primary_key) for r in table.to_pylist()}
        assert len(keys) == table.num_rows, contract.name


@pytest.mark.parametrize("content", ["", "subscription_id,customer_id\n"])
def test_empty_and_header_only_files_publish_nothing(lakehouse, content):
    lakehouse.drop(SUBS.format(d="2026-01-05"), good_batch(5))
    lakehouse.drop("billing/subscriptions/2026-01-12/subscriptions.csv", content)
    result = lakehouse.materialize("raw/billing_subscriptions")
    assert result.success
    assert lakehouse.lake.read("raw", "billing_subscriptions").num_rows == 5


def test_metadata_preview_never_shows_pii(lakehouse):
    contacts = [
        {
            "Id": f"003{i:012d}",
            "AccountId": "001000000000001",
            "FirstName": "Ada",
            "LastName": "Lovelace",
            "Email": f"ada{i}@example.com",
            "Phone": "+44 20 7946 0000",
            "CreatedDate": "2026-01-01T00:00:00Z",
            "LastModifiedDate": "2026-01-02T00:00:00Z",
        }
        for i in range(10)
    ]
    lakehouse.drop("crm/contacts/2026-01-05/contacts.json", json.dumps(contacts))
    result = lakehouse.materialize("raw/crm_contacts")
    assert result.success
    preview = result.asset_materializations_for_node("raw__crm_contacts")[0].metadata["preview"]
    assert "@example.com" not in preview.value and "Lovelace" not in preview.value
    assert "•••" in preview.value


@pytest.mark.parametrize("raced", ["quarantine", "billing_subscriptions", "ingest_log"])
def test_two_writers_of_the_same_files_publish_each_row_once(
    lakehouse, monkeypatch, tmp_path, raced
):
    """Two runs that both read the lake before either committed (two processes Dagster's pool
    failed to keep apart). The first commits everything just after the second read `raced`: the
    second's commit there loses the Delta claim, re-reads, and adds nothing anywhere."""
    from assets.raw.ingest import build_batch, commit, find_pending
    from checks.sources import raw_contracts
    from resources.duckdb import DuckDBResource
    from resources.lake import LakeResource

    RAW_TABLES = raw_contracts()

    rows = [sub_row(i) for i in range(60)]
    rows[4] = sub_row(4, status="paused")  # one quarantined row: its table is claimed too
    lakehouse.drop(SUBS.format(d="2026-01-05"), subs_file(rows))
    lakehouse.drop(SUBS.format(d="2026-01-12"), subs_file([sub_row(i) for i in range(60, 90)]))
    contract = next(c for c in RAW_TABLES if c.table == "billing_subscriptions")
    res = lakehouse.resources
    lake, landing = res["lake"], res["landing"]

    def batch(stage):
        stage.mkdir()
        with DuckDBResource(threads=1).connect() as con:
            return build_batch(contract, find_pending(contract, landing, lake), lake, con, stage)

    first, second = batch(tmp_path / "a"), batch(tmp_path / "b")  # both see two new files
    assert len(first.pending) == len(second.pending) == 2

    real_claim, claims = LakeResource.claim, []

    def claim_then_lose(self, layer, table, app_id, *args):
        taken = real_claim(self, layer, table, app_id, *args)
        claims.append(table)
        if table == raced and claims.count(table) == 1:
            monkeypatch.setattr(LakeResource, "claim", real_claim)
            commit(first, lake)
            monkeypatch.setattr(LakeResource, "claim", claim_then_lose)
        return taken

    monkeypatch.setattr(LakeResource, "claim", claim_then_lose)
    published = commit(second, lake)
    monkeypatch.setattr(LakeResource, "claim", real_claim)

    table = lake.read("raw", "billing_subscriptions")
    assert table.num_rows == 89
    line = pc.cast(table["_line"], "string")
    keys = pc.binary_join_element_wise(table["_source_file"], line, ":")
    assert pc.count_distinct(keys).as_py() == 89
    # Version 0 is the empty table the first claim created, 1 the first run's rows: the second
    # added no version. Its rows went in before it lost the log's race: it says so, once.
    assert lake.version("raw", "billing_subscriptions") == 1
    assert published.version == 1
    assert published.rows_written == (89 if raced == "ingest_log" else 0)
    assert [r["line"] for r in lake.read("raw", "quarantine").to_pylist()] == [6]
    log = lake.read("raw", "ingest_log").to_pylist()
    assert sorted(r["source_file"] for r in log) == sorted(
        SUBS.format(d=d) for d in ("2026-01-05", "2026-01-12")
    )
    # The second writer's lost commit was retried: its claims were taken again.
    assert claims.count(raced) == 2, claims


def _visible(lakehouse, table: str) -> list[dict]:
    """The raw rows every layer above reads (`register_raw`)."""
    import duckdb

    from assets.entities.records import register_raw

    con = duckdb.connect()
    register_raw(con, lakehouse.lake, {f"raw/{table}"})
    return con.sql(f"SELECT * FROM v_raw__{table} ORDER BY _line").to_arrow_table().to_pylist()


def test_a_rewritten_file_keeps_naming_its_rows_through_erasure_and_a_later_version(lakehouse):
    """Erasure rewrites landing files in place. The rows of the rewritten version take its new
    hash, so they stay visible, and a later corrected delivery still supersedes them (no row is
    shown twice, none hidden)."""
    import hashlib

    from assets.privacy.landing import LANDING, FileRewrite, update_ingest_log
    from resources.duckdb import connect

    rel = SUBS.format(d="2026-01-05")
    path = lakehouse.drop(rel, good_batch(40))
    assert lakehouse.materialize("raw/billing_subscriptions").success
    path.write_text(subs_file([sub_row(i, mrr="1300") for i in range(40)]))  # corrected
    assert lakehouse.materialize("raw/billing_subscriptions").success
    assert [r["mrr"] for r in _visible(lakehouse, "billing_subscriptions")] == [1300.0] * 40

    erased = subs_file([sub_row(i, mrr="1300") for i in range(1, 40)])  # as erasure leaves it
    path.write_text(erased)
    st = path.stat()
    sha = hashlib.sha256(erased.encode()).hexdigest()
    with connect() as con:
        update_ingest_log(
            con,
            lakehouse.lake,
            [FileRewrite(LANDING, rel, 1, 0, sha, st.st_size, st.st_mtime_ns)],
        )
    seen = _visible(lakehouse, "billing_subscriptions")
    assert len(seen) == 40 and {r["_file_sha256"] for r in seen} == {sha}
    assert lakehouse.materialize("raw/billing_subscriptions").success  # nothing new to read
    assert len(_visible(lakehouse, "billing_subscriptions")) == 40

    path.write_text(subs_file([sub_row(i, mrr="1400") for i in range(1, 40)]))  # a later version
    assert lakehouse.materialize("raw/billing_subscriptions").success
    assert [r["mrr"] for r in _visible(lakehouse, "billing_subscriptions")] == [1400.0] * 39


def _persons_named_by_the_rules() -> set[tuple[str, str]]:
    """(raw table, expression) pairs the identity rules and the event mapping read a person
    from (both derived from the catalog's roles): a person record's id and fields, an event's
    person reference."""
    from assets.entities.rules import load_rules
    from assets.events.mapping import load_mapping

    named = set()
    for s in load_rules().persons.sources:
        named |= {(s.table, e) for e in [s.id, *s.fields.values()]}
    named |= {(s.table, r.expr) for s in load_mapping().sources for r in s.person}
    return named


def test_every_raw_table_holding_a_person_identifier_is_tagged_pii(defs):
    """A table whose rows name a person (their id in a system, a name, an email) is personal
    data: its asset is tagged pii=true, however pseudonymous the id."""
    from dagster import AssetKey

    from checks.sources import raw_contracts

    RAW_TABLES = raw_contracts()

    graph = defs.resolve_asset_graph()
    tags = {c.name: graph.get(AssetKey([c.layer, c.table])).tags["pii"] for c in RAW_TABLES}
    named = _persons_named_by_the_rules()
    assert {t for t, _ in named} <= {n for n, tag in tags.items() if tag == "true"}
    contracts = {c.name: c for c in RAW_TABLES}
    # A column the rules read a person from is declared personal in its contract ...
    columns = {(t, e) for t, e in named if re.fullmatch(r"\w+", e)}
    assert {(t, e) for t, e in columns if e not in contracts[t].personal_columns} == set()
    assert ("raw/product_usage_events", "user_id") in columns
    # ... and the tag follows the contract: no personal data, no pii tag (account facts).
    assert tags == {n: str(c.holds_personal_data).lower() for n, c in contracts.items()}
    assert tags["raw/billing_invoices"] == tags["raw/risk_signals"] == "false"


def test_raw_descriptions_tell_delta_partitions_from_dagster_partitions(defs):
    """A raw asset has no Dagster partitions: a description that mentions partitions says they
    are the Delta table's file layout, and names the partition columns."""
    from dagster import AssetKey

    from checks.sources import raw_contracts

    RAW_TABLES = raw_contracts()

    graph = defs.resolve_asset_graph()
    for c in RAW_TABLES:
        node = graph.get(AssetKey([c.layer, c.table]))
        assert node.partitions_def is None, c.name
        sentences = re.split(r"(?<=\.)\s+", node.description)
        said = [s for s in sentences if "partition" in s.lower()]
        for s in said:
            assert "Delta table" in s and "not Dagster partitions" in s, (c.name, s)
        assert bool(said) == bool(c.partition_by), c.name
        for column in c.partition_by:
            assert any(f"`{column}`" in s for s in said), (c.name, column)
