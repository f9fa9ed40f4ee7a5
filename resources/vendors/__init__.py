"""The vendors a catalog object may be pulled from (`connector: {vendor: <name>}`).

Each module has one interface, which `assets/connectors/` and the catalog check rely on:
`VENDOR`, `OBJECTS` (object -> its `endpoint` and `cursor_field`, and the vendor's own details),
`BASE_URL` (the real API), `TOKEN_ENV` and `BASE_URL_ENV` (the settings), optional
`OPTION_ENVS` (other settings, e.g. Zendesk's email and subdomain), and
`source(*, base_url, token, objects, starts, max_attempts, backoff_factor, max_retry_delay,
**vendor_options) -> DltSource`: one dlt resource per object, named as the object, yielding
each record exactly as the vendor's API returns it. Modules are imported when first asked for
(they import dlt), so a catalog without connectors never loads them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from types import ModuleType

NAMES = ("hubspot", "salesforce", "stripe", "zendesk")


class _Registry(Mapping[str, ModuleType]):
    def __getitem__(self, name: str) -> ModuleType:
        if name not in NAMES:
            raise KeyError(name)
        return importlib.import_module(f"resources.vendors.{name}")

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


VENDORS: Mapping[str, ModuleType] = _Registry()
