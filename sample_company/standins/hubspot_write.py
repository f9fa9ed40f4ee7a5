"""HubSpot's CRM v3 WRITE endpoints on 127.0.0.1, for the reverse-ETL destination (the read
endpoints the connector pulls through are `hubspot.py`'s).

What is HubSpot's own, checked against its API reference:
- `POST /crm/v3/objects/companies/batch/update` `{"inputs": [{"id", "properties"}]}`, at most
  100 inputs: 200 `{"status": "COMPLETE", "results": [...]}` when every record was updated; 207
  Multi-Status with `errors: [{"status": "error", "category", "message", "context": {"ids":
  [...]}}]` and `numErrors` when some were not (the others are updated); 400 VALIDATION_ERROR
  for the whole batch when a property does not exist or the batch is too large.
- `GET /crm/v3/properties/companies/<name>` (404 OBJECT_NOT_FOUND when missing), `POST
  /crm/v3/properties/companies` (`name`, `label`, `type`, `fieldType`, `groupName`; 409
  OBJECT_ALREADY_EXISTS), and the property groups under `/crm/v3/properties/companies/groups`.
- A missing or wrong token: 401 INVALID_AUTHENTICATION; over the rate limit: 429 with
  `policyName` and `Retry-After`.

The companies it knows are a vendor-stack landing root's (`hubspot/companies/*/*.json`) or
the ids given. `writes` counts each company's property updates (the exactly-once figure);
`reject[id] = n` plants a per-record error for that company's next n updates.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sample_company.standins.base import Request, Response, StandIn

MAX_INPUTS = 100
TYPES = {"string": {"text", "textarea", "select", "radio"}, "number": {"number"}}
# A few of HubSpot's own company properties (the ones the vendor stack reads).
DEFAULT_PROPERTIES = (
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
)


def _error(status: int, category: str, message: str, **extra: Any) -> Response:
    return Response(
        status,
        {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
            **extra,
        },
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubSpotWriteStandIn(StandIn):
    """HubSpot's company and property writes."""

    vendor = "hubspot"

    def __init__(
        self,
        landing: str | Path | None = None,
        companies: list[str] | None = None,
        token: str = "test-token",
        port: int = 0,
    ) -> None:
        super().__init__(token, port)
        self.companies: dict[str, dict[str, Any]] = {}
        for cid in companies or []:
            self.companies[str(cid)] = {}
        if landing is not None:
            for path in sorted(Path(landing).glob("hubspot/companies/*/*.json")):
                for record in json.loads(path.read_text()).get("results", []):
                    if record.get("id"):
                        self.companies.setdefault(str(record["id"]), {}).update(
                            record.get("properties") or {}
                        )
        self.properties: dict[str, dict[str, Any]] = {
            name: {
                "name": name,
                "type": "string",
                "fieldType": "text",
                "groupName": "companyinformation",
                "hubspotDefined": True,
            }
            for name in DEFAULT_PROPERTIES
        }
        self.groups: dict[str, dict[str, Any]] = {
            "companyinformation": {"name": "companyinformation", "label": "Company information"}
        }
        self.writes: Counter[str] = Counter()
        self.reject: dict[str, int] = {}
        base = "/crm/v3/properties/companies"
        self.route("POST", "/crm/v3/objects/companies/batch/update", self._batch_update)
        self.route("GET", f"{base}/groups/(?P<name>[\\w-]+)", self._get_group)
        self.route("POST", f"{base}/groups/?", self._create_group)
        self.route("GET", f"{base}/(?P<name>[\\w-]+)", self._get_property)
        self.route("POST", f"{base}/?", self._create_property)

    # -- HubSpot's refusals -----------------------------------------------------------------

    def unauthorized(self, req: Request) -> Response:
        return _error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication "
            "and you can find more details at https://developers.hubspot.com/docs/methods/auth/"
            "oauth-overview",
        )

    def rate_limited(self, req: Request) -> Response:
        resp = _error(
            429,
            "RATE_LIMITS",
            "You have reached your ten_secondly_rolling limit.",
            errorType="RATE_LIMIT",
            policyName="TEN_SECONDLY_ROLLING",
            groupName="publicapi:private-app:standin",
        )
        resp.headers["Retry-After"] = str(self.faults.retry_after)
        return resp

    def failed(self, req: Request) -> Response:
        return _error(self.faults.status, "INTERNAL_ERROR", "internal error")

    # -- properties -------------------------------------------------------------------------

    def _get_property(self, req: Request) -> Response:
        name = req.path.rsplit("/", 1)[1]
        if name not in self.properties:
            return _error(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
        return Response(200, self.properties[name])

    def _create_property(self, req: Request) -> Response:
        body = req.json() or {}
        missing = [
            f for f in ("name", "label", "type", "fieldType", "groupName") if not body.get(f)
        ]
        if missing:
            return _error(400, "VALIDATION_ERROR", f"missing required fields: {missing}")
        if body["name"] in self.properties:
            return _error(
                409, "OBJECT_ALREADY_EXISTS", f"Property named '{body['name']}' already exists."
            )
        if body["fieldType"] not in TYPES.get(body["type"], set()):
            return _error(
                400,
                "VALIDATION_ERROR",
                f"fieldType {body['fieldType']} is not valid for type {body['type']}",
            )
        if body["groupName"] not in self.groups:
            return _error(
                400, "VALIDATION_ERROR", f"property group {body['groupName']} does not exist"
            )
        prop = {**body, "hubspotDefined": False, "createdAt": _now()}
        self.properties[body["name"]] = prop
        return Response(201, prop)

    def _get_group(self, req: Request) -> Response:
        name = req.path.rsplit("/", 1)[1]
        if name not in self.groups:
            return _error(404, "OBJECT_NOT_FOUND", f"Unable to find property group {name}")
        return Response(200, self.groups[name])

    def _create_group(self, req: Request) -> Response:
        body = req.json() or {}
        if not body.get("name") or not body.get("label"):
            return _error(400, "VALIDATION_ERROR", "name and label are required")
        if body["name"] in self.groups:
            return _error(409, "OBJECT_ALREADY_EXISTS", f"group {body['name']} already exists")
        self.groups[body["name"]] = body
        return Response(201, body)

    # -- companies --------------------------------------------------------------------------

    def _batch_update(self, req: Request) -> Response:
        started = _now()
        inputs = (req.json() or {}).get("inputs")
        if not isinstance(inputs, list) or not inputs:
            return _error(400, "VALIDATION_ERROR", "inputs: must not be empty")
        if len(inputs) > MAX_INPUTS:
            return _error(
                400,
                "VALIDATION_ERROR",
                f"Batch input limit exceeded: {len(inputs)} inputs, at most {MAX_INPUTS}",
            )
        unknown = sorted(
            {p for i in inputs for p in (i.get("properties") or {})} - set(self.properties)
        )
        if unknown:
            return _error(
                400,
                "VALIDATION_ERROR",
                "Property values were not valid: "
                + json.dumps(
                    [
                        {
                            "isValid": False,
                            "message": f'Property "{p}" does not exist',
                            "error": "PROPERTY_DOESNT_EXIST",
                            "name": p,
                        }
                        for p in unknown
                    ]
                ),
            )
        results, missing, refused = [], [], []
        for item in inputs:
            cid = str(item.get("id"))
            if cid not in self.companies:
                missing.append(cid)
                continue
            if self.reject.get(cid, 0) > 0:
                self.reject[cid] -= 1
                refused.append(cid)
                continue
            self.companies[cid].update(item.get("properties") or {})
            self.writes[cid] += 1
            results.append(
                {
                    "id": cid,
                    "properties": dict(self.companies[cid]),
                    "createdAt": self.companies[cid].get("createdate", started),
                    "updatedAt": _now(),
                    "archived": False,
                }
            )
        errors = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some COMPANY objects, they may be deleted or not "
                    f"exist. Check that ids are valid. ({', '.join(missing)})",
                    "context": {"ids": missing},
                }
            )
        for cid in refused:
            errors.append(
                {
                    "status": "error",
                    "category": "CONFLICT",
                    "message": f"The object {cid} is being updated by another request",
                    "context": {"ids": [cid]},
                }
            )
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "requestedAt": started,
            "startedAt": started,
            "completedAt": _now(),
        }
        if errors:
            body |= {"errors": errors, "numErrors": len(errors)}
            return Response(207, body)
        return Response(200, body)


def serve(landing: str, port: int, token: str) -> None:
    with HubSpotWriteStandIn(landing, token=token, port=port) as standin:
        print(
            f"hubspot (writes) stand-in at {standin.url}: {len(standin.companies)} companies",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", required=True, help="a vendor-stack landing root")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    serve(args.landing, args.port, args.token)


if __name__ == "__main__":
    main()
