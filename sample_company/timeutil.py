"""Time as integers: days and seconds since 1970-01-01 (UTC), formatted only at the edge."""

from __future__ import annotations

import datetime as dt

import numpy as np

DAY = 86_400
NEVER = 10_000_000  # a day number far beyond any horizon: "did not happen"
EPOCH = dt.date(1970, 1, 1)


def day_of(d: dt.date) -> int:
    return (d - EPOCH).days


def date_of(day: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(day))


def iso_date(day: int) -> str:
    return date_of(day).isoformat()


def ts_strings(seconds: np.ndarray) -> np.ndarray:
    """`2026-03-04T10:22:01Z` for each second; vectorized."""
    s = np.asarray(seconds, dtype=np.int64).astype("datetime64[s]")
    return np.char.add(np.datetime_as_string(s, unit="s"), "Z")


def date_strings(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(np.asarray(days, dtype=np.int64).astype("datetime64[D]"))


def weekly_days(start: int, end: int) -> np.ndarray:
    return np.arange(start, end + 1, 7, dtype=np.int64)


def monthly_days(start: int, end: int) -> np.ndarray:
    """The window start, then the first of every month in the window."""
    out = [start]
    d = date_of(start).replace(day=1)
    while True:
        d = (d + dt.timedelta(days=32)).replace(day=1)
        day = day_of(d)
        if day > end:
            break
        out.append(day)
    return np.array(out, dtype=np.int64)
