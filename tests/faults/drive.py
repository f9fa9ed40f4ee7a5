"""Run part of the graph in a process of its own, as a deployment would: the definitions of
platform/definitions.py over the lake and landing named by LAKEHOUSE_LAKE_ROOT/LANDING_ROOT, on the
instance of DAGSTER_HOME (or an ephemeral one with --ephemeral).

    python tests/faults/drive.py raw                  # every raw asset
    python tests/faults/drive.py raw raw/crm_accounts # only these raw assets
    python tests/faults/drive.py graph                # the whole graph, as `make demo`
    python tests/faults/drive.py until-events         # raw, entities and every event day
    python tests/faults/drive.py events 2026-01-01 2026-01-31
    python tests/faults/drive.py raw --pause GATE     # a run that holds a pool until GATE exists

`--pause GATE` stops the run inside its first step, at its first Delta commit claim (holding
that step's pool, no database write in flight), writes GATE.paused naming the table, and goes on
once GATE exists: a live run holding a pool for as long as a test needs.

Prints one line per run, `run <id> <success>`; exits 0 when every run succeeded.
"""

from __future__ import annotations

import argparse
import runpy
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["raw", "graph", "until-events", "events"])
    parser.add_argument("days", nargs="*", help="events: first and last day; raw: asset keys")
    parser.add_argument("--ephemeral", action="store_true")
    parser.add_argument("--pause", type=Path, help="hold the first commit until this file exists")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(ROOT))
    if args.pause:
        _pause_first_claim(args.pause)
    from dagster import AssetKey, AssetSelection, DagsterInstance

    from assets.dead_runs import execute_in_process
    from assets.events.runs import EVENTS_KEY, build_graph, range_tags

    defs = runpy.run_path(str(ROOT / "platform" / "definitions.py"))["defs"]
    instance = DagsterInstance.ephemeral() if args.ephemeral else DagsterInstance.get()
    with instance:
        if args.what in ("graph", "until-events"):
            after = None if args.what == "graph" else AssetSelection.assets()
            results, _ = build_graph(defs, instance, QUIET, **({"after": after} if after else {}))
        else:
            selection = AssetSelection.assets(EVENTS_KEY)
            if args.what == "raw":
                keys = [AssetKey.from_user_string(k) for k in args.days]
                selection = AssetSelection.assets(*keys) if keys else AssetSelection.groups("raw")
            job = defs.resolve_implicit_global_asset_job_def()
            tags = range_tags(*args.days) if args.what == "events" else None
            results = [
                execute_in_process(
                    job,
                    instance,
                    asset_selection=list(selection.resolve(defs.resolve_asset_graph())),
                    tags=tags,
                    raise_on_error=False,
                    run_config=QUIET,
                )
            ]
    for r in results:
        print(f"run {r.run_id} {r.success}", flush=True)
    return 0 if all(r.success for r in results) else 1


def _pause_first_claim(gate: Path) -> None:
    from resources.lake import Claim, LakeResource

    claim, paused = LakeResource.claim, []

    def pausing(self: LakeResource, layer: str, table: str, app_id: str, *args, **kw) -> Claim:
        if not paused:
            paused.append(table)
            gate.with_name(gate.name + ".paused").write_text(f"{layer}/{table}")
            while not gate.exists():
                time.sleep(0.1)
        return claim(self, layer, table, app_id, *args, **kw)

    LakeResource.claim = pausing


if __name__ == "__main__":
    sys.exit(main())
