"""Reverse-ETL contracts: what the CRM receives per account, and the sync's own records (its
audit, its review queue and the fingerprints of what the CRM holds)."""

from __future__ import annotations

from checks.contract import Column, TableContract, ts
from checks.ml import RISK_BANDS

ACTIONS = ("retention_call", "expansion_conversation", "monitor", "none")
SYNC_STATUSES = ("sent", "failed", "skipped_consent", "queued_review", "dry_run")
REVIEW_STATUSES = ("pending",)

CRM_ACCOUNT_UPDATES = TableContract(
    layer="reverse_etl",
    table="crm_account_updates",
    description=(
        "The fields the CRM receives per account, from the customer 360 and the champion "
        "models' latest scores (never a shadow model's). Grain: one row per CRM account; key: "
        "crm_account_id (the CRM's own id: the sync upserts by it). consent_crm_sync: at least "
        "one of the account's people granted CRM sync and none revoked it; false is never sent. "
        "action_confidence (how sure the platform is of next_best_action, not how risky the "
        "account is) below the sync threshold sends the row to the review queue."
    ),
    columns=(
        Column("crm_account_id", required=True, description="The CRM's id of the account."),
        Column("account_id", required=True, description="The platform's canonical account id."),
        Column(
            "churn_risk",
            "float",
            "The churn champion's probability (90 days); null when not scored.",
            min=0,
            max=1,
        ),
        Column("churn_risk_band", accepted=RISK_BANDS, description="Its band."),
        Column(
            "expansion_propensity",
            "float",
            "The expansion champion's upgrade probability (90 days); null when not scored.",
            min=0,
            max=1,
        ),
        Column("expansion_band", accepted=RISK_BANDS, description="Its band."),
        Column("lifecycle_stage", description="The account's lifecycle state on the 360's day."),
        Column(
            "health_score", "int", "100 x (1 - churn risk); null when not scored.", min=0, max=100
        ),
        Column(
            "next_best_action",
            required=True,
            accepted=ACTIONS,
            description="retention_call (churn band high), else expansion_conversation "
            "(expansion band high), else monitor (scored), else none (no model scores it).",
        ),
        Column("top_reasons", description="Top churn reasons (JSON list)."),
        Column("churn_model_version", description="The churn champion version behind it."),
        Column("expansion_model_version", description="The expansion champion version behind it."),
        Column(
            "data_age_days",
            "int",
            "Days from the last day any source recorded something about the account to as_of.",
            min=0,
        ),
        Column(
            "identity_confidence",
            "float",
            "The 360's: weakest record link, pending identity-review pairs.",
            required=True,
            min=0,
            max=1,
        ),
        Column(
            "consent_crm_sync",
            "bool",
            "Someone at the account granted CRM sync and nobody revoked it; false is never sent.",
            required=True,
        ),
        Column(
            "model_reliability",
            "float",
            "Support of the band(s) the action rests on, from the champion's holdout: how sure "
            "the platform is that the band's accounts are on the side of the high threshold it "
            "says (assets/ml/bands.py); 0 without recorded evidence, 1 for none.",
            required=True,
            min=0,
            max=1,
        ),
        Column(
            "data_freshness",
            "float",
            "1 while data_age_days <= stale_after_days (31 by default), then halving with each "
            "further stale_after_days.",
            required=True,
            min=0,
            max=1,
        ),
        Column(
            "action_confidence",
            "float",
            "model_reliability x data_freshness x identity_confidence (1 for none): how sure the "
            "platform is of next_best_action.",
            required=True,
            min=0,
            max=1,
        ),
        Column("confidence_note", required=True, description="Each factor and why, in words."),
    ),
    primary_key=("crm_account_id",),
)

SYNC_AUDIT = TableContract(
    layer="reverse_etl",
    table="sync_audit",
    description=(
        "Append-only: one row per record per sync attempt: what was decided (sent, failed, held "
        "back for consent or for review, or a dry run's would-send), with the payload, the "
        "fingerprint of its inputs, the model versions, the destination, who ran the sync and "
        "when. A record held back again for the same reason with the same inputs is not "
        "audited again. Key: (sync_id, crm_account_id)."
    ),
    columns=(
        Column("sync_id", required=True, description="One id per sync run (a UUID)."),
        Column("crm_account_id", required=True, description="The CRM's id of the account."),
        Column("account_id", required=True, description="The platform's canonical account id."),
        Column(
            "inputs_fingerprint",
            required=True,
            description="SHA-256 of the payload's fields: an unchanged record is not resent.",
        ),
        Column(
            "model_version",
            required=True,
            description='The champion versions behind the row (JSON: {"churn", "expansion"}).',
        ),
        Column(
            "payload",
            required=True,
            description="What was (or would be) sent, as JSON; {} for a record without consent.",
        ),
        Column("destination", required=True, description="Where it went (never credentials)."),
        Column("actor", required=True, description="Who ran the sync (dagster:<run id>)."),
        Column(
            "status",
            required=True,
            accepted=SYNC_STATUSES,
            description="sent, failed (retried next sync), skipped_consent, queued_review, or "
            "dry_run (would be sent).",
        ),
        Column("error", description="The destination's answer when the row failed."),
        ts("attempted_at", "When the sync decided.", required=True),
    ),
    primary_key=("sync_id", "crm_account_id"),
)

REVIEW_QUEUE = TableContract(
    layer="reverse_etl",
    table="review_queue",
    description=(
        "The actions held back because the platform is not sure enough of them "
        "(action_confidence below the sync threshold), waiting for a person; replaced by every "
        "sync. Key: crm_account_id."
    ),
    columns=(
        Column("crm_account_id", required=True, description="The CRM's id of the account."),
        Column("account_id", required=True, description="The platform's canonical account id."),
        Column(
            "next_best_action",
            required=True,
            accepted=ACTIONS,
            description="The action held back (crm_account_updates).",
        ),
        Column(
            "action_confidence",
            "float",
            "How sure the platform is of it (crm_account_updates).",
            required=True,
            min=0,
            max=1,
        ),
        Column(
            "threshold",
            "float",
            "The sync's confidence threshold the action fell below.",
            required=True,
        ),
        Column("reason", required=True, description="Why, in words: each confidence factor."),
        Column("payload", required=True, description="What would be sent, as JSON."),
        Column(
            "status",
            required=True,
            accepted=REVIEW_STATUSES,
            description="pending: no one has decided yet.",
        ),
        ts("queued_at", "When the sync that queued it ran.", required=True),
    ),
    primary_key=("crm_account_id",),
)

SYNC_STATE = TableContract(
    layer="reverse_etl",
    table="sync_state",
    description=(
        "What the CRM holds after the last successful sync: per record, the fingerprint of the "
        "payload it received. A record is sent again only when its fingerprint differs; a "
        "failed row keeps its old one and is retried. Key: crm_account_id."
    ),
    columns=(
        Column("crm_account_id", required=True, description="The CRM's id of the account."),
        Column(
            "fingerprint",
            required=True,
            description="SHA-256 of the payload the CRM holds (sync_audit.inputs_fingerprint).",
        ),
        ts("synced_at", "When the CRM confirmed it.", required=True),
    ),
    primary_key=("crm_account_id",),
)
