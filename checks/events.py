"""Events-layer contracts: the event table's grain, key, columns and suite, declared once.

Event names are accepted from the event mapping (assets/events/events.yaml), so a name that is
not in the mapping cannot be published. Rules that need the batch (an account-scoped event with
no account, an event in the future) are counted in the batch summary and must be zero.
"""

from __future__ import annotations

from checks.contract import Column, Expectation, TableContract, configured


def _zero(name: str) -> Expectation:
    return Expectation(
        "expect_column_values_to_be_between",
        {"column": name, "min_value": 0, "max_value": 0},
        on="batch",
    )


@configured
def events_contract(event_names: list[str]) -> TableContract:
    return TableContract(
        layer="events",
        table="events",
        description=(
            "One row per thing that happened, from every source, under one canonical snake_case "
            "name (assets/events/events.yaml). Grain: one event; key: event_id "
            "(<system>/<object>:<source id>[:<name>]). Daily partitions by event_date (UTC); "
            "a run rewrites only the days it is asked for. account_id / person_id are canonical "
            "ids from entities/identity_links."
        ),
        columns=(
            Column("event_id", required=True, description="<source>:<source id>[:<name>]."),
            Column("event_name", required=True, accepted=tuple(event_names)),
            Column("event_date", "date", "UTC date of occurred_at (partition).", required=True),
            Column("occurred_at", "timestamp", "When it happened (UTC).", required=True),
            Column("account_id", description="Canonical account (entities/account)."),
            Column("person_id", description="Canonical person (entities/person)."),
            Column(
                "scope",
                required=True,
                accepted=("account", "person"),
                description="Whom the event is about first; account-scoped events need an account.",
            ),
            Column("source_system", required=True),
            Column("source_object", required=True),
            Column("source_id", required=True),
            Column("properties", description="Event properties (JSON object)."),
            Column("_ingested_at", "timestamp", "When the source row was ingested.", required=True),
            Column("_built_at", "timestamp", "When this day was last rebuilt.", required=True),
        ),
        primary_key=("event_id",),
        extra_expectations=(
            _zero("account_events_without_account"),
            _zero("events_in_future"),
            _zero("events_outside_partition"),
        ),
        partition_by=("event_date",),
    )


@configured
def lifecycle_contract(states: list[str], definitions: str) -> TableContract:
    return TableContract(
        layer="events",
        table="account_lifecycle",
        description=(
            "The history of each account's lifecycle state as validity intervals. Grain: one "
            "row per (account_id, valid_from); valid_to is exclusive and null on the current "
            "interval. Intervals of an account never overlap and cover its life without gaps; "
            "`rule` and `rule_set_version` name what decided each interval. The state on day D "
            "is the row with valid_from <= D < coalesce(valid_to, infinity).\n\n"
            f"States, first matching rule wins:\n\n{definitions}"
        ),
        columns=(
            Column("account_id", required=True, description="Canonical account."),
            Column("state", required=True, accepted=tuple(states)),
            Column("valid_from", "date", "First day in this state.", required=True),
            Column("valid_to", "date", "Day after the last day in this state (exclusive)."),
            Column("rule", required=True, accepted=tuple(states)),
            Column("rule_set_version", required=True),
            Column("is_current", "bool", "The account's state today.", required=True),
        ),
        primary_key=(
            "account_id",
            "valid_from",
        ),
        extra_expectations=(
            _zero("overlapping_intervals"),
            _zero("gaps_between_intervals"),
            _zero("accounts_without_one_current_state"),
        ),
    )
