"""`make demo STANDINS=1`: the sample company's connected objects are served by their vendors'
stand-ins and pulled by the connectors, one pull per day an export was taken, so the landing
zone holds the history the exports held (every version a record went through), and a demo run
again pulls nothing twice."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from checks.sources import load_catalog
from sample_company.generate import generate
from sample_company.standins.world import serving

ROOT = Path(__file__).resolve().parent.parent


def _versions(folder: Path, records_path: str | None) -> Counter:
    """(id, updatedAt) of every record in an object's landed files."""
    out: Counter = Counter()
    for f in folder.glob("*/*.json"):
        doc = json.loads(f.read_text())
        for r in doc[records_path] if records_path else doc:
            if r.get("id"):  # a planted export row without an id: no API serves such a record
                out[(r["id"], r.get("updatedAt"))] += 1
    return out


def test_replay_lands_each_export_day_and_a_rerun_pulls_nothing_twice(tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_STACK", "vendor")
    landing, lake = tmp_path / "lake" / "landing", tmp_path / "lake"
    world = lake / "standins" / "world"
    generate(world, accounts=20, days=40, seed=2, stack="vendor")
    catalog = load_catalog(ROOT / "stacks" / "vendor" / "catalog.yaml")
    hubspot = [o for o in catalog.objects if o.system == "hubspot"]
    exported = {o.object: sorted(p.name for p in (world / o.landing).iterdir()) for o in hubspot}
    files = {o.object: _versions(world / o.landing, o.records_path) for o in hubspot}

    with serving(landing, lake, catalog) as running:
        assert set(running) == {"hubspot", "stripe", "zendesk"}
    for o in hubspot:
        days = sorted(p.name for p in (landing / o.landing).iterdir())
        assert set(days) <= set(exported[o.object])  # landed under the export days it replays
        pulled = _versions(landing / o.landing, o.records_path)
        assert max(pulled.values()) == 1, o.object  # no version landed twice
        assert set(pulled) == set(files[o.object]), o.object  # every version the exports held
    assert (landing / "segment" / "tracks").is_dir() and (landing / "_truth").is_dir()

    before = {o.object: _versions(landing / o.landing, o.records_path) for o in hubspot}
    with serving(landing, lake, catalog):  # the demo again, over the same world
        pass
    for o in hubspot:
        assert _versions(landing / o.landing, o.records_path) == before[o.object], o.object
