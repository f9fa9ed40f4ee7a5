"""Secrets stay secret, data values never become SQL, and the UI listens on loopback only."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from conftest import start_make_dev
from faultkit import ROOT, delta_tables, drive, lake_env, record
from servers import free_port

pytestmark = pytest.mark.faults

SALT = "salt-Zq8XvK1mW3pRsentinel"
TOKEN = "tok-Yh4NcE7uB2sLsentinel"
HOSTILE = "o'brien\"); DROP TABLE t; --@example.com"


@pytest.fixture
def crm_api():
    """A local HTTP CRM that accepts upserts only with the expected bearer token."""
    received: list[dict] = []
    auth: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            auth.append(self.headers.get("Authorization", ""))
            ok = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            records = body.get("records", [])
            received.extend(records if ok else [])
            key = body.get("key")
            results = [{"key": r[key], "ok": ok, "error": None if ok else "401"} for r in records]
            data = json.dumps({"results": results, "ok": ok}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", received, auth
    server.shutdown()


def _files_holding(roots: list[Path], needles: list[str]) -> list[str]:
    """Files under `roots` whose bytes contain a needle (plain or UTF-16, as SQLite may store)."""
    patterns = [n.encode() for n in needles] + [n.encode("utf-16-le") for n in needles]
    hits = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and any(p in path.read_bytes() for p in patterns):
                hits.append(str(path))
    return hits


def _tables_holding(lake: Path, needles: list[str]) -> list[str]:
    """Delta tables with a text value containing a needle (decoded: Parquet compresses)."""
    hits = []
    for path in delta_tables(lake):
        table = DeltaTable(str(path)).to_pyarrow_table()
        for name in table.column_names:
            col = table[name]
            if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
                continue
            text = "\n".join(v for v in col.to_pylist() if v)
            if any(n in text for n in needles):
                hits.append(f"{path.relative_to(lake)}.{name}")
    return hits


def test_no_secret_reaches_logs_metadata_tables_or_files(tmp_path, crm_api):
    from sample_company.generate import generate

    url, received, auth = crm_api
    landing, lake, home = tmp_path / "landing", tmp_path / "lake", tmp_path / "dagster_home"
    generate(landing, accounts=200, days=300, seed=3)
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "platform" / "dagster.yaml").read_text())
    env = lake_env(
        lake,
        landing,
        home,
        LAKEHOUSE_PII_SALT=SALT,
        LAKEHOUSE_CRM_KIND="http",
        LAKEHOUSE_CRM_HTTP_URL=url,
        LAKEHOUSE_CRM_HTTP_TOKEN=TOKEN,
    )
    run = drive("graph", env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    # The secrets were used: the CRM got records with the token, emails were hashed.
    assert received and set(auth) == {f"Bearer {TOKEN}"}
    assert not (lake / ".secrets").exists()  # the salt came from the environment

    needles = [SALT, TOKEN]
    assert not any(n in run.stdout + run.stderr for n in needles)
    files = _files_holding([lake, home], needles)
    tables = _tables_holding(lake, needles)
    assert files == [] and tables == [], (files, tables)
    record(
        "secrets",
        secrets_tried=len(needles),
        files_scanned=sum(1 for root in (lake, home) for p in root.rglob("*") if p.is_file()),
        tables_scanned=len(delta_tables(lake)),
        files_with_a_secret=len(files),
        tables_with_a_secret=len(tables),
        crm_records_sent=len(received),
    )


def test_values_from_the_data_never_become_sql(tmp_path):
    """Hostile text where data flows into queries: an erasure by email, a CRM key, a drift
    column name. Each stays a value: the right rows change, nothing else does."""
    from assets.privacy.match import Needles
    from assets.privacy.reach import Reach
    from assets.privacy.tables import count_matches, erase_table
    from resources.destinations import SQLiteDestination
    from resources.lake import LakeResource

    people = pa.table(
        {
            "person_id": ["p1", "p2", "p3"],
            "email": [HOSTILE, "ann@example.com", "o'brien@example.com"],
            "note": [f"asked by {HOSTILE}", "nothing", "o'brien"],
        }
    )
    lake = LakeResource(root=str(tmp_path))
    write_deltalake(lake.uri("entities", "person"), people)
    con = duckdb.connect()
    needles = Needles([HOSTILE])
    assert count_matches(con, lake.table("entities", "person"), needles) == 1
    erase_table(con, lake, Reach("entities/person", delete=True), needles)
    left = lake.read("entities", "person")
    wrong = len({"p2", "p3"} ^ set(left["person_id"].to_pylist()))  # only the subject's row goes
    assert wrong == 0
    assert HOSTILE not in json.dumps(left.to_pylist())

    crm = SQLiteDestination(tmp_path / "crm.db")
    key = "001'); DROP TABLE crm_account_updates; --"
    assert crm.upsert([{"crm_account_id": key, "note": HOSTILE}], "crm_account_id")[0].ok
    with sqlite3.connect(tmp_path / "crm.db") as db:
        stored = db.execute("SELECT crm_account_id, payload FROM crm_account_updates").fetchall()
    wrong += sum(1 for k, p in stored if k != key or json.loads(p)["note"] != HOSTILE)
    assert wrong == 0 and len(stored) == 1

    record("sql_injection", hostile_values_tried=3, rows_changed_wrongly=wrong)


def test_hostile_column_names_in_a_landed_file_stay_names(lakehouse):
    """A drift column named like SQL is kept as a column; the batch is typed as usual."""
    header = (
        "subscription_id,customer_id,plan,status,mrr,seats,started_at,current_period_end,"
        'canceled_at,updated_at,"x""); DROP TABLE fields; --"'
    )
    row = (
        "sub_1,cus_1,growth,active,100,5,2026-01-01T00:00:00Z,2026-03-01T00:00:00Z,,"
        '2026-01-02T00:00:00Z,"it\'s; DROP TABLE raw --"'
    )
    lakehouse.drop("billing/subscriptions/2026-01-05/subscriptions.csv", f"{header}\n{row}\n")
    assert lakehouse.materialize("raw/billing_subscriptions").success
    table = lakehouse.lake.read("raw", "billing_subscriptions")
    drift = [c for c in table.column_names if "drop" in c.lower()]
    assert len(drift) == 1 and table[drift[0]].to_pylist() == ["it's; DROP TABLE raw --"]


def _listening_addresses(port: int) -> set[str]:
    """Addresses a local TCP port listens on, from /proc (no connection made). Without the
    IPv4 table nothing can be told, and the test fails saying so; the IPv6 table is absent
    only where the kernel has no IPv6, so nothing can listen on `::`."""
    assert os.path.exists("/proc/net/tcp"), (
        "/proc/net/tcp is missing: cannot see where the UI listens"
    )
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_ui_listens_on_loopback_only(tmp_path):
    """`make dev` (platform/dev.py) serves Dagster, the Data Docs and the MLflow UI on
    127.0.0.1 and nowhere else: nothing on 0.0.0.0 or ::."""
    make = subprocess.run(["make", "-n", "dev"], cwd=ROOT, capture_output=True, text=True)
    assert "platform/dev.py" in make.stdout, f"`make -n dev` runs no launcher: {make}"
    ports = {name: free_port() for name in ("dagster", "docs", "mlflow")}
    lake = tmp_path / "lake"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "LAKEHOUSE_LAKE_ROOT": str(lake),
        "LAKEHOUSE_LANDING_ROOT": str(lake / "landing"),
        "DAGSTER_PORT": str(ports["dagster"]),
        "LAKEHOUSE_DATA_DOCS_URL": f"http://127.0.0.1:{ports['docs']}",
        "LAKEHOUSE_MLFLOW_UI_URL": f"http://127.0.0.1:{ports['mlflow']}",
    }
    log = tmp_path / "make_dev.log"
    proc = start_make_dev(env, log)
    try:
        deadline = time.monotonic() + 300
        while "make dev is ready" not in log.read_text():
            assert proc.poll() is None, f"make dev exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"make dev not ready:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        addresses = {name: _listening_addresses(port) for name, port in ports.items()}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    # 127.0.0.1, for each of the three servers
    assert addresses == {name: {"0100007F"} for name in ports}, addresses
    record("loopback", ui_listening_addresses="127.0.0.1")
