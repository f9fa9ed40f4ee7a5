"""Where models are tracked and registered: an MLflow tracking URI (SQLite under the lake by
default; any tracking store by configuration, e.g. PostgreSQL) and where run artifacts go (under
the lake by default, so an object-store lake keeps the models beside the tables); and where the
two UIs answer, so an MLflow run links to the Dagster run that trained it and back."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from dagster import ConfigurableResource
from pydantic import Field

from resources.lake import is_local

MLFLOW_TRACKING_URI = "LAKEHOUSE_MLFLOW_TRACKING_URI"
MLFLOW_ARTIFACTS = "LAKEHOUSE_MLFLOW_ARTIFACTS"
MLFLOW_UI_URL = "LAKEHOUSE_MLFLOW_UI_URL"
DAGSTER_URL = "LAKEHOUSE_DAGSTER_URL"
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"  # `make dev` serves the MLflow UI there
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"  # `make dev`'s Dagster UI


def tracking_uri_for(lake_root: str) -> str:
    """Default local MLflow store under the lake: sqlite:///<lake_root>/mlflow/mlflow.db.

    SQLite cannot live in an object store, so a remote lake needs an explicit tracking URI.
    """
    if not is_local(lake_root):
        raise ValueError(
            f"lake root {lake_root!r} is not local: configure an MLflow tracking URI explicitly"
        )
    folder = Path(lake_root.removeprefix("file://")).resolve() / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


class MlflowResource(ConfigurableResource):
    tracking_uri: str | None = Field(
        default=None,
        description=f"MLflow tracking URI ({MLFLOW_TRACKING_URI}); default: under the lake.",
    )
    artifacts: str | None = Field(
        default=None,
        description=f"Artifact root of new experiments ({MLFLOW_ARTIFACTS}); "
        "default: <lake root>/mlflow/artifacts.",
    )
    ui_url: str | None = Field(
        default=None,
        description=f"MLflow UI the asset metadata links to; default: {MLFLOW_UI_URL}, "
        f"else {DEFAULT_MLFLOW_UI_URL}.",
    )
    dagster_url: str | None = Field(
        default=None,
        description=f"Dagster UI an MLflow run links back to; default: {DAGSTER_URL}, "
        f"else {DEFAULT_DAGSTER_URL}.",
    )

    def uri(self, lake_root: str) -> str:
        return self.tracking_uri or tracking_uri_for(lake_root)

    def artifact_root(self, lake_root: str) -> str:
        if self.artifacts:
            return self.artifacts
        if is_local(lake_root):
            return (
                Path(lake_root.removeprefix("file://")).resolve() / "mlflow" / "artifacts"
            ).as_uri()
        return f"{lake_root.rstrip('/')}/mlflow/artifacts"

    # -- links between the UIs (read when a run asks, so a changed variable needs no restart) --
    def _mlflow_ui(self) -> str:
        return (self.ui_url or os.environ.get(MLFLOW_UI_URL) or DEFAULT_MLFLOW_UI_URL).rstrip("/")

    def _dagster_ui(self) -> str:
        return (self.dagster_url or os.environ.get(DAGSTER_URL) or DEFAULT_DAGSTER_URL).rstrip("/")

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """The MLflow UI's page of a run (MLflow 3 routes)."""
        return f"{self._mlflow_ui()}/#/experiments/{quote(experiment_id)}/runs/{quote(run_id)}"

    def model_version_url(self, model_name: str, version: str) -> str:
        """The MLflow UI's page of a registered model version."""
        return f"{self._mlflow_ui()}/#/models/{quote(model_name)}/versions/{quote(version)}"

    def dagster_run_url(self, run_id: str) -> str:
        """The Dagster UI's page of a run."""
        return f"{self._dagster_ui()}/runs/{quote(run_id)}"
