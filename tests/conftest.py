"""Shared fixtures: a throw-away lake and landing zone, and Dagster runs against them."""

from __future__ import annotations

import os
import runpy
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
warnings.filterwarnings("ignore", module="dagster")

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "platform" / "definitions.py"


def load_definitions():
    """platform/ is not a package: load its definitions by path, as workspace.yaml does."""
    return runpy.run_path(str(DEFINITIONS))["defs"]


@pytest.fixture(scope="session")
def defs():
    return load_definitions()


@dataclass
class Lakehouse:
    """A lake and a landing zone in a temp dir, and a way to run assets over them."""

    lake_root: Path
    landing_root: Path
    defs: object

    @property
    def resources(self) -> dict:
        from resources.crm import CrmResource
        from resources.duckdb import DuckDBResource
        from resources.identity import IdentityResource
        from resources.lake import LakeResource
        from resources.landing import LandingResource
        from resources.mlflow import MlflowResource
        from resources.pii import PiiResource

        return {
            "lake": LakeResource(root=str(self.lake_root)),
            "landing": LandingResource(root=str(self.landing_root)),
            "duckdb": DuckDBResource(threads=2),
            "identity": IdentityResource(),
            "pii": PiiResource(),
            "mlflow": MlflowResource(),  # under the test lake
            "crm": CrmResource(),  # a SQLite CRM under the test lake
        }

    def materialize_days(self, first, last, instance=None):
        """events/events for the days first..last in one run (a single-run backfill)."""
        from dagster import DagsterInstance, materialize

        from assets.events.runs import EVENTS_KEY, range_tags

        return materialize(
            list(self.defs.assets),
            selection=[EVENTS_KEY],
            resources=self.resources,
            instance=instance or DagsterInstance.ephemeral(),
            tags=range_tags(first, last),
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )

    @property
    def lake(self):
        return self.resources["lake"]

    def drop(self, rel: str, content: str | bytes) -> Path:
        """Land a file at `<source>/<object>/<extract_date>/<name>`."""
        path = self.landing_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)
        return path

    def materialize(self, *selection: str, instance=None):
        """The named assets; by default every unpartitioned asset upstream of the event days."""
        from dagster import AssetKey, DagsterInstance, materialize

        from assets.events.runs import BEFORE_EVENTS

        return materialize(
            list(self.defs.assets),
            selection=[AssetKey(s.split("/")) for s in selection] or BEFORE_EVENTS,
            resources=self.resources,
            instance=instance or DagsterInstance.ephemeral(),
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )


@pytest.fixture
def lakehouse(tmp_path: Path, defs) -> Lakehouse:
    return Lakehouse(tmp_path / "lake", tmp_path / "landing", defs)


def check_evaluations(result) -> dict[str, object]:
    """asset key -> the gate's AssetCheckEvaluation in a run."""
    out = {}
    for e in result.all_events:
        if e.event_type_value == "ASSET_CHECK_EVALUATION":
            data = e.event_specific_data
            out[data.asset_key.to_user_string()] = data
    return out


def materialized(result) -> set[str]:
    return {
        e.event_specific_data.materialization.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }
