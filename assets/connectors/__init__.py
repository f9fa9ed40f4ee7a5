"""Connectors: landing zones filled by pulling from a vendor's API instead of waiting for files.

A catalog object that declares `connector: {vendor: hubspot}` (checks/sources.py) is pulled by a
dlt pipeline (the vendor's source in `resources/vendors/`) whose destination is the landing
writer below: the records land as FILES in the object's declared format under
`<landing>/<system>/<object>/<UTC date>/<object>-<load id>-<file id>.<ext>`, and the raw layer
ingests them as any delivered extract. The asset keeps the zone's key (`landing/<name>`), so
nothing above landing changes; it is materializable (kinds: the vendor and `dlt`) and belongs to
the `landing` group, so the `ingest` job pulls, then ingests.

A vendor's objects become connector assets only when its token setting
(`LAKEHOUSE_<VENDOR>_TOKEN`) is set when the code location loads; until then its zones stay
observed from files, exactly as without connectors (the embedded default needs no credentials).
The token reaches the run through an `EnvVar` and is held only by the HTTP session.

Exactly once: a batch that fails is retried by dlt with the same load id and file id, so it
rewrites the same file (written to a `.part` name, then renamed: the landing scan never reads a
half-written file); a pull that fails while extracting lands nothing and keeps its cursor, so the
next run pulls the same window again; a package extracted but not loaded is loaded by the next
run before anything new is pulled. Cursors live in the pipeline's state under
`<lake>/connectors/`, beside the lake they describe.
"""

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    ConfigurableResource,
    EnvVar,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from assets.metadata import OWNER
from checks.sources import Catalog, SourceObject
from resources.vendors import VENDORS

PIPELINES_DIR = "connectors"  # under the lake root: each vendor pipeline's state and packages
RESOURCE_KEY = "connector_{vendor}"


class ConnectorResource(ConfigurableResource):
    """Where one vendor's API is and the token it accepts (from `LAKEHOUSE_<VENDOR>_TOKEN`)."""

    vendor: str = Field(description="The vendor module in resources/vendors/.")
    token: str = Field(default="", description="API token (private app token for HubSpot).")
    base_url: str = Field(default="", description="API base URL; empty: the vendor's real API.")
    max_attempts: int = Field(default=8, description="Attempts per request (429 and 5xx).")
    backoff_factor: float = Field(default=1.0, description="Exponential backoff factor (s).")
    max_retry_delay: float = Field(default=60.0, description="Longest wait between attempts (s).")
    options: dict[str, str] = Field(
        default_factory=dict,
        description="The vendor's other settings (its OPTION_ENVS, e.g. Zendesk's email).",
    )

    def url(self) -> str:
        return self.base_url or VENDORS[self.vendor].BASE_URL


def connected(catalog: Catalog) -> dict[str, list[SourceObject]]:
    """Vendor -> its objects the catalog pulls through a connector."""
    out: dict[str, list[SourceObject]] = {}
    for o in catalog.objects:
        if o.connector is not None:
            out.setdefault(o.connector.vendor, []).append(o)
    return out


def active(catalog: Catalog) -> dict[str, list[SourceObject]]:
    """The connected objects of the vendors whose token is set (read when the code location is
    built): those become connector assets, the others stay observed zones."""
    return {
        v: objs for v, objs in connected(catalog).items() if os.environ.get(VENDORS[v].TOKEN_ENV)
    }


def resources(catalog: Catalog) -> dict[str, ConnectorResource]:
    """One resource per active vendor, its token and base URL from the environment at run time."""
    out = {}
    for vendor in active(catalog):
        mod = VENDORS[vendor]
        url: Any = EnvVar(mod.BASE_URL_ENV) if os.environ.get(mod.BASE_URL_ENV) else mod.BASE_URL
        options = {
            k: os.environ[env]
            for k, env in getattr(mod, "OPTION_ENVS", {}).items()
            if os.environ.get(env)
        }
        out[RESOURCE_KEY.format(vendor=vendor)] = ConnectorResource(
            vendor=vendor, token=EnvVar(mod.TOKEN_ENV), base_url=url, options=options
        )
    return out


# -- the landing writer ---------------------------------------------------------------------------


def render(obj: SourceObject, records: list[dict]) -> bytes:
    """Records in the object's declared format: json_array under its records_path, or jsonl."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    if obj.format == "jsonl":
        return "".join(line + "\n" for line in lines).encode()
    if obj.format != "json_array":
        raise ValueError(f"object {obj.source}: a connector lands json_array or jsonl")
    body = "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"
    for key in reversed((obj.records_path or "").split(".") if obj.records_path else []):
        body = "{" + json.dumps(key) + ": " + body + "}"
    return (body + "\n").encode()


@dataclass
class Landed:
    """What one pull landed, per object: records and the files written."""

    records: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)


def landing_destination(
    root: Path, objects: Mapping[str, SourceObject], landed: Landed, day: str | None = None
) -> Any:
    """A dlt destination writing each load job's records as one landing file, named by load id
    and job file id (a retried job rewrites the same file), in the folder of the pull's UTC day
    (`day`: another extract date, for a replayed history)."""
    import datetime as dt

    import dlt
    from dlt.common import json as dlt_json
    from dlt.common.storages import FileStorage
    from dlt.common.storages.load_package import ParsedLoadJobFileName

    def write(items: Any, table: Any) -> None:
        obj = objects.get(table["name"])
        if obj is None:
            return  # a table no catalog object reads (none expected: dlt's own are skipped)
        path = Path(items)
        job = ParsedLoadJobFileName.parse(path.name)
        load_id = path.parent.parent.name
        records = []
        with FileStorage.open_zipsafe_ro(str(path)) as f:
            for line in f:
                rows = dlt_json.typed_loads(line)
                for row in rows if isinstance(rows, list) else [rows]:
                    records.append(json.loads(row[RECORD]))
        folder = root / obj.landing / (day or dt.datetime.now(dt.UTC).date().isoformat())
        folder.mkdir(parents=True, exist_ok=True)
        ext = "jsonl" if obj.format == "jsonl" else "json"
        name = f"{obj.object}-{load_id}-{job.file_id}.{ext}"
        tmp = folder / f"{name}.part"
        tmp.write_bytes(render(obj, records))
        os.replace(tmp, folder / name)
        landed.records[obj.object] = landed.records.get(obj.object, 0) + len(records)
        landed.files.setdefault(obj.object, []).append(str(folder.relative_to(root) / name))

    return dlt.destination(
        write,
        batch_size=0,
        name="landing",
        naming_convention="direct",
        max_table_nesting=0,
        skip_dlt_columns_and_tables=True,
    )()


# -- a pull ---------------------------------------------------------------------------------------


def pipeline(vendor: str, lake_root: str | Path, destination: Any = None) -> Any:
    """The vendor's dlt pipeline; its state (cursors, pending packages) under the lake."""
    import dlt

    return dlt.pipeline(
        pipeline_name=f"{vendor}_landing",
        pipelines_dir=str(Path(lake_root) / PIPELINES_DIR),
        destination=destination,
        dataset_name=vendor,
    )


def cursors(vendor: str, lake_root: str | Path) -> dict[str, Any]:
    """Object -> the cursor its next pull starts from (None: never pulled)."""
    state = pipeline(vendor, lake_root).state
    res = state.get("sources", {}).get(vendor, {}).get("resources", {})
    out = {}
    for obj, spec in VENDORS[vendor].OBJECTS.items():
        own = res.get(obj, {})
        inc = own.get("incremental", {}).get(_cursor_field(spec), {})
        # a source keeping its own resource state (Stripe: `created`) instead of dlt's incremental
        out[obj] = inc.get("last_value", own.get(_cursor_field(spec)))
    return out


def _cursor_field(spec: Mapping[str, Any]) -> str:
    return spec.get("cursor_field") or spec["cursor"]


def _endpoint(spec: Mapping[str, Any]) -> str:
    return spec.get("endpoint") or spec.get("path") or f"SOQL over {spec.get('sobject')}"


def pull(
    vendor: str,
    objects: Sequence[SourceObject],
    *,
    lake_root: str | Path,
    landing_root: str | Path,
    base_url: str,
    token: str,
    day: str | None = None,
    **options: Any,
) -> Landed:
    """Pull `objects` from the vendor and land them; raises the vendor's error on a refusal.
    `day`: the extract date the files land under (default: today, UTC)."""
    mod = VENDORS[vendor]
    by_name = {o.connector.object: o for o in objects if o.connector is not None}
    starts = {o.connector.object: o.connector.start for o in objects if o.connector.start}
    landed = Landed()
    dest = landing_destination(Path(landing_root), by_name, landed, day)
    pipe = pipeline(vendor, lake_root, dest)
    src = mod.source(
        base_url=base_url, token=token, objects=list(by_name), starts=starts, **options
    )
    for name, resource in src.resources.items():
        resource.add_map(_opaque(mod.OBJECTS[name]))
    try:
        info = pipe.run(src)
        info.raise_on_failed_jobs()
    except Exception as exc:
        raise _root_error(exc, mod) from None
    # records are keyed by the vendor's object; report by the catalog object
    landed.records = {by_name[k].object: v for k, v in landed.records.items() if k in by_name}
    return landed


RECORD = "_lakehouse_record"  # the vendor's record, as JSON text, through dlt's normalizer


def _opaque(spec: Mapping[str, Any]) -> Any:
    """Each record carried as one JSON text (beside its id and cursor, which dlt's incremental
    reads), so dlt's normalizer neither retypes a value (a planted "N/A" amount would land in
    a variant column) nor drops a key whose value is null: the landed file holds the record as
    the API returned it, and the raw layer judges it."""
    keep = ("id", _cursor_field(spec))

    def wrap(record: dict) -> dict:
        return {**{k: record[k] for k in keep if k in record}, RECORD: json.dumps(record)}

    return wrap


def _root_error(exc: BaseException, mod: Any) -> BaseException:
    """dlt wraps a source's error in its step errors: the vendor's own error (a refused token,
    naming the setting) is what a person needs to read; anything else stays as dlt raised it."""
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__module__ == mod.__name__:
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


# -- the assets -----------------------------------------------------------------------------------


def _spec(vendor: str, o: SourceObject) -> AssetSpec:
    mod = VENDORS[vendor]
    endpoint = _endpoint(mod.OBJECTS[o.connector.object])
    return AssetSpec(
        key=AssetKey(["landing", f"{o.system}_{o.object}"]),
        description=(
            f"Landing zone `{o.landing}/<extract_date>/`, filled by pulling {vendor} "
            f"`{endpoint}` (dlt): {o.format} files the raw layer ingests as delivered extracts. "
            f"Token: {mod.TOKEN_ENV}; base URL: {mod.BASE_URL_ENV}."
        ),
        group_name="landing",
        kinds={vendor, "dlt"},
        owners=[OWNER],
        tags={"layer": "landing", "source": o.system, "connector": vendor},
    )


def build_assets(catalog: Catalog) -> list[AssetsDefinition]:
    """One multi-asset per active vendor, an asset per connected object (its landing key)."""
    return [_vendor_assets(vendor, objs) for vendor, objs in active(catalog).items()]


def _vendor_assets(vendor: str, objs: list[SourceObject]) -> AssetsDefinition:
    specs = [_spec(vendor, o) for o in objs]
    by_key = {s.key: o for s, o in zip(specs, objs, strict=True)}
    key = RESOURCE_KEY.format(vendor=vendor)

    @multi_asset(
        name=f"{vendor}_connector",
        specs=specs,
        can_subset=True,
        required_resource_keys={key, "landing", "lake"},
    )
    def _pull(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
        conn: ConnectorResource = getattr(context.resources, key)
        if not conn.token:
            raise RuntimeError(f"{VENDORS[vendor].TOKEN_ENV} is empty: set the {vendor} token")
        chosen = [by_key[k] for k in sorted(context.selected_asset_keys, key=str)]
        lake_root = context.resources.lake.root
        before = cursors(vendor, lake_root)
        landed = pull(
            vendor,
            chosen,
            lake_root=lake_root,
            landing_root=context.resources.landing.root,
            base_url=conn.url(),
            token=conn.token,
            max_attempts=conn.max_attempts,
            backoff_factor=conn.backoff_factor,
            max_retry_delay=conn.max_retry_delay,
            **conn.options,
        )
        after = cursors(vendor, lake_root)
        for o in chosen:
            name = o.connector.object
            files = landed.files.get(name, [])
            yield MaterializeResult(
                asset_key=AssetKey(["landing", f"{o.system}_{o.object}"]),
                metadata={
                    "records": MetadataValue.int(landed.records.get(o.object, 0)),
                    "files": MetadataValue.json(files),
                    "mode": MetadataValue.text("incremental" if before.get(name) else "full"),
                    "cursor": MetadataValue.text(str(after.get(name) or "none")),
                    "base_url": MetadataValue.url(conn.url()),
                },
            )

    return _pull
