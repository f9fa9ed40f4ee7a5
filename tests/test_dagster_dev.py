"""`make dev` (platform/dev.py) as users run it: the Dagster UI serves the asset graph, the
gates' Data Docs and the MLflow UI of the lake answer beside it, all on loopback only, and
stopping it stops everything it started."""

from __future__ import annotations

import os
import runpy
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import MAKE_DEV, ROOT, _post, start_make_dev
from servers import free_port

pytestmark = pytest.mark.ui  # make ui (CI runs it): minutes of servers and a browser

QUERY = '{"query": "{ assetNodes { assetKey { path } groupName } }"}'
DEV = MAKE_DEV


@dataclass
class MakeDev:
    proc: subprocess.Popen
    log: Path
    lake: Path
    dagster: str
    docs: str
    mlflow: str

    @property
    def ports(self) -> list[int]:
        return [int(url.rsplit(":", 1)[1]) for url in (self.dagster, self.docs, self.mlflow)]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read().decode("utf-8", errors="replace")


def _wait(what: str, answer, proc: subprocess.Popen, log: Path, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"make dev exited:\n{log.read_text()[-3000:]}"
        try:
            found = answer()
            if found:
                return found
        except (OSError, KeyError, TypeError, ValueError):
            pass
        assert time.monotonic() < deadline, f"{what} did not answer in {timeout} s"
        time.sleep(1)


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc: no psutil here)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = {p for p, pp in parents.items() if pp == parent}
        todo += list(children - found)
        found |= children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def make_dev(full_lake, tmp_path_factory):
    """`make dev` over a lake holding the session lake's Data Docs and MLflow store (copies:
    the Dagster daemon of `make dev` must not run anything on the shared lake)."""
    tmp = tmp_path_factory.mktemp("make_dev")
    lake = tmp / "lake"
    shutil.copytree(full_lake.lake.data_docs, lake / "gx_docs")
    (lake / "mlflow").mkdir(parents=True)
    shutil.copy2(full_lake.lake_root / "mlflow" / "mlflow.db", lake / "mlflow" / "mlflow.db")
    dagster, docs, mlflow = (f"http://127.0.0.1:{free_port()}" for _ in range(3))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp / "dagster_home"),
        "LAKEHOUSE_LAKE_ROOT": str(lake),
        "LAKEHOUSE_LANDING_ROOT": str(tmp / "landing"),
        "DAGSTER_PORT": dagster.rsplit(":", 1)[1],
        "LAKEHOUSE_DATA_DOCS_URL": docs,
        "LAKEHOUSE_MLFLOW_UI_URL": mlflow,
    }
    log = tmp / "make_dev.log"
    proc = start_make_dev(env, log)
    try:
        yield MakeDev(proc, log, lake, dagster, docs, mlflow)
    finally:
        left = _descendants(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        for pid in left:  # a failed test must not leave servers behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_make_dev_serves_dagster_data_docs_and_mlflow_on_loopback(make_dev):
    dev = make_dev

    def graph():
        return _post(f"{dev.dagster}/graphql", QUERY)["data"]["assetNodes"]

    nodes = _wait("the Dagster UI", graph, dev.proc, dev.log)
    keys = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
    assert keys["raw/crm_accounts"] == "raw"
    assert keys["landing/product_usage_events"] == "landing"
    assert keys["raw/quarantine"] == "raw"

    # the gates' Data Docs of the lake, over http, styled from the docs server itself
    status, page = _get(f"{dev.docs}/raw.crm_accounts.html")
    assert status == 200 and "Data asset: raw/crm_accounts" in page
    status, css = _get(f"{dev.docs}/static/bootstrap/css/bootstrap.min.css")
    assert status == 200 and "Bootstrap v4" in css
    status, index = _get(f"{dev.docs}/")
    assert status == 200 and "raw.crm_accounts.html" in index

    # the MLflow UI on the platform's tracking store: the experiments the models were logged to
    def experiments():
        body = _post(f"{dev.mlflow}/api/2.0/mlflow/experiments/search", '{"max_results": 100}')
        return {e["name"] for e in body["experiments"]}

    served = _wait("the MLflow UI", experiments, dev.proc, dev.log)
    with sqlite3.connect(dev.lake / "mlflow" / "mlflow.db") as db:
        stored = {name for (name,) in db.execute("SELECT name FROM experiments")}
    assert served == stored and len(stored) > 1  # the models' experiments, not only Default

    # the three URLs are printed once the UI answers
    def announced():
        return "make dev is ready" in dev.log.read_text()

    _wait("the announcement", announced, dev.proc, dev.log, timeout=30)
    printed = dev.log.read_text()
    assert all(url in printed for url in (dev.dagster, dev.docs, dev.mlflow)), printed
    # and no notice a user of this layout cannot act on (`dg dev` needs a package: README)
    assert "SupersessionWarning" not in printed and "dg dev" not in printed, printed

    # Bound to loopback only: every socket listening on the ports is on 127.0.0.1. A test that
    # cannot see the sockets fails, saying why; it never passes without looking.
    assert shutil.which("ss"), "`ss` (iproute2) is needed to see where the servers listen"
    for port in dev.ports:
        done = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
        assert done.returncode == 0, f"`ss` could not list the listening sockets: {done.stderr}"
        local = [line.split()[3] for line in done.stdout.splitlines() if line.strip()]
        assert local, f"`ss` shows no socket listening on port {port}, though it answered"
        assert {address.rsplit(":", 1)[0] for address in local} == {"127.0.0.1"}, local


def test_stopping_make_dev_leaves_nothing_running(make_dev):
    dev = make_dev
    _wait("the Dagster UI", lambda: _post(f"{dev.dagster}/graphql", QUERY), dev.proc, dev.log)
    started = _descendants(dev.proc.pid)
    assert len(started) >= 3  # dagster dev (with its webserver and daemon) and mlflow server
    dev.proc.send_signal(signal.SIGTERM)
    assert dev.proc.wait(timeout=60) == 0, dev.log.read_text()[-3000:]
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in started if _alive(pid)], "make dev left processes behind"
    for port in dev.ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"


def _launcher():
    return runpy.run_path(str(DEV))


def test_a_taken_port_is_replaced_unless_a_setting_asked_for_it(monkeypatch):
    dev = _launcher()
    said: list[str] = []
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        monkeypatch.delenv("LAKEHOUSE_DATA_DOCS_URL", raising=False)
        default = f"http://127.0.0.1:{port}"
        moved = dev["place"]("Data Docs", "LAKEHOUSE_DATA_DOCS_URL", default, said.append)
        assert moved.serve and moved.port != port
        assert said and str(port) in said[0] and "LAKEHOUSE_DATA_DOCS_URL" in said[0]

        monkeypatch.setenv("LAKEHOUSE_DATA_DOCS_URL", default)
        with pytest.raises(dev["PortTaken"], match="LAKEHOUSE_DATA_DOCS_URL"):
            dev["place"]("Data Docs", "LAKEHOUSE_DATA_DOCS_URL", default, said.append)

    monkeypatch.setenv("LAKEHOUSE_DATA_DOCS_URL", "https://docs.example.org/gates")
    elsewhere = dev["place"]("Data Docs", "LAKEHOUSE_DATA_DOCS_URL", default, said.append)
    assert not elsewhere.serve and elsewhere.url == "https://docs.example.org/gates"


def test_make_dev_refuses_a_taken_dagster_port_and_starts_nothing(tmp_path):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {
            **os.environ,
            "DAGSTER_HOME": str(tmp_path / "home"),
            "LAKEHOUSE_LAKE_ROOT": str(tmp_path / "lake"),
            "DAGSTER_PORT": str(port),
        }
        done = subprocess.run(
            [sys.executable, str(DEV)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {port} (DAGSTER_PORT={port}) is in use" in done.stdout
    assert not (tmp_path / "home").exists()  # nothing was started, not even the instance
