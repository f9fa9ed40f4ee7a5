"""The ledger of inputs already landed: one JSON line per input, appended and fsynced only after
every file it produced is in place. An input in the ledger is never landed again; one landed but
not yet in the ledger (a crash in between) is landed again onto identical files, which changes
nothing. Only one lander at a time (an exclusive `flock` beside the ledger)."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATE = "_segment"  # under the landing root: hidden from the landing scan by its `_*` rule


def state_dir(landing_root: str | Path) -> Path:
    return Path(landing_root) / STATE


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> dict[str, dict]:
        """Landed inputs by key. A last line cut short by a crash is not an entry (its input
        is landed again, onto identical files)."""
        out: dict[str, dict] = {}
        if not self.path.exists():
            return out
        for line in self.path.read_bytes().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "key" in entry:
                out[entry["key"]] = entry
        return out

    def append(self, entry: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        with open(self.path, "ab") as fh:
            if fh.tell() and not _ends_with_newline(self.path):
                data = b"\n" + data  # a torn last line stays a line of its own
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """One lander at a time across processes; waits for the other to finish."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
