"""The whole erasure of a batch of subjects: every table, every file, the ingest log, then
every table's history, then a rescan that must find nothing left."""

from __future__ import annotations

from collections.abc import Callable

from assets.privacy import history
from assets.privacy.audit import Outcome
from assets.privacy.landing import files_naming, rewrite_files, update_ingest_log
from assets.privacy.match import Needles
from assets.privacy.reach import reach
from assets.privacy.tables import count_matches, erase_table
from resources.duckdb import connect
from resources.lake import LakeResource


def erase(
    lake: LakeResource,
    landing_root: str,
    needles: Needles,
    log: Callable[[str], None] = lambda _: None,
) -> Outcome:
    """Erase the subjects from every table and file of the lake and the landing zone, purge
    every table's history, and rescan. `Outcome.remaining` names whatever still holds them."""
    tables = reach(lake, log)
    erased = []
    with connect() as con:
        for r in tables:
            result = erase_table(con, lake, r, needles)
            if result.deleted or result.redacted:
                log(f"{r.table}: {result.deleted} deleted, {result.redacted} redacted")
            erased.append(result)
        files = rewrite_files(lake, landing_root, needles)
        log(f"{len(files)} file(s) rewritten")
        logged = update_ingest_log(con, lake, files)
        purged, removed = history.purge(lake, [r.table for r in tables])
        remaining = {
            r.table: n
            for r in tables
            if (n := count_matches(con, lake.table(*r.layer_and_table), needles))
        }
    remaining.update({path: 1 for path in files_naming(lake, landing_root, needles)})
    return Outcome(erased, files, logged, purged, removed, remaining)
