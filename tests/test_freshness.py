"""Every asset built on a cadence says how fresh it should be, so Dagster's UI can tell a stale
table: a raw table within its source's extract cadence, the weekly models within a week, every
other layer within a day; each with a grace before it fails. Landing zones (observed) and ops
(recorded by a sensor) have no cadence."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from dagster import AssetKey, DagsterInstance
from dagster._core.definitions.freshness import TimeWindowFreshnessPolicy

from checks.sources import raw_contracts
from conftest import ROOT
from sample_company.extracts import SPECS as LANDING_SPECS

RAW_TABLES = raw_contracts()  # the active source catalog's raw tables

DAY, WEEK = timedelta(days=1), timedelta(days=7)
GRACE = timedelta(hours=6)
EXTRACT_PERIODS = {"daily": DAY, "weekly": WEEK, "monthly": timedelta(days=31)}
LAYER_WINDOWS = {
    "entities": DAY,
    "events": DAY,
    "c360": DAY,
    "features": DAY,
    "ml": DAY,
    "reverse_etl": DAY,
    "raw": DAY,  # a raw asset without a contract cadence (raw/quarantine)
}
WEEKLY_MODELS = {AssetKey(["ml", "churn_model"]), AssetKey(["ml", "expansion_model"])}
UNSCHEDULED = {"landing", "ops", "privacy"}  # privacy: when an erasure request waits


def _expected(key: AssetKey, group: str) -> timedelta | None:
    if group in UNSCHEDULED:
        return None
    if key in WEEKLY_MODELS:
        return WEEK
    contract = next((c for c in RAW_TABLES if [c.layer, c.table] == key.path), None)
    if contract is not None:
        return EXTRACT_PERIODS[LANDING_SPECS[f"{contract.source}/{contract.object}"].cadence]
    return LAYER_WINDOWS[group]


def test_every_scheduled_asset_declares_the_window_of_its_layer(defs):
    graph = defs.resolve_asset_graph()
    wrong = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        window = _expected(key, node.group_name)
        policy = node.freshness_policy
        if window is None:
            found, want = policy, None
        else:
            found = policy and (
                type(policy).__name__,
                policy.warn_window.to_timedelta(),
                policy.fail_window.to_timedelta(),
            )
            want = (TimeWindowFreshnessPolicy.__name__, window, window + GRACE)
        if found != want:
            wrong[key.to_user_string()] = (found, want)
    assert wrong == {}
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups - UNSCHEDULED <= set(LAYER_WINDOWS)  # a new layer must be given its window


def test_raw_contracts_declare_the_cadence_their_source_delivers():
    declared = {f"{c.source}/{c.object}": c.cadence for c in RAW_TABLES}
    delivered = {name: spec.cadence for name, spec in LANDING_SPECS.items()}
    assert declared == delivered


def test_the_instance_evaluates_freshness(tmp_path):
    """`make dev`'s instance runs the freshness daemon: without it no state reaches the UI."""
    subprocess.run(
        [sys.executable, "-m", "resources.profile", "instance", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.freshness_enabled
        assert "FRESHNESS_DAEMON" in instance.get_required_daemon_types()
