"""Figures the opt-in suites measure, one JSON file per suite under tests/artifacts/<suite>/
(docs quote them; CI keeps them)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("LAKEHOUSE_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))


def write_figures(suite: str, section: str, **figures: object) -> None:
    """Write figures (counts a person reads in the docs) under `section` of the suite's JSON
    file, replacing that section's earlier figures."""
    path = ARTIFACTS / suite / "figures.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    everything = json.loads(path.read_text()) if path.exists() else {}
    everything[section] = {**figures, "recorded_at": dt.datetime.now(dt.UTC).isoformat()}
    path.write_text(json.dumps(everything, indent=2, sort_keys=True, default=str) + "\n")
    print(f"[{suite}] {section}: " + ", ".join(f"{k}={v}" for k, v in sorted(figures.items())))
