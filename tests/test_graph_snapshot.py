"""The asset graph as reviewed: every asset's key, group, dependencies, kinds, owner, tags,
checks and automation condition, compared with `tests/snapshots/asset_graph.json`. A lineage
change fails here until the snapshot is regenerated on purpose (and so shows up in review):

    UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/test_graph_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def graph_snapshot(defs) -> dict:
    graph = defs.resolve_asset_graph()
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        out[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "tags": {k: v for k, v in sorted(node.tags.items()) if not k.startswith("dagster/")},
            "checks": sorted(c.name for c in node.check_keys),
            "partitioned": node.partitions_def is not None,
            "materializable": node.is_materializable,
            "automation": node.automation_condition.get_label()
            if node.automation_condition
            else None,
        }
    return out


def test_the_asset_graph_matches_its_snapshot(defs):
    current = graph_snapshot(defs)
    if os.environ.get("UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    added = sorted(set(current) - set(expected))
    removed = sorted(set(expected) - set(current))
    changed = sorted(k for k in set(current) & set(expected) if current[k] != expected[k])
    assert not (added or removed or changed), (
        f"asset graph changed: added {added}, removed {removed}, changed {changed}; "
        "regenerate with UPDATE_SNAPSHOT=1 if intended"
    )
    assert len(current) > 50  # the whole graph, landing to reverse ETL
