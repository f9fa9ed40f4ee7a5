"""Where models are tracked and registered: an MLflow tracking URI (SQLite under the lake by
default; any tracking store by configuration, e.g. PostgreSQL) and where run artifacts go (under
the lake by default, so an object-store lake keeps the models beside the tables)."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from resources.lake import is_local

MLFLOW_TRACKING_URI = "LAKEHOUSE_MLFLOW_TRACKING_URI"
MLFLOW_ARTIFACTS = "LAKEHOUSE_MLFLOW_ARTIFACTS"


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

    def uri(self, lake_root: str) -> str:
        from assets.ml.models import tracking_uri_for

        return self.tracking_uri or tracking_uri_for(lake_root)

    def artifact_root(self, lake_root: str) -> str:
        if self.artifacts:
            return self.artifacts
        if is_local(lake_root):
            return (
                Path(lake_root.removeprefix("file://")).resolve() / "mlflow" / "artifacts"
            ).as_uri()
        return f"{lake_root.rstrip('/')}/mlflow/artifacts"
