"""Source records in one standard shape, built in DuckDB from the raw tables the catalog's
roles name (assets/roles.py).

A source record is one id of one source object (`<system>/<object>:<id>`) at its latest version:
record versions collapse here, so identity is decided once per id, not once per extract. A
record carries every field its source declares for identity (the role's identity fields and the
catalog's `role.attributes`), one column each under the same name on every source, NULL where a
source maps none; each normalized by kind (`FIELD_NORMS`) with SQL macros, the email and company
ones generated from the rules' lists.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from assets.entities.names import first_name_sql, last_name_sql
from assets.entities.rules import EntityRules, Normalize, Ref, Source
from assets.raw.versions import hidden_versions
from assets.roles import ref_key_sql
from checks.roles import PERSON_IDENTITY_FIELDS
from resources.lake import LakeResource
from resources.sql import ident, literal

# How each identity field is normalized (a macro of `create_macros`); names and emails have
# their own columns below, any other field (a catalog attribute) is `norm_text`.
FIELD_NORMS = {
    "phone": "norm_phone",
    "date_of_birth": "norm_date",
    "postcode": "norm_postcode",
    "national_id": "norm_id",
    "address": "norm_text",
    "city": "norm_text",
    "gender": "norm_text",
}
# Person fields with columns of their own, built in `person_records` (names, email).
_NAMED = ("first_name", "last_name", "full_name", "email")


def text_list(values: tuple[str, ...] | list[str]) -> str:
    """A typed DuckDB list of texts for `list_contains`, each quoted by `literal`."""
    return "[" + ", ".join(literal(v) for v in values) + "]::VARCHAR[]"


def _case_map(expr: str, mapping: dict[str, str]) -> str:
    if not mapping:
        return expr
    whens = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in mapping.items())
    return f"(CASE {expr} {whens} ELSE {expr} END)"


def create_macros(con: duckdb.DuckDBPyConnection, n: Normalize) -> None:
    """Normalization as SQL macros, so every layer normalizes the same way."""
    suffixes = "|".join(s.replace(" ", r"\s+") for s in n.company_suffixes)
    local = "split_part(lower(trim(x)), '@', 1)"
    plus = f"split_part({local}, '+', 1)" if n.strip_plus_tags else local
    stmts = [
        # A website or domain as typed -> the bare host, lower-case, without www.
        r"""CREATE OR REPLACE MACRO norm_domain(x) AS nullif(regexp_replace(regexp_replace(
            regexp_replace(lower(trim(x)), '^[a-z]+://', ''), '^www\.', ''), '[/:?#].*$', ''),
            '')""",
        r"""CREATE OR REPLACE MACRO valid_email(x) AS
            regexp_full_match(lower(trim(x)), '[^@\s]+@[^@\s]+\.[^@\s]+')""",
        f"""CREATE OR REPLACE MACRO email_domain(x) AS CASE WHEN valid_email(x) THEN
            {_case_map("split_part(lower(trim(x)), '@', 2)", n.domain_aliases)} END""",
        f"""CREATE OR REPLACE MACRO email_local(x) AS CASE WHEN valid_email(x) THEN
            CASE WHEN list_contains({text_list(n.dot_insensitive_domains)}, email_domain(x))
            THEN replace({plus}, '.', '') ELSE {plus} END END""",
        """CREATE OR REPLACE MACRO email_key(x) AS email_local(x) || '@' || email_domain(x)""",
        f"""CREATE OR REPLACE MACRO is_generic_domain(d) AS
            list_contains({text_list(n.generic_email_domains)}, d)""",
        f"""CREATE OR REPLACE MACRO is_role_mailbox(x) AS
            list_contains({text_list(n.role_mailboxes)}, email_local(x))""",
        # Company names compared without case, accents, punctuation and legal suffixes.
        f"""CREATE OR REPLACE MACRO norm_company(x) AS nullif(trim(regexp_replace(
            regexp_replace(regexp_replace(lower(strip_accents(trim(x))), '[^a-z0-9]+', ' ',
            'g'), '(\\s+({suffixes}))+\\s*$', ''), '\\s+', ' ', 'g')), '')""",
        """CREATE OR REPLACE MACRO norm_person(x) AS nullif(trim(regexp_replace(
            lower(strip_accents(trim(x))), '[^a-z\\- '']+', '', 'g')), '')""",
        # Digits only: "+1 (555) 010-9999" and "15550109999" compare equal.
        r"""CREATE OR REPLACE MACRO norm_phone(x) AS
            nullif(regexp_replace(x::VARCHAR, '[^0-9]', '', 'g'), '')""",
        # Upper case without spaces; a UK postcode ("sw1a1aa") regains the one space before its
        # inward code, which Splink's postcode levels (sector, district, area) read.
        r"""CREATE OR REPLACE MACRO norm_postcode(x) AS nullif(regexp_replace(
            upper(regexp_replace(x::VARCHAR, '\s+', '', 'g')),
            '^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$', '\1 \2'), '')""",
        # A date as YYYY-MM-DD text when it parses as a date or a timestamp, else NULL (map a
        # source's own format in the catalog: `strptime(dob, '%d/%m/%Y')`).
        """CREATE OR REPLACE MACRO norm_date(x) AS strftime(coalesce(
            try_cast(trim(x::VARCHAR) AS DATE),
            try_cast(try_cast(trim(x::VARCHAR) AS TIMESTAMP) AS DATE)), '%Y-%m-%d')""",
        # Identifiers compared without case, spaces and punctuation ("AB 12-34-56 C").
        """CREATE OR REPLACE MACRO norm_id(x) AS
            nullif(regexp_replace(lower(x::VARCHAR), '[^a-z0-9]', '', 'g'), '')""",
        r"""CREATE OR REPLACE MACRO norm_text(x) AS
            nullif(regexp_replace(lower(trim(x::VARCHAR)), '\s+', ' ', 'g'), '')""",
        f"""CREATE OR REPLACE MACRO norm_country(x) AS CASE
            WHEN length(trim(x)) = 2 THEN upper(trim(x))
            ELSE {_case_map("lower(trim(x))", n.country_names)} END""",
    ]
    for s in stmts:
        con.execute(s)


def register_raw(con: duckdb.DuckDBPyConnection, lake: LakeResource, tables: set[str]) -> set[str]:
    """Expose raw tables to DuckDB as Arrow datasets (zero copy); returns those that exist.
    Rows of a file version that a newer delivery of the same path superseded are not shown:
    the layers above see each file once, in its current version (`assets/raw/versions.py`)."""
    present = set()
    for t in sorted(tables):
        layer, name = t.split("/")
        if not lake.exists(layer, name):
            continue
        hidden = hidden_versions(lake, name) if layer == "raw" else []
        if not hidden:
            con.register(_view(t), lake.dataset(layer, name))
        else:
            con.register(f"{_view(t)}__all", lake.dataset(layer, name))
            con.register(f"{_view(t)}__hidden", pa.table({"sha": pa.array(hidden, pa.string())}))
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {_view(t)} AS SELECT * FROM {_view(t)}__all "
                f"WHERE _file_sha256 NOT IN (SELECT sha FROM {_view(t)}__hidden)"
            )
        present.add(t)
    return present


def _view(table: str) -> str:
    return "v_" + table.replace("/", "__")


def _field(src: Source, name: str) -> str:
    expr = src.fields.get(name)
    return f"({expr})" if expr else "NULL::VARCHAR"


def _latest(src: Source, cols: str) -> str:
    where = f"WHERE ({src.where})" if src.where else ""
    return f"""
        SELECT * FROM (
            SELECT ({src.id})::VARCHAR AS source_id, {cols},
                min({src.order_by}) OVER w AS first_seen_at,
                max({src.order_by}) OVER w AS last_seen_at,
                row_number() OVER (w ORDER BY {src.order_by} DESC, _extract_date DESC,
                    _line DESC) AS _rn
            FROM {_view(src.table)} {where}
            WINDOW w AS (PARTITION BY ({src.id})::VARCHAR)
        ) WHERE _rn = 1 AND source_id IS NOT NULL AND source_id <> ''
    """


def _ref_key(refs: tuple[Ref, ...], alias: str) -> str:
    """The record key of the first reference that holds a value."""
    return f"{ref_key_sql(refs)} AS {alias}"


def _links(src: Source) -> str:
    if not src.links:
        return "[]::VARCHAR[] AS link_keys"
    keys = ", ".join(ref_key_sql((r,)) for r in src.links)
    return f"list_filter([{keys}], lambda k: k IS NOT NULL) AS link_keys"


def _attribute_names(sources: tuple[Source, ...]) -> list[str]:
    """Every catalog attribute of the sources, in catalog order."""
    return list(dict.fromkeys(a for src in sources for a in src.attributes))


def _norm(src: Source, name: str, expr: str | None = None) -> str:
    """A field's normalized value over the source's latest row, NULL when it maps none.
    (DuckDB cannot bind some macros over a constant NULL: absent fields are NULL typed.)"""
    raw = expr or src.fields.get(name) or src.attributes.get(name)
    if not raw:
        return f"NULL::VARCHAR AS {ident(name)}"
    return f"{FIELD_NORMS.get(name, 'norm_text')}(({raw})::VARCHAR) AS {ident(name)}"


def _carried(src: Source, names: list[str]) -> list[str]:
    """The SQL of identity fields and attributes carried as they are normalized."""
    return [_norm(src, n) for n in names]


def company_records(
    con: duckdb.DuckDBPyConnection, rules: EntityRules, present: set[str]
) -> pa.Table:
    parts = []
    attrs = _attribute_names(rules.sources)
    for src in rules.sources:
        if src.table not in present:
            continue
        cols = ", ".join(
            [
                f"{_field(src, 'name')}::VARCHAR AS name",
                f"{_field(src, 'website')}::VARCHAR AS website",
                f"{_field(src, 'email')}::VARCHAR AS email",
                f"{_field(src, 'country')}::VARCHAR AS country_raw",
                *_carried(src, attrs),
                _links(src),
            ]
        )
        anchor = "true" if src.source in rules.anchor_sources else "false"
        has = src.fields.keys()

        def d(field: str, expr: str, typ: str = "VARCHAR", has=has) -> str:
            # DuckDB cannot bind some macros over a constant NULL: skip absent fields.
            return expr if field in has else f"NULL::{typ}"

        extra = "".join(f"{ident(a)}, " for a in attrs)
        parts.append(
            f"""SELECT {literal(src.source + ":")} || source_id AS record_key,
                {literal(src.system)} AS system, {literal(src.object)} AS object, source_id,
                {anchor} AS is_anchor, name,
                {d("name", "norm_company(name)")} AS name_norm,
                {d("website", "norm_domain(website)")} AS domain, email,
                {d("email", "email_key(email)")} AS email_key,
                {d("email", "email_domain(email)")} AS email_domain,
                {d("email", "is_role_mailbox(email)", "BOOLEAN")} AS role_mailbox,
                {d("country", "norm_country(country_raw)")} AS country, {extra}
                link_keys, first_seen_at::TIMESTAMPTZ AS first_seen_at,
                last_seen_at::TIMESTAMPTZ AS last_seen_at
            FROM ({_latest(src, cols)})"""
        )
    if not parts:
        return pa.table({})
    sql = " UNION ALL ".join(parts)
    return con.sql(
        f"""SELECT *, split_part(name_norm, ' ', 1) AS name_token,
                replace(domain, '-', '') AS domain_stem
            FROM ({sql}) ORDER BY record_key"""
    ).to_arrow_table()


def person_records(
    con: duckdb.DuckDBPyConnection, rules: EntityRules, present: set[str]
) -> pa.Table:
    """One row per person record: names, email (with its key, local part and domain), every
    other identity field of the person role and every catalog attribute, normalized."""
    parts = []
    others = [f for f in PERSON_IDENTITY_FIELDS if f not in _NAMED]
    carried = [*others, *_attribute_names(rules.sources)]
    for src in rules.sources:
        if src.table not in present:
            continue
        full = _field(src, "full_name")
        # "Last, First" or "First Middle Last": one rule with entities/person (names.py)
        first = first_name_sql(_field(src, "first_name"), full)
        last = last_name_sql(_field(src, "last_name"), full)
        cols = ", ".join(
            [
                f"{first}::VARCHAR AS first_raw",
                f"{last}::VARCHAR AS last_raw",
                f"{full}::VARCHAR AS full_raw",
                f"{_field(src, 'email')}::VARCHAR AS email",
                *_carried(src, carried),
                _ref_key(src.account, "account_ref"),
                _links(src),
            ]
        )
        e = "email" in src.fields

        def d(expr: str, typ: str = "VARCHAR", e=e) -> str:
            return expr if e else f"NULL::{typ}"

        extra = "".join(f"{ident(c)}, " for c in carried)
        parts.append(
            f"""SELECT {literal(src.source + ":")} || source_id AS record_key,
                {literal(src.system)} AS system, {literal(src.object)} AS object, source_id,
                first_raw AS first_name_raw,
                last_raw AS last_name_raw, norm_person(first_raw) AS first_name,
                norm_person(last_raw) AS last_name,
                norm_person(coalesce(full_raw, concat_ws(' ', first_raw, last_raw)))
                    AS full_name, email,
                {d("email_key(email)")} AS email_key, {d("email_local(email)")} AS email_local,
                {d("email_domain(email)")} AS email_domain,
                {d("is_role_mailbox(email)", "BOOLEAN")} AS role_mailbox, {extra}
                account_ref, link_keys,
                first_seen_at::TIMESTAMPTZ AS first_seen_at,
                last_seen_at::TIMESTAMPTZ AS last_seen_at
            FROM ({_latest(src, cols)})"""
        )
    if not parts:
        return pa.table({})
    return con.sql(
        f"SELECT * FROM ({' UNION ALL '.join(parts)}) ORDER BY record_key"
    ).to_arrow_table()


def reference_counts(
    lake: LakeResource, rules: EntityRules, threads: int | None = None
) -> pa.Table:
    """How often each id is referenced from the tables the rules list (say, usage events ->
    workspace). Its own connection, so it can scan millions of rows beside the linking."""
    from resources.duckdb import connect

    con = connect(threads)
    present = register_raw(con, lake, {t for t, _ in rules.references})
    parts = []
    for table, ref in rules.references:
        if table not in present:
            continue
        # Count raw values first: trimming 10M strings costs more than hashing them.
        parts.append(
            f"""SELECT {literal(table)} AS referenced_from, {literal(ref.to)} AS source,
                    trim(v::VARCHAR) AS source_id, sum(n)::BIGINT AS references
                FROM (SELECT ({ref.expr}) AS v, count(*) AS n FROM {_view(table)} GROUP BY 1)
                WHERE nullif(trim(v::VARCHAR), '') IS NOT NULL GROUP BY ALL"""
        )
    schema = pa.schema(
        [
            ("referenced_from", pa.string()),
            ("source", pa.string()),
            ("source_id", pa.string()),
            ("references", pa.int64()),
        ]
    )
    if not parts:
        return schema.empty_table()
    out = con.sql(" UNION ALL ".join(parts)).to_arrow_table().cast(schema)
    con.close()
    return out


def dangling_references(references: pa.Table, known_keys: pa.Array) -> pa.Table:
    """Referenced ids that no source record carries: the audit's gaps."""
    keys = pc.binary_join_element_wise(references["source"], references["source_id"], ":")
    return references.filter(pc.invert(pc.is_in(keys, value_set=known_keys)))
