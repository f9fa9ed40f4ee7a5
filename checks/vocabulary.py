"""The domain vocabulary (`<stack>/vocabulary.yaml`): what a company's names mean to the platform.

One file says which product events exist and what each counts as (usage, a session, a retention
signal, ...), the plan tiers and their order, the ticket priorities counted as urgent, the
lifecycle thresholds, and the deal stages and statuses meaning won, lost, running or paid.
Every layer reads these from here, at build or run time, so two tables cannot disagree on what
"usage" is, and another company's names need no code change. A mistake stops the code location
from loading with `<file>: field <path>: <what>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from resources.sql import in_list, literal

CATEGORIES = (
    "usage",  # someone using the product: activity windows, last seen, usage trends
    "session",  # a session or login: session counts, last login
    "retention_signal",  # use of the product's core value, which keeps customers
    "premium_trial",  # a trial of a paid feature: an expansion signal
    "integration",  # an integration connected
    "invite",  # a user invited by another
    "core_workflow",  # the workflow that marks an account as activated
)
SUBSCRIPTION_MEANINGS = ("active", "trialing", "past_due", "canceled")
INVOICE_MEANINGS = ("paid", "failed")
DEAL_MEANINGS = ("won", "lost")
LIFECYCLE_THRESHOLDS = {  # name -> (type, lowest allowed)
    "window_days": (int, 1),
    "at_risk_payment_failures": (int, 1),
    "at_risk_urgent_tickets": (int, 1),
    "at_risk_usage_drop": (float, 0.0),
    "at_risk_min_prior_usage": (int, 0),
    "expansion_premium_trials": (int, 1),
    "reactivated_days": (int, 1),
    "activation_days": (int, 1),
    "activation_invites": (int, 1),
}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP = (
    "version",
    "events",
    "plans",
    "ticket_priorities",
    "lifecycle",
    "deal_stages",
    "subscription_statuses",
    "invoice_statuses",
)


class VocabularyError(ValueError):
    """A mistake in a vocabulary file; the message names the file and the field."""


def snake_case(name: str) -> str:
    """`Report Viewed`, `reportViewed`, `report-viewed` -> `report_viewed` (as `snake_case_sql`)."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()


def snake_case_sql(expr: str) -> str:
    """DuckDB's twin of `snake_case` over a VARCHAR expression (RE2 replaces as `re` does)."""
    s = f"regexp_replace(trim({expr}), '([a-z0-9])([A-Z])', '\\1_\\2', 'g')"
    s = f"regexp_replace({s}, '([A-Z]+)([A-Z][a-z])', '\\1_\\2', 'g')"
    return f"trim(lower(regexp_replace({s}, '[^A-Za-z0-9]+', '_', 'g')), '_')"


@dataclass(frozen=True)
class EventName:
    name: str  # canonical snake_case name
    aliases: tuple[str, ...]  # names as they arrive in an event stream
    counts_as: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    name: str
    aliases: tuple[str, ...]
    rank: int  # 1 = lowest tier
    mrr_band: tuple[float, float] | None  # floor, ceiling of the tier's MRR


@dataclass(frozen=True)
class Priority:
    name: str
    urgent: bool


@dataclass(frozen=True)
class Lifecycle:
    """Thresholds of the lifecycle rules (assets/events/lifecycle.py writes the rules)."""

    window_days: int
    at_risk_payment_failures: int
    at_risk_urgent_tickets: int
    at_risk_usage_drop: float
    at_risk_min_prior_usage: int
    expansion_premium_trials: int
    reactivated_days: int
    activation_days: int
    activation_invites: int


@dataclass(frozen=True)
class Vocabulary:
    path: Path
    events: tuple[EventName, ...]
    plans: tuple[Plan, ...]  # lowest tier first
    ticket_priorities: tuple[Priority, ...]  # lowest first
    lifecycle: Lifecycle
    deal_stages: dict[str, tuple[str, ...]]  # won / lost -> stage values
    subscription_statuses: dict[str, tuple[str, ...]]  # meaning -> status values
    invoice_statuses: dict[str, tuple[str, ...]]

    # -- events ---------------------------------------------------------------------------
    @property
    def event_names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.events)

    def events_counting(self, category: str) -> tuple[str, ...]:
        """Canonical names that count as `category` (one of CATEGORIES), in file order."""
        if category not in CATEGORIES:
            raise KeyError(f"unknown event category {category!r} (known: {', '.join(CATEGORIES)})")
        return tuple(e.name for e in self.events if category in e.counts_as)

    def counting_sql(self, category: str, column: str = "event_name") -> str:
        """`<column> IN (...)`: the rows that count as `category` (false when none does)."""
        names = self.events_counting(category)
        return f"{column} IN {in_list(names)}" if names else "false"

    def canonical_event(self, raw_name: str) -> str | None:
        """The canonical name of `raw_name` as it arrives (exact, else after snake_casing);
        None when the vocabulary does not know it."""
        exact, snake = self._aliases()
        return exact.get(raw_name) or snake.get(snake_case(raw_name))

    def event_name_sql(self, expr: str) -> str:
        """SQL: the canonical name of the raw name `expr`, else its snake_cased form (an
        unknown name is kept, never dropped). Exact matches skip the regular expressions."""
        exact, snake = self._aliases()
        whens = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in exact.items())
        snake_whens = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in snake.items())
        s = snake_case_sql(f"({expr})::VARCHAR")
        # a name with no letter or digit is kept as it arrived
        fallback = f"CASE {s} {snake_whens} ELSE coalesce(nullif({s}, ''), ({expr})::VARCHAR) END"
        return f"coalesce(CASE ({expr})::VARCHAR {whens} END, {fallback})"

    def _aliases(self) -> tuple[dict[str, str], dict[str, str]]:
        exact = {a: e.name for e in self.events for a in (*e.aliases, e.name)}
        return exact, {snake_case(a): v for a, v in exact.items()}

    # -- plans ----------------------------------------------------------------------------
    @property
    def plan_order(self) -> dict[str, int]:
        """Canonical plan -> rank, 1 the lowest tier."""
        return {p.name: p.rank for p in self.plans}

    @property
    def top_plan(self) -> str:
        return self.plans[-1].name

    def canonical_plan(self, raw: str) -> str | None:
        return next((p.name for p in self.plans if raw in (p.name, *p.aliases)), None)

    def plan_sql(self, expr: str) -> str:
        """SQL: the canonical plan of the value `expr`, else the value as it arrived."""
        whens = " ".join(
            f"WHEN {literal(a)} THEN {literal(p.name)}" for p in self.plans for a in p.aliases
        )
        return f"CASE ({expr})::VARCHAR {whens} ELSE ({expr})::VARCHAR END" if whens else expr

    def plan_rank_sql(self, expr: str) -> str:
        """SQL: the tier rank of the plan `expr` (canonical or as it arrived); NULL if unknown."""
        whens = " ".join(
            f"WHEN {literal(a)} THEN {p.rank}"
            for p in self.plans
            for a in dict.fromkeys((p.name, *p.aliases))
        )
        return f"CASE ({expr})::VARCHAR {whens} END"

    def plan_band_sql(self, expr: str, edge: int) -> str:
        """SQL: the floor (`edge` 0) or ceiling (1) of the MRR band of plan `expr`; NULL when the
        plan is unknown or has no band."""
        whens = " ".join(
            f"WHEN {literal(p.name)} THEN {float(p.mrr_band[edge])}"
            for p in self.plans
            if p.mrr_band
        )
        return f"CASE ({expr})::VARCHAR {whens} END" if whens else "NULL::DOUBLE"

    # -- priorities, stages, statuses -----------------------------------------------------
    @property
    def urgent_priorities(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.ticket_priorities if p.urgent)

    def urgent_sql(self, expr: str) -> str:
        names = self.urgent_priorities
        return f"({expr}) IN {in_list(names)}" if names else "false"

    def meaning_sql(self, section: str, meaning: str, expr: str) -> str:
        """SQL: `expr` is a value meaning `meaning` in `section` (deal_stages, subscription_statuses
        or invoice_statuses), e.g. `meaning_sql("deal_stages", "won", "stage")`."""
        values = getattr(self, section)[meaning]
        return f"({expr}) IN {in_list(values)}" if values else "false"

    @property
    def running_statuses(self) -> tuple[str, ...]:
        """Subscription statuses in force (trialing included)."""
        return self.subscription_statuses["active"]

    @property
    def billed_statuses(self) -> tuple[str, ...]:
        """Subscription statuses in force and billed: their MRR counts (trials do not)."""
        trial = set(self.subscription_statuses["trialing"])
        return tuple(s for s in self.running_statuses if s not in trial)


def vocabulary_path() -> Path:
    from resources.settings import vocabulary_path as configured

    return configured()


def load_vocabulary(path: Path | str | None = None) -> Vocabulary:
    """The vocabulary at `path` (default: the active stack's, `LAKEHOUSE_VOCABULARY`), read
    when called and cached while the file is unchanged."""
    p = Path(path) if path else vocabulary_path()
    try:
        stat = p.stat()
    except OSError as exc:
        raise VocabularyError(f"{p}: cannot read the vocabulary ({exc.strerror})") from None
    return _load(p.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _load(path: Path, mtime_ns: int, size: int) -> Vocabulary:
    return _Parser(path).vocabulary()


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, what: str) -> VocabularyError:
        return VocabularyError(f"{self.path}: field {field}: {what}")

    def vocabulary(self) -> Vocabulary:
        text = self.path.read_text()
        try:
            self._duplicates(yaml.compose(text), "")
            spec = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise VocabularyError(f"{self.path}: not valid YAML: {exc}") from None
        if not isinstance(spec, dict):
            raise self.fail("version", "the file must be a mapping of the sections")
        self._keys(spec, _TOP, "", required=_TOP)
        if spec["version"] != 1:
            raise self.fail("version", f"unsupported version {spec['version']!r} (expected 1)")
        return Vocabulary(
            path=self.path,
            events=self._events(spec["events"]),
            plans=self._plans(spec["plans"]),
            ticket_priorities=self._priorities(spec["ticket_priorities"]),
            lifecycle=self._lifecycle(spec["lifecycle"]),
            deal_stages=self._meanings(spec["deal_stages"], "deal_stages", DEAL_MEANINGS),
            subscription_statuses=self._meanings(
                spec["subscription_statuses"], "subscription_statuses", SUBSCRIPTION_MEANINGS
            ),
            invoice_statuses=self._meanings(
                spec["invoice_statuses"], "invoice_statuses", INVOICE_MEANINGS
            ),
        )

    def _duplicates(self, node: yaml.Node | None, where: str) -> None:
        """YAML keeps the last of two equal keys silently: a name written twice is an error."""
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key, value in node.value:
                field = f"{where}.{key.value}" if where else str(key.value)
                if key.value in seen:
                    raise self.fail(field, f"named twice (again on line {key.start_mark.line + 1})")
                seen.add(key.value)
                self._duplicates(value, field)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._duplicates(item, f"{where}[{i}]")

    def _keys(
        self, spec: Any, allowed: Iterable[str], where: str, required: Iterable[str] = ()
    ) -> None:
        if not isinstance(spec, dict):
            raise self.fail(where, "must be a mapping")
        allowed = tuple(allowed)
        for key in spec:
            if key not in allowed:
                field = f"{where}.{key}" if where else str(key)
                raise self.fail(field, f"unknown key (known: {', '.join(allowed)})")
        for key in required:
            if key not in spec:
                raise self.fail(f"{where}.{key}" if where else key, "missing")

    def _names(self, value: Any, field: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(field, "must be a list of non-empty names")
        if len(set(value)) < len(value):
            dup = next(v for v in value if value.count(v) > 1)
            raise self.fail(field, f"{dup!r} is listed twice")
        return tuple(value)

    def _canonical(self, name: Any, field: str) -> str:
        if not isinstance(name, str) or not _NAME.match(name):
            raise self.fail(field, f"{name!r} is not a snake_case name ([a-z][a-z0-9_]*)")
        return name

    def _events(self, spec: Any) -> tuple[EventName, ...]:
        if not isinstance(spec, dict) or not spec:
            raise self.fail("events", "must map each canonical event name to its entry")
        out: list[EventName] = []
        owner: dict[str, tuple[str, str]] = {}  # raw or snake-cased alias -> (event, as written)
        for name, entry in spec.items():
            where = f"events.{name}"
            self._canonical(name, where)
            entry = {} if entry is None else entry
            self._keys(entry, ("from", "counts_as", "description"), where)
            aliases = self._names(entry.get("from", [name]), f"{where}.from")
            counts = self._names(entry.get("counts_as", []), f"{where}.counts_as")
            for c in counts:
                if c not in CATEGORIES:
                    raise self.fail(
                        f"{where}.counts_as",
                        f"unknown category {c!r} (known: {', '.join(CATEGORIES)})",
                    )
            for alias in dict.fromkeys((name, *aliases)):
                for key in dict.fromkeys((alias, snake_case(alias))):
                    other = owner.get(key)
                    if other and other[0] != name:
                        raise self.fail(
                            f"{where}.from",
                            f"{alias!r} is also a name of {other[0]!r} ({other[1]!r}): a raw "
                            "name must map to one canonical name",
                        )
                    owner[key] = (name, alias)
            out.append(EventName(name, aliases, counts))
        return tuple(out)

    def _plans(self, spec: Any) -> tuple[Plan, ...]:
        if not isinstance(spec, list) or not spec:
            raise self.fail("plans", "must list the plan tiers, lowest first")
        out: list[Plan] = []
        owner: dict[str, str] = {}
        for i, entry in enumerate(spec):
            where = f"plans[{i}]"
            self._keys(entry, ("name", "from", "mrr_band", "description"), where, ("name",))
            name = self._canonical(entry["name"], f"{where}.name")
            where = f"plans.{name}"
            if name in (p.name for p in out):
                raise self.fail(where, "named twice")
            aliases = self._names(entry.get("from", [name]), f"{where}.from")
            for alias in dict.fromkeys((name, *aliases)):
                if owner.get(alias, name) != name:
                    raise self.fail(
                        f"{where}.from", f"{alias!r} is also a name of {owner[alias]!r}"
                    )
                owner[alias] = name
            band = entry.get("mrr_band")
            if band is not None:
                ok = (
                    isinstance(band, list)
                    and len(band) == 2
                    and all(isinstance(b, int | float) and not isinstance(b, bool) for b in band)
                    and band[0] < band[1]
                )
                if not ok:
                    raise self.fail(f"{where}.mrr_band", "must be [floor, ceiling], floor below")
                band = (float(band[0]), float(band[1]))
            out.append(Plan(name, aliases, i + 1, band))
        return tuple(out)

    def _priorities(self, spec: Any) -> tuple[Priority, ...]:
        if not isinstance(spec, list) or not spec:
            raise self.fail("ticket_priorities", "must list the priorities, lowest first")
        out: list[Priority] = []
        for i, entry in enumerate(spec):
            where = f"ticket_priorities[{i}]"
            self._keys(entry, ("name", "urgent", "description"), where, ("name",))
            name = entry["name"]
            if not isinstance(name, str) or not name.strip():
                raise self.fail(f"{where}.name", "must be a non-empty name")
            if name in (p.name for p in out):
                raise self.fail(f"ticket_priorities.{name}", "named twice")
            urgent = entry.get("urgent", False)
            if not isinstance(urgent, bool):
                raise self.fail(f"ticket_priorities.{name}.urgent", "must be true or false")
            out.append(Priority(name, urgent))
        return tuple(out)

    def _lifecycle(self, spec: Any) -> Lifecycle:
        self._keys(spec, LIFECYCLE_THRESHOLDS, "lifecycle", required=LIFECYCLE_THRESHOLDS)
        values: dict[str, Any] = {}
        for key, (kind, lowest) in LIFECYCLE_THRESHOLDS.items():
            v = spec[key]
            numeric = isinstance(v, int | float) and not isinstance(v, bool)
            if not numeric or (kind is int and v != int(v)) or v < lowest:
                what = "a whole number" if kind is int else "a number"
                raise self.fail(f"lifecycle.{key}", f"must be {what} >= {lowest}, not {v!r}")
            values[key] = kind(v)
        return Lifecycle(**values)

    def _meanings(
        self, spec: Any, where: str, meanings: tuple[str, ...]
    ) -> dict[str, tuple[str, ...]]:
        self._keys(spec, meanings, where, required=meanings)
        return {m: self._names(spec[m], f"{where}.{m}") for m in meanings}
