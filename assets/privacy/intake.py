"""Erasure requests: how one is filed, which are waiting, and who each one is about.

A request lands in the consent source (the catalog's first object of the consent role): a
consent record with scope `erasure` and status `requested`, carrying the person's email and/or
the reference by which another system knows them (`subject_ref`: the column its `person`
references read, e.g. `crm:<contact id>`). It is resolved to the person's source records through
the identity links, and to every value that identifies them (ids, emails and their salted
hashes) and the names erased beside them. No object is named here: the columns come from the
consent role's mapping.
"""

from __future__ import annotations

import argparse
import csv
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from assets.entities.records import create_macros, person_records, register_raw
from assets.entities.rules import Rules
from assets.privacy import audit, work
from assets.roles import (
    consent_object,
    mapped,
    raw_table,
    record_id,
    ref_key_sql,
    refs,
    subject_column,
    view,
)
from checks.sources import Catalog, load_catalog
from resources.lake import LakeResource
from resources.pii import hash_email
from resources.sql import ident, literal

if TYPE_CHECKING:
    from assets.privacy.audit import Outcome

SCOPE = "erasure"
REQUESTED = "requested"


@dataclass
class Subject:
    """One erasure request, resolved: the identifiers that find the person's rows, and the
    names erased from them (a name alone never selects a row: names are not unique)."""

    request_id: str
    requested_at: str | None
    person_ids: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)  # "<system>/<object>:<id>"
    identifiers: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    # What attempts so far removed (counts only), so an interrupted request is audited whole.
    done: dict = field(default_factory=dict)

    def record(self, outcome: Outcome) -> None:
        tables = self.done.setdefault("tables", {})
        for name, counts in outcome.table_counts().items():
            for k, v in counts.items():
                tables.setdefault(name, {"deleted": 0, "redacted": 0})[k] += v
        self.done["files_rewritten"] = self.done.get("files_rewritten", 0) + len(outcome.files)


# -- requests ------------------------------------------------------------------------------------
def write_request(
    landing_root: str | Path,
    email: str | None = None,
    subject_ref: str | None = None,
    when: datetime | None = None,
    catalog: Catalog | None = None,
) -> Path:
    """Drop an erasure request into the consent landing zone, as the consent system would: one
    record in the consent object's own format and field names."""
    if not (email or subject_ref):
        raise ValueError("an erasure request names the person: an email or a subject_ref")
    o = consent_object(catalog or load_catalog())
    when = when or datetime.now(UTC)
    request_id = "cns_erase_" + secrets.token_hex(6)
    values = {
        "id": request_id,
        "email": email,
        "scope": SCOPE,
        "status": REQUESTED,
        "channel": "privacy_request",
        "recorded_at": when,
    }
    columns = {c.name: c for c in o.columns}
    record: dict[str, Any] = {}
    for name, value in values.items():
        col = columns.get(record_id(o) if name == "id" else (mapped(o, name) or ""))
        if col is not None:
            _put(record, col.source_name, _landed(col, value))
    subject = subject_column(o)
    if subject_ref and subject:
        _put(record, columns[subject].source_name, subject_ref)
    folder = Path(landing_root) / o.landing / when.date().isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"erasure-{request_id}.{EXTENSIONS[o.format]}"
    _write(path, o, record)
    return path


EXTENSIONS = {"json_array": "json", "jsonl": "jsonl", "csv": "csv", "parquet": "parquet"}


def _landed(col, value: Any) -> Any:
    """A value as the source would deliver it (a timestamp in the column's unit)."""
    if not isinstance(value, datetime):
        return value
    if col.unit == "unix_seconds":
        return int(value.timestamp())
    if col.unit == "unix_millis":
        return int(value.timestamp() * 1000)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _put(record: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted source path (`properties.email`) in a nested record."""
    *parents, leaf = path.split(".")
    for p in parents:
        record = record.setdefault(p, {})
    record[leaf] = value


def _write(path: Path, o, record: dict[str, Any]) -> None:
    if o.format == "jsonl":
        path.write_text(json.dumps(record) + "\n")
    elif o.format == "json_array":
        doc: Any = [record]
        for key in reversed(o.records_path.split(".") if o.records_path else []):
            doc = {key: doc}
        path.write_text(json.dumps(doc, indent=1) + "\n")
    elif o.format == "csv":
        names = [c.source_name for c in o.columns]
        with open(path, "w", newline="") as f:
            w = csv.writer(f, delimiter=o.csv.delimiter, quotechar=o.csv.quote or '"')
            if o.csv.header:
                w.writerow(names)
            w.writerow(["" if record.get(n) is None else record.get(n) for n in names])
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist([record]), path)


def pending_requests(
    lake: LakeResource, done: set[str], catalog: Catalog | None = None
) -> list[dict]:
    """Erasure requests in the consent object's raw table not yet carried out (none when no
    object plays the consent role: requests have nowhere to land)."""
    catalog = catalog or load_catalog()
    if not catalog.by_role("consent"):
        return []
    o = consent_object(catalog)
    c = o.contract
    if not lake.exists(c.layer, c.table):
        return []
    subject = subject_column(o)
    email = mapped(o, "email")
    con = duckdb.connect()
    con.register("consent", lake.dataset(c.layer, c.table))
    rows = con.execute(
        f"""SELECT ({record_id(o)})::VARCHAR AS record_id,
                any_value({email or "NULL"})::VARCHAR AS email,
                any_value({ident(subject) if subject else "NULL"})::VARCHAR AS subject_ref,
                min(({mapped(o, "recorded_at")})::TIMESTAMPTZ) AS recorded_at
            FROM consent WHERE lower(({mapped(o, "scope")})::VARCHAR) = {literal(SCOPE)}
              AND lower(({mapped(o, "status")})::VARCHAR) = {literal(REQUESTED)}
            GROUP BY 1 ORDER BY recorded_at, record_id"""
    ).fetchall()
    keys = ("record_id", "email", "subject_ref", "recorded_at")
    return [dict(zip(keys, r, strict=True)) for r in rows if r[0] not in done]


def waiting(lake: LakeResource) -> tuple[list[Subject], list[dict]]:
    """What is to do: requests an interrupted run left (resumed from their work files), and
    requests landed in the consent object's raw table that the audit does not hold yet."""
    resumed = [Subject(**w) for w in work.load(lake)]
    done = audit.recorded(lake) | {s.request_id for s in resumed}
    return resumed, pending_requests(lake, done)


def open_requests(lake: LakeResource) -> list[str]:
    """Ids of the requests waiting (see `waiting`)."""
    resumed, new = waiting(lake)
    return [s.request_id for s in resumed] + [r["record_id"] for r in new]


# -- who a request is about ----------------------------------------------------------------------
def _ref_keys(o, ref: str) -> list[str]:
    """The record keys a `subject_ref` names: the consent role's `person` references evaluated
    on a record holding it (`crm:<id>` -> `<the CRM's contact object>:<id>`)."""
    keys = [ref_key_sql((r,)) for r in refs(o, "person")]
    if not keys:
        return []
    subject = ident(subject_column(o))
    with duckdb.connect() as con:  # its own: the caller's connection has views open
        con.register("_subject", o.contract.schema.empty_table())
        rows = con.execute(
            f"""SELECT [{", ".join(keys)}] FROM (SELECT * REPLACE ($ref::VARCHAR AS {subject})
                FROM (SELECT * FROM _subject UNION ALL BY NAME SELECT NULL AS _none))""",
            {"ref": ref},
        ).fetchall()
    return [k for k in (rows[0][0] if rows else []) if k]


def resolve(
    con: duckdb.DuckDBPyConnection, lake: LakeResource, rules: Rules, salt: str, request: dict
) -> Subject:
    """The person behind a request: every source record the identity links tie to the records
    the request names (by email, normalized as identity does, or by subject_ref)."""
    create_macros(con, rules.normalize)
    persons = rules.persons
    present = register_raw(con, lake, {s.table for s in persons.sources})
    con.register("rec", person_records(con, persons, present))
    if lake.exists("entities", "identity_links"):
        con.register("links", lake.dataset("entities", "identity_links"))
    else:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE links AS SELECT NULL::VARCHAR AS record_key, "
            "NULL::VARCHAR AS canonical_id, NULL::VARCHAR AS entity_type WHERE false"
        )
    email, ref = request.get("email"), request.get("subject_ref")
    o = consent_object(load_catalog())
    consent, consent_view, subject = o.source, view(raw_table(o)), subject_column(o)
    ref_keys = _ref_keys(o, ref) if ref and subject else []
    by_ref = (
        f"""SELECT {literal(consent + ":")} || ({record_id(o)})::VARCHAR FROM {consent_view}
            WHERE {ident(subject)} = $ref"""
        if raw_table(o) in present and subject
        else "SELECT NULL::VARCHAR WHERE false"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE seeds AS
            SELECT record_key FROM rec
            WHERE ($email IS NOT NULL AND (lower(trim(email)) = lower(trim($email))
                   OR email_key(email) = email_key($email)))
               OR record_key IN (SELECT unnest($refs::VARCHAR[]))
               OR list_has_any(link_keys, $refs::VARCHAR[])
               OR record_key IN ({by_ref})
               OR record_key = {literal(consent + ":")} || $rid""",
        {"email": email, "refs": ref_keys, "ref": ref, "rid": request["record_id"]},
    )
    person_ids = [
        r[0]
        for r in con.execute(
            """SELECT DISTINCT canonical_id FROM links
               WHERE entity_type = 'person' AND record_key IN (SELECT record_key FROM seeds)
               ORDER BY 1"""
        ).fetchall()
    ]
    rows = con.execute(
        """SELECT record_key, source_id, email, role_mailbox, first_name_raw, last_name_raw
           FROM rec WHERE record_key IN (SELECT record_key FROM seeds)
              OR record_key IN (SELECT record_key FROM links WHERE entity_type = 'person'
                                AND canonical_id IN (SELECT unnest($ids::VARCHAR[])))
           ORDER BY record_key""",
        {"ids": person_ids},
    ).fetchall()
    identifiers = {request["record_id"], *person_ids, *(x for x in (email, ref) if x)}
    names: set[str] = set()
    for key, source_id, mail, role_mailbox, first, last in rows:
        # A composite id (a ticket requester's `<org id>|<email hash>`) is matched whole: its
        # parts are an account's id and an email's hash (the email below adds it, if theirs).
        identifiers.update((key, source_id))
        if mail and not role_mailbox:  # a team mailbox is not this person's to erase
            identifiers.add(mail.strip())
        if first and last:
            names.update((f"{first} {last}", f"{last}, {first}", f"{last} {first}"))
    if raw_table(o) in present and subject:  # the refs the consent system knows them by
        consent_ids = [k.split(":", 1)[1] for k, *_ in rows if k.startswith(consent + ":")]
        identifiers.update(
            r[0]
            for r in con.execute(
                f"""SELECT DISTINCT {ident(subject)}::VARCHAR FROM {consent_view}
                   WHERE ({record_id(o)})::VARCHAR IN (SELECT unnest($ids::VARCHAR[]))
                     AND {ident(subject)} <> ''""",
                {"ids": consent_ids},
            ).fetchall()
        )
    if lake.exists("entities", "person") and person_ids:
        con.register("person", lake.dataset("entities", "person"))
        names.update(
            r[0]
            for r in con.execute(
                """SELECT full_name FROM person WHERE full_name LIKE '% %'
                   AND person_id IN (SELECT unnest($ids::VARCHAR[]))""",
                {"ids": person_ids},
            ).fetchall()
        )
    emails = [i for i in identifiers if "@" in i]
    identifiers.update(h for e in emails if (h := hash_email(salt, e)))
    requested = request.get("recorded_at")
    return Subject(
        request_id=request["record_id"],
        requested_at=requested.isoformat() if requested else None,
        person_ids=person_ids,
        records=sorted({r[0] for r in rows}),
        identifiers=sorted(i for i in identifiers if i),
        names=sorted(names),
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m assets.privacy --email x@y.com`: file a request, as the consent system
    would; the erasure job (or erasure_sensor) carries it out."""
    from resources.settings import landing_root

    parser = argparse.ArgumentParser(prog="python -m assets.privacy", description=main.__doc__)
    parser.add_argument("--email")
    parser.add_argument("--subject-ref", help="e.g. crm:<contact id> or product:<user id>")
    parser.add_argument("--landing", default=landing_root())
    args = parser.parse_args(argv)
    if not (args.email or args.subject_ref):
        parser.error("name the person: --email and/or --subject-ref")
    path = write_request(args.landing, args.email, args.subject_ref)
    print(f"erasure request filed: {path}")
    print("carry it out: materialize the `erasure` job (or let erasure_sensor start it)")
    return 0
