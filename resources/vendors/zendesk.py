"""Zendesk connector: organizations, users and tickets through the incremental export API.

Built on dlt's `rest_api`: one resource per catalog object, named as the object, each an
incremental export Zendesk made for syncing (10 requests a minute, the last minute left out):

- tickets, users: cursor-based (`/api/v2/incremental/<object>/cursor.json?start_time=` on the
  first page, `cursor=<after_cursor>` after it, until `end_of_stream`); tickets with their
  `metric_set` sideloaded (`include=metric_sets`, the catalog reads the solve time from it);
- organizations: time-based (`/api/v2/incremental/organizations.json?start_time=`, then
  `next_page`, until `end_of_stream`); a record updated in a page's `end_time` second comes
  again on the next page and is kept once (by id and `updated_at`).

The cursor between runs is the records' `updated_at` (dlt `incremental`, sent as `start_time`
in unix seconds), kept in the pipeline's state and committed only with a completed load: a run
killed mid-export starts again from the last committed `updated_at` (records already landed at
that second are recognised by id and not landed twice). Auth: an API token (Basic
`{email}/token:{token}`, `LAKEHOUSE_ZENDESK_EMAIL` + `LAKEHOUSE_ZENDESK_TOKEN`) or, without an
email, an OAuth access token (Bearer). Requests are throttled client-side to
`requests_per_minute` (Zendesk's 10 for incremental exports) and 429/5xx are retried, honouring
`Retry-After`. Records are yielded exactly as the API returns them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dlt
from dlt.extract.source import DltSource
from dlt.sources.helpers.requests import Client, Response, Session
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth, HttpBasicAuth
from dlt.sources.helpers.rest_client.paginators import (
    BaseNextUrlPaginator,
    BaseReferencePaginator,
)
from dlt.sources.rest_api import RESTAPIConfig, rest_api_resources
from requests import HTTPError, Request

VENDOR = "zendesk"
BASE_URL = "https://{subdomain}.zendesk.com"  # LAKEHOUSE_ZENDESK_SUBDOMAIN fills it in
TOKEN_ENV = "LAKEHOUSE_ZENDESK_TOKEN"
BASE_URL_ENV = "LAKEHOUSE_ZENDESK_BASE_URL"
EMAIL_ENV = "LAKEHOUSE_ZENDESK_EMAIL"
SUBDOMAIN_ENV = "LAKEHOUSE_ZENDESK_SUBDOMAIN"
# the source's other settings, read by the connector asset: option -> environment variable
OPTION_ENVS = {"email": EMAIL_ENV, "subdomain": SUBDOMAIN_ENV}
PER_PAGE = 1000  # the cursor exports' cap
INCREMENTAL_PER_MINUTE = 10  # Zendesk's limit on the incremental export endpoints

# object -> export endpoint, paging kind, the cursor field, extra parameters
OBJECTS: dict[str, dict[str, Any]] = {
    "organizations": {
        "path": "/api/v2/incremental/organizations.json",
        "paging": "time",
        "cursor": "updated_at",
        "params": {},
    },
    "users": {
        "path": "/api/v2/incremental/users/cursor.json",
        "paging": "cursor",
        "cursor": "updated_at",
        "params": {},
    },
    "tickets": {
        "path": "/api/v2/incremental/tickets/cursor.json",
        "paging": "cursor",
        "cursor": "updated_at",
        "params": {"include": "metric_sets"},
    },
}


class ZendeskAuthError(PermissionError):
    """Zendesk refused the credentials: the message names the settings to fix."""


class ZendeskCursorPaginator(BaseReferencePaginator):
    """Cursor-based export: `cursor=<after_cursor>` (and no `start_time`) until
    `end_of_stream`."""

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        body = response.json()
        self._next_reference = None if body.get("end_of_stream") else body.get("after_cursor")

    def update_request(self, request: Request) -> None:
        params = {k: v for k, v in (request.params or {}).items() if k != "start_time"}
        request.params = {**params, "cursor": self._next_reference}


class ZendeskTimePaginator(BaseNextUrlPaginator):
    """Time-based export: follow `next_page` until `end_of_stream` (`next_page` is always set)."""

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        body = response.json()
        self._next_reference = None if body.get("end_of_stream") else body.get("next_page")


class Throttle:
    """At most `per_minute` requests in any 60 seconds: called before each request, it waits
    until the oldest of the last `per_minute` is a minute old."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_minute = per_minute
        self.clock, self.sleep = clock, sleep
        self.sent: deque[float] = deque()

    def _prune(self, now: float) -> None:
        while self.sent and self.sent[0] <= now - 60:
            self.sent.popleft()

    def __call__(self) -> None:
        now = self.clock()
        self._prune(now)
        if len(self.sent) >= self.per_minute:
            self.sleep(self.sent[0] + 60 - now)
            now = self.clock()
            self._prune(now)
        self.sent.append(now)


def _refused(email: str | None) -> Callable[..., None]:
    def check(response: Response) -> None:
        if response.status_code not in (401, 403):
            return
        try:
            body = response.json()
            message = body.get("description") or body.get("error")
        except ValueError:
            message = response.text[:200]
        how = (
            f"{EMAIL_ENV} (the agent's email) and {TOKEN_ENV} (an API token of an admin)"
            if email
            else f"{TOKEN_ENV} (an OAuth access token with read scope; or set {EMAIL_ENV} to "
            "use an API token)"
        )
        raise ZendeskAuthError(
            f"Zendesk refused the credentials (HTTP {response.status_code}: {message}). Set "
            f"{how}; the incremental exports need an admin. The account's URL is "
            f"{BASE_URL_ENV} (or {SUBDOMAIN_ENV})."
        )

    return check


def session(
    *,
    email: str | None = None,
    requests_per_minute: int | None = INCREMENTAL_PER_MINUTE,
    request_max_attempts: int = 6,
    request_backoff_factor: float = 1.0,
    request_max_retry_delay: float = 60.0,
    request_timeout: float = 60.0,
    throttle: Throttle | None = None,
) -> Session:
    """dlt's retrying session (429/5xx, `Retry-After` honoured up to `request_max_retry_delay`),
    throttled to `requests_per_minute`, a refusal raised at once."""
    s = Client(
        request_timeout=request_timeout,
        request_max_attempts=request_max_attempts,
        request_backoff_factor=request_backoff_factor,
        request_max_retry_delay=request_max_retry_delay,
        respect_retry_after_header=True,
        raise_for_status=False,  # the REST client raises, after the retries
    ).session
    if throttle is None and requests_per_minute:
        throttle = Throttle(requests_per_minute)
    # around the retrying send, not as a session hook: the REST client's per-request hooks
    # replace a session's (and raise_for_status runs among them)
    retrying, refused = s.send, _refused(email)

    def send(request: Any, **kwargs: Any) -> Response:
        if throttle is not None:
            throttle()
        try:
            response = retrying(request, **kwargs)
        except HTTPError as exc:  # the REST client's raise_for_status hook ran inside send
            if exc.response is not None:
                refused(exc.response)
            raise
        refused(response)
        return response

    s.send = send  # type: ignore[method-assign]
    return s


def _once() -> Callable[[dict], bool]:
    """A time-based export repeats the records of a page's last second on the next page: keep
    each (id, updated_at) once per run."""
    seen: set[tuple[Any, Any]] = set()

    def first(rec: dict) -> bool:
        key = (rec.get("id"), rec.get("updated_at"))
        if key in seen:
            return False
        seen.add(key)
        return True

    return first


def _iso(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _unix(iso: Any) -> int:
    if isinstance(iso, int | float):
        return int(iso)
    if isinstance(iso, dt.datetime):
        return int(iso.timestamp())
    return int(dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp())


def base_url_for(base_url: str | None, subdomain: str | None) -> str:
    """`https://{subdomain}.zendesk.com` from the subdomain, unless a URL is given."""
    url = base_url or BASE_URL
    if "{subdomain}" in url:
        if not subdomain:
            raise ValueError(
                f"Zendesk connector: no account URL; set {SUBDOMAIN_ENV} (acme for "
                f"https://acme.zendesk.com) or {BASE_URL_ENV}"
            )
        url = url.format(subdomain=subdomain)
    return url.rstrip("/")


def source(
    *,
    base_url: str | None = BASE_URL,
    token: str,
    objects: Sequence[str] = tuple(OBJECTS),
    email: str | None = None,
    subdomain: str | None = None,
    start: int = 0,
    per_page: int = PER_PAGE,
    starts: Mapping[str, str] | None = None,
    max_attempts: int | None = None,
    backoff_factor: float | None = None,
    max_retry_delay: float | None = None,
    **http: Any,
) -> DltSource:
    """The Zendesk dlt source: one resource per object in `objects`, named as the object.

    `email` set: API-token auth (Basic `{email}/token:{token}`), else OAuth (Bearer). `start`
    (unix seconds) is the first run's `start_time`; `http` takes `session()`'s settings
    (`requests_per_minute`, retries, timeout)."""
    for common, own in (
        (max_attempts, "request_max_attempts"),
        (backoff_factor, "request_backoff_factor"),
        (max_retry_delay, "request_max_retry_delay"),
    ):
        if common is not None:
            http[own] = common
    if not token:
        raise ZendeskAuthError(
            f"no Zendesk credentials: set {TOKEN_ENV} (with {EMAIL_ENV} for an API token)"
        )
    unknown = [o for o in objects if o not in OBJECTS]
    if unknown:
        raise ValueError(
            f"Zendesk connector: unknown object(s) {unknown}; it pulls {', '.join(OBJECTS)}"
        )
    if not 1 <= per_page <= PER_PAGE:
        raise ValueError(f"Zendesk connector: per_page must be 1..{PER_PAGE}, not {per_page}")
    auth = HttpBasicAuth(f"{email}/token", token) if email else BearerTokenAuth(token)
    resources: list[dict[str, Any]] = []
    for obj in objects:
        spec = OBJECTS[obj]
        cursor_paging = spec["paging"] == "cursor"
        resources.append(
            {
                "name": obj,
                "processing_steps": [] if cursor_paging else [{"filter": _once()}],
                "endpoint": {
                    "path": spec["path"],
                    "params": {
                        **spec["params"],
                        **({"per_page": per_page} if cursor_paging else {}),
                    },
                    "data_selector": obj,
                    "paginator": ZendeskCursorPaginator()
                    if cursor_paging
                    else ZendeskTimePaginator(),
                    "incremental": {
                        "start_param": "start_time",
                        "cursor_path": spec["cursor"],
                        "initial_value": (starts or {}).get(obj) or _iso(start),
                        "convert": _unix,
                    },
                },
            }
        )
    config: RESTAPIConfig = {
        "client": {
            "base_url": base_url_for(base_url, subdomain),
            "auth": auth,
            "session": session(email=email, **http),
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "append",
            "max_table_nesting": 0,
        },
        "resources": resources,  # type: ignore[typeddict-item]
    }
    built = rest_api_resources(config)

    @dlt.source(name=VENDOR, max_table_nesting=0)
    def zendesk() -> list:
        return built

    return zendesk()
