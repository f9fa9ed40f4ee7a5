"""Library noise kept out of what a person reads, in one place.

The `assets` package calls `quiet_libraries(mlflow=False)` before any asset module loads, and
`make demo`, `make evaluate-models` and the code location call `quiet_libraries()`: MLflow's
INFO lines (and its alembic migrations), artifact and other tqdm progress bars, and Dagster's
Beta/Preview/Supersession warnings say nothing a user of the lakehouse can act on. Warnings and
errors still print. Settings a person has exported win (`setdefault`), so `MLFLOW_LOGGING_LEVEL=INFO
make demo` shows MLflow's lines again when debugging.
"""

from __future__ import annotations

import logging
import os
import warnings

# Environment the libraries read when they start or log: set before they are imported where
# possible; the logger levels below cover a library imported earlier.
QUIET_ENV = {
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "TQDM_DISABLE": "1",  # progress bars of any library that draws them with tqdm
    "DO_NOT_TRACK": "1",
    "DAGSTER_DISABLE_TELEMETRY": "1",  # besides `telemetry: enabled: false` in dagster.yaml
    "RUNTIME__DLTHUB_TELEMETRY": "false",  # dlt's anonymous usage reporting (the connectors)
}
QUIET_LOGGERS = ("mlflow", "alembic", "great_expectations", "py4j", "urllib3")
# Dagster's console logger in runs launched from Python (demo, bench, tests): warnings and errors.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def telemetry_off() -> None:
    """The one switch for every library's usage reporting (and their chatter), set before they
    load; a value a person exported wins."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)


def quiet_libraries(mlflow: bool = True) -> None:
    """Keep library INFO lines, progress bars and API-status warnings out of the output.
    `mlflow=False` leaves MLflow's printed news alone, for a process that may never load it
    (silencing them imports MLflow: seconds)."""
    telemetry_off()
    level = logging.getLevelName(os.environ["MLFLOW_LOGGING_LEVEL"].upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level if isinstance(level, int) else logging.WARNING)
    from dagster import BetaWarning, PreviewWarning, SupersessionWarning

    for category in (BetaWarning, PreviewWarning, SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)
    if mlflow and level >= logging.WARNING:
        _mlflow_prints_off()


def _mlflow_prints_off() -> None:
    """MLflow prints some news ("Successfully registered model", "Created version") outside
    logging, to the stream its log handler also writes to, and its own helpers switch that
    stream back on after silencing it. Its log handler moves to stderr (warnings still print);
    the stream then drops what it is given. (The code location imports MLflow anyway.)"""
    import sys

    from mlflow.utils import logging_utils

    for handler in logging.getLogger("mlflow").handlers:
        if isinstance(handler, logging.StreamHandler) and (
            handler.stream is logging_utils.MLFLOW_LOGGING_STREAM
        ):
            handler.setStream(sys.stderr)
    logging_utils.MLFLOW_LOGGING_STREAM.__class__ = _Dropped


class _Dropped:
    """A stream that writes nothing, whatever `enabled` says."""

    enabled = False

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
