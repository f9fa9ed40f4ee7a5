"""The Segment-compatible collector: a mixed batch and single calls are answered 200 and land,
after rotation, in the catalog's per-type folders the raw layer reads with no quarantine; each
call gets messageId and receivedAt, and no write key is ever stored; a wrong key is 401 naming
nothing secret; an oversized call or batch is refused with the limit named; a collector killed
(SIGKILL) right after its 200s loses none of the acknowledged calls, and a crash while landing
lands nothing twice."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
import requests
from segment_world import landed, segment_contracts, vendor_world, world_calls

from assets.raw.ingest import build_batch, find_pending
from resources.duckdb import DuckDBResource
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.segment import files as files_mod
from resources.segment.collector import Collector, land_collected, orphaned, wal_dir

KEY = "wk_test_9f2c1d"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> list[dict]:
    world = vendor_world(tmp_path_factory.mktemp("segment-world") / "landing")
    return [c for day in world_calls(world).values() for c in day]


@pytest.fixture
def collector(tmp_path):
    server = Collector(tmp_path / "landing", KEY, rotate_seconds=3600)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def post(url: str, path: str, body: dict, key: str | None = KEY, **kw) -> requests.Response:
    return requests.post(f"{url}{path}", json=body, auth=(key, "") if key else None, **kw)


def _landed_ids(landing: Path) -> Counter:
    return Counter(
        json.loads(line)["messageId"]
        for key, lines in landed(landing).items()
        if not key.startswith("unrouted/")
        for line in lines
    )


def test_mixed_batch_lands_for_raw(collector, calls, tmp_path) -> None:
    landing = tmp_path / "landing"
    chunk = 100
    for i in range(0, len(calls), chunk):
        r = post(collector.url, "/v1/batch", {"batch": calls[i : i + chunk], "writeKey": KEY})
        assert r.status_code == 200 and r.json() == {"success": True}
    single = {
        "userId": "usr_x",
        "event": "Report Viewed",
        "context": {"groupId": "ws_x"},
        "properties": {"session_id": "s"},
    }
    assert post(collector.url, "/v1/track", single).status_code == 200  # no messageId
    for path, body in [
        ("/v1/page", {"userId": "usr_x", "name": "Pricing"}),
        ("/v1/screen", {"anonymousId": "a", "name": "Home"}),
        ("/v1/alias", {"previousId": "a", "userId": "usr_x"}),
    ]:
        assert post(collector.url, path, body).status_code == 200
    # writeKey in the body instead of Basic auth, as Segment also accepts
    ident = next(c for c in calls if c["type"] == "identify")
    r = post(collector.url, "/v1/identify", {"writeKey": KEY, **ident}, key=None)
    assert r.status_code == 200

    done = collector.rotate()
    assert done.messages["pages"] == done.messages["screens"] == done.messages["aliases"] == 1
    ids = _landed_ids(landing)
    assert all(ids[c["messageId"]] == 1 for c in calls if c is not ident)
    assert ids[ident["messageId"]] == 2  # sent twice, landed twice: the log keeps what came
    texts = [line for lines in landed(landing).values() for line in lines]
    assert not any(KEY.encode() in t or b"writeKey" in t for t in texts)
    tracked = next(json.loads(t) for t in texts if b'"usr_x"' in t and b'"track"' in t)
    assert tracked["messageId"].startswith("api-") and tracked["receivedAt"].endswith("Z")
    assert tracked["type"] == "track"
    assert not list(wal_dir(landing).glob("wal-*.sealed"))

    lake = LakeResource(root=str(tmp_path / "lake"))
    zone = LandingResource(root=str(landing))
    want = Counter(c["type"] for c in calls)
    for obj, contract in segment_contracts().items():
        stage = tmp_path / f"stage-{obj}"
        stage.mkdir()
        with DuckDBResource(threads=1).connect() as con:
            pending = find_pending(contract, zone, lake)
            batch = build_batch(contract, pending, lake, con, stage, zone.latest_allowed())
        quarantined = batch.quarantine.to_pylist()
        assert quarantined == [], quarantined[:3]
        rows = sum(t.num_rows for t in batch.chunks())
        extra = {"tracks": 1, "identifies": 1, "groups": 0}[obj]
        assert (
            rows
            == want[{"tracks": "track", "identifies": "identify", "groups": "group"}[obj]] + extra
        )


def test_wrong_write_key_is_401_naming_nothing_secret(collector, calls, tmp_path) -> None:
    for key in ("wk_wrong", None):
        r = post(collector.url, "/v1/batch", {"batch": calls[:3]}, key=key)
        assert r.status_code == 401 and r.json()["success"] is False
        assert "write key" in r.json()["message"]
        assert KEY not in r.text and "wk_wrong" not in r.text
    r = requests.post(
        f"{collector.url}/v1/track", json=calls[0], headers={"Authorization": f"Bearer {KEY}"}
    )
    assert r.status_code == 401
    assert collector.accepted == 0 and collector.rotate().messages == {}


def test_oversized_calls_are_refused_with_the_limit_named(collector, calls) -> None:
    big = {"userId": "u", "event": "E", "properties": {"blob": "x" * 33_000}}
    r = post(collector.url, "/v1/track", big)
    assert r.status_code == 400 and "32 KB" in r.json()["message"]
    r = post(collector.url, "/v1/batch", {"batch": [calls[0], dict(big, type="track")]})
    assert r.status_code == 400 and "batch[1]" in r.json()["message"]
    assert "32 KB" in r.json()["message"]
    many = {"batch": [dict(big, type="track", properties={"blob": "y" * 30_000})] * 18}
    r = post(collector.url, "/v1/batch", many)
    assert r.status_code == 400 and "500 KB" in r.json()["message"]
    # gzip bodies are measured once inflated
    data = gzip.compress(json.dumps(many).encode())
    r = requests.post(
        f"{collector.url}/v1/batch",
        data=data,
        auth=(KEY, ""),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "500 KB" in r.json()["message"]
    assert collector.accepted == 0


def test_sigkill_after_200_loses_no_acknowledged_call(calls, tmp_path) -> None:
    landing = tmp_path / "landing"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LAKEHOUSE_SEGMENT_WRITE_KEY": KEY}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "resources.segment.collector",
            "--port",
            "0",
            "--landing",
            str(landing),
            "--rotate-seconds",
            "3600",
        ],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        acked: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def send(worker: int) -> None:
            session = requests.Session()
            session.auth = (KEY, "")
            for i, call in enumerate(calls):
                if stop.is_set():
                    return
                msg = dict(call, messageId=f"k{worker}-{i}")
                try:
                    r = session.post(f"{url}/v1/batch", json={"batch": [msg]}, timeout=10)
                except requests.RequestException:
                    return
                if r.status_code == 200:
                    with lock:
                        acked.append(msg["messageId"])
                        if len(acked) >= 300:
                            stop.set()

        workers = [threading.Thread(target=send, args=(w,)) for w in range(4)]
        for w in workers:
            w.start()
        stop.wait(60)
        proc.send_signal(signal.SIGKILL)  # while the others are mid-request
        proc.wait()
        for w in workers:
            w.join()
    finally:
        if proc.poll() is None:
            proc.kill()
    with lock:
        acknowledged = list(acked)
    assert len(acknowledged) >= 300
    assert orphaned(landing)  # the dead collector's segment, its lock gone
    land_collected(landing)
    ids = _landed_ids(landing)
    assert [m for m in acknowledged if ids[m] != 1] == []
    assert max(ids.values()) == 1
    assert not list(wal_dir(landing).glob("wal-*"))


def test_crash_while_landing_lands_nothing_twice(collector, calls, tmp_path, monkeypatch):
    landing = tmp_path / "landing"
    for i in range(0, len(calls), 50):
        assert post(collector.url, "/v1/batch", {"batch": calls[i : i + 50]}).status_code == 200
    assert orphaned(landing) == []  # the live collector's segment is not taken from it
    collector.wal.seal()
    real_write = files_mod.write_atomic
    n = {"calls": 0}

    def crash_on_third(path, data):
        n["calls"] += 1
        if n["calls"] == 3:
            raise KeyboardInterrupt("killed while landing")
        return real_write(path, data)

    monkeypatch.setattr(files_mod, "write_atomic", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        land_collected(landing)
    monkeypatch.setattr(files_mod, "write_atomic", real_write)
    real_unlink = Path.unlink

    def crash_before_removal(self, *a, **kw):
        if self.suffix == ".sealed":
            raise KeyboardInterrupt("killed after landing, before removing the segment")
        return real_unlink(self, *a, **kw)

    monkeypatch.setattr(Path, "unlink", crash_before_removal)
    with pytest.raises(KeyboardInterrupt):
        land_collected(landing)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    land_collected(landing)
    ids = _landed_ids(landing)
    assert sorted(ids) == sorted(c["messageId"] for c in calls)
    assert max(ids.values()) == 1


def test_collector_needs_a_write_key(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LAKEHOUSE_SEGMENT_WRITE_KEY"}
    out = subprocess.run(
        [sys.executable, "-m", "resources.segment.collector", "--landing", str(tmp_path)],
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "LAKEHOUSE_SEGMENT_WRITE_KEY" in out.stderr
