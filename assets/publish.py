"""Publishing a whole gated table: its suite first, then a new Delta version only when the
content changed."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    MaterializeResult,
)

from assets.gated import SUITE_CHECK, table_key
from assets.metadata import published_metadata
from checks.contract import Expectation, TableContract
from checks.gate import validate
from resources.lake import LakeResource, Published


def _sorted(table: pa.Table, contract: TableContract) -> pa.Table:
    if not contract.primary_key:
        raise ValueError(f"{contract.name}: a whole-table publish needs a primary key")
    return table.sort_by([(c, "ascending") for c in contract.primary_key])


def publish_if_changed(
    lake: LakeResource, contract: TableContract, table: pa.Table, run_id: str
) -> tuple[Published, bool]:
    """Overwrite with the new content, or leave the version alone when nothing changed. The
    compare and the write hold the table's lock: a second writer of the same content (another
    run's step let through at the same instant) then finds it published and writes nothing,
    where both would have created the table and doubled its rows."""
    layer, name = contract.layer, contract.table
    with lake.exclusive(f"{layer}/{name}"):
        if lake.exists(layer, name):
            current = lake.read(layer, name)
            if current.schema.equals(table.schema) and _sorted(current, contract).equals(
                _sorted(table, contract)
            ):
                return lake.describe(layer, name), False
        published = lake.publish(
            layer,
            name,
            table,
            mode="overwrite",
            description=contract.description,
            commit_metadata={"dagster_run_id": run_id},
        )
    return published, True


def gate_and_publish(
    context: AssetExecutionContext,
    lake: LakeResource,
    contract: TableContract,
    table: pa.Table,
    batch: dict | None = None,
    extra: dict | None = None,
    suite: list[Expectation] | None = None,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Write, audit, publish for a whole table: validate, report the check, and commit only
    when it passed (a failure raises and leaves the Delta table at its previous version)."""
    key = table_key(contract)
    gate = validate(contract.name, suite or contract.suite(), table, batch)
    yield gate.check_result(key, SUITE_CHECK, lake.data_docs)
    if not gate.passed:
        raise gate.failure(f"{contract.name} ({table.num_rows:,} rows)")
    published, wrote = publish_if_changed(lake, contract, table, context.run_id)
    yield MaterializeResult(
        asset_key=key,
        metadata={
            **published_metadata(contract, published, table.schema, table),
            "changed": wrote,
            **(extra or {}),
        },
    )
