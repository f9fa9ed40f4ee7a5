"""The CRM destination of the reverse ETL. Embedded default: a SQLite file under the lake
standing in for the CRM; other destinations are chosen by configuration, credentials from the
environment only."""

from __future__ import annotations

import os

from dagster import ConfigurableResource
from pydantic import Field

from resources.destinations import (
    Destination,
    HttpBatchDestination,
    PostgresDestination,
    SQLiteDestination,
)
from resources.lake import is_local

CRM_KIND = "LAKEHOUSE_CRM_KIND"
CRM_SQLITE_PATH = "LAKEHOUSE_CRM_SQLITE_PATH"
CRM_POSTGRES_DSN = "LAKEHOUSE_CRM_POSTGRES_DSN"
CRM_HTTP_URL = "LAKEHOUSE_CRM_HTTP_URL"
CRM_HTTP_TOKEN = "LAKEHOUSE_CRM_HTTP_TOKEN"


class CrmResource(ConfigurableResource):
    kind: str = Field(default="sqlite", description="Destination kind: sqlite, postgres or http.")
    sqlite_path: str | None = Field(
        default=None, description=f"SQLite CRM file ({CRM_SQLITE_PATH}); default <lake>/crm/crm.db."
    )

    postgres_dsn: str | None = Field(
        default=None, description=f"PostgreSQL DSN, credentials included ({CRM_POSTGRES_DSN})."
    )
    http_url: str | None = Field(default=None, description=f"Batch-upsert API ({CRM_HTTP_URL}).")
    http_token: str | None = Field(default=None, description=f"Bearer token ({CRM_HTTP_TOKEN}).")

    def destination(self, lake_root: str) -> Destination:
        if self.kind == "sqlite":
            if not self.sqlite_path and not is_local(lake_root):
                raise ValueError(
                    f"the sqlite CRM destination lives under a local lake; with the lake at "
                    f"{lake_root} set {CRM_KIND} (postgres or http) or {CRM_SQLITE_PATH}"
                )
            return SQLiteDestination(self.sqlite_path or os.path.join(lake_root, "crm", "crm.db"))
        if self.kind == "postgres":
            if not self.postgres_dsn:
                raise ValueError(f"the postgres CRM destination needs {CRM_POSTGRES_DSN}")
            return PostgresDestination(self.postgres_dsn)
        if self.kind == "http":
            if not self.http_url:
                raise ValueError(f"the http CRM destination needs {CRM_HTTP_URL}")
            return HttpBatchDestination(self.http_url, self.http_token)
        raise ValueError(f"unknown CRM destination kind {self.kind!r} (sqlite, postgres, http)")
