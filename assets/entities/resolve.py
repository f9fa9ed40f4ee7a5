"""Who is who: source records -> clusters -> persistent canonical ids.

Rules run in the order of the rules file's doctrine, each one only joining what the previous
left apart: stable shared ids, confirmed decisions, deterministic keys (verified company domain,
normalized email) guarded against shared inboxes and generic domains, then scored matching.
A scored pair below the merge threshold is never merged: it is returned for review.

Each deterministic rule is one DuckDB query that yields edges (record index pairs), joined in
bulk as connected components; only a component that a 'different' decision touches is replayed
edge by edge. Per-record Python runs only for the hard cases Splink scores.

Canonical ids are persistent. A cluster keeps the id its records had on the previous run; a
cluster of records never seen gets an id derived from its founding record, so re-running from an
empty lake on the same data mints the same ids; when two known entities turn out to be one, the
older id survives and the merge is recorded; when a decision splits one, the larger part keeps it.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from assets.entities.masking import reviewer_view
from assets.entities.rules import EntityRules, Key, Rules
from assets.entities.scoring import score_pairs
from checks.entities import LINK_RULES
from resources.duckdb import connect
from resources.pii import install as install_pii
from resources.sql import ident, literal

# Rule names, strongest first (declared with the links contract; an entity's exact keys take
# the key slot, `EntityRules.rule_order`): a record's link reports the strongest edge that
# joined it.
RULES = LINK_RULES


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

    def roots(self) -> np.ndarray:
        """Every record's cluster root (and the forest flattened to depth one)."""
        p = np.asarray(self.parent, dtype=np.int64)
        while True:
            q = p[p]
            if np.array_equal(q, p):
                break
            p = q
        self.parent = p.tolist()
        return p

    def bulk(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Union many edges at once; returns which were allowed.

        Components no decision touches are joined in one pass (edge order cannot matter there);
        edges of a component that would join a forbidden pair are replayed in order.
        """
        ok = np.ones(len(a), dtype=bool)
        if len(a) == 0:
            return ok
        roots = self.roots()
        ra, rb = roots[a], roots[b]
        if self.forbid:
            comp = _components(len(roots), ra, rb)
            bad = {
                comp[roots[r]]
                for r, others in self.forbid.items()
                for x in others
                if comp[roots[r]] == comp[roots[x]]
            }
            slow = np.isin(comp[ra], np.fromiter(bad, dtype=np.int64, count=len(bad)))
        else:
            slow = np.zeros(len(a), dtype=bool)
        self._join(roots, ra[~slow], rb[~slow])
        for k in np.flatnonzero(slow):
            ok[k] = self.union(int(a[k]), int(b[k]))
        return ok

    def _join(self, roots: np.ndarray, ra: np.ndarray, rb: np.ndarray) -> None:
        n = len(roots)
        comp = _components(n, ra, rb)
        size = np.asarray(self.size, dtype=np.int64)
        # Each component's new root: its largest current cluster's root (as union by size).
        heads = np.flatnonzero(roots == np.arange(n))
        order = np.lexsort((heads, -size[heads], comp[heads]))
        heads = heads[order]
        first = np.r_[True, comp[heads][1:] != comp[heads][:-1]]
        leaders = heads[first]
        leader = np.full(comp.max() + 1, -1, dtype=np.int64)
        leader[comp[leaders]] = leaders
        new_roots = leader[comp[roots]]
        size[leaders] = np.bincount(comp[roots], minlength=len(leader))[comp[leaders]]
        self.parent = new_roots.tolist()
        self.size = size.tolist()
        for r in list(self.forbid):
            nr = int(new_roots[r])
            if nr != r:
                self.forbid[nr] |= self.forbid.pop(r)

    def groups(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for i, r in enumerate(self.roots().tolist()):
            out[r].append(i)
        return out


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    g = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    return connected_components(g, directed=False)[1]


@dataclass
class Linking:
    """The state of one entity type's resolution while its rules run."""

    entity_type: str
    keys: list[str]
    index: dict[str, int]
    clusters: Clusters
    rank: np.ndarray  # per record: position in `names` of the strongest edge that joined it
    confidence: np.ndarray
    names: tuple[str, ...] = RULES  # the rules, strongest first
    review: list[dict] = field(default_factory=list)
    blocked: int = 0

    @classmethod
    def of(
        cls,
        entity_type: str,
        keys: Sequence[str],
        decisions: Sequence[Decision],
        names: tuple[str, ...] = RULES,
    ) -> Linking:
        index = {k: i for i, k in enumerate(keys)}
        cannot = [
            (index[d.left], index[d.right])
            for d in decisions
            if not d.same and d.entity_type == entity_type and d.left in index and d.right in index
        ]
        n = len(keys)
        return cls(
            entity_type,
            list(keys),
            index,
            Clusters(n, cannot),
            np.full(n, names.index("own_record"), dtype=np.int8),
            np.ones(n, dtype=np.float64),
            tuple(names),
        )

    @property
    def rule(self) -> np.ndarray:
        return np.array(self.names, dtype=object)[self.rank]

    def edge(self, a: int, b: int, rule: str, confidence: float) -> bool:
        """One edge (decisions, scored pairs): the same crediting as `edges`, without a pass
        over every record."""
        if a == b:
            return True
        if not self.clusters.union(a, b):
            self.blocked += 1
            return False
        r = self.names.index(rule)
        for i in (a, b):
            if r < self.rank[i] or (r == self.rank[i] and confidence > self.confidence[i]):
                self.rank[i], self.confidence[i] = r, confidence
        return True

    def edges(
        self, a: np.ndarray, b: np.ndarray, rule: str, confidence: float | np.ndarray
    ) -> np.ndarray:
        """Join records a[k] and b[k] under `rule`; each joined record is credited with the
        strongest rule (then the highest confidence) that joined it."""
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        conf = np.broadcast_to(np.asarray(confidence, dtype=np.float64), a.shape)
        loops = a == b
        ok = np.ones(len(a), dtype=bool)
        ok[~loops] = self.clusters.bulk(a[~loops], b[~loops])
        self.blocked += int((~ok).sum())
        done = ok & ~loops
        ends = np.concatenate([a[done], b[done]])
        best = np.full(len(self.keys), -1.0)
        np.maximum.at(best, ends, np.concatenate([conf[done], conf[done]]))
        r = self.names.index(rule)
        hit = best >= 0
        better = hit & ((self.rank > r) | ((self.rank == r) & (best > self.confidence)))
        self.rank[better] = r
        self.confidence[better] = best[better]
        return ok

    def carry(self, previous: pa.Table | None) -> None:
        """Keep what earlier runs decided: records that shared a canonical id stay together
        (unless a 'different' decision parts them), each with the rule and confidence that
        joined it; new records are then scored against these clusters, and a record's later
        version (a move, a new phone) does not undo a link made before. `previous`: the
        entity's published identity links."""
        if previous is None or previous.num_rows == 0:
            return
        prev = previous.filter(pc.is_valid(previous["canonical_id"]))
        pos = pc.index_in(prev["record_key"], value_set=pa.array(self.keys, pa.string()))
        prev, pos = prev.filter(pc.is_valid(pos)), pos.filter(pc.is_valid(pos))
        if prev.num_rows == 0:
            return
        idx = pos.to_numpy(zero_copy_only=False).astype(np.int64)
        ids = prev["canonical_id"].to_numpy(zero_copy_only=False).astype(object)
        _, first = np.unique(ids, return_index=True)
        leader_of = dict(zip(ids[first].tolist(), idx[first].tolist(), strict=True))
        lead = np.array([leader_of[c] for c in ids.tolist()], dtype=np.int64)
        apart = lead != idx
        ok = np.ones(len(idx), dtype=bool)
        ok[apart] = self.clusters.bulk(lead[apart], idx[apart])
        self.blocked += int((~ok).sum())
        names = {n: i for i, n in enumerate(self.names)}
        for i, rule, conf in zip(
            idx[ok].tolist(),
            prev["rule"].filter(pa.array(ok)).to_pylist(),
            prev["confidence"].filter(pa.array(ok)).to_pylist(),
            strict=True,
        ):
            r = names.get(rule)
            if r is not None and (r, -conf) < (self.rank[i], -self.confidence[i]):
                self.rank[i], self.confidence[i] = r, conf

    def decisions(self, decisions: Sequence[Decision]) -> None:
        for d in decisions:
            if d.same and d.entity_type == self.entity_type:
                a, b = self.index.get(d.left), self.index.get(d.right)
                if a is not None and b is not None:
                    self.edge(a, b, "confirmed_decision", 1.0)

    def scored(
        self,
        pairs: pa.Table,
        merge: float,
        candidates: pa.Table,
        shown: Callable[[pa.Table], pa.Table] = lambda t: t,
        exclusive: Exclusive | None = None,
    ) -> None:
        """Merge pairs at or above `merge`, most probable first; queue the rest (already >=
        review) for review, with the records' values as `shown` lets a reviewer see them
        (masking.py). A pair whose clusters carry different values of an exclusive key (two
        national ids) is queued, not merged, with that key named in its evidence. Linking
        datasets (link_only), a pair whose clusters both hold a record of one dataset is
        dropped: each cluster keeps its single best link per dataset, as Splink's
        `cluster_using_single_best_links` does."""
        queued = []
        rows = sorted(
            pairs.to_pylist(),
            key=lambda r: (-r["match_probability"], r["unique_id_l"], r["unique_id_r"]),
        )
        for row in rows:
            a, b = self.index[row["unique_id_l"]], self.index[row["unique_id_r"]]
            ra, rb = self.clusters.find(a), self.clusters.find(b)
            if ra == rb:
                continue
            p = float(row["match_probability"])
            if not self.clusters.allowed(a, b):
                continue  # decided: different
            if exclusive and exclusive.same_side(ra, rb):
                continue
            clash = exclusive.clash(ra, rb) if exclusive else None
            if p >= merge and clash is None:
                self.edge(a, b, "scored_match", round(p, 6))
                if exclusive:
                    exclusive.joined(ra, rb, self.clusters.find(a))
            else:
                if clash is not None:
                    row = {**row, "evidence": _with_clash(row["evidence"], clash)}
                queued.append(row)
        if not queued:
            return
        ids = {r["unique_id_l"] for r in queued} | {r["unique_id_r"] for r in queued}
        rows = candidates.filter(pc.is_in(candidates["unique_id"], pa.array(sorted(ids))))
        attrs = dict(zip(rows["unique_id"].to_pylist(), shown(rows).to_pylist(), strict=True))
        for row in queued:
            self.review.append(
                {
                    "entity_type": self.entity_type,
                    "left_record": row["unique_id_l"],
                    "right_record": row["unique_id_r"],
                    "match_probability": float(row["match_probability"]),
                    "match_weight": float(row["match_weight"]),
                    "evidence": row["evidence"],
                    "left_attributes": json.dumps(attrs[row["unique_id_l"]], default=str),
                    "right_attributes": json.dumps(attrs[row["unique_id_r"]], default=str),
                }
            )


class Exclusive:
    """The values each cluster carries of the exclusive keys (`keys: [{exclusive: true}]`):
    one person has one national id, so clusters carrying different ones are two people."""

    def __init__(
        self,
        values: dict[int, dict[str, set[str]]],
        sides: dict[int, set[str]] | None = None,
        within: dict[str, int] | None = None,
    ) -> None:
        self.values = values  # cluster root -> key name -> values
        self.within = within or {}  # key name -> edits that make two values one mistyped
        # link_only: cluster root -> the datasets it holds records of (each duplicate-free)
        self.sides = sides

    def same_side(self, ra: int, rb: int) -> bool:
        """Both clusters hold a record of one duplicate-free dataset (link_only)."""
        if self.sides is None:
            return False
        return bool(self.sides.get(ra, set()) & self.sides.get(rb, set()))

    def clash(self, ra: int, rb: int) -> str | None:
        """The first exclusive key both clusters carry with no value in common."""
        va, vb = self.values.get(ra, {}), self.values.get(rb, {})
        for name, values in va.items():
            other = vb.get(name)
            if not other or not values or values & other:
                continue
            k = self.within.get(name, 0)
            if not any(edits_within(x, y, k) for x in values for y in other):
                return name
        return None

    def joined(self, ra: int, rb: int, root: int) -> None:
        va, vb = self.values.pop(ra, {}), self.values.pop(rb, {})
        merged = {k: set(va.get(k, ())) | set(vb.get(k, ())) for k in va.keys() | vb.keys()}
        if merged:
            self.values[root] = merged
        if self.sides is not None:
            self.sides[root] = self.sides.pop(ra, set()) | self.sides.pop(rb, set())


def edits_within(a: str, b: str, k: int) -> bool:
    """Whether `a` becomes `b` in at most `k` edits (insert, delete, substitute, swap two
    neighbours: optimal string alignment distance)."""
    if k <= 0 or abs(len(a) - len(b)) > k:
        return a == b
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1] <= k


def _with_clash(evidence: str, key: str) -> str:
    """The pair's evidence, naming the exclusive key whose values differ."""
    out = json.loads(evidence) if evidence else {}
    out["exclusive_key"] = f"{key} differs: not merged"
    return json.dumps(out)


def pair_id(entity_type: str, a: str, b: str) -> str:
    lo, hi = sorted((a, b))
    return hashlib.sha1(f"{entity_type}|{lo}|{hi}".encode()).hexdigest()[:16]


def _cursor(db: duckdb.DuckDBPyConnection | None) -> duckdb.DuckDBPyConnection:
    """A connection of its own (temp tables, registrations) on the caller's database, with the
    caller's PII hashing (`pii_hash`, resources/pii.py) when it has one: the review queue shows
    hashes, never clear values (masking.py)."""
    if db is None:
        return connect()
    cur = db.cursor()
    salt = db.execute("SELECT getvariable('pii_salt')").fetchall()[0][0]
    if salt:
        install_pii(cur, salt)
    return cur


def _with_index(records: pa.Table) -> pa.Table:
    return records.append_column("i", pa.array(np.arange(records.num_rows, dtype=np.int64)))


def _pairs(rel: duckdb.DuckDBPyRelation) -> tuple[np.ndarray, ...]:
    """A query's columns as NumPy arrays (edge lists: a, b[, confidence])."""
    t = rel.to_arrow_table()
    return tuple(t.column(c).to_numpy() for c in t.column_names)


def _stable_links(con: duckdb.DuckDBPyConnection, lk: Linking, table: str) -> list[tuple[int, str]]:
    """Join records to the records their stable ids reference; return references to ids no
    record carries (the caller lists them as unmapped)."""
    refs = con.sql(
        f"""SELECT r.i AS a, k.i AS b, r.target FROM (
                SELECT i, unnest(link_keys::VARCHAR[]) AS target,
                    unnest(range(len(link_keys))) AS pos
                FROM {table}) r
            LEFT JOIN {table} k ON k.record_key = r.target
            ORDER BY r.i, r.pos"""
    ).to_arrow_table()
    found = pc.is_valid(refs["b"])
    hit = refs.filter(found)
    lk.edges(hit["a"].to_numpy(), hit["b"].to_numpy(), "stable_id", 1.0)
    miss = refs.filter(pc.invert(found))
    return list(zip(miss["a"].to_pylist(), miss["target"].to_pylist(), strict=True))


def _register_roots(con: duckdb.DuckDBPyConnection, lk: Linking) -> None:
    con.register("roots", pa.table({"i": np.arange(len(lk.keys)), "root": lk.clusters.roots()}))


# -- accounts ------------------------------------------------------------------------------


def link_companies(
    records: pa.Table,
    people: pa.Table,
    rules: Rules,
    decisions: Sequence[Decision],
    db: duckdb.DuckDBPyConnection | None = None,
    previous: pa.Table | None = None,
) -> tuple[Linking, list[tuple[int, str]]]:
    """`previous`: the accounts' links of the last run (`Linking.carry`)."""
    r = rules.accounts
    keys = records.column("record_key").to_pylist()
    lk = Linking.of("account", keys, decisions, r.rule_order)
    con = _cursor(db)
    con.register("recs", _with_index(records))
    con.register("people", people)
    con.register("generic", pa.table({"d": list(rules.normalize.generic_email_domains)}))

    lk.carry(previous)
    missing = _stable_links(con, lk, "recs")
    lk.decisions(decisions)

    # Verified company domain: a website or company-domain field, never an email's domain.
    # Each domain's leader: its first system-of-record record.
    con.execute(
        """CREATE TEMP TABLE domains AS SELECT i, domain, first_value(i) OVER (
                PARTITION BY domain ORDER BY NOT is_anchor, record_key) AS leader
            FROM recs WHERE domain IS NOT NULL AND domain NOT IN (SELECT d FROM generic)"""
    )
    a, b = _pairs(con.sql("SELECT leader, i FROM domains WHERE i <> leader ORDER BY i"))
    lk.edges(a, b, "verified_domain", 0.99)
    _exact_keys(con, lk, r, rules)

    # A billing email's domain joins the company that verified that domain, unless the address
    # is a shared inbox: the same address on records of one source that are still apart.
    _register_roots(con, lk)
    con.execute(
        """CREATE TEMP TABLE shared AS SELECT DISTINCT email_key FROM (
                SELECT email_key FROM recs JOIN roots USING (i) WHERE email_key IS NOT NULL
                GROUP BY split_part(record_key, ':', 1), email_key
                HAVING count(DISTINCT root) > 1)"""
    )
    a, b = _pairs(
        con.sql(
            """SELECT DISTINCT d.leader, r.i FROM recs r
                JOIN (SELECT DISTINCT domain, leader FROM domains) d ON d.domain = r.email_domain
                WHERE r.email_domain NOT IN (SELECT d FROM generic)
                  AND (r.email_key IS NULL OR r.email_key NOT IN (SELECT email_key FROM shared))
                ORDER BY r.i"""
        )
    )
    lk.edges(a, b, "email_domain", 0.97)

    # A product surface with no stable id and no domain: the domain its people's emails share.
    _register_roots(con, lk)
    a, b, share = _pairs(
        con.sql(
            f"""WITH anchored AS (SELECT DISTINCT root FROM recs JOIN roots USING (i)
                    WHERE is_anchor),
                votes AS (SELECT account_ref AS ref, email_domain AS d, count(*) AS n
                    FROM people WHERE account_ref IS NOT NULL AND email_domain IS NOT NULL
                      AND email_domain NOT IN (SELECT d FROM generic)
                      AND (email_key IS NULL
                           OR email_key NOT IN (SELECT email_key FROM shared))
                    GROUP BY ALL),
                top AS (SELECT ref, d, n, n / sum(n) OVER (PARTITION BY ref) AS share,
                    row_number() OVER (PARTITION BY ref ORDER BY n DESC, d) AS k FROM votes)
                SELECT DISTINCT dm.leader, r.i, top.share FROM top
                JOIN recs r ON r.record_key = top.ref
                JOIN roots USING (i)
                JOIN (SELECT DISTINCT domain, leader FROM domains) dm ON dm.domain = top.d
                WHERE top.k = 1 AND top.share >= {r.member_domain_min_share}
                  AND top.n >= {r.member_domain_min_people}
                  AND roots.root NOT IN (SELECT root FROM anchored)
                ORDER BY r.i"""
        )
    )
    lk.edges(a, b, "member_domain", np.round(np.minimum(0.99, share.astype(float)), 4))

    _register_roots(con, lk)
    _score(con, lk, r)
    con.close()
    return lk, missing


def _dataset_sql(r: EntityRules) -> str:
    """A record's dataset (Splink's source_dataset): its source's configured one, else its
    source (`<system>/<object>`, the record key's prefix)."""
    src = "split_part(record_key, ':', 1)"
    if not r.datasets:
        return src
    whens = " ".join(f"WHEN {literal(s)} THEN {literal(d)}" for s, d in r.datasets.items())
    return f"(CASE {src} {whens} ELSE {src} END)"


def _exact_keys(con: duckdb.DuckDBPyConnection, lk: Linking, r: EntityRules, rules: Rules) -> None:
    """The entity's exact-key rules, in order: records sharing every column of a key are one,
    unless a guard says the value is shared (see `_key_edges`)."""
    have = {c[0] for c in con.sql("DESCRIBE recs").fetchall()}
    for key in r.keys:
        if not set(key.reads) <= have:
            continue  # no record carries one of its columns: the key cannot apply
        a, b, conf = _pairs(con.sql(_key_edges(key, r, rules)))
        lk.edges(a, b, key.name, conf.astype(float))


def _key_edges(key: Key, r: EntityRules, rules: Rules) -> str:
    """Edges (leader, record, confidence) of one key. A value is no key when its records carry
    more than `distinct` values of a guard column (a shared inbox names different people), when
    it is a team mailbox (`skip_role_mailboxes`), or, for link_only, when two of its records
    come from one dataset (a link joins across datasets only)."""
    cols = [ident(c) for c in key.columns]
    present = " AND ".join(f"nullif({c}::VARCHAR, '') IS NOT NULL" for c in cols)
    if key.skip_role_mailboxes:
        present += " AND NOT coalesce(role_mailbox, false)"
    guards = [f"count(DISTINCT nullif({ident(c)}::VARCHAR, '')) <= {n}" for c, n in key.distinct]
    if r.link_type == "link_only":
        guards.append(f"count(*) = count(DISTINCT {_dataset_sql(r)})")
    having = " AND ".join(["count(*) > 1", *guards])
    conf = str(key.confidence)
    if key.generic_domain_confidence is not None:
        generic = "[" + ", ".join(literal(d) for d in rules.normalize.generic_email_domains)
        conf = (
            f"CASE WHEN list_contains({generic}]::VARCHAR[], r.email_domain) "
            f"THEN {key.generic_domain_confidence} ELSE {key.confidence} END"
        )
    on = " AND ".join(f"r.{c} = g.{c}" for c in cols)
    return f"""WITH g AS (SELECT {", ".join(cols)}, min(i) AS leader FROM recs
                WHERE {present} GROUP BY ALL HAVING {having})
            SELECT g.leader, r.i, {conf} AS conf
            FROM (SELECT * FROM recs WHERE {present}) r JOIN g ON {on}
            WHERE r.i <> g.leader ORDER BY r.i"""


SCORING_ROUNDS = 5


def _score(con: duckdb.DuckDBPyConnection, lk: Linking, r: EntityRules) -> None:
    """Scored matching to a fixed point: a cluster that grew by a scored merge shows other
    values, so it is scored again until a round merges nothing, and that round's pairs are the
    review queue. A run that carries these clusters (`Linking.carry`) then starts at the fixed
    point and queues the same pairs: building twice over the same data changes no table."""
    for _ in range(SCORING_ROUNDS):
        queued, clusters = len(lk.review), len(np.unique(lk.clusters.roots()))
        _score_once(con, lk, r)
        if len(np.unique(lk.clusters.roots())) == clusters:
            return
        del lk.review[queued:]  # queued from clusters that have since grown: score them again
        _register_roots(con, lk)
    _score_once(con, lk, r)


def _score_once(con: duckdb.DuckDBPyConnection, lk: Linking, r: EntityRules) -> None:
    """One candidate row per cluster (per cluster and dataset when linking datasets), scored by
    Splink over the columns the rules read. A cluster's values are its members' most common
    ones (ties: the smallest); its key is its first system-of-record record."""
    if not r.scoring.comparisons:
        return
    have = {c[0] for c in con.sql("DESCRIBE recs").fetchall()}
    anchor = "NOT is_anchor, " if "is_anchor" in have else ""
    fields = r.scoring.columns
    cols = [f for f in fields if f in have]
    linking = r.link_type != "dedupe_only"
    group = "root, source_dataset" if linking else "root"
    ds = f", {_dataset_sql(r)} AS source_dataset" if linking else ""
    ctes = [f"base AS (SELECT *{ds} FROM recs JOIN roots USING (i))"]
    ctes += [
        f"""m_{f} AS (SELECT {group}, first(v ORDER BY c DESC, v) AS {ident(f)} FROM (
                SELECT {group}, {ident(f)}::VARCHAR AS v, count(*) AS c FROM base
                WHERE nullif({ident(f)}::VARCHAR, '') IS NOT NULL GROUP BY ALL) GROUP BY ALL)"""
        for f in cols
    ]
    picks = ", ".join(ident(f) if f in have else f"NULL::VARCHAR AS {ident(f)}" for f in fields)
    joins = " ".join(f"LEFT JOIN m_{f} USING ({group})" for f in cols)
    candidates = con.sql(
        f"""WITH {", ".join(ctes)},
            reps AS (SELECT {group}, first(record_key ORDER BY {anchor}record_key) AS unique_id
                FROM base GROUP BY ALL)
            SELECT unique_id, {"source_dataset, " if linking else ""}{picks}
            FROM reps {joins} ORDER BY unique_id"""
    ).to_arrow_table()
    pairs = score_pairs(candidates, r.scoring, con, lambda: _labelled(con, fields, have))
    lk.scored(
        pairs,
        r.scoring.merge,
        candidates,
        lambda rows: reviewer_view(con, rows),
        _exclusive(con, r, have) if pairs.num_rows else None,
    )


# Records per cluster m is learned from: a cluster of n records gives n(n-1)/2 pairs.
LABELLED_PER_CLUSTER = 50


def _labelled(con: duckdb.DuckDBPyConnection, fields: Sequence[str], have: set[str]) -> pa.Table:
    """Every record with the cluster the earlier rules put it in (`label`), in the candidates'
    columns (values as text, blanks as NULL), at most LABELLED_PER_CLUSTER per cluster."""
    picks = ", ".join(
        f"nullif({ident(f)}::VARCHAR, '') AS {ident(f)}"
        if f in have
        else f"NULL::VARCHAR AS {ident(f)}"
        for f in fields
    )
    return con.sql(
        f"""SELECT record_key AS unique_id, root::VARCHAR AS label, {picks}
            FROM recs JOIN roots USING (i)
            QUALIFY row_number() OVER (PARTITION BY root ORDER BY record_key)
                <= {LABELLED_PER_CLUSTER}
            ORDER BY unique_id"""
    ).to_arrow_table()


def _exclusive(con: duckdb.DuckDBPyConnection, r: EntityRules, have: set[str]) -> Exclusive | None:
    """Each cluster's values of the entity's exclusive keys, and under link_only the datasets
    it holds records of (`recs` and `roots` registered)."""
    keys = [k for k in r.keys if k.exclusive and set(k.columns) <= have]
    sides = None
    if r.link_type == "link_only":
        got = con.sql(
            f"""SELECT root, list(DISTINCT {_dataset_sql(r)}) FROM recs JOIN roots USING (i)
                GROUP BY root"""
        ).fetchall()
        sides = {int(root): set(ds) for root, ds in got}
    if not keys and sides is None:
        return None
    values: dict[int, dict[str, set[str]]] = defaultdict(dict)
    for k in keys:
        cols = [f"{ident(c)}::VARCHAR" for c in k.columns]
        present = " AND ".join(f"nullif({c}, '') IS NOT NULL" for c in cols)
        got = con.sql(
            f"""SELECT root, list(DISTINCT concat_ws(chr(31), {", ".join(cols)})) AS v
                FROM recs JOIN roots USING (i) WHERE {present} GROUP BY root"""
        ).fetchall()
        for root, vals in got:
            values[int(root)][k.name] = set(vals)
    return Exclusive(dict(values), sides, {k.name: k.exclusive_within for k in keys})


# -- persons -------------------------------------------------------------------------------


def link_people(
    records: pa.Table,
    account_of_company: Mapping[str, str] | pa.Table,
    rules: Rules,
    decisions: Sequence[Decision],
    db: duckdb.DuckDBPyConnection | None = None,
    previous: pa.Table | None = None,
) -> tuple[Linking, list[tuple[int, str]]]:
    """`account_of_company`: company record key -> canonical account id (a mapping, or a table
    of record_key, canonical_id); `previous`: the people's links of the last run."""
    r = rules.persons
    keys = records.column("record_key").to_pylist()
    lk = Linking.of("person", keys, decisions, r.rule_order)
    if not isinstance(account_of_company, pa.Table):
        account_of_company = pa.table(
            {
                "record_key": pa.array(list(account_of_company), pa.string()),
                "canonical_id": pa.array(list(account_of_company.values()), pa.string()),
            }
        )
    con = _cursor(db)
    con.register("people_in", _with_index(records))
    con.register("accounts", account_of_company)
    con.register("generic", pa.table({"d": list(rules.normalize.generic_email_domains)}))
    con.execute(
        """CREATE TEMP TABLE recs AS SELECT p.*, a.canonical_id::VARCHAR AS account_id
            FROM people_in p LEFT JOIN accounts a ON a.record_key = p.account_ref ORDER BY p.i"""
    )

    lk.carry(previous)
    missing = _stable_links(con, lk, "recs")
    lk.decisions(decisions)

    _exact_keys(con, lk, r, rules)

    _register_roots(con, lk)
    _score(con, lk, r)
    con.close()
    return lk, missing


# -- persistent ids ------------------------------------------------------------------------


@dataclass
class Assigned:
    ids: dict[int, str | None]  # cluster root -> canonical id (None: not minted)
    changes: list[dict]  # merges and splits of known ids


Previous = Mapping[str, tuple[str | None, datetime]] | pa.Table


def _previous_table(previous: Previous) -> pa.Table:
    if isinstance(previous, pa.Table):
        return previous
    return pa.table(
        {
            "record_key": pa.array(list(previous), pa.string()),
            "canonical_id": pa.array([v[0] for v in previous.values()], pa.string()),
            "linked_at": pa.array([v[1] for v in previous.values()], pa.timestamp("us", tz="UTC")),
        }
    )


def _aligned(keys: Sequence[str], previous: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Each record's canonical id and linked_at on the previous run (null if new)."""
    known = pa.chunked_array(previous["record_key"], pa.string()).combine_chunks()
    pos = pc.index_in(pa.array(keys, pa.string()), value_set=known)
    cid = previous["canonical_id"].take(pos).combine_chunks()
    at = previous["linked_at"].take(pos).combine_chunks().cast(pa.timestamp("us", tz="UTC"))
    return cid, at


def assign_ids(
    lk: Linking,
    previous: Previous,
    prefix: str,
    mintable: set[int] | None,
    now: datetime,
) -> Assigned:
    roots = lk.clusters.roots()
    founders = (
        pa.table({"root": roots, "key": pa.array(lk.keys, pa.string())})
        .group_by("root")
        .aggregate([("key", "min")])
    )
    founder = dict(zip(founders["root"].to_pylist(), founders["key_min"].to_pylist(), strict=True))
    # Which clusters hold each known id, by how many of its records.
    cid, at = _aligned(lk.keys, _previous_table(previous))
    known = pa.table({"cid": cid, "root": roots, "at": at}).filter(pc.is_valid(cid))
    held = known.group_by(["cid", "root"]).aggregate([("at", "count")])
    firsts = known.group_by("cid").aggregate([("at", "min")])
    first_linked = dict(zip(firsts["cid"].to_pylist(), firsts["at_min"].to_pylist(), strict=True))
    holders: dict[str, dict[int, int]] = defaultdict(dict)
    for c, r, n in zip(
        held["cid"].to_pylist(), held["root"].to_pylist(), held["at_count"].to_pylist(), strict=True
    ):
        holders[c][r] = n
    # Each known id goes to the cluster holding most of its records; the others lost it.
    won: dict[int, list[str]] = defaultdict(list)
    lost: dict[int, set[str]] = defaultdict(set)
    for c, by_root in holders.items():
        win = min(by_root, key=lambda r, by_root=by_root: (-by_root[r], founder[r]))
        won[win].append(c)
        for r in by_root:
            if r != win:
                lost[r].add(c)
    used = set(holders)
    ids: dict[int, str | None] = {}
    changes: list[dict] = []
    for root in sorted(founder, key=founder.__getitem__):
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
        changes += [
            _change(lk.entity_type, old, ids[root], "split", now)
            for old in sorted(lost.get(root, ()))
        ]
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
    lk: Linking, records: pa.Table, assigned: Assigned, previous: Previous, now: datetime
) -> pa.Table:
    ids = pa.array([assigned.ids[r] for r in lk.clusters.roots().tolist()], pa.string())
    prev_id, prev_at = _aligned(lk.keys, _previous_table(previous))
    # Same id as before (an unminted record stays unminted): keep the first linked_at.
    same = pc.fill_null(pc.equal(prev_id, ids), False)
    still_none = pc.and_(pc.and_(pc.is_null(prev_id), pc.is_null(ids)), pc.is_valid(prev_at))
    kept = pc.or_(same, still_none)
    stamp = pa.scalar(now, pa.timestamp("us", tz="UTC"))
    return pa.table(
        {
            "entity_type": pa.array([lk.entity_type] * len(ids), pa.string()),
            "system": records.column("system"),
            "object": records.column("object"),
            "source_id": records.column("source_id"),
            "record_key": records.column("record_key"),
            "canonical_id": ids,
            "rule": pa.array(lk.rule.tolist(), pa.string()),
            "confidence": pa.array(lk.confidence, pa.float64()),
            "linked_at": pc.if_else(kept, prev_at, stamp),
        }
    )


def previous_links(links: pa.Table, entity_type: str) -> pa.Table:
    """record_key, canonical id (or null) and linked_at as published by the previous run."""
    cols = ["record_key", "canonical_id", "linked_at"]
    if links.num_rows == 0:
        return _previous_table({})
    return links.filter(pc.equal(links["entity_type"], entity_type)).select(cols)
