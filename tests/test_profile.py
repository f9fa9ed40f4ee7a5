"""The deployment profile (LAKEHOUSE_PROFILE): one setting picks resources, executor and instance;
a missing setting is named before anything runs; secrets stay environment references."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from dagster import EnvVar

from conftest import ROOT, load_definitions
from resources.crm import CrmResource
from resources.identity import IdentityResource
from resources.mlflow import MlflowResource
from resources.profile import DISTRIBUTED, INSTANCE_BASE, PROFILE, active

DISTRIBUTED_ENV = {
    PROFILE: DISTRIBUTED,
    "LAKEHOUSE_LAKE_ROOT": "s3://acme-lake/lake",
    "LAKEHOUSE_LANDING_ROOT": "/data/landing",
    "LAKEHOUSE_PII_SALT": "salt-value-never-shown",
    "LAKEHOUSE_MLFLOW_TRACKING_URI": "postgresql://mlflow@pg/mlflow",
    "LAKEHOUSE_IDENTITY_DECISIONS": "/data/decisions/identity_decisions.csv",
    "LAKEHOUSE_DAGSTER_PG_URL": "postgresql://dagster@pg/dagster",
    "LAKEHOUSE_CELERY_BROKER": "redis://redis:6379/0",
    "LAKEHOUSE_CELERY_BACKEND": "redis://redis:6379/1",
    "AWS_ENDPOINT_URL": "http://minio:9000",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "key-id",
    "AWS_SECRET_ACCESS_KEY": "secret-key-never-shown",
}


@pytest.fixture
def distributed(monkeypatch):
    for var, value in DISTRIBUTED_ENV.items():
        monkeypatch.setenv(var, value)


def test_local_is_the_default_and_keeps_the_embedded_setup(monkeypatch, tmp_path):
    monkeypatch.delenv(PROFILE, raising=False)
    profile = active()
    assert profile.name == "local" and profile.missing() == []
    assert profile.executor().name == "in_process"
    assert profile.write_instance(tmp_path).read_text() == INSTANCE_BASE.read_text()
    assert profile.resources()["lake"].storage_options == {}


def test_distributed_names_every_missing_setting(monkeypatch):
    for var in DISTRIBUTED_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(PROFILE, DISTRIBUTED)
    with pytest.raises(RuntimeError) as e:
        active().resources()
    for var in set(DISTRIBUTED_ENV) - {PROFILE, *(v for v in DISTRIBUTED_ENV if "AWS" in v)}:
        assert var in str(e.value)


def test_distributed_refuses_a_lake_on_local_disk(distributed, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_LAKE_ROOT", "/tmp/lake")
    with pytest.raises(RuntimeError, match="object store"):
        active().resources()


def test_unknown_profile_is_refused(monkeypatch):
    monkeypatch.setenv(PROFILE, "cloud")
    with pytest.raises(RuntimeError, match="local, distributed"):
        active()


def test_distributed_wires_object_store_celery_and_postgres(distributed, tmp_path):
    defs = load_definitions()  # the code location itself, under the distributed profile
    lake = defs.resources["lake"]
    options = lake.storage_options
    assert options["conditional_put"] == "etag" and options["allow_http"] == "true"
    # Settings and secrets are references to the environment, resolved when a step starts.
    assert isinstance(options["aws_secret_access_key"], EnvVar)
    assert options["aws_secret_access_key"] == "AWS_SECRET_ACCESS_KEY"
    resolved = lake.process_config_and_initialize()
    assert resolved.root == "s3://acme-lake/lake"
    assert resolved.storage_options["aws_secret_access_key"] == "secret-key-never-shown"
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == "celery"

    instance = yaml.safe_load(active().write_instance(tmp_path).read_text())
    assert instance["storage"] == {
        "postgres": {"postgres_url": {"env": "LAKEHOUSE_DAGSTER_PG_URL"}}
    }
    base = yaml.safe_load(INSTANCE_BASE.read_text())
    kept = {k: v for k, v in base.items() if k not in ("run_coordinator", "concurrency")}
    assert {k: instance[k] for k in kept} == kept  # telemetry, run monitoring
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    # Merged key by key: the run limit is the profile's, the pools still the base's.
    assert instance["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert instance["concurrency"]["pools"] == base["concurrency"]["pools"]


def test_profile_check_command_exits_non_zero_naming_the_gap(monkeypatch):
    env = {k: v for k, v in DISTRIBUTED_ENV.items() if k != "LAKEHOUSE_PII_SALT"}
    done = subprocess.run(
        [sys.executable, "-m", "resources.profile", "check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "LAKEHOUSE_PII_SALT" in done.stderr and "LAKEHOUSE_LAKE_ROOT" not in done.stderr


def test_remote_lake_defaults_that_cannot_exist_are_refused_by_name():
    remote = "s3://acme-lake/lake"
    with pytest.raises(ValueError, match="LAKEHOUSE_IDENTITY_DECISIONS"):
        IdentityResource().decisions_file(remote)
    with pytest.raises(ValueError, match="LAKEHOUSE_CRM_KIND"):
        CrmResource().destination(remote)
    assert MlflowResource().artifact_root(remote) == "s3://acme-lake/lake/mlflow/artifacts"
    assert MlflowResource(artifacts="s3://m/a").artifact_root(remote) == "s3://m/a"
    local = MlflowResource().artifact_root("/srv/lake")
    assert local == "file:///srv/lake/mlflow/artifacts"
