"""Stripe: customers, subscriptions and invoices as list objects (`GET /v1/<resource>`).

Ids keep Stripe's prefixes (`cus_`, `sub_`, `in_`, `si_`, `price_`), times are unix seconds,
amounts integer cents, currencies lower case. The CRM id is in `metadata` only when the billing
team filled it in (the default stack's `crm_account_id`). A subscription's plan is its price's
`nickname`, its seats the item's `quantity`, its MRR `unit_amount x quantity` per interval. A
failed payment is an `open` invoice that was `attempted` and not `paid`. From the drift date on,
subscriptions carry Stripe's `discount` object (a coupon's `percent_off`): schema drift.
"""

from __future__ import annotations

import pandas as pd

from sample_company.context import Ctx
from sample_company.ids import random_ids
from sample_company.vendors.base import (
    first_seen,
    id_map,
    json_envelope,
    rows_of,
    seconds,
    versions,
)

PLAN_NICKNAME = {"starter": "Basic monthly", "growth": "Pro monthly", "enterprise": "Scale monthly"}
INVOICE_STATUS = {"open": "open", "failed": "open", "paid": "paid", "void": "void"}


def render(resource: str):
    return json_envelope("data", object="list", has_more=False, url=f"/v1/{resource}")


def _currency(ctx: Ctx, country: str) -> str:
    return ctx.cfg.currency_by_country.get(country, "USD").lower()


def customers(ctx: Ctx, companies_of: dict[str, str]) -> pd.DataFrame:
    rows = []
    for r in rows_of(ctx.versions["billing/customers"]):
        crm = r.crm_account_id if isinstance(r.crm_account_id, str) else None
        rec = {
            "id": r.customer_id,
            "object": "customer",
            "name": r.name,
            "email": r.email,
            "address": {"country": r.country, "line1": None, "postal_code": None},
            "currency": _currency(ctx, r.country),
            "created": seconds(r.created_at),
            "delinquent": False,
            "livemode": True,
            "metadata": {} if crm is None else {"hubspot_company_id": companies_of[crm]},
        }
        rows.append({"_rid": r.customer_id, "_ts": r._ts, "_seq": r._seq, "rec": rec})
    return versions(rows)


def subscriptions(ctx: Ctx) -> pd.DataFrame:
    src = ctx.versions["billing/subscriptions"]
    rng = ctx.rng("vendor.stripe.subscriptions")
    subs = first_seen(src["_rid"])
    items = id_map(subs, random_ids(rng, len(subs), "si_", 14))
    pairs = first_seen(src["_rid"] + "|" + src["plan"])
    prices = id_map(pairs, random_ids(rng, len(pairs), "price_", 24))
    products = id_map(PLAN_NICKNAME, random_ids(rng, len(PLAN_NICKNAME), "prod_", 14))
    country = {r.customer_id: r.country for r in rows_of(ctx.versions["billing/customers"])}
    rows = []
    for r in rows_of(src):
        currency = _currency(ctx, country[r.customer_id])
        seats = int(r.seats)
        per_seat = round(float(r.mrr) * 100 / seats)
        started = seconds(r.started_at)
        period_end = seconds(r.current_period_end)
        canceled = seconds(r.canceled_at)
        pct = float(r.discount_pct)
        rec = {
            "id": r.subscription_id,
            "object": "subscription",
            "customer": r.customer_id,
            "status": r.status,
            "created": started,
            "start_date": started,
            "current_period_start": max(started, period_end - 30 * 86_400),
            "current_period_end": period_end,
            "cancel_at_period_end": False,
            "canceled_at": canceled,
            "ended_at": canceled,
            "currency": currency,
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": items[r.subscription_id],
                        "object": "subscription_item",
                        "price": {
                            "id": prices[f"{r.subscription_id}|{r.plan}"],
                            "object": "price",
                            "nickname": PLAN_NICKNAME[r.plan],
                            "lookup_key": None,
                            "product": products[r.plan],
                            "currency": currency,
                            "unit_amount": per_seat,
                            "recurring": {
                                "interval": "month",
                                "interval_count": 1,
                                "usage_type": "licensed",
                            },
                            "type": "recurring",
                        },
                        "quantity": seats,
                    }
                ],
                "has_more": False,
            },
            "metadata": {},
            "discount": None
            if pct == 0
            else {"object": "discount", "coupon": {"id": f"PCT{pct:.0f}", "percent_off": pct}},
        }
        rows.append({"_rid": r.subscription_id, "_ts": r._ts, "_seq": r._seq, "rec": rec})
    return versions(rows)


def invoices(ctx: Ctx) -> pd.DataFrame:
    src = ctx.versions["billing/invoices"].sort_values(["_rid", "_seq"], kind="stable")
    rows = []
    attempts: dict[str, int] = {}
    for r in rows_of(src):
        cents = round(float(r.amount) * 100)
        issued = seconds(r.issued_at)
        paid_at = seconds(r.paid_at)
        tried = r.status != "open"
        n = attempts[r._rid] = attempts.get(r._rid, 0) + (
            1 if r.status in ("failed", "paid") else 0
        )
        rec = {
            "id": r.invoice_id,
            "object": "invoice",
            "customer": r.customer_id,
            "subscription": r.subscription_id,
            "status": INVOICE_STATUS[r.status],
            "billing_reason": "subscription_cycle",
            "collection_method": "charge_automatically",
            "currency": str(r.currency).lower(),
            "amount_due": cents,
            "amount_paid": cents if r.status == "paid" else 0,
            "amount_remaining": 0 if r.status == "paid" else cents,
            "attempted": tried,
            "attempt_count": n,
            "paid": r.status == "paid",
            "created": issued,
            "status_transitions": {
                "finalized_at": issued,
                "paid_at": paid_at,
                "voided_at": int(r._ts) if r.status == "void" else None,
            },
        }
        rows.append({"_rid": r.invoice_id, "_ts": r._ts, "_seq": r._seq, "rec": rec})
    df = versions(rows)
    return df.sort_values(["_ts", "_rid", "_seq"], kind="stable").reset_index(drop=True)


def drop_discount(recs: list[dict]) -> list[dict]:
    """Before the drift date the export had no `discount` attribute at all."""
    return [{k: v for k, v in r.items() if k != "discount"} for r in recs]
