"""Two runs of the same assets at once: neither corrupts nor duplicates; one waits or fails
cleanly; two whole builds at once end as one build does. Each run is a separate process, as two
launched runs of a deployment are."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dagster import DagsterEventType, DagsterInstance
from deltalake import DeltaTable

from checks.sources import raw_contracts
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

RAW_TABLES = raw_contracts()  # the active source catalog's raw tables

pytestmark = pytest.mark.faults

DEMO = ROOT / "platform" / "demo.py"
# One salt for every lake of a test: lakes at different paths then hash emails alike and compare.
SALTED = {"LAKEHOUSE_PII_SALT": "c0c0" * 16}
T = TypeVar("T")


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


# Every step of a raw run writes Delta tables, so each must run in a pool of its own (README,
# docs/reliability.md): the step keys of the 13 raw tables and of the quarantine.
RAW_STEPS = {f"raw__{c.table}" for c in RAW_TABLES} | {"raw__quarantine"}
BLOCKED = "Step blocked by limit for pool"  # Dagster's engine event for a step that waits
Interval = tuple[float, float]


def _intervals(instance: DagsterInstance, run_id: str) -> dict[str, Interval]:
    """step key -> (start, end) of each step the run ended, from the instance's event log."""
    return {
        s.step_key: (s.start_time, s.end_time)
        for s in instance.get_run_step_stats(run_id)
        if s.start_time is not None and s.end_time is not None
    }


def _blocked_since(instance: DagsterInstance, run_id: str) -> dict[str, float]:
    """step key -> when the run first found that step's pool full."""
    since: dict[str, float] = {}
    for e in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        if e.step_key and (e.message or "").startswith(BLOCKED):
            since.setdefault(e.step_key, e.timestamp)
    return since


def _overlapping(first: dict[str, Interval], second: dict[str, Interval]) -> list[str]:
    """Steps both runs executed whose two executions overlap in time."""
    return sorted(k for k in first.keys() & second.keys() if not _apart(first[k], second[k]))


def _apart(a: Interval, b: Interval) -> bool:
    return a[1] <= b[0] or b[1] <= a[0]


def _waits(instance: DagsterInstance, run_ids: list[str]) -> dict[str, float]:
    """step key of each wait -> seconds from the first "blocked" event to the step's start."""
    waited = {}
    for run_id in run_ids:
        starts = _intervals(instance, run_id)
        for step, since in _blocked_since(instance, run_id).items():
            if step in starts:
                waited[step] = round(starts[step][0] - since, 2)
    return waited


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


def _appends(lake: Path) -> dict[str, int | None]:
    """raw table -> the raw ingest's last Delta txn version there (one per claimed append)."""
    return {
        c.table: DeltaTable(str(lake / "raw" / c.table)).transaction_version(
            f"lakehouse raw ingest: {c.table}"
        )
        for c in RAW_TABLES
    }


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
    # Each raw table took one claimed append, as a single run's did: nothing was appended again
    # (a second would carry the ingest's Delta txn at version 2).
    assert _appends(lake) == _appends(reference)
    assert set(_appends(lake).values()) <= {1, None}, _appends(lake)
    # How the two runs met, read from their steps' start and end times (not asserted here: two
    # claims of a free slot in the same instant can both succeed on SQLite, and the Delta claim
    # is what keeps rows once then; the next test holds a pool to observe the wait itself).
    with DagsterInstance.from_config(str(home)) as instance:
        run_ids = [r.run_id for r in instance.get_runs()]
        first, second = (_intervals(instance, r) for r in run_ids)
        waits = _waits(instance, run_ids)
    both, overlapping = first.keys() & second.keys() & RAW_STEPS, _overlapping(first, second)
    record(
        "concurrency_raw",
        runs_at_once=2,
        raw_tables=len(RAW_TABLES),
        rows=rows,
        duplicated_rows=duplicated,
        pooled_steps=len(both),
        pooled_steps_waited=len(both) - len(overlapping),  # one run's began after the other's
        pooled_steps_overlapping=len(overlapping),
        steps_overlapping=overlapping,
        steps_blocked_by_a_pool=len(waits),
        longest_wait_s=max(waits.values(), default=0.0),
    )


def _until(what: str, probe: Callable[[], T | None], timeout: float = 600) -> T:
    """Poll `probe` until it answers; the timeout only keeps a hang from lasting forever."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"waited {timeout}s for {what}")


def _in_flight(instance: DagsterInstance, run_id: str) -> set[str]:
    """Steps the run started and has not ended."""
    return {s.step_key for s in instance.get_run_step_stats(run_id) if s.end_time is None}


def test_a_second_raw_run_waits_for_the_pool_the_first_holds(tmp_path, company):
    """The first raw run is held inside its first step (paused at its first Delta commit, so it
    holds that step's pool). A second run of the same assets does every other table, and for
    the held one waits: no step of the two runs executes at the same time as the same step of
    the other, and the held step of the second starts only after the first's ended."""
    home = instance_home(tmp_path)
    lake = tmp_path / "lake"
    env = lake_env(lake, company, home)
    gate = tmp_path / "gate"
    paused = gate.with_name("gate.paused")
    logs = [tmp_path / "first.err", tmp_path / "second.err"]
    procs: list[subprocess.Popen] = []

    def start(args: list[str], log: Path) -> subprocess.Popen:
        with log.open("w") as err:  # a file: a waiting run's stderr must never fill a pipe
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(DRIVE), *args],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
            )
        return procs[-1]

    try:
        with DagsterInstance.from_config(str(home)) as instance:
            first = start(["raw", "--pause", str(gate)], logs[0])
            _until(
                "the first run to pause in its step",
                lambda: paused.exists() or first.poll() is not None,
            )
            assert first.poll() is None, logs[0].read_text()[-2000:]
            [first_id] = [r.run_id for r in instance.get_runs()]
            [held] = _until("the held step", lambda: _in_flight(instance, first_id))

            second = start(["raw"], logs[1])
            second_id = _until(
                "the second run",
                lambda: next((r.run_id for r in instance.get_runs() if r.run_id != first_id), None),
            )

            def at_the_held_step() -> bool:
                """The second run ended every step it could without the held one, and came to
                the held step: it waits for its pool (or, with no pool, has run it)."""
                if second.poll() is not None:
                    return True
                done = _intervals(instance, second_id).keys()
                came = held in _blocked_since(instance, second_id) or held in done
                return came and RAW_STEPS - {held, "raw__quarantine"} <= done

            _until("the second run to come to the held step", at_the_held_step)
            assert first.poll() is None  # still held: everything so far ran beside it
            gate.touch()
            outs = _finish([first, second])
            assert [p.returncode for p in outs] == [0, 0], [log.read_text()[-2000:] for log in logs]

            steps = {r: _intervals(instance, r) for r in (first_id, second_id)}
            blocked = _blocked_since(instance, second_id)
            waits = _waits(instance, [first_id, second_id])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()

    ran_first, ran_second = steps[first_id], steps[second_id]
    assert ran_first.keys() == ran_second.keys() == RAW_STEPS
    assert _overlapping(ran_first, ran_second) == []
    # the held step: the second run found its pool full, and started it after the first ended
    assert held in blocked
    assert ran_second[held][0] >= ran_first[held][1]
    rows, duplicated = _duplicates(lake)
    assert duplicated == 0
    record(
        "concurrency_raw_pool_wait",
        runs_at_once=2,
        steps_per_run=len(RAW_STEPS),
        steps_overlapping=len(_overlapping(ran_first, ran_second)),
        held_step=held,
        second_run_waited_s=waits[held],
        held_step_gap_s=round(ran_second[held][0] - ran_first[held][1], 2),
        steps_that_waited_for_a_pool=sorted(waits),
        rows=rows,
        duplicated_rows=duplicated,
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
    from resources.destinations import SQLiteDestination

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
