"""A vendor API stand-in on 127.0.0.1: routes, auth, faults and a request log.

Each vendor module (`hubspot.py`, `stripe.py`, ...) declares its routes and the vendor's own
error bodies on top of this; the connectors and destinations talk to it exactly as to the real
API, only the base URL differs. Faults are what real APIs do to a client: 429 with Retry-After,
a 500 in the middle of paging, a wrong token.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


@dataclass
class Faults:
    """What the stand-in does to a client, on top of answering.

    `rate_limit_every`: every n-th request (counted per stand-in) is refused with 429 and
    `Retry-After: retry_after`; `fail`: path regex -> how many more times to answer 500 (the
    first request matching it, a page in the middle of paging when the regex names it)."""

    rate_limit_every: int | None = None
    retry_after: int = 1
    fail: dict[str, int] = field(default_factory=dict)
    status: int = 500


@dataclass
class Logged:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    at: datetime


class StandIn:
    """One vendor's API on 127.0.0.1 (port 0: any free port). Use as a context manager.

    Subclasses add routes with `route(method, pattern, handler)` and say how the vendor checks
    credentials (`authorized`) and answers a refusal (`unauthorized`, `rate_limited`)."""

    vendor = "vendor"

    def __init__(self, token: str = "test-token", port: int = 0) -> None:
        self.token = token
        self.faults = Faults()
        self.log: list[Logged] = []
        self.clock = datetime.now(UTC)  # "now" for the API: what has happened by then is served
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._count = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._thread: threading.Thread | None = None

    # -- what a vendor module defines -----------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def authorized(self, req: Request) -> bool:
        return req.headers.get("authorization") == f"Bearer {self.token}"

    def unauthorized(self, req: Request) -> Response:
        return Response(401, {"error": "unauthorized"})

    def rate_limited(self, req: Request) -> Response:
        return Response(
            429, {"error": "rate limited"}, {"Retry-After": str(self.faults.retry_after)}
        )

    def failed(self, req: Request) -> Response:
        return Response(self.faults.status, {"error": "internal server error"})

    # -- serving ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StandIn:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests(self, path: str = "") -> list[Logged]:
        """The requests served so far (whose path contains `path`)."""
        return [r for r in self.log if path in r.path]

    def answer(self, req: Request) -> Response:
        if not self.authorized(req):
            return self.unauthorized(req)
        with self._lock:
            self._count += 1
            every = self.faults.rate_limit_every
            if every and self._count % every == 0:
                return self.rate_limited(req)
            where = _full(req)
            for pattern, left in self.faults.fail.items():
                if left > 0 and re.search(pattern, where):
                    self.faults.fail[pattern] = left - 1
                    return self.failed(req)
        for method, pattern, handler in self._routes:
            if method == req.method and pattern.match(req.path):
                return handler(req)
        return Response(404, {"error": f"no route {req.method} {req.path}"})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                req = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                resp = standin.answer(req)
                standin.log.append(
                    Logged(req.method, req.path, req.query, resp.status, datetime.now(UTC))
                )
                body = resp.body if isinstance(resp.body, bytes) else json.dumps(resp.body).encode()
                self.send_response(resp.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, *args: object) -> None:  # quiet
                pass

        return _Handler


def _full(req: Request) -> str:
    query = "&".join(f"{k}={v}" for k, vs in sorted(req.query.items()) for v in vs)
    return f"{req.path}?{query}" if query else req.path
