"""Where the identity rules and the reviewers' decisions live (both files a team owns)."""

from __future__ import annotations

import os

from dagster import ConfigurableResource
from pydantic import Field

from assets.entities.rules import DEFAULT_RULES

RULES_PATH = "LAKEHOUSE_IDENTITY_RULES"
DECISIONS_PATH = "LAKEHOUSE_IDENTITY_DECISIONS"
DECISIONS_FILE = "decisions/identity_decisions.csv"


class IdentityResource(ConfigurableResource):
    rules_path: str = Field(
        default=str(DEFAULT_RULES),
        description="The identity rules file (sources, comparisons, thresholds).",
    )
    decisions_path: str | None = Field(
        default=None,
        description=f"Confirmed review decisions (CSV); default: <lake root>/{DECISIONS_FILE}.",
    )

    def decisions_file(self, lake_root: str) -> str:
        return self.decisions_path or os.path.join(lake_root, DECISIONS_FILE)
