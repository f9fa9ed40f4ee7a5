"""Landing zones: files the source systems drop, modelled as observed external assets.

Observing a zone records a data version (a fingerprint of its files' content) and what is there,
so the UI shows when each zone last received files and which raw tables are stale. Zones are
observed by the `ingest` job (`make demo`, the UI) and by `landing_sensor` on each change it sees.
One zone per object of the source catalog (checks/sources.py), built with the code location.

A folder of the landing root that no object reads (an export the catalog does not declare) is
never silently ignored: every observation lists it (`unread_folders`) and the zones' WARN check
`unread_folders` fails until the catalog declares it or it is moved away.
"""

import hashlib
from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    DataVersion,
    MetadataValue,
    ObserveResult,
    multi_observable_source_asset,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from assets.metadata import OWNER
from checks.raw import RawContract
from checks.sources import load_catalog, raw_contracts
from resources.landing import LandingResource, Scan

FORMAT_KIND = {"csv": "csv", "jsonl": "json", "json_array": "json", "parquet": "parquet"}
UNREAD_CHECK = "unread_folders"
UNREAD_SHOWN = 50  # entries listed in the metadata and the check's description


def landing_key(contract: RawContract) -> AssetKey:
    return AssetKey(["landing", contract.landing_name])


def landing_spec(c: RawContract) -> AssetSpec:
    return AssetSpec(
        key=landing_key(c),
        description=(
            f"Landing zone `{c.landing_dir}/<extract_date>/`: {c.format} extracts from "
            f"the {c.source} system, kept as delivered for audit and reprocessing."
        ),
        group_name="landing",
        kinds={FORMAT_KIND[c.format], "file"},
        owners=[OWNER],
        tags={"layer": "landing", "source": c.source},
    )


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


def unread_folders(landing: LandingResource, contracts: tuple[RawContract, ...]) -> list[str]:
    """Entries of the landing root no object of the catalog reads."""
    return landing.unread([c.landing_dir for c in contracts])


def unread_check(key: AssetKey, unread: list[str]) -> AssetCheckResult:
    """WARN while the landing root holds folders nothing reads: files someone delivered that
    would otherwise never reach the lake, without a word."""
    listed = ", ".join(unread[:UNREAD_SHOWN]) + (" ..." if len(unread) > UNREAD_SHOWN else "")
    return AssetCheckResult(
        asset_key=key,
        check_name=UNREAD_CHECK,
        passed=not unread,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{len(unread)} landing entr{'y' if len(unread) == 1 else 'ies'} no catalog object "
            f"reads: {listed}; declare them in the source catalog or move them away"
            if unread
            else "every landing folder is read by an object of the source catalog"
        ),
        metadata={UNREAD_CHECK: MetadataValue.json(unread[:UNREAD_SHOWN])},
    )


def observation(
    contract: RawContract, scan: Scan, landing_root: str, unread: list[str] | None = None
) -> AssetObservation:
    """What a zone holds, as the UI shows it: files, bytes, latest extract date, the landing
    entries no object reads; the data version is the content fingerprint."""
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
            "path": MetadataValue.path(f"{landing_root}/{contract.landing_dir}"),
            UNREAD_CHECK: MetadataValue.json((unread or [])[:UNREAD_SHOWN]),
        },
    )


def build_assets(contracts: tuple[RawContract, ...] | None = None) -> list[AssetsDefinition]:
    """The landing zones of the catalog's objects (the active catalog unless given). With the
    active catalog, an object pulled by a configured connector is a connector asset under the
    same key (assets/connectors/) instead of an observed zone."""
    pulled: list[AssetsDefinition] = []
    if contracts is None:
        from assets import connectors

        catalog = load_catalog()
        contracts = raw_contracts(catalog)
        pulled = connectors.build_assets(catalog)
    taken = {k for a in pulled for k in a.keys}
    zones = build_zones(contracts, tuple(c for c in contracts if landing_key(c) not in taken))
    return [*zones, *pulled]


def build_zones(
    contracts: tuple[RawContract, ...], observed: tuple[RawContract, ...] | None = None
) -> list[AssetsDefinition]:
    """The observed zones of `observed` (default: all `contracts`); unread folders are judged
    against every object of the catalog."""
    observed = contracts if observed is None else observed
    if not observed:
        return []
    by_key = {landing_key(c): c for c in observed}
    checks = [
        AssetCheckSpec(
            UNREAD_CHECK,
            asset=key,
            description="WARN: the landing root holds folders no object of the catalog reads.",
        )
        for key in by_key
    ]

    @multi_observable_source_asset(
        specs=[landing_spec(c) for c in observed],
        can_subset=True,
        name="landing_zones",
        check_specs=checks,
    )
    def landing_zones(
        context: AssetExecutionContext, landing: LandingResource
    ) -> Iterator[ObserveResult]:
        unread = unread_folders(landing, contracts)
        for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
            c = by_key[key]
            seen = observation(c, landing.scan(c.landing_dir), landing.root, unread)
            yield ObserveResult(
                asset_key=key,
                data_version=DataVersion(seen.tags[DATA_VERSION_TAG]),
                metadata=seen.metadata,
                check_results=[unread_check(key, unread)],
            )

    return [landing_zones]
