"""Zendesk Support's incremental export API on 127.0.0.1, serving the sample company's helpdesk.

The world is read from a `--stack vendor` landing root (`zendesk/<object>/<date>/*.json`,
records under `organizations` / `users` / `tickets`); a record version exists from its
`updated_at`. At `clock` the API exports each record's latest version, once, ordered by update
time, leaving out what changed in the last minute (as Zendesk does). What a client sees is
Zendesk's:

- `GET /api/v2/incremental/tickets/cursor.json?start_time=<unix>` then `?cursor=<after_cursor>`
  (and `users/cursor.json` likewise): `{"tickets": [...], "after_cursor", "after_url",
  "before_cursor", "before_url", "end_of_stream"}`; `per_page` up to 1000; a ticket carries its
  `metric_set` only when asked for (`include=metric_sets`).
- `GET /api/v2/incremental/organizations.json?start_time=<unix>` (time-based): `{"organizations":
  [...], "next_page", "end_time", "count", "end_of_stream"}`, up to 1000 a page; the next page
  starts at `end_time`, so records updated in that second come again (Zendesk's duplicates).
- Auth: Basic `{email}/token:{api_token}` or `Authorization: Bearer <OAuth token>`; a refusal is
  401 `{"error": "Couldn't authenticate you"}`; 429 carries `Retry-After`. `incremental_per_minute`
  (default off here, 10 in `serve`) refuses requests past Zendesk's 10 a minute.

`python -m sample_company.standins.zendesk --landing L --port P --token T --email E` serves it.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sample_company.standins.base import Request, Response, StandIn

OBJECTS = ("organizations", "users", "tickets")
MAX_PER_PAGE = 1000
EXCLUDED_SECONDS = 60  # items changed within the minute before the request are left out
DAY = 86_400


@dataclass(frozen=True)
class Version:
    at: int  # the record's updated_at, unix seconds
    record: dict[str, Any]


def unix(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def load_versions(landing: Path | str, obj: str) -> dict[int, list[Version]]:
    """Every version of every record of `zendesk/<obj>` in the landing root, by id, in order."""
    out: dict[int, list[Version]] = {}
    folder = Path(landing) / "zendesk" / obj
    for day in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        for f in sorted(day.glob("*.json")):
            for rec in json.loads(f.read_text())[obj]:
                out.setdefault(rec["id"], []).append(Version(unix(rec["updated_at"]), rec))
    return out


def last_extract_end(landing: Path | str) -> dt.datetime:
    """The end of the newest extract day under `zendesk/` plus the excluded minute: the clock
    at which everything landed is exported."""
    days = [p.name for p in (Path(landing) / "zendesk").glob("*/*") if p.is_dir()]
    if not days:
        raise FileNotFoundError(f"no zendesk/<object>/<date>/ folders under {landing}")
    end = dt.datetime.fromisoformat(max(days)).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    return end + dt.timedelta(seconds=EXCLUDED_SECONDS - 1)


def _cursor(at: int, rid: int) -> str:
    return base64.urlsafe_b64encode(f"{at}.0||{rid}|".encode()).decode()


def _position(cursor: str) -> tuple[int, int] | None:
    try:
        at, _, rid, _ = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return int(float(at)), int(rid)
    except ValueError:
        return None


def _invalid(description: str) -> Response:
    return Response(400, {"error": "InvalidValue", "description": description})


class ZendeskStandIn(StandIn):
    """Zendesk's incremental exports for the sample company's world at `clock`."""

    vendor = "zendesk"

    def __init__(
        self,
        landing: Path | str,
        token: str = "zendesk-api-token",
        email: str = "admin@example.com",
        port: int = 0,
        clock: dt.datetime | None = None,
        page_size: int = MAX_PER_PAGE,
        incremental_per_minute: int | None = None,
    ) -> None:
        super().__init__(token, port)
        self.email = email
        self.page_size = page_size  # the time-based export's page, and the cursor export's cap
        self.incremental_per_minute = incremental_per_minute
        self._recent: deque[float] = deque()
        self.versions = {obj: load_versions(landing, obj) for obj in OBJECTS}
        self.clock = clock or last_extract_end(landing)
        for obj in ("tickets", "users"):
            self.route(
                "GET",
                f"/api/v2/incremental/{obj}/cursor\\.json",
                lambda req, obj=obj: self._cursor_export(req, obj),
            )
        self.route("GET", "/api/v2/incremental/organizations\\.json", self._time_export)

    # -- the world at the clock ---------------------------------------------------------------

    @property
    def now(self) -> int:
        return int(self.clock.timestamp())

    def current(self, obj: str, at: int | None = None) -> dict[int, dict]:
        """Each record's latest version updated at or before `at` (default: the clock)."""
        at = self.now if at is None else at
        out = {}
        for rid, vs in self.versions[obj].items():
            live = [v for v in vs if v.at <= at]
            if live:
                out[rid] = live[-1].record
        return out

    def exported(self, obj: str) -> list[tuple[int, int, dict]]:
        """What an export started now can return: (updated second, id, record) in order."""
        rows = [(unix(r["updated_at"]), rid, r) for rid, r in self.current(obj).items()]
        rows = [row for row in rows if row[0] <= self.now - EXCLUDED_SECONDS]
        return sorted(rows, key=lambda row: (row[0], row[1]))

    # -- routes -------------------------------------------------------------------------------

    def _start_time(self, req: Request) -> int | Response:
        value = req.arg("start_time")
        if value is None:
            return _invalid("start_time is required")
        try:
            return int(value)
        except ValueError:
            return _invalid(f"start_time must be a unix epoch time, not {value!r}")

    def _cursor_export(self, req: Request, obj: str) -> Response:
        cursor = req.arg("cursor")
        if cursor is not None:
            position = _position(cursor)
            if position is None:
                return _invalid("Invalid cursor")
            rows = [row for row in self.exported(obj) if row[:2] > position]
        else:
            start = self._start_time(req)
            if isinstance(start, Response):
                return start
            position = (start - 1, 2**63)
            rows = [row for row in self.exported(obj) if row[0] >= start]
        try:
            per_page = min(int(req.arg("per_page") or MAX_PER_PAGE), MAX_PER_PAGE, self.page_size)
        except ValueError:
            return _invalid("per_page must be an integer")
        page = rows[:per_page]
        last = page[-1][:2] if page else position
        after = _cursor(*last)
        sideload = "metric_sets" in (req.arg("include") or "").split(",")
        records = [
            r if sideload else {k: v for k, v in r.items() if k != "metric_set"} for *_, r in page
        ]
        return Response(
            200,
            {
                obj: records,
                "after_url": f"{self.url}/api/v2/incremental/{obj}/cursor.json?cursor={after}",
                "after_cursor": after,
                "before_url": None,
                "before_cursor": None,
                "end_of_stream": len(rows) <= per_page,
            },
        )

    def _time_export(self, req: Request) -> Response:
        start = self._start_time(req)
        if isinstance(start, Response):
            return start
        rows = [row for row in self.exported("organizations") if row[0] >= start]
        page = rows[: self.page_size]
        end_time = page[-1][0] if page else start
        query = urlencode({"start_time": end_time})
        return Response(
            200,
            {
                "organizations": [r for *_, r in page],
                "next_page": f"{self.url}/api/v2/incremental/organizations.json?{query}",
                "end_time": end_time,
                "count": len(page),
                "end_of_stream": len(page) < self.page_size,
            },
        )

    # -- Zendesk's auth and refusals ------------------------------------------------------------

    def authorized(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        if auth == f"Bearer {self.token}":
            return True
        if auth.startswith("Basic "):
            try:
                user, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == f"{self.email}/token" and secret == self.token
        return False

    def unauthorized(self, req: Request) -> Response:
        return Response(401, {"error": "Couldn't authenticate you"})

    def answer(self, req: Request) -> Response:
        """Zendesk's incremental-export limit (per minute, on wall time) before anything else."""
        if self.incremental_per_minute and req.path.startswith("/api/v2/incremental/"):
            with self._lock:
                now = time.monotonic()
                while self._recent and self._recent[0] <= now - 60:
                    self._recent.popleft()
                if len(self._recent) >= self.incremental_per_minute:
                    wait = max(1, int(self._recent[0] + 60 - now + 0.999))
                    return Response(
                        429,
                        {
                            "error": "APIRateLimitExceeded",
                            "description": "Number of allowed incremental export API requests "
                            "per minute exceeded",
                        },
                        {"Retry-After": str(wait)},
                    )
                self._recent.append(now)
        return super().answer(req)

    def rate_limited(self, req: Request) -> Response:
        return Response(
            429,
            {
                "error": "APIRateLimitExceeded",
                "description": "Number of allowed API requests per minute exceeded",
            },
            {"Retry-After": str(self.faults.retry_after)},
        )

    def failed(self, req: Request) -> Response:
        return Response(
            self.faults.status,
            {"error": "InternalError", "description": "Something went wrong. Please try again."},
        )


def serve(
    landing: Path | str,
    port: int = 0,
    token: str = "zendesk-api-token",
    email: str = "admin@example.com",
    clock: dt.datetime | None = None,
    incremental_per_minute: int | None = 10,
) -> ZendeskStandIn:
    """Start a Zendesk stand-in on 127.0.0.1 (returned running; `stop()` ends it)."""
    return ZendeskStandIn(
        landing,
        token=token,
        email=email,
        port=port,
        clock=clock,
        incremental_per_minute=incremental_per_minute,
    ).start()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--landing", required=True, type=Path, help="a --stack vendor landing root")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    p.add_argument("--token", default="zendesk-api-token", help="the API token it accepts")
    p.add_argument("--email", default="admin@example.com", help="the agent the token is for")
    p.add_argument(
        "--clock",
        type=dt.datetime.fromisoformat,
        default=None,
        help="the API's now, ISO-8601 UTC (default: just past the newest extract day)",
    )
    p.add_argument(
        "--per-minute",
        type=int,
        default=10,
        help="incremental export requests a minute before 429 (Zendesk: 10; 0: no limit)",
    )
    args = p.parse_args(argv)
    clock = args.clock.replace(tzinfo=args.clock.tzinfo or dt.UTC) if args.clock else None
    standin = serve(args.landing, args.port, args.token, args.email, clock, args.per_minute or None)
    print(f"zendesk stand-in on {standin.url} (clock {standin.clock.isoformat()})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
