"""Landing formats the catalog declares: one object's records read the same whatever shape they
arrive in (CSV with its dialect, JSON Lines, a JSON array under a key, parquet, any of them
gzipped); a file of another format is rejected whole with a rule naming the declared format;
nested paths, epoch timestamps and cents are typed as declared; undeclared columns stay text;
and a landing folder no object reads is reported, never silently ignored."""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetSelection, DagsterInstance, Definitions, define_asset_job

from assets import landing as landing_assets
from assets.raw.ingest import build_batch, commit, find_pending
from checks.raw import RawContract
from checks.sources import load_catalog, raw_contracts
from resources.duckdb import DuckDBResource
from resources.lake import LakeResource
from resources.landing import LandingResource

DAY = "2026-01-05"
RECORDS = [
    {
        "order_id": "o-001",
        "customer": "Ada Lovelace, Ltd",  # a delimiter inside a value: quoted in CSV
        "amount": 12.5,
        "qty": 3,
        "placed_at": "2026-01-04T08:00:00+00:00",
    },
    {
        "order_id": "o-002",
        "customer": 'Grace "Amazing" Hopper',  # a quote inside a value
        "amount": 0.0,
        "qty": 1,
        "placed_at": "2026-01-04T09:30:00+00:00",
    },
    {
        "order_id": "o-003",
        "customer": "Zoë Ünicode",
        "amount": 1999.99,
        "qty": 12,
        "placed_at": "2026-01-05T00:00:00+00:00",
    },
]
COLUMNS = """
    id: order_id
    columns:
      - {name: order_id, required: true}
      - {name: customer}
      - {name: amount, type: float, min: 0}
      - {name: qty, type: int, min: 0}
      - {name: placed_at, type: timestamp, required: true}
"""


def catalog(tmp_path: Path, *entries: str) -> tuple[RawContract, ...]:
    """Contracts of a catalog holding `entries` (YAML text of objects)."""
    path = tmp_path / "catalog.yaml"
    path.write_text("version: 1\nobjects:\n" + "".join(entries))
    return raw_contracts(load_catalog(path))


def orders(fmt: str, extra: str = "") -> str:
    return (
        f"  - system: shop\n    object: orders\n    description: Web shop orders.\n"
        f"    format: {fmt}\n{extra}{COLUMNS}"
    )


def ingest(tmp_path: Path, contract: RawContract, files: dict[str, bytes]) -> tuple[list, list]:
    """Land `files` (name -> bytes) in the object's folder; return (typed rows, quarantine)."""
    folder = tmp_path / "landing" / contract.landing_dir / DAY
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return _batch(tmp_path, contract)


def _batch(tmp_path: Path, contract: RawContract, publish: bool = False) -> tuple[list, list]:
    lake = LakeResource(root=str(tmp_path / "lake"))
    landing = LandingResource(root=str(tmp_path / "landing"))
    stage = tmp_path / f"stage-{datetime.now(UTC).timestamp()}"
    stage.mkdir()
    with DuckDBResource(threads=1).connect() as con:
        batch = build_batch(contract, find_pending(contract, landing, lake), lake, con, stage)
    if publish:
        commit(batch, lake)
    rows = pa.concat_tables(list(batch.chunks())).to_pylist()
    return rows, batch.quarantine.to_pylist()


def declared(rows: list[dict]) -> list[dict]:
    keys = ("order_id", "customer", "amount", "qty", "placed_at")
    return [{k: r[k] for k in keys} for r in sorted(rows, key=lambda r: r["order_id"])]


def as_csv(delimiter: str = ",", header: bool = True) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(RECORDS[0]), delimiter=delimiter)
    if header:
        writer.writeheader()
    writer.writerows(RECORDS)
    return out.getvalue().encode()


def as_jsonl() -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS).encode()


def as_parquet() -> bytes:
    table = pa.table(
        {
            "order_id": [r["order_id"] for r in RECORDS],
            "customer": [r["customer"] for r in RECORDS],
            "amount": [r["amount"] for r in RECORDS],
            "qty": pa.array([r["qty"] for r in RECORDS], pa.int32()),
            "placed_at": pa.array(
                [datetime.fromisoformat(r["placed_at"]) for r in RECORDS],
                pa.timestamp("ms", tz="UTC"),
            ),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


VARIANTS = {
    # name: (catalog keys of the object, file name, content)
    "csv": (orders("csv"), "orders.csv", as_csv()),
    "csv.gz": (orders("csv"), "orders.csv.gz", gz(as_csv())),
    "csv, semicolons, no header": (
        orders("csv", '    csv: {delimiter: ";", header: false}\n'),
        "orders.csv",
        as_csv(";", header=False),
    ),
    "jsonl": (orders("jsonl"), "orders.jsonl", as_jsonl()),
    "jsonl.gz": (orders("jsonl"), "orders.jsonl.gz", gz(as_jsonl())),
    "json array": (orders("json_array"), "orders.json", json.dumps(RECORDS).encode()),
    "json array under a key": (
        orders("json_array", "    records_path: data.results\n"),
        "orders.json",
        json.dumps({"data": {"results": RECORDS, "next": None}, "count": 3}).encode(),
    ),
    "json array under a key, gzipped": (
        orders("json_array", "    records_path: data.results\n"),
        "orders.json.gz",
        gz(json.dumps({"data": {"results": RECORDS}}).encode()),
    ),
    "parquet": (orders("parquet"), "orders.parquet", as_parquet()),
    "parquet.gz": (orders("parquet"), "orders.parquet.gz", gz(as_parquet())),
}
EXPECTED = [
    {
        **r,
        "amount": float(r["amount"]),
        "placed_at": datetime.fromisoformat(r["placed_at"]).astimezone(UTC),
    }
    for r in RECORDS
]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_format_of_one_object_ingests_to_the_same_rows(variant, tmp_path):
    entry, name, data = VARIANTS[variant]
    (contract,) = catalog(tmp_path, entry)
    rows, quarantined = ingest(tmp_path, contract, {name: data})
    assert quarantined == []
    assert declared(rows) == EXPECTED
    assert sorted(r["_source_file"] for r in rows) == [f"shop/orders/{DAY}/{name}"] * 3
    payloads = [json.loads(r["_payload"]) for r in rows]  # the record as it arrived, as JSON
    assert sorted(p["order_id"] for p in payloads) == ["o-001", "o-002", "o-003"]


WRONG = {
    # declared format: (file name, content, words in the detail)
    "json_array": ("orders.json", as_csv(), "CSV"),
    "jsonl": ("orders.jsonl", as_parquet(), "parquet"),
    "csv": ("orders.csv", json.dumps(RECORDS).encode(), "JSON"),
    "parquet": ("orders.parquet", as_jsonl(), "expected a parquet file"),
}


@pytest.mark.parametrize("fmt", list(WRONG))
def test_a_file_of_another_format_is_rejected_whole_naming_the_declared_one(fmt, tmp_path):
    name, data, words = WRONG[fmt]
    (contract,) = catalog(tmp_path, orders(fmt))
    rows, quarantined = ingest(tmp_path, contract, {name: data})
    assert rows == []
    assert [(q["line"], q["rule"]) for q in quarantined] == [(0, f"format({fmt})")]
    assert words in quarantined[0]["detail"]


def test_a_missing_records_key_is_a_format_reject(tmp_path):
    (contract,) = catalog(tmp_path, orders("json_array", "    records_path: results\n"))
    rows, quarantined = ingest(tmp_path, contract, {"o.json": json.dumps(RECORDS).encode()})
    assert rows == []
    assert [(q["line"], q["rule"]) for q in quarantined] == [(0, "format(json_array)")]
    assert "'results'" in quarantined[0]["detail"]


CHARGES = """  - system: billing
    object: charges
    description: Card charges as a payment provider exports them (nested, epoch times, cents).
    format: jsonl
    id: id
    timestamps: {created: created}
    columns:
      - {name: id, required: true}
      - {name: customer_id, source: customer.id, required: true}
      - {name: price_id, source: "items.data[0].price.id"}
      - {name: amount, type: float, scale: 0.01, min: 0, required: true}
      - {name: seats, type: int, source: quantity, scale: 1}
      - {name: created, type: timestamp, unit: unix_seconds, required: true}
      - {name: paid_at, type: timestamp, unit: unix_millis}
"""


def charge(i: int, **changes) -> dict:
    record = {
        "id": f"ch_{i}",
        "customer": {"id": f"cus_{i}", "email": "x@example.com"},
        "items": {"data": [{"price": {"id": f"price_{i}"}}, {"price": {"id": "other"}}]},
        "amount": 1999,
        "quantity": 4,
        "created": 1767600000,  # 2026-01-05T08:00:00Z
        "paid_at": 1767600000123,
    }
    return {**record, **changes}


def test_nested_paths_epoch_timestamps_and_cents_are_typed(tmp_path):
    (contract,) = catalog(tmp_path, CHARGES)
    lines = [
        charge(1),
        charge(2, amount=-500),  # -5.00: the range rule holds the stored value
        charge(3, created="yesterday"),  # not a number of seconds
        charge(4, created=99999999999999),  # past year 9999: no date a table holds
        charge(5, paid_at=None, items={"data": []}),
    ]
    data = "".join(json.dumps(r) + "\n" for r in lines).encode()
    rows, quarantined = ingest(tmp_path, contract, {"charges.jsonl": data})
    by_id = {r["id"]: r for r in rows}
    assert sorted(by_id) == ["ch_1", "ch_5"]
    first = by_id["ch_1"]
    assert first["customer_id"] == "cus_1" and first["price_id"] == "price_1"
    assert first["amount"] == 19.99 and first["seats"] == 4
    assert first["created"] == datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert first["paid_at"] == datetime(2026, 1, 5, 8, 0, 0, 123000, tzinfo=UTC)
    assert by_id["ch_5"]["price_id"] is None and by_id["ch_5"]["paid_at"] is None
    assert {(q["line"], q["rule"]) for q in quarantined} == {
        (2, "range(amount)"),
        (3, "type(created)"),
        (4, "type(created)"),
    }
    # The nested object a path reads inside is no drift column (it is in _payload).
    assert "customer" not in rows[0] and "items" not in rows[0]


def test_an_undeclared_column_stays_text(tmp_path):
    """No guessing: a postcode keeps its leading zeros, and a later non-numeric value is no
    type change."""
    (contract,) = catalog(tmp_path, orders("csv"))
    header = "order_id,customer,amount,qty,placed_at,postcode\n"
    first = header + "".join(
        f"o-{i},C{i},1.0,1,2026-01-04T08:00:00Z,00{i}23\n" for i in range(1, 4)
    )
    ingest(tmp_path, contract, {"a.csv": first.encode()})
    _batch(tmp_path, contract, publish=True)
    later = header + "o-9,C9,1.0,1,2026-01-05T08:00:00Z,AB12\n"
    (tmp_path / "landing/shop/orders" / DAY / "b.csv").write_text(later)
    rows, quarantined = _batch(tmp_path, contract, publish=True)
    assert quarantined == [] and [r["postcode"] for r in rows] == ["AB12"]
    table = LakeResource(root=str(tmp_path / "lake")).read("raw", "shop_orders")
    assert table.schema.field("postcode").type == pa.string()
    assert sorted(table["postcode"].to_pylist()) == ["00123", "00223", "00323", "AB12"]


def test_a_landing_folder_no_object_reads_is_reported(tmp_path):
    contracts = catalog(tmp_path, orders("csv"), CHARGES)
    root = tmp_path / "landing"
    for folder in (
        f"shop/orders/{DAY}",
        f"billing/charges/{DAY}",
        f"billing/refunds/{DAY}",  # an export the catalog does not declare
        "marketing/leads",
        "_truth",  # hidden and partial names stay ignored by rule
        ".staging",
    ):
        (root / folder).mkdir(parents=True)
    (root / "shop" / "README.txt").write_text("a file beside the object folders")
    job = define_asset_job(
        "observe", selection=AssetSelection.groups("landing", include_sources=True)
    )
    defs = Definitions(
        assets=landing_assets.build_assets(contracts),
        jobs=[job],
        resources={"landing": LandingResource(root=str(root))},
    )
    job_def = defs.resolve_job_def("observe")
    result = job_def.execute_in_process(instance=DagsterInstance.ephemeral())
    assert result.success  # a warning, not a failed run
    unread = ["billing/refunds/", "marketing/", "shop/README.txt"]
    observed = result.get_asset_observation_events()
    assert len(observed) == 2
    for event in observed:
        meta = event.asset_observation_data.asset_observation.metadata
        assert meta["unread_folders"].value == unread
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 2
    for check in checks:
        assert check.check_name == "unread_folders" and not check.passed
        assert check.severity.value == "WARN"
        assert all(u in check.description for u in unread)


def test_a_landing_root_read_whole_passes_the_check(tmp_path):
    (contract,) = catalog(tmp_path, orders("csv"))
    root = tmp_path / "landing"
    (root / "shop/orders" / DAY).mkdir(parents=True)
    (root / "_truth").mkdir()
    assert LandingResource(root=str(root)).unread([contract.landing_dir]) == []


PATIENTS = """  - system: clinic
    object: patients
    description: Patients with their date of birth.
    format: csv
    id: id
    columns:
      - {name: id, required: true}
      - {name: born, type: date, earliest: 1900-01-01}
      - {name: seen, type: date}
"""


def test_a_date_column_declares_its_earliest_plausible_value(tmp_path):
    """A date of birth in 1936 is history, not a broken value: a column declaring `earliest`
    keeps it, while an undeclared date keeps the default floor (1970) and a value before the
    declared one is quarantined naming the column and the floor."""
    (contract,) = catalog(tmp_path, PATIENTS)
    assert {c.name: c.earliest for c in contract.columns}["born"].isoformat() == "1900-01-01"
    data = (
        "id,born,seen\n"
        "p1,1936-05-04,2026-01-02\np2,1899-12-31,2026-01-02\np3,1950-01-01,1969-12-31\n"
    )
    rows, quarantined = ingest(tmp_path, contract, {"p.csv": data.encode()})
    assert [(r["id"], str(r["born"])) for r in rows] == [("p1", "1936-05-04")]
    assert {(q["line"], q["rule"]) for q in quarantined} == {
        (3, "plausible_date(born)"),
        (4, "plausible_date(seen)"),
    }
    assert any("is before 1900-01-01" in q["detail"] for q in quarantined)


@pytest.mark.parametrize(
    ("declared", "error"),
    [
        ("type: int, earliest: 1900-01-01", "only for dates and timestamps"),
        ("type: date, earliest: soon", "is not a date"),
    ],
)
def test_earliest_is_a_date_on_a_date_column(tmp_path, declared, error):
    from checks.sources import CatalogError

    entry = PATIENTS.replace("type: date, earliest: 1900-01-01", declared)
    with pytest.raises(CatalogError, match=f"field columns.born.earliest: .*{error}"):
        catalog(tmp_path, entry)
