"""The source catalog: which objects a company's systems deliver, as data (catalog.yaml).

One entry per source object says where its extracts land, their file format, how its fields map
onto typed columns with their rules, which column identifies a record and what the object means
to the layers above (its role, checks/roles.py). The raw layer's contracts, landing assets and
sensors are generated from it when the code location is built; nothing in code names an object.

Every mistake is found when the catalog is loaded, before any data is read, and named as
`<file>: object <system>/<object>: field <field>: <what>`, so the code location does not load
with a catalog it would misread.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from checks.contract import ARROW_TYPES, SQL_TYPES, TIME_UNITS, Column
from checks.raw import (
    CADENCE_PERIODS,
    DEFAULT_QUARANTINE_THRESHOLD,
    FORMATS,
    INGEST_LOG,
    LINEAGE,
    QUARANTINE,
    Cadence,
    CsvDialect,
    FileFormat,
    RawContract,
    raw_contract,
)
from checks.roles import ATTRIBUTE_ROLES, IDENTITY_COLUMNS, ROLES

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A JSON source path: dotted keys, each optionally followed by list indexes (`items.data[0].id`).
PATH_SEGMENT = re.compile(r"^[^.\[\]]+(\[\d+\])*$")
TOP_KEYS = ("version", "objects")
OBJECT_KEYS = (
    "system",
    "object",
    "description",
    "landing",
    "table",
    "format",
    "csv",
    "records_path",
    "cadence",
    "quarantine_threshold",
    "partition_by",
    "id",
    "subject_key",
    "timestamps",
    "columns",
    "role",
    "connector",
)
# `connector:` pulls the object from a vendor's API (assets/connectors/) instead of waiting
# for files: `vendor` names a module of resources/vendors/, `object` the vendor's object (default:
# this object's name), `start` the first cursor value (ISO-8601; default: a full first pull).
CONNECTOR_KEYS = ("vendor", "object", "start")
CONNECTOR_FORMATS = ("json_array", "jsonl")
COLUMN_KEYS = (
    "name",
    "source",
    "type",
    "required",
    "accepted",
    "min",
    "max",
    "future",
    "earliest",
    "pii",
    "identifies_person",
    "unit",
    "scale",
    "description",
)
CSV_KEYS = ("delimiter", "quote", "escape", "header")
TIMESTAMP_KEYS = ("created", "updated")
ROLE_KEYS = ("name", "fields", "refs", "attributes")
REF_KEYS = ("expr", "to")
CADENCES = tuple(CADENCE_PERIODS)
LINEAGE_NAMES = tuple(c.name for c in LINEAGE)
RESERVED_TABLES = (QUARANTINE.table, INGEST_LOG.table)  # the raw layer's own tables


class CatalogError(ValueError):
    """A mistake in a source catalog, named by file, object and field."""


@dataclass(frozen=True)
class RoleRef:
    """A reference to another object's record: `expr` over this object's raw table gives the
    other object's `id`; `to` is that object, `<system>/<object>`."""

    expr: str
    to: str


@dataclass(frozen=True)
class RoleMapping:
    role: str  # one of ROLES (checks/roles.py)
    # role field -> column name or SQL expression over the raw table; list fields (event
    # properties, signal scores) -> a tuple of column names. Filled in at load: `id` (the
    # object's id column) and `created_at`/`updated_at` (its timestamps) unless mapped.
    fields: dict[str, str | tuple[str, ...]]
    refs: dict[str, tuple[RoleRef, ...]]  # ref field -> references, tried in order
    options: dict[str, Any]  # role options (anchor, workspace, ...)
    # identity attributes beyond the role's fields (person and company roles): name -> column
    # or SQL; identity compares and blocks on them by name (assets/entities/records.py).
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Connector:
    """Where a connected object is pulled from: a vendor module and the vendor's object."""

    vendor: str
    object: str
    start: str | None = None


@dataclass(frozen=True)
class SourceObject:
    system: str
    object: str
    description: str
    landing: str
    table: str
    format: FileFormat
    csv: CsvDialect
    records_path: str | None
    cadence: Cadence
    quarantine_threshold: float
    partition_by: tuple[str, ...]
    id: str
    subject_key: str | None
    created: str | None
    updated: str | None
    columns: tuple[Column, ...]
    role: RoleMapping | None
    connector: Connector | None = None

    @property
    def source(self) -> str:
        return f"{self.system}/{self.object}"

    @functools.cached_property
    def contract(self) -> RawContract:
        """The raw table's contract, generated from this entry."""
        return raw_contract(
            self.system,
            self.object,
            self.format,
            self.description,
            *self.columns,
            table=self.table,
            partition_by=self.partition_by,
            cadence=self.cadence,
            subject_key=self.subject_key,
            quarantine_threshold=self.quarantine_threshold,
            landing=self.landing,
            csv=self.csv,
            records_path=self.records_path,
            id_column=self.id,
            created=self.created,
            updated=self.updated,
        )


@dataclass(frozen=True)
class Catalog:
    path: Path
    objects: tuple[SourceObject, ...]
    _by_source: dict[str, SourceObject] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_source.update({o.source: o for o in self.objects})

    def object(self, source: str) -> SourceObject:
        """The object `<system>/<object>`; a name the catalog does not hold is a CatalogError."""
        try:
            return self._by_source[source]
        except KeyError:
            known = ", ".join(self._by_source)
            raise CatalogError(f"{self.path}: no object {source!r} (known: {known})") from None

    def by_role(self, role: str) -> tuple[SourceObject, ...]:
        """Objects of a role in catalog order, which is their trust order."""
        if role not in ROLES:
            raise CatalogError(f"{self.path}: unknown role {role!r}")
        return tuple(o for o in self.objects if o.role is not None and o.role.role == role)

    def raw_contracts(self) -> tuple[RawContract, ...]:
        return tuple(o.contract for o in self.objects)


def load_catalog(path: Path | str | None = None) -> Catalog:
    """The catalog at `path` (None: the active stack's, resources/settings.py), validated.

    Cached by path and modification time: the code location and every run read it often, and
    an edited file is read again.
    """
    from resources import settings  # settings read at call time, never at import

    p = Path(path).expanduser().resolve() if path is not None else settings.catalog_path()
    try:
        mtime = p.stat().st_mtime_ns
    except OSError as exc:
        raise CatalogError(
            f"{p}: field objects: cannot read the source catalog ({exc.strerror}); "
            f"{settings.STACK} names the stack, {settings.SOURCE_CATALOG} the file"
        ) from None
    return _load(p, mtime)


def raw_contracts(catalog: Catalog | None = None) -> tuple[RawContract, ...]:
    """The raw contracts of `catalog` (None: the active one), in catalog order."""
    return (catalog or load_catalog()).raw_contracts()


@functools.lru_cache(maxsize=16)
def _load(path: Path, mtime_ns: int) -> Catalog:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: field objects: not valid YAML ({exc})") from None
    return _Reader(path).catalog(doc)


class _Reader:
    """Validates one catalog document; every error names the file, object and field."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = ""

    def fail(self, field_name: str, what: str) -> CatalogError:
        return CatalogError(f"{self.path}: {self.where}field {field_name}: {what}")

    # -- file ------------------------------------------------------------------------------

    def catalog(self, doc: Any) -> Catalog:
        if not isinstance(doc, dict):
            raise self.fail("objects", "the catalog must be a mapping with `version` and `objects`")
        self._keys(doc, TOP_KEYS, "")
        if doc.get("version") != 1:
            raise self.fail("version", f"must be 1, got {doc.get('version')!r}")
        entries = doc.get("objects")
        if not isinstance(entries, list) or not entries:
            raise self.fail("objects", "must be a non-empty list of objects")
        objects = [self._object(i, e) for i, e in enumerate(entries)]
        self._unique(objects)
        by_source = {o.source: o for o in objects}
        out = []
        for entry, o in zip(entries, objects, strict=True):
            self.where = f"object {o.source}: "
            role = self._role(entry.get("role"), o, by_source, entries) if "role" in entry else None
            out.append(_with_role(o, role))
        self.where = ""
        return Catalog(self.path, tuple(out))

    def _unique(self, objects: list[SourceObject]) -> None:
        keys = (  # what must be one object's alone: (field, value, what it is)
            ("object", lambda o: o.source, "object"),
            ("table", lambda o: o.table, "raw table"),
            ("landing", lambda o: o.landing, "landing folder"),
            ("system", lambda o: f"landing/{o.system}_{o.object}", "landing asset"),
        )
        for name, key, what in keys:
            seen: dict[str, str] = {}
            for o in objects:
                value = key(o)
                if value in seen:
                    self.where = f"object {o.source}: "
                    raise self.fail(name, f"{value!r} is also the {what} of {seen[value]}")
                seen[value] = o.source
        lands = {o.landing: o.source for o in objects}
        for o in objects:  # one landing folder inside another would read its files twice
            for other, src in lands.items():
                if other != o.landing and o.landing.startswith(other + "/"):
                    self.where = f"object {o.source}: "
                    raise self.fail("landing", f"{o.landing!r} lies inside {src}'s {other!r}")

    # -- objects ---------------------------------------------------------------------------

    def _object(self, index: int, e: Any) -> SourceObject:
        self.where = f"object #{index + 1}: "
        if not isinstance(e, dict):
            raise self.fail("objects", "each object must be a mapping")
        system = self._name(e, "system")
        obj = self._name(e, "object")
        self.where = f"object {system}/{obj}: "
        self._keys(e, OBJECT_KEYS, "")
        description = e.get("description")
        if not isinstance(description, str) or not description.strip():
            raise self.fail("description", "required: one paragraph saying what the object is")
        landing = self._text(e, "landing", f"{system}/{obj}")
        if landing.startswith("/") or any(p in ("", ".", "..") for p in landing.split("/")):
            raise self.fail("landing", f"{landing!r} must be a relative folder path")
        if landing.split("/")[0].startswith(("_", ".")):
            raise self.fail("landing", f"{landing!r}: folders starting _ or . are not read")
        table = self._text(e, "table", f"{system}_{obj}")
        if not NAME.match(table):
            raise self.fail("table", f"{table!r} must match {NAME.pattern}")
        if table in RESERVED_TABLES:
            raise self.fail("table", f"{table!r} is the raw layer's own table")
        fmt = self._choice(e, "format", FORMATS, None)
        csv = self._csv(e.get("csv"), fmt)
        records_path = e.get("records_path")
        if records_path is not None:
            if fmt != "json_array":
                raise self.fail("records_path", f"only for format json_array, not {fmt}")
            if not isinstance(records_path, str) or not all(records_path.split(".")):
                raise self.fail("records_path", f"{records_path!r} must be a dotted key path")
        cadence = self._choice(e, "cadence", CADENCES, "daily")
        threshold = e.get("quarantine_threshold", DEFAULT_QUARANTINE_THRESHOLD)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise self.fail("quarantine_threshold", f"{threshold!r} is not a number")
        if not 0 <= threshold <= 1:
            raise self.fail("quarantine_threshold", f"{threshold!r} must lie in [0, 1]")
        columns = self._columns(e.get("columns"), fmt)
        names = {c.name: c for c in columns}
        partition_by = e.get("partition_by", [])
        if not isinstance(partition_by, list) or not all(isinstance(p, str) for p in partition_by):
            raise self.fail("partition_by", "must be a list of column names")
        for p in partition_by:
            if p not in names and p not in LINEAGE_NAMES:
                raise self.fail("partition_by", f"{p!r} is no declared or lineage column")
        ident = self._column_ref(e, "id", names, required=True)
        subject_key = self._column_ref(e, "subject_key", names)
        created, updated = self._timestamps(e.get("timestamps"), names)
        return SourceObject(
            system=system,
            object=obj,
            description=" ".join(description.split()),
            landing=landing,
            table=table,
            format=fmt,
            csv=csv,
            records_path=records_path,
            cadence=cadence,
            quarantine_threshold=float(threshold),
            partition_by=tuple(partition_by),
            id=ident,
            subject_key=subject_key,
            created=created,
            updated=updated,
            columns=columns,
            role=None,
            connector=self._connector(e.get("connector"), obj, fmt) if "connector" in e else None,
        )

    def _connector(self, value: Any, obj: str, fmt: str) -> Connector:
        if not isinstance(value, dict):
            raise self.fail("connector", "must be a mapping (vendor, object, start)")
        self._keys(value, CONNECTOR_KEYS, "connector.")
        from resources.vendors import VENDORS  # only catalogs that declare a connector read it

        vendor = value.get("vendor")
        if vendor not in VENDORS:
            raise self.fail(
                "connector.vendor", f"{vendor!r} is no known vendor (known: {', '.join(VENDORS)})"
            )
        name = value.get("object", obj)
        known = VENDORS[vendor].OBJECTS
        if name not in known:
            raise self.fail(
                "connector.object",
                f"{vendor} has no object {name!r} here (known: {', '.join(known)})",
            )
        if fmt not in CONNECTOR_FORMATS:
            raise self.fail(
                "connector", f"a connector lands {' or '.join(CONNECTOR_FORMATS)}, not {fmt}"
            )
        start = value.get("start")
        if start is not None:
            if isinstance(start, dt.date | dt.datetime):
                start = start.isoformat()
            try:
                dt.datetime.fromisoformat(str(start).replace("Z", "+00:00"))
            except ValueError:
                raise self.fail("connector.start", f"{start!r} is no ISO-8601 time") from None
            start = str(start)
        return Connector(vendor=vendor, object=name, start=start)

    def _csv(self, value: Any, fmt: str) -> CsvDialect:
        if value is None:
            return CsvDialect()
        if fmt != "csv":
            raise self.fail("csv", f"only for format csv, not {fmt}")
        if not isinstance(value, dict):
            raise self.fail("csv", "must be a mapping (delimiter, quote, escape, header)")
        self._keys(value, CSV_KEYS, "csv.")
        out = CsvDialect()
        for key in ("delimiter", "quote", "escape"):
            if key not in value:
                continue
            char = value[key]
            if char is None and key != "delimiter":
                continue
            if not isinstance(char, str) or len(char) != 1 or char in "\r\n":
                raise self.fail(f"csv.{key}", f"{char!r} must be one character (not a newline)")
        header = value.get("header", True)
        if not isinstance(header, bool):
            raise self.fail("csv.header", f"{header!r} must be true or false")
        out = CsvDialect(
            delimiter=value.get("delimiter", out.delimiter),
            quote=value.get("quote", out.quote),
            escape=value.get("escape", out.escape),
            header=header,
        )
        if out.delimiter in (out.quote, out.escape):
            raise self.fail("csv.delimiter", "must differ from the quote and escape characters")
        return out

    def _columns(self, value: Any, fmt: str) -> tuple[Column, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("columns", "must be a non-empty list of columns")
        out: list[Column] = []
        seen: set[str] = set()
        for i, c in enumerate(value):
            if not isinstance(c, dict):
                raise self.fail(f"columns[{i}]", "each column must be a mapping")
            name = c.get("name")
            if not isinstance(name, str) or not NAME.match(name):
                raise self.fail(f"columns[{i}].name", f"{name!r} must match {NAME.pattern}")
            if name in seen:
                raise self.fail(f"columns.{name}", "declared twice")
            seen.add(name)
            out.append(self._column(c, name, fmt))
        return tuple(out)

    def _column(self, c: dict, name: str, fmt: str) -> Column:
        at = f"columns.{name}."
        self._keys(c, COLUMN_KEYS, at)
        ctype = self._choice(c, "type", tuple(ARROW_TYPES), "string", at)
        source = c.get("source")
        if source is not None:
            if not isinstance(source, str) or not source:
                raise self.fail(at + "source", f"{source!r} must be a field name")
            if fmt in ("json_array", "jsonl") and not all(
                PATH_SEGMENT.match(s) for s in source.split(".")
            ):
                raise self.fail(at + "source", f"{source!r} is not a dotted path (a.b[0].c)")
        flags = {k: c.get(k, False) for k in ("required", "future", "pii", "identifies_person")}
        for k, v in flags.items():
            if not isinstance(v, bool):
                raise self.fail(at + k, f"{v!r} must be true or false")
        accepted = c.get("accepted")
        if accepted is not None:
            if ctype != "string":
                raise self.fail(at + "accepted", f"only for string columns, not {ctype}")
            if not isinstance(accepted, list) or not accepted:
                raise self.fail(at + "accepted", "must be a non-empty list of values")
            if not all(isinstance(a, str) for a in accepted):
                raise self.fail(at + "accepted", "values must be strings (quote them)")
            accepted = tuple(accepted)
        bounds = {k: c.get(k) for k in ("min", "max")}
        for k, v in bounds.items():
            if v is None:
                continue
            if ctype not in ("int", "float"):
                raise self.fail(at + k, f"only for int and float columns, not {ctype}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise self.fail(at + k, f"{v!r} is not a finite number")
        if None not in bounds.values() and bounds["min"] > bounds["max"]:
            raise self.fail(at + "min", f"{bounds['min']} is above max {bounds['max']}")
        if flags["future"] and ctype not in ("date", "timestamp"):
            raise self.fail(at + "future", f"only for date and timestamp columns, not {ctype}")
        earliest = c.get("earliest")
        if earliest is not None:
            if ctype not in ("date", "timestamp"):
                raise self.fail(at + "earliest", f"only for dates and timestamps, not {ctype}")
            if isinstance(earliest, dt.datetime) or not isinstance(earliest, dt.date):
                raise self.fail(at + "earliest", f"{earliest!r} is not a date (YYYY-MM-DD)")
        unit = c.get("unit")
        if unit is not None:
            if ctype != "timestamp":
                raise self.fail(at + "unit", f"only for timestamp columns, not {ctype}")
            if unit not in TIME_UNITS:
                raise self.fail(at + "unit", f"{unit!r} is not one of {', '.join(TIME_UNITS)}")
        scale = c.get("scale")
        if scale is not None:
            if ctype not in ("int", "float"):
                raise self.fail(at + "scale", f"only for int and float columns, not {ctype}")
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
                raise self.fail(at + "scale", f"{scale!r} must be a positive number")
            if ctype == "int" and scale != int(scale):
                raise self.fail(at + "scale", f"{scale!r}: an int column takes a whole scale")
        description = c.get("description", "")
        if not isinstance(description, str):
            raise self.fail(at + "description", "must be text")
        return Column(
            name,
            ctype,
            " ".join(description.split()),
            source=source if source != name else None,
            required=flags["required"],
            accepted=accepted,
            min=bounds["min"],
            max=bounds["max"],
            pii=flags["pii"],
            identifies_person=flags["identifies_person"],
            future=flags["future"],
            earliest=earliest,
            unit=None if unit == "iso" else unit,
            scale=scale,
        )

    def _timestamps(self, value: Any, names: dict[str, Column]) -> tuple[str | None, str | None]:
        if value is None:
            return None, None
        if not isinstance(value, dict):
            raise self.fail("timestamps", "must be a mapping (created, updated)")
        self._keys(value, TIMESTAMP_KEYS, "timestamps.")
        out = []
        for key in TIMESTAMP_KEYS:
            col = value.get(key)
            if col is None:
                out.append(None)
                continue
            if col not in names:
                raise self.fail(f"timestamps.{key}", f"{col!r} names no declared column")
            if names[col].type not in ("date", "timestamp"):
                raise self.fail(f"timestamps.{key}", f"{col!r} is {names[col].type}, not a time")
            out.append(col)
        return out[0], out[1]

    # -- roles -----------------------------------------------------------------------------

    def _role(
        self,
        value: Any,
        o: SourceObject,
        by_source: dict[str, SourceObject],
        entries: list[dict],
    ) -> RoleMapping | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail("role", "must be a mapping with `name` and `fields`")
        name = value.get("name")
        if name not in ROLES:
            raise self.fail("role.name", f"{name!r} is not one of {', '.join(ROLES)}")
        spec = ROLES[name]
        self._keys(value, (*ROLE_KEYS, *spec.options), "role.")
        options = {k: value[k] for k in spec.options if k in value}
        for k, v in options.items():
            if k in spec.list_options:  # e.g. trusted_for: a list of field names
                if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                    raise self.fail(f"role.{k}", f"{v!r} must be a list of field names")
                options[k] = tuple(v)
            elif not isinstance(v, bool):
                raise self.fail(f"role.{k}", f"{v!r} must be true or false")
        fields_in = value.get("fields", {}) or {}
        if not isinstance(fields_in, dict):
            raise self.fail("role.fields", "must be a mapping of role field -> column or SQL")
        self._keys(fields_in, spec.fields, "role.fields.", what=f"field of role {name}")
        mapped: dict[str, str | tuple[str, ...]] = {}
        names = {c.name for c in o.columns}
        for key, expr in fields_in.items():
            at = f"role.fields.{key}"
            if key in spec.lists:
                if not isinstance(expr, list) or not all(isinstance(x, str) for x in expr):
                    raise self.fail(at, "must be a list of column names")
                for x in expr:
                    if x not in names:
                        raise self.fail(at, f"{x!r} names no declared column")
                mapped[key] = tuple(expr)
                continue
            if not isinstance(expr, str) or not expr.strip():
                raise self.fail(at, f"{expr!r} must be a column name or an SQL expression")
            self._binds(o, expr, at)
            mapped[key] = expr
        for key in spec.required:
            if key not in mapped:
                raise self.fail(f"role.fields.{key}", f"required by role {name}")
        refs = self._refs(value.get("refs"), name, o, by_source, entries)
        attributes = self._attributes(value.get("attributes"), name, o)
        # One place for the defaults: the record's id, and its declared timestamps.
        mapped.setdefault("id", o.id)
        for key, column in (("created_at", o.created), ("updated_at", o.updated)):
            if column and key in spec.fields:
                mapped.setdefault(key, column)
        return RoleMapping(name, mapped, refs, options, attributes)

    def _attributes(self, value: Any, role: str, o: SourceObject) -> dict[str, str]:
        """`role.attributes`: more identity fields, named by the catalog. A name must not hide
        a role field or a column the identity step derives, and its SQL must bind."""
        if value is None:
            return {}
        if role not in ATTRIBUTE_ROLES:
            raise self.fail(
                "role.attributes", f"only roles {', '.join(ATTRIBUTE_ROLES)} take attributes"
            )
        if not isinstance(value, dict):
            raise self.fail("role.attributes", "must be a mapping of name -> column or SQL")
        out: dict[str, str] = {}
        for key, expr in value.items():
            at = f"role.attributes.{key}"
            if not isinstance(key, str) or not NAME.match(key):
                raise self.fail(at, f"{key!r} must match {NAME.pattern}")
            if key in ROLES[role].fields or key in IDENTITY_COLUMNS:
                raise self.fail(at, f"{key!r} is a field of role {role} or an identity column")
            if not isinstance(expr, str) or not expr.strip():
                raise self.fail(at, f"{expr!r} must be a column name or an SQL expression")
            self._binds(o, expr, at)
            out[key] = expr
        return out

    def _refs(
        self,
        value: Any,
        role: str,
        o: SourceObject,
        by_source: dict[str, SourceObject],
        entries: list[dict],
    ) -> dict[str, tuple[RoleRef, ...]]:
        spec = ROLES[role]
        value = value or {}
        if not isinstance(value, dict):
            raise self.fail("role.refs", "must be a mapping of ref field -> [{expr, to}]")
        self._keys(value, spec.refs, "role.refs.", what=f"ref of role {role}")
        out: dict[str, tuple[RoleRef, ...]] = {}
        for key, items in value.items():
            at = f"role.refs.{key}"
            items = [items] if isinstance(items, dict) else items
            if not isinstance(items, list) or not items:
                raise self.fail(at, "must be a list of {expr, to}")
            refs = []
            for item in items:
                if not isinstance(item, dict):
                    raise self.fail(at, "each reference must be a mapping {expr, to}")
                self._keys(item, REF_KEYS, at + ".")
                expr, to = item.get("expr"), item.get("to")
                if not isinstance(expr, str) or not expr.strip():
                    raise self.fail(at + ".expr", "required: a column or SQL expression")
                self._binds(o, expr, at + ".expr")
                if to not in by_source:
                    raise self.fail(at + ".to", f"{to!r} names no object of the catalog")
                want = spec.ref_role(key, role)
                target = next(e for e in entries if f"{e['system']}/{e['object']}" == to)
                got = (target.get("role") or {}).get("name") if isinstance(target, dict) else None
                if want in ROLES and got != want:
                    raise self.fail(at + ".to", f"{to} has role {got or 'none'}, not {want}")
                refs.append(RoleRef(expr, to))
            out[key] = tuple(refs)
        for key in spec.required_refs:
            if key not in out:
                raise self.fail(f"role.refs.{key}", f"required by role {role}")
        return out

    def _binds(self, o: SourceObject, expr: str, at: str) -> None:
        """An expression must bind against the object's raw table (declared + lineage columns):
        prepared in DuckDB over an empty table of that schema, so a typo fails at load."""
        if expr in {c.name for c in o.columns} or expr in LINEAGE_NAMES:
            return
        error = _bind_error(_schema_sql(o), expr)
        if error:
            raise self.fail(at, f"{expr!r} does not bind against {o.table}: {error}")

    # -- helpers ---------------------------------------------------------------------------

    def _keys(self, value: dict, allowed: tuple[str, ...], at: str, what: str = "key") -> None:
        for key in value:
            if key not in allowed:
                raise self.fail(f"{at}{key}", f"unknown {what} (known: {', '.join(allowed)})")

    def _column_ref(
        self, e: dict, key: str, names: dict[str, Column], required: bool = False
    ) -> str | None:
        value = e.get(key)
        if value is None:
            if required:
                raise self.fail(key, "required: the column that identifies a record")
            return None
        if value not in names:
            raise self.fail(key, f"{value!r} names no declared column")
        return value

    def _name(self, e: dict, key: str) -> str:
        value = e.get(key)
        if not isinstance(value, str) or not NAME.match(value):
            raise self.fail(key, f"{value!r} must match {NAME.pattern}")
        return value

    def _text(self, e: dict, key: str, default: str) -> str:
        value = e.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"{value!r} must be text")
        return value

    def _choice(
        self, e: Mapping, key: str, allowed: tuple[str, ...], default: str | None, at: str = ""
    ) -> Any:
        value = e.get(key, default)
        if value not in allowed:
            raise self.fail(at + key, f"{value!r} is not one of {', '.join(allowed)}")
        return value


def _with_role(o: SourceObject, role: RoleMapping | None) -> SourceObject:
    return replace(o, role=role)


def _schema_sql(o: SourceObject) -> str:
    cols = [*o.columns, *LINEAGE]
    return ", ".join(f'"{c.name}" {SQL_TYPES[c.type]}' for c in cols)


@functools.lru_cache(maxsize=1024)
def _bind_error(schema: str, expr: str) -> str | None:
    """DuckDB's complaint about `SELECT expr FROM <empty table>`, or None when it binds."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"CREATE TEMP TABLE t ({schema})")
        con.execute(f"SELECT {expr} FROM t LIMIT 0")
        return None
    except duckdb.Error as exc:
        return str(exc).splitlines()[0]
    finally:
        con.close()
