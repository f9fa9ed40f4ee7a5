"""The sample company's systems served as their APIs, for `make demo STANDINS=1`.

The generator writes the company's world to `<lake>/standins/world/` instead of the landing
zone. Objects the active catalog pulls through a connector (`connector:`) stay there: a
stand-in of their vendor serves them on 127.0.0.1 and the connector settings
(`LAKEHOUSE_<VENDOR>_TOKEN`, `..._BASE_URL`) point at it. Every other object (and the ground
truth) is copied into the landing zone as if delivered. The connectors first replay the
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
WORLD = Path("standins") / "world"  # under the lake: what the stand-ins serve


def deliver_rest(world: Path, landing: Path, catalog: Catalog) -> list[str]:
    """Copy what no connector pulls (other objects' folders, the ground truth) from `world`
    into the landing zone, as a delivery would; returns the folders copied."""
    from assets.connectors import connected

    pulled = {o.landing for objs in connected(catalog).values() for o in objs}
    copied = []
    for folder in sorted(p for p in world.glob("*/*") if p.is_dir()):
        rel = folder.relative_to(world).as_posix()
        if rel in pulled:
            continue
        shutil.copytree(folder, landing / rel, dirs_exist_ok=True)
        copied.append(rel)
    if (world / "_truth").is_dir():
        shutil.copytree(world / "_truth", landing / "_truth", dirs_exist_ok=True)
    return copied


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
    """Stand-ins for every vendor the catalog pulls from (serving `<lake>/standins/world`),
    the settings pointing at them, for the duration of the block; yields vendor -> stand-in."""
    from assets.connectors import connected
    from resources.vendors import VENDORS

    world = lake / WORLD
    if not world.is_dir():
        raise FileNotFoundError(
            f"no world to serve at {world}: generate it there (make demo STANDINS=1 does)"
        )
    deliver_rest(world, landing, catalog)
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
