"""Action confidence: how sure the platform is of the action it sends the CRM, not how risky
the account is (a 0.9 churn risk is a confident retention call, not a 0.9-confident one).

    action_confidence = model_reliability x data_freshness x identity_confidence

- model_reliability: the support of each band the action rests on (assets/ml/bands.py: from the
  champion version's holdout, how sure the platform is that the band's accounts are on the side
  of the high threshold the band says). A retention call rests on the churn band being high; an
  expansion conversation on the expansion band being high and the churn band not; monitor on
  neither band being high. A band whose version recorded no holdout evidence counts 0.
- data_freshness: 1 while the last day any source recorded something about the account
  (customer_360_accounts.last_recorded_on) is at most `stale_after_days` before the profile's
  as_of; then it halves with every further `stale_after_days`. The default, 31, is one billing
  month: a paying account hears from billing at least monthly, so a longer silence across every
  system means its data stopped arriving, not that it went quiet.
- identity_confidence: the profile's (assets/c360/identity.py): the weakest link of its records
  and any pending identity-review pair that would change it.

`none` (no model scores the account) claims nothing: its confidence is 1. An action below the
sync threshold waits in the review queue with `confidence_note`, which gives each factor and
the evidence behind it.
"""

from __future__ import annotations

import pyarrow as pa

from assets.ml import SPECS, bands
from resources.sql import ident

STALE_AFTER_DAYS = 31
# What each model's positive outcome is called, for the notes.
OUTCOME = {"churn": "churned", "expansion": "upgraded"}
EVIDENCE_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("model_version", pa.string()),
        ("band", pa.string()),
        ("support", pa.float64()),
        ("evidence", pa.string()),
    ]
)


def profile_versions(con) -> dict[str, set[str]]:
    """Model kind -> the versions whose scores the profile (view `c360`) carries."""
    out = {}
    for spec in SPECS:
        column = ident(f"{spec.kind}_model_version")
        rows = con.sql(f"SELECT DISTINCT {column} FROM c360").fetchall()
        out[spec.kind] = {v for (v,) in rows if v}
    return out


def evidence_table(versions: dict[str, set[str]], tracking_uri: str) -> pa.Table:
    """One row per (model kind, version, band) of the versions named: the band's support and
    its evidence in words. A version without recorded holdout evidence has no rows."""
    names = {s.kind: s.model_name for s in SPECS}
    rows = []
    for kind, wanted in versions.items():
        for version in sorted(v for v in wanted if v):
            evidence = bands.recorded(names[kind], version, tracking_uri)
            if evidence is not None:
                rows += evidence_rows(kind, version, evidence)
    return pa.Table.from_pylist(rows, schema=EVIDENCE_SCHEMA)


def evidence_rows(kind: str, version: str, evidence: bands.BandEvidence) -> list[dict]:
    """The rows of one version: each band with holdout evidence, its support, in words."""
    return [
        {
            "kind": kind,
            "model_version": version,
            "band": band,
            "support": evidence.support(band),
            "evidence": f"{kind} v{version} {band} band: {k} of {n} holdout rows "
            f"{OUTCOME[kind]} (high from {evidence.high:.2f})",
        }
        for band, (n, k) in evidence.holdout.items()
    ]


def _claim(kind: str, band: str) -> str:
    """The support of `kind`'s band for the action, 1 when the model did not score the account
    (it claims nothing), 0 when its version has no evidence."""
    return f"CASE WHEN {band} IS NULL THEN 1.0 ELSE coalesce({kind}_e.support, 0.0) END"


def confidence_sql(base: str, stale_after_days: int) -> str:
    """`base` plus model_reliability, data_freshness, action_confidence and confidence_note.
    `base` has next_best_action, churn_risk_band, expansion_band, data_age_days,
    identity_confidence, identity_note, churn/expansion model versions and unscored reasons;
    expects the view `band_evidence` (evidence_table)."""
    if stale_after_days < 1:
        raise ValueError(f"stale_after_days must be >= 1, got {stale_after_days}")
    s = stale_after_days
    churn, expansion = _claim("churn", "churn_risk_band"), _claim("expansion", "expansion_band")
    return f"""
    WITH scored AS (
        SELECT b.*,
            CASE b.next_best_action
                WHEN 'retention_call' THEN coalesce(churn_e.support, 0.0)
                WHEN 'expansion_conversation' THEN coalesce(expansion_e.support, 0.0) * {churn}
                WHEN 'monitor' THEN {churn} * {expansion}
                ELSE 1.0 END AS model_reliability,
            CASE WHEN b.data_age_days IS NULL THEN 0.0
                WHEN b.data_age_days <= {s} THEN 1.0
                ELSE pow(0.5, (b.data_age_days - {s}) / {s}.0) END AS data_freshness,
            CASE b.next_best_action
                WHEN 'retention_call' THEN churn_e.evidence
                ELSE concat_ws('; ', expansion_e.evidence, churn_e.evidence) END
                AS model_evidence
        FROM ({base}) b
        LEFT JOIN band_evidence churn_e ON churn_e.kind = 'churn'
            AND churn_e.model_version = b.churn_model_version
            AND churn_e.band = b.churn_risk_band
        LEFT JOIN band_evidence expansion_e ON expansion_e.kind = 'expansion'
            AND expansion_e.model_version = b.expansion_model_version
            AND expansion_e.band = b.expansion_band)
    SELECT * EXCLUDE (model_evidence),
        CASE WHEN next_best_action = 'none' THEN 1.0
            ELSE model_reliability * data_freshness * identity_confidence
            END AS action_confidence,
        CASE WHEN next_best_action = 'none' THEN 'no model scores the account: '
                || coalesce(churn_unscored_reason, expansion_unscored_reason, 'no score')
            ELSE printf('model %.2f (%s) x data %.2f (%s) x identity %.2f (%s)',
                model_reliability,
                coalesce(nullif(model_evidence, ''), 'no holdout evidence recorded for v'
                    || coalesce(churn_model_version, expansion_model_version)),
                data_freshness,
                CASE WHEN data_age_days IS NULL THEN 'nothing recorded about the account'
                    ELSE 'last record ' || data_age_days || ' day(s) before as_of, stale after '
                        || {s} END,
                identity_confidence, coalesce(identity_note, 'every record linked for certain'))
            END AS confidence_note
    FROM scored"""
