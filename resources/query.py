"""Every published lake table as a DuckDB view named `layer.table`, offline.

The views read Delta tables through delta-rs as lazy Arrow datasets (DuckDB pushes projections
and filters into them), never through DuckDB's `delta` extension, which DuckDB would download
on first use. Only the tables a query names are opened; a query naming none (a catalog query,
the interactive shell) gets them all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import pyarrow.fs as pafs
from dagster import EnvVar
from deltalake import DeltaTable

from resources.duckdb import DEFAULT_MEMORY_LIMIT, connect
from resources.lake import LakeResource, is_local
from resources.settings import LAKE_ROOT, lake_root

DELTA_LOG = "_delta_log"
_HIDDEN = (".", "_")  # lake folders that hold no layer (.secrets, .dagster, _truth, ...)


class LakeError(RuntimeError):
    """A problem the user can fix (no lake yet, an unknown table, a query DuckDB refused):
    reported in a sentence, never as a traceback."""


@dataclass(frozen=True, order=True)
class TableRef:
    layer: str
    table: str

    @property
    def name(self) -> str:
        return f"{self.layer}.{self.table}"

    @property
    def helper(self) -> str:
        """The registered Arrow dataset behind the view (DuckDB cannot register into a schema)."""
        return f"_lake__{self.layer}__{self.table}"

    @classmethod
    def parse(cls, name: str) -> TableRef:
        layer, dot, table = name.replace("/", ".").partition(".")
        if not dot or not layer or not table:
            raise LakeError(
                f"{name!r}: name a table as layer.table, e.g. c360.customer_360_accounts"
            )
        return cls(layer, table)


def lake_from_env(root: str | None = None) -> LakeResource:
    """The lake the platform uses: `LAKEHOUSE_LAKE_ROOT` (else the embedded `lake/`), with the
    distributed profile's object-store options (resources/profile.py) when it is not on disk."""
    from resources.profile import storage_options

    root = root or lake_root()
    options: dict[str, str] = {}
    if not is_local(root):
        options = {
            key: value.get_value() if isinstance(value, EnvVar) else value
            for key, value in storage_options().items()
        }
        options = {k: v for k, v in options.items() if v is not None}
    return LakeResource(root=root, storage_options=options)


def discover(lake: LakeResource) -> list[TableRef]:
    """Every Delta table at `<root>/<layer>/<table>`, sorted; LakeError when there is none."""
    root = lake.root.rstrip("/")
    if is_local(root):
        root = os.path.abspath(root.removeprefix("file://"))
        found = _local_tables(root)
    else:
        found = _store_tables(lake)
    if not found:
        raise LakeError(
            f"no lake tables under {root}: run `make demo` first, or point {LAKE_ROOT} "
            "(or --lake) at a lake"
        )
    return sorted(found)


def _local_tables(root: str) -> list[TableRef]:
    out = []
    for layer in _subdirs(root):
        for table in _subdirs(os.path.join(root, layer)):
            if os.path.isdir(os.path.join(root, layer, table, DELTA_LOG)):
                out.append(TableRef(layer, table))
    return out


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [
                e.name
                for e in entries
                if e.is_dir(follow_symlinks=False) and not e.name.startswith(_HIDDEN)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _store_tables(lake: LakeResource) -> list[TableRef]:
    """Two levels of listing on the object store, then a Delta log check per candidate."""
    fs, base = _filesystem(lake)

    def dirs(path: str) -> list[str]:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return [
            i.base_name
            for i in infos
            if i.type == pafs.FileType.Directory and not i.base_name.startswith(_HIDDEN)
        ]

    return [
        TableRef(layer, table)
        for layer in dirs(base)
        for table in dirs(f"{base}/{layer}")
        if lake.exists(layer, table)
    ]


def _filesystem(lake: LakeResource) -> tuple[pafs.FileSystem, str]:
    """A pyarrow file system for the lake's object store, from the same options delta-rs uses."""
    opts = {k.lower(): v for k, v in lake.storage_options.items()}
    scheme, _, path = lake.root.rstrip("/").partition("://")
    if scheme in ("s3", "s3a"):
        endpoint = opts.get("aws_endpoint_url") or opts.get("endpoint_url") or ""
        kwargs: dict[str, str] = {}
        if endpoint:
            kwargs["endpoint_override"] = endpoint.split("://", 1)[-1]
            kwargs["scheme"] = "http" if endpoint.startswith("http://") else "https"
        if opts.get("aws_access_key_id"):
            kwargs["access_key"] = opts["aws_access_key_id"]
            kwargs["secret_key"] = opts.get("aws_secret_access_key", "")
        if opts.get("aws_region"):
            kwargs["region"] = opts["aws_region"]
        return pafs.S3FileSystem(**kwargs), path
    return pafs.FileSystem.from_uri(lake.root.rstrip("/"))


def named_in(query: str, tables: Iterable[TableRef]) -> list[TableRef]:
    """The lake tables a query names as `layer.table` (quoted or not). A mention inside a string
    or a comment counts too: opening one table too many costs a Delta log read, nothing more."""
    return [t for t in tables if _pattern(t).search(query)]


def _pattern(t: TableRef) -> re.Pattern[str]:
    layer, table = (rf'(?:"{re.escape(p)}"|\b{re.escape(p)}\b)' for p in (t.layer, t.table))
    return re.compile(rf"{layer}\s*\.\s*{table}", re.IGNORECASE)


class LakeQuery:
    """One offline DuckDB connection with lake tables as views; register tables on demand."""

    def __init__(self, lake: LakeResource, memory_limit: str | None = DEFAULT_MEMORY_LIMIT):
        self.lake = lake
        self.tables = discover(lake)
        self.con = connect(memory_limit=memory_limit)
        # Offline for good: a query cannot turn auto-install back on (no SET of any option).
        self.con.execute("SET lock_configuration = true")
        self._registered: set[TableRef] = set()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> LakeQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, name: str) -> bool:
        return TableRef.parse(name) in self.tables

    def register(self, refs: Iterable[TableRef]) -> None:
        """Create the views `layer.table` over each table's current Delta version."""
        for ref in refs:
            if ref in self._registered:
                continue
            dataset = DeltaTable(
                self.lake.uri(ref.layer, ref.table),
                storage_options=self.lake.storage_options or None,
            ).to_pyarrow_dataset()
            self.con.register(ref.helper, dataset)
            self.con.execute(f'CREATE SCHEMA IF NOT EXISTS "{ref.layer}"')
            view = f'"{ref.layer}"."{ref.table}"'
            self.con.execute(f'CREATE OR REPLACE VIEW {view} AS SELECT * FROM "{ref.helper}"')
            self._registered.add(ref)

    def register_all(self) -> None:
        self.register(self.tables)

    def execute(self, query: str, params: dict | list | None = None) -> duckdb.DuckDBPyConnection:
        """Run a query with the tables it names registered (all of them when it names none)."""
        if not query.strip():
            raise LakeError("no SQL to run")
        if _parses(query):  # else DuckDB reports the syntax error, no table needed
            self.register(named_in(query, self.tables) or self.tables)
        try:
            return self.con.execute(query, params)
        except duckdb.Error as exc:
            raise LakeError(self.explain(exc, query)) from None

    def rows(self, query: str, params: dict | list | None = None) -> list[dict]:
        cur = self.execute(query, params)
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def explain(self, exc: duckdb.Error, query: str = "") -> str:
        """DuckDB's message, with what to do instead where the lake offers it."""
        text = str(exc).strip()
        if "delta_scan" in text or "delta extension" in text:
            view = next(iter(self._scanned(query)), self.tables[0].name)
            return (
                "delta_scan needs DuckDB's delta extension, which this platform never downloads "
                "(no network at run time). Every lake table is already a view named layer.table: "
                f'lakehouse sql "SELECT count(*) FROM {view}" (lakehouse tables lists them).'
            )
        if isinstance(exc, duckdb.CatalogException) and "does not exist" in text:
            return f"{text}\n{self.listing()}"
        if "configuration has been locked" in text:
            return f"{text}: settings are fixed in the lakehouse's DuckDB (offline)"
        return text

    def listing(self) -> str:
        """The lake's tables, a line per layer."""
        layers: dict[str, list[str]] = {}
        for t in self.tables:
            layers.setdefault(t.layer, []).append(t.table)
        lines = [f"  {layer}: {', '.join(names)}" for layer, names in layers.items()]
        return "Tables in the lake (layer: table):\n" + "\n".join(lines)

    def _scanned(self, query: str) -> list[str]:
        """The views standing for the lake paths a query passed to delta_scan."""
        out = []
        for path in re.findall(r"delta_scan\s*\(\s*'([^']+)'", query, re.IGNORECASE):
            parts = path.rstrip("/").split("/")
            ref = TableRef(*parts[-2:]) if len(parts) >= 2 else None
            if ref in self.tables:
                out.append(ref.name)
        return out


def _parses(query: str) -> bool:
    """Whether DuckDB can parse the query; refuses INSTALL, which fetches an extension over the
    network whatever the auto-install settings say."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error:
        return False
    for s in statements:
        if s.type == duckdb.StatementType.LOAD and re.match(
            r"\s*(FORCE\s+)?INSTALL\b", s.query, re.IGNORECASE
        ):
            raise LakeError(
                "INSTALL downloads a DuckDB extension; the lakehouse never uses the network. "
                "Lake tables need none: query them as layer.table (lakehouse tables lists them)."
            )
    return True
