"""Software-defined assets, one module per layer: module = Dagster group = lake folder."""
