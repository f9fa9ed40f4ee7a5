"""Entity-layer contracts: grain, key, columns and suite of each table, declared once.

Suites check what every later join relies on: unique keys, every source record linked exactly
once, confidences in [0, 1], accepted roles. Plan tiers are not a closed list (a plan the
vocabulary does not know is kept as it arrived, listed by a warning). Foreign keys (a
workspace's account, a relationship's person) are checked against the referenced table's current
ids at run time: the asset adds `expect_column_values_to_be_in_set` with those ids to the suite
below.
"""

from __future__ import annotations

from checks.contract import Column, TableContract, ts, unique  # noqa: F401 (unique: re-export)

ENTITY_TYPES = ("account", "person")
# Strongest first: a record's link names the strongest rule that joined it.
LINK_RULES = (
    "stable_id",
    "confirmed_decision",
    "verified_domain",
    "email",
    "email_domain",
    "member_domain",
    "scored_match",
    "own_record",
)
ROLES = ("admin", "end_user", "billing_owner", "champion", "contact", "former_user")


def _entity(
    table: str,
    description: str,
    *columns: Column,
    key: tuple[str, ...],
    personal_record: bool = False,
) -> TableContract:
    return TableContract(
        layer="entities",
        table=table,
        description=description,
        columns=columns,
        primary_key=key,
        personal_record=personal_record,
    )


CONFIDENCE = Column(
    "confidence", "float", "How sure the rule is, in [0, 1].", required=True, min=0, max=1
)

IDENTITY_LINKS = _entity(
    "identity_links",
    "The identity map: every source record of every system -> its canonical id, with the rule "
    "that linked it and a confidence. Grain: one row per (entity_type, record_key); key: "
    "(entity_type, record_key). canonical_id is null for a company record that reaches no "
    "account of the system of record (listed in entities/unmapped_ids).",
    Column("entity_type", required=True, accepted=ENTITY_TYPES),
    Column("system", required=True),
    Column("object", required=True),
    Column(
        "source_id",
        description="The record's id in its system (a person's, for a person record).",
        required=True,
        identifies_person=True,
    ),
    Column(
        "record_key",
        description="<system>/<object>:<source_id>",
        required=True,
        identifies_person=True,
    ),
    Column(
        "canonical_id",
        description="account_id or person_id; persistent across runs.",
        identifies_person=True,
    ),
    Column("rule", required=True, accepted=LINK_RULES),
    CONFIDENCE,
    ts("linked_at", "When this record was first linked to this canonical id.", required=True),
    key=("entity_type", "record_key"),
    personal_record=True,
)
IDENTITY_REVIEW = _entity(
    "identity_review",
    "Pairs scored between the review and merge thresholds: kept apart until a person decides. "
    "Grain: one row per candidate pair; key: pair_id. Confirm by adding a row to the identity "
    "decisions file (`python -m assets.entities.decide <pair_id> same|different`).",
    Column("pair_id", required=True),
    Column("entity_type", required=True, accepted=ENTITY_TYPES),
    Column(
        "left_record", "string", "Record key of one side.", required=True, identifies_person=True
    ),
    Column(
        "right_record",
        "string",
        "Record key of the other side.",
        required=True,
        identifies_person=True,
    ),
    Column("left_canonical_id", "string", "Its canonical id now.", identifies_person=True),
    Column("right_canonical_id", "string", "Its canonical id now.", identifies_person=True),
    Column("match_probability", "float", required=True, min=0, max=1),
    Column("match_weight", "float"),
    Column(
        "evidence",
        "string",
        "Comparison level reached by each compared field (JSON): which fields agreed and how "
        "well; `exclusive_key` names an exclusive key whose values differ (not merged).",
    ),
    Column(
        "left_attributes",
        "string",
        "The compared values as a reviewer may see them (JSON): personal values masked (an "
        "initial, a birth year, last digits) beside their salted hash `<field>_hash`.",
        pii=True,
    ),
    Column(
        "right_attributes",
        "string",
        "The other side's values, masked and hashed as left_attributes (JSON).",
        pii=True,
    ),
    Column("status", required=True, accepted=("pending",)),
    ts("queued_at", required=True),
    key=("pair_id",),
    personal_record=True,
)
IDENTITY_MERGES = _entity(
    "identity_merges",
    "Every change of a known canonical id, append-only: two entities found to be one (`merged`: "
    "old_id now resolves to surviving_id) or one split by a decision (`split`: some records "
    "moved from old_id to surviving_id). Grain: one row per change.",
    Column("entity_type", required=True, accepted=ENTITY_TYPES),
    Column(
        "old_id", "string", "The canonical id that changed.", required=True, identifies_person=True
    ),
    Column(
        "surviving_id",
        "string",
        "The canonical id its records resolve to now.",
        required=True,
        identifies_person=True,
    ),
    Column("action", required=True, accepted=("merged", "split")),
    ts("recorded_at", required=True),
    key=("entity_type", "old_id", "surviving_id", "action", "recorded_at"),
    personal_record=True,
)
UNMAPPED_IDS = _entity(
    "unmapped_ids",
    "The audit of gaps: source ids that reach no canonical account. Company records matched to "
    "no account of the system of record, people linked to no account, and ids other tables "
    "reference that no source record carries. Grain: one row per (entity_type, system, object, "
    "source_id, reason, referenced_from).",
    Column("entity_type", required=True, accepted=ENTITY_TYPES),
    Column("system", required=True),
    Column("object", required=True),
    Column(
        "source_id",
        description="The unmapped id (a person's, for a person record).",
        required=True,
        identifies_person=True,
    ),
    Column(
        "reason",
        required=True,
        accepted=("no_system_of_record_match", "no_account", "dangling_reference"),
    ),
    Column("referenced_from", description="The table or source holding a dangling reference."),
    Column("references", "int", "Rows referring to the id.", required=True, min=1),
    ts("detected_at", required=True),
    key=("entity_type", "system", "object", "source_id", "reason", "referenced_from"),
    personal_record=True,
)
ACCOUNT = _entity(
    "account",
    "The canonical company. Grain: one row per company known to the system of record (CRM); "
    "key: account_id (persistent). Survivorship: CRM wins firmographics, billing wins the "
    "ISO country; `survivorship` records the winner per field.",
    Column("account_id", required=True),
    Column("name", required=True),
    Column("domain", description="Verified company domain."),
    Column("industry"),
    Column("employees", "int", min=0),
    Column("country", description="ISO-3166 alpha-2."),
    Column(
        "crm_type",
        description="The system of record's lifecycle stage, as that CRM names it (the anchor "
        "object's role field lifecycle_stage); its values are the company's, not the platform's.",
    ),
    Column("owner_name", pii=True),
    Column("primary_crm_account_id", required=True),
    Column("source_ids", description="Source ids per system/object (JSON)."),
    Column("source_count", "int", min=1),
    ts("first_seen_at"),
    ts("updated_at"),
    Column("survivorship", description="Which system each field came from (JSON)."),
    key=("account_id",),
)
PERSON = _entity(
    "person",
    "The canonical human. Grain: one row per person; key: person_id (persistent). Emails are "
    "attributes, never keys. Survivorship, per field: the catalog's person objects in trust "
    "order (`trusted_for`, then catalog order), then ticket requesters; within one, a personal "
    "address over a mail provider's.",
    Column("person_id", required=True, identifies_person=True),
    Column("first_name", pii=True),
    Column("last_name", pii=True),
    Column("full_name", pii=True),
    Column(
        "email_hash",
        description="Salted SHA-256 of the primary address (resources/pii.py); never the address.",
        identifies_person=True,
    ),
    Column(
        "email_hashes",
        description="Salted hashes of every address seen (JSON).",
        identifies_person=True,
    ),
    Column(
        "source_ids", description="Source ids per system/object (JSON).", identifies_person=True
    ),
    Column("source_count", "int", min=1),
    ts("first_seen_at"),
    ts("last_seen_at"),
    Column("survivorship", description="Which system each field came from (JSON)."),
    key=("person_id",),
    personal_record=True,
)
WORKSPACE = _entity(
    "workspace",
    "The product surface where usage happens. Grain: one row per product workspace; key: "
    "workspace_id (the product's own stable id). account_id is null when the workspace reaches "
    "no account (see unmapped_ids).",
    Column("workspace_id", required=True),
    Column("account_id"),
    Column("name"),
    Column("billing_customer_id"),
    ts("created_at", required=True),
    ts("deleted_at"),
    Column("is_deleted", "bool", required=True),
    Column("active_users", "int", required=True, min=0),
    ts("updated_at", required=True),
    key=("workspace_id",),
)
SUBSCRIPTION = _entity(
    "subscription",
    "The commercial agreement. Grain: one row per billing subscription; key: subscription_id. "
    "Current plan, MRR and status; the first plan and the first upgrade; every change of plan, "
    "MRR and status is in entities/attribute_history.",
    Column("subscription_id", required=True),
    Column("account_id"),
    Column("billing_customer_id", required=True),
    Column(
        "plan_tier",
        required=True,
        description="The vocabulary's plan tier, or the plan as it arrived when it knows none.",
    ),
    Column("mrr", "float", required=True, min=0),
    Column("seats", "int", min=0),
    Column(
        "status",
        required=True,
        description="As it arrived; what it means (running, trialing, canceled) is the "
        "vocabulary's subscription_statuses.",
    ),
    ts("started_at", required=True),
    ts("ended_at"),
    Column("first_plan_tier", required=True, description="Plan tier of the first version."),
    ts("upgraded_at", "First version on a higher tier than the first plan."),
    ts("current_period_end"),
    ts("updated_at", required=True),
    key=("subscription_id",),
)
RELATIONSHIP = _entity(
    "relationship",
    "Person x account x role over time: admin, end user, billing owner, CRM contact, former "
    "user. Grain: one row per (person, account, source record, role interval); key: (person_id, "
    "account_id, source_record, valid_from). valid_to is null while the role holds.",
    Column("person_id", required=True, identifies_person=True),
    Column("account_id", required=True),
    Column("role", required=True, accepted=ROLES),
    ts("valid_from", required=True),
    ts("valid_to"),
    Column("is_current", "bool", required=True),
    Column(
        "source_record",
        description="Record key of the person's source record.",
        required=True,
        identifies_person=True,
    ),
    key=("person_id", "account_id", "source_record", "valid_from"),
    personal_record=True,
)
ATTRIBUTE_HISTORY = _entity(
    "attribute_history",
    "Slowly changing attributes as validity intervals (plan, MRR and status of a subscription; "
    "industry, owner, CRM type and size of an account; a person's title), so what was true at "
    "any moment is a query: valid_from <= t < coalesce(valid_to, +inf). Grain: one row per "
    "(entity, attribute, source record, interval).",
    Column("entity_type", required=True, accepted=("account", "subscription", "person")),
    Column(
        "entity_id",
        description="account_id, subscription_id or person_id (a person's title).",
        required=True,
        identifies_person=True,
    ),
    Column("attribute", required=True),
    Column(
        "value",
        description="The attribute's value; an account's owner is a person's name.",
        pii=True,
    ),
    ts("valid_from", required=True),
    ts("valid_to"),
    Column("is_current", "bool", required=True),
    Column(
        "source_record",
        description="Record key of the version (a CRM contact's, for a title).",
        required=True,
        identifies_person=True,
    ),
    key=("entity_type", "entity_id", "attribute", "source_record", "valid_from"),
    personal_record=True,
)

IDENTITY_TABLES = (IDENTITY_LINKS, IDENTITY_REVIEW, IDENTITY_MERGES, UNMAPPED_IDS)
ENTITY_TABLES = (ACCOUNT, PERSON, WORKSPACE, SUBSCRIPTION, RELATIONSHIP, ATTRIBUTE_HISTORY)
