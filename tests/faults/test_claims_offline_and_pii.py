"""Two claims that need a whole build (issue 21), on a sample company built the way `make demo`
builds it: in a fresh process, on a persistent SQLite Dagster instance, with every outbound
network attempt refused and recorded (claims_guard.py). After the build, two bad deliveries
land: one a raw gate quarantines a row of (it passes), one it fails on.

- "No network is used at run time" (README, Development): no outbound attempt in the build
  (model training, scoring and the CRM sync included) nor in the deliveries' runs, and no
  Dagster telemetry log. The switches themselves: tests/test_claims_telemetry.py.
- "Dagster's event log holds no emails or names" (README, Erasure): nor do the instance's
  other files, the failed gate's description or the GX Data Docs.

A whole build in a fresh process takes minutes: the module is in the fault suite.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from faultkit import ROOT, record

pytestmark = pytest.mark.faults

ACCOUNTS, DAYS, SEED = 80, 240, 5  # the smallest company seen to train both models
GUARD = Path(__file__).with_name("claims_guard.py")
BAD_DATE = "2026-11-01"  # after the company's last extract (2026-10-31), before the clock
USERS_FILE = f"product/users/{BAD_DATE}/users_resent.jsonl"
TICKETS_FILE = f"support/tickets/{BAD_DATE}/tickets_resent.csv"
# A helpdesk export that pasted a whole mail signature into a name: over the 4,096-character
# limit, so the row is quarantined, and the value starts with the person's real name.
SIGNATURE = " | Head of Security | Mobile +1 408 555 0100 | " + "Confidential. " * 320
# Switches that keep telemetry off: the test's own process has them set (conftest), the build
# must not inherit them, so the platform's own code has to turn telemetry off.
UNSET = (
    "MLFLOW_DISABLE_TELEMETRY",
    "GX_ANALYTICS_ENABLED",
    "DO_NOT_TRACK",
    "PYTEST_CURRENT_TEST",  # MLflow also stays quiet under pytest or CI: look like a laptop
    "CI",
    "GITHUB_ACTIONS",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


@dataclass
class Built:
    lake: Path
    landing: Path
    home: Path  # DAGSTER_HOME
    attempts: Path  # the guard's log of outbound attempts
    env: dict[str, str]


def _env(lake: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET and not k.startswith("LAKEHOUSE_")}
    return {
        **env,
        "DAGSTER_HOME": str(home),
        "LAKEHOUSE_LAKE_ROOT": str(lake),
        "LAKEHOUSE_LANDING_ROOT": str(lake / "landing"),
        "PYTHONPATH": str(ROOT),
    }


def _guarded(b: Built, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(GUARD), str(b.attempts), *args],
        cwd=ROOT,
        env=b.env,
        capture_output=True,
        text=True,
        timeout=1500,
    )


def _records(path: Path) -> list[dict]:
    """The records of a landing file, read with the standard library (not the platform)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
        text = f.read()
    name = path.name.removesuffix(".gz")
    try:
        if name.endswith(".csv"):
            return list(csv.DictReader(io.StringIO(text)))
        if name.endswith(".jsonl"):
            out = []
            for line in text.splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a planted unparseable line: its emails are found by pattern
                if isinstance(row, dict):
                    out.append(row)
            return out
        rows = json.loads(text)
        return [r for r in rows if isinstance(r, dict)]
    except (json.JSONDecodeError, csv.Error):
        return []


# object -> the fields of a record that name a person (the landing contract, sample_company).
NAME_FIELDS = {
    ("crm", "contacts"): (("FirstName", "LastName"),),
    ("crm", "accounts"): (("OwnerName",),),
    ("crm", "opportunities"): (("OwnerName",),),
    ("product", "users"): (("name",),),
    ("support", "tickets"): (("requester_name",),),
}


def landing_people(landing: Path) -> tuple[set[str], set[str]]:
    """Every email (any address-shaped text in any landing file) and every full name of a
    person in the landing data, lower-cased."""
    emails: set[str] = set()
    names: set[str] = set()
    for path in sorted(p for p in landing.rglob("*") if p.is_file()):
        rel = path.relative_to(landing).parts
        if rel[0].startswith("_"):
            continue  # the ground truth: not delivered data
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            emails |= {e.lower() for e in EMAIL.findall(f.read())}
        for fields in NAME_FIELDS.get((rel[0], rel[1]), ()):
            for r in _records(path):
                full = " ".join(str(r.get(f) or "").strip() for f in fields).strip()
                full = full.split(" | ")[0]  # the pasted signature is not part of the name
                if " " in full:
                    names.add(full.lower())
    return emails, names


def _bad_deliveries(landing: Path) -> tuple[str, str]:
    """A re-delivered users file with one overlong name (the gate passes), and a re-delivered
    tickets file with unknown priorities and one overlong name (the gate fails). Returns the
    full names the overlong values start with."""
    users: list[dict] = []
    for src in sorted(landing.glob("product/users/*/*.jsonl*")):
        users += [u for u in _records(src) if " " in (u.get("name") or "").strip()]
    users = users[:40]
    assert len(users) >= 30, "the sample company has enough product users to re-deliver"
    long_user = users[0]["name"]
    users[0] = {**users[0], "name": long_user + SIGNATURE}
    path = landing / USERS_FILE
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(u) + "\n" for u in users))

    tickets: list[dict] = []
    for src in sorted(landing.glob("support/tickets/*/*.csv*")):
        tickets += [t for t in _records(src) if " " in (t.get("requester_name") or "").strip()]
    tickets = tickets[:20]
    assert len(tickets) == 20
    long_requester = tickets[0]["requester_name"]
    tickets[0] = {**tickets[0], "requester_name": long_requester + SIGNATURE}
    for t in tickets[1:6]:
        t["priority"] = "urgent"  # not one of the accepted priorities
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(tickets[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(tickets)
    path = landing / TICKETS_FILE
    path.parent.mkdir(parents=True)
    path.write_text(out.getvalue())
    return long_user, long_requester


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Built:
    from sample_company.generate import generate

    root = tmp_path_factory.mktemp("claims")
    lake = root / "lake"
    generate(lake / "landing", accounts=ACCOUNTS, days=DAYS, seed=SEED)
    home = root / "dagster_home"
    b = Built(lake, lake / "landing", home, root / "attempts.jsonl", _env(lake, home))
    demo = _guarded(b, "demo")
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-4000:]
    _bad_deliveries(b.landing)
    passed = _guarded(b, "materialize", "raw/product_users", "raw/quarantine")
    assert passed.returncode == 0, passed.stderr[-4000:]
    failed = _guarded(b, "materialize", "raw/support_tickets")
    assert failed.returncode == 1, failed.stderr[-4000:]
    return b


# -- no network at run time -------------------------------------------------------------------
def _attempts(b: Built) -> list[dict]:
    if not b.attempts.exists():
        return []
    return [json.loads(line) for line in b.attempts.read_text().splitlines()]


def test_the_guard_sees_an_outbound_attempt(tmp_path):
    """The guard is not blind: a plain HTTP fetch is recorded (and refused)."""
    log = tmp_path / "attempts.jsonl"
    out = subprocess.run(
        [sys.executable, str(GUARD), str(log), "fetch", "http://example.com/"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(a["kind"], a["target"]) for a in seen] == [("getaddrinfo", "'example.com'")]


def test_the_build_models_and_bad_deliveries_use_no_network(built):
    from assets.ml import SPECS
    from assets.ml.models import aliases
    from resources.lake import LakeResource
    from resources.mlflow import tracking_uri_for

    attempts = _attempts(built)
    assert attempts == [], "\n\n".join(f"{a['kind']} {a['target']}\n{a['stack']}" for a in attempts)
    # Dagster keeps its telemetry in $DAGSTER_HOME/logs/event.log (for the webserver to upload)
    # whenever the instance has it enabled: none was written.
    assert not (built.home / "logs" / "event.log").exists()
    # ... while the build did train, register and score both models and sync the CRM
    lake = LakeResource(root=str(built.lake))
    uri = tracking_uri_for(str(built.lake))
    for spec in SPECS:
        assert "champion" in aliases(spec.model_name, uri), spec.model_name
        assert lake.read(spec.scores.layer, spec.scores.table).num_rows > 0
    assert lake.read("reverse_etl", "sync_audit").num_rows > 0
    record("no network at run time", outbound_attempts=len(attempts), guarded_processes=3)


# -- no emails or names in Dagster's storage ---------------------------------------------------
def _strings(value: object) -> list[str]:
    """Every string in a decoded JSON value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _pattern(needles: set[str]) -> re.Pattern:
    """One regular expression for all needles, as a trie: a single pass over the text."""
    trie: dict = {}
    for word in needles:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return re.compile(build(trie))


def _holding(texts: dict[str, str], needles: set[str]) -> dict[str, list[str]]:
    """Where each text holds a needle (case-insensitive): {where: first needles found}."""
    pattern = _pattern(needles)
    found = {}
    for where, text in texts.items():
        hits = sorted(set(pattern.findall(text.lower())))
        if hits:
            found[where] = hits[:5]
    return found


def test_dagster_storage_check_descriptions_and_data_docs_hold_no_email_or_name(built):
    from dagster import DagsterInstance
    from dagster._serdes import serialize_value

    emails, names = landing_people(built.landing)
    assert len(emails) > 100 and len(names) > 100  # the company's people, not a handful

    texts: dict[str, str] = {}
    failed_checks = []
    with DagsterInstance.from_config(str(built.home)) as instance:
        runs = instance.get_runs()
        assert len(runs) >= 4  # the build's runs and the two deliveries'
        for run in runs:
            texts[f"run {run.run_id}"] = "\n".join(_strings(json.loads(serialize_value(run))))
            for n, entry in enumerate(instance.all_logs(run.run_id)):
                decoded = "\n".join(_strings(json.loads(serialize_value(entry))))
                texts[f"run {run.run_id} event {n} ({entry.dagster_event_type})"] = decoded
                dagster_event = entry.dagster_event
                if dagster_event and dagster_event.event_type_value == "ASSET_CHECK_EVALUATION":
                    data = dagster_event.event_specific_data
                    if not data.passed:
                        failed_checks.append((data.asset_key.to_user_string(), data.description))
    # The failed gate is there, and says which file broke which rule: it was read, not skipped.
    failed_gates = [(k, d) for k, d in failed_checks if k.startswith("raw/")]
    assert [k for k, _ in failed_gates] == ["raw/support_tickets"]
    description = failed_gates[0][1]
    assert TICKETS_FILE in description and "max_length(requester_name)" in description
    texts["failed check description"] = description
    # ... and the overlong name of the gate that passed is in quarantine, under its rule
    from resources.lake import LakeResource

    q = LakeResource(root=str(built.lake)).read("raw", "quarantine").to_pylist()
    assert ("max_length(name)", 1) in {
        (r["rule"], r["line"]) for r in q if r["source_file"] == USERS_FILE
    }

    for path in sorted(p for p in built.home.rglob("*") if p.is_file()):
        texts[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    docs = sorted((built.lake / "gx_docs").rglob("*.html"))
    assert docs, "the gates write their Data Docs"
    for path in docs:
        texts[str(path)] = html.unescape(path.read_text())

    found = {**_holding(texts, emails), **_holding(texts, names)}
    record(
        "no emails or names in Dagster's storage",
        runs=len(runs),
        texts_scanned=len(texts),
        emails=len(emails),
        names=len(names),
        texts_holding_one=len(found),
    )
    assert found == {}
