"""Two runs of the same assets at once: neither corrupts nor duplicates; one waits or fails
cleanly. Each run is a separate process, as two launched runs of a deployment are."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> Path:
    from sample_company.generate import generate

    landing = tmp_path_factory.mktemp("company") / "landing"
    generate(landing, accounts=40, days=60, seed=5)
    return landing


def _run_twice_at_once(args: list[str], env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(DRIVE), *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
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
    days race; delta-rs refuses the loser's commit (or the second simply replaces the first)."""
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
    assert codes in ([0, 0], [0, 1]), [r.stderr[-2000:] for r in runs]
    for r in runs:
        if r.returncode:
            assert "concurrent transaction" in (r.stdout + r.stderr), r.stderr[-2000:]

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
        failed_cleanly=codes.count(1),
        duplicated_rows=duplicated,
    )
