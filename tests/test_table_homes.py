"""Every table the platform writes has one home: a contract in checks/ (checks/catalog.py),
which the table's asset is built from (assets/gated.py) and which the table matches."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from dagster import AssetKey
from deltalake import DeltaTable

from checks.catalog import declared
from checks.contract import TableContract

# Under the lake root but not the platform's tables: Dagster's storage, MLflow's, secrets.
NOT_TABLES = {".dagster", "mlflow", ".secrets", "landing", "data_docs", ".locks"}


def _delta_tables(root: Path) -> dict[str, Path]:
    out = {}
    for log in root.glob("*/*/_delta_log"):
        layer = log.parent.parent.name
        if layer not in NOT_TABLES:
            out[f"{layer}/{log.parent.name}"] = log.parent
    return out


def test_every_table_in_a_built_lake_has_exactly_one_contract(full_lake):
    tables = _delta_tables(full_lake.lake_root)
    contracts = declared()
    assert len(tables) >= 30, sorted(tables)  # the whole graph ran
    assert sorted(set(tables) - set(contracts)) == []


def test_each_table_is_what_its_contract_declares(full_lake):
    """The table holds its contract's columns and types, in order, as the code location
    configured it (event names, consent scopes); a table that is an asset carries the blocking
    suite check. Raw tables may also hold columns a source added later (schema drift, recorded
    on the asset), never lose one."""
    from assets.c360.profiles import load_c360

    contracts = declared({"people_contract": (load_c360().consent_scopes,)})
    graph = full_lake.defs.resolve_asset_graph()
    checked = {k.asset_key for k in graph.asset_check_keys}
    wrong = []
    for name, path in sorted(_delta_tables(full_lake.lake_root).items()):
        if name not in contracts:
            continue  # reported by the test above
        key = AssetKey(name.split("/"))
        if graph.has(key) and key not in checked:
            wrong.append(f"{name}: no suite check")
        expected = [(f.name, f.type) for f in contracts[name].schema]
        held = [(f.name, f.type) for f in pa.schema(DeltaTable(str(path)).schema().to_arrow())]
        if name.startswith("raw/"):  # a source's new columns are kept as schema drift
            held = [f for f in held if f[0] in contracts[name].schema.names]
        if held != expected:
            wrong.append(f"{name}: declares {expected}, holds {held}")
    assert wrong == []


def test_a_table_declared_twice_is_refused(monkeypatch):
    """Two contracts for one table name: the catalog names the second place."""
    import checks.reverse_etl as module
    from checks.sources import load_catalog

    CRM_ACCOUNTS = load_catalog().object("crm/accounts").contract

    twin = TableContract(CRM_ACCOUNTS.layer, CRM_ACCOUNTS.table, "a second home", ())
    monkeypatch.setattr(module, "TWIN", twin, raising=False)
    try:
        declared()
    except ValueError as exc:
        assert "raw/crm_accounts is declared twice" in str(exc)
        assert "checks.reverse_etl.TWIN" in str(exc)
    else:
        raise AssertionError("a second contract for raw/crm_accounts was accepted")


def test_no_module_keeps_a_second_schema_of_a_contract():
    """A table's Arrow schema lives in its contract only: no module of assets/ or resources/
    holds a schema with a contract's columns (a copy drifts when the contract changes)."""
    import importlib
    import pkgutil

    import assets
    import resources

    columns = {tuple(c.schema.names): name for name, c in declared().items()}
    copies = []
    for package in (assets, resources):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if info.name.endswith("__main__"):
                continue
            for attr, value in vars(importlib.import_module(info.name)).items():
                if isinstance(value, pa.Schema) and tuple(value.names) in columns:
                    copies.append(f"{info.name}.{attr}: {columns[tuple(value.names)]}")
    assert copies == []
