"""Stripe's list and events APIs on 127.0.0.1, serving the sample company's billing world.

The world is read from a `--stack vendor` landing root (`stripe/<object>/<date>/*.json`, list
objects under `data`). Stripe keeps no update time, so a record's first version exists from its
`created` second and every later version from the end of the extract day that carried it; at
`clock` the API serves each record's latest version by then. What a client sees is Stripe's:

- `GET /v1/customers|subscriptions|invoices?limit=&starting_after=&created[gte]=...` answers a
  list object (`object: "list"`, `url`, `has_more`, `data`) newest first; `limit` 1..100
  (default 10); subscriptions leave out `canceled` ones unless `status=all` (or `canceled`).
- `GET /v1/events?types[]=...&created[gt]=...` answers the events of the last 30 days, newest
  first, each with the record as it was then under `data.object` (`customer.created|updated`,
  `customer.subscription.created|updated|deleted`, `invoice.created|updated|paid`).
- Auth: `Authorization: Bearer sk_...` (or Basic with the key as user name); a wrong key is a
  401 with Stripe's error object, a 429 carries `Stripe-Rate-Limited-Reason` and `Retry-After`.

`python -m sample_company.standins.stripe --landing L --port P --token T` serves it (`serve`).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sample_company.standins.base import Request, Response, StandIn

OBJECTS = ("customers", "subscriptions", "invoices")
KIND = {"customers": "customer", "subscriptions": "customer.subscription", "invoices": "invoice"}
EVENT_RETENTION = 30 * 86_400  # Stripe lists the events of the last 30 days
MAX_LIMIT = 100
DAY = 86_400


@dataclass(frozen=True)
class Version:
    at: int  # unix second from which the API serves this version
    seq: int  # the record's n-th version
    record: dict[str, Any]


def _day_start(name: str) -> int:
    return int(dt.datetime.fromisoformat(name).replace(tzinfo=dt.UTC).timestamp())


def load_versions(landing: Path | str, obj: str) -> dict[str, list[Version]]:
    """Every version of every record of `stripe/<obj>` in the landing root, by id, in order."""
    out: dict[str, list[Version]] = {}
    folder = Path(landing) / "stripe" / obj
    for day in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        day_end = _day_start(day.name) + DAY - 1
        for f in sorted(day.glob("*.json")):
            for rec in json.loads(f.read_text())["data"]:
                seen = out.setdefault(rec["id"], [])
                at = int(rec["created"]) if not seen else day_end
                seen.append(Version(max(at, seen[-1].at) if seen else at, len(seen), rec))
    return out


def last_extract_end(landing: Path | str) -> dt.datetime:
    """The end of the newest extract day under `stripe/`: the clock that serves all of it."""
    days = [p.name for p in (Path(landing) / "stripe").glob("*/*") if p.is_dir()]
    if not days:
        raise FileNotFoundError(f"no stripe/<object>/<date>/ folders under {landing}")
    return dt.datetime.fromtimestamp(_day_start(max(days)) + DAY - 1, dt.UTC)


def _error(status: int, type_: str, message: str, **extra: Any) -> Response:
    return Response(status, {"error": {"type": type_, "message": message, **extra}})


class StripeStandIn(StandIn):
    """Stripe's API for the sample company's world at `clock` (default: its last extract)."""

    vendor = "stripe"

    def __init__(
        self,
        landing: Path | str,
        token: str = "sk_test_standin",
        port: int = 0,
        clock: dt.datetime | None = None,
    ) -> None:
        super().__init__(token, port)
        self.versions = {obj: load_versions(landing, obj) for obj in OBJECTS}
        self.clock = clock or last_extract_end(landing)
        self._events = self._build_events()
        for obj in OBJECTS:
            self.route("GET", f"/v1/{obj}", lambda req, obj=obj: self._list(req, obj))
        self.route("GET", "/v1/events", self._list_events)

    # -- the world at the clock ---------------------------------------------------------------

    @property
    def now(self) -> int:
        return int(self.clock.timestamp())

    def current(self, obj: str, at: int | None = None) -> dict[str, dict]:
        """Each record's latest version at `at` (default: the clock), by id."""
        at = self.now if at is None else at
        out = {}
        for rid, vs in self.versions[obj].items():
            live = [v for v in vs if v.at <= at]
            if live:
                out[rid] = live[-1].record
        return out

    def _build_events(self) -> list[dict]:
        """One event per version: `<kind>.created` for the first, `.updated` (a cancellation:
        `customer.subscription.deleted`; a payment: `invoice.updated` then `invoice.paid`)."""
        events = []
        for obj in OBJECTS:
            kind = KIND[obj]
            for rid, vs in self.versions[obj].items():
                for v in vs:
                    types = [f"{kind}.created"] if v.seq == 0 else [f"{kind}.updated"]
                    prev = vs[v.seq - 1].record if v.seq else {}
                    if v.seq and obj == "subscriptions" and v.record.get("status") == "canceled":
                        types = [f"{kind}.deleted"]
                    if v.seq and obj == "invoices" and v.record.get("paid") > prev.get("paid"):
                        types.append("invoice.paid")
                    for i, t in enumerate(types):
                        digest = hashlib.sha1(f"{rid}|{v.seq}|{t}".encode()).hexdigest()[:24]
                        events.append(
                            {
                                "id": f"evt_{digest}",
                                "object": "event",
                                "api_version": "2024-06-20",
                                "created": v.at,
                                "data": {"object": v.record},
                                "livemode": True,
                                "pending_webhooks": 0,
                                "request": {"id": None, "idempotency_key": None},
                                "type": t,
                                "_order": (v.at, i),
                            }
                        )
        events.sort(key=lambda e: (e["_order"], e["id"]))
        return events

    # -- routes -------------------------------------------------------------------------------

    def _list(self, req: Request, obj: str) -> Response:
        rows = list(self.current(obj).values())
        if obj == "subscriptions":
            status = req.arg("status")
            if status not in (None, "all"):
                rows = [r for r in rows if r["status"] == status]
            elif status is None:
                rows = [r for r in rows if r["status"] != "canceled"]
        rows = _created(rows, req)
        if isinstance(rows, Response):
            return rows
        return self._page(req, f"/v1/{obj}", rows, KIND[obj].rsplit(".", 1)[-1])

    def _list_events(self, req: Request) -> Response:
        types = req.query.get("types[]") or ([req.arg("type")] if req.arg("type") else None)
        if types and len(types) > 20:
            return _error(400, "invalid_request_error", "You may pass at most 20 types.")
        lo = self.now - EVENT_RETENTION
        rows = [
            {k: v for k, v in e.items() if k != "_order"}
            for e in self._events
            if lo < e["created"] <= self.now and (not types or e["type"] in types)
        ]
        rows = _created(rows, req)
        if isinstance(rows, Response):
            return rows
        return self._page(req, "/v1/events", rows, "event")

    def _page(self, req: Request, url: str, rows: list[dict], name: str) -> Response:
        """Stripe's cursor paging: newest first; `starting_after` / `ending_before` name an id."""
        try:
            limit = int(req.arg("limit", "10") or 10)
        except ValueError:
            return _error(400, "invalid_request_error", "Invalid integer: limit", param="limit")
        if not 1 <= limit <= MAX_LIMIT:
            return _error(
                400,
                "invalid_request_error",
                f"This value must be less than or equal to {MAX_LIMIT} (it currently is "
                f"'{limit}').",
                param="limit",
            )
        rows = sorted(rows, key=lambda r: (r["created"], r["id"]), reverse=True)
        ids = [r["id"] for r in rows]
        after, before = req.arg("starting_after"), req.arg("ending_before")
        start, stop = 0, len(rows)
        for cursor, param in ((after, "starting_after"), (before, "ending_before")):
            if cursor is not None and cursor not in ids:
                return _error(
                    400,
                    "invalid_request_error",
                    f"No such {name}: '{cursor}'",
                    param=param,
                    code="resource_missing",
                )
        if after is not None:
            start = ids.index(after) + 1
            stop = min(len(rows), start + limit)
        elif before is not None:
            stop = ids.index(before)
            start = max(0, stop - limit)
        else:
            stop = min(len(rows), limit)
        more = stop < len(rows) if before is None else start > 0
        return Response(
            200,
            {"object": "list", "data": rows[start:stop], "has_more": more, "url": url},
            {"Request-Id": f"req_{len(self.log):014d}"},
        )

    # -- Stripe's refusals --------------------------------------------------------------------

    def _key(self, req: Request) -> str | None:
        auth = req.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:]
        if auth.startswith("Basic "):
            try:
                return base64.b64decode(auth[6:]).decode().split(":", 1)[0]
            except ValueError:
                return None
        return None

    def authorized(self, req: Request) -> bool:
        return self._key(req) == self.token

    def unauthorized(self, req: Request) -> Response:
        key = self._key(req)
        if not key:
            return _error(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        masked = f"{key[:8]}{'*' * max(0, len(key) - 12)}{key[-4:]}" if len(key) > 12 else "****"
        return _error(401, "invalid_request_error", f"Invalid API Key provided: {masked}")

    def rate_limited(self, req: Request) -> Response:
        resp = _error(
            429,
            "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
        resp.headers = {
            "Retry-After": str(self.faults.retry_after),
            "Stripe-Rate-Limited-Reason": "global-rate",
        }
        return resp

    def failed(self, req: Request) -> Response:
        return _error(
            self.faults.status,
            "api_error",
            "An unknown error occurred. Please retry the request.",
        )


def _created(rows: Iterable[dict], req: Request) -> list[dict] | Response:
    """Stripe's `created[gt|gte|lt|lte]=<unix seconds>` (or `created=<exact>`) filters."""
    rows = list(rows)
    ops = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    for op, cmp in ops.items():
        value = req.arg(f"created[{op}]")
        if value is None:
            continue
        try:
            bound = int(value)
        except ValueError:
            return _error(
                400, "invalid_request_error", f"Invalid integer: {value}", param=f"created[{op}]"
            )
        rows = [r for r in rows if cmp(int(r["created"]), bound)]
    exact = req.arg("created")
    if exact is not None:
        rows = [r for r in rows if str(r["created"]) == exact]
    return rows


def serve(
    landing: Path | str,
    port: int = 0,
    token: str = "sk_test_standin",
    clock: dt.datetime | None = None,
) -> StripeStandIn:
    """Start a Stripe stand-in on 127.0.0.1 (returned running; `stop()` ends it)."""
    return StripeStandIn(landing, token=token, port=port, clock=clock).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--landing", required=True, type=Path, help="a --stack vendor landing root")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    p.add_argument("--token", default="sk_test_standin", help="the secret key it accepts")
    p.add_argument(
        "--clock",
        type=dt.datetime.fromisoformat,
        default=None,
        help="the API's now, ISO-8601 UTC (default: the end of the newest extract day)",
    )
    args = p.parse_args(argv)
    clock = args.clock.replace(tzinfo=args.clock.tzinfo or dt.UTC) if args.clock else None
    standin = serve(args.landing, args.port, args.token, clock)
    print(f"stripe stand-in on {standin.url} (clock {standin.clock.isoformat()})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
