"""Model-output contracts: the score tables (champion and shadow challenger rows, each with the
model version that produced it and its reasons)."""

from __future__ import annotations

from checks.contract import Column, TableContract

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
            Column("account_id", required=True),
            Column("scored_at", "date", "The as-of day of the features scored.", required=True),
            Column("model_name", required=True),
            Column("model_version", required=True, description="MLflow registry version."),
            Column("role", required=True, accepted=ROLES),
            Column("shadow", "bool", "True: recorded, never acted on.", required=True),
            Column("probability", "float", required=True, min=0, max=1),
            Column("risk_band", required=True, accepted=RISK_BANDS),
            Column("reasons", description="Top three reasons (JSON list of strings)."),
            Column("scored_run_at", "timestamp", "When the scoring ran.", required=True),
        ),
        primary_key=(
            "account_id",
            "scored_at",
            "model_version",
        ),
    )


CHURN_SCORES = scores_contract("churn_scores", "Churn probability (90 days)")
EXPANSION_SCORES = scores_contract("expansion_scores", "Upgrade probability (90 days)")
