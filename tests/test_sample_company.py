"""The sample company generator: landing contract, determinism, increments, truth and signals."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import duckdb
import pytest

from sample_company.cli import main as cli_main
from sample_company.extracts import SPECS
from sample_company.generate import generate

SMALL = {"accounts": 60, "days": 60, "seed": 11, "end_date": "2026-10-31"}
MEDIUM = {"accounts": 400, "days": 300, "seed": 3, "end_date": "2026-10-31"}
START = dt.date(2026, 10, 31) - dt.timedelta(days=59)
ID_FIELD = {name: spec.fields[0] for name, spec in SPECS.items()}
ID_PATTERN = {
    "crm/accounts": r"001[0-9A-Za-z]{12}",
    "crm/contacts": r"003[0-9A-Za-z]{12}",
    "crm/opportunities": r"006[0-9A-Za-z]{12}",
    "billing/customers": r"cus_[0-9A-Za-z]{14}",
    "billing/subscriptions": r"sub_[0-9A-Za-z]{14}",
    "billing/invoices": r"in_[0-9A-Za-z]{14}",
    "product/workspaces": r"ws_[0-9a-z]{10}",
    "product/users": r"usr_[0-9a-z]{12}",
    "product/usage_events": r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
    "support/organizations": r"org_\d{8}",
    "support/tickets": r"tkt_\d{8}",
    "consent/records": r"cns_[0-9A-Za-z]{12}",
    "risk/signals": r"rsk_[0-9A-Za-z]{12}",
}
# timestamp fields that may lie after the extract date (everything else may not)
FUTURE_OK = {"current_period_end", "CloseDate"}
TS_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


# ---------------------------------------------------------------------------------- helpers


def files_of(root: Path, name: str) -> list[tuple[dt.date, Path]]:
    spec = SPECS[name]
    base = root / spec.source / spec.object
    return [(dt.date.fromisoformat(d.name), d / spec.filename) for d in sorted(base.iterdir())]


def read_rows(path: Path, name: str) -> tuple[list[str] | None, list[dict | None]]:
    """(CSV header, records); an unparseable record comes back as None."""
    fmt = SPECS[name].format
    if fmt == "json_array":
        return None, json.loads(path.read_text())
    if fmt in ("jsonl", "jsonl_gz"):
        text = gzip.decompress(path.read_bytes()).decode() if fmt == "jsonl_gz" else None
        text = path.read_text() if text is None else text
        out: list[dict | None] = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append(None)
        return None, out
    rows = list(csv.reader(io.StringIO(path.read_text())))
    header = rows[0]
    return header, [
        dict(zip(header, r, strict=True)) if len(r) == len(header) else None for r in rows[1:]
    ]


def all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small") / "landing"
    generate(root, **SMALL)
    return root


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("medium") / "landing"
    generate(root, **MEDIUM)
    return root


@pytest.fixture(scope="module")
def truth(small) -> dict:
    with (small / "_truth" / "source_records.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    manifest = json.loads((small / "_truth" / "manifest.json").read_text())
    return {"records": rows, "manifest": manifest}


# ---------------------------------------------------------------------------------- contract


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(small, tmp_path):
    again = tmp_path / "again"
    generate(again, **SMALL)
    assert all_files(again) == all_files(small)
    other = tmp_path / "other"
    generate(other, **{**SMALL, "seed": SMALL["seed"] + 1})
    a, b = all_files(other), all_files(small)
    assert a.keys() != b.keys() or any(a[k] != b[k] for k in a)


def test_layout_and_cadence(small):
    for name, spec in SPECS.items():
        files = files_of(small, name)
        assert files, name
        assert all(p.exists() for _, p in files), name
        dates = [d for d, _ in files]
        if spec.cadence == "weekly":
            assert dates == [START + dt.timedelta(days=7 * k) for k in range(len(dates))], name
            assert len(dates) == 9
        elif spec.cadence == "monthly":
            assert dates[0] == START and all(d.day == 1 for d in dates[1:]), name
        elif spec.only_changed_days:
            assert set(dates) <= {START + dt.timedelta(days=k) for k in range(60)}, name
        else:  # usage events: a file every day
            assert dates == [START + dt.timedelta(days=k) for k in range(60)], name


def test_every_contract_field_is_present(small, truth):
    drift = dt.date.fromisoformat(truth["manifest"]["schema_drift"]["from_extract_date"])
    for name, spec in SPECS.items():
        for day, path in files_of(small, name):
            header, recs = read_rows(path, name)
            expected = list(spec.fields)
            if name == "billing/subscriptions" and day >= drift:
                expected.append("discount_pct")
            if header is not None:
                assert header == expected, (name, day)
            for r in recs:
                if r is None:
                    continue
                if name == "crm/contacts" and "Id" not in r:
                    continue  # the planted record without an Id
                assert list(r) == expected, (name, day, r)


def test_ids_are_well_formed_and_unique(small):
    for name in SPECS:
        id_field = ID_FIELD[name]
        seen_per_file = []
        for _, path in files_of(small, name):
            _, recs = read_rows(path, name)
            ids = [r[id_field] for r in recs if r is not None and id_field in r]
            assert all(re.fullmatch(ID_PATTERN[name], i) for i in ids), name
            assert len(ids) == len(set(ids)), f"{name}: a record twice in one extract"
            seen_per_file.append(ids)
        if name in ("product/usage_events", "consent/records", "risk/signals"):
            every = [i for ids in seen_per_file for i in ids]
            assert len(every) == len(set(every)), f"{name}: ids must be unique across files"


def test_timestamps_are_iso_and_never_after_their_extract(small):
    for name in SPECS:
        for day, path in files_of(small, name):
            _, recs = read_rows(path, name)
            limit = (day + dt.timedelta(days=1)).isoformat()
            for r in recs:
                for k, v in (r or {}).items():
                    if isinstance(v, str) and TS_RE.fullmatch(v) and k not in FUTURE_OK:
                        assert v < limit, (name, day, k, v)


def test_changed_records_reappear_with_a_newer_timestamp(small):
    versions = defaultdict(list)
    for _, path in files_of(small, "billing/subscriptions"):
        for r in read_rows(path, "billing/subscriptions")[1]:
            if r is not None:
                versions[r["subscription_id"]].append((r["updated_at"], r["status"], r["plan"]))
    changed = [v for v in versions.values() if len(v) > 1]
    assert changed
    assert all([u for u, _, _ in v] == sorted({u for u, _, _ in v}) for v in changed)
    assert any(len({(s, p) for _, s, p in v}) > 1 for v in changed)


def test_schema_drift_column_only_from_mid_history(small, truth):
    drift = dt.date.fromisoformat(truth["manifest"]["schema_drift"]["from_extract_date"])
    assert START + dt.timedelta(days=25) <= drift <= START + dt.timedelta(days=37)
    for day, path in files_of(small, "billing/subscriptions"):
        header = path.read_text().splitlines()[0].split(",")
        assert ("discount_pct" in header) == (day >= drift)
        if day >= drift:
            for r in read_rows(path, "billing/subscriptions")[1]:
                assert r is None or float(r["discount_pct"]) >= 0


# ---------------------------------------------------------------------------------- increments


def test_write_through_then_full_run_only_adds_files(small, tmp_path):
    out = tmp_path / "landing"
    cut = START + dt.timedelta(days=20)
    first = generate(out, **SMALL, write_through=cut)
    before = all_files(out)
    landing = {k for k in before if not k.startswith("_truth")}
    assert landing and all(k.split("/")[2] <= cut.isoformat() for k in landing)
    stamps = {k: (out / k).stat().st_mtime_ns for k in landing}

    nxt = generate(out, **SMALL, write_through=cut + dt.timedelta(days=1))
    day_files = [k for k in all_files(out) if k not in before]
    assert day_files and all(
        k.split("/")[2] == (cut + dt.timedelta(days=1)).isoformat() for k in day_files
    )
    assert nxt.files_skipped == first.files_written

    generate(out, **SMALL)
    after = all_files(out)
    assert all(after[k] == v for k, v in before.items())  # nothing rewritten ...
    assert all((out / k).stat().st_mtime_ns == t for k, t in stamps.items())  # ... not even touched
    assert after == all_files(small)  # the union is exactly one full run


def test_late_events_land_in_later_files(small):
    late, total, delays = 0, 0, Counter()
    for day, path in files_of(small, "product/usage_events"):
        for r in read_rows(path, "product/usage_events")[1]:
            if r is None:
                continue
            total += 1
            event_day = dt.date.fromisoformat(r["timestamp"][:10])
            assert event_day <= day
            if event_day < day:
                late += 1
                delays[(day - event_day).days] += 1
    assert 0.004 < late / total < 0.02
    assert set(delays) <= {1, 2, 3} and delays[1] > delays[3]


def test_unparseable_rows_are_planted_but_rare(small, truth):
    bad = truth["manifest"]["bad_rows"]
    kinds = Counter(b["kind"] for b in bad)
    assert set(kinds) == {"truncated_json", "non_numeric_amount", "extra_column", "missing_id"}
    for b in bad:
        name = "/".join(b["file"].split("/")[:2])
        path = small / b["file"]
        header, recs = read_rows(path, name)
        line = b["line"]
        if b["kind"] == "truncated_json":
            assert recs[line - 1] is None
        elif b["kind"] == "extra_column":
            row = next(csv.reader([path.read_text().splitlines()[line - 1]]))
            assert len(row) == len(header) + 1
        elif b["kind"] == "non_numeric_amount":
            assert recs[line - 2]["amount"] == "N/A"
        else:
            assert "Id" not in recs[line - 1] and recs[line - 1]["AccountId"]
        # well under the raw gate's 5% quarantine threshold per file
        per_file = sum(1 for x in bad if x["file"] == b["file"])
        assert per_file / len(recs) <= 0.02


# ---------------------------------------------------------------------------------- truth


def test_truth_covers_every_source_record(small, truth):
    known = defaultdict(set)
    for r in truth["records"]:
        known[(r["system"], r["object"])].add(r["source_id"])
        assert r["account_key"].startswith("acc_")
    people = {"crm/contacts", "product/users", "consent/records"}
    for name in (
        "crm/accounts",
        "crm/contacts",
        "billing/customers",
        "product/workspaces",
        "product/users",
        "support/organizations",
        "consent/records",
        "risk/signals",
    ):
        source, obj = name.split("/")
        ids = set()
        for _, path in files_of(small, name):
            ids |= {
                r[ID_FIELD[name]] for r in read_rows(path, name)[1] if r and ID_FIELD[name] in r
            }
        assert ids and ids <= known[(source, obj)], name
        if name in people:
            keyed = {r["source_id"] for r in truth["records"] if r["person_key"]}
            assert ids <= keyed, name
    requesters = set()
    for _, path in files_of(small, "support/tickets"):
        for r in read_rows(path, "support/tickets")[1]:
            if r:
                requesters.add(f"{r['org_id']}|{r['requester_email'].strip().lower()}")
    assert requesters <= known[("support", "ticket_requesters")]


def test_truth_files_describe_the_world(small, truth):
    with (small / "_truth" / "accounts.csv").open() as fh:
        accounts = list(csv.DictReader(fh))
    with (small / "_truth" / "people.csv").open() as fh:
        people = list(csv.DictReader(fh))
    assert len(accounts) == SMALL["accounts"]
    assert len({a["domain"] for a in accounts}) == len(accounts)
    for col in (
        "signup_date",
        "trial_end",
        "churn_date",
        "upgrade_date",
        "churn_hazard",
        "upgrade_hazard",
        "tier_start",
    ):
        assert col in accounts[0]
    roles = Counter(p["role"] for p in people)
    assert set(roles) == {"admin", "champion", "billing_owner", "end_user"}
    assert any(p["final_role"] == "former_user" for p in people)
    m = truth["manifest"]
    assert m["args"] == {"accounts": 60, "days": 60, "seed": 11, "end_date": "2026-10-31"}
    assert m["config"]["billing_crm_ref_share"] == 0.65


def test_identity_traps_are_present(small, truth):
    with (small / "_truth" / "people.csv").open() as fh:
        people = list(csv.DictReader(fh))
    # a consultant: one person, one address, logins in several client workspaces
    consultant = [p for p in people if p["consultant"] == "True"]
    assert len(consultant) == 1 and len(consultant[0]["account_keys"].split(";")) >= 3
    logins = [
        r
        for r in truth["records"]
        if r["object"] == "users" and r["person_key"] == consultant[0]["person_key"]
    ]
    assert len({r["account_key"] for r in logins}) >= 3
    # different people with the same name at different companies
    names = Counter((p["first_name"], p["last_name"]) for p in people)
    assert any(
        n > 1
        and len({p["account_keys"] for p in people if (p["first_name"], p["last_name"]) == k}) > 1
        for k, n in names.items()
    )
    # several companies billed to one shared inbox
    emails = defaultdict(set)
    cus_account = {
        r["source_id"]: r["account_key"] for r in truth["records"] if r["object"] == "customers"
    }
    for _, path in files_of(small, "billing/customers"):
        for r in read_rows(path, "billing/customers")[1]:
            if r:
                emails[r["email"].strip().lower()].add(cus_account[r["customer_id"]])
    assert max(len(v) for v in emails.values()) >= 2


def test_duplicate_crm_records_point_to_one_company(medium):
    with (medium / "_truth" / "source_records.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    accounts = Counter(r["account_key"] for r in rows if r["object"] == "accounts")
    contacts = Counter(r["person_key"] for r in rows if r["object"] == "contacts")
    dup_accounts = sum(1 for n in accounts.values() if n > 1)
    dup_contacts = sum(1 for n in contacts.values() if n > 1)
    assert 0.01 < dup_accounts / len(accounts) < 0.06
    assert 0.01 < dup_contacts / len(contacts) < 0.06


def test_cross_references_are_partial(medium):
    def share(name: str, field: str) -> float:
        latest = {}
        for _, path in files_of(medium, name):
            for r in read_rows(path, name)[1]:
                if r:
                    latest[r[ID_FIELD[name]]] = r
        return sum(1 for r in latest.values() if r.get(field)) / len(latest)

    assert 0.55 < share("billing/customers", "crm_account_id") < 0.75
    assert 0.30 < share("support/organizations", "crm_account_id") < 0.50
    assert 0.72 < share("risk/signals", "crm_account_id") < 0.88
    assert 0.25 < share("product/workspaces", "billing_customer_id") < 0.60


# ---------------------------------------------------------------------------------- signals


def _usage(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    con.execute(
        f"""
        CREATE TABLE ev AS SELECT workspace_id, user_id, event_type, CAST(timestamp AS DATE) d
        FROM read_json('{root}/product/usage_events/*/*.jsonl.gz', format='newline_delimited',
            ignore_errors=true, columns={{event_id: 'VARCHAR', workspace_id: 'VARCHAR',
            user_id: 'VARCHAR', event_type: 'VARCHAR', timestamp: 'TIMESTAMP',
            session_id: 'VARCHAR', feature_adoption_score: 'DOUBLE'}})
        WHERE event_id IS NOT NULL"""
    )
    con.execute(
        f"CREATE TABLE src AS FROM read_csv('{root}/_truth/source_records.csv', all_varchar=true)"
    )
    con.execute(f"CREATE TABLE acc AS FROM read_csv('{root}/_truth/accounts.csv')")
    con.execute(
        "CREATE TABLE e AS SELECT ev.*, s.account_key FROM ev JOIN src s "
        "ON s.source_id = ev.workspace_id AND s.object = 'workspaces'"
    )


@pytest.fixture(scope="module")
def med_db(medium):
    con = duckdb.connect()
    _usage(con, medium)
    yield con
    con.close()


def test_events_come_from_live_logins_of_their_workspace(small):
    created, workspace, deactivated = {}, {}, {}
    for _, path in files_of(small, "product/users"):
        for r in read_rows(path, "product/users")[1]:
            created[r["user_id"]] = r["created_at"]
            workspace[r["user_id"]] = r["workspace_id"]
            if r["status"] == "deactivated":
                deactivated.setdefault(r["user_id"], r["updated_at"][:10])
    n = 0
    for _, path in files_of(small, "product/usage_events"):
        for r in read_rows(path, "product/usage_events")[1]:
            if r is None or r["user_id"] is None:
                continue
            n += 1
            u = r["user_id"]
            assert workspace[u] == r["workspace_id"]
            assert created[u] < r["timestamp"]
            assert u not in deactivated or r["timestamp"][:10] < deactivated[u]
    assert n > 1000


def test_usage_only_while_active(med_db):
    assert med_db.sql(
        "SELECT count(*) FROM e JOIN acc USING (account_key) "
        "WHERE e.d < signup_date OR e.d >= churn_date"
    ).fetchall() == [(0,)]


def test_usage_decays_before_churn(med_db):
    start = med_db.sql("SELECT min(d) FROM e").fetchall()[0][0]
    n, agg, med = med_db.sql(
        f"""
        WITH c AS (SELECT account_key, churn_date FROM acc
                   WHERE churn_kind = 'churned' AND churn_date >= DATE '{start}' + 120)
        SELECT count(*), (sum(l30) / 30.0) / (sum(base) / 60.0),
               median((l30 / 30.0) / nullif(base / 60.0, 0))
        FROM (SELECT account_key,
                count(*) FILTER (WHERE e.d >= churn_date - 30 AND e.d < churn_date) l30,
                count(*) FILTER (WHERE e.d >= churn_date - 120 AND e.d < churn_date - 60) base
              FROM c LEFT JOIN e USING (account_key) GROUP BY ALL)"""
    ).fetchall()[0]
    assert n >= 10
    assert med < 0.7 and agg < 0.85


def test_upgraders_try_premium_features_more(med_db):
    up, other, n_up = med_db.sql(
        """
        WITH ad AS (SELECT account_key, count(DISTINCT d) n_days,
                      count(*) FILTER (WHERE event_type = 'premium_feature_trial') p
                    FROM e GROUP BY 1)
        SELECT sum(p) FILTER (WHERE upgrade_date IS NOT NULL)
                 / sum(n_days) FILTER (WHERE upgrade_date IS NOT NULL),
               sum(p) FILTER (WHERE upgrade_date IS NULL)
                 / sum(n_days) FILTER (WHERE upgrade_date IS NULL),
               count(*) FILTER (WHERE upgrade_date IS NOT NULL)
        FROM ad JOIN acc USING (account_key)"""
    ).fetchall()[0]
    assert n_up >= 10
    assert up / other >= 3


def test_churn_follows_tier_and_early_integrations(med_db):
    rates = dict(
        med_db.sql(
            "SELECT tier_start, avg((churn_date IS NOT NULL)::INT) FROM acc "
            "WHERE converted GROUP BY 1"
        ).fetchall()
    )
    assert rates["enterprise"] < rates["starter"]
    integ = dict(
        med_db.sql(
            "SELECT integrations_first30 >= 2, avg((churn_date IS NOT NULL)::INT) FROM acc "
            "WHERE converted GROUP BY 1"
        ).fetchall()
    )
    assert integ[True] < integ[False]


def test_high_priority_tickets_spike_before_churn(medium, med_db):
    med_db.execute(
        f"""CREATE OR REPLACE TABLE t AS SELECT DISTINCT ON (ticket_id) ticket_id, org_id, priority,
            topic, CAST(created_at AS DATE) d
            FROM read_csv('{medium}/support/tickets/*/*.csv', all_varchar=true, ignore_errors=true)
            ORDER BY ticket_id"""
    )
    rows = dict(
        (pre, (hi, io))
        for pre, hi, io in med_db.sql(
            """SELECT coalesce(d >= churn_date - 60 AND d < churn_date, false),
                  avg((priority IN ('high', 'critical'))::INT),
                  avg((topic IN ('integration', 'onboarding'))::INT)
               FROM t JOIN src s ON s.source_id = t.org_id AND s.object = 'organizations'
               JOIN acc USING (account_key) GROUP BY 1"""
        ).fetchall()
    )
    assert rows[True][0] > 1.5 * rows[False][0]
    assert rows[True][1] > 1.3 * rows[False][1]


# ---------------------------------------------------------------------------------- CLI


def test_cli_clean_and_summary(tmp_path, capsys):
    out = tmp_path / "landing"
    (out / "stale").mkdir(parents=True)
    args = ["--out", str(out), "--accounts", "20", "--days", "21", "--seed", "5", "--quiet"]
    assert cli_main([*args, "--clean"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("sample_company: ") and "files written" in line
    assert "product/usage_events=" in line
    assert not (out / "stale").exists()
    assert (out / "_truth" / "manifest.json").exists()
    assert cli_main([*args, "--write-through", "2026-10-31"]) == 0
    assert "0 files written" in capsys.readouterr().out
