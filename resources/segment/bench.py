"""Throughput of the Segment collector and of the export lander, printed (no assertion).

    PYTHONPATH=. .venv/bin/python -m resources.segment.bench [--messages 50000] [--threads 8]

Starts the collector as its own process on 127.0.0.1 (write-ahead log fsynced before each 200),
sends track calls in batches of 100 and as single `/v1/track` calls from `--threads` clients,
then times the rotation (landing the log into per-type files) and landing the same calls from
a storage-export layout."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

from resources.segment.collector import land_collected
from resources.segment.export import land_export

KEY = "bench-write-key"
COLLECTOR = [sys.executable, "-m", "resources.segment.collector", "--port", "0"]


def track(i: int) -> dict:
    return {
        "type": "track",
        "event": "Report Viewed",
        "messageId": str(uuid.uuid4()),
        "userId": f"usr_{i % 5000:06d}",
        "anonymousId": None,
        "timestamp": "2026-11-01T10:00:00Z",
        "context": {"groupId": f"ws_{i % 500:04d}", "library": {"name": "analytics-node"}},
        "properties": {"session_id": f"ses_{i % 20000:08x}", "feature_adoption_score": 0.5},
    }


def send(url: str, total: int, threads: int, batch: int) -> float:
    """Messages per second through the collector, every call acknowledged."""
    per = total // threads
    errors: list[int] = []

    def worker(w: int) -> None:
        s = requests.Session()
        s.auth = (KEY, "")
        for start in range(0, per, batch):
            calls = [track(w * per + start + j) for j in range(min(batch, per - start))]
            if batch == 1:
                r = s.post(f"{url}/v1/track", json=calls[0])
            else:
                r = s.post(f"{url}/v1/batch", json={"batch": calls})
            if r.status_code != 200:
                errors.append(r.status_code)

    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} calls refused: {sorted(set(errors))}")
    return per * threads / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--single", type=int, default=5_000, help="single /v1/track calls")
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="segment-bench-"))
    landing = tmp / "landing"
    env = {**os.environ, "LAKEHOUSE_SEGMENT_WRITE_KEY": KEY}
    proc = subprocess.Popen(
        [*COLLECTOR, "--landing", str(landing), "--rotate-seconds", "3600"],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        rate_batch = send(url, args.messages, args.threads, 100)
        rate_single = send(url, args.single, args.threads, 1)
    finally:
        proc.kill()  # SIGKILL: the log is left as it was at the last 200; landing it is timed
        proc.wait()
    t0 = time.perf_counter()
    done = land_collected(landing)
    land_s = time.perf_counter() - t0
    landed = sum(done.messages.values())
    if landed != args.messages // args.threads * args.threads + args.single:
        raise SystemExit(f"acknowledged calls lost or doubled: {landed} landed")

    export = tmp / "export" / "segment-logs" / "src" / "1793491200000"
    export.mkdir(parents=True)
    per_file = 10_000
    for n in range(0, args.messages, per_file):
        lines = [
            json.dumps({**track(i), "receivedAt": "2026-11-01T10:00:01.000Z"}).encode()
            for i in range(n, min(n + per_file, args.messages))
        ]
        (export / f"{n}.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    t0 = time.perf_counter()
    result = land_export(str(tmp / "export"), tmp / "landing-export")
    export_s = time.perf_counter() - t0
    exported = sum(result.messages.values())
    print(f"collector, batches of 100, {args.threads} clients: {rate_batch:,.0f} messages/s")
    print(f"collector, single /v1/track calls, {args.threads} clients: {rate_single:,.0f} calls/s")
    print(
        f"rotation (log -> landing files): {landed:,} messages in {land_s:.2f} s "
        f"({landed / land_s:,.0f} messages/s)"
    )
    print(
        f"storage export landing: {exported:,} messages in {export_s:.2f} s "
        f"({exported / export_s:,.0f} messages/s)"
    )
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
