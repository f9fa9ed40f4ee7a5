"""Every promise has a test, and docs/reliability.md says what the suite measured: a promise
whose tests are missing, skipped or renamed, a fault test no promise names, a named mutation no
promise claims, or a hand-edited figure fails here (hence CI)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import promises

ROOT = promises.ROOT
SKIPS = ("skip", "skipif", "importorskip", "xfail")


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def _skips(path: Path) -> list[str]:
    """`pytest.skip(...)`, `pytest.mark.skip...`, `pytest.importorskip`, `xfail` in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in SKIPS:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.attr}")
    return found


def test_every_promise_names_tests_that_exist_and_never_skip():
    problems = []
    for p in promises.PROMISES:
        if not p.tests:
            problems.append(f"no test: {p.text[:60]}")
        for t in p.tests:
            file, _, func = t.partition("::")
            path = ROOT / file
            if not path.is_file():
                problems.append(f"{t}: no such file")
                continue
            if func and func not in _functions(path):
                problems.append(f"{t}: no such test")
            problems += _skips(path)
    assert problems == []


def test_every_fault_test_module_keeps_a_stated_promise():
    named = {t.partition("::")[0] for p in promises.FAULT_PROMISES for t in p.tests}
    modules = {str(m.relative_to(ROOT)) for m in (ROOT / "tests" / "faults").glob("test_*.py")}
    assert modules - named == set()


def test_named_mutations_are_claimed_by_a_promise_whose_tests_run_them():
    mutations = {
        m["id"]: m
        for m in tomllib.loads((ROOT / "tests" / "mutations.toml").read_text())["mutation"]
    }
    claims = {m: p for p in promises.PROMISES for m in p.mutations}
    assert set(claims) - set(mutations) == set(), "a promise claims a mutation that is not there"
    assert set(mutations) - set(claims) == set(), "a named mutation no promise claims"
    for mid, p in claims.items():
        files = {t.partition("::")[0] for t in p.tests}
        theirs = {t.partition("::")[0] for t in mutations[mid]["tests"]}
        assert theirs <= files, f"{mid} runs {theirs - files}, which its promise does not name"
        text = (ROOT / mutations[mid]["file"]).read_text()
        assert text.count(mutations[mid]["find"]) == 1, f"{mid}: `find` is stale"


def test_the_document_quotes_the_figures_the_suite_measured():
    figures = promises.load_figures()
    doc = promises.DOC.read_text()
    missing = [s for p in promises.FAULT_PROMISES for s in p.sections if s not in figures]
    assert missing == [], f"sections no fault run measured: {missing}"
    assert doc == promises.render_doc(doc, figures), (
        "docs/reliability.md's promise tables differ from tests/promises.py and "
        "docs/figures/faults.json: run `python tests/promises.py` (or `make faults`)"
    )
