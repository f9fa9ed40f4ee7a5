"""MLflow and Dagster lead to each other: the model asset's MLflow run and registry version name
the Dagster run that trained them (and link to its page), carry the training set as a dataset
input, and the materialization links to both in the MLflow UI.

The churn model is trained from the session lake's training set into an MLflow store of this
module's own, so the champion there is the one these runs made; the lake is only read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, UrlMetadataValue, materialize
from mlflow import MlflowClient

from assets.ml import SPECS
from assets.ml.models import aliases
from resources.mlflow import DAGSTER_URL, MLFLOW_UI_URL, MlflowResource

SPEC = next(s for s in SPECS if s.kind == "churn")
DAGSTER = "http://dagster.example:3000"
MLFLOW_UI = "http://mlflow.example:5000"


@pytest.fixture(scope="module")
def linked(full_lake, tmp_path_factory):
    """Two runs of the churn model asset: the first trains v1, the second finds the training
    set unchanged and keeps it. The UI addresses are set only now: they are read at run time."""
    root = tmp_path_factory.mktemp("mlflow_link")
    store = MlflowResource(
        tracking_uri=f"sqlite:///{root}/mlflow.db", artifacts=(root / "artifacts").as_uri()
    )
    table = SPEC.training
    instance = DagsterInstance.ephemeral()
    version = full_lake.lake.version(table.layer, table.table)
    runs = []
    with pytest.MonkeyPatch.context() as env:
        env.setenv(DAGSTER_URL, DAGSTER + "/")
        env.setenv(MLFLOW_UI_URL, MLFLOW_UI)
        for _ in range(2):
            result = materialize(
                list(full_lake.defs.assets),
                selection=[SPEC.model_key],
                resources={**full_lake.resources, "mlflow": store},
                instance=instance,
                raise_on_error=False,
            )
            assert result.success
            runs.append(result)
    return {
        "uri": store.tracking_uri,
        "runs": runs,
        "instance": instance,
        "version": version,
        "table_uri": Path(full_lake.lake.uri(table.layer, table.table)).as_uri(),
    }


def _metadata(linked, result) -> dict:
    (event,) = [
        e
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key == SPEC.model_key
    ]
    return event.event_specific_data.materialization.metadata


def _champion_run(linked):
    client = MlflowClient(tracking_uri=linked["uri"], registry_uri=linked["uri"])
    champion = aliases(SPEC.model_name, linked["uri"])["champion"]
    version = client.get_model_version(SPEC.model_name, champion)
    return version, client.get_run(version.run_id)


def test_champion_run_names_the_dagster_run_that_trained_it(linked):
    version, run = _champion_run(linked)
    trained = linked["runs"][0]
    dagster_run = linked["instance"].get_run_by_id(trained.run_id)
    tags = run.data.tags
    assert tags["dagster.run_id"] == trained.run_id
    assert tags["dagster.run_url"] == f"{DAGSTER}/runs/{trained.run_id}"
    assert tags["dagster.job"] == dagster_run.job_name
    assert tags["dagster.asset_key"] == "ml/churn_model"
    assert tags["dataset"] == "features/churn_training_set"
    assert tags["dataset_version"] == str(linked["version"])
    fingerprint = tags["dataset_fingerprint"]
    # A name a person can tell apart: the asset, the registry version and the training rows.
    assert run.info.run_name == f"churn_model v{version.version} · {fingerprint[:8]}"
    # The run's description and the version's (both rendered as markdown) link to the run page.
    assert f"({DAGSTER}/runs/{trained.run_id})" in tags["mlflow.note.content"]
    assert f"({DAGSTER}/runs/{trained.run_id})" in version.description
    for key in ("dagster.run_id", "dagster.run_url", "dagster.asset_key", "dataset_version"):
        assert version.tags[key] == tags[key]
    assert version.tags["training_fingerprint"] == tags["training_fingerprint"]


def test_training_and_holdout_rows_are_dataset_inputs_of_the_run(linked):
    _, run = _champion_run(linked)
    inputs = {
        {t.key: t.value for t in i.tags}["mlflow.data.context"]: i
        for i in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "evaluation"}
    for context, found in inputs.items():
        dataset = found.dataset
        assert dataset.name == "features/churn_training_set"
        assert dataset.source_type == "delta_table"
        source = json.loads(dataset.source)
        assert source == {"path": linked["table_uri"], "delta_table_version": linked["version"]}
        assert json.loads(dataset.profile)["num_rows"] > 0
        schema = {c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]}
        assert {"account_id", "as_of", SPEC.label, *SPEC.features} == schema, context
    assert inputs["training"].dataset.digest == run.data.tags["dataset_fingerprint"]
    assert inputs["evaluation"].dataset.digest != inputs["training"].dataset.digest
    # The holdout is the later dates, never trained on.
    train_dates = {t.key: t.value for t in inputs["training"].tags}["as_of"].split("..")
    held_dates = {t.key: t.value for t in inputs["evaluation"].tags}["as_of"].split("..")
    assert train_dates[1] < held_dates[0]
    assert json.loads(run.data.params["holdout_dates"])[0] == held_dates[0]


def test_materialization_links_to_the_mlflow_run_and_version(linked):
    version, run = _champion_run(linked)
    experiment, run_id = run.info.experiment_id, run.info.run_id
    run_page = f"{MLFLOW_UI}/#/experiments/{experiment}/runs/{run_id}"
    version_page = f"{MLFLOW_UI}/#/models/{SPEC.model_name}/versions/{version.version}"
    for result in linked["runs"]:  # the run that trained it and the run that kept it
        md = _metadata(linked, result)
        assert isinstance(md["mlflow_run"], UrlMetadataValue)
        assert md["mlflow_run"].url == run_page
        assert isinstance(md["mlflow_model_version"], UrlMetadataValue)
        assert md["mlflow_model_version"].url == version_page
        assert md["mlflow_champion_version"].url == version_page
    assert [_metadata(linked, r)["retrained"].value for r in linked["runs"]] == [True, False]
    # The run that kept the version trained nothing: the registry still has only the one run's.
    client = MlflowClient(tracking_uri=linked["uri"], registry_uri=linked["uri"])
    assert [v.version for v in client.search_model_versions(f"name = '{SPEC.model_name}'")] == [
        version.version
    ]
