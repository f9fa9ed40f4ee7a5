"""Where CRM updates go, behind one interface: upsert by the CRM's own id, delete by it, and
erase a person (everything the destination holds that names them).

The embedded default is a SQLite file standing in for the CRM, so a laptop needs no server.
Upserts are idempotent (INSERT ... ON CONFLICT DO UPDATE on the CRM id): re-sending a row after
a crash updates it, it never duplicates it. Each batch is one transaction.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from resources.mentions import mention_pattern


@dataclass(frozen=True)
class RowResult:
    key: str
    ok: bool
    error: str | None = None


class Destination(Protocol):
    name: str

    def upsert(self, rows: Sequence[dict], key: str) -> list[RowResult]: ...

    def delete(self, keys: Sequence[str], key: str) -> list[RowResult]: ...

    def erase(self, identifiers: Sequence[str]) -> RowResult: ...


def _values(identifiers: Sequence[str]) -> list[str]:
    """The identifiers worth looking for: a blank one would match every row."""
    return [i.strip() for i in identifiers if i and i.strip()]


def _names_any(payload: str, identifiers: Sequence[str]) -> bool:
    values = _values(identifiers)
    return bool(values) and re.search(mention_pattern(values), payload, re.IGNORECASE) is not None


class SQLiteDestination:
    """A local database file playing the CRM: one table of account updates."""

    def __init__(self, path: str | Path, table: str = "crm_account_updates") -> None:
        self.path = Path(path)
        self.table = table
        self.name = f"sqlite:{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path)
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            "(crm_account_id TEXT PRIMARY KEY, payload TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        return con

    def upsert(self, rows: Sequence[dict], key: str) -> list[RowResult]:
        out = []
        with self._connect() as con:  # one transaction per batch
            for row in rows:
                try:
                    con.execute(
                        f"""INSERT INTO {self.table} (crm_account_id, payload, updated_at)
                            VALUES (?, ?, datetime('now'))
                            ON CONFLICT (crm_account_id) DO UPDATE SET
                                payload = excluded.payload, updated_at = excluded.updated_at""",
                        (row[key], json.dumps(row, sort_keys=True, default=str)),
                    )
                    out.append(RowResult(row[key], True))
                except sqlite3.Error as e:
                    out.append(RowResult(str(row.get(key)), False, f"{type(e).__name__}: {e}"))
        return out

    def delete(self, keys: Sequence[str], key: str) -> list[RowResult]:
        with self._connect() as con:
            con.executemany(f"DELETE FROM {self.table} WHERE {key} = ?", [(k,) for k in keys])
        return [RowResult(k, True) for k in keys]

    def erase(self, identifiers: Sequence[str]) -> RowResult:
        """Delete every row naming the person; freed pages are zeroed, then the file is
        vacuumed, so no old page keeps a value."""
        con = self._connect()
        try:
            con.execute("PRAGMA secure_delete = ON")
            gone = [
                (k,)
                for k, payload in con.execute(f"SELECT crm_account_id, payload FROM {self.table}")
                if _names_any(payload, identifiers)
            ]
            with con:
                con.executemany(f"DELETE FROM {self.table} WHERE crm_account_id = ?", gone)
            con.execute("VACUUM")
        finally:
            con.close()
        return RowResult("erasure", True, None if not gone else f"{len(gone)} row(s) deleted")

    def rows(self) -> dict[str, dict]:
        """What the CRM holds now (for tests and the demo)."""
        with self._connect() as con:
            return {
                k: json.loads(p)
                for k, p in con.execute(f"SELECT crm_account_id, payload FROM {self.table}")
            }


class HttpBatchDestination:
    """An HTTP batch-upsert API: POST {"key": ..., "records": [...]} to `<url>/upsert`, answered
    with {"results": [{"key", "ok", "error"}]}; deletes POST to `<url>/delete`. The bearer token
    comes from the environment, never from code or config files."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.name = f"http:{self.url}"

    def _post(self, path: str, body: dict) -> dict:
        import urllib.request

        req = urllib.request.Request(
            f"{self.url}/{path}",
            data=json.dumps(body, default=str).encode(),
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read())

    def _results(self, keys: Sequence[str], call) -> list[RowResult]:
        import urllib.error

        try:
            answer = call()
        except (urllib.error.URLError, TimeoutError, ValueError) as e:
            return [RowResult(k, False, f"{type(e).__name__}: {e}") for k in keys]
        by_key = {str(r["key"]): r for r in answer.get("results", [])}
        return [
            RowResult(
                k,
                bool(by_key.get(k, {}).get("ok")),
                by_key.get(k, {}).get("error")
                or (None if by_key.get(k, {}).get("ok") else "no result for this record"),
            )
            for k in keys
        ]

    def upsert(self, rows: Sequence[dict], key: str) -> list[RowResult]:
        keys = [str(r[key]) for r in rows]
        return self._results(
            keys, lambda: self._post("upsert", {"key": key, "records": list(rows)})
        )

    def delete(self, keys: Sequence[str], key: str) -> list[RowResult]:
        return self._results(
            list(keys), lambda: self._post("delete", {"key": key, "keys": list(keys)})
        )

    def erase(self, identifiers: Sequence[str]) -> RowResult:
        """POST {"identifiers": [...]} to `<url>/erase`, answered with {"ok": true}."""
        import urllib.error

        try:
            answer = self._post("erase", {"identifiers": list(identifiers)})
        except (urllib.error.URLError, TimeoutError, ValueError) as e:
            return RowResult("erasure", False, f"{type(e).__name__}: {e}")
        return RowResult("erasure", bool(answer.get("ok")), answer.get("error"))


class PostgresDestination:
    """A PostgreSQL table playing the CRM (or feeding one): upsert by the CRM id, one
    transaction per batch. The DSN, credentials included, comes from the environment."""

    def __init__(self, dsn: str, table: str = "crm_account_updates") -> None:
        self.dsn = dsn
        self.table = table
        host = dsn.split("@")[-1] if "@" in dsn else dsn
        self.name = f"postgresql:{host}/{table}"  # never the credentials

    def _connect(self):
        import psycopg

        con = psycopg.connect(self.dsn)
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (crm_account_id TEXT PRIMARY KEY, "
            "payload JSONB NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        con.commit()
        return con

    def upsert(self, rows: Sequence[dict], key: str) -> list[RowResult]:
        import psycopg

        try:
            with self._connect() as con, con.transaction():
                con.cursor().executemany(
                    f"""INSERT INTO {self.table} (crm_account_id, payload, updated_at)
                        VALUES (%s, %s::jsonb, now())
                        ON CONFLICT (crm_account_id) DO UPDATE SET
                            payload = excluded.payload, updated_at = excluded.updated_at""",
                    [(r[key], json.dumps(r, sort_keys=True, default=str)) for r in rows],
                )
        except psycopg.Error as e:  # the batch rolled back: every row of it failed
            return [RowResult(str(r.get(key)), False, f"{type(e).__name__}: {e}") for r in rows]
        return [RowResult(r[key], True) for r in rows]

    def delete(self, keys: Sequence[str], key: str) -> list[RowResult]:
        with self._connect() as con, con.transaction():
            con.cursor().executemany(
                f"DELETE FROM {self.table} WHERE {key} = %s", [(k,) for k in keys]
            )
        return [RowResult(k, True) for k in keys]

    def erase(self, identifiers: Sequence[str]) -> RowResult:
        import psycopg

        if not (values := _values(identifiers)):
            return RowResult("erasure", True, None)
        try:
            with self._connect() as con, con.transaction():
                n = con.execute(
                    f"DELETE FROM {self.table} WHERE payload::text ~* %s",
                    (mention_pattern(values),),
                ).rowcount
        except psycopg.Error as e:
            return RowResult("erasure", False, f"{type(e).__name__}: {e}")
        return RowResult("erasure", True, f"{n} row(s) deleted" if n else None)

    def rows(self) -> dict[str, dict]:
        with self._connect() as con:
            return dict(con.execute(f"SELECT crm_account_id, payload FROM {self.table}").fetchall())
