"""The lake on an S3-compatible object store (moto's S3 server, local): the same LakeResource
code publishes, streams, reads and keeps its commits atomic when writers race."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import boto3
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from resources.lake import LakeResource, WriteConflict
from resources.profile import storage_options
from servers import s3_server

pytestmark = pytest.mark.distributed

KEY, SECRET, REGION = "lakehouse-test", "lakehouse-test-secret", "us-east-1"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as url:
        yield url


@pytest.fixture
def s3_lake(s3_endpoint, request, monkeypatch) -> LakeResource:
    """A lake in a bucket of its own, with the distributed profile's storage options (the
    endpoint and keys come from the standard AWS variables, as a deployment sets them)."""
    bucket = request.node.name.replace("_", "-")[:50].strip("-")
    for var, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(var, value)
    boto3.client("s3").create_bucket(Bucket=bucket)
    options = storage_options()
    assert options["conditional_put"] == "etag" and options["allow_http"] == "true"
    lake = LakeResource(root=f"s3://{bucket}/lake", storage_options=options)
    return lake.process_config_and_initialize()  # resolves the EnvVar keys, as a run does


def _rows(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()), "day": ["d"] * n})


def test_publish_stream_and_read_on_the_object_store(s3_lake):
    first = s3_lake.publish("raw", "t", _rows(100), partition_by=["day"])
    streamed = s3_lake.publish("raw", "t", _rows(50, 100).to_reader(max_chunksize=10))
    assert (first.version, streamed.version) == (0, 1)
    assert streamed.uri == f"{s3_lake.root}/raw/t"
    assert (streamed.rows_written, streamed.total_rows) == (50, 150)
    ids = s3_lake.read("raw", "t", columns=["id"])["id"].to_pylist()
    assert sorted(ids) == list(range(150))
    assert s3_lake.table("raw", "t").metadata().partition_columns == ["day"]


def test_racing_writers_each_commit_once_and_a_stale_overwrite_is_refused(s3_lake):
    s3_lake.publish("raw", "t", _rows(10))
    errors: list[BaseException] = []

    def append(i: int) -> None:
        try:
            s3_lake.publish("raw", "t", _rows(1, 1000 + i), count_total=False)
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    table = s3_lake.table("raw", "t")
    assert table.version() == 6  # six appends, six versions: none lost, none merged
    assert sorted(table.to_pyarrow_table()["id"].to_pylist()) == [*range(10), *range(1000, 1006)]

    stale = s3_lake.table("raw", "t")
    s3_lake.publish("raw", "t", _rows(3), mode="overwrite")
    with pytest.raises(CommitFailedError):
        write_deltalake(stale, _rows(5), mode="overwrite")
    assert s3_lake.version("raw", "t") == 7
    assert (
        DeltaTable(s3_lake.uri("raw", "t"), storage_options=s3_lake.storage_options)
        .to_pyarrow_table()
        .num_rows
        == 3
    )


def test_an_exactly_once_append_is_refused_to_the_second_claimant(s3_lake):
    """The raw layer's claim on S3: creating and appending, the second writer from the same read
    gets WriteConflict and the bucket holds the first writer's rows only."""
    schema = _rows(1).schema
    first, second = (s3_lake.claim("raw", "t", "ingest x", schema) for _ in range(2))
    assert s3_lake.publish("raw", "t", _rows(10), claim=first).version == 1  # 0: created empty
    with pytest.raises(WriteConflict, match="moved past version 0"):
        s3_lake.publish("raw", "t", _rows(10), claim=second)

    first, second = (s3_lake.claim("raw", "t", "ingest x", schema) for _ in range(2))
    assert s3_lake.publish("raw", "t", _rows(5, 10), claim=first).version == 2
    with pytest.raises(WriteConflict, match="moved past version 1"):
        s3_lake.publish("raw", "t", _rows(5, 10), claim=second)
    ids = sorted(s3_lake.read("raw", "t", columns=["id"])["id"].to_pylist())
    assert ids == list(range(15))
    assert s3_lake.table("raw", "t").transaction_version("ingest x") == 2
