"""Dead runs (assets/dead_runs.py): a run whose processes all died is failed and its pool slots
freed; a run with a live process never is. The runs here are written into a SQLite instance by
hand, with the pids of real processes: this one (alive), a child that exited (dead), a child
not waited for (a zombie), and a child started after the event naming it (a reused pid)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    build_sensor_context,
    in_process_executor,
)

from assets.dead_runs import (
    ReapingExecutor,
    Watchdog,
    dead_runs_sensor,
    describe,
    is_alive,
    process_alive,
    reap,
    reaping,
    waits,
)
from conftest import load_definitions

POOL = "raw/crm_accounts"


@pytest.fixture
def instance(tmp_path) -> Iterator[DagsterInstance]:
    overrides = {"concurrency": {"pools": {"default_limit": 1}}}
    with DagsterInstance.local_temp(str(tmp_path), overrides=overrides) as instance:
        instance.event_log_storage.set_concurrency_slots(POOL, 1)
        yield instance


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _run(instance: DagsterInstance, pid: int, at: float | None = None, step: str | None = "s"):
    """A STARTED run whose RUN_START (and step `step`'s STEP_START) name `pid` at time `at`."""
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="j", run_id=run_id, status=DagsterRunStatus.STARTED))
    at = time.time() if at is None else at
    kinds = [DagsterEventType.RUN_START] + ([DagsterEventType.STEP_START] if step else [])
    for kind in kinds:
        event = DagsterEvent(
            kind.value, job_name="j", pid=pid, step_key=step if kind.value == "STEP_START" else None
        )
        instance.report_dagster_event(event, run_id=run_id, timestamp=at)
    return instance.get_run_by_id(run_id)


def _holders(instance: DagsterInstance) -> list[str]:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    return [slot.run_id for slot in info.claimed_slots]


def test_process_liveness_sees_dead_zombie_and_reused_pids():
    assert process_alive(os.getpid(), time.time())
    assert not process_alive(_dead_pid(), time.time())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(1.0)  # exited, not waited for: a zombie
    try:
        assert not process_alive(zombie.pid, time.time())
    finally:
        zombie.wait()
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_alive(later.pid, time.time())
        # An event an hour before the process started named a dead process with the same pid.
        assert not process_alive(later.pid, time.time() - 3600)
    finally:
        later.kill()
        later.wait()


def test_a_dead_holder_is_failed_naming_its_pid_and_its_slot_freed(instance):
    pid = _dead_pid()
    dead = _run(instance, pid)
    assert instance.event_log_storage.claim_concurrency_slot(POOL, dead.run_id, "s").is_claimed

    reaped = reap(instance)

    assert [r.run_id for r in reaped] == [dead.run_id] and reaped[0].pools == (POOL,)
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    failure = instance.all_logs(dead.run_id, of_type=DagsterEventType.RUN_FAILURE)[0]
    assert f"pid {pid} no longer running" in failure.dagster_event.message
    assert _holders(instance) == []
    assert reap(instance) == []  # once


def test_the_sensor_frees_the_pools_a_queued_run_waits_for(instance):
    """Under the daemon, the run queue keeps a run from starting while its pool is full."""
    pid = _dead_pid()
    dead = _run(instance, pid)
    instance.event_log_storage.claim_concurrency_slot(POOL, dead.run_id, "s")
    skipped = dead_runs_sensor(build_sensor_context(instance=instance))
    assert f"run {dead.run_id} (pid {pid} dead) failed, freed {POOL}" in skipped.skip_message
    assert _holders(instance) == []
    assert dead_runs_sensor(build_sensor_context(instance=instance)).skip_message == "no dead run"


def test_a_live_run_is_never_failed(instance):
    live = _run(instance, os.getpid())
    instance.event_log_storage.claim_concurrency_slot(POOL, live.run_id, "s")
    # The run's own process died, but a step still runs in a live one (a step's child process).
    split = _run(instance, _dead_pid(), step=None)
    instance.report_dagster_event(
        DagsterEvent("STEP_START", job_name="j", pid=os.getpid(), step_key="s"), split.run_id
    )
    # Not started yet (no RUN_START): nothing to judge by; run monitoring's start timeout is for it.
    starting = DagsterRun(job_name="j", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTING)
    instance.add_run(starting)

    assert reap(instance) == []
    for run in (live, split, starting):
        assert instance.get_run_by_id(run.run_id).status == run.status
    assert _holders(instance) == [live.run_id]
    assert is_alive(instance, live) and is_alive(instance, split)
    assert is_alive(instance, starting) is None


def test_a_waiting_run_learns_who_holds_its_pool(instance):
    holder = _run(instance, os.getpid(), step="raw__crm_accounts")
    instance.event_log_storage.claim_concurrency_slot(POOL, holder.run_id, "raw__crm_accounts")
    waiting = _run(instance, os.getpid(), step=None)
    instance.event_log_storage.claim_concurrency_slot(POOL, waiting.run_id, "raw__crm_accounts")

    [wait] = waits(instance, waiting.run_id)
    assert (wait.pool, wait.holder, wait.holder_step) == (POOL, holder.run_id, "raw__crm_accounts")
    state, message = describe(instance, wait, reaped=[])
    assert state == "alive"
    for part in (holder.run_id, f"pid {os.getpid()}", "alive", "terminate it in the UI"):
        assert part in message
    assert waits(instance, holder.run_id) == []


def test_a_step_queued_as_the_slot_was_freed_gets_the_slot(instance):
    """Dagster's lost wake-up: the step queued after the freeing run looked for one to hand the
    slot to, so it waits with the slot free. The watchdog hands it the slot on its second look."""
    waiting = _run(instance, os.getpid(), step=None)
    storage = instance.event_log_storage
    storage.add_pending_step(POOL, waiting.run_id, "raw__crm_accounts", should_assign=False)
    assert not storage.claim_concurrency_slot(POOL, waiting.run_id, "raw__crm_accounts").is_claimed
    [wait] = waits(instance, waiting.run_id)
    assert wait.holder is None

    watchdog = Watchdog(instance, waiting.run_id)
    watchdog.look()  # once: a slot may be changing hands
    assert not storage.claim_concurrency_slot(POOL, waiting.run_id, "raw__crm_accounts").is_claimed
    watchdog.look()
    assert storage.claim_concurrency_slot(POOL, waiting.run_id, "raw__crm_accounts").is_claimed
    engine = instance.all_logs(waiting.run_id, of_type=DagsterEventType.ENGINE_EVENT)
    assert any("had a free slot" in (e.message or "") for e in engine)


def test_the_executor_keeps_its_name_and_reaps():
    wrapped = reaping(in_process_executor)
    assert wrapped.name == in_process_executor.name
    assert wrapped.config_schema is in_process_executor.config_schema
    job = load_definitions().resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == "in_process"
    assert isinstance(job.executor_def.executor_creation_fn(_Init()), ReapingExecutor)


class _Init:
    """The little of InitExecutorContext the in-process executor reads."""

    executor_config = {"retries": {"enabled": {}}}
