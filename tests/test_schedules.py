"""The schedules target what they should, and their runs succeed on a demo lake."""

from __future__ import annotations

from dagster import DagsterInstance, materialize

from assets.automation import DAILY_REFRESH, WEEKLY_RETRAIN
from conftest import materialized


def _keys(defs, selection) -> set[str]:
    return {k.to_user_string() for k in selection.resolve(defs.resolve_asset_graph())}


def _key(name: str):
    from dagster import AssetKey

    return AssetKey(name.split("/"))


def test_schedules_target_what_they_should(defs):
    schedules = {s.name: (s.cron_schedule, s.job_name) for s in defs.schedules}
    assert schedules == {
        "daily_refresh_schedule": ("0 6 * * *", "daily_refresh"),
        "weekly_retrain_schedule": ("0 4 * * 1", "weekly_retrain"),
    }
    daily = _keys(defs, DAILY_REFRESH)
    assert {
        "events/account_lifecycle",
        "c360/customer_360_accounts",
        "c360/customer_360_people",
        "features/churn_features",
        "ml/churn_scores",
        "ml/expansion_scores",
        "reverse_etl/crm_account_updates",
        "reverse_etl/sync_audit",
    } <= daily
    assert not {k for k in daily if k.split("/")[0] in ("landing", "raw", "entities")}
    assert not daily & {"ml/churn_model", "ml/expansion_model", "events/events"}
    assert "privacy/erasure_audit" not in daily  # the erasure runs alone (erasure_sensor)
    assert _keys(defs, WEEKLY_RETRAIN) == {"ml/churn_model", "ml/expansion_model"}


def test_the_stages_are_named_jobs_that_build_the_whole_graph(defs):
    """Issue 22: `make demo` ran anonymous `__ASSET_JOB` runs. Its stages are the jobs the UI
    and the schedules use, each tagged with its stage, and together they build every asset
    once (landing observed), in an order where each runs after what it reads."""
    from dagster import AssetSelection

    from assets.events.runs import AFTER_STAGES, BEFORE_STAGES, EVENTS_KEY, EVENTS_STAGE
    from assets.sensors import landing_sensor

    stages = [*BEFORE_STAGES, (EVENTS_STAGE, AssetSelection.assets(EVENTS_KEY)), *AFTER_STAGES]
    graph = defs.resolve_asset_graph()
    built: list[str] = []
    for name, selection in stages:
        job = defs.resolve_job_def(name)
        assert job.tags["lakehouse/stage"] == name
        keys = _keys(defs, selection)
        assert keys <= {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
        for key in keys:  # what it reads was built by an earlier stage or this one
            parents = {p.to_user_string() for p in graph.get(_key(key)).parent_keys}
            assert parents <= {*built, *keys} | _keys(
                defs, AssetSelection.key_prefixes("ops", include_sources=True)
            ), key
        built += sorted(keys)
    everything = _keys(
        defs,
        AssetSelection.all(include_sources=True)
        - AssetSelection.key_prefixes("ops", include_sources=True),
    )
    assert sorted(built) == sorted(everything)  # each asset once, none left out
    assert landing_sensor.job_name == "ingest"


def test_schedule_runs_succeed_on_a_demo_lake(full_lake, defs):
    for selection in (WEEKLY_RETRAIN, DAILY_REFRESH):
        result = materialize(
            list(full_lake.defs.assets),
            selection=selection,
            resources=full_lake.resources,
            instance=DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
        assert result.success
        assert materialized(result) == _keys(defs, selection)  # every target, nothing else
    # the CRM fields' column lineage names real columns of real upstream tables
    from checks.reverse_etl import CRM_ACCOUNT_UPDATES

    event = next(
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key.to_user_string()
        == "reverse_etl/crm_account_updates"
    )
    lineage = event.metadata["dagster/column_lineage"].value.deps_by_column
    assert set(lineage) == {c.name for c in CRM_ACCOUNT_UPDATES.columns}
    for deps in lineage.values():
        for dep in deps:
            layer, table = dep.asset_key.path
            assert dep.column_name in full_lake.lake.read(layer, table).column_names, dep
