"""CRM-sync consent, end to end: the accounts the CRM receives are exactly those whose people
consented, derived by hand from consent records written here, not from the pipeline's columns.

The rule (DESIGN.md "a person who opted out is not sent anywhere"; the `crm_account_updates`
contract): an account is sent when at least one of its people granted CRM sync and none revoked
it. A person's answer for a purpose is their latest consent record for that purpose (by when it
was recorded, not by file or line order); another purpose's answer says nothing about CRM sync.

A small company is written by hand (CRM accounts, contacts, consent records in the sample
company's landing format) and run through raw, entities, event days, lifecycle, the 360, the
CRM updates and the sync to the embedded (SQLite) CRM. The models need a far larger company to
train, so the score tables are published empty: every account's action is then `monitor` with
confidence 1.0, and consent is the only guard between an account and the CRM. The first sync
fails after its first batch reached the CRM (the destination drops the connection); it is run
again, then once more with nothing changed, so the audit shows what was sent across all three.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Lakehouse

SYNC = ("reverse_etl/sync_audit", "reverse_etl/review_queue", "reverse_etl/sync_state")
BATCH = 2  # rows per CRM transaction: the failed first sync leaves exactly one batch behind


@dataclass(frozen=True)
class Case:
    """An account, its contacts, their consent records and whether the CRM must receive it."""

    crm_id: str
    name: str
    # (first name, last name[, email: given when one person is a contact of two accounts])
    contacts: tuple[tuple[str, ...], ...]
    # (contact index, scope, status, recorded day in Jan 2026, extract day in Jan 2026)
    records: tuple[tuple[int, str, str, int, int], ...]
    sent: bool
    why: str


CASES = {
    "all_granted": Case(
        "001ALLGRANTED",
        "Alder Analytics",
        (("Ada", "Ames"), ("Bruno", "Baxter")),
        ((0, "crm_sync", "granted", 2, 5), (1, "crm_sync", "granted", 3, 5)),
        sent=True,
        why="both people granted CRM sync and neither revoked it",
    ),
    "mixed": Case(
        "001MIXEDCONSENT",
        "Birch Biometrics",
        (("Carla", "Conti"), ("Dmitri", "Dvorak")),
        ((0, "crm_sync", "granted", 2, 5), (1, "crm_sync", "revoked", 3, 5)),
        sent=False,
        why="one person revoked CRM sync: a person who opted out is not sent anywhere",
    ),
    "no_record": Case(
        "001NOCONSENT",
        "Cedar Compliance",
        (("Elif", "Erdem"),),
        (),
        sent=False,
        why="nobody ever answered: consent is never assumed",
    ),
    "latest_revokes": Case(
        "001LATESTREVOKES",
        "Dogwood Data",
        (("Farah", "Fischer"),),
        ((0, "crm_sync", "granted", 3, 5), (0, "crm_sync", "revoked", 9, 12)),
        sent=False,
        why="the grant of Jan 3 was revoked on Jan 9: the latest record is the current answer",
    ),
    "revoke_listed_first": Case(
        "001REVOKELISTEDFIRST",
        "Elm Encryption",
        (("Goran", "Gallo"),),
        # the same extract lists the later revocation before the earlier grant
        ((0, "crm_sync", "revoked", 10, 12), (0, "crm_sync", "granted", 6, 12)),
        sent=False,
        why="revoked on Jan 10 after granting on Jan 6: time decides, not the line order",
    ),
    "older_revoke_delivered_late": Case(
        "001LATEOLDREVOKE",
        "Fir Forensics",
        (("Hana", "Hoshino"),),
        # a revocation of Jan 4 arrives in the Jan 19 extract, after the grant of Jan 10
        ((0, "crm_sync", "granted", 10, 12), (0, "crm_sync", "revoked", 4, 19)),
        sent=True,
        why="the person granted on Jan 10, after the Jan 4 revocation that arrived late",
    ),
    "other_purpose_only": Case(
        "001OTHERPURPOSEONLY",
        "Ginkgo Governance",
        (("Ivan", "Ivanov"),),
        ((0, "sales_outreach", "granted", 2, 5), (0, "email_marketing", "granted", 8, 12)),
        sent=False,
        why="granted sales outreach and email marketing, never CRM sync",
    ),
    "other_purpose_revoked_later": Case(
        "001OTHERREVOKED",
        "Hazel Health",
        (("Julia", "Jensen"),),
        ((0, "crm_sync", "granted", 2, 5), (0, "sales_outreach", "revoked", 9, 12)),
        sent=True,
        why="CRM sync granted; the later revocation is of sales outreach, another purpose",
    ),
    "crm_sync_revoked_other_granted": Case(
        "001SYNCREVOKEDOTHERGRANTED",
        "Ivy Insurance",
        (("Kenji", "Kato"),),
        ((0, "crm_sync", "revoked", 3, 5), (0, "sales_outreach", "granted", 9, 12)),
        sent=False,
        why="CRM sync revoked; the later grant is of sales outreach, another purpose",
    ),
    "regranted": Case(
        "001REGRANTED",
        "Juniper Journals",
        (("Lena", "Lindqvist"),),
        (
            (0, "crm_sync", "granted", 2, 5),
            (0, "crm_sync", "revoked", 6, 12),
            (0, "crm_sync", "granted", 11, 12),
        ),
        sent=True,
        why="granted, revoked, then granted again on Jan 11: the latest answer is a grant",
    ),
    "one_granted_one_silent": Case(
        "001ONEGRANTEDONESILENT",
        "Kapok Keys",
        (("Mateo", "Moreno"), ("Nadia", "Novak")),
        ((0, "crm_sync", "granted", 4, 5),),
        sent=True,
        why="one person granted and nobody revoked (the other never answered)",
    ),
    # One person, a contact of two accounts (the same address: identity makes them one).
    "shared_person_home": Case(
        "001SHAREDHOME",
        "Larch Legal",
        (("Quinn", "Quist", "quinn@quist-advisory.example"),),
        ((0, "crm_sync", "revoked", 3, 5),),
        sent=False,
        why="its only person revoked CRM sync",
    ),
    "shared_person_other_account": Case(
        "001SHAREDOTHER",
        "Maple Monitoring",
        (("Rosa", "Rossi"), ("Quinn", "Quist", "quinn@quist-advisory.example")),
        ((0, "crm_sync", "granted", 2, 5),),
        sent=False,
        why="Quinn, one of its people (also a contact of Larch Legal), revoked CRM sync: the "
        "revocation holds for every account of the person, not only the first",
    ),
}
# Written out by hand from the cases above (not computed from `sent`), as the CRM must hold them.
EXPECTED_IN_CRM = {
    "001ALLGRANTED",
    "001LATEOLDREVOKE",
    "001OTHERREVOKED",
    "001REGRANTED",
    "001ONEGRANTEDONESILENT",
}
EXPECTED_HELD_BACK = {
    "001MIXEDCONSENT",
    "001NOCONSENT",
    "001LATESTREVOKES",
    "001REVOKELISTEDFIRST",
    "001OTHERPURPOSEONLY",
    "001SYNCREVOKEDOTHERGRANTED",
    "001SHAREDHOME",
    "001SHAREDOTHER",
}


def _at(day: int, hour: int = 10, minute: int = 0) -> str:
    return f"2026-01-{day:02d}T{hour:02d}:{minute:02d}:00Z"


def _land(h: Lakehouse) -> None:
    """The company in the sample company's export formats (checks/raw.py contracts)."""
    accounts, contacts, consent = [], [], {}
    for n, (key, case) in enumerate(CASES.items()):
        domain = f"{case.name.split()[0].lower()}-{n}.example"
        accounts.append(
            {
                "Id": case.crm_id,
                "Name": case.name,
                "Website": f"https://www.{domain}",
                "Industry": "SaaS",
                "NumberOfEmployees": 20 + n,
                "BillingCountry": "Germany",
                "OwnerName": "Rita Rep",
                "Type": "Prospect",
                "LeadSource": "web",
                "CreatedDate": _at(1, 9),
                "LastModifiedDate": _at(1, 9),
            }
        )
        emails = [
            c[2] if len(c) > 2 else f"{c[0].lower()}.{c[1].lower()}@{domain}" for c in case.contacts
        ]
        for i, (first, last, *_) in enumerate(case.contacts):
            contacts.append(
                {
                    "Id": f"003{case.crm_id[3:]}{i}",
                    "AccountId": case.crm_id,
                    "FirstName": first,
                    "LastName": last,
                    "Email": emails[i],
                    "Title": "Head of Compliance",
                    "Phone": None,
                    "LeadSource": "web",
                    # one minute apart per account: a shared person's first account is fixed
                    "CreatedDate": _at(1, 11, n),
                    "LastModifiedDate": _at(1, 11, n),
                }
            )
        for j, (i, scope, status, day, extract) in enumerate(case.records):
            consent.setdefault(extract, []).append(
                {
                    "record_id": f"cns_{key}_{j}",
                    "email": emails[i],
                    "subject_ref": f"crm:003{case.crm_id[3:]}{i}",
                    "scope": scope,
                    "status": status,
                    "channel": "crm",
                    "recorded_at": _at(day),
                }
            )
    h.drop("crm/accounts/2026-01-05/accounts.json", json.dumps(accounts))
    h.drop("crm/contacts/2026-01-05/contacts.json", json.dumps(contacts))
    for extract, records in consent.items():
        h.drop(f"consent/records/2026-01-{extract:02d}/consent.json", json.dumps(records))


def _sync(h: Lakehouse):
    """The CRM updates and the sync, in batches of BATCH rows."""
    from dagster import AssetKey, DagsterInstance, materialize

    return materialize(
        list(h.defs.assets),
        selection=[AssetKey(k.split("/")) for k in ("reverse_etl/crm_account_updates", *SYNC)],
        resources=h.resources,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={
            "ops": {"sync_to_crm": {"config": {"batch_size": BATCH}}},
            "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        },
    )


def crm_ids(lake_root: Path) -> list[str]:
    """Every account id row in the embedded CRM, read with sqlite3 (duplicates kept)."""
    with sqlite3.connect(lake_root / "crm" / "crm.db") as con:
        return [r[0] for r in con.execute("SELECT crm_account_id FROM crm_account_updates")]


@pytest.fixture(scope="module")
def synced(tmp_path_factory, defs) -> Lakehouse:
    """The hand-written company through the sync: a first sync that fails after one batch, its
    re-run, and a third sync with nothing changed."""
    from assets.events.mapping import load_mapping
    from assets.events.runs import first_day, pending_ranges
    from checks.ml import CHURN_SCORES, EXPANSION_SCORES
    from resources import destinations

    root = tmp_path_factory.mktemp("consent")
    h = Lakehouse(root / "lake", root / "landing", defs)
    _land(h)
    assert h.materialize().success
    for first, last in pending_ranges(
        h.lake, h.resources["pii"], load_mapping(), first_day(h.defs)
    ):
        assert h.materialize_days(first, last).success
    for c in (CHURN_SCORES, EXPANSION_SCORES):  # no model scored yet (see the module docstring)
        h.lake.publish(c.layer, c.table, c.schema.empty_table())
    assert h.materialize(
        "events/account_lifecycle", "c360/customer_360_accounts", "c360/customer_360_people"
    ).success

    upsert, batches = destinations.SQLiteDestination.upsert, []

    def drops_after_first_batch(self, rows, key):
        batches.append(len(rows))
        if len(batches) > 1:
            raise ConnectionError("the CRM closed the connection")
        return upsert(self, rows, key)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(destinations.SQLiteDestination, "upsert", drops_after_first_batch)
        failed = _sync(h)
    assert not failed.success and len(batches) == 2
    assert len(crm_ids(h.lake_root)) == BATCH  # the first batch reached the CRM
    assert _sync(h).success  # the re-run
    assert _sync(h).success  # nothing changed since
    return h


def test_every_case_is_a_different_account():
    """The matrix's expectations cover each case once (guards the hand-written sets)."""
    ids = [c.crm_id for c in CASES.values()]
    assert len(set(ids)) == len(ids) == len(EXPECTED_IN_CRM | EXPECTED_HELD_BACK)
    assert not EXPECTED_IN_CRM & EXPECTED_HELD_BACK


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_crm_holds_an_account_only_with_its_peoples_consent(synced, case):
    c = CASES[case]
    held = set(crm_ids(synced.lake_root))
    assert (c.crm_id in held) is c.sent, c.why
    assert (c.crm_id in EXPECTED_IN_CRM) is c.sent  # the case agrees with the literal set


def test_the_crm_holds_exactly_the_consented_accounts(synced):
    assert sorted(crm_ids(synced.lake_root)) == sorted(EXPECTED_IN_CRM)


def test_each_consented_account_is_sent_once_across_the_failed_sync_and_its_reruns(synced):
    """Counted in the sync audit, not by the CRM's primary key: the first sync's batch was
    re-sent by the re-run (its state never advanced), and audited there, once."""
    audit = synced.lake.read("reverse_etl", "sync_audit").to_pylist()
    sent = Counter(r["crm_account_id"] for r in audit if r["status"] == "sent")
    assert sent == Counter({crm_id: 1 for crm_id in EXPECTED_IN_CRM})


def test_each_account_without_consent_is_held_back_and_audited_once(synced):
    """Held back for consent (not for review), audited once per reason and inputs, and the
    audit keeps nothing of the record."""
    audit = synced.lake.read("reverse_etl", "sync_audit").to_pylist()
    skipped = [r for r in audit if r["status"] == "skipped_consent"]
    assert Counter(r["crm_account_id"] for r in skipped) == Counter(
        {crm_id: 1 for crm_id in EXPECTED_HELD_BACK}
    )
    assert {r["payload"] for r in skipped} == {"{}"}
    assert {r["status"] for r in audit} == {"sent", "skipped_consent"}
