"""What the source builders share: the world, seeded generators, cross-references and truth."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sample_company.config import Config
from sample_company.timeutil import DAY, ts_strings
from sample_company.world import World


@dataclass
class Ctx:
    world: World
    cfg: Config
    seed: int
    # (system, object, source_id, account_key, person_key): one row per source record id
    truth: list[tuple[str, str, str, str, str]] = field(default_factory=list)
    versions: dict[str, pd.DataFrame] = field(default_factory=dict)
    refs: dict = field(default_factory=dict)

    def rng(self, name: str) -> np.random.Generator:
        """An independent stream per stage: changing one stage never shifts another."""
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])

    _acc: dict | None = None
    _people: dict | None = None

    @property
    def acc(self) -> dict[str, np.ndarray]:
        """Account columns as arrays (fast scalar access in per-account loops)."""
        if self._acc is None:
            self._acc = {c: self.world.acc[c].to_numpy() for c in self.world.acc.columns}
        return self._acc

    @property
    def P(self) -> dict[str, list]:  # people columns, as lists
        if self._people is None:
            self._people = {c: self.world.people[c].tolist() for c in self.world.people.columns}
        return self._people

    def account_key(self, i: int) -> str:
        return self.acc["account_key"][int(i)]

    def person_key(self, p: int) -> str:
        return self.P["person_key"][int(p)]

    def add_truth(self, system: str, obj: str, sid: str, acc: int | None, person: int | None):
        self.truth.append(
            (
                system,
                obj,
                sid,
                "" if acc is None else self.account_key(acc),
                "" if person is None else self.person_key(person),
            )
        )


def stamp(rng: np.random.Generator, days, tz) -> np.ndarray:
    """Seconds at a business-hours moment of each day, in the account's time zone."""
    days = np.atleast_1d(np.asarray(days, dtype=np.int64))
    local = np.clip(rng.normal(13.0, 2.6, len(days)), 7.0, 20.5) * 3600
    tod = (local - np.broadcast_to(np.asarray(tz, dtype=np.float64), days.shape) * 3600) % DAY
    return days * DAY + tod.astype(np.int64)


def fmt(seconds) -> np.ndarray:
    """ISO-8601 UTC strings, always as a 1-d array (index [0] for one value)."""
    return ts_strings(np.atleast_1d(np.asarray(seconds, dtype=np.int64))).astype(object)


def versions_frame(rows: list[dict]) -> pd.DataFrame:
    """Record versions as a frame; field values keep their Python types (ints stay ints)."""
    df = pd.DataFrame(rows, dtype=object)
    if df.empty:
        return pd.DataFrame({"_rid": [], "_ts": [], "_seq": []}).astype(
            {"_rid": object, "_ts": np.int64, "_seq": np.int64}
        )
    if "_seq" not in df.columns:
        df["_seq"] = np.arange(len(df))
    for col in ("_ts", "_seq"):
        df[col] = df[col].astype(np.int64)
    return df
