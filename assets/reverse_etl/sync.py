"""What the CRM receives, and the sync that sends only what changed, within the guardrails.

Guardrails, in order, per record: no consent for CRM sync -> never sent; an action whose
confidence is below the threshold -> the review queue, not the CRM; unchanged since the last
successful sync (same fingerprint) -> nothing sent. Only champion scores reach the updates, so a
shadow model never syncs. Rows go in batches, upserted by the CRM's id: a crash between batches
and a re-run re-send at most the rows of the unfinished sync, which the upsert makes harmless.
Failed rows keep their old fingerprint and are retried by the next sync.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from assets.reverse_etl.confidence import STALE_AFTER_DAYS, confidence_sql
from checks.reverse_etl import REVIEW_QUEUE, SYNC_AUDIT, SYNC_STATE
from resources.destinations import Destination

KEY = "crm_account_id"
# The fields the CRM receives; changes to anything else (timestamps) do not resend a row.
PAYLOAD = (
    "crm_account_id",
    "churn_risk",
    "churn_risk_band",
    "expansion_propensity",
    "lifecycle_stage",
    "health_score",
    "next_best_action",
    "action_confidence",
    "top_reasons",
    "churn_model_version",
    "expansion_model_version",
)


class InjectedCrash(RuntimeError):
    """Raised by `sync(crash_after_batches=...)`: tests prove a crash leaves no duplicates."""


def fingerprint(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class SyncResult:
    audit: pa.Table
    review: pa.Table
    state: pa.Table  # the fingerprints after this sync (only successful rows changed)
    counts: dict[str, int] = field(default_factory=dict)


def sync(
    updates: pa.Table,
    previous_state: pa.Table,
    destination: Destination,
    *,
    threshold: float,
    now: datetime,
    sync_id: str,
    actor: str = "dagster",
    dry_run: bool = False,
    batch_size: int = 500,
    crash_after_batches: int | None = None,
    decided: dict[str, tuple[str, str]] | None = None,
) -> SyncResult:
    """`decided`: each record's last audited (status, inputs fingerprint), from `last_decisions`.
    A record held back again for the same reason with the same inputs is not audited again."""
    decided = decided or {}
    last = dict(
        zip(
            previous_state["crm_account_id"].to_pylist() if previous_state.num_rows else [],
            previous_state["fingerprint"].to_pylist() if previous_state.num_rows else [],
            strict=True,
        )
    )
    synced_at = (
        dict(
            zip(
                previous_state["crm_account_id"].to_pylist(),
                previous_state["synced_at"].to_pylist(),
                strict=True,
            )
        )
        if previous_state.num_rows
        else {}
    )
    audit, review, to_send = [], [], []
    counts = {"sent": 0, "failed": 0, "skipped_consent": 0, "queued_review": 0, "unchanged": 0}

    def note(row: dict, payload: dict, fp: str, status: str, error: str | None = None) -> None:
        audit.append(
            {
                "sync_id": sync_id,
                "crm_account_id": row[KEY],
                "account_id": row["account_id"],
                "inputs_fingerprint": fp,
                "model_version": json.dumps(
                    {
                        "churn": row["churn_model_version"],
                        "expansion": row["expansion_model_version"],
                    }
                ),
                "payload": json.dumps(payload, sort_keys=True, default=str),
                "destination": destination.name,
                "actor": actor,
                "status": status,
                "error": error,
                "attempted_at": now,
            }
        )

    for row in updates.to_pylist():
        payload = {k: row[k] for k in PAYLOAD}
        fp = fingerprint(payload)
        if not row["consent_crm_sync"]:
            if decided.get(row[KEY]) == ("skipped_consent", fp):
                counts["unchanged"] += 1
                continue
            counts["skipped_consent"] += 1
            note(row, {}, fp, "skipped_consent")  # nothing of the record is kept in the audit
        elif row["action_confidence"] < threshold:
            if decided.get(row[KEY]) == ("queued_review", fp):
                counts["unchanged"] += 1  # still pending in the queue below, audited once
            else:
                counts["queued_review"] += 1
                note(row, payload, fp, "queued_review")
            review.append(
                {
                    "crm_account_id": row[KEY],
                    "account_id": row["account_id"],
                    "next_best_action": row["next_best_action"],
                    "action_confidence": row["action_confidence"],
                    "threshold": threshold,
                    "reason": f"confidence {row['action_confidence']:.2f} below {threshold}: "
                    f"{row['confidence_note']}",
                    "payload": json.dumps(payload, sort_keys=True, default=str),
                    "status": "pending",
                    "queued_at": now,
                }
            )
        elif last.get(row[KEY]) == fp:
            counts["unchanged"] += 1
        else:
            to_send.append((row, payload, fp))

    state = dict(last)
    for n, start in enumerate(range(0, len(to_send), batch_size)):
        if crash_after_batches is not None and n >= crash_after_batches:
            raise InjectedCrash(f"crash injected after {n} batch(es)")
        batch = to_send[start : start + batch_size]
        if dry_run:
            for row, payload, fp in batch:
                note(row, payload, fp, "dry_run")
            continue
        results = destination.upsert([p for _, p, _ in batch], KEY)
        for (row, payload, fp), res in zip(batch, results, strict=True):
            if res.ok:
                counts["sent"] += 1
                state[row[KEY]] = fp
                synced_at[row[KEY]] = now
                note(row, payload, fp, "sent")
            else:
                counts["failed"] += 1  # keeps its old fingerprint: retried next time
                note(row, payload, fp, "failed", res.error)
    if dry_run:
        counts["would_send"] = len(to_send)
    keys = sorted(state)
    return SyncResult(
        audit=pa.Table.from_pylist(audit, schema=SYNC_AUDIT.schema),
        review=pa.Table.from_pylist(review, schema=REVIEW_QUEUE.schema),
        state=pa.table(
            {
                "crm_account_id": keys,
                "fingerprint": [state[k] for k in keys],
                "synced_at": [synced_at[k] for k in keys],
            },
            schema=SYNC_STATE.schema,
        ),
        counts=counts,
    )


def last_decisions(audit: pa.Table) -> dict[str, tuple[str, str]]:
    """crm_account_id -> (status, inputs_fingerprint) of its latest audit row."""
    if audit.num_rows == 0:
        return {}
    ordered = audit.sort_by("attempted_at")
    last = ordered.group_by("crm_account_id", use_threads=False).aggregate(
        [("status", "last"), ("inputs_fingerprint", "last")]
    )
    return {
        k: (s, f)
        for k, s, f in zip(
            last["crm_account_id"].to_pylist(),
            last["status_last"].to_pylist(),
            last["inputs_fingerprint_last"].to_pylist(),
            strict=True,
        )
    }


def updates_sql(stale_after_days: int = STALE_AFTER_DAYS) -> str:
    """The CRM's fields per account, from the customer 360 (which carries each champion's score
    of its day, never a shadow model's) and the action's confidence (confidence.py).
    Expects views: c360 (customer_360_accounts), account, people (customer_360_people),
    band_evidence (confidence.evidence_table). An account's people for consent are all who hold
    a current role there (`accounts`), not only those whose primary account it is: a person who
    revoked is not sent with any of their accounts.

    The action: a retention call when the churn band is high; else an expansion conversation
    when the expansion band is high; else monitor when a model scored the account; else none
    (not in any scoring population: a lead, a churned account)."""
    base = """
    WITH member AS (SELECT DISTINCT person_id, consent_crm_sync,
                unnest(from_json(accounts, '["json"]')) ->> 'account_id' AS account_id
            FROM people),
        consent AS (SELECT account_id,
                count(*) FILTER (WHERE consent_crm_sync) AS granted,
                count(*) FILTER (WHERE NOT consent_crm_sync) AS revoked
            FROM member WHERE account_id IS NOT NULL GROUP BY 1)
    SELECT a.primary_crm_account_id AS crm_account_id, c.account_id,
        c.churn_probability AS churn_risk, c.churn_band AS churn_risk_band,
        c.expansion_probability AS expansion_propensity, c.expansion_band,
        c.lifecycle_state AS lifecycle_stage,
        CAST(round(100 * (1 - c.churn_probability)) AS INTEGER) AS health_score,
        CASE WHEN c.churn_band = 'high' THEN 'retention_call'
             WHEN c.expansion_band = 'high' THEN 'expansion_conversation'
             WHEN c.churn_probability IS NOT NULL OR c.expansion_probability IS NOT NULL
                THEN 'monitor'
             ELSE 'none' END AS next_best_action,
        c.churn_reasons AS top_reasons, c.churn_model_version, c.expansion_model_version,
        c.churn_unscored_reason, c.expansion_unscored_reason,
        date_diff('day', c.last_recorded_on, c.as_of) AS data_age_days,
        c.identity_confidence, c.identity_note,
        coalesce(consent.granted, 0) > 0 AND coalesce(consent.revoked, 0) = 0
            AS consent_crm_sync
    FROM c360 c JOIN account a USING (account_id)
    LEFT JOIN consent USING (account_id)
    WHERE a.primary_crm_account_id IS NOT NULL"""
    return f"""SELECT * EXCLUDE (churn_unscored_reason, expansion_unscored_reason, identity_note)
        FROM ({confidence_sql(base, stale_after_days)}) ORDER BY crm_account_id"""


_C360 = "c360/customer_360_accounts"
_BANDS = [(_C360, "churn_band"), (_C360, "expansion_band")]
_FRESHNESS = [(_C360, "last_recorded_on"), (_C360, "as_of")]
# Where each CRM field comes from (the query above), shown as column lineage in the UI. The
# scores reach the CRM through the 360 (ml/<kind>_scores -> customer_360_accounts).
COLUMN_SOURCES: dict[str, list[tuple[str, str]]] = {
    "crm_account_id": [("entities/account", "primary_crm_account_id")],
    "account_id": [(_C360, "account_id")],
    "churn_risk": [(_C360, "churn_probability")],
    "churn_risk_band": [(_C360, "churn_band")],
    "expansion_propensity": [(_C360, "expansion_probability")],
    "expansion_band": [(_C360, "expansion_band")],
    "lifecycle_stage": [(_C360, "lifecycle_state")],
    "health_score": [(_C360, "churn_probability")],
    "next_best_action": [*_BANDS, (_C360, "churn_probability"), (_C360, "expansion_probability")],
    "top_reasons": [(_C360, "churn_reasons")],
    "churn_model_version": [(_C360, "churn_model_version")],
    "expansion_model_version": [(_C360, "expansion_model_version")],
    "consent_crm_sync": [
        ("c360/customer_360_people", "consent_crm_sync"),
        ("c360/customer_360_people", "accounts"),
    ],
    "data_age_days": _FRESHNESS,
    "identity_confidence": [(_C360, "identity_confidence")],
    "model_reliability": [
        *_BANDS,
        (_C360, "churn_model_version"),
        (_C360, "expansion_model_version"),
    ],
    "data_freshness": _FRESHNESS,
    "action_confidence": [*_BANDS, *_FRESHNESS, (_C360, "identity_confidence")],
    "confidence_note": [*_BANDS, *_FRESHNESS, (_C360, "identity_note")],
}
