"""`make demo`: materialize the whole graph on the embedded default, showing each stage as it
runs, then a short summary.

Runs through a persistent Dagster instance (DAGSTER_HOME, default lake/.dagster) as the named
jobs of assets/automation.py, tagged `lakehouse/launched_by=make demo`, so the runs (Jobs page,
timeline), materializations, landing observations and check results are there to browse
afterwards in `make dev`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LAUNCHER = "make demo"


def _instance_home() -> Path:
    """DAGSTER_HOME with the active profile's instance settings, kept current."""
    from resources.profile import active

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(ROOT / "lake" / ".dagster")))
    active().write_instance(home)
    return home


class StageLines:
    """Prints each stage when it starts and when it ends (rows written, seconds), at once."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.plan = None

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def planned(self, plan) -> None:
        self.plan = plan
        self.say(f"   events: {plan.describe()}")

    def started(self, stage: str, what: str) -> None:
        self.say(f"-> {stage}: {what}")

    def skipped(self, stage: str, why: str) -> None:
        self.say(f"-> {stage}: not built: {why}")

    def finished(self, stage: str, what: str, result, seconds: float) -> None:
        rows = rows_written(result)
        observed = sum(e.event_type_value == "ASSET_OBSERVATION" for e in result.all_events)
        done = f"{rows:,} rows written"
        if observed:
            done += f", {observed} landing zone(s) observed"
        if result.success:
            self.say(f"   {stage}: ok, {done} in {seconds:.1f} s")
            return
        self.say(f"   {stage}: FAILED, {done} in {seconds:.1f} s")
        for e in result.all_events:
            if e.is_step_failure:
                error = e.event_specific_data.error
                why = (error.message if error else "").strip().splitlines() or ["no message"]
                self.say(f"      {e.step_key}: {why[0][:LINE_WIDTH]}")


def rows_written(result) -> int:
    """Rows the run's commits wrote (`rows_written` metadata), once per asset: a run over a
    range of days commits once and Dagster repeats that metadata on each day's event."""
    per_asset = {}
    for m in result.get_asset_materialization_events():
        value = m.materialization.metadata.get("rows_written")
        per_asset.setdefault(m.materialization.asset_key, value.value if value else 0)
    return sum(per_asset.values())


def main() -> int:
    from resources.quiet import QUIET_RUN_CONFIG, quiet_libraries

    quiet_libraries()
    home = _instance_home()
    import runpy

    from dagster import DagsterInstance

    from assets.events.runs import build_graph

    lines = StageLines()
    with _sources(lines):
        defs = runpy.run_path(str(HERE / "definitions.py"))["defs"]
        lake = defs.resources["lake"].process_config_and_initialize()
        lines.say(f"make demo: the whole graph on {lake.root} (Dagster instance {home})")
        started = time.perf_counter()
        with DagsterInstance.get() as instance:
            results, _ = build_graph(
                defs, instance, QUIET_RUN_CONFIG, launched_by=LAUNCHER, progress=lines
            )
        elapsed = time.perf_counter() - started
    _print_summary(lake, results, elapsed, lines.plan)
    return 0 if all(r.success for r in results) else 1


@contextmanager
def _sources(lines: StageLines) -> Iterator[None]:
    """With `STANDINS=1` (LAKEHOUSE_DEMO_STANDINS), the catalog's connected objects are pulled
    from stand-ins of their vendors' APIs (sample_company/standins/world.py); else from files."""
    from resources.settings import DEMO_STANDINS

    if not os.environ.get(DEMO_STANDINS):
        yield
        return
    from checks.sources import load_catalog
    from resources.settings import lake_root, landing_root
    from sample_company.standins.world import serving

    with serving(Path(landing_root()), Path(lake_root()), load_catalog()) as running:
        for vendor, standin in running.items():
            lines.say(f"stand-in: {vendor} API on {standin.url} (connectors pull from it)")
        if not running:
            lines.say("stand-ins: the catalog declares no connector; files as usual")
        yield


def _print_summary(lake, results, elapsed: float, plan) -> None:
    import duckdb

    from checks.raw import QUARANTINE
    from checks.sources import raw_contracts

    quarantined: dict[str, int] = {}
    if lake.exists("raw", QUARANTINE.table):
        q = lake.dataset("raw", QUARANTINE.table)  # noqa: F841 - read by DuckDB below
        quarantined = dict(duckdb.sql("SELECT table_name, count(*) FROM q GROUP BY 1").fetchall())
    ok = all(r.success for r in results)
    checks = check_lines(results)
    print(
        f"\n{len(results)} run(s): {'success' if ok else 'FAILED'} in {elapsed:.1f}s; {checks[0]}"
    )
    print(f"{'table':<28}{'rows':>12}{'quarantined':>13}{'delta version':>15}")
    for c in raw_contracts():
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
    _print_scored(lake)
    _print_sync(results)
    _print_actions(lake)
    print(f"\nevents: {plan.describe() if plan else 'not built (a stage before them failed)'}")
    print("\n".join(checks))
    print(f"lake: {lake.root}")
    print("identity vs ground truth: .venv/bin/python -m assets.entities.evaluate")
    failed = [e.step_key for r in results for e in r.all_events if e.is_step_failure]
    if failed:
        print(f"failed steps: {', '.join(failed)}", file=sys.stderr)


def check_lines(results) -> list[str]:
    """The asset checks whose latest evaluation in these runs did not pass, one line each
    (severity, asset and check, reason), or one line saying all passed."""
    latest = {}
    for r in results:
        for e in r.all_events:
            if e.event_type_value == "ASSET_CHECK_EVALUATION":
                ev = e.event_specific_data
                latest[(ev.asset_key.to_user_string(), ev.check_name)] = ev
    bad = [ev for ev in latest.values() if not ev.passed]
    if not bad:
        return [f"checks: all {len(latest)} passed"]
    lines = [f"checks: {len(bad)} of {len(latest)} did not pass"]
    for ev in sorted(bad, key=lambda ev: (ev.severity.value, ev.asset_key.to_user_string())):
        label = "FAILED" if ev.severity.value == "ERROR" else "WARN"
        head = f"  {label:<7}{ev.asset_key.to_user_string()} {ev.check_name}: "
        lines.append(head + check_reason(ev, max(40, LINE_WIDTH - len(head))))
    return lines


LINE_WIDTH = 120
REASON_KEYS = ("drifted", "failed", "rule", "detail")  # metadata that says why, first found wins


def check_reason(ev, width: int = 100) -> str:
    """One line saying why a check did not pass: its description's first line, else the
    metadata naming what failed."""
    text = (getattr(ev, "description", None) or "").strip().splitlines()
    if text:
        line = text[0]
    else:
        md = {k: v.value for k, v in ev.metadata.items()}
        key = next((k for k in REASON_KEYS if md.get(k)), None)
        line = f"{key} {json.dumps(md[key], default=str)}" if key else "no reason recorded"
    return line if len(line) <= width else line[: width - 3] + "..."


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


def _print_scored(lake) -> None:
    """How many account profiles carry each model's score, and why the others do not (an
    all-NULL score column was once shipped without anyone noticing)."""
    import duckdb

    if not lake.exists("c360", "customer_360_accounts"):
        return
    c = lake.dataset("c360", "customer_360_accounts")  # noqa: F841 - read by DuckDB below
    for kind in ("churn", "expansion"):
        scored, total, why = duckdb.sql(
            f"""SELECT count({kind}_probability), count(*),
                    mode({kind}_unscored_reason) FILTER (WHERE {kind}_probability IS NULL)
                FROM c"""
        ).fetchall()[0]
        rest = f"; the others: {why}" if why and scored < total else ""
        print(f"c360 {kind}_probability: {scored:,} of {total:,} accounts{rest}")


def _print_actions(lake) -> None:
    """What the CRM is told to do, per action, and how sure the platform is of it."""
    import duckdb

    if not lake.exists("reverse_etl", "crm_account_updates"):
        return
    u = lake.dataset("reverse_etl", "crm_account_updates")  # noqa: F841 - read by DuckDB below
    rows = duckdb.sql(
        """SELECT next_best_action, count(*), round(avg(action_confidence), 2) FROM u
           GROUP BY 1 ORDER BY 2 DESC"""
    ).fetchall()
    print(
        "crm actions (action, accounts, mean confidence): "
        + ", ".join(f"{a} {n:,} ({c})" for a, n, c in rows)
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
