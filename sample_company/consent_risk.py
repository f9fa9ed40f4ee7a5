"""Consent records (weekly JSON) and third-party risk signals (monthly CSV)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sample_company import names as nm
from sample_company.context import Ctx, fmt, stamp, versions_frame
from sample_company.ids import LOWER_ALNUM, random_ids
from sample_company.timeutil import DAY, NEVER


def _plain(email: str) -> str:
    """The personal address without the product's alias (dots kept as the person types it)."""
    local, _, dom = email.partition("@")
    return f"{local.split('+')[0]}@{dom}"


def build_consent(ctx: Ctx) -> None:
    rng = ctx.rng("consent.records")
    cfg, acc, people, end = ctx.cfg, ctx.acc, ctx.world.people, ctx.world.end
    P = ctx.P
    horizon = (end + 1) * DAY
    recs: list[tuple[int, str, str, str, str, str, int, int]] = []
    # (ts, email, subject_ref, scope, status, channel, account, person)

    def grant(t, email, ref, scope, channel, i, p, revoke_channel=None):
        recs.append((int(t), email, ref, scope, "granted", channel, i, p))
        if rng.random() < cfg.consent_revoke_share:
            t2 = int(t) + int(rng.integers(1, 400)) * DAY + int(rng.integers(0, DAY))
            if t2 < horizon:
                ch = revoke_channel or channel
                recs.append((t2, email, ref, scope, "revoked", ch, i, p))

    # product: analytics consent when the login is created
    m = {c: ctx.world.members[c].tolist() for c in ("email", "account", "person")}
    users = ctx.refs["user_id"]
    created = ctx.refs["user_created_ts"]
    for j in range(len(users)):
        if rng.random() < cfg.consent_product_analytics_share:
            grant(
                created[j] + 1,
                m["email"][j],
                f"product:{users[j]}",
                "product_analytics",
                "product",
                int(m["account"][j]),
                int(m["person"][j]),
            )
    # CRM: sync and sales outreach consent per contact
    contacts = ctx.versions["crm/contacts"]
    first = contacts.sort_values(["_rid", "_ts", "_seq"]).drop_duplicates("_rid")
    contact_of = ctx.refs["crm_contact_id"]
    first_seen = dict(
        zip(first["_rid"], zip(first["Email"], first["_ts"], strict=True), strict=True)
    )
    for p, cid in contact_of.items():
        email, t_contact = first_seen[cid]
        if not isinstance(email, str):
            email = P["work_email"][p]
        i = int(P["account"][p])
        t0 = int(t_contact) + 3600
        if rng.random() < cfg.consent_crm_sync_share:
            grant(t0, email, f"crm:{cid}", "crm_sync", "crm", i, p)
        if rng.random() < cfg.consent_sales_outreach_share:
            grant(t0 + 60, email, f"crm:{cid}", "sales_outreach", "crm", i, p, "support")
    # web forms: marketing consent by a visitor id, with the plain address people type
    uses_personal = people["uses_personal"].to_numpy()
    web = np.flatnonzero(rng.random(len(people)) < cfg.consent_web_form_share)
    visitor = random_ids(rng, len(web), "web:v_", 10, LOWER_ALNUM)
    for p, ref in zip(web, visitor, strict=True):
        i = int(P["account"][p])
        lo = int(acc["crm_created"][i])
        hi = max(lo + 1, min(end, int(P["left"][p])))
        day = int(rng.integers(lo, hi)) if hi > lo else lo
        t = int(stamp(rng, day, acc["tz"][i])[0])
        email = _plain(P["personal_email"][p]) if uses_personal[p] else P["work_email"][p]
        grant(t, email, ref, "email_marketing", "web_form", i, int(p), "support")
    recs = [r for r in recs if r[0] < horizon]
    recs.sort(key=lambda r: (r[0], r[2], r[3]))
    ids = random_ids(rng, len(recs), "cns_", 12)
    rows = []
    for rid, (t, email, ref, scope, status, channel, i, p) in zip(ids, recs, strict=True):
        rows.append(
            {
                "_rid": rid,
                "_ts": t,
                "_seq": 0,
                "record_id": rid,
                "email": email,
                "subject_ref": ref,
                "scope": scope,
                "status": status,
                "channel": channel,
                "recorded_at": fmt(t)[0],
            }
        )
        ctx.add_truth("consent", "records", rid, i, p)
    ctx.versions["consent/records"] = versions_frame(rows)


def build_risk(ctx: Ctx, extract_days: np.ndarray) -> None:
    """One observation per company and month, for customers (until ~2 months after churn)
    and some leads. Scores lean on the account's frailty and rise before churn."""
    rng = ctx.rng("risk.signals")
    cfg, acc = ctx.cfg, ctx.acc
    crm_ids = ctx.refs["crm_account_id"]
    n = ctx.world.n
    watched_lead = acc["is_lead"] & (rng.random(n) < cfg.risk_watched_lead_share)
    signup = acc["signup"]
    churn = acc["churn"]
    frail = np.log(acc["frailty"])
    frames = []
    prev = int(extract_days[0]) - 30
    for e in extract_days:
        e = int(e)
        cust = (signup <= e) & (churn > e - 60)
        lead = watched_lead & (acc["crm_created"] <= e)
        sel = np.flatnonzero(cust | lead)
        k = len(sel)
        day = prev + 1 + rng.integers(0, max(1, e - prev), k)
        near = (churn[sel] < NEVER) & (churn[sel] - day < 90)
        gap = (
            rng.beta(2.0, 5.0, k)
            + cfg.risk_gap_frailty_coef * frail[sel]
            + cfg.risk_gap_pre_churn * near
        )
        flags = rng.poisson(
            cfg.risk_flags_frailty_rate * acc["frailty"][sel] + cfg.risk_flags_pre_churn_rate * near
        )
        frames.append(
            pd.DataFrame(
                {
                    "account": sel,
                    "_ts": stamp(rng, day, acc["tz"][sel]),
                    "compliance_gap_score": [f"{x:.3f}" for x in np.clip(gap, 0.0, 1.0)],
                    "vendor_risk_flags": flags,
                }
            )
        )
        prev = e
    df = pd.concat(frames, ignore_index=True)
    ids = random_ids(rng, len(df), "rsk_", 12)
    names, domains, refs = [], [], []
    for i in df["account"].to_numpy():
        names.append(
            nm.name_variant(rng, acc["name"][i], acc["country"][i], cfg.name_variant_share)
        )
        d = acc["domain"][i]
        u = rng.random()
        domains.append("www." + d if u < 0.2 else d.upper() if u < 0.25 else d)
        refs.append(crm_ids[i] if rng.random() < cfg.risk_crm_ref_share else None)
    df["_rid"] = ids
    df["_seq"] = 0
    df["record_id"] = ids
    df["crm_account_id"] = refs
    df["company_domain"] = domains
    df["company_name"] = names
    df["observed_at"] = fmt(df["_ts"].to_numpy())
    for rid, i in zip(ids, df["account"].to_numpy(), strict=True):
        ctx.add_truth("risk", "signals", rid, int(i), None)
    ctx.versions["risk/signals"] = df
