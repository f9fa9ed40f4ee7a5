"""Reverse-ETL contracts: what the CRM receives per account, and the sync's own records."""

from __future__ import annotations

from checks.contract import Column, TableContract
from checks.ml import RISK_BANDS

ACTIONS = ("retention_call", "expansion_conversation", "monitor", "none")
SYNC_STATUSES = ("sent", "failed", "skipped_consent", "queued_review", "dry_run")

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
        Column("crm_account_id", required=True),
        Column("account_id", required=True),
        Column("churn_risk", "float", min=0, max=1),
        Column("churn_risk_band", accepted=RISK_BANDS),
        Column("expansion_propensity", "float", min=0, max=1),
        Column("expansion_band", accepted=RISK_BANDS),
        Column("lifecycle_stage"),
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
        Column("churn_model_version"),
        Column("expansion_model_version"),
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
        Column("consent_crm_sync", "bool", required=True),
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
