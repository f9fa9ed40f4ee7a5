"""`lakehouse shell`: a small SQL prompt over the lake's views (Python's DuckDB has no shell).

Statements end with `;`. Dot commands: `.tables`, `.format text|csv|json|markdown`, `.quit`.
Fed from a pipe it runs the statements and exits non-zero if one failed.
"""

from __future__ import annotations

import sys
from typing import TextIO

from resources.query import LakeError, LakeQuery
from resources.render import FORMATS, result

SCREEN_ROWS = 100
HELP = (
    "End a statement with ';'. Tables are views named layer.table (.tables lists them). "
    ".format text|csv|json|markdown changes the output; .quit leaves."
)


def repl(q: LakeQuery, stdin: TextIO, out: TextIO) -> int:
    q.register_all()
    interactive = stdin.isatty()
    if interactive:
        import readline  # noqa: F401  (line editing and history for input())

        out.write(f"lakehouse shell: {len(q.tables)} lake tables. {HELP}\n")
    fmt, failed, buffer = "text", False, []
    while True:
        line = _read(stdin, "lake> " if not buffer else "  ..> ", interactive)
        if line is None:
            break
        text = line.strip()
        if not buffer and text.startswith("."):
            words = text.split()
            if words[0] in (".quit", ".exit"):
                break
            if words[0] == ".tables":
                out.write("\n".join(t.name for t in q.tables) + "\n")
            elif words[0] == ".format" and len(words) == 2 and words[1] in FORMATS:
                fmt = words[1]
            else:
                out.write(HELP + "\n")
            continue
        if text:
            buffer.append(line)
        if buffer and text.endswith(";"):
            failed |= not _run(q, "\n".join(buffer), fmt, out)
            buffer = []
    if buffer:
        failed |= not _run(q, "\n".join(buffer), fmt, out)
    return 1 if failed and not interactive else 0


def _read(stdin: TextIO, prompt: str, interactive: bool) -> str | None:
    if interactive:
        try:
            return input(prompt)
        except EOFError:
            return None
    line = stdin.readline()
    return line.rstrip("\n") if line else None


def _run(q: LakeQuery, statement: str, fmt: str, out: TextIO) -> bool:
    try:
        if result(q.execute(statement), fmt, out, SCREEN_ROWS if fmt == "text" else 0, 80):
            out.write(f"(first {SCREEN_ROWS} rows shown)\n")
    except LakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True
