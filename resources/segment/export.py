"""Segment's storage-destination export (AWS S3 / GCS), landed into the catalog's folders.

Segment writes `segment-logs/<source id>/<received day>/<file>.gz`: the received day is the UTC
day's start as Unix epoch milliseconds, each file gzipped newline-separated JSON, one call per
line, every call type mixed. `land_export` finds the files not yet in the ledger and lands each
message by its type and `receivedAt` day (the folder's day when a message has none), keeping
the line exactly as Segment wrote it. Each landed file is named after its source file
(`export-<source id>-<day ms>-<file>.jsonl.gz`), so a file lands once even across a crash.

The root is a local folder or a URL pyarrow's file systems open (`s3://bucket/prefix`,
`gs://...`; credentials from the environment as those clients read them): the bucket root holding
`segment-logs/`, or `segment-logs/` itself.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from pyarrow import fs as pafs

from resources.segment.files import Routed, land_routed, route_line, safe_name
from resources.segment.ledger import Ledger, exclusive, state_dir

LOGS = "segment-logs"
PARTIAL = (".*", "_*", "*.part", "*.partial", "*.tmp", "*.temp", "*.filepart", "*~")


@dataclass(frozen=True)
class ExportFile:
    key: str  # `<source id>/<day ms>/<name>` under segment-logs/
    path: str  # as the file system opens it
    size: int
    source_id: str
    day: dt.date


@dataclass
class ExportResult:
    """What one landing pass did, for the asset's metadata and the tests."""

    landed: list[str] = field(default_factory=list)  # export keys landed by this pass
    already: int = 0  # export files the ledger already held
    messages: dict[str, int] = field(default_factory=dict)  # per landing folder
    files_written: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # key -> reason (retried next pass)
    misplaced: dict[str, str] = field(default_factory=dict)  # path -> why it is not read
    changed: list[str] = field(default_factory=list)  # landed keys whose size differs now


def open_root(root: str) -> tuple[pafs.FileSystem, str]:
    """The file system and the `segment-logs` folder of an export root (path or URL)."""
    if "://" in root:
        filesystem, base = pafs.FileSystem.from_uri(root)
    else:
        filesystem, base = pafs.LocalFileSystem(), str(Path(root).expanduser().resolve())
    base = base.rstrip("/")
    if base.rsplit("/", 1)[-1] != LOGS:
        base = f"{base}/{LOGS}"
    return filesystem, base


def list_export(root: str) -> tuple[list[ExportFile], dict[str, str]]:
    """Every export file under the root, and every entry outside Segment's layout with why."""
    filesystem, base = open_root(root)
    info = filesystem.get_file_info(base)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(
            f"Segment export root {root!r} (LAKEHOUSE_SEGMENT_EXPORT_ROOT) has no {LOGS}/ folder"
        )
    found: list[ExportFile] = []
    misplaced: dict[str, str] = {}
    for entry in filesystem.get_file_info(pafs.FileSelector(base, recursive=True)):
        if entry.type != pafs.FileType.File:
            continue
        rel = entry.path[len(base) :].lstrip("/")
        parts = rel.split("/")
        if any(fnmatch.fnmatchcase(p, pat) for p in parts for pat in PARTIAL):
            continue  # a copy in progress or a marker: read once renamed
        if len(parts) != 3:
            misplaced[rel] = f"not at {LOGS}/<source id>/<received day epoch ms>/<file>"
            continue
        source_id, day_ms, _name = parts
        if not day_ms.isdigit():
            misplaced[rel] = f"folder {day_ms!r} is not a received day in epoch milliseconds"
            continue
        day = dt.datetime.fromtimestamp(int(day_ms) / 1000, dt.UTC).date()
        found.append(ExportFile(rel, entry.path, entry.size or 0, source_id, day))
    return sorted(found, key=lambda f: (f.day, f.key)), misplaced


def read_lines(filesystem: pafs.FileSystem, path: str) -> list[bytes]:
    with filesystem.open_input_stream(path) as stream:
        data = stream.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.split(b"\n")


def land_export(root: str, landing_root: str | Path) -> ExportResult:
    """Land every export file not yet landed (exactly once; see the module docstring)."""
    state = state_dir(landing_root)
    result = ExportResult()
    with exclusive(state / "export.lock"):
        ledger = Ledger(state / "export-ledger.jsonl")
        done = ledger.entries()
        files, result.misplaced = list_export(root)
        filesystem, _ = open_root(root)
        for f in files:
            if f.key in done:
                result.already += 1
                if done[f.key].get("size") != f.size:
                    result.changed.append(f.key)
                continue
            try:
                lines = read_lines(filesystem, f.path)
            except (OSError, EOFError, zlib.error) as exc:
                result.unreadable[f.key] = f"cannot read the gzip file: {exc}"
                continue
            routed = Routed()
            for n, line in enumerate(lines, start=1):
                route_line(routed, line, f"{LOGS}/{f.key}", n, f.day)
            stem = "export-" + safe_name(f.key.removesuffix(".gz").replace("/", "-"))
            written = land_routed(landing_root, routed, stem)
            ledger.append(
                {
                    "key": f.key,
                    "size": f.size,
                    "messages": dict(routed.counts),
                    "landed": written,
                    "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                }
            )
            result.landed.append(f.key)
            result.files_written += written
            for folder, n in routed.counts.items():
                result.messages[folder] = result.messages.get(folder, 0) + n
    return result
