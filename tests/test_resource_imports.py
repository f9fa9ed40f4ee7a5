"""Resources sit below the assets: importing any of them, building the MLflow tracking URI or
opening the CRM destination loads no `assets` module and none of the heavy model libraries
(CatBoost, MLflow, matplotlib): the CLI and the code location use resources without them."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys

import resources
from conftest import ROOT

HEAVY = ("assets", "catboost", "mlflow", "matplotlib")

PROBE = """
import importlib, json, pkgutil, sys
import resources
names = sorted(m.name for m in pkgutil.iter_modules(resources.__path__))
for name in names:
    importlib.import_module(f"resources.{name}")
from resources.crm import CrmResource
from resources.mlflow import MlflowResource
lake = sys.argv[2]
uri = MlflowResource().uri(lake)
destination = CrmResource().destination(lake)
assert uri.startswith("sqlite:///") and destination.name.startswith("sqlite:"), (uri, destination)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in json.loads(sys.argv[1]))
print(json.dumps({"modules": names, "heavy": heavy}))
"""


def test_resources_load_no_asset_nor_model_library(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY), str(tmp_path / "lake")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    expected = sorted(m.name for m in pkgutil.iter_modules(resources.__path__))
    assert found["modules"] == expected and {"crm", "mlflow", "destinations"} <= set(expected)
    assert found["heavy"] == []
