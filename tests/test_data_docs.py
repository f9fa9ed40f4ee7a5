"""Great Expectations Data Docs as a person opens them from a gate's check in the Dagster UI:
styled and offline (a page loads only files of the docs folder), naming the table it validated,
counting the expectations the check counts, and linked over http (browsers refuse file://)."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pyarrow as pa
from dagster import AssetKey

from checks.gate import validate
from checks.sources import raw_contracts
from resources.data_docs import DATA_DOCS_URL, DEFAULT_DATA_DOCS_URL

RAW_TABLES = raw_contracts()  # the active source catalog's raw tables

CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)")


class _Refs(HTMLParser):
    """What a browser fetches when it opens a page (stylesheets, scripts, images, icons, CSS
    urls), and where its links go."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.links: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "link" and a.get("href"):
            self.loads.append(a["href"])
        elif tag in ("script", "img", "iframe") and a.get("src"):
            self.loads.append(a["src"])
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if a.get("style"):
            self.loads += CSS_URL.findall(a["style"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.loads += CSS_URL.findall(data)


def refs(text: str) -> _Refs:
    parser = _Refs()
    parser.feed(text)
    return parser


def local_file(base: Path, ref: str) -> Path | None:
    """The file a relative reference resolves to; None for anything fetched from elsewhere."""
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or ref.startswith("//"):
        return None
    return (base / unquote(parts.path)).resolve()


def evaluated_expectations(page: str) -> list[int]:
    """Every "Evaluated Expectations" figure a page shows (one per validation rendered)."""
    text = re.sub(r"<[^>]+>", " ", page)
    return [int(n) for n in re.findall(r"Evaluated Expectations\s+(\d+)", html.unescape(text))]


def visible_text(page: str) -> str:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


def test_every_page_loads_only_files_of_the_docs_folder(full_lake):
    docs = Path(full_lake.lake.data_docs).resolve()
    pages = sorted(docs.glob("*.html"))
    gated = sorted(docs.glob("*.json"))
    # every raw table and the layers above have a page, and the index lists them
    assert len(gated) > len(RAW_TABLES) and len(pages) == len(gated) + 1
    for page in pages:
        found = refs(page.read_text())
        assert found.loads, page.name
        for ref in found.loads:
            if ref.startswith("data:"):
                continue
            target = local_file(page.parent, ref)
            assert target is not None, f"{page.name} loads {ref} from the network"
            assert target.is_file() and docs in target.parents, f"{page.name}: {ref} is missing"
        for ref in found.links:  # no dead link either (anchors and external sites aside)
            target = local_file(page.parent, ref)
            if target is not None and not ref.startswith("#"):
                assert target.is_file(), f"{page.name} links to {ref}, which does not exist"
        # styled: Bootstrap's stylesheet, and Font Awesome's for the pass/fail icons
        assert "static/bootstrap/css/bootstrap.min.css" in found.loads, page.name
        assert "static/font-awesome/css/all.min.css" in found.loads, page.name
    bootstrap = (docs / "static/bootstrap/css/bootstrap.min.css").read_text()
    assert "Bootstrap v4" in bootstrap and ".table{" in bootstrap
    # the icon fonts the icon stylesheet loads are there too
    icons = docs / "static/font-awesome/css/all.min.css"
    for ref in CSS_URL.findall(icons.read_text()):
        if not ref.startswith("data:"):
            target = local_file(icons.parent, ref)
            assert target is not None and target.is_file(), ref


def test_each_page_names_the_table_it_validated(full_lake):
    docs = Path(full_lake.lake.data_docs)
    for status in sorted(docs.glob("*.json")):
        table = json.loads(status.read_text())["suite"]  # e.g. raw/crm_accounts
        text = visible_text(status.with_suffix(".html").read_text())
        assert f"Data asset: {table} " in text, status.stem
        assert "Data asset: None" not in text and "__none__" not in text, status.stem


def test_page_counts_what_the_check_counts_and_is_linked_over_http(
    full_lake, monkeypatch, tmp_path
):
    """A raw gate validates its batch in chunks plus a one-row batch summary: the check and the
    page both count the whole suite (the page used to show the chunk's 14 of 15), once."""
    contract = next(c for c in RAW_TABLES if c.table == "crm_accounts")
    rows = full_lake.lake.read("raw", contract.table)
    half = rows.num_rows // 2
    assert half > 10
    chunks = [rows.slice(0, half), rows.slice(half)]
    gate = validate(contract.name, contract.suite(), iter(chunks), {"quarantine_share": 0.0})
    assert any(e.on == "batch" for e in contract.suite())

    monkeypatch.setenv(DATA_DOCS_URL, "http://127.0.0.1:4123/")  # read when the link is made
    check = gate.check_result(AssetKey(["raw", "crm_accounts"]), "gx_suite", str(tmp_path))
    counted = check.metadata["expectations"].value
    assert counted == len(contract.suite())
    page = tmp_path / "raw.crm_accounts.html"
    assert evaluated_expectations(page.read_text()) == [counted]
    assert check.metadata["data_docs"].value == "http://127.0.0.1:4123/raw.crm_accounts.html"
    assert check.metadata["data_docs_index"].value == "http://127.0.0.1:4123/index.html"

    monkeypatch.delenv(DATA_DOCS_URL)
    again = gate.check_result(AssetKey(["raw", "crm_accounts"]), "gx_suite", str(tmp_path))
    assert again.metadata["data_docs"].value == f"{DEFAULT_DATA_DOCS_URL}/raw.crm_accounts.html"


def test_outcomes_keep_their_expectation_whatever_order_gx_reports_them():
    """GX groups results by column; the check must still name the expectation that failed."""
    from checks.contract import Expectation

    suite = [
        Expectation("expect_column_values_to_not_be_null", {"column": "a"}),
        Expectation("expect_column_values_to_be_in_set", {"column": "k", "value_set": ["x"]}),
        Expectation("expect_column_values_to_be_unique", {"column": "a"}),
    ]
    gate = validate("t/t", suite, pa.table({"a": [1, 2, 3], "k": ["x", "y", "x"]}))
    assert [o.expectation.type for o in gate.failures] == ["expect_column_values_to_be_in_set"]
    assert gate.failures[0].sample == ["y"]
    in_order = [r.expectation_config.type for r in gate.validation.results]
    assert in_order == [e.type for e in suite]
