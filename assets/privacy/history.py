"""After an erasure, no table keeps a version from before it: an old version's data files and
its log entries (add actions keep min/max statistics, delete predicates keep values) would
bring the person back by time travel. Time travel to before an erasure is gone, by design."""

from __future__ import annotations

from collections.abc import Iterable

from resources.lake import LakeResource


def purge(lake: LakeResource, tables: Iterable[str]) -> tuple[int, int]:
    """Purge every named table's history (`<layer>/<table>`); returns (tables, files removed)."""
    count = removed = 0
    for name in tables:
        layer, table = name.split("/", 1)
        removed += lake.purge_history(layer, table)
        count += 1
    return count, removed
