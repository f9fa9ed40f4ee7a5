"""The event mapping and the SQL that turns raw rows into canonical events.

Which raw rows are events is derived from the source catalog's roles (assets/roles.py
`event_sources`): each record role emits its platform events (checks/roles.py), an event stream
emits its rows under the vocabulary's names. events.yaml keeps what is not a source: how late an
event may arrive. One query per source, all with the same output columns, so nothing downstream
knows which system an event came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from checks.sources import Catalog, load_catalog
from checks.vocabulary import Vocabulary, load_vocabulary
from resources.settings import EVENT_MAPPING as MAPPING_PATH
from resources.settings import read
from resources.sql import literal

DEFAULT_MAPPING = Path(__file__).with_name("events.yaml")


@dataclass(frozen=True)
class Ref:
    expr: str
    to: str  # the record source the id belongs to, `<system>/<object>`


@dataclass(frozen=True)
class RecordEvent:
    name: str
    at: str  # SQL over the raw table
    when: str | None = None
    changed: str | None = None  # SQL of the value whose change fires the event
    changed_key: str | None = None  # its name: the property `previous_<changed_key>`


@dataclass(frozen=True)
class EventSource:
    source: str
    table: str
    id: str
    account: tuple[Ref, ...]  # first reference that holds a value
    person: tuple[Ref, ...]
    properties: tuple[tuple[str, str], ...]  # (key, SQL over the raw table)
    scope: str = "account"
    at: str | None = None  # streams
    name_from: str | None = None  # its names are the vocabulary's (checks/vocabulary.py)
    order_by: str | None = None  # records
    events: tuple[RecordEvent, ...] = ()

    @property
    def is_stream(self) -> bool:
        return self.name_from is not None

    @property
    def system(self) -> str:
        return self.source.split("/", 1)[0]

    @property
    def object(self) -> str:
        return self.source.split("/", 1)[1]

    def event_names(self, vocabulary: Vocabulary) -> list[str]:
        """The names it writes: a stream's are the vocabulary's (plus any it does not know)."""
        return list(vocabulary.event_names) if self.is_stream else [e.name for e in self.events]


@dataclass(frozen=True)
class Mapping:
    sources: tuple[EventSource, ...]
    late_days: int = 2
    # The vocabulary read with the mapping: one run names its stream events by one version.
    vocabulary: Vocabulary = field(default_factory=load_vocabulary)

    @property
    def event_names(self) -> list[str]:
        """Every name the platform knows: a stream event named otherwise is an unknown name."""
        return sorted({n for s in self.sources for n in s.event_names(self.vocabulary)})

    @property
    def person_scoped(self) -> list[str]:
        return sorted(
            {n for s in self.sources if s.scope == "person" for n in s.event_names(self.vocabulary)}
        )

    def tables(self) -> set[str]:
        return {s.table for s in self.sources}


def mapping_path() -> Path:
    """The mapping file: `LAKEHOUSE_EVENT_MAPPING`, read when asked (never at import)."""
    return Path(read(MAPPING_PATH) or DEFAULT_MAPPING)


def load_mapping(
    path: str | Path | None = None,
    catalog: Catalog | None = None,
    vocabulary: Vocabulary | None = None,
) -> Mapping:
    """The event mapping: its settings at `path` (default: `mapping_path()`), its sources from
    `catalog` and `vocabulary` (default: the active ones), read when called: when the code
    location is built and when a run or a sensor tick starts."""
    from assets.roles import event_sources

    path = Path(path) if path else mapping_path()
    if not path.is_file():
        raise FileNotFoundError(f"event mapping {path} not found (set {MAPPING_PATH} to a file)")
    spec = yaml.safe_load(path.read_text()) or {}
    if "sources" in spec:
        raise ValueError(
            f"{path}: field sources: event sources come from the catalog's roles now "
            "(catalog.yaml `role:`); remove it"
        )
    vocabulary = vocabulary or load_vocabulary()
    return Mapping(
        sources=event_sources(catalog or load_catalog(), vocabulary),
        late_days=int(spec.get("late_days", 2)),
        vocabulary=vocabulary,
    )


def view(table: str) -> str:
    return "v_" + table.replace("/", "__")


def _ref_sql(refs: tuple[Ref, ...]) -> str:
    from assets.roles import ref_key_sql

    return ref_key_sql(refs)


def _props(src: EventSource, extra: str = "") -> str:
    pairs = [f"{literal(k)}, ({expr})" for k, expr in src.properties]
    if extra:
        pairs.append(extra)
    return f"to_json(json_object({', '.join(pairs)}))::VARCHAR" if pairs else "'{}'"


def source_sql(
    src: EventSource,
    first: str,
    last: str,
    late_days: int,
    only: str | None = None,
    vocabulary: Vocabulary | None = None,
) -> str:
    """Events of `src` whose UTC date lies in [first, last] (ISO dates), one row per event id:
    event_id, event_name, occurred_at, account_ref, person_ref, properties, _ingested_at.
    `only` (streams): an extra condition on raw rows, pushed down to the scan. A stream's names
    are resolved by `vocabulary` (default: the active one); a name it does not know is kept,
    snake_cased."""
    since = f"AND ({only})" if only else ""
    cols = f"""{literal(src.system)} AS source_system, {literal(src.object)} AS source_object,
        {literal(src.scope)} AS scope,
        {_ref_sql(src.account)} AS account_ref, {_ref_sql(src.person)} AS person_ref"""
    lo, hi = literal(first), literal(last)
    in_range = f"CAST(occurred_at AS DATE) BETWEEN DATE {lo} AND DATE {hi}"
    if src.is_stream:
        name = (vocabulary or load_vocabulary()).event_name_sql(src.name_from or "NULL")
        # A stream's row never changes: prune by extract date before anything else.
        return f"""
            SELECT {literal(src.source + ":")} || source_id AS event_id, * EXCLUDE (_rn) FROM (
                SELECT ({src.id})::VARCHAR AS source_id,
                    {name} AS event_name,
                    ({src.at})::TIMESTAMPTZ AS occurred_at, {cols}, {_props(src)} AS properties,
                    _ingested_at, row_number() OVER (PARTITION BY ({src.id})::VARCHAR
                        ORDER BY _ingested_at DESC, _line DESC) AS _rn
                FROM {view(src.table)}
                WHERE _extract_date >= DATE {lo} - INTERVAL {int(late_days)} DAY {since}
                  AND {src.at} >= TIMESTAMPTZ {literal(f"{first} 00:00:00+00")}
                  AND {src.at} < TIMESTAMPTZ {literal(f"{last} 00:00:00+00")} + INTERVAL 1 DAY)
            WHERE _rn = 1 AND event_name IS NOT NULL AND {in_range}"""
    versions = f"""SELECT *, ({src.id})::VARCHAR AS source_id, row_number() OVER (
            PARTITION BY ({src.id})::VARCHAR ORDER BY {src.order_by} DESC, _extract_date DESC,
            _line DESC) AS _rn FROM {view(src.table)}"""
    parts = []
    for ev in src.events:
        cond = f"AND ({ev.when})" if ev.when else ""
        if ev.changed:
            previous = f"{literal('previous_' + (ev.changed_key or 'value'))}, _previous"
            parts.append(
                f"""SELECT {literal(src.source + ":")} || source_id || {literal(f":{ev.name}:")}
                        || epoch(({ev.at})::TIMESTAMPTZ)::BIGINT AS event_id, source_id,
                    {literal(ev.name)} AS event_name, ({ev.at})::TIMESTAMPTZ AS occurred_at, {cols},
                    {_props(src, previous)} AS properties,
                    _ingested_at
                FROM (SELECT *, lag({ev.changed}) OVER (PARTITION BY source_id
                        ORDER BY _rn DESC) AS _previous FROM ({versions}))
                WHERE _previous IS DISTINCT FROM ({ev.changed}) AND _previous IS NOT NULL
                  AND ({ev.at}) IS NOT NULL {cond}
                QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY _rn) = 1"""
            )
        else:
            # The event exists while the latest version says so (its time, whom it concerns);
            # its properties are those of the first version that said so: what was true when
            # it happened, so a later status change does not rewrite an old day.
            parts.append(
                f"""SELECT {literal(src.source + ":")} || source_id || {literal(":" + ev.name)}
                    AS event_id, source_id, {literal(ev.name)} AS event_name,
                    ({ev.at})::TIMESTAMPTZ AS occurred_at, {cols},
                    _first_props AS properties, _ingested_at
                FROM (SELECT *, last_value(_props) OVER (PARTITION BY source_id ORDER BY _rn
                        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS _first_props
                      FROM (SELECT *, {_props(src)} AS _props FROM ({versions})
                            WHERE ({ev.at}) IS NOT NULL {cond}))
                WHERE _rn = 1"""
            )
    union = " UNION ALL ".join(f"({p})" for p in parts)
    return f"SELECT * FROM ({union}) WHERE source_id IS NOT NULL AND {in_range}"
