"""Which account or person a user means: a canonical id, a source system's id, a domain, an
email or a name, resolved through the entity layer in that order (the first kind that matches
wins; a kind that matches several entities lists them instead of guessing)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from resources.lake import is_local
from resources.pii import PII_SALT, SALT_FILE, hash_email
from resources.query import LakeError, LakeQuery

MAX_CANDIDATES = 20


@dataclass(frozen=True)
class Match:
    id: str  # the canonical id
    how: str  # how the argument reached it, in words


class Ambiguous(LakeError):
    """Several entities match: the candidates, for the user to pick one by id."""

    def __init__(self, what: str, arg: str, how: str, candidates: list[dict]):
        self.candidates = candidates
        more = " (first 20)" if len(candidates) >= MAX_CANDIDATES else ""
        plural = "people" if what == "person" else f"{what}s"
        super().__init__(f"{len(candidates)} {plural} match {arg!r} by {how}{more}: pick one by id")


@dataclass(frozen=True)
class Kind:
    """One entity type: its table, key, display columns and the name column to search."""

    entity: str  # identity_links.entity_type
    table: str
    key: str
    name: str
    shown: str  # SQL select list of a candidate row


ACCOUNT = Kind(
    "account", "entities.account", "account_id", "name", "account_id, name, domain, crm_type"
)
PERSON = Kind(
    "person", "entities.person", "person_id", "full_name", "person_id, full_name, first_seen_at"
)


def resolve(q: LakeQuery, kind: Kind, arg: str) -> Match:
    arg = arg.strip()
    if not arg:
        raise LakeError(f"name the {kind.entity}: an id, a source id, or a name")
    if not q.has(kind.table):
        raise LakeError(f"{kind.table} is not in the lake yet: run `make demo` first")
    steps = [_by_id, _by_source_id]
    steps += [_by_domain] if kind is ACCOUNT else [_by_email]
    steps += [_by_exact_name, _by_partial_name]
    for step in steps:
        found = step(q, kind, arg)
        if found is not None:
            return found
    raise LakeError(
        f"no {kind.entity} matches {arg!r} (tried its id, a source system's id, "
        f"{'a domain' if kind is ACCOUNT else 'an email'} and the name)"
    )


def _one(q: LakeQuery, kind: Kind, arg: str, how: str, where: str, params: list) -> Match | None:
    rows = q.rows(
        f"SELECT {kind.shown} FROM {kind.table} WHERE {where} ORDER BY {kind.key} "
        f"LIMIT {MAX_CANDIDATES}",
        params,
    )
    if len(rows) > 1:
        raise Ambiguous(kind.entity, arg, how, rows)
    return Match(rows[0][kind.key], how) if rows else None


def _by_id(q: LakeQuery, kind: Kind, arg: str) -> Match | None:
    found = _one(q, kind, arg, "id", f"{kind.key} = ?", [arg])
    if found or not q.has("entities.identity_merges"):
        return found
    # An id merged away resolves to the survivor (following a chain of merges).
    merged = q.rows(
        """WITH RECURSIVE chain(id, depth) AS (
               SELECT ?, 0
               UNION SELECT m.surviving_id, c.depth + 1 FROM chain c
               JOIN entities.identity_merges m ON m.old_id = c.id
               WHERE m.entity_type = ? AND m.action = 'merged' AND c.depth < 50)
           SELECT id FROM chain ORDER BY depth DESC LIMIT 1""",
        [arg, kind.entity],
    )
    survivor = merged[0]["id"] if merged else arg
    if survivor != arg:
        how = f"id {arg}, merged into {survivor}"
        return _one(q, kind, arg, how, f"{kind.key} = ?", [survivor])
    return None


def _by_source_id(q: LakeQuery, kind: Kind, arg: str) -> Match | None:
    if not q.has("entities.identity_links"):
        return None
    links = q.rows(
        """SELECT record_key, canonical_id FROM entities.identity_links
           WHERE entity_type = ? AND (source_id = ? OR record_key = ?) ORDER BY record_key""",
        [kind.entity, arg, arg],
    )
    if not links:
        return None
    ids = sorted({r["canonical_id"] for r in links if r["canonical_id"]})
    if not ids:
        raise LakeError(
            f"source record {links[0]['record_key']} reaches no {kind.entity} "
            "(entities.unmapped_ids says why)"
        )
    if len(ids) > 1:
        where = f"{kind.key} IN ({', '.join('?' * len(ids))})"
        return _one(q, kind, arg, "source id (in several systems)", where, ids)
    keys = ", ".join(r["record_key"] for r in links if r["canonical_id"] == ids[0])
    return Match(ids[0], f"source record {keys}")


def _by_domain(q: LakeQuery, kind: Kind, arg: str) -> Match | None:
    domain = re.sub(r"^[a-z]+://", "", arg.lower()).split("/")[0].rsplit("@", 1)[-1]
    domain = domain.removeprefix("www.")
    if "." not in domain or " " in domain:
        return None
    return _one(q, kind, arg, f"domain {domain}", "lower(domain) = ?", [domain])


def _by_email(q: LakeQuery, kind: Kind, arg: str) -> Match | None:
    """Emails are in the lake only as salted hashes: the argument is hashed the same way and
    compared; nothing is unhashed."""
    if "@" not in arg:
        return None
    digest = hash_email(_salt(q.lake.root), arg)
    where = "email_hash = ? OR contains(coalesce(email_hashes, ''), ?)"
    return _one(q, kind, arg, "email (salted hash)", where, [digest, digest])


def _salt(lake_root: str) -> str:
    """The salt the lake was built with, read only: a reader never creates one."""
    if os.environ.get(PII_SALT):
        return os.environ[PII_SALT]
    path = Path(lake_root.removeprefix("file://")) / SALT_FILE
    if is_local(lake_root) and path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    raise LakeError(
        f"emails are in the lake only as salted hashes, and the salt is not here: set {PII_SALT} "
        "to the lake's salt, or look the person up by id or name"
    )


def _by_exact_name(q: LakeQuery, kind: Kind, arg: str) -> Match | None:
    where = f"lower(trim({kind.name})) = lower(?)"
    return _one(q, kind, arg, "name", where, [arg])


def _by_partial_name(q: LakeQuery, kind: Kind, arg: str) -> Match | None:
    where = f"contains(lower({kind.name}), lower(?))"
    return _one(q, kind, arg, "part of the name", where, [arg])
