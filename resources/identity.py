"""Where the identity rules and the reviewers' decisions live (both files a team owns)."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from resources.lake import is_local

RULES_PATH = "LAKEHOUSE_IDENTITY_RULES"
WEIGHTS_PATH = "LAKEHOUSE_IDENTITY_WEIGHTS"
WEIGHTS_FILE = "identity.weights.yaml"
# Where a run that had to train for itself keeps what it learned, relative to the lake root.
LAKE_WEIGHTS_FILE = "identity/identity.weights.yaml"
DECISIONS_PATH = "LAKEHOUSE_IDENTITY_DECISIONS"
DECISIONS_FILE = "decisions/identity_decisions.csv"
# The rules the project ships (assets/entities/rules.py reads them).
DEFAULT_RULES = Path(__file__).resolve().parent.parent / "assets" / "entities" / "identity.yaml"


def rules_path(configured: str | None = None) -> Path:
    """The identity rules in force: `configured` (the resource's, `LAKEHOUSE_IDENTITY_RULES`),
    else the active stack's identity.yaml when it holds one, else the project's."""
    from resources.settings import stack_dir

    if configured:
        return Path(configured)
    own = stack_dir() / "identity.yaml"
    return own if own.is_file() else DEFAULT_RULES


def weights_path(configured: str | None = None, rules: str | None = None) -> Path:
    """The learned weights file that goes with the rules in force (`make train-identity` writes
    it; read when called, whether or not it exists yet): `configured`, else
    `LAKEHOUSE_IDENTITY_WEIGHTS`; else beside a rules file configured elsewhere (`rules`:
    x/identity.yaml -> x/identity.weights.yaml); else `<stack dir>/identity.weights.yaml`.
    Weights go with the rules they were trained for: another rules file never picks up the
    stack's."""
    from resources.settings import read, stack_dir

    if configured or read(WEIGHTS_PATH):
        return Path(configured or read(WEIGHTS_PATH))
    if rules:
        p = Path(rules)
        return p.with_name(f"{p.stem}.weights.yaml")
    return stack_dir() / WEIGHTS_FILE


class IdentityResource(ConfigurableResource):
    rules_path: str | None = Field(
        default=None,
        description="The identity rules file (normalization, comparisons, thresholds); "
        "default: the stack's identity.yaml, else assets/entities/identity.yaml.",
    )
    weights_path: str | None = Field(
        default=None,
        description="Learned match weights (make train-identity); default: "
        f"{WEIGHTS_PATH}, else the stack's {WEIGHTS_FILE}, else the weights a run trained "
        f"into <lake root>/{LAKE_WEIGHTS_FILE}.",
    )
    decisions_path: str | None = Field(
        default=None,
        description=f"Confirmed review decisions (CSV); default: <lake root>/{DECISIONS_FILE}.",
    )

    def decisions_file(self, lake_root: str) -> str:
        """Reviewers edit this file by hand, so it is a path on disk: under a local lake by
        default; named explicitly when the lake is on an object store."""
        if self.decisions_path:
            return self.decisions_path
        if not is_local(lake_root):
            raise ValueError(
                f"the lake ({lake_root}) is not on local disk: set {DECISIONS_PATH} to the "
                "reviewers' decisions file (a shared path; it need not exist yet)"
            )
        return os.path.join(lake_root, DECISIONS_FILE)
