"""`make demo`'s summary prints whatever each step reported: a run whose model step found the
model already trained (by another run at the same time) must not crash the summary."""

import runpy

from conftest import ROOT

DEMO = runpy.run_path(str(ROOT / "platform" / "demo.py"))
SUBS = "billing/subscriptions/{d}/subscriptions.csv"


def _subs(rows: list[str]) -> str:
    """A subscriptions extract with a `discount_pct` column; rows are 'i,discount'."""
    head = (
        "subscription_id,customer_id,plan,status,mrr,seats,started_at,current_period_end,"
        "canceled_at,updated_at,discount_pct"
    )
    body = [
        f"sub_{i},cus_{i},growth,active,1200,5,2026-01-01T00:00:00Z,2026-03-01T00:00:00Z,,"
        f"2026-01-02T08:00:00Z,{discount}"
        for i, discount in (r.split(",") for r in rows)
    ]
    return "\n".join([head, *body]) + "\n"


def test_a_model_line_for_a_trained_a_kept_and_a_bare_model_step():
    line = DEMO["_model_line"]
    trained = {
        "model_version": "2",
        "retrained": True,
        "champion_version": "1",
        "promoted": False,
        "auc": 0.7412,
        "pr_auc": 0.2,
        "brier": 0.05,
        "base_rate": 0.06,
    }
    assert line("ml/churn_model", trained) == (
        "ml/churn_model: version 2 (champion 1, kept as challenger); "
        "holdout AUC 0.741, PR-AUC 0.200, Brier 0.0500, base rate 0.060"
    )
    kept = {"model_version": "1", "retrained": False, "champion_version": "1"}
    assert line("ml/churn_model", kept) == (
        "ml/churn_model: version 1 (champion 1), kept: its training set and settings are unchanged"
    )
    assert line("ml/churn_model", {"model_version": "1", "retrained": False}).startswith(
        "ml/churn_model: version 1, kept"
    )
    assert line("ml/churn_model", {}).startswith("ml/churn_model: version -")


def test_the_summary_names_a_check_that_did_not_pass(lakehouse):
    """Issue 22: the summary said "success" while checks failed. A raw gate refusing a type
    change is named with its severity and the first line of its reason."""
    from test_raw_layer import HEADER, SUBS, sub_row, subs_file

    header = HEADER + ",discount_pct"
    lakehouse.drop(
        SUBS.format(d="2026-01-05"),
        subs_file([sub_row(i, extra=",0.15") for i in range(10)], header),
    )
    passed = lakehouse.materialize("raw/billing_subscriptions")
    assert passed.success
    assert DEMO["check_lines"]([passed]) == ["checks: all 1 passed"]
    lakehouse.drop(SUBS.format(d="2026-01-12"), _subs([f"{i},ten" for i in range(10, 20)]))
    failed = lakehouse.materialize("raw/billing_subscriptions")
    lines = DEMO["check_lines"]([passed, failed])  # the latest evaluation of a check counts
    assert lines[0] == "checks: 1 of 1 did not pass"
    assert lines[1].startswith("  FAILED raw/billing_subscriptions gx_suite: ")
    assert "discount_pct" in lines[1] and "\n" not in lines[1] and len(lines[1]) <= 120
