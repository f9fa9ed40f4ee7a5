"""Online feature lookup: one account's current features, for a CRM widget, an API or a model
server. The mart is small (one row per scored account), so it is held in memory keyed by
account id and reloaded only when its Delta table has a new version."""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa

from checks.features import CHURN_FEATURES
from resources.lake import LakeResource


class FeatureLookup:
    def __init__(
        self, lake: LakeResource, table: str = CHURN_FEATURES.table, recheck_s: float = 30.0
    ) -> None:
        self.lake, self.table, self.recheck_s = lake, table, recheck_s
        self.version: int | None = None
        self._rows: dict[str, dict[str, Any]] = {}
        self._checked = 0.0
        self.refresh()

    def refresh(self) -> bool:
        """Reload when the mart has a new Delta version; True when it did."""
        self._checked = time.monotonic()
        version = self.lake.version("features", self.table)
        if version is None or version == self.version:
            return False
        mart: pa.Table = self.lake.read("features", self.table)
        self._rows = {r["account_id"]: r for r in mart.to_pylist()}
        self.version = version
        return True

    def get(self, account_id: str) -> dict[str, Any] | None:
        """The account's features as of the mart's day, or None for an account not scored."""
        if time.monotonic() - self._checked > self.recheck_s:
            self.refresh()
        return self._rows.get(account_id)

    def accounts(self) -> list[str]:
        return sorted(self._rows)

    def __len__(self) -> int:
        return len(self._rows)
