"""Where a Segment message lands, and landing files so that a retry rewrites, never adds.

Segment's call types map to the folders its warehouse and S3 destinations use (`track` ->
`tracks`, ...). Types the source catalog does not read (page, screen, alias) still land in their
own folder (`segment/pages/` ...): the landing zones' `unread_folders` check lists them until the
catalog declares them, so nothing arrives unseen. A line that is not a JSON object, or has no
known `type`, is kept in `segment/unrouted/<day>/` wrapped with the reason, its origin and its
text exactly as read, never dropped.

Every landed file is a pure function of its input (a source file or a sealed log segment):
deterministic name, deterministic gzip bytes (no name or time in the header), written to a
`.part` name the landing scan ignores, fsynced and renamed. Landing the same input again after
a crash finds identical files and leaves them untouched: each message lands exactly once.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM = "segment"
FOLDERS = {
    "track": "tracks",
    "identify": "identifies",
    "group": "groups",
    "page": "pages",
    "screen": "screens",
    "alias": "aliases",
}
CATALOG_TYPES = ("track", "identify", "group")  # what stacks/vendor/catalog.yaml reads
UNROUTED = "unrouted"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-name part from a source id or key: no separators, no leading dot or underscore
    (the landing scan ignores hidden names)."""
    return _SAFE.sub("_", text).lstrip("._") or "x"


def received_day(message: dict, fallback: dt.date) -> dt.date:
    """The UTC day Segment received a message (`receivedAt`), else `fallback`."""
    value = message.get("receivedAt")
    if isinstance(value, str):
        try:
            at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return fallback
        if at.tzinfo is not None:
            at = at.astimezone(dt.UTC)
        return at.date()
    return fallback


@dataclass
class Routed:
    """Lines of one input sorted by landing folder and received day, in input order."""

    lines: dict[tuple[str, dt.date], list[bytes]] = field(default_factory=lambda: defaultdict(list))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, folder: str, day: dt.date, line: bytes) -> None:
        self.lines[(folder, day)].append(line.rstrip(b"\r\n") + b"\n")
        self.counts[folder] += 1

    def hold(self, day: dt.date, reason: str, origin: str, line_no: int, raw: bytes) -> None:
        """Keep a line no folder takes, with why, where it came from and its exact text."""
        text = raw.rstrip(b"\r\n").decode("utf-8", errors="backslashreplace")
        held = {"reason": reason, "origin": origin, "line": line_no, "text": text}
        self.add(UNROUTED, day, json.dumps(held, ensure_ascii=False).encode())


def route_line(routed: Routed, raw: bytes, origin: str, line_no: int, day: dt.date) -> None:
    """File one line of Segment's output by its `type` and received day; the bytes are kept
    exactly as read (the raw layer's `_payload` is Segment's message, not a re-encoding)."""
    if not raw.strip():
        return
    try:
        message = json.loads(raw)
    except ValueError as exc:
        routed.hold(day, f"not JSON: {exc}", origin, line_no, raw)
        return
    if not isinstance(message, dict):
        routed.hold(day, "not a JSON object", origin, line_no, raw)
        return
    kind = message.get("type")
    folder = FOLDERS.get(kind) if isinstance(kind, str) else None
    if folder is None:
        routed.hold(day, f"unknown Segment call type {kind!r}", origin, line_no, raw)
        return
    routed.add(folder, received_day(message, day), raw)


def gzip_bytes(lines: list[bytes]) -> bytes:
    """Deterministic gzip: the same lines give the same bytes (no file name, mtime 0)."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        for line in lines:
            gz.write(line)
    return buf.getvalue()


def write_atomic(path: Path, data: bytes) -> bool:
    """Write `data` at `path` unless it already holds exactly that; True when written.
    Temp name `<name>.part` (ignored by the landing scan), fsync, rename, fsync the folder."""
    if path.is_file() and not path.is_symlink():
        existing = path.read_bytes()
        if hashlib.sha256(existing).digest() == hashlib.sha256(data).digest():
            return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return True


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def land_routed(landing_root: str | Path, routed: Routed, stem: str) -> list[str]:
    """Write each (folder, day) group as `segment/<folder>/<day>/<stem>.jsonl.gz`; returns the
    landed paths relative to the landing root (also the ones already there, identical)."""
    root = Path(landing_root)
    out = []
    for (folder, day), lines in sorted(routed.lines.items()):
        rel = Path(SYSTEM, folder, day.isoformat(), f"{stem}.jsonl.gz")
        write_atomic(root / rel, gzip_bytes(lines))
        out.append(rel.as_posix())
    return out
