"""Erasure on a lake in an object store (moto's S3 server, local): not supported yet (README,
"Not yet"). The request must fail with that reason before anything is changed: every object in
the bucket and every landing file stays as it was, and the person is still there to erase later.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from assets.reverse_etl.erasure import write_request
from conftest import load_definitions
from resources.crm import CrmResource
from resources.duckdb import DuckDBResource
from resources.identity import IdentityResource
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.mlflow import MlflowResource
from resources.pii import PiiResource
from resources.profile import storage_options
from servers import s3_server

pytestmark = pytest.mark.distributed

KEY, SECRET, REGION, BUCKET = "lakehouse-test", "lakehouse-test-secret", "us-east-1", "erasure"
EMAIL = "ann.lee@acme-robotics.com"
CONSENT = [  # as the consent system delivers them: the person's record and someone else's
    {
        "record_id": "cns_AnnLee000001",
        "email": EMAIL,
        "subject_ref": "crm:003AnnLee00001",
        "scope": "crm_sync",
        "status": "granted",
        "channel": "crm",
        "recorded_at": "2026-03-01T10:00:00Z",
    },
    {
        "record_id": "cns_BobRay000002",
        "email": "bob.ray@acme-robotics.com",
        "subject_ref": "crm:003BobRay00002",
        "scope": "crm_sync",
        "status": "granted",
        "channel": "crm",
        "recorded_at": "2026-03-01T11:00:00Z",
    },
]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as url:
        yield url


def objects() -> dict[str, str]:
    """Every object in the bucket, by key: its ETag (a content hash)."""
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_erasure_on_an_object_store_lake_is_refused_and_changes_nothing(
    s3_endpoint, tmp_path, monkeypatch
):
    for var, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(var, value)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    landing = tmp_path / "landing"
    folder = landing / "consent" / "records" / "2026-03-02"
    folder.mkdir(parents=True)
    (folder / "consent.json").write_text(json.dumps(CONSENT))
    lake = LakeResource(root=f"s3://{BUCKET}/lake", storage_options=storage_options())
    resources = {
        "lake": lake,
        "landing": LandingResource(root=str(landing)),
        "duckdb": DuckDBResource(threads=2),
        "identity": IdentityResource(),
        "pii": PiiResource(salt="a-secret-salt"),  # an object-store lake takes it from settings
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
        "crm": CrmResource(sqlite_path=str(tmp_path / "crm.db")),
    }
    defs = load_definitions()

    def run(*keys: str):
        return materialize(
            list(defs.assets),
            selection=[AssetKey(k.split("/")) for k in keys],
            resources=resources,
            instance=DagsterInstance.ephemeral(),
            raise_on_error=False,
        )

    write_request(landing, email=EMAIL)
    assert run("raw/consent_records").success  # the request lands in the lake like any record
    bucket, landed = objects(), files(landing)
    assert any(k.startswith("lake/raw/consent_records/") for k in bucket)

    result = run("reverse_etl/erasure_audit")

    assert not result.success
    errors = [e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure]
    assert len(errors) == 1
    assert "NotImplementedError" in errors[0]
    assert f"s3://{BUCKET}/lake is not on local disk" in errors[0]
    assert "Nothing was changed" in errors[0]
    assert objects() == bucket  # no table written, no history purged, no work file, no audit
    assert files(landing) == landed  # no landing file rewritten
    records = lake.process_config_and_initialize().read("raw", "consent_records").to_pylist()
    assert sum(r["email"] == EMAIL for r in records) == 2  # their record and the request
