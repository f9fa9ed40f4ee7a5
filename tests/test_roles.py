"""Nothing above the raw layer names a source object: identity, the entity tables and the events
follow the catalog's roles (assets/roles.py), so a company whose systems, objects and columns
are called otherwise builds the same graph with no code change.

The proof: the sample company's raw tables, copied under other system, object, table and column
names, with a catalog renamed to match (same roles, same mappings over the new names), give the
same identity map, entity tables and events as the default catalog over the original tables.
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import yaml

from assets.entities import tables as build
from assets.entities.identity import resolve_identities
from assets.entities.rules import load_rules
from assets.events.build import build_days
from assets.events.mapping import load_mapping
from checks import entities as C
from checks.sources import load_catalog
from conftest import Lakehouse, load_definitions
from resources.lake import LakeResource
from resources.pii import PiiResource
from resources.settings import SOURCE_CATALOG, STACKS_ROOT, stack_dir

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = {
    "crm": "salesdesk",
    "billing": "payhub",
    "product": "app",
    "support": "helpdesk",
    "consent": "prefs",
    "risk": "intel",
}
OBJECTS = {
    "accounts": "companies",
    "contacts": "people",
    "opportunities": "deals",
    "customers": "clients",
    "subscriptions": "plans",
    "invoices": "bills",
    "workspaces": "spaces",
    "users": "logins",
    "usage_events": "activity",
    "organizations": "orgs",
    "tickets": "cases",
    "records": "choices",
    "signals": "scores",
}
ENTITY_TABLES = (C.ACCOUNT, C.PERSON, C.WORKSPACE, C.SUBSCRIPTION, C.RELATIONSHIP)
ENTITY_TABLES += (C.ATTRIBUTE_HISTORY,)
SALT = "roles-test-salt"


def _column(name: str) -> str:
    return f"x_{name}"


def _rename_expr(expr: str, columns: set[str]) -> str:
    """An SQL expression over the renamed columns (quoted text left alone)."""
    parts = re.split(r"('(?:[^']|'')*')", expr)
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(
            r"\b[a-z_][a-z0-9_]*\b", lambda m: _column(m[0]) if m[0] in columns else m[0], parts[i]
        )
    return "".join(parts)


def _renamed_catalog(path: Path) -> tuple[dict, dict[str, dict[str, str]]]:
    """The default catalog with every system, object, table and column renamed (a column
    listed as an event property or a score keeps its name: it is the property's key);
    returns the document and, per new table, old column -> new column."""
    doc = yaml.safe_load((stack_dir() / "catalog.yaml").read_text())
    renames: dict[str, dict[str, str]] = {}
    for o in doc["objects"]:
        lists = set()
        for value in ((o.get("role") or {}).get("fields") or {}).values():
            lists |= set(value) if isinstance(value, list) else set()
        columns = {c["name"] for c in o["columns"]} - lists
        old_table = o.get("table", f"{o['system']}_{o['object']}")
        if "connector" in o:  # the vendor still calls the object by its own name
            o["connector"] = {"object": o["object"], **o["connector"]}
        o["system"], o["object"] = SYSTEMS[o["system"]], OBJECTS[o["object"]]
        o["table"] = f"{o['system']}_{o['object']}"
        o["landing"] = f"{o['system']}/{o['object']}"
        renames[o["table"]] = {c: _column(c) for c in columns}
        renames[o["table"]]["_old_table"] = old_table
        for c in o["columns"]:
            if c["name"] in columns:
                c.setdefault("source", c["name"])
                c["name"] = _column(c["name"])
        for key in ("id", "subject_key"):
            if o.get(key):
                o[key] = _column(o[key])
        o["timestamps"] = {k: _column(v) for k, v in (o.get("timestamps") or {}).items()}
        if o.get("partition_by"):
            o["partition_by"] = [c if c.startswith("_") else _column(c) for c in o["partition_by"]]
        role = o.get("role")
        if not role:
            continue
        role["fields"] = {
            k: v if isinstance(v, list) else _rename_expr(v, columns)
            for k, v in (role.get("fields") or {}).items()
        }
        for refs in (role.get("refs") or {}).values():
            for r in refs:
                r["expr"] = _rename_expr(r["expr"], columns)
                system, obj = r["to"].split("/")
                r["to"] = f"{SYSTEMS[system]}/{OBJECTS[obj]}"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return doc, renames


def _build(lake: LakeResource) -> dict[str, pa.Table]:
    """Identity, the entity tables and every event day, by the layers' own functions over the
    active catalog (no Dagster: the renamed raw tables are no assets of this code location)."""
    pii = PiiResource(salt=SALT)
    out: dict[str, pa.Table] = {}
    rules = load_rules()
    with duckdb.connect() as con:
        pii.install(con, lake.root)
        result = resolve_identities(
            con, lake, rules, [], C.IDENTITY_LINKS.schema.empty_table(), datetime(2027, 1, 1)
        )
    lake.publish("entities", "identity_links", result.links, mode="overwrite")
    out["identity_links"], out["unmapped_ids"] = result.links, result.unmapped
    for contract in ENTITY_TABLES:
        with duckdb.connect() as con:
            pii.install(con, lake.root)
            build.prepare(con, lake, rules, result.links)
            builder = getattr(build, contract.table)
            out[contract.table] = builder(con, rules, contract)
    with duckdb.connect() as con:
        pii.install(con, lake.root)
        built = build_days(con, lake, load_mapping(), "2020-01-01", "2030-12-31", datetime.now(UTC))
    out["events"], out["unattributed_events"] = built.events, built.unattributed
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory) -> tuple[dict[str, pa.Table], dict[str, pa.Table], dict[str, str]]:
    """The layers above raw, built over the default catalog and over the renamed one."""
    from sample_company.generate import generate

    root = tmp_path_factory.mktemp("roles")
    generate(root / "landing", accounts=30, days=60, seed=17)
    house = Lakehouse(root / "lake", root / "landing", load_definitions())
    raw_keys = [f"raw/{c.table}" for c in load_catalog().raw_contracts()]
    assert house.materialize(*raw_keys).success
    default = _build(house.lake)

    _, renames = _renamed_catalog(root / "catalog.yaml")
    other = LakeResource(root=str(root / "renamed"))
    old_tables = {t: dict(c) for t, c in renames.items()}
    for table, cols in renames.items():
        old = cols.pop("_old_table")
        data = house.lake.read("raw", old)
        data = data.rename_columns([cols.get(n, n) for n in data.column_names])
        other.publish("raw", table, data, mode="overwrite")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(SOURCE_CATALOG, str(root / "catalog.yaml"))
        renamed = _build(other)
    names = {f"{SYSTEMS[s]}/{OBJECTS[o]}": f"{s}/{o}" for s in SYSTEMS for o in OBJECTS}
    names["helpdesk/case_requesters"] = "support/ticket_requesters"
    names |= {v: k for k, v in SYSTEMS.items()} | {v: k for k, v in OBJECTS.items()}
    names["case_requesters"] = "ticket_requesters"
    names |= {f"raw/{t}": f"raw/{c['_old_table']}" for t, c in old_tables.items()}
    return default, renamed, names


def _canonical(tables: dict[str, pa.Table], back: dict[str, str]) -> dict[str, str]:
    """Canonical id -> the smallest record key of its entity, in default names: ids are
    minted from record keys, so the same entity has another id under other names."""
    links = tables["identity_links"].to_pylist()
    rep: dict[str, str] = {}
    for row in links:
        if row["canonical_id"]:
            key = _translate(row["record_key"], back, {})
            rep[row["canonical_id"]] = min(rep.get(row["canonical_id"], key), key)
    return rep


ID = re.compile(r"\b(?:acc|per)_[0-9a-z]+\b")


def _translate(value, back: dict[str, str], ids: dict[str, str]):
    """A cell in default names: sources, systems and objects renamed back, canonical ids as
    their entity's smallest record key."""
    if isinstance(value, str):
        if value in back:
            return back[value]
        for new in sorted(back, key=len, reverse=True):
            if "/" in new:
                value = value.replace(new, back[new])
        return ID.sub(lambda m: ids.get(m[0], m[0]), value)
    return value


def _cell(value, back: dict[str, str], ids: dict[str, str]):
    """A cell in default names; JSON text read as its content (keys and values translated)."""
    if isinstance(value, str) and value[:1] in "{[":
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if isinstance(value, dict):
        return {_translate(k, back, ids): _cell(v, back, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_cell(v, back, ids) for v in value]
    return _translate(value, back, ids)


def _rows(table: pa.Table, back: dict[str, str], ids: dict[str, str]) -> list[str]:
    drop = {"linked_at", "detected_at", "_built_at", "_ingested_at"}
    rows = (
        {k: _cell(v, back, ids) for k, v in row.items() if k not in drop}
        for row in table.to_pylist()
    )
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)


@pytest.mark.parametrize(
    "table",
    [
        "identity_links",
        "unmapped_ids",
        *(c.table for c in ENTITY_TABLES),
        "events",
        "unattributed_events",
    ],
)
def test_renamed_company_builds_the_same_layers(both, table):
    """Every row of the table is the same, name for name, under the renamed catalog."""
    default, renamed, back = both
    ids_default = _canonical(default, {})
    ids_renamed = _canonical(renamed, back)
    assert default[table].num_rows > 0 or table in ("unmapped_ids", "unattributed_events")
    expected = _rows(default[table], {}, ids_default)
    got = _rows(renamed[table], back, ids_renamed)
    assert len(got) == len(expected)
    assert got == expected


def test_renamed_company_emits_every_event_kind(both):
    """The renamed catalog's events cover every event name the default one emits."""
    default, renamed, _ = both
    names = set(default["events"]["event_name"].to_pylist())
    assert {"workspace_created", "user_signed_up", "invoice_paid", "ticket_opened"} <= names
    assert set(renamed["events"]["event_name"].to_pylist()) == names


# -- nothing above raw names a source object -----------------------------------------------------

CONFIG = [
    ROOT / "assets" / "entities" / "identity.yaml",
    ROOT / "assets" / "events" / "events.yaml",
    ROOT / "assets" / "c360" / "c360.yaml",
]


def _object_names() -> set[str]:
    """How the default catalog's objects are named: `<system>/<object>`, the raw table and the
    landing folder, and the ticket requesters' pseudo-object."""
    from assets.roles import requester_source

    names = set()
    for o in load_catalog(STACKS_ROOT / "default" / "catalog.yaml").objects:
        names |= {o.source, o.table, o.landing, f"raw/{o.table}"}
        if o.role and o.role.role == "ticket":
            names.add(requester_source(o))
    return names


def test_no_module_above_raw_names_a_source_object():
    """No module of assets/ and none of the layers' rule files (identity, events, 360) names
    an object of the default catalog: each reads the catalog's roles."""
    names = _object_names()
    pattern = re.compile(r"(?<![\w/])(" + "|".join(map(re.escape, names)) + r")(?![\w/])")
    found = []
    for path in [*sorted((ROOT / "assets").rglob("*.py")), *CONFIG]:
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if m := pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {m[0]}")
    assert found == []


def test_a_stack_brings_its_own_identity_rules(tmp_path, monkeypatch):
    """A stack folder holding identity.yaml is matched by its own thresholds; without one, by
    the project's."""
    from resources.settings import STACK

    stack = tmp_path / "acme"
    stack.mkdir()
    for name in ("catalog.yaml", "vocabulary.yaml"):
        (stack / name).write_text((STACKS_ROOT / "default" / name).read_text())
    monkeypatch.setenv(STACK, str(stack))
    default = load_rules()
    rules = yaml.safe_load((ROOT / "assets" / "entities" / "identity.yaml").read_text())
    rules["accounts"]["scoring"]["merge"] = 0.9991
    (stack / "identity.yaml").write_text(yaml.safe_dump(rules))
    own = load_rules()
    assert default.accounts.scoring.merge == 0.995
    assert own.accounts.scoring.merge == 0.9991
    assert [s.source for s in own.accounts.sources] == [s.source for s in default.accounts.sources]


@pytest.mark.parametrize(
    "file, key, load",
    [
        ("identity.yaml", ("accounts", "sources"), "assets.entities.rules:load_rules"),
        ("events.yaml", ("sources",), "assets.events.mapping:load_mapping"),
        ("c360.yaml", ("accounts", "name"), "assets.c360.profiles:load_c360"),
    ],
)
def test_rule_files_that_name_source_objects_are_refused(tmp_path, file, key, load):
    """A rules file written the old way (per-object source lists) is an error naming the file
    and the field, not silently ignored: its sources now come from the catalog's roles."""
    import importlib

    src = next(p for p in CONFIG if p.name == file)
    doc = yaml.safe_load(src.read_text())
    node = doc
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = [{"source": "crm/accounts", "table": "raw/crm_accounts", "expr": "name"}]
    path = tmp_path / file
    path.write_text(yaml.safe_dump(doc))
    module, fn = load.split(":")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + key[-1]):
        getattr(importlib.import_module(module), fn)(path)
