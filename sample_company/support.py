"""Support: organizations and tickets (weekly CSV exports).

Tickets arrive at a base rate per account; extra tickets are drawn in the 60 days before churn
(mostly high/critical, integration and onboarding topics), early in the tenure (onboarding) and
in the 90 days before an upgrade (feature requests).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sample_company import names as nm
from sample_company.context import Ctx, fmt, stamp, versions_frame
from sample_company.ids import DIGITS, random_ids, sequential_ids
from sample_company.timeutil import DAY, NEVER

PRIORITIES = ("low", "medium", "high", "critical")
TOPICS = ("compliance", "integration", "billing", "onboarding", "feature_request")
RESOLUTION_MEDIAN_HOURS = (40.0, 24.0, 10.0, 4.0)  # by priority


def build_support(ctx: Ctx) -> None:
    _organizations(ctx)
    _tickets(ctx)


def _org_domain(rng, cfg, domain: str, alt: str) -> str:
    d = alt or domain
    u = rng.random()
    if u < cfg.support_org_www_share:
        d = "www." + d
    elif u < cfg.support_org_www_share + cfg.support_org_upper_share:
        d = d.upper() if rng.random() < 0.5 else d.title()
    return d


def _organizations(ctx: Ctx) -> None:
    rng = ctx.rng("support.organizations")
    cfg, acc, end = ctx.cfg, ctx.acc, ctx.world.end
    crm_ids = ctx.refs["crm_account_id"]
    signed = np.flatnonzero(~acc["is_lead"])
    has = signed[rng.random(len(signed)) < cfg.support_org_share]
    ids = random_ids(rng, len(has), "org_", 8, DIGITS)
    created_day = acc["signup"][has] + rng.integers(0, 31, len(has))
    t_created = stamp(rng, created_day, acc["tz"][has])
    ctx.refs["org_id"] = dict(zip(has.tolist(), ids, strict=True))
    ctx.refs["org_created_day"] = dict(zip(has.tolist(), created_day.tolist(), strict=True))
    rows: list[dict] = []
    for oid, i, t0 in zip(ids, has, t_created, strict=True):
        country = acc["country"][i]
        state = {
            "org_id": oid,
            "name": nm.name_variant(rng, acc["name"][i], country, cfg.name_variant_share),
            "domain": _org_domain(rng, cfg, acc["domain"][i], acc["alt_domain"][i]),
            "crm_account_id": crm_ids[i] if rng.random() < cfg.support_crm_ref_share else None,
            "created_at": fmt(t0)[0],
        }
        changes: list[tuple[int, dict]] = [(int(t0), {})]
        if rng.random() < 0.1:  # an agent tidies the org up later
            t = int(t0) + int(rng.integers(5, 300)) * DAY
            if t < (end + 1) * DAY:
                changes.append((t, {"name": acc["name"][i]}))
        for seq, (t, change) in enumerate(changes):
            state.update(change)
            rows.append({"_rid": oid, "_ts": t, "_seq": seq, **state, "updated_at": fmt(t)[0]})
        ctx.add_truth("support", "organizations", oid, int(i), None)
    ctx.versions["support/organizations"] = versions_frame(rows)


def _segments(
    rng, lo: np.ndarray, hi: np.ndarray, rate: np.ndarray, accounts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson arrivals at `rate` per day on [lo, hi) per account: (account, day) arrays."""
    length = np.maximum(hi - lo, 0)
    n = rng.poisson(rate * length)
    a = np.repeat(accounts, n)
    day = np.repeat(lo, n) + (rng.random(n.sum()) * np.repeat(length, n)).astype(np.int64)
    return a, day


def _tickets(ctx: Ctx) -> None:
    rng = ctx.rng("support.tickets")
    cfg, acc, people, end = ctx.cfg, ctx.acc, ctx.world.people, ctx.world.end
    signed = np.flatnonzero(~acc["is_lead"])
    signup = acc["signup"][signed]
    stop = np.minimum(acc["churn"][signed], end + 1)
    churn = acc["churn"][signed]
    size = np.power(acc["employees"][signed] / 50.0, 0.3)
    base = cfg.tickets_per_year / 365.0 * size * np.sqrt(acc["frailty"][signed])
    parts = []
    a, d = _segments(rng, signup, stop, base, signed)
    parts.append((a, d, 0))
    churned = churn < NEVER
    lo = np.maximum(signup, churn - cfg.pre_churn_ticket_days)
    a, d = _segments(
        rng,
        lo[churned],
        stop[churned],
        (cfg.pre_churn_ticket_mult - 1) * base[churned],
        signed[churned],
    )
    parts.append((a, d, 1))
    hi = np.minimum(signup + cfg.onboarding_ticket_days, stop)
    a, d = _segments(rng, signup, hi, np.full(len(signed), cfg.onboarding_ticket_rate), signed)
    parts.append((a, d, 2))
    up = acc["upgrade"][signed]
    ups = up < NEVER
    lo = np.maximum(signup, up - cfg.pre_upgrade_feature_request_days)
    a, d = _segments(
        rng,
        lo[ups],
        up[ups],
        np.full(ups.sum(), cfg.pre_upgrade_feature_request_per_day),
        signed[ups],
    )
    parts.append((a, d, 3))
    t_acc = np.concatenate([p[0] for p in parts])
    t_day = np.concatenate([p[1] for p in parts])
    kind = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
    n = len(t_acc)
    # priority and topic by kind: base, pre-churn, onboarding, feature request
    prio = np.where(
        kind == 1,
        rng.choice(4, n, p=np.array(cfg.priority_pre_churn)),
        rng.choice(4, n, p=np.array(cfg.priority_base)),
    )
    topic = np.where(
        kind == 1,
        rng.choice(5, n, p=np.array(cfg.topic_pre_churn)),
        rng.choice(5, n, p=np.array(cfg.topic_base)),
    )
    topic = np.where(kind == 2, 3, np.where(kind == 3, 4, topic))
    # near churn, even "base" tickets lean to the churn pattern
    t_created = stamp(rng, t_day, acc["tz"][t_acc])
    order = np.argsort(t_created, kind="stable")
    t_acc, t_day, prio, topic, t_created = (
        t_acc[order],
        t_day[order],
        prio[order],
        topic[order],
        t_created[order],
    )
    hours = np.array(RESOLUTION_MEDIAN_HOURS)[prio] * np.exp(rng.normal(0, 0.8, n))
    hours = np.round(np.maximum(hours, 0.2), 1)
    solved = t_created + (hours * 3600).astype(np.int64)
    pending = rng.random(n) < 0.4
    t_pending = t_created + (hours * 3600 * 0.3).astype(np.int64)
    closed = solved + rng.integers(3, 6, n) * DAY
    ids = sequential_ids(rng, n, "tkt_", 10_000_000 + int(rng.integers(0, 1_000_000)))

    org = ctx.refs["org_id"]
    org_day = ctx.refs["org_created_day"]
    weights = {"admin": 2.0, "champion": 2.0, "end_user": 1.0, "billing_owner": 0.5}
    staff = people[~people["consultant"]]
    by_acc = {
        int(k): (
            g.index.to_numpy(),
            g["joined"].to_numpy(),
            g["left"].to_numpy(),
            g["role"].map(weights).to_numpy(dtype=np.float64),
            (g["role"] == "billing_owner").to_numpy(),
        )
        for k, g in staff.groupby("account", sort=False)
    }
    first, last = people["first"].tolist(), people["last"].tolist()
    work, personal = people["work_email"].tolist(), people["personal_email"].tolist()
    rows: list[dict] = []
    reqs: set[tuple[str, str]] = set()
    for j in range(n):
        i = int(t_acc[j])
        day = int(t_day[j])
        idx, joined, left, w, billing = by_acc[i]
        live = (joined <= day) & (left > day)
        if not live.any():
            live = np.ones(len(idx), dtype=bool)
        if topic[j] == 2 and (live & billing).any():
            live &= billing
        ww = np.where(live, w, 0.0)
        p = int(idx[int(rng.choice(len(idx), p=ww / ww.sum()))])
        if rng.random() < cfg.ticket_personal_email_share:
            email = personal[p]
        else:
            email = nm.email_variant(
                rng, work[p], cfg.email_recase_share, cfg.ticket_email_whitespace_share
            )
        k = int(rng.integers(10))
        name = f"{first[p]} {last[p]}"
        if k == 0:
            name = f"{last[p]}, {first[p]}"
        elif k == 1:
            name = name.lower()
        oid = org.get(i)
        if oid is not None and (org_day[i] > day or rng.random() < cfg.ticket_without_org_share):
            oid = None
        base_row = {
            "ticket_id": ids[j],
            "org_id": oid,
            "requester_email": email,
            "requester_name": name,
            "priority": PRIORITIES[prio[j]],
            "topic": TOPICS[topic[j]],
            "created_at": fmt(t_created[j])[0],
        }
        versions = [(int(t_created[j]), "open", None, None)]
        if pending[j]:
            versions.append((int(t_pending[j]), "pending", None, None))
        versions.append((int(solved[j]), "solved", fmt(solved[j])[0], float(hours[j])))
        versions.append((int(closed[j]), "closed", fmt(solved[j])[0], float(hours[j])))
        for seq, (t, status, solved_at, res) in enumerate(versions):
            rows.append(
                {
                    "_rid": ids[j],
                    "_ts": t,
                    "_seq": seq,
                    **base_row,
                    "status": status,
                    "solved_at": solved_at,
                    "resolution_hours": res,
                    "updated_at": fmt(t)[0],
                }
            )
        key = (oid or "", email.strip().lower())
        if key not in reqs:
            reqs.add(key)
            ctx.add_truth("support", "ticket_requesters", f"{key[0]}|{key[1]}", i, int(p))
    df = versions_frame(rows)
    if not df.empty:
        df["resolution_hours"] = df["resolution_hours"].map(
            lambda x: None if x is None or pd.isna(x) else f"{x:.1f}"
        )
    ctx.versions["support/tickets"] = df
