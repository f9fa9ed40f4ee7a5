"""The landing zone: extracts dropped at `<source>/<object>/<extract_date>/<file>`."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from resources.lake import DEFAULT_LAKE_ROOT

DEFAULT_LANDING_ROOT = str(Path(DEFAULT_LAKE_ROOT) / "landing")


@dataclass(frozen=True)
class LandingFile:
    path: Path
    relative: str  # the file's name in the lake's lineage columns
    extract_date: dt.date
    size: int
    mtime_ns: int

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with self.path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()


class LandingResource(ConfigurableResource):
    """Where extracts land. Point `root` at your own exports to run the platform on your data."""

    root: str = Field(default=DEFAULT_LANDING_ROOT, description="Landing zone root folder.")

    def files(self, source: str, obj: str) -> list[LandingFile]:
        """Every file of one source object, oldest extract first; `_`-prefixed names skipped."""
        base = Path(self.root) / source / obj
        if not base.is_dir():
            return []
        found: list[LandingFile] = []
        for day_dir in sorted(base.iterdir()):
            extract_date = _parse_date(day_dir.name)
            if extract_date is None or not day_dir.is_dir():
                continue
            for path in sorted(day_dir.iterdir()):
                if path.name.startswith((".", "_")) or not path.is_file():
                    continue
                stat = path.stat()
                found.append(
                    LandingFile(
                        path=path,
                        relative=f"{source}/{obj}/{day_dir.name}/{path.name}",
                        extract_date=extract_date,
                        size=stat.st_size,
                        mtime_ns=stat.st_mtime_ns,
                    )
                )
        return found


def _parse_date(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(name)
    except ValueError:
        return None
