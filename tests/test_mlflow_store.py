"""The first models of a fresh PostgreSQL tracking store, trained at once by several workers
(the distributed profile's two Celery workers do exactly this): every process gets a working
store, none fails creating its tables (MLflow creates them unlocked on first use)."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import ROOT
from servers import create_database, postgres_server

WORKERS = 4
# Each process waits for the same instant, then opens the store as a model step does.
PROBE = """
import sys, time
from assets.ml.models import _client
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
client = _client(sys.argv[1])
print(len(client.search_experiments()))
"""


def test_workers_opening_a_fresh_postgresql_store_at_once_all_succeed():
    with postgres_server() as pg:
        uri = create_database(pg, "mlflow").replace("postgresql://", "postgresql+psycopg2://")
        start = time.time() + 8  # past every interpreter's imports (MLflow, CatBoost: seconds)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", PROBE, uri, str(start)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(WORKERS)
        ]
        results = [p.communicate(timeout=300) for p in procs]
    failed = [err[-1500:] for p, (_, err) in zip(procs, results, strict=True) if p.returncode]
    assert failed == []
    assert [out.split()[-1] for out, _ in results] == ["1"] * WORKERS  # the Default experiment
