"""Crashes: a materialization killed with SIGKILL before, during or after the Delta commit of a
layer, or in the middle of the CRM sync, leaves every Delta table readable at a complete version;
the re-run finishes, and the tables (and the CRM) then equal those of an uninterrupted build.

How. A small sample company lands in two deliveries (all but its last days, then the rest, with
a reviewer's decision in between). The reference is an uninterrupted build of both, the lake
copied after each phase of `build_graph` (the layers before the events, the event days, the
layers after them). Each crash point starts a lake from the copy before its phase, runs the phase
in a child process that the point kills with SIGKILL, checks every table, then re-runs in a fresh
child as an operator would: the dead run is marked failed (what Dagster's run monitoring does
when a run's worker dies) and re-executed from failure (the steps that did not finish) on the
same persistent Dagster instance; the lake must then equal the reference's copy after the phase.
The children are forked by `crash_driver.py`, which imported the stack once: a child shares no
lake, instance or run state with another.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from faultkit import delta_tables, lake_content, record

pytestmark = pytest.mark.faults

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DRIVER = HERE / "crash_driver.py"
ACCOUNTS, DAYS, SEED = 80, 240, 5  # the smallest company whose models still train
INCREMENT_DAYS = 3  # the second delivery: the last days of the company's history
# The first event day: the company's 240 days and half a year of its older records (events of
# 2024 would add five runs of event days to every build and change nothing this suite proves).
EVENTS_START = "2025-10-01"
STEP_TIMEOUT = 600  # seconds one child may take before the suite gives up on it
# The CRM sync in batches of 10, so that a crash can fall between batches and inside one.
AFTER_CONFIG = {"ops": {"sync_to_crm": {"config": {"batch_size": 10}}}}


@dataclass(frozen=True)
class Point:
    """A crash point: where the run dies, and the phase it belongs to."""

    name: str
    crash: dict
    stage: str  # of STAGES: which delivery, on which lake copy
    phase: str  # before | events | after (of build_graph)
    crm_after_crash: int | None = None  # rows the CRM holds right after the crash, if known


# stage -> (lake copy it starts from, delivery, lake copy it must end equal to). "first": the
# first delivery on an empty lake; "after": its layers after the events; "increment*": the second
# delivery on the first's whole lake (raw appends, entities republished, ids merged, new days).
STAGES = {
    "first": (None, 1, "r1-before"),
    "after": ("r1-events", 1, "r1-after"),
    "increment": ("r1-after", 2, "r2-before"),
    "increment-events": ("r2-before", 2, "r2-events"),
}
USAGE = "raw/product_usage_events"  # the largest raw table: a streamed, partitioned append


def publish(table: str, when: str, nth: int = 1) -> dict:
    """Die at the nth `LakeResource.publish` of `table`, before it starts or once committed."""
    return {"at": "publish", "table": table, "when": when, "nth": nth}


FILES_WRITTEN = {"at": "parquet_commit", "table": USAGE}  # Parquet written, not committed

POINTS = [
    # First delivery on an empty lake: every table created.
    Point("salt-file-empty", {"at": "salt"}, "first", "before"),
    Point("quarantine-committed", publish("raw/quarantine", "after"), "first", "before"),
    Point("raw-create-files-written", FILES_WRITTEN, "first", "before"),
    # Second delivery: appends to existing raw tables, entities republished, ids merged.
    Point("raw-before-commit", publish(USAGE, "before"), "increment", "before"),
    Point("raw-files-written", FILES_WRITTEN, "increment", "before"),
    Point("raw-committed-log-not", publish(USAGE, "after"), "increment", "before"),
    Point("ingest-log-committed", publish("raw/ingest_log", "after", 3), "increment", "before"),
    Point(
        "merges-committed-map-not",
        publish("entities/identity_merges", "after"),
        "increment",
        "before",
    ),
    Point("entity-before-publish", publish("entities/account", "before"), "increment", "before"),
    Point("entity-after-publish", publish("entities/relationship", "after"), "increment", "before"),
    Point(
        "events-side-table-only", publish("events/events", "before"), "increment-events", "events"
    ),
    Point("events-committed", publish("events/events", "after"), "increment-events", "events"),
    # First delivery, the layers after the events (batches of 10 rows for the CRM sync).
    Point("c360-committed", publish("c360/customer_360_accounts", "after"), "after", "after"),
    # Killed at the 25th row: two batches of 10 committed, the third open (and rolled back).
    Point("crm-mid-batch", {"at": "crm_row", "nth": 25}, "after", "after", crm_after_crash=20),
]


# -- the zygote --------------------------------------------------------------------------------
class Driver:
    """`crash_driver.py` in a session of its own: one forked child per command."""

    def __init__(self, log: Path) -> None:
        env = {
            **os.environ,
            "OPENBLAS_NUM_THREADS": "1",  # no BLAS thread alive at fork time
            "LAKEHOUSE_EVENTS_START": EVENTS_START,
        }
        self.stderr = open(log, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            start_new_session=True,  # its children too die with the group on a timeout
        )
        assert self._answer(120).get("ready"), "crash_driver did not start"

    def _answer(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            os.killpg(self.proc.pid, signal.SIGKILL)
            pytest.fail(f"crash_driver gave no answer in {timeout} s (killed)")
        line = self.proc.stdout.readline()
        assert line, "crash_driver exited"
        return json.loads(line)

    def __call__(self, **cmd: object) -> tuple[int, dict]:
        """Run one command in a forked child: (its exit code, what it reported)."""
        result = Path(str(cmd["result"]))
        result.unlink(missing_ok=True)
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        code = self._answer(STEP_TIMEOUT)["returncode"]
        return code, json.loads(result.read_text()) if result.exists() else {}

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):  # the zygote may have been killed
            self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.stderr.close()


# -- checks ------------------------------------------------------------------------------------
def table_problems(path: Path) -> list[str]:
    """What is wrong with one Delta table (nothing when it is whole): a commit file that is not
    complete JSON, a gap in the versions, a table that does not load at its newest commit, or
    rows that differ from what the log's add actions promise."""
    log = path / "_delta_log"
    commits = sorted(int(p.name[:20]) for p in log.glob("*.json") if p.name[:20].isdigit())
    if not commits:
        return ["no commit in _delta_log"]
    out = []
    if commits != list(range(commits[0], commits[-1] + 1)):
        out.append(f"versions have gaps: {commits}")
    for v in commits:
        text = (log / f"{v:020d}.json").read_text()
        try:
            [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:
            out.append(f"version {v} is half-written")
    try:
        dt = DeltaTable(str(path))
        rows = dt.to_pyarrow_table().num_rows
        actions = pa.table(dt.get_add_actions(flatten=True))
        promised = sum(actions.column("num_records").to_pylist()) if actions.num_rows else 0
    except Exception as e:  # any failure to read is what this check reports
        return [*out, f"unreadable: {type(e).__name__}: {e}"]
    if dt.version() != commits[-1]:
        out.append(f"loads at version {dt.version()}, newest commit is {commits[-1]}")
    if rows != promised:
        out.append(f"{rows} rows read, the log promises {promised}")
    return out


def lake_problems(lake: Path) -> dict[str, list[str]]:
    """Every Delta table under the lake -> its problems (empty list: whole)."""
    tables = delta_tables(lake)
    with ThreadPoolExecutor(2) as pool:  # delta-rs reads without the GIL
        found = pool.map(table_problems, tables)
    return {str(p.relative_to(lake)): f for p, f in zip(tables, found, strict=True)}


def content(lake: Path, synced_in: list[Path]) -> dict[str, pa.Table]:
    """The lake's canonical content. The audit's `destination` names the CRM file under the
    lake that ran the sync (one of `synced_in`: this lake, or the one it was copied from): the
    path is replaced, so lakes at different paths compare."""
    tables = lake_content(lake)
    audit = tables.get("reverse_etl/sync_audit")
    if audit is not None:
        dest = audit["destination"].to_pylist()
        for root in synced_in:
            dest = [d.replace(str(root.resolve()), "<lake>") for d in dest]
        i = audit.schema.get_field_index("destination")
        tables["reverse_etl/sync_audit"] = audit.set_column(
            i, "destination", pa.array(dest, pa.string())
        )
    return tables


def differences(actual: dict[str, pa.Table], expected: dict[str, pa.Table]) -> list[str]:
    """Where two lakes' contents differ, table by table and column by column."""
    out = []
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    if missing or extra:
        out.append(f"tables missing {missing}, extra {extra}")
    for name in sorted(set(actual) & set(expected)):
        a, e = actual[name], expected[name]
        if a.schema != e.schema or a.num_rows != e.num_rows:
            out.append(f"{name}: {a.num_rows} rows {a.schema.names} != {e.num_rows} rows")
            continue
        for col in a.column_names:
            if not a[col].equals(e[col]):
                bad = [i for i, (x, y) in enumerate(zip(a[col], e[col], strict=True)) if x != y]
                out.append(f"{name}.{col}: {len(bad)} row(s) differ, e.g. row {bad[:1]}")
    return out


def crm_rows(lake: Path) -> tuple[int, dict[str, dict]]:
    """(rows, crm id -> payload) of the SQLite CRM under the lake."""
    path = lake / "crm" / "crm.db"
    if not path.exists():
        return 0, {}
    with sqlite3.connect(path) as con:
        rows = con.execute("SELECT crm_account_id, payload FROM crm_account_updates").fetchall()
    return len(rows), {k: json.loads(p) for k, p in rows}


def sent_per_record(lake: Path) -> dict[str, int]:
    """crm id -> the `sent` rows of the lake's sync audit (what was sent, by the audit)."""
    path = lake / "reverse_etl" / "sync_audit"
    if not DeltaTable.is_deltatable(str(path)):
        return {}
    audit = DeltaTable(str(path)).to_pyarrow_table(columns=["crm_account_id", "status"])
    ids, statuses = (audit[c].to_pylist() for c in ("crm_account_id", "status"))
    return dict(Counter(k for k, s in zip(ids, statuses, strict=True) if s == "sent"))


def registry(lake: Path) -> dict[str, int]:
    """Registered model -> number of versions (a crash must not register a model twice)."""
    path = lake / "mlflow" / "mlflow.db"
    if not path.exists():
        return {}
    with sqlite3.connect(path) as con:
        return dict(con.execute("SELECT name, count(*) FROM model_versions GROUP BY 1"))


# -- the reference -----------------------------------------------------------------------------
@dataclass
class World:
    root: Path
    driver: Driver
    landings: dict[int, Path]
    snapshots: Path
    expected: dict[str, dict[str, pa.Table]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    outcomes: dict[str, dict] = field(default_factory=dict)

    @property
    def reference(self) -> Path:
        return self.root / "reference" / "lake"

    def snapshot(self, name: str) -> Path:
        return self.snapshots / name

    def content_of(self, name: str) -> dict[str, pa.Table]:
        if name not in self.expected:
            self.expected[name] = content(self.snapshot(name), [self.reference])
        return self.expected[name]

    def command(self, work: Path, op: str, **extra: object) -> tuple[int, dict]:
        """Run `op` in a child, on the Dagster instance of `work` (a copy of a fresh one)."""
        home, fresh = work / "dagster_home", self.root / "instance" / "dagster_home"
        if not home.exists() and fresh.exists():
            shutil.copytree(fresh, home)
        return self.driver(
            op=op,
            home=str(home),
            log=str(work / "runs.log"),
            result=str(work / f"{op}.json"),
            **extra,
        )


def _decide_first_review_pair(lakes: list[Path]) -> None:
    """A reviewer confirms the first pair of two canonical ids waiting in identity_review, so
    the second delivery merges them (identity_merges gains a row)."""
    from assets.entities.decide import append_decision

    review = DeltaTable(str(lakes[0] / "entities" / "identity_review")).to_pyarrow_table()
    pair = min(
        (r for r in review.to_pylist() if r["left_canonical_id"] and r["right_canonical_id"]),
        key=lambda r: (r["entity_type"], r["pair_id"]),
    )
    for lake in lakes:
        append_decision(
            lake / "decisions" / "identity_decisions.csv",
            {
                "entity_type": pair["entity_type"],
                "left_record": pair["left_record"],
                "right_record": pair["right_record"],
                "decision": "same",
                "decided_by": "fault suite",
                "decided_at": "2026-11-01T00:00:00+00:00",
                "note": "",
            },
        )


def _build_reference(w: World) -> None:
    """The uninterrupted build of both deliveries, the lake copied after each phase."""
    ref, lake = w.root / "reference", w.reference
    code, out = w.command(
        ref,
        "run",
        lake=str(lake),
        landing=str(w.landings[1]),
        phases=["before", "events", "after"],
        run_config=AFTER_CONFIG,
        snapshots={p: str(w.snapshot(f"r1-{p}")) for p in ("before", "events", "after")},
    )
    assert code == 0, f"reference build (first delivery) failed (exit {code}): {out}"
    _decide_first_review_pair([lake, w.snapshot("r1-after")])
    code, out = w.command(
        ref,
        "run",
        lake=str(lake),
        landing=str(w.landings[2]),
        phases=["before", "events"],
        snapshots={p: str(w.snapshot(f"r2-{p}")) for p in ("before", "events")},
    )
    assert code == 0, f"reference build (second delivery) failed (exit {code}): {out}"
    merges = DeltaTable(str(w.snapshot("r2-before") / "entities" / "identity_merges"))
    assert merges.to_pyarrow_table().num_rows > 0, "the reviewer's decision merged no ids"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    from sample_company.generate import DEFAULT_END_DATE, generate

    started = time.monotonic()
    root = tmp_path_factory.mktemp("crashes")
    first, second = root / "landing1", root / "landing2"
    cut = DEFAULT_END_DATE - timedelta(days=INCREMENT_DAYS)
    generate(first, accounts=ACCOUNTS, days=DAYS, seed=SEED, write_through=cut)
    shutil.copytree(first, second)  # the same files (and mtimes), then the last days
    generate(second, accounts=ACCOUNTS, days=DAYS, seed=SEED)
    driver = Driver(root / "driver.log")
    try:
        w = World(root, driver, {1: first, 2: second}, root / "snapshots", started=started)
        code, out = w.command(root / "instance", "init")  # a fresh instance, copied per point
        assert code == 0, f"could not create a Dagster instance: {out}"
        _build_reference(w)
        print(f"[crashes] reference built in {time.monotonic() - w.started:.0f} s")
        yield w
    finally:
        driver.close()


# -- the crash points --------------------------------------------------------------------------
def _checked(lake: Path, outcome: dict) -> dict[str, list[str]]:
    """Check every table of a crashed lake, count them; the tables with problems."""
    problems = lake_problems(lake)
    outcome["tables_checked"] += len(problems)
    outcome["corrupted"] += sum(bool(p) for p in problems.values())
    return {t: p for t, p in problems.items() if p}


def _compare(lake: Path, world: World, expect: str) -> list[str]:
    """How the lake differs from the reference's copy: tables, CRM rows, registered models."""
    diff = differences(content(lake, [lake, world.reference]), world.content_of(expect))
    _, crm = crm_rows(lake)
    _, ref_crm = crm_rows(world.snapshot(expect))
    # Exactly once, by the audit (the CRM's primary key would hide a second send): each lake
    # here saw one sync, killed or not, so each record the CRM holds was sent once, and only
    # those were. A killed sync's sends are audited by its re-run, which sends them again.
    sent = sent_per_record(lake)
    if sent != dict.fromkeys(crm, 1):
        twice = sorted(k for k, n in sent.items() if n > 1)
        unsent, stray = sorted(set(crm) - set(sent)), sorted(set(sent) - set(crm))
        diff.append(
            f"audit: {len(twice)} record(s) sent more than once (e.g. {twice[:3]}), "
            f"{len(unsent)} held by the CRM and never audited as sent (e.g. {unsent[:3]}), "
            f"{len(stray)} audited as sent and not held (e.g. {stray[:3]})"
        )
    if crm != ref_crm:
        wrong = sorted(k for k in set(crm) | set(ref_crm) if crm.get(k) != ref_crm.get(k))
        diff.append(f"CRM: {len(wrong)} account(s) differ from the reference's, e.g. {wrong[:3]}")
    if registry(lake) != registry(world.snapshot(expect)):
        diff.append(f"models: {registry(lake)} != {registry(world.snapshot(expect))}")
    return diff


@pytest.mark.parametrize("point", POINTS, ids=[p.name for p in POINTS])
def test_crash_leaves_readable_tables_and_rerun_equals_reference(world: World, point: Point):
    start, delivery, expect = STAGES[point.stage]
    work = world.root / "points" / point.name
    lake, landing, marker = work / "lake", work / "landing", work / "crash_marker"
    if start:
        shutil.copytree(world.snapshot(start), lake, symlinks=True)
    shutil.copytree(world.landings[delivery], landing)
    common = {"lake": str(lake), "landing": str(landing)}
    outcome = world.outcomes[point.name] = {"tables_checked": 0, "corrupted": 0, "equal": False}

    clock = time.monotonic()
    code, out = world.command(
        work,
        "run",
        **common,
        phases=[point.phase],
        crash=point.crash,
        marker=str(marker),
        run_config=AFTER_CONFIG if point.phase == "after" else {},
    )
    crashed = time.monotonic() - clock
    assert marker.exists(), f"the crash point was never reached (exit {code}): {out}"
    assert code == -signal.SIGKILL, f"the run did not die by SIGKILL: exit {code}"
    assert not (bad := _checked(lake, outcome)), f"after the crash: {bad}"
    if point.crm_after_crash is not None:
        assert crm_rows(lake)[0] == point.crm_after_crash, "the CRM kept part of an open batch"

    clock = time.monotonic()
    then = ["events"] if point.phase == "events" else []  # the days still pending, if any
    code, out = world.command(work, "resume", **common, then=then)
    rerun = time.monotonic() - clock
    assert code == 0 and out.get("success"), f"the re-run failed (exit {code}): {out}"
    outcome["reexecuted_steps"] = out["reexecuted_steps"]

    diff = _compare(lake, world, expect)  # reads every table whole
    outcome["equal"] = not diff
    print(
        f"[crashes] {point.name}: crash run {crashed:.0f} s, re-run {rerun:.0f} s; "
        f"re-executed {', '.join(out['reexecuted_steps'])}"
    )
    assert not diff, "\n".join(diff)
    shutil.rmtree(work)  # ~50 MB a point; a failing point's lake stays for a look


def test_a_salt_file_left_empty_is_refused(tmp_path: Path):
    """A lake whose salt an older version left empty (killed between creating the file and
    writing it) must not hash emails with no salt: the run stops and says why."""
    from resources.pii import SALT_FILE, local_salt

    (tmp_path / SALT_FILE).parent.mkdir(parents=True)
    (tmp_path / SALT_FILE).write_text("")
    with pytest.raises(RuntimeError, match="empty"):
        local_salt(str(tmp_path))


def test_record_figures(world: World):
    """The suite's figures, once every crash point ran (a partial run, `-k`, checks the points
    it ran and records nothing)."""
    ran = world.outcomes
    corrupted = sum(o["corrupted"] for o in ran.values())
    equal = sum(o["equal"] for o in ran.values())
    assert corrupted == 0
    assert equal == len(ran)
    if set(ran) != {p.name for p in POINTS}:
        return
    record(
        "crashes",
        crash_points=len(POINTS),
        tables_checked=sum(o["tables_checked"] for o in ran.values()),
        corrupted_tables=corrupted,
        reruns_equal_reference=equal,
        points=[p.name for p in POINTS],
        sample_company=f"{ACCOUNTS} accounts x {DAYS} days, seed {SEED}, in two deliveries",
        seconds=round(time.monotonic() - world.started, 1),
    )
    assert corrupted == 0
    assert equal == len(POINTS)
