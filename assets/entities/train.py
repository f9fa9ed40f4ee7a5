"""Learn the identity match weights from the lake's own records (Splink's trainer).

    python -m assets.entities.train [--entity persons|accounts|all] [--out PATH]
                                    [--max-pairs N] [--seed 42]      (make train-identity)

Training sees exactly what scoring sees: the identity step runs as usual (stable ids, decisions,
deterministic keys), and each entity's candidates -- one row per cluster those rules left apart --
are trained on before they are scored: u by random sampling of pairs (seeded), m by
expectation-maximisation over each blocking rule (or the scoring's `training_blocking`), and
the prior from the EM sessions (the deterministic keys already ran, so the candidates hold none
of their pairs to count). Accounts are scored with their new weights before people are linked,
as a run does. The weights file records the rules hash, the data fingerprint and a version.

A run whose rules lack weights for some comparison (no weights file, no inline m/u) trains the
same way in-run with the fixed seed and keeps the result in the lake, so a new company's first
run needs no manual step and the next run reads what it learned.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from assets.entities import weights as w
from assets.entities.rules import Rules, Scoring

SEED = 42
MAX_PAIRS = 1e6
log = logging.getLogger(__name__)
# u estimation stops early once every level has this many observations (Splink's default).
MIN_COUNT_PER_LEVEL = 100


@dataclass
class Trainer:
    """What to train while the identity step runs, and what was learned.

    `entities`: the entities to train even when they have weights (the command); an entity
    lacking weights is trained in any case. Learned weights are kept per entity."""

    rules: Rules
    entities: tuple[str, ...] = ()
    seed: int = SEED
    max_pairs: float = MAX_PAIRS
    learned: dict[str, w.EntityWeights] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)  # entity -> candidates fingerprint
    skipped: dict[str, str] = field(default_factory=dict)  # entity -> why nothing was learned
    seconds: float = 0.0

    def entity_of(self, scoring: Scoring) -> str | None:
        """Which entity's scoring this is (the same comparisons, if not the same object)."""
        for entity in w.ENTITIES:
            own = getattr(self.rules, entity).scoring
            if own is scoring or (own.comparisons and own.comparisons == scoring.comparisons):
                return entity
        return None


class NothingToScore(Exception):
    """No blocking rule joins two candidates: there is nothing to learn from, nor to score."""


_ACTIVE: ContextVar[Trainer | None] = ContextVar("identity_trainer", default=None)


@contextmanager
def training(trainer: Trainer) -> Iterator[Trainer]:
    """Train, as `trainer` says, every scoring the identity step runs inside this block."""
    token = _ACTIVE.set(trainer)
    try:
        yield trainer
    finally:
        _ACTIVE.reset(token)


def fitted(
    candidates: pa.Table,
    scoring: Scoring,
    con: duckdb.DuckDBPyConnection,
    labelled: Callable[[], pa.Table] | None = None,
) -> Scoring:
    """The scoring to score `candidates` with: as given, or with weights trained on them now
    (when the active trainer asks for it, or when the scoring lacks weights). `labelled`: the
    records with the cluster the earlier rules put each in (`label`), for `m_from: labels`."""
    trainer = _ACTIVE.get()
    entity = trainer.entity_of(scoring) if trainer else None
    wanted = trainer is not None and entity in trainer.entities
    if not wanted and not w.untrained(scoring):
        return scoring
    if trainer is not None and entity in trainer.learned:
        # Trained once per run, on the first round's candidates (what the deterministic rules
        # left apart): later rounds see clusters grown by the scoring itself.
        return w.overlay_scoring(scoring, trainer.learned[entity])
    seed, max_pairs = (trainer.seed, trainer.max_pairs) if trainer else (SEED, MAX_PAIRS)
    started = time.perf_counter()
    try:
        labels = labelled() if labelled is not None and scoring.m_from == "labels" else None
        learned = fit(candidates, scoring, con, seed=seed, max_pairs=max_pairs, labelled=labels)
    except NothingToScore as e:
        # Scoring will find no pair either: run it with no evidence, keep nothing (a later run
        # with more data trains), and say so.
        if trainer is not None and entity is not None:
            trainer.skipped[entity] = str(e)
        return _no_evidence(scoring)
    if trainer is not None and entity is not None:
        trainer.learned[entity] = learned
        trainer.hashes[entity] = fingerprint(candidates)
        trainer.seconds += time.perf_counter() - started
    return w.overlay_scoring(scoring, learned)


def _no_evidence(scoring: Scoring) -> Scoring:
    """The scoring with every missing m/u equal (weight 0) and a prior: for a run with no pair
    to score, so nothing it could decide depends on them."""
    comps = tuple(
        replace(
            c,
            levels=tuple(
                lv if lv.null or c.weighted else replace(lv, m=0.5, u=0.5) for lv in c.levels
            ),
        )
        for c in scoring.comparisons
    )
    return replace(scoring, comparisons=comps, prior=scoring.prior or 1e-6)


def _settings(scoring: Scoring) -> dict[str, Any]:
    """Splink settings for training: the rules' comparisons, without the m/u they lack."""
    settings = scoring.splink_settings()
    for comp in settings["comparisons"]:
        for level in comp["comparison_levels"]:
            for k in ("m_probability", "u_probability"):
                if level.get(k) is None:
                    level.pop(k, None)
    if settings.get("probability_two_random_records_match") is None:
        settings["probability_two_random_records_match"] = 1e-4  # EM re-estimates it
    settings["retain_intermediate_calculation_columns"] = False
    return settings


def fit(
    candidates: pa.Table,
    scoring: Scoring,
    con: duckdb.DuckDBPyConnection,
    *,
    seed: int = SEED,
    max_pairs: float = MAX_PAIRS,
    labelled: pa.Table | None = None,
) -> w.EntityWeights:
    """m/u per level and the prior, estimated on `candidates` by Splink's trainer: m by EM, or
    from `labelled` records (`label`: the cluster stable ids and exact keys put each in) when
    given -- Splink's `estimate_m_from_label_column`, the way a shared national id or CRM link
    labels true matches, which holds many more true pairs than EM finds among the candidates."""
    from splink import DuckDBAPI, Linker
    from splink.internals.exceptions import EMTrainingException

    cur = con.cursor()
    try:
        db_api = DuckDBAPI(connection=cur)
        df = db_api.register(candidates, dataset_display_name="training_candidates")
        linker = Linker(df, _settings(scoring), log_level=logging.ERROR)
        linker.training.estimate_u_using_random_sampling(
            max_pairs=max_pairs, seed=seed, min_count_per_level=MIN_COUNT_PER_LEVEL
        )
        rules = scoring.training_blocking or scoring.blocking
        trained = 0
        from_labels = _m_from_labels(labelled, scoring, con) if labelled is not None else None
        for rule in rules if from_labels is None else ():
            try:
                linker.training.estimate_parameters_using_expectation_maximisation(
                    rule, estimate_without_term_frequencies=True
                )
                trained += 1
            except EMTrainingException:  # the rule joins no two candidates: nothing to learn
                log.warning("identity training: blocking rule %r yields no pairs here", rule)
            except ValueError as e:  # EM drove an m or u below what float64 holds
                if "minimum allowed value" not in str(e):
                    raise
                log.warning("identity training: blocking rule %r skipped: %s", rule, e)
        if from_labels is not None:
            trained = 1
        elif not trained and scoring.training_blocking:
            raise ValueError(
                f"no training_blocking rule yields a pair of candidates ({list(rules)})"
            )
        if not trained:
            raise NothingToScore(f"no blocking rule yields a pair of candidates ({list(rules)})")
        model = linker.misc.save_model_to_json()
        estimated = {
            (comp.output_column_name, level.label_for_charts): (
                level._has_estimated_m_values,
                level._has_estimated_u_values,
            )
            for comp in linker._settings_obj.comparisons
            for level in comp._comparison_levels_excluding_null
        }
    finally:
        cur.close()
    how = f"em over {trained} blocking rule(s)"
    if from_labels is not None:
        _overlay_m(model, estimated, from_labels)
        how = f"labels: {_pair_count(labelled):,} pairs inside the deterministic rules' clusters"
    learned = _learned(model, scoring, candidates.num_rows, max_pairs, estimated)
    prior = estimate_prior(candidates, w.overlay_scoring(scoring, learned), con)
    return replace(learned, prior=prior, m_from=how)


def _pair_count(labelled: pa.Table) -> int:
    sizes = labelled.group_by("label").aggregate([("label", "count")])["label_count"].to_pylist()
    return sum(n * (n - 1) // 2 for n in sizes)


def _m_from_labels(
    labelled: pa.Table, scoring: Scoring, con: duckdb.DuckDBPyConnection
) -> dict[tuple[str, str], float] | None:
    """m per (comparison, level label) over every pair of records sharing a `label`, for the
    levels those pairs showed (Splink's `estimate_m_from_label_column`); None when no cluster
    holds two records (EM then learns m)."""
    from splink import DuckDBAPI, Linker

    sizes = labelled.group_by("label").aggregate([("label", "count")])
    if not any(n > 1 for n in sizes["label_count"].to_pylist()):
        log.warning("identity training: no cluster holds two records; m by EM instead")
        return None
    settings = _settings(replace(scoring, link_type="dedupe_only"))
    cur = con.cursor()
    try:
        df = DuckDBAPI(connection=cur).register(labelled, dataset_display_name="labelled")
        linker = Linker(df, settings, log_level=logging.ERROR)
        linker.training.estimate_m_from_label_column("label")
        return {
            (comp.output_column_name, level.label_for_charts): level.m_probability
            for comp in linker._settings_obj.comparisons
            for level in comp._comparison_levels_excluding_null
            if level._has_estimated_m_values
        }
    finally:
        cur.close()


def _overlay_m(
    model: dict[str, Any],
    estimated: dict[tuple[str, str], tuple[bool, bool]],
    m: dict[tuple[str, str], float],
) -> None:
    """Put the labels' m into the trained model, marking those levels' m as estimated."""
    for comp in model["comparisons"]:
        name = comp["output_column_name"]
        for level in comp["comparison_levels"]:
            key = (name, level.get("label_for_charts"))
            if key in m:
                level["m_probability"] = m[key]
            has_u = estimated.get(key, (False, False))[1]
            estimated[key] = (key in m, has_u)


def _learned(
    model: dict[str, Any],
    scoring: Scoring,
    records: int,
    max_pairs: float,
    estimated: dict[tuple[str, str], tuple[bool, bool]],
) -> w.EntityWeights:
    """The trained model's levels by comparison name and label; `estimated`: which of m and u
    the training estimated, per (comparison, level label).

    A level the training data never showed gets, in order: the rules' inline m/u; else the
    bound the data gives: for u, seen in none of `max_pairs` random pairs (1/max_pairs); for m,
    seen among none of the matches of `records` candidates (1/records, and never above u). So
    a disagreement no match ever showed (another date of birth, another phone) counts against a
    pair about as strongly as the data can say, where m = u made it no evidence at all (twins
    with every other field alike merged), and Splink's own fallback (m = 1e-6) claims more than
    the data saw. Each such level says where its values came from (`note`)."""
    comps: dict[str, tuple[w.LevelWeight, ...]] = {}
    by_name = {c.name: c for c in scoring.comparisons}
    for comp in model["comparisons"]:
        name = comp["output_column_name"]
        inline = {lv.label: lv for lv in by_name[name].levels}
        levels = []
        for level in comp["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            label = level["label_for_charts"]
            has_m, has_u = estimated.get((name, label), (False, False))
            notes = []
            u = level.get("u_probability") if has_u else None
            if u is None:
                u = inline[label].u
                notes.append("u: the rules' value" if u is not None else "u < 1/max-pairs")
                u = u if u is not None else 1 / max_pairs
            m = level.get("m_probability") if has_m else None
            if m is None:
                m = inline[label].m
                notes.append("m: the rules' value" if m is not None else "m < 1/records")
                m = m if m is not None else min(u, 1 / records)
            note = "; ".join(notes)
            levels.append(
                w.LevelWeight(label, float(m), float(u), f"not observed ({note})" if notes else "")
            )
        comps[name] = _monotone(levels)
    return w.EntityWeights(
        prior=float(model["probability_two_random_records_match"]),
        comparisons=comps,
        definitions={c.name: w.definition_hash(c) for c in scoring.comparisons},
        records=records,
    )


def _monotone(levels: list[w.LevelWeight]) -> tuple[w.LevelWeight, ...]:
    """Levels run from most to least alike (as Splink's comparison library orders them): a
    level the data never showed gets at least the weight of the next, less alike level, so a
    near-exact name no match happened to show is no evidence against a pair while a looser one
    is evidence for it. The last (else) level keeps its bound; estimated levels are untouched."""
    out = list(levels)
    for i in range(len(out) - 2, -1, -1):
        lv, below = out[i], out[i + 1]
        if "m < 1/records" in lv.note and lv.weight < below.weight:
            m = min(1.0, lv.u * below.m / below.u)
            note = lv.note.replace("m < 1/records", "m: at least the next level's weight")
            out[i] = w.LevelWeight(lv.label, m, lv.u, note)
    return tuple(out)


def estimate_prior(
    candidates: pa.Table, scoring: Scoring, con: duckdb.DuckDBPyConnection, rounds: int = 50
) -> float:
    """The share of all candidate pairs expected to match, with m/u fixed.

    Every blocked pair's Bayes factor comes from the learned m/u; the prior is then iterated to
    its fixed point: prior = (sum of the blocked pairs' match probabilities) / (all pairs).
    Pairs outside the blocking are never scored, so they count as non-matches. The
    deterministic keys already ran, so a prior counted from them (Splink's
    `estimate_probability_two_random_records_match`) would find none of their pairs here.
    """
    from splink import DuckDBAPI, Linker

    n = candidates.num_rows
    total = n * (n - 1) / 2
    if scoring.link_type == "link_only":  # only pairs across datasets are compared
        sizes = candidates.group_by("source_dataset").aggregate([("unique_id", "count")])
        total = (n * n - sum(k * k for k in sizes["unique_id_count"].to_pylist())) / 2
    if total <= 0:
        return 0.0
    start = scoring.prior or 1 / total
    settings = replace(scoring, prior=start).splink_settings()
    cur = con.cursor()
    try:
        db_api = DuckDBAPI(connection=cur)
        df = db_api.register(candidates, dataset_display_name="prior_candidates")
        linker = Linker(df, settings, log_level=logging.ERROR)
        pred = linker.inference.predict()
        weight = cur.sql(f"SELECT match_weight FROM {pred.physical_name}").fetchnumpy()
    finally:
        cur.close()
    log2_bf = np.asarray(weight["match_weight"], dtype=np.float64) - np.log2(start / (1 - start))
    bf = np.exp2(np.clip(log2_bf, -1000, 1000))
    prior = start
    for _ in range(rounds):
        odds = prior / (1 - prior) * bf
        new = float(np.sum(odds / (1 + odds)) / total)
        new = min(max(new, 1 / total), 0.5)
        if abs(new - prior) <= 1e-9 * max(prior, 1e-12):
            break
        prior = new
    return prior


def fingerprint(candidates: pa.Table) -> str:
    """sha256 over the rows (sorted by key) the trainer saw: same data, same fingerprint."""
    rows = candidates.sort_by("unique_id")
    h = hashlib.sha256()
    h.update(",".join(rows.column_names).encode())
    for batch in rows.to_batches(max_chunksize=65536):
        for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
            h.update(repr(row).encode())
    return h.hexdigest()


def weights_of(trainer: Trainer, previous: w.Weights | None) -> w.Weights:
    """The file's content: what `trainer` learned, over the previous file's other entities."""
    entities = dict(previous.entities) if previous else {}
    entities.update(trainer.learned)
    rules_hashes = dict(previous.rules) if previous else {}
    data = dict(previous.data.get("entities", {})) if previous else {}
    for entity in trainer.learned:
        rules_hashes[entity] = w.rules_hash(getattr(trainer.rules, entity).scoring)
        data[entity] = {
            "records": trainer.learned[entity].records,
            "fingerprint": trainer.hashes[entity],
        }
    overall = hashlib.sha256("".join(data[e]["fingerprint"] for e in sorted(data)).encode())
    return w.Weights(
        version=(previous.version + 1) if previous else 1,
        trained_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        rules=rules_hashes,
        data={
            "records": sum(d["records"] for d in data.values()),
            "fingerprint": overall.hexdigest(),
            "entities": data,
        },
        entities={e: entities[e] for e in w.ENTITIES if e in entities},
        seconds=trainer.seconds,
    )


@dataclass
class RunWeights:
    """The weights a run of the identity step scores with, and where they came from."""

    rules: Rules
    trainer: Trainer
    note: str  # for the run's metadata
    lake_file: w.Weights | None = None


def for_run(identity: Any, lake: Any) -> RunWeights:
    """The rules with the weights in force: the team's file (`weights_path()`, the one that
    goes with the rules; refused when stale), else what an earlier run trained into the lake,
    else the rules' inline m/u. A comparison still without weights is trained in-run
    (`after_run` keeps the result)."""
    from assets.entities.rules import load_rules
    from resources.identity import LAKE_WEIGHTS_FILE, weights_path

    team = weights_path(identity.weights_path, identity.rules_path)
    if team.is_file():
        rules = load_rules(identity.rules_path, weights=team)
        found = w.read(team)
        note = f"{team} (version {found.version}, trained {found.trained_at})" if found else ""
        return RunWeights(rules, Trainer(rules), note)
    bare = load_rules(identity.rules_path, weights=False)
    kept = _lake_weights(lake)
    where = f"{lake.root}/{LAKE_WEIGHTS_FILE}"
    if kept is not None:
        try:
            rules = w.apply(bare, kept)
            note = f"{where} (version {kept.version}, trained in the run of {kept.trained_at})"
            return RunWeights(rules, Trainer(rules), note, kept)
        except ValueError as stale:
            note = f"{where} no longer fits the rules ({stale}); "
    else:
        note = ""
    missing = any(w.untrained(getattr(bare, e).scoring) for e in w.ENTITIES)
    note += "trained this run" if missing else f"inline m/u of {bare.path}"
    return RunWeights(bare, Trainer(bare), note, kept)


def _lake_weights(lake: Any) -> w.Weights | None:
    from resources.identity import LAKE_WEIGHTS_FILE

    try:
        text = lake.files().read(LAKE_WEIGHTS_FILE)
    except (FileNotFoundError, OSError):
        return None
    return w.parse(text.decode(), f"{lake.root}/{LAKE_WEIGHTS_FILE}")


def after_run(run: RunWeights, lake: Any) -> str:
    """Keep what the run had to train in the lake, so the next run reads it instead of
    training again; returns the note for the run's metadata."""
    from resources.identity import LAKE_WEIGHTS_FILE

    skipped = "".join(f"; {e}: not trained ({why})" for e, why in run.trainer.skipped.items())
    if not run.trainer.learned:
        return run.note + skipped
    weights = weights_of(run.trainer, run.lake_file)
    lake.files().write(LAKE_WEIGHTS_FILE, w.dump(weights).encode())
    learned = ", ".join(run.trainer.learned)
    return (
        f"trained this run ({learned}; version {weights.version} kept in "
        f"{lake.root}/{LAKE_WEIGHTS_FILE}; `make train-identity` writes the team's file)" + skipped
    )


def report(weights: w.Weights, entities: tuple[str, ...]) -> str:
    """Each comparison's levels with m, u and match weight, the prior and records used."""
    lines = []
    for entity in entities:
        ew = weights.entities[entity]
        lines.append(
            f"{entity}: prior {ew.prior:.6g} (1 in {1 / ew.prior:,.0f}), "
            f"{ew.records:,} candidate records; m from {ew.m_from or 'em'}"
        )
        for name, levels in ew.comparisons.items():
            lines.append(f"  {name}")
            for lv in levels:
                lines.append(
                    f"    {lv.label:<48} m={lv.m:<10.4g} u={lv.u:<10.4g} weight={lv.weight:+.2f}"
                    + (f"  {lv.note}" if lv.note else "")
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from resources.identity import RULES_PATH, weights_path
    from resources.quiet import telemetry_off
    from resources.settings import read

    telemetry_off()
    p = argparse.ArgumentParser(
        prog="python -m assets.entities.train", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--entity", choices=("persons", "accounts", "all"), default="all")
    p.add_argument("--out", type=Path, help="weights file (default: the stack's)")
    p.add_argument("--max-pairs", type=float, default=MAX_PAIRS, help="u sampling pairs")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--lake", help="lake root (default: LAKEHOUSE_LAKE_ROOT, else lake)")
    args = p.parse_args(argv)

    out = args.out or weights_path(rules=read(RULES_PATH) or None)
    entities = w.ENTITIES if args.entity == "all" else (args.entity,)
    started = time.perf_counter()
    previous = w.read(out)
    weights, source_records, skipped = train(
        args.lake, entities, args.seed, args.max_pairs, previous
    )
    w.write(out, weights)
    elapsed = time.perf_counter() - started
    print(report(weights, tuple(e for e in entities if e not in skipped)))
    for entity, why in skipped.items():
        print(f"{entity}: not trained: {why} (its deterministic rules leave nothing to score)")
    print(
        f"{source_records:,} source records; weights version {weights.version} written to "
        f"{out} in {elapsed:.1f}s (training {weights.seconds:.1f}s)"
    )
    return 0


def train(
    lake_root: str | None,
    entities: tuple[str, ...],
    seed: int,
    max_pairs: float,
    previous: w.Weights | None,
) -> tuple[w.Weights, int, dict[str, str]]:
    """Run the identity step over the lake's raw tables with a trainer for `entities`; nothing
    is published. Returns the weights file's content, the source records read, and the
    entities with nothing to learn from (no pair of candidates), with why."""
    from assets.entities.identity import load_decisions, resolve_identities
    from assets.entities.rules import load_rules
    from resources.duckdb import DuckDBResource
    from resources.identity import DECISIONS_PATH, RULES_PATH, IdentityResource
    from resources.lake import LakeResource
    from resources.pii import PiiResource
    from resources.settings import lake_root as default_root
    from resources.settings import read

    lake = LakeResource(root=lake_root or default_root())
    identity = IdentityResource(
        rules_path=read(RULES_PATH) or None, decisions_path=read(DECISIONS_PATH) or None
    )
    # The rules without any weights file: training must not start from what it replaces.
    rules = load_rules(identity.rules_path, weights=False)
    decisions = load_decisions(identity.decisions_file(lake.root))
    trainer = Trainer(rules, entities, seed, max_pairs)
    with DuckDBResource().connect() as con, training(trainer):
        PiiResource().install(con, lake.root)
        result = resolve_identities(con, lake, rules, decisions, pa.table({}))
    if not trainer.learned:
        why = "; ".join(f"{e}: {r}" for e, r in trainer.skipped.items()) or "no candidates"
        raise SystemExit(
            f"nothing to train on in the lake at {lake.root} ({why}): is its raw layer built?"
        )
    return weights_of(trainer, previous), result.source_records, trainer.skipped


if __name__ == "__main__":
    # Run as the imported module, so scoring finds the trainer this command activates.
    from assets.entities.train import main as _main

    sys.exit(_main())
