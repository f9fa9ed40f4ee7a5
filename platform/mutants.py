"""`make mutants`: mutation testing of the guards, the code whose failure no other mechanism hides.

Two kinds of mutant, one score each:
- mutmut (configured under [tool.mutmut] in pyproject.toml) mutates the Python of the guard
  functions named in GUARDS below: operators, constants, arguments, returns. It runs the tests
  that reach each mutated function, fastest first, and stops at the first failure.
- The named mutations of tests/mutations.toml change what mutmut cannot reach: SQL text (the
  consent rule, the erasure match, the ingest-log decision) and module-level declarations (the
  automation condition, the pools). Each is applied in a scratch copy of the tracked files, and
  the tests it names must fail there.

A surviving mutant is either killed by a new test or explained in tests/mutants_explained.toml
(an equivalent mutant, or a behaviour nobody relies on, said why); the run exits non-zero when a
survivor has neither. `make mutants` is not part of CI: see docs/reliability.md for its duration.

    python platform/mutants.py [--only GUARD ...] [--named-only | --mutmut-only] [--jobs N]
                               [--rerun-survivors]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
NAMED = ROOT / "tests" / "mutations.toml"
EXPLAINED = ROOT / "tests" / "mutants_explained.toml"
OUT = ROOT / "tests" / "artifacts" / "mutants"

# The guards, as mutmut mutant-name patterns (module.x_function, module.xǁClassǁmethod): the
# functions that decide, not their plumbing. The SQL inside them and the module-level
# declarations are the named mutations' (tests/mutations.toml).
GUARDS: dict[str, list[str]] = {
    "consent": [
        "assets.reverse_etl.sync.x_sync__mutmut_*",
        "assets.reverse_etl.sync.x_last_decisions__mutmut_*",
    ],
    "gates and automation": [
        "checks.gate.x_validate__mutmut_*",
        "checks.gate.x__combine__mutmut_*",
        "checks.gate.xǁGateResultǁpassed__mutmut_*",
        "checks.gate.xǁGateResultǁfailures__mutmut_*",
        "assets.automation.x_automate__mutmut_*",
    ],
    "pools and claims": [
        "resources.lake.xǁLakeResourceǁclaim__mutmut_*",
        "resources.lake.xǁClaimǁ*__mutmut_*",
    ],
    "erasure scope": [
        "assets.privacy.match.xǁNeedlesǁ*__mutmut_*",
        "assets.privacy.tables.x__match_sql__mutmut_*",
        "assets.privacy.tables.x__text_columns__mutmut_*",
        "resources.mentions.*__mutmut_*",
    ],
    "PII hashing and masking": [
        "resources.pii.x_hash_email__mutmut_*",
        "resources.pii.x_install__mutmut_*",
        "resources.pii.x_local_salt__mutmut_*",
        "resources.pii.x__create_salt__mutmut_*",
    ],
    "ingest log": [
        "assets.raw.versions.xǁLogStateǁof__mutmut_*",
        "assets.raw.versions.xǁLogStateǁhidden__mutmut_*",
        "assets.raw.versions.x__decision__mutmut_*",
        "assets.raw.versions.x_hidden_versions__mutmut_*",
        "assets.raw.ingest.x_find_pending__mutmut_*",
        "assets.raw.ingest.xǁBatchǁdecision__mutmut_*",
    ],
}

KILLED = {1, 3}  # pytest: tests failed / internal error (mutmut's own reading)
SURVIVED = {0}
NO_TESTS = {5, 33}
TIMEOUT = {36, 24, -24, 152, 255}


@dataclass(frozen=True)
class Verdict:
    name: str
    guard: str
    status: str  # killed | survived | no tests | timeout | not checked | other
    detail: str = ""


def _env() -> dict[str, str]:
    from resources.quiet import QUIET_ENV

    return {**QUIET_ENV, **os.environ}


def _status(code: int | None) -> str:
    if code is None:
        return "not checked"
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    if code in TIMEOUT:
        return "timeout"
    return f"other ({code})"


def _guard_of(name: str, guards: dict[str, list[str]]) -> str | None:
    return next(
        (g for g, pats in guards.items() if any(fnmatch.fnmatch(name, p) for p in pats)), None
    )


def _mutmut_verdicts(guards: dict[str, list[str]]) -> list[Verdict]:
    """Every mutant of the guards, from mutmut's own result files (mutants/**/*.meta)."""
    out = []
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            guard = _guard_of(name, guards)
            if guard:
                out.append(Verdict(name, guard, _status(code)))
    return out


def generate() -> None:
    """mutmut's mutants (mutants/), without running anything: the names a sample draws from."""
    code = (
        f"import os; os.chdir({str(ROOT)!r}); from mutmut.__main__ import copy_src_dir, "
        "copy_also_copy_files, setup_source_paths, create_mutants; copy_src_dir(); "
        "copy_also_copy_files(); setup_source_paths(); create_mutants(2)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), check=True)


def sample(guards: dict[str, list[str]], n: int, seed: int) -> list[str]:
    """`n` mutants of each guard, drawn with `seed` (the same draw before and after a change
    to the tests, so the two scores compare)."""
    import random

    by_guard: dict[str, list[str]] = {}
    for v in _mutmut_verdicts(guards):
        by_guard.setdefault(v.guard, []).append(v.name)
    out = []
    for g, names in sorted(by_guard.items()):
        names.sort()
        out += random.Random(f"{seed}:{g}").sample(names, min(n, len(names)))
    return out


def run_mutmut(guards: dict[str, list[str]], jobs: int, names: list[str] | None = None) -> int:
    patterns = names or [p for pats in guards.values() for p in pats]
    cmd = [str(ROOT / ".venv" / "bin" / "mutmut"), "run", "--max-children", str(jobs), *patterns]
    print(f"$ mutmut run --max-children {jobs} <{len(patterns)} patterns>", flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=_env()).returncode


def _show(name: str) -> str:
    """The mutant's diff, its changed lines only."""
    res = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mutmut"), "show", name],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
    )
    lines = [
        ln for ln in res.stdout.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    ]
    return " | ".join(ln.strip() for ln in lines)[:300]


# ---- the named mutations -------------------------------------------------------------------


@dataclass(frozen=True)
class Named:
    id: str
    guard: str
    file: str
    find: str
    replace: str
    why: str
    tests: list[str]


def named_mutations() -> list[Named]:
    data = tomllib.loads(NAMED.read_text())
    return [Named(**m) for m in data["mutation"]]


def _scratch(dest: Path) -> None:
    """A copy of the tracked files (and the working tree's edits to them)."""
    if dest.exists():
        shutil.rmtree(dest)
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for f in filter(None, files):
        src = ROOT / f.decode()
        if src.is_file():
            (dest / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f.decode())


def run_named(mutations: list[Named]) -> list[Verdict]:
    base = ROOT / "mutants-named"
    out = []
    for m in mutations:
        work = base / m.id
        _scratch(work)
        target = work / m.file
        text = target.read_text()
        if text.count(m.find) != 1:
            out.append(
                Verdict(
                    m.id,
                    m.guard,
                    "stale",
                    f"`{m.find}` is in {m.file} {text.count(m.find)} times (expected once)",
                )
            )
            print(f"[named] {m.id}: STALE", flush=True)
            continue
        target.write_text(text.replace(m.find, m.replace))
        started = time.monotonic()
        res = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "python"),
                "-m",
                "pytest",
                "-x",
                "-q",
                "-p",
                "no:cacheprovider",
                "-m",
                "not slow and not bench",
                *m.tests,
            ],
            cwd=work,
            env=_env(),
            capture_output=True,
            text=True,
        )
        took = time.monotonic() - started
        failed = [ln for ln in res.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
        if res.returncode == 1:
            status, detail = "killed", (failed[0] if failed else "tests failed")
        elif res.returncode == 0:
            status, detail = "survived", "the named tests passed"
        elif res.returncode in (4, 5):  # a named test that does not exist (yet)
            status, detail = "no tests", "the named tests are not there"
        else:
            status, detail = f"other ({res.returncode})", res.stdout[-300:]
        out.append(Verdict(m.id, m.guard, status, f"{detail} ({took:.0f} s)"))
        print(f"[named] {m.id}: {status}: {detail} ({took:.0f} s)", flush=True)
        shutil.rmtree(work, ignore_errors=True)
    return out


# ---- the report ----------------------------------------------------------------------------


def explained() -> dict[str, str]:
    if not EXPLAINED.exists():
        return {}
    return {k: v["why"] for k, v in tomllib.loads(EXPLAINED.read_text()).items()}


def report(verdicts: list[Verdict], seconds: float) -> int:
    why = explained()
    by_guard: dict[str, Counter] = {}
    for v in verdicts:
        by_guard.setdefault(v.guard, Counter())[v.status] += 1
    print("\nmutation score by guard (killed / (killed + survived + no tests + timeout))")
    total = Counter()
    for guard, c in by_guard.items():
        total.update(c)
        print(f"  {guard:28} {_score(c)}  " + ", ".join(f"{k} {n}" for k, n in sorted(c.items())))
    print(f"  {'all':28} {_score(total)}")
    survivors = [v for v in verdicts if v.status in {"survived", "no tests", "stale"}]
    unexplained = [v for v in survivors if v.name not in why]
    print(f"\nsurvivors: {len(survivors)}, explained: {len(survivors) - len(unexplained)}")
    for v in survivors:
        diff = v.detail or (_show(v.name) if v.guard else "")
        note = why.get(v.name, "UNEXPLAINED")
        print(f"  [{v.status}] {v.name}\n      {diff}\n      why: {note}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "verdicts.json").write_text(
        json.dumps(
            {
                "seconds": round(seconds, 1),
                "by_guard": {g: dict(c) for g, c in by_guard.items()},
                "score": _score(total),
                "verdicts": [v.__dict__ for v in verdicts],
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    print(
        f"\n{len(verdicts)} mutants in {seconds / 60:.1f} min; figures in {OUT / 'verdicts.json'}"
    )
    return 1 if unexplained else 0


def _score(c: Counter) -> str:
    tried = c["killed"] + c["survived"] + c["no tests"] + c["timeout"] + c["stale"]
    return f"{c['killed']}/{tried} = {100 * c['killed'] / tried:.1f}%" if tried else "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="guards to mutate (default: all)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--named-only", action="store_true")
    ap.add_argument("--mutmut-only", action="store_true")
    ap.add_argument(
        "--rerun-survivors",
        action="store_true",
        help="re-test only the mutants that survived the last run",
    )
    ap.add_argument("--report-only", action="store_true", help="print the last results")
    ap.add_argument("--sample", type=int, help="mutate only this many mutants of each guard")
    ap.add_argument("--seed", type=int, default=21)
    args = ap.parse_args(argv)
    guards = {g: p for g, p in GUARDS.items() if not args.only or g in args.only}
    started = time.monotonic()
    verdicts: list[Verdict] = []
    if not args.named_only:
        if not args.report_only:
            names = None
            if args.sample:
                generate()  # the current code's mutants: a sample of stale names tests nothing
                names = sample(guards, args.sample, args.seed)
            if args.rerun_survivors:
                names = [
                    v.name
                    for v in _mutmut_verdicts(guards)
                    if v.status != "killed" and (names is None or v.name in names)
                ]
            if names != []:
                run_mutmut(guards, args.jobs, names)
        drawn = set(sample(guards, args.sample, args.seed)) if args.sample else None
        verdicts += [v for v in _mutmut_verdicts(guards) if drawn is None or v.name in drawn]
    if not args.mutmut_only:
        named = [m for m in named_mutations() if m.guard in guards]
        if args.report_only:
            last = OUT / "named.json"
            verdicts += (
                [Verdict(**v) for v in json.loads(last.read_text())] if last.exists() else []
            )
        else:
            done = run_named(named)
            OUT.mkdir(parents=True, exist_ok=True)
            (OUT / "named.json").write_text(json.dumps([v.__dict__ for v in done], indent=2))
            verdicts += done
    return report(verdicts, time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
