"""Materializing the whole graph twice over the same landing data changes no table's content the
second time: no row added, removed or altered (run-time columns aside: faultkit.VOLATILE)."""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable

from faultkit import delta_tables, drive, lake_content, lake_env, record

pytestmark = pytest.mark.faults


def _build(lake: Path, landing: Path) -> None:
    done = drive("graph", "--ephemeral", env=lake_env(lake, landing))
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_second_build_over_the_same_landing_changes_no_table(tmp_path):
    from sample_company.generate import generate

    landing = tmp_path / "landing"
    generate(landing, accounts=200, days=300, seed=3)
    lake = tmp_path / "lake"
    _build(lake, landing)
    first = lake_content(lake)
    versions = {str(p.relative_to(lake)): DeltaTable(str(p)).version() for p in delta_tables(lake)}

    _build(lake, landing)
    second = lake_content(lake)

    assert second.keys() == first.keys(), "a table appeared or vanished"
    changed = sorted(name for name in first if not second[name].equals(first[name]))
    assert changed == [], f"content changed on the second build: {changed}"
    moved = sorted(
        name for name, v in versions.items() if DeltaTable(str(lake / name)).version() != v
    )
    record(
        "idempotence",
        tables=len(first),
        rows=sum(t.num_rows for t in first.values()),
        tables_changed=len(changed),
        tables_with_a_new_version=len(moved),
        rewritten_with_equal_content=", ".join(moved),
    )
