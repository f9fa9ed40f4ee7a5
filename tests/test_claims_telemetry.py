"""README "Development": "No network is used at run time: no DuckDB extension downloads, Dagster
telemetry is off in `platform/dagster.yaml`, GX analytics and MLflow telemetry are disabled by
environment." Each switch, where a user's process meets it. (That a whole build then makes no
outbound attempt is tests/faults/test_claims_offline_and_pii.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

# What keeps them off must come from the platform, not from the environment this test runs in
# (conftest sets the same switches; MLflow also stays quiet under pytest or CI).
UNSET = (
    "MLFLOW_DISABLE_TELEMETRY",
    "GX_ANALYTICS_ENABLED",
    "DO_NOT_TRACK",
    "DAGSTER_DISABLE_TELEMETRY",
    "PYTEST_CURRENT_TEST",
    "CI",
    "GITHUB_ACTIONS",
)


def _bare_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET and not k.startswith("LAKEHOUSE_")}
    return {
        **env,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "LAKEHOUSE_LAKE_ROOT": str(tmp_path / "lake"),
        "PYTHONPATH": str(ROOT),
    }


def test_the_instance_the_project_writes_has_dagster_telemetry_off(tmp_path):
    """The instance file `make dev` and `make demo` write (resources.profile)."""
    from dagster import DagsterInstance

    home = tmp_path / "home"
    out = subprocess.run(
        [sys.executable, "-m", "resources.profile", "instance", str(home)],
        cwd=ROOT,
        env=_bare_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.telemetry_enabled is False


def test_loading_the_code_location_turns_gx_and_mlflow_telemetry_off(tmp_path):
    """`dagster dev` without make (the distributed profile's way) loads definitions.py first."""
    probe = (
        "import os, runpy\n"
        "runpy.run_path('platform/definitions.py')\n"
        "from mlflow.telemetry.utils import is_telemetry_disabled\n"
        "print(os.environ.get('GX_ANALYTICS_ENABLED'), os.environ.get('MLFLOW_DISABLE_TELEMETRY'),"
        " is_telemetry_disabled())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=_bare_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["false", "true", "True"]


def test_any_process_importing_the_platform_has_telemetry_off(tmp_path):
    """Every entry point (make targets, commands, workers) imports `resources`, which switches
    telemetry off; nothing else has to (no Makefile export, no per-script setting)."""
    probe = (
        "import os, resources\n"
        "print(*(os.environ.get(k) for k in ('GX_ANALYTICS_ENABLED', 'MLFLOW_DISABLE_TELEMETRY',"
        " 'DO_NOT_TRACK', 'DAGSTER_DISABLE_TELEMETRY')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=_bare_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["false", "true", "1", "1"]


def test_the_switches_live_in_one_place():
    """resources/quiet.py names them; a second list (the Makefile's exports, a script's own
    setdefault) would drift from it."""
    from resources.quiet import QUIET_ENV

    places = [ROOT / "Makefile", *ROOT.glob("platform/*.py"), *ROOT.glob("assets/**/*.py")]
    places += [
        p for p in ROOT.glob("*/**/*.py") if p.parts[len(ROOT.parts)] in ("checks", "resources")
    ]
    for path in places:
        if path.name == "quiet.py":
            continue
        text = path.read_text()
        named = [var for var in QUIET_ENV if var in text]
        assert not named, f"{path.relative_to(ROOT)} sets {named} itself"


def test_duckdb_never_installs_or_loads_an_extension_on_demand():
    """The connection every asset gets (DuckDBResource) is set so that a query needing an
    extension fails instead of downloading it."""
    from resources.duckdb import DuckDBResource

    con = DuckDBResource(threads=1).connect()
    settings = con.execute(
        "SELECT current_setting('autoinstall_known_extensions'), "
        "current_setting('autoload_known_extensions')"
    ).fetchall()
    assert settings == [(False, False)]
