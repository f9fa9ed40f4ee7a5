"""The ML, reverse-ETL and ops tables each have one home: a contract in checks/ that is the
asset's only schema, its column docs and its gate. The sync's own tables are gated before they
are written: a batch that breaks any of their contracts fails the step and leaves all three at
their previous version, and the records already sent are audited once when the sync re-runs."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
from test_reverse_etl import updates

from checks.catalog import declared
from checks.reverse_etl import CRM_ACCOUNT_UPDATES, REVIEW_QUEUE, SYNC_AUDIT, SYNC_STATE
from conftest import Lakehouse, check_evaluations

LAYERS = ("ml", "reverse_etl", "ops")
SYNC = tuple(c.name for c in (SYNC_AUDIT, REVIEW_QUEUE, SYNC_STATE))


def test_every_table_of_these_layers_takes_its_schema_tags_and_gate_from_its_contract(defs):
    contracts = declared()
    graph = defs.resolve_asset_graph()
    tables = [k for k in graph.get_all_asset_keys() if "delta" in graph.get(k).kinds]
    # erasure_audit moves to the privacy layer (issue 23, item 4): not one of these tables.
    tables = [k for k in tables if k.path[0] in LAYERS and k.path[-1] != "erasure_audit"]
    assert {"reverse_etl/sync_audit", "ml/prediction_outcomes", "ops/run_failures"} <= {
        k.to_user_string() for k in tables
    }
    for key in tables:
        node, name = graph.get(key), key.to_user_string()
        contract = contracts.get(name)
        assert contract is not None, f"{name} has no contract in checks/"
        columns = node.metadata["dagster/column_schema"].columns
        assert [(c.name, c.type) for c in columns] == [
            (c.name, c.type) for c in contract.columns
        ], name
        assert all(c.description for c in columns), f"{name}: a column without a description"
        assert node.tags["pii"] == str(contract.holds_personal_data).lower(), name
        assert contract.primary_key, f"{name} has no primary key"
        assert "gx_suite" in {c.name for c in node.check_keys}, name


def _sync(h: Lakehouse):
    return h.materialize(*SYNC)


def _versions(h: Lakehouse) -> dict[str, int | None]:
    return {name: h.lake.version(*name.split("/")) for name in SYNC}


@pytest.mark.parametrize("broken", [REVIEW_QUEUE, SYNC_AUDIT], ids=lambda c: c.table)
def test_a_sync_whose_tables_break_their_contracts_writes_none_of_them(
    lakehouse: Lakehouse, monkeypatch, broken
):
    import assets.reverse_etl as reverse_etl

    c = CRM_ACCOUNT_UPDATES
    lakehouse.lake.publish(c.layer, c.table, updates(4, {1: {"action_confidence": 0.1}}))
    assert _sync(lakehouse).success
    before = _versions(lakehouse)
    assert None not in before.values()

    real = reverse_etl.sync

    def duplicating(*args, **kwargs):
        """The sync, with a row of one of its tables written twice (its key no longer unique)."""
        result = real(*args, **kwargs)
        field = "review" if broken is REVIEW_QUEUE else "audit"
        rows = getattr(result, field)
        setattr(result, field, pa.concat_tables([rows, rows.slice(0, 1)]))
        return result

    changed = updates(4, {1: {"action_confidence": 0.1}, 2: {"churn_risk": 0.4}})
    lakehouse.lake.publish(c.layer, c.table, changed, mode="overwrite")
    monkeypatch.setattr(reverse_etl, "sync", duplicating)
    failed = _sync(lakehouse)
    assert not failed.success
    checks = check_evaluations(failed)
    assert not checks[broken.name].passed
    assert _versions(lakehouse) == before  # nothing of the sync was committed

    monkeypatch.setattr(reverse_etl, "sync", real)
    assert _sync(lakehouse).success
    audit = lakehouse.lake.read(SYNC_AUDIT.layer, SYNC_AUDIT.table).to_pylist()
    sent = Counter(
        (r["crm_account_id"], r["inputs_fingerprint"]) for r in audit if r["status"] == "sent"
    )
    assert set(sent.values()) == {1}  # the row the failed sync sent is audited once, on re-run
    assert Counter(k for k, _ in sent)["00100002"] == 2  # its first and its changed payload
    review = lakehouse.lake.read(REVIEW_QUEUE.layer, REVIEW_QUEUE.table)
    assert review["crm_account_id"].to_pylist() == ["00100001"]
