"""Score reasons in business words: the features that pushed a score up the most, named the way
a customer-success manager would say them. One phrase per feature, kept here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PHRASES = {
    "mrr": "monthly revenue of {v:,.0f}",
    "tenure_days": "customer for {v:.0f} days",
    "plan_tier": "on the {v} plan",
    "industry": "{v} industry",
    "total_events": "{v:.0f} product actions in total",
    "events_last_30d": "{v:.0f} product actions in the last 30 days",
    "events_last_7d": "{v:.0f} product actions in the last 7 days",
    "avg_adoption_score": "feature adoption score {v:.2f}",
    "days_since_last_event": "no product activity for {v:.0f} days",
    "retention_signal_count": "{v:.0f} uploads, monitoring runs and reports",
    "integration_connects_first_30d": "{v:.0f} integrations connected in the first month",
    "tickets_last_30d": "{v:.0f} support tickets in the last 30 days",
    "high_priority_tickets": "{v:.0f} high-priority tickets in the last 90 days",
    "avg_resolution_hours": "tickets take {v:.0f} hours to resolve",
    "is_early_stage": "still in the first 90 days",
    "events_last_90d": "{v:.0f} product actions in the last 90 days",
    "sessions_last_30d": "{v:.0f} sessions in the last 30 days",
    "usage_vs_baseline": "usage {v:+.0%} against its own baseline",
    "usage_decay_score": "usage fell {v:.0%} month over month",
    "leader_left_90d": "an admin or champion left in the last 90 days",
    "premium_feature_trials_30d": "{v:.0f} premium feature trials in the last 30 days",
    "feature_request_tickets_90d": "{v:.0f} feature requests in the last 90 days",
    "has_open_expansion_opp": "an expansion opportunity is open",
    "expansion_opp_amount": "open expansion opportunity worth {v:,.0f}",
    "mrr_tier_ceiling_pct": "at {v:.0%} of its plan's revenue band",
    "compliance_gap_score": "compliance gap score {v:.2f}",
    "vendor_risk_flags": "{v:.0f} vendor risk alerts",
    "payment_failures_90d": "{v:.0f} failed payments in the last 90 days",
    "is_past_due": "subscription past due",
    "compliance_gap_change_90d": "compliance gap {v:+.2f} in 90 days",
}


def phrase(feature: str, value: object) -> str:
    template = PHRASES.get(feature, feature.replace("_", " ") + ": {v}")
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return f"{feature.replace('_', ' ')} unknown"
    if isinstance(value, bool | np.bool_):
        return template.format(v=value) if value else f"not: {template.format(v=value)}"
    try:
        return template.format(v=value)
    except (ValueError, TypeError):
        return f"{feature.replace('_', ' ')}: {value}"


def top_reasons(
    contributions: np.ndarray, features: Sequence[str], rows: list[dict], k: int = 3
) -> list[list[str]]:
    """Per row, the k features whose SHAP contribution raised the score most, in words."""
    out = []
    for contrib, row in zip(contributions, rows, strict=True):
        order = np.argsort(-contrib)[:k]
        out.append([phrase(features[i], row.get(features[i])) for i in order if contrib[i] > 0])
    return out
