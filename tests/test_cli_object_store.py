"""`lakehouse` on a lake in an object store (moto's S3 server, local), found the way the
distributed profile finds it: LAKEHOUSE_LAKE_ROOT plus the standard AWS settings."""

from __future__ import annotations

import json

import boto3
import pyarrow as pa
import pytest

from resources.cli import main
from resources.lake import LakeResource
from resources.profile import storage_options
from servers import s3_server

pytestmark = pytest.mark.distributed

BUCKET = "lakehouse-cli"


@pytest.fixture
def s3_lake(monkeypatch) -> LakeResource:
    with s3_server() as endpoint:
        for var, value in {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "lakehouse-test",
            "AWS_SECRET_ACCESS_KEY": "lakehouse-test-secret",
            "AWS_REGION": "us-east-1",
            "LAKEHOUSE_PROFILE": "distributed",
            "LAKEHOUSE_LAKE_ROOT": f"s3://{BUCKET}/lake",
        }.items():
            monkeypatch.setenv(var, value)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        lake = LakeResource(root=f"s3://{BUCKET}/lake", storage_options=storage_options())
        yield lake.process_config_and_initialize()


def test_tables_and_sql_on_the_object_store(s3_lake, capsys):
    s3_lake.publish("c360", "customer_360_accounts", pa.table({"account_id": ["a", "b", "c"]}))
    s3_lake.publish("raw", "crm_accounts", pa.table({"id": [1, 2]}), description="CRM rows.")
    s3_lake.publish("raw", "crm_accounts", pa.table({"id": [3]}))

    assert main(["tables", "--format", "json"]) == 0
    listed = {t["table"]: t for t in json.loads(capsys.readouterr().out)}
    assert set(listed) == {"c360.customer_360_accounts", "raw.crm_accounts"}
    assert (listed["raw.crm_accounts"]["rows"], listed["raw.crm_accounts"]["version"]) == (3, 1)
    assert listed["raw.crm_accounts"]["description"] == "CRM rows."

    query = """SELECT (SELECT string_agg(account_id, ',' ORDER BY account_id)
                       FROM c360.customer_360_accounts) AS accounts,
                      (SELECT sum(id) FROM raw.crm_accounts) AS ids"""
    assert main(["sql", query, "--format", "csv"]) == 0
    assert capsys.readouterr().out == 'accounts,ids\n"a,b,c",6\n'
