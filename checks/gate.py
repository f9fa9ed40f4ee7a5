"""Write-audit-publish: validate a batch with its Great Expectations suite before the Delta commit.

`dagster-ge` does not support GX 1.x, so the gate calls GX itself, inside the asset, before the
commit (a blocking Dagster check would run only after the data was already visible). Its result
is reported as an `AssetCheckResult`, so the UI shows the failing expectations either way.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, Failure, MetadataValue

from checks.contract import Expectation

SAMPLE_VALUES = 5


@dataclass(frozen=True)
class Outcome:
    expectation: Expectation
    success: bool
    element_count: int | None
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: list[Any]
    observed: Any = None
    exception: str | None = None

    def describe(self) -> str:
        mark = "pass" if self.success else "FAIL"
        text = f"[{mark}] {self.expectation.label}"
        if self.unexpected_count:
            text += f": {self.unexpected_count} unexpected ({self.unexpected_percent:.2f}%)"
            if self.sample:
                text += f", e.g. {self.sample}"
        if self.observed is not None and not self.unexpected_count:
            text += f": observed {self.observed}"
        if self.exception:
            text += f": {self.exception}"
        return text


@dataclass(frozen=True)
class GateResult:
    suite: str
    rows: int
    outcomes: list[Outcome]

    @property
    def passed(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]

    def report(self) -> str:
        head = f"suite {self.suite}: {len(self.outcomes) - len(self.failures)}/"
        head += f"{len(self.outcomes)} expectations passed on {self.rows} rows"
        return "\n".join([head, *(o.describe() for o in self.outcomes)])

    def markdown(self) -> str:
        lines = ["| result | expectation | unexpected | sample |", "|---|---|---|---|"]
        for o in sorted(self.outcomes, key=lambda o: o.success):
            sample = ", ".join(repr(v) for v in o.sample).replace("|", "\\|")
            unexpected = "" if o.unexpected_count is None else f"{o.unexpected_count}"
            if o.exception:
                sample = o.exception.replace("|", "\\|")
            label = o.expectation.label.replace("|", "\\|")
            mark = "pass" if o.success else "**FAIL**"
            lines.append(f"| {mark} | `{label}` | {unexpected} | {sample} |")
        return "\n".join(lines)

    def check_result(self, asset_key: AssetKey, check_name: str) -> AssetCheckResult:
        return AssetCheckResult(
            asset_key=asset_key,
            check_name=check_name,
            passed=self.passed,
            severity=AssetCheckSeverity.ERROR,
            description=None if self.passed else self.report(),
            metadata={
                "rows_validated": MetadataValue.int(self.rows),
                "expectations": MetadataValue.int(len(self.outcomes)),
                "failed_expectations": MetadataValue.int(len(self.failures)),
                "failed": MetadataValue.json([o.expectation.label for o in self.failures]),
                "results": MetadataValue.md(self.markdown()),
            },
        )

    def failure(self, what: str) -> Failure:
        return Failure(
            description=f"{what} failed its quality gate; nothing was published.\n{self.report()}",
            metadata={"failed": MetadataValue.json([o.describe() for o in self.failures])},
        )


def validate(
    suite: str,
    expectations: Sequence[Expectation],
    table: pa.Table,
    batch: dict[str, Any] | None = None,
) -> GateResult:
    """Run `expectations` on `table` (and on the one-row `batch` summary) with GX."""
    outcomes: list[Outcome] = []
    on_table = [e for e in expectations if e.on == "table"]
    on_batch = [e for e in expectations if e.on == "batch"]
    if on_table:
        outcomes += _run(suite, on_table, _frame(table, on_table))
    if on_batch:
        outcomes += _run(f"{suite}.batch", on_batch, pa.Table.from_pylist([batch or {}]))
    return GateResult(suite=suite, rows=table.num_rows, outcomes=outcomes)


def _frame(table: pa.Table, expectations: Sequence[Expectation]) -> pa.Table:
    """Only the columns the suite reads go to pandas."""
    wanted: list[str] = []
    for e in expectations:
        for key in ("column", "column_A", "column_B"):
            if key in e.kwargs and e.kwargs[key] not in wanted:
                wanted.append(e.kwargs[key])
        for col in e.kwargs.get("column_list", []):
            if col not in wanted:
                wanted.append(col)
    present = [c for c in wanted if c in table.column_names]
    return table.select(present) if present else table


def _run(suite_name: str, expectations: Sequence[Expectation], table: pa.Table) -> list[Outcome]:
    gx, gxe = _gx()
    batch = _batch_definition(suite_name).get_batch(
        batch_parameters={"dataframe": table.to_pandas()}
    )
    suite = gx.ExpectationSuite(
        name=suite_name, expectations=[_gx_expectation(gxe, e) for e in expectations]
    )
    result = batch.validate(suite, result_format={"result_format": "SUMMARY"})
    outcomes = []
    for spec, res in zip(expectations, result.results, strict=True):
        r = res.result or {}
        exc = res.exception_info or {}
        raised = exc.get("raised_exception") if isinstance(exc, dict) else False
        outcomes.append(
            Outcome(
                expectation=spec,
                success=bool(res.success),
                element_count=r.get("element_count"),
                unexpected_count=r.get("unexpected_count"),
                unexpected_percent=r.get("unexpected_percent"),
                sample=_jsonable(r.get("partial_unexpected_list", [])[:SAMPLE_VALUES]),
                observed=_jsonable(r.get("observed_value")),
                exception=exc.get("exception_message") if raised else None,
            )
        )
    return outcomes


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value else "NaN"
    return str(value)


def _gx_expectation(gxe: Any, spec: Expectation) -> Any:
    cls = getattr(gxe, "".join(part.title() for part in spec.type.split("_")))
    return cls(**spec.kwargs)


@functools.cache
def _context() -> Any:
    """One ephemeral GX context per process (each new one makes a temp docs folder)."""
    gx, _ = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no stderr noise
    context.data_sources.add_pandas(name="gate")
    return context


def _batch_definition(suite_name: str) -> Any:
    source = _context().data_sources.get("gate")
    name = suite_name.replace("/", ".")
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name=name)
        return asset.add_batch_definition_whole_dataframe("batch")
    return asset.get_batch_definition("batch")


def _gx() -> tuple[Any, Any]:
    """Import GX lazily (4-10 s) with its usage analytics off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx, gxe
