"""The lake: the one place that knows where Delta tables live and how a new version is published.

Every asset reads and writes through `LakeResource`, so moving the lake from a local folder to an
object store is a configuration change (root URI + delta-rs storage options), never a code change.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.dataset as pads
from dagster import ConfigurableResource
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import DeltaError
from pydantic import Field

from resources.lake_files import LakeFiles
from resources.parquet_commit import append_parquet
from resources.settings import DEFAULT_LAKE_ROOT

LOCKS = ".locks"  # under a local lake root: one file per writer (`LakeResource.exclusive`)
_HELD = threading.local()  # .names: the lock files this thread holds (exclusive() re-enters)


class SchemaChangeError(ValueError):
    """A column changed type: drift we refuse to absorb silently."""


@dataclass(frozen=True)
class Published:
    """What one commit produced: shown as materialization metadata."""

    uri: str
    version: int
    rows_written: int
    total_rows: int | None


class WriteConflict(RuntimeError):
    """Another writer committed the same claim after our snapshot: re-read, then retry."""


@dataclass(frozen=True)
class Claim:
    """An exactly-once append, on Delta's own mechanism (a `txn` action, as streaming writers use).

    The writer decides what is new from `snapshot`; the commit carries `app_id` at the version
    after the snapshot's, and delta-rs refuses it when any commit since the snapshot carried the
    same `app_id`. Dagster's pools already keep two runs of one asset apart; this holds even
    when they do not (tests/test_lake_publish.py).
    """

    app_id: str
    snapshot: DeltaTable

    def transaction(self) -> Transaction:
        return Transaction(self.app_id, (self.snapshot.transaction_version(self.app_id) or 0) + 1)

    def read(self, columns: Sequence[str], filter: pads.Expression) -> pa.Table:
        """Rows of the snapshot."""
        return self.snapshot.to_pyarrow_dataset().to_table(columns=columns, filter=filter)


def is_local(uri: str) -> bool:
    """A path on this machine's disk (or a file:// URI), not an object-store URI."""
    return "://" not in uri or uri.startswith("file://")


class LakeResource(ConfigurableResource):
    """Delta tables at `<root>/<layer>/<table>`; the root is a path or an object-store URI."""

    root: str = Field(
        default=DEFAULT_LAKE_ROOT,
        description="Lake root: a local path (embedded default) or e.g. s3://bucket/lake.",
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="delta-rs storage options (endpoint, region, credentials via EnvVar).",
    )

    # -- locations -------------------------------------------------------------------------
    @property
    def root_uri(self) -> str:
        """The root as delta-rs opens it: an absolute path on local disk, else the URI."""
        root = self.root.rstrip("/")
        return os.path.abspath(root.removeprefix("file://")) if is_local(root) else root

    def uri(self, layer: str, table: str) -> str:
        return f"{self.root_uri}/{layer}/{table}"

    def files(self) -> LakeFiles:
        """The objects under the root, with the tables' storage options (resources/lake_files)."""
        return LakeFiles(self.root_uri, self._opts(), is_local(self.root))

    def tables(self, skip: Sequence[str] = ()) -> list[str]:
        """`<layer>/<table>` of every Delta table in the lake, whether a contract declares it or
        not (top-level folders in `skip` aside)."""
        return self.files().tables(skip)

    @property
    def data_docs(self) -> str | None:
        """Where Great Expectations Data Docs of the gates are written: `<root>/gx_docs` for a
        lake on local disk (a browser opens them as files); none for an object store."""
        if not is_local(self.root):
            return None
        return os.path.join(os.path.abspath(self.root.removeprefix("file://")), "gx_docs")

    def _opts(self) -> dict[str, str] | None:
        return self.storage_options or None

    # -- reading ---------------------------------------------------------------------------
    def exists(self, layer: str, table: str) -> bool:
        return DeltaTable.is_deltatable(self.uri(layer, table), storage_options=self._opts())

    def table(self, layer: str, table: str, version: int | None = None) -> DeltaTable:
        return DeltaTable(self.uri(layer, table), version=version, storage_options=self._opts())

    def version(self, layer: str, table: str) -> int | None:
        return self.table(layer, table).version() if self.exists(layer, table) else None

    def dataset(self, layer: str, table: str, version: int | None = None) -> pads.Dataset:
        """A lazy Arrow dataset: DuckDB queries it with projection and filter pushdown."""
        return self.table(layer, table, version).to_pyarrow_dataset()

    def read(
        self,
        layer: str,
        table: str,
        columns: Sequence[str] | None = None,
        filter: pads.Expression | None = None,
        version: int | None = None,
    ) -> pa.Table:
        """Read a table (or an empty table when it was never published)."""
        if not self.exists(layer, table):
            return pa.table({})
        return self.dataset(layer, table, version).to_table(columns=columns, filter=filter)

    def describe(self, layer: str, table: str) -> Published:
        """The table's current version, as if just published (nothing new to write)."""
        dt = self.table(layer, table)
        return Published(self.uri(layer, table), dt.version(), 0, _row_count(dt))

    def ensure(
        self,
        layer: str,
        table: str,
        schema: pa.Schema,
        partition_by: Sequence[str] | None = None,
        description: str | None = None,
    ) -> None:
        """Create the table empty when it does not exist (a no-op when it does). Two writers that
        both create a table with their first commit can both succeed, the second as version 1
        without removing the first's rows (delta-rs 1.x): duplicates. Creating it empty first is
        harmless to race, and the writes that follow are checked against a real snapshot."""
        if self.exists(layer, table):
            return
        DeltaTable.create(
            self.uri(layer, table),
            schema,
            mode="ignore",
            partition_by=list(partition_by) if partition_by else None,
            name=f"{layer}.{table}",
            description=description,
            storage_options=self._opts(),
        )

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """One holder of `name` at a time, across processes: for a read-decide-write that must
        not interleave with another run's (a model's registration, the CRM sync, a whole-table
        compare-and-replace). Each writer's Dagster pool is meant to give this, but on the SQLite
        instance two steps that claim one slot in the same instant can both get it
        (docs/reliability.md). On a local lake this is an OS file lock, which the kernel drops
        when its process dies; on an object store the PostgreSQL instance's pools are relied on.
        Re-entrant within a thread (a nested hold of the same name would wait for itself)."""
        if not is_local(self.root):
            yield
            return
        folder = Path(self.root.removeprefix("file://")).resolve() / LOCKS
        path = str(folder / f"{name.replace('/', '__')}.lock")
        held: set[str] = _HELD.__dict__.setdefault("names", set())
        if path in held:
            yield
            return
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            held.add(path)
            try:
                yield
            finally:
                held.discard(path)

    def claim(
        self,
        layer: str,
        table: str,
        app_id: str,
        schema: pa.Schema,
        partition_by: Sequence[str] | None = None,
        description: str | None = None,
    ) -> Claim:
        """The table as it is now, for an exactly-once append by `app_id` (see `Claim`). A table
        that does not exist yet is created empty first (`ensure`): two writers whose first
        commit creates it both land, even with the same `txn` (delta-rs 1.x), so a claim is only
        ever taken on an existing table."""
        self.ensure(layer, table, schema, partition_by, description)
        return Claim(app_id, self.table(layer, table))

    # -- writing ---------------------------------------------------------------------------
    def publish(
        self,
        layer: str,
        table: str,
        data: pa.Table | pa.RecordBatchReader,
        *,
        mode: Literal["append", "overwrite"] = "append",
        partition_by: Sequence[str] | None = None,
        predicate: str | None = None,
        description: str | None = None,
        commit_metadata: dict[str, str] | None = None,
        count_total: bool = True,
        claim: Claim | None = None,
    ) -> Published:
        """Commit `data` as the table's next version (one atomic Delta commit).

        New columns are merged into the schema (drift is absorbed); a column whose type differs
        from the table's raises `SchemaChangeError` before anything is written. With a `claim`
        (appends only), the commit is checked against the claim's snapshot and raises
        `WriteConflict` when another writer of the same claim got there first.
        """
        uri = self.uri(layer, table)
        if claim is not None:
            if mode != "append" or predicate is not None:
                raise ValueError(f"{layer}/{table}: a claim is a plain append")
            current = claim.snapshot
        else:
            current = self.table(layer, table) if self.exists(layer, table) else None
        if current is not None:
            _refuse_type_changes(f"{layer}/{table}", current, data.schema)
        rows = data.num_rows if isinstance(data, pa.Table) else None
        props = CommitProperties(
            custom_metadata=commit_metadata or {},
            app_transactions=[claim.transaction()] if claim is not None else None,
        )
        try:
            if _streams_files(uri, data, mode, predicate, current):
                rows = append_parquet(
                    uri,
                    data,
                    table=current,
                    partition_by=(
                        current.metadata().partition_columns
                        if current
                        else list(partition_by or [])
                    ),
                    name=f"{layer}.{table}",
                    description=description,
                    commit_properties=props,
                )
            else:
                write_deltalake(
                    current if claim is not None else uri,  # a claim commits on its snapshot
                    data,
                    mode=mode,
                    partition_by=list(partition_by) if partition_by and current is None else None,
                    predicate=predicate,
                    schema_mode="merge" if current is not None else None,
                    name=f"{layer}.{table}",
                    description=description,
                    storage_options=self._opts(),
                    commit_properties=props,
                )
        except DeltaError as exc:
            seen = None if current is None else current.version()
            if claim is not None and self.version(layer, table) != seen:
                raise WriteConflict(f"{layer}/{table} moved past version {seen}: {exc}") from exc
            raise
        dt = self.table(layer, table)
        if rows is None:  # a stream: the commit's own metrics say how many rows it added
            rows = int(dt.history(1)[0].get("operationMetrics", {}).get("num_added_rows", 0))
        total = _row_count(dt) if count_total else None
        return Published(uri=uri, version=dt.version(), rows_written=rows, total_rows=total)

    def replace(
        self,
        layer: str,
        table: str,
        data: pa.Table,
        *,
        predicate: str | None = None,
        commit_metadata: dict[str, str] | None = None,
    ) -> int:
        """Rewrite a table in place, in its own schema: every row (no `predicate`), or only the
        rows matching `predicate` (a delta-rs SQL predicate; `data` then holds their
        replacement). One commit; returns the new version."""
        current = self.table(layer, table)
        schema = pa.schema(current.schema().to_arrow())
        write_deltalake(
            current,
            data.select(schema.names).cast(schema),
            mode="overwrite",
            predicate=predicate,
            commit_properties=CommitProperties(custom_metadata=commit_metadata or {}),
        )
        return self.table(layer, table).version()

    def purge_history(self, layer: str, table: str) -> int:
        """Drop every version but the current one, so time travel cannot read an older one:
        files no longer in the current version (zero retention, for this operation only), then
        the log before a fresh checkpoint. Returns the number of files removed."""
        dt = self.table(layer, table)
        config = dt.metadata().configuration
        previous = config.get("delta.logRetentionDuration", "interval 30 days")
        dt.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
        removed = dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        # The newest commit is a property change (no data values): the checkpoint is taken
        # there, and every commit before it (deletes carry their predicate) expires now.
        dt.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
        dt.create_checkpoint()
        dt.cleanup_metadata()
        dt.alter.set_table_properties({"delta.logRetentionDuration": previous})
        return len(removed)

    def drop(self, layer: str, table: str) -> None:
        """Remove a table, its data and its log (a table moved elsewhere)."""
        self.files().delete_folder(f"{layer}/{table}")


def _streams_files(
    uri: str, data: object, mode: str, predicate: str | None, current: DeltaTable | None
) -> bool:
    """A plain append of a stream to a local table whose schema it matches: pyarrow writes the
    files (`parquet_commit`), which keeps memory flat however many partitions it spans."""
    if not (isinstance(data, pa.RecordBatchReader) and mode == "append" and predicate is None):
        return False
    if not is_local(uri):
        return False
    if current is None:
        return True
    schema = pa.schema(current.schema().to_arrow())
    return schema.names == data.schema.names and all(
        a.type == b.type or (_is_text(a.type) and _is_text(b.type))
        for a, b in zip(schema, data.schema, strict=True)
    )


def _row_count(dt: DeltaTable) -> int:
    """Row count from the Delta log's file statistics: no data file is opened."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return 0
    return int(pa.compute.sum(actions.column("num_records")).as_py() or 0)


def _refuse_type_changes(name: str, dt: DeltaTable, incoming: pa.Schema) -> None:
    current = pa.schema(dt.schema().to_arrow())
    for field in incoming:
        idx = current.get_field_index(field.name)
        if idx < 0:
            continue
        have = current.field(idx).type
        if not _same_type(have, field.type):
            raise SchemaChangeError(
                f"{name}: column '{field.name}' changed type from {have} to {field.type}; "
                "a type change needs an explicit migration (new column or table), "
                "it is never absorbed silently"
            )


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _same_type(a: pa.DataType, b: pa.DataType) -> bool:
    def norm(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_timestamp(t):
            return pa.timestamp("us", tz="UTC" if t.tz else None)
        return t

    return norm(a) == norm(b) or pa.types.is_null(b)
