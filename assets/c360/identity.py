"""How sure the platform is that an account profile is one company's, and all of it.

Two things weaken it: a source record linked to the account by a rule that is not certain
(entities/identity_links.confidence below 1), and a pair still waiting in
entities/identity_review that would add a record to the account or merge it with another one
(the account may be missing part of its data, or be half of a company). The profile's
`identity_confidence` is the weakest of: each link's confidence, and 1 - the match probability
of each pending pair that involves the account; `identity_note` names the record behind it.
"""

from __future__ import annotations


def identity_sql(review: str = "SELECT * FROM identity_review") -> str:
    """account_id, identity_confidence, identity_note for every account that has a link or a
    pending pair. Expects the view `links` (entities/identity_links); `review` is a query of
    entities/identity_review (an empty table of its contract when it does not exist yet)."""
    return f"""
    WITH weakest_link AS (
        SELECT canonical_id AS account_id, min(confidence) AS confidence,
            arg_min(record_key || ' linked by rule ' || rule || ' (confidence '
                || round(confidence, 2) || ')', confidence) AS note
        FROM links WHERE entity_type = 'account' AND canonical_id IS NOT NULL GROUP BY 1),
    pending AS (
        SELECT left_canonical_id AS account_id, right_record AS other,
            right_canonical_id AS other_id, pair_id, match_probability
        FROM ({review}) WHERE entity_type = 'account' AND status = 'pending'
        UNION ALL
        SELECT right_canonical_id, left_record, left_canonical_id, pair_id, match_probability
        FROM ({review}) WHERE entity_type = 'account' AND status = 'pending'),
    open_pair AS (
        SELECT account_id, max(match_probability) AS probability,
            arg_max(CASE WHEN other_id IS NULL THEN other || ' may be this company''s record'
                    ELSE 'may be the same company as ' || other_id || ' (' || other || ')' END
                || ' (pending identity review ' || pair_id || ', match probability '
                || round(match_probability, 2) || ')', match_probability) AS note
        FROM pending WHERE account_id IS NOT NULL AND account_id IS DISTINCT FROM other_id
        GROUP BY 1)
    SELECT account_id,
        least(coalesce(w.confidence, 1), 1 - coalesce(o.probability, 0)) AS identity_confidence,
        CASE WHEN 1 - coalesce(o.probability, 0) < coalesce(w.confidence, 1) THEN o.note
            WHEN w.confidence < 1 THEN w.note END AS identity_note
    FROM weakest_link w FULL JOIN open_pair o USING (account_id)"""
