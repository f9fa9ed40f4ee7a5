"""The CRM destination of the reverse ETL. Embedded default: a SQLite file under the lake
standing in for the CRM; other destinations are chosen by configuration, credentials from the
environment only: PostgreSQL, an HTTP batch API, HubSpot (company properties by record id,
`destinations_hubspot.py`) or Salesforce (Account fields through sObject Collections,
`destinations_salesforce.py`). The HubSpot and Salesforce settings are the connectors' own
(one private app / one integration user reads and writes)."""

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
HUBSPOT_TOKEN = "LAKEHOUSE_HUBSPOT_TOKEN"
HUBSPOT_BASE_URL = "LAKEHOUSE_HUBSPOT_BASE_URL"
SALESFORCE_TOKEN = "LAKEHOUSE_SALESFORCE_TOKEN"
SALESFORCE_INSTANCE_URL = "LAKEHOUSE_SALESFORCE_INSTANCE_URL"
CRM_SALESFORCE_OBJECT = "LAKEHOUSE_CRM_SALESFORCE_OBJECT"
CRM_SALESFORCE_EXTERNAL_ID = "LAKEHOUSE_CRM_SALESFORCE_EXTERNAL_ID"
KINDS = ("sqlite", "postgres", "http", "hubspot", "salesforce")
# CrmResource field -> the setting it is read from (resources/profile.py passes them as EnvVars).
SETTINGS = {
    "kind": CRM_KIND,
    "sqlite_path": CRM_SQLITE_PATH,
    "postgres_dsn": CRM_POSTGRES_DSN,
    "http_url": CRM_HTTP_URL,
    "http_token": CRM_HTTP_TOKEN,
    "hubspot_token": HUBSPOT_TOKEN,
    "hubspot_base_url": HUBSPOT_BASE_URL,
    "salesforce_token": SALESFORCE_TOKEN,
    "salesforce_instance_url": SALESFORCE_INSTANCE_URL,
    "salesforce_object": CRM_SALESFORCE_OBJECT,
    "salesforce_external_id": CRM_SALESFORCE_EXTERNAL_ID,
}


class CrmResource(ConfigurableResource):
    kind: str = Field(
        default="sqlite",
        description=f"Destination kind ({CRM_KIND}): sqlite, postgres, http, hubspot, salesforce.",
    )
    sqlite_path: str | None = Field(
        default=None, description=f"SQLite CRM file ({CRM_SQLITE_PATH}); default <lake>/crm/crm.db."
    )

    postgres_dsn: str | None = Field(
        default=None, description=f"PostgreSQL DSN, credentials included ({CRM_POSTGRES_DSN})."
    )
    http_url: str | None = Field(default=None, description=f"Batch-upsert API ({CRM_HTTP_URL}).")
    http_token: str | None = Field(default=None, description=f"Bearer token ({CRM_HTTP_TOKEN}).")
    hubspot_token: str | None = Field(
        default=None, description=f"HubSpot private app access token ({HUBSPOT_TOKEN})."
    )
    hubspot_base_url: str | None = Field(
        default=None, description=f"HubSpot API base URL ({HUBSPOT_BASE_URL}); default the real."
    )
    salesforce_token: str | None = Field(
        default=None, description=f"Salesforce OAuth access token ({SALESFORCE_TOKEN})."
    )
    salesforce_instance_url: str | None = Field(
        default=None, description=f"The org's instance URL ({SALESFORCE_INSTANCE_URL})."
    )
    salesforce_object: str = Field(
        default="Account", description=f"sObject the updates go to ({CRM_SALESFORCE_OBJECT})."
    )
    salesforce_external_id: str = Field(
        default="Id",
        description=f"Field matched against crm_account_id ({CRM_SALESFORCE_EXTERNAL_ID}): Id "
        "(update by record id) or an External ID field (upsert by it).",
    )

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
        if self.kind == "hubspot":
            from resources.destinations_hubspot import HubSpotDestination

            if not self.hubspot_token:
                raise ValueError(f"the hubspot CRM destination needs {HUBSPOT_TOKEN}")
            return HubSpotDestination(self.hubspot_token, self.hubspot_base_url or "")
        if self.kind == "salesforce":
            from resources.destinations_salesforce import SalesforceDestination

            missing = [
                s
                for s, v in (
                    (SALESFORCE_INSTANCE_URL, self.salesforce_instance_url),
                    (SALESFORCE_TOKEN, self.salesforce_token),
                )
                if not v
            ]
            if missing:
                raise ValueError(f"the salesforce CRM destination needs {' and '.join(missing)}")
            return SalesforceDestination(
                self.salesforce_instance_url or "",
                self.salesforce_token or "",
                sobject=self.salesforce_object,
                external_id=self.salesforce_external_id,
            )
        raise ValueError(
            f"unknown CRM destination kind {self.kind!r} ({CRM_KIND}: {', '.join(KINDS)})"
        )
