"""Command line: `python -m sample_company.cli --out lake/landing [...]` (or `sample-company`)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
from pathlib import Path

from sample_company.generate import DEFAULT_END_DATE, STACKS, generate


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text}") from exc


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sample-company",
        description="Generate the sample company's landing files and ground truth.",
    )
    p.add_argument("--out", required=True, type=Path, help="landing root, e.g. lake/landing")
    p.add_argument("--accounts", type=int, default=1000, help="companies in the CRM (1000)")
    p.add_argument("--days", type=int, default=365, help="days in the window (365)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
    p.add_argument(
        "--end-date",
        type=_date,
        default=DEFAULT_END_DATE,
        help=f"last day of the window ({DEFAULT_END_DATE.isoformat()})",
    )
    p.add_argument(
        "--write-through",
        type=_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="write only extract dates up to this day (the simulation is the same); existing "
        "files are never rewritten, so a later run only adds newer files",
    )
    p.add_argument(
        "--stack",
        default=None,
        help="rendering of the world: default (the sample company's exports) or vendor "
        "(HubSpot, Stripe, Segment, Zendesk); default: the stack LAKEHOUSE_STACK names, else "
        "default",
    )
    p.add_argument("--clean", action="store_true", help="remove the output folder first")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def stack_name(given: str | None) -> str:
    """The stack to render: `--stack`, else LAKEHOUSE_STACK (a name under stacks/ or a path to
    a stack folder: its folder name), else `default`. Read here, at run time: the simulator
    knows nothing of the platform's settings module, only the variable's meaning."""
    value = given or os.environ.get("LAKEHOUSE_STACK") or "default"
    name = Path(value).name if ("/" in value or os.sep in value) else value
    if name not in STACKS:
        raise SystemExit(
            f"sample-company renders the stacks {', '.join(STACKS)}; {value!r} names neither "
            "(a stack of your own reads your own exports: land them, then materialize)"
        )
    return name


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    stack = stack_name(args.stack)
    out: Path = args.out
    if args.clean and out.exists():
        resolved = out.resolve()
        if len(resolved.parts) < 3 or resolved == Path.home():
            print(f"refusing to remove {resolved}", file=sys.stderr)
            return 2
        shutil.rmtree(resolved)
    summary = generate(
        out,
        accounts=args.accounts,
        days=args.days,
        seed=args.seed,
        end_date=args.end_date,
        write_through=args.write_through,
        progress=not args.quiet,
        stack=stack,
    )
    print(summary.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
