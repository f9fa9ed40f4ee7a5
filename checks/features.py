"""Feature-mart contracts: the churn and expansion marts (seed 003's columns plus the seed-002
signals) and the training sets that stack many as-of dates with labels from the window after."""

from __future__ import annotations

from checks.contract import Column, TableContract

KEY = (
    Column("account_id", required=True, description="Canonical account."),
    Column(
        "as_of", "date", "The day the features describe (nothing after it is read).", required=True
    ),
)


def _n(name: str, description: str) -> Column:
    return Column(name, "int", description, required=True, min=0)


CHURN_COLUMNS = (
    Column("mrr", "float", "MRR of the subscriptions running on as_of.", required=True, min=0),
    Column("tenure_days", "int", "Days since signup (first workspace or subscription).", min=0),
    Column(
        "plan_tier",
        required=True,
        description="Highest plan tier running on as_of (a plan the vocabulary does not know "
        "is kept as it arrived).",
    ),
    Column("industry", required=True),
    _n("total_events", "Product usage events up to as_of."),
    _n("events_last_30d", "Usage events in the 30 days up to as_of."),
    _n("events_last_7d", "Usage events in the 7 days up to as_of."),
    Column(
        "avg_adoption_score", "float", "Mean feature adoption score of usage events.", min=0, max=1
    ),
    Column("days_since_last_event", "int", "Days since the last usage event.", min=0),
    _n("retention_signal_count", "Evidence uploads, monitoring runs and report views."),
    _n("integration_connects_first_30d", "Integrations connected in the first 30 days."),
    _n("tickets_last_30d", "Tickets opened in the last 30 days."),
    _n("high_priority_tickets", "High or critical tickets opened in the last 90 days."),
    Column("avg_resolution_hours", "float", "Mean hours to solve its tickets.", min=0),
    Column("is_early_stage", "bool", "Tenure of 90 days or less.", required=True),
    _n("events_last_90d", "Usage events in the 90 days up to as_of."),
    _n("sessions_last_30d", "Sessions in the last 30 days."),
    Column(
        "usage_vs_baseline",
        "float",
        "Last 30 days vs its own 30-day baseline (the 90 before), as a ratio - 1.",
    ),
    Column("usage_decay_score", "float", "max(0, 1 - last 30d / previous 30d).", min=0, max=1),
    Column(
        "leader_left_90d",
        "bool",
        "An admin, champion or billing owner left in the last 90 days.",
        required=True,
    ),
    Column(
        "compliance_gap_score", "float", "Latest third-party compliance gap score.", min=0, max=1
    ),
    Column("vendor_risk_flags", "float", "Latest count of vendor risk alerts.", min=0),
    _n("payment_failures_90d", "Failed invoice payments in the last 90 days."),
    Column("is_past_due", "bool", "A running subscription is past due.", required=True),
    Column("compliance_gap_change_90d", "float", "Compliance gap now minus 90 days ago."),
)
EXPANSION_COLUMNS = (
    *CHURN_COLUMNS,
    _n("premium_feature_trials_30d", "Premium feature trials in the last 30 days."),
    _n("feature_request_tickets_90d", "Feature-request tickets in the last 90 days."),
    Column(
        "has_open_expansion_opp", "bool", "An expansion opportunity open on as_of.", required=True
    ),
    Column("expansion_opp_amount", "float", "Its amount (0 if none).", required=True, min=0),
    Column(
        "mrr_tier_ceiling_pct",
        "float",
        "Where MRR sits in its tier's band, in [0, 1].",
        min=0,
        max=1,
    ),
)


def _mart(table: str, description: str, columns: tuple[Column, ...]) -> TableContract:
    return TableContract(
        layer="features",
        table=table,
        description=description,
        columns=(*KEY, *columns),
        primary_key=(
            "account_id",
            "as_of",
        ),
    )


CHURN_FEATURES = _mart(
    "churn_features",
    "Churn features of every paying account as of the latest day of events (the scoring "
    "population). Grain: one row per account; key: (account_id, as_of). Computed by "
    "assets/features/asof.py, the same function that builds the training set.",
    CHURN_COLUMNS,
)
EXPANSION_FEATURES = _mart(
    "expansion_features",
    "Expansion features of every paying account not on the top tier, as of the latest day of "
    "events. Grain: one row per account; key: (account_id, as_of).",
    EXPANSION_COLUMNS,
)
CHURN_TRAINING_SET = _mart(
    "churn_training_set",
    "Churn features at many past as-of dates (monthly), each row labelled from the 90 days "
    "after its date only: churned_90d = no subscription running 90 days later. Only dates whose "
    "label window has fully passed. Grain: one row per (account, as_of).",
    (*CHURN_COLUMNS, Column("churned_90d", "bool", "The label.", required=True)),
)
EXPANSION_TRAINING_SET = _mart(
    "expansion_training_set",
    "Expansion features at many past as-of dates, for accounts not yet on the top tier, "
    "labelled upgraded_90d = a plan change to a higher tier in the 90 days after. Grain: one "
    "row per (account, as_of).",
    (*EXPANSION_COLUMNS, Column("upgraded_90d", "bool", "The label.", required=True)),
)
FEATURE_TABLES = (CHURN_FEATURES, EXPANSION_FEATURES, CHURN_TRAINING_SET, EXPANSION_TRAINING_SET)
