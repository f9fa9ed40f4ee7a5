"""Claims about the models and the review queue on a demo lake (the session's `full_lake`:
200 accounts x 300 days through every layer), issue 21:

- The MLflow model signature is the input the scoring code passes, and MLflow enforces it.
- `make evaluate-models` prints each champion's holdout AUC beside the oracle AUC.
- `python -m assets.entities.decide` records a reviewer's decision that later runs honour.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from conftest import ROOT, Lakehouse, load_definitions


# -- the MLflow model signature ----------------------------------------------------------------
def test_the_champions_signature_is_what_scoring_passes_and_mlflow_enforces_it(full_lake):
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from assets.features import asof
    from assets.ml import SPECS
    from assets.ml.models import _frame, aliases, load_model
    from resources.lake import LakeResource
    from resources.mlflow import tracking_uri_for

    lake = LakeResource(root=str(full_lake.lake_root))
    uri = tracking_uri_for(str(full_lake.lake_root))
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for spec in SPECS:
        version = aliases(spec.model_name, uri)["champion"]
        ref = f"models:/{spec.model_name}/{version}"
        inputs = mlflow.models.get_model_info(ref).signature.inputs.to_dict()
        # the feature list of the spec, in order, all required; categoricals are text
        expected = [
            {"name": f, "type": "string" if f in asof.CATEGORICAL else "double", "required": True}
            for f in spec.features
        ]
        assert inputs == expected, spec.model_name

        # ... which is exactly the frame the scoring code builds from today's mart
        model = load_model(spec.model_name, uri, version)
        mart = lake.read(spec.mart.layer, spec.mart.table)
        frame = _frame(mart, model.features, model.categorical)
        kinds = {
            c: "double" if pd.api.types.is_float_dtype(t) else "string"
            for c, t in frame.dtypes.items()
            if pd.api.types.is_float_dtype(t) or pd.api.types.is_string_dtype(t)
        }
        assert [{"name": c, "type": kinds.get(c), "required": True} for c in frame] == expected

        pyfunc = mlflow.pyfunc.load_model(ref)
        assert len(pyfunc.predict(frame)) == mart.num_rows
        for feature in spec.features:
            with pytest.raises(MlflowException, match=rf"missing inputs.*'{feature}'"):
                pyfunc.predict(frame.drop(columns=[feature]))


# -- make evaluate-models ----------------------------------------------------------------------
def test_make_evaluate_models_prints_the_champions_auc_beside_the_oracle(full_lake, tmp_path):
    from mlflow import MlflowClient

    from assets.ml import SPECS
    from assets.ml.models import aliases
    from resources.mlflow import tracking_uri_for

    (tmp_path / "lake").symlink_to(full_lake.lake_root)  # `make` runs where lake/ is
    out = subprocess.run(
        [
            "make",
            "-s",
            "-f",
            str(ROOT / "Makefile"),
            "-o",
            "install",  # the venv is there: run the target's own command only
            f"BIN={Path(sys.executable).parent}",
            "evaluate-models",
        ],
        cwd=tmp_path,
        env={**_env(), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [ln.split() for ln in out.stdout.splitlines() if ln.strip()]
    assert lines[0] == [
        "model",
        "version",
        "rows",
        "pos",
        "model",
        "AUC",
        "oracle",
        "AUC",
        "holdout",
    ]
    rows = {ln[0]: ln[1:] for ln in lines[1:]}
    assert list(rows) == [spec.kind for spec in SPECS]

    uri = tracking_uri_for(str(full_lake.lake_root))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for spec in SPECS:
        version, n, positives, model_auc, oracle_auc, holdout = rows[spec.kind]
        champion = aliases(spec.model_name, uri)["champion"]
        assert version == champion
        n, positives = int(n.replace(",", "")), int(positives)
        assert 0 < positives < n
        model_auc, oracle_auc = float(model_auc), float(oracle_auc)
        assert 0 <= model_auc <= 1 and 0 <= oracle_auc <= 1
        assert oracle_auc > 0.5  # the planted hazards drive the labels
        # The lake is as the champion was trained on it, and every holdout account is in the
        # ground truth: the rows and the AUC are the ones the registry recorded for the version.
        mv = client.get_model_version(spec.model_name, champion)
        run = client.get_run(mv.run_id)
        dates = json.loads(run.data.params["holdout_dates"])
        assert holdout == f"{dates[0]}..{dates[-1]}"
        assert n == run.data.metrics["n_holdout"]
        assert model_auc == round(float(mv.tags["holdout_auc"]), 4)


# -- python -m assets.entities.decide ---------------------------------------------------------
def _env() -> dict[str, str]:
    """This environment without the lake settings a developer may have exported."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}


def _decide(lake: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "assets.entities.decide", *args],
        cwd=ROOT,
        env={**_env(), "LAKEHOUSE_LAKE_ROOT": str(lake), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_decide_records_a_decision_that_every_later_run_honours(full_lake, tmp_path, monkeypatch):
    from checks.entities import IDENTITY_TABLES
    from resources.identity import WEIGHTS_PATH

    lake_root = tmp_path / "lake"
    shutil.copytree(full_lake.lake_root, lake_root, symlinks=True)
    house = Lakehouse(lake_root, lake_root / "landing", load_definitions())
    # Scored with the rules' inline weights, which leave more pairs to review than the
    # stack's learned ones (a couple on this small company): two disjoint pairs are needed.
    monkeypatch.setenv(WEIGHTS_PATH, str(tmp_path / "no.weights.yaml"))
    assert house.materialize(*(c.name for c in IDENTITY_TABLES)).success
    review = house.lake.read("entities", "identity_review").to_pylist()
    apart = [p for p in review if p["left_canonical_id"] and p["right_canonical_id"]]
    apart = [p for p in apart if p["left_canonical_id"] != p["right_canonical_id"]]
    assert apart, "the sample company leaves pairs of known records for review"
    same = apart[0]
    ids = {same["left_canonical_id"], same["right_canonical_id"]}
    different = next(
        p for p in apart if not {p["left_canonical_id"], p["right_canonical_id"]} & ids
    )  # a pair that shares no entity with the first: the two decisions cannot conflict
    decisions = lake_root / "decisions" / "identity_decisions.csv"
    assert not decisions.exists()

    unknown = _decide(lake_root, "no-such-pair", "same", "--by", "Reviewer One")
    assert unknown.returncode == 2 and "not in entities/identity_review" in unknown.stderr
    assert not decisions.exists()  # nothing recorded for a pair that is not waiting

    for pair, decision in ((same, "same"), (different, "different")):
        out = _decide(lake_root, pair["pair_id"], decision, "--by", "Reviewer One")
        assert out.returncode == 0, out.stderr[-2000:]
    with open(decisions, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [
        (r["entity_type"], r["left_record"], r["right_record"], r["decision"], r["decided_by"])
        for r in rows
    ] == [
        (p["entity_type"], p["left_record"], p["right_record"], d, "Reviewer One")
        for p, d in ((same, "same"), (different, "different"))
    ]
    assert all(
        datetime.fromisoformat(r["decided_at"]).utcoffset().total_seconds() == 0 for r in rows
    )

    for _ in range(2):  # the next run, and the one after it
        assert house.materialize(*(c.name for c in IDENTITY_TABLES)).success
        links = house.lake.read("entities", "identity_links")
        canonical = dict(
            zip(links["record_key"].to_pylist(), links["canonical_id"].to_pylist(), strict=True)
        )
        assert canonical[same["left_record"]] == canonical[same["right_record"]]
        assert canonical[different["left_record"]] != canonical[different["right_record"]]
        pending = set(house.lake.read("entities", "identity_review")["pair_id"].to_pylist())
        assert not pending & {same["pair_id"], different["pair_id"]}
