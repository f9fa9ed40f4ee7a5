"""Privacy: a person's right to be forgotten, applied to every layer of the lake.

`privacy/erasure_audit` carries out the erasure requests that landed in the consent source (and
resumes any an interrupted run left): the person's own records are deleted and the account
facts naming them scrubbed, in every Delta table (which tables and how: their contracts,
`reach.py`) and every text file (`landing.py`); every table's history is purged
(`history.py`); the CRM is told to forget them; a rescan must find nothing left; then the audit
(`audit.py`) records counts, never values. Requests are filed and resolved in `intake.py`
(`python -m assets.privacy --email x@y.com` files one), kept in progress in `work.py`.
"""

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    RunsFilter,
)

from assets.concurrency import RUNNING
from assets.entities.rules import load_rules
from assets.gated import SUITE_CHECK, gated_asset, table_key
from assets.privacy import audit, intake, work
from assets.privacy.erase import erase
from assets.privacy.match import Needles
from checks.gate import validate
from checks.privacy import ERASURE_AUDIT
from checks.sources import load_catalog
from resources.crm import CrmResource
from resources.duckdb import DuckDBResource
from resources.identity import IdentityResource
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.pii import PiiResource

ERASURE_KEY = table_key(ERASURE_AUDIT)


def consent_keys() -> set:
    """The raw tables erasure requests land in (the catalog's consent objects), read now."""
    return {table_key(o.contract) for o in load_catalog().by_role("consent")}


def _no_rows_gate(lake: LakeResource) -> AssetCheckResult:
    """The audit suite on an empty batch: nothing to append, and the check still reports."""
    c = ERASURE_AUDIT
    return validate(c.name, c.suite(), c.schema.empty_table()).check_result(
        ERASURE_KEY, SUITE_CHECK, lake.data_docs
    )


def _busy(context: AssetExecutionContext) -> str | None:
    """Why the lake is not ours alone now: erasure vacuums with zero retention, which would
    delete the files of a write in flight."""
    others = set(context.dagster_run.asset_selection or ()) - {ERASURE_KEY, *consent_keys()}
    if others:
        return f"this run also writes {len(others)} other asset(s)"
    active = [
        r.run_id
        for r in context.instance.get_runs(filters=RunsFilter(statuses=RUNNING), limit=5)
        if r.run_id != context.run_id
    ]
    return f"run(s) {', '.join(active)} in progress" if active else None


def erasure_asset(deps: list) -> AssetsDefinition:
    """The erasure audit, after the raw tables erasure requests land in (`deps`)."""

    @gated_asset(ERASURE_AUDIT, deps=deps)
    def erasure_audit(
        context: AssetExecutionContext,
        lake: LakeResource,
        landing: LandingResource,
        duckdb: DuckDBResource,
        pii: PiiResource,
        identity: IdentityResource,
        crm: CrmResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Carry out the erasure requests that landed in the consent source (and resume any an
        interrupted run left): delete or scrub the person in every table and file, purge the
        tables' history, tell the CRM to forget them, verify, then audit."""
        started = time.monotonic()
        c = ERASURE_AUDIT
        subjects, requests = intake.waiting(lake)
        resumed = len(subjects)
        busy = _busy(context) if subjects or requests else None
        if busy:
            context.log.warning(f"erasure deferred: {busy}; the erasure job runs it on its own")
            yield _no_rows_gate(lake)
            yield MaterializeResult(asset_key=ERASURE_KEY, metadata={"deferred": busy})
            return
        moved = audit.adopt_legacy(lake)
        if moved:
            context.log.info(f"{moved} audit row(s) moved from reverse_etl/erasure_audit")
        if requests:
            rules, salt = load_rules(identity.rules_path), pii.resolve_salt(lake.root)
            for request in requests:
                with duckdb.connect() as con:
                    pii.install(con, lake.root)
                    subject = intake.resolve(con, lake, rules, salt, request)
                work.save(lake, subject)  # from here on a crash resumes, never forgets
                subjects.append(subject)
        context.log.info(f"{len(requests)} new erasure request(s), {resumed} resumed")
        if not subjects:
            yield _no_rows_gate(lake)
            if not lake.exists(c.layer, c.table):
                lake.publish(c.layer, c.table, c.schema.empty_table(), description=c.description)
            yield MaterializeResult(asset_key=ERASURE_KEY, metadata={"requests": 0})
            return

        needles = Needles(
            [i for s in subjects for i in s.identifiers], [n for s in subjects for n in s.names]
        )
        outcome = erase(lake, landing.root, needles, context.log.info)
        for subject in subjects:  # counts kept with the work: a retry audits the whole erasure
            subject.record(outcome)
            work.save(lake, subject)
        if outcome.remaining:
            raise Failure(
                f"erasure incomplete: values remain in {sorted(outcome.remaining)}; the request "
                "stays pending and the next run retries it"
            )
        destination = crm.destination(lake.root)
        answer = destination.erase(needles.identifiers)
        if not answer.ok:
            raise Failure(
                f"the lake is erased, but {destination.name} did not confirm the erasure "
                f"({answer.error}); the request stays pending and the next run retries it"
            )
        batch_id = str(uuid.uuid4())
        table = audit.audit_rows(
            subjects,
            outcome,
            {destination.name: answer.error or "ok"},
            batch_id,
            f"dagster:{context.run_id}",
            datetime.now(UTC),
        )
        gate = validate(c.name, c.suite(), table)
        yield gate.check_result(ERASURE_KEY, SUITE_CHECK, lake.data_docs)
        if not gate.passed:
            raise gate.failure(f"{c.name} ({table.num_rows} rows)")
        published = lake.publish(c.layer, c.table, table, description=c.description)
        work.finish(lake, [s.request_id for s in subjects])
        yield MaterializeResult(
            asset_key=ERASURE_KEY,
            metadata={
                "requests": len(subjects),
                "persons": sum(len(s.person_ids) for s in subjects),
                "rows_deleted": outcome.deleted,
                "rows_redacted": outcome.redacted,
                "tables": MetadataValue.json(outcome.table_counts()),
                "files_rewritten": len(outcome.files),
                "ingest_log_rows_updated": outcome.ingest_log_rows,
                "histories_purged": outcome.purged_tables,
                "old_files_removed": outcome.purged_files,
                "destination": destination.name,
                "batch_id": batch_id,
                "seconds": round(time.monotonic() - started, 1),
                "delta_version": published.version,
            },
        )

    return erasure_audit


def build_assets() -> list[AssetsDefinition]:
    """The layer's assets, after the catalog's consent objects (read now, not at import)."""
    return [erasure_asset(sorted(consent_keys(), key=lambda k: k.to_user_string()))]
