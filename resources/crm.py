"""The CRM destination of the reverse ETL. Embedded default: a SQLite file under the lake
standing in for the CRM; other destinations are chosen by configuration, credentials from the
environment only."""

from __future__ import annotations

import os

from dagster import ConfigurableResource
from pydantic import Field

CRM_SQLITE_PATH = "LAKEHOUSE_CRM_SQLITE_PATH"


class CrmResource(ConfigurableResource):
    kind: str = Field(default="sqlite", description="Destination kind (sqlite).")
    sqlite_path: str | None = Field(
        default=None, description=f"SQLite CRM file ({CRM_SQLITE_PATH}); default <lake>/crm/crm.db."
    )

    def destination(self, lake_root: str):
        from assets.reverse_etl.destinations import SQLiteDestination

        if self.kind != "sqlite":
            raise ValueError(f"CRM destination kind {self.kind!r} is not available yet")
        return SQLiteDestination(self.sqlite_path or os.path.join(lake_root, "crm", "crm.db"))
