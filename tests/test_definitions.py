"""The code location: loads by path, shadows nothing, and describes every asset for the UI."""

from __future__ import annotations

import platform
import sys
import sysconfig
from pathlib import Path

from dagster import AssetKey

from checks.sources import raw_contracts
from conftest import ROOT

RAW_TABLES = raw_contracts()  # the active source catalog's raw tables

CONTRACT_RAW = {
    "crm_accounts",
    "crm_contacts",
    "crm_opportunities",
    "billing_customers",
    "billing_subscriptions",
    "billing_invoices",
    "product_workspaces",
    "product_users",
    "product_usage_events",
    "support_organizations",
    "support_tickets",
    "consent_records",
    "risk_signals",
    "quarantine",
}


def test_platform_is_still_the_standard_library(defs):
    assert not (ROOT / "platform" / "__init__.py").exists()
    assert Path(platform.__file__).parent == Path(sysconfig.get_paths()["stdlib"])
    assert sys.modules["platform"] is platform
    assert platform.system()  # the module Dagster imports still works


def test_raw_tables_match_the_published_contract(defs):
    graph = defs.resolve_asset_graph()
    raw = {k.path[1] for k in graph.get_all_asset_keys() if k.path[0] == "raw"}
    assert raw == CONTRACT_RAW


def test_every_asset_is_described_owned_and_grouped(defs):
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and len(node.description) > 40, key
        assert node.owners == ["team:data-platform"], key
        assert node.group_name == key.path[0], key  # layer = group = lake folder
        assert node.kinds, key
        assert "layer" in node.tags, key


def test_raw_assets_follow_their_landing_zone_and_are_gated(defs):
    graph = defs.resolve_asset_graph()
    for c in RAW_TABLES:
        node = graph.get(AssetKey(["raw", c.table]))
        assert AssetKey(["landing", c.landing_name]) in node.parent_keys
        assert {ck.name for ck in node.check_keys} == {"gx_suite"}
        assert "delta" in node.kinds
        schema = node.metadata["dagster/column_schema"]
        assert {"_payload", "_source_file", "_extract_date", "_ingested_at"} <= {
            col.name for col in schema.columns
        }


def test_loading_definitions_does_no_data_work(tmp_path, monkeypatch):
    """Importing the code location must not touch the lake (dagster dev starts fast)."""
    import runpy

    monkeypatch.setenv("LAKEHOUSE_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("LAKEHOUSE_LANDING_ROOT", str(tmp_path / "landing"))
    runpy.run_path(str(ROOT / "platform" / "definitions.py"))
    assert not any(tmp_path.iterdir())
