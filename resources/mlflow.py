"""Where models are tracked and registered: an MLflow tracking URI (SQLite under the lake by
default; any tracking server by configuration)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

MLFLOW_TRACKING_URI = "LAKEHOUSE_MLFLOW_TRACKING_URI"


class MlflowResource(ConfigurableResource):
    tracking_uri: str | None = Field(
        default=None,
        description=f"MLflow tracking URI ({MLFLOW_TRACKING_URI}); default: under the lake.",
    )

    def uri(self, lake_root: str) -> str:
        from assets.ml.models import tracking_uri_for

        return self.tracking_uri or tracking_uri_for(lake_root)
