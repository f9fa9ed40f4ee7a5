"""Account features **as of a date**: the one function training and scoring both call.

Everything is computed from what was recorded on or before the as-of day: events by their UTC
day, subscription status, plan and MRR from their validity intervals (entities/attribute_history),
relationships by their intervals. A daily aggregate of the event table is built once; a feature
row is a sum over windows of it, so many as-of dates (a training set) cost one join.

Labels look only at the window after the date: churned = no subscription running 90 days later
although one ran on the date; upgraded = a plan change to a higher tier within the 90 days.

What counts as usage, a session, a retention signal, an urgent ticket or a running subscription,
and the plan tiers with their order and MRR bands, are the vocabulary's (checks/vocabulary.py),
read when a function here is called. A plan the vocabulary does not know keeps its name and has
no tier rank: it is never an upgrade and has no MRR band.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb
import pyarrow as pa

from checks.vocabulary import Vocabulary, load_vocabulary
from resources.duckdb import EXACT
from resources.sql import in_list

LEADER_ROLES = ("admin", "champion", "billing_owner")
HORIZON_DAYS = 90

CATEGORICAL = ("plan_tier", "industry")
CHURN_FEATURES = (
    "mrr",
    "tenure_days",
    "plan_tier",
    "industry",
    "total_events",
    "events_last_30d",
    "events_last_7d",
    "avg_adoption_score",
    "days_since_last_event",
    "retention_signal_count",
    "integration_connects_first_30d",
    "tickets_last_30d",
    "high_priority_tickets",
    "avg_resolution_hours",
    "is_early_stage",
    # seed-002 signals: trailing windows, deviation from the account's own baseline, decay,
    # stakeholder change
    "events_last_90d",
    "sessions_last_30d",
    "usage_vs_baseline",
    "usage_decay_score",
    "leader_left_90d",
    # third-party risk and billing health
    "compliance_gap_score",
    "vendor_risk_flags",
    "payment_failures_90d",
    "is_past_due",
    "compliance_gap_change_90d",
)
EXPANSION_FEATURES = (
    *CHURN_FEATURES,
    "premium_feature_trials_30d",
    "feature_request_tickets_90d",
    "has_open_expansion_opp",
    "expansion_opp_amount",
    "mrr_tier_ceiling_pct",
)


def prepare(con: duckdb.DuckDBPyConnection, vocab: Vocabulary | None = None) -> None:
    """Daily facts per account from views `ev` (events), `history` (attribute_history),
    `subscription` (subscription -> account) and `relationship`, counted by the categories of
    `vocab` (default: the active vocabulary)."""
    v = vocab or load_vocabulary()
    usage = v.counting_sql("usage")
    urgent = v.urgent_sql("json_extract_string(properties, '$.priority')")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE daily AS
        SELECT account_id, event_date AS day,
            count(*) FILTER (WHERE {usage}) AS usage,
            count(*) FILTER (WHERE {v.counting_sql("session")}) AS sessions,
            count(*) FILTER (WHERE {v.counting_sql("retention_signal")}) AS retention,
            count(*) FILTER (WHERE {v.counting_sql("integration")}) AS integrations,
            count(*) FILTER (WHERE {v.counting_sql("premium_trial")}) AS premium,
            sum(try_cast(json_extract_string(properties, '$.feature_adoption_score') AS {EXACT}))
                FILTER (WHERE {usage}) AS adoption_sum,
            count(json_extract_string(properties, '$.feature_adoption_score'))
                FILTER (WHERE {usage}) AS adoption_n,
            count(*) FILTER (WHERE event_name = 'ticket_opened') AS tickets,
            count(*) FILTER (WHERE event_name = 'ticket_opened' AND {urgent}) AS urgent_tickets,
            count(*) FILTER (WHERE event_name = 'ticket_opened' AND json_extract_string(
                properties, '$.topic') = 'feature_request') AS feature_requests,
            sum(try_cast(json_extract_string(properties, '$.resolution_hours') AS {EXACT}))
                FILTER (WHERE event_name = 'ticket_solved') AS resolution_sum,
            count(json_extract_string(properties, '$.resolution_hours'))
                FILTER (WHERE event_name = 'ticket_solved') AS resolution_n,
            min(event_date) FILTER (WHERE event_name = 'workspace_created') AS workspace_day,
            count(*) FILTER (WHERE event_name = 'invoice_payment_failed') AS payment_failures,
            arg_max(try_cast(json_extract_string(properties, '$.compliance_gap_score')
                AS DOUBLE), occurred_at) FILTER (WHERE event_name = 'risk_assessed')
                AS compliance_gap,
            arg_max(try_cast(json_extract_string(properties, '$.vendor_risk_flags') AS DOUBLE),
                occurred_at) FILTER (WHERE event_name = 'risk_assessed') AS vendor_flags
        FROM ev WHERE account_id IS NOT NULL GROUP BY ALL"""
    )
    prepare_subscriptions(con)
    # Expansion opportunities: opened on a day, closed (won or lost) on a day, if ever.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE opps AS
        SELECT o.account_id, o.source_id, o.event_date AS opened,
            try_cast(json_extract_string(o.properties, '$.amount') AS DOUBLE) AS amount,
            min(c.event_date) AS closed
        FROM ev o LEFT JOIN ev c ON c.source_id = o.source_id
            AND c.event_name IN ('opportunity_won', 'opportunity_lost')
        WHERE o.event_name = 'opportunity_created' AND o.account_id IS NOT NULL
            AND json_extract_string(o.properties, '$.kind') = 'expansion'
        GROUP BY ALL"""
    )


def prepare_subscriptions(con: duckdb.DuckDBPyConnection) -> None:
    """`sub_state`: subscription attributes as intervals, by account (all `labels_sql` needs)."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE sub_state AS
        SELECT s.account_id, h.entity_id AS subscription_id, h.attribute, h.value,
            h.valid_from::DATE AS valid_from, h.valid_to::DATE AS valid_to
        FROM history h JOIN subscription s ON s.subscription_id = h.entity_id
        WHERE h.entity_type = 'subscription' AND s.account_id IS NOT NULL"""
    )


def _state_at(day: str, alias: str = "st") -> str:
    """Subscription attribute rows (`alias`) in force on `day` (a SQL date expression)."""
    return f"{alias}.valid_from <= {day} AND ({alias}.valid_to IS NULL OR {alias}.valid_to > {day})"


def features_sql(dates: str, vocab: Vocabulary | None = None) -> str:
    """One row per (account, as_of) for accounts with a subscription running on as_of (billed:
    in force and not a trial). `dates`: a relation with one column `as_of` (DATE)."""
    v = vocab or load_vocabulary()
    billed, past_due = in_list(v.billed_statuses), in_list(v.subscription_statuses["past_due"])
    floor, ceiling = v.plan_band_sql("p.plan_tier", 0), v.plan_band_sql("p.plan_tier", 1)
    leaders = in_list(LEADER_ROLES)
    return f"""
    WITH d AS (SELECT DISTINCT as_of FROM ({dates})),
    running AS (  -- subscriptions running and billed on the date
        SELECT d.as_of, st.account_id, st.subscription_id, st.value AS status
        FROM d JOIN sub_state st
            ON st.attribute = 'status' AND st.value IN {billed}
            AND {_state_at("d.as_of")}),
    paid AS (
        SELECT r.as_of, r.account_id,
            bool_or(r.status IN {past_due}) AS is_past_due,
            sum(try_cast(m.value AS {EXACT}))::DOUBLE AS mrr,
            -- the highest tier; a plan the vocabulary does not know ranks below every tier
            arg_max(p.value, coalesce({v.plan_rank_sql("p.value")}, 0)) AS plan_tier
        FROM running r
        LEFT JOIN sub_state m ON m.subscription_id = r.subscription_id AND m.attribute = 'mrr'
            AND {_state_at("r.as_of", "m")}
        LEFT JOIN sub_state p ON p.subscription_id = r.subscription_id
            AND p.attribute = 'plan_tier' AND {_state_at("r.as_of", "p")}
        GROUP BY ALL),
    first_sub AS (SELECT account_id, min(valid_from) AS first_day FROM sub_state GROUP BY 1),
    usage AS (
        SELECT p.as_of, p.account_id,
            coalesce(sum(x.usage), 0) AS total_events,
            coalesce(sum(x.usage) FILTER (WHERE x.day > p.as_of - 30), 0) AS events_last_30d,
            coalesce(sum(x.usage) FILTER (WHERE x.day > p.as_of - 7), 0) AS events_last_7d,
            coalesce(sum(x.usage) FILTER (WHERE x.day > p.as_of - 90), 0) AS events_last_90d,
            coalesce(sum(x.usage) FILTER (WHERE x.day > p.as_of - 60
                AND x.day <= p.as_of - 30), 0) AS events_prev_30d,
            coalesce(sum(x.usage) FILTER (WHERE x.day > p.as_of - 120
                AND x.day <= p.as_of - 30), 0) / 3.0 AS baseline_30d,
            coalesce(sum(x.sessions) FILTER (WHERE x.day > p.as_of - 30), 0) AS sessions_last_30d,
            (sum(x.adoption_sum) / nullif(sum(x.adoption_n), 0))::DOUBLE AS avg_adoption_score,
            max(x.day) FILTER (WHERE x.usage > 0) AS last_event_day,
            coalesce(sum(x.retention), 0) AS retention_signal_count,
            coalesce(sum(x.tickets) FILTER (WHERE x.day > p.as_of - 30), 0) AS tickets_last_30d,
            coalesce(sum(x.urgent_tickets) FILTER (WHERE x.day > p.as_of - 90), 0)
                AS high_priority_tickets,
            (sum(x.resolution_sum) / nullif(sum(x.resolution_n), 0))::DOUBLE
                AS avg_resolution_hours,
            coalesce(sum(x.premium) FILTER (WHERE x.day > p.as_of - 30), 0)
                AS premium_feature_trials_30d,
            coalesce(sum(x.feature_requests) FILTER (WHERE x.day > p.as_of - 90), 0)
                AS feature_request_tickets_90d,
            min(x.workspace_day) AS workspace_day,
            coalesce(sum(x.payment_failures) FILTER (WHERE x.day > p.as_of - 90), 0)
                AS payment_failures_90d,
            arg_max(x.compliance_gap, x.day) FILTER (WHERE x.compliance_gap IS NOT NULL)
                AS compliance_gap_score,
            arg_max(x.vendor_flags, x.day) FILTER (WHERE x.vendor_flags IS NOT NULL)
                AS vendor_risk_flags,
            arg_max(x.compliance_gap, x.day) FILTER (WHERE x.compliance_gap IS NOT NULL
                AND x.day <= p.as_of - 90) AS compliance_gap_90d_ago
        FROM paid p LEFT JOIN daily x ON x.account_id = p.account_id AND x.day <= p.as_of
        GROUP BY ALL),
    start AS (
        SELECT u.as_of, u.account_id, least(u.workspace_day, f.first_day) AS signup_day
        FROM usage u LEFT JOIN first_sub f USING (account_id)),
    integ AS (
        SELECT s.as_of, s.account_id, coalesce(sum(x.integrations), 0) AS integrations_first_30d
        FROM start s LEFT JOIN daily x ON x.account_id = s.account_id
            AND x.day >= s.signup_day AND x.day < s.signup_day + 30 AND x.day <= s.as_of
        GROUP BY ALL),
    leaders AS (
        SELECT p.as_of, p.account_id, count(DISTINCT r.person_id) AS leaders_left
        FROM paid p JOIN relationship r ON r.account_id = p.account_id
            AND r.role IN {leaders} AND r.valid_to::DATE <= p.as_of
            AND r.valid_to::DATE > p.as_of - 90
        GROUP BY ALL),
    opp AS (
        SELECT p.as_of, p.account_id, count(*) AS open_opps,
            sum(o.amount::{EXACT})::DOUBLE AS opp_amount
        FROM paid p JOIN opps o ON o.account_id = p.account_id AND o.opened <= p.as_of
            AND (o.closed IS NULL OR o.closed > p.as_of)
        GROUP BY ALL),
    industry AS (
        SELECT d.as_of, h.entity_id AS account_id, any_value(lower(h.value)) AS industry
        FROM d JOIN history h ON h.entity_type = 'account' AND h.attribute = 'industry'
            AND h.valid_from::DATE <= d.as_of
            AND (h.valid_to IS NULL OR h.valid_to::DATE > d.as_of)
        GROUP BY ALL)
    SELECT p.account_id, p.as_of, p.mrr, p.plan_tier, coalesce(i.industry, 'unknown') AS industry,
        date_diff('day', s.signup_day, p.as_of) AS tenure_days,
        u.total_events, u.events_last_30d, u.events_last_7d, u.avg_adoption_score,
        date_diff('day', u.last_event_day, p.as_of) AS days_since_last_event,
        u.retention_signal_count, g.integrations_first_30d AS integration_connects_first_30d,
        u.tickets_last_30d, u.high_priority_tickets, u.avg_resolution_hours,
        date_diff('day', s.signup_day, p.as_of) <= 90 AS is_early_stage,
        u.events_last_90d, u.sessions_last_30d,
        CASE WHEN u.baseline_30d > 0 THEN (u.events_last_30d - u.baseline_30d) / u.baseline_30d
            END AS usage_vs_baseline,
        CASE WHEN u.events_prev_30d > 0
            THEN greatest(0, 1 - u.events_last_30d / u.events_prev_30d) END AS usage_decay_score,
        coalesce(l.leaders_left, 0) > 0 AS leader_left_90d,
        u.payment_failures_90d, p.is_past_due, u.compliance_gap_score, u.vendor_risk_flags,
        u.compliance_gap_score - u.compliance_gap_90d_ago AS compliance_gap_change_90d,
        u.premium_feature_trials_30d, u.feature_request_tickets_90d,
        coalesce(o.open_opps, 0) > 0 AS has_open_expansion_opp,
        coalesce(o.opp_amount, 0.0) AS expansion_opp_amount,
        -- greatest/least skip NULLs: a plan with no band has no position in it
        CASE WHEN {floor} IS NOT NULL AND {ceiling} IS NOT NULL THEN
            least(1, greatest(0, (p.mrr - {floor}) / ({ceiling} - {floor}))) END
            AS mrr_tier_ceiling_pct
    FROM paid p JOIN usage u USING (as_of, account_id) JOIN start s USING (as_of, account_id)
    JOIN integ g USING (as_of, account_id)
    LEFT JOIN leaders l USING (as_of, account_id) LEFT JOIN opp o USING (as_of, account_id)
    LEFT JOIN industry i USING (as_of, account_id)
    ORDER BY p.as_of, p.account_id"""


def labels_sql(features: str, vocab: Vocabulary | None = None) -> str:
    """Churned / upgraded within the HORIZON_DAYS after each row's as_of (never on or before
    it). `features`: a relation with account_id, as_of, plan_tier."""
    v = vocab or load_vocabulary()
    h = HORIZON_DAYS
    return f"""
    SELECT f.account_id, f.as_of,
        NOT EXISTS (SELECT 1 FROM sub_state st WHERE st.account_id = f.account_id
            AND st.attribute = 'status' AND st.value IN {in_list(v.billed_statuses)}
            AND st.valid_from <= f.as_of + {h}
            AND (st.valid_to IS NULL OR st.valid_to > f.as_of + {h})) AS churned_90d,
        EXISTS (SELECT 1 FROM ev e WHERE e.account_id = f.account_id
            AND e.event_name = 'plan_changed' AND e.event_date > f.as_of
            AND e.event_date <= f.as_of + {h}
            AND {upgrade_sql("e", v)}) AS upgraded_90d
    FROM ({features}) f"""


def upgrade_sql(event: str, vocab: Vocabulary) -> str:
    """SQL: the plan_changed event `event` (an alias of `ev`) moved to a higher tier (false when
    either plan is one the vocabulary does not know)."""
    plan = vocab.plan_rank_sql(f"json_extract_string({event}.properties, '$.plan')")
    before = vocab.plan_rank_sql(f"json_extract_string({event}.properties, '$.previous_plan')")
    return f"coalesce({plan} > {before}, false)"


def features_as_of(
    con: duckdb.DuckDBPyConnection, days: Sequence[date], vocab: Vocabulary | None = None
) -> pa.Table:
    """Feature rows for every account paying on each of `days` (call `prepare` first)."""
    con.register("_asof_days", pa.table({"as_of": pa.array(list(days), pa.date32())}))
    return con.sql(features_sql("SELECT as_of FROM _asof_days", vocab)).to_arrow_table()
