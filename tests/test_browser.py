"""The UI in a real browser: `dagster dev` over a demo landing zone, driven by headless Chromium
(Debian's chromium and chromedriver; nothing downloaded). A person opens the lineage, finds every
layer and the key assets, presses Materialize on a raw asset and sees the run succeed."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from dagster import AssetKey
from deltalake import DeltaTable

from conftest import ROOT, _post, load_definitions, run_dagster_dev

GROUPS = ("landing", "raw", "entities", "events", "c360", "features", "ml", "reverse_etl", "ops")
KEY_ASSETS = (
    "raw/crm_accounts",
    "entities/identity_links",
    "events/events",
    "c360/customer_360_accounts",
    "features/churn_features",
    "ml/churn_scores",
    "reverse_etl/crm_account_updates",
    "reverse_etl/erasure_audit",
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
        time.sleep(2)
        for skip in _buttons(browser, "Skip"):  # a first-visit newsletter dialog
            skip.click()
        nodes = _wait(
            lambda: browser.find_elements(By.XPATH, "//*[@aria-label='unfold_more']"),
            30,
            "group nodes in the graph",
        )
        assert len(nodes) == len(GROUPS)
        text = browser.find_element(By.TAG_NAME, "body").text
        assert all(re.search(rf"(?m)^{g}$", text) for g in GROUPS), text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "lineage.png"))

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
