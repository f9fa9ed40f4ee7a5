"""Two runs of the same assets at once: neither corrupts nor duplicates; one waits or fails
cleanly; two whole builds at once end as one build does. Each run is a separate process, as two
launched runs of a deployment are."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from checks.raw import RAW_TABLES
from faultkit import (
    DRIVE,
    ROOT,
    delta_tables,
    drive,
    instance_home,
    lake_content,
    lake_env,
    record,
)

pytestmark = pytest.mark.faults

DEMO = ROOT / "platform" / "demo.py"
# One salt for every lake of a test: lakes at different paths then hash emails alike and compare.
SALTED = {"LAKEHOUSE_PII_SALT": "c0c0" * 16}


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> Path:
    from sample_company.generate import generate

    landing = tmp_path_factory.mktemp("company") / "landing"
    generate(landing, accounts=40, days=60, seed=5)
    return landing


def _run_twice_at_once(args: list[str], env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    return _at_once([str(DRIVE), *args], env)


def _at_once(
    command: list[str], env: dict[str, str], n: int = 2
) -> list[subprocess.CompletedProcess]:
    """`python <command>` in `n` processes started together; their outcomes, in start order."""
    return _finish([_start(command, env) for _ in range(n)])


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *command],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(procs: list[subprocess.Popen]) -> list[subprocess.CompletedProcess]:
    done = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def _duplicates(lake: Path) -> tuple[int, int]:
    """(rows, rows beyond the first copy of a landed line) over every raw table, plus files
    logged more than once."""
    rows = extra = 0
    for c in RAW_TABLES:
        t = DeltaTable(str(lake / "raw" / c.table)).to_pyarrow_table(
            columns=["_source_file", "_line"]
        )
        keys = pc.binary_join_element_wise(t["_source_file"], pc.cast(t["_line"], "string"), ":")
        rows += t.num_rows
        extra += t.num_rows - pc.count_distinct(keys).as_py()
    log = DeltaTable(str(lake / "raw" / "ingest_log")).to_pyarrow_table()
    pairs = pc.binary_join_element_wise(log["table_name"], log["source_file"], ":")
    return rows, extra + log.num_rows - pc.count_distinct(pairs).as_py()


def test_two_raw_runs_at_once_take_turns_and_publish_each_row_once(tmp_path, company):
    """The same raw assets launched twice on one instance: the pools make the second run's steps
    wait (and where both start in the same instant, the Delta claim refuses the second commit);
    both succeed and every table equals a single run's."""
    home = instance_home(tmp_path)
    lake = tmp_path / "lake"
    runs = _run_twice_at_once(["raw"], lake_env(lake, company, home))
    assert [r.returncode for r in runs] == [0, 0], [r.stderr[-2000:] for r in runs]

    reference = tmp_path / "reference"
    single = drive("raw", "--ephemeral", env=lake_env(reference, company))
    assert single.returncode == 0, single.stderr[-2000:]

    rows, duplicated = _duplicates(lake)
    assert duplicated == 0
    ours, theirs = lake_content(lake / "raw"), lake_content(reference / "raw")
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].equals(theirs[name]), f"raw/{name} differs from a single run"
    # Each raw table was written once: version 0 holds the batch, nothing was appended again.
    versions = {c.table: DeltaTable(str(lake / "raw" / c.table)).version() for c in RAW_TABLES}
    assert set(versions.values()) == {0}, versions
    record(
        "concurrency_raw",
        runs_at_once=2,
        raw_tables=len(RAW_TABLES),
        rows=rows,
        duplicated_rows=duplicated,
        outcome="second run waited (pool limit 1) and found nothing new",
    )


def test_two_runs_of_the_same_event_days_at_once_never_duplicate(tmp_path, company):
    """Events replace their days with a Delta predicate and have no pool: two writers of the same
    days race; delta-rs refuses the loser's commit, and the loser rebuilds the days and commits
    again (or the second simply replaces the first). Both succeed."""
    lake = tmp_path / "lake"
    env = lake_env(lake, company)
    prepare = drive("until-events", "--ephemeral", env=env)
    assert prepare.returncode == 0, prepare.stderr[-2000:]
    events = lake / "events" / "events"
    before = lake_content(lake / "events")
    version = DeltaTable(str(events)).version()
    days = DeltaTable(str(events)).to_pyarrow_table(columns=["event_date"])["event_date"]
    first, last = str(pc.min(days).as_py()), str(pc.max(days).as_py())

    runs = _run_twice_at_once(["events", first, last, "--ephemeral"], env)
    codes = sorted(r.returncode for r in runs)
    assert codes == [0, 0], [r.stderr[-2000:] for r in runs]

    table = DeltaTable(str(events)).to_pyarrow_table(columns=["event_id"])
    duplicated = table.num_rows - pc.count_distinct(table["event_id"]).as_py()
    assert duplicated == 0
    after = lake_content(lake / "events")
    assert after.keys() == before.keys()
    for name in after:
        assert after[name].equals(before[name]), f"events/{name} changed"
    for table in delta_tables(lake / "events"):
        DeltaTable(str(table)).to_pyarrow_table()  # every version still readable
    assert DeltaTable(str(events)).version() > version
    record(
        "concurrency_events",
        runs_at_once=2,
        succeeded=codes.count(0),
        duplicated_rows=duplicated,
    )


# -- two whole builds at once ------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_company(tmp_path_factory) -> Path:
    """The smallest company whose models still train (as in test_crashes.py)."""
    from sample_company.generate import generate

    landing = tmp_path_factory.mktemp("demo_company") / "landing"
    generate(landing, accounts=80, days=240, seed=5)
    return landing


def _content(lake: Path) -> dict[str, pa.Table]:
    """The lake's canonical content; the audit's `destination` names the CRM file under its own
    lake, so that path is replaced and lakes at different paths compare."""
    tables = lake_content(lake)
    audit = tables["reverse_etl/sync_audit"]
    dest = [d.replace(str(lake), "<lake>") for d in audit["destination"].to_pylist()]
    i = audit.schema.get_field_index("destination")
    tables["reverse_etl/sync_audit"] = audit.set_column(i, "destination", pa.array(dest))
    return tables


def _crm(lake: Path) -> dict[str, dict]:
    from assets.reverse_etl.destinations import SQLiteDestination

    return SQLiteDestination(lake / "crm" / "crm.db").rows()


def _registry(lake: Path) -> dict[str, list[str]]:
    """Registered model -> its versions, oldest first."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{lake / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    return {
        m.name: sorted(
            (v.version for v in client.search_model_versions(f"name = '{m.name}'")), key=int
        )
        for m in client.search_registered_models()
    }


def test_two_whole_builds_at_once_end_as_one_build(tmp_path, demo_company):
    """`make demo` twice at once on a fresh lake and instance: both finish and print their
    summary, and every table (run-time columns aside), the CRM and the model registry equal
    those of one build alone. Where the runs meet (each asset's pool, the model registry, the
    CRM sync, the event days they both build) the second either waits and finds nothing new,
    or redoes its work after the first."""
    reference, lake = tmp_path / "reference", tmp_path / "lake"
    alone = _start(
        [str(DEMO)], lake_env(reference, demo_company, instance_home(tmp_path, "ref"), **SALTED)
    )
    started = time.monotonic()
    demos = _at_once([str(DEMO)], lake_env(lake, demo_company, instance_home(tmp_path), **SALTED))
    seconds = time.monotonic() - started
    (single,) = _finish([alone])
    assert single.returncode == 0, single.stderr[-3000:]
    assert [d.returncode for d in demos] == [0, 0], [d.stderr[-3000:] for d in demos]
    for d in demos:  # each printed its whole summary, model lines included
        assert re.search(r"\d+ run\(s\): success in", d.stdout), d.stdout[-3000:]
        for model in ("ml/churn_model", "ml/expansion_model"):
            assert f"{model}: version " in d.stdout, d.stdout[-3000:]
        assert "sync to " in d.stdout, d.stdout[-3000:]

    ours, theirs = _content(lake), _content(reference)
    assert ours.keys() == theirs.keys(), "a table appeared or vanished"
    differing = sorted(name for name in ours if not ours[name].equals(theirs[name]))
    crm, crm_reference = _crm(lake), _crm(reference)
    registry, registry_reference = _registry(lake), _registry(reference)
    kept = [d.stdout.count(", kept: ") for d in demos]
    record(
        "concurrency_whole_graph",
        builds_at_once=2,
        exit_codes=[d.returncode for d in demos],
        tables=len(ours),
        rows=sum(t.num_rows for t in ours.values()),
        tables_differing=len(differing),
        differing=", ".join(differing),
        crm_records=len(crm),
        crm_records_differing=sum(crm.get(k) != crm_reference.get(k) for k in crm | crm_reference),
        model_versions=registry,
        model_steps_kept_per_build=kept,
        seconds=round(seconds, 1),
    )
    assert differing == [], f"differ from one build: {differing}"
    assert crm == crm_reference
    assert registry == registry_reference  # one version per model: none trained twice
