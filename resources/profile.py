"""The deployment profile: one setting, `LAKEHOUSE_PROFILE`, says where the lake, the Dagster
instance, MLflow and the steps live. It is resolved here and nowhere else; the assets read their
resources and never ask which profile is active.

- `local` (the default): the embedded setup. The lake is on local disk, the instance on SQLite,
  MLflow on SQLite under the lake, and every step runs in the run's own process.
- `distributed`: the lake is on an S3-compatible object store, through delta-rs with conditional
  put. The Dagster instance is on PostgreSQL (dagster-postgres), MLflow tracks to PostgreSQL
  with its artifacts on the object store, and steps go to Celery workers over Redis
  (dagster-celery), or to Kubernetes jobs (dagster-k8s) with `LAKEHOUSE_EXECUTOR=k8s`.

Secrets (the object store's keys, the salt, database URLs holding passwords) reach Dagster as
`EnvVar`s, so the UI shows their names and never their values.

    python -m resources.profile check         # exits 1 naming every missing setting
    python -m resources.profile instance DIR  # writes DIR/dagster.yaml for the profile
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dagster import EnvVar, ExecutorDefinition, in_process_executor

from resources.crm import SETTINGS as CRM_SETTINGS
from resources.crm import CrmResource
from resources.duckdb import DuckDBResource
from resources.identity import DECISIONS_PATH, RULES_PATH, WEIGHTS_PATH, IdentityResource
from resources.lake import LakeResource, is_local
from resources.landing import LandingResource
from resources.mlflow import MLFLOW_ARTIFACTS, MLFLOW_TRACKING_URI, MlflowResource
from resources.pii import PII_SALT, PiiResource
from resources.segment.resource import segment_resource
from resources.settings import (
    FUTURE_TOLERANCE,
    LAKE_ROOT,
    LANDING_IGNORE,
    LANDING_ROOT,
    from_env,
    int_from_env,
)

PROFILE = "LAKEHOUSE_PROFILE"
LOCAL, DISTRIBUTED = "local", "distributed"
EXECUTOR = "LAKEHOUSE_EXECUTOR"  # distributed only: celery (default) or k8s
CELERY_BROKER = "LAKEHOUSE_CELERY_BROKER"
CELERY_BACKEND = "LAKEHOUSE_CELERY_BACKEND"
DAGSTER_PG_URL = "LAKEHOUSE_DAGSTER_PG_URL"  # read by platform/dagster.distributed.yaml

# The object store, under the standard AWS names, which boto3 (MLflow's artifacts) reads too.
S3_ENDPOINT = "AWS_ENDPOINT_URL"
S3_SETTINGS = {
    "aws_endpoint_url": S3_ENDPOINT,
    "aws_region": "AWS_REGION",
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
}

PLATFORM = Path(__file__).resolve().parent.parent / "platform"
INSTANCE_BASE = PLATFORM / "dagster.yaml"  # what every profile shares (pools, run queue)


@dataclass(frozen=True)
class Profile:
    name: str
    required: tuple[str, ...]  # settings that must be set in the environment
    instance_overlay: Path | None  # merged over INSTANCE_BASE

    def missing(self) -> list[str]:
        required = list(self.required)
        if self.name == DISTRIBUTED and executor_kind() == "celery":
            required += [CELERY_BROKER, CELERY_BACKEND]
        return [var for var in required if not os.environ.get(var)]

    def check(self) -> None:
        """Refuse to start with a setting missing, naming every one (not the first that fails
        half-way through a run)."""
        missing = self.missing()
        if missing:
            raise RuntimeError(
                f"{PROFILE}={self.name} needs these settings in the environment: "
                f"{', '.join(missing)} (see README, 'Running past one machine')"
            )
        root = os.environ.get(LAKE_ROOT, "")
        if self.name == DISTRIBUTED and is_local(root):
            raise RuntimeError(
                f"{PROFILE}={DISTRIBUTED} keeps the lake on an object store: {LAKE_ROOT} is "
                f"{root!r}, expected e.g. s3://bucket/lake"
            )

    def resources(self) -> dict[str, Any]:
        self.check()
        lake: dict[str, Any] = from_env(root=LAKE_ROOT)
        if self.name == DISTRIBUTED:
            lake["storage_options"] = storage_options()
        return {
            "lake": LakeResource(**lake),
            "landing": LandingResource(
                **from_env(root=LANDING_ROOT, ignore=LANDING_IGNORE),
                **int_from_env(future_tolerance_hours=FUTURE_TOLERANCE),
            ),
            "duckdb": DuckDBResource(),
            "segment": segment_resource(),
            "pii": PiiResource(**from_env(salt=PII_SALT)),
            "mlflow": MlflowResource(
                **from_env(tracking_uri=MLFLOW_TRACKING_URI, artifacts=MLFLOW_ARTIFACTS)
            ),
            "crm": CrmResource(**from_env(**CRM_SETTINGS)),
            "identity": IdentityResource(
                **from_env(
                    rules_path=RULES_PATH, decisions_path=DECISIONS_PATH, weights_path=WEIGHTS_PATH
                )
            ),
        }

    def executor(self) -> ExecutorDefinition:
        if self.name == LOCAL:
            return in_process_executor
        kind = executor_kind()
        if kind == "celery":
            from dagster_celery import celery_executor

            return celery_executor.configured(
                {"broker": {"env": CELERY_BROKER}, "backend": {"env": CELERY_BACKEND}},
                name="celery",
            )
        if kind == "k8s":  # configuration for platform/k8s/values.yaml; not tested here
            from dagster_k8s import k8s_job_executor

            return k8s_job_executor
        raise RuntimeError(f"{EXECUTOR}={kind!r}: expected celery or k8s")

    def instance_yaml(self) -> dict[str, Any]:
        """The Dagster instance settings: the shared base, with this profile's settings merged
        over it key by key (a setting the overlay does not name keeps the base's value)."""
        config = yaml.safe_load(INSTANCE_BASE.read_text())
        if self.instance_overlay is not None:
            config = _merged(config, yaml.safe_load(self.instance_overlay.read_text()))
        return config

    def write_instance(self, home: Path) -> Path:
        """DAGSTER_HOME/dagster.yaml for this profile (Dagster reads the instance from there)."""
        home.mkdir(parents=True, exist_ok=True)
        path = home / "dagster.yaml"
        if self.instance_overlay is None:
            text = INSTANCE_BASE.read_text()  # verbatim, comments included
        else:
            text = f"# written by `python -m resources.profile instance` ({PROFILE}={self.name})\n"
            text += yaml.safe_dump(self.instance_yaml(), sort_keys=False)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        return path


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = _merged(base[key], value) if both else value
    return out


PROFILES = {
    LOCAL: Profile(LOCAL, required=(), instance_overlay=None),
    DISTRIBUTED: Profile(
        DISTRIBUTED,
        required=(
            LAKE_ROOT,
            LANDING_ROOT,
            PII_SALT,
            MLFLOW_TRACKING_URI,
            DECISIONS_PATH,
            DAGSTER_PG_URL,
        ),
        instance_overlay=PLATFORM / "dagster.distributed.yaml",
    ),
}


def active() -> Profile:
    name = os.environ.get(PROFILE) or LOCAL
    if name not in PROFILES:
        raise RuntimeError(f"{PROFILE}={name!r}: expected one of {', '.join(PROFILES)}")
    return PROFILES[name]


def executor_kind() -> str:
    """How the distributed profile runs steps: `celery` (the default) or `k8s`."""
    return os.environ.get(EXECUTOR, "celery")


def storage_options() -> dict[str, str]:
    """delta-rs options for the object store. Commits use conditional put (`etag`), so two
    writers racing for the same version cannot both win, on S3 and S3-compatible stores alike.
    Values from the environment stay `EnvVar`s (resolved when a step starts)."""
    options: dict[str, str] = {"conditional_put": "etag"}
    for option, var in S3_SETTINGS.items():
        if os.environ.get(var):
            options[option] = EnvVar(var)
    if os.environ.get(S3_ENDPOINT, "").startswith("http://"):
        options["allow_http"] = "true"  # a local S3-API server without TLS
    return options


def main(argv: list[str]) -> int:
    profile = active()
    if argv[:1] == ["check"]:
        profile.check()
        print(f"{PROFILE}={profile.name}: every required setting is present")
        return 0
    if argv[:1] == ["instance"] and len(argv) == 2:
        print(profile.write_instance(Path(argv[1])))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
