"""Salesforce's REST API on 127.0.0.1: the SOQL query API the connector reads through, and the
sObject Collections writes the reverse-ETL destination sends.

The world is a default-stack landing root (`python -m sample_company.cli --out L`): every record
version of `crm/accounts|contacts|opportunities` becomes visible at its `SystemModstamp` (the
version's `LastModifiedDate`; the extract date when a planted bad row has none). A query at
`clock` sees, per record, its latest version stamped at or before `clock`.

What is Salesforce's own, checked against the REST API Developer Guide:
- `GET /services/data/v62.0/query?q=<SOQL>` answers `{totalSize, done, nextRecordsUrl?,
  records}`, each record with `attributes: {type, url}`; the rest of the result set is paged by
  `GET <nextRecordsUrl>` (`/services/data/v62.0/query/01gxx-2000`). Page size is 2,000 unless
  the `Sforce-Query-Options: batchSize=n` header asks for fewer (200..2000; a hint, not a
  promise). `max_batch` lowers the cap so small test worlds still page.
- The SOQL subset a connector sends: `SELECT <fields> FROM <object> [WHERE SystemModstamp >|>=
  <datetime>] [ORDER BY <field> [ASC|DESC]] [LIMIT n]`. Anything else is a 400
  `MALFORMED_QUERY`; an unknown field `INVALID_FIELD`; an unknown object `INVALID_TYPE`.
- A missing or wrong bearer token: 401 `[{"message": "Session expired or invalid",
  "errorCode": "INVALID_SESSION_ID"}]`; a refused request over the org's limits: 403
  `REQUEST_LIMIT_EXCEEDED` (Salesforce sends no Retry-After).
- Writes: `PATCH /composite/sobjects` (update by record Id) and `PATCH
  /composite/sobjects/<Object>/<ExternalIdField>` (upsert by an External ID field; record Ids
  are refused there), at most 200 records, `allOrNone`, answered 200 with one
  `{id, success, errors[], created}` per record in input order. `GET
  /sobjects/<Object>/describe` lists the fields (custom fields the admin created included).
"""

from __future__ import annotations

import argparse
import json
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sample_company.standins.base import Request, Response, StandIn

API = "/services/data/v62.0"
# The landing objects served, by sObject name.
OBJECTS = {"Account": "accounts", "Contact": "contacts", "Opportunity": "opportunities"}
ID_PREFIX = {"Account": "001", "Contact": "003", "Opportunity": "006"}
MAX_BATCH = 2000
MIN_BATCH = 200
MAX_COLLECTION = 200
# Custom fields the org has (the admin created them for the reverse ETL): sObject -> fields.
LAKEHOUSE_FIELDS = {
    "Churn_Risk__c": "double",
    "Churn_Risk_Band__c": "string",
    "Expansion_Propensity__c": "double",
    "Lifecycle_Stage__c": "string",
    "Health_Score__c": "double",
    "Next_Best_Action__c": "string",
    "Action_Confidence__c": "double",
    "Top_Reasons__c": "textarea",
    "Churn_Model_Version__c": "string",
    "Expansion_Model_Version__c": "string",
}


def sf_datetime(ts: datetime) -> str:
    """Salesforce's JSON datetime: `2025-09-12T18:02:10.000+0000`."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}+0000"


def parse_datetime(value: str) -> datetime:
    """A SOQL datetime literal or a JSON datetime (`Z`, `+0000` or `+00:00`)."""
    text = value.strip()
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text.replace("Z", "+00:00"))
    ts = datetime.fromisoformat(text)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


class SoqlError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Soql:
    fields: tuple[str, ...]
    sobject: str
    since: datetime | None = None
    inclusive: bool = False
    order_by: str | None = None
    descending: bool = False
    limit: int | None = None


_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)"
    r"(?:\s+WHERE\s+(?P<wfield>\w+)\s*(?P<op>>=|>)\s*(?P<since>[0-9T:.+\-Z]+))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?P<dir>ASC|DESC))?)?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def parse_soql(q: str) -> Soql:
    """The subset a connector sends; Salesforce's error code for anything else."""
    m = _SOQL.match(q or "")
    if not m:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token in query: {q!r}")
    fields = tuple(f.strip() for f in m["fields"].split(","))
    if not all(re.fullmatch(r"\w+", f) for f in fields):
        raise SoqlError("MALFORMED_QUERY", f"unexpected token in SELECT list: {m['fields']!r}")
    since = None
    if m["wfield"]:
        if m["wfield"].lower() != "systemmodstamp":
            raise SoqlError("MALFORMED_QUERY", f"this stand-in filters only on SystemModstamp: {q}")
        try:
            since = parse_datetime(m["since"])
        except ValueError:
            raise SoqlError(
                "MALFORMED_QUERY",
                f"value of filter criterion for field 'SystemModstamp' must "
                f"be of type dateTime and should not be enclosed in quotes: {m['since']}",
            ) from None
    return Soql(
        fields=fields,
        sobject=m["object"],
        since=since,
        inclusive=m["op"] == ">=",
        order_by=m["order"],
        descending=(m["dir"] or "").upper() == "DESC",
        limit=int(m["limit"]) if m["limit"] else None,
    )


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, [{"message": message, "errorCode": code}])


class SalesforceStandIn(StandIn):
    """A Salesforce org serving the sample company's CRM objects, and taking its writes."""

    vendor = "salesforce"

    def __init__(
        self, landing: str | Path | None = None, token: str = "test-token", port: int = 0
    ) -> None:
        super().__init__(token, port)
        self.max_batch = MAX_BATCH
        # sObject -> record key -> [(SystemModstamp, record)] ascending
        self.versions: dict[str, dict[str, list[tuple[datetime, dict]]]] = {o: {} for o in OBJECTS}
        self.fields: dict[str, dict[str, str]] = {o: {"Id": "id"} for o in OBJECTS}
        self.fields["Account"].update(LAKEHOUSE_FIELDS)
        self.external_ids: dict[str, set[str]] = {o: set() for o in OBJECTS}
        self.locators: dict[str, list[dict]] = {}
        # writes: what the org holds from the lakehouse, and how many times each record was set
        self.written: dict[str, dict[str, Any]] = {}
        self.writes: Counter[str] = Counter()
        self.reject: dict[str, int] = {}  # record key -> how many more writes to refuse
        if landing is not None:
            self.load(Path(landing))
            stamps = [v[-1][0] for recs in self.versions.values() for v in recs.values()]
            if stamps:
                self.clock = max(stamps)  # the world's end: everything has happened
        self.route("GET", f"{API}/query/?", self._query)
        self.route("GET", f"{API}/query/(?P<locator>[\\w-]+)", self._query_more)
        self.route("GET", f"{API}/sobjects/(\\w+)/describe/?", self._describe)
        self.route("PATCH", f"{API}/composite/sobjects/?", self._update)
        self.route("PATCH", f"{API}/composite/sobjects/(\\w+)/(\\w+)/?", self._upsert)

    # -- the world --------------------------------------------------------------------------

    def load(self, landing: Path) -> None:
        """Every record version of the landing root's crm objects, stamped when it changed."""
        for sobject, name in OBJECTS.items():
            seen: dict[str, dict[datetime, dict]] = {}
            for path in sorted((landing / "crm" / name).glob("*/*.json")):
                extract = datetime.fromisoformat(path.parent.name).replace(tzinfo=UTC)
                for line, record in enumerate(json.loads(path.read_text())):
                    key = record.get("Id") or f"{path.parent.name}/{path.name}:{line}"
                    try:
                        stamp = parse_datetime(record["LastModifiedDate"])
                    except (KeyError, TypeError, ValueError):
                        stamp = extract
                    seen.setdefault(str(key), {})[stamp] = record
                    for f, v in record.items():
                        kind = "double" if isinstance(v, int | float) else "string"
                        self.fields[sobject].setdefault(f, kind)
            self.versions[sobject] = {k: sorted(v.items()) for k, v in seen.items()}
            self.fields[sobject]["SystemModstamp"] = "datetime"

    def current(self, sobject: str) -> dict[str, tuple[datetime, dict]]:
        """Per record, its latest version at `clock`."""
        out = {}
        for key, versions in self.versions[sobject].items():
            visible = [v for v in versions if v[0] <= self.clock]
            if visible:
                out[key] = visible[-1]
        return out

    def record(self, sobject: str, key: str, stamp: datetime, fields: dict, select: tuple) -> dict:
        canonical = {f.lower(): f for f in self.fields[sobject]}
        out: dict[str, Any] = {
            "attributes": {"type": sobject, "url": f"{API}/sobjects/{sobject}/{key}"}
        }
        for f in select:
            name = canonical[f.lower()]
            if name == "SystemModstamp":
                out[name] = sf_datetime(stamp)
            elif name in LAKEHOUSE_FIELDS:
                out[name] = self.written.get(key, {}).get(name)
            else:
                out[name] = fields.get(name)
        return out

    # -- Salesforce's answers ---------------------------------------------------------------

    def unauthorized(self, req: Request) -> Response:
        return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def rate_limited(self, req: Request) -> Response:
        return _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")

    def failed(self, req: Request) -> Response:
        return _error(
            self.faults.status,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: "
            "1234567890-12345 (-1234567890)",
        )

    def _batch(self, req: Request) -> int:
        asked = re.search(r"batchSize=(\d+)", req.headers.get("sforce-query-options", ""))
        size = min(max(int(asked[1]), MIN_BATCH), MAX_BATCH) if asked else MAX_BATCH
        return min(size, self.max_batch)

    def _query(self, req: Request) -> Response:
        q = req.arg("q")
        try:
            soql = parse_soql(q or "")
            rows = self.select(soql)
        except SoqlError as e:
            return _error(400, e.code, str(e))
        locator = f"01g{uuid.uuid4().hex[:15]}"
        self.locators[locator] = rows
        return self._page(locator, 0, self._batch(req))

    def _query_more(self, req: Request) -> Response:
        locator, _, offset = req.path.rsplit("/", 1)[1].rpartition("-")
        if locator not in self.locators or not offset.isdigit():
            return _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(locator, int(offset), self._batch(req))

    def _page(self, locator: str, offset: int, size: int) -> Response:
        rows = self.locators[locator]
        page = rows[offset : offset + size]
        done = offset + size >= len(rows)
        body: dict[str, Any] = {"totalSize": len(rows), "done": done, "records": page}
        if not done:
            body["nextRecordsUrl"] = f"{API}/query/{locator}-{offset + size}"
        return Response(200, body)

    def select(self, soql: Soql) -> list[dict]:
        if soql.sobject not in OBJECTS:
            raise SoqlError(
                "INVALID_TYPE",
                f"\n{soql.sobject}\n^\nERROR at Row:1:Column:1\nsObject type "
                f"'{soql.sobject}' is not supported.",
            )
        known = {f.lower() for f in self.fields[soql.sobject]}
        for f in (*soql.fields, *([soql.order_by] if soql.order_by else [])):
            if f.lower() not in known:
                raise SoqlError(
                    "INVALID_FIELD",
                    f"\nERROR at Row:1:Column:8\nNo such column '{f}' on entity "
                    f"'{soql.sobject}'. If you are attempting to use a custom field, be sure to "
                    "append the '__c' after the custom field name.",
                )
        found = [
            (stamp, key, fields)
            for key, (stamp, fields) in self.current(soql.sobject).items()
            if soql.since is None or stamp > soql.since or (soql.inclusive and stamp == soql.since)
        ]
        if soql.order_by:
            canonical = {f.lower(): f for f in self.fields[soql.sobject]}[soql.order_by.lower()]

            def by(item: tuple) -> tuple:
                stamp, key, fields = item
                value = stamp if canonical == "SystemModstamp" else fields.get(canonical)
                return (value is None, str(value) if value is not None else "", key)

            found.sort(key=by, reverse=soql.descending)
        if soql.limit is not None:
            found = found[: soql.limit]
        return [self.record(soql.sobject, k, s, f, soql.fields) for s, k, f in found]

    def _describe(self, req: Request) -> Response:
        sobject = req.path.split("/")[-2] if req.path.endswith("/describe") else ""
        if sobject not in OBJECTS:
            return _error(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        fields = [
            {
                "name": name,
                "type": kind,
                "custom": name.endswith("__c"),
                "externalId": name in self.external_ids[sobject],
                "updateable": name not in ("Id", "SystemModstamp", "CreatedDate"),
            }
            for name, kind in self.fields[sobject].items()
        ]
        return Response(200, {"name": sobject, "fields": fields})

    # -- writes -----------------------------------------------------------------------------

    def _collection(self, req: Request) -> list[dict] | Response:
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            return _error(400, "JSON_PARSER_ERROR", "Cannot deserialize the request: records")
        if len(body["records"]) > MAX_COLLECTION:
            return _error(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_COLLECTION} records into "
                "this call",
            )
        return body["records"]

    def _apply(self, sobject: str, key: str, record: dict) -> dict:
        """One record's write, as Salesforce answers it inside a collection."""
        unknown = [
            f for f in record if f not in ("attributes", "Id") and f not in self.fields[sobject]
        ]
        if unknown:
            return _failure(
                "INVALID_FIELD",
                f"No such column '{unknown[0]}' on sobject of type {sobject}",
                unknown[:1],
            )
        if self.reject.get(key, 0) > 0:
            self.reject[key] -= 1
            return _failure(
                "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record", [], key
            )
        values = {f: v for f, v in record.items() if f in LAKEHOUSE_FIELDS}
        self.written.setdefault(key, {}).update(values)
        self.writes[key] += 1
        return {"id": key, "success": True, "errors": [], "created": False}

    def _update(self, req: Request) -> Response:
        records = self._collection(req)
        if isinstance(records, Response):
            return records
        existing = {o: self.current(o) for o in OBJECTS}
        results = []
        for record in records:
            sobject = (record.get("attributes") or {}).get("type")
            key = record.get("Id")
            if sobject not in OBJECTS or key not in existing[sobject]:
                results.append(
                    _failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
                )
                continue
            results.append(self._apply(sobject, key, record))
        return Response(200, results)

    def _upsert(self, req: Request) -> Response:
        sobject, field = req.path.rstrip("/").split("/")[-2:]
        if sobject not in OBJECTS:
            return _error(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        if field not in self.external_ids[sobject]:
            return _error(
                400,
                "INVALID_FIELD",
                f"Field name provided, {field} is not an External ID or indexed field for "
                f"{sobject}",
            )
        records = self._collection(req)
        if isinstance(records, Response):
            return records
        by_value = {}
        for key, (_, fields) in self.current(sobject).items():
            value = self.written.get(key, {}).get(field, fields.get(field))
            if value is not None:
                by_value[str(value)] = key
        results = []
        for record in records:
            if "Id" in record:
                return _error(
                    400, "INVALID_FIELD", "Id not specified in an upsert with an external id"
                )
            key = by_value.get(str(record.get(field)))
            if key is None:  # would create an account: Name is required and never sent
                results.append(
                    _failure(
                        "REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ["Name"]
                    )
                )
                continue
            results.append(self._apply(sobject, key, record))
        return Response(200, results)


def _failure(code: str, message: str, fields: list[str], key: str | None = None) -> dict:
    return {
        "id": key,
        "success": False,
        "errors": [{"statusCode": code, "message": message, "fields": fields}],
    }


def serve(landing: str, port: int, token: str) -> None:
    """Serve a landing root as Salesforce until interrupted."""
    with SalesforceStandIn(landing, token=token, port=port) as standin:
        print(
            f"salesforce stand-in at {standin.url} (clock {standin.clock.isoformat()})", flush=True
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", required=True, help="a default-stack landing root")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", required=True, help="the bearer token clients must send")
    args = parser.parse_args()
    serve(args.landing, args.port, args.token)


if __name__ == "__main__":
    main()
