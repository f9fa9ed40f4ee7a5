"""Scored matching with Splink on DuckDB: the pairs the deterministic rules left apart.

Input is one row per cluster the earlier rules built (its representative attributes), so the
library only sees the hard cases. Comparisons, blocking, priors and m/u probabilities come from
the rules file and its learned weights (assets/entities/weights.py); a run trains only when the
rules have no weights yet (assets/entities/train.py), so the same data always scores the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import duckdb
import pyarrow as pa

from assets.entities.rules import Scoring
from resources.duckdb import connect
from resources.sql import literal

PAIR_COLUMNS = ("unique_id_l", "unique_id_r", "match_probability", "match_weight")


def score_pairs(
    candidates: pa.Table,
    scoring: Scoring,
    db: duckdb.DuckDBPyConnection | None = None,
    labelled: Callable[[], pa.Table] | None = None,
) -> pa.Table:
    """Scored pairs of `candidates` rows (by `unique_id`) at or above the review threshold.

    Returns the pair, the probability and weight, and one `gamma_<comparison>` label column per
    comparison naming the level that matched (the evidence a reviewer reads). `labelled`: the
    records by the cluster the earlier rules built, should the weights be trained from labels.
    """
    empty = pa.table(
        {
            "unique_id_l": pa.array([], pa.string()),
            "unique_id_r": pa.array([], pa.string()),
            "match_probability": pa.array([], pa.float64()),
            "match_weight": pa.array([], pa.float64()),
            "evidence": pa.array([], pa.string()),
        }
    )
    if candidates.num_rows < 2:
        return empty
    from splink import DuckDBAPI, Linker  # imported lazily: ~0.7 s

    from assets.entities.train import fitted

    con = db.cursor() if db is not None else connect()
    scoring = fitted(candidates, scoring, con, labelled)
    db_api = DuckDBAPI(connection=con)
    df = db_api.register(candidates, dataset_display_name="candidates")
    settings = scoring.splink_settings()
    settings["retain_intermediate_calculation_columns"] = True
    linker = Linker(df, settings, log_level=logging.WARNING)
    pred = linker.inference.predict(threshold_match_probability=scoring.review)
    name = pred.physical_name
    labels = []
    for comp in scoring.comparisons:
        levels = [lv for lv in comp.levels]
        nulls = [lv for lv in levels if lv.null]
        ordered = [*nulls, *[lv for lv in levels if not lv.null]]
        # Splink numbers levels from the last (ELSE) down to 0, the null level being -1.
        n = len(ordered) - len(nulls)
        whens = [f"WHEN gamma_{comp.name} = -1 THEN {literal(nulls[0].label)}"] if nulls else []
        for i, lv in enumerate(lv for lv in ordered if not lv.null):
            whens.append(f"WHEN gamma_{comp.name} = {n - 1 - i} THEN {literal(lv.label)}")
        labels.append(f"{literal(comp.name)}, CASE {' '.join(whens)} END")
    evidence = f"to_json(json_object({', '.join(labels)}))::VARCHAR" if labels else "'{}'"
    out = con.sql(
        f"""SELECT unique_id_l::VARCHAR AS unique_id_l, unique_id_r::VARCHAR AS unique_id_r,
                match_probability::DOUBLE AS match_probability,
                match_weight::DOUBLE AS match_weight, {evidence} AS evidence
            FROM {name} ORDER BY unique_id_l, unique_id_r"""
    ).to_arrow_table()
    con.close()
    return out
