"""`dagster dev` serves the asset graph on loopback, from the workspace file, as users run it."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import _post, run_dagster_dev

QUERY = '{"query": "{ assetNodes { assetKey { path } groupName } }"}'


@pytest.fixture
def dagster_dev(tmp_path: Path):
    with run_dagster_dev(tmp_path, tmp_path / "lake", tmp_path / "landing") as server:
        yield server.port, server.proc


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
    # Bound to loopback only: every socket listening on the port is on 127.0.0.1. A test that
    # cannot see the sockets fails, saying why; it never passes without looking.
    assert shutil.which("ss"), "`ss` (iproute2) is needed to see where the UI listens"
    done = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
    assert done.returncode == 0, f"`ss` could not list the listening sockets: {done.stderr}"
    local = [line.split()[3] for line in done.stdout.splitlines() if line.strip()]
    assert local, f"`ss` shows no socket listening on port {port}, though the UI answered there"
    assert {address.rsplit(":", 1)[0] for address in local} == {"127.0.0.1"}, local
