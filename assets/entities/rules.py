"""The identity rules: `identity.yaml` (how to match) and the catalog's roles (what to match).

The rules file is the one place where matching is decided: normalization lists, comparisons,
blocking and thresholds. Which records denote a company or a person, in which columns, with
which stable references, comes from the source catalog (assets/roles.py `identity_sources`):
no rules file names a source object. A stack may hold its own identity.yaml; else the one beside
this module is used. Code here only reads them and turns them into SQL and a Splink settings
dictionary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from assets.entities.comparisons import (  # noqa: F401 (Level: re-export)
    LINK_TYPES,
    Comparison,
    Level,
    build_comparison,
)
from checks.entities import LINK_RULES
from checks.roles import PERSON_IDENTITY_FIELDS
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
    # the catalog's `role.attributes`: more identity fields, name -> column or SQL
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def system(self) -> str:
        return self.source.split("/", 1)[0]

    @property
    def object(self) -> str:
        return self.source.split("/", 1)[1]


@dataclass(frozen=True)
class Key:
    """An exact-key rule: records sharing every listed column's value are one entity, unless
    a guard says the value is shared (a team mailbox; records naming different people)."""

    name: str  # the rule written to identity_links.rule
    columns: tuple[str, ...]
    confidence: float
    # a value whose records carry more than n distinct values of a column is no key
    distinct: tuple[tuple[str, int], ...] = ()
    skip_role_mailboxes: bool = False  # email_key only: team mailboxes are never a key
    generic_domain_confidence: float | None = None  # email_key only: a mail provider's address
    # one entity has one value: clusters carrying different values are never merged by score
    exclusive: bool = False
    # values within this many edits (Damerau-Levenshtein) are one value mistyped, not two
    exclusive_within: int = 0

    @property
    def reads(self) -> tuple[str, ...]:
        return (*self.columns, *(c for c, _ in self.distinct))


@dataclass(frozen=True)
class Scoring:
    merge: float
    review: float
    prior: float | None
    blocking: tuple[str, ...]
    comparisons: tuple[Comparison, ...]
    link_type: str = "dedupe_only"
    # blocking rules for training m by expectation-maximisation (default: `blocking`)
    training_blocking: tuple[str, ...] = ()
    # where training takes m from: "em" (expectation-maximisation over the candidates) or
    # "labels" (the pairs inside the clusters stable ids and exact keys already built)
    m_from: str = "em"

    @property
    def columns(self) -> tuple[str, ...]:
        """The record columns scoring reads: the comparisons' and the blocking rules'."""
        cols = [c for comp in self.comparisons for c in comp.columns]
        cols += [c for b in (*self.blocking, *self.training_blocking) for c in blocking_columns(b)]
        return tuple(dict.fromkeys(cols))

    def splink_settings(self, unique_id: str = "unique_id") -> dict[str, Any]:
        settings: dict[str, Any] = {
            "link_type": self.link_type,
            "unique_id_column_name": unique_id,
            "blocking_rules_to_generate_predictions": [
                {"blocking_rule": b, "sql_dialect": "duckdb"} for b in self.blocking
            ],
            "comparisons": [c.splink() for c in self.comparisons],
            "retain_intermediate_calculation_columns": False,
            "retain_matching_columns": True,
        }
        if self.prior is not None:
            settings["probability_two_random_records_match"] = self.prior
        return settings


@dataclass(frozen=True)
class EntityRules:
    prefix: str
    sources: tuple[Source, ...]
    scoring: Scoring
    anchor_sources: tuple[str, ...] = ()
    references: tuple[tuple[str, Ref], ...] = ()
    member_domain_min_share: float = 0.6
    member_domain_min_people: int = 1
    keys: tuple[Key, ...] = ()
    # source -> the dataset it belongs to (link_only / link_and_dedupe; Splink's source_dataset)
    datasets: dict[str, str] = field(default_factory=dict)

    @property
    def link_type(self) -> str:
        return self.scoring.link_type

    def dataset(self, source: str) -> str:
        """The dataset of a record source: its configured one, else the source itself."""
        return self.datasets.get(source, source)

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.source == name:
                return s
        raise KeyError(name)

    @property
    def rule_order(self) -> tuple[str, ...]:
        """The link rules, strongest first, with this entity's exact keys in the key slot."""
        names = tuple(k.name for k in self.keys)
        i = LINK_RULES.index("email")
        return (*LINK_RULES[:i], *names, *(r for r in LINK_RULES[i + 1 :] if r not in names))


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


_BLOCK_COLUMN = re.compile(r'\b[lr]\."?([A-Za-z_][A-Za-z0-9_]*)"?')
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
KEY_KEYS = (
    "name",
    "columns",
    "confidence",
    "distinct",
    "skip_role_mailboxes",
    "generic_domain_confidence",
    "exclusive",
    "exclusive_within",
)
SCORING_KEYS = (
    "merge",
    "review",
    "prior",
    "blocking",
    "training_blocking",
    "m_from",
    "comparisons",
)
M_FROM = ("em", "labels")
ENTITY_KEYS = {
    "accounts": (
        "entity_id_prefix",
        "member_domain_min_share",
        "member_domain_min_people",
        "link_type",
        "datasets",
        "keys",
        "scoring",
    ),
    "persons": ("entity_id_prefix", "link_type", "datasets", "keys", "scoring"),
}


def blocking_sql(rule: Any, at: str) -> str:
    """A blocking rule as SQL over `l.` and `r.`: as written, or `{columns: [a, b]}` (equal on
    every one)."""
    if isinstance(rule, str) and rule.strip():
        return rule
    if isinstance(rule, dict) and set(rule) == {"columns"}:
        cols = rule["columns"]
        if isinstance(cols, list) and cols and all(isinstance(c, str) for c in cols):
            return " AND ".join(f'l."{c}" = r."{c}"' for c in cols)
    raise ValueError(f"{at}: a blocking rule is SQL over l. and r., or {{columns: [a, b]}}")


def blocking_columns(sql: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_BLOCK_COLUMN.findall(sql)))


def provides(src: Source, entity: str) -> set[str]:
    """The record columns a source fills (assets/entities/records.py builds them)."""
    f, out = src.fields, set(src.attributes)
    if entity == "persons":
        out |= {k for k in PERSON_IDENTITY_FIELDS if k in f}
        if f.keys() & {"first_name", "last_name", "full_name"}:
            out |= {"first_name", "last_name", "full_name"}
        if src.account:
            out.add("account_id")
    else:
        out |= {"name_norm", "name_token"} if "name" in f else set()
        out |= {"domain", "domain_stem"} if "website" in f else set()
        out |= {"country"} if "country" in f else set()
    if "email" in f:
        out |= {"email", "email_key", "email_local", "email_domain"}
    return out


def _check_columns(
    path: Path, at: str, cols: tuple[str, ...] | list[str], entity: str, sources
) -> None:
    """Every column a rule reads must be filled by some identity source of the entity."""
    have = set().union(*(provides(s, entity) for s in sources)) if sources else set()
    for c in cols:
        if c not in have:
            names = ", ".join(s.source for s in sources) or "none"
            kind = "person" if entity == "persons" else "company"
            raise ValueError(
                f"{path}: {at}: column {c}: no {kind} source maps it (sources: {names})"
            )


def _within(path: Path, at: str, k: dict[str, Any]) -> int:
    """`exclusive_within`: edits by which two values of an exclusive key may differ and still
    be one value mistyped (a national id keyed with one digit wrong)."""
    within = k.get("exclusive_within", 0)
    if not isinstance(within, int) or isinstance(within, bool) or within < 0:
        raise ValueError(f"{path}: {at}: exclusive_within must be a whole number >= 0")
    if within and not k.get("exclusive"):
        raise ValueError(f"{path}: {at}: exclusive_within applies to exclusive keys only")
    return within


def _keys(path: Path, entity: str, items: Any, sources) -> tuple[Key, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ValueError(f"{path}: {entity}.keys: a list of exact-key rules")
    out: list[Key] = []
    builtin = set(LINK_RULES) - {"email"}
    for i, k in enumerate(items):
        at = f"{entity}.keys[{k.get('name', i) if isinstance(k, dict) else i}]"
        if not isinstance(k, dict):
            raise ValueError(f"{path}: {at}: a mapping with name, columns, confidence")
        unknown = sorted(set(k) - set(KEY_KEYS))
        if unknown:
            raise ValueError(
                f"{path}: {at}: unknown key option {unknown[0]!r} (known: {', '.join(KEY_KEYS)})"
            )
        name, cols = k.get("name"), k.get("columns")
        if not isinstance(name, str) or not NAME.match(name) or name in builtin:
            raise ValueError(
                f"{path}: {at}: name {name!r} must match {NAME.pattern} and not be one of "
                f"the built-in rules ({', '.join(sorted(builtin))})"
            )
        if name in {x.name for x in out}:
            raise ValueError(f"{path}: {at}: a second key named {name}")
        if not isinstance(cols, list) or not cols or not all(isinstance(c, str) for c in cols):
            raise ValueError(f"{path}: {at}: columns: a non-empty list of record columns")
        distinct = k.get("distinct") or {}
        if not isinstance(distinct, dict) or not all(
            isinstance(v, int) and v >= 1 for v in distinct.values()
        ):
            raise ValueError(f"{path}: {at}: distinct: a mapping of column -> count >= 1")
        email_only = [o for o in ("skip_role_mailboxes", "generic_domain_confidence") if k.get(o)]
        if email_only and "email_key" not in cols:
            raise ValueError(f"{path}: {at}: {email_only[0]} applies to email_key keys only")
        conf = k.get("confidence")
        generic = k.get("generic_domain_confidence")
        for what, v in (("confidence", conf), ("generic_domain_confidence", generic)):
            if (v is not None or what == "confidence") and not (
                isinstance(v, int | float) and 0 < v <= 1
            ):
                raise ValueError(f"{path}: {at}: {what} must be in (0, 1]")
        key = Key(
            name,
            tuple(cols),
            float(conf),
            tuple((c, int(n)) for c, n in distinct.items()),
            bool(k.get("skip_role_mailboxes", False)),
            None if generic is None else float(generic),
            bool(k.get("exclusive", False)),
            _within(path, at, k),
        )
        _check_columns(path, at, key.reads, entity, sources)
        out.append(key)
    return tuple(out)


def _datasets(path: Path, entity: str, spec: Any, sources) -> dict[str, str]:
    if spec is None:
        return {}
    known = {s.source for s in sources}
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: {entity}.datasets: a mapping of dataset -> [sources]")
    out: dict[str, str] = {}
    for name, members in spec.items():
        at = f"{entity}.datasets.{name}"
        if not isinstance(members, list) or not members:
            raise ValueError(f"{path}: {at}: a non-empty list of sources")
        for m in members:
            if m not in known:
                raise ValueError(
                    f"{path}: {at}: {m!r} is no identity source of {entity} "
                    f"(sources: {', '.join(sorted(known)) or 'none'})"
                )
            if m in out:
                raise ValueError(f"{path}: {at}: {m} is already in dataset {out[m]}")
            out[m] = str(name)
    return out


def _scoring(path: Path, entity: str, sc: Any, link_type: str, sources) -> Scoring:
    if not isinstance(sc, dict):
        raise ValueError(f"{path}: {entity}.scoring: a mapping (merge, review, blocking, ...)")
    unknown = sorted(set(sc) - set(SCORING_KEYS))
    if unknown:
        raise ValueError(f"{path}: {entity}.scoring: unknown key {unknown[0]!r}")
    blocking = tuple(
        blocking_sql(b, f"{path}: {entity}.scoring.blocking[{i}]")
        for i, b in enumerate(sc.get("blocking") or [])
    )
    training = tuple(
        blocking_sql(b, f"{path}: {entity}.scoring.training_blocking[{i}]")
        for i, b in enumerate(sc.get("training_blocking") or [])
    )
    comparisons = tuple(
        build_comparison(c, f"{path}: {entity}.scoring.comparisons[{c.get('name', i)}]")
        for i, c in enumerate(sc.get("comparisons") or [])
    )
    names = [c.name for c in comparisons]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: {entity}.scoring.comparisons: names must be unique")
    prior = sc.get("prior")
    scoring = Scoring(
        merge=float(sc["merge"]),
        review=float(sc["review"]),
        prior=None if prior is None else float(prior),
        blocking=blocking,
        comparisons=comparisons,
        link_type=link_type,
        training_blocking=training,
        m_from=str(sc.get("m_from", "em")),
    )
    if scoring.m_from not in M_FROM:
        raise ValueError(
            f"{path}: {entity}.scoring.m_from: {scoring.m_from!r} is not one of {', '.join(M_FROM)}"
        )
    if not 0 < scoring.review <= scoring.merge <= 1:
        raise ValueError(
            f"{path}: {entity}.scoring: thresholds must satisfy 0 < review <= merge <= 1"
        )
    if sources:
        for c in comparisons:
            _check_columns(
                path, f"{entity}.scoring.comparisons[{c.name}]", c.columns, entity, sources
            )
        for kind, rules in (("blocking", blocking), ("training_blocking", training)):
            for i, b in enumerate(rules):
                at = f"{entity}.scoring.{kind}[{i}]"
                _check_columns(path, at, blocking_columns(b), entity, sources)
    return scoring


NO_SCORING = Scoring(merge=1.0, review=1.0, prior=None, blocking=(), comparisons=())


def _entity(path: Path, entity: str, spec: Any, sources, anchors=(), references=()) -> EntityRules:
    """One entity's rules. An entity no source of the catalog denotes needs no section (a
    person-only catalog has no accounts); its rules are then not checked against columns."""
    sources = tuple(sources)
    if spec is None:
        if sources:
            names = ", ".join(s.source for s in sources)
            raise ValueError(f"{path}: {entity}: required, the catalog has its sources ({names})")
        prefix = "acc_" if entity == "accounts" else "per_"
        return EntityRules(prefix=prefix, sources=(), scoring=NO_SCORING)
    unknown = sorted(set(spec) - set(ENTITY_KEYS[entity]))
    if unknown:
        raise ValueError(
            f"{path}: {entity}: unknown key {unknown[0]!r} "
            f"(known: {', '.join(ENTITY_KEYS[entity])})"
        )
    link_type = spec.get("link_type", "dedupe_only")
    if link_type not in LINK_TYPES:
        raise ValueError(
            f"{path}: {entity}.link_type: {link_type!r} is not one of {', '.join(LINK_TYPES)}"
        )
    return EntityRules(
        prefix=spec["entity_id_prefix"],
        sources=sources,
        scoring=_scoring(path, entity, spec.get("scoring"), link_type, sources),
        anchor_sources=tuple(anchors),
        references=tuple(references),
        member_domain_min_share=float(spec.get("member_domain_min_share", 0.6)),
        member_domain_min_people=int(spec.get("member_domain_min_people", 1)),
        keys=_keys(path, entity, spec.get("keys"), sources) if sources else (),
        datasets=_datasets(path, entity, spec.get("datasets"), sources),
    )


RETIRED = ("sources", "anchor_sources", "references")


def load_rules(
    path: str | Path | None = None, catalog: Catalog | None = None, weights: Any = None
) -> Rules:
    """The rules at `path` (default: `resources.identity.rules_path()`) over the sources of
    `catalog` (default: the active catalog), read when called. Every column a comparison,
    blocking rule or key reads must be filled by an identity source: else a ValueError names
    the rule and the column. Learned weights are laid over the comparisons: `weights` is a
    weights file or `Weights` (default: `weights_path()` when that file exists; False: none);
    a weights file that does not fit the rules is refused (assets/entities/weights.py)."""
    from assets.entities import weights as learned
    from assets.roles import identity_sources

    configured = bool(path)
    path = rules_path(str(path) if path else None)
    spec = yaml.safe_load(path.read_text()) or {}
    for entity in ("accounts", "persons"):
        stale = [k for k in RETIRED if k in (spec.get(entity) or {})]
        if stale:
            raise ValueError(
                f"{path}: field {entity}.{stale[0]}: sources come from the catalog's roles "
                "now (catalog.yaml `role:`); remove it"
            )
    found = identity_sources(catalog or load_catalog())
    n = spec.get("normalize") or {}
    normalize = Normalize(
        generic_email_domains=tuple(n.get("generic_email_domains", [])),
        dot_insensitive_domains=tuple(n.get("dot_insensitive_domains", [])),
        domain_aliases=dict(n.get("domain_aliases", {})),
        strip_plus_tags=bool(n.get("strip_plus_tags", True)),
        role_mailboxes=tuple(n.get("role_mailboxes", [])),
        company_suffixes=tuple(n.get("company_suffixes", [])),
        country_names={k.lower(): v for k, v in n.get("country_names", {}).items()},
    )
    roles = spec.get("roles", {})
    accounts = _entity(
        path, "accounts", spec.get("accounts"), found.accounts, found.anchors, found.references
    )
    rules = Rules(
        path=str(path),
        normalize=normalize,
        accounts=accounts,
        persons=_entity(path, "persons", spec.get("persons"), found.persons),
        product_roles=dict(roles.get("product_roles", {})),
        former_titles=tuple(t.lower() for t in roles.get("former_titles", [])),
    )
    return learned.apply(rules, learned.resolve(weights, str(path) if configured else None))
