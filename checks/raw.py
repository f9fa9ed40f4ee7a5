"""The raw layer's generic parts: the raw table contract, lineage, quarantine and ingest log.

Which source objects exist, their columns and rules, is configuration: the source catalog
(checks/sources.py, `stacks/<stack>/catalog.yaml`) builds one `RawContract` per object with
`raw_contract`. No module names a source object.

Raw tables are append-only copies of what landed: the typed columns, plus the record as it
arrived (`_payload`) and where it came from. A row that breaks a column rule is quarantined with
the rule's name; the batch fails the gate only when the quarantined share passes the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal

from checks.contract import Column, Expectation, TableContract, ts

FileFormat = Literal["csv", "json_array", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "json_array", "jsonl", "parquet")
Cadence = Literal["daily", "weekly", "monthly"]
# Longest time between two extracts of a cadence (a month: its longest).
CADENCE_PERIODS: dict[str, timedelta] = {
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    "monthly": timedelta(days=31),
}

DEFAULT_QUARANTINE_THRESHOLD = 0.05
# Longest text a typed column accepts: an id, a name, an email or a URL is far shorter, so a
# longer value is a broken export (a field that swallowed the rest of its file), not data.
MAX_TEXT_CHARS = 4096

# Rules the reader applies before any column is typed. File rules reject a whole file (line 0):
# its rows cannot be told apart, so it waits, untouched in landing, to be delivered again.
ENCODING = "encoding(utf-8)"  # file rule: not UTF-8 (a UTF-8 byte-order mark is fine)
GZIP = "gzip"  # file rule: a .gz file whose stream is corrupt, cut short or not gzip at all
JSON_SYNTAX = "json_syntax"  # file rule: a JSON document that does not parse (e.g. cut short)
PARQUET = "parquet"  # file rule: a parquet file whose footer or pages cannot be read


def wrong_format(declared: str) -> str:
    """File rule: the file is plainly another format than the object declares (a CSV where
    JSON is expected, a parquet file where CSV is)."""
    return f"format({declared})"


UNREADABLE = "unreadable_file"  # file rule: any other file that cannot be split into records
FIELD_COUNT = "field_count"  # row rule: a CSV record with more or fewer fields than its header
NOT_AN_OBJECT = "not_an_object"  # row rule: a JSON array element that is not an object
INVALID_JSON = "invalid_json"  # row rule: a JSON Lines line that is not a JSON object

# Lineage columns every raw table carries, after its typed columns.
LINEAGE = (
    Column("_payload", "string", "The record exactly as it arrived (JSON).", required=True),
    Column(
        "_source_file",
        "string",
        "Landing path of the file, relative to the landing root.",
        required=True,
    ),
    Column(
        "_line",
        "int",
        "1-based line (CSV/JSONL) or record number (JSON array).",
        required=True,
        min=1,
    ),
    Column("_file_sha256", "string", "Content hash of the file: its identity.", required=True),
    Column("_extract_date", "date", "Extract date of the landing folder.", required=True),
    Column("_ingested_at", "timestamp", "When this platform ingested the file.", required=True),
)
QUARANTINE_COLUMNS = (
    Column("table_name", "string", "Raw table the row was meant for.", required=True),
    Column("source_file", "string", "Landing path of the file.", required=True),
    Column(
        "line",
        "int",
        "1-based line or record number in the file; 0 = the whole file.",
        required=True,
        min=0,
    ),
    Column("rule", "string", "The rule the row broke, e.g. not_null(customer_id).", required=True),
    Column("detail", "string", "What was wrong, in words."),
    Column("payload", "string", "The row as it arrived.", pii=True),
    Column("file_sha256", "string", "Content hash of the file.", required=True),
    Column("extract_date", "date", "Extract date of the landing folder (empty if it is none)."),
    Column("quarantined_at", "timestamp", "When the row was rejected.", required=True),
)


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV file is written: its delimiter, quote and escape characters and whether its
    first record is a header (else the declared columns' sources, in order, name the fields)."""

    delimiter: str = ","
    quote: str | None = '"'
    escape: str | None = None
    header: bool = True


@dataclass(frozen=True)
class RawContract(TableContract):
    source: str = ""  # the source system, e.g. crm
    object: str = ""  # the object in that system, e.g. accounts
    format: FileFormat = "csv"
    quarantine_threshold: float = DEFAULT_QUARANTINE_THRESHOLD
    cadence: Cadence | None = None  # how often the source delivers an extract; None: daily
    landing: str = ""  # folder under the landing root; "" = <source>/<object>
    csv: CsvDialect = CsvDialect()
    # json_array: the records' array under this (dotted) key of a top-level object; None: the
    # document is the array (or `{"records": [...]}`).
    records_path: str | None = None
    id_column: str = ""  # the column that identifies a record (its versions share it)
    created: str | None = None  # column of the record's creation time, if declared
    updated: str | None = None  # column that orders a record's versions, if declared

    @property
    def landing_name(self) -> str:
        return f"{self.source}_{self.object}"

    @property
    def landing_dir(self) -> str:
        """The landing folder the object's extracts arrive in, relative to the landing root."""
        return self.landing or f"{self.source}/{self.object}"

    @property
    def landing_parts(self) -> tuple[str, ...]:
        return tuple(self.landing_dir.split("/"))

    @property
    def extract_period(self) -> timedelta:
        """Longest expected time between two extracts: the declared cadence's, else a day."""
        return CADENCE_PERIODS[self.cadence or "daily"]

    def suite(self) -> list[Expectation]:
        batch = Expectation(
            "expect_column_values_to_be_between",
            {
                "column": "quarantine_share",
                "min_value": 0.0,
                "max_value": self.quarantine_threshold,
            },
            on="batch",
        )
        return [*super().suite(), batch]


def raw_contract(
    source: str,
    obj: str,
    fmt: FileFormat,
    description: str,
    *columns: Column,
    table: str | None = None,
    partition_by: tuple[str, ...] = (),
    cadence: Cadence | None = None,
    subject_key: str | None = None,
    quarantine_threshold: float = DEFAULT_QUARANTINE_THRESHOLD,
    landing: str = "",
    csv: CsvDialect = CsvDialect(),
    records_path: str | None = None,
    id_column: str = "",
    created: str | None = None,
    updated: str | None = None,
) -> RawContract:
    """A raw table: the declared columns (strings capped at MAX_TEXT_CHARS), then the lineage;
    `subject_key` makes it a personal-record table (see TableContract)."""
    return RawContract(
        layer="raw",
        table=table or f"{source}_{obj}",
        description=description,
        columns=(*(_text_limit(c) for c in columns), *LINEAGE),
        source=source,
        object=obj,
        format=fmt,
        quarantine_threshold=quarantine_threshold,
        partition_by=partition_by,
        cadence=cadence,
        primary_key=("_source_file", "_line"),  # a landing line is published once
        personal_record=subject_key is not None,
        subject_key=subject_key,
        landing="" if landing == f"{source}/{obj}" else landing,
        csv=csv,
        records_path=records_path,
        id_column=id_column,
        created=created,
        updated=updated,
    )


def _text_limit(c: Column) -> Column:
    if c.type != "string" or c.max_length is not None:
        return c
    return replace(c, max_length=MAX_TEXT_CHARS)


QUARANTINE = TableContract(
    layer="raw",
    table="quarantine",
    description=(
        "Rows rejected at ingestion, never dropped: the raw table, file, line, the rule broken "
        "and the payload as it arrived. Appended by each raw asset in the same run as its batch."
    ),
    columns=QUARANTINE_COLUMNS,
    # A row is one rejected line of one file content (the first rule it broke; line 0: the
    # whole file or a refused entry). Not the path: a replaced file's new version may break the
    # same rule on the same line.
    primary_key=("table_name", "file_sha256", "line"),
)
# What the raw layer decided about each landing entry (`raw/ingest_log.decision`).
INGESTED = "ingested"  # new content at a new path: its rows published
REPLACED = "replaced"  # new content at a path that had other content: supersedes that version
DUPLICATE = "duplicate"  # content already in the lake (see duplicate_of): nothing published again
REJECTED = "rejected"  # a file that cannot be split into rows: quarantined whole (line 0)
IGNORED = "ignored"  # a partial, temporary or hidden name: not read (read once renamed)
REFUSED = "refused"  # a link, a non-file or an entry in a folder that cannot be placed
DECISIONS = (INGESTED, REPLACED, DUPLICATE, REJECTED, IGNORED, REFUSED)
# Decisions that make a path's content current (its rows, or the rows of the same content).
EFFECTIVE = (INGESTED, REPLACED, DUPLICATE)

INGEST_LOG = TableContract(
    layer="raw",
    table="ingest_log",
    description=(
        "One row per decision about a landing entry: a file ingested, replaced by a new version "
        "under the same path, found to duplicate content already in the lake, rejected whole, "
        "or an entry ignored (partial name) or refused (link, non-file, folder that cannot be "
        "placed). A file is identified by its content hash: it is never ingested twice, and a "
        "new version of a path supersedes the old version's rows for the layers above (the raw "
        "table keeps both). Written last, after the raw and quarantine commits; each run's rows "
        "are validated with this suite before they are appended."
    ),
    columns=(
        Column("table_name", required=True, description="Raw table the entry was meant for."),
        Column(
            "source_file",
            required=True,
            description="Landing path of the entry, relative to the landing root.",
        ),
        Column(
            "file_sha256",
            required=True,
            description=(
                "Content hash of the file: its identity. For an entry never opened (ignored or "
                "refused), a hash of its path, kind, size and time instead."
            ),
        ),
        Column("file_bytes", "int", "Size of the entry when decided.", required=True, min=0),
        Column(
            "file_mtime_ns",
            "int",
            "Modification time of the entry when decided (ns since the epoch).",
            required=True,
        ),
        Column("extract_date", "date", description="Empty when the folder is not a date."),
        Column("rows_read", "int", "Records read from the file.", required=True, min=0),
        Column(
            "rows_published",
            "int",
            "Rows of the file this decision published to the raw table.",
            required=True,
            min=0,
        ),
        Column(
            "rows_quarantined",
            "int",
            "Rows (or the whole entry) sent to raw/quarantine.",
            required=True,
            min=0,
        ),
        Column("duplicate_of", description="Earlier file with identical content, if any."),
        Column(
            "raw_version",
            "int",
            "Version of the raw table current after this decision's rows were committed.",
            required=True,
            min=0,
        ),
        ts("ingested_at", "When the entry was decided.", required=True),
        Column("decision", accepted=DECISIONS, description="What was decided (see above)."),
        Column(
            "supersedes",
            description=(
                "Content hash of the earlier version of the same path that this one replaces: "
                "its rows are hidden from the layers above."
            ),
        ),
        Column("reason", description="Why an entry was ignored, refused or rejected."),
        Column(
            "seq",
            "int",
            min=1,
            required=True,
            description="Order of decisions per raw table: the latest one for a path is current.",
        ),
    ),
    # One row per decision: a path decided again (a new version, or back to earlier content)
    # gets a new row, so only the decision's place in its table's order is unique.
    primary_key=("table_name", "seq"),
)
