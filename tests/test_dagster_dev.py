"""`dagster dev` serves the asset graph on loopback, from the workspace file, as users run it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT

QUERY = '{"query": "{ assetNodes { assetKey { path } groupName } }"}'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: str) -> dict:
    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def dagster_dev(tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "platform" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "LAKEHOUSE_LAKE_ROOT": str(tmp_path / "lake"),
        "LAKEHOUSE_LANDING_ROOT": str(tmp_path / "landing"),
    }
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # dagster dev ignores signals sent to it alone
    )
    try:
        yield port, proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_dagster_dev_serves_the_graph_on_loopback(dagster_dev):
    port, proc = dagster_dev
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None, "dagster dev exited"
        try:
            nodes = _post(f"{base}/graphql", QUERY)["data"]["assetNodes"]
            if nodes:
                break
        except (OSError, KeyError, TypeError):
            pass
        assert time.time() < deadline, "dagster dev did not serve the asset graph in 120 s"
        time.sleep(1)
    keys = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
    assert keys["raw/crm_accounts"] == "raw"
    assert keys["landing/product_usage_events"] == "landing"
    assert keys["raw/quarantine"] == "raw"
    # Bound to loopback only.
    listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
    if listening:
        lines = [ln for ln in listening.splitlines() if f":{port} " in ln]
        assert lines and all("127.0.0.1:" in ln for ln in lines), lines
