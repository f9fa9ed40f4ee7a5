"""`make bench` (connectors): records/s of a full HubSpot pull against its stand-in, and an
incremental day's pull time against the full pull's.

A vendor world is generated (default 1,000 accounts x 365 days), the stand-in serves it at the
day before its last, a full pull lands everything, the clock moves one day and an incremental
pull lands what changed that day. Everything runs on 127.0.0.1; figures go to stdout and, as
JSON, to `<out>/connectors.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=1000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--out", default=str(ROOT / "lake" / "bench" / "connectors"))
    args = p.parse_args(argv)

    from resources.quiet import telemetry_off

    telemetry_off()
    from assets import connectors
    from checks.sources import load_catalog
    from sample_company.generate import generate
    from sample_company.standins.hubspot import HubSpotStandIn

    out = Path(args.out)
    world = out / f"world-{args.accounts}x{args.days}"
    if not (world / "hubspot").exists():
        generate(world, accounts=args.accounts, days=args.days, stack="vendor")
    objects = connectors.connected(load_catalog(ROOT / "stacks" / "vendor" / "catalog.yaml"))[
        "hubspot"
    ]
    token = "bench-token"
    report: dict = {"accounts": args.accounts, "days": args.days}
    with HubSpotStandIn(world, token=token) as s:
        last = s.clock
        s.advance(last - dt.timedelta(days=1))
        for run in ("full", "incremental"):
            scratch = out / "run"
            if run == "full":
                shutil.rmtree(scratch, ignore_errors=True)
            else:
                s.advance(last)
            before = len(s.log)
            t = time.perf_counter()
            landed = connectors.pull(
                "hubspot",
                objects,
                lake_root=scratch / "lake",
                landing_root=scratch / "landing",
                base_url=s.url,
                token=token,
            )
            secs = time.perf_counter() - t
            n = sum(landed.records.values())
            report[run] = {
                "records": n,
                "per_object": landed.records,
                "seconds": round(secs, 3),
                "records_per_s": round(n / secs, 1) if secs else None,
                "requests": len(s.log) - before,
            }
    report["incremental_vs_full"] = round(
        report["incremental"]["seconds"] / report["full"]["seconds"], 3
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "connectors.json").write_text(json.dumps(report, indent=2))
    f, i = report["full"], report["incremental"]
    print(
        f"connectors/hubspot ({args.accounts} accounts x {args.days} days, stand-in on 127.0.0.1):"
        f"\n  full pull: {f['records']} records in {f['seconds']:.2f}s = {f['records_per_s']} "
        f"records/s ({f['requests']} requests)"
        f"\n  incremental day: {i['records']} records in {i['seconds']:.2f}s "
        f"({i['requests']} requests) = {report['incremental_vs_full']:.1%} of the full pull"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
