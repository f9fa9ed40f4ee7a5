"""Account lifecycle: one state per account per day, from rules written once beside their meaning.

The sentence a person reads, the SQL that decides and the precedence between states must not
drift apart, so each rule is one `Rule` holding its plain-language definition and its DuckDB
expression, and the CASE that picks a day's state is generated from `rules()` in order. Rules are
evaluated over neutral daily facts (counts, first days, running totals) that use only what was
known on that day, so the state on a past day is the state that was true then. Results are
validity intervals stamped with the rule and rule-set version that produced them, so "what was
account X on day D" is a lookup and a changed rule is visible in the data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from checks.contract import TableContract
from checks.events import lifecycle_contract
from checks.vocabulary import Vocabulary, load_vocabulary
from resources.sql import in_list, literal

# The rules' code version; the vocabulary's thresholds and event categories they read are
# fingerprinted beside it (rule_set_version), so a changed threshold shows in the data.
RULE_SET_VERSION = "2026.11.1"
# The states in precedence order: the first rule that holds on a day gives that day's state.
STATES = (
    "churned",
    "reactivated",
    "at_risk",
    "expansion_candidate",
    "paying",
    "activated",
    "trial",
    "lead",
)
# Platform event names the rules read besides the vocabulary's product events.
RECORD_EVENTS = (
    "workspace_created",
    "invoice_payment_failed",
    "ticket_opened",
    "subscription_canceled",
)

# Conditions more than one rule builds on, written once.
PAYING = "active_paid_subscriptions > 0"
CHURNED = "paid_subscriptions_started > 0 AND active_subscriptions = 0"


@dataclass(frozen=True)
class Rule:
    """One lifecycle state: what it means, and the boolean that decides it for a day's facts."""

    state: str
    definition: str
    sql: str  # DuckDB expression over one row of the daily facts (see _facts_sql)


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names) or "none"


def rules(vocab: Vocabulary) -> tuple[Rule, ...]:
    """The rules in precedence order (STATES), their thresholds and events the vocabulary's."""
    t = vocab.lifecycle
    w = t.window_days
    usage = _names(vocab.events_counting("usage"))
    core = _names(vocab.events_counting("core_workflow"))
    trials = _names(vocab.events_counting("premium_trial"))
    urgent = " or ".join(vocab.urgent_priorities) or "urgent"
    out = (
        Rule(
            "churned",
            "Has paid before (a subscription with MRR > 0 started on or before the day) and has "
            "no subscription of any kind running that day: each one it started has ended (a "
            "subscription_canceled event or its end date on or before the day), with no "
            "re-subscription since.",
            CHURNED,
        ),
        Rule(
            "reactivated",
            "Came back: a paid subscription started on a day S while the account was churned the "
            f"day before, and the day is one of the {t.reactivated_days} days S to "
            f"S+{t.reactivated_days - 1}.",
            f"d < last_reactivation_day + {t.reactivated_days}",
        ),
        Rule(
            "at_risk",
            f"Paying, and in the {w} days ending that day: at least "
            f"{t.at_risk_payment_failures} invoice payment(s) failed, or at least "
            f"{t.at_risk_urgent_tickets} {urgent} tickets were opened, or usage events ({usage}) "
            f"were fewer than {t.at_risk_usage_drop:g} times those of the {w} days before, when "
            f"those were at least {t.at_risk_min_prior_usage}.",
            f"{PAYING} AND (payment_failures_w >= {t.at_risk_payment_failures}"
            f" OR urgent_tickets_w >= {t.at_risk_urgent_tickets}"
            f" OR (usage_prior_w >= {t.at_risk_min_prior_usage}"
            f" AND usage_w < {float(t.at_risk_usage_drop)!r} * usage_prior_w))",
        ),
        Rule(
            "expansion_candidate",
            f"Paying, and started at least {t.expansion_premium_trials} premium feature trial(s) "
            f"({trials}) in the {w} days ending that day.",
            f"{PAYING} AND premium_trials_w >= {t.expansion_premium_trials}",
        ),
        Rule(
            "paying",
            "At least one subscription with MRR > 0 that is not trialing runs that day (started "
            "on or before it, not ended by it).",
            PAYING,
        ),
        Rule(
            "activated",
            f"Within the {t.activation_days} days starting on the day of its first workspace "
            f"(that day to {t.activation_days - 1} days later) it invited at least "
            f"{t.activation_invites} users and completed a core workflow ({core}); activated from "
            "the day the last of these happened, onwards.",
            f"nth_invite_day < first_workspace_day + {t.activation_days}"
            f" AND first_core_day < first_workspace_day + {t.activation_days}"
            " AND greatest(nth_invite_day, first_core_day) <= d",
        ),
        Rule(
            "trial",
            "Created a workspace, or started a trialing subscription, on or before the day.",
            "first_workspace_day <= d OR trial_subscriptions_started > 0",
        ),
        Rule(
            "lead",
            "Known to us (first seen, as a CRM lead, on or before the day) and nothing above "
            "applies.",
            "first_day <= d",
        ),
    )
    assert tuple(r.state for r in out) == STATES
    return out


def rule_events(vocab: Vocabulary) -> tuple[str, ...]:
    """Every event name a rule reads; the rest of the event table is never scanned."""
    product = ("usage", "invite", "core_workflow", "premium_trial")
    names = (n for c in product for n in vocab.events_counting(c))
    return tuple(dict.fromkeys((*names, *RECORD_EVENTS)))


def rule_set_version(vocab: Vocabulary) -> str:
    """The code's version and a fingerprint of what the rules read from the vocabulary."""
    read = {
        "lifecycle": asdict(vocab.lifecycle),
        "events": {
            c: vocab.events_counting(c)
            for c in ("usage", "invite", "core_workflow", "premium_trial")
        },
        "urgent": vocab.urgent_priorities,
        "trialing": vocab.subscription_statuses["trialing"],
    }
    digest = hashlib.sha256(json.dumps(read, sort_keys=True).encode()).hexdigest()
    return f"{RULE_SET_VERSION}+{digest[:8]}"


def _utc_day(col: str) -> str:
    return f"timezone('UTC', {col})::DATE"


def _facts_sql(vocab: Vocabulary) -> str:
    """Per account and day d (first_day..as_of), the facts the rules read, all as of d.

    Subscription counts are running sums of +1 on a start day and -1 on an end day (the earlier of
    ended_at and a matching subscription_canceled event), so "running on d" is start <= d < end.
    They change only on those days, so they are computed on the change days alone and each grid
    day takes the latest change on or before it. Event counts are windows over a dense day grid
    per account, so a frame of N rows is N days.
    """
    t = vocab.lifecycle
    w = t.window_days
    core = vocab.counting_sql("core_workflow", "e.event_name")
    invite = vocab.counting_sql("invite", "e.event_name")
    trialing = in_list(vocab.subscription_statuses["trialing"])
    return f"""
    WITH acct AS (
        SELECT account_id, min({_utc_day("first_seen_at")}) AS first_day
        FROM _lc_accounts GROUP BY account_id HAVING first_day <= $as_of
    ),
    ev AS (
        SELECT account_id, {_utc_day("occurred_at")} AS day, event_name, properties
        FROM _lc_events
        WHERE account_id IN (SELECT account_id FROM acct)
          AND {_utc_day("occurred_at")} <= $as_of
          AND event_name IN {in_list(rule_events(vocab))}
    ),
    cancels AS (
        SELECT account_id, day, json_extract_string(properties, '$.subscription_id') AS sub_id
        FROM ev WHERE event_name = 'subscription_canceled'
    ),
    subs AS (
        SELECT s.account_id, s.start_day,
            least(s.ended_day, (
                SELECT min(c.day) FROM cancels c
                WHERE c.account_id = s.account_id AND c.day >= s.start_day
                  AND (c.sub_id = s.subscription_id OR c.sub_id IS NULL)
            )) AS end_day,
            (coalesce(s.mrr, 0) > 0 AND NOT coalesce(s.status IN {trialing}, false))::INT AS paid,
            coalesce(s.status IN {trialing}, false)::INT AS trialing
        FROM (
            SELECT *, {_utc_day("started_at")} AS start_day,
                -- an end before the start ends it on its start day (least/greatest skip NULLs)
                CASE WHEN ended_at IS NOT NULL
                    THEN greatest({_utc_day("ended_at")}, start_day) END AS ended_day
            FROM _lc_subscriptions WHERE account_id IN (SELECT account_id FROM acct)
        ) s
        WHERE s.start_day <= $as_of
    ),
    sub_days AS (
        SELECT account_id, day, sum(paid_delta) AS paid_delta, sum(active_delta) AS active_delta,
            sum(paid_started) AS paid_started_today, sum(trial_started) AS trial_started
        FROM (
            SELECT account_id, start_day AS day, paid AS paid_delta, 1 AS active_delta,
                paid AS paid_started, trialing AS trial_started
            FROM subs
            UNION ALL
            SELECT account_id, end_day, -paid, -1, 0, 0 FROM subs WHERE end_day <= $as_of
        )
        GROUP BY account_id, day
    ),
    sub_running AS (
        SELECT account_id, day, paid_started_today,
            sum(paid_delta) OVER upto AS active_paid_subscriptions,
            sum(active_delta) OVER upto AS active_subscriptions,
            sum(paid_started_today) OVER upto AS paid_subscriptions_started,
            sum(trial_started) OVER upto AS trial_subscriptions_started
        FROM sub_days
        WINDOW upto AS (PARTITION BY account_id ORDER BY day ROWS UNBOUNDED PRECEDING)
    ),
    sub_state AS (
        SELECT *, max(CASE WHEN paid_started_today > 0 AND churned_day_before THEN day END)
            OVER (PARTITION BY account_id ORDER BY day ROWS UNBOUNDED PRECEDING)
            AS last_reactivation_day
        FROM (
            -- nothing changes between change days: the previous one's state held the day before
            SELECT *, coalesce(lag({CHURNED}) OVER (PARTITION BY account_id ORDER BY day), false)
                AS churned_day_before,
                lead(day) OVER (PARTITION BY account_id ORDER BY day) AS next_day
            FROM sub_running
        )
    ),
    daily AS (  -- DOUBLE: windowed sums of integers accumulate in HUGEINT, about 2x slower
        SELECT account_id, day,
            count(*) FILTER (WHERE {vocab.counting_sql("usage")})::DOUBLE AS usage,
            count(*) FILTER (WHERE event_name = 'invoice_payment_failed')::DOUBLE
                AS payment_failures,
            count(*) FILTER (WHERE event_name = 'ticket_opened'
                AND {vocab.urgent_sql("json_extract_string(properties, '$.priority')")}
            )::DOUBLE AS urgent_tickets,
            count(*) FILTER (WHERE {vocab.counting_sql("premium_trial")})::DOUBLE
                AS premium_trials
        FROM ev GROUP BY account_id, day
    ),
    onboarding AS (
        SELECT w.account_id, w.first_workspace_day,
            list_sort(list(e.day) FILTER (WHERE {invite}))[{t.activation_invites}]
                AS nth_invite_day,
            min(e.day) FILTER (WHERE {core}) AS first_core_day
        FROM (
            SELECT account_id, min(day) AS first_workspace_day
            FROM ev WHERE event_name = 'workspace_created' GROUP BY account_id
        ) w
        LEFT JOIN ev e ON e.account_id = w.account_id AND e.day >= w.first_workspace_day
            AND ({invite} OR {core})
        GROUP BY w.account_id, w.first_workspace_day
    ),
    grid AS (  -- from 2w-1 days before the first day: the longest window (prior) reaches back
        SELECT account_id, first_day,
            unnest(generate_series(first_day - {2 * w - 1}, $as_of, INTERVAL 1 DAY))::DATE AS d
        FROM acct
    ),
    windowed AS (
        SELECT g.account_id, g.d, g.first_day,
            sum(coalesce(y.usage, 0)) OVER last_w AS usage_w,
            sum(coalesce(y.usage, 0)) OVER prior_w AS usage_prior_w,
            sum(coalesce(y.payment_failures, 0)) OVER last_w AS payment_failures_w,
            sum(coalesce(y.urgent_tickets, 0)) OVER last_w AS urgent_tickets_w,
            sum(coalesce(y.premium_trials, 0)) OVER last_w AS premium_trials_w
        FROM grid g LEFT JOIN daily y ON y.account_id = g.account_id AND y.day = g.d
        WINDOW last_w AS (PARTITION BY g.account_id ORDER BY g.d ROWS {w - 1} PRECEDING),
            prior_w AS (PARTITION BY g.account_id ORDER BY g.d
                ROWS BETWEEN {2 * w - 1} PRECEDING AND {w} PRECEDING)
    )
    SELECT w.*, o.first_workspace_day, o.nth_invite_day, o.first_core_day,
        coalesce(s.active_paid_subscriptions, 0) AS active_paid_subscriptions,
        coalesce(s.active_subscriptions, 0) AS active_subscriptions,
        coalesce(s.paid_subscriptions_started, 0) AS paid_subscriptions_started,
        coalesce(s.trial_subscriptions_started, 0) AS trial_subscriptions_started,
        s.last_reactivation_day
    FROM windowed w
    LEFT JOIN onboarding o ON o.account_id = w.account_id
    LEFT JOIN sub_state s ON s.account_id = w.account_id AND s.day <= w.d
        AND (w.d < s.next_day OR s.next_day IS NULL)
    WHERE w.d >= w.first_day
    """


def account_lifecycle(
    con: duckdb.DuckDBPyConnection,
    accounts: pa.Table,
    events: pa.Table | duckdb.DuckDBPyRelation,
    subscriptions: pa.Table,
    as_of: date,
    vocab: Vocabulary | None = None,
) -> pa.Table:
    """Lifecycle intervals per account, covering its first day..as_of without gaps or overlaps.

    One row per run of consecutive days in one state: valid_from inclusive, valid_to exclusive
    (null on the current interval, which runs to as_of and beyond until re-evaluated).
    `vocab`: the vocabulary whose thresholds and event names the rules read (default: active).
    """
    vocab = vocab or load_vocabulary()
    case = " ".join(f"WHEN {r.sql} THEN {literal(r.state)}" for r in rules(vocab))
    query = f"""
    WITH features AS ({_facts_sql(vocab)}),
    days AS (
        SELECT account_id, d, CASE {case} END AS state FROM features
    ),
    runs AS (
        SELECT *, d - row_number() OVER (PARTITION BY account_id, state ORDER BY d)::INT AS grp
        FROM days
    )
    SELECT account_id, state, min(d) AS valid_from,
        CASE WHEN max(d) < $as_of THEN max(d) + 1 END AS valid_to,
        state AS rule, {literal(rule_set_version(vocab))} AS rule_set_version,
        max(d) = $as_of AS is_current
    FROM runs GROUP BY account_id, state, grp ORDER BY account_id, valid_from
    """
    views = {"_lc_accounts": accounts, "_lc_events": events, "_lc_subscriptions": subscriptions}
    for name, table in views.items():
        con.register(name, table)
    try:
        out = con.sql(query, params={"as_of": as_of}).to_arrow_table()
    finally:
        for name in views:
            con.unregister(name)
    schema = lifecycle_table(vocab).schema
    return out.select(schema.names).cast(schema)


def state_at(lifecycle: pa.Table, account_id: str, day: date) -> str | None:
    """The state `account_id` was in on `day`; None before its first day or if unknown."""
    f = pc.field
    hit = lifecycle.filter(
        (f("account_id") == account_id)
        & (f("valid_from") <= day)
        & (f("valid_to").is_null() | (f("valid_to") > day))
    )
    return hit["state"][0].as_py() if hit.num_rows else None


def describe_rules(vocab: Vocabulary | None = None) -> str:
    """Markdown for the asset description: the states in precedence order, with their meaning."""
    vocab = vocab or load_vocabulary()
    head = (
        f"Lifecycle rules {rule_set_version(vocab)}; on each day the first rule that holds "
        "wins:\n\n"
    )
    return head + "\n".join(f"- **{r.state}**: {r.definition}" for r in rules(vocab))


def lifecycle_table(vocab: Vocabulary) -> TableContract:
    """The table's contract: its states are the rules', their definitions the vocabulary's."""
    return lifecycle_contract(list(STATES), describe_rules(vocab))
