"""Model-output contracts: the score tables (champion and shadow challenger rows, each with the
model version that produced it and its reasons) and the feedback loop's prediction outcomes."""

from __future__ import annotations

from checks.contract import Column, TableContract, ts

RISK_BANDS = ("low", "medium", "high")
ROLES = ("champion", "challenger")


def scores_contract(table: str, what: str) -> TableContract:
    return TableContract(
        layer="ml",
        table=table,
        description=(
            f"{what} of every eligible account, one row per account, scoring day and model "
            "version: the champion's scores act; the challenger's (role challenger, shadow) are "
            "kept for comparison and never synced. reasons: the three features that raised the "
            "score most (SHAP), in words. Key: (account_id, scored_at, model_version). Scores "
            "of past days stay, for prediction_outcomes."
        ),
        columns=(
            Column("account_id", required=True, description="The canonical account scored."),
            Column("scored_at", "date", "The as-of day of the features scored.", required=True),
            Column("model_name", required=True, description="MLflow registered model."),
            Column("model_version", required=True, description="MLflow registry version."),
            Column(
                "role",
                required=True,
                accepted=ROLES,
                description="The version's registry alias when it scored.",
            ),
            Column("shadow", "bool", "True: recorded, never acted on.", required=True),
            Column(
                "probability",
                "float",
                "The model's probability of the outcome within 90 days.",
                required=True,
                min=0,
                max=1,
            ),
            Column(
                "risk_band",
                required=True,
                accepted=RISK_BANDS,
                description="The probability banded by the version's own thresholds "
                "(assets/ml/bands.py).",
            ),
            Column("reasons", description="Top three reasons (JSON list of strings)."),
            ts("scored_run_at", "When the scoring ran.", required=True),
        ),
        primary_key=(
            "account_id",
            "scored_at",
            "model_version",
        ),
    )


CHURN_SCORES = scores_contract("churn_scores", "Churn probability (90 days)")
EXPANSION_SCORES = scores_contract("expansion_scores", "Upgrade probability (90 days)")


PREDICTION_OUTCOMES = TableContract(
    layer="ml",
    table="prediction_outcomes",
    description=(
        "Past scores joined to what happened afterwards: every score (champion and shadow) "
        "whose 90-day window has passed, with the outcome read from the same labels the "
        "training sets use. Grain: one row per (model_name, model_version, account_id, "
        "scored_at). Realized AUC per scoring day and feature drift (PSI) are in the metadata "
        "and checks."
    ),
    columns=(
        Column("model_name", required=True, description="MLflow registered model."),
        Column("model_version", required=True, description="MLflow registry version."),
        Column("role", required=True, accepted=ROLES, description="Its role when it scored."),
        Column("account_id", required=True, description="The canonical account scored."),
        Column("scored_at", "date", "The as-of day of the features scored.", required=True),
        Column("probability", "float", "The score then.", required=True, min=0, max=1),
        Column("outcome", "bool", "Churned (or upgraded) within 90 days.", required=True),
    ),
    primary_key=("model_name", "model_version", "account_id", "scored_at"),
)
