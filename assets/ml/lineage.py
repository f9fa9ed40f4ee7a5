"""What links a model to the Dagster run that trained it, both ways: the tags and description
its MLflow run and registry version carry (Dagster run id, job, asset, partition, fingerprints and
a link to the run's page), and the MLflow links the asset's materialization shows."""

from __future__ import annotations

from dagster import AssetExecutionContext, AssetKey, MetadataValue

from resources.mlflow import MlflowResource

RUN_ID = "dagster.run_id"
RUN_URL = "dagster.run_url"
JOB = "dagster.job"
ASSET_KEY = "dagster.asset_key"
PARTITION = "dagster.partition"
CODE_VERSION = "dagster.code_version"


def dagster_tags(
    context: AssetExecutionContext, key: AssetKey, mlflow: MlflowResource
) -> dict[str, str]:
    """The MLflow tags that say which Dagster run, job and asset (and partition, code version
    when there is one) trained a model, with the run page's address."""
    tags = {
        RUN_ID: context.run_id,
        RUN_URL: mlflow.dagster_run_url(context.run_id),
        JOB: context.job_name,
        ASSET_KEY: key.to_user_string(),
    }
    if context.has_partition_key:
        tags[PARTITION] = context.partition_key
    code_version = context.assets_def.code_versions_by_key.get(key)
    if code_version:
        tags[CODE_VERSION] = code_version
    return tags


def description(tags: dict[str, str], dataset: str, version: int | None, fingerprint: str) -> str:
    """Markdown for the MLflow run and registry version: both UIs render it, link included."""
    where = f", partition `{tags[PARTITION]}`" if PARTITION in tags else ""
    return (
        f"Trained by Dagster run [{tags[RUN_ID][:8]}]({tags[RUN_URL]}) (job `{tags[JOB]}`, "
        f"asset `{tags[ASSET_KEY]}`{where}) on `{dataset}` version {version} "
        f"(fingerprint `{fingerprint}`)."
    )


def mlflow_links(
    mlflow: MlflowResource,
    model_name: str,
    version: str,
    experiment_id: str,
    run_id: str,
    champion_version: str | None,
) -> dict[str, MetadataValue]:
    """Clickable links from the materialization to the MLflow run and registry versions."""
    links = {
        "mlflow_run": MetadataValue.url(mlflow.run_url(experiment_id, run_id)),
        "mlflow_model_version": MetadataValue.url(mlflow.model_version_url(model_name, version)),
    }
    if champion_version:
        links["mlflow_champion_version"] = MetadataValue.url(
            mlflow.model_version_url(model_name, champion_version)
        )
    return links
