"""The landing sensor with a real Dagster instance: new files start exactly one run, a second
tick starts none, and only the zones that changed are ingested."""

from __future__ import annotations

from dagster import DagsterInstance, build_sensor_context

from assets.sensors import landing_sensor
from resources.landing import LandingResource


def _tick(instance, landing_root, cursor):
    ctx = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"landing": LandingResource(root=str(landing_root))},
    )
    return landing_sensor(ctx)


def test_new_files_start_one_run_and_a_second_tick_none(tmp_path):
    landing = tmp_path / "landing"
    (landing / "crm" / "accounts" / "2026-11-01").mkdir(parents=True)
    (landing / "crm" / "accounts" / "2026-11-01" / "accounts.json").write_text("[]")
    (landing / "billing" / "customers" / "2026-11-01").mkdir(parents=True)
    (landing / "billing" / "customers" / "2026-11-01" / "customers.csv").write_text("id\n")
    instance = DagsterInstance.ephemeral()

    first = _tick(instance, landing, None)
    assert len(first.run_requests) == 1
    keys = {k.to_user_string() for k in first.run_requests[0].asset_selection}
    assert keys == {"raw/crm_accounts", "raw/billing_customers"}

    second = _tick(instance, landing, first.cursor)
    assert second.run_requests == [] and second.cursor == first.cursor

    # a re-evaluated tick (the daemon restarted before storing the cursor) asks for the same
    # run key, which Dagster runs once
    again = _tick(instance, landing, None)
    assert again.run_requests[0].run_key == first.run_requests[0].run_key

    # one more extract of one zone: one run, that zone only
    (landing / "crm" / "accounts" / "2026-11-02").mkdir()
    (landing / "crm" / "accounts" / "2026-11-02" / "accounts.json").write_text("[]")
    third = _tick(instance, landing, second.cursor)
    assert len(third.run_requests) == 1
    assert [k.to_user_string() for k in third.run_requests[0].asset_selection] == [
        "raw/crm_accounts"
    ]
    assert third.run_requests[0].run_key != first.run_requests[0].run_key


def test_an_erasure_request_starts_the_erasure_job_only_on_a_quiet_lake(tmp_path, defs):
    from dagster import AssetKey, materialize

    from assets.privacy.intake import write_request
    from assets.sensors import erasure_sensor
    from conftest import Lakehouse
    from resources.lake import LakeResource

    lake = LakeResource(root=str(tmp_path / "lake"))
    landing = tmp_path / "landing"
    instance = DagsterInstance.ephemeral()

    def tick():
        return erasure_sensor(build_sensor_context(instance=instance, resources={"lake": lake}))

    assert tick().__class__.__name__ == "SkipReason"  # nothing landed, nothing asked
    write_request(landing, email="someone@example.com")
    ingest = materialize(
        list(defs.assets),
        selection=[AssetKey(["raw", "consent_records"])],
        resources=Lakehouse(tmp_path / "lake", landing, defs).resources,
        instance=instance,
    )
    assert ingest.success
    request = tick()
    assert erasure_sensor.job_name == "erasure" and request.tags["requests"] == "1"

    from dagster import DagsterRun, DagsterRunStatus

    instance.add_run(
        DagsterRun(job_name="daily_refresh", run_id="busy", status=DagsterRunStatus.STARTED)
    )
    waiting = tick()
    assert "waiting for a quiet lake" in waiting.skip_message


def test_the_erasure_asset_defers_while_another_run_writes_not_for_one_not_started(tmp_path, defs):
    """Erasure vacuums with zero retention: it must not start under a run that is writing, and a
    run that has not started writes nothing yet."""
    from dagster import AssetKey, DagsterRun, DagsterRunStatus, materialize

    from assets.privacy.intake import write_request
    from conftest import Lakehouse

    landing = tmp_path / "landing"
    write_request(landing, email="someone@example.com")
    instance = DagsterInstance.ephemeral()
    for run_id, status in [
        ("waiting", DagsterRunStatus.NOT_STARTED),
        ("busy", DagsterRunStatus.STARTED),
    ]:
        instance.add_run(DagsterRun(job_name="daily_refresh", run_id=run_id, status=status))
    result = materialize(
        list(defs.assets),
        selection=[
            AssetKey(["raw", "consent_records"]),
            AssetKey(["privacy", "erasure_audit"]),
        ],
        resources=Lakehouse(tmp_path / "lake", landing, defs).resources,
        instance=instance,
    )
    assert result.success
    meta = result.asset_materializations_for_node("privacy__erasure_audit")[0].metadata
    assert meta["deferred"].value == "run(s) busy in progress"


def test_a_tick_observes_the_zones_that_changed_with_a_content_version(tmp_path):
    """Issue 22: the landing assets stayed "Never observed". Each zone a tick finds changed is
    observed; its data version follows the files' content, not their times."""
    import os

    from dagster._core.definitions.data_version import DATA_VERSION_TAG

    landing = tmp_path / "landing"
    extract = landing / "crm" / "accounts" / "2026-11-01" / "accounts.json"
    extract.parent.mkdir(parents=True)
    extract.write_text('[{"id": "a1"}]')
    instance = DagsterInstance.ephemeral()

    first = _tick(instance, landing, None)
    [seen] = first.asset_events
    assert seen.asset_key.to_user_string() == "landing/crm_accounts"
    assert seen.metadata["files"].value == 1
    assert seen.metadata["latest_extract_date"].value == "2026-11-01"
    assert _tick(instance, landing, first.cursor).asset_events == []

    st = extract.stat()  # touched, same content: looked at again, same data version
    os.utime(extract, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = _tick(instance, landing, first.cursor)
    assert touched.asset_events[0].tags[DATA_VERSION_TAG] == seen.tags[DATA_VERSION_TAG]

    extract.write_text('[{"id": "a2"}]')  # new content, same name and size
    rewritten = _tick(instance, landing, touched.cursor)
    assert rewritten.asset_events[0].tags[DATA_VERSION_TAG] != seen.tags[DATA_VERSION_TAG]
