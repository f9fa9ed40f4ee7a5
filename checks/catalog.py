"""Every table contract the platform declares, found in `checks/`: the list of tables.

Nothing keeps a second list of table names: the erasure finds the tables it deletes from or
scrubs here (by the contracts' `personal_record` and pii flags), the `lakehouse` command
describes tables from here, and a test holds every Delta table the graph writes to having
exactly one contract here. Contracts whose columns follow configuration (the event names of
the mapping, lifecycle states, consent scopes) are built by a function of that configuration,
marked `@configured` (checks/contract.py); `declared()` calls each with what it is given (or
empty values: their other fields do not depend on them). The raw tables are the source
catalog's (checks/sources.py `raw_contracts`, a `@configured` builder of the active catalog).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

import checks
from checks.contract import TableContract, is_configured
from checks.sources import raw_contracts


def declared(configured: Mapping[str, Any] | None = None) -> dict[str, TableContract]:
    """`<layer>/<table>` -> contract, for every contract in every module of `checks/`.

    `configured` maps a contract builder's name (`events_contract`, `people_contract`, ...) to
    its arguments (a tuple); a builder not named is called with an empty value per parameter.
    """
    found: dict[str, TableContract] = {}
    for contract in raw_contracts():
        _add(found, contract, "the source catalog")
    for module in _modules():
        for name, value in vars(module).items():
            if isinstance(value, TableContract):
                _add(found, value, f"{module.__name__}.{name}")
            elif _is_builder(value, module.__name__):
                args = (configured or {}).get(name)
                contract = value(*args) if args is not None else value(*_empty(value))
                _add(found, contract, f"{module.__name__}.{name}()")
    return found


def _modules() -> list[Any]:
    names = sorted(m.name for m in pkgutil.iter_modules(checks.__path__) if m.name != "catalog")
    return [importlib.import_module(f"checks.{n}") for n in names]


def _is_builder(value: object, module: str) -> bool:
    """A `@configured` contract builder defined in `module` (not one merely imported there)."""
    return inspect.isfunction(value) and value.__module__ == module and is_configured(value)


def _empty(builder: Callable[..., TableContract]) -> list[Any]:
    out: list[Any] = []
    for p in inspect.signature(builder).parameters.values():
        if p.default is not inspect.Parameter.empty:
            break
        out.append("" if p.annotation in (str, "str") else ())  # builders take str or sequences
    return out


def _add(found: dict[str, TableContract], contract: TableContract, where: str) -> None:
    known = found.get(contract.name)
    if known is not None and known is not contract and known != contract:
        raise ValueError(f"{contract.name} is declared twice in checks/ (again at {where})")
    found.setdefault(contract.name, contract)
