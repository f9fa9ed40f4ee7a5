"""`make demo` end to end on a small generated company, as a person runs it (issue 22: six silent
minutes then MLflow INFO lines; 13 anonymous `__ASSET_JOB` runs; landing never observed; an
events line naming days the data does not explain).

Slow (the whole graph from nothing, ~4 minutes on 2 busy cores): in the `faults` suite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

NOISE = (
    "INFO mlflow",
    "INFO alembic",
    "Successfully registered model",
    "Created version",
    "BetaWarning",
    "PreviewWarning",
    "SupersessionWarning",
    "it/s]",  # a tqdm progress bar
    "Uploading artifacts",
    "Downloading artifacts",
)
AFTER_EVENTS = ["daily_refresh", "weekly_retrain", "daily_refresh"]
STAGE_LINE = re.compile(r"^-> (\w+): (.+)$")
DONE_LINE = re.compile(r"^   (\w+): ok, ([\d,]+) rows written.* in [\d.]+ s$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's output and its Dagster home, on 200 accounts x 300 days."""
    from sample_company.generate import generate

    root = tmp_path_factory.mktemp("demo")
    generate(root / "lake" / "landing", accounts=200, days=300, seed=3)
    # the demo must quiet the libraries itself: none of the test session's settings
    quieted = ("LAKEHOUSE_EVENTS_", "MLFLOW_", "TQDM_", "GX_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(quieted)}
    env.update(
        DAGSTER_HOME=str(root / "dagster_home"),
        LAKEHOUSE_LAKE_ROOT=str(root / "lake"),
        LAKEHOUSE_LANDING_ROOT=str(root / "lake" / "landing"),
    )
    out = subprocess.run(
        [sys.executable, "platform/demo.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1500,
    )
    assert out.returncode == 0, out.stdout[-4000:]
    return out.stdout, root


@pytest.mark.faults
def test_each_stage_prints_as_it_runs_with_rows_and_no_library_noise(demo):
    out, _ = demo
    lines = out.splitlines()
    started = [m.group(1) for m in map(STAGE_LINE.match, lines) if m]
    events = started.count("events_days")
    assert events >= 1
    assert started == ["ingest", "erasure", *["events_days"] * events, *AFTER_EVENTS]
    done = [
        (m.group(1), int(m.group(2).replace(",", ""))) for m in map(DONE_LINE.match, lines) if m
    ]
    assert [stage for stage, _ in done] == started  # every stage ended, right after it started
    rows = dict(done[:1] + done[2:3])
    assert rows["ingest"] > 0 and rows["events_days"] > 0
    for noise in NOISE:
        assert noise not in out, noise


@pytest.mark.faults
def test_the_events_line_is_the_data_s_span(demo):
    from datetime import timedelta

    from resources.lake import LakeResource

    out, root = demo
    days = LakeResource(root=str(root / "lake")).read("events", "events", columns=["event_date"])
    first, last = min(days["event_date"].to_pylist()), max(days["event_date"].to_pylist())
    count = (last - first) // timedelta(days=1) + 1
    runs = out.count("-> events_days")
    line = next(x for x in out.splitlines() if x.startswith("events: "))
    assert line == (
        f"events: {count:,} day(s) {first}..{last} in {runs} run(s) "
        "(first build: every day from the data's first event to its last)"
    )
    assert re.search(r"^\d+ run\(s\): success in [\d.]+s; checks: ", out, re.M)


@pytest.mark.faults
def test_every_run_is_a_named_stage_and_every_landing_zone_was_observed(demo, monkeypatch):
    from dagster import DagsterInstance
    from dagster._core.definitions.data_version import DATA_VERSION_TAG

    from assets.landing import content_fingerprint, landing_key
    from checks.sources import raw_contracts
    from resources.landing import LandingResource

    RAW_TABLES = raw_contracts()

    out, root = demo
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    with DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == out.count("\n-> ")
        for run in runs:
            assert run.job_name in {"ingest", "erasure", "events_days", *AFTER_EVENTS}
            assert run.tags["lakehouse/stage"] == run.job_name
            assert run.tags["lakehouse/launched_by"] == "make demo"
        landing = LandingResource(root=str(root / "lake" / "landing"))
        for c in RAW_TABLES:
            seen = instance.fetch_observations(landing_key(c), limit=1).records
            assert seen, f"{c.landing_name} never observed"
            version = seen[0].asset_observation.tags[DATA_VERSION_TAG]
            assert version == content_fingerprint(landing.scan(c.source, c.object))
