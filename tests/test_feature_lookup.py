"""Online lookup: the mart's row for an account, nothing for an unknown one, and a new mart
version is picked up."""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from assets.features.lookup import FeatureLookup
from resources.lake import LakeResource


def _mart(n: int, mrr: float) -> pa.Table:
    return pa.table(
        {
            "account_id": [f"acc_{i}" for i in range(n)],
            "as_of": [date(2026, 10, 31)] * n,
            "mrr": [mrr + i for i in range(n)],
        }
    )


def test_lookup_returns_the_marts_row_and_follows_new_versions(tmp_path):
    lake = LakeResource(root=str(tmp_path))
    lake.publish("features", "churn_features", _mart(3, 100.0), mode="overwrite")
    lookup = FeatureLookup(lake, recheck_s=0)
    assert lookup.get("acc_2")["mrr"] == 102.0 and len(lookup) == 3
    assert lookup.get("acc_missing") is None
    lake.publish("features", "churn_features", _mart(4, 200.0), mode="overwrite")
    assert lookup.get("acc_3")["mrr"] == 203.0 and lookup.version == 1
