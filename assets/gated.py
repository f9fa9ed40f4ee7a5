"""The one way a table contract becomes a Dagster asset: a gated Delta table.

Every layer declares its tables in `checks/` and builds their assets here, so the key, group,
description, kinds, owner, tags, column metadata, writer pool and the blocking suite check are
derived from the contract in one place instead of restated at each decorator. The compute
function stays the layer's own: it validates with `checks.gate` and publishes (see
`assets/publish.py`), yielding the suite's check result under `SUITE_CHECK`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dagster import (
    AssetCheckSpec,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    AutomationCondition,
    BackfillPolicy,
    PartitionsDefinition,
    asset,
    multi_asset,
)

from assets.concurrency import writer_pool
from assets.metadata import OWNER, definition_metadata
from checks.contract import TableContract

KINDS = frozenset({"delta", "duckdb", "great_expectations"})
SUITE_CHECK = "gx_suite"
# `pool=NO_POOL`: the asset guards its own writes (events/events replaces days under a Delta
# predicate and retries a refused commit), so runs of different days go side by side.
NO_POOL = ""


def table_key(contract: TableContract) -> AssetKey:
    """`<layer>/<table>`: the asset key of a contract's table."""
    return AssetKey([contract.layer, contract.table])


def suite_check(contract: TableContract) -> AssetCheckSpec:
    """The blocking check every gated table declares: its GX suite, run before the commit."""
    return AssetCheckSpec(
        SUITE_CHECK,
        asset=table_key(contract),
        blocking=True,
        description=f"Great Expectations suite of {contract.name}, run before commit.",
    )


def tags_of(contract: TableContract, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """`layer`, and `pii` when the rows are about people (a personal value or a person's id)."""
    return {
        "layer": contract.layer,
        "pii": str(contract.holds_personal_data).lower(),
        **(extra or {}),
    }


def _shared(
    contract: TableContract,
    notes: str,
    kinds: Iterable[str],
    tags: Mapping[str, str] | None,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return {
        "description": contract.description + (f"\n\n{notes}" if notes else ""),
        "kinds": set(KINDS if kinds is None else kinds),
        "owners": [OWNER],
        "tags": tags_of(contract, tags),
        "metadata": {**definition_metadata(contract), **(metadata or {})},
    }


def gated_asset(
    contract: TableContract,
    *,
    deps: Sequence[AssetKey] = (),
    notes: str = "",
    kinds: Iterable[str] | None = None,
    tags: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    partitions_def: PartitionsDefinition | None = None,
    backfill_policy: BackfillPolicy | None = None,
    automation_condition: AutomationCondition | None = None,
    check_specs: Sequence[AssetCheckSpec] = (),
    pool: str | None = None,
) -> Callable[[Callable[..., Any]], AssetsDefinition]:
    """`@asset` for the contract's table: its shared metadata, its own writer pool (or `pool`),
    and the blocking suite check ahead of any `check_specs` the layer adds."""
    key = table_key(contract)
    chosen = writer_pool(key) if pool is None else pool
    return asset(
        key=key,
        group_name=contract.group_name,
        deps=list(deps),
        partitions_def=partitions_def,
        backfill_policy=backfill_policy,
        automation_condition=automation_condition,
        check_specs=[suite_check(contract), *check_specs],
        **({"pool": chosen} if chosen else {}),
        **_shared(contract, notes, kinds, tags, metadata),
    )


def gated_out(
    contract: TableContract,
    *,
    notes: str = "",
    kinds: Iterable[str] | None = None,
    tags: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    is_required: bool = True,
) -> AssetOut:
    """One output of a `gated_multi_asset`, with the same shared metadata as `gated_asset`.
    `is_required=False`: a run of the step may leave this table alone (e.g. a dry run)."""
    return AssetOut(
        key=table_key(contract),
        is_required=is_required,
        **_shared(contract, notes, kinds, tags, metadata),
    )


def gated_multi_asset(
    name: str,
    outs: Mapping[str, AssetOut],
    contracts: Sequence[TableContract],
    *,
    group: str,
    deps: Sequence[AssetKey] = (),
    check_specs: Sequence[AssetCheckSpec] = (),
    can_subset: bool = False,
) -> Callable[[Callable[..., Any]], AssetsDefinition]:
    """`@multi_asset` for tables written together (one step, one pool named after the step),
    each output gated by its own suite check."""
    return multi_asset(
        name=name,
        pool=writer_pool(name),
        group_name=group,
        outs=dict(outs),
        deps=list(deps),
        check_specs=[*(suite_check(c) for c in contracts), *check_specs],
        can_subset=can_subset,
    )
