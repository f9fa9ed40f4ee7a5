"""Segment deliveries landed into the catalog's folders: one materializable asset.

`landing/segment_delivery` (kind segment) lands what Segment delivered since the last run: the
storage export's new files (`LAKEHOUSE_SEGMENT_EXPORT_ROOT`) and the sealed write-ahead-log
segments of the HTTP collector (`python -m resources.segment.collector`), into
`segment/{tracks,identifies,groups,...}/<received day>/`. The three Segment landing zones stay
observed zones (assets/landing.py) and the raw layer reads them as it reads any delivery: landing
is an act with a ledger, observing is not, so the two stay apart, and a stack fed by Segment's
own daily files (the generator's) runs unchanged with nothing configured. `segment_sensor`
(stopped by default, like `landing_sensor`) starts `segment_landing` when the export holds files
the ledger has not seen or the collector sealed a segment; `landing_sensor` then ingests them.
"""

import hashlib

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)

from assets.metadata import OWNER
from resources.landing import LandingResource
from resources.segment.collector import land_collected, orphaned, wal_dir
from resources.segment.export import land_export, list_export
from resources.segment.ledger import Ledger, state_dir
from resources.segment.resource import SegmentResource

KEY = AssetKey(["landing", "segment_delivery"])
NOT_LANDED = "export_files_not_landed"
SHOWN = 50


@asset(
    key=KEY,
    group_name="landing",
    kinds={"segment"},
    owners=[OWNER],
    tags={"layer": "landing", "source": "segment"},
    description=(
        "Lands Segment's storage export (new files only, by a ledger) and the HTTP collector's "
        "sealed log segments into the per-type landing folders, each message exactly once."
    ),
)
def segment_delivery(
    context: AssetExecutionContext, landing: LandingResource, segment: SegmentResource
) -> MaterializeResult:
    collected = land_collected(landing.root)
    messages = dict(collected.messages)
    written = list(collected.files_written)
    meta: dict = {"collector_segments": MetadataValue.int(len(collected.segments))}
    problems: list[str] = []
    if segment.export_root:
        result = land_export(segment.export_root, landing.root)
        for k, v in result.messages.items():
            messages[k] = messages.get(k, 0) + v
        written += result.files_written
        problems = [f"{k}: {why}" for k, why in {**result.unreadable, **result.misplaced}.items()]
        problems += [f"{k}: changed since it was landed (not landed again)" for k in result.changed]
        meta |= {
            "export_files_landed": MetadataValue.int(len(result.landed)),
            "export_files_already_landed": MetadataValue.int(result.already),
        }
    context.log.info(f"segment: {sum(messages.values())} message(s) landed: {messages}")
    if problems:  # left for the next run, named in the run log and the materialization
        context.log.warning(
            f"segment: {len(problems)} export file(s) not landed: " + "; ".join(problems[:SHOWN])
        )
    return MaterializeResult(
        metadata={
            **meta,
            "messages": MetadataValue.json(messages),
            "files_written": MetadataValue.int(len(written)),
            "export_root": MetadataValue.text(segment.export_root or "(not set)"),
            NOT_LANDED: MetadataValue.json(problems[:SHOWN]),
        },
    )


segment_job = define_asset_job(
    "segment_landing",
    AssetSelection.assets(KEY),
    description="Land Segment's new export files and the collector's sealed log segments.",
    tags={"lakehouse/stage": "segment_landing"},
)


@sensor(
    name="segment_sensor",
    job=segment_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="New Segment export files or sealed collector segments -> one landing run.",
)
def segment_sensor(
    context: SensorEvaluationContext, landing: LandingResource, segment: SegmentResource
):
    pending = sorted(p.name for p in wal_dir(landing.root).glob("wal-*.sealed"))
    pending += orphaned(landing.root)  # a killed collector's log
    if segment.export_root:
        done = Ledger(state_dir(landing.root) / "export-ledger.jsonl").entries()
        files, _ = list_export(segment.export_root)
        pending += [f.key for f in files if f.key not in done]
    if not pending:
        return SkipReason("nothing new from Segment")
    key = hashlib.sha256("\n".join(pending).encode()).hexdigest()[:16]
    return RunRequest(run_key=key, tags={"lakehouse/trigger": "segment_sensor"})


assets = [segment_delivery]
jobs = [segment_job]
sensors = [segment_sensor]
