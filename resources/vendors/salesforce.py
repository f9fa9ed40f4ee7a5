"""Salesforce's REST query API as a dlt source: SOQL over Account, Contact and Opportunity,
paged by `nextRecordsUrl`, incremental on `SystemModstamp`.

Each catalog object (`stacks/default/catalog.yaml`'s `crm/accounts|contacts|opportunities`) is
one dlt resource of that name. Its SOQL selects the catalog's source fields plus
`SystemModstamp` (the cursor: Salesforce moves it on every change, system ones included, so
nothing changed is missed), `WHERE SystemModstamp > <cursor> ORDER BY SystemModstamp`. Records
are yielded exactly as the API returns them (`attributes: {type, url}` included; the catalog
ignores it). The cursor advances only when a load completes, so a pull that fails mid-way is
re-run from the old cursor.

No primary key is declared: the world's planted bad rows (a contact without an Id) must reach
raw, which quarantines them, as it does from files; dlt then tells records at the last cursor
value apart by content hash. Why `>` and not `>=`: dlt keeps the hashes of the records at the
last cursor value, so a
boundary record fetched again would be dropped anyway; `>` spares fetching it. SOQL datetime
literals carry no milliseconds, so the cursor is truncated to the second, which re-reads at
most one second of changes (dlt drops the ones already seen).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dlt.sources import DltSource

VENDOR = "salesforce"
API_VERSION = "v62.0"
BASE_URL = "https://login.salesforce.com"  # placeholder: every org has its own instance URL
TOKEN_ENV = "LAKEHOUSE_SALESFORCE_TOKEN"
BASE_URL_ENV = "LAKEHOUSE_SALESFORCE_INSTANCE_URL"  # Salesforce's name for it
CURSOR = "SystemModstamp"
START = "1970-01-01T00:00:00.000+0000"
# Catalog object -> the sObject, its cursor, and the fields the default catalog reads.
OBJECTS: dict[str, dict[str, Any]] = {
    "accounts": {
        "sobject": "Account",
        "cursor": CURSOR,
        "fields": (
            "Id",
            "Name",
            "Website",
            "Industry",
            "NumberOfEmployees",
            "BillingCountry",
            "OwnerName",
            "Type",
            "LeadSource",
            "CreatedDate",
            "LastModifiedDate",
        ),
    },
    "contacts": {
        "sobject": "Contact",
        "cursor": CURSOR,
        "fields": (
            "Id",
            "AccountId",
            "FirstName",
            "LastName",
            "Email",
            "Title",
            "Phone",
            "LeadSource",
            "CreatedDate",
            "LastModifiedDate",
        ),
    },
    "opportunities": {
        "sobject": "Opportunity",
        "cursor": CURSOR,
        "fields": (
            "Id",
            "AccountId",
            "Name",
            "StageName",
            "Amount",
            "CloseDate",
            "OwnerName",
            "Type",
            "CreatedDate",
            "LastModifiedDate",
        ),
    },
}
# dlt's HTTP client retries 429 and 5xx (honouring Retry-After, capped at max_retry_delay).
MAX_ATTEMPTS = 6
BACKOFF_FACTOR = 1.0
MAX_RETRY_DELAY = 60.0
TIMEOUT = 120.0


class SalesforceAccessError(RuntimeError):
    """The org refused the request for a reason retrying cannot fix (token, limits, query)."""


def soql(sobject: str, fields: Sequence[str], cursor: str = CURSOR) -> str:
    """The query for one object; `{incremental.start_value}` is filled in by dlt."""
    select = list(dict.fromkeys([*fields, cursor]))
    return (
        f"SELECT {', '.join(select)} FROM {sobject} "
        f"WHERE {cursor} > {{incremental.start_value}} ORDER BY {cursor} ASC"
    )


def soql_datetime(value: Any) -> str:
    """A cursor value (`2025-09-12T18:02:10.000+0000`, ISO, or a datetime) as a SOQL dateTime
    literal, truncated to the second (SOQL literals carry no fraction)."""
    if isinstance(value, datetime):
        ts = value
    else:
        text = str(value).replace("Z", "+00:00")
        if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
            text = f"{text[:-2]}:{text[-2:]}"
        ts = datetime.fromisoformat(text)
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _refusal(response: Any) -> None:
    """401/403/400 answers: raise what the user must fix, naming the setting (never the token).
    429 and 5xx never reach here as errors: the client retries them first."""
    status = response.status_code
    if status not in (400, 401, 403, 404):
        return
    try:
        body = response.json()
        first = body[0] if isinstance(body, list) and body else body
        code, message = first.get("errorCode", ""), first.get("message", "")
    except (ValueError, AttributeError):
        code, message = "", response.text[:200]
    where = f"{response.request.method} {response.url.split('?')[0]}"
    if status == 401:
        raise SalesforceAccessError(
            f"Salesforce refused the access token ({status} {code}: {message}) on {where}: set "
            f"{TOKEN_ENV} to a valid OAuth access token for the org at {BASE_URL_ENV}"
        )
    if code == "REQUEST_LIMIT_EXCEEDED":
        raise SalesforceAccessError(
            f"Salesforce refused the request ({status} {code}: {message}) on {where}: the org's "
            "API request limit is used up (24-hour rolling); the next run resumes from the "
            "saved cursor"
        )
    if status == 403:
        raise SalesforceAccessError(
            f"Salesforce refused access ({status} {code}: {message}) on {where}: the user of "
            f"{TOKEN_ENV} needs API Enabled and read access to the queried objects and fields"
        )
    raise SalesforceAccessError(f"Salesforce answered {status} {code}: {message} on {where}")


def source(
    *,
    base_url: str,
    token: str,
    objects: Sequence[str],
    fields: Mapping[str, Sequence[str]] | None = None,
    start: str | None = None,
    batch_size: int | None = None,
    starts: Mapping[str, str] | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    backoff_factor: float = BACKOFF_FACTOR,
    max_retry_delay: float = MAX_RETRY_DELAY,
) -> DltSource:
    """One resource per catalog object in `objects` (`accounts`, `contacts`, `opportunities`).

    `fields`: object -> the SOQL SELECT list, when a catalog reads other fields than the
    default one; `start`: the first cursor value; `batch_size`: the page size asked of the org
    (`Sforce-Query-Options`, 200..2000)."""
    import dlt
    from dlt.sources.helpers.requests import Client
    from dlt.sources.rest_api import rest_api_resources

    unknown = [o for o in objects if o not in OBJECTS]
    if unknown:
        raise ValueError(
            f"Salesforce connector: unknown object(s) {unknown}; it pulls {sorted(OBJECTS)}"
        )
    if not token:
        raise SalesforceAccessError(f"the Salesforce connector needs {TOKEN_ENV}")
    if not base_url:
        raise SalesforceAccessError(f"the Salesforce connector needs {BASE_URL_ENV}")
    session = Client(
        raise_for_status=False,
        request_timeout=TIMEOUT,
        request_max_attempts=max_attempts,
        request_backoff_factor=backoff_factor,
        request_max_retry_delay=max_retry_delay,
        respect_retry_after_header=True,
    ).session
    headers = {"Accept": "application/json"}
    if batch_size:
        headers["Sforce-Query-Options"] = f"batchSize={batch_size}"
    resources = []
    for name in objects:
        spec = OBJECTS[name]
        select = (fields or {}).get(name) or spec["fields"]
        resources.append(
            {
                "name": name,
                "write_disposition": "append",
                "endpoint": {
                    "path": f"services/data/{API_VERSION}/query",
                    "params": {"q": soql(spec["sobject"], select, spec["cursor"])},
                    "data_selector": "records",
                    "paginator": {"type": "json_link", "next_url_path": "nextRecordsUrl"},
                    "incremental": {
                        "cursor_path": spec["cursor"],
                        "initial_value": (starts or {}).get(name) or start or START,
                        "convert": soql_datetime,
                    },
                    "response_actions": [_refusal],
                },
            }
        )
    config: dict[str, Any] = {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "auth": {"type": "bearer", "token": token},
            "headers": headers,
            "session": session,
        },
        "resource_defaults": {"max_table_nesting": 0},
        "resources": resources,
    }

    @dlt.source(name=VENDOR, max_table_nesting=0)
    def salesforce() -> Any:
        return rest_api_resources(config)  # type: ignore[arg-type]

    src = salesforce()
    # Records stay as the API wrote them: no ISO strings turned into timestamps on the way.
    src.schema.remove_type_detection("iso_timestamp")
    return src
