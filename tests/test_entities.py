"""The entities layer on a small sample company: ids that persist, decisions that hold, gates that
stop bad tables, and quality measured against the generator's ground truth."""

from __future__ import annotations

import csv
import json
import shutil
from itertools import combinations
from pathlib import Path

import pyarrow.compute as pc
import pytest

from assets.entities.decide import append_decision
from assets.entities.evaluate import evaluate
from checks.entities import ENTITY_TABLES, IDENTITY_TABLES
from conftest import Lakehouse, check_evaluations, load_definitions

ACCOUNTS, DAYS, SEED = 80, 90, 5
FIRST_CUT = "2026-09-30"  # the first run sees the extracts up to here; the second sees them all


def _links(lake) -> dict[str, str | None]:
    t = lake.read("entities", "identity_links")
    return dict(zip(t["record_key"].to_pylist(), t["canonical_id"].to_pylist(), strict=True))


def _versions(lake) -> dict[str, int]:
    return {c.name: lake.version(c.layer, c.table) for c in (*IDENTITY_TABLES, *ENTITY_TABLES)}


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A lakehouse run on part of the company's history, then again after more extracts land."""
    from sample_company.generate import generate

    root = tmp_path_factory.mktemp("entities")
    landing = root / "landing"
    generate(landing, accounts=ACCOUNTS, days=DAYS, seed=SEED, write_through=FIRST_CUT)
    house = Lakehouse(root / "lake", landing, load_definitions())
    first = house.materialize()
    assert first.success
    before = _links(house.lake)
    generate(landing, accounts=ACCOUNTS, days=DAYS, seed=SEED)
    second = house.materialize()
    assert second.success
    return house, before, second


@pytest.fixture
def scratch(grown, tmp_path) -> Lakehouse:
    """A copy of the grown lake (decisions file included) for a test that changes it: the
    module's lake is never touched, so no test depends on another having cleaned up."""
    house, _, _ = grown
    shutil.copytree(house.lake_root, tmp_path / "lake", symlinks=True)
    return Lakehouse(tmp_path / "lake", house.landing_root, house.defs)


def _truth(house: Lakehouse, name: str) -> list[dict[str, str]]:
    with (house.landing_root / "_truth" / name).open(newline="") as f:
        return list(csv.DictReader(f))


def _latest_raw(house: Lakehouse, table: str, key: str, order: str) -> dict[str, dict]:
    """Each source record's latest version, straight from the raw table."""
    latest: dict[str, dict] = {}
    for r in house.lake.read("raw", table).to_pylist():
        k = (r[order], r["_extract_date"], r["_line"])
        if r[key] not in latest or k > latest[r[key]][0]:
            latest[r[key]] = (k, r)
    return {k: r for k, (_, r) in latest.items()}


def test_more_data_keeps_every_existing_id(grown):
    house, before, _ = grown
    after = _links(house.lake)
    merges = house.lake.read("entities", "identity_merges")
    moved = dict(zip(merges["old_id"].to_pylist(), merges["surviving_id"].to_pylist(), strict=True))
    assert len(after) > len(before)  # the new extracts brought new source records
    for key, cid in before.items():
        if cid is not None:
            assert after[key] in (cid, moved.get(cid)), key
    kept = sum(after[k] == c for k, c in before.items() if c)
    assert kept >= 0.99 * sum(1 for c in before.values() if c)


def test_rerun_on_same_data_changes_no_id_and_no_version(grown):
    house, _, _ = grown
    ids, versions = _links(house.lake), _versions(house.lake)
    result = house.materialize(*(c.name for c in (*IDENTITY_TABLES, *ENTITY_TABLES)))
    assert result.success
    assert _links(house.lake) == ids
    assert _versions(house.lake) == versions


def test_every_record_linked_once_and_gates_pass(grown):
    house, _, result = grown
    gates = check_evaluations(result)
    for c in (*IDENTITY_TABLES, *ENTITY_TABLES):
        assert gates[c.name].passed, c.name
    links = house.lake.read("entities", "identity_links")
    keys = links.select(["entity_type", "record_key"]).to_pylist()
    assert len(keys) == len({(k["entity_type"], k["record_key"]) for k in keys})
    # every company record without an account is in the audit, with its reason
    orphans = links.filter(pc.is_null(links["canonical_id"]))
    unmapped = house.lake.read("entities", "unmapped_ids")
    listed = {
        f"{r['system']}/{r['object']}:{r['source_id']}"
        for r in unmapped.filter(
            pc.equal(unmapped["reason"], "no_system_of_record_match")
        ).to_pylist()
    }
    assert set(orphans["record_key"].to_pylist()) == listed


def test_identity_quality_against_ground_truth(grown):
    house, _, _ = grown
    scores = {
        s.entity_type: s
        for s in evaluate(
            house.lake.read("entities", "identity_links"),
            house.landing_root / "_truth",
            house.resources["pii"].resolve_salt(str(house.lake_root)),
        )
    }
    for s in scores.values():
        assert s.records > 100
        assert s.precision >= 0.995, s
        assert s.f1 >= 0.98, s


def test_relationships_and_subscriptions_point_at_real_entities(grown):
    house, _, _ = grown
    lake = house.lake
    accounts = set(lake.read("entities", "account")["account_id"].to_pylist())
    people = set(lake.read("entities", "person")["person_id"].to_pylist())
    rel = lake.read("entities", "relationship")
    assert set(rel["account_id"].to_pylist()) <= accounts
    assert set(rel["person_id"].to_pylist()) <= people
    subs = lake.read("entities", "subscription")
    assert set(subs["account_id"].drop_null().to_pylist()) <= accounts
    # what was true at signup: every subscription has a plan interval at its start
    hist = lake.read("entities", "attribute_history")
    plans = hist.filter(pc.equal(hist["attribute"], "plan_tier"))
    first_plan = {
        r["entity_id"]: r["value"]
        for r in plans.sort_by([("valid_from", "descending")]).to_pylist()
    }
    for s in subs.to_pylist():
        assert first_plan[s["subscription_id"]] == s["first_plan_tier"]


def test_accounts_are_the_companys_accounts(grown):
    """The account table against the generator's ground truth and the raw CRM records: each
    CRM record in exactly one account, no account holding two companies, every company with a
    CRM record there, and one company in two accounts only while that pair waits for review.
    Each account has the name, type and owner its primary CRM record last had."""
    house, _, _ = grown
    crm = _latest_raw(house, "crm_accounts", "id", "last_modified_date")
    company_of = {
        r["source_id"]: r["account_key"]
        for r in _truth(house, "source_records.csv")
        if (r["system"], r["object"]) == ("crm", "accounts") and r["source_id"] in crm
    }
    assert company_of.keys() == crm.keys()  # the truth knows every CRM record that landed
    companies = {r["account_key"] for r in _truth(house, "accounts.csv")}
    assert len(set(company_of.values())) >= 0.9 * ACCOUNTS and set(company_of.values()) <= companies
    rows = house.lake.read("entities", "account").to_pylist()
    assert len(rows) == len({r["account_id"] for r in rows})
    held: list[str] = []
    accounts_of: dict[str, set[str]] = {}
    for r in rows:
        ids = json.loads(r["source_ids"])["crm/accounts"]
        held += ids
        keys = {company_of[i] for i in ids}
        assert len(keys) == 1, (r["account_id"], keys)  # no two companies merged
        accounts_of.setdefault(keys.pop(), set()).add(r["account_id"])
        assert r["primary_crm_account_id"] in ids
        primary = crm[r["primary_crm_account_id"]]
        got = (r["name"], r["crm_type"], r["owner_name"])
        assert got == (primary["name"], primary["type"], primary["owner_name"])
    assert sorted(held) == sorted(crm)  # every CRM record in one account, none twice
    assert accounts_of.keys() == set(company_of.values())  # every company is there
    review = house.lake.read("entities", "identity_review").to_pylist()
    pending = {
        frozenset((p["left_canonical_id"], p["right_canonical_id"]))
        for p in review
        if p["entity_type"] == "account" and p["status"] == "pending"
    }
    for company, ids in accounts_of.items():
        if len(ids) > 1:  # kept apart only by a pair a person has to decide
            assert all(frozenset(pair) in pending for pair in combinations(sorted(ids), 2)), (
                company,
                ids,
            )


def test_confirmed_decision_is_honoured_on_every_run(scratch):
    house = scratch
    review = house.lake.read("entities", "identity_review")
    assert review.num_rows > 0, "the sample company always leaves some pairs for review"
    pair = review.to_pylist()[0]
    assert pair["left_canonical_id"] != pair["right_canonical_id"]
    decisions = house.lake_root / "decisions" / "identity_decisions.csv"
    append_decision(
        Path(decisions),
        {
            "entity_type": pair["entity_type"],
            "left_record": pair["left_record"],
            "right_record": pair["right_record"],
            "decision": "same",
            "decided_by": "test",
            "decided_at": "2026-11-01T00:00:00Z",
            "note": "",
        },
    )
    for _ in range(2):
        assert house.materialize(*(c.name for c in IDENTITY_TABLES)).success
        links = _links(house.lake)
        assert links[pair["left_record"]] == links[pair["right_record"]]
        pending = house.lake.read("entities", "identity_review")["pair_id"].to_pylist()
        assert pair["pair_id"] not in pending


def test_broken_foreign_key_fails_gate_and_keeps_table(scratch):
    house = scratch
    lake = house.lake
    before = lake.version("entities", "workspace")
    rows_before = lake.read("entities", "workspace")
    # an account table that lost an account the workspaces still point at
    accounts = lake.read("entities", "account")
    victim = rows_before.filter(pc.is_valid(rows_before["account_id"]))["account_id"][0].as_py()
    lake.publish(
        "entities",
        "account",
        accounts.filter(pc.not_equal(accounts["account_id"], victim)),
        mode="overwrite",
    )
    result = house.materialize("entities/workspace")
    assert not result.success
    gate = check_evaluations(result)["entities/workspace"]
    assert not gate.passed
    assert victim in str(gate.metadata["results"].value)  # the check names the dangling id
    assert lake.version("entities", "workspace") == before
    assert lake.read("entities", "workspace").equals(rows_before)


def test_every_entities_table_about_people_is_tagged_pii(defs):
    """A table whose rows are about people (a person's own record, a person's id, a personal
    value) is tagged pii=true, from its contract: the identity map and the merge log name
    people by their ids, however pseudonymous."""
    from dagster import AssetKey

    graph = defs.resolve_asset_graph()
    tables = (*IDENTITY_TABLES, *ENTITY_TABLES)
    tags = {c.name: graph.get(AssetKey([c.layer, c.table])).tags["pii"] for c in tables}
    assert tags == {c.name: str(c.holds_personal_data).lower() for c in tables}
    person_ids = {
        "entities/identity_links": {"source_id", "record_key", "canonical_id"},
        "entities/identity_review": {"left_record", "right_record", "left_canonical_id"},
        "entities/identity_merges": {"old_id", "surviving_id"},
        "entities/unmapped_ids": {"source_id"},
        "entities/person": {"person_id", "email_hash"},
        "entities/relationship": {"person_id", "source_record"},
        "entities/attribute_history": {"entity_id", "source_record"},
    }
    for c in tables:
        assert person_ids.get(c.name, set()) <= set(c.personal_columns), c.name
        assert tags[c.name] == "true" or c.name not in person_ids, c.name
    # account facts are not about people: no pii tag
    assert tags["entities/workspace"] == tags["entities/subscription"] == "false"
