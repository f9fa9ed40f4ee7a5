"""HubSpot CRM v3 read endpoints on 127.0.0.1, serving the sample company's vendor world.

Loaded from a landing root written with `--stack vendor`: every version of every company,
contact and deal (all extract dates) becomes visible at its `updatedAt`; at `clock` the API
serves the latest version of each record updated at or before it. Shapes follow HubSpot's API:
- `GET /crm/v3/objects/<object>?limit&after&properties&associations`: records by id, at most
  100 a page, `paging.next.after` (the next id), only the requested properties (null when
  unset), `associations.<kind>.results` when asked for and present;
- `POST /crm/v3/objects/<object>/search` (filterGroups of `propertyName`/`operator`/`value`,
  sorts, properties, limit capped at 200, `after` an offset): `total`, `results`, `paging`; no
  associations; paging past `search_cap` (10,000) results is a 400, as HubSpot's;
- `POST /crm/v3/associations/<from>/<to>/batch/read`: `{"results": [{"from", "to"}]}`;
- a wrong or missing Bearer token: 401 `INVALID_AUTHENTICATION`; a rate limit: 429 with
  `policyName` and `Retry-After`.
HubSpot's write endpoints are another module's (the CRM destination's stand-in).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import uuid
from bisect import bisect_right
from pathlib import Path
from typing import Any

from sample_company.standins.base import Request, Response, StandIn

OBJECTS = ("companies", "contacts", "deals")
LIST_CAP = 100
SEARCH_CAP_PAGE = 200
SEARCH_CAP = 10_000
DEFAULT_PROPERTIES = {
    "companies": ("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"),
    "contacts": (
        "firstname",
        "lastname",
        "email",
        "createdate",
        "lastmodifieddate",
        "hs_object_id",
    ),
    "deals": (
        "dealname",
        "amount",
        "closedate",
        "pipeline",
        "dealstage",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    ),
}
ALWAYS = ("hs_object_id", "createdate")


def _ms(value: Any) -> int | None:
    """Epoch milliseconds of an ISO-8601 string or a millisecond string; None stays None."""
    if value is None or value == "":
        return None
    s = str(value)
    if s.lstrip("-").isdigit():
        return int(s)
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return round(t.timestamp() * 1000)


class HubSpotStandIn(StandIn):
    """HubSpot's CRM read API over the records of a vendor-stack landing root."""

    vendor = "hubspot"

    def __init__(self, landing: Path | str, token: str = "test-token", port: int = 0) -> None:
        super().__init__(token, port)
        self.search_cap = SEARCH_CAP
        # object -> id -> [(updated ms, record)] oldest first
        self.versions: dict[str, dict[str, list[tuple[int, dict]]]] = {o: {} for o in OBJECTS}
        self._load(Path(landing))
        latest = max(
            (v[-1][0] for recs in self.versions.values() for v in recs.values()), default=0
        )
        self.clock = dt.datetime.fromtimestamp(latest / 1000, dt.UTC)  # everything visible
        for obj in OBJECTS:
            self.route("GET", f"/crm/v3/objects/{obj}", lambda r, o=obj: self._list(r, o))
            self.route("POST", f"/crm/v3/objects/{obj}/search", lambda r, o=obj: self._search(r, o))
        self.route("POST", r"/crm/v3/associations/(\w+)/(\w+)/batch/read", self._associations)

    # -- the world ----------------------------------------------------------------------------

    def _load(self, landing: Path) -> None:
        for obj in OBJECTS:
            seen: set[tuple[str, int]] = set()
            for f in sorted((landing / "hubspot" / obj).glob("*/*.json")):
                for rec in json.loads(f.read_text(encoding="utf-8")).get("results", []):
                    if not rec.get("id") or not rec.get("updatedAt"):
                        continue  # a record HubSpot could not have served (a planted bad row)
                    key = (rec["id"], _ms(rec["updatedAt"]))
                    if key in seen:
                        continue
                    seen.add(key)
                    self.versions[obj].setdefault(rec["id"], []).append((key[1], rec))
            for vs in self.versions[obj].values():
                vs.sort(key=lambda v: v[0])

    def advance(self, to: dt.datetime | str) -> None:
        """Move the API's clock: versions updated up to `to` become visible."""
        self.clock = to if isinstance(to, dt.datetime) else dt.datetime.fromisoformat(to)

    def current(self, obj: str) -> list[dict]:
        """The latest version of each record updated at or before the clock, by id."""
        now = int(self.clock.timestamp() * 1000)
        out = []
        for _rid, vs in self.versions[obj].items():
            i = bisect_right([v[0] for v in vs], now)
            if i:
                out.append(vs[i - 1][1])
        return sorted(out, key=lambda r: int(r["id"]))

    # -- HubSpot's refusals --------------------------------------------------------------------

    def unauthorized(self, req: Request) -> Response:
        return Response(
            401,
            {
                "status": "error",
                "message": "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "correlationId": str(uuid.uuid4()),
                "category": "INVALID_AUTHENTICATION",
            },
        )

    def rate_limited(self, req: Request) -> Response:
        return Response(
            429,
            {
                "status": "error",
                "message": "You have reached your secondly limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": "SECONDLY",
            },
            {"Retry-After": str(self.faults.retry_after)},
        )

    def failed(self, req: Request) -> Response:
        return Response(
            self.faults.status,
            {
                "status": "error",
                "message": "internal error",
                "correlationId": str(uuid.uuid4()),
                "category": "INTERNAL_ERROR",
            },
        )

    @staticmethod
    def _bad(message: str) -> Response:
        return Response(
            400,
            {
                "status": "error",
                "message": message,
                "correlationId": str(uuid.uuid4()),
                "category": "VALIDATION_ERROR",
            },
        )

    # -- endpoints ----------------------------------------------------------------------------

    def _shape(self, rec: dict, obj: str, props: tuple[str, ...], assoc: tuple[str, ...]) -> dict:
        """The record as the API returns it: requested properties (null when unset) in the
        record's order, associations when asked for and present."""
        have = rec.get("properties", {})
        wanted = set(props) | set(ALWAYS)
        properties = {k: v for k, v in have.items() if k in wanted}
        properties.update({k: None for k in props if k not in properties})
        out = {
            "id": rec["id"],
            "properties": properties,
            "createdAt": rec["createdAt"],
            "updatedAt": rec["updatedAt"],
            "archived": rec.get("archived", False),
        }
        links = {
            k: rec["associations"][k]
            for k in assoc
            if rec.get("associations", {}).get(k, {}).get("results")
        }
        if links:
            out["associations"] = links
        return out

    def _props(self, obj: str, asked: Any) -> tuple[str, ...]:
        if isinstance(asked, str):
            asked = [p for p in asked.split(",") if p]
        return tuple(asked) if asked else DEFAULT_PROPERTIES[obj]

    def _list(self, req: Request, obj: str) -> Response:
        try:
            limit = min(int(req.arg("limit", "10") or 10), LIST_CAP)
            after = int(req.arg("after") or 0)
        except ValueError:
            return self._bad("limit and after must be integers")
        props = self._props(obj, req.arg("properties"))
        assoc = tuple(a for a in (req.arg("associations") or "").split(",") if a)
        recs = [r for r in self.current(obj) if int(r["id"]) >= after]
        page, rest = recs[:limit], recs[limit:]
        body: dict[str, Any] = {"results": [self._shape(r, obj, props, assoc) for r in page]}
        if rest:
            nxt = rest[0]["id"]
            body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return Response(200, body)

    def _search(self, req: Request, obj: str) -> Response:
        q = req.json() or {}
        limit = min(int(q.get("limit") or 10), SEARCH_CAP_PAGE)
        after = int(q.get("after") or 0)
        if after + limit > self.search_cap:
            return self._bad(
                f"Paging past {self.search_cap} results is not supported for search requests"
            )
        recs = [r for r in self.current(obj) if self._matches(r, q.get("filterGroups") or [])]
        for s in reversed(q.get("sorts") or []):
            name = s["propertyName"] if isinstance(s, dict) else str(s)
            desc = isinstance(s, dict) and s.get("direction") == "DESCENDING"
            recs.sort(key=lambda r, n=name: _ms(self._value(r, n)) or 0, reverse=desc)
        props = self._props(obj, q.get("properties"))
        page = recs[after : after + limit]
        body: dict[str, Any] = {
            "total": len(recs),
            "results": [self._shape(r, obj, props, ()) for r in page],
        }
        if after + limit < len(recs):
            nxt = str(after + limit)
            body["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return Response(200, body)

    @staticmethod
    def _value(rec: dict, name: str) -> Any:
        props = rec.get("properties", {})
        if name in props:
            return props[name]
        return {"hs_lastmodifieddate": rec["updatedAt"], "lastmodifieddate": rec["updatedAt"]}.get(
            name, rec.get(name)
        )

    def _matches(self, rec: dict, groups: list[dict]) -> bool:
        """filterGroups are ORed, a group's filters ANDed (HubSpot's rule)."""
        if not groups:
            return True
        return any(all(self._test(rec, f) for f in g.get("filters", [])) for g in groups)

    def _test(self, rec: dict, f: dict) -> bool:
        have = self._value(rec, f["propertyName"])
        op, want = f.get("operator", "EQ"), f.get("value")
        if op == "HAS_PROPERTY":
            return have is not None
        if have is None:
            return op == "NOT_HAS_PROPERTY"
        a, b = _ms(have), _ms(want)
        if a is None or b is None:
            a, b = str(have), str(want)  # type: ignore[assignment]
        return {
            "EQ": a == b,
            "NEQ": a != b,
            "GT": a > b,
            "GTE": a >= b,
            "LT": a < b,
            "LTE": a <= b,
        }.get(op, False)

    def _associations(self, req: Request) -> Response:
        parts = req.path.split("/")
        frm, to = parts[4], parts[5]
        if frm not in OBJECTS:
            return self._bad(f"Unknown object type {frm}")
        current = {r["id"]: r for r in self.current(frm)}
        results = []
        for item in (req.json() or {}).get("inputs", []):
            rec = current.get(str(item.get("id")))
            links = (rec or {}).get("associations", {}).get(to, {}).get("results") or []
            if links:
                results.append({"from": {"id": rec["id"]}, "to": links})
        now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        return Response(
            200,
            {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now},
        )


def serve(landing: Path | str, port: int = 0, token: str = "test-token") -> HubSpotStandIn:
    """Start the stand-in (until the process ends) and return it."""
    return HubSpotStandIn(landing, token=token, port=port).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="HubSpot CRM read API stand-in on 127.0.0.1.")
    p.add_argument("--landing", required=True, help="a landing root written with --stack vendor")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", default="test-token")
    args = p.parse_args(argv)
    standin = serve(args.landing, args.port, args.token)
    print(f"HubSpot stand-in on {standin.url} (clock {standin.clock.isoformat()})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
