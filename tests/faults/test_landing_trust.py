"""What lands is not trusted: files delivered again under the same path, partial uploads, dates
that are infinite or far in the future, folders that are not dates, links and non-files.

Each kind lands beside the clean sample company, and the raw layer (and, for re-deliveries, the
entity layer) runs over it. For each kind the test counts the rows it landed and checks each is
accounted for: published once in its current version, or quarantined / refused with the file,
line and rule, or waiting untouched in landing under a logged reason. Rows lost and rows
published wrongly must both be 0; the figures go to tests/artifacts/faults/figures.json.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from checks.sources import raw_contracts
from conftest import Lakehouse
from faultkit import delta_tables, record

RAW_TABLES = raw_contracts()  # the active source catalog's raw tables

pytestmark = pytest.mark.faults

ACCOUNTS, DAYS, SEED = 20, 30, 5  # the company ends 2026-10-31: 2026-11-0x is a later extract
RAW_KEYS = [f"raw/{c.table}" for c in RAW_TABLES] + ["raw/quarantine"]
FIGURES: dict[str, Counter] = {}


def _count(cls: str, **n: int) -> None:
    FIGURES.setdefault(cls, Counter()).update(n)


# -- the lake -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def baseline(tmp_path_factory, defs) -> Path:
    """The clean company through raw and entities, copied for each test."""
    from sample_company.generate import generate

    root = tmp_path_factory.mktemp("landing_trust")
    generate(root / "landing", accounts=ACCOUNTS, days=DAYS, seed=SEED)
    house = Lakehouse(root / "lake", root / "landing", defs)
    assert house.materialize().success
    return root


@pytest.fixture
def house(baseline: Path, tmp_path: Path, defs) -> Lakehouse:
    shutil.copytree(baseline, tmp_path / "h", symlinks=True)
    return Lakehouse(tmp_path / "h" / "lake", tmp_path / "h" / "landing", defs)


def visible(house: Lakehouse, table: str) -> list[dict]:
    """The rows of a raw table as every layer above reads them."""
    from assets.entities.records import register_raw

    con = duckdb.connect()
    register_raw(con, house.lake, {f"raw/{table}"})
    return (
        con.sql(f"SELECT * FROM v_raw__{table} ORDER BY _source_file, _line")
        .to_arrow_table()
        .to_pylist()
    )


def log(house: Lakehouse, table: str) -> list[dict]:
    rows = house.lake.read("raw", "ingest_log").to_pylist()
    return [r for r in rows if r["table_name"] == table]


def quarantined(house: Lakehouse, source_file: str) -> list[dict]:
    return [
        r
        for r in house.lake.read("raw", "quarantine").to_pylist()
        if r["source_file"] == source_file
    ]


def rel(house: Lakehouse, path: Path) -> str:
    return path.relative_to(house.landing_root).as_posix()


def csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def csv_rows_of(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


def csv_text(rows: list[dict]) -> str:
    out = io.StringIO(newline="")
    w = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def files(house: Lakehouse, source: str, obj: str) -> list[Path]:
    return sorted((house.landing_root / source / obj).glob("*/*"))


# -- 1. re-delivery -------------------------------------------------------------------------------
def test_a_corrected_file_under_the_same_path_supersedes_the_old_version(house):
    """The corrected subscriptions file is a new version of the old one: the layers above read
    each of its rows once, with the correction, and the subscription shows the corrected MRR."""
    path = files(house, "billing", "subscriptions")[-1]
    rows = csv_rows(path)
    latest = {
        r["subscription_id"]: r
        for f in files(house, "billing", "subscriptions")
        for r in csv_rows(f)
    }
    target = rows[0]
    assert latest[target["subscription_id"]] == target, "the last extract holds its latest version"
    old_mrr = target["mrr"]
    target["mrr"] = "99999.00"
    path.write_text(csv_text(rows))

    assert house.materialize().success  # raw and entities
    seen = [
        r for r in visible(house, "billing_subscriptions") if r["_source_file"] == rel(house, path)
    ]
    assert len(seen) == len(rows), "each line once, in its current version"
    mine = [r for r in seen if r["subscription_id"] == target["subscription_id"]]
    assert [r["mrr"] for r in mine] == [99999.0]
    sub = house.lake.read("entities", "subscription").to_pylist()
    assert [s["mrr"] for s in sub if s["subscription_id"] == target["subscription_id"]] == [99999.0]
    last = max(
        (r for r in log(house, "billing_subscriptions") if r["source_file"] == rel(house, path)),
        key=lambda r: r["seq"] or 0,
    )
    assert last["decision"] == "replaced" and last["supersedes"]
    raw = house.lake.read("raw", "billing_subscriptions").to_pylist()
    assert sum(r["_source_file"] == rel(house, path) for r in raw) == 2 * len(rows), (
        "the raw table keeps both versions"
    )
    wrong = sum(
        1
        for r in seen
        if r["subscription_id"] == target["subscription_id"] and r["mrr"] == float(old_mrr)
    )
    _count(
        "re-delivery",
        kinds=1,
        rows_landed=len(rows),
        rows_published=len(seen),
        rows_lost=len(rows) - len(seen),
        rows_published_wrongly=wrong + len(seen) - len(rows),
    )


def test_a_partial_upload_is_ignored_until_complete_and_then_published_once(house):
    source = files(house, "billing", "invoices")[-1]
    rows = csv_rows(source)
    for r in rows:
        r["invoice_id"] += "_late"
    text = csv_text(rows)
    folder = house.landing_root / "billing" / "invoices" / "2026-11-01"
    folder.mkdir()
    part = folder / "invoices.csv.part"
    part.write_text(text[: len(text) // 2])  # cut mid-line, as an upload in flight is

    assert house.materialize("raw/billing_invoices").success
    published = [r for r in visible(house, "billing_invoices") if r["invoice_id"].endswith("_late")]
    assert published == [], "nothing of a partial upload is read"
    assert [
        r["decision"]
        for r in log(house, "billing_invoices")
        if r["source_file"] == rel(house, part)
    ] == ["ignored"]

    part.rename(folder / "invoices.csv")
    part.with_name("invoices.csv").write_text(text)
    assert house.materialize("raw/billing_invoices").success
    published = [r for r in visible(house, "billing_invoices") if r["invoice_id"].endswith("_late")]
    assert sorted(r["invoice_id"] for r in published) == sorted(r["invoice_id"] for r in rows)
    raw = house.lake.read("raw", "billing_invoices").to_pylist()
    assert sum(r["invoice_id"].endswith("_late") for r in raw) == len(rows), "published once"
    _count(
        "re-delivery",
        kinds=1,
        rows_landed=len(rows),
        rows_published=len(published),
        rows_lost=len(rows) - len(published),
        rows_published_wrongly=len(raw) - len({(r["_file_sha256"], r["_line"]) for r in raw}),
    )


def test_a_same_size_edit_that_keeps_the_modification_time_is_still_a_new_version(house):
    path = files(house, "billing", "subscriptions")[0]
    data = path.read_text()
    st = path.stat()
    rows = csv_rows(path)
    old = rows[0]["mrr"]
    new = ("1" if old[0] != "1" else "2") + old[1:]
    edited = data.replace(f",{old},", f",{new},", 1)
    assert len(edited) == len(data) and edited != data
    path.write_text(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns

    assert house.materialize("raw/billing_subscriptions").success
    seen = [
        r for r in visible(house, "billing_subscriptions") if r["_source_file"] == rel(house, path)
    ]
    assert len(seen) == len(rows)
    first = next(r for r in seen if r["_line"] == 2)
    assert first["mrr"] == float(new), "the correction is not lost"
    _count(
        "re-delivery",
        kinds=1,
        rows_landed=len(rows),
        rows_published=len(seen),
        rows_lost=int(first["mrr"] != float(new)),
        rows_published_wrongly=len(seen) - len(rows),
    )


def test_a_reverted_file_is_current_again_and_a_broken_version_hides_nothing(house):
    path = files(house, "support", "tickets")[-1]
    original = path.read_bytes()
    rows = csv_rows(path)
    for r in rows:
        r["priority"] = "critical"
    path.write_text(csv_text(rows))
    assert house.materialize("raw/support_tickets").success
    path.write_bytes(original)  # the sender takes the correction back
    assert house.materialize("raw/support_tickets").success
    seen = [r for r in visible(house, "support_tickets") if r["_source_file"] == rel(house, path)]
    assert [r["priority"] for r in seen] == [r["priority"] for r in csv_rows(path)]

    path.write_bytes(b"\xff\xfe not a csv export \x00\n")  # a broken re-delivery
    house.materialize("raw/support_tickets")  # alone in its batch it fails its gate; either way:
    again = [r for r in visible(house, "support_tickets") if r["_source_file"] == rel(house, path)]
    assert again == seen, "a version that cannot be read hides no row of the last good one"
    decisions = [
        r["decision"]
        for r in sorted(log(house, "support_tickets"), key=lambda r: r["seq"] or 0)
        if r["source_file"] == rel(house, path)
    ]
    assert decisions[-2:] == ["replaced", "duplicate"], decisions
    want = [r["priority"] for r in csv_rows_of(original)]
    _count(
        "re-delivery",
        kinds=2,
        rows_landed=len(want),  # the version in landing at the end
        rows_published=len(again),
        rows_lost=max(0, len(want) - len(again)),
        rows_published_wrongly=sum(r["priority"] != w for r, w in zip(again, want, strict=False))
        + max(0, len(again) - len(want)),
    )


# -- 3. values no table can hold ------------------------------------------------------------------
def _json_records(path: Path) -> list[dict]:
    return json.loads(path.read_text())


def test_infinite_and_far_future_dates_are_quarantined_not_written(house):
    """'infinity' casts to a date, but no Parquet reader can hold it: it must be quarantined
    with its file, line and rule, in a date column that allows the future and in a timestamp."""
    opps = [r for f in files(house, "crm", "opportunities") for r in _json_records(f)]
    batch = [{**r, "Id": f"{r['Id']}_x{i}"} for i, r in enumerate(opps * 3)]
    bad = {
        3: ("CloseDate", "infinity", "finite(close_date)"),
        10: ("CloseDate", "9999-12-31", "plausible_date(close_date)"),
        20: ("CreatedDate", "infinity", "finite(created_date)"),
        30: ("LastModifiedDate", "-infinity", "finite(last_modified_date)"),
    }
    for i, (field, value, _) in bad.items():
        batch[i][field] = value
    batch[40]["RenewalDate"] = "infinity"  # an undeclared column (drift): kept as text
    for r in batch[:40] + batch[41:]:
        r["RenewalDate"] = "2027-01-01T00:00:00Z"
    folder = house.landing_root / "crm" / "opportunities" / "2026-11-01"
    folder.mkdir()
    (folder / "opportunities.json").write_text(json.dumps(batch))
    assert (len(bad) + 1) / len(batch) < 0.05, "the kinds stay under the batch's gate"

    result = house.materialize("raw/crm_opportunities")
    q = quarantined(house, "crm/opportunities/2026-11-01/opportunities.json")
    assert result.success, "a value no table can hold is a quarantined row, not a crash"
    expected = {i + 1: rule for i, (_, _, rule) in bad.items()}
    assert {r["line"]: r["rule"] for r in q} == expected
    table = house.lake.read("raw", "crm_opportunities")
    mine = table.filter(
        pa.compute.equal(table["_source_file"], "crm/opportunities/2026-11-01/opportunities.json")
    )
    # A drift column is text, never typed by guessing: its values stay exactly as they arrived.
    renewal = dict(zip(mine["_line"].to_pylist(), mine["renewal_date"].to_pylist(), strict=True))
    assert renewal[41] == "infinity" and renewal[1] == "2027-01-01T00:00:00Z"
    years = [
        v.year
        for c in ("close_date", "created_date", "last_modified_date")
        for v in mine[c].to_pylist()
        if v is not None
    ]
    wrong = sum(y > 2200 for y in years)
    assert wrong == 0
    assert mine.num_rows + len(q) == len(batch)
    _count(
        "infinite dates",
        kinds=len(expected),
        rows_landed=len(batch),
        rows_published=mine.num_rows,
        rows_quarantined=len(q),
        rows_lost=len(batch) - mine.num_rows - len(q),
        rows_published_wrongly=wrong,
    )


# -- 4. folders that cannot be placed, and the future ---------------------------------------------
def _renamed(rows: list[dict], key: str, suffix: str) -> str:
    return csv_text([{**r, key: r[key] + suffix} for r in rows])


def test_a_folder_that_is_not_an_extract_date_is_refused_loudly_and_read_once_renamed(house):
    base = house.landing_root / "billing" / "invoices"
    clean = csv_rows(files(house, "billing", "invoices")[-1])
    drops = {"2026-11-1": "_a", "latest": "_b", "2062-11-01": "_c"}
    for folder, suffix in drops.items():
        (base / folder).mkdir()
        (base / folder / "invoices.csv").write_text(_renamed(clean, "invoice_id", suffix))
    (base / "invoices.csv").write_text(_renamed(clean, "invoice_id", "_d"))  # in no folder
    landed = sum(
        len(csv_rows(p))
        for p in base.glob("**/invoices.csv")
        if p.parent.name in drops or p.parent == base
    )

    assert house.materialize("raw/billing_invoices").success
    published = [
        r
        for r in visible(house, "billing_invoices")
        if r["invoice_id"][-2:] in ("_a", "_b", "_c", "_d")
    ]
    assert published == [], "nothing that cannot be placed in time is published"
    refused = {}
    for rel_path in [
        "billing/invoices/2026-11-1/invoices.csv",
        "billing/invoices/latest/invoices.csv",
        "billing/invoices/2062-11-01/invoices.csv",
        "billing/invoices/invoices.csv",
    ]:
        q = quarantined(house, rel_path)
        assert [(r["line"], r["rule"]) for r in q] in (
            [(0, "landing(extract_folder)")],
            [(0, "landing(extract_date_in_future)")],
        ), (rel_path, q)
        assert q[0]["detail"], "the reason is in words"
        refused[rel_path] = q[0]["rule"]
        assert [
            r["decision"] for r in log(house, "billing_invoices") if r["source_file"] == rel_path
        ] == ["refused"]
    assert refused["billing/invoices/2062-11-01/invoices.csv"] == "landing(extract_date_in_future)"

    (base / "2026-11-1").rename(base / "2026-11-01")  # the operator fixes the name
    assert house.materialize("raw/billing_invoices").success
    fixed = [r for r in visible(house, "billing_invoices") if r["invoice_id"].endswith("_a")]
    assert len(fixed) == len(csv_rows(base / "2026-11-01" / "invoices.csv"))
    # Every landed row is published (the fixed folder) or waits in a file a quarantine row names.
    waiting = sum(len(csv_rows(house.landing_root / p)) for p in refused if "2026-11-1" not in p)
    wrong = [
        r for r in visible(house, "billing_invoices") if r["invoice_id"][-2:] in ("_b", "_c", "_d")
    ]
    _count(
        "folders and the future",
        kinds=4,
        rows_landed=landed,
        rows_published=len(fixed),
        rows_refused_with_reason=waiting,
        rows_lost=landed - len(fixed) - waiting,
        rows_published_wrongly=len(wrong),
    )


def test_future_is_judged_against_the_clock_not_the_folder(house):
    """A far-future ticket in a folder with a plausible date is quarantined, and the folder's
    own date never moves the limit."""
    rows = csv_rows(files(house, "support", "tickets")[-1])
    batch = [{**r, "ticket_id": f"{r['ticket_id']}_f{i}"} for i, r in enumerate(rows * 3)]
    batch[5]["created_at"] = "2062-11-01T10:00:00Z"
    folder = house.landing_root / "support" / "tickets" / "2026-11-02"
    folder.mkdir()
    (folder / "tickets.csv").write_text(csv_text(batch))
    assert house.materialize("raw/support_tickets").success
    q = quarantined(house, "support/tickets/2026-11-02/tickets.csv")
    assert [(r["line"], r["rule"]) for r in q] == [(7, "not_future(created_at)")]
    published = [
        r
        for r in visible(house, "support_tickets")
        if r["_source_file"] == "support/tickets/2026-11-02/tickets.csv"
    ]
    wrong = sum(r["created_at"].year >= 2062 for r in published)
    assert wrong == 0 and len(published) == len(batch) - 1
    _count(
        "folders and the future",
        kinds=1,
        rows_landed=len(batch),
        rows_published=len(published),
        rows_quarantined=len(q),
        rows_lost=len(batch) - len(published) - len(q),
        rows_published_wrongly=wrong,
    )


# -- 5. links, devices and folders where a file is expected ---------------------------------------
MARKER = "OUTSIDE-THE-LANDING-ROOT-7f3a"


def test_nothing_outside_the_landing_root_is_read(house, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    sub = csv_rows(files(house, "billing", "subscriptions")[0])[0]
    secret = outside / "subscriptions.csv"
    secret.write_text(csv_text([{**sub, "subscription_id": MARKER}]))
    (outside / "2026-11-01").mkdir()
    (outside / "2026-11-01" / "signals.csv").write_text(
        f"record_id,observed_at\n{MARKER},2026-10-01T00:00:00Z\n"
    )
    day = "2026-11-01"
    entries = {
        f"billing/subscriptions/{day}/subscriptions.csv": ("symlink", secret),
        f"crm/accounts/{day}/accounts.json": ("symlink", Path("/etc/passwd")),
        f"support/tickets/{day}/tickets.csv": ("fifo", None),
        f"product/workspaces/{day}/workspaces.jsonl": ("dir", None),
    }
    for rel_path, (kind, target) in entries.items():
        path = house.landing_root / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "symlink":
            path.symlink_to(target)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.mkdir()
            (path / "inner.jsonl").write_text(json.dumps({"workspace_id": MARKER}) + "\n")
    shutil.rmtree(house.landing_root / "risk" / "signals")
    (house.landing_root / "risk" / "signals").symlink_to(outside)  # a whole object folder

    started = time.perf_counter()
    result = house.materialize(*RAW_KEYS)
    seconds = time.perf_counter() - started
    assert result.success
    rules = {
        "symlink": "landing(symlink)",
        "fifo": "landing(not_a_file)",
        "dir": "landing(not_a_file)",
    }
    for rel_path, (kind, _) in entries.items():
        q = quarantined(house, rel_path)
        assert [(r["line"], r["rule"], r["payload"]) for r in q] == [(0, rules[kind], None)], (
            rel_path,
            q,
        )
    assert [(r["line"], r["rule"]) for r in quarantined(house, "risk/signals")] == [
        (0, "landing(symlink)")
    ]

    leaked = []
    for table in delta_tables(house.lake_root):
        blob = json.dumps(DeltaTable(str(table)).to_pyarrow_table().to_pylist(), default=str)
        if MARKER in blob or "root:x:0:0" in blob:
            leaked.append(str(table))
    assert leaked == [], f"read from outside the landing root: {leaked}"
    _count(
        "links and non-files",
        kinds=len(entries) + 1,
        entries_refused_with_reason=len(entries) + 1,
        tables_holding_outside_content=len(leaked),
        rows_published_wrongly=len(leaked),
        raw_run_seconds=round(seconds),
    )


def test_figures():
    """The figures per class of fault, for docs/reliability.md (runs last in this module)."""
    total = Counter()
    for counts in FIGURES.values():
        total.update(counts)
    record(
        "landing_trust",
        **{f"{cls}: {k}": v for cls, counts in FIGURES.items() for k, v in counts.items()},
        kinds=total["kinds"],
        rows_landed=total["rows_landed"],
        rows_lost=total["rows_lost"],
        rows_published_wrongly=total["rows_published_wrongly"],
    )
    assert total["rows_lost"] == 0 and total["rows_published_wrongly"] == 0
