"""One writer per table at a time, across runs.

Two runs that materialize the same asset at once (a sensor's run beside a hand-launched one)
would both find the same new landing files and both append them. Each asset that writes Delta
tables therefore runs in a Dagster concurrency pool of its own, and the instance limits every
pool to one step at a time (`concurrency.pools.default_limit: 1` in platform/dagster.yaml): the
second run's step waits for the first, then finds nothing left to do. Different assets never
share a pool, so one run's steps still run side by side. Dagster's slot claim on a SQLite
instance can let two steps that start at the same instant both through, so the raw layer's
appends are also exactly-once under Delta transaction ids (`resources.lake.Claim`), and the steps
that read, decide and write (a model's registration, the CRM sync, a whole-table replace) hold
a file lock on a local lake (`LakeResource.exclusive`).

The partitioned `events/events` asset has no pool: each run replaces only its own days with a
Delta predicate, and delta-rs refuses the commit of a second writer of the same days
("a concurrent transaction added new data"); that run rebuilds the days and commits again, while
ranges that do not overlap run together.
"""

from dagster import AssetKey, DagsterRunStatus

# Runs that may be writing the lake now. Erasure vacuums with zero retention, so its asset refuses
# to start while another run is in one of these states.
RUNNING = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
# ... or will be soon: the erasure sensor waits until none is queued either.
IN_FLIGHT = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, *RUNNING]


def writer_pool(key: AssetKey | str) -> str:
    """The pool of the asset (or multi-asset) that writes `key`: its own name."""
    return key.to_user_string() if isinstance(key, AssetKey) else key
