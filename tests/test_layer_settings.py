"""The layers' settings are read when the code location is built, never when `assets` is
imported: an import under a broken setting succeeds, and building the definitions with it fails
naming what is wrong (the event mapping, the c360 rules)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import DEFINITIONS, ROOT

# Every module of the events, c360 and features layers, and those that import them.
MODULES = (
    "assets.events",
    "assets.events.build",
    "assets.events.days",
    "assets.events.lifecycle",
    "assets.events.mapping",
    "assets.events.runs",
    "assets.events.sensor",
    "assets.c360",
    "assets.c360.profiles",
    "assets.features",
    "assets.features.lookup",
    "assets.automation",
    "assets.sensors",
)
SCRIPT = f"""
import importlib, runpy, sys
for name in {MODULES!r}:
    importlib.import_module(name)
print("imported")
try:
    runpy.run_path({str(DEFINITIONS)!r})
except Exception as exc:
    print(f"built: {{type(exc).__name__}}: {{exc}}")
else:
    print("built")
"""


def _run(tmp_path: Path, **settings: str) -> list[str]:
    env = {
        **os.environ,
        "LAKEHOUSE_LAKE_ROOT": str(tmp_path / "lake"),
        "LAKEHOUSE_LANDING_ROOT": str(tmp_path / "landing"),
        **settings,
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_a_missing_event_mapping_fails_the_build_not_the_import(tmp_path):
    missing = tmp_path / "nowhere" / "events.yaml"
    out = _run(
        tmp_path,
        LAKEHOUSE_EVENT_MAPPING=str(missing),
        LAKEHOUSE_C360_RULES=str(tmp_path / "nowhere" / "c360.yaml"),
        LAKEHOUSE_EVENTS_START="not a date",  # parsed only when the partitions are built
    )
    assert out[0] == "imported"
    assert out[-1].startswith("built: FileNotFoundError: event mapping")
    assert str(missing) in out[-1] and "LAKEHOUSE_EVENT_MAPPING" in out[-1]
    assert not (tmp_path / "lake").exists()  # nothing read or created on the lake


def test_missing_c360_rules_fail_the_build_not_the_import(tmp_path):
    missing = tmp_path / "nowhere" / "c360.yaml"
    out = _run(
        tmp_path,
        LAKEHOUSE_C360_RULES=str(missing),
        LAKEHOUSE_EVENTS_START="2020-01-01",
        LAKEHOUSE_EVENTS_END="today",
    )
    assert out[0] == "imported"
    assert out[-1].startswith("built: FileNotFoundError: c360 rules")
    assert str(missing) in out[-1] and "LAKEHOUSE_C360_RULES" in out[-1]


def test_every_setting_is_named_in_resources():
    """A user finds what can be set in resources/ (settings.py, or the resource that reads it):
    no layer, contract or entry point declares a `LAKEHOUSE_` variable of its own."""
    import ast
    import re

    name = re.compile(r"LAKEHOUSE_[A-Z0-9_]+")
    found = []
    for tree in ("assets", "checks", "platform"):
        for path in sorted((ROOT / tree).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                text = node.value if isinstance(node, ast.Constant) else None
                if isinstance(text, str) and name.fullmatch(text):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {text}")
    assert found == []
