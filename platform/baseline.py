"""The churn feature mart written the plain pandas way, as the yardstick for the platform.

The benchmark's question is not "is the platform fast" but "fast compared with what": here the
churn mart (features/churn_features) is computed twice over the same lake, once as a competent
analyst would (Delta tables into pandas, masks, merges and groupbys, no SQL) and once through the
platform's own path (assets/features/asof.py on DuckDB). `compare` proves they agree row for row,
so the timing ratio compares like with like; `measure` runs each in a fresh process, so neither
pays for the other's imports or memory.

    python platform/baseline.py --lake lake --impl pandas|platform [--out mart.parquet]

prints one JSON line: impl, rows, wall_s, cpu_s (reading + computing, imports excluded),
peak_rss_mb (the process's own high-water mark, VmHWM), ru_maxrss_mb (getrusage's, which on
Linux also holds the launcher's peak: fair only when launched from a shell) and rss_start_mb
(resident after the imports, before the timed part: the platform imports Dagster, pandas not).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

IMPLS = ("pandas", "platform")

# The baseline is an independent implementation of assets/features/asof.py: it shares the
# contract (checks/features.py) and the company's words (the active stack's vocabulary: what
# counts as usage, plan order, urgent priorities, statuses) but none of the platform's code.
LEADER_ROLES = {"admin", "champion", "billing_owner"}  # the platform's relationship roles
EVENT_COLUMNS = ["event_name", "event_date", "occurred_at", "account_id", "properties"]


# -- the pandas baseline -------------------------------------------------------------------------
def _uri(lake_root: str | Path, layer: str, table: str) -> str:
    return f"{Path(lake_root).resolve()}/{layer}/{table}"


def _read(lake_root: str | Path, layer: str, table: str, columns: list[str]) -> pd.DataFrame:
    from deltalake import DeltaTable

    return DeltaTable(_uri(lake_root, layer, table)).to_pandas(columns=columns)


def _day(s: pd.Series) -> pd.Series:
    """A UTC timestamp or a date as a naive midnight timestamp (the UTC day)."""
    import pandas as pd

    s = pd.to_datetime(s)
    if s.dt.tz is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.dt.normalize()


def _prop(props: pd.Series, key: str, index: pd.Index) -> pd.Series:
    """A top-level property of parsed JSON, over `index`; null where absent or JSON null."""
    return props.map(lambda p: p.get(key) if isinstance(p, dict) else None).reindex(index)


def _num(values: pd.Series) -> pd.Series:
    """Numbers and numeric strings as floats; anything else (true/false, text, objects) NaN."""
    import pandas as pd

    return pd.to_numeric(values.map(lambda v: None if isinstance(v, bool) else v), errors="coerce")


def _in_force(df: pd.DataFrame, day: pd.Timestamp) -> pd.Series:
    return (df["valid_from"] <= day) & (df["valid_to"].isna() | (df["valid_to"] > day))


def _latest(events: pd.DataFrame, value: str) -> pd.Series:
    """Per account, `value` of its latest event (by occurred_at) where it is a number."""
    known = events[events[value].notna()].sort_values("occurred_at", kind="stable")
    return known.groupby("account_id")[value].last()


def churn_mart_pandas(lake_root: str | Path) -> pd.DataFrame:
    """features/churn_features as of the latest event day, computed with pandas only."""
    import pandas as pd
    from deltalake import DeltaTable

    from checks.features import CHURN_FEATURES
    from checks.vocabulary import load_vocabulary

    vocab = load_vocabulary()
    usage_names, retention = (
        set(vocab.events_counting("usage")),
        set(vocab.events_counting("retention_signal")),
    )
    sessions = set(vocab.events_counting("session"))

    # Events, with ids merged since their day was built read as the surviving ids.
    ev = _read(lake_root, "events", "events", EVENT_COLUMNS)
    if DeltaTable.is_deltatable(_uri(lake_root, "entities", "identity_merges")):
        merges = _read(
            lake_root, "entities", "identity_merges", ["old_id", "surviving_id", "action"]
        )
        merged = merges[merges["action"] == "merged"].drop_duplicates("old_id")
        survivor = dict(zip(merged["old_id"], merged["surviving_id"], strict=True))
        if survivor:
            ev["account_id"] = ev["account_id"].replace(survivor)
    ev["day"] = _day(ev["event_date"])
    today = pd.Timestamp(datetime.now(UTC).date())
    as_of = ev.loc[ev["day"] <= today, "day"].max()
    if pd.isna(as_of):
        raise ValueError("events/events is empty: build the event days first")
    ev = ev[ev["account_id"].notna() & (ev["day"] <= as_of)].copy()
    ev["age"] = (as_of - ev["day"]).dt.days  # 0 = the as-of day itself

    # Only the events some feature reads have their JSON properties parsed.
    name = ev["event_name"]
    usage = name.isin(usage_names)
    needs_props = usage | name.isin({"ticket_opened", "ticket_solved", "risk_assessed"})
    props = ev.loc[needs_props, "properties"].map(
        lambda p: json.loads(p) if isinstance(p, str) else None
    )
    adoption = _prop(props, "feature_adoption_score", ev.index).where(usage)
    resolution = _prop(props, "resolution_hours", ev.index).where(name == "ticket_solved")
    risk = name == "risk_assessed"
    ev["adoption"] = _num(adoption)
    ev["adoption_n"] = adoption.notna()
    ev["resolution"] = _num(resolution)
    ev["resolution_n"] = resolution.notna()
    ev["gap"] = _num(_prop(props, "compliance_gap_score", ev.index).where(risk))
    ev["flags"] = _num(_prop(props, "vendor_risk_flags", ev.index).where(risk))
    opened = name == "ticket_opened"
    age = ev["age"]
    counts = {
        "total_events": usage,
        "events_last_30d": usage & (age < 30),
        "events_last_7d": usage & (age < 7),
        "events_last_90d": usage & (age < 90),
        "events_prev_30d": usage & (age >= 30) & (age < 60),
        "baseline_90d": usage & (age >= 30) & (age < 120),
        "sessions_last_30d": name.isin(sessions) & (age < 30),
        "retention_signal_count": name.isin(retention),
        "tickets_last_30d": opened & (age < 30),
        "high_priority_tickets": opened
        & _prop(props, "priority", ev.index).isin(set(vocab.urgent_priorities))
        & (age < 90),
        "payment_failures_90d": (name == "invoice_payment_failed") & (age < 90),
    }
    flags = pd.DataFrame(counts).astype("int64")
    flags["account_id"] = ev["account_id"]
    per_account = flags.groupby("account_id").sum()
    sums = ev.groupby("account_id")[["adoption", "resolution"]].sum(min_count=1)
    ns = ev.groupby("account_id")[["adoption_n", "resolution_n"]].sum()
    per_account["avg_adoption_score"] = sums["adoption"] / ns["adoption_n"].where(
        ns["adoption_n"] > 0
    )
    per_account["avg_resolution_hours"] = sums["resolution"] / ns["resolution_n"].where(
        ns["resolution_n"] > 0
    )
    per_account["last_event_day"] = ev[usage].groupby("account_id")["day"].max()
    per_account["workspace_day"] = (
        ev[name == "workspace_created"].groupby("account_id")["day"].min()
    )
    per_account["compliance_gap_score"] = _latest(ev, "gap")
    per_account["vendor_risk_flags"] = _latest(ev, "flags")
    per_account["compliance_gap_90d_ago"] = _latest(ev[ev["age"] >= 90], "gap")

    # Subscription status, MRR and plan from their validity intervals in attribute_history.
    history = _read(
        lake_root,
        "entities",
        "attribute_history",
        ["entity_type", "entity_id", "attribute", "value", "valid_from", "valid_to"],
    )
    history["valid_from"] = _day(history["valid_from"])
    history["valid_to"] = _day(history["valid_to"])
    subs = _read(lake_root, "entities", "subscription", ["subscription_id", "account_id"])
    sub_state = history[history["entity_type"] == "subscription"].merge(
        subs[subs["account_id"].notna()], left_on="entity_id", right_on="subscription_id"
    )
    now = sub_state[_in_force(sub_state, as_of)]
    running = now[(now["attribute"] == "status") & now["value"].isin(set(vocab.billed_statuses))]
    mrr = now.loc[now["attribute"] == "mrr", ["subscription_id", "value"]]
    plan = now.loc[now["attribute"] == "plan_tier", ["subscription_id", "value"]]
    paid = (
        running[["account_id", "subscription_id", "value"]]
        .rename(columns={"value": "status"})
        .merge(mrr.rename(columns={"value": "mrr"}), on="subscription_id", how="left")
        .merge(plan.rename(columns={"value": "plan_tier"}), on="subscription_id", how="left")
    )
    paid["mrr"] = pd.to_numeric(paid["mrr"], errors="coerce")
    paid["past_due"] = paid["status"].isin(set(vocab.subscription_statuses["past_due"]))
    paid["rank"] = paid["plan_tier"].map(vocab.plan_order)
    top_plan = (
        paid[paid["rank"].notna()]
        .sort_values("rank", kind="stable")
        .groupby("account_id")["plan_tier"]
        .last()
    )
    mart = paid.groupby("account_id").agg(
        mrr=("mrr", lambda s: s.sum(min_count=1)), is_past_due=("past_due", "any")
    )
    mart["plan_tier"] = top_plan
    mart["as_of"] = as_of.date()

    # Tenure: from the first workspace or the first subscription interval, whichever is first.
    first_sub = sub_state.groupby("account_id")["valid_from"].min()
    signup = pd.concat([per_account["workspace_day"], first_sub], axis=1).min(axis=1)
    mart = mart.join(per_account, how="left")
    mart["signup_day"] = signup.reindex(mart.index)
    mart["tenure_days"] = (as_of - mart["signup_day"]).dt.days
    mart["is_early_stage"] = mart["tenure_days"] <= 90
    mart["days_since_last_event"] = (as_of - mart["last_event_day"]).dt.days
    for col in counts:
        mart[col] = mart[col].fillna(0).astype("int64")

    integrations = ev[ev["event_name"].isin(set(vocab.events_counting("integration")))][
        ["account_id", "day"]
    ]
    integrations = integrations.merge(mart["signup_day"].reset_index(), on="account_id")
    first_30d = (integrations["day"] >= integrations["signup_day"]) & (
        integrations["day"] < integrations["signup_day"] + pd.Timedelta(days=30)
    )
    mart["integration_connects_first_30d"] = (
        integrations[first_30d].groupby("account_id").size().reindex(mart.index, fill_value=0)
    )

    # Usage against the account's own past.
    baseline = mart["baseline_90d"] / 3.0
    mart["usage_vs_baseline"] = ((mart["events_last_30d"] - baseline) / baseline).where(
        baseline > 0
    )
    prev = mart["events_prev_30d"]
    decay = (1 - mart["events_last_30d"] / prev.where(prev > 0)).clip(lower=0)
    mart["usage_decay_score"] = decay
    mart["compliance_gap_change_90d"] = (
        mart["compliance_gap_score"] - mart["compliance_gap_90d_ago"]
    )

    # A leader (admin, champion, billing owner) whose relationship ended in the last 90 days.
    rel = _read(
        lake_root, "entities", "relationship", ["person_id", "account_id", "role", "valid_to"]
    )
    ended = _day(rel["valid_to"])
    left = rel[
        rel["role"].isin(LEADER_ROLES) & (ended <= as_of) & (ended > as_of - pd.Timedelta(days=90))
    ]
    mart["leader_left_90d"] = (
        left.groupby("account_id")["person_id"].nunique().reindex(mart.index, fill_value=0) > 0
    )

    # Industry in force on the as-of day.
    industry = history[
        (history["entity_type"] == "account")
        & (history["attribute"] == "industry")
        & _in_force(history, as_of)
    ]
    by_account = industry.assign(value=industry["value"].str.lower()).groupby("entity_id")
    mart["industry"] = by_account["value"].first().reindex(mart.index).fillna("unknown")

    out = mart.reset_index().sort_values("account_id", kind="stable").reset_index(drop=True)
    for c in CHURN_FEATURES.columns:
        if c.type == "int" and out[c.name].isna().any():
            out[c.name] = out[c.name].astype("Int64")
        elif c.type == "int":
            out[c.name] = out[c.name].astype("int64")
        elif c.type == "float":
            out[c.name] = out[c.name].astype("float64")
        elif c.type == "bool":
            out[c.name] = out[c.name].astype("bool")
    return out[[c.name for c in CHURN_FEATURES.columns]]


# -- the platform's own path ---------------------------------------------------------------------
def _platform_modules() -> dict[str, Any]:
    """The platform's modules (imported once: Dagster comes with them)."""
    from assets.events.build import register_current_events
    from assets.features import INPUTS, asof
    from checks.features import CHURN_FEATURES
    from resources.duckdb import connect
    from resources.lake import LakeResource

    return {
        "register_current_events": register_current_events,
        "INPUTS": INPUTS,
        "asof": asof,
        "contract": CHURN_FEATURES,
        "connect": connect,
        "LakeResource": LakeResource,
    }


def churn_mart_platform(lake_root: str | Path, threads: int | None = None) -> pa.Table:
    """The churn mart exactly as build_features computes it, without the other three tables."""
    m = _platform_modules()
    lake = m["LakeResource"](root=str(Path(lake_root).resolve()))
    with m["connect"](threads) as con:
        m["register_current_events"](con, lake)
        for name, (layer, table) in m["INPUTS"].items():
            con.register(name, lake.dataset(layer, table))
        (last,) = con.sql(
            "SELECT max(event_date) FROM ev WHERE event_date <= current_date"
        ).fetchall()[0]
        if last is None:
            raise ValueError("events/events is empty: build the event days first")
        m["asof"].prepare(con)
        today = m["asof"].features_as_of(con, [last])
    schema = m["contract"].schema
    return today.select(schema.names).cast(schema)


# -- agreement -----------------------------------------------------------------------------------
def _scalar(v: Any) -> Any:
    """A plain Python value: numpy scalars unwrapped, every kind of missing (NaN, NA, NaT) None."""
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        v = v.item()
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return None if type(v).__name__ in ("NAType", "NaTType") else v


def _same(a: Any, b: Any, tol: float) -> bool:
    a, b = _scalar(a), _scalar(b)
    a_null, b_null = a is None, b is None
    if a_null or b_null:
        return a_null and b_null
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b) and isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= max(tol, tol * max(abs(a), abs(b)))
    if isinstance(a, datetime) or isinstance(b, datetime):
        a, b = (x.date() if isinstance(x, datetime) else x for x in (a, b))
    return a == b


def compare(
    pandas_df: pd.DataFrame, platform_table: pa.Table, tol: float = 1e-6, examples: int = 5
) -> dict[str, Any]:
    """Column-by-column agreement of the two marts, rows matched on account_id: numbers within
    `tol` (relative or absolute), null equal only to null. `equal` is the verdict; the rest
    says where they part (up to `examples` account ids per column)."""
    from checks.features import CHURN_FEATURES

    names = CHURN_FEATURES.schema.names
    left = {r["account_id"]: r for r in pandas_df.astype(object).to_dict("records")}
    right = {r["account_id"]: r for r in platform_table.to_pylist()}
    shared = sorted(left.keys() & right.keys())
    missing = {
        "pandas": [n for n in names if n not in pandas_df.columns],
        "platform": [n for n in names if n not in platform_table.column_names],
    }
    columns: dict[str, dict[str, Any]] = {}
    for n in names:
        if n in missing["pandas"] or n in missing["platform"]:
            continue
        bad = [a for a in shared if not _same(left[a][n], right[a][n], tol)]
        columns[n] = {
            "mismatched": len(bad),
            "examples": [
                {"account_id": a, "pandas": left[a][n], "platform": right[a][n]}
                for a in bad[:examples]
            ],
        }
    only_pandas = sorted(left.keys() - right.keys())
    only_platform = sorted(right.keys() - left.keys())
    differing = [n for n, c in columns.items() if c["mismatched"]]
    return {
        "equal": not (differing or only_pandas or only_platform or any(missing.values()))
        and len(left) == pandas_df.shape[0]
        and len(right) == platform_table.num_rows,
        "rows": {"pandas": pandas_df.shape[0], "platform": platform_table.num_rows},
        "only_in_pandas": only_pandas[:examples],
        "only_in_platform": only_platform[:examples],
        "missing_columns": missing,
        "differing_columns": differing,
        "columns": columns,
    }


# -- measuring -----------------------------------------------------------------------------------
def _status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def run(lake_root: str | Path, impl: str, out: str | Path | None = None) -> dict[str, Any]:
    """One implementation in this process: the figures the CLI prints."""
    if impl == "pandas":
        import deltalake  # noqa: F401  (imports are not what is measured)
        import pandas  # noqa: F401

        import checks.features  # noqa: F401

        compute = churn_mart_pandas
    elif impl == "platform":
        _platform_modules()
        compute = churn_mart_platform
    else:
        raise ValueError(f"impl must be one of {IMPLS}, not {impl!r}")
    rss_start = _status_mb("VmRSS")
    wall, cpu = time.perf_counter(), time.process_time()
    result = compute(lake_root)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux
    # ru_maxrss also counts the launcher's memory (Linux carries its high-water mark across
    # fork and exec: a child of a 1.4 GB pytest reports 1.4 GB); VmHWM is this process's own.
    peak = _status_mb("VmHWM") or maxrss
    rows = result.shape[0] if impl == "pandas" else result.num_rows
    if out is not None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from checks.features import CHURN_FEATURES

        table = result
        if impl == "pandas":  # the contract's types, as the platform writes them
            table = pa.Table.from_pandas(result, CHURN_FEATURES.schema, preserve_index=False)
        pq.write_table(table, str(out))
    return {
        "impl": impl,
        "rows": rows,
        "wall_s": round(wall, 4),
        "cpu_s": round(cpu, 4),
        "peak_rss_mb": round(peak, 1),
        "ru_maxrss_mb": round(maxrss, 1),
        "rss_start_mb": round(rss_start or 0.0, 1),
    }


def measure(
    lake_root: str | Path, impl: str, out: str | Path | None = None, timeout: float = 3600
) -> dict[str, Any]:
    """Run one implementation through the CLI in a fresh interpreter and return its figures:
    each gets a process of its own, so peak memory is its own and not the other's. With `out`,
    the mart is also written there (Parquet), after the timed part."""
    extra = ["--out", str(out)] if out else []
    proc = subprocess.run(
        [sys.executable, str(HERE), "--lake", str(lake_root), "--impl", impl, *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"baseline --impl {impl} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--lake", required=True, help="lake root (Delta tables at <root>/<layer>/<table>)"
    )
    p.add_argument("--impl", required=True, choices=IMPLS)
    p.add_argument("--out", help="also write the mart to this Parquet file")
    args = p.parse_args(argv)
    print(json.dumps(run(args.lake, args.impl, args.out)), flush=True)


if __name__ == "__main__":
    main()
