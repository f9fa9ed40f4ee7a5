"""Every connector lands what raw reads as the vendor's own files would give.

Stripe and Zendesk (the vendor stack) and Salesforce (the default stack's CRM) are pulled from
their stand-ins through the connector's landing writer; the raw layer built from those files
holds, per record, the same latest row as the raw layer built from the generator's export files,
and a bad value the API returns (a Stripe invoice amount of "N/A") reaches raw as it was sent and
is quarantined under the same rule, not retyped or dropped on the way.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assets import connectors
from checks.sources import load_catalog
from conftest import Lakehouse, load_definitions
from sample_company.generate import generate

ROOT = Path(__file__).resolve().parent.parent
FAST = {"max_attempts": 4, "backoff_factor": 0.05, "max_retry_delay": 5}
CASES = {
    "stripe": ("vendor", ("customers", "subscriptions", "invoices")),
    "zendesk": ("vendor", ("organizations", "users", "tickets")),
    "salesforce": ("default", ("accounts", "contacts", "opportunities")),
}


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for stack in ("vendor", "default"):
        root = tmp_path_factory.mktemp(f"{stack}_world") / "landing"
        generate(root, accounts=25, days=40, seed=4, stack=stack)
        out[stack] = root
    return out


def _standin(vendor: str, landing: Path):
    if vendor == "stripe":
        from sample_company.standins.stripe import StripeStandIn

        return StripeStandIn(landing, token="sk_test_land"), {}
    if vendor == "zendesk":
        from sample_company.standins.zendesk import ZendeskStandIn

        return ZendeskStandIn(landing, token="zd-land", email="ops@example.com"), {
            "email": "ops@example.com"
        }
    from sample_company.standins.salesforce import SalesforceStandIn

    return SalesforceStandIn(landing, token="sf-land"), {}


def _latest(rows: list[dict], key: str, declared: set[str]) -> dict[str, dict]:
    """Each record's last version (by extract date, then line), its declared columns only."""
    out: dict[str, tuple] = {}
    for r in rows:
        order = (str(r["_extract_date"]), r["_line"])
        if r[key] not in out or order > out[r[key]][0]:
            out[r[key]] = (order, {k: v for k, v in r.items() if k in declared})
    return {k: v for k, (_, v) in out.items()}


def _build_raw(lake: Path, landing: Path, tables: list[str]):
    from dagster import AssetKey, DagsterInstance, materialize

    h = Lakehouse(lake, landing, load_definitions())
    result = materialize(
        list(h.defs.assets),
        selection=[AssetKey(["raw", t]) for t in tables],
        resources=h.resources,
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    assert result.success
    return h


@pytest.mark.parametrize("vendor", list(CASES))
def test_a_pull_lands_what_raw_reads_as_the_export_files(vendor, worlds, tmp_path, monkeypatch):
    stack, names = CASES[vendor]
    monkeypatch.setenv("LAKEHOUSE_STACK", stack)
    catalog = load_catalog(ROOT / "stacks" / stack / "catalog.yaml")
    objects = connectors.connected(catalog)[vendor]
    assert sorted(o.connector.object for o in objects) == sorted(names)
    standin, options = _standin(vendor, worlds[stack])
    with standin as s:
        landed = connectors.pull(
            vendor,
            objects,
            lake_root=tmp_path / "lake",
            landing_root=tmp_path / "landing",
            base_url=s.url,
            token=s.token,
            **FAST,
            **options,
        )
    assert all(landed.records.get(o.object, 0) > 0 for o in objects), landed.records
    tables = [o.table for o in objects]
    pulled = _build_raw(tmp_path / "lake", tmp_path / "landing", tables)
    files = _build_raw(tmp_path / "lake_files", worlds[stack], tables)
    for o in objects:
        declared = {c.name for c in o.columns}  # an API adds fields the export lacks (Salesforce's
        # `attributes`, `SystemModstamp`): raw keeps them as text columns of their own
        a = _latest(pulled.lake.read("raw", o.table).to_pylist(), o.id, declared)
        b = _latest(files.lake.read("raw", o.table).to_pylist(), o.id, declared)
        assert a == b, o.source
    if vendor == "stripe":  # the planted "N/A" amount, sent by the API, quarantined in raw
        q = pulled.lake.read("raw", "quarantine").to_pylist()
        assert any(
            r["table_name"] == "stripe_invoices" and "type(amount_due)" in r["rule"] for r in q
        ), {(r["table_name"], r["rule"]) for r in q}
