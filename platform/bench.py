"""`make bench`: the whole graph at the data dictionary's scale, cold and incremental, with
per-step wall time, CPU time and peak memory, rows per table and the identity throughput.

The sample company (default 5,000 accounts x 730 days, plus one more day for the incremental
run) is generated once per seed and size and cached. Every run builds a fresh lake from it with
the same phases as `make demo`, in process (steps run one after another, so a sampler thread can
attribute memory and CPU to the step running). Figures go to stdout and, as JSON and Markdown, to
`<out>/results/` so runs can be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


# -- measuring -----------------------------------------------------------------------------------
@dataclass
class Sampler:
    """Resident memory and process CPU time, sampled every `every` seconds in a thread."""

    every: float = 0.05
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (t, cpu s, rss B)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page
            t = os.times()
            self.samples.append((time.time(), t.user + t.system, rss))
            self._stop.wait(self.every)

    def window(self, start: float, end: float) -> tuple[float, int]:
        """CPU seconds and peak RSS between two wall-clock times."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        before = [s for s in self.samples if s[0] <= start] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= end] or self.samples[-1:]
        cpu = (after[0][1] - before[-1][1]) if before and after else 0.0
        peak = max((s[2] for s in inside + before[-1:] + after[:1]), default=0)
        return cpu, peak


def _step_windows(instance, run_id: str) -> dict[str, tuple[float, float, bool]]:
    from dagster import DagsterEventType

    starts, ends = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            ends[event.step_key] = (
                entry.timestamp,
                event.event_type == DagsterEventType.STEP_SUCCESS,
            )
    return {k: (starts[k], *ends[k]) for k in starts if k in ends}


# -- the company -----------------------------------------------------------------------------------
def company(cache: Path, accounts: int, days: int, seed: int) -> tuple[Path, float, bool]:
    """The generated landing zone with days + 1 (the last day feeds the incremental run), the
    generator's time (recorded when it ran) and whether it came from the cache."""
    from sample_company.cli import generate

    out = cache / f"sc-s{seed}-a{accounts}-d{days + 1}" / "landing"
    timing = out.parent / "generator.json"
    if (out / "_truth" / "manifest.json").exists() and timing.exists():
        return out, json.loads(timing.read_text())["seconds"], True
    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    generate(out, accounts=accounts, days=days + 1, seed=seed)
    took = round(time.perf_counter() - started, 1)
    timing.write_text(json.dumps({"seconds": took, "cpus": os.cpu_count()}))
    return out, took, False


def _extract_dates(landing: Path) -> list[str]:
    return sorted({p.name for p in landing.glob("*/*/*") if p.is_dir() and p.name[:2] == "20"})


def link_landing(source: Path, target: Path, until: str | None) -> int:
    """Hard-link the extract folders up to `until` (all when None) into a landing zone."""
    n = 0
    for src in sorted(source.rglob("*")):
        rel = src.relative_to(source)
        if src.is_dir() or (until and len(rel.parts) >= 3 and rel.parts[2] > until):
            continue
        dst = target / rel
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
        n += 1
    return n


# -- building -----------------------------------------------------------------------------------
def build(defs, instance, sampler: Sampler, daily: bool) -> dict:
    """landing -> reverse ETL as `make demo` runs it (cold), or the daily path (incremental:
    the models retrain on their weekly schedule, not with each day); per-step and total
    figures."""
    from assets.automation import WEEKLY_RETRAIN
    from assets.events.runs import AFTER_EVENTS, build_graph

    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    after = AFTER_EVENTS - WEEKLY_RETRAIN if daily else AFTER_EVENTS
    wall0, t0 = time.perf_counter(), os.times()
    results, ranges = build_graph(defs, instance, quiet, after)
    wall, t1 = time.perf_counter() - wall0, os.times()
    steps: dict[str, dict] = {}
    for r in results:
        for step, (start, end, success) in _step_windows(instance, r.run_id).items():
            cpu, peak = sampler.window(start, end)
            s = steps.setdefault(step, {"wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": 0, "ok": True})
            s["wall_s"] += end - start
            s["cpu_s"] += cpu
            s["peak_rss_mb"] = max(s["peak_rss_mb"], round(peak / 2**20))
            s["ok"] = s["ok"] and success
    identity = None
    for r in results:
        for e in r.all_events:
            if e.event_type_value == "ASSET_MATERIALIZATION":
                m = e.event_specific_data.materialization
                if m.asset_key.to_user_string() == "entities/identity_links":
                    v = m.metadata.get("records_per_minute")
                    identity = v.value if v is not None else None
    return {
        "ok": bool(results) and all(r.success for r in results),
        "wall_s": round(wall, 1),
        "cpu_s": round((t1.user + t1.system) - (t0.user + t0.system), 1),
        "peak_rss_mb": round(max((s[2] for s in sampler.samples), default=0) / 2**20),
        "runs": len(results),
        "event_ranges": [[str(a), str(b)] for a, b in ranges],
        "identity_records_per_minute": identity,
        "steps": {
            k: {**v, "wall_s": round(v["wall_s"], 2), "cpu_s": round(v["cpu_s"], 2)}
            for k, v in sorted(steps.items(), key=lambda kv: -kv[1]["wall_s"])
        },
    }


def table_rows(lake_root: Path) -> dict[str, int]:
    from deltalake import DeltaTable

    rows = {}
    for log in sorted(lake_root.rglob("_delta_log")):
        rel = log.parent.relative_to(lake_root).as_posix()
        if rel.startswith((".", "mlflow")):
            continue
        actions = DeltaTable(str(log.parent)).get_add_actions(flatten=True)
        rows[rel] = int(sum(v or 0 for v in actions.column("num_records").to_pylist()))
    return rows


def lookup_latency(lake_root: Path, n: int = 1000, seed: int = 7) -> dict:
    """Single-account lookups through the platform's FeatureLookup, p50/p99 over n accounts."""
    import random

    from assets.features.lookup import FeatureLookup
    from resources.lake import LakeResource

    started = time.perf_counter()
    lookup = FeatureLookup(LakeResource(root=str(lake_root)))
    load = time.perf_counter() - started
    ids = random.Random(seed).choices(lookup.accounts(), k=n)
    took = []
    for account in ids:
        t = time.perf_counter_ns()
        row = lookup.get(account)
        took.append(time.perf_counter_ns() - t)
        assert row is not None
    took.sort()
    return {
        "accounts": len(lookup),
        "load_s": round(load, 3),
        "p50_ms": took[len(took) // 2] / 1e6,
        "p99_ms": took[int(len(took) * 0.99) - 1] / 1e6,
    }


def mart_baseline(lake_root: Path, scratch: Path) -> dict:
    """The churn mart by the platform's path and by plain pandas (platform/baseline.py), each in
    a fresh process over the built lake; their outputs must agree before the ratios count."""
    import pandas as pd
    import pyarrow.parquet as pq

    baseline = load_script(HERE / "baseline.py")
    scratch.mkdir(parents=True, exist_ok=True)
    figures = {
        impl: baseline.measure(lake_root, impl, out=scratch / f"mart-{impl}.parquet")
        for impl in baseline.IMPLS
    }
    diff = baseline.compare(
        pd.read_parquet(scratch / "mart-pandas.parquet"),
        pq.read_table(scratch / "mart-platform.parquet"),
    )
    mine, theirs = figures["platform"], figures["pandas"]
    return {
        **figures,
        "agree": diff["equal"],
        "differing_columns": diff["differing_columns"],
        "time_ratio": round(mine["wall_s"] / theirs["wall_s"], 3),
        "memory_ratio": round(mine["peak_rss_mb"] / theirs["peak_rss_mb"], 3),
    }


def load_script(path: Path):
    """A script of platform/ as a module (platform/ is no package: it would shadow `platform`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"lakehouse_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def phase(name: str, lake_root: Path, landing: Path) -> dict:
    """One build in this process, over `lake_root`, with its own sampler and instance."""
    import runpy

    from dagster import DagsterInstance

    from resources.settings import LAKE_ROOT, LANDING_ROOT

    os.environ[LAKE_ROOT] = str(lake_root)
    os.environ[LANDING_ROOT] = str(landing)
    defs = runpy.run_path(str(HERE / "definitions.py"))["defs"]
    with Sampler() as sampler, DagsterInstance.ephemeral() as instance:
        figures = build(defs, instance, sampler, daily=name == "incremental")
    figures["phase"] = name
    return figures


# -- reporting -------------------------------------------------------------------------------------
def markdown(report: dict) -> str:
    cold, inc, mart = report["cold"], report["incremental"], report["mart"]
    lookup = report["lookup"]
    lines = [
        f"# bench {report['started']} — {report['accounts']} accounts x {report['days']} days",
        "",
        "| figure | cold | incremental (daily path) |",
        "|---|---|---|",
        f"| wall s | {cold['wall_s']} | {inc['wall_s']} |",
        f"| CPU s | {cold['cpu_s']} | {inc['cpu_s']} |",
        f"| peak RSS MB | {cold['peak_rss_mb']} | {inc['peak_rss_mb']} |",
        f"| identity records/min | {cold['identity_records_per_minute']} | "
        f"{inc['identity_records_per_minute']} |",
        f"| incremental / cold (wall) | | {report['incremental_over_cold']:.1%} |",
        "",
        f"Feature lookup ({lookup['accounts']} accounts, index load {lookup['load_s']} s): "
        f"p50 {lookup['p50_ms']:.4f} ms, p99 {lookup['p99_ms']:.4f} ms.",
        "",
        "| churn mart, fresh process each | wall s | CPU s | peak RSS MB | rows |",
        "|---|---|---|---|---|",
    ]
    for impl in ("platform", "pandas"):
        m = mart[impl]
        lines.append(
            f"| {impl} | {m['wall_s']} | {m['cpu_s']} | {m['peak_rss_mb']} | {m['rows']} |"
        )
    lines += [
        f"| platform / pandas | {mart['time_ratio']} | | {mart['memory_ratio']} | "
        f"{'same mart' if mart['agree'] else 'DIFFER: ' + ', '.join(mart['differing_columns'])} |",
        "",
        f"generator: {report['generator_s']} s"
        f"{' (cached from an earlier run)' if report['generator_cached'] else ''}; "
        f"cold lake rows: {sum(report['rows'].values()):,} in {len(report['rows'])} tables",
        "",
        "| step (cold) | wall s | CPU s | peak RSS MB |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {v['wall_s']} | {v['cpu_s']} | {v['peak_rss_mb']} |"
        for k, v in list(cold["steps"].items())[:25]
    ]
    lines += ["", "| step (incremental) | wall s | CPU s | peak RSS MB |", "|---|---|---|---|"]
    lines += [
        f"| {k} | {v['wall_s']} | {v['cpu_s']} | {v['peak_rss_mb']} |"
        for k, v in list(inc["steps"].items())[:12]
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=5000)
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=ROOT / "lake" / "bench")
    args = p.parse_args(argv)
    from resources.quiet import quiet_libraries

    quiet_libraries()

    started = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    source, generated, cached = company(args.out / "cache", args.accounts, args.days, args.seed)
    how = f"cached; generated in {generated} s" if cached else f"generated in {generated} s"
    print(f"company: {source} ({how})")
    last = _extract_dates(source)[-1]
    run_dir = args.out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    landing, lake = run_dir / "landing", run_dir / "lake"
    before = _extract_dates(source)[-2]
    print(f"cold: extracts up to {before} ({link_landing(source, landing, before)} files)")
    cold = phase("cold", lake, landing)
    rows = table_rows(lake)
    lookup = lookup_latency(lake)
    print(f"lookup: p50 {lookup['p50_ms']:.4f} ms, p99 {lookup['p99_ms']:.4f} ms")
    print(f"cold: {cold['wall_s']} s wall, {cold['cpu_s']} s CPU, peak {cold['peak_rss_mb']} MB")
    mart = mart_baseline(lake, run_dir / "mart")
    print(
        f"churn mart: platform {mart['platform']['wall_s']} s / {mart['platform']['peak_rss_mb']}"
        f" MB, pandas {mart['pandas']['wall_s']} s / {mart['pandas']['peak_rss_mb']} MB"
        f" ({'same mart' if mart['agree'] else 'marts differ'})"
    )
    added = link_landing(source, landing, None)
    print(f"incremental: one more day ({last}, {added} files)")
    inc = phase("incremental", lake, landing)
    print(f"incremental: {inc['wall_s']} s wall ({inc['wall_s'] / cold['wall_s']:.1%} of cold)")
    report = {
        "started": started,
        "accounts": args.accounts,
        "days": args.days,
        "seed": args.seed,
        "generator_s": generated,
        "generator_cached": cached,
        "cold": cold,
        "incremental": inc,
        "incremental_over_cold": inc["wall_s"] / cold["wall_s"],
        "rows": rows,
        "lookup": lookup,
        "mart": mart,
        "cpus": os.cpu_count(),
    }
    results = args.out / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"bench-{started}.json").write_text(json.dumps(report, indent=1, default=str))
    md = markdown(report)
    (results / f"bench-{started}.md").write_text(md)
    print()
    print(md)
    print(f"figures: {results}/bench-{started}.json")
    return 0 if cold["ok"] and inc["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
