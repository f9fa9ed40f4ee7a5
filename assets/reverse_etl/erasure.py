"""Erasure: a person's right to be forgotten, applied to every layer of the lake.

A request lands in the consent source: a consent record with scope `erasure` and status
`requested`, carrying the person's email and/or subject_ref. It is resolved to the person's
source records through the identity links; then the person's identifiers (ids, emails, their
salted hashes) are searched for in every Delta table and every text file under the lake.

- A row that is the person's own record (a contact, a login, a consent record, the person's
  entity rows and 360 profile) is deleted.
- A row that is an account's fact naming the person (a ticket, a usage event, an event) stays,
  with the person's identifiers and names erased, so company history still adds up.
- Landing files (raw payloads as delivered) are rewritten the same way, and the ingest log
  learns their new content hash, so nothing is ingested twice.
- Then every table loses its history: vacuum with zero retention removes files no longer in
  the current version, a checkpoint replaces the log, and the older log entries (whose add
  actions keep min/max statistics, and whose delete predicates keep values) are removed. Time
  travel to a version before the erasure is no longer possible, by design.

Until a request is done, its identifiers sit in a work file under `<lake>/.secrets/erasure/`
(mode 0600), so a crashed run resumes instead of forgetting the person half-way.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from assets.entities.records import create_macros, person_records, register_raw
from assets.entities.rules import Rules
from checks.raw import CONSENT_RECORDS, RAW_TABLES
from resources.duckdb import connect
from resources.lake import LakeResource, is_local
from resources.mentions import escape, mention_pattern
from resources.pii import hash_email

SCOPE = "erasure"
REQUESTED = "requested"
ERASED = "[erased]"
WORK_DIR = ".secrets/erasure"
AUDIT = ("reverse_etl", "erasure_audit")

# Tables whose rows are the person's own records: a row naming the person is deleted.
# Everywhere else a matching row is an account's fact and stays, with the person erased from it.
OWN_RECORDS = frozenset(
    {
        "raw/crm_contacts",
        "raw/product_users",
        "raw/consent_records",
        "entities/person",
        "entities/relationship",
        "entities/identity_links",
        "entities/identity_review",
        "entities/identity_merges",
        "entities/unmapped_ids",
        "entities/attribute_history",
        "events/unattributed_events",
        "c360/customer_360_people",
    }
)
# Raw tables of own records, by the column holding a record's id: there a row is the person's
# own record only when its id is one of theirs. A row that merely names them (a colleague's
# login they invited: `invited_by`) is someone else's record: it stays, with the person erased.
OWN_RECORD_IDS = {
    "raw/crm_contacts": "id",
    "raw/product_users": "user_id",
    "raw/consent_records": "record_id",
}
# Under the lake root but not ours to rewrite: Dagster's own storage (our metadata carries no
# person values), the secrets, and the destinations' files (told to delete through their API).
NOT_SCANNED = (".dagster", ".secrets", "mlflow", "crm")
TEXT_SUFFIXES = (".csv", ".json", ".jsonl", ".ndjson", ".txt", ".html")


def _sql(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- what to look for ----------------------------------------------------------------------------
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


class Needles:
    """The regular expressions that find and erase a batch of subjects' values. The same
    pattern runs in Python (files) and in delta-rs's DataFusion (tables)."""

    def __init__(self, identifiers: Iterable[str], names: Iterable[str] = ()) -> None:
        self.identifiers = sorted({i.strip().lower() for i in identifiers if i and i.strip()})
        self.names = sorted({n.strip().lower() for n in names if n and len(n.strip()) > 3})
        self.find = self._pattern(self.identifiers)
        self.erase = self._pattern(self.identifiers + self.names)
        self.exact = "^(?:" + "|".join(escape(v) for v in self.identifiers + self.names) + ")$"
        self.ids = "^(?:" + "|".join(escape(v) for v in self.identifiers) + ")$"
        self._find = re.compile(self.find, re.IGNORECASE)
        self._erase = re.compile(self.erase, re.IGNORECASE)
        self._exact = re.compile(self.exact, re.IGNORECASE)
        self._ids = re.compile(self.ids, re.IGNORECASE)

    def __bool__(self) -> bool:
        return bool(self.identifiers)

    @staticmethod
    def _pattern(values: list[str]) -> str:
        return mention_pattern(values)

    def found_in(self, text: str) -> bool:
        low = text.lower()  # plain substring search first: the regex only confirms boundaries
        return any(i in low for i in self.identifiers) and bool(self._find.search(text))

    def names_record(self, record_id: object) -> bool:
        """Whether a record's id is one of the subjects' (the record is theirs)."""
        return isinstance(record_id, str) and bool(self._ids.match(record_id.strip()))

    def redact(self, value: object) -> object:
        """A value with the subjects erased: an exact match becomes null, a mention inside
        longer text becomes [erased]; lists and objects are walked."""
        if isinstance(value, str):
            if self._exact.match(value.strip()):
                return None
            before = None
            while before != value:  # adjacent mentions share a boundary character
                before, value = value, self._erase.sub(rf"\g<1>{ERASED}\g<3>", value)
            return value
        if isinstance(value, list):
            kept = [self.redact(v) for v in value]
            return [v for v, old in zip(kept, value, strict=True) if v is not None or old is None]
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        return value


# -- requests ------------------------------------------------------------------------------------
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
    c = CONSENT_RECORDS
    folder = Path(landing_root) / c.source / c.object / when.date().isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"erasure-{request_id}.json"
    path.write_text("[\n" + json.dumps(record) + "\n]\n")
    return path


def pending_requests(lake: LakeResource, done: set[str]) -> list[dict]:
    """Erasure requests in raw/consent_records not yet carried out."""
    c = CONSENT_RECORDS
    if not lake.exists(c.layer, c.table):
        return []
    con = duckdb.connect()
    con.register("consent", lake.dataset(c.layer, c.table))
    rows = con.execute(
        f"""SELECT record_id, any_value(email) AS email, any_value(subject_ref) AS subject_ref,
                min(recorded_at) AS recorded_at
            FROM consent WHERE lower(scope) = '{SCOPE}' AND lower(status) = '{REQUESTED}'
            GROUP BY record_id ORDER BY recorded_at, record_id"""
    ).fetchall()
    keys = ("record_id", "email", "subject_ref", "recorded_at")
    return [dict(zip(keys, r, strict=True)) for r in rows if r[0] not in done]


def waiting(lake: LakeResource) -> tuple[list[Subject], list[dict]]:
    """What is to do: requests an interrupted run left (resumed from their work files), and
    requests landed in raw/consent_records that the audit does not hold yet."""
    done = (
        set(lake.read(*AUDIT, columns=["request_id"])["request_id"].to_pylist())
        if lake.exists(*AUDIT)
        else set()
    )
    resumed = load_work(lake.root)
    return resumed, pending_requests(lake, done | {s.request_id for s in resumed})


def open_requests(lake: LakeResource) -> list[str]:
    """Ids of the requests waiting (see `waiting`)."""
    resumed, new = waiting(lake)
    return [s.request_id for s in resumed] + [r["record_id"] for r in new]


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
    consent = f"{CONSENT_RECORDS.source}/{CONSENT_RECORDS.object}"
    ref_keys = []
    if ref:
        system, _, rid = ref.partition(":")
        ref_keys = [f"{s.source}:{rid}" for s in persons.sources if s.system == system]
    by_ref = (
        f"""SELECT '{consent}:' || record_id FROM v_raw__consent_records
            WHERE subject_ref = $ref"""
        if "raw/consent_records" in present
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
               OR record_key = '{consent}:' || $rid""",
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
    if "raw/consent_records" in present:  # the refs the consent system knows the person by
        consent_ids = [k.split(":", 1)[1] for k, *_ in rows if k.startswith(consent + ":")]
        identifiers.update(
            r[0]
            for r in con.execute(
                """SELECT DISTINCT subject_ref FROM v_raw__consent_records
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


# -- work files: a request in progress -----------------------------------------------------------
def _refuse_remote(lake_root: str) -> None:
    """Erasure walks and rewrites the lake's files on disk: not yet for an object-store lake."""
    if not is_local(lake_root):
        raise NotImplementedError(
            f"erasure walks the lake's files; {lake_root} is not on local disk (object-store "
            "lakes: not supported yet). Nothing was changed"
        )


def work_dir(lake_root: str) -> Path:
    _refuse_remote(lake_root)
    return Path(lake_root.removeprefix("file://")) / WORK_DIR


def save_work(lake_root: str, subject: Subject) -> Path:
    folder = work_dir(lake_root)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / f"{subject.request_id}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(subject), f)
    return path


def load_work(lake_root: str) -> list[Subject]:
    if not is_local(lake_root):  # no work can have been saved there (see `work_dir`)
        return []
    folder = work_dir(lake_root)
    if not folder.is_dir():
        return []
    return [Subject(**json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]


def finish_work(lake_root: str, subjects: Iterable[Subject]) -> None:
    for s in subjects:
        (work_dir(lake_root) / f"{s.request_id}.json").unlink(missing_ok=True)


# -- Delta tables ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableErasure:
    table: str
    deleted: int = 0
    redacted: int = 0


def delta_tables(root: Path) -> list[tuple[str, Path]]:
    """Every Delta table under the lake root, named `<layer>/<table>` (or its relative path)."""
    found = []
    for log in sorted(root.rglob("_delta_log")):
        path = log.parent
        rel = path.relative_to(root).as_posix()
        if rel.split("/", 1)[0] not in NOT_SCANNED:
            found.append((rel, path))
    return found


def _text_columns(schema: pa.Schema) -> tuple[list[pa.Field], list[pa.Field]]:
    def is_text(t: pa.DataType) -> bool:
        return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)

    strings = [f for f in schema if is_text(f.type)]
    lists = [
        f
        for f in schema
        if (pa.types.is_list(f.type) or pa.types.is_large_list(f.type))
        and is_text(f.type.value_type)
    ]
    return strings, lists


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _match_sql(strings: list[pa.Field], lists: list[pa.Field]) -> str | None:
    """Whether a row names a subject: the pattern is the bound parameter $find."""
    terms = [f"regexp_matches({_q(f.name)}, $find, 'i')" for f in strings]
    terms += [f"regexp_matches(array_to_string({_q(f.name)}, ';'), $find, 'i')" for f in lists]
    return "coalesce(" + " OR ".join(terms) + ", false)" if terms else None


def _params(needles: Needles, query: str) -> dict[str, str]:
    """The patterns a query uses, as bound parameters: people's emails and names never become
    SQL text (DuckDB refuses parameters a query does not use, hence the filter)."""
    values = {
        "find": needles.find,
        "exact": needles.exact,
        "ids": needles.ids,
        "erase": needles.erase,
        "to": f"\\1{ERASED}\\3",
        "erased": ERASED,
    }
    return {k: v for k, v in values.items() if re.search(rf"\${k}\b", query)}


def _literal(value: object) -> str:
    return "NULL" if value is None else _sql(str(value))


def _scan(con: duckdb.DuckDBPyConnection, dt: DeltaTable) -> None:
    con.register("t", dt.to_pyarrow_dataset())


def count_matches(con: duckdb.DuckDBPyConnection, dt: DeltaTable, needles: Needles) -> int:
    strings, lists = _text_columns(pa.schema(dt.schema().to_arrow()))
    where = _match_sql(strings, lists)
    if where is None:
        return 0
    _scan(con, dt)
    query = f"SELECT count(*) FROM t WHERE {where}"
    return con.execute(query, _params(needles, query)).fetchall()[0][0]


def _redacted(f: pa.Field) -> str:
    """SQL for a text value with the subjects erased (same rules as `Needles.redact`), over the
    bound patterns $exact, $erase, $to."""
    gone = "NULL" if f.nullable else "$erased"

    def one(x: str, null: str) -> str:
        sub = f"regexp_replace({x}, $erase, $to, 'gi')"
        return (
            f"CASE WHEN regexp_full_match(trim({x}), $exact, 'i') THEN {null} "
            f"ELSE regexp_replace({sub}, $erase, $to, 'gi') END"
        )

    col = _q(f.name)
    if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
        return f"list_filter(list_transform({col}, x -> {one('x', 'NULL')}), x -> x IS NOT NULL)"
    return one(col, gone)


def erase_table(
    con: duckdb.DuckDBPyConnection, dt: DeltaTable, name: str, needles: Needles
) -> TableErasure:
    """Delete (own records) or redact (account facts) the rows naming a subject, in one new
    version. A partitioned table rewrites only the partitions holding a match."""
    schema = pa.schema(dt.schema().to_arrow())
    strings, lists = _text_columns(schema)
    where = _match_sql(strings, lists)
    if where is None:
        return TableErasure(name)
    _scan(con, dt)
    parts = list(dt.metadata().partition_columns)
    cols = ", ".join(_q(p) for p in parts)
    count = f"SELECT {cols + ', ' if cols else ''}count(*) AS n FROM t WHERE {where}" + (
        " GROUP BY ALL" if cols else ""
    )
    found = con.sql(count, params=_params(needles, count)).to_arrow_table()
    matched = sum(found["n"].to_pylist())
    if not matched:
        return TableErasure(name)
    scope, predicate = "true", None
    if parts:  # only the partitions holding a match are read and replaced
        keys = sorted(
            {tuple(r[p] for p in parts) for r in found.select(parts).to_pylist()}, key=str
        )
        con.register(
            "_scope",
            pa.table(
                {
                    p: [None if k[i] is None else str(k[i]) for k in keys]
                    for i, p in enumerate(parts)
                }
            ),
        )
        same = " AND ".join(
            f"CAST(t.{_q(p)} AS VARCHAR) IS NOT DISTINCT FROM _scope.{_q(p)}" for p in parts
        )
        scope = f"EXISTS (SELECT 1 FROM _scope WHERE {same})"
        # delta-rs takes its replace predicate as text: partition values the table itself holds.
        predicate = " OR ".join(
            "("
            + " AND ".join(
                f"{_q(p)} IS NULL" if v is None else f"{_q(p)} = {_literal(v)}"
                for p, v in zip(parts, k, strict=True)
            )
            + ")"
            for k in keys
        )
    own = name in OWN_RECORDS
    key = OWN_RECORD_IDS.get(name) if own else None
    deleted = matched if own else 0
    select = ", ".join(
        f"CASE WHEN _m THEN {_redacted(f)} ELSE {_q(f.name)} END AS {_q(f.name)}"
        if f in strings + lists and f.name not in parts
        else _q(f.name)
        for f in schema
    )
    if own and key is None:
        query = f"SELECT * FROM t WHERE {scope} AND NOT ({where})"
    elif own:  # the subjects' records go; other records naming them stay, erased
        theirs = f"coalesce(regexp_full_match(trim(CAST({_q(key)} AS VARCHAR)), $ids, 'i'), false)"
        mine = f"SELECT count(*) FROM t WHERE {where} AND {theirs}"
        deleted = con.execute(mine, _params(needles, mine)).fetchall()[0][0]
        query = (
            f"SELECT {select} FROM (SELECT *, {where} AS _m FROM t WHERE {scope}) "
            f"WHERE NOT (_m AND {theirs})"
        )
    else:
        query = f"SELECT {select} FROM (SELECT *, {where} AS _m FROM t WHERE {scope})"
    data = con.sql(query, params=_params(needles, query)).to_arrow_table()
    write_deltalake(
        dt.table_uri,
        data.select(schema.names).cast(schema),
        mode="overwrite",
        predicate=predicate,
        commit_properties=CommitProperties(custom_metadata={"lakehouse.operation": "erasure"}),
    )
    return TableErasure(name, deleted=deleted, redacted=matched - deleted)


def purge_history(dt: DeltaTable) -> int:
    """Drop every version but the current one: unreferenced files (zero retention, for this
    operation only), then the log before a fresh checkpoint. Returns files removed."""
    config = dt.metadata().configuration
    previous = config.get("delta.logRetentionDuration", "interval 30 days")
    dt.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    removed = dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    # The newest commit is a property change (no data values): the checkpoint is taken there,
    # and every commit before it (deletes carry their predicate) expires now.
    dt.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    dt.create_checkpoint()
    dt.cleanup_metadata()
    dt.alter.set_table_properties({"delta.logRetentionDuration": previous})
    return len(removed)


# -- files: landing extracts, ground truth, decisions ------------------------------------------
@dataclass(frozen=True)
class FileRewrite:
    path: str
    relative: str
    deleted: int
    redacted: int
    sha256: str
    size: int
    mtime_ns: int


def _open_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8")


def _kind(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    return Path(name).suffix


def _records(kind: str, text: str) -> tuple[list, Callable[[list], str]]:
    """A file's records and how to write them back in the same format."""
    if kind == ".json":
        data = json.loads(text)
        if isinstance(data, list):
            return data, lambda rs: "[\n" + ",\n".join(json.dumps(r) for r in rs) + "\n]\n"
        return [data], lambda rs: json.dumps(rs[0] if rs else {}, indent=2) + "\n"
    if kind in (".jsonl", ".ndjson"):
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        return lines, lambda rs: "".join(json.dumps(r) + "\n" for r in rs)
    if kind == ".csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, body = (rows[0], rows[1:]) if rows else ([], [])

        def write(rs: list) -> str:
            out = io.StringIO(newline="")
            w = csv.writer(out, lineterminator="\n")
            w.writerow(header)
            w.writerows(rs)
            return out.getvalue()

        return body, write
    return text.splitlines(keepends=True), lambda rs: "".join(rs)


def _redact_csv_row(row: list[str], needles: Needles) -> list[str]:
    return [(needles.redact(v) or "") if v else v for v in row]


def rewrite_file(
    path: Path, relative: str, needles: Needles, own: bool, key: str | None = None
) -> FileRewrite | None:
    """Remove (own records) or redact (everything else) the records naming a subject. With
    `key` (the field holding a record's id), only the subjects' own records are removed."""
    text = _open_text(path)
    if not needles.found_in(text):
        return None
    kind = _kind(path)
    records, write = _records(kind, text)
    header = next(csv.reader(io.StringIO(text, newline="")), []) if kind == ".csv" else []

    def theirs(r: object) -> bool:
        if key is None or isinstance(r, str):
            return True
        if isinstance(r, dict):
            return needles.names_record(r.get(key))
        return key in header and needles.names_record(r[header.index(key)])

    kept, deleted, redacted = [], 0, 0
    for r in records:
        flat = r if isinstance(r, str) else json.dumps(r)
        if not needles.found_in(flat):
            kept.append(r)
            continue
        if own and theirs(r):
            deleted += 1
            continue
        redacted += 1
        if kind == ".csv":
            kept.append(_redact_csv_row(r, needles))
        elif isinstance(r, str):  # a line of plain text
            kept.append(needles.redact(r) or "\n")
        else:
            kept.append(needles.redact(r))
    data = write(kept).encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    tmp = path.with_name(f".{path.name}.erasure")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    stat = path.stat()
    return FileRewrite(
        str(path),
        relative,
        deleted,
        redacted,
        hashlib.sha256(data).hexdigest(),
        stat.st_size,
        stat.st_mtime_ns,
    )


def text_files(root: Path) -> Iterator[Path]:
    """Text files under a root that are not part of a Delta table. Only regular files: a link
    would be read (and its target's text copied into the lake) and a FIFO would never end;
    the raw layer refuses both, so neither holds anything of the lake's."""
    for dirpath, dirnames, filenames in os.walk(root):  # never into linked folders
        here = Path(dirpath)
        if here == root:
            dirnames[:] = [d for d in dirnames if d not in NOT_SCANNED]
        dirnames[:] = [d for d in dirnames if not (here / d / "_delta_log").is_dir()]
        for name in filenames:
            path = here / name
            if name.removesuffix(".gz").endswith(TEXT_SUFFIXES) and _is_regular(path):
                yield path


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def landing_owner(relative: str) -> str | None:
    """The raw table a landing file feeds (`<source>/<object>/<date>/<file>`)."""
    parts = relative.split("/")
    for c in RAW_TABLES:
        if parts[:2] == [c.source, c.object]:
            return f"{c.layer}/{c.table}"
    return None


def rewrite_files(lake_root: Path, landing_root: Path, needles: Needles) -> list[FileRewrite]:
    roots = [lake_root] if landing_root.is_relative_to(lake_root) else [lake_root, landing_root]
    done: list[FileRewrite] = []
    for root in roots:
        for path in text_files(root):
            try:
                rel_landing = path.relative_to(landing_root).as_posix()
            except ValueError:
                rel_landing = None
            table = landing_owner(rel_landing) if rel_landing else None
            # Landing extracts follow their raw table's rule; other files here (ground truth,
            # review decisions) are lists about people: a line naming the person goes.
            own = table in OWN_RECORDS if table else True
            key = _landing_key(table) if table else None
            result = rewrite_file(path, rel_landing or path.as_posix(), needles, own, key)
            if result:
                done.append(result)
    return done


def _landing_key(table: str) -> str | None:
    """The landing field of a raw table's record id (see OWN_RECORD_IDS)."""
    column = OWN_RECORD_IDS.get(table)
    contract = next((c for c in RAW_TABLES if c.name == table), None)
    if column is None or contract is None:
        return None
    return next(c.source_name for c in contract.columns if c.name == column)


def _rename_content(
    con: duckdb.DuckDBPyConnection, lake: LakeResource, table: str, old: str, new: str
) -> None:
    """A rewritten file's rows carry its new content hash, in its raw table and the quarantine:
    the log, the rows and the file in landing keep naming one content (a later version of the
    file supersedes exactly these rows). Written as `erase_table` writes, not by delta-rs's
    UPDATE: that writes string_view Parquet columns, which pyarrow then cannot compare with a
    string in a filter (a later request by subject_ref failed on raw/consent_records)."""
    if not (_SHA.fullmatch(old) and _SHA.fullmatch(new)):
        raise ValueError(f"not content hashes: {old!r}, {new!r}")
    meta = CommitProperties(custom_metadata={"lakehouse.operation": "erasure"})
    for name, column, scope in (
        (table, "_file_sha256", "true"),
        ("quarantine", "file_sha256", f"table_name = {_literal(table)}"),
    ):
        if not lake.exists("raw", name):
            continue
        dt = lake.table("raw", name)
        schema = pa.schema(dt.schema().to_arrow())
        _scan(con, dt)
        # A regex, not `=`: DuckDB would push a comparison into the Arrow scan, which fails on
        # the string_view columns an earlier UPDATE may have left.
        select = ", ".join(
            f"CASE WHEN {scope} THEN '{new}' ELSE {_q(c)} END AS {_q(c)}" if c == column else _q(c)
            for c in schema.names
        )
        data = con.sql(
            f"SELECT {select} FROM t WHERE regexp_full_match({_q(column)}, '{old}|{new}')"
        ).to_arrow_table()
        if data.num_rows:
            write_deltalake(
                dt.table_uri,
                data.cast(schema),
                mode="overwrite",
                predicate=f"{_q(column)} IN ('{old}', '{new}')",
                commit_properties=meta,
            )


_SHA = re.compile(r"[0-9a-f]{64}")


def update_ingest_log(
    con: duckdb.DuckDBPyConnection, lake: LakeResource, rewrites: list[FileRewrite]
) -> int:
    """The rewritten landing files are the ones already ingested: record their new identity."""
    rows = [
        {
            "table_name": t.split("/", 1)[1],
            "source_file": r.relative,
            "file_sha256": r.sha256,
            "file_bytes": r.size,
            "file_mtime_ns": r.mtime_ns,
        }
        for r in rewrites
        if (t := landing_owner(r.relative))
    ]
    if not rows or not lake.exists("raw", "ingest_log"):
        return 0
    dt = lake.table("raw", "ingest_log")
    schema = pa.schema(dt.schema().to_arrow())
    con.register("t", dt.to_pyarrow_dataset())
    con.register("s", pa.Table.from_pylist(rows))
    # Only a path's latest decision names its current content; earlier versions keep theirs,
    # and a later version that superseded the old content now supersedes the new one.
    order = (
        "coalesce(seq, 0) DESC, ingested_at DESC" if "seq" in schema.names else "ingested_at DESC"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE t_now AS SELECT *, row_number() OVER (
            PARTITION BY table_name, source_file ORDER BY {order}) = 1 AS _latest FROM t"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE renamed AS SELECT n.table_name, n.file_sha256 AS old,
            min(s.file_sha256) AS new FROM t_now n JOIN s USING (table_name, source_file)
            WHERE n._latest AND n.file_sha256 <> s.file_sha256 GROUP BY ALL"""
    )
    for table, old, new in con.sql("SELECT * FROM renamed ORDER BY ALL").fetchall():
        _rename_content(con, lake, table, old, new)
    changed = ("file_sha256", "file_bytes", "file_mtime_ns")

    def column(name: str) -> str:
        if name in changed:
            new, old = f"coalesce(s.{_q(name)}, t.{_q(name)})", f"t.{_q(name)}"
            return f"CASE WHEN t._latest THEN {new} ELSE {old} END AS {_q(name)}"
        if name == "supersedes":
            return f"coalesce(r.new, t.{_q(name)}) AS {_q(name)}"
        return f"t.{_q(name)}"

    select = ", ".join(column(f.name) for f in schema)
    sup = (
        "LEFT JOIN renamed r ON r.table_name = t.table_name AND r.old = t.supersedes"
        if "supersedes" in schema.names
        else ""
    )
    data = con.sql(
        f"SELECT {select} FROM t_now t LEFT JOIN s USING (table_name, source_file) {sup}"
    ).to_arrow_table()
    write_deltalake(
        dt.table_uri,
        data.cast(schema),
        mode="overwrite",
        commit_properties=CommitProperties(custom_metadata={"lakehouse.operation": "erasure"}),
    )
    return len(rows)


# -- the whole operation -------------------------------------------------------------------------
@dataclass
class Outcome:
    tables: list[TableErasure]
    files: list[FileRewrite]
    ingest_log_rows: int
    purged_tables: int
    purged_files: int
    remaining: dict[str, int]

    @property
    def deleted(self) -> int:
        return sum(t.deleted for t in self.tables)

    @property
    def redacted(self) -> int:
        return sum(t.redacted for t in self.tables)

    def table_counts(self) -> dict[str, dict[str, int]]:
        return {
            t.table: {"deleted": t.deleted, "redacted": t.redacted}
            for t in self.tables
            if t.deleted or t.redacted
        }


def erase(
    lake: LakeResource,
    landing_root: str,
    needles: Needles,
    log: Callable[[str], None] = lambda _: None,
) -> Outcome:
    """Erase the subjects from every table and file under the lake, then purge history."""
    _refuse_remote(lake.root)
    root = Path(lake.uri("x", "x")).parent.parent
    audit_table = "/".join(AUDIT)
    tables = [(name, path) for name, path in delta_tables(root) if name != audit_table]
    erased: list[TableErasure] = []
    with connect() as con:
        for name, path in tables:
            result = erase_table(con, DeltaTable(str(path)), name, needles)
            if result.deleted or result.redacted:
                log(f"{name}: {result.deleted} deleted, {result.redacted} redacted")
            erased.append(result)
        files = rewrite_files(root, Path(landing_root).resolve(), needles)
        log(f"{len(files)} file(s) rewritten")
        logged = update_ingest_log(con, lake, files)
        purged = sum(purge_history(DeltaTable(str(path))) for _, path in tables)
        remaining = {
            name: n
            for name, path in tables
            if (n := count_matches(con, DeltaTable(str(path)), needles))
        }
    remaining.update({str(p): 1 for p in text_files(root) if needles.found_in(_open_text(p))})
    return Outcome(erased, files, logged, len(tables), purged, remaining)


def audit_rows(
    subjects: list[Subject],
    outcome: Outcome,
    destinations: dict[str, str],
    batch_id: str,
    actor: str,
    now: datetime,
) -> list[dict]:
    """One row per request, with counts and table names only: never an erased value."""
    rows = []
    for s in subjects:
        tables = s.done.get("tables", {})
        deleted = sum(c["deleted"] for c in tables.values())
        redacted = sum(c["redacted"] for c in tables.values())
        rows.append(
            {
                "request_id": s.request_id,
                "requested_at": datetime.fromisoformat(s.requested_at) if s.requested_at else None,
                "erased_at": now,
                "batch_id": batch_id,
                "actor": actor,
                "status": "erased"
                if s.person_ids or outcome.deleted or outcome.redacted
                else "not_found",
                "persons": len(s.person_ids),
                "source_records": len(s.records),
                "identifiers": len(s.identifiers),
                "rows_deleted": deleted,
                "rows_redacted": redacted,
                "tables": json.dumps(tables, sort_keys=True),
                "files_rewritten": s.done.get("files_rewritten", 0),
                "histories_purged": outcome.purged_tables,
                "destinations": json.dumps(destinations, sort_keys=True),
                "verified": not outcome.remaining,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python -m assets.reverse_etl.erasure --email x@y.com`: file a request, as the consent
    system would; the erasure job (or sensor) carries it out."""
    import argparse

    from resources.landing import DEFAULT_LANDING_ROOT
    from resources.settings import LANDING_ROOT

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--email")
    parser.add_argument("--subject-ref", help="e.g. crm:<contact id> or product:<user id>")
    parser.add_argument("--landing", default=os.environ.get(LANDING_ROOT, DEFAULT_LANDING_ROOT))
    args = parser.parse_args(argv)
    if not (args.email or args.subject_ref):
        parser.error("name the person: --email and/or --subject-ref")
    path = write_request(args.landing, args.email, args.subject_ref)
    print(f"erasure request filed: {path}")
    print("carry it out: materialize the `erasure` job (or let erasure_sensor start it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
