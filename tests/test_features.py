"""Point-in-time features: nothing after the as-of day is read, and labels come only from the
window after it."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from assets.events.build import register_current_events
from assets.features import asof
from conftest import Lakehouse, load_definitions

ACCOUNTS, DAYS, SEED = 200, 300, 3
END = date(2026, 10, 31)
AS_OF = END - timedelta(days=100)


@pytest.fixture(scope="module")
def house(tmp_path_factory):
    from assets.events.mapping import load_mapping
    from assets.events.runs import first_day, pending_ranges
    from sample_company.generate import generate

    root = tmp_path_factory.mktemp("features")
    generate(root / "landing", accounts=ACCOUNTS, days=DAYS, seed=SEED, end_date=END)
    h = Lakehouse(root / "lake", root / "landing", load_definitions())
    assert h.materialize().success
    for first, last in pending_ranges(
        h.lake, h.resources["pii"], load_mapping(), first_day(h.defs)
    ):
        assert h.materialize_days(first, last).success
    return h


def _inputs(house: Lakehouse) -> dict[str, pa.Table]:
    con = duckdb.connect()
    register_current_events(con, house.lake)
    return {
        "ev": con.sql("SELECT * FROM ev").to_arrow_table(),
        "history": house.lake.read("entities", "attribute_history"),
        "subscription": house.lake.read("entities", "subscription"),
        "relationship": house.lake.read("entities", "relationship"),
    }


def _until(t: pa.Table, day: date, start: str, end: str | None = None) -> pa.Table:
    """The table as it stood at the end of `day`: later rows gone, later ends not yet known."""
    cut = pa.scalar(day, pa.date32())
    kept = t.filter(pc.less_equal(pc.cast(t[start], pa.date32()), cut))
    if end is None:
        return kept
    open_then = pc.greater(pc.cast(kept[end], pa.date32()), cut)
    ends = pc.if_else(open_then, pa.scalar(None, kept[end].type), kept[end])
    return kept.set_column(kept.schema.get_field_index(end), end, ends)


def _assert_same(a: pa.Table, b: pa.Table) -> None:
    """Equal row for row; floats up to summation order (DuckDB sums in parallel)."""
    assert a.schema == b.schema and a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a[name], b[name]
        if pa.types.is_floating(x.type):
            assert x.is_null().equals(y.is_null()), name
            xs, ys = x.drop_null().to_pylist(), y.drop_null().to_pylist()
            assert xs == pytest.approx(ys, rel=1e-9, abs=1e-12), name
        else:
            assert x.equals(y), name


def _run(inputs: dict[str, pa.Table], days: list[date]) -> tuple[pa.Table, pa.Table]:
    con = duckdb.connect()
    for name, t in inputs.items():
        con.register(name, t)
    asof.prepare(con)
    feats = asof.features_as_of(con, days)
    con.register("f", feats)
    labels = con.sql(asof.labels_sql("SELECT * FROM f")).to_arrow_table()
    key = [("account_id", "ascending"), ("as_of", "ascending")]
    return feats.sort_by(key), labels.sort_by(key)


def test_features_on_full_history_equal_features_on_history_cut_at_the_date(house):
    full = _inputs(house)
    cut = {
        "ev": _until(full["ev"], AS_OF, "event_date"),
        "history": _until(full["history"], AS_OF, "valid_from", "valid_to"),
        "subscription": full["subscription"],  # subscription -> account: no time in it
        "relationship": _until(full["relationship"], AS_OF, "valid_from", "valid_to"),
    }
    assert cut["ev"].num_rows < full["ev"].num_rows  # the cut removed the future
    seen, _ = _run(full, [AS_OF])
    blind, _ = _run(cut, [AS_OF])
    assert seen.num_rows > 10
    _assert_same(seen, blind)


def test_labels_read_only_the_window_after_the_date(house):
    full = _inputs(house)
    days = [AS_OF - timedelta(days=30 * k) for k in range(3)]
    _, labels = _run(full, days)
    positives = sum(
        pc.sum(labels[c].cast(pa.int64())).as_py() for c in ("churned_90d", "upgraded_90d")
    )
    assert positives >= 1  # the windows do hold outcomes
    # the future past the 90-day window changes no label
    horizon = AS_OF + timedelta(days=asof.HORIZON_DAYS)  # the latest date's window end
    trimmed = {
        **full,
        "ev": _until(full["ev"], horizon, "event_date"),
        "history": _until(full["history"], horizon, "valid_from", "valid_to"),
    }
    _assert_same(_run(trimmed, days)[1], labels)
    # and no event on or before a date is a label: dropping those before the earliest date
    # changes no upgrade label
    ev = full["ev"]
    after = ev.filter(pc.greater(ev["event_date"], pa.scalar(min(days), pa.date32())))
    con = duckdb.connect()
    con.register("ev", after)
    for name in ("history", "subscription", "relationship"):
        con.register(name, full[name])
    asof.prepare(con)
    con.register("f", labels.select(["account_id", "as_of"]))
    relabelled = con.sql(asof.labels_sql("SELECT * FROM f")).to_arrow_table()
    relabelled = relabelled.sort_by([("account_id", "ascending"), ("as_of", "ascending")])
    assert relabelled["upgraded_90d"].equals(labels["upgraded_90d"])


def test_training_dates_leave_the_label_window_inside_the_data():
    from assets.features import training_dates

    days = training_dates(date(2025, 1, 1), END)
    assert days[0] == END - timedelta(days=asof.HORIZON_DAYS)
    assert all(d + timedelta(days=asof.HORIZON_DAYS) <= END for d in days)
    assert days == sorted(days, reverse=True) and days[-1] >= date(2025, 1, 1)


def test_feature_marts_and_training_sets_build_and_pass_their_gates(house):
    from conftest import check_evaluations

    result = house.materialize(
        "features/churn_features",
        "features/expansion_features",
        "features/churn_training_set",
        "features/expansion_training_set",
    )
    assert result.success
    assert all(g.passed for k, g in check_evaluations(result).items() if k.startswith("features"))
    mart = house.lake.read("features", "churn_features")
    training = house.lake.read("features", "churn_training_set")
    assert len(set(mart["as_of"].to_pylist())) == 1
    # every training row's label window lies inside the data
    last = max(
        house.lake.read("events", "events", columns=["event_date"])["event_date"].to_pylist()
    )
    assert max(training["as_of"].to_pylist()) + timedelta(days=asof.HORIZON_DAYS) <= last


def test_models_register_score_with_their_version_and_reload_to_the_same_scores(house):
    from assets.ml import SPECS
    from assets.ml.models import aliases, load_model
    from conftest import check_evaluations

    models = [f"ml/{s.kind}_model" for s in SPECS]
    scores = [f"ml/{s.kind}_scores" for s in SPECS]
    marts = [f"features/{t}" for t in ("churn_features", "expansion_features")]
    sets = [f"features/{t}" for t in ("churn_training_set", "expansion_training_set")]
    result = house.materialize(*marts, *sets, *models, *scores)
    assert result.success, [str(e.event_specific_data) for e in result.all_events if e.is_failure]
    assert all(check_evaluations(result)[s].passed for s in scores)
    uri = house.resources["mlflow"].uri(str(house.lake_root))
    spec = SPECS[0]
    champion = aliases(spec.model_name, uri)["champion"]
    table = house.lake.read("ml", "churn_scores")
    assert set(table["model_version"].to_pylist()) == {champion}
    assert set(table["role"].to_pylist()) == {"champion"} and not any(table["shadow"].to_pylist())
    # the registered champion, reloaded from the registry, reproduces the published scores
    mart = house.lake.read("features", "churn_features").sort_by("account_id")
    published = table.sort_by("account_id")
    reloaded = load_model(spec.model_name, uri, "champion").predict_proba(mart)
    assert published["account_id"].equals(mart["account_id"])
    assert reloaded.tolist() == pytest.approx(published["probability"].to_pylist(), rel=1e-9)
    # the same training set and settings again: nothing is trained or registered, the
    # champion stays and scores alone (challengers are covered in test_models.py)
    again = house.materialize(models[0], scores[0])
    assert again.success
    meta = again.asset_materializations_for_node(models[0].replace("/", "__"))[0].metadata
    assert meta["retrained"].value is False and meta["model_version"].value == champion
    assert aliases(spec.model_name, uri) == {"champion": champion}
    rescored = house.lake.read("ml", "churn_scores")
    assert set(rescored["model_version"].to_pylist()) == {champion}
    assert not any(rescored["shadow"].to_pylist())


def test_prediction_outcomes_join_matured_scores_to_what_happened(house):
    """Scores of a past day (here: the champion run over that day's training rows, as a daily
    scoring run then would have) meet the outcome of the 90 days after them."""
    import json

    from assets.ml import SPECS
    from assets.ml.models import load_model
    from checks.ml import CHURN_SCORES

    spec = SPECS[0]
    uri = house.resources["mlflow"].uri(str(house.lake_root))
    training = house.lake.read("features", "churn_training_set")
    day = min(training["as_of"].to_pylist())
    past = training.filter(pc.equal(training["as_of"], pa.scalar(day, pa.date32())))
    model = load_model(spec.model_name, uri, "champion")
    p = model.predict_proba(past)
    n = past.num_rows
    scores = pa.table(
        {
            "account_id": past["account_id"],
            "scored_at": past["as_of"],
            "model_name": [spec.model_name] * n,
            "model_version": [model.version] * n,
            "role": ["champion"] * n,
            "shadow": [False] * n,
            "probability": p,
            "risk_band": ["low"] * n,
            "reasons": [json.dumps([])] * n,
            "scored_run_at": pa.array([None] * n, pa.timestamp("us", tz="UTC")).fill_null(0),
        }
    ).cast(CHURN_SCORES.schema)
    house.lake.publish("ml", "churn_scores", scores, mode="append")
    result = house.materialize("ml/prediction_outcomes")
    assert result.success
    checks = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks["gx_suite"].passed
    outcomes = house.lake.read("ml", "prediction_outcomes")
    matured = outcomes.filter(pc.equal(outcomes["scored_at"], pa.scalar(day, pa.date32())))
    assert matured.num_rows == n
    # the outcome is the label the training set holds for that account and day
    label = dict(zip(past["account_id"].to_pylist(), past["churned_90d"].to_pylist(), strict=True))
    got = dict(zip(matured["account_id"].to_pylist(), matured["outcome"].to_pylist(), strict=True))
    assert got == label
    # today's scores have no outcome yet
    today = house.lake.read("features", "churn_features")["as_of"][0]
    assert not pc.any(pc.equal(outcomes["scored_at"], today)).as_py()
    # feature drift: a PSI per feature, a warning (never a blocked run) past 0.2 and noise
    drift = checks["churn_feature_drift"]
    psi, bound = drift.metadata["psi"].value, drift.metadata["noise_bound"].value
    assert set(psi) == set(spec.features)
    drifted = {f for f in psi if psi[f] > max(0.2, bound[f])}
    assert set(drift.metadata["drifted"].value) == drifted and drift.passed == (not drifted)
    assert drift.severity.value == "WARN"


def _consented_crm_ids(house: Lakehouse) -> set[str]:
    """CRM ids of the accounts with a person whose latest CRM-sync record (by recorded_at)
    grants it and none whose latest revokes it, read from raw consent records; a person's
    accounts are those they hold a current role at (entities/relationship)."""
    lake = house.lake
    links = lake.read("entities", "identity_links").to_pylist()
    person_of = {
        r["record_key"].split(":", 1)[1]: r["canonical_id"]
        for r in links
        if r["entity_type"] == "person" and r["record_key"].startswith("consent/records:")
    }
    latest: dict[str, tuple] = {}
    for r in lake.read("raw", "consent_records").to_pylist():
        person = person_of.get(r["record_id"])
        if r["scope"] != "crm_sync" or not person:
            continue
        if person not in latest or r["recorded_at"] > latest[person][0]:
            latest[person] = (r["recorded_at"], r["status"])
    accounts_of: dict[str, set[str]] = {}
    for r in lake.read("entities", "relationship").to_pylist():
        if r["is_current"] and r["account_id"]:
            accounts_of.setdefault(r["person_id"], set()).add(r["account_id"])
    answers: dict[str, set[str]] = {}
    for person, (_, status) in latest.items():
        for account in accounts_of.get(person, ()):
            answers.setdefault(account, set()).add(status)
    accounts = lake.read("entities", "account", columns=["account_id", "primary_crm_account_id"])
    crm_of = dict(zip(*(accounts[c].to_pylist() for c in accounts.column_names), strict=True))
    return {
        crm_of[a]
        for a, statuses in answers.items()
        if "granted" in statuses and "revoked" not in statuses and crm_of.get(a)
    }


def test_the_crm_sync_end_to_end_sends_once_and_only_consented_records(house):
    from resources.destinations import SQLiteDestination

    assets = [
        "events/account_lifecycle",
        "c360/customer_360_accounts",
        "c360/customer_360_people",
        "reverse_etl/crm_account_updates",
        "reverse_etl/sync_audit",
        "reverse_etl/review_queue",
        "reverse_etl/sync_state",
    ]
    first = house.materialize(*assets)
    assert first.success
    crm = SQLiteDestination(house.lake_root / "crm" / "crm.db")
    updates = house.lake.read("reverse_etl", "crm_account_updates").to_pylist()
    held = crm.rows()
    # consent from the raw records, not from the pipeline's consent_crm_sync column; a
    # consented account below the confidence threshold waits in the review queue instead
    consented = _consented_crm_ids(house)
    unsure = {u["crm_account_id"] for u in updates if u["action_confidence"] < 0.5}
    assert held and set(held) == consented - unsure
    # every synced row carries the champion's version
    from assets.ml import SPECS
    from assets.ml.models import aliases

    uri = house.resources["mlflow"].uri(str(house.lake_root))
    champion = aliases(SPECS[0].model_name, uri)["champion"]
    assert {r["churn_model_version"] for r in held.values()} <= {champion, None}
    # a second sync sends nothing and, nothing having changed, audits nothing new
    audited = house.lake.read("reverse_etl", "sync_audit")
    again = house.materialize(*assets[-3:])
    assert again.success
    audit = house.lake.read("reverse_etl", "sync_audit")
    assert audit.num_rows == audited.num_rows
    assert len(set(audit["sync_id"].to_pylist())) == 1  # every send and hold-back: one sync
    assert crm.rows() == held


def test_the_schedules_target_the_refresh_and_the_retrain_and_their_runs_succeed(house):
    from dagster import DagsterInstance

    from assets.ml import SPECS
    from assets.ml.models import aliases

    defs = house.defs
    daily = defs.resolve_job_def("daily_refresh")
    weekly = defs.resolve_job_def("weekly_retrain")
    daily_keys = {k.to_user_string() for k in daily.asset_layer.selected_asset_keys}
    weekly_keys = {k.to_user_string() for k in weekly.asset_layer.selected_asset_keys}
    assert weekly_keys == {"ml/churn_model", "ml/expansion_model"}
    assert {
        "features/churn_features",
        "ml/churn_scores",
        "reverse_etl/sync_audit",
        "c360/customer_360_accounts",
        "ml/prediction_outcomes",
    } <= daily_keys
    assert not daily_keys & weekly_keys  # scoring never retrains
    assert not any(k.startswith(("raw/", "landing/", "entities/")) for k in daily_keys)
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["daily_refresh_schedule"].cron_schedule == "0 6 * * *"
    assert schedules["weekly_retrain_schedule"].cron_schedule == "0 4 * * 1"
    # both jobs' selections run on this lake
    uri = house.resources["mlflow"].uri(str(house.lake_root))
    before = {s.model_name: aliases(s.model_name, uri) for s in SPECS}
    instance = DagsterInstance.ephemeral()
    assert house.materialize(*sorted(weekly_keys), instance=instance).success
    assert house.materialize(*sorted(daily_keys), instance=instance).success
    for s in SPECS:  # a retrain on unchanged data never replaces the champion
        assert aliases(s.model_name, uri)["champion"] == before[s.model_name]["champion"]
