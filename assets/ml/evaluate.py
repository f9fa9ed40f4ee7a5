"""The models against the limit of the data: holdout AUC beside the oracle AUC of the hazards the
sample company planted (`landing/_truth/accounts.csv`), on the same rows. No asset reads the
truth; this command exists only to measure the platform.

    .venv/bin/python -m assets.ml.evaluate [--lake lake] [--truth lake/landing/_truth]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HAZARD = {"churn": "churn_hazard", "expansion": "upgrade_hazard"}


def truth_accounts(lake, truth_dir: Path) -> dict[str, str]:
    """Canonical account id -> the generator's account key (majority of the account's records
    in the system of record: the catalog's `anchor` company objects)."""
    from checks.sources import load_catalog

    anchors = {o.source for o in load_catalog().by_role("company") if o.role.options.get("anchor")}
    key_of = {}
    with open(truth_dir / "source_records.csv", newline="") as f:
        for row in csv.DictReader(f):
            src = f"{row['system']}/{row['object']}"
            if src in anchors and row["account_key"]:
                key_of[f"{src}:{row['source_id']}"] = row["account_key"]
    links = lake.read("entities", "identity_links", columns=["record_key", "canonical_id"])
    votes: dict[str, Counter] = {}
    for k, c in zip(
        links["record_key"].to_pylist(), links["canonical_id"].to_pylist(), strict=True
    ):
        if c and k in key_of:
            votes.setdefault(c, Counter())[key_of[k]] += 1
    return {c: v.most_common(1)[0][0] for c, v in votes.items()}


def hazards(truth_dir: Path, column: str) -> dict[str, float]:
    with open(truth_dir / "accounts.csv", newline="") as f:
        return {r["account_key"]: float(r[column] or 0) for r in csv.DictReader(f)}


def evaluate(lake, truth_dir: Path, tracking_uri: str, holdout_dates: int = 3) -> list[dict]:
    from sklearn.metrics import roc_auc_score

    from assets.ml import SPECS
    from assets.ml.models import load_model

    mapping = truth_accounts(lake, truth_dir)
    out = []
    for spec in SPECS:
        training = lake.read(spec.training.layer, spec.training.table)
        dates = sorted(set(training["as_of"].to_pylist()))[-holdout_dates:]
        holdout = training.filter(pc.is_in(training["as_of"], pa.array(dates, pa.date32())))
        keep = pa.array([a in mapping for a in holdout["account_id"].to_pylist()])
        holdout = holdout.filter(keep)
        y = np.array(holdout[spec.label].to_pylist(), dtype=int)
        model = load_model(spec.model_name, tracking_uri, "champion")
        p = model.predict_proba(holdout)
        h = hazards(truth_dir, HAZARD[spec.kind])
        oracle = np.array([h[mapping[a]] for a in holdout["account_id"].to_pylist()])
        row = {
            "model": spec.kind,
            "version": model.version,
            "rows": len(y),
            "positives": int(y.sum()),
            "holdout_dates": f"{dates[0]}..{dates[-1]}",
        }
        if 0 < y.sum() < len(y):
            row["model_auc"] = roc_auc_score(y, p)
            row["oracle_auc"] = roc_auc_score(y, oracle)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    from resources.quiet import quiet_libraries

    quiet_libraries()  # before MLflow loads the models: no INFO lines, no download progress bars
    from resources.lake import LakeResource
    from resources.mlflow import MLFLOW_TRACKING_URI, MlflowResource

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lake", default="lake")
    ap.add_argument("--truth", default=None)
    args = ap.parse_args(argv)
    truth = Path(args.truth or Path(args.lake) / "landing" / "_truth")
    if not (truth / "accounts.csv").exists():
        print(f"no ground truth at {truth}", file=sys.stderr)
        return 2
    lake = LakeResource(root=args.lake)
    uri = MlflowResource(tracking_uri=os.environ.get(MLFLOW_TRACKING_URI)).uri(lake.root)
    head = ("model", "version", "rows", "pos", "model AUC", "oracle AUC")
    print(f"{head[0]:<10}{head[1]:>8}{head[2]:>8}{head[3]:>6}{head[4]:>11}{head[5]:>12}  holdout")
    for r in evaluate(lake, truth, uri):
        m, o = (f"{r[k]:.4f}" if k in r else "-" for k in ("model_auc", "oracle_auc"))
        print(
            f"{r['model']:<10}{r['version']:>8}{r['rows']:>8,}{r['positives']:>6}{m:>11}{o:>12}"
            f"  {r['holdout_dates']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
