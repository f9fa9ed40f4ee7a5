"""`make demo`: materialize the whole graph on the embedded default and print a short summary.

Runs through a persistent Dagster instance (DAGSTER_HOME, default lake/.dagster), so the runs,
materializations and check results are there to browse afterwards in `make dev`.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _instance_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(ROOT / "lake" / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(HERE / "dagster.yaml", home / "dagster.yaml")
    return home


def main() -> int:
    _instance_home()
    warnings.filterwarnings("ignore", module="dagster")
    import runpy

    from dagster import DagsterInstance

    defs = runpy.run_path(str(HERE / "definitions.py"))["defs"]
    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    elapsed = time.perf_counter() - started
    lake = defs.resources["lake"].process_config_and_initialize()
    _print_summary(lake, result, elapsed)
    return 0 if result.success else 1


def _print_summary(lake, result, elapsed: float) -> None:
    import duckdb

    from checks.raw import QUARANTINE, RAW_TABLES

    quarantined: dict[str, int] = {}
    if lake.exists("raw", QUARANTINE.table):
        q = lake.dataset("raw", QUARANTINE.table)  # noqa: F841 - read by DuckDB below
        quarantined = dict(duckdb.sql("SELECT table_name, count(*) FROM q GROUP BY 1").fetchall())
    print(
        f"\nrun {result.run_id[:8]}: {'success' if result.success else 'FAILED'} in {elapsed:.1f}s"
    )
    print(f"{'table':<28}{'rows':>12}{'quarantined':>13}{'delta version':>15}")
    for c in RAW_TABLES:
        if lake.exists(c.layer, c.table):
            d = lake.describe(c.layer, c.table)
            print(
                f"{c.name:<28}{d.total_rows:>12,}{quarantined.get(c.table, 0):>13,}{d.version:>15}"
            )
        else:
            print(f"{c.name:<28}{'-':>12}{'-':>13}{'-':>15}")
    print(
        f"{'raw/quarantine':<28}{sum(quarantined.values()):>12,}   rows rejected with file, "
        "line and rule"
    )
    from checks.entities import ENTITY_TABLES, IDENTITY_TABLES

    print(f"\n{'table':<28}{'rows':>12}{'delta version':>28}")
    for c in (*IDENTITY_TABLES, *ENTITY_TABLES):
        if lake.exists(c.layer, c.table):
            d = lake.describe(c.layer, c.table)
            print(f"{c.name:<28}{d.total_rows:>12,}{d.version:>28}")
    print(f"lake: {lake.root}")
    print("identity vs ground truth: .venv/bin/python -m assets.entities.evaluate")
    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
