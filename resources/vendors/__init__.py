"""The vendors a catalog object may be pulled from (`connector: {vendor: <name>}`).

Each module has one interface, which `assets/connectors/` and the catalog check rely on:
`VENDOR`, `OBJECTS` (object -> endpoint and cursor field), `BASE_URL` (the real API),
`TOKEN_ENV` and `BASE_URL_ENV` (the settings), and
`source(*, base_url, token, objects, **vendor_options) -> DltSource`, one dlt resource per
object, named as the object, yielding each record exactly as the vendor's API returns it.
Modules import dlt only when a source is built, so reading this registry is cheap.
"""

from __future__ import annotations

from types import ModuleType

from resources.vendors import hubspot

VENDORS: dict[str, ModuleType] = {
    hubspot.VENDOR: hubspot,
}
