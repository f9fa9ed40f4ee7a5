"""A killed run never blocks the next one; a live one is never taken for dead. Each run is a
process of its own (drive.py) on one persistent SQLite instance with the project's pools, and no
daemon: nothing but the runs themselves (assets/dead_runs.py) frees the slot of a dead run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from assets.dead_runs import run_processes
from faultkit import DRIVE, ROOT, drive, instance_home, lake_content, lake_env, record

pytestmark = pytest.mark.faults

# The property is "does not hang", not a speed: the re-run of a 40-account company's raw layer
# takes about 30 s on 2 cores; before the fix it waited forever.
RERUN_TIMEOUT = 300
T = TypeVar("T")


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> Path:
    from sample_company.generate import generate

    landing = tmp_path_factory.mktemp("company") / "landing"
    generate(landing, accounts=40, days=60, seed=5)
    return landing


@pytest.fixture(scope="module")
def reference(tmp_path_factory, company) -> tuple[dict, float]:
    """The raw layer of one uninterrupted run, and how long that run took."""
    lake = tmp_path_factory.mktemp("reference") / "lake"
    started = time.monotonic()
    single = drive("raw", "--ephemeral", env=lake_env(lake, company))
    assert single.returncode == 0, single.stderr[-2000:]
    return lake_content(lake / "raw"), time.monotonic() - started


def _until(what: str, probe: Callable[[], T | None], timeout: float = 300) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"waited {timeout}s for {what}")


def _pools(instance: DagsterInstance) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(run id -> pools whose slot it holds, run id -> pools it waits for)."""
    storage = instance.event_log_storage
    held: dict[str, set[str]] = {}
    waiting: dict[str, set[str]] = {}
    for pool, info in storage.get_concurrency_infos(list(storage.get_concurrency_keys())).items():
        for slot in info.claimed_slots:
            held.setdefault(slot.run_id, set()).add(pool)
        for step in info.pending_steps:
            if step.assigned_timestamp is None:
                waiting.setdefault(step.run_id, set()).add(pool)
    return held, waiting


def _only_waiting(instance: DagsterInstance, others: set[str], steady: float = 3.0) -> str:
    """The id of a run (not in `others`) that holds no slot, runs no step and waits for a pool,
    and has for `steady` seconds: a run stuck waiting, not one between two steps."""
    since: dict[str, float] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        held, waiting = _pools(instance)
        now = time.monotonic()
        idle = {
            run_id
            for run_id in set(waiting) - others - set(held)
            if not [p for p in run_processes(instance, run_id) if p.step_key]
        }
        since = {run_id: since.get(run_id, now) for run_id in idle}
        for run_id, first in since.items():
            if now - first >= steady:
                return run_id
        time.sleep(0.2)
    pytest.fail("no run came to only wait for a pool")


@pytest.fixture
def start() -> Iterator[Callable[[list[str], dict[str, str], Path], subprocess.Popen]]:
    """drive.py in the background, its stderr (where a waiting run names the holder) to a log;
    whatever still runs when the test ends is killed (a paused holder would wait forever)."""
    started: list[subprocess.Popen] = []

    def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with log.open("w") as err:
            started.append(
                subprocess.Popen(
                    [sys.executable, str(DRIVE), *args],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
            )
        return started[-1]

    yield _start
    for p in started:
        if p.poll() is None:
            p.kill()
            p.communicate()


def _same_as(reference: dict, lake: Path) -> list[str]:
    ours = lake_content(lake / "raw")
    assert ours.keys() == reference.keys()
    return [name for name in ours if not ours[name].equals(reference[name])]


def test_a_killed_run_never_blocks_the_next_one(tmp_path, company, reference, start):
    """SIGKILL a raw run while it holds a pool slot, then run the same assets again: the re-run
    finds the dead run (its process a zombie still: killed, not yet waited for), marks it failed
    naming the pid, frees its slot, and finishes; the lake equals an uninterrupted run's."""
    home = instance_home(tmp_path)
    lake = tmp_path / "lake"
    env = lake_env(lake, company, home)
    started = time.monotonic()
    first = start(["raw"], env, tmp_path / "first.err")
    with DagsterInstance.from_config(str(home)) as instance:
        held = _until("the first run to hold a pool slot", lambda: _pools(instance)[0])
        first.send_signal(signal.SIGKILL)
        killed_after = time.monotonic() - started
        [(dead_id, dead_pools)] = held.items()

        begun = time.monotonic()
        try:
            rerun = drive("raw", env=env, timeout=RERUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the re-run still waited for the killed run's pools after {RERUN_TIMEOUT}s"
            )
        rerun_seconds = time.monotonic() - begun
        first.wait()
        assert rerun.returncode == 0, rerun.stderr[-2000:]

        dead = instance.get_run_by_id(dead_id)
        assert dead.status == DagsterRunStatus.FAILURE
        failure = instance.all_logs(dead_id, of_type=DagsterEventType.RUN_FAILURE)[-1]
        assert f"pid {first.pid} no longer running" in failure.dagster_event.message
        assert _pools(instance) == ({}, {})  # no slot held, no step waiting
        [rerun_id] = [
            line.split()[1] for line in rerun.stdout.splitlines() if line.startswith("run")
        ]
        assert instance.get_run_by_id(rerun_id).status == DagsterRunStatus.SUCCESS

    content, reference_seconds = reference
    assert _same_as(content, lake) == []
    record(
        "dead_run_killed",
        killed_after_s=round(killed_after, 1),
        pools_held_by_killed_run=sorted(dead_pools),
        rerun_s=round(rerun_seconds, 1),
        uninterrupted_run_s=round(reference_seconds, 1),
        rerun_timeout_s=RERUN_TIMEOUT,
        killed_run_status=dead.status.value,
        killed_run_message=failure.dagster_event.message,
        slots_held_after=0,
        raw_tables_equal_to_uninterrupted=len(content),
    )


def test_a_live_holder_is_named_never_reaped_and_a_waiting_run_stops_on_sigterm(
    tmp_path, company, reference, start
):
    """A run holds a pool inside its step (paused at its first commit, alive). A second run of
    the same assets waits for that pool: it says who holds it (run, step, pid, alive) and does
    not fail it. A third run waiting behind it exits on SIGTERM, canceled. Once the holder goes
    on, the holder and the second run both succeed."""
    home = instance_home(tmp_path)
    lake = tmp_path / "lake"
    env = lake_env(lake, company, home)
    gate = tmp_path / "gate"
    holder = start(["raw", "--pause", str(gate)], env, tmp_path / "holder.err")
    paused = gate.with_name("gate.paused")
    with DagsterInstance.from_config(str(home)) as instance:
        _until("the holder to pause in its step", paused.exists)
        [(holder_id, pools)] = _until("the holder's slot", lambda: _pools(instance)[0]).items()
        waiter_log, third_log = tmp_path / "waiter.err", tmp_path / "third.err"
        waiter = start(["raw"], env, waiter_log)
        said = f"held by run {holder_id}"
        line = _until(
            "the waiting run to name the holder",
            lambda: next((x for x in waiter_log.read_text().splitlines() if said in x), None),
        )
        assert "alive" in line and f"step {next(iter(pools)).replace('/', '__')}" in line, line

        waiter_id = next(r for r in _pools(instance)[1] if r != holder_id)
        third = start(["raw", *pools], env, third_log)  # the held asset only: it waits at once
        # SIGTERM while it runs a step fails that step at once (Dagster's own handling); here it
        # comes while the run only waits, which Dagster defers to a step start that never comes.
        third_id = _only_waiting(instance, {holder_id, waiter_id})
        third.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            code = third.wait(timeout=60)
        except subprocess.TimeoutExpired:
            third.kill()
            pytest.fail("a run waiting for a pool ignored SIGTERM for 60 s")
        stop_seconds = time.monotonic() - signalled
        assert code == 128 + signal.SIGTERM, third_log.read_text()[-2000:]
        assert instance.get_run_by_id(third_id).status == DagsterRunStatus.CANCELED
        assert third_id not in _pools(instance)[1]

        # Never reaped: every run that started (two) and every look of two watchdogs judged the
        # holder alive.
        assert instance.get_run_by_id(holder_id).status == DagsterRunStatus.STARTED
        assert waiter.poll() is None and holder.poll() is None
        gate.touch()
        outs = [p.communicate(timeout=RERUN_TIMEOUT) for p in (holder, waiter)]
        assert [holder.returncode, waiter.returncode] == [0, 0], [e for _, e in outs]
        assert f"run {waiter_id} True" in outs[1][0]
        engine = instance.all_logs(waiter_id, of_type=DagsterEventType.ENGINE_EVENT)
        named = [e.message for e in engine if said in (e.message or "")]
        assert named and "alive" in named[0], [e.message for e in engine]
        for run_id in (holder_id, waiter_id):
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
        assert _pools(instance) == ({}, {})

    content, _ = reference
    assert _same_as(content, lake) == []
    record(
        "dead_run_live_holder",
        holder_paused_in=paused.read_text(),
        pool=sorted(pools),
        waiting_run_message=named[0],
        holder_status_while_others_waited="STARTED",
        sigterm_to_exit_s=round(stop_seconds, 1),
        sigterm_exit_code=code,
        runs_succeeded_after_holder_went_on=2,
        raw_tables_equal_to_uninterrupted=len(content),
    )
