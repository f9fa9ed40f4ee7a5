"""Erasure requests: how one is filed, which are waiting, and who each one is about.

A request lands in the consent source: a consent record with scope `erasure` and status
`requested`, carrying the person's email and/or subject_ref. It is resolved to the person's
source records through the identity links, and to every value that identifies them (ids,
emails and their salted hashes) and the names erased beside them.
"""

from __future__ import annotations

import argparse
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from assets.entities.records import create_macros, person_records, register_raw
from assets.entities.rules import Rules
from assets.privacy import audit, work
from checks.raw import RawContract
from checks.sources import load_catalog
from resources.lake import LakeResource
from resources.pii import hash_email
from resources.sql import literal

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
def consent_contract() -> RawContract | None:
    """The raw table erasure requests land in: the first consent object of the catalog."""
    found = load_catalog().by_role("consent")
    return found[0].contract if found else None


def write_request(
    landing_root: str | Path,
    email: str | None = None,
    subject_ref: str | None = None,
    when: datetime | None = None,
) -> Path:
    """Drop an erasure request into the consent landing zone, as the consent system would."""
    if not (email or subject_ref):
        raise ValueError("an erasure request names the person: an email or a subject_ref")
    when = when or datetime.now(UTC)
    request_id = "cns_erase_" + secrets.token_hex(6)
    record = {
        "record_id": request_id,
        "email": email,
        "subject_ref": subject_ref,
        "scope": SCOPE,
        "status": REQUESTED,
        "channel": "privacy_request",
        "recorded_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    c = consent_contract()
    if c is None:
        raise ValueError("the source catalog declares no consent object to file a request in")
    folder = Path(landing_root) / c.landing_dir / when.date().isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"erasure-{request_id}.json"
    path.write_text("[\n" + json.dumps(record) + "\n]\n")
    return path


def pending_requests(lake: LakeResource, done: set[str]) -> list[dict]:
    """Erasure requests in raw/consent_records not yet carried out."""
    c = consent_contract()
    if c is None or not lake.exists(c.layer, c.table):
        return []
    con = duckdb.connect()
    con.register("consent", lake.dataset(c.layer, c.table))
    rows = con.execute(
        f"""SELECT record_id, any_value(email) AS email, any_value(subject_ref) AS subject_ref,
                min(recorded_at) AS recorded_at
            FROM consent WHERE lower(scope) = {literal(SCOPE)}
              AND lower(status) = {literal(REQUESTED)}
            GROUP BY record_id ORDER BY recorded_at, record_id"""
    ).fetchall()
    keys = ("record_id", "email", "subject_ref", "recorded_at")
    return [dict(zip(keys, r, strict=True)) for r in rows if r[0] not in done]


def waiting(lake: LakeResource) -> tuple[list[Subject], list[dict]]:
    """What is to do: requests an interrupted run left (resumed from their work files), and
    requests landed in raw/consent_records that the audit does not hold yet."""
    resumed = [Subject(**w) for w in work.load(lake)]
    done = audit.recorded(lake) | {s.request_id for s in resumed}
    return resumed, pending_requests(lake, done)


def open_requests(lake: LakeResource) -> list[str]:
    """Ids of the requests waiting (see `waiting`)."""
    resumed, new = waiting(lake)
    return [s.request_id for s in resumed] + [r["record_id"] for r in new]


# -- who a request is about ----------------------------------------------------------------------
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
    c = consent_contract()
    consent = f"{c.source}/{c.object}" if c else ""
    view = f"v_raw__{c.table}" if c else ""
    ref_keys = []
    if ref:
        system, _, rid = ref.partition(":")
        ref_keys = [f"{s.source}:{rid}" for s in persons.sources if s.system == system]
    by_ref = (
        f"""SELECT {literal(consent + ":")} || record_id FROM {view}
            WHERE subject_ref = $ref"""
        if c is not None and c.name in present
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
    if c is not None and c.name in present:  # the refs the consent system knows them by
        consent_ids = [k.split(":", 1)[1] for k, *_ in rows if k.startswith(consent + ":")]
        identifiers.update(
            r[0]
            for r in con.execute(
                f"""SELECT DISTINCT subject_ref FROM {view}
                   WHERE record_id IN (SELECT unnest($ids::VARCHAR[])) AND subject_ref <> ''""",
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
