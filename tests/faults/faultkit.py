"""What the fault suite's tests share (`from faultkit import ...`). Every module in this folder
sets `pytestmark = pytest.mark.faults` (deselected by default; `make faults` and CI run them); the
figures each test measures go to one JSON file that `docs/reliability.md` quotes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from figures import write_figures
from lake_compare import VOLATILE, VOLATILE_IN, delta_tables, lake_content, table_content

ROOT = Path(__file__).resolve().parents[2]
DRIVE = Path(__file__).with_name("drive.py")
# How lakes are compared lives in tests/lake_compare.py (the distributed suite shares it).
__all__ = [
    "DRIVE",
    "ROOT",
    "VOLATILE",
    "VOLATILE_IN",
    "delta_tables",
    "drive",
    "instance_home",
    "lake_content",
    "lake_env",
    "record",
    "table_content",
]


def record(section: str, **figures: object) -> None:
    """Figures of the fault suite (tests/artifacts/faults/figures.json)."""
    write_figures("faults", section, **figures)


def lake_env(lake: Path, landing: Path, home: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a run over `lake` and `landing` (on the instance at `home`, if any)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LAKEHOUSE_LAKE_ROOT": str(lake),
        "LAKEHOUSE_LANDING_ROOT": str(landing),
        **extra,
    }
    if home is not None:
        env["DAGSTER_HOME"] = str(home)
    return env


def instance_home(tmp_path: Path, name: str = "dagster_home") -> Path:
    """A persistent instance with the project's dagster.yaml, created before any run starts
    (two processes creating one SQLite instance at once race on its schema)."""
    home = tmp_path / name
    home.mkdir()
    shutil.copy(ROOT / "platform" / "dagster.yaml", home / "dagster.yaml")
    init = "from dagster import DagsterInstance; DagsterInstance.get().dispose()"
    subprocess.run(
        [sys.executable, "-c", init], env={**os.environ, "DAGSTER_HOME": str(home)}, check=True
    )
    return home


def drive(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    """`drive.py` with `args` in a process of its own (see its docstring)."""
    return subprocess.run(
        [sys.executable, str(DRIVE), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
