"""The truth: companies, their people, and when each company signs up, upgrades and churns.

Churn and upgrade times are drawn from hazards. The churn hazard is daily and piecewise
constant: tier base rate x account frailty x adoption x early integrations, raised for starter
accounts with low adoption in their first 90 days and once the champion has left. Everything the
source systems later show (usage, tickets, opportunities) is generated from this world.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sample_company import names as nm
from sample_company.config import Config
from sample_company.timeutil import NEVER

PRODUCT_ROLE = {
    "admin": "admin",
    "champion": "member",
    "end_user": "member",
    "billing_owner": "billing",
}
ACTIVITY_WEIGHT = {"admin": 1.5, "champion": 2.0, "end_user": 1.0, "billing_owner": 0.25}


@dataclass
class World:
    cfg: Config
    start: int  # first day of the window (day number)
    end: int  # last day of the window, inclusive
    acc: pd.DataFrame  # one row per company (truth account)
    people: pd.DataFrame  # one row per real person
    members: pd.DataFrame  # one row per product login (person x workspace)
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.acc)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def simulate_world(rng: np.random.Generator, cfg: Config, n: int, start: int, end: int) -> World:
    a = _accounts(rng, cfg, n, start, end)
    people = _people(rng, cfg, a, start, end)
    _churn_and_upgrade(rng, cfg, a, people, start, end)
    people = _drop_never_joined(people, a)
    people = _plant_traps(rng, cfg, a, people)
    members = _memberships(rng, cfg, a, people)
    acc = pd.DataFrame(a)
    return World(cfg, start, end, acc, people.reset_index(drop=True), members)


# ---------------------------------------------------------------------------------- accounts


def _accounts(rng: np.random.Generator, cfg: Config, n: int, start: int, end: int) -> dict:
    is_lead = rng.random(n) < cfg.lead_share
    industry = np.array(nm.INDUSTRIES)[rng.integers(len(nm.INDUSTRIES), size=n)]
    country = np.array(nm.COUNTRIES)[rng.integers(len(nm.COUNTRIES), size=n)]
    tier0 = rng.choice(3, size=n, p=np.array(cfg.tier_shares))
    med = np.array([m for m, _ in cfg.tier_employees])[tier0]
    sig = np.array([s for _, s in cfg.tier_employees])[tier0]
    z = rng.normal(size=n)
    employees = np.maximum(3, np.round(med * np.exp(sig * z))).astype(np.int64)
    # position inside the tier's MRR band follows company size (plus noise)
    ceil_pct = np.clip(_sigmoid(1.2 * z + rng.normal(0, 0.6, n)), 0.0, 1.0)
    lo = np.array([lo for lo, _ in cfg.tier_mrr])[tier0]
    hi = np.array([hi for _, hi in cfg.tier_mrr])[tier0]
    mrr0 = np.round(lo + (hi - lo) * ceil_pct, -1)
    names, domains = nm.company_names(rng, industry)

    pre = rng.random(n) < cfg.signup_before_window_share
    signup = np.where(
        pre,
        start - rng.integers(1, cfg.history_days + 1, size=n),
        rng.integers(start, end - cfg.signup_end_margin_days + 1, size=n),
    )
    lead_age = rng.integers(cfg.lead_age_days[0], cfg.lead_age_days[1] + 1, size=n)
    crm_created = np.where(
        is_lead, rng.integers(start - cfg.history_days, end - 2, size=n), signup - lead_age
    )
    signup = np.where(is_lead, NEVER, signup)
    trial_end = np.where(is_lead, NEVER, signup + cfg.trial_days)

    adopt = rng.beta(*cfg.adoption_alpha_beta, size=n)
    frailty = np.exp(rng.normal(-(cfg.frailty_sigma**2) / 2, cfg.frailty_sigma, n))
    eng = (
        np.exp(rng.normal(0, cfg.engagement_sigma, n))
        * (0.7 + 0.6 * adopt)
        * np.power(frailty, cfg.engagement_frailty_exponent)
    )
    integ_prop = rng.gamma(1.5, 1 / 1.5, n) * (0.6 + 0.8 * adopt)
    n_int30 = rng.poisson(cfg.integration_first30_mean * integ_prop)
    logit = (
        cfg.trial_convert_base
        + cfg.trial_convert_adoption_coef * (adopt - 0.45)
        + cfg.trial_convert_integration_coef * (np.minimum(n_int30, 3) - 1)
    )
    converted = ~is_lead & (rng.random(n) < _sigmoid(logit))

    up_mult = np.exp(rng.normal(-(cfg.upgrade_sigma**2) / 2, cfg.upgrade_sigma, n))
    upgrade_hazard = (
        np.array(cfg.upgrade_rate_by_tier)[tier0]
        * up_mult
        * np.exp(cfg.upgrade_ceiling_coef * (ceil_pct - 0.5))
    )
    churn_hazard = (
        np.array(cfg.churn_rate_by_tier)[tier0]
        * frailty
        * np.exp(cfg.adoption_hazard_coef * (0.5 - adopt))
        * np.exp(-cfg.integration_hazard_coef * np.minimum(n_int30, cfg.integration_hazard_cap))
    )
    alt = rng.random(n) < cfg.support_org_alt_domain_share
    alt_domain = [d.replace("-", "", 1) if f else "" for d, f in zip(domains, alt, strict=True)]
    discount = np.where(
        rng.random(n) < cfg.discount_share, rng.choice([5.0, 10.0, 15.0, 20.0], n), 0.0
    )
    return {
        "account_key": [f"acc_{i + 1:06d}" for i in range(n)],
        "name": names,
        "domain": domains,
        "alt_domain": alt_domain,
        "industry": industry,
        "employees": employees,
        "country": country,
        "tz": np.array([nm.TZ_OFFSET[c] for c in country], dtype=np.float64),
        "tier0": tier0,
        "mrr0": mrr0,
        "ceil_pct": ceil_pct,
        "is_lead": is_lead,
        "crm_created": crm_created,
        "signup": signup,
        "trial_end": trial_end,
        "converted": converted,
        "adopt": adopt,
        "eng": eng,
        "frailty": frailty,
        "integ_prop": integ_prop,
        "n_int30": n_int30,
        "up_mult": up_mult,
        "churn_hazard": churn_hazard,
        "upgrade_hazard": upgrade_hazard,
        "premium_prop": np.sqrt(upgrade_hazard / max(np.mean(upgrade_hazard), 1e-9)),
        "decay_len": rng.integers(cfg.decay_days[0], cfg.decay_days[1] + 1, size=n),
        "discount": discount,
        "lead_source": np.array(nm.LEAD_SOURCES)[rng.integers(len(nm.LEAD_SOURCES), size=n)],
        "owner": np.array(nm.SALES_REPS)[rng.integers(len(nm.SALES_REPS), size=n)],
        "email_style": rng.choice(
            ["first.last", "flast", "first"],
            size=n,
            p=[1 - cfg.flast_email_share - 0.05, cfg.flast_email_share, 0.05],
        ),
    }


# ---------------------------------------------------------------------------------- people


def _people(rng: np.random.Generator, cfg: Config, a: dict, start: int, end: int) -> pd.DataFrame:
    n = len(a["name"])
    lo, hi = cfg.people_per_account
    size_n = np.clip(
        np.round(lo + 2.0 * np.log(np.maximum(a["employees"], 1) / 10)) + rng.integers(-1, 2, n),
        lo,
        hi,
    ).astype(int)
    lead_n = rng.integers(cfg.lead_people[0], cfg.lead_people[1] + 1, size=n)
    has_champion = rng.random(n) < cfg.champion_share
    rows: list[dict] = []
    for i in range(n):
        lead = bool(a["is_lead"][i])
        k = int(lead_n[i] if lead else size_n[i])
        roles = ["admin", "champion", "billing_owner"]
        if not has_champion[i]:
            roles[1] = "end_user"
        roles = (roles + ["end_user"] * k)[:k]
        if k >= 8:
            roles[3] = "admin"
        signup = int(a["signup"][i])
        created = int(a["crm_created"][i])
        span_end = end if lead else signup + 2 * 365
        for j, role in enumerate(roles):
            first = nm.FIRST_NAMES[rng.integers(len(nm.FIRST_NAMES))]
            last = nm.LAST_NAMES[rng.integers(len(nm.LAST_NAMES))]
            if lead:
                joined = created + int(rng.integers(0, 30))
            elif j < 3 or rng.random() < cfg.people_initial_share:
                joined = (
                    signup if role in ("admin", "champion") else signup + int(rng.integers(0, 20))
                )
                if role == "champion":
                    joined = created  # the champion drove the purchase
            else:
                joined = int(rng.integers(signup + 1, max(signup + 2, span_end)))
            stay = rng.exponential(365.0 / cfg.person_leave_rate)
            left = joined + int(stay) + 1
            rows.append(
                {
                    "account": i,
                    "role": role,
                    "first": first,
                    "last": last,
                    "joined": joined,
                    "left": left if left <= end else NEVER,
                }
            )
    return pd.DataFrame(rows)


def _assign_emails(rng: np.random.Generator, cfg: Config, a: dict, df: pd.DataFrame) -> None:
    work, personal, used_all = [], [], {}
    taken: set[str] = {"priya.raman.cpa@gmail.com", nm.SHARED_PERSONAL_INBOX}
    for acc, first, last in zip(df["account"], df["first"], df["last"], strict=True):
        dom = a["domain"][acc]
        style = str(a["email_style"][acc])
        used = used_all.setdefault(acc, set())
        email = nm.work_email(first, last, dom, style)
        if email in used:
            email = nm.work_email(first, last, dom, "first.last")
        k = 2
        while email in used:
            local, _, d = nm.work_email(first, last, dom, "first.last").partition("@")
            email = f"{local}{k}@{d}"
            k += 1
        used.add(email)
        work.append(email)
        own = nm.personal_email(rng, first, last)
        while own in taken:  # one mailbox is one person: no two people share a personal address
            local, _, d = own.partition("@")
            own = f"{local}{rng.integers(10)}@{d}"
        taken.add(own)
        personal.append(own)
    df["work_email"] = work
    df["personal_email"] = personal


# ---------------------------------------------------------------------------------- hazards


def _churn_and_upgrade(
    rng: np.random.Generator, cfg: Config, a: dict, people: pd.DataFrame, start: int, end: int
) -> None:
    n = len(a["name"])
    champ = people[people["role"] == "champion"]
    champion_leave = np.full(n, NEVER, dtype=np.int64)
    champion_leave[champ["account"].to_numpy()] = champ["left"].to_numpy()
    a["champion_leave"] = champion_leave

    signup, trial_end, tier0 = a["signup"], a["trial_end"], a["tier0"]
    live = a["converted"]
    # upgrade: constant hazard from trial end + minimum tenure
    lam_up = a["upgrade_hazard"] / 365.0
    wait = np.where(lam_up > 0, rng.exponential(1.0, n) / np.maximum(lam_up, 1e-12), np.inf)
    upgrade = trial_end + cfg.upgrade_min_tenure_days + np.minimum(wait, 1e7).astype(np.int64)
    upgrade = np.where(live & (tier0 < 2) & (upgrade <= end), upgrade, NEVER)

    # churn: piecewise-constant daily hazard on a day grid, first passage of an Exp(1) draw
    g0 = int(np.min(np.where(live, trial_end, end)))
    days = np.arange(min(g0, end), end + 1, dtype=np.int64)
    rates = np.array(cfg.churn_rate_by_tier) / 365.0
    tier_g = np.minimum(tier0[:, None] + (days[None, :] >= upgrade[:, None]), 2)
    h = rates[tier_g] * (a["churn_hazard"] / np.array(cfg.churn_rate_by_tier)[tier0])[:, None]
    early = (
        (tier0 == 0)[:, None]
        & (a["adopt"] < cfg.early_low_adoption_threshold)[:, None]
        & ((days[None, :] - signup[:, None]) < cfg.early_low_adoption_days)
    )
    h = h * np.where(early, cfg.early_low_adoption_mult, 1.0)
    h = h * np.where(days[None, :] >= champion_leave[:, None], cfg.champion_leave_mult, 1.0)
    h = np.where(live[:, None] & (days[None, :] >= trial_end[:, None]), h, 0.0)
    cum = np.cumsum(h, axis=1)
    draw = rng.exponential(1.0, n)
    hit = cum >= draw[:, None]
    first = np.argmax(hit, axis=1)
    churn = np.where(hit.any(axis=1), days[np.minimum(first, len(days) - 1)], NEVER)
    churn = np.where(live, churn, np.where(a["is_lead"], NEVER, trial_end))
    churn = np.where(churn <= end, churn, NEVER)
    upgrade = np.where(upgrade < churn, upgrade, NEVER)
    a["churn"] = churn
    a["horizon_end"] = end
    a["upgrade"] = upgrade
    a["tier_end"] = np.where(upgrade < NEVER, np.minimum(tier0 + 1, 2), tier0)
    lo = np.array([lo for lo, _ in cfg.tier_mrr])
    hi = np.array([hi for _, hi in cfg.tier_mrr])
    t1 = np.minimum(tier0 + 1, 2)
    # after an upgrade: the next tier's band, at the same relative position (or its floor)
    a["mrr_up"] = np.round(
        np.maximum(lo[t1] + (hi[t1] - lo[t1]) * a["ceil_pct"] * 0.5, a["mrr0"] * 1.3), -1
    )
    deleted = (churn < NEVER) & (rng.random(n) < cfg.workspace_delete_share)
    lo, hi = cfg.workspace_delete_lag_days
    a["ws_deleted"] = np.where(deleted, churn + rng.integers(lo, hi + 1, size=n), NEVER)
    a["churn_kind"] = np.where(
        churn >= NEVER, "", np.where(a["converted"], "churned", "trial_not_converted")
    )


def _drop_never_joined(people: pd.DataFrame, a: dict) -> pd.DataFrame:
    """People who would have joined after the account churned never appear at all."""
    acc = people["account"].to_numpy()
    stop = np.minimum(a["churn"][acc], a["horizon_end"] + 1)
    keep = (people["joined"].to_numpy() < stop) | a["is_lead"][acc]
    keep |= people["role"].isin(["admin", "champion"]).to_numpy()
    return people[keep].reset_index(drop=True)


# ---------------------------------------------------------------------------------- traps


def _plant_traps(
    rng: np.random.Generator, cfg: Config, a: dict, people: pd.DataFrame
) -> pd.DataFrame:
    n = len(a["name"])
    customers = np.flatnonzero(~a["is_lead"])
    # two different real people, same common name, different companies
    for k in range(min(cfg.same_name_pairs, len(nm.COMMON_NAMES))):
        if len(customers) < 2:
            break
        pair = rng.choice(customers, 2, replace=False)
        first, last = nm.COMMON_NAMES[k]
        for acc in pair:
            idx = people.index[(people["account"] == acc) & (people["role"] == "end_user")]
            if len(idx) == 0:
                idx = people.index[people["account"] == acc]
            people.loc[idx[-1], ["first", "last"]] = [first, last]
    _assign_emails(rng, cfg, a, people)
    people["person_key"] = [f"per_{i + 1:06d}" for i in range(len(people))]
    people["accounts"] = [[int(x)] for x in people["account"]]
    people["consultant"] = False

    # one consultant who works in several client workspaces with one address
    k = min(cfg.consultant_client_count, len(customers))
    clients = sorted(int(x) for x in rng.choice(customers, k, replace=False)) if k else []
    first, last = "Priya", "Raman"
    c_row = {
        "account": clients[0] if clients else int(customers[0]) if len(customers) else 0,
        "role": "admin",
        "first": first,
        "last": last,
        "joined": int(min(a["signup"][clients])) if clients else int(a["crm_created"][0]),
        "left": NEVER,
        "work_email": f"priya.raman@{nm.CONSULTANCY[1]}",
        "personal_email": "priya.raman.cpa@gmail.com",
        "person_key": f"per_{len(people) + 1:06d}",
        "accounts": clients,
        "consultant": True,
    }
    people = pd.concat([people, pd.DataFrame([c_row])], ignore_index=True)

    # companies whose billing e-mail is an outside shared inbox
    free = np.setdiff1d(customers, clients)
    m = min(cfg.shared_billing_inbox_accounts, len(free))
    shared = rng.choice(free, m, replace=False) if m else np.array([], dtype=int)
    inbox = np.full(n, "", dtype=object)
    for j, acc in enumerate(sorted(int(x) for x in shared)):
        inbox[acc] = f"billing@{nm.CONSULTANCY[1]}" if j % 2 == 0 else nm.SHARED_PERSONAL_INBOX
    a["shared_inbox"] = inbox

    # per person: in the CRM? a product user? with a personal address?
    roles = people["role"].to_numpy()
    lead = a["is_lead"][people["account"].to_numpy()]
    share = np.array([cfg.crm_contact_share_by_role[r] for r in roles])
    people["is_crm"] = lead | (rng.random(len(people)) < share) | people["consultant"].to_numpy()
    prod_share = np.array([cfg.product_user_share_by_role[r] for r in roles])
    people["is_product"] = ~lead & (rng.random(len(people)) < prod_share)
    people.loc[people["consultant"], "is_product"] = True
    people["uses_personal"] = people["is_product"] & (
        rng.random(len(people)) < cfg.personal_email_product_share
    )
    people.loc[people["consultant"], "uses_personal"] = False
    titles = [nm.TITLES[r][rng.integers(len(nm.TITLES[r]))] for r in roles]
    people["title"] = titles
    people["phone"] = [
        f"+1 {rng.integers(201, 989)} 555 {rng.integers(0, 10000):04d}" for _ in range(len(people))
    ]
    return people


# ---------------------------------------------------------------------------------- product logins


def _memberships(
    rng: np.random.Generator, cfg: Config, a: dict, people: pd.DataFrame
) -> pd.DataFrame:
    rows = []
    for p in people[people["is_product"]].itertuples():
        accs = p.accounts if p.consultant else [p.account]
        for acc in accs:
            signup = int(a["signup"][acc])
            created = max(int(p.joined), signup)
            if p.consultant:
                created = signup + int(rng.integers(0, 60))
            if p.uses_personal:
                email = nm.personal_alias(rng, p.personal_email)
            else:
                email = nm.email_variant(rng, p.work_email, cfg.email_recase_share, 0.0)
            rows.append(
                {
                    "person": p.Index,
                    "account": int(acc),
                    "role": "member" if p.consultant else PRODUCT_ROLE[p.role],
                    "weight": 0.8 if p.consultant else ACTIVITY_WEIGHT[p.role],
                    "created": created,
                    "deactivated": int(p.left),
                    "email": email,
                    "name": f"{p.first} {p.last}",
                }
            )
    m = pd.DataFrame(rows)
    # an account's first admin invites everybody else
    m = m.sort_values(["account", "created", "person"], kind="stable").reset_index(drop=True)
    return m
