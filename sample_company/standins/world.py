"""The sample company's systems served as their APIs, for `make demo STANDINS=1`.

The generator writes every object's files into the landing zone. For each object the active
catalog pulls through a connector (`connector:`), those files move to `<lake>/standins/world/`
(same layout), a stand-in of its vendor serves them on 127.0.0.1, and the connector settings
(`LAKEHOUSE_<VENDOR>_TOKEN`, `..._BASE_URL`) point at it. The connectors first replay the
company's history (`replay`: a pull on every day an export was taken), then the demo builds the
whole graph, its ingest pulling once more: the code path a real account uses, with only the
base URL changed.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from checks.sources import Catalog

# vendor -> (module, class, extra constructor arguments: the credentials it checks)
STANDINS: dict[str, tuple[str, str, dict[str, str]]] = {
    "hubspot": ("sample_company.standins.hubspot", "HubSpotStandIn", {}),
    "salesforce": ("sample_company.standins.salesforce", "SalesforceStandIn", {}),
    "stripe": ("sample_company.standins.stripe", "StripeStandIn", {}),
    "zendesk": ("sample_company.standins.zendesk", "ZendeskStandIn", {"email": "demo@example.com"}),
}
TOKEN = "standin-demo-token"  # a stand-in's token: nothing real is reachable with it


def move_world(landing: Path, world: Path, catalog: Catalog) -> dict[str, list[str]]:
    """Move the connected objects' generated files out of the landing zone into `world`
    (replacing what an earlier demo moved there); returns vendor -> objects moved."""
    from assets.connectors import connected

    moved: dict[str, list[str]] = {}
    for vendor, objects in connected(catalog).items():
        for o in objects:
            src, dst = landing / o.landing, world / o.landing
            if not src.is_dir():
                continue
            if dst.exists():
                shutil.rmtree(dst)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dst))
            moved.setdefault(vendor, []).append(o.source)
    return moved


# A stand-in's own pace: no client-side throttle (Zendesk's 10 a minute is the real API's).
REPLAY_OPTIONS = {"zendesk": {"requests_per_minute": None, "email": "demo@example.com"}}


def replay(running: dict[str, Any], world: Path, landing: Path, lake: Path, catalog) -> int:
    """Pull each vendor on every day the generator's exports were taken, with the stand-ins'
    clocks at that day's end, the files landing under that day: the history a company that ran
    the connectors since the first export would have (a single pull sees only each record's
    latest version, and the models need the states records went through). Returns the pulls."""
    import datetime as dt

    from assets.connectors import connected, pull

    objects = connected(catalog)
    days = sorted(
        {d.name for objs in objects.values() for o in objs for d in (world / o.landing).glob("*")}
    )
    pulls = 0
    for day in days:
        end = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
        for vendor, standin in running.items():
            if hasattr(standin, "advance"):
                standin.advance(end)
            else:
                standin.clock = end
            pull(
                vendor,
                objects[vendor],
                lake_root=lake,
                landing_root=landing,
                base_url=standin.url,
                token=TOKEN,
                day=day,
                **REPLAY_OPTIONS.get(vendor, {}),
                **({"now": end.timestamp} if vendor == "stripe" else {}),  # its 30-day horizon
            )
            pulls += 1
    return pulls


@contextmanager
def serving(landing: Path, lake: Path, catalog: Catalog) -> Iterator[dict[str, Any]]:
    """Stand-ins for every vendor the catalog pulls from, the settings pointing at them, for
    the duration of the block; yields vendor -> stand-in."""
    from assets.connectors import connected
    from resources.vendors import VENDORS

    world = lake / "standins" / "world"
    move_world(landing, world, catalog)
    running: dict[str, Any] = {}
    saved = dict(os.environ)
    try:
        for vendor in connected(catalog):
            module, cls, extra = STANDINS[vendor]
            standin = getattr(importlib.import_module(module), cls)(world, token=TOKEN, **extra)
            running[vendor] = standin.start()
            mod = VENDORS[vendor]
            os.environ[mod.TOKEN_ENV] = TOKEN
            os.environ[mod.BASE_URL_ENV] = standin.url
            for option, env in getattr(mod, "OPTION_ENVS", {}).items():
                if option in extra:
                    os.environ[env] = extra[option]
        replay(running, world, landing, lake, catalog)
        yield running
    finally:
        for standin in running.values():
            standin.stop()
        os.environ.clear()
        os.environ.update(saved)
