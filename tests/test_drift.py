"""Feature drift (ml/prediction_outcomes' `<kind>_feature_drift` checks): a company where
nothing changed passes, a genuine shift fails and names the feature."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from conftest import Lakehouse

DRIFT_CHECKS = ("churn_feature_drift", "expansion_feature_drift")


def _checks(result) -> dict[str, object]:
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_both_drift_checks_pass_on_an_undrifted_demo_company(full_lake: Lakehouse):
    """The sample company's world does not change over its window: neither check may warn."""
    result = full_lake.materialize("ml/prediction_outcomes")
    assert result.success
    checks = _checks(result)
    for name in DRIFT_CHECKS:
        check = checks[name]
        assert check.passed, (name, check.metadata["drifted"].value)
        assert check.metadata["psi"].value  # it measured something: not a skipped check


@pytest.fixture(scope="module")
def populations(full_lake: Lakehouse) -> dict[str, tuple[pa.Table, pa.Table]]:
    """Per model: the reference population and today's mart, as the check reads them."""
    from assets.events.build import register_current_events
    from assets.features import INPUTS, asof
    from assets.ml import _drift_references

    lake = full_lake.lake
    con = duckdb.connect()
    register_current_events(con, lake)
    for name, (layer, table) in INPUTS.items():
        con.register(name, lake.dataset(layer, table))
    asof.prepare(con)
    return _drift_references(con, lake)


def _scaled(table: pa.Table, feature: str, factor: float) -> pa.Table:
    i = table.schema.get_field_index(feature)
    scaled = pc.multiply(table[feature].cast(pa.float64()), factor)
    return table.set_column(i, feature, scaled.cast(table.schema.field(feature).type, safe=False))


@pytest.mark.parametrize(
    ("kind", "feature", "factor"),
    [
        ("churn", "mrr", 2.0),  # a currency switch: every amount doubled
        ("churn", "events_last_30d", 0.4),  # the usage feed lost most of its events
        ("expansion", "avg_adoption_score", 0.5),  # a rescaled score
    ],
)
def test_a_genuine_shift_fails_the_check_naming_the_feature(populations, kind, feature, factor):
    from assets.ml import SPECS, drift_check

    spec = next(s for s in SPECS if s.kind == kind)
    reference, today = populations[kind]
    assert drift_check(spec, reference, today).passed  # unchanged, it passes
    check = drift_check(spec, reference, _scaled(today, feature, factor))
    assert not check.passed
    assert set(check.metadata["drifted"].value) == {feature}  # that one, and only that one
    assert feature in check.description


def test_a_feed_that_stops_reads_as_drift(populations):
    """A third of the accounts lose a feature (nulls): missing values have a bin of their own."""
    from assets.ml import SPECS, drift_check

    spec = SPECS[0]
    reference, today = populations["churn"]
    feature = "compliance_gap_score"
    i = today.schema.get_field_index(feature)
    lost = pa.array(np.arange(today.num_rows) % 3 == 0)
    nulls = pc.if_else(lost, pa.scalar(None, today[feature].type), today[feature])
    check = drift_check(spec, reference, today.set_column(i, feature, nulls))
    assert not check.passed and set(check.metadata["drifted"].value) == {feature}


def test_a_boolean_or_zero_heavy_feature_that_shifts_is_seen():
    """Quantile edges collapse on a flag (all its deciles are 0 or 1): the old binning put both
    values in one bin, so a flag could never drift."""
    from assets.ml.drift import feature_drift

    rng = np.random.default_rng(5)
    n = 600
    reference = pa.table(
        {
            "is_past_due": rng.random(n) < 0.05,
            "tickets": np.where(rng.random(n) < 0.8, 0, rng.poisson(2, n)),
        }
    )
    current = pa.table(
        {
            "is_past_due": rng.random(n) < 0.30,
            "tickets": np.where(rng.random(n) < 0.3, 0, rng.poisson(2, n)),
        }
    )
    drift = feature_drift(reference, current, ["is_past_due", "tickets"])
    assert drift["is_past_due"].drifted and drift["tickets"].drifted
    same = feature_drift(reference, reference, ["is_past_due", "tickets"])
    assert not any(d.drifted for d in same.values())


def test_two_small_samples_of_one_population_do_not_drift():
    """100 accounts against 100 from the same population: sampling noise alone gives PSIs near
    0.2 with ten bins, which must not read as drift."""
    from assets.ml.drift import feature_drift

    rng = np.random.default_rng(11)
    features = [f"f{i}" for i in range(25)]

    def sample(n: int) -> pa.Table:
        return pa.table({f: rng.lognormal(3, 1, n) for f in features})

    flagged = 0
    for _ in range(20):
        drift = feature_drift(sample(100), sample(100), features)
        flagged += any(d.drifted for d in drift.values())
        assert max(d.psi for d in drift.values()) > 0.1  # the noise is real at this size
    assert flagged <= 1  # about 1% of checks by design
