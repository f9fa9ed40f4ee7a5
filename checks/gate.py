"""Write-audit-publish: validate a batch with its Great Expectations suite before the Delta commit.

`dagster-ge` does not support GX 1.x, so the gate calls GX itself, inside the asset, before the
commit (a blocking Dagster check would run only after the data was already visible). Its result
is reported as an `AssetCheckResult`, so the UI shows the failing expectations either way.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, Failure, MetadataValue

from checks.contract import Expectation

SAMPLE_VALUES = 5
PARTIAL_UNEXPECTED = 20  # GX's own sample size in a BASIC result
POSITION = "gate_position"  # an expectation's place in the suite, kept in its GX meta


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
    nonmissing: int | None = None  # rows the unexpected share is taken of (GX: non-null ones)

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
    # GX's own result of the whole suite (every chunk and the batch summary), for Data Docs
    validation: Any = field(default=None, compare=False, repr=False)

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

    def write_docs(self, folder: str | Path) -> Path:
        """This validation's Great Expectations Data Docs page (replacing the suite's previous
        one) and the index of every suite's latest result."""
        from resources.data_docs import write_page

        status = {
            "passed": self.passed,
            "rows": self.rows,
            "expectations": len(self.outcomes),
            "failed": [o.expectation.label for o in self.failures],
        }
        return write_page(folder, self.suite, self.validation, status)

    def check_result(
        self,
        asset_key: AssetKey,
        check_name: str,
        docs_dir: str | None = None,
        detail: str = "",
    ) -> AssetCheckResult:
        """`detail`: what the suite cannot say itself (which file and line broke which rule),
        shown under the report when the gate fails. The Data Docs links are http URLs
        (`LAKEHOUSE_DATA_DOCS_URL`, served by `make dev`): browsers refuse file:// links from a
        web page."""
        from resources.data_docs import INDEX, url_of

        metadata = {
            "rows_validated": MetadataValue.int(self.rows),
            "expectations": MetadataValue.int(len(self.outcomes)),
            "failed_expectations": MetadataValue.int(len(self.failures)),
            "failed": MetadataValue.json([o.expectation.label for o in self.failures]),
            "results": MetadataValue.md(self.markdown()),
        }
        if detail and not self.passed:
            metadata["detail"] = MetadataValue.md(detail)
        if docs_dir and self.validation is not None:
            page = self.write_docs(docs_dir)
            metadata["data_docs"] = MetadataValue.url(url_of(page))
            metadata["data_docs_index"] = MetadataValue.url(url_of(INDEX))
        return AssetCheckResult(
            asset_key=asset_key,
            check_name=check_name,
            passed=self.passed,
            severity=AssetCheckSeverity.ERROR,
            description=None if self.passed else _joined(self.report(), detail),
            metadata=metadata,
        )

    def failure(self, what: str, detail: str = "") -> Failure:
        report = _joined(self.report(), detail)
        return Failure(
            description=f"{what} failed its quality gate; nothing was published.\n{report}",
            metadata={"failed": MetadataValue.json([o.describe() for o in self.failures])},
        )


def _joined(report: str, detail: str) -> str:
    return f"{report}\n{detail}" if detail else report


def validate(
    suite: str,
    expectations: Sequence[Expectation],
    table: pa.Table | Iterable[pa.Table],
    batch: dict[str, Any] | None = None,
) -> GateResult:
    """Run `expectations` on `table` (and on the one-row `batch` summary) with GX.

    `table` may come as chunks (a large raw batch): each chunk is validated in turn and the
    results are added up, so memory holds one chunk. Only for row-wise suites, whose chunks do
    not split what a uniqueness expectation compares (raw batches chunk by whole files).

    Whatever the runs, the result is one GX validation of the whole suite, named after the table
    (`suite` is its layer/table): the Data Docs page counts what the Dagster check counts.
    """
    on_table = [e for e in expectations if e.on == "table"]
    on_batch = [e for e in expectations if e.on == "batch"]
    results: list[Any] = []
    meta: dict[str, Any] | None = None
    rows = 0
    if on_table:
        per_chunk: list[list[Any]] = []
        for chunk in [table] if isinstance(table, pa.Table) else table:
            rows += chunk.num_rows
            found, run_meta = _run(suite, suite, on_table, _frame(chunk, on_table))
            per_chunk.append(found)
            meta = meta or run_meta
        results += [_combine(list(same)) for same in zip(*per_chunk, strict=True)]
    elif isinstance(table, pa.Table):
        rows = table.num_rows
    if on_batch:
        summary = pa.Table.from_pylist([batch or {}])
        found, run_meta = _run(f"{suite} (batch summary)", suite, on_batch, summary)
        results += found
        meta = meta or run_meta
    specs = [*on_table, *on_batch]
    return GateResult(
        suite=suite,
        rows=rows,
        outcomes=[_outcome(spec, res) for spec, res in zip(specs, results, strict=True)],
        validation=_suite_result(suite, results, meta) if results else None,
    )


def _suite_result(suite: str, results: list[Any], meta: dict[str, Any] | None) -> Any:
    """One GX suite result of the runs' results. GX records the data asset in
    `active_batch_definition` but its page renderer reads it from the batch spec, which a
    DataFrame batch leaves without one ("Data asset: None"): the table is named there."""
    from great_expectations.core import ExpectationSuiteValidationResult

    meta = dict(meta or {})
    meta["batch_spec"] = {**meta.get("batch_spec", {}), "data_asset_name": suite}
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta["run_id"] = {"run_name": now, "run_time": now}  # the page says when, not "__none__"
    passed = sum(bool(r.success) for r in results)
    return ExpectationSuiteValidationResult(
        success=passed == len(results),
        results=results,
        suite_name=suite,
        statistics={
            "evaluated_expectations": len(results),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(results) - passed,
            "success_percent": passed / len(results) * 100 if results else None,
        },
        meta=meta,
    )


def _combine(parts: list[Any]) -> Any:
    """One expectation's GX result over all chunks: counts add up, shares are recomputed,
    unexpected samples come from the first chunks, and it fails if any chunk failed."""
    if len(parts) == 1:
        return parts[0]
    from great_expectations.core import ExpectationValidationResult

    found = [p.result or {} for p in parts]
    failed = [p for p in parts if not p.success]
    merged = dict((failed or parts)[0].result or {})  # observed_value of an aggregate
    elements = sum(r.get("element_count") or 0 for r in found)
    merged["element_count"] = elements
    counted = [r for r in found if r.get("unexpected_count") is not None]
    if counted:
        unexpected = sum(r["unexpected_count"] for r in counted)
        missing = sum(r.get("missing_count") or 0 for r in counted)
        nonmissing = sum(_nonmissing(r) or 0 for r in counted)
        merged["unexpected_count"] = unexpected
        merged["unexpected_percent"] = unexpected / nonmissing * 100 if nonmissing else None
        if "missing_count" in merged:
            merged["missing_count"] = missing
            merged["missing_percent"] = missing / elements * 100 if elements else None
            merged["unexpected_percent_total"] = unexpected / elements * 100 if elements else None
            merged["unexpected_percent_nonmissing"] = merged["unexpected_percent"]
        sample = [v for r in counted for v in r.get("partial_unexpected_list", [])]
        merged["partial_unexpected_list"] = sample[:PARTIAL_UNEXPECTED]
    raised = [p for p in parts if _raised(p)]
    return ExpectationValidationResult(
        success=not failed,
        expectation_config=parts[0].expectation_config,
        result=merged,
        meta=parts[0].meta,
        exception_info=(raised or parts)[0].exception_info,
    )


def _raised(res: Any) -> bool:
    exc = res.exception_info or {}
    return bool(isinstance(exc, dict) and exc.get("raised_exception"))


def _outcome(spec: Expectation, res: Any) -> Outcome:
    r = res.result or {}
    exc = res.exception_info or {}
    return Outcome(
        expectation=spec,
        success=bool(res.success),
        element_count=r.get("element_count"),
        unexpected_count=r.get("unexpected_count"),
        unexpected_percent=r.get("unexpected_percent"),
        sample=_jsonable(r.get("partial_unexpected_list", [])[:SAMPLE_VALUES]),
        observed=_jsonable(r.get("observed_value")),
        exception=exc.get("exception_message") if _raised(res) else None,
        nonmissing=_nonmissing(r),
    )


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


def _run(
    asset: str, suite_name: str, expectations: Sequence[Expectation], table: pa.Table
) -> tuple[list[Any], dict[str, Any]]:
    """GX's results, in the order of `expectations` (GX groups them by column), and the run's
    meta (which batch of which data asset)."""
    gx, gxe = _gx()
    batch = _batch_definition(asset).get_batch(batch_parameters={"dataframe": table.to_pandas()})
    suite = gx.ExpectationSuite(
        name=suite_name,
        expectations=[_gx_expectation(gxe, e, i) for i, e in enumerate(expectations)],
    )
    # BASIC carries counts and sample values; SUMMARY adds row indexes, which on a 10M-row batch
    # cost ~10x the validation itself (56 s vs 5 s, measured on raw usage events).
    result = batch.validate(suite, result_format={"result_format": "BASIC"})
    by_position = {r.expectation_config.meta[POSITION]: r for r in result.results}
    return [by_position[i] for i in range(len(expectations))], dict(result.meta)


def _nonmissing(r: dict[str, Any]) -> int | None:
    if r.get("element_count") is None:
        return None
    return r["element_count"] - (r.get("missing_count") or 0)


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


def _gx_expectation(gxe: Any, spec: Expectation, position: int) -> Any:
    cls = getattr(gxe, "".join(part.title() for part in spec.type.split("_")))
    return cls(**spec.kwargs, meta={POSITION: position})


@functools.cache
def _context() -> Any:
    """One ephemeral GX context per process (each new one makes a temp docs folder)."""
    gx, _ = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no stderr noise
    context.data_sources.add_pandas(name="gate")
    return context


def _batch_definition(name: str) -> Any:
    """The whole-DataFrame batch of the data asset `name` (a table's layer/table)."""
    source = _context().data_sources.get("gate")
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name=name)
        return asset.add_batch_definition_whole_dataframe("batch")
    return asset.get_batch_definition("batch")


def _gx() -> tuple[Any, Any]:
    """Import GX lazily (4-10 s) with its usage analytics off."""
    from resources.quiet import telemetry_off

    telemetry_off()
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every DataFrame under this size (pandas row hashing, twice per
    # validation) only to label the batch; the gates never use that label, and it cost more
    # than the expectations themselves (4.2 of 5.2 s on 1M raw usage events, measured).
    pandas_execution_engine.HASH_THRESHOLD = 0

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx, gxe
