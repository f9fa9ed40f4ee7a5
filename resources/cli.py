"""`lakehouse`: read the lake from a terminal, offline.

    lakehouse tables                       every published table: rows, version, description
    lakehouse tables c360.customer_360_accounts    one table's columns
    lakehouse sql "SELECT ... FROM layer.table"    DuckDB SQL over every table as a view
    lakehouse account <id | source id | domain | name>   one account on one screen
    lakehouse person <id | source id | email | name>     one person
    lakehouse shell                        an interactive SQL prompt with the same views
    lakehouse stack                        check the active stack's catalog, vocabulary and
                                           identity rules; list landing folders no object reads

The lake is the platform's (`LAKEHOUSE_LAKE_ROOT`, else the embedded `lake/`; an object store
with the distributed profile's settings), or `--lake`. Nothing is downloaded: DuckDB's extensions
are never installed; Delta tables are read by delta-rs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Callable
from typing import TextIO

from deltalake.exceptions import DeltaError

from resources import catalog, dossier, lookup, shell, stack
from resources.query import LakeError, LakeQuery, TableRef, lake_from_env
from resources.render import FORMATS, cell, render, result

PROG = "lakehouse"
SCREEN_ROWS = 100  # rows `sql` prints for a person (text, markdown) unless --limit says otherwise
CELL_WIDTH = 80


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.run is _stack:  # configuration only: no lake is opened
        return _stack(None, args, sys.stdout)
    try:
        with LakeQuery(lake_from_env(getattr(args, "lake", None))) as q:
            return args.run(q, args, sys.stdout)
    except lookup.Ambiguous as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        columns = list(exc.candidates[0])
        render(columns, [list(c.values()) for c in exc.candidates], "text", sys.stderr, 40)
        return 1
    except LakeError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader left early (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (DeltaError, OSError) as exc:  # an unreadable lake: permissions, the object store
        print(f"{PROG}: cannot read the lake: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    # --lake before or after the command; a subcommand's default must not mask the main one's.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--lake",
        metavar="ROOT",
        default=argparse.SUPPRESS,
        help="lake root: a path or an object-store URI (default: $LAKEHOUSE_LAKE_ROOT, else lake/)",
    )
    shown = argparse.ArgumentParser(add_help=False)
    shown.add_argument("--format", choices=FORMATS, default="text", help="output (default: text)")
    shown.add_argument(
        "--max-width",
        type=int,
        default=CELL_WIDTH,
        metavar="N",
        help=f"text/markdown: cut longer cells (default {CELL_WIDTH}; 0: never)",
    )
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Read the customer lakehouse: tables, SQL, one account or person.",
        epilog="docs/reading.md has examples.",
        parents=[common],
    )
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, run: Callable, help: str, *parents: argparse.ArgumentParser):
        cmd = sub.add_parser(name, help=help, description=help, parents=[common, *parents])
        cmd.set_defaults(run=run)
        return cmd

    tables = command("tables", _tables, "every published table, or one table's columns", shown)
    tables.add_argument("table", nargs="?", help="layer.table: list its columns")

    sql = command("sql", _sql, "run DuckDB SQL; every table is a view named layer.table", shown)
    sql.add_argument("query", help='the SQL ("-": read it from standard input)')
    sql.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help=f"rows to print (default: {SCREEN_ROWS} for text and markdown, all for csv and "
        "json; 0: all)",
    )

    for name, what in (
        ("account", "id, source id, domain or name"),
        ("person", "id, source id, email or name"),
    ):
        cmd = command(name, _dossier, f"everything about one {name}: its {what}")
        cmd.add_argument("who", nargs="+", help=f"the {name}'s {what}")
        cmd.set_defaults(subject=name)

    command("shell", _shell, "interactive SQL over the same views (end statements with ';')")
    check = command(
        "stack",
        _stack,
        "check the active stack (LAKEHOUSE_STACK): catalog, vocabulary, identity rules, and "
        "the landing folders no object reads",
    )
    check.add_argument(
        "--landing", metavar="ROOT", help="landing root (default: $LAKEHOUSE_LANDING_ROOT)"
    )
    return p


def _stack(q: LakeQuery | None, args: argparse.Namespace, out: TextIO) -> int:
    try:
        return stack.check_stack(out, args.landing)
    except stack.StackError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2


def _tables(q: LakeQuery, args: argparse.Namespace, out: TextIO) -> int:
    if args.table:
        return _table(q, TableRef.parse(args.table), args, out)
    infos = [catalog.table_info(q.lake, t) for t in q.tables]
    columns = ["table", "rows", "version", "last_modified", "description"]
    text = _summary if args.format in ("text", "markdown") else str
    rows = [[i.table, i.rows, i.version, i.last_modified, text(i.description)] for i in infos]
    render(columns, rows, args.format, out, args.max_width)
    return 0


def _summary(description: str) -> str:
    """The first sentence: what a table is, in a list of tables."""
    first = description.split(". ", 1)[0].split("\n", 1)[0].strip()
    return first.rstrip(".")


def _table(q: LakeQuery, ref: TableRef, args: argparse.Namespace, out: TextIO) -> int:
    cols = catalog.columns(q, ref)
    info = catalog.table_info(q.lake, ref)
    rows = [[c.column, c.type, c.description] for c in cols]
    if args.format == "json":
        body = {
            "table": info.table,
            "rows": info.rows,
            "version": info.version,
            "last_modified": info.last_modified.isoformat() if info.last_modified else None,
            "description": info.description,
            "columns": [
                {"column": c.column, "type": c.type, "description": c.description} for c in cols
            ],
        }
        out.write(json.dumps(body, indent=1, ensure_ascii=False) + "\n")
        return 0
    if args.format == "text":
        out.write(
            f"{info.table}: {cell(info.rows)} rows, Delta version {info.version}, "
            f"last modified {cell(info.last_modified)}\n"
        )
        for paragraph in info.description.split("\n\n"):
            out.write(textwrap.fill(paragraph, 100, initial_indent="  ", subsequent_indent="  "))
            out.write("\n")
        out.write("\n")
    render(["column", "type", "description"], rows, args.format, out, args.max_width)
    return 0


def _sql(q: LakeQuery, args: argparse.Namespace, out: TextIO) -> int:
    query = sys.stdin.read() if args.query == "-" else args.query
    limit = args.limit
    if limit is None:
        limit = SCREEN_ROWS if args.format in ("text", "markdown") else 0
    more = result(q.execute(query), args.format, out, limit, args.max_width)
    if more:
        print(f"{PROG}: showing the first {limit:,} rows (--limit 0 for all)", file=sys.stderr)
    return 0


def _dossier(q: LakeQuery, args: argparse.Namespace, out: TextIO) -> int:
    subject = dossier.SUBJECTS[args.subject]
    match = lookup.resolve(q, subject.kind, " ".join(args.who))
    dossier.show(q, subject, match, out)
    return 0


def _shell(q: LakeQuery, args: argparse.Namespace, out: TextIO) -> int:
    return shell.repl(q, sys.stdin, out)


if __name__ == "__main__":
    sys.exit(main())
