"""What a person sees on an asset in the Dagster UI: schema, counts, Delta version, a preview."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from dagster import MetadataValue, TableColumn, TableSchema

from checks.contract import TableContract
from resources.lake import Published

OWNER = "team:data-platform"
PREVIEW_ROWS = 5
PREVIEW_CHARS = 40
MASK = "•••"


def column_schema(contract: TableContract, schema: pa.Schema | None = None) -> TableSchema:
    """The contract's columns (with descriptions), plus any drift columns the table has."""
    cols = [
        TableColumn(
            name=c.name,
            type=c.type,
            description=(c.description + (" (PII)" if c.pii else "")).strip() or None,
        )
        for c in contract.columns
    ]
    declared = {c.name for c in contract.columns}
    for f in schema or []:
        if f.name not in declared:
            cols.append(TableColumn(name=f.name, type=str(f.type), description="schema drift"))
    return TableSchema(columns=cols)


def definition_metadata(contract: TableContract) -> dict[str, Any]:
    return {
        "dagster/column_schema": column_schema(contract),
        "dagster/table_name": f"{contract.layer}.{contract.table}",
    }


def published_metadata(
    contract: TableContract,
    published: Published,
    schema: pa.Schema | None = None,
    sample: pa.Table | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "dagster/uri": MetadataValue.path(published.uri),
        "dagster/column_schema": column_schema(contract, schema),
        "delta_version": MetadataValue.int(published.version),
        "rows_written": MetadataValue.int(published.rows_written),
    }
    if published.total_rows is not None:
        meta["dagster/row_count"] = MetadataValue.int(published.total_rows)
    if sample is not None and sample.num_rows:
        meta["preview"] = MetadataValue.md(preview(sample, set(contract.pii_columns)))
    return meta


def preview(table: pa.Table, pii: set[str]) -> str:
    """A small Markdown table; PII is masked so it never reaches Dagster's event log."""
    cols = [c for c in table.column_names if c != "_payload"]
    rows = table.slice(0, PREVIEW_ROWS).select(cols).to_pylist()
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = []
        for c in cols:
            v = row[c]
            text = MASK if (c in pii and v is not None) else ("" if v is None else str(v))
            if len(text) > PREVIEW_CHARS:
                text = text[: PREVIEW_CHARS - 1] + "…"
            cells.append(text.replace("|", "\\|").replace("\n", " "))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)
