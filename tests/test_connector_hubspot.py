"""The HubSpot connector against its stand-in: what a RevOps engineer wiring HubSpot relies on.

A full pull lands what raw reads into the same rows the vendor's own export files give; an
incremental pull fetches only what changed and lands no record twice; a pull that dies mid-page
and is run again lands every record exactly once; rate limits and a 500 mid-page are survived
(Retry-After honoured); a wrong token fails naming the setting; the token is written nowhere.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import pytest
from dagster import AssetKey

from assets import connectors
from checks.sources import load_catalog
from sample_company.generate import generate
from sample_company.standins.hubspot import HubSpotStandIn

ROOT = Path(__file__).resolve().parent.parent
VENDOR_CATALOG = ROOT / "stacks" / "vendor" / "catalog.yaml"
TOKEN = "pat-na1-7c1e5d2a-0b9f-4c1e-9d3a-connector-test"
OBJECTS = ("companies", "contacts", "deals")
FAST = {"max_attempts": 4, "backoff_factor": 0.05, "max_retry_delay": 5}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hubspot_world") / "landing"
    generate(root, accounts=30, days=40, stack="vendor")
    return root


@pytest.fixture(scope="module")
def objects():
    return connectors.connected(load_catalog(VENDOR_CATALOG))["hubspot"]


@pytest.fixture
def standin(world):
    with HubSpotStandIn(world, token=TOKEN) as s:
        yield s


def pull(s: HubSpotStandIn, objects, tmp: Path, token: str = TOKEN, **options):
    return connectors.pull(
        "hubspot",
        objects,
        lake_root=tmp / "lake",
        landing_root=tmp / "landing",
        base_url=s.url,
        token=token,
        **{**FAST, **options},
    )


def landed(tmp: Path, obj: str) -> list[dict]:
    """Every record of every landed file of an object, in file order."""
    out = []
    for f in sorted((tmp / "landing" / "hubspot" / obj).glob("*/*.json")):
        out += json.loads(f.read_text())["results"]
    return out


def versions(recs: list[dict]) -> Counter:
    return Counter((r["id"], r["updatedAt"]) for r in recs)


def at(s: HubSpotStandIn, when: str) -> None:
    s.advance(dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC))


# ------------------------------------------------------------------------------ full pull


def test_full_pull_lands_the_records_raw_reads_as_the_export_files(world, tmp_path, monkeypatch):
    """Through Dagster: the connector assets (token set) land files; raw ingests them into the
    same rows, per record, as the generator's own export files give at the same instant."""
    from conftest import Lakehouse, load_definitions

    with HubSpotStandIn(world, token=TOKEN) as s:
        monkeypatch.setenv("LAKEHOUSE_STACK", "vendor")
        monkeypatch.setenv("LAKEHOUSE_HUBSPOT_TOKEN", TOKEN)
        monkeypatch.setenv("LAKEHOUSE_HUBSPOT_BASE_URL", s.url)
        defs = load_definitions()
        keys = [f"landing/hubspot_{o}" for o in OBJECTS]
        spec = {str(a.key.to_user_string()): a for a in defs.resolve_all_asset_specs()}
        for k in keys:
            assert spec[k].kinds == {"hubspot", "dlt"}
        conn = connectors.ConnectorResource(vendor="hubspot", token=TOKEN, base_url=s.url, **FAST)
        pulled = Lakehouse(tmp_path / "lake", tmp_path / "landing", defs)
        result = _materialize(pulled, conn, keys + [f"raw/hubspot_{o}" for o in OBJECTS])
        assert result.success
        meta = {
            e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        assert meta["landing/hubspot_contacts"]["mode"].value == "full"
        assert meta["landing/hubspot_contacts"]["records"].value > 10
        assert TOKEN not in json.dumps({k: str(v) for k, v in meta.items()})
        files = Lakehouse(tmp_path / "lake_files", world, defs)
        assert _materialize(files, conn, [f"raw/hubspot_{o}" for o in OBJECTS]).success
    for obj in OBJECTS:
        a = _latest(pulled.lake.read("raw", f"hubspot_{obj}").to_pylist())
        b = _latest(files.lake.read("raw", f"hubspot_{obj}").to_pylist())
        assert a == b, obj
        assert len(a) > 10


def _materialize(h, conn, selection: list[str]):
    from dagster import AssetKey, DagsterInstance, materialize

    return materialize(
        list(h.defs.assets),
        selection=[AssetKey(k.split("/")) for k in selection],
        resources={**h.resources, "connector_hubspot": conn},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )


def _latest(rows: list[dict]) -> dict[str, dict]:
    """Each record's latest version, its typed columns only (no lineage, no payload)."""
    out: dict[str, dict] = {}
    for r in rows:
        typed = {k: v for k, v in r.items() if not k.startswith("_")}
        if r["id"] not in out or str(typed["updated_at"]) > str(out[r["id"]]["updated_at"]):
            out[r["id"]] = typed
    return out


def test_a_wrong_token_fails_naming_the_setting_and_lands_nothing(standin, objects, tmp_path):
    with pytest.raises(Exception, match="LAKEHOUSE_HUBSPOT_TOKEN") as err:
        pull(standin, objects, tmp_path, token="pat-wrong")
    assert "pat-wrong" not in str(err.value)
    assert {r.status for r in standin.log} == {401}
    assert not list((tmp_path / "landing").rglob("*.json"))


# ------------------------------------------------------------------------- incremental


def test_incremental_pull_fetches_only_what_changed_and_lands_no_record_twice(
    standin, objects, tmp_path
):
    at(standin, "2026-10-15T00:00:00")
    first = pull(standin, objects, tmp_path, list_limit=10)
    before = {o: versions(landed(tmp_path, o)) for o in OBJECTS}
    cursor = connectors.cursors("hubspot", tmp_path / "lake")
    assert all(cursor[o] for o in OBJECTS)
    listed = len(standin.requests("/crm/v3/objects/"))
    at(standin, "2026-10-22T00:00:00")
    second = pull(standin, objects, tmp_path, search_limit=5)
    new = standin.log[listed:]
    assert {(r.method, r.path.rsplit("/", 1)[-1]) for r in new if "/objects/" in r.path} == {
        ("POST", "search")
    }, "an incremental pull searches; it lists nothing"
    for obj in OBJECTS:
        now = versions(landed(tmp_path, obj))
        assert max(now.values()) == 1, f"{obj}: a record version landed twice"
        changed = {
            (r["id"], r["updatedAt"]) for r in standin.current(obj) if r["updatedAt"] > cursor[obj]
        }
        assert set(now) - set(before[obj]) == changed, obj
        assert second.records.get(obj, 0) == len(changed)
        # and the API's state is complete: every record as it stands now has landed
        assert {(r["id"], r["updatedAt"]) for r in standin.current(obj)} <= set(now)
        # contacts and deals carry their company as the catalog reads it
        if obj != "companies":
            assert any(r.get("associations") for r in landed(tmp_path, obj))
    assert sum(first.records.values()) > sum(second.records.values()) > 0
    # nothing changed since: a third pull lands nothing
    third = pull(standin, objects, tmp_path)
    assert sum(third.records.values()) == 0


def test_a_search_window_past_the_result_cap_is_searched_again_from_the_last_date(
    standin, objects, tmp_path
):
    """HubSpot's search pages through at most 10,000 results (here 12): the window restarts
    at the last modified date seen, and no record is missed or landed twice."""
    start = "2026-09-01T00:00:00Z"
    with_start = [o for o in objects if o.object == "contacts"]
    from dataclasses import replace

    with_start = [replace(o, connector=replace(o.connector, start=start)) for o in with_start]
    standin.search_cap = 12
    pull(standin, with_start, tmp_path, search_limit=4, search_cap=12)
    got = versions(landed(tmp_path, "contacts"))
    assert max(got.values()) == 1
    since = {
        (r["id"], r["updatedAt"]) for r in standin.current("contacts") if r["updatedAt"] >= start
    }
    assert set(got) == since, "every record modified since `start`, none before"
    assert len(got) > 12
    assert all(r.status == 200 for r in standin.log)


# ----------------------------------------------------------------------- faults


def test_a_pull_killed_mid_page_then_run_again_lands_every_record_once(standin, objects, tmp_path):
    standin.faults.fail[r"objects/contacts\?.*after="] = 10**6  # page 2 on: 500 forever
    with pytest.raises(Exception, match="500"):
        pull(standin, objects, tmp_path, list_limit=10, max_attempts=2)
    assert connectors.cursors("hubspot", tmp_path / "lake")["contacts"] is None
    standin.faults.fail.clear()
    pull(standin, objects, tmp_path, list_limit=10)
    for obj in OBJECTS:
        got = versions(landed(tmp_path, obj))
        assert max(got.values()) == 1, obj
        assert set(got) == {(r["id"], r["updatedAt"]) for r in standin.current(obj)}, obj


def test_rate_limits_and_a_500_mid_page_are_survived_honouring_retry_after(
    standin, objects, tmp_path
):
    standin.faults.rate_limit_every = 4
    standin.faults.retry_after = 1
    standin.faults.fail[r"objects/deals\?.*after="] = 1  # one 500 in the middle of paging
    pull(standin, objects, tmp_path, list_limit=10, max_attempts=6)
    log = standin.log
    limited = [i for i, r in enumerate(log) if r.status == 429]
    assert limited and any(r.status == 500 for r in log)
    for i in limited:  # the retry came no sooner than Retry-After said
        assert i + 1 < len(log)
        assert (log[i + 1].at - log[i].at).total_seconds() >= 1.0 - 0.05
    for obj in OBJECTS:
        got = versions(landed(tmp_path, obj))
        assert max(got.values()) == 1, obj
        assert set(got) == {(r["id"], r["updatedAt"]) for r in standin.current(obj)}, obj


def test_the_token_is_written_nowhere(standin, objects, tmp_path, caplog, capfd):
    pull(standin, objects, tmp_path, list_limit=10)
    with pytest.raises(Exception):  # noqa: B017 (what matters: the message and the files)
        pull(standin, objects, tmp_path, token=TOKEN + "x")
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert TOKEN.encode() not in f.read_bytes(), f
    out, err = capfd.readouterr()
    assert TOKEN not in out + err + caplog.text


# ----------------------------------------------------------------------- the catalog key


@pytest.mark.parametrize(
    ("connector", "field", "said"),
    [
        ("{vendor: hubspott}", "connector.vendor", "no known vendor"),
        ("{vendor: hubspot, object: tickets}", "connector.object", "no object 'tickets'"),
        ("{vendor: hubspot, start: yesterday}", "connector.start", "no ISO-8601"),
        ("{vendor: hubspot, since: x}", "connector.since", "unknown key"),
    ],
)
def test_a_wrong_connector_is_named_by_file_object_and_field(tmp_path, connector, field, said):
    from checks.sources import CatalogError

    text = VENDOR_CATALOG.read_text().replace(
        "    connector: {vendor: hubspot}\n", f"    connector: {connector}\n", 1
    )
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError, match=said) as err:
        load_catalog(path)
    assert f"{path}: object hubspot/companies: field {field}:" in str(err.value)


def test_without_the_token_the_zones_stay_observed_from_files(monkeypatch):
    """The embedded default needs no credentials: no token, no connector asset."""
    from assets import landing

    monkeypatch.setenv("LAKEHOUSE_STACK", "vendor")
    monkeypatch.delenv("LAKEHOUSE_HUBSPOT_TOKEN", raising=False)
    built = landing.build_assets()
    assert [a.node_def.name for a in built] == ["landing_zones"]
    assert AssetKey(["landing", "hubspot_contacts"]) in built[0].keys
    monkeypatch.setenv("LAKEHOUSE_HUBSPOT_TOKEN", TOKEN)
    built = landing.build_assets()
    pulled = [a for a in built if a.node_def.name == "hubspot_connector"]
    assert pulled and AssetKey(["landing", "hubspot_contacts"]) in pulled[0].keys
    assert AssetKey(["landing", "hubspot_contacts"]) not in built[0].keys
    assert connectors.resources(load_catalog())["connector_hubspot"].vendor == "hubspot"
