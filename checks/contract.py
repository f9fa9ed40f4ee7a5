"""Table contracts: a table's schema, description and quality suite, declared once.

A column's rules (required, accepted values, range) are written here one time and serve twice:
as row rules that send a bad row to quarantine, and as the Great Expectations suite that gates
the whole batch before it is committed. Nothing here imports GX (it is slow to import).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

ColumnType = Literal["string", "int", "float", "bool", "date", "timestamp"]
# How a timestamp arrives: ISO 8601 text (or a date), or a number of seconds/milliseconds since
# the Unix epoch (many vendors' exports).
TimeUnit = Literal["iso", "unix_seconds", "unix_millis"]
TIME_UNITS: tuple[str, ...] = ("iso", "unix_seconds", "unix_millis")

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
    # Field in the landing record; defaults to `name`. JSON: a dotted path into nested objects
    # (`properties.plan`, `items.data[0].price.id`); CSV and parquet: a header name.
    source: str | None = None
    required: bool = False
    accepted: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    pii: bool = False
    # The id of a person in some system (a login, a contact, another system's reference to
    # them): pseudonymous, so previews show it, but a row carrying one is about that person.
    identifies_person: bool = False
    future: bool = False  # may lie after the extract date (e.g. a period end); else quarantined
    # date/timestamp only: the earliest plausible value (default 1970-01-01: a business date
    # before it is a broken value); a date of birth or a founding date declares its own.
    earliest: dt.date | None = None
    # Longest text accepted, in characters: a row rule (quarantine), not a GX expectation, like
    # the type and date rules; no longer value reaches the batch the suite sees.
    max_length: int | None = None
    unit: TimeUnit | None = None  # timestamp only: how it arrives; None = iso
    # int/float only: the stored value is the arrived value times this (0.01: cents to units);
    # the column's rules (range, not_null) apply to the stored value.
    scale: float | None = None

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
    """The public contract of one Delta table at `<layer>/<table>`: its single home.

    Everything else about the table (the Dagster asset's key, group, tags, column metadata and
    blocking suite check, the erasure's reach) is derived from these fields, never restated.
    """

    layer: str
    table: str
    description: str
    columns: Sequence[Column]
    extra_expectations: Sequence[Expectation] = ()
    partition_by: Sequence[str] = ()
    # The columns that identify a row; the suite checks they are unique, and a whole-table
    # publish compares old and new content in this order.
    primary_key: Sequence[str] = ()
    # A row is a person's own record (their contact, login, consent, profile): an erasure deletes
    # it. Other tables holding personal columns keep their rows with those values scrubbed.
    personal_record: bool = False
    # For a personal-record table whose rows may also name other people (a login invited by a
    # colleague): the column holding the record's own person's id. Only rows whose id is the
    # erased person's are deleted; the rest are scrubbed. None: every matching row is theirs.
    subject_key: str | None = None
    # The Dagster asset group; defaults to the layer.
    group: str | None = None

    @property
    def name(self) -> str:
        return f"{self.layer}/{self.table}"

    @property
    def group_name(self) -> str:
        return self.group or self.layer

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

    @property
    def holds_personal_data(self) -> bool:
        """Rows about people: the asset is tagged pii=true and the erasure reaches the table."""
        return self.personal_record or bool(self.personal_columns)

    def suite(self) -> list[Expectation]:
        out = [e for c in self.columns for e in c.expectations()]
        if self.primary_key:
            out.append(unique(*self.primary_key))
        return out + list(self.extra_expectations)


def unique(*columns: str) -> Expectation:
    """Uniqueness of one column or of a compound key."""
    if len(columns) == 1:
        return Expectation("expect_column_values_to_be_unique", {"column": columns[0]})
    return Expectation("expect_compound_columns_to_be_unique", {"column_list": list(columns)})


def ts(
    name: str,
    description: str = "",
    *,
    source: str | None = None,
    required: bool = False,
) -> Column:
    """A UTC timestamp column (the one helper every contract module uses)."""
    return Column(name, "timestamp", description, source=source, required=required)


_CONFIGURED = "__lakehouse_configured_contract__"
Builder = Callable[..., TableContract]


def configured(builder: Builder) -> Builder:
    """Marks a function that builds a contract from configuration (event names, states, scopes):
    the catalog (checks/catalog.py) lists its table like any module-level contract."""
    setattr(builder, _CONFIGURED, True)
    return builder


def is_configured(value: object) -> bool:
    return bool(getattr(value, _CONFIGURED, False))
