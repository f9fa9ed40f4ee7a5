"""The demo graph past one machine: the distributed profile (lake on an S3 API server, Dagster's
instance and MLflow on PostgreSQL, steps on two Celery workers over Redis) builds the same tables
as the local profile from the same landing files.

The distributed build goes the way a team drives a deployment. `dagster dev` serves the UI and
runs the daemon. The runs are launched through the UI's GraphQL API: the layers before the
events, one backfill of the event days (the daemon splits it into runs of at most 92 days, up to
four at a time), then the layers after. The local build is `make demo`'s `platform/demo.py`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import boto3
import pytest

from conftest import ROOT, _post, load_definitions, run_dagster_dev
from figures import write_figures
from lake_compare import delta_tables, table_content, volatile
from servers import create_database, postgres_server, redis_server, s3_server

pytestmark = pytest.mark.distributed

SALT = "distributed-suite-salt"  # both profiles hash emails with the same (test) secret
BUCKET = "lakehouse"
KEY, SECRET, REGION = "lakehouse-test", "lakehouse-test-secret", "us-east-1"
LOCATION = "customer_lakehouse"
WORKERS = ("w1", "w2")
DONE = {"SUCCESS", "FAILURE", "CANCELED"}
VENV_BIN = Path(sys.executable).parent  # dagster-celery starts `celery` from the PATH


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    """The sample company's landing files, shared by both profiles. Twice the accounts of the
    other whole-graph tests: at 200 an event step took ~4 s, about the time between two runs'
    starts, so whether the two workers' steps overlapped was down to a second either way."""
    from sample_company.generate import generate

    out = tmp_path_factory.mktemp("company") / "landing"
    generate(out, accounts=400, days=300, seed=3)
    return out


@pytest.fixture(scope="module")
def local_build(landing, tmp_path_factory) -> tuple[Path, float]:
    """The local profile, as `make demo` builds it. Returns the lake and the wall time."""
    root = tmp_path_factory.mktemp("local")
    env = {
        **os.environ,
        "LAKEHOUSE_PROFILE": "local",
        "LAKEHOUSE_LAKE_ROOT": str(root / "lake"),
        "LAKEHOUSE_LANDING_ROOT": str(landing),
        "LAKEHOUSE_PII_SALT": SALT,
        "DAGSTER_HOME": str(root / "dagster_home"),
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "platform/demo.py"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "lake", wall


@pytest.fixture(scope="module")
def services() -> Iterator[dict[str, str]]:
    """PostgreSQL (databases for the instance, MLflow and the CRM), the S3 API server with the
    lake's bucket, and Redis: the distributed profile's settings pointing at them."""
    with postgres_server() as pg, s3_server() as s3, redis_server() as redis:
        s3_env = {
            "AWS_ENDPOINT_URL": s3,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": REGION,
        }
        _s3(s3).create_bucket(Bucket=BUCKET)
        yield {
            "LAKEHOUSE_PROFILE": "distributed",
            "LAKEHOUSE_LAKE_ROOT": f"s3://{BUCKET}/lake",
            **s3_env,
            "LAKEHOUSE_PII_SALT": SALT,
            # dagster-postgres is built on psycopg2; SQLAlchemy 2.1's default driver is psycopg 3
            "LAKEHOUSE_DAGSTER_PG_URL": create_database(pg, "dagster").replace(
                "postgresql://", "postgresql+psycopg2://"
            ),
            "LAKEHOUSE_MLFLOW_TRACKING_URI": create_database(pg, "mlflow"),
            "LAKEHOUSE_CRM_KIND": "postgres",
            "LAKEHOUSE_CRM_POSTGRES_DSN": create_database(pg, "crm"),
            "LAKEHOUSE_CELERY_BROKER": f"{redis}/0",
            "LAKEHOUSE_CELERY_BACKEND": f"{redis}/1",
        }


def _s3(endpoint: str):
    """A client of the test's S3 API server (the test's own keys)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name=REGION,
    )


@contextmanager
def celery_workers(env: dict[str, str], log_dir: Path) -> Iterator[None]:
    """Two Celery workers, one step at a time each, started as the README says."""
    start = [str(VENV_BIN / "dagster-celery"), "worker", "start"]
    start += ["-A", "dagster_celery.app", "-y", "platform/celery.yaml"]
    procs = []
    for name in WORKERS:
        log = (log_dir / f"{name}.log").open("w")
        procs.append(
            subprocess.Popen(
                [*start, "--name", name, "--", "--concurrency=1"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the worker's pool children go with it
            )
        )
    try:
        deadline = time.monotonic() + 120
        while not all("ready." in (log_dir / f"{n}.log").read_text() for n in WORKERS):
            assert all(p.poll() is None for p in procs), _tail(log_dir)
            assert time.monotonic() < deadline, "Celery workers not ready\n" + _tail(log_dir)
            time.sleep(0.5)
        yield
    finally:
        for p in procs:
            with suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _tail(log_dir: Path) -> str:
    """The workers' step failures with their errors (first), then the end of each log."""
    logs = [p.read_text() for p in sorted(log_dir.glob("*.log"))]
    failures = [
        line[:400]
        for text in logs
        for line in text.splitlines()
        if "STEP_FAILURE" in line or line.startswith(("dagster.", "sqlalchemy.", "psycopg."))
    ]
    return "\n".join([*failures[:30], *(text[-2000:] for text in logs)])


class Ui:
    """The webserver's GraphQL API: what the UI's buttons call."""

    def __init__(self, url: str):
        self.url = f"{url}/graphql"

    def query(self, text: str, **variables) -> dict:
        try:
            body = _post(self.url, json.dumps({"query": text, "variables": variables}))
        except urllib.error.HTTPError as e:  # GraphQL errors come back as HTTP errors
            raise AssertionError(f"{e}: {e.read().decode()[:3000]}") from e
        assert "errors" not in body, body["errors"]
        return body["data"]

    def stop_sensor(self, name: str) -> None:
        sensor = self.query(
            """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
                 ... on Sensor { id } ... on PythonError { message } } }""",
            s={**_repo(), "sensorName": name},
        )["sensorOrError"]
        stopped = self.query(
            """mutation($id: String!) { stopSensor(id: $id) { __typename
                 ... on PythonError { message } } }""",
            id=sensor["id"],
        )["stopSensor"]
        assert stopped["__typename"] == "StopSensorMutationResult", stopped

    def launch_run(self, keys: list[list[str]], phase: str) -> str:
        params = {
            "selector": {**_repo(), "jobName": "__ASSET_JOB", "assetSelection": _paths(keys)},
            "executionMetadata": {"tags": [{"key": "lakehouse/phase", "value": phase}]},
        }
        launched = self.query(
            """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
                 ... on LaunchRunSuccess { run { runId } }
                 ... on PythonError { message } ... on InvalidSubsetError { message }
                 ... on RunConfigValidationInvalid { errors { message } } } }""",
            p=params,
        )["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def launch_backfill(self, key: list[str], ranges: list[tuple[str, str]]) -> str:
        params = {
            "partitionsByAssets": [
                {
                    "assetKey": {"path": key},
                    "partitions": {"ranges": [{"start": a, "end": b} for a, b in ranges]},
                }
            ],
            "title": "event days",
        }
        launched = self.query(
            """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
                 __typename ... on LaunchBackfillSuccess { backfillId }
                 ... on PythonError { message } } }""",
            p=params,
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        return launched["backfillId"]

    def wait_run(self, run_id: str, timeout: float = 1200) -> str:
        deadline = time.monotonic() + timeout
        while True:
            run = self.query(
                "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", id=run_id
            )["runOrError"]
            if run["status"] in DONE:
                return run["status"]
            assert time.monotonic() < deadline, f"run {run_id} still {run['status']}"
            time.sleep(2)

    def wait_backfill(self, backfill_id: str, timeout: float = 1200) -> tuple[str, list[str]]:
        deadline = time.monotonic() + timeout
        while True:
            b = self.query(
                """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                     ... on PartitionBackfill { status runs(limit: 100) { runId status } } } }""",
                id=backfill_id,
            )["partitionBackfillOrError"]
            runs = b["runs"]
            if b["status"] not in ("REQUESTED", "CANCELING", "FAILING") and all(
                r["status"] in DONE for r in runs
            ):
                return b["status"], [r["runId"] for r in runs]
            assert time.monotonic() < deadline, f"backfill {backfill_id} still {b['status']}"
            time.sleep(2)


def _repo() -> dict[str, str]:
    return {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}


def _paths(keys: list[list[str]]) -> list[dict]:
    return [{"path": k} for k in keys]


def _steps_by_worker(instance, run_ids: list[str]) -> dict[str, list[tuple[str, float, float]]]:
    """For each Celery worker, the steps it executed: (run:step, start, end) from the event log
    (dagster-celery logs the worker's name when a step starts on it). Every step the runs'
    event logs name must be accounted for: a step with no worker event ran (or was skipped)
    outside the workers, and one without its start and end did not run whole; either fails."""
    from dagster import DagsterEventType

    out: dict[str, list[tuple[str, float, float]]] = {}
    unaccounted: dict[str, list[str]] = {}
    for run_id in run_ids:
        steps: set[str] = set()
        worker, start, end = {}, {}, {}
        for e in instance.all_logs(run_id):
            ev = e.dagster_event
            if ev is None or ev.step_key is None:
                continue
            steps.add(ev.step_key)
            if ev.event_type == DagsterEventType.ENGINE_EVENT:
                meta = ev.engine_event_data.metadata or {}
                if "Celery worker" in meta:
                    worker[ev.step_key] = str(meta["Celery worker"].value)
            elif ev.event_type == DagsterEventType.STEP_START:
                start[ev.step_key] = e.timestamp
            elif ev.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                end[ev.step_key] = e.timestamp
        assert steps, f"run {run_id} executed no step"
        for step in sorted(steps):
            if step not in worker:
                unaccounted.setdefault("no Celery worker event", []).append(f"{run_id}:{step}")
            elif step not in start or step not in end:
                unaccounted.setdefault("no start or end", []).append(f"{run_id}:{step}")
            else:
                out.setdefault(worker[step], []).append(
                    (f"{run_id[:8]}:{step}", start[step], end[step])
                )
    assert not unaccounted, f"steps not accounted for by a Celery worker: {unaccounted}"
    return out


def test_a_step_with_no_celery_worker_event_fails_the_accounting():
    """The accounting above on a real event log (no services needed): two steps of a run,
    a worker event for one only. The other step is reported, never dropped; with both
    reported, both steps are there under their worker."""
    from dagster import DagsterInstance, asset, materialize
    from dagster._core.events import EngineEventData

    @asset
    def first() -> int:
        return 1

    @asset
    def second(first: int) -> int:
        return first + 1

    with DagsterInstance.ephemeral() as instance:
        result = materialize([first, second], instance=instance)
        run = instance.get_run_by_id(result.run_id)

        def on_worker(step: str, name: str) -> None:
            meta = {"step_keys": step, "Celery worker": name}
            instance.report_engine_event("in celery", run, EngineEventData(meta), step_key=step)

        on_worker("first", "w1@host")
        with pytest.raises(AssertionError, match=f"{result.run_id}:second"):
            _steps_by_worker(instance, [result.run_id])
        on_worker("second", "w2@host")
        by_worker = _steps_by_worker(instance, [result.run_id])
    short = result.run_id[:8]
    assert {w: [s for s, _, _ in steps] for w, steps in by_worker.items()} == {
        "w1@host": [f"{short}:first"],
        "w2@host": [f"{short}:second"],
    }


def _overlapping(by_worker: dict[str, list[tuple[str, float, float]]]) -> int:
    """Pairs of steps on different workers whose executions overlapped in time."""
    items = [(w, s, a, b) for w, steps in by_worker.items() for s, a, b in steps]
    return sum(
        1
        for i, (w1, _, a1, b1) in enumerate(items)
        for w2, _, a2, b2 in items[i + 1 :]
        if w1 != w2 and a1 < b2 and a2 < b1
    )


FIRST_COMMIT = "/_delta_log/00000000000000000000.json"


def _s3_tables(s3_endpoint: str) -> set[str]:
    """`layer/table` of every Delta table in the bucket (a first commit in a `_delta_log`)."""
    names = set()
    pages = _s3(s3_endpoint).get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket=BUCKET, Prefix="lake/"):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith(FIRST_COMMIT):
                names.add(key.removeprefix("lake/").removesuffix(FIRST_COMMIT))
    return names


def _ignored(name: str) -> frozenset[str]:
    """Run-time columns, and the audit's destination: the local profile syncs to its SQLite CRM,
    the distributed one to PostgreSQL."""
    extra = {"destination"} if name == "reverse_etl/sync_audit" else set()
    return volatile(Path(name)) | extra


def test_distributed_profile_builds_the_local_profiles_tables(
    landing, local_build, services, tmp_path, monkeypatch
):
    from dagster import DagsterInstance

    from assets.events.mapping import load_mapping
    from assets.events.runs import (
        AFTER_EVENTS,
        BEFORE_EVENTS,
        EVENTS_KEY,
        first_day,
        pending_ranges,
    )
    from resources.profile import active

    local_lake, local_wall = local_build
    env = {
        **services,
        "LAKEHOUSE_LANDING_ROOT": str(landing),
        "LAKEHOUSE_IDENTITY_DECISIONS": str(tmp_path / "decisions" / "identity_decisions.csv"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    defs = load_definitions()  # the distributed profile's, as the code server loads it
    graph = defs.resolve_asset_graph()
    before = sorted(k.path for k in BEFORE_EVENTS.resolve(graph))
    after = sorted(k.path for k in AFTER_EVENTS.resolve(graph))
    lake = defs.resources["lake"].process_config_and_initialize()
    pii = defs.resources["pii"].process_config_and_initialize()
    assert lake.root.startswith("s3://") and lake.data_docs is None

    # The instance file and its schema, before anything starts (two workers starting on an
    # empty database would both create the tables).
    active().write_instance(Path(env["DAGSTER_HOME"]))
    migrate = [str(VENV_BIN / "dagster"), "instance", "migrate"]
    subprocess.run(migrate, cwd=ROOT, env={**os.environ}, check=True, capture_output=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    with (
        celery_workers({**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}, logs),
        run_dagster_dev(tmp_path, env["LAKEHOUSE_LAKE_ROOT"], landing, env=env) as server,
    ):
        server.wait_until_answering(timeout=180)
        ui = Ui(server.url)
        ui.stop_sensor("follow_raw")  # this test drives the graph itself, as `make demo` does
        started = time.monotonic()
        first = ui.launch_run(before, "before-events")
        assert ui.wait_run(first) == "SUCCESS", _tail(logs)
        ranges = [
            (str(a), str(b)) for a, b in pending_ranges(lake, pii, load_mapping(), first_day(defs))
        ]
        assert ranges, "no event days to backfill"
        backfill = ui.launch_backfill(list(EVENTS_KEY.path), ranges)
        status, backfill_runs = ui.wait_backfill(backfill)
        assert status == "COMPLETED_SUCCESS", (status, _tail(logs))
        last = ui.launch_run(after, "after-events")
        assert ui.wait_run(last) == "SUCCESS", _tail(logs)
        wall = time.monotonic() - started

    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        everything = _steps_by_worker(instance, [first, *backfill_runs, last])
        in_backfill = _steps_by_worker(instance, backfill_runs)
        records = [r for r in instance.get_run_records() if r.dagster_run.run_id in backfill_runs]
    t0 = min(r.start_time for r in records)
    windows = sorted((round(r.start_time - t0, 1), round(r.end_time - t0, 1)) for r in records)
    # Every step of every run ran on a worker, and the backfill's ran on both at once.
    assert {w.split("@")[0] for w in everything} == set(WORKERS), everything
    assert len(backfill_runs) >= 2 and len(in_backfill) == 2, in_backfill
    overlaps = _overlapping(in_backfill)
    assert overlaps >= 1, in_backfill

    # The tables: the same set, and the same rows in each (run-time columns aside).
    local = {str(p.relative_to(local_lake)): p for p in delta_tables(local_lake)}
    assert _s3_tables(services["AWS_ENDPOINT_URL"]) == set(local)
    options = lake.storage_options
    expected = {name: table_content(path, _ignored(name)) for name, path in local.items()}
    differing = [
        name
        for name, rows in expected.items()
        if not rows.equals(table_content(lake.uri(*name.split("/")), _ignored(name), options))
    ]
    assert differing == []
    # The one column that differs on purpose: which CRM each profile synced to.
    audit = lake.read("reverse_etl", "sync_audit", columns=["destination"])["destination"]
    (destination,) = set(audit.to_pylist())
    assert destination.startswith("postgresql:127.0.0.1:") and "postgres@" not in destination
    write_figures(
        "distributed",
        "graph",
        tables_compared=len(local),
        rows_compared=sum(t.num_rows for t in expected.values()),
        tables_differing=len(differing),
        local_wall_s=round(local_wall, 1),
        distributed_wall_s=round(wall, 1),
        backfill_ranges=ranges,
        backfill_runs=len(backfill_runs),
        backfill_run_windows_s=windows,
        backfill_overlapping_step_pairs=overlaps,
        steps_per_worker={w: len(s) for w, s in everything.items()},
        backfill_steps={w: [s for s, _, _ in steps] for w, steps in in_backfill.items()},
        steps={w: sorted(s for s, _, _ in steps) for w, steps in everything.items()},
    )
