"""The sample company's Segment calls as Segment's storage export and as HTTP calls: shared by
tests/test_segment_export.py, tests/test_segment_collector.py and the collector's bench."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from pathlib import Path

from checks.raw import RawContract
from checks.sources import load_catalog, raw_contracts
from sample_company.generate import generate

ROOT = Path(__file__).resolve().parent.parent
VENDOR_CATALOG = ROOT / "stacks" / "vendor" / "catalog.yaml"
WORLD = {"accounts": 12, "days": 14, "seed": 3, "end_date": "2025-11-30"}
SOURCE = "Zq3xSourceId"
# Call types the catalog does not read, and lines no folder takes: they must be kept, not lost.
EXTRA = [
    {"type": "page", "name": "Pricing", "userId": "usr_x", "properties": {"path": "/pricing"}},
    {"type": "screen", "name": "Home", "anonymousId": "anon-1"},
    {"type": "alias", "previousId": "anon-1", "userId": "usr_x"},
    {"type": "flush", "userId": "usr_x"},  # not a Segment call type
]


def vendor_world(out: Path) -> Path:
    """A small vendor-stack landing root (the generator's own Segment files in it)."""
    generate(out, stack="vendor", **WORLD)
    return out


def world_calls(landing: Path) -> dict[str, list[dict]]:
    """Every call the generator landed, by extract day (in the order written)."""
    days: dict[str, list[dict]] = {}
    for f in sorted((landing / "segment").glob("*/*/*.jsonl.gz")):
        for line in gzip.decompress(f.read_bytes()).splitlines():
            if line.strip():
                days.setdefault(f.parent.name, []).append(json.loads(line))
    return days


def day_ms(day: str) -> int:
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    return int(start.timestamp() * 1000)


def write_export(landing: Path, export: Path, days: list[str] | None = None) -> list[bytes]:
    """Segment's S3 layout for the world's calls: `segment-logs/<source>/<day ms>/<file>.gz`,
    every type mixed, two files a day, `receivedAt` in the day; plus the EXTRA calls, a line
    that is not JSON and a call with no receivedAt. Returns the lines written."""
    rng = random.Random(7)
    written: list[bytes] = []
    for day, calls in sorted(world_calls(landing).items()):
        if days is not None and day not in days:
            continue
        lines = []
        for i, call in enumerate(
            [*calls, *(dict(e, messageId=f"x-{day}-{j}") for j, e in enumerate(EXTRA))]
        ):
            msg = dict(call, receivedAt=f"{day}T{(i % 24):02d}:{i % 60:02d}:07.123Z")
            if i == 1:
                msg.pop("receivedAt")  # lands by its folder's day
            lines.append(json.dumps(msg, separators=(",", ":")).encode())
        lines.append(b'{"type":"track","event":"cut')  # a line Segment never writes: kept
        rng.shuffle(lines)
        folder = export / "segment-logs" / SOURCE / str(day_ms(day))
        folder.mkdir(parents=True, exist_ok=True)
        half = len(lines) // 2
        for n, part in enumerate((lines[:half], lines[half:])):
            name = f"{day_ms(day) + 3_600_000 * n}.a{n}b2c.gz"
            (folder / name).write_bytes(gzip.compress(b"\n".join(part) + b"\n"))
        written += lines
    return written


def landed(landing: Path, folders: tuple[str, ...] | None = None) -> dict[str, list[bytes]]:
    """Landed lines by `<folder>/<day>`, for the folders the landers write (not the world's
    own `<type>.jsonl.gz` files)."""
    out: dict[str, list[bytes]] = {}
    for f in sorted((landing / "segment").glob("*/*/*.jsonl.gz")):
        if f.name.split(".")[0] in ("tracks", "identifies", "groups"):
            continue
        folder = f.parent.parent.name
        if folders is None or folder in folders:
            lines = gzip.decompress(f.read_bytes()).splitlines()
            out.setdefault(f"{folder}/{f.parent.name}", []).extend(lines)
    return out


def segment_contracts() -> dict[str, RawContract]:
    return {
        c.object: c for c in raw_contracts(load_catalog(VENDOR_CATALOG)) if c.source == "segment"
    }
