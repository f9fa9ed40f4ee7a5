"""HubSpot CRM v3 as a dlt source: companies, contacts and deals with their company associations.

The first pull of an object lists every record (`GET /crm/v3/objects/<object>`, 100 a page,
paged by `paging.next.after`, the company association asked for with `associations=companies`);
later pulls search for what changed since the cursor (`POST /crm/v3/objects/<object>/search`,
`<modified date> GTE <cursor>` sorted ascending, 200 a page). The search API answers at most
10,000 results per query (a page past that is a 400), so a larger window is searched again from
the last modified date seen, skipping the records already yielded at that instant. The search
API returns no associations: they are read for each page through the associations batch API
(`POST /crm/v3/associations/<object>/companies/batch/read`) and put where the list endpoint puts
them (`associations.companies.results`), so every record has the list endpoint's shape, which is
what `stacks/vendor/catalog.yaml` reads.

The cursor is the record's `updatedAt` (dlt `incremental`, kept in the pipeline's state; a record
seen at the cursor instant is not yielded twice). Requests go through dlt's retrying session:
429 and 5xx are retried with exponential backoff, a `Retry-After` header is honoured. A 401 or
403 stops the pull with an error naming `LAKEHOUSE_HUBSPOT_TOKEN`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

VENDOR = "hubspot"
BASE_URL = "https://api.hubapi.com"
TOKEN_ENV = "LAKEHOUSE_HUBSPOT_TOKEN"
BASE_URL_ENV = "LAKEHOUSE_HUBSPOT_BASE_URL"
CURSOR = "updatedAt"  # the record field the incremental cursor follows
LIST_LIMIT = 100  # the list endpoint's page size cap
SEARCH_LIMIT = 200  # the search endpoint's page size cap
SEARCH_CAP = 10_000  # results one search query can page through
ASSOCIATION_BATCH = 100  # ids per associations batch read
SCOPES = "crm.objects.companies.read, crm.objects.contacts.read, crm.objects.deals.read"

# Per object: the endpoint, the property its search filters and sorts on (contacts name their
# modified date `lastmodifieddate`, other objects `hs_lastmodifieddate`), the properties pulled
# (what the catalog's columns read) and the associations read with each record.
OBJECTS: dict[str, dict[str, Any]] = {
    "companies": {
        "endpoint": "/crm/v3/objects/companies",
        "cursor_field": CURSOR,
        "search_property": "hs_lastmodifieddate",
        "properties": (
            "name",
            "domain",
            "website",
            "industry",
            "numberofemployees",
            "country",
            "hubspot_owner_id",
            "lifecyclestage",
            "hs_analytics_source",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        ),
        "associations": (),
    },
    "contacts": {
        "endpoint": "/crm/v3/objects/contacts",
        "cursor_field": CURSOR,
        "search_property": "lastmodifieddate",
        "properties": (
            "firstname",
            "lastname",
            "email",
            "jobtitle",
            "phone",
            "hs_analytics_source",
            "createdate",
            "lastmodifieddate",
            "hs_object_id",
        ),
        "associations": ("companies",),
    },
    "deals": {
        "endpoint": "/crm/v3/objects/deals",
        "cursor_field": CURSOR,
        "search_property": "hs_lastmodifieddate",
        "properties": (
            "dealname",
            "dealstage",
            "pipeline",
            "amount",
            "closedate",
            "dealtype",
            "hubspot_owner_id",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        ),
        "associations": ("companies",),
    },
}


class HubSpotAuthError(RuntimeError):
    """HubSpot refused the token: the message names the setting to fix, never the token."""


class HubSpotSearchError(RuntimeError):
    """A search window cannot be narrowed further (more than the cap share one instant)."""


def source(
    *,
    base_url: str,
    token: str,
    objects: Sequence[str],
    starts: Mapping[str, str] | None = None,
    list_limit: int = LIST_LIMIT,
    search_limit: int = SEARCH_LIMIT,
    search_cap: int = SEARCH_CAP,
    max_attempts: int = 8,
    backoff_factor: float = 1.0,
    max_retry_delay: float = 60.0,
    timeout: float = 60.0,
) -> Any:
    """The dlt source pulling `objects` (names of OBJECTS) from HubSpot at `base_url`.

    `starts`: object -> the first cursor value (ISO-8601) when the pipeline has none; such an
    object's first pull searches from there instead of listing everything. The token is held
    by the HTTP session only: it is no argument of any dlt function, so it reaches no trace or
    state."""
    import dlt

    unknown = sorted(set(objects) - set(OBJECTS))
    if unknown:
        raise ValueError(f"HubSpot has no object {unknown} here (known: {', '.join(OBJECTS)})")
    client = _client(base_url, token, max_attempts, backoff_factor, max_retry_delay, timeout)
    pulls = [
        _resource(client, obj, (starts or {}).get(obj), list_limit, search_limit, search_cap)
        for obj in objects
    ]

    @dlt.source(name=VENDOR, max_table_nesting=0)
    def hubspot() -> Any:
        return pulls

    return hubspot()


def _client(
    base_url: str,
    token: str,
    max_attempts: int,
    backoff_factor: float,
    max_retry_delay: float,
    timeout: float,
) -> Any:
    from dlt.sources.helpers.requests.retry import Client
    from dlt.sources.helpers.rest_client import RESTClient
    from dlt.sources.helpers.rest_client.auth import BearerTokenAuth

    session = Client(
        raise_for_status=False,
        request_max_attempts=max_attempts,
        request_backoff_factor=backoff_factor,
        request_max_retry_delay=max_retry_delay,
        request_timeout=timeout,
        respect_retry_after_header=True,
    ).session
    return RESTClient(
        base_url=base_url.rstrip("/"),
        auth=BearerTokenAuth(token),
        headers={"accept": "application/json"},
        session=session,
    )


def _resource(
    client: Any,
    obj: str,
    start: str | None,
    list_limit: int,
    search_limit: int,
    search_cap: int,
) -> Any:
    import dlt

    spec = OBJECTS[obj]

    @dlt.resource(
        name=obj,
        primary_key="id",
        write_disposition="append",
        max_table_nesting=0,
        # the record as HubSpot sent it: no timestamp parsing, text stays text
        columns={CURSOR: {"data_type": "text"}, "createdAt": {"data_type": "text"}},
    )
    def pull(
        updated: Any = dlt.sources.incremental(CURSOR, initial_value=start),  # noqa: B008
    ) -> Iterator[list[dict]]:
        since = updated.start_value
        try:
            if since is None:
                yield from _list(client, obj, spec, list_limit)
            else:
                yield from _search(client, obj, spec, str(since), search_limit, search_cap)
        except Exception as exc:
            refused = _auth_error(exc, obj)
            if refused is None:
                raise
            raise refused from None

    return pull


def _list(client: Any, obj: str, spec: dict, limit: int) -> Iterator[list[dict]]:
    """Every record, by id, 100 a page; the association comes with each record."""
    from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

    params = {
        "limit": min(limit, LIST_LIMIT),
        "properties": ",".join(spec["properties"]),
        "archived": "false",
    }
    if spec["associations"]:
        params["associations"] = ",".join(spec["associations"])
    paginator = JSONResponseCursorPaginator(cursor_path="paging.next.after", cursor_param="after")
    for page in client.paginate(
        spec["endpoint"], params=params, paginator=paginator, data_selector="results"
    ):
        yield list(page)


def _search(
    client: Any, obj: str, spec: dict, since: str, limit: int, cap: int
) -> Iterator[list[dict]]:
    """Records modified at or after `since`, oldest first; past the cap, searched again from
    the last modified date seen (records already yielded at that instant are skipped)."""
    prop = spec["search_property"]
    limit = min(limit, SEARCH_LIMIT)
    window = _millis(since)
    after: str | None = None
    at_edge: set[str] = set()  # ids yielded at the latest modified date seen
    edge = window
    while True:
        body: dict[str, Any] = {
            "filterGroups": [
                {"filters": [{"propertyName": prop, "operator": "GTE", "value": str(window)}]}
            ],
            "sorts": [{"propertyName": prop, "direction": "ASCENDING"}],
            "properties": list(spec["properties"]),
            "limit": limit,
        }
        if after is not None:
            body["after"] = after
        data = _json(client.post(f"{spec['endpoint']}/search", json=body))
        page = []
        for rec in data.get("results", []):
            at = _millis(rec.get("properties", {}).get(prop) or rec[CURSOR])
            if at == edge and rec["id"] in at_edge:
                continue  # seen before this window restarted
            if at != edge:
                edge, at_edge = at, set()
            at_edge.add(rec["id"])
            page.append(rec)
        if page and spec["associations"]:
            _associate(client, obj, spec["associations"], page)
        if page:
            yield page
        after = ((data.get("paging") or {}).get("next") or {}).get("after")
        if after is None:
            return
        if int(after) + limit > cap:  # the next page lies past what one query may page through
            if edge == window:
                raise HubSpotSearchError(
                    f"HubSpot {obj}: more than {cap} records modified at one instant "
                    f"({_iso(window)}); the search API cannot page past them"
                )
            window, after = edge, None


def _associate(client: Any, obj: str, kinds: Sequence[str], page: list[dict]) -> None:
    """Put each record's associations where the list endpoint has them."""
    for kind in kinds:
        found: dict[str, list[dict]] = {}
        for i in range(0, len(page), ASSOCIATION_BATCH):
            ids = [{"id": r["id"]} for r in page[i : i + ASSOCIATION_BATCH]]
            data = _json(
                client.post(f"/crm/v3/associations/{obj}/{kind}/batch/read", json={"inputs": ids})
            )
            for res in data.get("results", []):
                found[str(res["from"]["id"])] = [
                    {"id": str(t["id"]), "type": t["type"]} for t in res.get("to", [])
                ]
        for rec in page:
            if found.get(rec["id"]):
                rec.setdefault("associations", {})[kind] = {"results": found[rec["id"]]}


def _json(resp: Any) -> dict:
    """The response's body; an error status raises as dlt's client does (after its retries)."""
    if resp.status_code >= 400:
        from requests import HTTPError

        req = resp.request
        raise HTTPError(
            f"{resp.status_code} {resp.reason} for {req.method} {req.path_url}: {resp.text[:500]}",
            response=resp,
        )
    return resp.json()


def _auth_error(exc: BaseException, obj: str) -> HubSpotAuthError | None:
    """A 401/403 anywhere in the chain, as the error a person can act on."""
    seen = exc
    while seen is not None:
        resp = getattr(seen, "response", None)
        status = getattr(resp, "status_code", None)
        if status in (401, 403):
            try:
                body = resp.json()
            except ValueError:
                body = {}
            what = body.get("category") or body.get("message") or resp.reason
            return HubSpotAuthError(
                f"HubSpot refused the credentials pulling {obj} ({status} {what}): set "
                f"{TOKEN_ENV} to a private app access token with the scopes {SCOPES}"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def _millis(value: str) -> int:
    """Epoch milliseconds of HubSpot's ISO-8601 timestamps (or of a millisecond string)."""
    if value.isdigit():
        return int(value)
    t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return round(t.timestamp() * 1000)


def _iso(millis: int) -> str:
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).isoformat().replace("+00:00", "Z")
