"""Each sensor and schedule starts in the state README "Keeping it fresh" promises, so a fresh
`make dev` follows raw tables (entities, then event days), erasure requests, failed and dead
runs without a click, and ingests landing files only once someone turns `landing_sensor` on."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, DefaultSensorStatus

RUNNING, STOPPED = "RUNNING", "STOPPED"
# name -> (default state, minimum interval in seconds where the docs state one), from README.
SENSORS: dict[str, tuple[str, int | None]] = {
    "landing_sensor": (STOPPED, None),  # "off by default; turn it on"
    "segment_sensor": (STOPPED, 60),  # "off by default, every 60 s"
    "follow_raw": (RUNNING, None),  # "(on)"
    "erasure_sensor": (RUNNING, None),  # "on by default" (also "Erasure")
    "events_days_sensor": (RUNNING, None),  # "(on)"
    "run_failures_sensor": (RUNNING, None),  # "(on)"
    "dead_runs_sensor": (RUNNING, 30),  # "(on, every 30 s)"
}
# README gives the schedules' times but no state: they are off until a person turns them on
# (Dagster's default), so a deployment never refreshes or retrains a lake unasked.
SCHEDULES: dict[str, tuple[str, str]] = {
    "daily_refresh_schedule": (STOPPED, "0 6 * * *"),  # 06:00 UTC
    "weekly_retrain_schedule": (STOPPED, "0 4 * * 1"),  # Mondays 04:00 UTC
}


def test_every_sensor_has_its_documented_default_state(defs):
    got = {s.name: s for s in defs.sensors}
    assert set(got) == set(SENSORS)  # a new sensor needs a documented state, here and in README
    for name, (state, interval) in SENSORS.items():
        assert got[name].default_status == DefaultSensorStatus(state), name
        if interval is not None:
            assert got[name].minimum_interval_seconds == interval, name


def test_every_schedule_has_its_default_state_and_time(defs):
    got = {s.name: s for s in defs.schedules}
    assert set(got) == set(SCHEDULES)
    for name, (state, cron) in SCHEDULES.items():
        assert got[name].default_status == DefaultScheduleStatus(state), name
        assert (got[name].cron_schedule, got[name].execution_timezone) == (cron, "UTC"), name
