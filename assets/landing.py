"""Landing zones: files the source systems drop, modelled as observed external assets.

Observing a zone records a data version (a fingerprint of its files' content) and what is there,
so the UI shows when each zone last received files and which raw tables are stale. Zones are
observed by the `ingest` job (`make demo`, the UI) and by `landing_sensor` on each change it sees.
"""

import hashlib
from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetSpec,
    DataVersion,
    MetadataValue,
    ObserveResult,
    multi_observable_source_asset,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from assets.metadata import OWNER
from checks.raw import RAW_TABLES, RawContract
from resources.landing import LandingResource, Scan

FORMAT_KIND = {"csv": "csv", "jsonl": "json", "json_array": "json"}


def landing_key(contract: RawContract) -> AssetKey:
    return AssetKey(["landing", contract.landing_name])


SPECS = [
    AssetSpec(
        key=landing_key(c),
        description=(
            f"Landing zone `{c.source}/{c.object}/<extract_date>/`: {c.format} extracts from "
            f"the {c.source} system, kept as delivered for audit and reprocessing."
        ),
        group_name="landing",
        kinds={FORMAT_KIND[c.format], "file"},
        owners=[OWNER],
        tags={"layer": "landing", "source": c.source},
    )
    for c in RAW_TABLES
]
BY_KEY = {landing_key(c): c for c in RAW_TABLES}


def zone_fingerprint(scan: Scan) -> str:
    """What a zone holds, in 16 hex digits: any new, removed or rewritten entry changes it (a
    rewrite changes the change time even when the old modification time is set back)."""
    lines = [f"{f.relative}:{f.size}:{f.mtime_ns}:{f.ctime_ns}" for f in scan.files]
    lines += [f"{s.relative}:{s.identity()}" for s in scan.skipped]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


# File content hashes by (path, size, mtime, ctime): a zone is re-read only where it changed.
_HASHES: dict[tuple[Path, int, int, int], str] = {}


def content_fingerprint(scan: Scan) -> str:
    """The zone's data version: its files' content hashes by name (16 hex digits). A file
    rewritten with new content changes it; one touched without a change in content does not."""
    lines = []
    for f in scan.files:
        key = (f.path, f.size, f.mtime_ns, f.ctime_ns)
        if key not in _HASHES:
            _HASHES[key] = f.sha256()
        lines.append(f"{f.relative}:{_HASHES[key]}")
    lines += [f"{s.relative}:{s.identity()}" for s in scan.skipped]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def observation(contract: RawContract, scan: Scan, landing_root: str) -> AssetObservation:
    """What a zone holds, as the UI shows it: files, bytes, latest extract date; the data
    version is the content fingerprint."""
    files = scan.files
    return AssetObservation(
        asset_key=landing_key(contract),
        tags={DATA_VERSION_TAG: content_fingerprint(scan)},
        metadata={
            "files": MetadataValue.int(len(files)),
            "bytes": MetadataValue.int(sum(f.size for f in files)),
            "entries_ignored": MetadataValue.int(
                sum(s.decision == "ignored" for s in scan.skipped)
            ),
            "entries_refused": MetadataValue.int(
                sum(s.decision == "refused" for s in scan.skipped)
            ),
            "latest_extract_date": MetadataValue.text(
                str(max(f.extract_date for f in files)) if files else "none"
            ),
            "path": MetadataValue.path(f"{landing_root}/{contract.source}/{contract.object}"),
        },
    )


@multi_observable_source_asset(specs=SPECS, can_subset=True, name="landing_zones")
def landing_zones(
    context: AssetExecutionContext, landing: LandingResource
) -> Iterator[ObserveResult]:
    for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
        c = BY_KEY[key]
        seen = observation(c, landing.scan(c.source, c.object), landing.root)
        yield ObserveResult(
            asset_key=key,
            data_version=DataVersion(seen.tags[DATA_VERSION_TAG]),
            metadata=seen.metadata,
        )


assets = [landing_zones]
