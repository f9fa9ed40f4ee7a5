"""Erasure: after a request, the person's email, name and ids are in no file under the lake,
old versions cannot bring them back, the CRM forgets them, and nobody else is touched.

Who "the person" is comes from the sample company's ground truth and the landing files as
delivered (their records' ids, emails, names, subject refs), plus the canonical id identity gave
their records and the salted hashes of their emails: never from the erasure module's own
resolution. Their rows in every table are counted before the request; afterwards each table must
hold exactly its other rows, unchanged, plus the person's account facts with the person erased.
"""

from __future__ import annotations

import collections
import csv
import gzip
import hashlib
import io
import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from assets.privacy.intake import write_request
from assets.privacy.match import ERASED, Needles
from assets.privacy.work import WORK_DIR
from conftest import Lakehouse, build_whole_graph, materialized
from resources.destinations import SQLiteDestination

AUDIT = "privacy/erasure_audit"
# A person's own records (README, "Erasure"): CRM contacts, product logins, consent records,
# entity rows and the 360 profile are deleted. A raw row is the person's own when its record id
# is one of theirs (a colleague's login that names them as its inviter is the colleague's).
# Every other row naming them is an account fact: it stays, with the person erased from it.
OWN_RAW_IDS = {
    "raw/crm_contacts": "id",
    "raw/product_users": "user_id",
    "raw/consent_records": "record_id",
}
OWN_LAYERS = ("entities/", "c360/customer_360_people")
# Columns naming a landing file's content: a file erasure rewrote has a new hash, and the rows it
# gave keep naming their file (README, "Erasure"; docs/reliability.md).
FILE_IDENTITY = ("_file_sha256", "file_sha256", "supersedes", "file_bytes", "file_mtime_ns")
# Characters that continue an id or an address: a value is matched whole, not inside a longer one.
WORD = r"a-z0-9._%+\-"


def scan(root: Path, needles: list[str]) -> list[tuple[str, str]]:
    """Every file under the lake: Parquet files decoded (referenced by a Delta log or not, the
    logs' checkpoints included), every other file read as bytes (gzip opened)."""
    low = [n.lower() for n in needles]
    hits = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            text = json.dumps(pq.read_table(path).to_pylist(), default=str)
        else:
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
            text = data.decode("utf-8", "replace")
        text = text.lower()
        hits += [(str(path.relative_to(root)), n) for n in low if n in text]
    return hits


def tables(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob("_delta_log") if ".dagster" not in p.parts)


# -- who the person is: ground truth and landing files -------------------------------------------
def landing_records(landing: Path, source: str, obj: str) -> list[dict]:
    """Every record of a landing object, as delivered (JSON array, JSON Lines or CSV)."""
    out: list[dict] = []
    for path in sorted((landing / source / obj).rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        text = data.decode("utf-8")
        kind = Path(path.name.removesuffix(".gz")).suffix
        if kind == ".json":
            out += json.loads(text)
        elif kind == ".jsonl":
            out += [json.loads(line) for line in text.splitlines() if line.strip()]
        elif kind == ".csv":
            out += list(csv.DictReader(io.StringIO(text)))
    return out


@dataclass
class Person:
    """A person as the sources delivered them, and the pseudonyms the lake knows them by."""

    key: str
    ids: set[str]  # their records' ids: CRM contact, product login, consent records
    user_ids: list[str]
    contact_ids: list[str]
    emails: set[str]
    names: set[str]
    refs: set[str] = field(default_factory=set)  # consent subject refs naming them
    canonical: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)

    @property
    def identifiers(self) -> list[str]:
        return sorted(self.ids | self.emails | self.refs | self.canonical | self.hashes)

    @property
    def values(self) -> list[str]:
        return self.identifiers + sorted(self.names)

    @property
    def pattern(self) -> str:
        alts = "|".join(re.escape(v) for v in sorted(self.values, key=len, reverse=True))
        return f"(?:^|[^{WORD}])(?:{alts})(?:$|[^{WORD}])"

    def holds(self, value: object) -> bool:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        return bool(re.search(self.pattern, text, re.IGNORECASE))


class Company:
    """The sample company's ground truth and landing records, read once."""

    def __init__(self, house: Lakehouse) -> None:
        landing = house.landing_root
        truth = landing / "_truth"
        self.house = house
        self.people = {p["person_key"]: p for p in csv.DictReader((truth / "people.csv").open())}
        self.records = collections.defaultdict(list)
        for r in csv.DictReader((truth / "source_records.csv").open()):
            if r["person_key"]:
                self.records[r["person_key"]].append(r)
        self.names = collections.Counter(
            (p["first_name"], p["last_name"]) for p in self.people.values()
        )
        self.contacts = landing_records(landing, "crm", "contacts")
        self.users = landing_records(landing, "product", "users")
        self.consent = landing_records(landing, "consent", "records")
        self.tickets = landing_records(landing, "support", "tickets")
        self.billing = landing_records(landing, "billing", "customers")
        self.inviters = collections.Counter(u.get("invited_by") for u in self.users)
        self.links = {}  # person records' source id -> canonical id (ticket requesters aside)
        self.members = collections.defaultdict(set)
        for r in house.lake.read("entities", "identity_links").to_pylist():
            if r["entity_type"] == "person" and r["object"] != "ticket_requesters":
                self.links[r["source_id"]] = r["canonical_id"]
                self.members[r["canonical_id"]].add(r["source_id"])
        self.active = set(
            house.lake.read("raw", "product_usage_events", columns=["user_id"])["user_id"]
            .unique()
            .to_pylist()
        )

    def systems(self, key: str) -> set[str]:
        return {f"{r['system']}/{r['object']}" for r in self.records[key]}

    def ids(self, key: str, obj: str) -> list[str]:
        return [r["source_id"] for r in self.records[key] if r["object"] == obj]

    def record_ids(self, key: str) -> set[str]:
        return {r["source_id"] for r in self.records[key] if r["object"] != "ticket_requesters"}

    def resolved_as_one(self, key: str) -> bool:
        """Identity linked every record of theirs to one canonical id, and no one else's record
        to it: what a request can reach is exactly this person (identity's misses aside)."""
        ids = self.record_ids(key)
        canonical = {self.links.get(i) for i in ids}
        return (
            len(canonical) == 1 and None not in canonical and self.members[canonical.pop()] == ids
        )

    def candidates(self, *systems: str) -> list[str]:
        """People with a name nobody else has, known to these systems, active in the product,
        whom identity resolved as one."""
        return [
            k
            for k, p in self.people.items()
            if self.names[(p["first_name"], p["last_name"])] == 1
            and set(systems) <= self.systems(k)
            and any(u in self.active for u in self.ids(k, "users"))
            and self.resolved_as_one(k)
        ]

    def person(self, key: str) -> Person:
        """The person's values as the landing files hold them, their canonical id (identity's
        links of those records) and their emails' salted hashes (resources/pii.py's formula)."""
        p = self.people[key]
        contact_ids, user_ids = self.ids(key, "contacts"), self.ids(key, "users")
        consent_ids = self.ids(key, "records")
        emails = {p["work_email"], p["personal_email"]}
        emails |= {r.split("|", 1)[1] for r in self.ids(key, "ticket_requesters")}
        names = {f"{p['first_name']} {p['last_name']}", f"{p['last_name']}, {p['first_name']}"}
        refs = set()
        for c in self.contacts:
            if c.get("Id") in contact_ids:
                emails.add(c.get("Email"))
                names.add(f"{c['FirstName']} {c['LastName']}")
        for u in self.users:
            if u.get("user_id") in user_ids:
                emails.add(u["email"])
                names.add(u["name"])
        for c in self.consent:
            if c.get("record_id") in consent_ids:
                emails.add(c["email"])
                refs.add(c["subject_ref"])
        emails = {e.strip() for e in emails if e and e.strip()}
        for t in self.tickets:
            if (t.get("requester_email") or "").strip().lower() in {e.lower() for e in emails}:
                names.add(t["requester_name"])
        ids = set(contact_ids + user_ids + consent_ids)
        canonical = {self.links[i] for i in ids if i in self.links}
        salt = (self.house.lake_root / ".secrets" / "pii_salt").read_text().strip()
        hashes = {hashlib.sha256((salt + e.lower()).encode()).hexdigest() for e in emails}
        return Person(
            key,
            ids,
            user_ids,
            contact_ids,
            emails,
            {n.strip() for n in names if n and n.strip()},
            {r for r in refs if r},
            canonical,
            hashes,
        )


# -- every table's rows, before and after ---------------------------------------------------------
@dataclass
class Rows:
    rest: collections.Counter  # rows not holding the person: (other columns' hash, file identity)
    person: list[dict]  # rows holding the person, whole
    extra: list[dict]  # rows whose other columns were not known before (the erased ones)
    file_columns: list[str]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def snapshot(root: Path, person: Person, known: dict[str, set[str]] | None = None) -> dict:
    """Every Delta table under the lake (the erasure audit aside): a hash of each row not holding
    the person, and the rows that do, whole. With `known` (per table, hashes of the rows expected
    unchanged), the rows not among them are returned whole too."""
    out: dict[str, Rows] = {}
    with duckdb.connect() as con:
        for path in tables(root):
            name = path.relative_to(root).as_posix()
            if name == AUDIT:
                continue
            dt = DeltaTable(str(path))
            columns = dt.schema().to_arrow().names
            con.register("t", dt.to_pyarrow_dataset())
            files = [c for c in columns if c in FILE_IDENTITY]
            others = ", ".join(f"{_q(c)} := {_q(c)}" for c in columns if c not in files)
            digest = f"md5(to_json(struct_pack({others})))"
            holds = "regexp_matches(to_json(t), $p, 'i')"
            p = {"p": person.pattern}
            rest = con.execute(
                f"SELECT {', '.join([digest, *map(_q, files)])} FROM t WHERE NOT {holds}", p
            ).fetchall()
            mine = con.execute(f"SELECT to_json(t) FROM t WHERE {holds}", p).fetchall()
            extra = []
            if known is not None:
                con.register("known", _hashes(known.get(name, set())))
                extra = con.execute(
                    f"SELECT to_json(t) FROM t WHERE {digest} NOT IN (SELECT h FROM known)"
                ).fetchall()
                con.unregister("known")
            con.unregister("t")
            out[name] = Rows(
                collections.Counter(tuple(r) for r in rest),
                [json.loads(j) for (j,) in mine],
                [json.loads(j) for (j,) in extra],
                files,
            )
    return out


def _hashes(values: set[str]) -> pa.Table:
    return pa.table({"h": pa.array(sorted(values), pa.string())})


def landing_files(landing: Path) -> dict[str, tuple[str, int, int]]:
    """Each landing file's content hash, size and modification time."""
    out = {}
    for path in sorted(landing.rglob("*")):
        if path.is_file():
            s = path.stat()
            out[path.as_posix()] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                s.st_size,
                s.st_mtime_ns,
            )
    return out


def renamed_contents(before: dict, after: dict) -> dict[str, tuple[str, int, int]]:
    """Old content hash -> the rewritten file's (hash, size, mtime)."""
    out = {}
    for path, (sha, _, _) in before.items():
        new = after.get(path)
        if new and new[0] != sha:
            assert out.get(sha, new) == new, f"one content rewritten two ways: {path}"
            out[sha] = new
    return out


def expected_rest(rows: Rows, renamed: dict) -> collections.Counter:
    """The rows not holding the person as they must read after the erasure: unchanged, except
    that a row from a rewritten landing file names the file's new content."""
    out: collections.Counter = collections.Counter()
    for (digest, *files), n in rows.rest.items():
        out[(digest, *_renamed(dict(zip(rows.file_columns, files, strict=True)), renamed))] += n
    return out


def _renamed(values: dict, renamed: dict) -> list:
    new = dict(values)
    for c in ("_file_sha256", "file_sha256", "supersedes"):
        if values.get(c) in renamed:
            new[c] = renamed[values[c]][0]
    if "file_sha256" in values and values["file_sha256"] in renamed:
        _, size, mtime = renamed[values["file_sha256"]]
        new.update({k: v for k, v in (("file_bytes", size), ("file_mtime_ns", mtime)) if k in new})
    return [new[c] for c in values]


def is_own(table: str, row: dict, person: Person) -> bool:
    if table in OWN_RAW_IDS:
        return row[OWN_RAW_IDS[table]] in person.ids
    return table.startswith(OWN_LAYERS)


@dataclass
class Erasure:
    person: Person
    request: Path
    before: dict[str, Rows]
    after: dict[str, Rows]
    renamed: dict
    versions: dict[Path, tuple[int, list[str]]]
    crm_before: dict[str, dict]
    crm_after: dict[str, dict]
    outcome: dict


def carry_out(house: Lakehouse, person: Person, run: Callable[[], dict], **request) -> Erasure:
    """Count the person's rows in every table, file the request, run the erasure, count again."""
    root = house.lake_root
    before = snapshot(root, person)
    files_before = landing_files(house.landing_root)
    versions = {
        p: (DeltaTable(str(p)).version(), DeltaTable(str(p)).file_uris()) for p in tables(root)
    }
    crm = SQLiteDestination(root / "crm" / "crm.db")
    crm_before = crm.rows()
    path = write_request(house.landing_root, **request)
    outcome = run()
    renamed = renamed_contents(files_before, landing_files(house.landing_root))
    expected = {n: expected_rest(r, renamed) for n, r in before.items()}
    after = snapshot(root, person, known={n: {k[0] for k in e} for n, e in expected.items()})
    return Erasure(person, path, before, after, renamed, versions, crm_before, crm.rows(), outcome)


def erase_now(house: Lakehouse) -> dict:
    return {"result": house.materialize("raw/consent_records", AUDIT)}


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def house(full_lake) -> Lakehouse:
    return full_lake


@pytest.fixture(scope="module")
def company(house) -> Company:
    return Company(house)


@pytest.fixture(scope="module")
def person(company) -> Person:
    """A person every source knows (CRM contact, product login with usage, consent records,
    support tickets) who invited colleagues to the product: their own records go, the
    company's facts (usage, tickets, events) and the colleagues' logins stay."""
    key = next(
        k
        for k in company.candidates(
            "crm/contacts", "product/users", "consent/records", "support/ticket_requesters"
        )
        if any(company.inviters[u] for u in company.ids(k, "users"))
    )
    return company.person(key)


@pytest.fixture(scope="module")
def colleague(company, person) -> dict:
    """A login the person invited: someone else's record that names the person."""
    return next(u for u in company.users if u.get("invited_by") in person.user_ids)


@pytest.fixture(scope="module")
def erased(house, company, person, colleague) -> Erasure:
    """The person's erasure, by email. The CRM holds a record of the person and one of a
    colleague (the sync sends account updates, which name no one: these are stored through the
    destination's own upsert, keyed by CRM id, as a CRM holds its contacts). The CRM is
    unreachable on the first attempt: the run fails after the lake is erased, and the request
    must survive that (a work file), not be forgotten."""
    from dagster import AssetKey, DagsterInstance, materialize

    from resources.crm import CrmResource

    crm = SQLiteDestination(house.lake_root / "crm" / "crm.db")
    contact = next(c for c in company.contacts if c.get("Id") in person.contact_ids)
    crm.upsert(
        [
            {
                "crm_account_id": contact["Id"],
                "email": contact["Email"],
                "name": f"{contact['FirstName']} {contact['LastName']}",
            },
            {
                "crm_account_id": colleague["user_id"],
                "email": colleague["email"],
                "name": colleague["name"],
            },
        ],
        key="crm_account_id",
    )

    def run() -> dict:
        down = {**house.resources, "crm": CrmResource(kind="http", http_url="http://127.0.0.1:9")}
        selection = [
            AssetKey(["raw", "consent_records"]),
            AssetKey(AUDIT.split("/")),
        ]
        failed = materialize(
            list(house.defs.assets),
            selection=selection,
            resources=down,
            instance=DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
        pending = sorted((house.lake_root / WORK_DIR).glob("*.json"))
        return {"failed": failed, "pending_after_failure": pending, **erase_now(house)}

    email = company.people[person.key]["work_email"]
    return carry_out(house, person, run, email=email)


# -- tests ----------------------------------------------------------------------------------------
def test_the_person_was_in_the_lake_and_the_crm_before(erased, colleague):
    holding = {name for name, rows in erased.before.items() if rows.person}
    assert holding >= {
        "raw/crm_contacts",
        "raw/product_users",  # theirs, and the colleague's they invited
        "raw/consent_records",
        "raw/support_tickets",
        "raw/product_usage_events",
        "entities/person",
        "entities/identity_links",
        "entities/relationship",
        "events/events",
        "c360/customer_360_people",
    }
    users = erased.before["raw/product_users"].person
    assert any(u["user_id"] == colleague["user_id"] for u in users)
    assert [k for k, v in erased.crm_before.items() if erased.person.holds(v)]


def test_a_failed_attempt_keeps_the_request_pending_and_the_retry_completes(erased, house):
    assert not erased.outcome["failed"].success
    assert len(erased.outcome["pending_after_failure"]) == 1
    assert erased.outcome["result"].success
    assert AUDIT in materialized(erased.outcome["result"])
    assert not list((house.lake_root / WORK_DIR).glob("*.json"))


def assert_only_the_person_changed(e: Erasure, landing: Path) -> None:
    """Per table: no row holds the person; every row that did not is there, unchanged (a row
    of a rewritten landing file names its new content); the person's own records are gone and
    each of their account facts is there once, with only the person's values erased."""
    assert set(e.after) == set(e.before)
    request_file = e.request.relative_to(landing).as_posix()
    for name, before in e.before.items():
        after = e.after[name]
        assert after.person == [], f"{name} still holds the person"
        expected = expected_rest(before, e.renamed)
        assert not expected - after.rest, f"{name}: rows of others lost or changed"
        new = after.rest - expected
        kept = [r for r in before.person if not is_own(name, r, e.person)]
        # the run that carries out the request first ingests it: the log's row for its file
        logged = [r for r in after.extra if r.get("source_file") == request_file]
        assert len(logged) == (name == "raw/ingest_log"), name
        assert sum(new.values()) == len(kept) + len(logged), name
        unmatched = [_renamed_row(r, before.file_columns, e.renamed) for r in kept]
        for row in after.extra:
            if row in logged:
                continue
            match = next((r for r in unmatched if _erased_from(r, row, e.person)), None)
            assert match is not None, f"{name}: {row} is no erased row of the person's"
            unmatched.remove(match)
        assert unmatched == [], name


def _renamed_row(row: dict, files: list[str], renamed: dict) -> dict:
    values = {c: row[c] for c in files}
    return {**row, **dict(zip(files, _renamed(values, renamed), strict=True))}


def _erased_from(before: dict, after: dict, person: Person) -> bool:
    """`after` is `before` with only values naming the person changed: to null, to a value
    with `[erased]` in place of the person, or a list without them."""
    if before.keys() != after.keys():
        return False
    for c, old in before.items():
        new = after[c]
        if new == old:
            continue
        if not person.holds(old):
            return False
        if isinstance(old, list):
            if not isinstance(new, list) or len(new) > len(old):
                return False
        elif not (new is None or ERASED in new):
            return False
    return True


def test_each_table_lost_exactly_the_persons_rows_and_nothing_else(erased, house):
    assert_only_the_person_changed(erased, house.landing_root)


def test_a_colleagues_login_naming_the_person_keeps_its_row(erased, colleague):
    users = {u["user_id"]: u for u in erased.after["raw/product_users"].extra}
    row = users[colleague["user_id"]]
    assert (row["email"], row["name"]) == (colleague["email"], colleague["name"])
    assert row["invited_by"] is None


def test_no_file_under_the_lake_holds_the_person(erased, house):
    assert scan(house.lake_root, erased.person.values) == []


def test_time_travel_cannot_bring_the_person_back(erased, house):
    """Every version before the erasure is gone: its log entry (so delta-rs finds no log segment
    to load it from) and its data files no longer in the current version (vacuumed)."""
    removed = 0
    for path, (version, files) in erased.versions.items():
        if path.name == "erasure_audit":
            continue
        with pytest.raises(TableNotFoundError, match="No files in log segment"):
            DeltaTable(str(path), version=version)
        current = DeltaTable(str(path))
        assert min(h["version"] for h in current.history()) > version, path
        live = set(current.file_uris())
        stale = [f for f in files if f not in live]
        assert [f for f in stale if Path(f).exists()] == [], path
        removed += len(stale)
    assert removed > 0


def test_the_audit_records_the_request_without_the_values(erased, house):
    """One audit row, with counts per table equal to the person's rows counted before (plus the
    request's own consent record), and none of the person's values."""
    audit = [
        r
        for r in house.lake.read(*AUDIT.split("/")).to_pylist()
        if r["request_id"] in erased.request.name
    ]
    assert len(audit) == 1
    row = audit[0]
    assert (row["status"], row["persons"], row["verified"]) == ("erased", 1, True)
    expected = {}
    for name, rows in erased.before.items():
        own = sum(is_own(name, r, erased.person) for r in rows.person)
        request = name == "raw/consent_records"  # the request is a consent record too
        if rows.person:
            expected[name] = {"deleted": own + request, "redacted": len(rows.person) - own}
    assert json.loads(row["tables"]) == expected
    text = json.dumps(row, default=str).lower()
    assert not any(v.lower() in text for v in erased.person.values)


def test_the_crm_forgets_the_person_and_keeps_everyone_else(erased, house):
    gone = {k for k, v in erased.crm_before.items() if erased.person.holds(v)}
    assert len(gone) == 1
    assert erased.crm_after == {k: v for k, v in erased.crm_before.items() if k not in gone}
    with sqlite3.connect(house.lake_root / "crm" / "crm.db") as con:
        payloads = " ".join(p for (p,) in con.execute("SELECT payload FROM crm_account_updates"))
    assert not erased.person.holds(payloads)


def test_a_rebuild_does_not_bring_the_person_back(erased, house):
    counts = {
        t: house.lake.read("raw", t).num_rows for t in ("crm_contacts", "product_usage_events")
    }
    # every layer that holds people, again, from the (rewritten) landing zone (features, models
    # and the CRM sync are per account)
    build_whole_graph(house, skip_groups=("features", "ml", "reverse_etl"))
    # rewritten landing files are known to the ingest log: nothing is ingested twice
    assert counts == {t: house.lake.read("raw", t).num_rows for t in counts}
    assert scan(house.lake_root, erased.person.values) == []
    second = house.materialize(AUDIT)
    assert second.success
    ids = house.lake.read(*AUDIT.split("/"))["request_id"].to_pylist()
    assert sum(i in erased.request.name for i in ids) == 1


@pytest.fixture(scope="module")
def erased_by_ref(erased, house, company) -> Erasure:
    """A second person, named by the request only as `product:<user id>` (no email): resolution
    must reach their CRM contact, consent records and emails through the identity links. Their
    email is also their company's billing contact (an account fact: the customer stays)."""
    billing = {(b.get("email") or "").strip().lower() for b in company.billing}
    key = next(
        k
        for k in company.candidates("crm/contacts", "product/users", "consent/records")
        if k != erased.person.key and company.people[k]["work_email"].lower() in billing
    )
    other = company.person(key)
    return carry_out(
        house, other, lambda: erase_now(house), subject_ref=f"product:{other.user_ids[0]}"
    )


def test_erasure_by_subject_ref_removes_the_person_everywhere(erased_by_ref, house):
    e = erased_by_ref
    assert e.outcome["result"].success
    holding = {name for name, rows in e.before.items() if rows.person}
    assert {
        "raw/crm_contacts",
        "raw/product_users",
        "raw/consent_records",
        "raw/billing_customers",
        "entities/person",
        "c360/customer_360_people",
    } <= holding
    assert_only_the_person_changed(e, house.landing_root)
    assert scan(house.lake_root, e.person.values) == []
    audit = house.lake.read(*AUDIT.split("/")).to_pylist()
    row = next(r for r in audit if r["request_id"] in e.request.name)
    assert (row["status"], row["persons"], row["verified"]) == ("erased", 1, True)


def test_needles_match_whole_values_only():
    n = Needles(["ann@x.com", "usr_abc123"], ["Ann Lee"])
    assert n.found_in('{"email": "Ann@X.com"}')
    assert not n.found_in('{"email": "joann@x.com", "user": "usr_abc1234"}')
    assert not n.found_in("Ann Lee wrote")  # a name alone never selects a row
    assert n.redact({"email": "ann@x.com", "note": "from Ann Lee, usr_abc123"}) == {
        "email": None,
        "note": f"from {ERASED}, {ERASED}",
    }
    assert n.redact(["usr_abc123", "usr_other"]) == ["usr_other"]
