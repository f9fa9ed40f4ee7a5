"""The bad-input corpus (issue 9, part 1): more than sixty kinds of broken or tricky delivery,
built from a clean sample company and landed beside it, across every source and raw table.

For each kind: every row the test wrote is accounted for (published, quarantined with its rule,
refused as a whole file, recognised as a duplicate, or held with a batch that failed its gate),
no rule-breaking row reaches a published table (a rule checker written here, apart from the
platform's SQL, reads every published row), and what a person reads names the file, the line and
the rule. Kinds share runs to stay quick, each in its own file, asserted file by file:

  D  orphans and duplicate keys, through raw, entities and one day of events;
  B  the bulk of the corpus, one raw run (each table's batch stays under its 5% gate);
  C  kinds that must fail their gate, one table each, in one run.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from assets.raw.ingest import build_batch, find_pending
from checks.contract import Column
from checks.raw import (
    ENCODING,
    FIELD_COUNT,
    GZIP,
    INVALID_JSON,
    JSON_SYNTAX,
    NOT_AN_OBJECT,
    UNREADABLE,
    RawContract,
)
from checks.sources import load_catalog, raw_contracts
from conftest import Lakehouse, check_evaluations
from faultkit import record

pytestmark = pytest.mark.faults

# The corpus is built from the sample company, which the default stack's catalog describes.
STACKS = Path(__file__).resolve().parents[2] / "stacks"
DEFAULT = load_catalog(STACKS / "default" / "catalog.yaml")
RAW_TABLES = raw_contracts(DEFAULT)
CRM_ACCOUNTS = DEFAULT.object("crm/accounts").contract
CRM_CONTACTS = DEFAULT.object("crm/contacts").contract
CRM_OPPORTUNITIES = DEFAULT.object("crm/opportunities").contract
BILLING_CUSTOMERS = DEFAULT.object("billing/customers").contract
BILLING_SUBSCRIPTIONS = DEFAULT.object("billing/subscriptions").contract
BILLING_INVOICES = DEFAULT.object("billing/invoices").contract
PRODUCT_WORKSPACES = DEFAULT.object("product/workspaces").contract
PRODUCT_USERS = DEFAULT.object("product/users").contract
PRODUCT_USAGE_EVENTS = DEFAULT.object("product/usage_events").contract
SUPPORT_ORGANIZATIONS = DEFAULT.object("support/organizations").contract
SUPPORT_TICKETS = DEFAULT.object("support/tickets").contract
CONSENT_RECORDS = DEFAULT.object("consent/records").contract
RISK_SIGNALS = DEFAULT.object("risk/signals").contract

ACCOUNTS, DAYS, SEED = 20, 30, 5
ROWS = 80  # clean records around the broken ones: each table's batch stays under its 5% gate
BOM = b"\xef\xbb\xbf"
RAW_KEYS = [f"raw/{c.table}" for c in RAW_TABLES] + ["raw/quarantine"]
PHASES = {"D": 1, "B": 2, "C": 3}  # run order, and the extract date's offset after the company

# Downstream ids (phase D): what must end up unattributed or unmapped, never on an account.
ORPHAN_WORKSPACE = "ws_fault_orphan"
ORPHAN_EVENTS = [f"fault-orphan-{i}" for i in range(3)]
ORPHAN_CUSTOMER, ORPHAN_SUBSCRIPTION = "cus_fault_orphan", "sub_fault_orphan"
ORPHAN_INVOICE, UNKNOWN_SUB_INVOICE = "in_fault_orphan", "in_fault_unknown_sub"
UNKNOWN_SUBSCRIPTION = "sub_fault_unknown"

DROP = object()  # in edit(): remove the field


# -- the clean company, as records -----------------------------------------------------------
@dataclass
class Clean:
    """The sample company's landing files read back as records (its planted bad rows skipped)."""

    landing: Path
    end: dt.date
    by_file: dict[str, list[dict]]  # landing path -> clean records, in file order
    headers: dict[str, list[str]]  # CSV table -> header of its latest file
    taken: Counter = field(default_factory=Counter)

    def records(self, c: RawContract) -> list[dict]:
        prefix = f"{c.landing_dir}/"
        return [r for f, recs in sorted(self.by_file.items()) if f.startswith(prefix) for r in recs]

    def files(self, c: RawContract) -> list[str]:
        return sorted(f for f in self.by_file if f.startswith(f"{c.landing_dir}/"))

    def sample(self, c: RawContract, n: int = ROWS) -> list[dict]:
        """n copies of clean records, cycling; each call starts where the last one stopped, so
        two files of one table never hold the same content by accident."""
        recs = self.records(c)
        start = self.taken[c.table]
        self.taken[c.table] += n
        return [copy.deepcopy(recs[(start + i) % len(recs)]) for i in range(n)]

    def one(self, c: RawContract, **changes: object) -> dict:
        return edit(self.sample(c, 1)[0], **changes)

    @property
    def event_day(self) -> dt.date:
        """A day of the company whose usage events phase D re-delivers and orphans."""
        return self.end - dt.timedelta(days=3)


def edit(rec: dict, **changes: object) -> dict:
    out = dict(rec)
    for k, v in changes.items():
        if v is DROP:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def load_clean(landing: Path, end: dt.date) -> Clean:
    manifest = json.loads((landing / "_truth" / "manifest.json").read_text())
    planted = {(b["file"], b["line"]) for b in manifest["bad_rows"]}
    by_file: dict[str, list[dict]] = {}
    headers: dict[str, list[str]] = {}
    for c in RAW_TABLES:
        for path in sorted((landing / c.landing_dir).glob("*/*")):
            rel = str(path.relative_to(landing))
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
                text = fh.read()
            if c.format == "csv":
                reader = csv.reader(io.StringIO(text, newline=""))
                header = next(reader)
                headers[c.table] = header
                numbered = [(reader.line_num, dict(zip(header, r, strict=False))) for r in reader]
            elif c.format == "jsonl":
                lines = enumerate(text.split("\n"), 1)
                numbered = [(i, json.loads(t)) for i, t in lines if t and (rel, i) not in planted]
            else:
                numbered = list(enumerate(json.loads(text), 1))
            by_file[rel] = [r for i, r in numbered if (rel, i) not in planted]
    return Clean(landing, end, by_file, headers)


# -- a file written record by record -----------------------------------------------------------
BLANK = object()  # a blank line: no record


@dataclass
class Doc:
    """A landing file the test writes item by item, so it knows the line of every record: a
    record (dict) meant to publish or, with a rule, to be quarantined; for CSV and JSON Lines a
    str is a line written as is. For a JSON array every item is a record (its number = line)."""

    contract: RawContract
    header: list[str] | None = None
    items: list[tuple[object, str | None]] = field(default_factory=list)
    sep: str = ","

    def add(self, item: object, rule: str | None = None) -> Doc:
        self.items.append((item, rule))
        return self

    def extend(self, items: list[object]) -> Doc:
        for item in items:
            self.add(item)
        return self

    def render(self) -> tuple[bytes, dict[int, str], dict[int, str]]:
        """The file, line -> key of each record to publish, line -> rule of each to reject."""
        fmt, key = self.contract.format, self.contract.columns[0].source_name
        keys: dict[int, str] = {}
        bad: dict[int, str] = {}
        parts: list[str] = []
        line = 1
        if fmt == "csv":
            parts.append(csv_line(self.header, {h: h for h in self.header}, self.sep))
            line = 2
        for item, rule in self.items:
            if item is BLANK:
                text = "\n"
            elif fmt == "csv":
                text = item if isinstance(item, str) else csv_line(self.header, item, self.sep)
            elif fmt == "jsonl":
                text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
            else:
                text = json.dumps(item, ensure_ascii=False)
            if item is not BLANK:
                if rule is not None:
                    bad[line] = rule
                else:
                    keys[line] = str(item.get(key)).strip()
            parts.append(text if fmt == "json_array" or text.endswith("\n") else text + "\n")
            line += 1 if fmt == "json_array" else text.count("\n") or 1
        if fmt == "json_array":
            return ("[\n" + ",\n".join(p.rstrip("\n") for p in parts) + "\n]\n").encode(), keys, bad
        return "".join(parts).encode(), keys, bad


def csv_line(header: list[str], rec: dict, sep: str = ",") -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=sep, lineterminator="\n").writerow(
        ["" if rec.get(h) is None else rec.get(h) for h in header]
    )
    return out.getvalue()


def around(c: Clean, contract: RawContract, *bad: tuple[object, str], header=None) -> Doc:
    """ROWS clean records with the broken items spread among them."""
    doc = Doc(contract, header or c.headers.get(contract.table))
    clean = c.sample(contract)
    at = {len(clean) * (k + 1) // (len(bad) + 1): item for k, item in enumerate(bad)}
    for i, rec in enumerate(clean):
        if i in at:
            doc.add(*at[i])
        doc.add(rec)
    return doc


# -- what each kind must become ------------------------------------------------------------------
@dataclass
class Delivery:
    """One file of the corpus and what must become of each of its rows."""

    contract: RawContract
    data: bytes
    rows: int  # records the test wrote: its own count, not the platform's
    outcome: str  # rows | file | none | duplicate | gate
    keys: dict[int, str] = field(default_factory=dict)  # line -> key: rows that must publish
    bad: dict[int, str] = field(default_factory=dict)  # line -> rule: rows that must not
    rule: str | None = None  # file / gate: the rule the file or batch is refused under
    says: tuple[str, ...] = ()  # what the quarantine detail or the failed check also says
    duplicate_of: str | None = None
    name: str | None = None
    then: Callable[[list[dict]], None] | None = None  # more about the published rows
    kind: str = ""
    phase: str = "B"
    extract: dt.date | None = None

    @property
    def rel(self) -> str:
        c = self.contract
        return f"{c.landing_dir}/{self.extract}/{self.name}"


def _pack(doc: Doc, plain=None, packed=None) -> tuple[bytes, dict, dict]:
    data, keys, bad = doc.render()
    data = plain(data) if plain else data
    if doc.contract.table == PRODUCT_USAGE_EVENTS.table:
        data = gzip.compress(data, mtime=0)
    return (packed(data) if packed else data), keys, bad


def delivered(doc: Doc, plain=None, packed=None, then=None) -> Delivery:
    """Rows kinds: the clean rows publish, the broken ones are quarantined under their rule."""
    data, keys, bad = _pack(doc, plain, packed)
    return Delivery(doc.contract, data, len(keys) + len(bad), "rows", keys, bad, then=then)


def whole_file(doc: Doc, rule: str, *says: str, plain=None, packed=None) -> Delivery:
    """The file cannot be split into rows: one quarantine row at line 0 names it, the rule and
    (where it can) the line at fault; nothing of it is published."""
    data, _, _ = _pack(doc, plain, packed)
    return Delivery(doc.contract, data, len(doc.items), "file", rule=rule, says=says)


def refused(doc: Doc, rule: str, *says: str, plain=None) -> Delivery:
    """The batch fails its gate: nothing is written, the file stays pending, the check names
    the file, a line and the rule."""
    data, _, _ = _pack(doc, plain)
    return Delivery(doc.contract, data, len(doc.items), "gate", rule=rule, says=says)


KINDS: dict[str, tuple[str, Callable[[Clean], Delivery]]] = {}


def kind(phase: str = "B"):
    def register(make: Callable[[Clean], Delivery]) -> Callable[[Clean], Delivery]:
        KINDS[make.__name__] = (phase, make)
        return make

    return register


def _cut_in_line(data: bytes, line: int, column: int) -> bytes:
    start = sum(len(t) + 1 for t in data.split(b"\n")[: line - 1])
    return data[: start + column]


def _flip(at: int) -> Callable[[bytes], bytes]:
    def flip(data: bytes) -> bytes:
        out = bytearray(data)
        out[at if at >= 0 else len(out) // 2] ^= 0xFF
        return bytes(out)

    return flip


# -- CRM: JSON array exports ---------------------------------------------------------------------
@kind()
def crm_accounts_bom(c: Clean) -> Delivery:
    return delivered(around(c, CRM_ACCOUNTS), plain=lambda b: BOM + b)


@kind()
def crm_accounts_truncated_json(c: Clean) -> Delivery:
    # Cut inside line 41's first string: the parser names where that string starts.
    doc = around(c, CRM_ACCOUNTS)
    return whole_file(doc, JSON_SYNTAX, "line 41 ", plain=lambda b: _cut_in_line(b, 41, 10))


@kind()
def crm_accounts_unknown_enum(c: Clean) -> Delivery:
    bad = c.one(CRM_ACCOUNTS, Type="Partner")
    return delivered(around(c, CRM_ACCOUNTS, (bad, "accepted_values(type)")))


@kind()
def crm_accounts_negative_count(c: Clean) -> Delivery:
    bad = c.one(CRM_ACCOUNTS, NumberOfEmployees=-40)
    return delivered(around(c, CRM_ACCOUNTS, (bad, "range(number_of_employees)")))


@kind()
def crm_accounts_object_for_text(c: Clean) -> Delivery:
    bad = c.one(CRM_ACCOUNTS, Name={"legal": "Acme", "trading": "Acme Ltd"})
    return delivered(around(c, CRM_ACCOUNTS, (bad, "type(name)")))


@kind()
def crm_accounts_same_content_new_name(c: Clean) -> Delivery:
    original = max(c.files(CRM_ACCOUNTS), key=lambda f: len(c.by_file[f]))
    data = (c.landing / original).read_bytes()
    rows = len(json.loads(data))
    return Delivery(
        CRM_ACCOUNTS, data, rows, "duplicate", duplicate_of=original, name="accounts_resent.json"
    )


@kind()
def crm_contacts_latin1(c: Clean) -> Delivery:
    doc = Doc(CRM_CONTACTS).add(c.one(CRM_CONTACTS, FirstName="José", LastName="Müller"))
    doc.extend(c.sample(CRM_CONTACTS))
    return whole_file(
        doc,
        ENCODING,
        "line 2 is not UTF-8",
        "0xe9",
        plain=lambda b: b.decode().encode("latin-1"),
    )


@kind()
def crm_contacts_null_key(c: Clean) -> Delivery:
    return delivered(around(c, CRM_CONTACTS, (c.one(CRM_CONTACTS, Id=None), "not_null(id)")))


@kind()
def crm_contacts_not_an_object(c: Clean) -> Delivery:
    return delivered(around(c, CRM_CONTACTS, (42, NOT_AN_OBJECT), ("Ada", NOT_AN_OBJECT)))


@kind()
def crm_contacts_oversized_field(c: Clean) -> Delivery:
    bad = c.one(CRM_CONTACTS, Title="Head of " + "x" * 100_000)
    return delivered(around(c, CRM_CONTACTS, (bad, "max_length(title)")))


@kind()
def crm_opportunities_amount_not_numeric(c: Clean) -> Delivery:
    bad = c.one(CRM_OPPORTUNITIES, Amount="twelve thousand")
    return delivered(around(c, CRM_OPPORTUNITIES, (bad, "type(amount)")))


@kind()
def crm_opportunities_amount_nan_inf(c: Clean) -> Delivery:
    nan = c.one(CRM_OPPORTUNITIES, Amount=float("nan"))  # JSON literal NaN
    inf = c.one(CRM_OPPORTUNITIES, Amount=float("inf"))  # JSON literal Infinity
    doc = around(c, CRM_OPPORTUNITIES, (nan, "finite(amount)"), (inf, "finite(amount)"))
    return delivered(doc)


@kind()
def crm_opportunities_impossible_date(c: Clean) -> Delivery:
    bad = c.one(CRM_OPPORTUNITIES, CloseDate="2026-02-30")
    return delivered(around(c, CRM_OPPORTUNITIES, (bad, "type(close_date)")))


@kind()
def crm_opportunities_unknown_stage(c: Clean) -> Delivery:
    bad = c.one(CRM_OPPORTUNITIES, StageName="negotiation")
    return delivered(around(c, CRM_OPPORTUNITIES, (bad, "accepted_values(stage_name)")))


@kind()
def crm_opportunities_future_date(c: Clean) -> Delivery:
    bad = c.one(CRM_OPPORTUNITIES, CreatedDate="2099-01-01T00:00:00Z")
    return delivered(around(c, CRM_OPPORTUNITIES, (bad, "not_future(created_date)")))


# -- billing: CSV --------------------------------------------------------------------------------
@kind()
def billing_customers_empty_file(c: Clean) -> Delivery:
    return Delivery(BILLING_CUSTOMERS, b"", 0, "none")


@kind()
def billing_customers_header_only(c: Clean) -> Delivery:
    data, _, _ = Doc(BILLING_CUSTOMERS, c.headers["billing_customers"]).render()
    return Delivery(BILLING_CUSTOMERS, data, 0, "none")


def _no_country(rows: list[dict]) -> None:
    assert rows and all(r["country"] is None for r in rows)


@kind()
def billing_customers_missing_optional_column(c: Clean) -> Delivery:
    header = [h for h in c.headers["billing_customers"] if h != "country"]
    return delivered(around(c, BILLING_CUSTOMERS, header=header), then=_no_country)


def _vat_ids_kept(rows: list[dict]) -> None:
    assert rows and all(r["vat_id"] == "DE123456789" for r in rows)


@kind()
def billing_customers_extra_column(c: Clean) -> Delivery:
    doc = around(c, BILLING_CUSTOMERS, header=[*c.headers["billing_customers"], "vat_id"])
    for rec, _ in doc.items:
        rec["vat_id"] = "DE123456789"
    return delivered(doc, then=_vat_ids_kept)


@kind()
def billing_customers_duplicate_header(c: Clean) -> Delivery:
    doc = around(c, BILLING_CUSTOMERS, header=[*c.headers["billing_customers"], "email"])
    return whole_file(doc, UNREADABLE, "duplicate column names")


def _multiline_names_kept(rows: list[dict]) -> None:
    assert sum("\n" in r["name"] for r in rows) == 2


@kind()
def billing_customers_blank_lines_and_quoted_newlines(c: Clean) -> Delivery:
    # Line numbers must still name the line each record starts on.
    doc = Doc(BILLING_CUSTOMERS, c.headers["billing_customers"])
    for i, rec in enumerate(c.sample(BILLING_CUSTOMERS)):
        if i in (5, 30):
            rec["name"] = rec["name"] + "\nc/o Accounts Payable"
        if i in (10, 11, 50):
            doc.add(BLANK)
        doc.add(rec)
    return delivered(doc, then=_multiline_names_kept)


@kind()
def billing_subscriptions_negative_amount(c: Clean) -> Delivery:
    bad = c.one(BILLING_SUBSCRIPTIONS, mrr="-1200.00")
    return delivered(around(c, BILLING_SUBSCRIPTIONS, (bad, "range(mrr)")))


@kind()
def billing_subscriptions_unknown_status(c: Clean) -> Delivery:
    bad = c.one(BILLING_SUBSCRIPTIONS, status="paused")
    return delivered(around(c, BILLING_SUBSCRIPTIONS, (bad, "accepted_values(status)")))


@kind()
def billing_subscriptions_date_before_1970(c: Clean) -> Delivery:
    bad = c.one(BILLING_SUBSCRIPTIONS, started_at="1969-07-20T20:17:00Z")
    return delivered(around(c, BILLING_SUBSCRIPTIONS, (bad, "plausible_date(started_at)")))


@kind()
def billing_subscriptions_same_file_twice(c: Clean) -> Delivery:
    original = max(c.files(BILLING_SUBSCRIPTIONS), key=lambda f: len(c.by_file[f]))
    data = (c.landing / original).read_bytes()
    rows = len(data.decode().strip().split("\n")) - 1
    name = original.rsplit("/", 1)[1]  # the same name, in a later extract's folder
    return Delivery(
        BILLING_SUBSCRIPTIONS, data, rows, "duplicate", duplicate_of=original, name=name
    )


@kind()
def billing_invoices_nan_inf(c: Clean) -> Delivery:
    nan = c.one(BILLING_INVOICES, amount="NaN")
    inf = c.one(BILLING_INVOICES, amount="-inf")
    doc = around(c, BILLING_INVOICES, (nan, "finite(amount)"), (inf, "finite(amount)"))
    return delivered(doc)


@kind()
def billing_invoices_null_key(c: Clean) -> Delivery:
    bad = c.one(BILLING_INVOICES, invoice_id="")
    return delivered(around(c, BILLING_INVOICES, (bad, "not_null(invoice_id)")))


@kind()
def billing_invoices_missing_and_extra_fields(c: Clean) -> Delivery:
    header = c.headers["billing_invoices"]
    short = csv_line(header, c.one(BILLING_INVOICES)).rstrip("\n").rsplit(",", 2)[0]
    long = csv_line(header, c.one(BILLING_INVOICES)).rstrip("\n") + ",EXTRA"
    return delivered(around(c, BILLING_INVOICES, (short, FIELD_COUNT), (long, FIELD_COUNT)))


@kind()
def billing_invoices_unclosed_quote(c: Clean) -> Delivery:
    # A quote opened and never closed swallows the rest of the file into one field: every line
    # it swallowed is quarantined on its own, the lines before it publish.
    header = c.headers["billing_invoices"]
    doc = around(c, BILLING_INVOICES)
    doc.add('"' + csv_line(header, c.one(BILLING_INVOICES)), FIELD_COUNT)
    doc.add(c.one(BILLING_INVOICES), FIELD_COUNT)
    return delivered(doc)


# -- product: JSON Lines (usage events gzipped) -----------------------------------------------
@kind()
def product_workspaces_truncated_line(c: Clean) -> Delivery:
    cut = json.dumps(c.one(PRODUCT_WORKSPACES))[:30]
    return delivered(around(c, PRODUCT_WORKSPACES, (cut, INVALID_JSON)))


@kind()
def product_workspaces_bom_and_crlf(c: Clean) -> Delivery:
    return delivered(around(c, PRODUCT_WORKSPACES), plain=lambda b: BOM + b.replace(b"\n", b"\r\n"))


@kind()
def product_users_unknown_role(c: Clean) -> Delivery:
    bad = c.one(PRODUCT_USERS, role="owner")
    return delivered(around(c, PRODUCT_USERS, (bad, "accepted_values(role)")))


@kind()
def product_users_missing_required_field(c: Clean) -> Delivery:
    bad = c.one(PRODUCT_USERS, workspace_id=DROP)
    return delivered(around(c, PRODUCT_USERS, (bad, "not_null(workspace_id)")))


@kind()
def product_users_number_for_timestamp(c: Clean) -> Delivery:
    bad = c.one(PRODUCT_USERS, created_at=1727800000)
    return delivered(around(c, PRODUCT_USERS, (bad, "type(created_at)")))


@kind()
def product_usage_events_gzip_truncated(c: Clean) -> Delivery:
    doc = around(c, PRODUCT_USAGE_EVENTS)
    return whole_file(doc, GZIP, "gzip stream", packed=lambda b: b[: len(b) // 2])


@kind()
def product_usage_events_gzip_bit_flip_early(c: Clean) -> Delivery:
    # In the first block the reader peeks at (zlib.error from Python's gzip module).
    doc = around(c, PRODUCT_USAGE_EVENTS)
    return whole_file(doc, GZIP, "gzip stream", packed=_flip(40))


@kind()
def product_usage_events_gzip_bit_flip_late(c: Clean) -> Delivery:
    # Past it: Arrow's inflate meets the damage (or the gzip CRC catches it).
    doc = around(c, PRODUCT_USAGE_EVENTS)
    return whole_file(doc, GZIP, "gzip stream", packed=_flip(-1))


@kind()
def product_usage_events_not_gzipped(c: Clean) -> Delivery:
    doc = around(c, PRODUCT_USAGE_EVENTS)
    return whole_file(doc, GZIP, "Not a gzipped file", packed=gzip.decompress)


@kind()
def product_usage_events_nan_inf(c: Clean) -> Delivery:
    nan = c.one(PRODUCT_USAGE_EVENTS, feature_adoption_score=float("nan"))
    inf = c.one(PRODUCT_USAGE_EVENTS, feature_adoption_score=float("inf"))
    rule = "finite(feature_adoption_score)"
    return delivered(around(c, PRODUCT_USAGE_EVENTS, (nan, rule), (inf, rule)))


@kind()
def product_usage_events_future_timestamp(c: Clean) -> Delivery:
    bad = c.one(PRODUCT_USAGE_EVENTS, timestamp="2099-01-01T00:00:00Z")
    return delivered(around(c, PRODUCT_USAGE_EVENTS, (bad, "not_future(timestamp)")))


@kind()
def product_usage_events_out_of_range(c: Clean) -> Delivery:
    bad = c.one(PRODUCT_USAGE_EVENTS, feature_adoption_score=1.7)
    return delivered(around(c, PRODUCT_USAGE_EVENTS, (bad, "range(feature_adoption_score)")))


def _unknown_type_kept(rows: list[dict]) -> None:
    assert [r["event_type"] for r in rows].count("page_view") == 1


@kind()
def product_usage_events_unknown_type(c: Clean) -> Delivery:
    """An event name the vocabulary does not know is kept as it arrived, never quarantined."""
    doc = around(c, PRODUCT_USAGE_EVENTS).add(c.one(PRODUCT_USAGE_EVENTS, event_type="page_view"))
    return delivered(doc, then=_unknown_type_kept)


# -- support: CSV -------------------------------------------------------------------------------
@kind()
def support_organizations_crlf(c: Clean) -> Delivery:
    return delivered(around(c, SUPPORT_ORGANIZATIONS), plain=lambda b: b.replace(b"\n", b"\r\n"))


@kind()
def support_organizations_padded_values(c: Clean) -> Delivery:
    doc = around(c, SUPPORT_ORGANIZATIONS)
    for rec, _ in doc.items:
        for k, v in rec.items():
            rec[k] = f"  {v}  " if v else v
    return delivered(doc)


@kind()
def support_tickets_unknown_priority(c: Clean) -> Delivery:
    bad = c.one(SUPPORT_TICKETS, priority="urgent")
    return delivered(around(c, SUPPORT_TICKETS, (bad, "accepted_values(priority)")))


@kind()
def support_tickets_infinite_and_negative_hours(c: Clean) -> Delivery:
    inf = c.one(SUPPORT_TICKETS, resolution_hours="Infinity")
    neg = c.one(SUPPORT_TICKETS, resolution_hours="-3")
    doc = around(
        c, SUPPORT_TICKETS, (inf, "finite(resolution_hours)"), (neg, "range(resolution_hours)")
    )
    return delivered(doc)


@kind()
def support_tickets_impossible_date(c: Clean) -> Delivery:
    bad = c.one(SUPPORT_TICKETS, created_at="2026-13-45T00:00:00Z")
    return delivered(around(c, SUPPORT_TICKETS, (bad, "type(created_at)")))


@kind()
def support_tickets_oversized_field(c: Clean) -> Delivery:
    bad = c.one(SUPPORT_TICKETS, requester_name="Ada " * 500_000)  # 2 MB in one CSV field
    return delivered(around(c, SUPPORT_TICKETS, (bad, "max_length(requester_name)")))


# -- consent: JSON array; risk: CSV ------------------------------------------------------------
@kind()
def consent_records_wrapped_in_object(c: Clean) -> Delivery:
    return delivered(around(c, CONSENT_RECORDS), plain=lambda b: b'{"records": ' + b + b"}")


@kind()
def consent_records_not_an_array(c: Clean) -> Delivery:
    doc = around(c, CONSENT_RECORDS)
    return whole_file(
        doc, UNREADABLE, "expected a JSON array", plain=lambda b: b'{"data": ' + b + b"}"
    )


@kind()
def consent_records_missing_status(c: Clean) -> Delivery:
    bad = c.one(CONSENT_RECORDS, status=DROP)
    return delivered(around(c, CONSENT_RECORDS, (bad, "not_null(status)")))


@kind()
def consent_records_trailing_garbage(c: Clean) -> Delivery:
    # "[", ROWS records, "]": the garbage is on line ROWS + 3.
    doc = around(c, CONSENT_RECORDS)
    return whole_file(doc, JSON_SYNTAX, f"line {ROWS + 3} ", plain=lambda b: b + b"<html>\n")


@kind()
def risk_signals_score_out_of_range_and_nan(c: Clean) -> Delivery:
    high = c.one(RISK_SIGNALS, compliance_gap_score="1.7")
    nan = c.one(RISK_SIGNALS, compliance_gap_score="NaN")
    doc = around(
        c,
        RISK_SIGNALS,
        (high, "range(compliance_gap_score)"),
        (nan, "finite(compliance_gap_score)"),
    )
    return delivered(doc)


@kind()
def risk_signals_fraction_for_count(c: Clean) -> Delivery:
    bad = c.one(RISK_SIGNALS, vendor_risk_flags="2.5")
    return delivered(around(c, RISK_SIGNALS, (bad, "type(vendor_risk_flags)")))


# -- phase D: orphans and duplicate keys, followed downstream ----------------------------------
@kind("D")
def product_usage_events_unknown_workspace(c: Clean) -> Delivery:
    at = f"{c.event_day}T12:00:00Z"
    doc = Doc(PRODUCT_USAGE_EVENTS)
    for i, event_id in enumerate(ORPHAN_EVENTS):
        doc.add(
            c.one(
                PRODUCT_USAGE_EVENTS,
                event_id=event_id,
                workspace_id=ORPHAN_WORKSPACE,
                user_id=f"usr_fault_orphan_{i}",
                timestamp=at,
            )
        )
    return delivered(doc.extend(c.sample(PRODUCT_USAGE_EVENTS, 20)))


@kind("D")
def product_usage_events_redelivered(c: Clean) -> Delivery:
    """A day's events delivered again in another file (reordered, so not the same content)."""
    day = f"product/usage_events/{c.event_day}/usage_events.jsonl.gz"
    same_day = [r for r in c.by_file[day] if r["timestamp"].startswith(str(c.event_day))]
    return delivered(Doc(PRODUCT_USAGE_EVENTS).extend(same_day[::-1]))


@kind("D")
def billing_invoices_unknown_references(c: Clean) -> Delivery:
    at = f"{c.event_day}T09:00:00Z"
    known = next(r for r in c.records(BILLING_CUSTOMERS) if r["crm_account_id"])
    orphan = c.one(
        BILLING_INVOICES,
        invoice_id=ORPHAN_INVOICE,
        customer_id=ORPHAN_CUSTOMER,
        subscription_id=ORPHAN_SUBSCRIPTION,
        status="paid",
        issued_at=at,
        paid_at=at,
    )
    unknown_sub = c.one(
        BILLING_INVOICES,
        invoice_id=UNKNOWN_SUB_INVOICE,
        customer_id=known["customer_id"],
        subscription_id=UNKNOWN_SUBSCRIPTION,
        status="open",
        issued_at=at,
        paid_at="",
    )
    return delivered(around(c, BILLING_INVOICES).add(orphan).add(unknown_sub))


@kind("D")
def crm_accounts_duplicate_key(c: Clean) -> Delivery:
    twin = c.one(CRM_ACCOUNTS)
    other = edit(twin, Name=twin["Name"] + " (duplicate export)")
    return delivered(Doc(CRM_ACCOUNTS).extend(c.sample(CRM_ACCOUNTS, 20)).add(twin).add(other))


# -- phase C: batches that must fail their gate, one table each --------------------------------
@kind("C")
def billing_subscriptions_type_change(c: Clean) -> Delivery:
    doc = Doc(BILLING_SUBSCRIPTIONS, c.headers["billing_subscriptions"])
    doc.extend([edit(r, mrr="$1,200.00") for r in c.sample(BILLING_SUBSCRIPTIONS)])
    return refused(doc, "type_change(mrr)", "'mrr'", "from line 2")


@kind("C")
def billing_customers_required_column_missing(c: Clean) -> Delivery:
    header = [h for h in c.headers["billing_customers"] if h != "created_at"]
    doc = Doc(BILLING_CUSTOMERS, header).extend(c.sample(BILLING_CUSTOMERS))
    return refused(doc, "not_null(created_at)", "lines 2, 3, 4, 5, 6")


@kind("C")
def support_organizations_wrong_delimiter(c: Clean) -> Delivery:
    header = c.headers["support_organizations"]
    recs = [r for r in c.records(SUPPORT_ORGANIZATIONS) if not any("," in v for v in r.values())]
    doc = Doc(SUPPORT_ORGANIZATIONS, header, sep=";").extend(recs * (ROWS // len(recs) + 1))
    return refused(doc, "not_null(org_id)", "lines 2, 3, 4, 5, 6")


@kind("C")
def risk_signals_utf16_file_alone(c: Clean) -> Delivery:
    # A whole-file reject is one quarantined "row" of one read: alone in its batch, 100%.
    doc = Doc(RISK_SIGNALS, c.headers["risk_signals"]).extend(c.sample(RISK_SIGNALS))
    return refused(
        doc,
        ENCODING,
        "line 0 (the whole file)",
        "line 1 is not UTF-8",
        plain=lambda b: b.decode().encode("utf-16"),
    )


@kind("C")
def crm_opportunities_new_vocabulary(c: Clean) -> Delivery:
    doc = Doc(CRM_OPPORTUNITIES).extend(
        [edit(r, StageName="Closed Won") for r in c.sample(CRM_OPPORTUNITIES)]
    )
    return refused(doc, "accepted_values(stage_name)", "lines 1, 2, 3, 4, 5")


@kind("C")
def consent_records_epoch_timestamps(c: Clean) -> Delivery:
    doc = Doc(CONSENT_RECORDS).extend(
        [edit(r, recorded_at=1727800000 + i) for i, r in enumerate(c.sample(CONSENT_RECORDS))]
    )
    return refused(doc, "type_change(recorded_at)", "'recorded_at'", "from line 1")


# -- building and running the corpus -------------------------------------------------------------
EXT = {"csv": ".csv", "jsonl": ".jsonl", "json_array": ".json", "parquet": ".parquet"}


def build_corpus(clean: Clean) -> list[Delivery]:
    out = []
    for name, (phase, make) in KINDS.items():
        d = make(clean)
        d.kind, d.phase = name, phase
        d.extract = clean.end + dt.timedelta(days=PHASES[phase])
        gz = ".gz" if d.contract.table == PRODUCT_USAGE_EVENTS.table else ""
        d.name = d.name or f"{name}{EXT[d.contract.format]}{gz}"
        out.append(d)
    return out


@dataclass
class Corpus:
    house: Lakehouse
    clean: Clean
    deliveries: list[Delivery]
    results: dict[str, object] = field(default_factory=dict)
    versions_before_c: dict[str, int | None] = field(default_factory=dict)
    seconds: float = 0.0

    def get(self, kind: str) -> Delivery:
        return next(d for d in self.deliveries if d.kind == kind)


def _planned_share(deliveries: list[Delivery]) -> dict[str, float]:
    """Each table's quarantined share in the run that gates the rows kinds (must pass)."""
    read: Counter = Counter()
    rejected: Counter = Counter()
    for d in deliveries:
        if d.outcome == "rows":
            read[d.contract.table] += d.rows
            rejected[d.contract.table] += len(d.bad)
        elif d.outcome == "file":
            read[d.contract.table] += 1
            rejected[d.contract.table] += 1
    return {t: rejected[t] / n for t, n in read.items()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, defs) -> Corpus:
    from sample_company.generate import generate

    started = time.perf_counter()
    root = tmp_path_factory.mktemp("bad_input")
    landing = root / "landing"
    summary = generate(landing, accounts=ACCOUNTS, days=DAYS, seed=SEED)
    house = Lakehouse(root / "lake", landing, defs)
    assert house.materialize(*RAW_KEYS).success  # the clean company
    clean = load_clean(landing, dt.date.fromisoformat(summary.end_date))
    corpus = Corpus(house, clean, build_corpus(clean))
    for phase in PHASES:
        batch = [d for d in corpus.deliveries if d.phase == phase]
        if phase != "C":
            share = _planned_share(batch)
            assert max(share.values()) < 0.05, share  # the corpus itself keeps B and D gated
        else:
            assert len({d.contract.table for d in batch}) == len(batch)  # one table each
            corpus.versions_before_c = {
                c.table: house.lake.version("raw", c.table) for c in RAW_TABLES
            }
        for d in batch:
            house.drop(d.rel, d.data)
        if phase == "D":
            corpus.results["D"] = house.materialize()  # raw and entities
            day = clean.event_day
            corpus.results["D-events"] = house.materialize_days(day, day)
        else:
            corpus.results[phase] = house.materialize(*RAW_KEYS)
    corpus.seconds = time.perf_counter() - started
    return corpus


def test_runs_before_the_failing_gates_succeed(corpus):
    assert corpus.results["D"].success
    assert corpus.results["D-events"].success
    assert corpus.results["B"].success
    assert not corpus.results["C"].success


def test_corpus_spans_every_source_and_table(corpus):
    assert len(corpus.deliveries) >= 30
    assert {d.contract.source for d in corpus.deliveries} == {c.source for c in RAW_TABLES}
    assert {d.contract.table for d in corpus.deliveries} == {c.table for c in RAW_TABLES}


# -- what the platform did with one file ---------------------------------------------------------
@dataclass
class Seen:
    published: list[dict]
    quarantined: list[dict]
    log: list[dict]
    check: object | None  # the table's gate evaluation in the run that took the file


def seen(corpus: Corpus, d: Delivery) -> Seen:
    lake, table = corpus.house.lake, d.contract.table
    rows = lake.read("raw", table, filter=pads.field("_source_file") == d.rel).to_pylist()
    mine = (pads.field("table_name") == table) & (pads.field("source_file") == d.rel)
    q = lake.read("raw", "quarantine", filter=mine).to_pylist()
    log = lake.read("raw", "ingest_log", filter=mine).to_pylist()
    check = check_evaluations(corpus.results[d.phase]).get(f"raw/{table}")
    return Seen(rows, q, log, check)


def message_names_file_line_and_rule(d: Delivery, s: Seen) -> bool:
    """What a person reads names the file, the line and the rule: a quarantine row (file, line,
    rule, detail), or for a refused batch the failed check's description."""
    if d.outcome == "gate":
        text = s.check.description or "" if s.check else ""
        return all(t in text for t in (d.rel, d.rule, *d.says)) and "line" in text
    if d.outcome == "file":
        return [(r["source_file"], r["line"], r["rule"]) for r in s.quarantined] == [
            (d.rel, 0, d.rule)
        ] and all(t in (s.quarantined[0]["detail"] or "") for t in d.says)
    return all(
        r["source_file"] == d.rel and r["line"] >= 1 and r["rule"] and r["detail"]
        for r in s.quarantined
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_is_accounted_for(corpus, kind):
    d = corpus.get(kind)
    s = seen(corpus, d)
    key = d.contract.columns[0].name
    assert message_names_file_line_and_rule(d, s), (s.quarantined, s.check)
    if d.outcome == "rows":
        # Row by row: each clean record published at its own line, each broken one quarantined
        # under its rule; the log counts agree; the test's own count is the sum.
        assert {r["_line"]: r[key] for r in s.published} == d.keys
        assert {r["line"]: r["rule"] for r in s.quarantined} == d.bad
        assert all(r["payload"] for r in s.quarantined)
        assert len(s.published) + len(s.quarantined) == d.rows
        assert [(x["rows_read"], x["rows_published"], x["rows_quarantined"]) for x in s.log] == [
            (d.rows, len(d.keys), len(d.bad))
        ]
        if d.then:
            d.then(s.published)
    elif d.outcome == "file":
        assert s.published == []
        assert [(x["rows_read"], x["rows_published"], x["rows_quarantined"]) for x in s.log] == [
            (1, 0, 1)
        ]
    elif d.outcome == "none":
        assert s.published == [] and s.quarantined == []
        assert [(x["rows_read"], x["rows_published"]) for x in s.log] == [(0, 0)]
    elif d.outcome == "duplicate":
        assert s.published == [] and s.quarantined == []
        assert [(x["duplicate_of"], x["rows_read"], x["rows_published"]) for x in s.log] == [
            (d.duplicate_of, 0, 0)
        ]
        # Nothing published twice: every row of this content comes from the first delivery.
        sha = hashlib.sha256(d.data).hexdigest()
        lake = corpus.house.lake
        same = lake.read("raw", d.contract.table, filter=pads.field("_file_sha256") == sha)
        first = lake.read("raw", "ingest_log", filter=pads.field("source_file") == d.duplicate_of)
        assert set(same["_source_file"].to_pylist()) == {d.duplicate_of}
        assert [same.num_rows] == first["rows_published"].to_pylist() == [d.rows]
    else:  # gate: nothing written, the table at its previous version, the file still pending
        assert not s.check.passed
        assert s.published == [] and s.quarantined == [] and s.log == []
        lake = corpus.house.lake
        assert lake.version("raw", d.contract.table) == corpus.versions_before_c[d.contract.table]
        landing = corpus.house.resources["landing"]
        assert d.rel in {p.file.relative for p in find_pending(d.contract, landing, lake).pending}


# -- no rule-breaking row in a published table ---------------------------------------------------
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def rule_breaks(c: RawContract, row: dict, only: str | None = None) -> list[str]:
    """Every contract rule a published row breaks, checked here in Python apart from the
    platform's SQL, and any value lost or changed between the payload and its typed column."""
    payload = json.loads(row["_payload"])
    extract = row["_extract_date"]
    latest = dt.datetime.combine(extract + dt.timedelta(days=2), dt.time(), dt.UTC)
    out = []
    for col in c.columns:
        if col.name.startswith("_") or only not in (None, col.name):
            continue
        v, p = row[col.name], payload.get(col.source_name)
        given = p is not None and str(p).strip() != ""
        if isinstance(p, dict | list):
            out.append(f"type({col.name})")
        if v is None:
            out += [f"not_null({col.name})"] * col.required + [f"lost({col.name})"] * given
            continue
        if col.accepted is not None and v not in col.accepted:
            out.append(f"accepted_values({col.name})")
        if col.type == "float" and not math.isfinite(v):
            out.append(f"finite({col.name})")
        if (col.min is not None and v < col.min) or (col.max is not None and v > col.max):
            out.append(f"range({col.name})")
        if col.max_length is not None and len(v) > col.max_length:
            out.append(f"max_length({col.name})")
        if col.type in ("date", "timestamp") and not col.future:
            when = v if col.type == "timestamp" else dt.datetime.combine(v, dt.time(), dt.UTC)
            if when > latest or when < EPOCH:
                out.append(f"date({col.name})")
        if col.type == "string" and isinstance(p, str) and v != p.strip():
            out.append(f"changed({col.name})")
        if col.type in ("int", "float") and given and float(p) != v:
            out.append(f"changed({col.name})")
    return out


def published_breaks(corpus: Corpus, files: set[str] | None = None) -> dict[str, list]:
    out: dict[str, list] = {}
    for c in RAW_TABLES:
        for row in corpus.house.lake.read("raw", c.table).to_pylist():
            if files is None or row["_source_file"] in files:
                broken = rule_breaks(c, row)
                if broken:
                    out.setdefault(c.table, []).append((row["_source_file"], row["_line"], broken))
    return out


def test_no_published_row_breaks_a_rule(corpus):
    assert published_breaks(corpus) == {}


def test_the_rule_checker_sees_what_the_platform_quarantined(corpus):
    """The checker is not blind: the rows the platform quarantined break its rules too."""
    by_table = {c.table: c for c in RAW_TABLES}
    q = corpus.house.lake.read("raw", "quarantine").to_pylist()
    checked = 0
    for r in q:
        c = by_table[r["table_name"]]
        if not r["payload"] or r["rule"] in (FIELD_COUNT, NOT_AN_OBJECT, INVALID_JSON):
            continue
        payload = json.loads(r["payload"])
        rule = r["rule"].split("(")[0]
        if rule == "type" or "(" not in r["rule"]:
            continue  # no typed value to hand the checker
        col = next(x for x in c.columns if x.name == r["rule"][len(rule) + 1 : -1])
        row = {col.name: _typed(col.type, payload.get(col.source_name))}
        row.update(_payload=r["payload"], _extract_date=r["extract_date"])
        assert rule_breaks(c, row, only=col.name), r
        checked += 1
    assert checked >= 20


def _typed(kind: str, text: object) -> object:
    if text is None or str(text).strip() == "":
        return None
    if kind == "float":
        return float(text)
    if kind == "int":
        return int(text)
    if kind == "timestamp":
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if kind == "date":
        return dt.date.fromisoformat(str(text))
    return str(text).strip()


# -- downstream: orphans and duplicate keys ------------------------------------------------------
def _events(corpus: Corpus, table: str) -> list[dict]:
    cols = ["source_object", "source_id", "event_name", "event_date"]
    cols += ["account_id"] if table == "events" else ["reason"]
    return corpus.house.lake.read("events", table, columns=cols).to_pylist()


def _account_of(corpus: Corpus, record_key: str) -> set[str | None]:
    links = corpus.house.lake.read(
        "entities", "identity_links", filter=pads.field("record_key") == record_key
    )
    return set(links["canonical_id"].to_pylist())


def downstream_wrongs(corpus: Corpus) -> dict[str, int]:
    """Rows downstream that should not be there: orphans on an account, events counted twice,
    a subscription invented from an invoice, one CRM id split over two accounts."""
    events = _events(corpus, "events")
    on_account = [e for e in events if e["source_id"] in {*ORPHAN_EVENTS, ORPHAN_INVOICE}]
    ids = set(corpus.get("product_usage_events_redelivered").keys.values())
    counts = _usage_event_counts(corpus)
    subs = corpus.house.lake.read("entities", "subscription", columns=["subscription_id"])
    twin = corpus.get("crm_accounts_duplicate_key").keys
    twin_id = twin[max(twin)]
    return {
        "orphan_events_on_an_account": len(on_account),
        "events_counted_twice": sum(counts[i] - 1 for i in ids if counts[i] > 1),
        "events_lost": sum(1 for i in ids if counts[i] == 0),
        "invented_subscriptions": sum(
            s in (ORPHAN_SUBSCRIPTION, UNKNOWN_SUBSCRIPTION)
            for s in subs["subscription_id"].to_pylist()
        ),
        "crm_ids_split": len(_account_of(corpus, f"crm/accounts:{twin_id}")) - 1,
    }


def test_downstream_publishes_no_orphan_or_duplicate(corpus):
    assert downstream_wrongs(corpus) == dict.fromkeys(downstream_wrongs(corpus), 0)


def test_event_for_unknown_workspace_is_kept_unattributed_with_its_reason(corpus):
    orphans = {
        e["source_id"]: e["reason"]
        for e in _events(corpus, "unattributed_events")
        if e["source_id"] in ORPHAN_EVENTS
    }
    assert set(orphans) == set(ORPHAN_EVENTS)
    assert all(ORPHAN_WORKSPACE in reason for reason in orphans.values())
    unmapped = corpus.house.lake.read("entities", "unmapped_ids").to_pylist()
    gap = [u for u in unmapped if u["source_id"] == ORPHAN_WORKSPACE]
    assert [(u["object"], u["reason"], u["references"]) for u in gap] == [
        ("workspaces", "dangling_reference", len(ORPHAN_EVENTS))
    ]
    assert "usage_events" in gap[0]["referenced_from"]


def test_invoice_for_unknown_customer_and_subscription_is_kept_unattributed(corpus):
    orphan = [e for e in _events(corpus, "unattributed_events") if e["source_id"] == ORPHAN_INVOICE]
    assert {e["event_name"] for e in orphan} == {"invoice_issued", "invoice_paid"}
    assert all(ORPHAN_CUSTOMER in e["reason"] for e in orphan)
    unmapped = corpus.house.lake.read("entities", "unmapped_ids").to_pylist()
    gap = [u for u in unmapped if u["source_id"] == ORPHAN_CUSTOMER]
    assert [(u["object"], u["reason"]) for u in gap] == [("customers", "dangling_reference")]
    assert "invoices" in gap[0]["referenced_from"]


def test_invoice_for_unknown_subscription_stays_with_its_customers_account(corpus):
    """The customer is known, so the invoice is the customer's account's, and no subscription
    is invented from it."""
    d = corpus.get("billing_invoices_unknown_references")
    row = seen(corpus, d).published
    customer = next(r["customer_id"] for r in row if r["invoice_id"] == UNKNOWN_SUB_INVOICE)
    (account,) = _account_of(corpus, f"billing/customers:{customer}")
    assert account is not None
    issued = [e for e in _events(corpus, "events") if e["source_id"] == UNKNOWN_SUB_INVOICE]
    assert [(e["event_name"], e["account_id"]) for e in issued] == [("invoice_issued", account)]


def _usage_event_counts(corpus: Corpus) -> Counter:
    """Usage events of the rebuilt day, in events/events or (no account) unattributed_events."""
    both = _events(corpus, "events") + _events(corpus, "unattributed_events")
    return Counter(
        e["source_id"]
        for e in both
        if e["source_object"] == "usage_events" and e["event_date"] == corpus.clean.event_day
    )


def test_redelivered_events_count_once(corpus):
    d = corpus.get("product_usage_events_redelivered")
    counts = _usage_event_counts(corpus)
    assert {i: counts[i] for i in d.keys.values()} == dict.fromkeys(d.keys.values(), 1)


# -- the figures docs/reliability.md quotes ------------------------------------------------------
def test_figures(corpus):
    tried = published = quarantined = whole = duplicate = held = wrongly = 0
    named = 0
    for d in corpus.deliveries:
        s = seen(corpus, d)
        tried += d.rows
        published += len(s.published)
        # Published rows the corpus meant to be refused: broken lines, or any row of a file
        # that was to be refused whole, recognised as a duplicate or held by its gate.
        wrongly += len([r for r in s.published if r["_line"] in d.bad or d.outcome != "rows"])
        if d.outcome == "rows":
            quarantined += len(s.quarantined)
        elif d.outcome == "file" and s.quarantined:
            whole += d.rows
        elif d.outcome == "duplicate" and s.log and s.log[0]["duplicate_of"]:
            duplicate += d.rows
        elif d.outcome == "gate" and s.check is not None and not s.check.passed:
            held += d.rows
        named += message_names_file_line_and_rule(d, s)
    files = {d.rel for d in corpus.deliveries}
    breaking = sum(len(v) for v in published_breaks(corpus, files).values())
    downstream = sum(downstream_wrongs(corpus).values())
    accounted = published + quarantined + whole + duplicate + held
    record(
        "bad_input",
        kinds=len(corpus.deliveries),
        sources=len({d.contract.source for d in corpus.deliveries}),
        tables=len({d.contract.table for d in corpus.deliveries}),
        files=len(files),
        rows_tried=tried,
        rows_published=published,
        rows_quarantined=quarantined + whole,
        rows_quarantined_row_by_row=quarantined,
        rows_in_files_refused_whole=whole,
        rows_in_duplicate_files_not_republished=duplicate,
        rows_held_by_failed_gates=held,
        gate_failures=sum(d.outcome == "gate" for d in corpus.deliveries),
        rows_unaccounted=tried - accounted,
        rows_published_wrongly=wrongly + breaking + downstream,
        messages_naming_file_line_and_rule=named,
        seconds=round(corpus.seconds, 1),
        sample_company=f"{ACCOUNTS} accounts x {DAYS} days, seed {SEED}",
    )
    assert tried == accounted
    assert wrongly + breaking + downstream == 0
    assert named == len(corpus.deliveries)


# -- every catalog: each declared rule quarantines its row -------------------------------------
# Apart from the corpus (the sample company, the default stack), every stack's catalog is held
# to its own rules: for each object, a file in its declared shape with one clean record and one
# record per rule broken, and a file of another format.
STACK_CATALOGS = sorted(STACKS.glob("*/catalog.yaml"))
STACK_OBJECTS = [
    (path.parent.name, o.source) for path in STACK_CATALOGS for o in load_catalog(path).objects
]
GOOD_TIME = dt.datetime(2024, 1, 4, 8, tzinfo=dt.UTC)
NESTED = ("json_array", "jsonl")


def _stored_target(col: Column) -> float:
    """A stored value the column's range accepts."""
    lo, hi = col.min, col.max
    if lo is not None:
        return lo
    if hi is not None:
        return min(hi, 1)
    return 1


def _arrived(col: Column, stored: float) -> object:
    """The value as it arrives so that, after the column's scale, it is `stored`."""
    value = stored / col.scale if col.scale else stored
    return round(value) if col.type == "int" else value


def _good(col: Column) -> object:
    if col.type == "string":
        return col.accepted[0] if col.accepted else f"v-{col.name}"
    if col.type in ("int", "float"):
        return _arrived(col, _stored_target(col))
    if col.type == "bool":
        return "true"
    if col.type == "date":
        return GOOD_TIME.date().isoformat()
    if col.unit == "unix_seconds":
        return int(GOOD_TIME.timestamp())
    if col.unit == "unix_millis":
        return int(GOOD_TIME.timestamp() * 1000)
    return GOOD_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")


def _breaks(col: Column) -> list[tuple[object, str]]:
    """(arrived value, rule) for each rule of the column; DROP: the field is missing."""
    out: list[tuple[object, str]] = []
    if col.required:
        out.append((DROP, f"not_null({col.name})"))
    if col.type != "string":
        out.append(("not-a-value", f"type({col.name})"))
    if col.accepted is not None:
        out.append(("zz-not-accepted", f"accepted_values({col.name})"))
    if col.min is not None:
        out.append((_arrived(col, col.min - 1), f"range({col.name})"))
    if col.max is not None:
        out.append((_arrived(col, col.max + 1), f"range({col.name})"))
    return out


def _record(contract: RawContract, values: dict[str, object]) -> dict:
    """A record of the object's shape: nested where a JSON source is a path."""
    out: dict = {}
    for col in contract.columns:
        if col.name.startswith("_") or values.get(col.name) is DROP:
            continue
        value = values[col.name]
        if contract.format not in NESTED:
            out[col.source_name] = value
            continue
        here: dict | list = out
        steps = []
        for seg in col.source_name.split("."):
            key, *idx = seg.replace("]", "").split("[")
            steps += [key, *(int(i) for i in idx)]
        for step, after in zip(steps, [*steps[1:], None], strict=True):
            empty = None if after is None else {} if isinstance(after, str) else []
            if isinstance(here, list):
                while len(here) <= step:
                    here.append(copy.deepcopy(empty))
            elif step not in here:
                here[step] = empty
            if after is None:
                here[step] = value
            else:
                here = here[step]
    return out


def _render(contract: RawContract, records: list[dict]) -> tuple[bytes, int]:
    """The file, and the line of its first record."""
    fmt = contract.format
    if fmt == "csv":
        d = contract.csv
        names = [c.source_name for c in contract.columns if not c.name.startswith("_")]
        out = io.StringIO()
        writer = csv.writer(
            out,
            delimiter=d.delimiter,
            quotechar=d.quote or '"',
            escapechar=d.escape,
            quoting=csv.QUOTE_MINIMAL if d.quote else csv.QUOTE_NONE,
            doublequote=d.escape is None,
            lineterminator="\n",
        )
        if d.header:
            writer.writerow(names)
        writer.writerows([["" if r.get(n) is None else r[n] for n in names] for r in records])
        return out.getvalue().encode(), 2 if d.header else 1
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in records).encode(), 1
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = [c.source_name for c in contract.columns if not c.name.startswith("_")]
        table = pa.table(
            {n: pa.array([None if n not in r else str(r[n]) for r in records]) for n in names}
        )
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue(), 1
    doc: object = records
    for key in reversed((contract.records_path or "").split(".") if contract.records_path else []):
        doc = {key: doc}
    return json.dumps(doc).encode(), 1


def _ingest_one(tmp_path: Path, contract: RawContract, name: str, data: bytes):
    from resources.duckdb import DuckDBResource
    from resources.lake import LakeResource
    from resources.landing import LandingResource

    folder = tmp_path / "landing" / contract.landing_dir / "2024-01-05"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    lake = LakeResource(root=str(tmp_path / "lake"))
    landing = LandingResource(root=str(tmp_path / "landing"))
    stage = tmp_path / f"stage-{name}"
    stage.mkdir()
    with DuckDBResource(threads=1).connect() as con:
        return build_batch(contract, find_pending(contract, landing, lake), lake, con, stage)


@pytest.mark.parametrize(("stack", "source"), STACK_OBJECTS)
def test_every_declared_rule_of_every_catalog_quarantines_its_row(stack, source, tmp_path):
    contract = load_catalog(STACKS / stack / "catalog.yaml").object(source).contract
    columns = [c for c in contract.columns if not c.name.startswith("_")]
    good = {c.name: _good(c) for c in columns}
    records, rules = [_record(contract, good)], []
    for col in columns:
        for value, rule in _breaks(col):
            records.append(_record(contract, {**good, col.name: value}))
            rules.append(rule)
    data, first = _render(contract, records)
    batch = _ingest_one(tmp_path, contract, f"all_rules{EXT[contract.format]}", data)
    published = pa_rows(batch)
    assert len(published) == 1, (published, batch.quarantine.to_pylist())
    for col in columns:  # the clean record is typed as declared
        assert published[0][col.name] is not None, col.name
    got = sorted((r["line"], r["rule"]) for r in batch.quarantine.to_pylist())
    assert got == [(first + 1 + i, rule) for i, rule in enumerate(rules)]


@pytest.mark.parametrize(("stack", "source"), STACK_OBJECTS)
def test_a_file_of_another_format_is_refused_whole_in_every_catalog(stack, source, tmp_path):
    contract = load_catalog(STACKS / stack / "catalog.yaml").object(source).contract
    other = {
        "csv": b'[{"a": 1}]\n',
        "json_array": b"a,b,c\n1,2,3\n",
        "jsonl": b"a,b,c\n1,2,3\n",
        "parquet": b'{"a": 1}\n',
    }[contract.format]
    batch = _ingest_one(tmp_path, contract, f"misplaced{EXT[contract.format]}", other)
    assert pa_rows(batch) == []
    q = batch.quarantine.to_pylist()
    assert [(r["line"], r["rule"]) for r in q] == [(0, f"format({contract.format})")]


def pa_rows(batch) -> list[dict]:
    import pyarrow as pa

    return pa.concat_tables(list(batch.chunks())).to_pylist()
