"""Settings come from the environment as Dagster `EnvVar`s; unset ones keep the embedded default.

An `EnvVar` is resolved when a run starts and shown by name (never by value) in the UI, which is
what secrets need; the embedded default must still run with nothing set.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import EnvVar

# The embedded default: the repository's lake/ folder, its landing zone inside it.
DEFAULT_LAKE_ROOT = str(Path(__file__).resolve().parent.parent / "lake")
DEFAULT_LANDING_ROOT = str(Path(DEFAULT_LAKE_ROOT) / "landing")

LAKE_ROOT = "LAKEHOUSE_LAKE_ROOT"
LANDING_ROOT = "LAKEHOUSE_LANDING_ROOT"
# `make demo STANDINS=1`: pull the connected objects from the vendors' stand-ins (demo only)
DEMO_STANDINS = "LAKEHOUSE_DEMO_STANDINS"
LANDING_IGNORE = "LAKEHOUSE_LANDING_IGNORE"  # comma-separated name patterns of partial files
FUTURE_TOLERANCE = "LAKEHOUSE_FUTURE_TOLERANCE_HOURS"  # how far past the clock a date may lie
# Read when the code location is built (its partitions and contracts follow them) and again
# when a run starts; never at import.
EVENT_MAPPING = "LAKEHOUSE_EVENT_MAPPING"  # the event mapping file (assets/events/events.yaml)
EVENTS_START = "LAKEHOUSE_EVENTS_START"  # first event day (a date); else the data decides
EVENTS_END = "LAKEHOUSE_EVENTS_END"  # last event day (a date or `today`); else the data decides
C360_RULES = "LAKEHOUSE_C360_RULES"  # the customer 360 rules file (assets/c360/c360.yaml)
# The company's configuration: a stack folder (a name under stacks/, or a path) holding its
# source catalog and vocabulary; the two file settings override the stack's files.
STACK = "LAKEHOUSE_STACK"
SOURCE_CATALOG = "LAKEHOUSE_SOURCE_CATALOG"
VOCABULARY = "LAKEHOUSE_VOCABULARY"
STACKS_ROOT = Path(__file__).resolve().parent.parent / "stacks"
DEFAULT_STACK = "default"


def from_env(**fields: str) -> dict[str, EnvVar]:
    """Map resource fields to the environment variables that are set."""
    return {field: EnvVar(var) for field, var in fields.items() if os.environ.get(var)}


def int_from_env(**fields: str) -> dict[str, EnvVar]:
    """As `from_env`, for integer fields."""
    return {field: EnvVar.int(var) for field, var in fields.items() if os.environ.get(var)}


def read(name: str) -> str:
    """A plain setting's value now ("" when unset), for the settings the code location is built
    from; secrets and resource fields go through `from_env` instead."""
    return os.environ.get(name, "").strip()


def lake_root() -> str:
    """The lake's root outside a Dagster run (commands, launchers): the setting, else the
    embedded default. Runs get it through `LakeResource`, configured from the same variable."""
    return os.environ.get(LAKE_ROOT) or DEFAULT_LAKE_ROOT


def landing_root() -> str:
    """The landing zone's root outside a Dagster run; runs use `LandingResource`."""
    return os.environ.get(LANDING_ROOT) or DEFAULT_LANDING_ROOT


def stack_dir() -> Path:
    """The active stack's folder: `LAKEHOUSE_STACK` as a name under stacks/ (default
    `default`), or as a path to a folder anywhere."""
    value = read(STACK) or DEFAULT_STACK
    named = STACKS_ROOT / value
    if "/" not in value and "\\" not in value and not value.startswith("."):
        return named
    return Path(value).expanduser().resolve()


def catalog_path() -> Path:
    """The source catalog: `LAKEHOUSE_SOURCE_CATALOG`, else the stack's catalog.yaml."""
    explicit = read(SOURCE_CATALOG)
    return Path(explicit).expanduser().resolve() if explicit else stack_dir() / "catalog.yaml"


def vocabulary_path() -> Path:
    """The vocabulary: `LAKEHOUSE_VOCABULARY`, else the stack's vocabulary.yaml."""
    explicit = read(VOCABULARY)
    return Path(explicit).expanduser().resolve() if explicit else stack_dir() / "vocabulary.yaml"
