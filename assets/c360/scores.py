"""The model scores an account profile carries: each champion's score of the profile's own
as_of day, never a shadow model's and never another day's; or, when there is none, why.

One rule for "the account's current score": the CRM updates read it from the profile.
"""

from __future__ import annotations

from datetime import date

from assets.ml import SPECS
from resources.sql import literal

SCORE_FIELDS = ("probability", "band", "model_version", "scored_at", "reasons", "unscored_reason")
# Profile column -> score table column, per model (`churn_probability` <- churn_scores.probability)
SOURCE_COLUMN = {
    "probability": "probability",
    "band": "risk_band",
    "model_version": "model_version",
    "scored_at": "scored_at",
    "reasons": "reasons",
}


def score_columns() -> list[str]:
    return [f"{s.kind}_{f}" for s in SPECS for f in SCORE_FIELDS]


def _one_model(kind: str, who: str, as_of: date, present: bool) -> tuple[str, str]:
    """(CTEs, select list) of one model's columns; `present`: its score table exists."""
    day = f"DATE {literal(as_of)}"
    if not present:
        cols = ", ".join(
            f"NULL::{'DATE' if f == 'scored_at' else 'DOUBLE' if f == 'probability' else 'VARCHAR'}"
            f" AS {kind}_{f}"
            for f in SCORE_FIELDS[:-1]
        )
        return "", f"{cols}, {literal(f'no {kind} model has scored yet')} AS {kind}_unscored_reason"
    ctes = f"""
    {kind}_champion AS (SELECT * FROM {kind}_scores WHERE role = 'champion' AND NOT shadow),
    {kind}_today AS (SELECT * FROM {kind}_champion WHERE scored_at = {day}
        QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY scored_run_at DESC) = 1),
    {kind}_days AS (SELECT max(scored_at) AS latest,
            count(*) FILTER (WHERE scored_at = {day}) AS scored_today
        FROM {kind}_champion),"""
    cols = ", ".join(f"{kind}_today.{SOURCE_COLUMN[f]} AS {kind}_{f}" for f in SCORE_FIELDS[:-1])
    reason = f"""CASE WHEN {kind}_today.account_id IS NOT NULL THEN NULL
            WHEN (SELECT scored_today FROM {kind}_days) > 0
                THEN {literal(f"not in the {kind} scoring population on {as_of} ({who})")}
            WHEN (SELECT latest FROM {kind}_days) IS NULL
                THEN {literal(f"no {kind} model has scored yet")}
            ELSE {literal(f"no {kind} scores of {as_of}: the latest are of ")}
                || (SELECT latest FROM {kind}_days) || {literal(f" (run ml/{kind}_scores)")}
        END AS {kind}_unscored_reason"""
    return ctes, f"{cols}, {reason}"


def scores_sql(as_of: date, present: set[str]) -> str:
    """One row per account of the view `account`, each model's score columns (score_columns()).
    Expects a view `<kind>_scores` for each kind in `present` (the score tables that exist)."""
    parts = [_one_model(s.kind, s.population_note, as_of, s.kind in present) for s in SPECS]
    joins = " ".join(
        f"LEFT JOIN {s.kind}_today ON {s.kind}_today.account_id = a.account_id"
        for s in SPECS
        if s.kind in present
    )
    ctes = "".join(c for c, _ in parts).rstrip(",")
    with_ = f"WITH {ctes}" if ctes.strip() else ""
    return f"""{with_}
    SELECT a.account_id, {", ".join(cols for _, cols in parts)}
    FROM account a {joins}"""
