"""Runs whose process died: found and failed without the daemon, so their pool slots come back.

A run killed with SIGKILL (or lost with its machine) stays STARTED and keeps the concurrency slots
of its pools (assets/concurrency.py). Nothing marked it failed: `make demo`, `make bench`, the
tests and `dagster asset materialize` run without the daemon, and even the daemon's run monitoring
cannot tell, since the default run launcher does not check run workers' health. The next run of
the same asset waited forever ("Step blocked by limit for pool ..."). So:

- `reap(instance)` marks failed every running run whose processes are all dead, and frees the
  slots of any run without a live process. Liveness comes from the event log, which records the
  pid of every event: the run's RUN_START and each step started and not ended.
- `execute_in_process(job, instance, ...)` reaps before the run and keeps a `Watchdog` while it
  runs: how `build_graph` (`make demo`, `make bench`) and tests/faults/drive.py launch runs.
- `reaping(executor)` does the same inside the runs Dagster launches (UI, CLI): the executor of
  platform/definitions.py. (`execute_in_process` ignores a job's executor, hence both.)
- `dead_runs_sensor` reaps every 30 s under the daemon (`make dev`): its run queue holds a run
  whose pools are full before it starts, so the run itself cannot look.

While a run waits for a pool, the watchdog names the run holding it (step, since when, pid,
alive or not) on the waiting run, reaps the holder once its process dies, hands the run a slot
Dagster's queue left free (`unblock`), and ends the waiting run on SIGTERM/SIGINT. Dagster's
in-process executor defers an interrupt to the next step start, which a waiting run never
reaches, so it ignored both (and spins a core: it polls the pool without sleeping, Dagster's own
behaviour).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    ExecuteInProcessResult,
    Executor,
    ExecutorDefinition,
    InitExecutorContext,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.runs import InMemoryRunStorage, SqliteRunStorage
from dagster._utils.interrupts import check_captured_interrupt

from assets.concurrency import RUNNING

if TYPE_CHECKING:
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan
    from dagster._core.execution.retries import RetryMode
    from dagster._core.execution.step_dependency_config import StepDependencyConfig

HOST_TAG = "lakehouse/host"  # where the run's process lives (see `on_this_machine`)
# A process that started later than the event naming its pid reuses the pid of a dead one. The
# slack covers wall-clock steps between the event and now (the start time is computed in today's
# clock): a live run must never look reused; a reusing process almost always started much later.
CLOCK_SLACK = 60.0
POLL = 1.0  # seconds between the watchdog's looks at its run

log = logging.getLogger("lakehouse.dead_runs")

_STARTS = {DagsterEventType.STEP_START, DagsterEventType.STEP_RESTARTED}
_ENDS = {
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_SKIPPED,
    DagsterEventType.STEP_UP_FOR_RETRY,
}


@dataclass(frozen=True)
class Process:
    """A process a run's event log names: its pid and when it logged there."""

    pid: int
    seen_at: float
    step_key: str | None  # None: the run's own process (RUN_START)


@dataclass(frozen=True)
class Reaped:
    run_id: str
    pids: tuple[int, ...]
    pools: tuple[str, ...]  # pools it held a slot of, now free
    failed: bool  # it was running and is now marked failed


@dataclass(frozen=True)
class Wait:
    """Step `step_key` of the waiting run waits for `pool`, whose slot `holder` holds (None: no
    other run holds it)."""

    step_key: str
    pool: str
    holder: str | None
    holder_step: str | None
    since: datetime | None


def process_alive(pid: int, seen_at: float) -> bool:
    """Whether `pid` runs and is still the process that logged at `seen_at`. A zombie is dead
    (killed, not yet waited for); a process started after `seen_at` reuses a dead one's pid. On a
    system without /proc only existence is checked."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3
    if fields[0] in ("Z", "X"):
        return False
    started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time
    return started <= seen_at + CLOCK_SLACK


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("no btime in /proc/stat")


def run_processes(instance: DagsterInstance, run_id: str) -> list[Process]:
    """The run's own process (RUN_START, first) and those of its steps started and not ended."""
    entries = instance.all_logs(run_id, of_type={DagsterEventType.RUN_START, *_STARTS, *_ENDS})
    run: list[Process] = []
    steps: dict[str, Process] = {}
    for e in entries:
        event = e.dagster_event
        if event is None or event.pid is None:
            continue
        kind = event.event_type
        if kind == DagsterEventType.RUN_START:
            run = [Process(event.pid, e.timestamp, None)]
        elif kind in _STARTS and e.step_key:
            steps[e.step_key] = Process(event.pid, e.timestamp, e.step_key)
        elif kind in _ENDS and e.step_key:
            steps.pop(e.step_key, None)
    return run + list(steps.values())


def on_this_machine(instance: DagsterInstance, run: DagsterRun) -> bool:
    """Whether the run's pids can be judged here. A pid means something only on the machine
    that ran it: an instance on SQLite (the local profile) or in memory is one machine's, so all
    its runs are; a shared instance (PostgreSQL) holds runs of many machines, so only the runs
    tagged with this host at launch are (HOST_TAG)."""
    if isinstance(instance.run_storage, (SqliteRunStorage, InMemoryRunStorage)):
        return True
    return run.tags.get(HOST_TAG) == socket.gethostname()


def is_alive(instance: DagsterInstance, run: DagsterRun) -> bool | None:
    """True while any of the run's processes lives, False when all died, None when it cannot be
    told from here: another machine's run, a run not started yet (STARTING: run monitoring's
    start timeout is for those), or, on a shared instance, a step on another worker (Celery,
    k8s: its pid is not the run's), until that step ends."""
    processes = run_processes(instance, run.run_id)
    if not processes or processes[0].step_key is not None or not on_this_machine(instance, run):
        return None
    own = processes[0].pid
    local = isinstance(instance.run_storage, (SqliteRunStorage, InMemoryRunStorage))
    if not local and any(p.pid != own for p in processes):
        return None
    return any(process_alive(p.pid, p.seen_at) for p in processes)


def _pools_by_run(instance: DagsterInstance) -> dict[str, tuple[set[str], set[str]]]:
    """Run id -> (pools it holds a slot of, pools it waits for)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    out: dict[str, tuple[set[str], set[str]]] = {}
    for pool, info in storage.get_concurrency_infos(list(storage.get_concurrency_keys())).items():
        for slot in info.claimed_slots:
            out.setdefault(slot.run_id, (set(), set()))[0].add(pool)
        for step in info.pending_steps:
            if step.assigned_timestamp is None:
                out.setdefault(step.run_id, (set(), set()))[1].add(pool)
    return out


def reap(instance: DagsterInstance, exclude: str | None = None) -> list[Reaped]:
    """Mark failed each running run (but `exclude`) whose processes all died, naming the pids,
    and free the pool slots of every run without a live process. A run that may be alive, or
    cannot be judged from here, is left alone."""
    slots = _pools_by_run(instance)
    runs = {r.run_id: r for r in instance.get_runs(filters=RunsFilter(statuses=RUNNING))}
    ended = set(slots) - set(runs)  # finished runs still holding slots (force-terminated, ...)
    if ended:
        runs.update({r.run_id: r for r in instance.get_runs(RunsFilter(run_ids=list(ended)))})
    reaped = []
    for run_id, run in runs.items():
        if run_id == exclude or is_alive(instance, run) is not False:
            continue
        pids = tuple(dict.fromkeys(p.pid for p in run_processes(instance, run_id)))
        held, waited = slots.get(run_id, ((), ()))
        pools = tuple(sorted(held))
        named = ", ".join(str(p) for p in pids)
        current = instance.get_run_by_id(run_id)
        failed = current is not None and current.status in RUNNING
        if failed:
            instance.report_run_failed(
                current,
                message=(
                    f"pid {named} no longer running: the run's process died without ending "
                    f"the run (killed?). Marked failed by pid {os.getpid()} on "
                    f"{socket.gethostname()}"
                    + (f", and its slots of pools {', '.join(pools)} freed." if pools else ".")
                ),
            )
        if held or waited:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        log.warning(
            "run %s: pid %s no longer running; %s%s",
            run_id,
            named,
            "marked failed" if failed else f"was {run.status.value}",
            f", freed its slots of pools {', '.join(pools)}" if pools else "",
        )
        reaped.append(Reaped(run_id, pids, pools, failed))
    return reaped


def waits(instance: DagsterInstance, run_id: str) -> list[Wait]:
    """The pools the run waits for, with the other runs holding their slots."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    out = []
    for pool, info in storage.get_concurrency_infos(list(storage.get_concurrency_keys())).items():
        since = {(p.run_id, p.step_key): p.assigned_timestamp for p in info.pending_steps}
        holders = [slot for slot in info.claimed_slots if slot.run_id != run_id]
        for step in info.pending_steps:
            if step.run_id != run_id or step.assigned_timestamp is not None:
                continue
            out += [
                Wait(step.step_key, pool, h.run_id, h.step_key, since.get((h.run_id, h.step_key)))
                for h in holders
            ] or [Wait(step.step_key, pool, None, None, None)]
    return out


def unblock(instance: DagsterInstance, pool: str) -> bool:
    """Hand a free slot of `pool` to the first step queued for it. Dagster's SQL slot queue can
    lose a wake-up: a step that queues in the instant the holder frees the slot is queued after
    the freeing run looked for a step to hand the slot to, and waits with the slot free forever
    (two raw runs at once hung so in 1 of 12 tries, 2026-12-06). Only when the slot is free and
    promised to no step; True when it handed one."""
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage) or not storage.has_unassigned_slots(pool):
        return False
    storage.assign_pending_steps([pool])
    return True


def describe(instance: DagsterInstance, wait: Wait, reaped: list[Reaped]) -> tuple[str, str]:
    """(the holder's state: alive, dead or unknown; a message naming who holds the pool a step
    waits for, and what to do about it)."""
    assert wait.holder is not None, "a pool no other run holds has no holder to describe"
    run = instance.get_run_by_id(wait.holder)
    pids = ", ".join(
        str(p) for p in dict.fromkeys(p.pid for p in run_processes(instance, wait.holder))
    )
    since = f"since {wait.since:%Y-%m-%d %H:%M:%S} UTC, " if wait.since else ""
    head = (
        f"Step {wait.step_key} waits for pool {wait.pool}, held by run {wait.holder} "
        f"(step {wait.holder_step}, {since}pid {pids or 'unknown'}"
    )
    stuck = (
        "It goes on when that step ends; if that run is stuck, terminate it in the UI "
        "(Runs > the run > Terminate)."
    )
    alive = is_alive(instance, run) if run is not None else None
    if alive is False or any(r.run_id == wait.holder for r in reaped):
        return "dead", (
            f"{head}, no longer running). That run's process died: it was marked failed and its "
            "slots freed, so this step goes on."
        )
    if alive:
        return "alive", f"{head}, alive). {stuck}"
    where = run.tags.get(HOST_TAG, "another machine") if run else "another machine"
    return "unknown", f"{head}, on {where}, not checked from here). {stuck}"


class Watchdog:
    """While run `run_id` executes in this process, a thread that looks at it every POLL
    seconds. When the run waits for a pool, it reaps dead runs (so a holder that dies meanwhile
    frees the pool), says once per holder who holds it, on the run and on stderr, hands the run
    a slot left free (`unblock`), and, if a SIGTERM/SIGINT came while the run only waits, cancels
    the run and ends the process."""

    def __init__(self, instance: DagsterInstance, run_id: str, poll: float = POLL) -> None:
        self.instance, self.run_id, self.poll = instance, run_id, poll
        self._stop = threading.Event()
        self._said: set[tuple[str, str, str, str]] = set()
        self._interrupted = 0
        self._free: set[str] = set()  # pools waited for with no other run holding them
        self._thread = threading.Thread(target=self._loop, name="dead-runs-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.look()
            except Exception:  # never let the watchdog take a run down
                log.debug("dead-runs watchdog: look failed", exc_info=True)

    def look(self) -> None:
        current = waits(self.instance, self.run_id)
        if not current:
            self._interrupted, self._free = 0, set()
            return
        run = self.instance.get_run_by_id(self.run_id)
        if run is None:
            return
        reaped = reap(self.instance, exclude=self.run_id)
        free = {w.pool for w in current if w.holder is None}
        for pool in free & self._free:  # free on two looks in a row: not a slot changing hands
            if unblock(self.instance, pool):
                message = (
                    f"Pool {pool} had a free slot while this run's step waited for it (Dagster's "
                    "slot queue missed the step when the slot was freed): handed it the slot."
                )
                self.instance.report_engine_event(message, run)
                log.warning("run %s: %s", self.run_id, message)
        self._free = free
        for wait in current:
            if wait.holder is None:
                continue
            state, message = describe(self.instance, wait, reaped)
            said = (wait.step_key, wait.pool, wait.holder, state)
            if said in self._said:
                continue
            self._said.add(said)
            self.instance.report_engine_event(message, run, step_key=wait.step_key)
            log.warning("run %s: %s", self.run_id, message)
        # Dagster's interrupt handler only records a SIGTERM/SIGINT until the next step starts;
        # seen on two looks in a row with no step running, the run is stuck waiting: end it.
        self._interrupted = self._interrupted + 1 if check_captured_interrupt() else 0
        if self._interrupted >= 2 and not [
            p for p in run_processes(self.instance, self.run_id) if p.step_key
        ]:
            message = (
                f"Interrupted (SIGTERM/SIGINT) while waiting for pool {current[0].pool}: "
                f"canceled, and the process (pid {os.getpid()}) exits."
            )
            self.instance.report_run_canceled(run, message=message)
            self.instance.event_log_storage.free_concurrency_slots_for_run(self.run_id)
            log.warning("run %s: %s", self.run_id, message)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(128 + signal.SIGTERM)


def execute_in_process(
    job: Any, instance: DagsterInstance, **kwargs: Any
) -> ExecuteInProcessResult:
    """`job.execute_in_process` on `instance`, after reaping dead runs, tagged with this host,
    under a watchdog."""
    reap(instance)
    run_id = str(uuid.uuid4())
    tags = {**(kwargs.pop("tags", None) or {}), HOST_TAG: socket.gethostname()}
    with Watchdog(instance, run_id):
        return job.execute_in_process(instance=instance, run_id=run_id, tags=tags, **kwargs)


class ReapingExecutor(Executor):
    """`inner`, run after reaping dead runs and under a watchdog (see `reaping`)."""

    def __init__(self, inner: Executor) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        """What an engine asks of its own executor (dagster-celery's loop calls `app_args()`
        on the run's executor): the inner executor's."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def retries(self) -> RetryMode:
        return self.inner.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self.inner.step_dependency_config

    def get_step_event_or_retry_event(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.get_step_event_or_retry_event(*args, **kwargs)

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        instance, run = plan_context.instance, plan_context.dagster_run
        if HOST_TAG not in run.tags:
            instance.add_run_tags(run.run_id, {HOST_TAG: socket.gethostname()})
        for r in reap(instance, exclude=run.run_id):
            instance.report_engine_event(
                f"Run {r.run_id} had no live process (pid {', '.join(map(str, r.pids))}): "
                + ("marked failed" if r.failed else "already ended")
                + (f", its slots of pools {', '.join(r.pools)} freed." if r.pools else "."),
                run,
            )
        with Watchdog(instance, run.run_id):
            yield from self.inner.execute(plan_context, execution_plan)


def reaping(executor_def: ExecutorDefinition) -> ExecutorDefinition:
    """`executor_def` (same name and config) whose runs reap dead runs when they start and keep
    a watchdog while they run: the runs Dagster launches (UI, `dagster asset materialize`)."""
    creation = executor_def.executor_creation_fn
    if creation is None:
        raise ValueError(f"executor {executor_def.name} has no creation function")

    def create(init_context: InitExecutorContext) -> Executor:
        return ReapingExecutor(creation(init_context))

    return ExecutorDefinition(
        name=executor_def.name,
        config_schema=executor_def.config_schema,
        requirements=executor_def.get_requirements,
        executor_creation_fn=create,
        description=executor_def.description,
    )


@sensor(
    name="dead_runs_sensor",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Runs whose process died -> failed, their pool slots freed, so the queued runs "
    "waiting for those pools start (assets/dead_runs.py).",
)
def dead_runs_sensor(context: SensorEvaluationContext) -> SkipReason:
    """The daemon's run queue keeps a run whose pools are full from starting: a dead run
    holding them would keep it queued forever, since the default run launcher cannot tell the
    daemon's run monitoring that a run worker died."""
    reaped = reap(context.instance)
    if not reaped:
        return SkipReason("no dead run")
    return SkipReason(
        "; ".join(
            f"run {r.run_id} (pid {', '.join(map(str, r.pids))} dead) "
            + ("failed" if r.failed else "had ended")
            + (f", freed {', '.join(r.pools)}" if r.pools else "")
            for r in reaped
        )
    )
