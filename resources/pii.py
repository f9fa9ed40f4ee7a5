"""Pseudonymizing personal data outside the raw layer: emails become salted SHA-256 hashes.

The salt is a secret. Set LAKEHOUSE_PII_SALT (read as a Dagster EnvVar: the UI shows its name,
never its value). With none set, the embedded default creates a random salt once, in
`<lake root>/.secrets/pii_salt` (owner read/write only; the lake folder is ignored by git), and
reuses it, so hashes stay stable from run to run. The salt reaches DuckDB as a bound parameter
(a session variable), never as SQL text, and is never logged or put in metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
from pathlib import Path

import duckdb
from dagster import ConfigurableResource
from pydantic import Field

from resources.lake import is_local

PII_SALT = "LAKEHOUSE_PII_SALT"
SALT_FILE = ".secrets/pii_salt"


def local_salt(lake_root: str) -> str:
    """The embedded default's salt: created on first use, then reused."""
    if not is_local(lake_root):
        raise RuntimeError(
            f"{PII_SALT} is not set and the lake ({lake_root}) is not on local disk: set the "
            "salt in the environment (a secret store), so every run hashes the same way"
        )
    path = Path(lake_root.removeprefix("file://")) / SALT_FILE
    if not path.exists():
        _create_salt(path)
    salt = path.read_text().strip()
    if not salt:
        raise RuntimeError(
            f"{path} is empty: hashing with no salt would publish plain SHA-256 of emails. "
            f"Restore the salt the lake was built with, or set {PII_SALT}"
        )
    return salt


def _create_salt(path: Path) -> None:
    """Write a new salt whole to a private temp file, then link it into place: a run killed
    half-way never leaves an empty salt, and of two first runs the later one keeps the salt of
    the earlier (a link never replaces an existing file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0o600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def hash_email(salt: str, email: str | None) -> str | None:
    """The same hash as the SQL macro `pii_hash`, for code outside DuckDB."""
    if email is None or not email.strip():
        return None
    return hashlib.sha256((salt + email.strip().lower()).encode()).hexdigest()


class PiiResource(ConfigurableResource):
    """Where the hashing salt comes from; `install` gives a DuckDB connection `pii_hash(x)`."""

    salt: str | None = Field(
        default=None,
        description=f"Secret salt for email hashes (from {PII_SALT}); default: a local random one.",
    )

    def resolve_salt(self, lake_root: str) -> str:
        return self.salt or local_salt(lake_root)

    def install(self, con: duckdb.DuckDBPyConnection, lake_root: str) -> None:
        install(con, self.resolve_salt(lake_root))


def install(con: duckdb.DuckDBPyConnection, salt: str) -> None:
    # A session variable, bound as a parameter: a constant to the planner (hash joins on
    # hashed keys stay hash joins; a scalar subquery here made them nested loops).
    con.execute("SET VARIABLE pii_salt = $salt", {"salt": salt})
    con.execute(
        """CREATE OR REPLACE TEMP MACRO pii_hash(x) AS CASE WHEN nullif(trim(x), '') IS NOT NULL
            THEN sha256(getvariable('pii_salt') || lower(trim(x))) END"""
    )
