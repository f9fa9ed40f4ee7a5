"""Identity weights are learned, not typed: `python -m assets.entities.train` estimates them with
Splink's trainer and writes a versioned weights file that every run reads; a rules file with no
m/u at all still resolves (the run trains for itself and keeps what it learned in the lake); a
weights file trained for other comparisons is refused with the command to retrain.

One small sample company's raw layer serves the module; a test that runs the identity step runs
it on a copy of that lake.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from assets.entities import weights as w
from assets.entities.rules import load_rules
from conftest import Lakehouse, load_definitions
from resources.identity import DEFAULT_RULES, LAKE_WEIGHTS_FILE, IdentityResource

ACCOUNTS, DAYS, SEED = 60, 60, 11


def _identity_selection():
    from dagster import AssetKey, AssetSelection

    key = AssetKey(["entities", "identity_links"])
    return AssetSelection.assets(key).required_multi_asset_neighbors()


def _run_identity(house: Lakehouse, identity: IdentityResource, upstream: bool = False):
    from dagster import DagsterInstance, materialize

    sel = _identity_selection()
    result = materialize(
        list(house.defs.assets),
        selection=sel.upstream() if upstream else sel,
        resources={**house.resources, "identity": identity},
        instance=DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    assert result.success
    meta = {}
    for e in result.get_asset_materialization_events():
        if e.asset_key.path[-1] == "identity_links":
            meta = {k: v.value for k, v in e.event_specific_data.materialization.metadata.items()}
    return meta


def _links(house: Lakehouse) -> dict[str, str | None]:
    t = house.lake.read("entities", "identity_links")
    return dict(zip(t["record_key"].to_pylist(), t["canonical_id"].to_pylist(), strict=True))


def _unweighted_rules(path: Path) -> Path:
    """The project's rules, as a new user writes them (comparisons by method, no m, u or
    prior), away from the stack's weights file."""
    path.write_text(DEFAULT_RULES.read_text())
    return path


def test_the_project_types_no_weights_and_the_default_stack_ships_learned_ones():
    """No m, u or prior is typed in the project's rules; the default stack's weights file
    fits them (a stale one is refused at load) and says how each entity's m was learned."""
    bare = load_rules(weights=False)
    for entity in w.ENTITIES:
        scoring = getattr(bare, entity).scoring
        assert scoring.prior is None
        assert {c.name for c in scoring.comparisons} == set(w.untrained(scoring)) - {"prior"}
    shipped = w.read(Path(__file__).resolve().parents[1] / "stacks/default/identity.weights.yaml")
    assert shipped is not None and set(shipped.entities) == set(w.ENTITIES)
    assert shipped.entities["accounts"].m_from.startswith("labels: ")
    assert shipped.entities["persons"].m_from.startswith("em over ")
    rules = load_rules()  # raises if the file no longer fits the rules
    assert rules.accounts.scoring.prior == shipped.entities["accounts"].prior


@pytest.fixture(scope="module")
def company(tmp_path_factory) -> Lakehouse:
    """A small sample company's landing zone and raw layer (and a first identity map)."""
    from sample_company.generate import generate

    root = tmp_path_factory.mktemp("training")
    generate(root / "landing", accounts=ACCOUNTS, days=DAYS, seed=SEED)
    house = Lakehouse(root / "lake", root / "landing", load_definitions())
    _run_identity(house, IdentityResource(), upstream=True)  # with the stack's shipped weights
    return house


@pytest.fixture
def copy(company: Lakehouse, tmp_path: Path) -> Lakehouse:
    shutil.copytree(company.lake_root, tmp_path / "lake", symlinks=True)
    return Lakehouse(tmp_path / "lake", company.landing_root, company.defs)


def test_rules_without_weights_resolve_by_training_in_run_then_reuse_it(copy, tmp_path):
    """A rules file with no typed m/u resolves the company as well as the sample's truth asks,
    says it trained, keeps the weights in the lake; the next run reads them (no retraining, no
    id changes)."""
    from assets.entities.evaluate import evaluate
    from resources.pii import PiiResource

    rules = _unweighted_rules(tmp_path / "identity.yaml")
    identity = IdentityResource(rules_path=str(rules), weights_path=str(tmp_path / "none.yaml"))
    first = _run_identity(copy, identity)
    assert first["weights"].startswith("trained this run")
    kept = w.read(copy.lake_root / LAKE_WEIGHTS_FILE)
    # People are scored here; this small company's companies all join by their keys (nothing
    # left to score, nothing to learn from: the run says so and keeps no weights for them).
    assert kept is not None and kept.version == 1 and "persons" in kept.entities
    assert "accounts" in kept.entities or "accounts: not trained" in first["weights"]
    salt = PiiResource().resolve_salt(str(copy.lake_root))
    links = copy.lake.read("entities", "identity_links")
    scores = {s.entity_type: s for s in evaluate(links, copy.landing_root / "_truth", salt)}
    assert scores["person"].precision >= 0.995 and scores["person"].f1 >= 0.99
    assert scores["account"].precision >= 0.995 and scores["account"].f1 >= 0.99

    ids = _links(copy)
    second = _run_identity(copy, identity)
    assert second["weights"].startswith(str(copy.lake_root / LAKE_WEIGHTS_FILE))
    assert w.read(copy.lake_root / LAKE_WEIGHTS_FILE) == kept
    assert _links(copy) == ids


def test_training_command_is_reproducible_and_prints_every_weight(company, tmp_path, capsys):
    """Same lake, same seed: the same weights and data fingerprint; each retraining into the
    same file is a new version; the output shows every comparison level's m, u and weight."""
    from assets.entities.train import main

    out = tmp_path / "identity.weights.yaml"
    assert main(["--lake", str(company.lake_root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    first = w.read(out)
    assert main(["--lake", str(company.lake_root), "--out", str(out)]) == 0
    second = w.read(out)
    assert second.version == first.version + 1
    assert second.entities == first.entities and second.data == first.data
    assert second.rules == first.rules
    rules = load_rules(weights=False)
    assert "persons" in first.entities
    for entity in w.ENTITIES:
        if entity not in first.entities:  # a small company's companies all join by their keys
            assert f"{entity}: not trained: no blocking rule yields a pair" in printed
            continue
        learned = first.entities[entity]
        assert 0 < learned.prior < 1
        assert f"{entity}: prior" in printed
        for comp in getattr(rules, entity).scoring.comparisons:
            assert f"  {comp.name}\n" in printed
            for level in learned.comparisons[comp.name]:
                assert 0 < level.m <= 1 and 0 < level.u <= 1
                assert f"{level.label}" in printed
    assert "written to" in printed and "s (training" in printed


def _weights_for(rules, m: float, u: float) -> w.Weights:
    """A weights file giving every non-null level of `rules` the same m and u."""
    entities = {}
    for entity in w.ENTITIES:
        scoring = getattr(rules, entity).scoring
        entities[entity] = w.EntityWeights(
            prior=1e-4,
            comparisons={
                c.name: tuple(w.LevelWeight(lv.label, m, u) for lv in c.levels if not lv.null)
                for c in scoring.comparisons
            },
            definitions={c.name: w.definition_hash(c) for c in scoring.comparisons},
        )
    hashes = {e: w.rules_hash(getattr(rules, e).scoring) for e in w.ENTITIES}
    return w.Weights(3, "2026-12-07T10:00:00Z", hashes, {"records": 1}, entities)


def test_weights_file_overlays_the_rules_and_a_changed_comparison_is_refused(tmp_path):
    """The file's m/u and prior win over inline ones; after a comparison changes the file is
    refused, naming it and the command; a comparison dropped from the rules is no reason."""
    path = tmp_path / "identity.weights.yaml"
    w.write(path, _weights_for(load_rules(weights=False), m=0.4, u=0.01))
    rules = load_rules(weights=path)
    assert rules.persons.scoring.prior == 1e-4
    for entity in w.ENTITIES:
        for comp in getattr(rules, entity).scoring.comparisons:
            assert all((lv.m, lv.u) == (0.4, 0.01) for lv in comp.levels if not lv.null)

    doc = yaml.safe_load(DEFAULT_RULES.read_text())
    first = doc["persons"]["scoring"]["comparisons"][0]
    first["thresholds"] = [0.95, 0.80]
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ValueError, match=rf"{first['name']} changed.*make train-identity"):
        load_rules(changed, weights=path)

    doc = yaml.safe_load(DEFAULT_RULES.read_text())
    doc["accounts"]["scoring"]["comparisons"].pop()
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert load_rules(fewer, weights=path).accounts.scoring.prior == 1e-4


def test_m_from_labels_is_the_share_of_same_cluster_pairs_at_each_level():
    """`m_from: labels`: a level's m is the share of pairs inside the clusters the earlier rules
    built that land on it (what a shared CRM id says about names), not an EM guess; a level no
    labelled pair showed keeps the data's bound, and u still comes from random pairs."""
    import pyarrow as pa

    from assets.entities.comparisons import build_comparison
    from assets.entities.rules import Scoring
    from assets.entities.train import fit
    from resources.duckdb import connect

    comparison = build_comparison(
        {"name": "name", "method": "exact", "column": "name"}, "test.comparisons[name]"
    )
    scoring = Scoring(
        merge=0.99,
        review=0.8,
        prior=None,
        blocking=("l.city = r.city",),
        comparisons=(comparison,),
        m_from="labels",
    )
    # cluster a: x, x, y (1 of 3 pairs agrees); cluster b: z, z (1 of 1): m(exact) = 2 / 4
    labelled = pa.table(
        {
            "unique_id": ["1", "2", "3", "4", "5"],
            "label": ["a", "a", "a", "b", "b"],
            "name": ["x", "x", "y", "z", "z"],
            "city": ["p", "p", "q", "r", "r"],
        }
    )
    names = [f"n{i % 40}" for i in range(200)]
    candidates = pa.table(
        {
            "unique_id": [f"c{i}" for i in range(200)],
            "name": names,
            "city": [f"k{i % 7}" for i in range(200)],
        }
    )
    with connect() as con:
        learned = fit(candidates, scoring, con, seed=1, max_pairs=1e5, labelled=labelled)
    exact, other = learned.comparisons["name"]
    assert exact.m == pytest.approx(0.5) and other.m == pytest.approx(0.5)
    assert not exact.note and not other.note
    # u: random pairs of the 200 candidates, 40 names with 5 records each: 4 / 199 agree
    assert exact.u == pytest.approx(4 / 199, rel=0.25)


def test_m_from_must_be_a_known_method(tmp_path):
    doc = yaml.safe_load(DEFAULT_RULES.read_text())
    doc["accounts"]["scoring"]["m_from"] = "guess"
    path = tmp_path / "identity.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ValueError, match=r"accounts\.scoring\.m_from: 'guess' is not one of em"):
        load_rules(path, weights=False)
