"""`make demo`'s summary prints whatever each step reported: a run whose model step found the
model already trained (by another run at the same time) must not crash the summary."""

import runpy

from conftest import ROOT

DEMO = runpy.run_path(str(ROOT / "platform" / "demo.py"))


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
    change of a declared column is named with its severity and the first line of its reason."""
    from test_raw_layer import SUBS, good_batch, sub_row, subs_file

    lakehouse.drop(SUBS.format(d="2026-01-05"), good_batch(10))
    passed = lakehouse.materialize("raw/billing_subscriptions")
    assert passed.success
    assert DEMO["check_lines"]([passed]) == ["checks: all 1 passed"]
    # Every mrr of the next extract is text: the declared float column changed type.
    lakehouse.drop(
        SUBS.format(d="2026-01-12"), subs_file([sub_row(i, mrr="ten") for i in range(10, 20)])
    )
    failed = lakehouse.materialize("raw/billing_subscriptions")
    lines = DEMO["check_lines"]([passed, failed])  # the latest evaluation of a check counts
    assert lines[0] == "checks: 1 of 1 did not pass"
    assert lines[1].startswith("  FAILED raw/billing_subscriptions gx_suite: ")
    assert "mrr" in lines[1] and "\n" not in lines[1] and len(lines[1]) <= 120
