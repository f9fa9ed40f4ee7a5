"""The code location: every asset, check and resource, wired for the embedded default.

Loaded by path (workspace.yaml, tests); `platform/` is deliberately not a package, because a
package named `platform` would shadow the standard library module Dagster imports. Importing this
file does no data work, so `dagster dev` starts fast.
"""

from __future__ import annotations

import os

from dagster import Definitions, in_process_executor

from assets import (
    automation,
    c360,
    entities,
    events,
    features,
    landing,
    ml,
    ops,
    raw,
    reverse_etl,
    sensors,
)
from resources.crm import (
    CRM_HTTP_TOKEN,
    CRM_HTTP_URL,
    CRM_KIND,
    CRM_POSTGRES_DSN,
    CRM_SQLITE_PATH,
    CrmResource,
)
from resources.duckdb import DuckDBResource
from resources.identity import DECISIONS_PATH, RULES_PATH, IdentityResource
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.mlflow import MLFLOW_TRACKING_URI, MlflowResource
from resources.pii import PII_SALT, PiiResource
from resources.settings import LAKE_ROOT, LANDING_ROOT, from_env

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

defs = Definitions(
    assets=automation.automate(
        [
            *landing.assets,
            *raw.assets,
            *entities.assets,
            *events.assets,
            *c360.assets,
            *features.assets,
            *ml.assets,
            *reverse_etl.assets,
            *ops.assets,
        ]
    ),
    jobs=automation.jobs,
    schedules=automation.schedules,
    sensors=[*sensors.sensors, *ops.sensors, automation.follow_raw],
    resources={
        "lake": LakeResource(**from_env(root=LAKE_ROOT)),
        "landing": LandingResource(**from_env(root=LANDING_ROOT)),
        "duckdb": DuckDBResource(),
        "pii": PiiResource(**from_env(salt=PII_SALT)),
        "mlflow": MlflowResource(**from_env(tracking_uri=MLFLOW_TRACKING_URI)),
        "crm": CrmResource(
            **from_env(
                kind=CRM_KIND,
                sqlite_path=CRM_SQLITE_PATH,
                postgres_dsn=CRM_POSTGRES_DSN,
                http_url=CRM_HTTP_URL,
                http_token=CRM_HTTP_TOKEN,
            )
        ),
        "identity": IdentityResource(
            **from_env(rules_path=RULES_PATH, decisions_path=DECISIONS_PATH)
        ),
    },
    executor=in_process_executor,
)
