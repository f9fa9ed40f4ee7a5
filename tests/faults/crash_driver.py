"""The crash suite's driver: the graph's runs as `make demo` runs them, in child processes that a
crash point kills with SIGKILL, and the re-run that resumes a killed run.

`python crash_driver.py` is a zygote: it imports the stack once (about 10 s), then reads one JSON
command per line on stdin, forks one child per command and answers with a JSON line holding the
child's exit status (negative: killed by that signal). A child starts from imported modules only:
no lake, Dagster instance or run state is shared with the zygote or with another child. Each
child opens the persistent Dagster instance of its `home` (SQLite under DAGSTER_HOME), so what a
killed run recorded (which steps finished) survives it.

Commands (`op`):
- `init`: create the instance of `home` (the suite copies a fresh one rather than create each).
- `run`: the phases of `build_graph` listed in `phases` (`before`: the layers before the events;
  `events`: each pending range of days, one run each; `after`: every layer after them), one
  Dagster run each, as `assets/events/runs.py` runs them; `snapshots` maps a phase to a folder
  the lake is copied to once the phase succeeded. `crash` arms one crash point (below).
- `resume`: what an operator does after a crash. The killed run is still `STARTED` in the
  instance (its worker died without a word): it is marked failed and its pool slots are given
  back, as Dagster's run monitoring does for a run whose worker died; then it is re-executed
  from failure (`ReexecutionOptions.from_failure`: the steps that did not finish, with the
  steps that finished as known state); then the phases listed in `then` run as usual (the
  remaining days, say).

Crash points (`crash`, each killing the process with SIGKILL on the `nth` matching call, 1 by
default, after writing `marker` so the test knows the point was reached):
- `{"at": "publish", "table": "raw/x", "when": "before" | "after"}`: at `LakeResource.publish`
  of that table, before it starts or after its Delta commit returned.
- `{"at": "parquet_commit", "table": "raw/x"}`: in a streamed append, after pyarrow wrote the
  Parquet files and before delta-rs commits them.
- `{"at": "salt"}`: creating the embedded PII salt, before its value is written.
- `{"at": "crm_row"}`: inside a CRM batch's transaction, after the nth row of the sync.
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import signal
import sys
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "platform" / "definitions.py"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
TEST_SALT = "5a17" * 16  # the embedded salt's "random" value: every process hashes alike

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# -- crash points ----------------------------------------------------------------------------------
def _die(marker: Path, what: str) -> None:
    """The crash: the marker says which point fired, then SIGKILL (no cleanup, no flush)."""
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, what.encode())
    os.fsync(fd)
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


class _Counter:
    """Fires on the nth call that matches."""

    def __init__(self, nth: int) -> None:
        self.nth, self.seen = nth, 0

    def hit(self) -> bool:
        self.seen += 1
        return self.seen == self.nth


def arm(crash: dict | None, marker: Path) -> None:
    """Install the crash point described by `crash` (none: a run without faults)."""
    import resources.pii as pii

    class Salt:  # deterministic "random" salt, so every lake hashes like the reference
        @staticmethod
        def token_hex(n: int) -> str:
            if crash and crash["at"] == "salt":
                _die(marker, "salt file created, value not written")
            return TEST_SALT[: 2 * n]

    pii.secrets = Salt
    if not crash:
        return
    at, count = crash["at"], _Counter(crash.get("nth", 1))
    what = json.dumps(crash, sort_keys=True)
    if at == "publish":
        _arm_publish(crash["table"], crash["when"], count, marker, what)
    elif at == "parquet_commit":
        _arm_parquet_commit(crash["table"], count, marker, what)
    elif at == "crm_row":
        _arm_crm(count, marker, what)
    elif at != "salt":
        raise ValueError(f"unknown crash point {at!r}")


def _arm_publish(table: str, when: str, count: _Counter, marker: Path, what: str) -> None:
    from resources.lake import LakeResource

    publish = LakeResource.publish

    def crashing(self, layer, name, data, **kwargs):
        fire = f"{layer}/{name}" == table and count.hit()
        if fire and when == "before":
            _die(marker, what)
        published = publish(self, layer, name, data, **kwargs)
        if fire:
            _die(marker, what)
        return published

    LakeResource.publish = crashing


def _arm_parquet_commit(table: str, count: _Counter, marker: Path, what: str) -> None:
    from deltalake import DeltaTable

    import resources.parquet_commit as pc

    def fires(uri: str) -> bool:
        return str(uri).rstrip("/").endswith("/" + table) and count.hit()

    create, append = pc.create_table_with_add_actions, DeltaTable.create_write_transaction

    def creating(path, *args, **kwargs):
        if fires(path):
            _die(marker, what)
        return create(path, *args, **kwargs)

    def appending(self, *args, **kwargs):
        if fires(self.table_uri):
            _die(marker, what)
        return append(self, *args, **kwargs)

    pc.create_table_with_add_actions = creating
    DeltaTable.create_write_transaction = appending


class _CountingConnection:
    """A SQLite connection that dies after the nth statement (inside the batch transaction)."""

    def __init__(self, con, count: _Counter, marker: Path, what: str) -> None:
        self._con, self._count, self._marker, self._what = con, count, marker, what

    def execute(self, *args):
        cursor = self._con.execute(*args)
        if args[0].lstrip().upper().startswith("INSERT") and self._count.hit():
            _die(self._marker, self._what)
        return cursor

    def __enter__(self):
        self._con.__enter__()
        return self

    def __exit__(self, *exc):
        return self._con.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._con, name)


def _arm_crm(count: _Counter, marker: Path, what: str) -> None:
    from resources.destinations import SQLiteDestination

    connect = SQLiteDestination._connect

    def connecting(self):
        return _CountingConnection(connect(self), count, marker, what)

    SQLiteDestination._connect = connecting


# -- the graph's runs ------------------------------------------------------------------------------
class Graph:
    """The runs of `assets/events/runs.build_graph`, one phase at a time."""

    def __init__(self, defs, instance, run_config: dict) -> None:
        self.defs, self.instance, self.run_config = defs, instance, run_config
        self.job = defs.resolve_implicit_global_asset_job_def()
        self.lake = defs.resources["lake"].process_config_and_initialize()
        self.pii = defs.resources["pii"].process_config_and_initialize()
        self.results: list = []

    def _run(self, selection, tags: dict | None = None, config: dict | None = None) -> bool:
        keys = list(selection.resolve(self.defs.resolve_asset_graph()))
        if keys:
            self.results.append(
                self.job.execute_in_process(
                    instance=self.instance,
                    asset_selection=keys,
                    tags=tags,
                    raise_on_error=False,
                    run_config=config or QUIET,
                )
            )
        return not self.results or self.results[-1].success

    def phase(self, name: str) -> bool:
        from dagster import AssetSelection

        from assets.events.mapping import load_mapping
        from assets.events.runs import (
            AFTER_EVENTS,
            BEFORE_EVENTS,
            EVENTS_KEY,
            first_day,
            pending_ranges,
            range_tags,
        )

        if name == "before":
            return self._run(BEFORE_EVENTS)
        if name == "after":
            return self._run(AFTER_EVENTS, config=self.run_config)
        ok = True
        for first, last in pending_ranges(
            self.lake, self.pii, load_mapping(), first_day(self.defs)
        ):
            ok = ok and self._run(AssetSelection.assets(EVENTS_KEY), range_tags(first, last))
        return ok

    def resume(self) -> dict:
        """Mark the runs whose worker died as failed, then re-execute the last from failure."""
        from dagster import DagsterRunStatus, ReexecutionOptions, execute_job
        from dagster._core.definitions.reconstruct import ReconstructableRepository

        dead = [
            r
            for r in self.instance.get_runs()  # newest first
            if r.status in (DagsterRunStatus.STARTED, DagsterRunStatus.STARTING)
        ]
        if not dead:
            raise RuntimeError("no killed run to resume")
        storage = self.instance.event_log_storage
        for run in dead:  # as run monitoring does: failed, and its pool slots given back
            self.instance.report_run_failed(run, message="run worker died (SIGKILL)")
            if storage.supports_global_concurrency_limits:
                storage.free_concurrency_slots_for_run(run.run_id)
        parent = dead[0]
        # The implicit asset job exists only inside its repository: point at the definitions
        # file, as the code location (workspace.yaml) does.
        job = ReconstructableRepository.for_file(
            str(DEFINITIONS), "defs", str(ROOT)
        ).get_reconstructable_job(self.job.name)
        result = execute_job(
            job,
            self.instance,
            tags={k: v for k, v in parent.tags.items() if k.startswith("dagster/asset_partition")},
            reexecution_options=ReexecutionOptions.from_failure(parent.run_id, self.instance),
        )
        self.results.append(result)
        steps = sorted(
            {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
        )
        return {"parent_run": parent.run_id, "reexecuted_steps": steps}


def _execute(cmd: dict) -> dict:
    """One command, in this process."""
    from dagster import DagsterInstance

    home = Path(cmd["home"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(ROOT / "platform" / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    if cmd["op"] == "init":
        with DagsterInstance.get():
            return {"success": True}
    os.environ["LAKEHOUSE_LAKE_ROOT"] = cmd["lake"]
    os.environ["LAKEHOUSE_LANDING_ROOT"] = cmd["landing"]
    defs = runpy.run_path(str(DEFINITIONS))["defs"]
    arm(cmd.get("crash"), Path(cmd.get("marker", home / "crash_marker")))
    out: dict = {}
    with DagsterInstance.get() as instance:
        graph = Graph(defs, instance, {**QUIET, **cmd.get("run_config", {})})
        ok = True
        if cmd["op"] == "resume":
            out.update(graph.resume())
            ok = graph.results[-1].success
        for phase in cmd.get("phases", []) + cmd.get("then", []):
            ok = ok and graph.phase(phase)
            if ok and phase in cmd.get("snapshots", {}):
                shutil.copytree(cmd["lake"], cmd["snapshots"][phase], symlinks=True)
        failed = [e.step_key for r in graph.results for e in r.all_events if e.is_step_failure]
    return {**out, "success": ok, "runs": len(graph.results), "failed_steps": failed}


def _child(cmd: dict) -> int:
    Path(cmd["log"]).parent.mkdir(parents=True, exist_ok=True)
    log = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        out = _execute(cmd)
        code = 0 if out["success"] else 1
    except BaseException:
        traceback.print_exc()
        out, code = {"success": False, "error": traceback.format_exc()}, 2
    Path(cmd["result"]).write_text(json.dumps(out, default=str))
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _preload() -> None:
    """Everything a run imports, once, before any fork (no lake or instance is opened)."""
    warnings.filterwarnings("ignore")
    import catboost  # noqa: F401
    import dagster  # noqa: F401
    import great_expectations  # noqa: F401
    import mlflow  # noqa: F401
    import splink  # noqa: F401

    runpy.run_path(str(DEFINITIONS))


def serve() -> None:
    """The zygote: one forked child per command line on stdin, one status line on stdout."""
    _preload()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os._exit(_child(cmd))
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"returncode": code}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--once":  # debugging: one command, no fork
        print(json.dumps(_execute(json.loads(sys.argv[2])), default=str))
    else:
        serve()
