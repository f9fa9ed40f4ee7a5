"""Feature drift: has today's scoring population moved away from the one models learn from?

The reference is the population of the same features as of `REFERENCE_WEEKS` weeks before the
scoring day: the newest day whose 90-day outcome is known (what the next training set ends
with), taken on the same weekday as today, since usage features follow the week (an account
last seen on Friday is 1 day idle on a Saturday and 3 on a Monday). Comparing with the pooled
training set instead mixed many past dates, among them dates before a source's history began
and every weekday, so counters that grow with time and the weekly cycle read as drift on a
company where nothing changed.

Per feature, the population stability index (PSI) over bins of the reference: quantile bins
for a continuous feature, one bin per value for a discrete one (booleans, small counts,
categories), and a bin of its own for missing values, so a feed that stops (nulls) or a value
never seen before moves the index. A feature has drifted when its PSI is above `PSI_WARN` and
above what sampling noise alone gives two samples of these sizes one time in a hundred per
check (chi-square bound, Bonferroni over the features): two draws of 100 accounts from the same
population routinely differ by a PSI of 0.2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
from scipy.stats import chi2

from assets.features import asof

PSI_WARN = 0.2  # population stability index above which a feature has drifted
BINS = 10
FALSE_ALARM = 0.01  # chance that a check of an unchanged population flags any feature
REFERENCE_WEEKS = -(-asof.HORIZON_DAYS // 7)  # the label horizon, in whole weeks (13)
MISSING = "<missing>"
OTHER = "<not in reference>"


@dataclass(frozen=True)
class Drift:
    psi: float
    noise_bound: float  # PSI that sampling noise alone exceeds with probability FALSE_ALARM/F

    @property
    def drifted(self) -> bool:
        return self.psi > max(PSI_WARN, self.noise_bound)


def reference_day(scoring_day: date) -> date:
    """Same weekday, one label horizon (rounded up to whole weeks) before the scoring day."""
    return scoring_day - timedelta(weeks=REFERENCE_WEEKS)


def _labels(reference: list, current: list, discrete: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each value's bin, as a label shared by both samples."""
    if discrete:
        seen = {v for v in reference}
        return (
            np.array([MISSING if v is None else str(v) for v in reference], dtype=object),
            np.array(
                [MISSING if v is None else str(v) if v in seen else OTHER for v in current],
                dtype=object,
            ),
        )
    ref = np.array([np.nan if v is None else float(v) for v in reference], dtype=float)
    cur = np.array([np.nan if v is None else float(v) for v in current], dtype=float)
    finite = ref[~np.isnan(ref)]
    cuts = (
        np.unique(np.quantile(finite, np.linspace(0, 1, BINS + 1)[1:-1]))
        if len(finite)
        else np.zeros(0)
    )

    def label(x: np.ndarray) -> np.ndarray:
        # (-inf, c1], (c1, c2], ..., (ck, inf): a mass at one value (zeros) is a bin of its own
        idx = np.searchsorted(cuts, np.nan_to_num(x), side="left").astype(object)
        idx[np.isnan(x)] = MISSING
        return idx

    return label(ref), label(cur)


def psi_of(reference: Sequence, current: Sequence, discrete: bool) -> tuple[float, int]:
    """PSI of `current` against `reference` (values, None for missing) and the bins it used."""
    ref, cur = _labels(list(reference), list(current), discrete)
    bins = sorted(set(ref) | set(cur), key=str)
    if not len(ref) or not len(cur) or len(bins) < 2:
        return 0.0, max(len(bins), 1)
    # half a row per bin keeps a bin empty on one side finite, and changes nothing on a bin
    # empty on both
    e = np.array([(ref == b).sum() + 0.5 for b in bins]) / (len(ref) + 0.5 * len(bins))
    a = np.array([(cur == b).sum() + 0.5 for b in bins]) / (len(cur) + 0.5 * len(bins))
    return float(np.sum((a - e) * np.log(a / e))), len(bins)


def _discrete(column: pa.ChunkedArray, values: list) -> bool:
    numeric = pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal
    if not any(is_type(column.type) for is_type in numeric):
        return True  # strings (categories), booleans
    distinct = {v for v in values if v is not None}
    return len(distinct) <= BINS and all(float(v).is_integer() for v in distinct)


def feature_drift(
    reference: pa.Table, current: pa.Table, features: Sequence[str]
) -> dict[str, Drift]:
    """Drift of each feature of `current` against `reference`."""
    out = {}
    tests = max(len(features), 1)
    n, m = reference.num_rows, current.num_rows
    for f in features:
        ref = reference[f].to_pylist()
        cur = current[f].to_pylist()
        ref = [None if isinstance(v, float) and np.isnan(v) else v for v in ref]
        cur = [None if isinstance(v, float) and np.isnan(v) else v for v in cur]
        value, bins = psi_of(ref, cur, _discrete(reference[f], ref))
        if n and m and bins > 1:
            # n*m/(n+m) * PSI is about chi-square with bins - 1 degrees of freedom when both
            # samples come from one population
            bound = float(chi2.ppf(1 - FALSE_ALARM / tests, bins - 1)) * (1 / n + 1 / m)
        else:
            bound = float("inf")
        out[f] = Drift(round(value, 4), round(bound, 4))
    return out
