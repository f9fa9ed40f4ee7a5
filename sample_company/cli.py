"""Command line: `python -m sample_company.cli --out lake/landing [...]` (or `sample-company`)."""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
from pathlib import Path

from sample_company.generate import DEFAULT_END_DATE, generate


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
    p.add_argument("--clean", action="store_true", help="remove the output folder first")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
    )
    print(summary.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
