"""Learned match weights: the file `python -m assets.entities.train` writes and every run reads.

m/u probabilities are properties of the data, not of taste: they are estimated by Splink's
trainer (assets/entities/train.py) and kept in a versioned file beside the rules
(`<stack>/identity.weights.yaml`, or `<lake>/identity/identity.weights.yaml` when a run had to
train for itself). A run reads them and never trains again, so the same data scores the same.

Each comparison's weights are keyed by comparison name and level label, and carry a hash of the
comparison's definition (its levels' labels and SQL): weights learned for a comparison that has
since changed would silently mean something else, so such a file is refused with the command to
retrain. A comparison the rules no longer hold is ignored; the prior and levels of the rest apply.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from assets.entities.rules import Comparison, EntityRules, Level, Rules, Scoring

ENTITIES = ("accounts", "persons")
RETRAIN = "retrain with `make train-identity` (python -m assets.entities.train)"


@dataclass(frozen=True)
class LevelWeight:
    """One comparison level's learned m and u; its match weight is log2(m/u)."""

    label: str
    m: float
    u: float
    note: str = ""  # where m or u came from when the training data never showed the level

    @property
    def weight(self) -> float:
        return math.log2(self.m / self.u) if self.m > 0 and self.u > 0 else float("nan")


@dataclass(frozen=True)
class EntityWeights:
    prior: float
    comparisons: dict[str, tuple[LevelWeight, ...]]
    definitions: dict[str, str]  # comparison name -> definition_hash at training time
    records: int = 0  # candidate rows the trainer saw
    m_from: str = ""  # how m was learned: EM over the blocking, or labelled pairs (how many)


@dataclass(frozen=True)
class Weights:
    version: int
    trained_at: str
    rules: dict[str, str]  # entity -> rules_hash at training time
    data: dict[str, Any]  # records, fingerprint
    entities: dict[str, EntityWeights] = field(default_factory=dict)
    path: str = ""
    seconds: float | None = None  # wall time of the training, when known


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def definition_hash(comparison: Comparison) -> str:
    """What a comparison's weights mean: its levels' labels, SQL, null flags and term-frequency
    adjustments (not m/u)."""
    levels = [
        [lv.label, lv.sql or "", lv.null, list(lv.tf) if lv.tf else None]
        for lv in comparison.levels
    ]
    return _sha([comparison.name, levels])[:16]


def rules_hash(scoring: Scoring) -> str:
    """The comparisons and blocking the weights were trained with."""
    return _sha(
        {
            "blocking": list(scoring.blocking),
            "comparisons": [definition_hash(c) for c in scoring.comparisons],
        }
    )


def needs_weights(comparison: Comparison) -> bool:
    """A non-null level lacks m or u: nothing to score this comparison with yet."""
    return any(not lv.null and (lv.m is None or lv.u is None) for lv in comparison.levels)


def untrained(scoring: Scoring) -> list[str]:
    """What the scoring lacks before it can run: comparisons without m/u, or the prior."""
    missing = [c.name for c in scoring.comparisons if needs_weights(c)]
    return missing + (["prior"] if scoring.prior is None else [])


# -- the file ----------------------------------------------------------------------------------


def dump(weights: Weights) -> str:
    """The weights as YAML: version, date, rules hash and data fingerprint, then per entity
    the prior and each comparison's levels (m, u and match weight)."""
    doc: dict[str, Any] = {
        "version": weights.version,
        "trained_at": weights.trained_at,
        "rules": dict(weights.rules),
        "data": dict(weights.data),
    }
    if weights.seconds is not None:
        doc["seconds"] = round(weights.seconds, 1)
    for entity, ew in weights.entities.items():
        doc[entity] = {
            "prior": float(f"{ew.prior:.6g}"),
            "records": ew.records,
            **({"m_from": ew.m_from} if ew.m_from else {}),
            "comparisons": {
                name: {
                    "definition": ew.definitions.get(name, ""),
                    "levels": [
                        {
                            "label": lv.label,
                            "m": float(f"{lv.m:.6g}"),
                            "u": float(f"{lv.u:.6g}"),
                            "weight": round(lv.weight, 3),
                            **({"note": lv.note} if lv.note else {}),
                        }
                        for lv in levels
                    ],
                }
                for name, levels in ew.comparisons.items()
            },
        }
    header = (
        "# Learned identity match weights (Splink: u by random sampling, m by expectation-\n"
        "# maximisation over the blocking rules or from labelled pairs, per `m_from`). Written\n"
        "# by `make train-identity`; do not edit by hand: retrain after a new source, a change to\n"
        "# the rules' comparisons, or a shift in the population (docs/identity.md).\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, width=100)


def parse(text: str, where: str) -> Weights:
    """A weights file's content; `where` names it in errors."""
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict) or "version" not in doc:
        raise ValueError(f"{where}: not an identity weights file (no `version`)")
    entities = {}
    for entity in ENTITIES:
        spec = doc.get(entity)
        if not spec:
            continue
        comps, defs = {}, {}
        for name, c in (spec.get("comparisons") or {}).items():
            try:
                comps[name] = tuple(
                    LevelWeight(
                        str(lv["label"]), float(lv["m"]), float(lv["u"]), str(lv.get("note", ""))
                    )
                    for lv in c["levels"]
                )
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{where}: {entity}.comparisons[{name}]: malformed ({e})") from e
            defs[name] = str(c.get("definition", ""))
        entities[entity] = EntityWeights(
            float(spec["prior"]),
            comps,
            defs,
            int(spec.get("records", 0)),
            str(spec.get("m_from", "")),
        )
    return Weights(
        version=int(doc["version"]),
        trained_at=str(doc.get("trained_at", "")),
        rules=dict(doc.get("rules") or {}),
        data=dict(doc.get("data") or {}),
        entities=entities,
        path=where,
        seconds=doc.get("seconds"),
    )


def read(path: str | Path) -> Weights | None:
    """The weights file at `path`, or None when there is none."""
    p = Path(path)
    return parse(p.read_text(), str(p)) if p.is_file() else None


def resolve(
    weights: Weights | str | Path | bool | None, rules: str | None = None
) -> Weights | None:
    """The weights `load_rules` was asked for: a `Weights`, a file, False for none, or None for
    the file that goes with the rules (`resources.identity.weights_path`; `rules`: the rules
    file when it was configured rather than the stack's) when it exists."""
    if weights is False:
        return None
    if isinstance(weights, Weights):
        return weights
    from resources.identity import weights_path

    if weights not in (None, True):
        return read(weights_path(str(weights)))
    return read(weights_path(rules=rules))


def write(path: str | Path, weights: Weights) -> None:
    """Write whole (a reader sees the old file or the new one, never a part)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(dump(weights))
    tmp.replace(p)


# -- overlay onto the rules --------------------------------------------------------------------


def stale(scoring: Scoring, ew: EntityWeights) -> list[str]:
    """Why these weights do not fit these rules (empty: they fit). A comparison whose
    definition changed since training, or one trained for none of its levels, is stale; a
    comparison the rules dropped is not."""
    out = []
    for c in scoring.comparisons:
        if c.name not in ew.comparisons:
            if needs_weights(c):
                out.append(f"comparison {c.name} is not in the weights file")
            continue
        if ew.definitions.get(c.name) != definition_hash(c):
            out.append(f"comparison {c.name} changed since it was trained")
            continue
        labels = {lw.label for lw in ew.comparisons[c.name]}
        missing = [lv.label for lv in c.levels if not lv.null and lv.label not in labels]
        if missing:
            out.append(f"comparison {c.name}: no weights for level(s) {missing}")
    return out


SPLINK_FLOOR = 1e-300  # the smallest m or u Splink accepts


def overlay_scoring(scoring: Scoring, ew: EntityWeights) -> Scoring:
    """The scoring with the learned prior and m/u of every comparison the file holds (they win
    over inline values); the caller has checked `stale` first."""

    def level(lv: Level, learned: dict[str, LevelWeight]) -> Level:
        lw = learned.get(lv.label)
        if lv.null or lw is None:
            return lv
        # EM can drive a level's m to 0 (never among matches): Splink takes no value below
        # its float floor, and that floor already vetoes a pair as surely.
        return replace(lv, m=max(lw.m, SPLINK_FLOOR), u=max(lw.u, SPLINK_FLOOR))

    comps = []
    for c in scoring.comparisons:
        learned = {lw.label: lw for lw in ew.comparisons.get(c.name, ())}
        comps.append(replace(c, levels=tuple(level(lv, learned) for lv in c.levels)))
    return replace(scoring, prior=ew.prior, comparisons=tuple(comps))


def apply(rules: Rules, weights: Weights | None) -> Rules:
    """`rules` with `weights` laid over each entity's scoring; a stale file is refused."""
    if weights is None:
        return rules
    out = {}
    for entity in ENTITIES:
        er: EntityRules = getattr(rules, entity)
        ew = weights.entities.get(entity)
        if ew is None:
            continue
        why = stale(er.scoring, ew)
        if why:
            raise ValueError(
                f"{weights.path}: {entity}: weights trained {weights.trained_at} (version "
                f"{weights.version}) do not fit the rules in {rules.path}: {'; '.join(why)}; "
                f"{RETRAIN}"
            )
        out[entity] = replace(er, scoring=overlay_scoring(er.scoring, ew))
    return replace(rules, **out)
