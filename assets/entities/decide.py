"""Record a reviewer's decision on a pair from entities/identity_review.

    python -m assets.entities.decide <pair_id> same|different --by <name> [--note TEXT]

Appends one row to the decisions file (LAKEHOUSE_IDENTITY_DECISIONS, default
<lake root>/decisions/identity_decisions.csv); the next identity run honours it, and every run
after that.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc

from assets.entities.identity import DECISION_FIELDS
from resources.exit import leave
from resources.identity import DECISIONS_PATH, IdentityResource
from resources.query import lake_from_env


def append_decision(path: Path, row: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=DECISION_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pair_id")
    ap.add_argument("decision", choices=("same", "different"))
    ap.add_argument("--by", required=True, help="who decided")
    ap.add_argument("--note", default="")
    ap.add_argument("--lake", help="lake root (default: $LAKEHOUSE_LAKE_ROOT, else lake/)")
    args = ap.parse_args(argv)
    lake = lake_from_env(args.lake)
    if not lake.exists("entities", "identity_review"):
        print("no entities/identity_review yet: materialize the entities first", file=sys.stderr)
        return 2
    review = lake.read("entities", "identity_review")
    hit = review.filter(pc.equal(review["pair_id"], args.pair_id)).to_pylist()
    if not hit:
        print(f"pair {args.pair_id} is not in entities/identity_review", file=sys.stderr)
        return 2
    pair = hit[0]
    path = Path(os.environ.get(DECISIONS_PATH) or IdentityResource().decisions_file(lake.root))
    append_decision(
        path,
        {
            "entity_type": pair["entity_type"],
            "left_record": pair["left_record"],
            "right_record": pair["right_record"],
            "decision": args.decision,
            "decided_by": args.by,
            "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "note": args.note,
        },
    )
    print(f"{pair['left_record']} / {pair['right_record']}: {args.decision} -> {path}")
    return 0


if __name__ == "__main__":
    leave(main())
