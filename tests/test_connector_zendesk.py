"""The Zendesk connector against its stand-in: what a support team relies on when organizations,
users and tickets are pulled through Zendesk's incremental exports instead of an export file.

A full pull is every record of the world at the API's clock (as the generator landed it, the
last minute left out as Zendesk does); the next run reads only what changed and misses nothing;
429s and a 500 in the middle of an export are retried; a run killed mid-export and run again
lands each version once; API-token and OAuth auth both work, and a refusal names the settings."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import defaultdict
from pathlib import Path

import dlt
import pytest

from resources.vendors import zendesk
from sample_company.generate import generate
from sample_company.standins.zendesk import ZendeskStandIn

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
OBJECTS = tuple(zendesk.OBJECTS)
FAST = {"request_backoff_factor": 0.01, "request_max_retry_delay": 2.0, "requests_per_minute": None}


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zendesk") / "landing"
    generate(out, accounts=150, days=60, stack="vendor")
    return out


def extract_days(landing: Path) -> list[str]:
    return sorted(p.name for p in (landing / "zendesk" / "tickets").iterdir())


def just_after(day: str) -> dt.datetime:
    """The clock at which Zendesk exports everything changed through `day` (its last minute
    is excluded until a minute later)."""
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) + dt.timedelta(days=1, seconds=59)


def landed(landing: Path, obj: str, through: str) -> dict[int, dict]:
    """Each record's latest version in the generator's extracts dated up to `through`."""
    out: dict[int, dict] = {}
    for day in extract_days(landing):
        if day <= through:
            for f in sorted((landing / "zendesk" / obj / day).glob("*.json")):
                out.update({r["id"]: r for r in json.loads(f.read_text())[obj]})
    return out


def standin(landing: Path, **kw) -> ZendeskStandIn:
    return ZendeskStandIn(landing, page_size=kw.pop("page_size", 40), **kw)


def source(api: ZendeskStandIn, **kw):
    return zendesk.source(
        base_url=api.url,
        token=api.token,
        email=kw.pop("email", api.email),
        objects=kw.pop("objects", OBJECTS),
        per_page=kw.pop("per_page", 40),
        **{**FAST, **kw},
    )


class Sink:
    """A dlt destination keeping what each completed load delivered, per run (each record as
    one JSON string, so the normalizer neither retypes values nor drops nulls)."""

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
            # the cursor stays beside the record: rest_api's incremental step reads mapped items
            resource.add_map(
                lambda r: {
                    "id": r["id"],
                    "updated_at": r["updated_at"],
                    "record": json.dumps(r, sort_keys=True),
                }
            )
        pipeline.run(src)
        return self.runs[-1]


def pull(src, where: Path) -> dict[str, list[dict]]:
    """One run of a fresh pipeline (its state under `where`): the records it delivered."""
    sink = Sink()
    pipe = dlt.pipeline("pull", pipelines_dir=str(where), destination=sink.destination())
    return sink.run(pipe, src)


def test_full_pull_is_every_record_at_the_clock(landing: Path, tmp_path) -> None:
    day = extract_days(landing)[4]
    with standin(landing, clock=just_after(day)) as api:
        got = pull(source(api), tmp_path)
        for obj in OBJECTS:
            ids = [r["id"] for r in got[obj]]
            assert len(ids) == len(set(ids)), f"{obj}: a record pulled twice"
            assert {r["id"]: r for r in got[obj]} == landed(landing, obj, day), obj
        # the solve time came sideloaded; the exports were paged the vendor's way
        assert all("metric_set" in t for t in got["tickets"])
        tickets = api.requests("/incremental/tickets/cursor.json")
        assert "start_time" in tickets[0].query and len(tickets) > 1
        assert all("cursor" in q.query and "start_time" not in q.query for q in tickets[1:])
        orgs = api.requests("/incremental/organizations.json")
        assert len(orgs) > 1 and all("start_time" in q.query for q in orgs)


def test_incremental_run_reads_only_changes_and_misses_none(landing: Path, tmp_path) -> None:
    days = extract_days(landing)
    first, last = days[-4], days[-1]
    sink = Sink()
    pipe = dlt.pipeline("zd_inc", pipelines_dir=str(tmp_path), destination=sink.destination())
    with standin(landing, clock=just_after(first)) as api:
        run1 = sink.run(pipe, source(api))
        api.clock = just_after(last)
        n = len(api.log)
        run2 = sink.run(pipe, source(api))
        second = api.log[n:]
    for obj in OBJECTS:
        before, after = landed(landing, obj, first), landed(landing, obj, last)
        assert {r["id"] for r in run1[obj]} == set(before)
        changed = {i for i, r in after.items() if before.get(i) != r}
        got = run2[obj]
        assert {r["id"] for r in got} == changed, obj  # only what changed
        assert len(got) == len(changed), f"{obj}: a change read twice"
        final = {r["id"]: r for r in [*run1[obj], *got]}
        assert final == after, obj  # nothing missed
    # the second run started each export where the first ended, not at the beginning
    firsts = {}
    for q in second:
        firsts.setdefault(q.path, q)
    assert len(firsts) == 3
    for q in firsts.values():
        assert int(q.query["start_time"][0]) >= int(just_after(days[-5]).timestamp()), q.path


def test_429_and_500_mid_export_are_survived(landing: Path, tmp_path) -> None:
    with standin(landing) as api:
        api.faults.rate_limit_every = 4
        api.faults.retry_after = 1
        api.faults.fail[r"/tickets/cursor\.json\?cursor="] = 2  # the second page, twice
        got = pull(source(api, objects=("tickets",)), tmp_path)
        want = landed(landing, "tickets", extract_days(landing)[-1])
        ids = [r["id"] for r in got["tickets"]]
        assert len(ids) == len(set(ids)) == len(want)
        assert {r["id"]: r for r in got["tickets"]} == want
        statuses = [q.status for q in api.log]
        assert statuses.count(429) >= 2 and statuses.count(500) == 2


def test_killed_mid_export_and_rerun_loses_and_duplicates_nothing(landing: Path, tmp_path) -> None:
    days = extract_days(landing)
    first, last = days[-3], days[-1]
    sink = Sink()
    pipe = dlt.pipeline("zd_kill", pipelines_dir=str(tmp_path), destination=sink.destination())
    with standin(landing, clock=just_after(first)) as api:
        api.faults.fail[r"/users/cursor\.json\?cursor="] = 100  # dies on the second users page
        with pytest.raises(Exception, match="500"):
            sink.run(pipe, source(api, request_max_attempts=2))
        api.faults.fail.clear()
        sink.run(pipe, source(api))
        api.clock = just_after(last)
        api.page_size = 5
        api.faults.fail[r"/organizations\.json\?start_time"] = 0
        api.faults.fail[r"/tickets/cursor\.json\?cursor="] = 100  # dies paging the changes
        with pytest.raises(Exception, match="500"):
            sink.run(pipe, source(api, request_max_attempts=2, per_page=5))
        api.faults.fail.clear()
        sink.run(pipe, source(api))
    for obj in OBJECTS:
        delivered = [r for run in sink.runs for r in run[obj]]
        versions = [json.dumps(r, sort_keys=True) for r in delivered]
        assert len(versions) == len(set(versions)), f"{obj}: a version landed twice"
        assert {r["id"]: r for r in delivered} == landed(landing, obj, last), obj


def test_oauth_bearer_token_is_accepted(landing: Path, tmp_path) -> None:
    with standin(landing) as api:
        got = pull(source(api, email=None, objects=("organizations",)), tmp_path)
        assert len(got["organizations"]) == len(api.current("organizations"))
        assert all(q.status == 200 for q in api.log)


def test_refused_credentials_name_the_settings(landing: Path, tmp_path) -> None:
    with standin(landing, token="right") as api:
        src = zendesk.source(base_url=api.url, token="wrong", email=api.email, objects=OBJECTS)
        with pytest.raises(Exception, match="LAKEHOUSE_ZENDESK_TOKEN") as err:
            pull(src, tmp_path / "a")
        assert "LAKEHOUSE_ZENDESK_EMAIL" in str(err.value)
        assert "Couldn't authenticate you" in str(err.value)
        assert len(api.log) == 1  # a refusal is not retried
    with pytest.raises(ValueError, match="LAKEHOUSE_ZENDESK_SUBDOMAIN"):
        zendesk.source(base_url=zendesk.BASE_URL, token="t", objects=OBJECTS)


def test_incremental_exports_keep_to_ten_requests_a_minute() -> None:
    """Zendesk allows 10 incremental-export requests a minute: the 11th waits for the first to
    be a minute old (a simulated clock: nothing here sleeps)."""
    now = [0.0]
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    throttle = zendesk.Throttle(10, clock=lambda: now[0], sleep=sleep)
    sent = []
    for _ in range(25):
        throttle()  # before a request
        sent.append(now[0])
        now[0] += 1.0  # each request takes a second
    assert len(waits) >= 2
    # no 60-second window holds more than 10 requests; the first 10 went without waiting
    assert all(b - a >= 60 for a, b in zip(sent, sent[10:], strict=False))
    assert sent[:10] == [float(i) for i in range(10)]
