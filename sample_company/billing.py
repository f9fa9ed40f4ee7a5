"""Billing: customers, subscriptions and invoices (weekly CSV exports)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sample_company import names as nm
from sample_company.context import Ctx, fmt, stamp, versions_frame
from sample_company.ids import random_ids
from sample_company.timeutil import DAY, NEVER

TIERS = ("starter", "growth", "enterprise")


def build_billing(ctx: Ctx) -> None:
    ctx.refs["invoice_plan"] = plan_invoices(ctx)
    _customers(ctx)
    _subscriptions(ctx)
    _invoices(ctx)


def _billing_email(ctx: Ctx, rng, i: int, owners: dict[int, int]) -> str:
    cfg, acc, P = ctx.cfg, ctx.acc, ctx.P
    if acc["shared_inbox"][i]:
        return acc["shared_inbox"][i]
    dom = acc["domain"][i]
    if rng.random() < cfg.billing_generic_email_share or i not in owners:
        return f"{('billing', 'accounts', 'finance', 'ap')[rng.integers(4)]}@{dom}"
    owner = owners[i]
    if rng.random() < cfg.billing_personal_email_share:
        return P["personal_email"][owner]
    return nm.email_variant(
        rng, P["work_email"][owner], cfg.email_recase_share, cfg.email_whitespace_share
    )


def _billing_owners(people: pd.DataFrame) -> dict[int, int]:
    """account -> the person who owns billing (or the account's first person)."""
    own = people[~people["consultant"]].sort_values(
        "role", key=lambda r: r != "billing_owner", kind="stable"
    )
    first = own.groupby("account", sort=False).head(1)
    return dict(zip(first["account"].tolist(), first.index.tolist(), strict=True))


def _customers(ctx: Ctx) -> None:
    rng = ctx.rng("billing.customers")
    cfg, acc, people = ctx.cfg, ctx.acc, ctx.world.people
    crm_ids = ctx.refs["crm_account_id"]
    signed = np.flatnonzero(~acc["is_lead"])
    ids = random_ids(rng, len(signed), "cus_", 14)
    ctx.refs["billing_customer_id"] = dict(zip(signed.tolist(), ids, strict=True))
    t_signup = stamp(rng, acc["signup"][signed], acc["tz"][signed])
    ctx.refs["signup_ts"] = dict(zip(signed.tolist(), t_signup.tolist(), strict=True))
    billing_owner_left = (
        people[people["role"] == "billing_owner"].groupby("account")["left"].min().to_dict()
    )
    owners = _billing_owners(people)
    rows: list[dict] = []
    for cid, i, t0 in zip(ids, signed, t_signup, strict=True):
        country = acc["country"][i]
        state = {
            "customer_id": cid,
            "name": nm.name_variant(rng, acc["name"][i], country, cfg.name_variant_share),
            "email": _billing_email(ctx, rng, int(i), owners),
            "crm_account_id": crm_ids[i] if rng.random() < cfg.billing_crm_ref_share else None,
            "country": country,
            "created_at": fmt(t0)[0],
        }
        changes: list[tuple[int, dict]] = [(int(t0), {})]
        left = billing_owner_left.get(int(i), NEVER)
        if left < NEVER and not acc["shared_inbox"][i]:
            t = int(stamp(rng, left + int(rng.integers(1, 30)), acc["tz"][i])[0])
            changes.append((max(t, int(t0) + 1), {"email": f"finance@{acc['domain'][i]}"}))
        for seq, (t, change) in enumerate(sorted(changes, key=lambda c: c[0])):
            state.update(change)
            rows.append({"_rid": cid, "_ts": t, "_seq": seq, **state, "updated_at": fmt(t)[0]})
        ctx.add_truth("billing", "customers", cid, int(i), None)
    ctx.versions["billing/customers"] = versions_frame(rows)


def _subscriptions(ctx: Ctx) -> None:
    """Status and plan history; failed payments make a subscription past_due for a few days."""
    rng = ctx.rng("billing.subscriptions")
    acc = ctx.acc
    cus = ctx.refs["billing_customer_id"]
    signup_ts = ctx.refs["signup_ts"]
    ids = random_ids(rng, len(cus), "sub_", 14)
    ctx.refs["subscription_id"] = dict(zip(cus.keys(), ids, strict=True))
    past_due: dict[int, list[tuple[int, int]]] = ctx.refs.setdefault("past_due", {})
    rows: list[dict] = []
    for sid, (i, cid) in zip(ids, cus.items(), strict=True):
        tz = acc["tz"][i]
        tier0 = int(acc["tier0"][i])
        seats = int(np.clip(round(acc["employees"][i] * 0.15), 3, 500))
        t0 = int(signup_ts[i])
        trial_end = int(acc["trial_end"][i])
        t_trial = trial_end * DAY + (t0 % DAY)
        state = {
            "subscription_id": sid,
            "customer_id": cid,
            "plan": TIERS[tier0],
            "status": "trialing",
            "mrr": float(acc["mrr0"][i]),
            "seats": seats,
            "started_at": fmt(t0)[0],
            "current_period_end": fmt(t_trial)[0],
            "canceled_at": None,
            "discount_pct": 0.0,
        }
        changes: list[tuple[int, dict]] = [(t0, {})]
        churn = int(acc["churn"][i])
        if acc["converted"][i]:
            changes.append(
                (
                    t_trial,
                    {
                        "status": "active",
                        "current_period_end": fmt(t_trial + 30 * DAY)[0],
                        "discount_pct": float(acc["discount"][i]),
                    },
                )
            )
        up = int(acc["upgrade"][i])
        if up < NEVER:
            t = int(stamp(rng, up, tz)[0])
            changes.append(
                (
                    t,
                    {
                        "plan": TIERS[min(tier0 + 1, 2)],
                        "mrr": float(acc["mrr_up"][i]),
                        "seats": int(seats * 1.5) + 2,
                        "current_period_end": fmt(t + 30 * DAY)[0],
                    },
                )
            )
        for start_day, stop_day in past_due.get(int(i), []):
            changes.append((int(stamp(rng, start_day, tz)[0]), {"status": "past_due"}))
            if stop_day < churn:
                changes.append((int(stamp(rng, stop_day, tz)[0]), {"status": "active"}))
        if churn < NEVER:
            t = t_trial if not acc["converted"][i] else int(stamp(rng, churn, tz)[0])
            changes.append((t, {"status": "canceled", "canceled_at": fmt(t)[0]}))
        changes.sort(key=lambda c: c[0])
        for seq, (t, change) in enumerate(changes):
            state.update(change)
            rows.append({"_rid": sid, "_ts": t, "_seq": seq, **state, "updated_at": fmt(t)[0]})
    df = versions_frame(rows)
    if not df.empty:
        df["discount_pct"] = df["discount_pct"].map(lambda x: f"{x:.1f}")
    ctx.versions["billing/subscriptions"] = df


def plan_invoices(ctx: Ctx) -> pd.DataFrame:
    """Monthly invoices of converted accounts, issued from the trial end until churn."""
    rng = ctx.rng("billing.invoices.plan")
    cfg, acc, end = ctx.cfg, ctx.acc, ctx.world.end
    conv = np.flatnonzero(acc["converted"])
    first = acc["trial_end"][conv]
    stop = np.minimum(acc["churn"][conv], end + 1)
    count = np.maximum(0, (stop - first + 29) // 30)
    inv_acc = np.repeat(conv, count)
    k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    issue_day = np.repeat(first, count) + 30 * k
    up = acc["upgrade"][inv_acc]
    mrr = np.where(issue_day >= up, acc["mrr_up"][inv_acc], acc["mrr0"][inv_acc])
    discount = acc["discount"][inv_acc]
    amount = np.round(mrr * (1 - discount / 100.0), 2)
    failed = rng.random(len(inv_acc)) < cfg.failed_invoice_share
    retry_days = rng.integers(3, 11, len(inv_acc))
    voided = failed & (rng.random(len(inv_acc)) < cfg.failed_invoice_void_share)
    df = pd.DataFrame(
        {
            "account": inv_acc,
            "issue_day": issue_day,
            "amount": amount,
            "failed": failed,
            "retry_day": issue_day + retry_days,
            "voided": voided,
        }
    )
    past_due = ctx.refs.setdefault("past_due", {})
    for r in df[df["failed"]].itertuples():
        stop_day = r.issue_day + 30 if r.voided else r.retry_day
        past_due.setdefault(int(r.account), []).append((int(r.issue_day) + 1, int(stop_day)))
    return df


def _invoices(ctx: Ctx) -> None:
    rng = ctx.rng("billing.invoices")
    cfg, acc = ctx.cfg, ctx.acc
    df = ctx.refs["invoice_plan"]
    n = len(df)
    ids = np.array(random_ids(rng, n, "in_", 14), dtype=object)
    cus = ctx.refs["billing_customer_id"]
    subs = ctx.refs["subscription_id"]
    a = df["account"].to_numpy()
    tz = acc["tz"][a]
    issued = df["issue_day"].to_numpy() * DAY + rng.integers(0, 4 * 3600, n)  # billing run at night
    pay_delay = np.where(
        rng.random(n) < 0.6, rng.integers(60, 6 * 3600, n), rng.integers(1, 6, n) * DAY
    )
    paid_ok = issued + pay_delay
    retry = stamp(rng, df["retry_day"].to_numpy(), tz)
    failed = df["failed"].to_numpy()
    voided = df["voided"].to_numpy()
    currency = np.array([cfg.currency_by_country.get(c, "USD") for c in acc["country"][a]])
    base = pd.DataFrame(
        {
            "_rid": ids,
            "invoice_id": ids,
            "customer_id": [cus[int(x)] for x in a],
            "subscription_id": [subs[int(x)] for x in a],
            "amount": df["amount"].to_numpy(),
            "currency": currency,
            "issued_at": fmt(issued),
        }
    )
    parts = [base.assign(_ts=issued, _seq=0, status="open", paid_at=None)]
    ok = ~failed
    parts.append(base[ok].assign(_ts=paid_ok[ok], _seq=1, status="paid", paid_at=fmt(paid_ok[ok])))
    t_fail = issued + DAY
    parts.append(base[failed].assign(_ts=t_fail[failed], _seq=1, status="failed", paid_at=None))
    rec = failed & ~voided
    parts.append(base[rec].assign(_ts=retry[rec], _seq=2, status="paid", paid_at=fmt(retry[rec])))
    t_void = issued + 30 * DAY
    parts.append(base[voided].assign(_ts=t_void[voided], _seq=2, status="void", paid_at=None))
    out = pd.concat(parts, ignore_index=True)
    out["_ts"] = out["_ts"].astype(np.int64)
    ctx.versions["billing/invoices"] = out
