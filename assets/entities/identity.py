"""The identity step end to end: raw tables -> identity_links, identity_review, identity_merges
and unmapped_ids. Plain functions over Arrow, DuckDB and Splink; the Dagster asset wraps them."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.entities import records as rec
from assets.entities.resolve import (
    Assigned,
    Decision,
    Linking,
    assign_ids,
    link_companies,
    link_people,
    links_table,
    pair_id,
    previous_links,
)
from assets.entities.rules import Rules
from checks.entities import IDENTITY_LINKS, IDENTITY_MERGES, IDENTITY_REVIEW, UNMAPPED_IDS
from resources.lake import LakeResource

DECISION_FIELDS = (
    "entity_type",
    "left_record",
    "right_record",
    "decision",
    "decided_by",
    "decided_at",
    "note",
)


@dataclass
class IdentityResult:
    companies: pa.Table
    people: pa.Table
    links: pa.Table
    review: pa.Table
    merges: pa.Table
    unmapped: pa.Table
    timings: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""  # resolution_fingerprint of the rules it was resolved under

    @property
    def source_records(self) -> int:
        return self.companies.num_rows + self.people.num_rows


def load_decisions(path: str | Path | None) -> list[Decision]:
    """Confirmed decisions: a CSV a reviewer edits (or `python -m assets.entities.decide`).

    A malformed row is an error naming the file, line and rule: a decision that silently does
    nothing would be worse than none.
    """
    if not path or not Path(path).exists():
        return []
    out = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(DECISION_FIELDS[:4]) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: header lacks required column(s) {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            decision = (row.get("decision") or "").strip().lower()
            etype = (row.get("entity_type") or "").strip()
            if decision not in ("same", "different"):
                raise ValueError(f"{path}:{line}: decision must be 'same' or 'different'")
            if etype not in ("account", "person"):
                raise ValueError(f"{path}:{line}: entity_type must be 'account' or 'person'")
            left, right = (
                (row.get("left_record") or "").strip(),
                (row.get("right_record") or "").strip(),
            )
            if not left or not right:
                raise ValueError(f"{path}:{line}: left_record and right_record are required")
            out.append(Decision(etype, left, right, decision == "same"))
    return out


def _tables(rules: Rules) -> set[str]:
    srcs = (*rules.accounts.sources, *rules.persons.sources)
    return {s.table for s in srcs}


def resolve_identities(
    con: duckdb.DuckDBPyConnection,
    lake: LakeResource,
    rules: Rules,
    decisions: Sequence[Decision],
    previous: pa.Table,
    now: datetime | None = None,
) -> IdentityResult:
    now = now or datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="identity") as background:
        # Beside the linking: Splink's imports, then the scan of referencing tables (events).
        background.submit(_import_scoring)
        references = background.submit(rec.reference_counts, lake, rules.accounts, 1)
        return _resolve(con, lake, rules, decisions, previous, now, references)


def _import_scoring() -> None:
    import splink  # noqa: F401


def _resolve(
    con: duckdb.DuckDBPyConnection,
    lake: LakeResource,
    rules: Rules,
    decisions: Sequence[Decision],
    previous: pa.Table,
    now: datetime,
    references: Future[pa.Table],
) -> IdentityResult:
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    carry = carried_links(lake, rules, previous)
    rec.create_macros(con, rules.normalize)
    present = rec.register_raw(con, lake, _tables(rules))
    companies = rec.company_records(con, rules.accounts, present)
    people = rec.person_records(con, rules.persons, present)
    t["records"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if _has_records(companies):
        acc, acc_missing = link_companies(
            companies, people, rules, decisions, con, _published(carry, "account")
        )
        anchor = companies.column("is_anchor").to_numpy(zero_copy_only=False).astype(bool)
        mintable = set(np.unique(acc.clusters.roots()[anchor]).tolist())
        prev_acc = previous_links(previous, "account")
        acc_ids = assign_ids(acc, prev_acc, rules.accounts.prefix, mintable, now)
        acc_links = links_table(acc, companies, acc_ids, prev_acc, now)
    else:  # no company source (or none landed yet): accounts are optional
        acc, acc_missing, acc_ids = Linking.of("account", [], decisions), [], Assigned({}, [])
        acc_links = IDENTITY_LINKS.schema.empty_table()
    t["accounts"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    account_of = acc_links.filter(pc.is_valid(acc_links["canonical_id"])).select(
        ["record_key", "canonical_id"]
    )
    if _has_records(people):
        per, per_missing = link_people(
            people, account_of, rules, decisions, con, _published(carry, "person")
        )
        prev_per = previous_links(previous, "person")
        per_ids = assign_ids(per, prev_per, rules.persons.prefix, None, now)
        per_links = links_table(per, people, per_ids, prev_per, now)
    else:
        per, per_missing, per_ids = Linking.of("person", [], decisions), [], Assigned({}, [])
        per_links = IDENTITY_LINKS.schema.empty_table()
    t["persons"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    links = pa.concat_tables(
        [acc_links.cast(IDENTITY_LINKS.schema), per_links.cast(IDENTITY_LINKS.schema)]
    )
    review = _review([(acc, acc_ids.ids), (per, per_ids.ids)], links, now)
    merges = _merges(acc_ids.changes + per_ids.changes)
    b2b = {src.source for src in rules.persons.sources if src.account}
    unmapped = _unmapped(
        references.result(),
        links,
        people,
        account_of,
        acc,
        acc_missing,
        per,
        per_missing,
        now,
        b2b,
    )
    t["tables"] = time.perf_counter() - t0
    return IdentityResult(
        companies, people, links, review, merges, unmapped, t, resolution_fingerprint(rules)
    )


# What the last published identity map was resolved under (rules file and identity sources):
# its clusters are carried into the next run only while these are unchanged.
RESOLUTION_FILE = "identity/resolution.json"


def resolution_fingerprint(rules: Rules) -> str:
    """The rules file's content and the catalog's identity sources. Learned weights are not
    part of it: retraining changes how new records score, not what earlier runs joined; a
    change to the rules or the sources re-resolves every record."""
    text = Path(rules.path).read_text() if Path(rules.path).is_file() else rules.path
    basis = repr((text, rules.accounts.sources, rules.persons.sources))
    return hashlib.sha256(basis.encode()).hexdigest()


def carried_links(lake: LakeResource, rules: Rules, previous: pa.Table) -> pa.Table:
    """The previous links when they were resolved under the same rules and sources, else
    none (an empty table): `Linking.carry` keeps their clusters together."""
    try:
        kept = json.loads(lake.files().read(RESOLUTION_FILE))
    except (FileNotFoundError, OSError, ValueError):
        return previous.slice(0, 0)
    same = kept.get("fingerprint") == resolution_fingerprint(rules)
    return previous if same else previous.slice(0, 0)


def keep_resolution(lake: LakeResource, result: IdentityResult) -> None:
    """Record what the published map was resolved under (after it is published)."""
    doc = {"fingerprint": result.fingerprint}
    lake.files().write(RESOLUTION_FILE, (json.dumps(doc) + "\n").encode())


def _published(previous: pa.Table, entity_type: str) -> pa.Table | None:
    """The last run's links of one entity type (with their rule and confidence), or None."""
    if previous.num_rows == 0 or "rule" not in previous.column_names:
        return None
    return previous.filter(pc.equal(previous["entity_type"], entity_type))


def _has_records(records: pa.Table) -> bool:
    """Whether a records table came back with its columns (none when no source of the entity
    is in the catalog or landed yet)."""
    return "record_key" in records.column_names


def _review(
    linkings: Sequence[tuple[Linking, dict[int, str | None]]], links: pa.Table, now: datetime
) -> pa.Table:
    rows = []
    for lk, ids in linkings:
        for item in lk.review:
            a, b = lk.index[item["left_record"]], lk.index[item["right_record"]]
            ra, rb = lk.clusters.find(a), lk.clusters.find(b)
            if ra == rb:
                continue  # joined later by a stronger rule
            rows.append(
                {
                    "pair_id": pair_id(lk.entity_type, item["left_record"], item["right_record"]),
                    **item,
                    "left_canonical_id": ids[ra],
                    "right_canonical_id": ids[rb],
                    "status": "pending",
                    "queued_at": now,
                }
            )
    rows.sort(key=lambda r: (r["entity_type"], -r["match_probability"], r["pair_id"]))
    return pa.Table.from_pylist(rows, schema=IDENTITY_REVIEW.schema)


def _merges(changes: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(changes, schema=IDENTITY_MERGES.schema)


def _unmapped(
    references: pa.Table,
    links: pa.Table,
    people: pa.Table,
    account_of: pa.Table,
    acc: Linking,
    acc_missing: list[tuple[int, str]],
    per: Linking,
    per_missing: list[tuple[int, str]],
    now: datetime,
    b2b: set[str] | frozenset[str] = frozenset(),
) -> pa.Table:
    """`b2b`: the person sources that map a company reference: only their records can miss
    an account (a registry or a clinic has none to miss)."""
    rows = []
    # Company records that reach no account of the system of record.
    orphans = links.filter(
        pc.and_(pc.equal(links["entity_type"], "account"), pc.is_null(links["canonical_id"]))
    )
    for system, obj, sid in zip(
        orphans["system"].to_pylist(),
        orphans["object"].to_pylist(),
        orphans["source_id"].to_pylist(),
        strict=True,
    ):
        rows.append(_u("account", system, obj, sid, "no_system_of_record_match", None, 1, now))
    # People of B2B sources whose entity reaches no account through any of its records.
    if b2b and _has_records(people):
        roots = per.clusters.roots()
        reached = pc.is_in(people["account_ref"], account_of["record_key"]).to_numpy(
            zero_copy_only=False
        )
        source = pc.binary_join_element_wise(people["system"], people["object"], "/")
        ours = pc.is_in(source, pa.array(sorted(b2b), pa.string())).to_numpy(zero_copy_only=False)
        alone = people.filter(pa.array(~np.isin(roots, roots[reached]) & ours))
        for system, obj, sid in zip(
            alone["system"].to_pylist(),
            alone["object"].to_pylist(),
            alone["source_id"].to_pylist(),
            strict=True,
        ):
            rows.append(_u("person", system, obj, sid, "no_account", None, 1, now))
    # Stable ids pointing at records that do not exist.
    counts: dict[tuple[str, str, str], int] = {}
    for lk, missing in ((acc, acc_missing), (per, per_missing)):
        for i, target in missing:
            src = lk.keys[i].split(":", 1)[0]
            key = (lk.entity_type, target, src)
            counts[key] = counts.get(key, 0) + 1
    dangling = rec.dangling_references(references, links["record_key"].combine_chunks())
    for r in dangling.to_pylist():
        counts[("account", f"{r['source']}:{r['source_id']}", r["referenced_from"])] = r[
            "references"
        ]
    for (etype, target, src), n in sorted(counts.items()):
        tsrc, sid = target.split(":", 1)
        system, obj = tsrc.split("/", 1)
        rows.append(_u(etype, system, obj, sid, "dangling_reference", src, n, now))
    return pa.Table.from_pylist(rows, schema=UNMAPPED_IDS.schema)


def _u(etype, system, obj, sid, reason, ref_from, n, now) -> dict:
    return {
        "entity_type": etype,
        "system": system,
        "object": obj,
        "source_id": sid,
        "reason": reason,
        "referenced_from": ref_from,
        "references": n,
        "detected_at": now,
    }
