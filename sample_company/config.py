"""Every knob of the sample company in one place: world model, planted signals and mess rates.

Rates are per account (or per person / per record) unless said otherwise; daily hazards are
given as annual rates and divided by 365 where used. Changing a value changes the world, and
the value is recorded in `_truth/manifest.json`, so a measurement can always tell what was planted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Config:
    # ------------------------------------------------------------------ time and population
    # Signups may lie up to this many days before the window: the first extract of every
    # weekly object is then a full export of the history so far (usage events start at the
    # window start: the product's analytics pipeline "went live" then).
    history_days: int = 540
    signup_before_window_share: float = 0.40  # of signed-up accounts, signed up before the window
    signup_end_margin_days: int = 7  # no signups in the last days of the window
    lead_share: float = 0.15  # CRM accounts that never sign up
    lead_age_days: tuple[int, int] = (5, 120)  # CRM CreatedDate lies this long before signup
    trial_days: int = 14
    tier_shares: tuple[float, float, float] = (0.50, 0.35, 0.15)  # starter, growth, enterprise
    # (low, high) MRR per tier; an upgrade moves to the next tier's range.
    tier_mrr: tuple[tuple[float, float], ...] = ((200, 1000), (1000, 5000), (5000, 25000))
    # log-normal employee count per tier: (median, sigma)
    tier_employees: tuple[tuple[float, float], ...] = ((25, 0.7), (150, 0.7), (1200, 0.8))
    people_per_account: tuple[int, int] = (3, 15)  # by company size
    lead_people: tuple[int, int] = (1, 3)  # CRM-only contacts of leads
    people_initial_share: float = 0.6  # people there at signup; the rest join over the tenure
    person_leave_rate: float = 0.12  # per person-year
    champion_share: float = 0.9  # accounts that have a champion
    # who has a product login, by role (billing owners mostly live in the billing system)
    product_user_share_by_role: dict[str, float] = field(
        default_factory=lambda: {
            "admin": 0.95,
            "champion": 0.95,
            "end_user": 0.95,
            "billing_owner": 0.3,
        }
    )
    workspace_delete_share: float = 0.6  # churned accounts whose workspace is deleted ...
    workspace_delete_lag_days: tuple[int, int] = (14, 90)  # ... this long after the churn date

    # ------------------------------------------------------------------ churn (truth)
    # Annual churn hazard per tier (after the trial), times an account-level log-normal frailty.
    churn_rate_by_tier: tuple[float, float, float] = (0.45, 0.26, 0.10)
    frailty_sigma: float = 0.7  # account heterogeneity, only partly visible (usage, tickets, risk)
    engagement_frailty_exponent: float = -0.35  # frail accounts use the product less
    # Starter accounts with low adoption churn at an elevated rate in their first 90 days.
    early_low_adoption_threshold: float = 0.35
    early_low_adoption_days: int = 90
    early_low_adoption_mult: float = 5.0
    adoption_hazard_coef: float = 2.5  # hazard *= exp(coef * (0.5 - adoption))
    # integration_connect events in the first 30 days protect: hazard *= exp(-coef * min(n, cap))
    integration_first30_mean: float = 1.8  # mean connects in the first 30 days (gamma-mixed)
    integration_hazard_coef: float = 0.30
    integration_hazard_cap: int = 6
    champion_leave_mult: float = 2.5  # hazard multiplier once the champion has left
    # Trial conversion: logistic on adoption and early integrations.
    trial_convert_base: float = 1.9  # logit intercept: ~85% convert
    trial_convert_adoption_coef: float = 3.0
    trial_convert_integration_coef: float = 0.4

    # ------------------------------------------------------------------ upgrade (truth)
    upgrade_rate_by_tier: tuple[float, float, float] = (0.22, 0.14, 0.0)  # annual; none above ent.
    upgrade_sigma: float = 0.6  # account-level log-normal multiplier
    upgrade_ceiling_coef: float = 1.2  # hazard *= exp(coef * (mrr_tier_ceiling_pct - 0.5))
    upgrade_min_tenure_days: int = 30  # after the trial end

    # ------------------------------------------------------------------ usage (product)
    # Calibrated so that --accounts 5000 --days 730 yields about 10M events.
    sessions_per_user_day: float = 0.49  # times engagement, per active user^users_exponent
    users_exponent: float = 0.6
    engagement_sigma: float = 0.5
    events_per_session_extra: float = 4.5  # mean events after the session_start
    weekend_factor: float = 0.3
    onboarding_ramp_days: int = 21  # usage ramps from 50% to 100% over the first weeks
    decay_days: tuple[int, int] = (30, 60)  # usage declines over this many days before churn
    decay_floor: float = 0.12  # ... down to this share of normal at the churn date
    non_converter_engagement: float = 0.5  # trials that will not convert use the product less
    # base event-type mix within sessions (after session_start)
    event_mix: dict[str, float] = field(
        default_factory=lambda: {
            "evidence_upload": 0.24,
            "monitoring_run": 0.22,
            "report_view": 0.26,
            "api_call": 0.24,
            "integration_connect": 0.008,
        }
    )
    api_call_without_user_share: float = 0.3  # api calls by an integration token: user_id null
    premium_trials_per_day: float = 0.012  # per active account-day, times upgrade propensity
    premium_destiny_mult: float = 3.5  # accounts that will upgrade try premium features more ...
    premium_pre_upgrade_mult: float = 12.0  # ... and much more in the days before the upgrade
    premium_pre_upgrade_days: int = 60
    late_event_share: float = 0.01  # events delivered 1-3 days late
    late_delay_probs: tuple[float, float, float] = (0.6, 0.3, 0.1)  # 1, 2, 3 days
    adoption_alpha_beta: tuple[float, float] = (2.2, 2.6)  # account adoption level ~ Beta
    adoption_event_noise: float = 0.08

    # ------------------------------------------------------------------ support
    tickets_per_year: float = 5.0  # base, times size^0.3 and frailty^0.5
    pre_churn_ticket_days: int = 60
    pre_churn_ticket_mult: float = 4.5  # ticket rate multiplier before churn (extra tickets)
    onboarding_ticket_days: int = 45
    onboarding_ticket_rate: float = 0.025  # extra onboarding tickets per day early in tenure
    pre_upgrade_feature_request_days: int = 90
    pre_upgrade_feature_request_per_day: float = 0.03
    priority_base: tuple[float, float, float, float] = (0.35, 0.40, 0.18, 0.07)
    priority_pre_churn: tuple[float, float, float, float] = (0.12, 0.28, 0.40, 0.20)
    # compliance, integration, billing, onboarding, feature_request
    topic_base: tuple[float, ...] = (0.36, 0.16, 0.16, 0.12, 0.20)
    topic_pre_churn: tuple[float, ...] = (0.18, 0.34, 0.12, 0.30, 0.06)
    support_org_share: float = 0.92  # signed-up accounts with a support organization
    ticket_without_org_share: float = 0.04

    # ------------------------------------------------------------------ CRM / sales
    crm_owner_change_rate: float = 0.15  # per account-year
    contact_title_change_rate: float = 0.06  # per contact-year
    crm_contact_share_by_role: dict[str, float] = field(
        default_factory=lambda: {
            "admin": 0.9,
            "champion": 0.95,
            "billing_owner": 0.85,
            "end_user": 0.35,
        }
    )
    expansion_opp_lead_days: tuple[int, int] = (20, 80)  # opened this long before the upgrade
    expansion_opp_false_rate: float = 0.08  # per account-year: expansion opps that do not close
    lead_opportunity_share: float = 0.6  # leads with a new-business opportunity
    crm_status_lag_days: int = 10  # CRM Type follows conversion / churn up to this many days late
    crm_contact_lag_days: int = 45  # people reach the CRM up to this long after they join

    # ------------------------------------------------------------------ billing
    failed_invoice_share: float = 0.04
    failed_invoice_void_share: float = 0.2  # of failed invoices: never paid, voided after 30 days
    discount_share: float = 0.15  # subscriptions with a discount (visible once the column exists)
    currency_by_country: dict[str, str] = field(
        default_factory=lambda: {"DE": "EUR", "FR": "EUR", "NL": "EUR", "GB": "GBP"}
    )

    # ------------------------------------------------------------------ mess: cross references
    billing_crm_ref_share: float = 0.65  # billing customer carries crm_account_id
    workspace_billing_ref_share: float = 0.55  # workspace carries billing_customer_id
    support_crm_ref_share: float = 0.40  # support org carries crm_account_id
    risk_crm_ref_share: float = 0.80  # risk signal carries crm_account_id

    # ------------------------------------------------------------------ mess: duplicates, variants
    duplicate_account_share: float = 0.03  # second CRM account record for the same company
    duplicate_contact_share: float = 0.03  # second CRM contact record for the same person
    email_recase_share: float = 0.15  # `John.Smith@Northwind-Analytics.com`
    email_whitespace_share: float = 0.04  # leading/trailing blanks
    personal_email_product_share: float = 0.08  # product users signing up with a personal address
    flast_email_share: float = 0.15  # work address `jsmith@` instead of `john.smith@`
    website_null_share: float = 0.08
    name_variant_share: float = 0.5  # a system shows a legal-form / case variant of the name
    support_org_www_share: float = 0.15
    support_org_upper_share: float = 0.10
    support_org_alt_domain_share: float = 0.03  # helpdesk keyed by an alias domain (no hyphen)
    shared_billing_inbox_accounts: int = 4  # unrelated companies billed to one shared inbox
    consultant_client_count: int = 4  # workspaces one consultant uses with one email
    same_name_pairs: int = 2  # different people, same common name, different companies
    billing_generic_email_share: float = 0.2  # billing@ / accounts@ / finance@ of the domain
    billing_personal_email_share: float = 0.05  # billing owner's personal address
    crm_name_variant_share: float = 0.25  # the CRM mostly has the clean name
    crm_employees_null_share: float = 0.05
    contact_email_null_share: float = 0.03
    contact_phone_null_share: float = 0.3
    ticket_personal_email_share: float = 0.05  # requesters writing from a personal address
    ticket_email_whitespace_share: float = 0.08
    workspace_rename_share: float = 0.05
    user_promote_share: float = 0.03  # members made admin later

    # ------------------------------------------------------------------ mess: unparseable rows
    # (object, kind, files, rows per file); only files with >= bad_row_min_file_rows rows are
    # picked, so one bad row never exceeds ~1% of its file (the raw gate allows 5% per batch).
    bad_rows: tuple[tuple[str, str, int, int], ...] = (
        ("product/usage_events", "truncated_json", 3, 2),
        ("billing/invoices", "non_numeric_amount", 2, 1),
        ("support/tickets", "extra_column", 2, 1),
        ("crm/contacts", "missing_id", 2, 1),
    )
    bad_row_min_file_rows: int = 100

    # ------------------------------------------------------------------ consent
    consent_product_analytics_share: float = 0.9
    consent_crm_sync_share: float = 0.7
    consent_sales_outreach_share: float = 0.4
    consent_web_form_share: float = 0.3
    consent_revoke_share: float = 0.1

    # ------------------------------------------------------------------ risk signals
    risk_watched_lead_share: float = 0.3  # leads the risk vendor also reports on
    risk_gap_frailty_coef: float = 0.12  # compliance_gap_score += coef * log(frailty)
    risk_gap_pre_churn: float = 0.10  # ... += this within 90 days before churn
    risk_flags_frailty_rate: float = 0.4  # vendor_risk_flags ~ Poisson(rate * frailty + ...)
    risk_flags_pre_churn_rate: float = 0.3

    # ------------------------------------------------------------------ output
    gzip_level: int = 1  # usage files: fast and still ~4x smaller than the text
    write_threads: int = 2

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT = Config()
