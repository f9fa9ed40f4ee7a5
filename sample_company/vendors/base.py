"""What every vendor rendering shares: the object spec, id and time formats, envelopes.

A vendor object is a frame of record versions like the default stack's (`_rid`, `_ts`, `_seq`)
whose `rec` column holds the record exactly as the vendor's API returns it (nested dicts and
lists). The same extract semantics apply (`extracts.assign_extracts`); only the shape differs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import pandas as pd

from sample_company.ids import uuid4_chars
from sample_company.timeutil import DAY

Render = Callable[[list[dict]], bytes]


@dataclass(frozen=True)
class VendorSpec:
    """One landed object of the vendor stack (the attributes the generator's writer reads)."""

    source: str  # the vendor system: hubspot, stripe, segment, zendesk, consent, risk
    object: str
    filename: str
    cadence: Literal["daily", "weekly", "monthly"]
    render: Render
    only_changed_days: bool = False

    @property
    def name(self) -> str:
        return f"{self.source}/{self.object}"


def seconds(iso: Any) -> int | None:
    """Unix seconds of an ISO-8601 UTC string (`2026-03-04T10:22:01Z`); None stays None."""
    if not isinstance(iso, str) or not iso:
        return None
    return int(np.datetime64(iso.rstrip("Z"), "s").astype(np.int64))


def iso_millis(iso: Any) -> str | None:
    """HubSpot's timestamp style: milliseconds, `Z` (the millis are a stable function of the
    second, so the same world renders the same bytes)."""
    s = seconds(iso)
    if s is None:
        return None
    return f"{iso.rstrip('Z')}.{(s * 7919) % 1000:03d}Z"


def uuids(rng: np.random.Generator, n: int) -> list[str]:
    """n random UUID4 strings (message and receipt ids)."""
    return uuid4_chars(rng, n).view("S36").ravel().astype(str).tolist()


def numeric_ids(rng: np.random.Generator, n: int, lo: int, hi: int) -> list[int]:
    """n distinct integers in [lo, hi), in draw order (vendors' numeric record ids)."""
    out: list[int] = []
    seen: set[int] = set()
    while len(out) < n:
        for x in rng.integers(lo, hi, size=n - len(out)).tolist():
            if x not in seen:
                seen.add(x)
                out.append(x)
    return out


def rows_of(df: pd.DataFrame) -> list[SimpleNamespace]:
    """The frame's rows with attribute access (`r._ts` too, which itertuples renames)."""
    return [SimpleNamespace(**r) for r in df.to_dict("records")]


def id_map(keys: Iterable, ids: list) -> dict:
    return dict(zip(keys, ids, strict=True))


def first_seen(values: pd.Series) -> list:
    """Distinct values in order of first appearance (a stable input for id draws)."""
    return list(dict.fromkeys(values.tolist()))


def versions(rows: list[dict]) -> pd.DataFrame:
    """Vendor record versions: `_rid`, `_ts`, `_seq`, `rec` (the record as the API returns it)."""
    df = pd.DataFrame(rows, columns=["_rid", "_ts", "_seq", "rec"])
    df["_ts"] = df["_ts"].astype(np.int64)
    df["_seq"] = df["_seq"].astype(np.int64)
    return df


def drop_none(d: dict) -> dict:
    """An API that leaves unset attributes out (Segment traits) rather than sending null."""
    return {k: v for k, v in d.items() if v is not None}


def _lines(recs: list[dict]) -> str:
    return ",\n".join(json.dumps(r, ensure_ascii=False) for r in recs)


def json_envelope(key: str, **extra: Any) -> Render:
    """`{"<key>": [...], **extra}`, one record per line; `count` filled in when asked for."""

    def render(recs: list[dict]) -> bytes:
        head = json.dumps(key)
        tail = {k: (len(recs) if v == "<count>" else v) for k, v in extra.items()}
        rest = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in tail.items())
        body = f"\n{_lines(recs)}\n" if recs else ""
        return ("{" + f"{head}: [{body}]{rest}" + "}\n").encode()

    return render


def jsonl(recs: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs).encode()


def csv_render(fields: tuple[str, ...], delimiter: str = ",") -> Render:
    def render(recs: list[dict]) -> bytes:
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
        w.writerow(fields)
        for r in recs:
            w.writerow(["" if r.get(f) is None else r.get(f) for f in fields])
        return buf.getvalue().encode()

    return render


def day_end(ts: np.ndarray) -> np.ndarray:
    """The last second of each timestamp's day."""
    return (ts // DAY + 1) * DAY - 1
