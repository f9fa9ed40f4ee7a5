"""Table contracts: a table's schema, description and quality suite, declared once.

A column's rules (required, accepted values, range) are written here one time and serve twice:
as row rules that send a bad row to quarantine, and as the Great Expectations suite that gates
the whole batch before it is committed. Nothing here imports GX (it is slow to import).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

ColumnType = Literal["string", "int", "float", "bool", "date", "timestamp"]

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",
}


@dataclass(frozen=True)
class Expectation:
    """One GX expectation, named by its GX type (e.g. expect_column_values_to_not_be_null)."""

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    # "table": validated on the published rows; "batch": on the one-row batch summary.
    on: Literal["table", "batch"] = "table"

    @property
    def label(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items() if k != "value_set")
        if "value_set" in self.kwargs:
            args += f", value_set=<{len(self.kwargs['value_set'])} values>"
        return f"{self.type}({args.strip(', ')})"


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = "string"
    description: str = ""
    source: str | None = None  # field name in the landing record; defaults to `name`
    required: bool = False
    accepted: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    pii: bool = False
    # The id of a person in some system (a login, a contact, another system's reference to
    # them): pseudonymous, so previews show it, but a row carrying one is about that person.
    identifies_person: bool = False
    future: bool = False  # may lie after the extract date (e.g. a period end); else quarantined
    # Longest text accepted, in characters: a row rule (quarantine), not a GX expectation, like
    # the type and date rules; no longer value reaches the batch the suite sees.
    max_length: int | None = None

    @property
    def source_name(self) -> str:
        return self.source or self.name

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]

    def expectations(self) -> list[Expectation]:
        out: list[Expectation] = []
        if self.required:
            out.append(Expectation("expect_column_values_to_not_be_null", {"column": self.name}))
        if self.accepted is not None:
            out.append(
                Expectation(
                    "expect_column_values_to_be_in_set",
                    {"column": self.name, "value_set": list(self.accepted)},
                )
            )
        if self.min is not None or self.max is not None:
            out.append(
                Expectation(
                    "expect_column_values_to_be_between",
                    {"column": self.name, "min_value": self.min, "max_value": self.max},
                )
            )
        return out


@dataclass(frozen=True)
class TableContract:
    """The public contract of one Delta table at `<layer>/<table>`."""

    layer: str
    table: str
    description: str
    columns: Sequence[Column]
    extra_expectations: Sequence[Expectation] = ()
    partition_by: Sequence[str] = ()

    @property
    def name(self) -> str:
        return f"{self.layer}/{self.table}"

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self.columns])

    @property
    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.pii]

    @property
    def personal_columns(self) -> list[str]:
        """Columns that make a row personal data: a personal value, or a person's id."""
        return [c.name for c in self.columns if c.pii or c.identifies_person]

    def suite(self) -> list[Expectation]:
        out = [e for c in self.columns for e in c.expectations()]
        return out + list(self.extra_expectations)
