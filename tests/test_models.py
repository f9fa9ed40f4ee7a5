"""CatBoost training, champion/challenger promotion and registry round trips (assets/ml/models.py).

Synthetic accounts over 12 monthly as_of dates: `usage` drives the label, `hint` is a noisy copy
of it (a weak but real signal), the rest is noise. Small iteration counts keep the file fast.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from catboost import CatBoostClassifier
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from assets.ml.models import (
    DEFAULT_PARAMS,
    LoadedModel,
    TrainResult,
    aliases,
    load_model,
    train_and_register,
)

LABEL = "churned"
FEATURES = ["usage", "hint", "noise", "flag", "plan_tier"]
CATEGORICAL = ["plan_tier"]
PARAMS = {"iterations": 60}


def accounts(months: int = 12, n: int = 300, seed: int = 1) -> pa.Table:
    """`months` monthly snapshots of `n` accounts; nulls in a numeric and the categorical."""
    rng = np.random.default_rng(seed)
    rows = months * n
    usage = rng.normal(size=rows)
    label = rng.random(rows) < 1 / (1 + np.exp(-(2.0 * usage - 0.5)))
    noise = rng.normal(size=rows)
    tier = rng.choice(np.array(["starter", "growth", "enterprise", None], dtype=object), rows)
    return pa.table(
        {
            "account_id": [f"a{i:04d}" for i in np.tile(np.arange(n), months)],
            "as_of": pa.array(
                np.repeat([date(2024 + m // 12, m % 12 + 1, 1) for m in range(months)], n),
                pa.date32(),
            ),
            LABEL: label,
            "usage": usage,
            "hint": usage + rng.normal(scale=2.5, size=rows),
            "noise": pa.array(np.where(rng.random(rows) < 0.1, np.nan, noise), from_pandas=True),
            "flag": rng.random(rows) < 0.5,
            "plan_tier": pa.array(tier.tolist(), pa.string()),
        }
    )


def holdout(table: pa.Table, dates: list[str]) -> pa.Table:
    wanted = pa.array([date.fromisoformat(d) for d in dates], pa.date32())
    return table.filter(pc.is_in(table.column("as_of"), value_set=wanted))


def train(table: pa.Table, model_name: str, uri: str, features=FEATURES, **kw) -> TrainResult:
    return train_and_register(
        table,
        label=LABEL,
        features=features,
        categorical=[c for c in CATEGORICAL if c in features],
        model_name=model_name,
        tracking_uri=uri,
        dataset_fingerprint="fp-test",
        dataset_version=7,
        params=PARAMS,
        **kw,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("ml")
    (root / "mlflow").mkdir()
    return f"sqlite:///{root}/mlflow/mlflow.db", root


@pytest.fixture(scope="module")
def first(store) -> TrainResult:
    uri, root = store
    return train(accounts(), "churn", uri, artifacts_dir=str(root / "plots"))


def test_first_model_becomes_champion(store, first):
    uri, root = store
    assert (first.version, first.champion_version, first.promoted) == ("1", "1", True)
    assert first.champion_metrics is None
    assert aliases("churn", uri) == {"champion": "1"}
    assert first.holdout_dates == ["2024-10-01", "2024-11-01", "2024-12-01"]

    m = first.metrics
    assert set(m) == {
        "auc",
        "pr_auc",
        "brier",
        "base_rate",
        "lift_top_decile",
        "n_train",
        "n_holdout",
    }
    assert m["auc"] > 0.75
    assert (m["n_train"], m["n_holdout"]) == (2700, 900)
    assert 0 < m["brier"] < m["base_rate"] * (1 - m["base_rate"])  # beats the constant guess
    assert len(first.lift_by_decile) == 10 and first.lift_by_decile[0] == m["lift_top_decile"]
    assert first.lift_by_decile[0] > 1.5 > first.lift_by_decile[-1]
    assert len(first.calibration) == 10
    assert sum(b["count"] for b in first.calibration) == 900
    assert next(iter(first.shap_importance)) == "usage"
    assert list(first.shap_importance.values()) == sorted(first.shap_importance.values())[::-1]

    assert set(first.plots) == {"roc", "calibration", "shap_summary"}
    for path in first.plots.values():
        assert Path(path).is_file() and Path(path).read_bytes()[:4] == b"\x89PNG"
        assert Path(path).is_relative_to(root / "plots")

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(first.run_id)
    assert run.data.tags["promoted"] == "true" and run.data.tags["champion_version"] == "1"
    assert run.data.params["dataset_fingerprint"] == "fp-test"
    assert run.data.params["dataset_version"] == "7"
    assert run.data.metrics["auc"] == pytest.approx(m["auc"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "churn"
    assert experiment.artifact_location == (root / "mlflow" / "artifacts").as_uri()
    logged = {a.path for a in client.list_artifacts(first.run_id, "plots")}
    assert logged == {"plots/roc.png", "plots/calibration.png", "plots/shap_summary.png"}


def test_reload_reproduces_the_trained_model(store, first):
    uri, _ = store
    table = accounts()
    rows = holdout(table, first.holdout_dates)
    champion = load_model("churn", uri)
    by_version = load_model("churn", uri, "1")
    assert isinstance(champion, LoadedModel)
    assert (champion.name, champion.version, by_version.version) == ("churn", "1", "1")
    assert (champion.features, champion.categorical) == (FEATURES, CATEGORICAL)

    # The same CatBoost fit, done here on the same encoding, gives the probabilities training saw.
    def frame(t: pa.Table) -> pd.DataFrame:
        df = t.select(FEATURES).to_pandas()
        df["flag"] = df["flag"].astype(float)
        df["plan_tier"] = df["plan_tier"].fillna("unknown").astype(object)
        return df

    train_rows = table.filter(pc.less(table.column("as_of"), pa.scalar(date(2024, 10, 1))))
    refit = CatBoostClassifier(**{**DEFAULT_PARAMS, **PARAMS}, cat_features=CATEGORICAL)
    refit.fit(frame(train_rows), train_rows.column(LABEL).to_numpy().astype(int))
    expected = refit.predict_proba(frame(rows))[:, 1]

    p = champion.predict_proba(rows)
    assert p.shape == (rows.num_rows,)
    np.testing.assert_allclose(p, expected, rtol=1e-9)
    np.testing.assert_allclose(by_version.predict_proba(rows), expected, rtol=1e-9)
    y = rows.column(LABEL).to_numpy().astype(int)
    assert roc_auc_score(y, p) == pytest.approx(first.metrics["auc"], rel=1e-12)

    shap = champion.shap_values(rows)
    assert shap.shape == (rows.num_rows, len(FEATURES))
    np.testing.assert_allclose(
        np.abs(shap).mean(axis=0), [first.shap_importance[f] for f in FEATURES], rtol=1e-9
    )


def test_worse_model_stays_challenger(store, first):
    uri, _ = store
    table = accounts(months=13)  # a month later: the holdout moves on by one date
    second = train(table, "churn", uri, features=["noise", "flag", "plan_tier"])
    assert (second.version, second.champion_version, second.promoted) == ("2", "1", False)
    assert aliases("churn", uri) == {"champion": "1", "challenger": "2"}
    assert second.holdout_dates == ["2024-11-01", "2024-12-01", "2025-01-01"]

    rows = holdout(table, second.holdout_dates)
    champion_auc = roc_auc_score(
        rows.column(LABEL).to_numpy().astype(int), load_model("churn", uri).predict_proba(rows)
    )
    assert second.champion_metrics is not None
    assert second.champion_metrics["auc"] == pytest.approx(champion_auc, rel=1e-12)
    assert second.metrics["auc"] < second.champion_metrics["auc"]
    assert load_model("churn", uri, "challenger").version == "2"

    tags = MlflowClient(tracking_uri=uri).get_run(second.run_id).data.tags
    assert (tags["promoted"], tags["champion_version"]) == ("false", "1")
    assert float(tags["champion_holdout_auc"]) == pytest.approx(champion_auc, abs=1e-6)


def test_better_model_replaces_a_worse_champion(store):
    uri, _ = store
    table = accounts(seed=2)
    weak = train(table, "expansion", uri, features=["hint", "noise", "plan_tier"])
    assert (weak.version, weak.promoted) == ("1", True)
    weaker = train(table, "expansion", uri, features=["noise", "flag"])
    assert (weaker.version, weaker.promoted, weaker.champion_version) == ("2", False, "1")
    strong = train(table, "expansion", uri)
    assert (strong.version, strong.promoted, strong.champion_version) == ("3", True, "3")
    assert strong.champion_metrics is not None
    assert strong.metrics["auc"] > strong.champion_metrics["auc"]
    assert strong.champion_metrics["auc"] == pytest.approx(weak.metrics["auc"], rel=1e-12)
    # The pending challenger lost to the old champion, so it does not outlive the promotion.
    assert aliases("expansion", uri) == {"champion": "3"}
    assert load_model("expansion", uri).version == "3"


def test_unknown_model_or_alias(store):
    uri, _ = store
    assert aliases("nope", uri) == {}
    with pytest.raises(LookupError, match="no version with alias 'champion'"):
        load_model("nope", uri)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.slice(0, 0), "holdout is empty"),
        (
            lambda t: t.filter(pc.less(t.column("as_of"), date(2024, 3, 1))),
            "training part is empty",
        ),
        (
            lambda t: t.set_column(
                2,
                LABEL,
                pc.if_else(pc.less(t.column("as_of"), date(2024, 10, 1)), False, t.column(LABEL)),
            ),
            "training part has a single class",
        ),
        (
            lambda t: t.set_column(
                2,
                LABEL,
                pc.if_else(pc.less(t.column("as_of"), date(2024, 10, 1)), t.column(LABEL), True),
            ),
            "holdout part has a single class",
        ),
    ],
)
def test_unusable_splits_fail_clearly(store, change, message):
    uri, _ = store
    with pytest.raises(ValueError, match=message):
        train(change(accounts()), "broken", uri)
    assert aliases("broken", uri) == {}
