"""The vendor stack: the sample company's world rendered in real vendors' export shapes.

What a user of stacks/vendor relies on: HubSpot, Stripe, Segment and Zendesk files shaped as
those APIs return them, the same world as the default stack (one seed, one truth), every landed
folder read by an entry of the vendor catalog, every Segment name but the planted unknown one
known to the vendor vocabulary, and each planted bad row really broken the way its rule says.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from checks.sources import load_catalog
from checks.vocabulary import load_vocabulary
from sample_company.cli import main as cli_main
from sample_company.generate import generate

ROOT = Path(__file__).resolve().parent.parent
WORLD = {"accounts": 40, "days": 60, "seed": 5, "end_date": "2026-10-31"}
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
ISO_MILLIS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
TITLE_CASE = re.compile(r"(?:[A-Z][A-Za-z]*|API)(?: (?:[A-Z][A-Za-z]*|API))+")
# The same kind of record, as each stack's truth names it.
SAME_RECORDS = {
    "crm/accounts": "hubspot/companies",
    "crm/contacts": "hubspot/contacts",
    "billing/customers": "stripe/customers",
    "product/workspaces": "segment/groups",
    "product/users": "segment/identifies",
    "support/organizations": "zendesk/organizations",
    "support/ticket_requesters": "zendesk/ticket_requesters",
    "consent/records": "consent/receipts",
    "risk/signals": "risk/assessments",
}


@pytest.fixture(scope="module")
def lakes(tmp_path_factory) -> dict[str, Path]:
    """One small world rendered by both stacks."""
    out = {}
    for stack in ("default", "vendor"):
        root = tmp_path_factory.mktemp(stack) / "landing"
        generate(root, stack=stack, **WORLD)
        out[stack] = root
    return out


@pytest.fixture(scope="module")
def vendor(lakes) -> Path:
    return lakes["vendor"]


@pytest.fixture(scope="module")
def manifest(vendor) -> dict:
    return json.loads((vendor / "_truth" / "manifest.json").read_text())


def files(root: Path, source: str) -> list[Path]:
    return sorted(p for p in (root / source).rglob("*") if p.is_file())


def envelope(path: Path) -> dict:
    return json.loads(path.read_text())


def calls(path: Path) -> list[dict | None]:
    """Segment calls of one file; a line that does not parse comes back as None."""
    out: list[dict | None] = []
    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append(None)
    return out


def records(root: Path, source: str, key: str) -> list[dict]:
    return [r for p in files(root, source) for r in envelope(p)[key]]


def planted(manifest: dict, kind: str) -> list[dict]:
    return [b for b in manifest["bad_rows"] if b["kind"] == kind]


# ---------------------------------------------------------------------------------- shapes


def test_hubspot_records_sit_under_results_with_string_properties(vendor, manifest):
    companies = set()
    for obj in ("companies", "contacts", "deals"):
        for path in files(vendor, f"hubspot/{obj}"):
            doc = envelope(path)
            assert set(doc) == {"results"}, path
            for r in doc["results"]:
                if "id" not in r:  # a planted record without its id
                    continue
                assert set(r) >= {"id", "properties", "createdAt", "updatedAt", "archived"}
                assert re.fullmatch(r"\d+", r["id"]) and r["properties"]["hs_object_id"] == r["id"]
                assert ISO_MILLIS.fullmatch(r["createdAt"]) and ISO_MILLIS.fullmatch(r["updatedAt"])
                assert all(v is None or isinstance(v, str) for v in r["properties"].values()), r
                if obj == "companies":
                    companies.add(r["id"])
                    assert r["properties"]["lifecyclestage"] in {"opportunity", "customer", "other"}
                else:
                    (assoc,) = r["associations"]["companies"]["results"]
                    assert assoc["type"] == f"{obj[:-1]}_to_company"
                if obj == "deals":
                    assert re.fullmatch(r"\d+\.\d{2}", r["properties"]["amount"])
                    assert r["properties"]["dealstage"] in {
                        "appointmentscheduled",
                        "qualifiedtobuy",
                        "presentationscheduled",
                        "closedwon",
                        "closedlost",
                    }
    linked = {
        r["associations"]["companies"]["results"][0]["id"]
        for r in records(vendor, "hubspot/contacts", "results")
    }
    assert linked and linked <= companies


def test_stripe_lists_have_prefixed_ids_cents_and_unix_times(lakes):
    vendor = lakes["vendor"]
    prefix = {"customers": "cus_", "subscriptions": "sub_", "invoices": "in_"}
    for obj, p in prefix.items():
        for path in files(vendor, f"stripe/{obj}"):
            doc = envelope(path)
            assert doc["object"] == "list" and doc["has_more"] is False
            assert doc["url"] == f"/v1/{obj}"
            for r in doc["data"]:
                assert r["id"].startswith(p) and r["object"] == obj[:-1]
                assert isinstance(r["created"], int) and 1.5e9 < r["created"] < 1.9e9
                assert r.get("currency", "usd") in {"usd", "eur", "gbp"}
    customers = records(vendor, "stripe/customers", "data")
    companies = {r["id"] for r in records(vendor, "hubspot/companies", "results") if "id" in r}
    linked = [r["metadata"]["hubspot_company_id"] for r in customers if r["metadata"]]
    assert 0 < len(linked) < len(customers), "the CRM id is in metadata only sometimes"
    assert set(linked) <= companies
    subs = records(vendor, "stripe/subscriptions", "data")
    for s in subs:
        (item,) = s["items"]["data"]
        price = item["price"]
        assert isinstance(price["unit_amount"], int) and isinstance(item["quantity"], int)
        assert price["recurring"]["interval"] == "month"
        assert price["nickname"] in {"Basic monthly", "Pro monthly", "Scale monthly"}
    assert {s["status"] for s in subs} <= {"trialing", "active", "past_due", "canceled", "unpaid"}
    invoices = [r for r in records(vendor, "stripe/invoices", "data") if r["amount_due"] != "N/A"]
    assert all(isinstance(r["amount_due"], int) for r in invoices)
    assert {r["status"] for r in invoices} <= {"draft", "open", "paid", "uncollectible", "void"}
    # a failed payment is an open invoice attempted and not paid: as many as the default
    # stack's `failed` invoice versions, with the same amounts
    failed = [r for r in invoices if r["status"] == "open" and r["attempted"] and not r["paid"]]
    default = [
        r
        for p in files(lakes["default"], "billing/invoices")
        for r in csv.DictReader(io.StringIO(p.read_text()))
    ]
    assert sorted(r["amount_due"] for r in failed) == sorted(
        round(float(r["amount"]) * 100) for r in default if r["status"] == "failed"
    )
    assert all(r["status_transitions"]["paid_at"] for r in invoices if r["status"] == "paid")


def test_segment_calls_follow_the_spec(vendor, manifest):
    truncated = Counter(b["file"] for b in planted(manifest, "truncated_json"))
    names = Counter()
    for kind, folder in (("identify", "identifies"), ("group", "groups"), ("track", "tracks")):
        ids = set()
        for path in files(vendor, f"segment/{folder}"):
            got = calls(path)
            rel = str(path.relative_to(vendor))
            assert sum(c is None for c in got) == truncated.get(rel, 0), rel
            for c in (c for c in got if c is not None):
                assert c["type"] == kind and UUID.fullmatch(c["messageId"])
                assert c["userId"] or c.get("anonymousId"), "a call names a user or an anonymous id"
                assert ISO.fullmatch(c["timestamp"]) and c["context"]["library"]["name"]
                ids.add(c["messageId"])
                if kind == "track":
                    assert c["context"]["groupId"].startswith("ws_")
                    assert set(c["properties"]) == {"session_id", "feature_adoption_score"}
                    names[c["event"]] += 1
                elif kind == "identify":
                    assert c["traits"]["company"]["id"].startswith("ws_") and c["traits"]["email"]
                else:
                    assert c["groupId"].startswith("ws_") and c["traits"]["name"]
        assert ids, folder
    assert all(TITLE_CASE.fullmatch(n) for n in names), names
    assert names["Report Exported"] > 0
    tokens = [
        c
        for p in files(vendor, "segment/tracks")
        for c in calls(p)
        if c is not None and c["userId"] is None
    ]
    assert tokens and all(c["anonymousId"] == "token_" + c["context"]["groupId"] for c in tokens)


def test_zendesk_envelopes_integer_ids_and_its_own_priorities(vendor):
    users: set[int] = set()
    for obj in ("organizations", "users", "tickets"):
        for path in files(vendor, f"zendesk/{obj}"):
            doc = envelope(path)
            assert set(doc) == {obj, "next_page", "previous_page", "count"}
            assert doc["next_page"] is None and doc["count"] == len(doc[obj])
            assert all(isinstance(r["id"], int) for r in doc[obj])
            if obj == "users":
                users |= {r["id"] for r in doc[obj]}
                assert {r["role"] for r in doc[obj]} <= {"end-user"}
    orgs = records(vendor, "zendesk/organizations", "organizations")
    assert all(len(o["domain_names"]) == 1 for o in orgs)
    assert 0 < sum(o["external_id"] is not None for o in orgs) < len(orgs)
    tickets = records(vendor, "zendesk/tickets", "tickets")
    assert {t["priority"] for t in tickets} <= {"low", "normal", "high", "urgent"}
    assert "urgent" in {t["priority"] for t in tickets}
    assert {t["status"] for t in tickets} <= {"new", "open", "pending", "hold", "solved", "closed"}
    assert {t["requester_id"] for t in tickets} <= users
    assert all(t["via"]["source"]["from"]["address"] for t in tickets)
    solved = [t for t in tickets if t["status"] in ("solved", "closed")]
    assert solved and all(t["metric_set"]["solved_at"] for t in solved)


def test_consent_and_risk_are_csv_with_their_own_columns(vendor):
    (consent, *_) = files(vendor, "consent/receipts")
    header = consent.read_text().splitlines()[0]
    assert header.split(";")[:3] == ["receipt_id", "consent_date", "data_subject_email"]
    rows = [
        r
        for p in files(vendor, "consent/receipts")
        for r in csv.DictReader(io.StringIO(p.read_text()), delimiter=";")
    ]
    assert {r["purpose_status"] for r in rows} == {"ACTIVE", "WITHDRAWN"}
    assert {r["subject_system"] for r in rows} == {"hubspot", "product", "web"}
    (risk, *_) = files(vendor, "risk/assessments")
    assert risk.read_text().startswith("assessment_id,assessed_at,company_legal_name,")


# ---------------------------------------------------------------------------------- the world


def test_same_seed_same_world_as_the_default_stack(lakes):
    """Both stacks render one simulation: the truth of companies and people is the same file,
    and every kind of source record is as many in one as in the other."""
    d, v = lakes["default"] / "_truth", lakes["vendor"] / "_truth"
    assert (d / "accounts.csv").read_bytes() == (v / "accounts.csv").read_bytes()
    assert (d / "people.csv").read_bytes() == (v / "people.csv").read_bytes()

    def per_object(path: Path) -> dict[str, Counter]:
        out: dict[str, Counter] = {}
        with path.open() as fh:
            for r in csv.DictReader(fh):
                src = f"{r['system']}/{r['object']}"
                out.setdefault(src, Counter())[(r["account_key"], r["person_key"])] += 1
        return out

    dt, vt = per_object(d / "source_records.csv"), per_object(v / "source_records.csv")
    for default_src, vendor_src in SAME_RECORDS.items():
        assert dt[default_src] == vt[vendor_src], (default_src, vendor_src)
    assert set(vt) == set(SAME_RECORDS.values()) | {"zendesk/users"}
    people = {k for k in dt["support/ticket_requesters"]}
    assert set(vt["zendesk/users"]) <= people

    dm, vm = (json.loads((x / "manifest.json").read_text()) for x in (d, v))
    differ = {"rows", "source_records"}  # named per stack; zendesk/users has no twin
    same = {k: c for k, c in dm["counts"].items() if k not in differ}
    assert same == {k: c for k, c in vm["counts"].items() if k not in differ}
    sims = vm["counts"]["rows"]
    assert sims["stripe/subscriptions"] == dm["counts"]["rows"]["billing/subscriptions"]
    assert sims["stripe/invoices"] == dm["counts"]["rows"]["billing/invoices"]
    assert sims["zendesk/tickets"] == dm["counts"]["rows"]["support/tickets"]


def test_track_calls_are_the_default_usage_events_plus_exports(lakes):
    """Each day's file holds the default stack's usage events of that day (truncated lines
    included: they are events too) plus the `Report Exported` calls."""

    def lines(path: Path) -> list[str]:
        return gzip.decompress(path.read_bytes()).decode().splitlines()

    default = {
        p.parent.name: len(lines(p)) for p in files(lakes["default"], "product/usage_events")
    }
    vendor = {
        p.parent.name: sum('"event":"Report Exported"' not in x for x in lines(p))
        for p in files(lakes["vendor"], "segment/tracks")
    }
    assert default == vendor


# ---------------------------------------------------------------------------------- catalog


def test_vendor_catalog_loads_and_reads_every_landed_folder(vendor):
    catalog = load_catalog(ROOT / "stacks" / "vendor" / "catalog.yaml")
    rel = [p.relative_to(vendor).parts for p in vendor.rglob("*") if p.is_file()]
    landed = {f"{r[0]}/{r[1]}" for r in rel if not r[0].startswith("_")}
    assert landed == {o.landing for o in catalog.objects}
    suffix = {"json_array": ".json", "jsonl": ".jsonl.gz", "csv": ".csv"}
    for o in catalog.objects:
        assert all(p.name.endswith(suffix[o.format]) for p in files(vendor, o.landing)), o.source


def test_vendor_vocabulary_knows_every_tracked_name_but_the_planted_one(vendor):
    vocab = load_vocabulary(ROOT / "stacks" / "vendor" / "vocabulary.yaml")
    names = {c["event"] for p in files(vendor, "segment/tracks") for c in calls(p) if c}
    unknown = {n for n in names if vocab.canonical_event(n) is None}
    assert unknown == {"Report Exported"}
    assert vocab.canonical_event("Application Opened") == "session_started"
    plans = {
        r["items"]["data"][0]["price"]["nickname"]
        for r in records(vendor, "stripe/subscriptions", "data")
    }
    assert all(vocab.canonical_plan(p) in vocab.plan_order for p in plans), plans
    priorities = {t["priority"] for t in records(vendor, "zendesk/tickets", "tickets")}
    assert priorities <= {p.name for p in vocab.ticket_priorities}


def test_each_planted_bad_row_breaks_its_rule(vendor, manifest):
    rules = Counter(b["rule"] for b in manifest["bad_rows"])
    assert set(rules) == {"invalid_json", "type(amount_due)", "field_count", "not_null(id)"}
    for b in manifest["bad_rows"]:
        path = vendor / b["file"]
        i = b["line"]
        if b["kind"] == "truncated_json":
            assert calls(path)[i - 1] is None
        elif b["kind"] == "missing_id":
            assert "id" not in envelope(path)["results"][i - 1]
        elif b["kind"] == "non_numeric_amount":
            assert envelope(path)["data"][i - 1]["amount_due"] == "N/A"
        else:
            lines = list(csv.reader(io.StringIO(path.read_text())))
            assert len(lines[i - 1]) == len(lines[0]) + 1


def test_schema_drift_stripe_discount_appears_mid_window(vendor, manifest):
    drift = manifest["schema_drift"]
    assert (drift["object"], drift["column"]) == ("stripe/subscriptions", "discount")
    for path in files(vendor, "stripe/subscriptions"):
        after = path.parent.name >= drift["from_extract_date"]
        assert all(("discount" in r) == after for r in envelope(path)["data"]), path


# ---------------------------------------------------------------------------------- command


def test_cli_renders_the_stack_lakehouse_stack_names(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAKEHOUSE_STACK", "vendor")
    args = ["--out", str(tmp_path / "v"), "--accounts", "6", "--days", "14", "--quiet"]
    assert cli_main(args) == 0
    assert (tmp_path / "v" / "hubspot" / "companies").is_dir()
    assert not (tmp_path / "v" / "crm").exists()
    monkeypatch.setenv("LAKEHOUSE_STACK", str(ROOT / "stacks" / "vendor"))
    assert cli_main([*args[:1], str(tmp_path / "p"), *args[2:]]) == 0
    assert (tmp_path / "p" / "segment" / "tracks").is_dir()
    assert cli_main([*args[:1], str(tmp_path / "d"), *args[2:], "--stack", "default"]) == 0
    assert (tmp_path / "d" / "crm" / "accounts").is_dir()
    monkeypatch.setenv("LAKEHOUSE_STACK", "acme")
    with pytest.raises(SystemExit, match="acme"):
        cli_main([*args[:1], str(tmp_path / "x"), *args[2:]])


def test_same_seed_same_vendor_bytes(vendor, tmp_path):
    again = tmp_path / "again"
    generate(again, stack="vendor", **WORLD)
    a = {str(p.relative_to(again)): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    b = {str(p.relative_to(vendor)): p.read_bytes() for p in vendor.rglob("*") if p.is_file()}
    assert a == b


# ---------------------------------------------------------------------------------- the lake


@pytest.fixture(scope="module")
def vendor_ingested(vendor, tmp_path_factory):
    """The small vendor world through landing, raw and entities, with the vendor stack active
    when the definitions load and while they run."""
    from conftest import Lakehouse, load_definitions

    with pytest.MonkeyPatch.context() as env:
        env.setenv("LAKEHOUSE_STACK", "vendor")
        h = Lakehouse(tmp_path_factory.mktemp("vendor_lake"), vendor, load_definitions())
        result = h.materialize()
        yield h, result


def test_vendor_stack_builds_through_entities_with_every_gate_passing(vendor_ingested):
    """Landing, raw and entities build on the vendor catalog with no code change: every gate
    passes (a contract that names the default stack's values, such as its CRM's lifecycle
    stages, would refuse the vendor's own)."""
    from conftest import check_evaluations, materialized

    h, result = vendor_ingested
    failed = {k: v.description for k, v in check_evaluations(result).items() if not v.passed}
    assert result.success and not failed, failed
    built = materialized(result)
    for table in ("account", "person", "workspace", "subscription", "identity_links"):
        assert f"entities/{table}" in built
    accounts = h.lake.read("entities", "account")
    assert set(accounts["crm_type"].to_pylist()) <= {"opportunity", "customer", "other"}
    subs = h.lake.read("entities", "subscription").to_pylist()
    assert subs and {s["plan_tier"] for s in subs} <= {"basic", "pro", "scale"}


def test_vendor_raw_layer_publishes_or_quarantines_every_record(vendor_ingested, vendor, manifest):
    """Every landed record is in its raw table or in the quarantine, and the quarantine holds
    exactly the planted bad rows, each at its file and line under its rule."""
    import pyarrow.compute as pc

    h, result = vendor_ingested
    assert result.success
    catalog = load_catalog(ROOT / "stacks" / "vendor" / "catalog.yaml")
    quarantine = h.lake.read("raw", "quarantine")
    q = quarantine.to_pylist()
    planted = Counter((b["file"], b["line"], b["rule"]) for b in manifest["bad_rows"])
    assert Counter((r["source_file"], r["line"], r["rule"]) for r in q) == planted
    for o in catalog.objects:
        published = h.lake.read("raw", o.table).num_rows
        rejected = pc.sum(pc.equal(quarantine["table_name"], o.table)).as_py() or 0
        assert published > 0, o.table
        assert published + rejected == landed_records(vendor, o.landing), o.table


def test_vendor_raw_types_nested_paths_units_and_cents(vendor_ingested, vendor):
    h, _ = vendor_ingested
    subs = h.lake.read("raw", "stripe_subscriptions").to_pylist()
    raw = {r["id"]: r for r in records(vendor, "stripe/subscriptions", "data")}
    for s in subs[:50]:
        item = raw[s["id"]]["items"]["data"][0]
        assert s["plan"] == item["price"]["nickname"] and s["quantity"] == item["quantity"]
        assert s["unit_amount"] == pytest.approx(item["price"]["unit_amount"] / 100)
        assert int(s["start_date"].timestamp()) == raw[s["id"]]["start_date"]
    contacts = h.lake.read("raw", "hubspot_contacts")
    assert pc_valid_share(contacts, "company_id") == 1.0
    assert "discount" in h.lake.read("raw", "stripe_subscriptions").column_names  # drift


def landed_records(root: Path, landing: str) -> int:
    """An object's records counted independently of the platform's reader."""
    n = 0
    for path in files(root, landing):
        if path.name.endswith(".gz"):
            n += len(gzip.decompress(path.read_bytes()).decode().splitlines())
        elif path.suffix == ".csv":
            n += len(path.read_text().splitlines()) - 1
        else:
            doc = envelope(path)
            n += len(next(v for v in doc.values() if isinstance(v, list)))
    return n


def pc_valid_share(table, column: str) -> float:
    return 1 - table[column].null_count / max(table.num_rows, 1)


@pytest.mark.faults
def test_vendor_stack_builds_to_reverse_etl_with_the_default_stacks_identity_f1(
    full_lake, tmp_path
):
    """The whole graph builds on the vendor stack with no code change, as `make demo` builds
    it, and identity resolution is as good on it as on the default stack (the same world,
    same seed: pairwise F1 within 0.005 for accounts and for persons)."""
    from assets.entities.evaluate import evaluate
    from conftest import Lakehouse, build_as_demo, load_definitions
    from resources.pii import PiiResource
    from sample_company.generate import generate as gen

    def f1(lake: Lakehouse) -> dict[str, tuple[int, float]]:
        """Pairwise F1 per entity over the records the active catalog's roles make company
        and person records."""
        salt = PiiResource().resolve_salt(str(lake.lake_root))
        links = lake.lake.read("entities", "identity_links")
        scores = evaluate(links, lake.landing_root / "_truth", salt)
        return {s.entity_type: (s.records, s.f1) for s in scores}

    def risk_scores(lake: Lakehouse) -> dict[str, tuple[int, float]]:
        """Per risk feature of the churn mart: accounts with a value, and their sum."""
        from checks.features import CHURN_FEATURES as C

        t = lake.lake.read(C.layer, C.table)
        out = {}
        for col in ("compliance_gap_score", "vendor_risk_flags"):
            values = [v for v in t[col].to_pylist() if v is not None]
            out[col] = (len(values), sum(values))
        return out

    default = f1(full_lake)
    landing = tmp_path / "lake" / "landing"
    gen(landing, accounts=200, days=300, seed=3, stack="vendor")  # full_lake's world
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LAKEHOUSE_STACK", "vendor")
        h = Lakehouse(tmp_path / "lake", landing, load_definitions())
        build_as_demo(h, tmp_path / "dagster_home")
        assert h.lake.read("reverse_etl", "crm_account_updates").num_rows > 0
        vendor_f1 = f1(h)
        vendor_risk = risk_scores(h)
    # The feature marts read the signal role's named scores on every stack: the vendor feed's
    # percentages and flag counts arrive as the same values the default feed gives.
    default_risk = risk_scores(full_lake)
    for col, (n, total) in default_risk.items():
        assert n > 0 and vendor_risk[col][0] == n, (col, default_risk, vendor_risk)
        assert vendor_risk[col][1] == pytest.approx(total, abs=1e-6 * n), col
    for entity in ("account", "person"):
        assert vendor_f1[entity][0] > 0.9 * default[entity][0], entity  # records compared
        assert abs(vendor_f1[entity][1] - default[entity][1]) <= 0.005, (default, vendor_f1)
