"""The identity rules file (`identity.yaml`), loaded into typed objects.

The file is the one place where matching is decided: sources and their columns, normalization
lists, comparisons, blocking and thresholds. Code here only reads it and turns it into SQL and a
Splink settings dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resources.identity import DEFAULT_RULES


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
    account: Ref | None = None
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
    prior: float
    blocking: tuple[str, ...]
    comparisons: tuple[Comparison, ...]

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
    m, u = spec["m"], spec["u"]
    if len(m) != len(conds) or len(u) != len(conds):
        raise ValueError(
            f"comparison {spec['name']}: {len(conds)} levels need {len(conds)} m and u values"
        )
    null = Level(f"{col} missing", f"{left} IS NULL OR {right} IS NULL", null=True)
    return (
        null,
        *(Level(lab, sql, mi, ui) for (lab, sql), mi, ui in zip(conds, m, u, strict=True)),
    )


def _ref(spec: dict[str, str] | None) -> Ref | None:
    return Ref(spec["expr"], spec["to"]) if spec else None


def _entity(spec: dict[str, Any]) -> EntityRules:
    sources = tuple(
        Source(
            source=s["source"],
            table=s["table"],
            id=s["id"],
            order_by=s["order_by"],
            fields=dict(s.get("fields", {})),
            links=tuple(Ref(r["expr"], r["to"]) for r in s.get("links", [])),
            account=_ref(s.get("account")),
            where=s.get("where"),
        )
        for s in spec["sources"]
    )
    sc = spec["scoring"]
    scoring = Scoring(
        merge=float(sc["merge"]),
        review=float(sc["review"]),
        prior=float(sc["prior"]),
        blocking=tuple(sc["blocking"]),
        comparisons=tuple(Comparison(c["name"], _levels(c)) for c in sc["comparisons"]),
    )
    if not 0 < scoring.review <= scoring.merge <= 1:
        raise ValueError("scoring thresholds must satisfy 0 < review <= merge <= 1")
    refs = tuple((r["table"], Ref(r["expr"], r["to"])) for r in spec.get("references", []))
    return EntityRules(
        prefix=spec["entity_id_prefix"],
        sources=sources,
        scoring=scoring,
        anchor_sources=tuple(spec.get("anchor_sources", [])),
        references=refs,
        member_domain_min_share=float(spec.get("member_domain_min_share", 0.6)),
        member_domain_min_people=int(spec.get("member_domain_min_people", 1)),
    )


def load_rules(path: str | Path | None = None) -> Rules:
    path = Path(path or DEFAULT_RULES)
    spec = yaml.safe_load(path.read_text())
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
    return Rules(
        path=str(path),
        normalize=normalize,
        accounts=_entity(spec["accounts"]),
        persons=_entity(spec["persons"]),
        product_roles=dict(roles.get("product_roles", {})),
        former_titles=tuple(t.lower() for t in roles.get("former_titles", [])),
    )
