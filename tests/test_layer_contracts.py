"""Every table the events, c360 and features layers write has its one contract in checks/, and
the lake holds exactly that contract's columns and types: no table without a contract, no second
schema beside it."""

from __future__ import annotations

import pyarrow as pa

from assets.c360.profiles import load_c360
from assets.events.mapping import load_mapping
from checks.catalog import declared

LAYERS = ("events", "c360", "features")


def test_every_table_of_the_layers_is_its_contracts_schema(full_lake):
    contracts = declared(
        {
            "events_contract": (load_mapping().event_names,),
            "people_contract": (load_c360().consent_scopes,),
        }
    )
    lake = full_lake.lake
    found = sorted(
        f"{layer}/{d.name}"
        for layer in LAYERS
        for d in (full_lake.lake_root / layer).iterdir()
        if (d / "_delta_log").is_dir()
    )
    assert {"events/events", "events/unattributed_events", "c360/customer_360_people"} <= set(found)
    for name in found:
        assert name in contracts, f"{name} is written without a contract in checks/"
        layer, table = name.split("/")
        held = pa.schema(lake.table(layer, table).schema().to_arrow())
        expected = contracts[name].schema
        assert [(f.name, f.type) for f in held] == [(f.name, f.type) for f in expected], name
