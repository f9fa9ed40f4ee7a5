"""CRM: accounts, contacts and opportunities (weekly JSON exports)."""

from __future__ import annotations

import numpy as np

from sample_company import names as nm
from sample_company.context import Ctx, fmt, stamp, versions_frame
from sample_company.ids import random_ids
from sample_company.timeutil import DAY, NEVER, iso_date

INDUSTRY_DISPLAY = {
    "fintech": "FinTech",
    "healthtech": "HealthTech",
    "legaltech": "LegalTech",
    "proptech": "PropTech",
    "saas": "SaaS",
}
COUNTRY_NAME = {
    "US": "United States",
    "GB": "United Kingdom",
    "DE": "Germany",
    "CA": "Canada",
    "FR": "France",
    "NL": "Netherlands",
    "AU": "Australia",
    "SG": "Singapore",
    "IN": "India",
}
TIERS = ("starter", "growth", "enterprise")


def build_crm(ctx: Ctx) -> None:
    _accounts(ctx)
    _contacts(ctx)
    _opportunities(ctx)


def _accounts(ctx: Ctx) -> None:
    rng = ctx.rng("crm.accounts")
    cfg, acc, end = ctx.cfg, ctx.acc, ctx.world.end
    n = ctx.world.n
    ids = random_ids(rng, n, "001", 12)
    dup = rng.random(n) < cfg.duplicate_account_share
    dup_ids = random_ids(rng, int(dup.sum()), "001", 12, taken=set(ids))
    dup_of = dict(zip(np.flatnonzero(dup).tolist(), dup_ids, strict=True))
    ctx.refs["crm_account_id"] = ids
    ctx.refs["crm_dup_account_id"] = dup_of
    created_ts = stamp(rng, acc["crm_created"], acc["tz"])
    rows: list[dict] = []
    for i in range(n):
        country = acc["country"][i]
        employees = int(acc["employees"][i])
        state = {
            "Id": ids[i],
            "Name": nm.name_variant(rng, acc["name"][i], country, cfg.crm_name_variant_share),
            "Website": nm.website_variant(rng, acc["domain"][i], cfg.website_null_share),
            "Industry": INDUSTRY_DISPLAY[acc["industry"][i]],
            "NumberOfEmployees": employees if rng.random() > cfg.crm_employees_null_share else None,
            "BillingCountry": COUNTRY_NAME[country],
            "OwnerName": acc["owner"][i],
            "Type": "Prospect",
            "LeadSource": acc["lead_source"][i],
            "CreatedDate": None,
            "LastModifiedDate": None,
        }
        t0 = int(created_ts[i])
        state["CreatedDate"] = fmt(t0)[0]
        changes: list[tuple[int, dict]] = [(t0, {})]
        tz = acc["tz"][i]
        if acc["converted"][i]:
            day = int(acc["trial_end"][i]) + int(rng.integers(0, cfg.crm_status_lag_days // 3 + 1))
            changes.append((int(stamp(rng, day, tz)[0]), {"Type": "Customer"}))
        if acc["churn_kind"][i] == "churned":
            day = int(acc["churn"][i]) + int(rng.integers(0, cfg.crm_status_lag_days + 1))
            changes.append((int(stamp(rng, day, tz)[0]), {"Type": "Former Customer"}))
        years = max(0.0, (end - acc["crm_created"][i]) / 365.0)
        for _ in range(rng.poisson(cfg.crm_owner_change_rate * years)):
            t = t0 + int(rng.integers(DAY, max(DAY + 1, (end + 1) * DAY - t0)))
            rep = nm.SALES_REPS[rng.integers(len(nm.SALES_REPS))]
            changes.append((t, {"OwnerName": rep}))
        for k in range(1, int(years) + 1):
            grown = max(3, round(employees * (1 + rng.normal(0.06, 0.1)) ** k))
            changes.append(
                (t0 + k * 365 * DAY + int(rng.integers(0, 30 * DAY)), {"NumberOfEmployees": grown})
            )
        changes.sort(key=lambda c: c[0])
        for seq, (t, change) in enumerate(changes):
            state.update(change)
            state["LastModifiedDate"] = fmt(t)[0]
            rows.append({"_rid": ids[i], "_ts": t, "_seq": seq, **state})
        ctx.add_truth("crm", "accounts", ids[i], i, None)
        if i in dup_of:
            rows.extend(_duplicate_account(ctx, rng, i, dup_of[i], t0))
    ctx.versions["crm/accounts"] = versions_frame(rows)


def _duplicate_account(ctx: Ctx, rng, i: int, dup_id: str, t0: int) -> list[dict]:
    """A second record for the same company: another rep typed it in from an event list."""
    acc, end = ctx.acc, ctx.world.end
    country = acc["country"][i]
    t = t0 + int(rng.integers(30, 400)) * DAY
    if t >= (end + 1) * DAY:
        t = t0 + int(rng.integers(1, 30)) * DAY
    name = nm.name_variant(rng, acc["name"][i], country, 1.0)
    website = nm.website_variant(rng, acc["domain"][i], 0.0) if rng.random() < 0.5 else None
    rep = nm.SALES_REPS[rng.integers(len(nm.SALES_REPS))]
    state = {
        "Id": dup_id,
        "Name": name,
        "Website": website,
        "Industry": INDUSTRY_DISPLAY[acc["industry"][i]] if rng.random() < 0.6 else None,
        "NumberOfEmployees": None,
        "BillingCountry": COUNTRY_NAME[country] if rng.random() < 0.5 else None,
        "OwnerName": rep,
        "Type": "Prospect",
        "LeadSource": ("Event", "Outbound")[rng.integers(2)],
        "CreatedDate": fmt(t)[0],
        "LastModifiedDate": fmt(t)[0],
    }
    ctx.add_truth("crm", "accounts", dup_id, i, None)
    return [{"_rid": dup_id, "_ts": t, "_seq": 0, **state}]


def _contacts(ctx: Ctx) -> None:
    rng = ctx.rng("crm.contacts")
    cfg, acc, people, end = ctx.cfg, ctx.acc, ctx.world.people, ctx.world.end
    crm_ids = ctx.refs["crm_account_id"]
    dup_acc = ctx.refs["crm_dup_account_id"]
    sel = people.index[people["is_crm"]].to_numpy()
    ids = random_ids(rng, len(sel), "003", 12)
    dup = rng.random(len(sel)) < cfg.duplicate_contact_share
    dup_ids = iter(random_ids(rng, int(dup.sum()), "003", 12, taken=set(ids)))
    contact_of: dict[int, str] = {}
    rows: list[dict] = []
    recs = people.to_dict("records")
    for j, p in enumerate(sel):
        per = recs[p]
        i = int(per["account"])
        tz = acc["tz"][i]
        created_day = int(per["joined"])
        if per["role"] != "champion" and not acc["is_lead"][i]:
            created_day = max(created_day, int(acc["crm_created"][i]))
            created_day += int(rng.integers(0, cfg.crm_contact_lag_days + 1))
        t0 = int(stamp(rng, created_day, tz)[0])
        email = nm.email_variant(
            rng, per["work_email"], cfg.email_recase_share, cfg.email_whitespace_share
        )
        state = {
            "Id": ids[j],
            "AccountId": crm_ids[i],
            "FirstName": per["first"],
            "LastName": per["last"],
            "Email": email if rng.random() > cfg.contact_email_null_share else None,
            "Title": per["title"],
            "Phone": per["phone"] if rng.random() > cfg.contact_phone_null_share else None,
            "LeadSource": acc["lead_source"][i] if created_day <= acc["signup"][i] else "Product",
            "CreatedDate": fmt(t0)[0],
            "LastModifiedDate": None,
        }
        changes: list[tuple[int, dict]] = [(t0, {})]
        years = max(0.0, (end - created_day) / 365.0)
        for _ in range(rng.poisson(cfg.contact_title_change_rate * years)):
            t = t0 + int(rng.integers(DAY, max(DAY + 1, (end + 1) * DAY - t0)))
            titles = nm.TITLES[per["role"]]
            changes.append((t, {"Title": "Senior " + titles[rng.integers(len(titles))]}))
        if per["left"] < NEVER:
            day = max(int(per["left"]) + int(rng.integers(0, 21)), created_day + 1)
            changes.append((int(stamp(rng, day, tz)[0]), {"Title": nm.LEFT_TITLE}))
        changes.sort(key=lambda c: c[0])
        for seq, (t, change) in enumerate(changes):
            state.update(change)
            state["LastModifiedDate"] = fmt(t)[0]
            rows.append({"_rid": ids[j], "_ts": t, "_seq": seq, **state})
        contact_of[int(p)] = ids[j]
        ctx.add_truth("crm", "contacts", ids[j], i, int(p))
        if dup[j]:
            did = next(dup_ids)
            rows.append(_duplicate_contact(ctx, rng, per, i, did, t0, dup_acc.get(i)))
            ctx.add_truth("crm", "contacts", did, i, int(p))
    ctx.refs["crm_contact_id"] = contact_of
    ctx.versions["crm/contacts"] = versions_frame(rows)


def _duplicate_contact(ctx: Ctx, rng, per, i: int, did: str, t0: int, dup_account) -> dict:
    """The same person typed in again: nickname, another address or none, maybe the dup account."""
    end = ctx.world.end
    first = nm.NICKNAMES.get(per["first"], per["first"])
    k = int(rng.integers(4))
    if k == 0:
        email = per["work_email"].upper()
    elif k == 1:
        dom = per["work_email"].partition("@")[2]
        email = f"{nm.slug(per['first'])[:1]}{nm.slug(per['last'])}@{dom}"
    elif k == 2:
        email = per["personal_email"]
    else:
        email = None
    t = t0 + int(rng.integers(20, 300)) * DAY
    if t >= (end + 1) * DAY:
        t = t0 + DAY
    account_id = ctx.refs["crm_account_id"][i]
    if dup_account is not None and rng.random() < 0.6:
        account_id = dup_account
    state = {
        "Id": did,
        "AccountId": account_id,
        "FirstName": first,
        "LastName": per["last"],
        "Email": email,
        "Title": per["title"] if rng.random() < 0.5 else None,
        "Phone": None,
        "LeadSource": ("Event", "Webinar")[rng.integers(2)],
        "CreatedDate": fmt(t)[0],
        "LastModifiedDate": fmt(t)[0],
    }
    return {"_rid": did, "_ts": t, "_seq": 0, **state}


def _opportunities(ctx: Ctx) -> None:
    rng = ctx.rng("crm.opportunities")
    cfg, acc, end = ctx.cfg, ctx.acc, ctx.world.end
    crm_ids = ctx.refs["crm_account_id"]
    opps: list[tuple[int, str, str, float, list[tuple[int, str]], int]] = []
    # (account, type, name, amount, [(day, stage)], expected close day)
    for i in range(ctx.world.n):
        name = acc["name"][i]
        created = int(acc["crm_created"][i])
        mrr0 = float(acc["mrr0"][i])
        if acc["is_lead"][i]:
            if rng.random() < cfg.lead_opportunity_share:
                d0 = created + int(rng.integers(0, 30))
                steps = [(d0, "prospecting")]
                d = d0
                for stage in ("qualification", "proposal"):
                    if rng.random() < 0.5:
                        break
                    d += int(rng.integers(7, 40))
                    steps.append((d, stage))
                if rng.random() < 0.6:
                    steps.append((d + int(rng.integers(10, 60)), "closed_lost"))
                opps.append(
                    (i, "new_business", f"{name} - New Business", mrr0 * 12, steps, d0 + 60)
                )
            continue
        signup, trial_end = int(acc["signup"][i]), int(acc["trial_end"][i])
        d0 = created + int(rng.integers(0, max(1, (signup - created) // 2)))
        qual = d0 + max(1, (signup - d0) // 2)
        steps = [(d0, "prospecting"), (qual, "qualification"), (signup, "proposal")]
        steps.append((trial_end, "closed_won" if acc["converted"][i] else "closed_lost"))
        opps.append((i, "new_business", f"{name} - New Business", mrr0 * 12, steps, signup + 21))
        up = int(acc["upgrade"][i])
        tier0 = int(acc["tier0"][i])
        if up < NEVER:
            lo, hi = cfg.expansion_opp_lead_days
            o0 = max(trial_end + 1, up - int(rng.integers(lo, hi + 1)))
            mid = o0 + max(1, (up - o0) // 3)
            steps = [(o0, "prospecting"), (mid, "qualification")]
            steps += [(o0 + max(2, 2 * (up - o0) // 3), "proposal"), (up, "closed_won")]
            amount = (float(acc["mrr_up"][i]) - mrr0) * 12
            label = f"{name} - Upgrade to {TIERS[min(tier0 + 1, 2)]}"
            opps.append((i, "expansion", label, amount, steps, up + int(rng.integers(-10, 20))))
        # expansion talks that do not close (more often where the upgrade propensity is high)
        if acc["converted"][i] and tier0 < 2:
            stop = min(int(acc["churn"][i]), up, end)
            years = max(0.0, (stop - trial_end) / 365.0)
            rate = cfg.expansion_opp_false_rate * years * float(acc["up_mult"][i])
            for _ in range(rng.poisson(rate)):
                o0 = trial_end + int(rng.integers(1, max(2, stop - trial_end)))
                steps = [(o0, "prospecting")]
                d = o0
                if rng.random() < 0.6:
                    d += int(rng.integers(7, 30))
                    steps.append((d, "qualification"))
                steps.append((d + int(rng.integers(20, 90)), "closed_lost"))
                amount = (float(acc["mrr_up"][i]) - mrr0) * 12
                label = f"{name} - Upgrade to {TIERS[tier0 + 1]}"
                opps.append((i, "expansion", label, amount, steps, o0 + 60))
    ids = random_ids(rng, len(opps), "006", 12)
    rows: list[dict] = []
    for oid, (i, typ, label, amount, steps, expected) in zip(ids, opps, strict=True):
        tz = acc["tz"][i]
        owner = acc["owner"][i]
        stamps = stamp(rng, [d for d, _ in steps], tz)
        stamps = np.maximum.accumulate(stamps)
        created = fmt(stamps[0])[0]
        for seq, ((day, stage), t) in enumerate(zip(steps, stamps, strict=True)):
            closed = stage.startswith("closed")
            rows.append(
                {
                    "_rid": oid,
                    "_ts": int(t),
                    "_seq": seq,
                    "Id": oid,
                    "AccountId": crm_ids[i],
                    "Name": label,
                    "StageName": stage,
                    "Amount": round(float(amount), 2),
                    "CloseDate": iso_date(day if closed else max(expected, day + 1)),
                    "OwnerName": owner,
                    "Type": typ,
                    "CreatedDate": created,
                    "LastModifiedDate": fmt(t)[0],
                }
            )
    ctx.versions["crm/opportunities"] = versions_frame(rows)
