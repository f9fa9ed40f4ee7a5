"""Entities layer: who is who (the identity map), then the canonical tables built on it.

`resolve_identities` is one step with four outputs (identity_links, identity_review,
identity_merges, unmapped_ids): they are decided together and published together, each behind
its own suite. The canonical tables (account, person, workspace, subscription, relationship,
attribute_history) are separate assets over the identity map and the raw record versions, each
gated by its suite, foreign keys included. A failed gate commits nothing: every Delta table keeps
its previous version. Which raw tables each reads follows from the catalog's roles
(`build_assets`, called when the code location is built).
"""

import time
from collections import Counter
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
)

from assets.entities import tables as build
from assets.entities.identity import (
    IdentityResult,
    keep_resolution,
    load_decisions,
    resolve_identities,
)
from assets.entities.known import KNOWN_PLANS, KnownValues
from assets.entities.rules import load_rules
from assets.gated import KINDS, SUITE_CHECK, gated_asset, gated_multi_asset, gated_out, table_key
from assets.metadata import published_metadata
from assets.publish import gate_and_publish
from assets.publish import publish_if_changed as _publish
from checks import entities as contracts
from checks.contract import Expectation, TableContract
from checks.gate import GateResult, validate
from checks.sources import Catalog, SourceObject, load_catalog
from resources.duckdb import DuckDBResource
from resources.identity import IdentityResource
from resources.lake import LakeResource
from resources.pii import PiiResource

GROUP = "entities"


def raw(catalog: Catalog, *roles: str, only: str | None = None) -> list[AssetKey]:
    """The asset keys of the raw tables of the objects playing any of `roles` (`only`: of
    those, the objects with that option set or that role field mapped)."""

    def read(o: SourceObject) -> bool:
        return only is None or bool(o.role.options.get(only) or o.role.fields.get(only))

    return [
        table_key(o.contract)
        for o in catalog.objects
        if o.role and o.role.role in roles and read(o)
    ]


def identity_deps(catalog: Catalog) -> list[AssetKey]:
    """The identity step reads every object with a role (records, references, the gaps)."""
    return [table_key(o.contract) for o in catalog.objects if o.role]


def _keep_first_seen(new: pa.Table, old: pa.Table, key_cols: list[str], ts_col: str) -> pa.Table:
    """Carry a first-seen timestamp over from the previous version for rows it already had."""
    if old.num_rows == 0 or new.num_rows == 0 or ts_col not in old.column_names:
        return new

    def keyed(t: pa.Table) -> pa.Table:  # null key parts compare equal here
        return pa.table({f"_k{i}": pc.fill_null(t[c], "\x00") for i, c in enumerate(key_cols)})

    prev = keyed(old).append_column("_prev", old[ts_col])
    cur = keyed(new).append_column("_row", pa.array(range(new.num_rows), pa.int64()))
    joined = cur.join(prev, [f"_k{i}" for i in range(len(key_cols))], join_type="left outer")
    joined = joined.sort_by("_row")
    ts = pc.coalesce(joined["_prev"], new[ts_col].combine_chunks())
    return new.set_column(new.schema.get_field_index(ts_col), new.schema.field(ts_col), ts)


# -- the identity step ------------------------------------------------------------------------


def identity_asset(catalog: Catalog) -> AssetsDefinition:
    """The identity step, depending on the raw tables of `catalog`'s role objects."""

    @gated_multi_asset(
        "resolve_identities",
        outs={
            c.table: gated_out(
                c, kinds=KINDS | ({"splink"} if c is contracts.IDENTITY_LINKS else set())
            )
            for c in contracts.IDENTITY_TABLES
        },
        contracts=contracts.IDENTITY_TABLES,
        group=GROUP,
        deps=identity_deps(catalog),
    )
    def resolve_identities_asset(
        context: AssetExecutionContext,
        lake: LakeResource,
        duckdb: DuckDBResource,
        identity: IdentityResource,
        pii: PiiResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Stable ids, then deterministic keys, then Splink scoring; persistent canonical ids."""
        yield from _resolve(context, lake, duckdb, identity, pii)

    return resolve_identities_asset


def _resolve(
    context: AssetExecutionContext,
    lake: LakeResource,
    duckdb: DuckDBResource,
    identity: IdentityResource,
    pii: PiiResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    from assets.entities import train  # lazily: `python -m assets.entities.train` runs it

    started = time.perf_counter()
    run = train.for_run(identity, lake)
    rules = run.rules
    decisions_file = identity.decisions_file(lake.root)
    decisions = load_decisions(decisions_file)
    L = contracts.IDENTITY_LINKS
    previous = lake.read(L.layer, L.table)
    with duckdb.connect() as con, train.training(run.trainer):
        pii.install(con, lake.root)
        result = resolve_identities(con, lake, rules, decisions, previous)
    weights_note = train.after_run(run, lake)
    elapsed = time.perf_counter() - started
    context.log.info(
        f"identity: {result.source_records:,} source records in {elapsed:.1f}s "
        f"({result.timings}); {len(decisions)} decision(s) from {decisions_file}"
    )
    outputs = _identity_outputs(lake, result, previous)
    gates = {
        c.table: validate(c.name, _identity_suite(c, rules), outputs[c.table])
        for c in contracts.IDENTITY_TABLES
    }
    for c in contracts.IDENTITY_TABLES:
        yield gates[c.table].check_result(table_key(c), SUITE_CHECK, lake.data_docs)
    _raise_if_failed(gates, "identity step")
    stats = _identity_stats(result, elapsed, len(decisions))
    stats["identity_links"]["weights"] = MetadataValue.text(weights_note)
    for c in PUBLISH_ORDER:
        table = outputs[c.table]
        published, wrote = _publish(lake, c, table, context.run_id)
        yield MaterializeResult(
            asset_key=table_key(c),
            metadata={
                **published_metadata(c, published, table.schema, table),
                "changed": wrote,
                **stats.get(c.table, {}),
            },
        )
    keep_resolution(lake, result)  # after the map: what it was resolved under


def _identity_suite(contract: TableContract, rules) -> list[Expectation]:
    """A table's suite; the identity map's `rule` accepts the built-in rules and the exact-key
    rules the stack's identity file names (`keys:`), which no static contract can list."""
    if contract is not contracts.IDENTITY_LINKS:
        return contract.suite()
    names = sorted(
        {*contracts.LINK_RULES, *(k.name for e in (rules.accounts, rules.persons) for k in e.keys)}
    )
    return [
        Expectation(e.type, {**e.kwargs, "value_set": names}, e.on)
        if e.type == "expect_column_values_to_be_in_set" and e.kwargs.get("column") == "rule"
        else e
        for e in contract.suite()
    ]


# The identity map is published last: a run killed before then leaves the map it started from,
# from which the re-run recomputes the same merges (the other three tables derive from the map).
PUBLISH_ORDER = (
    *(c for c in contracts.IDENTITY_TABLES if c is not contracts.IDENTITY_LINKS),
    contracts.IDENTITY_LINKS,
)


def _identity_outputs(
    lake: LakeResource, result: IdentityResult, previous: pa.Table
) -> dict[str, pa.Table]:
    def old(c: TableContract) -> pa.Table:
        return lake.read(c.layer, c.table)

    merges_old = _applied_merges(old(contracts.IDENTITY_MERGES), previous)
    merges = (
        pa.concat_tables([merges_old.cast(result.merges.schema), result.merges])
        if merges_old.num_rows
        else result.merges
    )
    return {
        "identity_links": result.links,
        "identity_review": _keep_first_seen(
            result.review, old(contracts.IDENTITY_REVIEW), ["pair_id"], "queued_at"
        ),
        "identity_merges": merges,
        "unmapped_ids": _keep_first_seen(
            result.unmapped,
            old(contracts.UNMAPPED_IDS),
            ["entity_type", "system", "object", "source_id", "reason", "referenced_from"],
            "detected_at",
        ),
    }


def _applied_merges(merges: pa.Table, links: pa.Table) -> pa.Table:
    """The merge log without the rows of a run killed before it published its identity map.
    A completed run links every record it moves at the time it records the move, so a row
    recorded after the newest `linked_at` of the map never took effect: this run, starting
    from the same map, records it again."""
    if merges.num_rows == 0:
        return merges
    newest = pc.max(links["linked_at"]) if links.num_rows else None
    if newest is None or not newest.is_valid:
        return merges.slice(0, 0)
    return merges.filter(pc.less_equal(merges["recorded_at"], newest))


def _counts(table: pa.Table, *cols: str) -> dict[str, int]:
    if table.num_rows == 0:
        return {}
    c = Counter(zip(*(table[col].to_pylist() for col in cols), strict=True))
    return {" / ".join(str(x) for x in k): n for k, n in sorted(c.items())}


def _identity_stats(result: IdentityResult, elapsed: float, decisions: int) -> dict[str, dict]:
    links, review, unmapped = result.links, result.review, result.unmapped
    per_minute = result.source_records / elapsed * 60 if elapsed else 0.0
    canon = links.filter(pc.is_valid(links["canonical_id"]))
    entities = _counts(canon.group_by(["entity_type", "canonical_id"]).aggregate([]), "entity_type")
    return {
        "identity_links": {
            "source_records": MetadataValue.int(result.source_records),
            "entities": MetadataValue.json(entities),
            "links_by_rule": MetadataValue.json(_counts(links, "entity_type", "rule")),
            "seconds": MetadataValue.float(round(elapsed, 2)),
            "records_per_minute": MetadataValue.int(int(per_minute)),
            "confirmed_decisions": MetadataValue.int(decisions),
        },
        "identity_review": {
            "pending_pairs": MetadataValue.json(_counts(review, "entity_type")),
        },
        "unmapped_ids": {
            "unmapped_by_system": MetadataValue.json(_counts(unmapped, "system", "object")),
            "unmapped_by_reason": MetadataValue.json(_counts(unmapped, "reason")),
        },
    }


def _raise_if_failed(gates: dict[str, GateResult], what: str) -> None:
    failed = [g for g in gates.values() if not g.passed]
    if failed:
        raise failed[0].failure(what)


# -- the canonical tables ---------------------------------------------------------------------

Builder = Callable[..., pa.Table]
# column -> referenced (contract, id column): checked against the referenced table's ids.
ForeignKeys = dict[str, tuple[TableContract, str]]


def build_entity_asset(
    contract: TableContract,
    builder: Builder,
    deps: list[AssetKey],
    foreign_keys: ForeignKeys | None = None,
    known: tuple[KnownValues, ...] = (),
) -> AssetsDefinition:
    """`known`: warning checks listing values the vocabulary does not know (entities/known.py)."""
    fks = foreign_keys or {}
    fk_text = "\n\n".join(
        f"Foreign key: `{col}` -> `{ref.name}.{ref_col}` (checked before commit)."
        for col, (ref, ref_col) in fks.items()
    )

    @gated_asset(
        contract,
        deps=[
            table_key(contracts.IDENTITY_LINKS),
            *deps,
            *(table_key(ref) for ref, _ in fks.values()),
        ],
        notes=fk_text,
        check_specs=[k.spec(table_key(contract)) for k in known],
    )
    def _entity(
        context: AssetExecutionContext,
        lake: LakeResource,
        duckdb: DuckDBResource,
        identity: IdentityResource,
        pii: PiiResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        rules = load_rules(identity.rules_path)
        links = lake.read("entities", "identity_links")
        with duckdb.connect() as con:
            pii.install(con, lake.root)
            build.prepare(con, lake, rules, links)
            table = builder(con, rules, contract)
        suite = [*contract.suite(), *_fk_expectations(lake, fks)]
        extra = {}
        for k in known:
            check, unknown = k.result(table_key(contract), table)
            extra[f"unknown_{k.section}"] = MetadataValue.json(unknown)
            yield check
        yield from gate_and_publish(context, lake, contract, table, extra=extra, suite=suite)

    return _entity


def _fk_expectations(lake: LakeResource, fks: ForeignKeys) -> list[Expectation]:
    out = []
    for col, (ref, ref_col) in fks.items():
        ids = (
            lake.read(ref.layer, ref.table, columns=[ref_col])
            if lake.exists(ref.layer, ref.table)
            else None
        )
        values = sorted(set(ids[ref_col].to_pylist())) if ids is not None else []
        out.append(
            Expectation("expect_column_values_to_be_in_set", {"column": col, "value_set": values})
        )
    return out


C = contracts
ACCOUNT_FK: ForeignKeys = {"account_id": (C.ACCOUNT, "account_id")}


def build_assets(catalog: Catalog | None = None) -> list[AssetsDefinition]:
    """The layer's assets, their raw dependencies read from the catalog's roles now (when the
    code location is built), never at import."""
    catalog = catalog or load_catalog()
    return [
        identity_asset(catalog),
        build_entity_asset(C.ACCOUNT, build.account, raw(catalog, "company")),
        build_entity_asset(C.PERSON, build.person, raw(catalog, "person", "ticket")),
        build_entity_asset(
            C.WORKSPACE,
            build.workspace,
            [*raw(catalog, "company", only="workspace"), *raw(catalog, "person")],
            ACCOUNT_FK,
        ),
        build_entity_asset(
            C.SUBSCRIPTION,
            build.subscription,
            raw(catalog, "subscription"),
            ACCOUNT_FK,
            known=(KNOWN_PLANS,),
        ),
        build_entity_asset(
            C.RELATIONSHIP,
            build.relationship,
            [*raw(catalog, "company", only="email"), *raw(catalog, "person", "membership")],
            {**ACCOUNT_FK, "person_id": (C.PERSON, "person_id")},
        ),
        build_entity_asset(
            C.ATTRIBUTE_HISTORY,
            build.attribute_history,
            [
                *raw(catalog, "company", only="anchor"),
                *raw(catalog, "subscription"),
                *raw(catalog, "person", only="title"),
            ],
        ),
    ]
