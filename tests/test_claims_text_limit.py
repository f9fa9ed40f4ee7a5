"""The 4,096-character text limit (README "The quality gate", docs/reliability.md "Bad input"):
a typed text value of exactly 4,096 characters is published as it arrived, one of 4,097 is
quarantined with the rule `max_length(<column>)`, through the real ingest path. Characters, not
bytes: a value of 4,096 two-byte characters is still within the limit. The quarantine detail of
a personal column does not quote the value (it reaches a failed gate's text in Dagster's event
log)."""

from __future__ import annotations

import csv
import io

import pyarrow.compute as pc

from checks.sources import raw_contracts
from conftest import check_evaluations

RAW_TABLES = raw_contracts()  # the active source catalog's raw tables

LIMIT = 4096  # the documented limit, written here from the docs, not read from checks/raw.py
FILE = "billing/customers/2026-01-05/customers.csv"
HEADER = ["customer_id", "name", "email", "crm_account_id", "country", "created_at", "updated_at"]

# customer id -> the `name` it carries; everything else in the file is an ordinary short value.
LONG = {
    "cus_at_limit": "a" * LIMIT,
    "cus_over_limit": "b" * (LIMIT + 1),
    "cus_wide_at_limit": "é" * LIMIT,  # 8,192 bytes, 4,096 characters
    "cus_wide_over_limit": "é" * (LIMIT + 1),
}
OVER = {"cus_over_limit", "cus_wide_over_limit"}
# A personal column over the limit: an address that swallowed the rest of its line.
EMAIL_OVER = ("cus_email_over", "ada.lovelace@example.com " + "x" * LIMIT)


def _customers_csv() -> tuple[str, dict[str, int]]:
    """58 ordinary customers, the four long names and the long email (3 of 63 rows over: under
    the 5% share); returns the file and each long row's line (the header is line 1)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    ids = [f"cus_{i}" for i in range(58)]
    ids[10:10] = [*LONG, EMAIL_OVER[0]]
    lines = {}
    for n, cid in enumerate(ids, start=2):
        name = LONG.get(cid, f"Company {cid}")
        email = EMAIL_OVER[1] if cid == EMAIL_OVER[0] else ""
        w.writerow([cid, name, email, "", "US", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])
        if cid in LONG or cid == EMAIL_OVER[0]:
            lines[cid] = n
    return out.getvalue(), lines


def test_every_typed_text_column_of_every_raw_table_has_the_limit():
    for contract in RAW_TABLES:
        for c in contract.columns:
            if c.type == "string" and not c.name.startswith("_"):
                assert c.max_length == LIMIT, (contract.table, c.name)


def test_4096_characters_are_published_and_4097_quarantined(lakehouse):
    content, lines = _customers_csv()
    lakehouse.drop(FILE, content)
    result = lakehouse.materialize("raw/billing_customers", "raw/quarantine")
    assert result.success
    assert check_evaluations(result)["raw/billing_customers"].passed

    published = lakehouse.lake.read("raw", "billing_customers")
    names = dict(
        zip(published["customer_id"].to_pylist(), published["name"].to_pylist(), strict=True)
    )
    assert published.num_rows == 60
    for cid in ("cus_at_limit", "cus_wide_at_limit"):
        assert names[cid] == LONG[cid]  # whole, not cut
        assert len(names[cid]) == LIMIT
    assert not (OVER | {EMAIL_OVER[0]}) & set(names)

    q = lakehouse.lake.read("raw", "quarantine")
    q = q.filter(pc.equal(q["table_name"], "billing_customers")).to_pylist()
    assert sorted((r["source_file"], r["line"], r["rule"]) for r in q) == sorted(
        [
            *((FILE, lines[cid], "max_length(name)") for cid in OVER),
            (FILE, lines[EMAIL_OVER[0]], "max_length(email)"),
        ]
    )
    details = {r["rule"]: r["detail"] for r in q}
    assert str(LIMIT + 1) in details["max_length(name)"]  # says how long the value was
    assert str(len(EMAIL_OVER[1])) in details["max_length(email)"]
    assert "ada.lovelace" not in details["max_length(email)"]  # ... and quotes no address
