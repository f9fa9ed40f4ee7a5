"""`make demo`: materialize the whole graph on the embedded default and print a short summary.

Runs through a persistent Dagster instance (DAGSTER_HOME, default lake/.dagster), so the runs,
materializations and check results are there to browse afterwards in `make dev`.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _instance_home() -> Path:
    """DAGSTER_HOME with the active profile's instance settings, kept current."""
    from resources.profile import active

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(ROOT / "lake" / ".dagster")))
    active().write_instance(home)
    return home


def main() -> int:
    _instance_home()
    warnings.filterwarnings("ignore", module="dagster")
    import runpy

    from dagster import DagsterInstance

    from assets.events.runs import build_graph

    defs = runpy.run_path(str(HERE / "definitions.py"))["defs"]
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    lake = defs.resources["lake"].process_config_and_initialize()
    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        results, days = build_graph(defs, instance, quiet)
    elapsed = time.perf_counter() - started
    _print_summary(lake, results, elapsed, days)
    return 0 if all(r.success for r in results) else 1


def _print_summary(lake, results, elapsed: float, days) -> None:
    import duckdb

    from checks.raw import QUARANTINE, RAW_TABLES

    quarantined: dict[str, int] = {}
    if lake.exists("raw", QUARANTINE.table):
        q = lake.dataset("raw", QUARANTINE.table)  # noqa: F841 - read by DuckDB below
        quarantined = dict(duckdb.sql("SELECT table_name, count(*) FROM q GROUP BY 1").fetchall())
    ok = all(r.success for r in results)
    print(f"\n{len(results)} run(s): {'success' if ok else 'FAILED'} in {elapsed:.1f}s")
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
    from assets.events.build import EVENTS, UNATTRIBUTED

    C360_KEYS = (("c360", "customer_360_accounts"), ("c360", "customer_360_people"))

    for layer, table in (EVENTS, UNATTRIBUTED):
        if lake.exists(layer, table):
            d = lake.describe(layer, table)
            print(f"{layer + '/' + table:<28}{d.total_rows:>12,}{d.version:>28}")
    for layer, table in (("events", "account_lifecycle"), *C360_KEYS):
        if lake.exists(layer, table):
            d = lake.describe(layer, table)
            print(f"{layer + '/' + table:<28}{d.total_rows:>12,}{d.version:>28}")
    if lake.exists("events", "account_lifecycle"):
        lc = lake.dataset("events", "account_lifecycle")  # noqa: F841 - read by DuckDB below
        rows = duckdb.sql(
            "SELECT state, count(*) FROM lc WHERE is_current GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        total = sum(n for _, n in rows) or 1
        print("\nlifecycle state today (accounts):")
        for state, n in rows:
            print(f"  {state:<22}{n:>8,}  {100 * n / total:5.1f}%")
    _print_models(results, lake)
    _print_sync(results)
    span = f"{days[0][0]}..{days[-1][1]} in {len(days)} run(s)" if days else "none pending"
    print(f"event days built: {span}")
    print(f"lake: {lake.root}")
    print("identity vs ground truth: .venv/bin/python -m assets.entities.evaluate")
    failed = [e.step_key for r in results for e in r.all_events if e.is_step_failure]
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)


def _print_sync(results) -> None:
    """Each sync's counts. A run's sync may report fewer keys (another run's sync had already
    sent everything, or an older materialization): what is missing prints as '-'."""
    for r in results:
        for m in r.get_asset_materialization_events():
            if m.materialization.asset_key.to_user_string() == "reverse_etl/sync_audit":
                md = {k: v.value for k, v in m.materialization.metadata.items()}
                c = md.get("counts") or {}
                print(
                    f"\nsync to {md.get('destination', '-')}: sent {c.get('sent', '-')}, skipped "
                    f"by consent {c.get('skipped_consent', '-')}, queued for review "
                    f"{c.get('queued_review', '-')}, unchanged {c.get('unchanged', '-')}, failed "
                    f"{c.get('failed', '-')}"
                )


def _print_models(results, lake) -> None:
    """The champions' holdout metrics and today's score distribution."""
    import duckdb

    metrics = {}
    for r in results:
        for m in r.get_asset_materialization_events():
            key = m.materialization.asset_key.to_user_string()
            if key.endswith("_model"):
                metrics[key] = {k: v.value for k, v in m.materialization.metadata.items()}
    for key, md in sorted(metrics.items()):
        print(f"\n{_model_line(key, md)}")
    for table in ("churn_scores", "expansion_scores"):
        if not lake.exists("ml", table):
            continue
        s = lake.dataset("ml", table)  # noqa: F841 - read by DuckDB below
        rows = duckdb.sql(
            """SELECT risk_band, count(*), round(avg(probability), 3) FROM s
               WHERE role = 'champion' AND scored_at = (SELECT max(scored_at) FROM s)
               GROUP BY 1 ORDER BY 1"""
        ).fetchall()
        print(
            f"ml/{table} (champion, latest day): "
            + ", ".join(f"{band} {n:,} (mean p {p})" for band, n, p in rows)
        )


HOLDOUT = (("auc", "AUC", ".3f"), ("pr_auc", "PR-AUC", ".3f"), ("brier", "Brier", ".4f"))


def _model_line(key: str, md: dict) -> str:
    """One model step's outcome, from whatever keys its metadata has: a step that found its
    training set unchanged (trained by this run before, or by another run at the same time)
    kept a version and has no holdout metrics to show."""
    line = f"{key}: version {md.get('model_version', '-')}"
    if not md.get("retrained", "auc" in md):
        champion = md.get("champion_version")
        kept = f" (champion {champion})" if champion else ""
        return f"{line}{kept}, kept: its training set and settings are unchanged"
    decided = "promoted" if md.get("promoted") else "kept as challenger"
    line += f" (champion {md.get('champion_version', '-')}, {decided})"
    shown = [f"{label} {md[k]:{fmt}}" for k, label, fmt in HOLDOUT if k in md]
    if "base_rate" in md:
        shown.append(f"base rate {md['base_rate']:.3f}")
    return f"{line}; holdout {', '.join(shown)}" if shown else line


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
