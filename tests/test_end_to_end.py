"""The sample company through the whole spine: landing -> raw, with every row accounted for."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest

from checks.raw import RawContract
from checks.sources import raw_contracts
from conftest import check_evaluations, materialized
from resources.data_docs import base_url

ACCOUNTS, DAYS = 60, 75

RAW_TABLES = raw_contracts()  # the active source catalog's raw tables


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> Path:
    from sample_company.cli import generate

    out = tmp_path_factory.mktemp("company") / "landing"
    generate(out, accounts=ACCOUNTS, days=DAYS, seed=11)
    return out


@pytest.fixture
def ingested(lakehouse, company):
    lakehouse.landing_root = company
    result = lakehouse.materialize()
    return lakehouse, result


def records_in(contract: RawContract, landing: Path) -> int:
    """Count the records of an object's files independently of the platform's reader."""
    n = 0
    for path in sorted((landing / contract.source / contract.object).glob("*/*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8-sig") as fh:
            text = fh.read()
        if contract.format == "csv":
            n += max(len([ln for ln in text.splitlines() if ln.strip()]) - 1, 0)
        elif contract.format == "jsonl":
            n += len([ln for ln in text.splitlines() if ln.strip()])
        else:
            n += len(json.loads(text)) if text.strip() else 0
    return n


def test_every_landed_row_is_published_or_quarantined(ingested, company):
    lakehouse, result = ingested
    assert result.success
    quarantine = lakehouse.lake.read("raw", "quarantine")
    for c in RAW_TABLES:
        published = lakehouse.lake.read("raw", c.table).num_rows
        rejected = pc.sum(pc.equal(quarantine["table_name"], c.table)).as_py() or 0
        assert published > 0, c.table
        assert published + rejected == records_in(c, company), c.table
    gates = check_evaluations(result)
    assert all(gates[f"raw/{c.table}"].passed for c in RAW_TABLES)
    assert "raw/quarantine" in materialized(result)


def test_planted_mess_is_quarantined_with_file_line_and_rule(ingested):
    """The quarantine holds exactly the rows the generator planted, by its manifest (file,
    line, expected rule): none missing, none extra, none twice; each under its object's table
    and with its payload."""
    lakehouse, _ = ingested
    manifest = json.loads((lakehouse.landing_root / "_truth" / "manifest.json").read_text())
    planted = Counter((b["file"], b["line"], b["rule"]) for b in manifest["bad_rows"])
    assert set(planted.values()) == {1}  # each bad row planted once
    rules = {"invalid_json", "type(amount)", "field_count", "not_null(id)"}
    assert {rule for _, _, rule in planted} == rules  # every kind of mess the README lists
    q = lakehouse.lake.read("raw", "quarantine").to_pylist()
    assert Counter((r["source_file"], r["line"], r["rule"]) for r in q) == planted
    for row in q:
        source, obj = row["source_file"].split("/")[:2]
        assert row["table_name"] == f"{source}_{obj}"
        assert row["payload"]


def test_drift_column_is_absorbed(ingested):
    lakehouse, _ = ingested
    subs = lakehouse.lake.read("raw", "billing_subscriptions")
    assert "discount_pct" in subs.column_names
    with_value = subs.filter(pc.is_valid(subs["discount_pct"]))
    assert 0 < with_value.num_rows < subs.num_rows  # only the later extracts carry it


def test_second_run_over_the_same_landing_changes_nothing(ingested):
    lakehouse, _ = ingested
    before = {c.table: lakehouse.lake.version("raw", c.table) for c in RAW_TABLES}
    q_before = lakehouse.lake.version("raw", "quarantine")
    assert lakehouse.materialize().success
    after = {c.table: lakehouse.lake.version("raw", c.table) for c in RAW_TABLES}
    assert after == before
    assert lakehouse.lake.version("raw", "quarantine") == q_before


def test_every_gate_has_data_docs_linked_from_its_check(ingested):
    lakehouse, result = ingested
    evaluations = check_evaluations(result)
    docs = Path(lakehouse.lake.data_docs)
    for key, evaluation in evaluations.items():
        link = evaluation.metadata["data_docs"].value
        assert link.startswith(f"{base_url()}/"), key  # http: browsers refuse file:// links
        page = docs / link.rsplit("/", 1)[1]
        assert page.is_file(), key
        text = page.read_text()
        assert "Validation Result" in text and "must never be null" in text, key
        # the page counts what the check counts
        shown = re.findall(r"Evaluated Expectations</div></td><td[^>]*><div[^>]*>(\d+)<", text)
        assert shown == [str(evaluation.metadata["expectations"].value)], key
    index = (docs / "index.html").read_text()
    assert "raw.crm_accounts" in index and "passed" in index
