"""The Stripe connector against its stand-in: what a billing team relies on when its customers,
subscriptions and invoices are pulled from Stripe's API instead of an export.

A full pull is every record of the world at the API's clock (as the generator landed it); the
next run reads only what changed (new records by `created`, changes through the events API) and
misses nothing; 429s and a 500 in the middle of paging are retried; a run killed mid-paging and
run again lands each version once; a wrong key names the setting to fix."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import defaultdict
from pathlib import Path

import dlt
import pytest

from resources.vendors import stripe
from sample_company.generate import generate
from sample_company.standins.stripe import StripeStandIn

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
OBJECTS = tuple(stripe.OBJECTS)
FAST = {"request_backoff_factor": 0.01, "request_max_retry_delay": 2.0}


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stripe") / "landing"
    generate(out, accounts=150, days=60, stack="vendor")
    return out


def extract_days(landing: Path) -> list[str]:
    return sorted(p.name for p in (landing / "stripe" / "invoices").iterdir())


def end_of(day: str) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) + dt.timedelta(seconds=86_399)


def landed(landing: Path, obj: str, through: str) -> dict[str, dict]:
    """Each record's latest version in the generator's extracts dated up to `through`."""
    out: dict[str, dict] = {}
    for day in extract_days(landing):
        if day <= through:
            for f in sorted((landing / "stripe" / obj / day).glob("*.json")):
                out.update({r["id"]: r for r in json.loads(f.read_text())["data"]})
    return out


def source(standin: StripeStandIn, **kw):
    return stripe.source(
        base_url=standin.url,
        token=standin.token,
        objects=kw.pop("objects", OBJECTS),
        page_size=kw.pop("page_size", 25),
        now=lambda: standin.clock.timestamp(),
        **{**FAST, **kw},
    )


class Sink:
    """A dlt destination keeping what each completed load delivered, per run.

    Each record travels as one JSON string: dlt's normalizer would otherwise retype a value
    the world got wrong (`amount_due: "N/A"` lands as a variant column) and drop top-level
    nulls, and the test is about the records the API returned, exactly."""

    def __init__(self) -> None:
        self.runs: list[dict[str, list[dict]]] = []

    def destination(self):
        @dlt.destination(batch_size=1000, skip_dlt_columns_and_tables=True, max_table_nesting=0)
        def sink(items, table) -> None:
            self.runs[-1][table["name"]].extend(json.loads(i["record"]) for i in items)

        return sink()

    def run(self, pipeline, src) -> dict[str, list[dict]]:
        self.runs.append(defaultdict(list))
        for resource in src.resources.values():
            resource.add_map(lambda r: {"id": r["id"], "record": json.dumps(r, sort_keys=True)})
        pipeline.run(src)
        return self.runs[-1]


def pull(src, where: Path) -> dict[str, list[dict]]:
    """One run of a fresh pipeline (its state under `where`): the records it delivered."""
    sink = Sink()
    return sink.run(
        dlt.pipeline("pull", pipelines_dir=str(where), destination=sink.destination()), src
    )


def test_full_pull_is_every_record_at_the_clock(landing: Path, tmp_path) -> None:
    day = extract_days(landing)[4]
    with StripeStandIn(landing, clock=end_of(day)) as api:
        got = pull(source(api), tmp_path)
        for obj in OBJECTS:
            want = landed(landing, obj, day)
            ids = [r["id"] for r in got[obj]]
            assert len(ids) == len(set(ids)), f"{obj}: a record pulled twice"
            assert {r["id"]: r for r in got[obj]} == want, obj
        # subscriptions listed with status=all: canceled ones are in the pull too
        assert any(r["status"] == "canceled" for r in got["subscriptions"])
        assert all(q.query.get("status") == ["all"] for q in api.requests("/v1/subscriptions"))
        # paged by starting_after, 25 a page
        assert any("starting_after" in q.query for q in api.requests("/v1/invoices"))


def test_incremental_run_reads_only_changes_and_misses_none(landing: Path, tmp_path) -> None:
    days = extract_days(landing)
    first, last = days[-4], days[-1]
    sink = Sink()
    pipe = dlt.pipeline("stripe_inc", pipelines_dir=str(tmp_path), destination=sink.destination())
    with StripeStandIn(landing, clock=end_of(first)) as api:
        run1 = sink.run(pipe, source(api))
        api.clock = end_of(last)
        n = len(api.log)
        run2 = sink.run(pipe, source(api))
        second = api.log[n:]
    for obj in OBJECTS:
        before, after = landed(landing, obj, first), landed(landing, obj, last)
        assert {r["id"] for r in run1[obj]} == set(before)
        changed = {i for i, r in after.items() if before.get(i) != r}
        got = run2[obj]
        # only what changed: every record of the second run is new or changed since the first
        assert {r["id"] for r in got} == changed, obj
        # nothing missed: the last version landed per id is the current one
        final = {r["id"]: r for r in [*run1[obj], *got]}
        assert final == after, obj
        assert len(got) < len(after)
    # the second run asked Stripe only for records created since, and events since
    for q in second:
        assert "created[gte]" in q.query, (q.path, q.query)
    assert any(q.path == "/v1/events" for q in second)


def test_429_and_500_mid_page_are_survived(landing: Path, tmp_path) -> None:
    with StripeStandIn(landing) as api:
        api.faults.rate_limit_every = 4
        api.faults.retry_after = 1
        api.faults.fail[r"/v1/invoices\?.*starting_after"] = 2  # the second page, twice
        got = pull(source(api, objects=("invoices",)), tmp_path)
        want = landed(landing, "invoices", extract_days(landing)[-1])
        ids = [r["id"] for r in got["invoices"]]
        assert len(ids) == len(set(ids)) == len(want)
        assert {r["id"]: r for r in got["invoices"]} == want
        statuses = [q.status for q in api.log]
        assert statuses.count(429) >= 2 and statuses.count(500) == 2


def test_killed_mid_paging_and_rerun_loses_and_duplicates_nothing(landing: Path, tmp_path) -> None:
    days = extract_days(landing)
    first, last = days[-3], days[-1]
    sink = Sink()
    pipe = dlt.pipeline("stripe_kill", pipelines_dir=str(tmp_path), destination=sink.destination())
    with StripeStandIn(landing, clock=end_of(first)) as api:
        # the first pull dies on its third invoices page: retries run out
        api.faults.fail[r"/v1/invoices\?.*starting_after"] = 100
        with pytest.raises(Exception, match="500"):
            sink.run(pipe, source(api, request_max_attempts=2))
        api.faults.fail.clear()
        sink.run(pipe, source(api))
        api.clock = end_of(last)
        api.faults.fail[r"/v1/events\?.*starting_after"] = 100  # dies paging the changes
        with pytest.raises(Exception, match="500"):
            sink.run(pipe, source(api, request_max_attempts=2, page_size=5))
        api.faults.fail.clear()
        sink.run(pipe, source(api))
    for obj in OBJECTS:
        delivered = [r for run in sink.runs for r in run[obj]]
        versions = [json.dumps(r, sort_keys=True) for r in delivered]
        assert len(versions) == len(set(versions)), f"{obj}: a version landed twice"
        final = {r["id"]: r for r in delivered}
        want = landed(landing, obj, last)
        assert final == want, obj


def test_wrong_key_names_the_setting(landing: Path, tmp_path) -> None:
    with StripeStandIn(landing, token="sk_test_right") as api:
        src = stripe.source(base_url=api.url, token="sk_test_wrong_key_1234", objects=OBJECTS)
        with pytest.raises(Exception, match="LAKEHOUSE_STRIPE_TOKEN") as err:
            pull(src, tmp_path)
        assert "Invalid API Key provided" in str(err.value)
        assert len(api.log) == 1  # a refusal is not retried
    with pytest.raises(stripe.StripeAuthError, match="LAKEHOUSE_STRIPE_TOKEN"):
        stripe.source(base_url="http://127.0.0.1:9", token="", objects=OBJECTS)
