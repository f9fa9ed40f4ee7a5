"""Publishing a whole table: a new Delta version only when the content changed."""

from __future__ import annotations

import pyarrow as pa

from checks.contract import TableContract
from resources.lake import LakeResource, Published


def _sorted(table: pa.Table, contract: TableContract) -> pa.Table:
    keys = contract.extra_expectations[0].kwargs
    cols = keys.get("column_list") or [keys["column"]]
    return table.sort_by([(c, "ascending") for c in cols])


def publish_if_changed(
    lake: LakeResource, contract: TableContract, table: pa.Table, run_id: str
) -> tuple[Published, bool]:
    """Overwrite with the new content, or leave the version alone when nothing changed."""
    layer, name = contract.layer, contract.table
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
