"""Run part of the graph in a process of its own, as a deployment would: the definitions of
platform/definitions.py over the lake and landing named by LAKEHOUSE_LAKE_ROOT/LANDING_ROOT, on the
instance of DAGSTER_HOME (or an ephemeral one with --ephemeral).

    python tests/faults/drive.py raw                  # every raw asset
    python tests/faults/drive.py graph                # the whole graph, as `make demo`
    python tests/faults/drive.py until-events         # raw, entities and every event day
    python tests/faults/drive.py events 2026-01-01 2026-01-31

Prints one line per run, `run <id> <success>`; exits 0 when every run succeeded.
"""

from __future__ import annotations

import argparse
import runpy
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["raw", "graph", "until-events", "events"])
    parser.add_argument("days", nargs="*")
    parser.add_argument("--ephemeral", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(ROOT))
    from dagster import AssetSelection, DagsterInstance

    from assets.dead_runs import execute_in_process
    from assets.events.runs import EVENTS_KEY, build_graph, range_tags

    defs = runpy.run_path(str(ROOT / "platform" / "definitions.py"))["defs"]
    instance = DagsterInstance.ephemeral() if args.ephemeral else DagsterInstance.get()
    with instance:
        if args.what in ("graph", "until-events"):
            after = None if args.what == "graph" else AssetSelection.assets()
            results, _ = build_graph(defs, instance, QUIET, **({"after": after} if after else {}))
        else:
            selection = (
                AssetSelection.groups("raw")
                if args.what == "raw"
                else AssetSelection.assets(EVENTS_KEY)
            )
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


if __name__ == "__main__":
    sys.exit(main())
