"""What the lakehouse promises, each with the tests that try to break it: the one place the
promise tables of docs/reliability.md come from.

- The fault suite (`make faults`) refreshes docs/figures/faults.json from the figures its tests
  measured and rewrites the tables between the `promises:` markers (`pytest_sessionfinish` in
  tests/conftest.py), so the document quotes what the suite measured, never a hand-typed figure.
- tests/test_promises.py (the fast suite, hence CI) fails when a promise names no test, names a
  test that does not exist or is skipped, or when the document's tables differ from what this
  module renders from the committed figures.

    python tests/promises.py      # rewrite the tables from docs/figures/faults.json
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
FIGURES = ROOT / "docs" / "figures" / "faults.json"
Figures = dict[str, dict]


@dataclass(frozen=True)
class Promise:
    """A promise in plain words, the tests (pytest node ids) that would fail if it were broken,
    and, for the fault suite's, how its figures read."""

    text: str
    tests: tuple[str, ...]
    figures: Callable[[Figures], str] | None = None
    sections: tuple[str, ...] = ()  # the figures.json sections it quotes
    mutations: tuple[str, ...] = field(default=())  # named mutations its tests kill


def _n(x: object) -> str:
    return f"{x:,}" if isinstance(x, int) else str(x)


def _zero(x: object) -> str:
    return f"**{_n(x)}**"


def _bad_input(f: Figures) -> str:
    b = f["bad_input"]
    return (
        f"{b['kinds']} kinds in {b['files']} files, {b['sources']} sources, {b['tables']} tables. "
        f"{_n(b['rows_tried'])} rows tried: {_n(b['rows_published'])} published, "
        f"{_n(b['rows_quarantined'])} quarantined ({_n(b['rows_quarantined_row_by_row'])} row by "
        f"row, {_n(b['rows_in_files_refused_whole'])} in files refused whole), "
        f"{_n(b['rows_in_duplicate_files_not_republished'])} in duplicate files (not published "
        f"again), {_n(b['rows_held_by_failed_gates'])} held by {b['gate_failures']} failed gates. "
        f"Rows unaccounted: {_zero(b['rows_unaccounted'])}. Rows published wrongly: "
        f"{_zero(b['rows_published_wrongly'])}. Messages naming file, line and rule: "
        f"{b['messages_naming_file_line_and_rule']} of {b['kinds']}."
    )


def _landing(f: Figures) -> str:
    t = f["landing_trust"]

    def part(name: str) -> str:
        return f"{name}: " + ", ".join(
            f"{_n(v)} {k.split(': ', 1)[1].replace('_', ' ')}"
            for k, v in sorted(t.items())
            if k.startswith(name + ": ") and not k.endswith("seconds")
        )

    classes = sorted({k.split(": ", 1)[0] for k in t if ": " in k})
    return (
        f"{t['kinds']} kinds in {len(classes)} classes, {_n(t['rows_landed'])} rows landed. "
        + ". ".join(part(c) for c in classes)
        + f". Rows lost: {_zero(t['rows_lost'])}. Rows published wrongly: "
        f"{_zero(t['rows_published_wrongly'])}."
    )


def _crashes(f: Figures) -> str:
    c = f["crashes"]
    return (
        f"{c['crash_points']} crash points ({c['sample_company']}). {_n(c['tables_checked'])} "
        f"tables checked after the kills, corrupted tables: {_zero(c['corrupted_tables'])}. "
        f"{c['reruns_equal_reference']} of {c['crash_points']} re-runs equal the reference, "
        "CRM included."
        + (
            f" CRM records sent twice across a kill and its re-run, counted from the sync "
            f"audit: {_zero(c['crm_records_sent_twice'])}."
            if "crm_records_sent_twice" in c
            else ""
        )
    )


def _concurrency(f: Figures) -> str:
    r, h = f["concurrency_raw"], f["concurrency_raw_pool_wait"]
    e, w = f["concurrency_events"], f["concurrency_whole_graph"]
    return (
        f"{r['runs_at_once']} raw runs at once on one instance: {r['raw_tables']} tables, "
        f"{_n(r['rows'])} rows, duplicated rows: {_zero(r['duplicated_rows'])}; steps of the two "
        f"runs executing at once (from step start and end times): "
        f"{_zero(r['pooled_steps_overlapping'])} of {r['pooled_steps']}, "
        f"{r['steps_blocked_by_a_pool']} steps waited for a pool, longest {r['longest_wait_s']} s. "
        f"With the first run held inside `{h['held_step']}`, the second ran its other "
        f"{h['steps_per_run'] - 1} steps beside it and waited {h['second_run_waited_s']} s for "
        f"that pool, starting {h['held_step_gap_s']} s after the first ended it; steps "
        f"overlapping: {_zero(h['steps_overlapping'])}, duplicated rows: "
        f"{_zero(h['duplicated_rows'])}. "
        f"{e['runs_at_once']} runs of the same event days at once: duplicated rows: "
        f"{_zero(e['duplicated_rows'])}, {e['succeeded']} of {e['runs_at_once']} succeeded. "
        f"{w['builds_at_once']} `make demo` at once on a fresh lake and instance: exit codes "
        f"{', '.join(map(str, w['exit_codes']))}; {w['tables']} tables, {_n(w['rows'])} rows "
        f"compared with one build alone, tables differing: {_zero(w['tables_differing'])}; the "
        f"CRM ({w['crm_records']} records, differing: {_zero(w['crm_records_differing'])}) and "
        "the model registry ("
        + ", ".join(f"{m}: versions {v}" for m, v in sorted(w["model_versions"].items()))
        + ")."
    )


def _dead_runs(f: Figures) -> str:
    k, h = f["dead_run_killed"], f["dead_run_live_holder"]
    return (
        f"A raw run killed {k['killed_after_s']} s in while holding "
        f"{', '.join(k['pools_held_by_killed_run'])}: marked {k['killed_run_status']}, slots "
        f"held after: {_zero(k['slots_held_after'])}; the re-run took {k['rerun_s']} s (an "
        f"uninterrupted run {k['uninterrupted_run_s']} s) and "
        f"{k['raw_tables_equal_to_uninterrupted']} raw tables equal an uninterrupted build. "
        f"With a live holder: it stayed {h['holder_status_while_others_waited']} while the others "
        f"waited, {h['runs_succeeded_after_holder_went_on']} runs succeeded after it went on; "
        f"SIGTERM ended a waiting run in {h['sigterm_to_exit_s']} s (exit "
        f"{h['sigterm_exit_code']})."
    )


def _idempotence(f: Figures) -> str:
    i = f["idempotence"]
    return (
        f"{i['tables']} tables, {_n(i['rows'])} rows. Tables whose content changed: "
        f"{_zero(i['tables_changed'])}. {i['tables_with_a_new_version']} were rewritten with "
        f"equal content: {i['rewritten_with_equal_content']}."
    )


def _security(f: Figures) -> str:
    s, q, lo = f["secrets"], f["sql_injection"], f["loopback"]
    return (
        f"{s['secrets_tried']} secrets. {_n(s['files_scanned'])} files and {s['tables_scanned']} "
        f"tables scanned, files or tables holding a secret: "
        f"{_zero(s['files_with_a_secret'] + s['tables_with_a_secret'])}; the CRM got "
        f"{s['crm_records_sent']} records with the token. {q['hostile_values_tried']} hostile "
        f"values, rows changed wrongly: {_zero(q['rows_changed_wrongly'])}. The UI listens on "
        f"{lo['ui_listening_addresses']} only."
    )


def _offline(f: Figures) -> str:
    n, p = f["no network at run time"], f["no emails or names in Dagster's storage"]
    return (
        f"A whole `make demo` build, its models and two bad deliveries in "
        f"{n['guarded_processes']} guarded processes: outbound connection attempts "
        f"{_zero(n['outbound_attempts'])}. {p['runs']} runs, {_n(p['texts_scanned'])} texts of "
        f"the event log, run records, failed-check descriptions and Data Docs scanned for "
        f"{p['emails']} emails and {p['names']} names of the landing data: texts holding one "
        f"{_zero(p['texts_holding_one'])}."
    )


F = "tests/faults/"

FAULT_PROMISES: tuple[Promise, ...] = (
    Promise(
        "Bad input is caught, not spread. Every landed row is either published or quarantined "
        "with its file, line and rule, and the counts add up. No row that breaks a rule reaches "
        "a published table. A person reads the file, line and rule in the quarantine row or in "
        "the failed check.",
        (F + "test_bad_input.py",),
        _bad_input,
        ("bad_input",),
    ),
    Promise(
        "Nothing in the landing zone is trusted. A file is known by its content: a corrected "
        "file under the same path supersedes the old one for every layer above (never a "
        "duplicate), and an edit that keeps size and time is still seen. A partial upload is "
        "not read until renamed. A link, device, FIFO or folder where a file is expected is "
        "never opened; a folder that is not a date, or lies after the platform's clock, is "
        "refused. A date no table can hold is quarantined. Each decision is logged, each "
        "refusal quarantined with its reason.",
        (F + "test_landing_trust.py",),
        _landing,
        ("landing_trust",),
    ),
    Promise(
        "A crash loses nothing. A run killed with SIGKILL before, during or after a layer's "
        "Delta commit, or inside the CRM sync, leaves every table readable at a complete "
        "version. The re-run finishes, and every table, and the CRM, then equals an "
        "uninterrupted build; no CRM record is sent twice.",
        (F + "test_crashes.py",),
        _crashes,
        ("crashes",),
    ),
    Promise(
        "Two runs of the same assets at once neither corrupt nor duplicate: the second waits "
        "for the first's pooled steps, or redoes its work after the first. Two whole builds at "
        "once end as one build alone does.",
        (F + "test_concurrency.py",),
        _concurrency,
        (
            "concurrency_raw",
            "concurrency_raw_pool_wait",
            "concurrency_events",
            "concurrency_whole_graph",
        ),
        ("pools-shared-by-nobody",),
    ),
    Promise(
        "A killed run never blocks the next one. A run killed with SIGKILL while it holds a "
        "pool is marked failed, naming its dead pid, and its slots are freed by the next run "
        "that starts, with no daemon. A run that waits for a pool names the run holding it, "
        "and a live holder is never failed. A waiting run exits on SIGTERM.",
        (F + "test_killed_runs.py",),
        _dead_runs,
        ("dead_run_killed", "dead_run_live_holder"),
    ),
    Promise(
        "A second build over the same landing data changes no table's content.",
        (F + "test_idempotence.py",),
        _idempotence,
        ("idempotence",),
    ),
    Promise(
        "No secret (PII salt, CRM token) appears in logs, metadata, tables or files. Values "
        "from the data never become SQL text. The UI listens on loopback only.",
        (F + "test_security.py",),
        _security,
        ("secrets", "sql_injection", "loopback"),
    ),
    Promise(
        "No network at run time except to the systems a user configures: no telemetry, no "
        "downloads. Dagster's own storage (event log, run records, check descriptions) and "
        "the GX Data Docs hold no email or name from the data.",
        (F + "test_claims_offline_and_pii.py", "tests/test_claims_telemetry.py"),
        _offline,
        ("no network at run time", "no emails or names in Dagster's storage"),
    ),
)

# Promises of the fast suite (CI runs it on every change): the guards whose failure another
# mechanism would hide, each with the named mutations (tests/mutations.toml) its tests kill.
GUARD_PROMISES: tuple[Promise, ...] = (
    Promise(
        "A person who did not consent to CRM sync, or whose latest answer revoked it, is never "
        "sent: an account is synced only when one of its people granted and none of them "
        "(primary account or not) revoked. Each consented record is sent once, counted in the "
        "sync audit across a failed sync and its re-run.",
        ("tests/test_consent.py", "tests/test_reverse_etl.py"),
        mutations=(
            "consent-always-granted",
            "consent-revocation-ignored",
            "consent-any-grant-ever",
        ),
    ),
    Promise(
        "Entities never rebuild on a raw table whose blocking check failed.",
        ("tests/test_automation.py",),
        mutations=("gate-before-downstream",),
    ),
    Promise(
        "The account profile's MRR total equals the active subscriptions' (within a cent), or "
        "the 360 is not published and stays at its previous version.",
        ("tests/test_c360_metric_gate.py",),
        mutations=("mrr-tolerance-a-dollar", "mrr-compared-with-itself"),
    ),
    Promise(
        "A batch with more than its quarantine threshold of bad rows publishes nothing, and the "
        "table stays at its previous version.",
        ("tests/test_raw_layer.py",),
        mutations=("quarantine-share-ignored",),
    ),
    Promise(
        "An erasure request removes the person from every table, file and destination, history "
        "included, and nobody else: not a colleague their record names, not someone whose "
        "address contains theirs.",
        ("tests/test_erasure.py", "tests/test_erasure_match.py", "tests/test_reverse_etl.py"),
        mutations=(
            "erasure-exact-match-only-case",
            "erasure-skips-list-columns",
            "mention-without-boundaries",
        ),
    ),
    Promise(
        "Emails are hashed with a secret salt outside the raw layer; the same address hashes "
        "the same everywhere, whatever its case.",
        ("tests/test_pii_hash.py", "tests/test_events.py", "tests/test_entities.py"),
        mutations=("pii-hash-without-salt", "pii-hash-case-sensitive"),
    ),
)

# Claims the README makes, each kept by a test that fails when the claim is broken.
CLAIMS: tuple[Promise, ...] = (
    Promise(
        "A text value of 4,096 characters is published whole; one of 4,097 is quarantined "
        "with its rule, and a personal value is never quoted in the reason.",
        ("tests/test_claims_text_limit.py",),
    ),
    Promise(
        "The champion's MLflow signature is the features scoring passes, typed and required: "
        "MLflow refuses a frame missing one.",
        (
            "tests/test_claims_models_and_review.py::"
            "test_the_champions_signature_is_what_scoring_passes_and_mlflow_enforces_it",
        ),
    ),
    Promise(
        "`make evaluate-models` prints each champion's holdout AUC, from the registry, beside "
        "the oracle AUC.",
        (
            "tests/test_claims_models_and_review.py::"
            "test_make_evaluate_models_prints_the_champions_auc_beside_the_oracle",
        ),
    ),
    Promise(
        "A reviewer's `decide` is recorded and honoured by every later identity run.",
        (
            "tests/test_claims_models_and_review.py::"
            "test_decide_records_a_decision_that_every_later_run_honours",
        ),
    ),
    Promise(
        "Sensors and schedules start in the states the README gives.",
        ("tests/test_claims_automation_defaults.py",),
    ),
)

PROMISES = FAULT_PROMISES + GUARD_PROMISES + CLAIMS


def load_figures(path: Path = FIGURES) -> Figures:
    return json.loads(path.read_text()) if path.exists() else {}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _tests_cell(p: Promise) -> str:
    return ", ".join(f"`{t.removeprefix('tests/')}`" for t in p.tests)


def render_faults(figures: Figures) -> str:
    rows = ["| promise | tests | figures (last run) |", "|---|---|---|"]
    for p in FAULT_PROMISES:
        missing = [s for s in p.sections if s not in figures]
        cell = f"not measured yet ({', '.join(missing)})" if missing else p.figures(figures)
        rows.append(f"| {_cell(p.text)} | {_tests_cell(p)} | {_cell(cell)} |")
    run = figures.get("_run", {})
    if run:
        rows += [
            "",
            f"Last run: `{run['command']}` on {run['date']} ({run['cores']} cores): "
            f"{run['passed']} passed in {run['seconds']:,} s. Each figure's own date is in "
            "`docs/figures/faults.json` (`recorded_at`).",
        ]
    return "\n".join(rows)


def render_guards() -> str:
    rows = ["| promise | tests | named mutations its tests kill |", "|---|---|---|"]
    for p in GUARD_PROMISES + CLAIMS:
        muts = ", ".join(f"`{m}`" for m in p.mutations) or "-"
        rows.append(f"| {_cell(p.text)} | {_tests_cell(p)} | {muts} |")
    return "\n".join(rows)


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- promises:{name} begin.*?-->\n)(.*?)\n?(<!-- promises:{name} end -->)", re.S
    )


def render_doc(text: str, figures: Figures) -> str:
    """The document with its generated tables replaced."""
    for name, body in (("faults", render_faults(figures)), ("guards", render_guards())):
        pattern = _block(name)
        if not pattern.search(text):
            raise ValueError(f"{DOC}: no `<!-- promises:{name} begin -->` block")
        text = pattern.sub(lambda m, b=body: m.group(1) + b + "\n" + m.group(3), text)
    return text


def refresh(measured: Figures, run: dict, since: dt.datetime) -> list[str]:
    """Merge the sections measured since `since` into docs/figures/faults.json and rewrite the
    document's tables; the sections refreshed."""
    figures = load_figures()
    fresh = [
        s
        for s, v in measured.items()
        if dt.datetime.fromisoformat(v.get("recorded_at", "1970-01-01T00:00:00+00:00")) >= since
    ]
    for s in fresh:
        figures[s] = measured[s]
    if run["command"] == "make faults":  # the line under the table names whole runs only
        figures["_run"] = run
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
    DOC.write_text(render_doc(DOC.read_text(), figures))
    return fresh


if __name__ == "__main__":
    DOC.write_text(render_doc(DOC.read_text(), load_figures()))
    print(f"rewrote the promise tables of {DOC.relative_to(ROOT)}")
