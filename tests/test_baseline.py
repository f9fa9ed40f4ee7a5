"""The pandas baseline of the churn mart (platform/baseline.py) is only a fair yardstick if it
computes the same mart: it must agree with features/churn_features on every row and column.
Then `measure` gives each implementation's time and memory from a process of its own."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from checks.features import CHURN_FEATURES

BASELINE = Path(__file__).resolve().parent.parent / "platform" / "baseline.py"


@pytest.fixture(scope="module")
def baseline() -> ModuleType:
    """platform/ is not a package (and `platform` is the standard library's): load by path."""
    spec = importlib.util.spec_from_file_location("lakehouse_baseline", BASELINE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _disagreement(diff: dict[str, Any]) -> str:
    lines = [f"rows {diff['rows']}"]
    if diff["only_in_pandas"] or diff["only_in_platform"]:
        lines.append(
            f"accounts only in pandas {diff['only_in_pandas']}, "
            f"only in the platform {diff['only_in_platform']}"
        )
    if any(diff["missing_columns"].values()):
        lines.append(f"missing columns {diff['missing_columns']}")
    for name in diff["differing_columns"]:
        col = diff["columns"][name]
        lines.append(f"{name}: {col['mismatched']} rows differ, e.g. {col['examples']}")
    return "\n".join(lines)


def test_pandas_churn_mart_equals_the_platforms(full_lake, baseline):
    stored = full_lake.lake.read("features", "churn_features")
    assert stored.num_rows > 0
    assert stored.schema.names == CHURN_FEATURES.schema.names

    mart = baseline.churn_mart_pandas(full_lake.lake_root)
    diff = baseline.compare(mart, stored)
    assert diff["equal"], "pandas baseline vs features/churn_features:\n" + _disagreement(diff)
    assert list(diff["columns"]) == CHURN_FEATURES.schema.names  # every column was compared
    # Not vacuous: the windows and signals the sample company drives are there to compare.
    for name in ("events_last_30d", "usage_decay_score", "compliance_gap_change_90d"):
        assert mart[name].notna().any() and (mart[name].fillna(0) != 0).any(), name

    # What the benchmark times as "the platform" is the mart the platform publishes.
    again = baseline.compare(stored.to_pandas(), baseline.churn_mart_platform(full_lake.lake_root))
    assert again["equal"], "churn_mart_platform vs features/churn_features:\n" + _disagreement(
        again
    )


def test_both_read_merged_accounts_as_their_survivor(full_lake, baseline, tmp_path):
    """The sample company merges no account, so merge one on a copy of the inputs: its events
    must count for the survivor in both marts (and a rejected merge for no one)."""
    from datetime import UTC, datetime

    import pyarrow as pa
    from deltalake import write_deltalake

    lake = tmp_path / "lake"
    for layer, table in (
        ("events", "events"),
        ("entities", "identity_merges"),
        ("entities", "attribute_history"),
        ("entities", "subscription"),
        ("entities", "relationship"),
    ):
        shutil.copytree(full_lake.lake_root / layer / table, lake / layer / table)
    before = baseline.churn_mart_pandas(lake).set_index("account_id")
    old, survivor, kept = before.index[before["total_events"] > 0][:3]
    now = datetime.now(UTC)
    schema = full_lake.lake.read("entities", "identity_merges").schema
    merges = pa.table(
        {
            "entity_type": ["account", "account"],
            "old_id": [old, kept],
            "surviving_id": [survivor, survivor],
            "action": ["merged", "rejected"],
            "recorded_at": [now, now],
        }
    ).cast(schema)
    write_deltalake(str(lake / "entities" / "identity_merges"), merges, mode="append")

    mart = baseline.churn_mart_pandas(lake)
    diff = baseline.compare(mart, baseline.churn_mart_platform(lake))
    assert diff["equal"], "after a merge:\n" + _disagreement(diff)
    after = mart.set_index("account_id")["total_events"]
    assert after[old] == 0 and after[kept] == before.loc[kept, "total_events"]
    assert after[survivor] == before.loc[[old, survivor], "total_events"].sum()


def test_measure_gives_each_implementation_its_own_figures(full_lake, baseline):
    rows = full_lake.lake.read("features", "churn_features").num_rows
    figures = {impl: baseline.measure(full_lake.lake_root, impl) for impl in baseline.IMPLS}
    for impl, f in figures.items():
        assert f["impl"] == impl
        assert f["rows"] == rows
        assert f["wall_s"] > 0 and f["cpu_s"] > 0 and f["peak_rss_mb"] > 0, f
        assert 0 < f["rss_start_mb"] <= f["peak_rss_mb"], f
    p, b = figures["platform"], figures["pandas"]
    ratios = {k: round(p[k] / b[k], 3) for k in ("wall_s", "cpu_s", "peak_rss_mb")}
    print("\n" + json.dumps({"figures": figures, "platform_over_pandas": ratios}))
