"""`lakehouse stack`: check a company's configuration before anything runs.

Loads the active stack's source catalog, vocabulary and identity rules exactly as the code
location will (the same loaders, the same errors naming file, object and field), then says what
each object means to the layers above and which landing folders no object reads. A person
bringing their own exports runs it after each edit instead of waiting for `dagster dev` to refuse
the code location.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from checks.roles import ROLES
from checks.sources import Catalog, CatalogError, load_catalog
from checks.vocabulary import Vocabulary, VocabularyError, load_vocabulary
from resources.identity import rules_path
from resources.landing import LandingResource
from resources.settings import (
    LANDING_IGNORE,
    catalog_path,
    landing_root,
    stack_dir,
    vocabulary_path,
)


class StackError(ValueError):
    """A configuration file the code location would refuse to load."""


def check_stack(out: TextIO, landing: str | None = None) -> int:
    """Print the active stack's report; 1 when a folder is unread (a warning), else 0. A broken
    file raises StackError with the loader's message."""
    from assets.entities.rules import load_rules

    try:
        catalog = load_catalog(catalog_path())
        vocab = load_vocabulary(vocabulary_path())
        configured = os.environ.get("LAKEHOUSE_IDENTITY_RULES") or None
        rules = rules_path(configured)
        load_rules(configured)  # as runs load them: with the weights file that goes with them
    except (CatalogError, VocabularyError) as exc:
        raise StackError(str(exc)) from exc
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise StackError(f"{exc.__class__.__name__}: {exc}") from exc
    print(f"stack: {stack_dir()}", file=out)
    _catalog(catalog, out)
    _vocabulary(vocab, out)
    print(f"identity rules: {rules}", file=out)
    return _landing(catalog, Path(landing or landing_root()), out)


def _catalog(catalog: Catalog, out: TextIO) -> None:
    print(f"catalog: {catalog.path}: {len(catalog.objects)} objects", file=out)
    for role in ROLES:
        objects = catalog.by_role(role)
        if objects:
            names = ", ".join(_labelled(o.source, o.role.options) for o in objects)
            print(f"  {role}: {names}", file=out)
    loose = [o.source for o in catalog.objects if o.role is None]
    if loose:
        print(f"  no role (raw table only): {', '.join(loose)}", file=out)


def _labelled(source: str, options: dict) -> str:
    marks = [k for k, v in options.items() if v is True]
    marks += [f"{k}: {', '.join(v)}" for k, v in options.items() if isinstance(v, tuple)]
    return f"{source} ({'; '.join(marks)})" if marks else source


def _vocabulary(vocab: Vocabulary, out: TextIO) -> None:
    usage = vocab.events_counting("usage")
    plans = " < ".join(p.name for p in vocab.plans)
    urgent = ", ".join(vocab.urgent_priorities)
    print(
        f"vocabulary: {vocab.path}: {len(vocab.events)} event names ({len(usage)} count as "
        f"usage), plans {plans}, urgent priorities {urgent}",
        file=out,
    )


def _landing(catalog: Catalog, root: Path, out: TextIO) -> int:
    if not root.is_dir():
        print(f"landing: {root}: no such folder yet", file=out)
        return 0
    resource = LandingResource(root=str(root), **_ignore())
    folders = [o.contract.landing_dir for o in catalog.objects]
    present = [f for f in folders if (root / f).is_dir()]
    print(f"landing: {root}: {len(present)} of {len(folders)} objects have a folder", file=out)
    missing = [f for f in folders if f not in present]
    if missing:
        print(f"  nothing landed yet: {', '.join(missing)}", file=out)
    unread = resource.unread(folders)
    for entry in unread:
        print(f"  WARNING unread: {entry} (no catalog object reads it)", file=out)
    return 1 if unread else 0


def _ignore() -> dict[str, str]:
    value = os.environ.get(LANDING_IGNORE)
    return {"ignore": value} if value else {}
