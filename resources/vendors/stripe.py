"""Stripe connector: customers, subscriptions and invoices as a dlt source.

Stripe's list API pages newest first with `starting_after`/`has_more` and filters on `created`;
it keeps no update time, so a change to an existing record is only visible through the events
API (`GET /v1/events?types[]=...`, 30 days kept, each event's `data.object` is the record as it
was then). That is the route Stripe documents for syncing, and each object's resource uses both:

- first run: note the newest event of the object's types (where changes will be read from next
  time), then list every record (subscriptions with `status=all`, or canceled ones are left
  out) from `start` (`created[gte]`, default all);
- later runs: the object's update events since the last one seen (`created[gte]`, the boundary
  ids remembered so none is read twice), oldest first, then the records created since the last
  one seen; an event's snapshot of a record the list also returns is skipped, so the record's
  last version in a run is its current one;
- if the last event seen is older than Stripe keeps events (30 days), the changes in between
  are gone from the API: the object is listed in full again (a superset, nothing missed).

Cursors live in the pipeline's resource state, committed only with a load that completed: a run
killed mid-page re-reads from the last committed cursor. Records are yielded exactly as the API
returns them. Each resource is one dlt resource named as the catalog object; the HTTP calls go
through dlt's REST client (the engine `rest_api` is built on) with Stripe's paginator, bearer
auth and a retrying session (429 and 5xx, honouring `Retry-After`). A plain `rest_api` endpoint
holds one endpoint and one cursor, and this merge of two needs both, so the resource drives the
client itself. The API version is pinned (`Stripe-Version`) to the shapes the vendor catalog
reads (`invoice.subscription`, `invoice.paid`, `subscription.current_period_end`: moved or
removed in 2025-03-31.basil).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import dlt
from dlt.extract.source import DltSource
from dlt.sources.helpers.requests import Client, Response, Session
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import BaseReferencePaginator
from requests import HTTPError, Request

VENDOR = "stripe"
BASE_URL = "https://api.stripe.com"
TOKEN_ENV = "LAKEHOUSE_STRIPE_TOKEN"
BASE_URL_ENV = "LAKEHOUSE_STRIPE_BASE_URL"
API_VERSION = "2024-06-20"  # before basil: the shapes stacks/vendor/catalog.yaml reads
EVENT_RETENTION = 30 * 86_400
PAGE_SIZE = 100  # Stripe's cap on `limit`

# object -> list endpoint, the cursor field, extra list parameters, the events that carry changes
OBJECTS: dict[str, dict[str, Any]] = {
    "customers": {
        "path": "/v1/customers",
        "cursor": "created",
        "params": {},
        "events": ("customer.updated",),
    },
    "subscriptions": {
        "path": "/v1/subscriptions",
        "cursor": "created",
        "params": {"status": "all"},
        "events": ("customer.subscription.updated", "customer.subscription.deleted"),
    },
    "invoices": {
        "path": "/v1/invoices",
        "cursor": "created",
        "params": {},
        "events": ("invoice.updated",),
    },
}

log = logging.getLogger(__name__)


class StripeAuthError(PermissionError):
    """Stripe refused the key: the message names the setting to fix."""


class StripePaginator(BaseReferencePaginator):
    """Stripe's cursor paging: while `has_more`, ask for the page `starting_after` the last id."""

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        body = response.json()
        rows = body.get("data") or []
        self._next_reference = rows[-1]["id"] if body.get("has_more") and rows else None

    def update_request(self, request: Request) -> None:
        request.params = {**(request.params or {}), "starting_after": self._next_reference}


def _refused(response: Response) -> None:
    """Turn a 401/403 into an error naming the setting (before raise_for_status)."""
    if response.status_code in (401, 403):
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise StripeAuthError(
            f"Stripe refused the API key (HTTP {response.status_code}: {message}). Set "
            f"{TOKEN_ENV} to a secret key or a restricted key with read access to customers, "
            f"subscriptions, invoices and events (and {BASE_URL_ENV} to the API's URL when it "
            f"is not {BASE_URL})."
        )


def session(
    *,
    request_max_attempts: int = 6,
    request_backoff_factor: float = 1.0,
    request_max_retry_delay: float = 60.0,
    request_timeout: float = 60.0,
) -> Session:
    """dlt's retrying session: 429 and 5xx retried with exponential backoff, `Retry-After`
    honoured (up to `request_max_retry_delay`), a refused key raised at once."""
    s = Client(
        request_timeout=request_timeout,
        request_max_attempts=request_max_attempts,
        request_backoff_factor=request_backoff_factor,
        request_max_retry_delay=request_max_retry_delay,
        respect_retry_after_header=True,
        raise_for_status=False,  # the REST client raises, after the retries
    ).session
    # around the retrying send, not as a session hook: the REST client's per-request hooks
    # replace a session's (and raise_for_status runs among them)
    retrying = s.send

    def send(request: Any, **kwargs: Any) -> Response:
        try:
            response = retrying(request, **kwargs)
        except HTTPError as exc:  # the REST client's raise_for_status hook ran inside send
            if exc.response is not None:
                _refused(exc.response)
            raise
        _refused(response)
        return response

    s.send = send  # type: ignore[method-assign]
    return s


def source(
    *,
    base_url: str = BASE_URL,
    token: str,
    objects: Sequence[str] = tuple(OBJECTS),
    page_size: int = PAGE_SIZE,
    start: int | None = None,
    api_version: str = API_VERSION,
    now: Callable[[], float] = time.time,
    starts: Mapping[str, str] | None = None,
    max_attempts: int | None = None,
    backoff_factor: float | None = None,
    max_retry_delay: float | None = None,
    **http: Any,
) -> DltSource:
    """The Stripe dlt source: one resource per object in `objects`, named as the object.

    `start` (unix seconds) bounds the first run's list (`created[gte]`), or per object `starts`
    (ISO-8601, the catalog's `connector.start`); `now` is the clock the 30-day event horizon is
    judged by; `http` takes `session()`'s retry settings (also as the connectors' common
    `max_attempts`, `backoff_factor`, `max_retry_delay`)."""
    for common, own in (
        (max_attempts, "request_max_attempts"),
        (backoff_factor, "request_backoff_factor"),
        (max_retry_delay, "request_max_retry_delay"),
    ):
        if common is not None:
            http[own] = common
    if not token:
        raise StripeAuthError(f"no Stripe API key: set {TOKEN_ENV} (a secret or restricted key)")
    unknown = [o for o in objects if o not in OBJECTS]
    if unknown:
        raise ValueError(
            f"Stripe connector: unknown object(s) {unknown}; it pulls {', '.join(OBJECTS)}"
        )
    if not 1 <= page_size <= PAGE_SIZE:
        raise ValueError(f"Stripe connector: page_size must be 1..{PAGE_SIZE}, not {page_size}")
    client = RESTClient(
        base_url=base_url.rstrip("/"),
        headers={"Stripe-Version": api_version},
        auth=BearerTokenAuth(token),
        session=session(**http),
        data_selector="data",
    )
    resources = [
        dlt.resource(
            _pull(client, obj, page_size=page_size, start=_start(obj, starts, start), now=now),
            name=obj,
            primary_key="id",
            write_disposition="append",
            max_table_nesting=0,
        )
        for obj in objects
    ]

    @dlt.source(name=VENDOR, max_table_nesting=0)
    def stripe() -> list:
        return resources

    return stripe()


def _start(obj: str, starts: Mapping[str, str] | None, start: int | None) -> int | None:
    """The first run's lower bound for `obj`, in unix seconds."""
    if starts and starts.get(obj):
        from datetime import UTC, datetime

        at = datetime.fromisoformat(str(starts[obj]).replace("Z", "+00:00"))
        return int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())
    return start


def _pull(
    client: RESTClient, obj: str, *, page_size: int, start: int | None, now: Callable[[], float]
) -> Callable[[], Iterator[dict]]:
    spec = OBJECTS[obj]

    def pages(path: str, params: dict[str, Any]) -> Iterator[list[dict]]:
        yield from client.paginate(
            path, params={"limit": page_size, **params}, paginator=StripePaginator()
        )

    def events(since: int | None) -> list[dict]:
        params: dict[str, Any] = {"types[]": list(spec["events"])}
        if since is not None:
            params["created[gte]"] = since
        return [e for page in pages("/v1/events", params) for e in page]

    def newest_events() -> tuple[int | None, list[str]]:
        """The second of the newest event of the object's types, and the ids of the events of
        that second (already reflected in a list read after them)."""
        params = {"types[]": list(spec["events"]), "limit": 1}
        resp = client.get("/v1/events", params=params)
        resp.raise_for_status()
        body = resp.json()
        if not body.get("data"):
            return None, []
        newest = body["data"][0]["created"]
        return newest, sorted(e["id"] for e in events(newest) if e["created"] == newest)

    def records() -> Iterator[dict]:
        state = dlt.current.resource_state()
        cursor = state.get("created")
        seen_events = state.get("events")
        full = cursor is None or (seen_events is not None and seen_events < now() - EVENT_RETENTION)
        if full:
            if cursor is not None:
                log.warning(
                    "stripe/%s: last event read is older than Stripe keeps events (30 days): "
                    "listing every record again",
                    obj,
                )
            # where changes will be read from next run: noted before listing, so a change made
            # while the list pages is read next time
            newest, newest_ids = newest_events()
            params = dict(spec["params"])
            if start is not None and cursor is None:
                params["created[gte]"] = start
            top, at_top = cursor, set()
            for page in pages(spec["path"], params):
                for rec in page:
                    top, at_top = _high(top, at_top, rec)
                    yield rec
            state["created"], state["created_ids"] = top, sorted(at_top)
            state["events"] = newest if newest is not None else top
            state["event_ids"] = newest_ids
            return
        read = set(state.get("event_ids", ()))
        changed = [e for e in events(seen_events) if e["id"] not in read]
        changed.sort(key=lambda e: (e["created"], e["id"]))
        boundary = set(state.get("created_ids", ()))
        new = [
            rec
            for page in pages(spec["path"], {**spec["params"], "created[gte]": cursor})
            for rec in page
            if rec["id"] not in boundary
        ]
        listed = {rec["id"] for rec in new}
        for e in changed:
            rec = e["data"]["object"]
            if rec["id"] not in listed:
                yield rec
        top, at_top = cursor, boundary
        for rec in sorted(new, key=lambda r: (r["created"], r["id"])):
            top, at_top = _high(top, at_top, rec)
            yield rec
        state["created"], state["created_ids"] = top, sorted(at_top)
        if changed:
            last = changed[-1]["created"]
            state["events"] = last
            state["event_ids"] = [e["id"] for e in changed if e["created"] == last]

    return records


def _high(top: int | None, at_top: set[str], rec: dict) -> tuple[int, set[str]]:
    """The highest `created` so far and the ids created at that second."""
    c = int(rec["created"])
    if top is None or c > top:
        return c, {rec["id"]}
    if c == top:
        return top, at_top | {rec["id"]}
    return top, at_top
