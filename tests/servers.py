"""Throw-away servers the tests start on 127.0.0.1 and stop afterwards: PostgreSQL and Redis from
Debian's packages (`make system-deps` installs them), and moto's S3 API server from PyPI."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(ready: Callable[[], bool], proc: subprocess.Popen | None, what: str, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc is None or proc.poll() is None, f"{what} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{what} did not start in {timeout} s"
        time.sleep(0.2)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server (initdb + pg_ctl), as the postgres user when the tests run as root.
    Yields the DSN of its `postgres` database (trust authentication, loopback only)."""
    initdb = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None
    )
    assert initdb, "PostgreSQL server binaries not found: `make test` installs them (Debian)"
    bindir = os.path.dirname(os.path.realpath(initdb))
    # Not under pytest's private tmp root: the postgres user must reach the data directory.
    root = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
    data = root / "data"
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run = dict(check=True, capture_output=True)
    subprocess.run(
        [*as_user, f"{bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"], **run
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    start = [f"{bindir}/pg_ctl", "-D", str(data), "-o", opts, "-w", "-l", str(root / "log")]
    subprocess.run([*as_user, *start, "start"], **run)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "stop"], **run)
        shutil.rmtree(root, ignore_errors=True)


def create_database(dsn: str, name: str) -> str:
    """A new database on the server of `dsn`; returns its DSN."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return dsn.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 API server in a process of its own (in-process, delta-rs calls that hold the
    GIL starve the server thread). Yields its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
            return True
        except OSError:
            return False

    try:
        _wait(answering, proc, "moto's S3 server")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis server (Debian's redis-server) with no persistence. Yields its URL."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server not found: `make system-deps` installs it (Debian)"
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answering() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    try:
        _wait(answering, proc, "redis-server")
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
