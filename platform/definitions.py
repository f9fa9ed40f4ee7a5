"""The code location: every asset, check and resource, wired by the deployment profile
(`resources/profile.py`: the embedded default, or the lake on an object store, the instance on
PostgreSQL and steps on Celery workers).

Loaded by path (workspace.yaml, tests); `platform/` is deliberately not a package, because a
package named `platform` would shadow the standard library module Dagster imports. Importing this
file does no data work, so `dagster dev` starts fast. It builds the code location: the layers'
settings (the source catalog, event mapping, event days, c360 rules) are read here, never when
`assets` is imported.
"""

from __future__ import annotations

from dagster import Definitions

from assets import (
    automation,
    c360,
    connectors,
    entities,
    events,
    features,
    landing,
    ml,
    ops,
    privacy,
    raw,
    reverse_etl,
    segment,
    sensors,
)
from assets.dead_runs import dead_runs_sensor, reaping
from checks.sources import load_catalog
from resources.profile import active
from resources.quiet import quiet_libraries

quiet_libraries()  # telemetry off; no library INFO lines, prints or progress bars in run logs

PROFILE = active()  # LAKEHOUSE_PROFILE: local (default) or distributed

defs = Definitions(
    assets=automation.automate(
        [
            # reads the source catalog (as raw, entities, privacy); a connected object whose
            # vendor token is set is a connector asset (assets/connectors/)
            *landing.build_assets(),
            *raw.build_assets(),
            *entities.build_assets(),
            *events.build_assets(),  # reads the event mapping and the lake's event days
            *c360.build_assets(),  # reads the c360 rules
            *features.assets,
            *ml.assets,
            *reverse_etl.assets,
            *privacy.build_assets(),
            *ops.assets,
            *segment.assets,  # lands Segment's export and collector log (resources/segment)
        ]
    ),
    jobs=[*automation.jobs, *segment.jobs],
    schedules=automation.schedules,
    sensors=[
        *sensors.sensors,
        *ops.sensors,
        *segment.sensors,
        automation.follow_raw,
        dead_runs_sensor,
    ],
    resources={**PROFILE.resources(), **connectors.resources(load_catalog())},
    # Runs launched by Dagster (UI, CLI) fail dead runs holding their pools: assets/dead_runs.py
    executor=reaping(PROFILE.executor()),
)
