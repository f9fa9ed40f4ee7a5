"""An HTTP collector compatible with Segment's Tracking API, with a write-ahead log.

`POST /v1/batch`, `/v1/track`, `/v1/identify`, `/v1/group`, `/v1/page`, `/v1/screen`,
`/v1/alias` (and `/v1/import`, the batch's old name), authenticated as Segment does: HTTP Basic
with the write key as user name and an empty password, or `writeKey` in the body. The key is
`LAKEHOUSE_SEGMENT_WRITE_KEY`, read when the collector starts. Segment's limits: 32 KB per call,
500 KB per batch request (2,500 calls at most), refused with 400 and a body naming the limit, as
Segment answers. One departure: a wrong write key is 401 here (Segment's edge answers 200 and
drops the calls later), since a collector that owns its data should say so at once.

Each accepted call gets `receivedAt` (the collector's UTC clock), a `messageId` when it has none
and a `timestamp` (= `receivedAt`) when it has none; a batch's `context` and `integrations` are
merged into its calls; `writeKey` is never stored. The whole request is one line of the
write-ahead log (`<landing>/_segment/collector/wal-*.open`), appended and fsynced before the 200
(concurrent requests share an fsync). A segment is sealed (renamed `.sealed`) every
`--rotate-seconds` or `--rotate-bytes`; `land_collected` lands sealed segments into the per-type
landing files (`segment/<type folder>/<received day>/collector-<segment>.jsonl.gz`) and only then
removes them, so a crash anywhere loses nothing and lands nothing twice. A segment left `.open`
by a killed collector (its `flock` gone) is sealed by the next landing pass.

    LAKEHOUSE_SEGMENT_WRITE_KEY=... python -m resources.segment.collector --port 8088 --landing L
    python -m resources.segment.collector --landing L --land   # seal leftovers and land, exit
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import fcntl
import hmac
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from resources.segment.files import Routed, fsync_dir, land_routed, route_line
from resources.segment.ledger import exclusive, state_dir

WRITE_KEY_ENV = "LAKEHOUSE_SEGMENT_WRITE_KEY"
CALL_LIMIT = 32 * 1024  # bytes per call (Segment: 32 KB)
BATCH_LIMIT = 500 * 1024  # bytes per batch request (Segment: 500 KB)
BATCH_CALLS = 2500  # calls per batch request (Segment's documented cap)
CALL_TYPES = ("track", "identify", "group", "page", "screen", "alias")
BATCH_PATHS = ("/v1/batch", "/v1/import")
DEFAULT_ROTATE_SECONDS = 60.0
DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024


def wal_dir(landing_root: str | Path) -> Path:
    return state_dir(landing_root) / "collector"


# -- the write-ahead log ----------------------------------------------------------------------


class WriteAheadLog:
    """Append-only segments; `append` returns once the bytes are on disk (group fsync)."""

    def __init__(self, folder: Path, rotate_bytes: int = DEFAULT_ROTATE_BYTES) -> None:
        self.folder = folder
        self.rotate_bytes = rotate_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # appends, sealing
        self._sync = threading.Lock()  # one fsync at a time; it covers every earlier append
        self._gen = 0
        self._open_segment()

    def _open_segment(self) -> None:
        self.path = self.folder / f"wal-{time.time_ns():020d}-{os.getpid()}.open"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while we live; see land_collected
        fsync_dir(self.folder)
        self._fd = fd
        self._written = 0
        self._synced = 0
        self.opened = time.monotonic()
        self._gen += 1

    def append(self, data: bytes) -> None:
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            self._written += len(data)
            gen, end = self._gen, self._written
        with self._sync:
            if gen == self._gen and self._synced < end:
                target = self._written
                os.fsync(self._fd)
                self._synced = target
        if end >= self.rotate_bytes:
            self.seal()

    def seal(self, reopen: bool = True) -> Path | None:
        """Close the current segment as `.sealed` (fsynced) and start a new one; None when it
        was empty (it is reused)."""
        with self._lock, self._sync:
            if self._written == 0 and reopen:
                return None
            os.fsync(self._fd)
            sealed = self.path.with_suffix(".sealed")
            os.rename(self.path, sealed)
            fsync_dir(self.folder)
            os.close(self._fd)
            if reopen:
                self._open_segment()
            return sealed

    def age(self) -> float:
        return time.monotonic() - self.opened if self._written else 0.0


@dataclass
class Landed:
    segments: list[str] = field(default_factory=list)
    messages: dict[str, int] = field(default_factory=dict)
    files_written: list[str] = field(default_factory=list)


def land_collected(landing_root: str | Path) -> Landed:
    """Seal what a dead collector left open, land every sealed segment, then remove it."""
    folder = wal_dir(landing_root)
    out = Landed()
    if not folder.is_dir():
        return out
    with exclusive(folder / "land.lock"):
        for path in sorted(folder.glob("wal-*.open")):
            _seal_orphan(path)
        for path in sorted(folder.glob("wal-*.sealed")):
            routed = Routed()
            today = dt.datetime.now(dt.UTC).date()
            for n, line in enumerate(path.read_bytes().split(b"\n"), start=1):
                if not line:
                    continue
                try:
                    batch = json.loads(line)["batch"]
                except (ValueError, KeyError, TypeError):
                    # only a write cut short by a crash (never answered 200) reads so
                    routed.hold(
                        today, "incomplete log write, never acknowledged", path.name, n, line
                    )
                    continue
                for message in batch:
                    route_line(routed, _encode(message), path.name, n, today)
            out.files_written += land_routed(landing_root, routed, f"collector-{path.stem}")
            path.unlink()
            fsync_dir(folder)
            out.segments.append(path.name)
            for k, v in routed.counts.items():
                out.messages[k] = out.messages.get(k, 0) + v
    return out


def orphaned(landing_root: str | Path) -> list[str]:
    """`.open` segments no live collector holds: left by a killed one, waiting to be landed."""
    out = []
    for path in sorted(wal_dir(landing_root).glob("wal-*.open")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            out.append(path.name)
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
    return out


def _seal_orphan(path: Path) -> None:
    """Seal an `.open` segment no live collector holds (its flock is free)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a live collector's segment
        if os.fstat(fd).st_size == 0:
            path.unlink()
        else:
            os.rename(path, path.with_suffix(".sealed"))
        fsync_dir(path.parent)
    finally:
        os.close(fd)


# -- requests ----------------------------------------------------------------------------------


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _encode(message: object) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def basic_key(header: str | None) -> str | None:
    """The write key of an `Authorization: Basic base64(key:)` header."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0]


def stamp(message: dict, received: str, batch: dict | None = None) -> dict:
    """The call as stored: batch context merged in, writeKey out, receivedAt, messageId and
    timestamp filled as Segment's API fills them."""
    message.pop("writeKey", None)
    if batch:
        for name in ("context", "integrations"):
            if isinstance(batch.get(name), dict):
                mine = message.get(name) if isinstance(message.get(name), dict) else {}
                message[name] = {**batch[name], **mine}
    if not message.get("messageId"):
        message["messageId"] = f"api-{uuid.uuid4()}"
    message.setdefault("timestamp", received)
    message["receivedAt"] = received
    return message


def calls_of(path: str, body: dict, received: str) -> list[dict]:
    """The calls of one request, stamped; a call over 32 KB refuses the request."""
    if path in BATCH_PATHS:
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise Refused(400, "Invalid request: `batch` must be an array of calls")
        if len(batch) > BATCH_CALLS:
            raise Refused(400, f"Exceed payload limit: {len(batch)} calls, {BATCH_CALLS} max")
        out = []
        for i, call in enumerate(batch):
            if not isinstance(call, dict):
                raise Refused(400, f"Invalid request: batch[{i}] is not a JSON object")
            size = len(_encode(call))
            if size > CALL_LIMIT:
                raise Refused(
                    400,
                    f"Exceed payload limit: batch[{i}] is {size} bytes, the limit is 32 KB "
                    f"({CALL_LIMIT} bytes) per call",
                )
            out.append(stamp(call, received, body))
        return out
    body["type"] = path.rsplit("/", 1)[-1]  # the endpoint names the call's type
    return [stamp(body, received)]


class Collector(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        landing_root: str | Path,
        write_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
        rotate_seconds: float = DEFAULT_ROTATE_SECONDS,
        rotate_bytes: int = DEFAULT_ROTATE_BYTES,
    ) -> None:
        if not write_key:
            raise ValueError(f"no Segment write key: set {WRITE_KEY_ENV}")
        self.landing_root = Path(landing_root)
        self.write_key = write_key
        self.rotate_seconds = rotate_seconds
        self.wal = WriteAheadLog(wal_dir(landing_root), rotate_bytes)
        self.accepted = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        super().__init__((host, port), _Handler)
        self._lander = threading.Thread(target=self._land_loop, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def authorized(self, key: str | None) -> bool:
        return key is not None and hmac.compare_digest(key.encode(), self.write_key.encode())

    def start_landing(self) -> None:
        self._lander.start()

    def rotate(self) -> Landed:
        """Seal the current segment and land every sealed one (the rotation step)."""
        self.wal.seal()
        return land_collected(self.landing_root)

    def _land_loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.wal.age() >= self.rotate_seconds:
                    self.wal.seal()
                land_collected(self.landing_root)
            except OSError as exc:  # a full disk, a permission: retried next round
                print(f"segment collector: landing failed, retrying: {exc}", file=sys.stderr)
            self._wake.wait(min(self.rotate_seconds, 5.0))
            self._wake.clear()

    def close(self) -> None:
        """Stop serving, seal the log and land it."""
        self._stop.set()
        self._wake.set()
        self.shutdown()
        self.server_close()
        if self._lander.is_alive():
            self._lander.join()
        self.wal.seal(reopen=False)
        land_collected(self.landing_root)


class _Handler(BaseHTTPRequestHandler):
    server: Collector
    protocol_version = "HTTP/1.1"
    server_version = "lakehouse-segment-collector"

    def setup(self) -> None:
        super().setup()
        # headers and body go out as separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold every answer back ~40 ms
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass  # no access log: request lines would show user ids; the WAL is the record

    def _reply(self, status: int, body: dict, close: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="segment"')
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply(404, {"success": False, "message": "Not found: POST calls to /v1/<type>"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in BATCH_PATHS and path.removeprefix("/v1/") not in CALL_TYPES:
            self._reply(404, {"success": False, "message": f"Not found: {path}"}, close=True)
            return
        limit = BATCH_LIMIT if path in BATCH_PATHS else CALL_LIMIT
        what = "500 KB per batch request" if path in BATCH_PATHS else "32 KB per call"
        header_key = basic_key(self.headers.get("Authorization"))
        if self.headers.get("Authorization") and not self.server.authorized(header_key):
            self._refuse_unread(401)
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._reply(411, {"success": False, "message": "Content-Length required"}, True)
            return
        if length > limit:
            self._reply(400, _too_large(length, what, limit), close=True)
            return
        raw = self.rfile.read(length)
        try:
            body = self._decode(raw, limit, what)
            if not isinstance(body, dict):
                raise Refused(400, "Invalid JSON: the body must be a JSON object")
            if header_key is None and not self.server.authorized(body.get("writeKey")):
                self._reply(401, _unauthorized())
                return
            body.pop("writeKey", None)
            calls = calls_of(path, body, now_iso())
        except Refused as exc:
            self._reply(exc.status, {"success": False, "message": exc.message})
            return
        line = b'{"batch":[' + b",".join(_encode(c) for c in calls) + b"]}\n"
        self.server.wal.append(line)  # on disk before the answer
        self.server.accepted += len(calls)
        self._reply(200, {"success": True})

    def _refuse_unread(self, status: int) -> None:
        self._reply(status, _unauthorized(), close=True)

    def _decode(self, raw: bytes, limit: int, what: str) -> object:
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                raw = d.decompress(raw, limit + 1)
            except zlib.error as exc:
                raise Refused(400, f"Invalid gzip body: {exc}") from exc
            if len(raw) > limit or d.unconsumed_tail:
                raise Refused(400, _too_large(len(raw), what, limit)["message"])
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise Refused(400, f"Invalid JSON: {exc}") from exc


def _unauthorized() -> dict:
    return {
        "success": False,
        "message": "Unauthorized: missing or wrong write key (HTTP Basic auth with the write "
        "key as user name, or `writeKey` in the body)",
    }


def _too_large(size: int, what: str, limit: int) -> dict:
    return {
        "success": False,
        "message": f"Exceed payload limit: {size} bytes, the limit is {what} ({limit} bytes)",
    }


# -- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m resources.segment.collector", description=__doc__)
    ap.add_argument("--landing", required=True, help="landing root (LAKEHOUSE_LANDING_ROOT)")
    ap.add_argument("--port", type=int, default=8088, help="0 picks a free port")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    ap.add_argument("--rotate-seconds", type=float, default=DEFAULT_ROTATE_SECONDS)
    ap.add_argument("--rotate-bytes", type=int, default=DEFAULT_ROTATE_BYTES)
    ap.add_argument("--land", action="store_true", help="seal leftovers, land them, and exit")
    args = ap.parse_args(argv)
    if args.land:
        done = land_collected(args.landing)
        print(json.dumps({"segments": len(done.segments), "messages": done.messages}))
        return 0
    key = os.environ.get(WRITE_KEY_ENV, "")
    if not key:
        print(
            f"segment collector: set {WRITE_KEY_ENV} to the write key clients send", file=sys.stderr
        )
        return 2
    server = Collector(
        args.landing, key, args.host, args.port, args.rotate_seconds, args.rotate_bytes
    )
    server.start_landing()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"segment collector listening on {server.url}", flush=True)
    stop.wait()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
