"""Events-layer contracts: the event tables' grain, key, columns and suite, declared once.

Event names are not a closed list: a stream event the vocabulary does not know is kept under
its snake_cased name and listed by a warning check (events_known_names), never refused. Rules
that need the batch (an account-scoped event with no account, an event in the future) are
counted in the batch summary and must be zero.
"""

from __future__ import annotations

from checks.contract import Column, Expectation, TableContract, configured, ts


def _zero(name: str) -> Expectation:
    return Expectation(
        "expect_column_values_to_be_between",
        {"column": name, "min_value": 0, "max_value": 0},
        on="batch",
    )


def _event_columns(scopes: tuple[str, ...], account: bool) -> tuple[Column, ...]:
    """The columns every event row carries, attributed to an account or not (the same builder
    writes both tables)."""
    return (
        Column("event_id", required=True, description="<source>:<source id>[:<name>]."),
        Column(
            "event_name",
            required=True,
            description="Canonical snake_case name (the vocabulary's, or the snake_cased name "
            "as it arrived when the vocabulary does not know it).",
        ),
        Column("event_date", "date", "UTC date of occurred_at (partition).", required=True),
        ts("occurred_at", "When it happened (UTC).", required=True),
        *(
            [Column("account_id", description="Canonical account (entities/account).")]
            if account
            else []
        ),
        Column(
            "person_id",
            description="Canonical person (entities/person).",
            identifies_person=True,
        ),
        Column(
            "scope",
            required=True,
            accepted=scopes,
            description="Whom the event is about first; account-scoped events need an account.",
        ),
        Column("source_system", required=True, description="System the event was read from."),
        Column("source_object", required=True, description="Object (raw table) it was read from."),
        Column("source_id", required=True, description="Id of the source record or event."),
        Column("properties", description="Event properties (JSON object)."),
        ts("_ingested_at", "When the source row was ingested.", required=True),
        ts("_built_at", "When this day was last rebuilt.", required=True),
    )


EVENTS_TABLE = TableContract(
    layer="events",
    table="events",
    description=(
        "One row per thing that happened, from every source, under one canonical snake_case "
        "name (the vocabulary's; a name it does not know is kept snake_cased and listed by the "
        "events_known_names check). Grain: one event; key: event_id "
        "(<system>/<object>:<source id>[:<name>]). Daily partitions by event_date (UTC); "
        "a run rewrites only the days it is asked for. account_id / person_id are canonical "
        "ids from entities/identity_links."
    ),
    columns=_event_columns(("account", "person"), account=True),
    primary_key=("event_id",),
    extra_expectations=(
        _zero("account_events_without_account"),
        _zero("events_in_future"),
        _zero("events_outside_partition"),
    ),
    partition_by=("event_date",),
)


UNATTRIBUTED_EVENTS = TableContract(
    layer="events",
    table="unattributed_events",
    description=(
        "Account-scoped events no identity link maps to an account, kept with the reason instead "
        "of dropped, so a gap in the identity map shows. Grain: one event; key: event_id (an "
        "event is here or in events/events, never both). Written with events/events, by the same "
        "runs and in the same daily partitions (event_date, UTC)."
    ),
    columns=(
        *_event_columns(("account",), account=False),
        Column(
            "reason",
            required=True,
            description="Why no account: no_canonical_account: <the account reference, or "
            "'no reference'>.",
        ),
    ),
    primary_key=("event_id",),
    partition_by=("event_date",),
    # An event nobody's account claims is kept only as evidence of the gap: an erasure deletes a
    # row naming the person rather than keeping it scrubbed.
    personal_record=True,
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
        primary_key=("account_id", "valid_from"),
        extra_expectations=(
            _zero("overlapping_intervals"),
            _zero("gaps_between_intervals"),
            _zero("accounts_without_one_current_state"),
        ),
    )
