"""Risk bands, and the holdout evidence behind them, per registered model version.

A band compares a score with the model's usual outcome rate, in odds: `medium` from
`MEDIUM_ODDS` times the odds of the holdout's base rate, `high` from `HIGH_ODDS` times. Fixed
probabilities (0.10 / 0.30) meant something else on every company: with 6 % of accounts
churning in 90 days, 0.30 is five times the usual rate and called almost no account high; with
4 % upgrading, no account ever reached the expansion model's high band. Odds (not rates) keep
the thresholds below 1 on a company where the outcome is common.

Each version records, when the model asset registers (or first meets) it, its base rate, its
thresholds and how each band did on the holdout it never trained on: accounts and outcomes per
band. From that, `support` is how sure the platform is that a band's accounts are on the side
of the high threshold the band says they are on: the chance, given those holdout outcomes, that
the band's true outcome rate is at least the high threshold (band high), or below it (low,
medium). The prior is worth `PRIOR_ROWS` accounts at the base rate: until the holdout shows
otherwise, a band's accounts behave like any account, so a high band proves itself with
outcomes and a thin one is not trusted. An account appears in the holdout once per held-out
date, so each row counts as 1 / (number of dates) of an account. The CRM's action confidence
starts from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from mlflow.exceptions import MlflowException
from scipy.stats import beta

from assets.ml.models import _client

MEDIUM_ODDS = 2.0  # medium: the odds of the outcome at least twice the usual odds
HIGH_ODDS = 4.0  # high: at least four times
BANDS = ("low", "medium", "high")
PRIOR_ROWS = 2.0  # weight of the prior (accounts at the base rate)
TAG = "band_evidence"  # model version tag holding the evidence (JSON)


def _threshold(base_rate: float, ratio: float) -> float:
    odds = ratio * base_rate / (1 - base_rate)
    return odds / (1 + odds)


@dataclass(frozen=True)
class BandEvidence:
    base_rate: float
    holdout: dict[str, tuple[int, int]] = field(default_factory=dict)  # band -> (rows, outcomes)
    holdout_dates: tuple[str, ...] = ()

    @property
    def medium(self) -> float:
        return _threshold(self.base_rate, MEDIUM_ODDS)

    @property
    def high(self) -> float:
        return _threshold(self.base_rate, HIGH_ODDS)

    def band(self, p: np.ndarray) -> list[str]:
        p = np.asarray(p)
        medium = np.where(p >= self.medium, "medium", "low")
        return np.where(p >= self.high, "high", medium).tolist()

    def support(self, band: str) -> float | None:
        """P(the band's outcome rate is on its side of the high threshold | holdout); None
        without holdout evidence."""
        if band not in self.holdout:
            return None
        rows, outcomes = self.holdout[band]
        # the holdout stacks its as-of dates: one account appears once per date, with outcome
        # windows that overlap, so each date's copy counts as a fraction of an account
        per_date = 1 / max(len(self.holdout_dates), 1)
        a = PRIOR_ROWS * self.base_rate + outcomes * per_date
        b = PRIOR_ROWS * (1 - self.base_rate) + (rows - outcomes) * per_date
        above = float(beta.sf(self.high, a, b))
        return above if band == "high" else 1 - above

    def to_json(self) -> str:
        return json.dumps(
            {
                "base_rate": self.base_rate,
                "thresholds": {"medium": self.medium, "high": self.high},
                "holdout": {b: list(v) for b, v in self.holdout.items()},
                "holdout_dates": list(self.holdout_dates),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> BandEvidence:
        """The recorded evidence; without its holdout counts when they were counted with other
        thresholds (the odds ratios changed since): the model asset then counts them again."""
        data = json.loads(text)
        fresh = cls(float(data["base_rate"]))
        then = data.get("thresholds", {})
        if any(
            abs(then.get(b, -1) - t) > 1e-9
            for b, t in (("medium", fresh.medium), ("high", fresh.high))
        ):
            return fresh
        return cls(
            fresh.base_rate,
            {b: (int(n), int(k)) for b, (n, k) in data["holdout"].items()},
            tuple(data.get("holdout_dates", ())),
        )


def measure(p: np.ndarray, y: np.ndarray, holdout_dates: list[str]) -> BandEvidence:
    """Thresholds from the holdout's base rate, and each band's rows and outcomes."""
    empty = BandEvidence(float(np.mean(y)))
    bands = np.array(empty.band(np.asarray(p)))
    y = np.asarray(y).astype(int)
    holdout = {b: (int((bands == b).sum()), int(y[bands == b].sum())) for b in BANDS}
    return BandEvidence(empty.base_rate, holdout, tuple(holdout_dates))


def recorded(model_name: str, version: str, tracking_uri: str) -> BandEvidence | None:
    """The evidence a version carries; else its thresholds from the base rate its training run
    logged (no holdout counts); None when neither is known."""
    client = _client(tracking_uri)
    try:
        mv = client.get_model_version(model_name, str(version))
    except MlflowException:
        return None
    if TAG in mv.tags:
        return BandEvidence.from_json(mv.tags[TAG])
    base = client.get_run(mv.run_id).data.metrics.get("base_rate") if mv.run_id else None
    return BandEvidence(float(base)) if base else None


def record(model_name: str, version: str, tracking_uri: str, evidence: BandEvidence) -> None:
    _client(tracking_uri).set_model_version_tag(model_name, str(version), TAG, evidence.to_json())
