"""Run a platform command in this process with every outbound network attempt refused and
recorded: a connection (TCP or UDP) to anything but loopback or a Unix socket, and any name
lookup that is not `localhost` (a DNS query leaves the machine). Each attempt is appended to a
JSON-lines file (LOG) at the moment it happens, so attempts made by background threads or at exit
are kept too.

    python tests/faults/claims_guard.py LOG demo                 # platform/demo.py (make demo)
    python tests/faults/claims_guard.py LOG materialize KEY ...  # those assets, in one run
    python tests/faults/claims_guard.py LOG fetch URL            # the guard's own check

It sees what goes through Python's socket module (requests, urllib, http.client, MLflow, GX,
Dagster); native libraries that open their own sockets (DuckDB's extension download) are kept
offline by their settings, which tests/test_claims_telemetry.py checks.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import runpy
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def is_local(host: Any) -> bool:
    """Loopback by address or the name `localhost`; anything else would leave the machine."""
    if host is None or host in ("", "localhost", b"localhost"):
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def install(log: Path) -> None:
    """Refuse and record every outbound attempt from now on, in every thread."""

    def record(kind: str, target: Any) -> None:
        entry = {
            "kind": kind,
            "target": repr(target),
            "stack": "".join(traceback.format_stack(limit=15)[:-2]),
        }
        with open(log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def outbound(sock: socket.socket, address: Any) -> bool:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return False
        host = address[0] if isinstance(address, tuple) else address
        return not is_local(host)

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sendto = socket.socket.sendto
    real_getaddrinfo, real_gethostbyname = socket.getaddrinfo, socket.gethostbyname

    def connect(self: socket.socket, address: Any) -> None:
        if outbound(self, address):
            record("connect", address)
            raise ConnectionRefusedError(f"network guard: outbound connect to {address!r}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if outbound(self, address):
            record("connect_ex", address)
            return 111  # ECONNREFUSED
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: bytes, *args: Any) -> int:
        address = args[-1]
        if outbound(self, address):
            record("sendto", address)
            raise ConnectionRefusedError(f"network guard: outbound datagram to {address!r}")
        return real_sendto(self, data, *args)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_local(host):
            record("getaddrinfo", host)
            raise socket.gaierror(socket.EAI_NONAME, f"network guard: lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host: str) -> str:
        if not is_local(host):
            record("gethostbyname", host)
            raise socket.gaierror(socket.EAI_NONAME, f"network guard: lookup of {host!r}")
        return real_gethostbyname(host)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = sendto  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname


def _materialize(keys: list[str]) -> int:
    """The assets in one run on $DAGSTER_HOME's instance, as the UI's Materialize does."""
    from dagster import AssetKey, DagsterInstance

    defs = runpy.run_path(str(ROOT / "platform" / "definitions.py"))["defs"]
    job = defs.resolve_implicit_global_asset_job_def()
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=[AssetKey(k.split("/")) for k in keys],
            raise_on_error=False,
        )
    return 0 if result.success else 1


def main(argv: list[str]) -> int:
    log, command, *args = argv
    install(Path(log))
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import assets  # this checkout's code, not another one installed in the venv

    assert Path(assets.__file__).resolve().is_relative_to(ROOT), assets.__file__
    if command == "demo":
        try:
            runpy.run_path(str(ROOT / "platform" / "demo.py"), run_name="__main__")
        except SystemExit as exit_:
            return int(exit_.code or 0)
        return 0
    if command == "materialize":
        return _materialize(args)
    if command == "fetch":
        import urllib.request

        with contextlib.suppress(OSError):
            urllib.request.urlopen(args[0], timeout=5)
        return 0
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
