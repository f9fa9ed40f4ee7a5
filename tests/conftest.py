"""Shared fixtures: a throw-away lake and landing zone, and Dagster runs against them."""

from __future__ import annotations

import os
import runpy
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from resources.quiet import telemetry_off
from servers import free_port

telemetry_off()
# One code location serves every generated company of the session: its event partitions are
# configured wide rather than read from whatever lake/ the checkout holds (assets/events/days.py).
os.environ.setdefault("LAKEHOUSE_EVENTS_START", "2020-01-01")
os.environ.setdefault("LAKEHOUSE_EVENTS_END", "today")
warnings.filterwarnings("ignore", module="dagster")

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "platform" / "definitions.py"


def load_definitions():
    """platform/ is not a package: load its definitions by path, as workspace.yaml does."""
    return runpy.run_path(str(DEFINITIONS))["defs"]


@pytest.fixture(scope="session")
def defs():
    return load_definitions()


@dataclass
class Lakehouse:
    """A lake and a landing zone in a temp dir, and a way to run assets over them."""

    lake_root: Path
    landing_root: Path
    defs: object
    dagster_home: Path | None = None  # the instance its runs went through, when persistent

    @property
    def resources(self) -> dict:
        from resources.crm import CrmResource
        from resources.duckdb import DuckDBResource
        from resources.identity import IdentityResource
        from resources.lake import LakeResource
        from resources.landing import LandingResource
        from resources.mlflow import MlflowResource
        from resources.pii import PiiResource
        from resources.segment.resource import SegmentResource

        return {
            "lake": LakeResource(root=str(self.lake_root)),
            "landing": LandingResource(root=str(self.landing_root)),
            "duckdb": DuckDBResource(threads=2),
            "identity": IdentityResource(),
            "pii": PiiResource(),
            "mlflow": MlflowResource(),  # under the test lake
            "crm": CrmResource(),  # a SQLite CRM under the test lake
            "segment": SegmentResource(),  # no storage export: lands only a collector's log
        }

    def materialize_days(self, first, last, instance=None):
        """events/events for the days first..last in one run (a single-run backfill)."""
        from dagster import DagsterInstance, materialize

        from assets.events.runs import EVENTS_KEY, range_tags

        return materialize(
            list(self.defs.assets),
            selection=[EVENTS_KEY],
            resources=self.resources,
            instance=instance or DagsterInstance.ephemeral(),
            tags=range_tags(first, last),
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )

    @property
    def lake(self):
        return self.resources["lake"]

    def drop(self, rel: str, content: str | bytes) -> Path:
        """Land a file at `<source>/<object>/<extract_date>/<name>`."""
        path = self.landing_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)
        return path

    def materialize(self, *selection: str, instance=None):
        """The named assets; by default every unpartitioned asset upstream of the event days."""
        from dagster import AssetKey, DagsterInstance, materialize

        from assets.events.runs import BEFORE_EVENTS

        return materialize(
            list(self.defs.assets),
            selection=[AssetKey(s.split("/")) for s in selection] or BEFORE_EVENTS,
            resources=self.resources,
            instance=instance or DagsterInstance.ephemeral(),
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )


@pytest.fixture
def lakehouse(tmp_path: Path, defs) -> Lakehouse:
    return Lakehouse(tmp_path / "lake", tmp_path / "landing", defs)


def check_evaluations(result) -> dict[str, object]:
    """asset key -> the gate's AssetCheckEvaluation in a run."""
    out = {}
    for e in result.all_events:
        if e.event_type_value == "ASSET_CHECK_EVALUATION":
            data = e.event_specific_data
            out[data.asset_key.to_user_string()] = data
    return out


def materialized(result) -> set[str]:
    return {
        e.event_specific_data.materialization.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }


def _post(url: str, body: str) -> dict:
    import json
    import urllib.request

    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@dataclass
class DevServer:
    port: int
    proc: object
    started: float  # time.monotonic() when `dagster dev` was launched

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_answering(self, timeout: float = 120) -> float:
        """Seconds from launch until the webserver answers a GraphQL query for the graph."""
        import time

        query = '{"query": "{ assetNodes { assetKey { path } } }"}'
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, "dagster dev exited"
            try:
                if _post(f"{self.url}/graphql", query)["data"]["assetNodes"]:
                    return time.monotonic() - self.started
            except (OSError, KeyError, TypeError):
                pass
            assert time.monotonic() < deadline, f"dagster dev did not answer in {timeout} s"
            time.sleep(0.25)


MAKE_DEV = ROOT / "platform" / "dev.py"


def start_make_dev(env: dict[str, str], log: Path):
    """`make dev` (platform/dev.py) in its own process group, its output in `log`: signals reach
    the launcher alone, as from `kill`, and it stops what it started."""
    import subprocess
    import sys

    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, str(MAKE_DEV)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextmanager
def run_dagster_dev(
    tmp_path: Path, lake_root: Path | str, landing_root: Path, env: dict[str, str] | None = None
):
    """`dagster dev` as `make dev` runs it (the profile's instance file, workspace file,
    loopback), over the given lake; `env` adds settings (e.g. a deployment profile)."""
    import signal
    import subprocess
    import sys
    import time

    home = tmp_path / "dagster_home"
    port = free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "LAKEHOUSE_LAKE_ROOT": str(lake_root),
        "LAKEHOUSE_LANDING_ROOT": str(landing_root),
        **(env or {}),
    }
    subprocess.run(
        [sys.executable, "-m", "resources.profile", "instance", str(home)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    dagster = Path(sys.executable).parent / "dagster"
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # dagster dev ignores signals sent to it alone
    )
    try:
        yield DevServer(port, proc, started)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def build_whole_graph(h: Lakehouse, skip_groups: tuple[str, ...] = ()) -> None:
    """The whole graph, as `make demo` runs it: before the events, the event days, after
    (less `skip_groups` of the layers after the events)."""
    from dagster import AssetSelection, DagsterInstance, materialize

    from assets.events.mapping import load_mapping
    from assets.events.runs import AFTER_EVENTS, first_day, pending_ranges

    assert h.materialize().success
    for first, last in pending_ranges(
        h.lake, h.resources["pii"], load_mapping(), first_day(h.defs)
    ):
        assert h.materialize_days(first, last).success
    result = materialize(
        list(h.defs.assets),
        selection=AFTER_EVENTS - AssetSelection.groups(*skip_groups),
        resources=h.resources,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert result.success


def build_as_demo(h: Lakehouse, home: Path) -> None:
    """The whole graph as `make demo` builds it: the named stage jobs (assets/events/runs.py
    `build_graph`) on a Dagster instance of its own at `home` (the profile's dagster.yaml,
    SQLite), so the UI shows those runs, tags, observations and checks afterwards."""
    from dagster import DagsterInstance

    from assets.events.runs import build_graph
    from resources.profile import active
    from resources.quiet import QUIET_RUN_CONFIG
    from resources.settings import LAKE_ROOT, LANDING_ROOT

    with pytest.MonkeyPatch.context() as env:  # read when the definitions load and runs start
        env.setenv("DAGSTER_HOME", str(home))
        env.setenv(LAKE_ROOT, str(h.lake_root))
        env.setenv(LANDING_ROOT, str(h.landing_root))
        active().write_instance(home)
        with DagsterInstance.get() as instance:
            results, _ = build_graph(
                load_definitions(), instance, QUIET_RUN_CONFIG, launched_by="pytest"
            )
    failed = [r.dagster_run.job_name for r in results if not r.success]
    assert results and not failed, f"stages failed: {failed}"
    h.dagster_home = home


@pytest.fixture(scope="session")
def full_lake(tmp_path_factory) -> Lakehouse:
    """A sample company (200 accounts x 300 days) through every layer, models and CRM sync
    included, built as `make demo` builds it; shared by the tests that need the whole graph
    (they may change the lake, never its `dagster_home`, which the UI tests copy)."""
    from sample_company.generate import generate

    root = tmp_path_factory.mktemp("full")
    generate(root / "lake" / "landing", accounts=200, days=300, seed=3)
    h = Lakehouse(root / "lake", root / "lake" / "landing", load_definitions())
    build_as_demo(h, root / "dagster_home")
    return h


# -- the promise tables of docs/reliability.md (tests/promises.py) -------------------------------
_SESSION: dict = {"outcomes": {}, "faults": False}


def pytest_sessionstart(session: pytest.Session) -> None:
    import datetime as dt
    import time

    _SESSION.update(started=dt.datetime.now(dt.UTC), clock=time.monotonic())


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        _SESSION["outcomes"][report.nodeid] = report.outcome
    if "faults" in report.keywords:
        _SESSION["faults"] = True


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After fault tests ran: a promise whose test was skipped fails the session (a skipped
    guard keeps no promise); when all passed, the figures they measured rewrite the document's
    tables (docs/reliability.md, docs/figures/faults.json)."""
    if not _SESSION["faults"]:
        return
    import json
    import time

    import promises

    from figures import ARTIFACTS

    outcomes = _SESSION["outcomes"]
    named = {t for p in promises.PROMISES for t in p.tests}
    skipped = sorted(n for n, o in outcomes.items() if o == "skipped" and _named_by(n, named))
    if skipped:
        print(f"\npromises: tests a promise relies on were skipped: {', '.join(skipped)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    if exitstatus != 0:
        return
    measured = ARTIFACTS / "faults" / "figures.json"
    if not measured.exists():
        return
    args = session.config.invocation_params.args
    run = {
        "command": "make faults" if tuple(args) == ("-m", "faults") else "pytest " + " ".join(args),
        "date": _SESSION["started"].date().isoformat(),
        "cores": os.cpu_count(),
        "passed": sum(o == "passed" for o in outcomes.values()),
        "seconds": round(time.monotonic() - _SESSION["clock"], 1),
    }
    fresh = promises.refresh(json.loads(measured.read_text()), run, _SESSION["started"])
    print(f"\npromises: {promises.DOC.name} refreshed from sections {', '.join(fresh) or '-'}")


def _named_by(nodeid: str, named: set[str]) -> bool:
    return any(nodeid == t or nodeid.startswith(t + "::") for t in named)
