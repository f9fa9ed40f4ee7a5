"""Who is who: source records -> clusters -> persistent canonical ids.

Rules run in the order of the rules file's doctrine, each one only joining what the previous
left apart: stable shared ids, confirmed decisions, deterministic keys (verified company domain,
normalized email) guarded against shared inboxes and generic domains, then scored matching.
A scored pair below the merge threshold is never merged: it is returned for review.

Canonical ids are persistent. A cluster keeps the id its records had on the previous run; a
cluster of records never seen gets an id derived from its founding record, so re-running from an
empty lake on the same data mints the same ids; when two known entities turn out to be one, the
older id survives and the merge is recorded; when a decision splits one, the larger part keeps it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from assets.entities.rules import EntityRules, Rules
from assets.entities.scoring import score_pairs
from checks.entities import LINK_RULES

# Rule names, strongest first (declared with the links contract): a record's link reports the
# strongest edge that joined it.
RULES = LINK_RULES
RANK = {r: i for i, r in enumerate(RULES)}


@dataclass(frozen=True)
class Decision:
    """A confirmed review decision: two records are (or are not) the same entity."""

    entity_type: str
    left: str  # record key "<system>/<object>:<id>"
    right: str
    same: bool


class Clusters:
    """Union-find over record indices that refuses unions a 'different' decision forbids."""

    def __init__(self, n: int, cannot: Iterable[tuple[int, int]] = ()) -> None:
        self.parent = list(range(n))
        self.size = [1] * n
        self.forbid: dict[int, set[int]] = defaultdict(set)
        for a, b in cannot:
            self.forbid[a].add(b)
            self.forbid[b].add(a)

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def allowed(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        return not (
            any(self.find(x) == rb for x in self.forbid.get(ra, ()))
            or any(self.find(x) == ra for x in self.forbid.get(rb, ()))
        )

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if not self.allowed(ra, rb):
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        if rb in self.forbid:
            self.forbid[ra] |= self.forbid.pop(rb)
        return True

    def groups(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.parent)):
            out[self.find(i)].append(i)
        return out


@dataclass
class Linking:
    """The state of one entity type's resolution while its rules run."""

    entity_type: str
    keys: list[str]
    index: dict[str, int]
    clusters: Clusters
    rule: list[str] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    review: list[dict] = field(default_factory=list)
    blocked: int = 0

    @classmethod
    def of(cls, entity_type: str, keys: Sequence[str], decisions: Sequence[Decision]) -> Linking:
        index = {k: i for i, k in enumerate(keys)}
        cannot = [
            (index[d.left], index[d.right])
            for d in decisions
            if not d.same and d.entity_type == entity_type and d.left in index and d.right in index
        ]
        n = len(keys)
        return cls(
            entity_type, list(keys), index, Clusters(n, cannot), ["own_record"] * n, [1.0] * n
        )

    def edge(self, a: int, b: int, rule: str, confidence: float) -> bool:
        if a == b:
            return True
        if not self.clusters.union(a, b):
            self.blocked += 1
            return False
        for i in (a, b):
            if RANK[rule] < RANK[self.rule[i]] or (
                rule == self.rule[i] and confidence > self.confidence[i]
            ):
                self.rule[i], self.confidence[i] = rule, confidence
        return True

    def star(self, members: Sequence[int], rule: str, confidence: float) -> None:
        """Join records that share a key to the first of them."""
        for m in members[1:]:
            self.edge(members[0], m, rule, confidence)

    def decisions(self, decisions: Sequence[Decision]) -> None:
        for d in decisions:
            if d.same and d.entity_type == self.entity_type:
                a, b = self.index.get(d.left), self.index.get(d.right)
                if a is not None and b is not None:
                    self.edge(a, b, "confirmed_decision", 1.0)

    def stable_links(self, link_keys: Sequence[Sequence[str] | None]) -> list[tuple[int, str]]:
        """Join records to the records their stable ids reference; return references to ids no
        record carries (the caller lists them as unmapped)."""
        missing = []
        for i, links in enumerate(link_keys):
            for k in links or ():
                j = self.index.get(k)
                if j is None:
                    missing.append((i, k))
                else:
                    self.edge(i, j, "stable_id", 1.0)
        return missing

    def scored(self, pairs: pa.Table, merge: float, candidates: dict[str, dict]) -> None:
        """Merge pairs at or above `merge`; queue the rest (already >= review) for review."""
        for row in pairs.to_pylist():
            a, b = self.index[row["unique_id_l"]], self.index[row["unique_id_r"]]
            if self.clusters.find(a) == self.clusters.find(b):
                continue
            p = float(row["match_probability"])
            if p >= merge and self.clusters.allowed(a, b):
                self.edge(a, b, "scored_match", round(p, 6))
                continue
            if not self.clusters.allowed(a, b):
                continue  # decided: different
            self.review.append(
                {
                    "entity_type": self.entity_type,
                    "left_record": row["unique_id_l"],
                    "right_record": row["unique_id_r"],
                    "match_probability": p,
                    "match_weight": float(row["match_weight"]),
                    "evidence": row["evidence"],
                    "left_attributes": json.dumps(candidates[row["unique_id_l"]], default=str),
                    "right_attributes": json.dumps(candidates[row["unique_id_r"]], default=str),
                }
            )


def pair_id(entity_type: str, a: str, b: str) -> str:
    lo, hi = sorted((a, b))
    return hashlib.sha1(f"{entity_type}|{lo}|{hi}".encode()).hexdigest()[:16]


def _groups(values: Sequence[str | None], keep: Sequence[bool] | None = None) -> list[list[int]]:
    by: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(values):
        if v is not None and (keep is None or keep[i]):
            by[v].append(i)
    return [g for g in by.values() if len(g) > 1]


def _mode(values: Iterable[str | None]) -> str | None:
    c = Counter(v for v in values if v)
    return min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] if c else None


# -- accounts ------------------------------------------------------------------------------


def link_companies(
    records: pa.Table,
    people: pa.Table,
    rules: Rules,
    decisions: Sequence[Decision],
    threads: int | None = None,
) -> tuple[Linking, list[tuple[int, str]]]:
    r = rules.accounts
    generic = set(rules.normalize.generic_email_domains)
    cols = {c: records.column(c).to_pylist() for c in records.column_names}
    keys = cols["record_key"]
    lk = Linking.of("account", keys, decisions)
    anchor = cols["is_anchor"]

    missing = lk.stable_links(cols["link_keys"])
    lk.decisions(decisions)

    # Verified company domain: a website or company-domain field, never an email's domain.
    domain = [d if d and d not in generic else None for d in cols["domain"]]
    order = sorted(range(len(keys)), key=lambda i: (not anchor[i], keys[i]))
    by_domain: dict[str, list[int]] = defaultdict(list)
    for i in order:
        if domain[i]:
            by_domain[domain[i]].append(i)
    for members in by_domain.values():
        lk.star(members, "verified_domain", 0.99)

    # A billing email's domain joins the company that verified that domain, unless the address
    # is a shared inbox: the same address on records of one source that are still apart.
    email_key, email_dom = cols["email_key"], cols["email_domain"]
    shared = set()
    seen: dict[tuple[str, str], int] = {}
    for i, e in enumerate(email_key):
        if not e:
            continue
        src = keys[i].split(":", 1)[0]
        j = seen.setdefault((src, e), i)
        if j != i and lk.clusters.find(i) != lk.clusters.find(j):
            shared.add(e)
    for i, d in enumerate(email_dom):
        if d and d not in generic and email_key[i] not in shared and d in by_domain:
            lk.edge(by_domain[d][0], i, "email_domain", 0.97)

    # A product surface with no stable id and no domain: the domain its people's emails share.
    anchored = {lk.clusters.find(i) for i in range(len(keys)) if anchor[i]}
    members: dict[str, Counter] = defaultdict(Counter)
    pcols = {c: people.column(c).to_pylist() for c in ("account_ref", "email_domain", "email_key")}
    for ref, d, e in zip(
        pcols["account_ref"], pcols["email_domain"], pcols["email_key"], strict=True
    ):
        if ref and d and d not in generic and e not in shared:
            members[ref][d] += 1
    for key, counts in members.items():
        i = lk.index.get(key)
        if i is None or lk.clusters.find(i) in anchored:
            continue
        d, n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        share = n / sum(counts.values())
        if (
            d in by_domain
            and share >= r.member_domain_min_share
            and n >= r.member_domain_min_people
        ):
            lk.edge(by_domain[d][0], i, "member_domain", round(min(0.99, share), 4))

    _score(lk, cols, r, ("name_norm", "domain", "domain_stem", "country", "name_token"), threads)
    return lk, missing


def _score(
    lk: Linking, cols: dict[str, list], r: EntityRules, fields: Sequence[str], threads: int | None
) -> None:
    """One candidate row per cluster (its representative values), scored by Splink."""
    rows: dict[str, dict] = {}
    anchor = cols.get("is_anchor") or [False] * len(lk.keys)
    for _root, members in lk.clusters.groups().items():
        rep = min(members, key=lambda i: (not anchor[i], lk.keys[i]))
        row = {"unique_id": lk.keys[rep]}
        for f in (*fields, "account_id"):
            if f not in cols:
                row[f] = None
            elif len(members) == 1:  # most clusters: no vote to count
                row[f] = cols[f][rep]
            else:
                row[f] = _mode(cols[f][i] for i in members)
        rows[lk.keys[rep]] = row
    table = pa.Table.from_pylist(
        list(rows.values()),
        schema=pa.schema([(k, pa.string()) for k in next(iter(rows.values()), {"unique_id": ""})]),
    )
    pairs = score_pairs(table, r.scoring, threads)
    lk.scored(pairs, r.scoring.merge, rows)


# -- persons -------------------------------------------------------------------------------


def link_people(
    records: pa.Table,
    account_of_company: dict[str, str],
    rules: Rules,
    decisions: Sequence[Decision],
    threads: int | None = None,
) -> tuple[Linking, list[tuple[int, str]]]:
    r = rules.persons
    cols = {c: records.column(c).to_pylist() for c in records.column_names}
    keys = cols["record_key"]
    lk = Linking.of("person", keys, decisions)
    cols["account_id"] = [account_of_company.get(a) if a else None for a in cols["account_ref"]]

    missing = lk.stable_links(cols["link_keys"])
    lk.decisions(decisions)

    # One normalized address, one person -- unless the address is a team mailbox, or records
    # carrying it name different people (a shared inbox).
    generic = set(rules.normalize.generic_email_domains)
    keep = [
        bool(e) and not rm for e, rm in zip(cols["email_key"], cols["role_mailbox"], strict=True)
    ]
    for members in _groups(cols["email_key"], keep):
        names = {
            (cols["first_name"][i], cols["last_name"][i]) for i in members if cols["last_name"][i]
        }
        if len({ln for _, ln in names}) > 1:
            continue
        conf = 0.98 if cols["email_domain"][members[0]] in generic else 0.99
        lk.star(members, "email", conf)

    _score(lk, cols, r, ("first_name", "last_name", "email_local"), threads)
    return lk, missing


# -- persistent ids ------------------------------------------------------------------------


@dataclass
class Assigned:
    ids: dict[int, str | None]  # cluster root -> canonical id (None: not minted)
    changes: list[dict]  # merges and splits of known ids


def assign_ids(
    lk: Linking,
    previous: dict[str, tuple[str, datetime]],
    prefix: str,
    mintable: set[int] | None,
    now: datetime,
) -> Assigned:
    groups = lk.clusters.groups()
    keys = lk.keys
    # Which clusters hold each known id, by how many of its records.
    holders: dict[str, Counter] = defaultdict(Counter)
    first_linked: dict[str, datetime] = {}
    for root, members in groups.items():
        for i in members:
            prev = previous.get(keys[i])
            if prev and prev[0]:
                holders[prev[0]][root] += 1
                t = first_linked.get(prev[0])
                first_linked[prev[0]] = prev[1] if t is None or prev[1] < t else t
    founder = {root: min(keys[i] for i in members) for root, members in groups.items()}
    won: dict[int, list[str]] = defaultdict(list)
    for cid, by_root in holders.items():
        root = min(by_root, key=lambda r: (-by_root[r], founder[r]))
        won[root].append(cid)
    used = set(holders)
    ids: dict[int, str | None] = {}
    changes: list[dict] = []
    for root, members in sorted(groups.items(), key=lambda kv: founder[kv[0]]):
        if mintable is not None and root not in mintable:
            ids[root] = None
            continue
        cands = sorted(won.get(root, []), key=lambda c: (first_linked[c], c))
        if cands:
            ids[root] = cands[0]
            changes += [_change(lk.entity_type, old, cands[0], "merged", now) for old in cands[1:]]
        else:
            ids[root] = _mint(prefix, lk.entity_type, founder[root], used)
            used.add(ids[root])
        lost = {previous[keys[i]][0] for i in members if keys[i] in previous} - set(cands) - {None}
        changes += [_change(lk.entity_type, old, ids[root], "split", now) for old in sorted(lost)]
    return Assigned(ids, changes)


def _mint(prefix: str, entity_type: str, founder: str, used: set[str]) -> str:
    n = 0
    while True:
        salt = f"#{n}" if n else ""
        cid = prefix + hashlib.sha256(f"{entity_type}|{founder}{salt}".encode()).hexdigest()[:12]
        if cid not in used:
            return cid
        n += 1


def _change(entity_type: str, old: str, new: str, action: str, now: datetime) -> dict:
    return {
        "entity_type": entity_type,
        "old_id": old,
        "surviving_id": new,
        "action": action,
        "recorded_at": now,
    }


def links_table(
    lk: Linking,
    records: pa.Table,
    assigned: Assigned,
    previous: dict[str, tuple[str, datetime]],
    now: datetime,
) -> pa.Table:
    roots = [lk.clusters.find(i) for i in range(len(lk.keys))]
    ids = [assigned.ids[r] for r in roots]
    linked_at = []
    for k, cid in zip(lk.keys, ids, strict=True):
        prev = previous.get(k)
        linked_at.append(prev[1] if prev and prev[0] == cid else now)
    return pa.table(
        {
            "entity_type": pa.array([lk.entity_type] * len(ids), pa.string()),
            "system": records.column("system"),
            "object": records.column("object"),
            "source_id": records.column("source_id"),
            "record_key": records.column("record_key"),
            "canonical_id": pa.array(ids, pa.string()),
            "rule": pa.array(lk.rule, pa.string()),
            "confidence": pa.array(lk.confidence, pa.float64()),
            "linked_at": pa.array(linked_at, pa.timestamp("us", tz="UTC")),
        }
    )


def previous_links(links: pa.Table, entity_type: str) -> dict[str, tuple[str | None, datetime]]:
    """record_key -> (canonical id or None, linked_at) as published by the previous run."""
    if links.num_rows == 0:
        return {}
    t = links.filter(pc.equal(links["entity_type"], entity_type))
    return {
        k: (c, ts)
        for k, c, ts in zip(
            t["record_key"].to_pylist(),
            t["canonical_id"].to_pylist(),
            t["linked_at"].to_pylist(),
            strict=True,
        )
    }
