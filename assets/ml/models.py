"""Train, evaluate, register and load the account models (CatBoost, tracked in MLflow).

One call trains a candidate on the older as-of dates and judges it on the latest ones (a model
is always used on dates after the ones it learnt from, so a random split would flatter it). Every
candidate becomes a new registry version; it takes the `champion` alias only when it beats the
current champion on the *same* holdout rows, otherwise it is kept as `challenger`. Scoring loads
models back by alias or version with `load_model`, which carries the feature list the model was
trained on, so training and scoring cannot disagree on columns or their encoding.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import catboost
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from catboost import CatBoostClassifier, Pool
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

from resources.lake import is_local

log = logging.getLogger(__name__)

CHAMPION = "champion"
TRAINING_TAG = "training_fingerprint"  # model version tag: see training_fingerprint
CHALLENGER = "challenger"
UNKNOWN_CATEGORY = "unknown"
N_BINS = 10
# Overridable by `params`; seed and threads are fixed so a retrain on the same data is identical.
DEFAULT_PARAMS: dict[str, Any] = {
    "iterations": 400,
    "depth": 5,
    "learning_rate": 0.05,
    "auto_class_weights": None,
    "random_seed": 7,
    "thread_count": 2,
    "verbose": False,
    "allow_writing_files": False,
}
MAX_PARAM_CHARS = 6000  # MLflow's limit on one param value

# The advisory lock key the store's creation holds in a PostgreSQL tracking database.
STORE_LOCK = int.from_bytes(hashlib.sha256(b"customer-lakehouse/mlflow-store").digest()[:7], "big")


@dataclass
class TrainResult:
    model_name: str
    version: str
    champion_version: str
    promoted: bool
    run_id: str
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    plots: dict[str, str]
    shap_importance: dict[str, float]
    lift_by_decile: list[float]
    calibration: list[dict]
    holdout_dates: list[str]
    experiment_id: str
    run_name: str


# -- data ------------------------------------------------------------------------------------
def _frame(table: pa.Table, features: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """The model's input, encoded the one way training and scoring share.

    Categoricals become strings with nulls as "unknown"; everything else becomes float64 with
    nulls as NaN (CatBoost's native missing value), bools as 0/1.
    """
    missing = [f for f in features if f not in table.column_names]
    if missing:
        raise ValueError(f"input lacks feature column(s): {', '.join(missing)}")
    cats = set(categorical)
    cols: dict[str, np.ndarray] = {}
    for name in features:
        col = table.column(name)
        if name in cats:
            if pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type)
            col = pc.fill_null(pc.cast(col, pa.string()), UNKNOWN_CATEGORY)
            cols[name] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)
        else:
            cols[name] = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    return pd.DataFrame(cols, columns=list(features))


def _signature(
    features: Sequence[str], categorical: Sequence[str], example: pd.DataFrame, model: Any
) -> ModelSignature:
    """The input `_frame` passes: every feature, in order, required, string when categorical
    and double otherwise. Inferred from the five example rows instead, a feature null in any of
    them was marked optional, and MLflow then let a frame without that column through."""
    cats = set(categorical)
    inputs = Schema([ColSpec("string" if f in cats else "double", f) for f in features])
    outputs = infer_signature(example, model.predict(example)).outputs
    return ModelSignature(inputs=inputs, outputs=outputs)


def _labels(table: pa.Table, label: str) -> np.ndarray:
    return pc.cast(table.column(label), pa.int8()).to_numpy(zero_copy_only=False).astype(int)


def _split(table: pa.Table, label: str, holdout_dates: int) -> tuple[pa.Table, pa.Table, list]:
    """Latest `holdout_dates` distinct as_of dates are the holdout; training is strictly older."""
    if holdout_dates < 1:
        raise ValueError(f"holdout_dates must be >= 1, got {holdout_dates}")
    table = table.filter(pc.is_valid(table.column(label)))  # unlabelled rows teach nothing
    dates = sorted(pc.unique(table.column("as_of")).drop_null().to_pylist())
    held = dates[-holdout_dates:]
    if not held:
        raise ValueError("no labelled rows: the holdout is empty")
    first = pa.scalar(held[0], table.column("as_of").type)
    train = table.filter(pc.less(table.column("as_of"), first))
    holdout = table.filter(pc.greater_equal(table.column("as_of"), first))
    if train.num_rows == 0:
        raise ValueError(
            f"training part is empty: only {len(dates)} distinct as_of date(s), "
            f"{holdout_dates} reserved for the holdout"
        )
    for part, rows in (("training", train), ("holdout", holdout)):
        classes = np.unique(_labels(rows, label))
        if len(classes) < 2:
            raise ValueError(
                f"{part} part has a single class ({label}={bool(classes[0])} in all "
                f"{rows.num_rows} rows): cannot train or measure AUC"
            )
    return train, holdout, held


# -- evaluation ------------------------------------------------------------------------------
def _evaluate(y: np.ndarray, p: np.ndarray) -> tuple[dict[str, float], list[dict], list[float]]:
    """Holdout metrics, calibration in quantile bins and lift by decile (top decile first)."""
    base = float(y.mean())
    calibration = [
        {
            "mean_predicted": float(p[idx].mean()),
            "observed_rate": float(y[idx].mean()),
            "count": len(idx),
        }
        for idx in np.array_split(np.argsort(p, kind="stable"), N_BINS)
        if len(idx)
    ]
    lift = [
        float(y[idx].mean() / base)
        for idx in np.array_split(np.argsort(-p, kind="stable"), N_BINS)
        if len(idx)
    ]
    metrics = {
        "auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "base_rate": base,
        "lift_top_decile": lift[0],
        "n_holdout": float(len(y)),
    }
    return metrics, calibration, lift


def _shap(model: CatBoostClassifier, pool: Pool, features: Sequence[str]) -> np.ndarray:
    """Per-row contributions in log-odds, without CatBoost's trailing expected-value column."""
    values = model.get_feature_importance(pool, type="ShapValues")
    return np.asarray(values)[:, : len(features)]


def _save(fig: Figure, path: Path) -> str:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return str(path)


def _plots(
    folder: Path,
    y: np.ndarray,
    p: np.ndarray,
    calibration: list[dict],
    importance: dict[str, float],
    title: str,
) -> dict[str, str]:
    """ROC, calibration and SHAP summary PNGs (Agg canvas: no display, no pyplot state)."""
    folder.mkdir(parents=True, exist_ok=True)
    fpr, tpr, _ = roc_curve(y, p)
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title}: ROC")
    ax.legend(loc="lower right")
    plots = {"roc": _save(fig, folder / "roc.png")}

    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    pred = [b["mean_predicted"] for b in calibration]
    obs = [b["observed_rate"] for b in calibration]
    top = max([*pred, *obs, 1e-6])
    ax.plot([0, top], [0, top], "--", color="grey")
    ax.plot(pred, obs, "o-")
    ax.set(xlabel="mean predicted", ylabel="observed rate", title=f"{title}: calibration")
    plots["calibration"] = _save(fig, folder / "calibration.png")

    names = list(importance)[::-1]
    fig = Figure(figsize=(6, max(3.0, 0.3 * len(names) + 1)))
    ax = fig.add_subplot()
    ax.barh(names, [importance[n] for n in names])
    ax.set(xlabel="mean |SHAP| (log-odds)", title=f"{title}: feature impact")
    plots["shap_summary"] = _save(fig, folder / "shap_summary.png")
    return plots


# -- datasets --------------------------------------------------------------------------------
class DeltaTableSource(DeltaDatasetSource):
    """A Delta table by URI and version. MLflow's own source drops version 0 (it tests the
    version for truth), and a table's first version is 0."""

    def to_dict(self) -> dict[Any, Any]:
        return {"path": self.path, "delta_table_version": self.delta_table_version}


@dataclass(frozen=True)
class TrainingSet:
    """Where the training rows were read: the table's name (e.g. features/churn_training_set)
    and its URI; the version read is `dataset_version`."""

    name: str
    uri: str | None = None


def _log_datasets(
    source: TrainingSet,
    version: int | None,
    fingerprint: str,
    parts: Mapping[str, tuple[pa.Table, list[str]]],
    columns: Sequence[str],
    label: str,
) -> None:
    """Each part of the training set as an MLflow dataset input ("training", "evaluation"):
    named after the table, sourced at its URI and version, with the as-of dates it covers. The
    training part's digest is the table's fingerprint; the holdout's adds its dates."""
    where = (
        DeltaTableSource(path=_as_uri(source.uri), delta_table_version=version)
        if source.uri
        else None
    )
    for context, (rows, dates) in parts.items():
        digest = fingerprint
        if context != "training":
            digest = hashlib.sha256(f"{fingerprint}|{context}|{dates}".encode()).hexdigest()[:16]
        dataset = mlflow.data.from_pandas(
            rows.select(list(columns)).to_pandas(),
            source=where,
            targets=label,
            name=source.name,
            digest=digest,
        )
        tags = {"as_of": f"{dates[0]}..{dates[-1]}" if dates else "", "rows": str(rows.num_rows)}
        with warnings.catch_warnings():
            # Logging infers the dataset's schema. It describes the table; MLflow's hint about
            # integer columns and missing values concerns a model's input schema.
            warnings.filterwarnings("ignore", ".*Inferred schema contains integer", UserWarning)
            mlflow.log_input(dataset, context=context, tags=tags)


def _as_uri(location: str) -> str:
    """A local path as a file:// URI; an object-store URI as it is."""
    return Path(location).resolve().as_uri() if is_local(location) else location


def _iso_dates(table: pa.Table) -> list[str]:
    return [d.isoformat() for d in sorted(pc.unique(table.column("as_of")).drop_null().to_pylist())]


# -- registry --------------------------------------------------------------------------------
class LoadedModel:
    """A registered model version with the feature spec it was trained on."""

    def __init__(
        self,
        name: str,
        version: str,
        model: CatBoostClassifier,
        features: Sequence[str],
        categorical: Sequence[str],
    ) -> None:
        self.name = name
        self.version = version
        self.model = model
        self.features = list(features)
        self.categorical = list(categorical)

    def _pool(self, table: pa.Table) -> Pool:
        return Pool(_frame(table, self.features, self.categorical), cat_features=self.categorical)

    def predict_proba(self, table: pa.Table) -> np.ndarray:
        """P(label=1) per row, shape (n,)."""
        return self.model.predict_proba(self._pool(table))[:, 1]

    def shap_values(self, table: pa.Table) -> np.ndarray:
        """Per-row feature contributions in log-odds, shape (n, len(features))."""
        return _shap(self.model, self._pool(table), self.features)

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, version={self.version!r})"


@functools.cache
def _store_ready(tracking_uri: str) -> None:
    """Create the tracking store's tables once, under a lock every process shares. MLflow creates
    them unlocked on first use, so two steps training their first models at once (two pools on
    one SQLite file, or two Celery workers on one PostgreSQL database) failed with "table ...
    already exists" or a duplicate `alembic_version` type."""
    with _init_lock(tracking_uri):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        client.search_experiments(max_results=1)  # the tracking store creates every table
        client.search_registered_models(max_results=1)


@contextmanager
def _init_lock(tracking_uri: str) -> Iterator[None]:
    """An exclusive lock for the store's creation: a file lock beside a SQLite store, an
    advisory lock in a PostgreSQL one (held on its own connection); none for a server URI."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        with open(db.with_name(f"{db.name}.init-lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            yield
    elif tracking_uri.startswith(("postgresql", "postgres://")):
        import sqlalchemy

        engine = sqlalchemy.create_engine(tracking_uri, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as con:
                con.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": STORE_LOCK})
                try:
                    yield
                finally:
                    con.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": STORE_LOCK})
        finally:
            engine.dispose()
    else:
        yield


def _client(tracking_uri: str) -> MlflowClient:
    _store_ready(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def aliases(model_name: str, tracking_uri: str) -> dict[str, str]:
    """Alias -> version of a registered model; {} when the model or its aliases don't exist."""
    try:
        model = _client(tracking_uri).get_registered_model(model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {alias: str(version) for alias, version in model.aliases.items()}


def training_fingerprint(
    dataset_fingerprint: str,
    label: str,
    features: Sequence[str],
    categorical: Sequence[str],
    params: dict | None,
) -> str:
    """What decides the model: the training rows and every setting of the fit."""
    recipe = {
        "dataset": dataset_fingerprint,
        "label": label,
        "features": list(features),
        "categorical": list(categorical),
        "params": {**DEFAULT_PARAMS, **(params or {})},
        "catboost": catboost.__version__,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]


def version_trained_on(model_name: str, tracking_uri: str, fingerprint: str) -> str | None:
    """The latest registered version, if it was trained on exactly this recipe: training again
    would only register an identical model under a new number."""
    try:
        versions = _client(tracking_uri).search_model_versions(f"name = '{model_name}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if not versions:
        return None
    latest = max(versions, key=lambda v: int(v.version))
    return str(latest.version) if latest.tags.get(TRAINING_TAG) == fingerprint else None


def version_run(model_name: str, tracking_uri: str, version: str) -> tuple[str, str]:
    """(experiment id, run id) of the MLflow run that produced a registered version."""
    client = _client(tracking_uri)
    run_id = client.get_model_version(model_name, version).run_id
    return client.get_run(run_id).info.experiment_id, run_id


def run_name(label: str, version: str | None, dataset_fingerprint: str) -> str:
    """`<label> v<version> · <training set fingerprint, short>`: which model, from which rows."""
    named = f"{label} v{version}" if version else label
    return f"{named} · {dataset_fingerprint[:8]}"


def load_model(model_name: str, tracking_uri: str, alias_or_version: str = CHAMPION) -> LoadedModel:
    """Load a registered version by alias or number; the alias is resolved first, so the
    returned `version` is exactly the one whose weights were loaded."""
    ref = str(alias_or_version)
    if ref.isdigit():
        version = ref
    else:
        current = aliases(model_name, tracking_uri)
        if ref not in current:
            raise LookupError(f"model {model_name!r} has no version with alias {ref!r}")
        version = current[ref]
    _store_ready(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version}", dst_path=tmp
        )
        spec = Model.load(local).metadata or {}
        model = mlflow.catboost.load_model(local)
    if "features" not in spec:
        raise ValueError(f"{model_name} v{version} carries no feature spec in its MLmodel")
    return LoadedModel(model_name, version, model, spec["features"], spec.get("categorical", []))


def _experiment_id(model_name: str, tracking_uri: str, artifact_location: str | None) -> str:
    """The model's experiment, created at `artifact_location` (e.g. an object store); with no
    location and a SQLite store, its artifacts sit next to the db."""
    existing = mlflow.get_experiment_by_name(model_name)
    if existing is not None:
        return existing.experiment_id
    location = artifact_location
    if location is None and tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
        location = (db.parent / "artifacts").as_uri()
    return mlflow.create_experiment(model_name, artifact_location=location)


# -- training --------------------------------------------------------------------------------
def train_and_register(
    training: pa.Table,
    *,
    label: str,
    features: Sequence[str],
    categorical: Sequence[str],
    model_name: str,
    tracking_uri: str,
    dataset_fingerprint: str,
    dataset_version: int | None,
    params: dict | None = None,
    holdout_dates: int = 3,
    artifacts_dir: str | None = None,
    artifact_location: str | None = None,
    training_set: TrainingSet | None = None,
    run_label: str | None = None,
    lineage: Mapping[str, str] | None = None,
    description: str | None = None,
) -> TrainResult:
    """Train a candidate, log it as a new registry version and run the champion/challenger rule.

    The candidate takes `champion` when there is none or when its holdout AUC is strictly higher
    than the current champion's on the same holdout rows; otherwise it takes `challenger`.

    The run is named `<run_label> v<version> · <fingerprint>`; its training and holdout rows are
    its dataset inputs (`training_set`). The training set's name, version and fingerprint, and
    `lineage` (tags) and `description` (markdown) saying what started the training, go on both
    the run and the registered version, so the registry leads back to it.
    """
    features, categorical = list(features), list(categorical)
    unknown = sorted(set(categorical) - set(features))
    if unknown:
        raise ValueError(f"categorical column(s) not among the features: {', '.join(unknown)}")
    needed = ["account_id", "as_of", label, *features]
    absent = [c for c in needed if c not in training.column_names]
    if absent:
        raise ValueError(f"training table lacks column(s): {', '.join(absent)}")

    train, holdout, held = _split(training, label, holdout_dates)
    holdout_iso = [d.isoformat() for d in held]
    x_train, y_train = _frame(train, features, categorical), _labels(train, label)
    x_hold, y_hold = _frame(holdout, features, categorical), _labels(holdout, label)

    cb_params = {**DEFAULT_PARAMS, **(params or {})}
    cb_params.pop("cat_features", None)  # always the declared categoricals
    model = CatBoostClassifier(**cb_params, cat_features=categorical)
    model.fit(x_train, y_train)
    hold_pool = Pool(x_hold, cat_features=categorical)
    p_hold = model.predict_proba(hold_pool)[:, 1]
    metrics, calibration, lift = _evaluate(y_hold, p_hold)
    metrics["n_train"] = float(len(y_train))
    mean_abs = np.abs(_shap(model, hold_pool, features)).mean(axis=0)
    importance = dict(
        sorted(
            ((f, float(v)) for f, v in zip(features, mean_abs, strict=True)),
            key=lambda kv: -kv[1],
        )
    )

    # The champion is judged on exactly these holdout rows before anything is logged.
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = _client(tracking_uri)
    previous = aliases(model_name, tracking_uri).get(CHAMPION)
    champion_metrics: dict[str, float] | None = None
    reason = "no champion yet"
    if previous is not None:
        champion = load_model(model_name, tracking_uri, previous)
        lacking = [f for f in champion.features if f not in holdout.column_names]
        if lacking:
            # It could not score today's features either, so the candidate replaces it.
            reason = f"champion v{previous} needs missing column(s): {', '.join(lacking)}"
            log.warning("%s: %s; promoting the candidate", model_name, reason)
        else:
            champion_metrics = _evaluate(y_hold, champion.predict_proba(holdout))[0]
            better = metrics["auc"] > champion_metrics["auc"]
            reason = (
                f"holdout AUC {metrics['auc']:.4f} {'>' if better else '<='} "
                f"champion v{previous} {champion_metrics['auc']:.4f}"
            )
    promoted = champion_metrics is None or metrics["auc"] > champion_metrics["auc"]

    experiment_id = _experiment_id(model_name, tracking_uri, artifact_location)
    spec = {"label": label, "features": features, "categorical": categorical}
    recipe = training_fingerprint(dataset_fingerprint, label, features, categorical, params)
    training_set = training_set or TrainingSet(f"{model_name} training set")
    lineage = {
        **(lineage or {}),
        "dataset": training_set.name,
        "dataset_version": str(dataset_version),
        "dataset_fingerprint": dataset_fingerprint,
        TRAINING_TAG: recipe,
    }
    named = run_label or model_name
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name(named, None, dataset_fingerprint),
        tags=lineage,
        description=description,
    ) as run:
        run_id = run.info.run_id
        _log_datasets(
            training_set,
            dataset_version,
            dataset_fingerprint,
            {"training": (train, _iso_dates(train)), "evaluation": (holdout, holdout_iso)},
            ["account_id", "as_of", label, *features],
            label,
        )
        folder = Path(artifacts_dir or tempfile.mkdtemp(prefix="ml-plots-")) / run_id
        plots = _plots(folder, y_hold, p_hold, calibration, importance, model_name)
        run_params = {
            **{k: str(v) for k, v in cb_params.items()},
            "label": label,
            "n_features": len(features),
            "categorical": json.dumps(categorical),
            "holdout_dates": json.dumps(holdout_iso),
            "dataset_fingerprint": dataset_fingerprint,
            "dataset_version": str(dataset_version),
        }
        if len(json.dumps(features)) <= MAX_PARAM_CHARS:
            run_params["features"] = json.dumps(features)
        mlflow.log_params(run_params)
        mlflow.log_metrics(metrics)
        if champion_metrics is not None:
            mlflow.log_metric("champion_auc", champion_metrics["auc"])
        mlflow.set_tags(
            {
                "model_name": model_name,
                "promoted": str(promoted).lower(),
                "previous_champion_version": previous or "none",
                "champion_holdout_auc": (
                    repr(champion_metrics["auc"]) if champion_metrics else "none"
                ),
                "promotion_reason": reason,
            }
        )
        for path in plots.values():
            mlflow.log_artifact(path, artifact_path="plots")
        mlflow.log_dict(spec, "model_spec.json")
        mlflow.log_dict(
            {"calibration": calibration, "lift_by_decile": lift, "shap_importance": importance},
            "evaluation.json",
        )
        example = x_hold.head(5)
        info = mlflow.catboost.log_model(
            model,
            name="model",
            signature=_signature(features, categorical, example, model),
            input_example=example,
            registered_model_name=model_name,
            metadata=spec,
            # Explicit requirements: no subprocess import capture, no network.
            pip_requirements=[
                f"mlflow=={mlflow.__version__}",
                f"catboost=={catboost.__version__}",
                f"pandas=={pd.__version__}",
                f"numpy=={np.__version__}",
            ],
        )
        version = str(info.registered_model_version)
        champion_version = version if promoted else str(previous)
        mlflow.set_tag("champion_version", champion_version)
        name = run_name(named, version, dataset_fingerprint)
        client.update_run(run_id, name=name)

    client.set_registered_model_alias(model_name, CHAMPION if promoted else CHALLENGER, version)
    if promoted and CHALLENGER in aliases(model_name, tracking_uri):
        # A pending challenger lost to the old champion, so it is behind the new one too.
        client.delete_registered_model_alias(model_name, CHALLENGER)
    client.set_model_version_tag(model_name, version, "holdout_auc", f"{metrics['auc']:.6f}")
    for key, value in lineage.items():
        client.set_model_version_tag(model_name, version, key, value)
    if description:
        client.update_model_version(model_name, version, description=description)

    return TrainResult(
        model_name=model_name,
        version=version,
        champion_version=champion_version,
        promoted=promoted,
        run_id=run_id,
        metrics=metrics,
        champion_metrics=champion_metrics,
        plots=plots,
        shap_importance=importance,
        lift_by_decile=lift,
        calibration=calibration,
        holdout_dates=holdout_iso,
        experiment_id=experiment_id,
        run_name=name,
    )
