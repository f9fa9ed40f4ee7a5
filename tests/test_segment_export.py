"""Segment's storage export (segment-logs/<source>/<day ms>/<file>.gz, every type mixed) lands
into the catalog's per-type folders by received day, each message exactly once: across runs,
after a crash mid-landing, with the bytes as Segment wrote them; types the catalog does not
read and broken lines are kept, never dropped; the raw layer reads what landed with no
quarantine."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest
from segment_world import landed, segment_contracts, vendor_world, world_calls, write_export

from assets.raw.ingest import build_batch, find_pending
from resources.duckdb import DuckDBResource
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.segment import export as export_mod
from resources.segment import files as files_mod
from resources.segment.export import land_export
from resources.segment.ledger import Ledger

TYPES = {"tracks": "track", "identifies": "identify", "groups": "group"}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return vendor_world(tmp_path_factory.mktemp("segment-world") / "landing")


def _ids(lines_by_folder: dict[str, list[bytes]], folder: str) -> Counter:
    return Counter(
        json.loads(line)["messageId"]
        for key, lines in lines_by_folder.items()
        if key.startswith(folder + "/")
        for line in lines
    )


def _check_exactly_once(exported: list[bytes], landing: Path) -> None:
    """Every exported line is landed once, byte for byte, in its type's folder under its
    received day; the unreadable line and the unknown type are held with a reason."""
    got = landed(landing)
    all_lines = Counter(line for lines in got.values() for line in lines if b'"reason"' not in line)
    held = [
        json.loads(line) for k, lines in got.items() if k.startswith("unrouted/") for line in lines
    ]
    for line in exported:
        try:
            msg = json.loads(line)
        except ValueError:
            assert any(h["text"] == line.decode() and "not JSON" in h["reason"] for h in held)
            continue
        if msg["type"] == "flush":
            assert any("unknown Segment call type 'flush'" in h["reason"] for h in held)
            continue
        assert all_lines[line] == 1, f"{msg['messageId']} landed {all_lines[line]} times"
        folder = {
            "track": "tracks",
            "identify": "identifies",
            "group": "groups",
            "page": "pages",
            "screen": "screens",
            "alias": "aliases",
        }[msg["type"]]
        day = msg.get("receivedAt", "")[:10]
        where = [k for k, lines in got.items() if line in lines]
        assert where[0].startswith(folder + "/"), where
        if day:
            assert where[0] == f"{folder}/{day}"
    n_messages = sum(1 for line in exported if b'"cut' not in line and b'"flush"' not in line)
    assert sum(all_lines.values()) == n_messages


def test_export_lands_each_message_once_across_runs(world: Path, tmp_path: Path) -> None:
    days = sorted(world_calls(world))
    export, landing = tmp_path / "export", tmp_path / "landing"
    exported = write_export(world, export, days[:-2])

    first = land_export(str(export), landing)
    assert len(first.landed) == 2 * (len(days) - 2) and first.already == 0
    assert set(first.messages) == {
        "tracks",
        "identifies",
        "groups",
        "pages",
        "screens",
        "aliases",
        "unrouted",
    }
    _check_exactly_once(exported, landing)
    stamps = {p: p.stat().st_mtime_ns for p in landing.rglob("*.jsonl.gz")}

    again = land_export(str(export), landing)  # nothing new: nothing written, nothing touched
    assert again.landed == [] and again.already == len(first.landed)
    assert {p: p.stat().st_mtime_ns for p in landing.rglob("*.jsonl.gz")} == stamps

    exported += write_export(world, export, days[-2:])  # two more days arrive
    third = land_export(str(export), landing)
    assert len(third.landed) == 4
    _check_exactly_once(exported, landing)
    assert not list(landing.rglob("*.part"))


def test_export_crash_mid_landing_then_resume(world, tmp_path, monkeypatch) -> None:
    export, landing = tmp_path / "export", tmp_path / "landing"
    exported = write_export(world, export)
    real_write, real_append = files_mod.write_atomic, Ledger.append
    calls = {"n": 0}

    def crash_on_fifth(path, data):
        calls["n"] += 1
        if calls["n"] == 5:  # mid-file: some of this export file's outputs are in place
            raise KeyboardInterrupt("killed mid-landing")
        return real_write(path, data)

    monkeypatch.setattr(files_mod, "write_atomic", crash_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        land_export(str(export), landing)
    monkeypatch.setattr(files_mod, "write_atomic", real_write)

    def crash_before_ledger(self, entry):
        raise KeyboardInterrupt("killed after landing, before the ledger")

    monkeypatch.setattr(Ledger, "append", crash_before_ledger)
    with pytest.raises(KeyboardInterrupt):
        land_export(str(export), landing)
    monkeypatch.setattr(Ledger, "append", real_append)

    done = land_export(str(export), landing)
    assert done.landed and not done.unreadable
    _check_exactly_once(exported, landing)
    assert land_export(str(export), landing).landed == []


def test_landed_files_read_by_raw_with_no_quarantine(world, tmp_path) -> None:
    export, landing = tmp_path / "export", tmp_path / "landing"
    exported = write_export(world, export)
    land_export(str(export), landing)
    lake = LakeResource(root=str(tmp_path / "lake"))
    zone = LandingResource(root=str(landing))
    sent = Counter(json.loads(line)["type"] for line in exported if b'"cut' not in line)
    for obj, contract in segment_contracts().items():
        stage = tmp_path / f"stage-{obj}"
        stage.mkdir()
        with DuckDBResource(threads=1).connect() as con:
            pending = find_pending(contract, zone, lake)
            batch = build_batch(contract, pending, lake, con, stage, zone.latest_allowed())
        assert batch.quarantine.num_rows == 0, batch.quarantine.to_pylist()[:3]
        rows = sum(t.num_rows for t in batch.chunks())
        assert rows == sent[TYPES[obj]] > 0


def test_export_root_as_url_and_misplaced_files(world, tmp_path) -> None:
    export, landing = tmp_path / "export", tmp_path / "landing"
    write_export(world, export, sorted(world_calls(world))[:1])
    stray = export / "segment-logs" / "src" / "yesterday" / "f.gz"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"")
    (export / "segment-logs" / "src" / "1764460800000").mkdir(parents=True)
    (export / "segment-logs" / "src" / "1764460800000" / "f.gz.part").write_bytes(b"partial")
    result = land_export(f"file://{export}/segment-logs", landing)
    assert len(result.landed) == 2
    assert "not a received day" in result.misplaced["src/yesterday/f.gz"]
    assert all(".part" not in k for k in result.landed)


def test_export_root_missing_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="LAKEHOUSE_SEGMENT_EXPORT_ROOT"):
        land_export(str(tmp_path / "nowhere"), tmp_path / "landing")


def test_received_day_is_utc(tmp_path) -> None:
    day = files_mod.received_day({"receivedAt": "2025-11-02T01:30:00+05:00"}, dt.date(2000, 1, 1))
    assert day == dt.date(2025, 11, 1)
    assert export_mod.LOGS == "segment-logs"


def test_segment_asset_lands_export_and_collector(world, tmp_path) -> None:
    """The Dagster asset lands both deliveries; a second run lands nothing again."""
    from dagster import materialize

    from assets.segment import NOT_LANDED, segment_delivery
    from resources.segment.collector import WriteAheadLog, wal_dir
    from resources.segment.resource import SegmentResource

    export, landing = tmp_path / "export", tmp_path / "landing"
    exported = write_export(world, export)
    wal = WriteAheadLog(wal_dir(landing))
    call = b'{"type":"track","event":"E","messageId":"c-1","receivedAt":"2025-11-20T10:00:00Z"}'
    wal.append(b'{"batch":[' + call + b"]}\n")
    exported.append(call)
    wal.seal(reopen=False)
    resources = {
        "landing": LandingResource(root=str(landing)),
        "segment": SegmentResource(export_root=str(export)),
    }
    first = materialize([segment_delivery], resources=resources)
    assert first.success
    meta = first.asset_materializations_for_node("landing__segment_delivery")[0].metadata
    assert meta["collector_segments"].value == 1
    assert meta["export_files_landed"].value > 0
    assert meta[NOT_LANDED].value == []
    _check_exactly_once(exported, landing)
    again = materialize([segment_delivery], resources=resources)
    meta = again.asset_materializations_for_node("landing__segment_delivery")[0].metadata
    assert meta["export_files_landed"].value == 0 and meta["files_written"].value == 0
