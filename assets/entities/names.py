"""How a person's name is read from what a source gives: one place, so the identity records
(records.py) and the canonical person (tables.py) split a full name the same way.

A full name arrives as `Last, First` (a comma: registries, clinics, billing contacts) or as
`First Middle Last` (the last word is the last name). A first or last name mapped on its own
always wins over the one read from a full name.
"""

from __future__ import annotations

NULL = "NULL::VARCHAR"


def first_name_sql(first: str | None, full: str | None) -> str:
    """SQL: the first name from a mapped first name, else from the full name."""
    full = full or NULL
    from_full = (
        f"CASE WHEN ({full}) LIKE '%,%' THEN nullif(trim(split_part(({full}), ',', 2)), '') "
        f"ELSE nullif(trim(regexp_replace(trim({full}), '\\s*\\S+$', '')), '') END"
    )
    return f"coalesce({first or NULL}, {from_full})"


def last_name_sql(last: str | None, full: str | None) -> str:
    """SQL: the last name from a mapped last name, else from the full name."""
    full = full or NULL
    from_full = (
        f"CASE WHEN ({full}) LIKE '%,%' THEN nullif(trim(split_part(({full}), ',', 1)), '') "
        f"ELSE nullif(regexp_extract(trim({full}), '(\\S+)$', 1), '') END"
    )
    return f"coalesce({last or NULL}, {from_full})"
