"""Software-defined assets, one module per layer: module = Dagster group = lake folder."""

from resources.quiet import quiet_libraries

# Before any asset module loads (they use Dagster beta APIs, which warn at import). MLflow's
# printed news is silenced by the entry points that load it (definitions, demo, evaluate).
quiet_libraries(mlflow=False)
