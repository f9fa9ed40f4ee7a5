"""What a reviewer sees of a record in entities/identity_review: no clear personal data.

The review queue lives outside the raw layer, so the values compared are shown masked (enough to
tell a typo from another person: an initial, a birth year, the last digits) beside their salted
hash (`<column>_hash`, resources/pii.py `pii_hash`, the same hash the person table keeps of an
email), which tells equal values from different ones; an address is shown by its hash only. The
`evidence` column still says, per comparison, which level the pair reached: which fields agreed
and how well. Company names, domains, countries, cities, gender and canonical ids are shown as
they are; a field of unknown kind (a catalog attribute) by its hash only.
"""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa

from resources.sql import ident

# column -> SQL over `x` giving what the reviewer sees (None: shown as it is)
MASKS: dict[str, str | None] = {
    "first_name": "left(x, 1) || '***'",
    "last_name": "left(x, 1) || '***'",
    "full_name": "left(x, 1) || '***'",
    "email_local": "left(x, 1) || '***'",
    "email": "'***@' || split_part(x, '@', 2)",
    "email_key": "'***@' || split_part(x, '@', 2)",
    "date_of_birth": "left(x, 4) || '-**-**'",
    "phone": "'***' || right(x, 2)",
    "national_id": "'***' || right(x, 2)",
    "postcode": "left(x, 2) || '***'",
    "address": None,  # hash only: equality is all a reviewer needs
    "email_domain": None,
    "city": None,
    "gender": None,
    "country": None,
    "account_id": None,
    "name_norm": None,
    "name_token": None,
    "domain": None,
    "domain_stem": None,
    "unique_id": None,
    "source_dataset": None,
}
CLEAR = frozenset(k for k, v in MASKS.items() if v is None and k != "address")  # not PII


def _has_hash(con: duckdb.DuckDBPyConnection) -> bool:
    found = con.execute(
        "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'pii_hash'"
    ).fetchall()
    return bool(found[0][0])


def reviewer_view(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> pa.Table:
    """`rows` (one per record, text columns) as a reviewer may see them. `con` should carry
    `pii_hash` (resources/pii.py `install`); without it hashed values are left out, never
    shown in clear."""
    hashing = _has_hash(con)
    cols = []
    for name in rows.column_names:
        q = ident(name)
        x = f"nullif({q}::VARCHAR, '')"
        if name in CLEAR:
            cols.append(f"{q}::VARCHAR AS {q}")
            continue
        mask = MASKS.get(name)
        if mask:
            cols.append(f"{_apply(mask, x)} AS {q}")
        h = ident(f"{name}_hash")
        cols.append(f"pii_hash({x}) AS {h}" if hashing else f"NULL::VARCHAR AS {h}")
    con.register("_review_rows", rows)
    try:
        return con.sql(f"SELECT {', '.join(cols)} FROM _review_rows").to_arrow_table()
    finally:
        con.unregister("_review_rows")


def _apply(mask: str, x: str) -> str:
    """The mask with its argument: `x` is the only identifier the masks use."""
    return re.sub(r"\bx\b", x, mask)
