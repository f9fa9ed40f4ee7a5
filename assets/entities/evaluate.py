"""Measure identity_links against the sample company's ground truth (`landing/_truth/`).

    python -m assets.entities.evaluate [--lake lake] [--truth lake/landing/_truth]

Pairwise precision, recall and F1: every two source records the truth says are one entity is a
true pair; every two the platform gave the same canonical id is a predicted pair. Accounts are
judged on records that denote a company, persons on records that denote a person: which those
are follows from the active catalog's roles (company and signal objects; person objects, ticket
requesters and consent records), so the same command measures any stack with a truth file.
Records the platform left without a canonical id count as singletons; records the truth lists
but the lake never received (their only version lies after the last extract) are not counted.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from assets.roles import account_objects as account_sources
from assets.roles import hashed_email_sources
from assets.roles import person_objects as person_sources
from checks.sources import Catalog, load_catalog
from resources.pii import hash_email


@dataclass(frozen=True)
class Score:
    entity_type: str
    records: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise(entity_type: str, truth: dict[str, str], predicted: dict[str, str | None]) -> Score:
    """Score predicted clusters against true clusters over the records both know."""
    keys = [k for k in truth if k in predicted]
    pred = {k: predicted[k] or f"__alone__{k}" for k in keys}
    t = Counter(truth[k] for k in keys)
    p = Counter(pred[k] for k in keys)
    both = Counter((truth[k], pred[k]) for k in keys)
    return Score(
        entity_type,
        len(keys),
        sum(_pairs(n) for n in t.values()),
        sum(_pairs(n) for n in p.values()),
        sum(_pairs(n) for n in both.values()),
    )


def load_truth(
    truth_dir: Path, salt: str, catalog: Catalog | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """The truth's account and person keys of the records the catalog's roles make company
    and person records (assets/roles.py)."""
    catalog = catalog or load_catalog()
    account_objects, person_objects = account_sources(catalog), person_sources(catalog)
    hashed = hashed_email_sources(catalog)
    accounts, persons = {}, {}
    with open(truth_dir / "source_records.csv", newline="") as f:
        for row in csv.DictReader(f):
            src = f"{row['system']}/{row['object']}"
            sid = row["source_id"]
            if src in hashed:  # "<org>|<email>" is keyed by the email's salted hash
                org, _, email = sid.partition("|")
                sid = f"{org}|{hash_email(salt, email)}"
            key = f"{src}:{sid}"
            if src in account_objects and row["account_key"]:
                accounts[key] = row["account_key"]
            if src in person_objects and row["person_key"]:
                persons[key] = row["person_key"]
    return accounts, persons


def evaluate(
    links: pa.Table, truth_dir: Path, salt: str, catalog: Catalog | None = None
) -> list[Score]:
    """`salt`: the lake's PII salt (resources/pii.py), to key the truth as the lake keys it."""
    accounts, persons = load_truth(truth_dir, salt, catalog)
    out = []
    for etype, truth in (("account", accounts), ("person", persons)):
        rows = links.filter(pa.compute.equal(links["entity_type"], etype))
        predicted = dict(
            zip(rows["record_key"].to_pylist(), rows["canonical_id"].to_pylist(), strict=True)
        )
        out.append(pairwise(etype, truth, predicted))
    return out


def report(scores: list[Score], review: pa.Table | None) -> str:
    lines = [
        f"{'entity':<8} {'records':>9} {'true pairs':>12} {'predicted':>12} {'correct':>12} "
        f"{'precision':>10} {'recall':>8} {'F1':>8}"
    ]
    for s in scores:
        if s.records == 0:  # a stack without this entity (a person-only catalog has no company)
            lines.append(f"{s.entity_type:<8} {'-':>9}   no records of this entity: not measured")
            continue
        lines.append(
            f"{s.entity_type:<8} {s.records:>9,} {s.true_pairs:>12,} {s.predicted_pairs:>12,} "
            f"{s.correct_pairs:>12,} {s.precision:>10.4f} {s.recall:>8.4f} {s.f1:>8.4f}"
        )
    if review is not None:
        by = Counter(review["entity_type"].to_pylist()) if review.num_rows else Counter()
        lines.append(
            f"review queue: {review.num_rows} pair(s) "
            f"(accounts {by.get('account', 0)}, persons {by.get('person', 0)})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from resources.lake import LakeResource
    from resources.pii import PII_SALT, PiiResource

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lake", default="lake", help="lake root (default: lake)")
    ap.add_argument("--truth", default=None, help="truth folder (default: <lake>/landing/_truth)")
    args = ap.parse_args(argv)
    lake = LakeResource(root=args.lake)
    truth = Path(args.truth or Path(args.lake) / "landing" / "_truth")
    if not (truth / "source_records.csv").exists():
        print(f"no ground truth at {truth}/source_records.csv", file=sys.stderr)
        return 2
    if not lake.exists("entities", "identity_links"):
        print(
            f"no entities/identity_links under {args.lake}: run `make demo` first", file=sys.stderr
        )
        return 2
    links = lake.read("entities", "identity_links")
    review = (
        lake.read("entities", "identity_review")
        if lake.exists("entities", "identity_review")
        else None
    )
    salt = PiiResource(salt=os.environ.get(PII_SALT)).resolve_salt(args.lake)
    print(report(evaluate(links, truth, salt), review))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
