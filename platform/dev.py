"""`make dev`: the Dagster UI and its two companions, on loopback, started and stopped together.

- Dagster (`dagster dev`: webserver and daemon) on `DAGSTER_PORT` (default 3000);
- the quality gates' Data Docs (resources/data_docs.py), served from the lake at
  `LAKEHOUSE_DATA_DOCS_URL` (default http://127.0.0.1:3001), where the checks' links point;
- the MLflow UI on the platform's tracking store at `LAKEHOUSE_MLFLOW_UI_URL` (default
  http://127.0.0.1:5000).

A port that a setting asks for and that is taken stops the launch, naming the setting. A default
port that is taken is replaced by a free one, said on the console and handed to Dagster's runs,
so the links they write point at it. A URL on another host is only linked, not served. Ctrl-C or
SIGTERM stops all of them: each runs in a process group of its own, which is ended as a whole.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DAGSTER_PORT = "DAGSTER_PORT"
DEFAULT_DAGSTER_PORT = 3000
LOOPBACK = "127.0.0.1"
STOP_GRACE_SECONDS = 20  # then what is left of a process group is killed
READY_TIMEOUT_SECONDS = 300


class PortTaken(RuntimeError):
    """A port that a setting asks for is in use."""


@dataclass(frozen=True)
class Place:
    """Where one service is reached, and whether this launcher serves it there."""

    name: str
    url: str
    serve: bool

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80


def _free(port: int) -> bool:
    """Nothing listens on the port. Bound as the servers bind (SO_REUSEADDR), so connections
    of a server just stopped, still in TIME_WAIT, do not count."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _any_free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def place(name: str, setting: str, default_url: str, say: Callable[[str], None]) -> Place:
    """Where `name` will be served: the URL `setting` names, else `default_url` (a free port
    instead when its port is taken). Only a loopback URL is served here."""
    chosen = os.environ.get(setting)
    url = (chosen or default_url).rstrip("/")
    parts = urlsplit(url)
    if parts.hostname not in (LOOPBACK, "localhost"):
        return Place(name, url, serve=False)
    port = parts.port or 80
    if _free(port):
        return Place(name, f"http://{LOOPBACK}:{port}", serve=True)
    if chosen:
        raise PortTaken(
            f"{name}: port {port} ({setting}={chosen}) is in use. Stop what holds it, or set "
            f"{setting} to another port."
        )
    other = _any_free_port()
    say(
        f"{name}: port {port} is in use, serving on {other} instead "
        f"(set {setting}=http://{LOOPBACK}:<port> to choose)."
    )
    return Place(name, f"http://{LOOPBACK}:{other}", serve=True)


def dagster_place(say: Callable[[str], None]) -> Place:
    """The Dagster UI's place, by the same rule, from `DAGSTER_PORT`."""
    chosen = os.environ.get(DAGSTER_PORT)
    port = int(chosen) if chosen else DEFAULT_DAGSTER_PORT
    if _free(port):
        return Place("Dagster UI", f"http://{LOOPBACK}:{port}", serve=True)
    if chosen:
        raise PortTaken(
            f"Dagster UI: port {port} ({DAGSTER_PORT}={chosen}) is in use. Stop what holds it "
            f"(another `make dev`?), or run DAGSTER_PORT=<port> make dev."
        )
    other = _any_free_port()
    say(f"Dagster UI: port {port} is in use, serving on {other} instead (DAGSTER_PORT to choose).")
    return Place("Dagster UI", f"http://{LOOPBACK}:{other}", serve=True)


# -- the lake's stores ----------------------------------------------------------------------
def docs_folder() -> Path | None:
    """The gates' Data Docs of this lake (none for a lake on an object store)."""
    from resources.lake import LakeResource
    from resources.settings import lake_root

    docs = LakeResource(root=lake_root()).data_docs
    return Path(docs) if docs else None


def mlflow_stores() -> tuple[str, str]:
    """The platform's MLflow tracking URI and artifact root (resources/mlflow.py)."""
    from resources.mlflow import MLFLOW_ARTIFACTS, MLFLOW_TRACKING_URI, MlflowResource
    from resources.settings import lake_root

    mlflow = MlflowResource(
        tracking_uri=os.environ.get(MLFLOW_TRACKING_URI) or None,
        artifacts=os.environ.get(MLFLOW_ARTIFACTS) or None,
    )
    return mlflow.uri(lake_root()), mlflow.artifact_root(lake_root())


# -- running --------------------------------------------------------------------------------
class Launcher:
    """The services of one `make dev`, and their stop."""

    def __init__(self, say: Callable[[str], None] = print) -> None:
        self.say = say
        self.procs: dict[str, subprocess.Popen] = {}
        self.docs_server = None
        self.stopping = threading.Event()

    def start(self) -> list[Place]:
        from resources.data_docs import DATA_DOCS_URL, DEFAULT_DATA_DOCS_URL
        from resources.mlflow import DEFAULT_MLFLOW_UI_URL, MLFLOW_UI_URL
        from resources.quiet import QUIET_ENV

        for var, value in QUIET_ENV.items():  # the servers inherit telemetry off, no chatter
            os.environ.setdefault(var, value)
        # every port is checked before anything starts, so a refusal leaves nothing running
        places = [dagster_place(self.say)]
        folder = docs_folder()
        if folder is None:
            self.say("Data Docs: none, the lake is on an object store (the gates write none).")
        else:
            places.append(place("Data Docs", DATA_DOCS_URL, DEFAULT_DATA_DOCS_URL, self.say))
        tracking, artifacts = mlflow_stores()
        if urlsplit(tracking).scheme in ("http", "https"):  # a tracking server is its own UI
            places.append(Place("MLflow UI", os.environ.get(MLFLOW_UI_URL) or tracking, False))
        else:
            places.append(place("MLflow UI", MLFLOW_UI_URL, DEFAULT_MLFLOW_UI_URL, self.say))
        by_name = {p.name: p for p in places}
        docs, mlflow = by_name.get("Data Docs"), by_name["MLflow UI"]
        if docs is not None and docs.serve and folder is not None:
            self._serve_docs(folder, docs.port)
        if mlflow.serve:
            self._spawn("MLflow UI", self._mlflow_command(tracking, artifacts, mlflow.port))
        env = {
            MLFLOW_UI_URL: mlflow.url,
            **({DATA_DOCS_URL: docs.url} if docs else {}),
            "PYTHONWARNINGS": _without_dg_notice(os.environ.get("PYTHONWARNINGS", "")),
        }
        self._spawn("Dagster UI", self._dagster_command(places[0].port), env)
        return places

    def _serve_docs(self, folder: Path, port: int) -> None:
        from resources.data_docs import server, write_index

        write_index(folder)  # the index answers before any gate has run
        self.docs_server = server(folder, LOOPBACK, port)
        threading.Thread(target=self.docs_server.serve_forever, daemon=True).start()

    @staticmethod
    def _mlflow_command(tracking: str, artifacts: str, port: int) -> list[str]:
        return [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            tracking,
            "--default-artifact-root",
            artifacts,
            "--no-serve-artifacts",  # the runs' artifacts are read where they are stored
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--workers",
            "1",
        ]

    @staticmethod
    def _dagster_command(port: int) -> list[str]:
        from resources.profile import active

        home = Path(os.environ.setdefault("DAGSTER_HOME", str(ROOT / "lake" / ".dagster")))
        active().write_instance(home)
        workspace = ["-w", str(ROOT / "workspace.yaml")]
        return [str(BIN / "dagster"), "dev", *workspace, "-h", LOOPBACK, "-p", str(port)]

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        self.procs[name] = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: stopped as a whole, and Ctrl-C
            # reaches only this launcher, which stops everything once and in order
        )

    def wait(self) -> int:
        """Until Dagster exits or a stop is asked for; a companion that dies is reported."""
        dagster = self.procs["Dagster UI"]
        reported: set[str] = set()
        while not self.stopping.is_set():
            if dagster.poll() is not None:
                self.say(f"Dagster UI exited with {dagster.returncode}.")
                return dagster.returncode or 1
            for name, proc in self.procs.items():
                if proc.poll() is not None and name not in reported:
                    reported.add(name)
                    self.say(f"{name} exited with {proc.returncode}; Dagster goes on without it.")
            self.stopping.wait(0.5)
        return 0

    def stop(self) -> None:
        """End every process group (SIGTERM, then SIGKILL after the grace period)."""
        self.stopping.set()
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            _signal_group(proc, signal.SIGKILL)  # whatever of the group is still there
            proc.wait()
        if self.docs_server is not None:
            self.docs_server.shutdown()
            self.docs_server.server_close()


# `dagster dev` asks for `dg dev`, which needs the definitions in an importable package
# (`[tool.dg] root_module`); this code location is platform/definitions.py, loaded by path because
# a package named `platform` would shadow the standard library. The notice is not actionable here.
DG_NOTICE = "ignore:Function `dev_command` is superseded"


def _without_dg_notice(current: str) -> str:
    """PYTHONWARNINGS for `dagster dev`: the user's filters, plus one hiding the `dg dev` notice."""
    return ",".join(f for f in (current, DG_NOTICE) if f)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _answers(port: int) -> bool:
    try:
        socket.create_connection((LOOPBACK, port), timeout=1).close()
    except OSError:
        return False
    return True


def _announce_when_ready(places: list[Place], say: Callable[[str], None]) -> None:
    """Print the URLs once every server started here accepts connections (Dagster and MLflow
    take a while to start)."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    waiting = [p for p in places if p.serve]
    while waiting:
        waiting = [p for p in waiting if not _answers(p.port)]
        if waiting and time.monotonic() > deadline:
            late = ", ".join(f"{p.name} ({p.url})" for p in waiting)
            say(f"make dev: no answer after {READY_TIMEOUT_SECONDS} s from {late}.")
            return
        time.sleep(1 if waiting else 0)
    width = max(len(p.name) for p in places)
    lines = [f"  {p.name:<{width}}  {p.url}" for p in places]
    say("\n".join(["", "make dev is ready (Ctrl-C stops everything):", *lines, ""]))


def _say(text: str) -> None:
    """Print, and carry on when the console is gone (e.g. `make dev | tee log`, whose tee
    Ctrl-C ends first): stopping the servers must not fail on a message."""
    with contextlib.suppress(OSError):
        print(text, flush=True)


def main() -> int:
    sys.path.insert(0, str(ROOT))  # run as a script: the project's modules, not an installed copy
    launcher = Launcher(_say)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: launcher.stopping.set())
    try:
        places = launcher.start()
        threading.Thread(target=_announce_when_ready, args=(places, _say), daemon=True).start()
        return launcher.wait()
    except PortTaken as exc:
        _say(f"make dev: {exc}")
        return 2
    finally:  # whatever ended the wait, nothing started here outlives it
        if launcher.procs:
            _say("make dev: stopping ...")
        launcher.stop()


if __name__ == "__main__":
    sys.exit(main())
