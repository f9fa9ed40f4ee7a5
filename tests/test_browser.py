"""The UI in a real browser: `dagster dev` over a demo landing zone, driven by headless Chromium
(Debian's chromium and chromedriver; nothing downloaded). A person opens the lineage, finds every
layer and the key assets, presses Materialize on a raw asset and sees the run succeed."""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import date
from pathlib import Path

import pytest

from conftest import ROOT, _post, run_dagster_dev

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


def _wait(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not seen in the UI within {timeout} s: {what}"
        time.sleep(0.5)


def _buttons(drv, label: str):
    """Buttons with this label now (the page re-renders as data arrives: retry on a stale one)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return [b for b in drv.find_elements(By.TAG_NAME, "button") if b.text.strip() == label]
    except StaleElementReferenceException:
        return []


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

        # each key asset opens on its own lineage view
        for key in KEY_ASSETS:
            browser.get(f"{server.url}/assets/{key}?view=lineage")
            name = key.split("/")[1]
            _wait(lambda n=name: browser.page_source.count(n) >= 2, 30, key)

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
        assert (tmp_path / "lake" / "raw" / "risk_signals" / "_delta_log").is_dir()
