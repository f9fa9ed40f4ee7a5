"""Customer 360 contracts: both profiles' grain, key, columns and suite, declared once.

Beyond column rules, the account profile is checked against the metric logic it must agree
with (counted in the batch summary, each must be zero): its MRR total equals the MRR of the
active subscriptions it covers, every account in a paying state has an active subscription, and
every model either scored an account or says why not.
"""

from __future__ import annotations

from checks.contract import Column, Expectation, TableContract, configured, ts
from checks.entities import ROLES
from checks.ml import RISK_BANDS

PAYING_STATES = ("paying", "at_risk", "expansion_candidate", "reactivated")


def _zero(name: str, tolerance: float = 0) -> Expectation:
    return Expectation(
        "expect_column_values_to_be_between",
        {"column": name, "min_value": 0, "max_value": tolerance},
        on="batch",
    )


def _count(name: str, description: str = "") -> Column:
    return Column(name, "int", description, required=True, min=0)


def _windows(prefix: str, what: str) -> tuple[Column, ...]:
    return tuple(
        _count(f"{prefix}_{n}d", f"{what} in the {n} days up to as_of.") for n in (7, 30, 90)
    )


def _scores(kind: str, what: str) -> tuple[Column, ...]:
    """A model's score of the profile's day, from its champion (ml/<kind>_scores), or why not."""
    table = f"ml/{kind}_scores"
    return (
        Column(
            f"{kind}_probability",
            "float",
            f"Probability of {what}, as scored by the {kind} champion for as_of ({table}); null "
            f"when it did not score the account ({kind}_unscored_reason says why).",
            min=0,
            max=1,
        ),
        Column(
            f"{kind}_band",
            description="Band of that probability (the model version's thresholds).",
            accepted=RISK_BANDS,
        ),
        Column(f"{kind}_model_version", description="MLflow registry version that scored it."),
        Column(f"{kind}_scored_at", "date", "The day the score describes: as_of."),
        Column(f"{kind}_reasons", description="What raised the score most, in words (JSON)."),
        Column(
            f"{kind}_unscored_reason",
            description="Why there is no score: not in the model's scoring population that day, "
            "no scores of that day yet, or no model yet. Null when scored.",
        ),
    )


ENGAGEMENT = (
    ts("last_seen_at", "Last product usage event."),
    ts("last_login_at", "Last session start."),
    Column("days_since_last_login", "int", "Days from the last session to as_of.", min=0),
    *_windows("sessions", "Sessions started"),
    *_windows("events", "Product usage events"),
)

CUSTOMER_360_ACCOUNTS = TableContract(
    layer="c360",
    table="customer_360_accounts",
    description=(
        "The account profile every consumer shares (dashboards, models, the CRM). Grain: one "
        "row per canonical account; key: account_id (persistent, from entities/account). "
        "Survivorship per field is declared in assets/c360/c360.yaml and the winner recorded in "
        "`survivorship`. Windows end at `as_of`, the freshest day of events/events. Scores: "
        "each champion model's score of that day (never a shadow model's, never another "
        "day's); an account a model did not score says why in `<model>_unscored_reason`."
    ),
    columns=(
        Column("account_id", required=True, description="Persistent canonical id."),
        Column("primary_source", required=True, description="System of record."),
        Column("source_ids", description="Source ids per system/object (JSON)."),
        Column("source_count", "int", min=1),
        Column("name", required=True),
        Column("domain"),
        Column("industry"),
        Column("employees", "int", min=0),
        Column("country", description="ISO-3166 alpha-2."),
        Column("owner_name", pii=True),
        Column("survivorship", required=True, description="Field -> winning source (JSON)."),
        Column(
            "identity_confidence",
            "float",
            "How sure the platform is that the profile is this one company's, and all of it: the "
            "weakest of its source records' link confidences (entities/identity_links) and, for "
            "each pair waiting in entities/identity_review that would add a record to it or "
            "merge it with another account, 1 - its match probability.",
            required=True,
            min=0,
            max=1,
        ),
        Column("identity_note", description="The record behind identity_confidence, when < 1."),
        Column(
            "last_recorded_on",
            "date",
            "Last day any source recorded something about the account (any event: usage, "
            "billing, CRM, support, consent, risk) up to as_of.",
        ),
        *ENGAGEMENT,
        _count("active_people_30d", "People with product usage in the last 30 days."),
        Column("plan", description="Tier of the largest active subscription."),
        Column("mrr", "float", "MRR of active (and past-due) subscriptions.", required=True, min=0),
        Column("arr", "float", "12 x MRR.", required=True, min=0),
        _count("active_subscriptions"),
        Column("paid_to_date", "float", "Paid invoices, all time.", required=True, min=0),
        Column(
            "lifetime_value_est",
            "float",
            "Estimate: paid to date + 12 months of current MRR.",
            required=True,
            min=0,
        ),
        _count("open_tickets"),
        _count("high_priority_open_tickets"),
        Column("resolution_hours_90d", "float", "Mean hours to solve, last 90 days.", min=0),
        Column("marketing_source", description="Lead source of the first CRM touch."),
        ts("first_touch_at", "First time any system saw the company."),
        ts("signup_at", "First workspace created."),
        _count("people_consenting_email", "Current people who granted email marketing."),
        ts("last_consent_at", "Latest consent answer of any of its people."),
        Column("lifecycle_state", description="Current state (events/account_lifecycle)."),
        Column("lifecycle_since", "date"),
        *_scores("churn", "churning (no subscription running 90 days later)"),
        *_scores("expansion", "upgrading to a higher plan in the next 90 days"),
        Column("as_of", "date", "Last day of events the windows see.", required=True),
    ),
    primary_key=("account_id",),
    extra_expectations=(
        _zero("mrr_total_difference", tolerance=0.01),
        _zero("paying_accounts_without_active_subscription"),
        _zero("scores_neither_given_nor_explained"),
    ),
)


@configured
def people_contract(consent_scopes: tuple[str, ...]) -> TableContract:
    """The person profile; one consent flag per scope the c360 rules declare."""
    return TableContract(
        layer="c360",
        table="customer_360_people",
        description=(
            "The person profile. Grain: one row per canonical person; key: person_id (persistent, "
            "from entities/person). Emails appear only as salted hashes (resources/pii.py). "
            "Consent flags are the latest answer per scope (null: never asked). account_id is the "
            "person's primary current account (admin > billing owner > champion > user > contact)."
        ),
        columns=(
            Column(
                "person_id",
                required=True,
                description="Persistent canonical id.",
                identifies_person=True,
            ),
            Column("source_ids", description="Source ids per system/object (JSON)."),
            Column("source_count", "int", min=1),
            Column("first_name", pii=True),
            Column("last_name", pii=True),
            Column("full_name", pii=True),
            Column("email_hash", description="Salted SHA-256 of the primary address."),
            Column("email_hashes", description="Salted hashes of every address (JSON)."),
            Column("title"),
            Column("survivorship", description="Field -> winning source (JSON)."),
            Column("account_id", description="Primary current account."),
            Column("role", accepted=ROLES),
            Column("accounts", description="Every current account and role (JSON)."),
            *ENGAGEMENT,
            _count("open_tickets"),
            *(Column(f"consent_{s}", "bool", f"Latest answer for {s}.") for s in consent_scopes),
            ts("last_consent_at", "Latest consent answer."),
            Column("marketing_source", description="Lead source of the CRM contact."),
            ts("first_seen_at", "First time any system saw the person."),
            Column("account_lifecycle_state", description="Current state of the primary account."),
            Column("as_of", "date", "Last day of events the windows see.", required=True),
        ),
        primary_key=("person_id",),
        personal_record=True,
    )
