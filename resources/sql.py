"""SQL text built from Python values: the one place that quotes.

Values that come from people (emails, names) are bound as parameters, never written into SQL;
these helpers are for names and values the platform itself owns (column names from contracts,
event names from the mapping, states, dates), and they escape them anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime


def ident(name: str) -> str:
    """A quoted identifier (column, view or table name)."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    """A SQL literal: NULL, a boolean, a number, or a quoted string (dates as ISO text)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date):
        value = value.isoformat()
    return "'" + str(value).replace("'", "''") + "'"


def in_list(values: Iterable[object]) -> str:
    """`(v1, v2, ...)` for `x IN ...`; an empty list matches nothing (`(NULL)`)."""
    items = [literal(v) for v in values]
    return "(" + (", ".join(items) if items else "NULL") + ")"
