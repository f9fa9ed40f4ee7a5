"""Generate the sample company's landing zone and its ground truth.

The whole horizon is always simulated the same way for the same arguments; `write_through`
only limits which extract dates are written, and existing files are never rewritten, so a
later run (with a later date or none) only adds the newer extract files.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import sys
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sample_company.billing import build_billing
from sample_company.config import DEFAULT, Config
from sample_company.consent_risk import build_consent, build_risk
from sample_company.context import Ctx
from sample_company.crm import build_crm
from sample_company.extracts import (
    DRIFT_COLUMN,
    DRIFT_OBJECT,
    SPECS,
    ObjectSpec,
    assign_extracts,
    csv_bytes,
    json_array_bytes,
    jsonl_bytes,
    records,
)
from sample_company.product import build_product_entities, member_frame
from sample_company.support import build_support
from sample_company.timeutil import NEVER, date_strings, day_of, iso_date, monthly_days, weekly_days
from sample_company.usage import EVENT_TYPES, Events, render_lines, simulate_events
from sample_company.world import simulate_world

DEFAULT_END_DATE = dt.date(2026, 10, 31)
STACKS = ("default", "vendor")  # the renderings of the one simulated world
TRUTH_DIR = "_truth"
VERSION = "1"


@dataclass
class Summary:
    out: str
    accounts: int
    days: int
    seed: int
    start_date: str
    end_date: str
    write_through: str | None
    files_written: int = 0
    files_skipped: int = 0  # already there: never rewritten
    rows: dict[str, int] = field(default_factory=dict)  # rows in the files written now
    rows_simulated: dict[str, int] = field(default_factory=dict)  # whole horizon
    usage_events: int = 0  # events in the usage files written now
    bad_rows: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rows = " ".join(f"{k}={v}" for k, v in self.rows.items())
        return (
            f"sample_company: {self.files_written} files written ({self.files_skipped} existing "
            f"kept), {self.accounts} accounts x {self.days} days {self.start_date}..{self.end_date}"
            f", seed {self.seed}, {self.seconds:.1f}s; rows: {rows}"
        )


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"[sample_company {time.perf_counter() - self.t0:7.1f}s] {msg}", file=sys.stderr)


class _Writer:
    """Writes extract files once: atomically, never over an existing file, up to a date."""

    def __init__(self, out: Path, through: int | None, summary: Summary):
        self.out, self.through, self.summary = out, through, summary
        self.lock = threading.Lock()

    def wanted(self, day: int) -> bool:
        return self.through is None or day <= self.through

    def path(self, spec: ObjectSpec, day: int) -> Path:
        return self.out / spec.source / spec.object / iso_date(day) / spec.filename

    def write(self, spec: ObjectSpec, day: int, data: bytes | Callable[[], bytes], rows: int):
        if not self.wanted(day):
            return
        path = self.path(spec, day)
        if path.exists():
            with self.lock:
                self.summary.files_skipped += 1
            return
        if callable(data):
            data = data()
        _atomic_write(path, data)
        with self.lock:
            self.summary.files_written += 1
            self.summary.rows[spec.name] = self.summary.rows.get(spec.name, 0) + rows


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # dot files are skipped by readers
    tmp.write_bytes(data)
    os.replace(tmp, path)


def extract_days(spec: ObjectSpec, start: int, end: int) -> np.ndarray:
    if spec.cadence == "daily":
        return np.arange(start, end + 1, dtype=np.int64)
    if spec.cadence == "weekly":
        return weekly_days(start, end)
    return monthly_days(start, end)


def drift_day(start: int, end: int) -> int:
    """First weekly extract on or after the middle of the window: the new column appears."""
    days = weekly_days(start, end)
    mid = start + (end - start + 1) // 2
    return int(days[np.searchsorted(days, mid)]) if days[-1] >= mid else int(days[-1])


def generate(
    out: Path | str,
    accounts: int = 1000,
    days: int = 365,
    seed: int = 7,
    end_date: dt.date | str = DEFAULT_END_DATE,
    write_through: dt.date | str | None = None,
    config: Config = DEFAULT,
    progress: bool = False,
    stack: str = "default",
) -> Summary:
    """Simulate the company over `days` days ending at `end_date` and write its landing zone.

    `stack` picks the rendering: `default` (the sample company's own exports) or `vendor`
    (the same world as HubSpot, Stripe, Segment and Zendesk export it: `vendors/`)."""
    if stack not in STACKS:
        raise ValueError(f"unknown stack {stack!r}: the generator renders {', '.join(STACKS)}")
    started = time.perf_counter()
    say = _Progress(progress)
    out = Path(out)
    if isinstance(end_date, str):
        end_date = dt.date.fromisoformat(end_date)
    if isinstance(write_through, str):
        write_through = dt.date.fromisoformat(write_through)
    if accounts < 2 or days < 14:
        raise ValueError("need at least 2 accounts and 14 days")
    end = day_of(end_date)
    start = end - days + 1
    through = None if write_through is None else day_of(write_through)
    summary = Summary(
        out=str(out),
        accounts=accounts,
        days=days,
        seed=seed,
        start_date=iso_date(start),
        end_date=iso_date(end),
        write_through=None if write_through is None else write_through.isoformat(),
    )
    cfg = config
    world_rng = np.random.default_rng([seed, zlib.crc32(b"world")])
    world = simulate_world(world_rng, cfg, accounts, start, end)
    say(f"world: {accounts} accounts, {len(world.people)} people, {len(world.members)} logins")
    ctx = Ctx(world=world, cfg=cfg, seed=seed)
    build_crm(ctx)
    build_billing(ctx)
    build_product_entities(ctx)
    build_support(ctx)
    build_consent(ctx)
    build_risk(ctx, extract_days(SPECS["risk/signals"], start, end))
    say("source records: " + ", ".join(f"{k}={len(v)}" for k, v in ctx.versions.items()))

    writer = _Writer(out, through, summary)
    bad: list[dict] = []
    drift = drift_day(start, end)
    if stack == "vendor":
        from sample_company import vendors

        rendered = vendors.render(ctx)
        vendors.write_objects(ctx, rendered, writer, start, end, drift, bad, summary)
    else:
        for name, versions in ctx.versions.items():
            spec = SPECS[name]
            _write_object(ctx, writer, spec, versions, start, end, drift, bad, summary)
    say(f"entity extracts written ({summary.files_written} files)")

    events = simulate_events(ctx, member_frame(ctx))
    say(f"usage: {len(events)} events simulated")
    if stack == "vendor":
        from sample_company.vendors import segment

        tracks = segment.with_unknown_events(ctx, events)
        summary.rows_simulated[vendors.TRACKS.name] = len(tracks)
        usage = _Usage(vendors.TRACKS, segment.track_renderer(ctx), vendors.BAD_ROWS, vendors.RULES)
        _write_usage(ctx, writer, tracks, start, end, bad, summary, say, usage)
        ctx.truth = rendered.truth
        drift_of = (vendors.DRIFT_OBJECT, vendors.DRIFT_COLUMN)
    else:
        summary.rows_simulated["product/usage_events"] = len(events)
        _write_usage(ctx, writer, events, start, end, bad, summary, say, _default_usage(ctx))
        drift_of = (DRIFT_OBJECT, DRIFT_COLUMN)
    say(f"usage files written ({summary.files_written} files in all)")

    summary.bad_rows = len(bad)
    _write_truth(ctx, out, summary, bad, drift, events, stack, drift_of)
    summary.seconds = time.perf_counter() - started
    say("truth written")
    return summary


def _write_object(
    ctx: Ctx,
    writer: _Writer,
    spec: ObjectSpec,
    versions: pd.DataFrame,
    start: int,
    end: int,
    drift: int,
    bad: list[dict],
    summary: Summary,
) -> None:
    cfg = ctx.cfg
    days = extract_days(spec, start, end)
    parts = assign_extracts(versions, days)
    summary.rows_simulated[spec.name] = sum(len(p) for p in parts.values())
    corrupt = pick_bad_rows(ctx, spec.name, parts, cfg.bad_rows)
    for d in days if not spec.only_changed_days else sorted(parts):
        d = int(d)
        part = parts.get(d)
        fields = spec.fields
        if spec.name == DRIFT_OBJECT and d >= drift:
            fields = (*fields, DRIFT_COLUMN)
        recs = records(part, fields) if part is not None else []
        marks = corrupt.get(d, [])
        for idx, kind in marks:
            line = idx + (2 if spec.format == "csv" else 1)
            bad.append(_planted(_rel(spec, d), line, kind))
        if not writer.wanted(d):
            continue
        writer.write(spec, d, lambda r=recs, f=fields, m=marks: _render(spec, r, f, m), len(recs))


def pick_bad_rows(
    ctx: Ctx,
    name: str,
    parts: dict[int, pd.DataFrame],
    bad_rows: tuple[tuple[str, str, int, int], ...],
) -> dict[int, list[tuple[int, str]]]:
    """Extract day -> (record index, kind) of the rows to break in object `name`'s files, per
    the plan `bad_rows` (object, kind, files, rows per file): only files with enough rows, so a
    file never has more than ~1% of bad rows."""
    plan = [b for b in bad_rows if b[0] == name]
    corrupt: dict[int, list[tuple[int, str]]] = {}
    if not plan:
        return corrupt
    cfg = ctx.cfg
    rng = ctx.rng(f"bad.{name}")
    for _, kind, n_files, per_file in plan:
        cands = [d for d in sorted(parts) if len(parts[d]) >= cfg.bad_row_min_file_rows]
        if not cands:  # small worlds: the largest file still keeps the share ~1%
            biggest = max(parts, key=lambda d: len(parts[d]), default=None)
            cands = [biggest] if biggest is not None and len(parts[biggest]) >= 20 else []
        picked = sorted(rng.choice(cands, min(n_files, len(cands)), replace=False).tolist())
        for d in picked:
            k = min(per_file, max(1, len(parts[d]) // 100))
            for idx in sorted(rng.choice(len(parts[d]), k, replace=False).tolist()):
                corrupt.setdefault(int(d), []).append((int(idx), kind))
    return corrupt


# The rule a reader of each planted kind must quarantine its row under (the data dictionary's
# row rules as the platform names them): the manifest says what every bad row should become.
PLANTED_RULES = {
    "truncated_json": "invalid_json",
    "non_numeric_amount": "type(amount)",
    "extra_column": "field_count",
    "missing_id": "not_null(id)",
}


def _planted(file: str, line: int, kind: str) -> dict:
    """One manifest entry: where a bad row was planted, what it is, the rule it breaks."""
    return {"file": file, "line": line, "kind": kind, "rule": PLANTED_RULES[kind]}


def _rel(spec: ObjectSpec, day: int) -> str:
    return f"{spec.source}/{spec.object}/{iso_date(day)}/{spec.filename}"


def _render(spec: ObjectSpec, recs: list[dict], fields: tuple[str, ...], marks) -> bytes:
    broken_lines: dict[int, str] = {}
    for idx, kind in marks:
        r = dict(recs[idx])
        if kind == "missing_id":
            r.pop(fields[0], None)
            recs[idx] = r
        elif kind == "non_numeric_amount":
            r["amount"] = "N/A"
            recs[idx] = r
        elif kind == "extra_column":
            # an unquoted "Last, First" requester name: one field too many
            vals = ["" if r.get(f) is None else str(r.get(f)).replace(",", " ") for f in fields]
            name = str(r.get("requester_name") or "Doe Jane").replace(",", "")
            parts = name.split(" ", 1)
            vals[fields.index("requester_name")] = f"{parts[-1]}, {parts[0]}"
            broken_lines[idx] = ",".join(vals)
    if spec.format == "json_array":
        return json_array_bytes(recs)
    if spec.format == "jsonl":
        return jsonl_bytes(recs)
    data = csv_bytes(recs, fields)
    if broken_lines:
        lines = data.decode().split("\n")
        for idx, text in broken_lines.items():
            lines[idx + 1] = text
        data = "\n".join(lines).encode()
    return data


@dataclass(frozen=True)
class _Usage:
    """How a stack lands the usage stream: its object, line renderer and planted bad rows."""

    spec: Any  # ObjectSpec or vendors.base.VendorSpec: source, object, filename, name
    render: Callable[[Events, int, int, np.random.Generator], pa.Array]
    bad_rows: tuple[tuple[str, str, int, int], ...]
    rules: dict[str, str]


def _default_usage(ctx: Ctx) -> _Usage:
    ws = ctx.refs["workspace_id"]
    ws_ids = pa.array([ws.get(i, "") for i in range(ctx.world.n)])
    user_ids = pa.array(ctx.refs["user_id"])

    def render(ev: Events, lo: int, hi: int, rng: np.random.Generator) -> pa.Array:
        return render_lines(ev, lo, hi, ws_ids, user_ids, rng)

    return _Usage(SPECS["product/usage_events"], render, ctx.cfg.bad_rows, PLANTED_RULES)


def _write_usage(
    ctx: Ctx,
    writer: _Writer,
    ev: Events,
    start: int,
    end: int,
    bad: list[dict],
    summary: Summary,
    say: _Progress,
    usage: _Usage,
) -> None:
    cfg = ctx.cfg
    spec = usage.spec
    days = np.arange(start, end + 1)
    bounds = np.searchsorted(ev.arrival, np.append(days, end + 1))
    counts = np.diff(bounds)
    # truncated lines in a handful of big files
    corrupt: dict[int, list[int]] = {}
    rng = ctx.rng(f"bad.{spec.name}")
    for _, kind, n_files, per_file in [b for b in usage.bad_rows if b[0] == spec.name]:
        cands = days[counts >= cfg.bad_row_min_file_rows]
        for d in sorted(rng.choice(cands, min(n_files, len(cands)), replace=False).tolist()):
            n = int(counts[d - start])
            lines = sorted(rng.choice(n, min(per_file, n // 100), replace=False).tolist())
            corrupt[int(d)] = lines
            bad.extend(
                {"file": _rel(spec, d), "line": i + 1, "kind": kind, "rule": usage.rules[kind]}
                for i in lines
            )

    def job(d: int, payload: pa.Buffer | bytes, n: int) -> None:
        data = memoryview(payload)
        if d in corrupt:
            lines = bytes(data).split(b"\n")
            for i in corrupt[d]:
                lines[i] = lines[i][: len(lines[i]) // 2]
            data = b"\n".join(lines)
        writer.write(spec, d, lambda: gzip.compress(data, cfg.gzip_level, mtime=0), n)

    # render chunks of whole days (~1M events), compress and write days on worker threads
    chunk_target = 1_000_000
    pending: list[Future] = []
    with ThreadPoolExecutor(max_workers=max(1, cfg.write_threads)) as pool:
        i = 0
        while i < len(days):
            j, total = i, 0
            while j < len(days) and (total == 0 or total + counts[j] <= chunk_target):
                total += counts[j]
                j += 1
            if not writer.wanted(int(days[i])):
                break
            chunk = [int(d) for d in days[i:j] if writer.wanted(int(d))]
            if all(writer.path(spec, d).exists() for d in chunk):
                for d in chunk:  # already delivered: counted as kept, not even rendered
                    writer.write(spec, d, b"", 0)
                i = j
                continue
            lo, hi = int(bounds[i]), int(bounds[j])
            rng_ids = ctx.rng(f"usage.ids.{int(days[i])}")
            lines = usage.render(ev, lo, hi, rng_ids)
            offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[: len(lines) + 1]
            data = lines.buffers()[2]
            for pending_f in pending:
                pending_f.result()
            pending = []
            for k in range(i, j):
                a, b = int(bounds[k]) - lo, int(bounds[k + 1]) - lo
                buf = data.slice(int(offsets[a]), int(offsets[b] - offsets[a])) if b > a else b""
                pending.append(pool.submit(job, int(days[k]), buf, b - a))
            say(f"usage: rendered {iso_date(int(days[i]))}..{iso_date(int(days[j - 1]))}")
            i = j
        for f in pending:
            f.result()
    summary.usage_events = summary.rows.get(spec.name, 0)


def _write_truth(
    ctx: Ctx,
    out: Path,
    summary: Summary,
    bad: list[dict],
    drift: int,
    ev: Events,
    stack: str = "default",
    drift_of: tuple[str, str] = (DRIFT_OBJECT, DRIFT_COLUMN),
) -> None:
    w, acc, people = ctx.world, ctx.world.acc, ctx.world.people
    cfg = ctx.cfg
    truth = out / TRUTH_DIR
    tiers = np.array(["starter", "growth", "enterprise"])

    def dates(x) -> np.ndarray:
        x = np.asarray(x, dtype=np.int64)
        s = date_strings(np.where(x >= NEVER, 0, x)).astype(object)
        s[x >= NEVER] = ""
        return s

    a = pd.DataFrame(
        {
            "account_key": acc["account_key"],
            "name": acc["name"],
            "domain": acc["domain"],
            "alt_domain": acc["alt_domain"],
            "industry": acc["industry"],
            "employees": acc["employees"],
            "country": acc["country"],
            "tier_start": tiers[acc["tier0"].to_numpy()],
            "mrr_start": acc["mrr0"],
            "is_lead": acc["is_lead"],
            "crm_created_date": dates(acc["crm_created"]),
            "signup_date": dates(acc["signup"]),
            "trial_end": dates(acc["trial_end"]),
            "converted": acc["converted"],
            "churn_date": dates(acc["churn"]),
            "churn_kind": acc["churn_kind"],
            "upgrade_date": dates(acc["upgrade"]),
            "tier_end": tiers[acc["tier_end"].to_numpy()],
            "mrr_end": np.where(acc["upgrade"] < NEVER, acc["mrr_up"], acc["mrr0"]),
            "churn_hazard": acc["churn_hazard"].round(5),
            "upgrade_hazard": acc["upgrade_hazard"].round(5),
            "frailty": acc["frailty"].round(4),
            "adoption": acc["adopt"].round(4),
            "engagement": acc["eng"].round(4),
            "integrations_first30": acc["n_int30"],
            "champion_left_date": dates(acc["champion_leave"]),
            "workspace_deleted_date": dates(acc["ws_deleted"]),
            "discount_pct": acc["discount"],
            "shared_billing_inbox": acc["shared_inbox"],
        }
    )
    keys = acc["account_key"].to_numpy()
    p = pd.DataFrame(
        {
            "person_key": people["person_key"],
            "account_keys": [";".join(keys[x] for x in accs) for accs in people["accounts"]],
            "first_name": people["first"],
            "last_name": people["last"],
            "work_email": people["work_email"],
            "personal_email": people["personal_email"],
            "role": people["role"],
            "final_role": np.where(people["left"] < NEVER, "former_user", people["role"]),
            "joined_date": dates(people["joined"]),
            "left_date": dates(people["left"]),
            "is_crm_contact": people["is_crm"],
            "is_product_user": people["is_product"],
            "uses_personal_email": people["uses_personal"],
            "consultant": people["consultant"],
        }
    )
    src = pd.DataFrame(
        ctx.truth, columns=["system", "object", "source_id", "account_key", "person_key"]
    )
    truth.mkdir(parents=True, exist_ok=True)
    _atomic_write(truth / "accounts.csv", a.to_csv(index=False, lineterminator="\n").encode())
    _atomic_write(truth / "people.csv", p.to_csv(index=False, lineterminator="\n").encode())
    _atomic_write(
        truth / "source_records.csv", src.to_csv(index=False, lineterminator="\n").encode()
    )
    types = np.bincount(ev.etype, minlength=len(EVENT_TYPES))

    manifest = {
        "generator": "sample_company",
        "version": VERSION,
        "stack": stack,
        "args": {
            "accounts": summary.accounts,
            "days": summary.days,
            "seed": summary.seed,
            "end_date": summary.end_date,
        },
        "window": {"start": summary.start_date, "end": summary.end_date},
        "schema_drift": {
            "object": drift_of[0],
            "column": drift_of[1],
            "from_extract_date": iso_date(drift),
        },
        "counts": {
            "accounts": len(acc),
            "leads": int(acc["is_lead"].sum()),
            "signed_up": int((~acc["is_lead"]).sum()),
            "churned": int((acc["churn"] < NEVER).sum()),
            "upgraded": int((acc["upgrade"] < NEVER).sum()),
            "people": len(people),
            "product_logins": len(w.members),
            "source_records": len(src),
            "rows": summary.rows_simulated,
            "usage_events_by_type": {t: int(c) for t, c in zip(EVENT_TYPES, types, strict=True)},
            "late_usage_events": int(ev.late.sum()),
        },
        "bad_rows": bad,
        "config": cfg.as_dict(),
    }
    _atomic_write(truth / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
