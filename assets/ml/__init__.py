"""Models and scores: CatBoost trained on the point-in-time training sets, registered in MLflow
(champion / challenger), and every eligible account scored by both — the challenger in shadow.

The model assets record the registry version they produced; the score tables keep every
scoring day, each row with the model version behind it and its reasons in words.
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.concurrency import writer_pool
from assets.events.build import register_current_events
from assets.features import INPUTS as FEATURE_INPUTS
from assets.features import _not_upgraded, asof
from assets.gated import SUITE_CHECK, gated_asset, table_key
from assets.metadata import OWNER, published_metadata
from assets.ml import bands, drift
from assets.ml.models import (
    CHALLENGER,
    CHAMPION,
    LoadedModel,
    _client,
    aliases,
    load_model,
    train_and_register,
    training_fingerprint,
    version_trained_on,
)
from assets.ml.reasons import top_reasons
from assets.publish import publish_if_changed
from checks import features as feature_contracts
from checks.contract import TableContract
from checks.gate import validate
from checks.ml import CHURN_SCORES, EXPANSION_SCORES, PREDICTION_OUTCOMES
from resources.duckdb import DuckDBResource
from resources.lake import LakeResource
from resources.mlflow import MlflowResource
from resources.sql import ident, literal

GROUP = "ml"
MODEL_KINDS = {"catboost", "mlflow"}
# Shallow, regularized trees: a few hundred positives per training set at the default size.
PARAMS = {"iterations": 500, "depth": 4, "learning_rate": 0.03, "l2_leaf_reg": 10}
ROLES = (CHAMPION, CHALLENGER)  # the aliases a score table is written from, champion first


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # churn | expansion
    model_name: str
    label: str
    features: tuple[str, ...]
    training: TableContract
    mart: TableContract
    scores: TableContract
    # SQL of the accounts of a feature relation this model scores (the mart's population)
    population: Callable[[str], str]
    population_note: str  # the same, in words

    @property
    def model_key(self) -> AssetKey:
        return AssetKey(["ml", f"{self.kind}_model"])

    @property
    def scores_key(self) -> AssetKey:
        return table_key(self.scores)


SPECS = (
    ModelSpec(
        "churn",
        "customer_lakehouse_churn",
        "churned_90d",
        asof.CHURN_FEATURES,
        feature_contracts.CHURN_TRAINING_SET,
        feature_contracts.CHURN_FEATURES,
        CHURN_SCORES,
        lambda rel: rel,
        "accounts with a subscription running that day",
    ),
    ModelSpec(
        "expansion",
        "customer_lakehouse_expansion",
        "upgraded_90d",
        asof.EXPANSION_FEATURES,
        feature_contracts.EXPANSION_TRAINING_SET,
        feature_contracts.EXPANSION_FEATURES,
        EXPANSION_SCORES,
        _not_upgraded,
        "accounts with a running subscription below the top plan that never upgraded",
    ),
)


def _fingerprint(table: pa.Table) -> str:
    """Content hash of a training set: which rows and values trained the model."""
    import hashlib

    sorted_table = table.sort_by([("as_of", "ascending"), ("account_id", "ascending")])
    digest = hashlib.sha256()
    for batch in sorted_table.to_batches(max_chunksize=50_000):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()[:16]


def build_model_asset(spec: ModelSpec):
    @asset(
        key=spec.model_key,
        pool=writer_pool(spec.model_key),
        description=(
            f"The {spec.kind} model: CatBoost on {spec.training.name}, validated on its latest "
            "as-of dates (never trained on), logged to MLflow and registered as "
            f"`{spec.model_name}`. A new version becomes `champion` only when it beats the "
            "current champion's AUC on the same holdout; otherwise it is the `challenger`. "
            "When the training set and settings are those of the latest version, nothing is "
            "trained or registered."
        ),
        group_name=GROUP,
        deps=[table_key(spec.training)],
        kinds=MODEL_KINDS,
        owners=[OWNER],
        tags={"layer": GROUP, "pii": "false"},
    )
    def _model(
        context: AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource
    ) -> MaterializeResult:
        from assets.ml import lineage
        from assets.ml.models import TrainingSet, version_run

        table = spec.training
        if not lake.exists(table.layer, table.table):
            raise ValueError(f"{table.name} is missing: materialize the features first")
        # One version, read by number: the rows, the fingerprint and the version MLflow records
        # are the same even when the features are republished meanwhile.
        dataset_version = lake.version(table.layer, table.table)
        training = lake.read(table.layer, table.table, version=dataset_version)
        categorical = [c for c in asof.CATEGORICAL if c in spec.features]
        dataset = _fingerprint(training)
        recipe = training_fingerprint(dataset, spec.label, spec.features, categorical, PARAMS)
        uri = mlflow.uri(lake.root)
        tags = lineage.dagster_tags(context, spec.model_key, mlflow)
        # Deciding to train, registering and moving the aliases are one step for the registry: a
        # second run's step let through beside this one would register the same model again
        # and judge it against a champion this one is replacing.
        with lake.exclusive(writer_pool(spec.model_key)):
            same = version_trained_on(spec.model_name, uri, recipe)
            if same is None:
                result = train_and_register(
                    training,
                    label=spec.label,
                    features=list(spec.features),
                    categorical=categorical,
                    model_name=spec.model_name,
                    tracking_uri=uri,
                    artifact_location=mlflow.artifact_root(lake.root),
                    dataset_fingerprint=dataset,
                    dataset_version=dataset_version,
                    params=PARAMS,
                    training_set=TrainingSet(table.name, lake.uri(table.layer, table.table)),
                    run_label=spec.model_key.path[-1],
                    lineage=tags,
                    description=lineage.description(tags, table.name, dataset_version, dataset),
                )
            else:
                champion = aliases(spec.model_name, uri).get(CHAMPION, "")
        if same is not None:
            context.log.info(f"{spec.model_name}: v{same} was trained on this exact set; kept")
            experiment_id, run_id = version_run(spec.model_name, uri, same)
            return MaterializeResult(
                metadata={
                    "model_name": spec.model_name,
                    "model_version": same,
                    "retrained": False,
                    "champion_version": champion,
                    "reason": f"training set and settings unchanged since v{same} ({recipe})",
                    **_evidence_metadata(_band_evidence(spec, training, uri, same)),
                    **lineage.mlflow_links(
                        mlflow, spec.model_name, same, experiment_id, run_id, champion
                    ),
                }
            )
        m = result.metrics
        shap_md = "\n".join(
            ["| feature | mean abs SHAP |", "|---|---|"]
            + [f"| {f} | {v:.4f} |" for f, v in list(result.shap_importance.items())[:15]]
        )
        return MaterializeResult(
            metadata={
                "model_name": spec.model_name,
                "model_version": result.version,
                "retrained": True,
                "champion_version": result.champion_version,
                "promoted": result.promoted,
                "mlflow_run_name": result.run_name,
                **lineage.mlflow_links(
                    mlflow,
                    spec.model_name,
                    result.version,
                    result.experiment_id,
                    result.run_id,
                    result.champion_version,
                ),
                "training_set": MetadataValue.text(f"{table.name} v{dataset_version} ({dataset})"),
                "holdout_dates": MetadataValue.json(result.holdout_dates),
                "auc": MetadataValue.float(round(m["auc"], 4)),
                "pr_auc": MetadataValue.float(round(m["pr_auc"], 4)),
                "brier": MetadataValue.float(round(m["brier"], 4)),
                "base_rate": MetadataValue.float(round(m["base_rate"], 4)),
                "champion_auc_same_holdout": MetadataValue.float(
                    round((result.champion_metrics or {}).get("auc", float("nan")), 4)
                ),
                "lift_by_decile": MetadataValue.json([round(x, 3) for x in result.lift_by_decile]),
                "calibration": MetadataValue.json(result.calibration),
                "shap_importance": MetadataValue.md(shap_md),
                **_evidence_metadata(
                    _band_evidence(spec, training, uri, result.version, result.holdout_dates)
                ),
                **{f"plot_{k}": MetadataValue.path(v) for k, v in result.plots.items()},
            }
        )

    return _model


def _evidence_metadata(evidence: bands.BandEvidence) -> dict:
    return {"band_evidence": MetadataValue.json(json.loads(evidence.to_json()))}


def _band_evidence(
    spec: ModelSpec,
    training: pa.Table,
    uri: str,
    version: str,
    holdout_dates: list[str] | None = None,
) -> bands.BandEvidence:
    """The version's bands and how they did on its holdout, measured and recorded on the
    version when it has none yet. `training` is the set it was trained on; `holdout_dates`
    its held-out as-of dates (read from its training run when not given)."""
    known = bands.recorded(spec.model_name, version, uri)
    if known is not None and known.holdout:
        return known
    if holdout_dates is None:
        holdout_dates = json.loads(training_param(spec.model_name, uri, version, "holdout_dates"))
    held = pa.array([date.fromisoformat(d) for d in holdout_dates], pa.date32())
    rows = training.filter(pc.is_in(training["as_of"], value_set=held))
    rows = rows.filter(pc.is_valid(rows[spec.label]))
    model = load_model(spec.model_name, uri, version)
    y = np.asarray(rows[spec.label].cast(pa.int8()).to_numpy(zero_copy_only=False), dtype=int)
    evidence = bands.measure(model.predict_proba(rows), y, holdout_dates)
    bands.record(spec.model_name, version, uri, evidence)
    return evidence


def training_param(model_name: str, uri: str, version: str, name: str) -> str:
    """A parameter of the training run that produced a registered version."""
    client = _client(uri)
    run_id = client.get_model_version(model_name, str(version)).run_id
    return client.get_run(run_id).data.params[name]


def build_scores_asset(spec: ModelSpec):
    key = spec.scores_key

    @gated_asset(
        spec.scores,
        deps=[table_key(spec.mart), spec.model_key],
        kinds={"delta", "catboost", "great_expectations"},
    )
    def _scores(
        context: AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        uri = mlflow.uri(lake.root)
        # Under the table's lock, from one read of the aliases: each model is loaded by the
        # version number read here, so the rows, their model_version and the metadata name the
        # same versions even when another run's model step moves an alias meanwhile.
        with lake.exclusive(spec.scores.name):
            mart = lake.read(spec.mart.layer, spec.mart.table)
            roles = {r: v for r, v in aliases(spec.model_name, uri).items() if r in ROLES}
            if CHAMPION not in roles:
                raise ValueError(f"no champion registered for {spec.model_name}: train it first")
            if roles.get(CHALLENGER) == roles[CHAMPION]:
                del roles[CHALLENGER]
            models = {r: load_model(spec.model_name, uri, v) for r, v in roles.items()}
            evidence = {r: bands.recorded(spec.model_name, v, uri) for r, v in roles.items()}
            unbanded = [f"v{roles[r]}" for r, e in evidence.items() if e is None]
            if unbanded:
                raise ValueError(
                    f"{spec.model_name} {', '.join(unbanded)}: no band thresholds recorded and "
                    f"no base rate logged: materialize {spec.model_key.to_user_string()}"
                )
            table = _score(spec, mart, models, evidence)
            gate = validate(spec.scores.name, spec.scores.suite(), table)
            yield gate.check_result(key, SUITE_CHECK, lake.data_docs)
            if not gate.passed:
                raise gate.failure(f"{spec.scores.name} ({table.num_rows:,} rows)")
            days = sorted({d.isoformat() for d in table["scored_at"].to_pylist()})
            predicate = " OR ".join(f"scored_at = {literal(d)}" for d in days) or None
            published = lake.publish(
                spec.scores.layer,
                spec.scores.table,
                table,
                mode="overwrite" if predicate else "append",
                predicate=predicate,
                description=spec.scores.description,
                commit_metadata={"dagster_run_id": context.run_id},
            )
        champion = table.filter(pc.equal(table["role"], "champion"))
        per_band = champion.group_by("risk_band").aggregate([("account_id", "count")])
        yield MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/row_count": MetadataValue.int(published.total_rows or 0),
                "delta_version": MetadataValue.int(published.version),
                "scored_at": MetadataValue.text(", ".join(days)),
                "champion_version": roles[CHAMPION],
                "challenger_version": roles.get(CHALLENGER, ""),
                "risk_bands": MetadataValue.json(
                    dict(zip(per_band[0].to_pylist(), per_band[1].to_pylist(), strict=True))
                ),
                "mean_probability": MetadataValue.float(
                    round(float(pc.mean(champion["probability"]).as_py() or 0), 4)
                ),
            },
        )

    return _scores


def _score(
    spec: ModelSpec,
    mart: pa.Table,
    models: dict[str, LoadedModel],
    evidence: dict[str, bands.BandEvidence],
) -> pa.Table:
    """Every account of the mart scored by each model (champion first; the challenger in
    shadow), banded by that version's thresholds, with its reasons in words."""
    now = datetime.now(UTC)
    parts = []
    for role in (r for r in ROLES if r in models):
        model = models[role]
        p = model.predict_proba(mart) if mart.num_rows else np.zeros(0)
        rows = mart.select(model.features).to_pylist()
        reasons = top_reasons(model.shap_values(mart), model.features, rows) if rows else []
        parts.append(
            pa.table(
                {
                    "account_id": mart["account_id"],
                    "scored_at": mart["as_of"],
                    "model_name": pa.array([spec.model_name] * mart.num_rows, pa.string()),
                    "model_version": pa.array([model.version] * mart.num_rows, pa.string()),
                    "role": pa.array([role] * mart.num_rows, pa.string()),
                    "shadow": pa.array([role != CHAMPION] * mart.num_rows, pa.bool_()),
                    "probability": pa.array(np.clip(p, 0, 1), pa.float64()),
                    "risk_band": pa.array(evidence[role].band(p), pa.string()),
                    "reasons": pa.array([json.dumps(r) for r in reasons], pa.string()),
                    "scored_run_at": pa.array([now] * mart.num_rows, pa.timestamp("us", tz="UTC")),
                }
            )
        )
    return pa.concat_tables(parts).cast(spec.scores.schema)


# -- the feedback loop ---------------------------------------------------------------------

OUTCOMES_KEY = table_key(PREDICTION_OUTCOMES)


@gated_asset(
    PREDICTION_OUTCOMES,
    deps=[s.scores_key for s in SPECS]
    + [table_key(s.training) for s in SPECS]
    + [table_key(s.mart) for s in SPECS],
    check_specs=[
        AssetCheckSpec(
            f"{s.kind}_feature_drift",
            asset=OUTCOMES_KEY,
            description=f"PSI per {s.kind} feature, today's scoring population vs the "
            f"same weekday {drift.REFERENCE_WEEKS} weeks earlier (the newest population with "
            f"known outcomes); warns when a PSI is above {drift.PSI_WARN} and beyond "
            "sampling noise.",
        )
        for s in SPECS
    ],
)
def prediction_outcomes(
    context: AssetExecutionContext, lake: LakeResource, duckdb: DuckDBResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Matured scores with their outcomes; realized AUC per scoring day; feature drift."""
    from sklearn.metrics import roc_auc_score

    parts, realized = [], {}
    with duckdb.connect() as con:
        register_current_events(con, lake)
        for name, (layer, table) in FEATURE_INPUTS.items():
            con.register(name, lake.dataset(layer, table))
        last = con.sql(
            "SELECT max(event_date) FROM ev WHERE event_date <= current_date"
        ).fetchall()[0][0]
        asof.prepare(con)  # labels need the subscription states; drift's reference, `daily`
        references = _drift_references(con, lake)
        for spec in SPECS:
            if not lake.exists(spec.scores.layer, spec.scores.table):
                continue
            con.register("scores", lake.dataset(spec.scores.layer, spec.scores.table))
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE matured AS SELECT s.*, s.scored_at AS as_of
                    FROM scores s WHERE s.scored_at + {asof.HORIZON_DAYS} <= DATE {literal(last)}"""
            )
            labels = con.sql(
                asof.labels_sql("SELECT DISTINCT account_id, as_of FROM matured")
            ).to_arrow_table()
            con.register("labels", labels)
            t = con.sql(
                f"""SELECT m.model_name, m.model_version, m.role, m.account_id, m.scored_at,
                        m.probability, l.{ident(spec.label)} AS outcome
                    FROM matured m JOIN labels l USING (account_id, as_of)"""
            ).to_arrow_table()
            parts.append(t)
            for (version, day), rows in _groups(t).items():
                y = np.array([r[1] for r in rows], dtype=int)
                if 0 < y.sum() < len(y):
                    realized[f"{spec.kind} v{version} {day}"] = round(
                        float(roc_auc_score(y, [r[0] for r in rows])), 4
                    )
    table = (pa.concat_tables(parts) if parts else PREDICTION_OUTCOMES.schema.empty_table()).cast(
        PREDICTION_OUTCOMES.schema
    )
    gate = validate(PREDICTION_OUTCOMES.name, PREDICTION_OUTCOMES.suite(), table)
    yield gate.check_result(OUTCOMES_KEY, SUITE_CHECK, lake.data_docs)
    if not gate.passed:
        raise gate.failure(PREDICTION_OUTCOMES.name)
    for spec in SPECS:
        yield drift_check(spec, *references.get(spec.kind, (None, None)))
    published, wrote = publish_if_changed(lake, PREDICTION_OUTCOMES, table, context.run_id)
    yield MaterializeResult(
        asset_key=OUTCOMES_KEY,
        metadata={
            **published_metadata(PREDICTION_OUTCOMES, published, table.schema),
            "changed": wrote,
            "realized_auc": MetadataValue.json(realized),
            "matured_scores": MetadataValue.int(table.num_rows),
        },
    )


def _groups(t: pa.Table) -> dict[tuple[str, str], list[tuple[float, bool]]]:
    out: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for r in t.to_pylist():
        out.setdefault((r["model_version"], r["scored_at"].isoformat()), []).append(
            (r["probability"], r["outcome"])
        )
    return out


def _drift_references(con, lake: LakeResource) -> dict[str, tuple[pa.Table, pa.Table]]:
    """Per model: (reference population, today's mart), from the features as of the reference
    day (call `asof.prepare` first); none when the mart is missing or empty."""
    out = {}
    for spec in SPECS:
        if not lake.exists(spec.mart.layer, spec.mart.table):
            continue
        today = lake.read(spec.mart.layer, spec.mart.table)
        if today.num_rows == 0:
            continue
        day = drift.reference_day(max(today["as_of"].to_pylist()))
        con.register("_drift_reference", asof.features_as_of(con, [day]))
        reference = con.sql(spec.population("SELECT * FROM _drift_reference")).to_arrow_table()
        out[spec.kind] = (reference.select(today.column_names).cast(today.schema), today)
    return out


def drift_check(
    spec: ModelSpec, reference: pa.Table | None, today: pa.Table | None
) -> AssetCheckResult:
    """The `<kind>_feature_drift` check: PSI per feature (categories included), a warning
    naming each feature whose shift is above the threshold and beyond sampling noise."""
    name = f"{spec.kind}_feature_drift"
    if reference is None or today is None or reference.num_rows == 0:
        return AssetCheckResult(
            check_name=name,
            asset_key=OUTCOMES_KEY,
            passed=True,
            metadata={"skipped": "no scoring population or no reference population yet"},
        )
    result = drift.feature_drift(reference, today, spec.features)
    drifted = {f: d.psi for f, d in result.items() if d.drifted}
    return AssetCheckResult(
        check_name=name,
        asset_key=OUTCOMES_KEY,
        passed=not drifted,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"drifted: {', '.join(f'{f} (PSI {v})' for f, v in drifted.items())}"
            if drifted
            else None
        ),
        metadata={
            "psi": MetadataValue.json({f: d.psi for f, d in result.items()}),
            "noise_bound": MetadataValue.json({f: d.noise_bound for f, d in result.items()}),
            "drifted": MetadataValue.json(drifted),
            "threshold": drift.PSI_WARN,
            "scoring_day": MetadataValue.text(str(max(today["as_of"].to_pylist()))),
            "reference_day": MetadataValue.text(str(max(reference["as_of"].to_pylist()))),
            "rows": MetadataValue.json({"reference": reference.num_rows, "today": today.num_rows}),
        },
    )


assets = [
    *(f(spec) for spec in SPECS for f in (build_model_asset, build_scores_asset)),
    prediction_outcomes,
]
