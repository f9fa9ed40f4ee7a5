"""The identity rules: `identity.yaml` (how to match) and the catalog's roles (what to match).

The rules file is the one place where matching is decided: normalization lists, comparisons,
blocking and thresholds. Which records denote a company or a person, in which columns, with
which stable references, comes from the source catalog (assets/roles.py `identity_sources`):
no rules file names a source object. A stack may hold its own identity.yaml; else the one beside
this module is used. Code here only reads them and turns them into SQL and a Splink settings
dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from checks.sources import Catalog, load_catalog
from resources.identity import rules_path


@dataclass(frozen=True)
class Ref:
    """A column (or SQL expression) holding another source's id: a stable shared id."""

    expr: str
    to: str  # "<system>/<object>" of the referenced source


@dataclass(frozen=True)
class Source:
    source: str  # "<system>/<object>", the identity of a record together with its id
    table: str  # "<layer>/<table>" it is read from
    id: str  # column or SQL expression giving the source id
    order_by: str  # latest version wins
    fields: dict[str, str]  # standard field -> column or SQL expression
    links: tuple[Ref, ...] = ()
    account: tuple[Ref, ...] = ()  # the company record they belong to: first that holds a value
    where: str | None = None

    @property
    def system(self) -> str:
        return self.source.split("/", 1)[0]

    @property
    def object(self) -> str:
        return self.source.split("/", 1)[1]


@dataclass(frozen=True)
class Level:
    label: str
    sql: str | None = None
    m: float | None = None
    u: float | None = None
    null: bool = False


@dataclass(frozen=True)
class Comparison:
    name: str
    levels: tuple[Level, ...]

    def splink(self) -> dict[str, Any]:
        levels = sorted(self.levels, key=lambda lv: not lv.null)  # null levels first
        out = []
        for lv in levels:
            level: dict[str, Any] = {"sql_condition": lv.sql, "label_for_charts": lv.label}
            if lv.null:
                level["is_null_level"] = True
            else:
                level["m_probability"] = lv.m
                level["u_probability"] = lv.u
            out.append(level)
        return {"output_column_name": self.name, "comparison_levels": out}


@dataclass(frozen=True)
class Scoring:
    merge: float
    review: float
    prior: float | None  # None until trained (assets/entities/weights.py)
    blocking: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    training_blocking: tuple[str, ...] = ()  # EM blocking for training; default: `blocking`

    def splink_settings(self, unique_id: str = "unique_id") -> dict[str, Any]:
        return {
            "link_type": "dedupe_only",
            "unique_id_column_name": unique_id,
            "probability_two_random_records_match": self.prior,
            "blocking_rules_to_generate_predictions": [
                {"blocking_rule": b, "sql_dialect": "duckdb"} for b in self.blocking
            ],
            "comparisons": [c.splink() for c in self.comparisons],
            "retain_intermediate_calculation_columns": False,
            "retain_matching_columns": True,
        }


@dataclass(frozen=True)
class EntityRules:
    prefix: str
    sources: tuple[Source, ...]
    scoring: Scoring
    anchor_sources: tuple[str, ...] = ()
    references: tuple[tuple[str, Ref], ...] = ()
    member_domain_min_share: float = 0.6
    member_domain_min_people: int = 1

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.source == name:
                return s
        raise KeyError(name)


@dataclass(frozen=True)
class Normalize:
    generic_email_domains: tuple[str, ...]
    dot_insensitive_domains: tuple[str, ...]
    domain_aliases: dict[str, str]
    strip_plus_tags: bool
    role_mailboxes: tuple[str, ...]
    company_suffixes: tuple[str, ...]
    country_names: dict[str, str]


@dataclass(frozen=True)
class Rules:
    path: str
    normalize: Normalize
    accounts: EntityRules
    persons: EntityRules
    product_roles: dict[str, str] = field(default_factory=dict)
    former_titles: tuple[str, ...] = ()


def _levels(spec: dict[str, Any]) -> tuple[Level, ...]:
    if "levels" in spec:
        return tuple(
            Level(lv["label"], lv.get("sql"), lv.get("m"), lv.get("u"), bool(lv.get("is_null")))
            for lv in spec["levels"]
        )
    col, method = spec["column"], spec["method"]
    left, right = f'"{col}_l"', f'"{col}_r"'
    conds = [(f"exact {col}", f"{left} = {right}")]
    if method == "jaro_winkler":
        conds += [
            (f"{col} jaro-winkler >= {t}", f"jaro_winkler_similarity({left}, {right}) >= {t}")
            for t in spec["thresholds"]
        ]
    elif method == "levenshtein":
        conds += [
            (f"{col} levenshtein <= {t}", f"levenshtein({left}, {right}) <= {t}")
            for t in spec["thresholds"]
        ]
    elif method != "exact":
        raise ValueError(f"comparison {spec['name']}: unknown method {method!r}")
    conds.append(("anything else", "ELSE"))
    # m/u are optional: learned weights come from the weights file (assets/entities/weights.py).
    m, u = spec.get("m", [None] * len(conds)), spec.get("u", [None] * len(conds))
    if len(m) != len(conds) or len(u) != len(conds):
        raise ValueError(
            f"comparison {spec['name']}: {len(conds)} levels need {len(conds)} m and u values"
        )
    null = Level(f"{col} missing", f"{left} IS NULL OR {right} IS NULL", null=True)
    return (
        null,
        *(Level(lab, sql, mi, ui) for (lab, sql), mi, ui in zip(conds, m, u, strict=True)),
    )


def _entity(spec: dict[str, Any], sources, anchors=(), references=()) -> EntityRules:
    sc = spec["scoring"]
    scoring = Scoring(
        merge=float(sc["merge"]),
        review=float(sc["review"]),
        prior=float(sc["prior"]) if sc.get("prior") is not None else None,
        blocking=tuple(sc["blocking"]),
        comparisons=tuple(Comparison(c["name"], _levels(c)) for c in sc["comparisons"]),
        training_blocking=tuple(sc.get("training_blocking", ())),
    )
    if not 0 < scoring.review <= scoring.merge <= 1:
        raise ValueError("scoring thresholds must satisfy 0 < review <= merge <= 1")
    return EntityRules(
        prefix=spec["entity_id_prefix"],
        sources=tuple(sources),
        scoring=scoring,
        anchor_sources=tuple(anchors),
        references=tuple(references),
        member_domain_min_share=float(spec.get("member_domain_min_share", 0.6)),
        member_domain_min_people=int(spec.get("member_domain_min_people", 1)),
    )


RETIRED = ("sources", "anchor_sources", "references")


def load_rules(
    path: str | Path | None = None,
    catalog: Catalog | None = None,
    weights: Any = None,
) -> Rules:
    """The rules at `path` (default: `resources.identity.rules_path()`) over the sources of
    `catalog` (default: the active catalog), read when called, with learned weights laid over
    them: `weights` is a weights file path or `Weights` (default: `weights_path()` when that
    file exists; False: none). A weights file that does not fit the rules is refused."""
    from assets.entities import weights as learned
    from assets.roles import identity_sources

    path = rules_path(str(path) if path else None)
    spec = yaml.safe_load(path.read_text())
    for entity in ("accounts", "persons"):
        stale = [k for k in RETIRED if k in spec.get(entity, {})]
        if stale:
            raise ValueError(
                f"{path}: field {entity}.{stale[0]}: sources come from the catalog's roles "
                "now (catalog.yaml `role:`); remove it"
            )
    found = identity_sources(catalog or load_catalog())
    n = spec["normalize"]
    normalize = Normalize(
        generic_email_domains=tuple(n["generic_email_domains"]),
        dot_insensitive_domains=tuple(n["dot_insensitive_domains"]),
        domain_aliases=dict(n.get("domain_aliases", {})),
        strip_plus_tags=bool(n.get("strip_plus_tags", True)),
        role_mailboxes=tuple(n.get("role_mailboxes", [])),
        company_suffixes=tuple(n.get("company_suffixes", [])),
        country_names={k.lower(): v for k, v in n.get("country_names", {}).items()},
    )
    roles = spec.get("roles", {})
    rules = Rules(
        path=str(path),
        normalize=normalize,
        accounts=_entity(spec["accounts"], found.accounts, found.anchors, found.references),
        persons=_entity(spec["persons"], found.persons),
        product_roles=dict(roles.get("product_roles", {})),
        former_titles=tuple(t.lower() for t in roles.get("former_titles", [])),
    )
    return learned.apply(rules, learned.resolve(weights))
