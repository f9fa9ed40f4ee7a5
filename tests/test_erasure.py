"""Erasure: after a request, the person's email, name and ids are in no file under the lake,
old versions cannot bring them back, the CRM forgets them, and nobody else is touched."""

from __future__ import annotations

import collections
import csv
import gzip
import json
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from assets.reverse_etl.erasure import ERASED, WORK_DIR, Needles, write_request
from conftest import Lakehouse, build_whole_graph, materialized


def scan(root: Path, needles: list[str]) -> list[tuple[str, str]]:
    """Every file under the lake: Parquet files decoded (referenced by a Delta log or not, the
    logs' checkpoints included), every other file read as bytes (gzip opened)."""
    low = [n.lower() for n in needles]
    hits = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            text = json.dumps(pq.read_table(path).to_pylist(), default=str)
        else:
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            text = data.decode("utf-8", "replace")
        text = text.lower()
        hits += [(str(path.relative_to(root)), n) for n in low if n in text]
    return hits


def tables(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("_delta_log") if ".dagster" not in p.parts)


@pytest.fixture(scope="module")
def house(full_lake) -> Lakehouse:
    return full_lake


@pytest.fixture(scope="module")
def person(house) -> dict:
    """A person known to the CRM, the product and the consent system, with a unique name;
    their values as the lake held them before the request."""
    truth = house.landing_root / "_truth"
    people = list(csv.DictReader((truth / "people.csv").open()))
    records = list(csv.DictReader((truth / "source_records.csv").open()))
    names = collections.Counter((p["first_name"], p["last_name"]) for p in people)
    by_person = collections.defaultdict(set)
    for r in records:
        by_person[r["person_key"]].add(f"{r['system']}/{r['object']}")
    active = set(house.lake.read("raw", "product_usage_events")["user_id"].unique().to_pylist())
    users = {r["source_id"]: r["person_key"] for r in records if r["object"] == "users"}
    with_usage = {users[u] for u in active if u in users}
    p = next(
        p
        for p in people
        if names[(p["first_name"], p["last_name"])] == 1
        and {"crm/contacts", "product/users", "consent/records"} <= by_person[p["person_key"]]
        and p["person_key"] in with_usage
    )
    ids = [r["source_id"] for r in records if r["person_key"] == p["person_key"]]
    links = house.lake.read("entities", "identity_links").to_pylist()
    canonical = sorted({r["canonical_id"] for r in links if r["source_id"] in ids})
    assert len(canonical) == 1
    values = [
        p["work_email"],
        p["personal_email"],
        f"{p['first_name']} {p['last_name']}",
        f"{p['last_name']}, {p['first_name']}",
        *ids,
        *canonical,
    ]
    return {"row": p, "values": values, "person_id": canonical[0], "ids": ids}


@pytest.fixture(scope="module")
def erased(house, person):
    root = house.lake_root
    before = {
        "hits": scan(root, person["values"]),
        "versions": {p: DeltaTable(str(p)).version() for p in tables(root)},
        "contacts": house.lake.read("raw", "crm_contacts").num_rows,
        "other_email": next(
            e
            for e in house.lake.read("raw", "crm_contacts")["email"].to_pylist()
            if e and e.lower() != person["row"]["work_email"].lower()
        ),
    }
    request = write_request(house.landing_root, email=person["row"]["work_email"])
    # The CRM is unreachable on the first attempt: the run fails after the lake is erased,
    # and the request must survive that (a work file), not be forgotten.
    from resources.crm import CrmResource

    down = {**house.resources, "crm": CrmResource(kind="http", http_url="http://127.0.0.1:9")}
    from dagster import AssetKey, DagsterInstance, materialize

    selection = [AssetKey(["raw", "consent_records"]), AssetKey(["reverse_etl", "erasure_audit"])]
    failed = materialize(
        list(house.defs.assets),
        selection=selection,
        resources=down,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    pending = sorted((root / WORK_DIR).glob("*.json"))
    result = house.materialize("raw/consent_records", "reverse_etl/erasure_audit")
    return {
        "before": before,
        "failed": failed,
        "pending_after_failure": pending,
        "result": result,
        "request": request,
    }


def test_the_person_was_in_the_lake_before(erased):
    hits = erased["before"]["hits"]
    assert {h[0].split("/")[0] for h in hits} >= {"raw", "entities", "c360", "landing"}


def test_a_failed_attempt_keeps_the_request_pending_and_the_retry_completes(erased, house):
    assert not erased["failed"].success
    assert len(erased["pending_after_failure"]) == 1
    assert erased["result"].success
    assert "reverse_etl/erasure_audit" in materialized(erased["result"])
    assert not list((house.lake_root / WORK_DIR).glob("*.json"))


def test_no_file_under_the_lake_holds_the_person(erased, house, person):
    assert scan(house.lake_root, person["values"]) == []


def test_time_travel_cannot_bring_the_person_back(erased, house):
    for path, version in erased["before"]["versions"].items():
        if path.name == "erasure_audit":
            continue
        with pytest.raises(Exception):  # noqa: B017 - delta-rs raises its own error types
            DeltaTable(str(path), version=version).to_pyarrow_table()
        oldest = min(h["version"] for h in DeltaTable(str(path)).history())
        assert oldest > version, path


def test_the_audit_records_the_request_without_the_values(erased, house, person):
    audit = house.lake.read("reverse_etl", "erasure_audit").to_pylist()
    assert len(audit) == 1
    row = audit[0]
    assert row["request_id"] in erased["request"].name
    assert (row["status"], row["persons"], row["verified"]) == ("erased", 1, True)
    counts = json.loads(row["tables"])
    assert counts["entities/person"]["deleted"] == 1
    assert counts["raw/crm_contacts"]["deleted"] >= 1
    assert counts["raw/product_usage_events"]["redacted"] > 0  # the account keeps its usage
    text = json.dumps(row, default=str).lower()
    assert not any(v.lower() in text for v in person["values"])


def test_only_the_person_is_gone(erased, house, person):
    contacts = house.lake.read("raw", "crm_contacts")
    gone = erased["before"]["contacts"] - contacts.num_rows
    assert 1 <= gone <= 3  # the person's contact versions, nobody else's
    assert erased["before"]["other_email"] in contacts["email"].to_pylist()
    events = house.lake.read("raw", "product_usage_events")
    assert events.num_rows > 0 and ERASED not in "".join(events["user_id"].drop_null().to_pylist())
    people = house.lake.read("entities", "person")["person_id"].to_pylist()
    assert person["person_id"] not in people and len(people) > 10


def test_the_crm_forgets_and_a_rebuild_does_not_bring_the_person_back(erased, house, person):
    crm = house.lake_root / "crm" / "crm.db"
    with sqlite3.connect(crm) as con:
        payloads = " ".join(p for (p,) in con.execute("SELECT payload FROM crm_account_updates"))
    assert not any(v.lower() in payloads.lower() for v in person["values"])
    counts = {
        t: house.lake.read("raw", t).num_rows for t in ("crm_contacts", "product_usage_events")
    }
    # every layer that holds people, again, from the (rewritten) landing zone (features, models
    # and the CRM sync are per account)
    build_whole_graph(house, skip_groups=("features", "ml", "reverse_etl"))
    # rewritten landing files are known to the ingest log: nothing is ingested twice
    assert counts == {t: house.lake.read("raw", t).num_rows for t in counts}
    assert scan(house.lake_root, person["values"]) == []
    second = house.materialize("reverse_etl/erasure_audit")
    assert second.success
    assert house.lake.read("reverse_etl", "erasure_audit").num_rows == 1


def test_needles_match_whole_values_only():
    n = Needles(["ann@x.com", "usr_abc123"], ["Ann Lee"])
    assert n.found_in('{"email": "Ann@X.com"}')
    assert not n.found_in('{"email": "joann@x.com", "user": "usr_abc1234"}')
    assert not n.found_in("Ann Lee wrote")  # a name alone never selects a row
    assert n.redact({"email": "ann@x.com", "note": "from Ann Lee, usr_abc123"}) == {
        "email": None,
        "note": f"from {ERASED}, {ERASED}",
    }
    assert n.redact(["usr_abc123", "usr_other"]) == ["usr_other"]
