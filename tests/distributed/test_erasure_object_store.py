"""Erasure on a lake in an object store (moto's S3 server, local), with the distributed
profile's storage options: the person leaves every table in the bucket, nobody else does, no
old version brings them back, and the audit says so.

A small sample company is ingested into the bucket (raw layer and entities: every table that
holds people's own records), then a request names a person by email. Who the person is comes
from the sample company's ground truth and the lake as ingested (their records' ids, emails,
consent refs, the canonical id identity gave them, their emails' salted hashes), never from the
erasure's own resolution. Everything is read back through deltalake with the storage options,
and every object in the bucket is decoded and searched.
"""

from __future__ import annotations

import collections
import csv
import gzip
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from dagster import AssetSelection, DagsterInstance, materialize
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from assets.privacy.intake import write_request
from conftest import load_definitions
from resources.crm import CrmResource
from resources.duckdb import DuckDBResource
from resources.identity import IdentityResource
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.mlflow import MlflowResource
from resources.pii import PiiResource
from resources.profile import storage_options
from resources.segment.resource import SegmentResource
from servers import s3_server

pytestmark = pytest.mark.distributed

KEY, SECRET, REGION, BUCKET = "lakehouse-test", "lakehouse-test-secret", "us-east-1", "erasure"
SALT = "a-secret-salt"  # an object-store lake takes the salt from settings
AUDIT = "privacy/erasure_audit"
# Columns naming a landing file's content: a file the erasure rewrote has a new hash.
FILE_IDENTITY = {"_file_sha256", "file_sha256", "supersedes", "file_bytes", "file_mtime_ns"}
WORD = r"a-z0-9._%+\-"  # characters that continue an id or an address


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as url:
        yield url


class Bucket:
    """The lake in the bucket, read as a user would: deltalake with the storage options."""

    def __init__(self, lake: LakeResource) -> None:
        self.lake = lake
        self.s3 = boto3.client("s3")

    def objects(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def tables(self) -> list[str]:
        """`<layer>/<table>` of every Delta table in the bucket, from the object listing."""
        return sorted(
            {
                k.split("/_delta_log/")[0].removeprefix("lake/")
                for k in self.objects()
                if "/_delta_log/" in k
            }
        )

    def table(self, name: str, version: int | None = None) -> DeltaTable:
        return DeltaTable(
            f"s3://{BUCKET}/lake/{name}", version=version, storage_options=self.lake.storage_options
        )

    def rows(self, name: str) -> list[dict]:
        return self.table(name).to_pyarrow_table().to_pylist()

    def text(self, key: str) -> str:
        """An object's content as text: a Parquet file decoded, anything else as bytes."""
        data = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        if key.endswith(".parquet"):
            return json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str)
        return data.decode("utf-8", "replace")


class Person:
    def __init__(self, values: set[str]) -> None:
        self.values = sorted(v for v in values if v)
        alts = "|".join(re.escape(v) for v in sorted(self.values, key=len, reverse=True))
        self._pattern = re.compile(f"(?:^|[^{WORD}])(?:{alts})(?:$|[^{WORD}])", re.IGNORECASE)

    def holds(self, value: object) -> bool:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        return bool(self._pattern.search(text))


def the_person(landing: Path, bucket: Bucket) -> tuple[Person, str]:
    """A person with a CRM contact, a product login and consent records whom identity resolved
    as one canonical id: every value the lake knows them by, and their work email."""
    truth = landing / "_truth"
    people = {p["person_key"]: p for p in csv.DictReader((truth / "people.csv").open())}
    records = collections.defaultdict(list)
    for r in csv.DictReader((truth / "source_records.csv").open()):
        if r["person_key"] and r["object"] != "ticket_requesters":
            records[r["person_key"]].append(r)
    links = {
        r["source_id"]: r["canonical_id"]
        for r in bucket.rows("entities/identity_links")
        if r["entity_type"] == "person" and r["object"] != "ticket_requesters"
    }
    members = collections.defaultdict(set)
    for source_id, canonical in links.items():
        members[canonical].add(source_id)
    names = collections.Counter((p["first_name"], p["last_name"]) for p in people.values())

    def fits(key: str) -> bool:
        objects = {r["object"] for r in records[key]}
        ids = {r["source_id"] for r in records[key]}
        canonical = {links.get(i) for i in ids}
        p = people[key]
        return (
            {"contacts", "users", "records"} <= objects
            and names[(p["first_name"], p["last_name"])] == 1
            and len(canonical) == 1
            and None not in canonical
            and members[next(iter(canonical))] == ids
        )

    key = next(k for k in sorted(people) if fits(k))
    p, ids = people[key], {r["source_id"] for r in records[key]}
    emails = {p["work_email"], p["personal_email"]}
    refs = set()
    for r in bucket.rows("raw/crm_contacts"):
        emails |= {r["email"]} if r["id"] in ids else set()
    for r in bucket.rows("raw/product_users"):
        emails |= {r["email"]} if r["user_id"] in ids else set()
    for r in bucket.rows("raw/consent_records"):
        if r["record_id"] in ids:
            emails.add(r["email"])
            refs.add(r["subject_ref"])
    emails = {e.strip() for e in emails if e and e.strip()}
    hashes = {hashlib.sha256((SALT + e.lower()).encode()).hexdigest() for e in emails}
    values = ids | emails | refs | hashes | {links[next(iter(ids))]}
    return Person(values), p["work_email"]


def others(bucket: Bucket, person: Person) -> dict[str, collections.Counter]:
    """Per table: the rows not holding the person, by content (file identity aside)."""
    out = {}
    for name in bucket.tables():
        if name == AUDIT:
            continue
        out[name] = collections.Counter(
            json.dumps({k: v for k, v in r.items() if k not in FILE_IDENTITY}, default=str)
            for r in bucket.rows(name)
            if not person.holds(r)
        )
    return out


def test_an_erasure_on_the_object_store_removes_the_person_and_only_them(
    s3_endpoint, tmp_path, monkeypatch
):
    from sample_company.generate import generate

    for var, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(var, value)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    landing = tmp_path / "landing"
    generate(landing, accounts=12, days=40, seed=5)
    lake = LakeResource(root=f"s3://{BUCKET}/lake", storage_options=storage_options())
    resources = {
        "lake": lake,
        "landing": LandingResource(root=str(landing)),
        "duckdb": DuckDBResource(threads=2),
        "identity": IdentityResource(decisions_path=str(tmp_path / "decisions.csv")),
        "pii": PiiResource(salt=SALT),
        "mlflow": MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"),
        "crm": CrmResource(sqlite_path=str(tmp_path / "crm.db")),
        "segment": SegmentResource(),
    }
    defs = load_definitions()

    def run(selection: AssetSelection):
        return materialize(
            list(defs.assets),
            selection=selection,
            resources=resources,
            instance=DagsterInstance.ephemeral(),
            raise_on_error=False,
        )

    assert run(AssetSelection.groups("raw", "entities")).success
    bucket = Bucket(lake.process_config_and_initialize())
    person, email = the_person(landing, bucket)
    before = others(bucket, person)
    theirs = {n: sum(person.holds(r) for r in bucket.rows(n)) for n in before}
    holding = {n for n, count in theirs.items() if count}
    assert {"raw/crm_contacts", "raw/product_users", "raw/consent_records"} <= holding
    assert {"entities/person", "entities/identity_links"} <= holding
    versions = {n: bucket.table(n).version() for n in bucket.tables()}

    write_request(landing, email=email)
    result = run(AssetSelection.assets(["raw", "consent_records"], AUDIT.split("/")))
    assert result.success, [
        e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure
    ]

    # The person is in no table, and in no object of the bucket: data files of any version,
    # logs and checkpoints included.
    assert [n for n in bucket.tables() if any(person.holds(r) for r in bucket.rows(n))] == []
    assert [k for k in bucket.objects() if person.holds(bucket.text(k))] == []
    # Everyone else's rows are there, unchanged; the only new rows are the person's account
    # facts, scrubbed (at most one per row of theirs), and the log of the request's file.
    after = others(bucket, person)
    for name, rows in before.items():
        assert rows - after[name] == collections.Counter(), f"{name}: others' rows lost"
        gained = sum((after[name] - rows).values())
        assert gained <= theirs[name] + (name == "raw/ingest_log"), name
    assert sum((after["raw/ingest_log"] - before["raw/ingest_log"]).values()) >= 1
    # No version from before the erasure can be read back.
    for name, version in versions.items():
        with pytest.raises(TableNotFoundError):
            bucket.table(name, version=version)
    # The audit says it was done and verified; no work file is left in the bucket.
    audit = bucket.rows(AUDIT)
    assert [(r["status"], r["persons"], r["verified"]) for r in audit] == [("erased", 1, True)]
    assert not [k for k in bucket.objects() if k.startswith("lake/.secrets/")]
    # The landing zone (a local folder in every profile) holds the person no more either.
    assert [p for p in landing.rglob("*") if p.is_file() and person.holds(_read(p))] == []


def _read(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8", "replace")
