"""The quality gate over a batch that arrives in chunks (a large raw backlog is validated 1M
rows at a time): it must reach the verdict and the counts a single pass over the whole batch
would, wherever the bad rows sit."""

from __future__ import annotations

import pyarrow as pa

from checks.contract import Expectation
from checks.gate import validate

SUITE = [
    Expectation("expect_column_values_to_not_be_null", {"column": "event_id"}),
    Expectation("expect_column_values_to_be_in_set", {"column": "kind", "value_set": ["a", "b"]}),
    Expectation(
        "expect_column_values_to_be_between", {"column": "score", "min_value": 0, "max_value": 1}
    ),
    Expectation("expect_compound_columns_to_be_unique", {"column_list": ["file", "line"]}),
    Expectation(
        "expect_column_values_to_be_between",
        {"column": "quarantine_share", "min_value": 0.0, "max_value": 0.05},
        on="batch",
    ),
]


def _rows(file: str, n: int) -> dict[str, list]:
    return {
        "event_id": [f"{file}-{i}" for i in range(n)],
        "kind": ["a" if i % 2 else "b" for i in range(n)],
        "score": [None if i % 3 == 0 else 0.5 for i in range(n)],
        "file": [file] * n,
        "line": list(range(1, n + 1)),
    }


def _chunks() -> list[pa.Table]:
    first, second, third = _rows("f1", 40), _rows("f2", 40), _rows("f3", 40)
    first["score"][4] = 1.7  # out of range in the first chunk
    third["event_id"][7] = None  # a missing key in the last chunk
    third["kind"][8] = "zzz"
    return [pa.table(first), pa.table(second), pa.table(third)]


def _by_label(result) -> dict[str, tuple]:
    return {
        o.expectation.label: (o.success, o.element_count, o.unexpected_count, o.unexpected_percent)
        for o in result.outcomes
    }


def test_chunked_batch_gets_the_whole_batchs_verdict_and_counts():
    chunks = _chunks()
    summary = {"quarantine_share": 0.01}
    whole = validate("t", SUITE, pa.concat_tables(chunks), summary)
    chunked = validate("t", SUITE, iter(chunks), summary)

    assert not whole.passed and not chunked.passed
    assert chunked.rows == whole.rows == 120
    assert _by_label(chunked) == _by_label(whole)
    failed = {o.expectation.kwargs.get("column"): o for o in chunked.failures}
    assert set(failed) == {"event_id", "kind", "score"}
    assert failed["event_id"].unexpected_count == 1  # found in the last chunk
    assert failed["kind"].sample == ["zzz"]
    assert failed["score"].sample == [1.7]  # found in the first chunk
    # one GX result of the whole suite, as the check counts it: chunks added up, summary included
    stats = chunked.validation.statistics
    assert stats["evaluated_expectations"] == len(SUITE) == len(chunked.outcomes)
    assert stats["unsuccessful_expectations"] == 3
    by_type = {
        (r.expectation_config.type, r.expectation_config.kwargs.get("column")): r.result
        for r in chunked.validation.results
    }
    assert by_type[("expect_column_values_to_not_be_null", "event_id")]["element_count"] == 120
    assert by_type[("expect_column_values_to_be_between", "score")]["partial_unexpected_list"] == [
        1.7
    ]


def test_clean_chunks_pass():
    clean = [pa.table(_rows(f, 30)) for f in ("f1", "f2")]
    result = validate("t", SUITE, iter(clean), {"quarantine_share": 0.0})
    assert result.passed and result.rows == 60
