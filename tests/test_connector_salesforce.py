"""The Salesforce connector against its stand-in: what a team pulling their org relies on.

A full pull lands every record the org holds, each exactly as the API returns it, paged through
`nextRecordsUrl`; an incremental pull asks only for what changed since the saved cursor and,
with the first, misses nothing; a page answered 500 is retried, and a pull refused mid-way
(the org's request limit) resumes from the old cursor with no duplicate and no gap; a wrong
token fails naming the setting, never showing the token; the stand-in answers SOQL it does not
understand with Salesforce's own error bodies.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml

from resources.vendors import salesforce as sf
from sample_company.generate import generate
from sample_company.standins.base import Response
from sample_company.standins.salesforce import (
    API,
    OBJECTS,
    SalesforceStandIn,
    parse_datetime,
    sf_datetime,
)

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "sf-test-token-7f3a"
MID = datetime(2026, 10, 14, tzinfo=UTC)
END = datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
NAMES = {v: k for k, v in OBJECTS.items()}  # catalog object -> sObject


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sf_world")
    generate(out, accounts=30, days=40, seed=7, end_date="2026-10-31")
    return out


@pytest.fixture
def org(landing):
    with SalesforceStandIn(landing, token=TOKEN) as standin:
        standin.max_batch = 10  # a small world still pages
        yield standin


class Pull:
    """One dlt pipeline (its state under tmp: the cursors) landing into a list."""

    def __init__(self, tmp: Path, name: str = "sf") -> None:
        import dlt

        self.batches: list[list[tuple[str, dict]]] = []
        got = self.batches

        @dlt.destination(
            batch_size=1000,
            loader_file_format="typed-jsonl",
            name="collect",
            skip_dlt_columns_and_tables=True,
            max_table_nesting=0,
        )
        def collect(items, table) -> None:
            got[-1].extend((table["name"], dict(i)) for i in items)

        self.pipeline = dlt.pipeline(name, destination=collect, pipelines_dir=str(tmp / "dlt"))

    def run(self, org: SalesforceStandIn, token: str = TOKEN, **options) -> list[tuple[str, dict]]:
        self.batches.append([])
        options = {"backoff_factor": 0.05, "max_retry_delay": 2.0, **options}
        source = sf.source(base_url=org.url, token=token, objects=list(sf.OBJECTS), **options)
        self.pipeline.run(source)
        return self.batches[-1]


def current(org: SalesforceStandIn) -> dict[tuple[str, str], dict]:
    """(object, record key) -> the version the org holds at its clock."""
    return {
        (OBJECTS[sobject], key): fields
        for sobject in OBJECTS
        for key, (_, fields) in org.current(sobject).items()
    }


def keyed(records: list[tuple[str, dict]]) -> Counter:
    return Counter((name, r.get("Id"), r["SystemModstamp"]) for name, r in records)


def test_select_lists_the_catalog_source_fields():
    """The SOQL asks for exactly what stacks/default/catalog.yaml reads (and the cursor)."""
    catalog = yaml.safe_load((ROOT / "stacks/default/catalog.yaml").read_text())
    for entry in catalog["objects"] if "objects" in catalog else catalog["sources"]:
        if entry["system"] == "crm":
            wanted = tuple(c.get("source", c["name"]) for c in entry["columns"])
            assert sf.OBJECTS[entry["object"]]["fields"] == wanted


def test_full_pull_lands_every_record_once_as_the_api_returns_it(org, tmp_path):
    org.clock = END
    landed = Pull(tmp_path).run(org)
    held = current(org)
    assert Counter((name, r.get("Id")) for name, r in landed if r.get("Id")) == Counter(
        k for k, f in held.items() if f.get("Id")
    )
    assert sum(1 for _, r in landed if not r.get("Id")) == 1  # the planted row without an Id
    for name, r in landed:
        if not r.get("Id"):
            continue
        fields = held[(name, r.get("Id"))]
        assert r["attributes"] == {
            "type": NAMES[name],
            "url": f"{API}/sobjects/{NAMES[name]}/{r['Id']}",
        }
        # every field the catalog reads, unchanged (strings stay strings, numbers numbers)
        assert {f: r.get(f) for f in sf.OBJECTS[name]["fields"]} == {
            f: fields.get(f) for f in sf.OBJECTS[name]["fields"]
        }
    more = org.requests(f"{API}/query/01g")
    assert len(more) >= 10 and all(r.status == 200 for r in more)  # paged by nextRecordsUrl


def test_incremental_pull_fetches_only_what_changed_and_misses_nothing(org, tmp_path):
    pull = Pull(tmp_path)
    org.clock = MID
    first = pull.run(org)
    cursors = {
        name: max(parse_datetime(r["SystemModstamp"]) for n, r in first if n == name)
        for name in sf.OBJECTS
    }
    at_mid = current(org)
    org.clock = END
    org.log.clear()
    second = pull.run(org)
    at_end = current(org)
    # the second pull asked from each object's cursor on ...
    queries = [r.query["q"][0] for r in org.requests(f"{API}/query") if "q" in r.query]
    assert sorted(queries) == sorted(
        sf.soql(NAMES[n], sf.OBJECTS[n]["fields"]).replace(
            "{incremental.start_value}", sf.soql_datetime(cursors[n])
        )
        for n in sf.OBJECTS
    )
    # ... and got exactly the records changed after it (their latest version)
    changed = {k for k, f in at_end.items() if at_mid.get(k) is not f}
    assert keyed(second) == Counter(
        (k[0], f.get("Id"), sf_datetime(parse_datetime(f["LastModifiedDate"])))
        for k, f in at_end.items()
        if k in changed
    )
    assert 0 < len(second) < len(first)
    # nothing missed: the two pulls hold every record's current version, none twice
    latest = {}
    for name, r in first + second:
        latest[(name, r.get("Id"))] = r["SystemModstamp"]
    assert latest == {
        (k[0], f.get("Id")): sf_datetime(parse_datetime(f["LastModifiedDate"]))
        for k, f in at_end.items()
    }
    assert not set(keyed(first)) & set(keyed(second))
    # a third pull with nothing new lands nothing
    assert pull.run(org) == []


def test_500_mid_page_is_retried_and_lands_every_record_once(org, tmp_path):
    org.clock = END
    org.faults.fail[r"/query/01g\w+-20$"] = 2  # the third page of one query, twice
    landed = Pull(tmp_path).run(org)
    assert [r.status for r in org.requests("-20")].count(500) == 2
    assert keyed(landed) == Counter(
        (k[0], f.get("Id"), sf_datetime(parse_datetime(f["LastModifiedDate"])))
        for k, f in current(org).items()
    )
    assert max(keyed(landed).values()) == 1


def test_429_with_retry_after_is_honoured(org, tmp_path):
    """Salesforce itself answers 403 over its limits; a proxy in front may answer 429."""
    org.clock = END
    org.rate_limited = lambda req: Response(429, [{"errorCode": "RATE"}], {"Retry-After": "1"})
    org.faults.rate_limit_every = 4
    landed = Pull(tmp_path).run(org)
    log = org.log
    refused = [i for i, r in enumerate(log) if r.status == 429]
    assert refused
    for i in refused:  # the retry came no sooner than asked
        assert (log[i + 1].at - log[i].at).total_seconds() >= 0.95
    assert max(keyed(landed).values()) == 1 and len(keyed(landed)) == len(current(org))


def test_pull_refused_mid_way_resumes_with_no_duplicate_and_no_gap(org, tmp_path):
    pull = Pull(tmp_path)
    org.clock = END
    org.faults.fail[r"/query/01g\w+-30$"] = 1  # one page refused (403 REQUEST_LIMIT_EXCEEDED)
    org.failed = org.rate_limited
    with pytest.raises(Exception, match="REQUEST_LIMIT_EXCEEDED"):
        pull.run(org)
    assert pull.batches[-1] == []  # nothing landed from the broken pull: its cursor stayed
    landed = pull.run(org)
    assert keyed(landed) == Counter(
        (k[0], f.get("Id"), sf_datetime(parse_datetime(f["LastModifiedDate"])))
        for k, f in current(org).items()
    )
    assert max(keyed(landed).values()) == 1


def test_wrong_token_names_the_setting_and_not_the_token(org, tmp_path):
    with pytest.raises(Exception) as failure:
        Pull(tmp_path).run(org, token="wrong-token-123")
    text = str(failure.value)
    assert "LAKEHOUSE_SALESFORCE_TOKEN" in text and "INVALID_SESSION_ID" in text
    assert "wrong-token-123" not in text and TOKEN not in text
    answer = requests.get(f"{org.url}{API}/query", params={"q": "SELECT Id FROM Account"})
    assert answer.status_code == 401
    assert answer.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


@pytest.mark.parametrize(
    "q,code",
    [
        ("SELECT Id FROM Account WHERE Name = 'x'", "MALFORMED_QUERY"),
        ("SELECT Id, Nope__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM Widget__c", "INVALID_TYPE"),
        ("SELECT Id FROM Account WHERE SystemModstamp > '2025-01-01'", "MALFORMED_QUERY"),
    ],
)
def test_standin_answers_unsupported_soql_as_salesforce_does(org, q, code):
    answer = requests.get(
        f"{org.url}{API}/query", params={"q": q}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == code


def test_standin_limit_order_and_batch_size_header(org):
    org.clock = END
    org.max_batch = 2000
    headers = {"Authorization": f"Bearer {TOKEN}", "Sforce-Query-Options": "batchSize=200"}
    q = "SELECT Id, SystemModstamp FROM Contact ORDER BY SystemModstamp DESC LIMIT 5"
    body = requests.get(f"{org.url}{API}/query", params={"q": q}, headers=headers).json()
    stamps = [r["SystemModstamp"] for r in body["records"]]
    assert body["totalSize"] == 5 and body["done"] and "nextRecordsUrl" not in body
    assert stamps == sorted(stamps, reverse=True)
    assert set(body["records"][0]) == {"attributes", "Id", "SystemModstamp"}
