"""The UI in a real browser: `dagster dev` over a demo landing zone, driven by headless Chromium
(Debian's chromium and chromedriver; nothing downloaded). A person opens the lineage, finds every
layer and the key assets, presses Materialize on a raw asset and sees the run succeed; then, with
`make dev` over what a demo build left (the session lake's instance, Data Docs and MLflow store),
finds the stage jobs and their runs, the landing zones observed, each table's freshness, the 360's
latest version, a gate's Data Docs styled over http and the champion model's MLflow run linked to
the Dagster run that trained it. No first-visit pop-up covers any page."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from dagster import AssetKey
from deltalake import DeltaTable

from assets.automation import STAGE_TAG
from conftest import ROOT, _post, load_definitions, run_dagster_dev, start_make_dev
from resources.data_docs import DATA_DOCS_URL
from resources.mlflow import MLFLOW_UI_URL
from resources.settings import LAKE_ROOT, LANDING_ROOT
from servers import free_port

pytestmark = pytest.mark.ui  # make ui (CI runs it): minutes of servers and a browser

GROUPS = (
    "landing",
    "raw",
    "entities",
    "events",
    "c360",
    "features",
    "ml",
    "reverse_etl",
    "privacy",
    "ops",
)
KEY_ASSETS = (
    "raw/crm_accounts",
    "entities/identity_links",
    "events/events",
    "c360/customer_360_accounts",
    "features/churn_features",
    "ml/churn_scores",
    "reverse_etl/crm_account_updates",
    "privacy/erasure_audit",
)
NONE = "\N{EN DASH}"  # what an asset page lists when an asset feeds nothing
ARTIFACTS = Path(os.environ.get("LAKEHOUSE_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "chromium/chromedriver not found: `make test` installs them"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1600,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # failed requests, errors
    drv = webdriver.Chrome(service=Service(driver), options=options)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _wait(check, timeout: float, what: str | Callable[[], str]):
    """`check()` once it is truthy; fails after `timeout` s saying what was expected (a
    callable `what` describes the page as it was at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not seen in the UI within {timeout} s: {what() if callable(what) else what}"
            )
        time.sleep(0.5)


def _buttons(drv, label: str):
    """Buttons with this label now (the page re-renders as data arrives: retry on a stale one)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return [b for b in drv.find_elements(By.TAG_NAME, "button") if b.text.strip() == label]
    except StaleElementReferenceException:
        return []


def _neighbours(drv) -> tuple[list[str], list[str]] | None:
    """The asset page's "Upstream assets" and "Downstream assets" lists, as shown."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        text = drv.find_element(By.TAG_NAME, "body").text
    except StaleElementReferenceException:
        return None
    m = re.search(
        r"\nUpstream assets\n([\s\S]*?)\nDownstream assets\n([\s\S]*?)\nDefinition\n", text
    )
    return (sorted(m.group(1).split("\n")), sorted(m.group(2).split("\n"))) if m else None


def _graph_nodes(drv) -> list[str]:
    """The names on the asset nodes the lineage graph has drawn (textContent: a node scrolled
    out of the window is in the page but has no visible text)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        nodes = drv.find_elements(By.XPATH, "//*[contains(@class, 'AssetNode_assetName')]")
        return sorted(n.get_attribute("textContent").strip() for n in nodes)
    except StaleElementReferenceException:
        return []


def _drawn_among(drawn: list[str], asset: str, names: list[str]) -> bool:
    """The graph draws the asset, and every node it draws is the asset or one of `names` (the
    graph draws only the nodes near the window, so not all of a long list need be there). A
    long name may be drawn shortened in the middle ("bil…_subscriptions")."""

    def shows(label: str, name: str) -> bool:
        head, dots, tail = label.partition("\N{HORIZONTAL ELLIPSIS}")
        return label == name or (
            bool(dots) and name.startswith(head) and name.endswith(tail) and len(label) <= len(name)
        )

    names = [asset, *names]
    return any(shows(d, asset) for d in drawn) and all(
        any(shows(d, n) for n in names) for d in drawn
    )


def _landed_risk_signals(landing: Path) -> list[str]:
    """record_id of every risk signal the landing files hold (read here, not by the platform),
    less the rows the generator planted as unparseable."""
    manifest = json.loads((landing / "_truth" / "manifest.json").read_text())
    bad = {(b["file"], b["line"]) for b in manifest["bad_rows"]}
    ids = []
    for path in sorted((landing / "risk" / "signals").glob("*/*.csv")):
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rel = str(path.relative_to(landing))
            ids += [r["record_id"] for r in reader if (rel, reader.line_num) not in bad]
    assert ids, "the sample company delivers risk signals"
    return ids


def test_lineage_and_a_materialization_from_the_ui(tmp_path, browser):
    from selenium.webdriver.common.by import By

    from sample_company.generate import generate

    landing = tmp_path / "lake" / "landing"
    generate(landing, accounts=30, days=40, seed=4, end_date=date(2026, 10, 31))
    with run_dagster_dev(tmp_path, tmp_path / "lake", landing) as server:
        seconds = server.wait_until_answering()
        print(f"\n`dagster dev` answered after {seconds:.1f} s")

        # the global lineage: every layer is there as a group
        browser.get(f"{server.url}/asset-groups")
        _wait(lambda: "Global asset lineage" in browser.page_source, 60, "lineage page")
        nodes = _wait(
            lambda: browser.find_elements(By.XPATH, "//*[@aria-label='unfold_more']"),
            30,
            "group nodes in the graph",
        )
        assert len(nodes) == len(GROUPS)
        text = browser.find_element(By.TAG_NAME, "body").text
        assert all(re.search(rf"(?m)^{g}$", text) for g in GROUPS), text
        _shoot(browser, "lineage")  # no first-visit dialog over it

        # each key asset's page lists the assets it reads and feeds, as the definitions declare
        # them, and its lineage view draws it among those only
        graph = load_definitions().resolve_asset_graph()
        for key in KEY_ASSETS:
            node = graph.get(AssetKey(key.split("/")))
            upstream = sorted(" / ".join(k.path) for k in node.parent_keys)
            downstream = sorted(" / ".join(k.path) for k in node.child_keys) or [NONE]
            browser.get(f"{server.url}/assets/{key}")
            _wait(
                lambda u=upstream, d=downstream: _neighbours(browser) == (u, d),
                30,
                lambda k=key, u=upstream, d=downstream: (
                    f"{k}: {u}, {d}; page: {_neighbours(browser)}"
                ),
            )
            browser.get(f"{server.url}/assets/{key}?view=lineage")
            name = key.split("/")[1]
            near = sorted(k.path[-1] for k in node.parent_keys | node.child_keys)
            _wait(
                lambda n=name, e=near: _drawn_among(_graph_nodes(browser), n, e),
                30,
                lambda k=key, e=near: f"{k} among {e}; drawn: {_graph_nodes(browser)}",
            )

        # Materialize a raw asset from its page, then watch its run succeed on the runs page
        browser.get(f"{server.url}/assets/raw/risk_signals")
        time.sleep(2)  # let the asset page settle before pressing
        button = _wait(lambda: _buttons(browser, "Materialize"), 30, "Materialize button")
        button[0].click()
        toast = _wait(
            lambda: re.search(
                r"Launched run ([0-9a-f]{8})", browser.find_element(By.TAG_NAME, "body").text
            ),
            30,
            "the launched-run toast",
        )
        run_id = toast.group(1)

        def status() -> bool:
            """Open the runs page and read the run's row as it renders (the page refreshes
            itself); False if it has not succeeded within 20 s."""
            browser.get(f"{server.url}/runs")
            until = time.monotonic() + 20
            while time.monotonic() < until:
                text = browser.find_element(By.TAG_NAME, "body").text
                rows = [chunk[:300] for chunk in text.split(run_id)[1:]]
                assert not any("Failure" in r for r in rows), rows
                if any("Success" in r for r in rows):
                    return True
                time.sleep(1)
            return False

        try:
            _wait(status, 180, f"run {run_id} shown as Success")
        finally:
            browser.save_screenshot(str(ARTIFACTS / "runs.png"))
            query = '{"query": "{ runsOrError { ... on Runs { results { runId status } } } }"}'
            print("runs:", _post(f"{server.url}/graphql", query))
        browser.save_screenshot(str(ARTIFACTS / "run_success.png"))

        # the asset's events list that run's materialization, with the rows the landing
        # files hold; and the table holds exactly those records
        records = _landed_risk_signals(landing)
        browser.get(f"{server.url}/assets/raw/risk_signals?view=events")
        shown = _wait(
            lambda: re.search(
                r"Materialized in run ([0-9a-f]{8})[\s\S]*?\nrows_written\n(\d+)\n",
                browser.find_element(By.TAG_NAME, "body").text,
            ),
            30,
            "the materialization on the asset's events",
        )
        assert shown.groups() == (run_id, str(len(records)))
        table = DeltaTable(str(tmp_path / "lake" / "raw" / "risk_signals")).to_pyarrow_table()
        assert sorted(table["record_id"].to_pylist()) == sorted(records)


# -- what a demo build leaves, in `make dev` ----------------------------------------------------
STAGE_JOBS = ("ingest", "erasure", "events_days", "weekly_retrain", "daily_refresh")
# Anything shown over the page: Dagster's first-visit newsletter, MLflow's modals, a banner.
COVERING = (
    "[role=dialog], [role=alertdialog], .bp5-overlay-open .bp5-overlay-content, "
    ".ant-modal-wrap, [class*='Modal'][class*='wrap']"
)


@dataclass(frozen=True)
class DemoUI:
    """`make dev` over copies of a demo build: its URLs, and the copies it serves."""

    dagster: str
    docs: str
    mlflow: str
    lake: Path
    log: Path


@pytest.fixture(scope="module")
def demo_ui(full_lake, tmp_path_factory):
    """`make dev` (platform/dev.py) over copies of the session lake and of the Dagster instance
    its build ran on: the daemon of `make dev` must not touch the shared lake."""
    tmp = tmp_path_factory.mktemp("demo_ui")
    lake, home = tmp / "lake", tmp / "dagster_home"
    assert full_lake.dagster_home, "the session lake is built through a persistent instance"
    shutil.copytree(full_lake.lake_root, lake)
    shutil.copytree(full_lake.dagster_home, home)
    dagster, docs, mlflow = (f"http://127.0.0.1:{free_port()}" for _ in range(3))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        LAKE_ROOT: str(lake),
        LANDING_ROOT: str(lake / full_lake.landing_root.relative_to(full_lake.lake_root)),
        "DAGSTER_PORT": dagster.rsplit(":", 1)[1],
        DATA_DOCS_URL: docs,
        MLFLOW_UI_URL: mlflow,
    }
    log = tmp / "make_dev.log"
    proc = start_make_dev(env, log)
    try:
        _wait(
            lambda: proc.poll() is not None or "make dev is ready" in log.read_text(),
            240,
            lambda: f"make dev ready; log: {log.read_text()[-2000:]}",
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        yield DemoUI(dagster, docs, mlflow, lake, log)
    finally:
        proc.send_signal(signal.SIGTERM)  # the launcher stops every server it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _text(drv) -> str:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return drv.find_element(By.TAG_NAME, "body").text
    except StaleElementReferenceException:
        return ""


def _shoot(drv, name: str, settle: float = 2.0) -> None:
    """Screenshot the page once nothing covers it: a first-visit dialog opens a moment after
    the page (Dagster's after 1 s), so the page is given `settle` s to show one first."""
    from selenium.webdriver.common.by import By

    time.sleep(settle)
    covering = [e for e in drv.find_elements(By.CSS_SELECTOR, COVERING) if e.is_displayed()]
    assert not covering, f"{name}: a pop-up covers the page: {[e.text[:200] for e in covering]}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _graphql(ui: DemoUI, query: str) -> dict:
    return _post(f"{ui.dagster}/graphql", json.dumps({"query": query}))["data"]


def _demo_runs(ui: DemoUI) -> list[dict]:
    """Every run of the instance: id, job, tags and the code location it belongs to."""
    data = _graphql(
        ui,
        "{ runsOrError { ... on Runs { results { runId jobName tags { key value } "
        "repositoryOrigin { repositoryLocationName } } } } }",
    )
    return [
        {**r, "tags": {t["key"]: t["value"] for t in r["tags"]}}
        for r in data["runsOrError"]["results"]
    ]


def test_jobs_page_lists_the_stage_jobs(browser, demo_ui):
    """The Jobs page names each stage `make demo` runs and the schedules and sensors run, each
    with its latest run (the demo's runs belong to the code location's jobs)."""
    browser.get(f"{demo_ui.dagster}/jobs")
    _wait(
        lambda: all(re.search(rf"(?m)^{j}\n.+ ago$", _text(browser)) for j in STAGE_JOBS),
        60,
        lambda: f"the stage jobs {STAGE_JOBS}, each run; page: {_text(browser)[:1500]}",
    )
    _shoot(browser, "jobs")


def test_runs_and_timeline_show_the_demo_stages(browser, demo_ui):
    """After a demo build, every run belongs to a named stage job and carries its stage tag;
    the Runs page lists them by job with the tag, and the timeline draws one row per job."""
    runs = _demo_runs(demo_ui)
    assert runs and all(r["jobName"] in STAGE_JOBS for r in runs), {r["jobName"] for r in runs}
    assert all(r["tags"].get(STAGE_TAG) == r["jobName"] for r in runs)
    locations = {(r["repositoryOrigin"] or {}).get("repositoryLocationName") for r in runs}
    assert locations == {"customer_lakehouse"}, locations  # the workspace's code location
    built = {r["jobName"] for r in runs}
    assert built == set(STAGE_JOBS), built  # erasure included: the demo runs every stage

    browser.get(f"{demo_ui.dagster}/runs")

    def listed() -> bool:
        text = _text(browser)
        return all(f"{STAGE_TAG}: {j}" in text for j in built) and all(
            r["runId"][:8] in text for r in runs[:10]
        )

    _wait(listed, 60, lambda: f"runs of {built} with their tags; page: {_text(browser)[:2000]}")
    _shoot(browser, "runs_by_stage")

    browser.get(f"{demo_ui.dagster}/overview/activity/timeline")
    _wait(
        lambda: all(re.search(rf"(?m)^{j}$", _text(browser)) for j in built),
        60,
        lambda: f"a timeline row per stage job; page: {_text(browser)[:2000]}",
    )
    _shoot(browser, "timeline")


def test_landing_zones_show_their_observation(browser, demo_ui, defs):
    """A demo build observes every landing zone: no landing asset says "Never observed", and a
    landing asset's page shows its latest observation with what it found."""
    graph = defs.resolve_asset_graph()
    landing = sorted(  # the observed zones (a connector or Segment's landing step materializes)
        k
        for k in graph.get_all_asset_keys()
        if k.path[0] == "landing" and graph.get(k).is_observable
    )
    data = _graphql(
        demo_ui,
        '{ assetNodes(group: {groupName: "landing", repositoryName: "__repository__", '
        'repositoryLocationName: "customer_lakehouse"}) '
        "{ assetKey { path } assetObservations(limit: 1) { runId } } }",
    )
    observed = {
        "/".join(n["assetKey"]["path"]) for n in data["assetNodes"] if n["assetObservations"]
    }
    assert observed == {k.to_user_string() for k in landing}

    browser.get(f"{demo_ui.dagster}/assets/landing/crm_accounts")
    shown = _wait(
        lambda: re.search(
            r"\nLatest observation\n(.+ ago)\n[\s\S]*\nfiles\n.*\n(\d+)\n", _text(browser)
        ),
        60,
        lambda: f"the latest observation; page: {_text(browser)[:1500]}",
    )
    assert "Never observed" not in _text(browser)
    delivered = list((demo_ui.lake / "landing" / "crm" / "accounts").glob("*/*"))
    assert int(shown.group(2)) == len(delivered) > 0
    _shoot(browser, "landing_observed")


def test_asset_pages_show_freshness(browser, demo_ui, defs):
    """The 360's page shows its freshness policy as declared (warn after its cadence, fail
    after the grace) and, just after a build, that it passes."""
    key = AssetKey(["c360", "customer_360_accounts"])
    policy = defs.resolve_asset_graph().get(key).freshness_policy
    hours = [
        int(w.to_timedelta().total_seconds() // 3600)
        for w in (policy.fail_window, policy.warn_window)
    ]
    browser.get(f"{demo_ui.dagster}/assets/{key.to_user_string()}")
    expected = (
        f"Freshness policy\nPassing\nLast materialized .+ ago\n"
        f"Fails if more than {hours[0]} hours since last materialization\n"
        f"Warns if more than {hours[1]} hours since last materialization"
    )
    _wait(  # the daemon evaluates freshness every 30 s once `make dev` started
        lambda: re.search(expected, _text(browser)) or browser.refresh(),
        150,
        lambda: f"{expected!r}; page: {_text(browser)[-1500:]}",
    )
    _shoot(browser, "freshness")


def test_the_360_shows_its_latest_version(browser, demo_ui):
    """The 360's events name the daily_refresh run that published it, with the row count of
    the Delta version it wrote."""
    refresh = {r["runId"][:8] for r in _demo_runs(demo_ui) if r["jobName"] == "daily_refresh"}
    browser.get(f"{demo_ui.dagster}/assets/c360/customer_360_accounts?view=events")
    shown = _wait(
        lambda: re.search(
            r"Materialized in run ([0-9a-f]{8})[\s\S]*?\ndelta_version\n(\d+)\n"
            r"[\s\S]*?\ndagster/row_count\n([\d,]+)\n",
            _text(browser),
        ),
        60,
        lambda: f"the 360's materialization; page: {_text(browser)[:1500]}",
    )
    run, version, rows = shown.group(1), int(shown.group(2)), int(shown.group(3).replace(",", ""))
    assert run in refresh
    table = DeltaTable(str(demo_ui.lake / "c360" / "customer_360_accounts"), version=version)
    assert rows == table.to_pyarrow_table().num_rows > 0
    _shoot(browser, "c360_materialization")


def test_data_docs_are_served_styled_over_http(browser, demo_ui):
    """A gate's Data Docs page over http: its stylesheets load from the docs server itself
    (nothing fetched elsewhere, no failed request) and style the page (Bootstrap's flex navbar,
    where a browser alone draws a block)."""
    url = f"{demo_ui.docs}/raw.crm_accounts.html"
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(url)
    _wait(lambda: "Data asset: raw/crm_accounts" in _text(browser), 30, "the gate's page")
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert fetched and all(f.startswith(demo_ui.docs + "/") for f in fetched), fetched
    sheets = browser.execute_script(
        "return [...document.styleSheets].map(s => [s.href, s.cssRules.length])"
    )
    assert sheets and all(rules > 0 for _, rules in sheets), sheets
    assert any(href and "bootstrap" in href for href, _ in sheets), sheets
    navbar = browser.execute_script(
        "return getComputedStyle(document.querySelector('.navbar')).display"
    )
    assert navbar == "flex"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    _shoot(browser, "data_docs")


def test_mlflow_run_of_the_champion_names_its_dagster_run_and_dataset(browser, demo_ui):
    """The champion churn model's MLflow run page shows the Dagster run that trained it (a
    weekly_retrain run of the instance) and its training set as a dataset."""
    from mlflow import MlflowClient

    from assets.ml import SPECS
    from assets.ml.lineage import RUN_ID
    from assets.ml.models import aliases

    spec = next(s for s in SPECS if s.kind == "churn")
    uri = f"sqlite:///{demo_ui.lake / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version(spec.model_name, aliases(spec.model_name, uri)["champion"])
    run = client.get_run(version.run_id)
    dagster_run = run.data.tags[RUN_ID]
    retrain = {r["runId"] for r in _demo_runs(demo_ui) if r["jobName"] == "weekly_retrain"}
    assert dagster_run in retrain

    browser.get(f"{demo_ui.mlflow}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    dataset = spec.training.name
    _wait(
        lambda: dagster_run in _text(browser) and dataset in _text(browser),
        90,
        lambda: f"{dagster_run} and {dataset}; page: {_text(browser)[:2000]}",
    )
    _close_mlflow_first_visit(browser)
    _shoot(browser, "mlflow_run")


def _close_mlflow_first_visit(drv) -> None:
    """MLflow's UI opens its assistant panel on a first visit to a local server and shows a
    telemetry notice; it has no server setting to turn them off, so close them as a person
    would (the browser remembers it)."""
    from selenium.webdriver.common.by import By

    for label in ("Close", "close"):
        for b in drv.find_elements(By.CSS_SELECTOR, f"button[aria-label='{label}']"):
            if b.is_displayed():
                b.click()
    _wait(
        lambda: (
            not [
                e
                for e in drv.find_elements(By.XPATH, "//*[text()='MLflow Assistant']")
                if e.is_displayed()
            ]
        ),
        10,
        "MLflow's assistant panel closed",
    )
