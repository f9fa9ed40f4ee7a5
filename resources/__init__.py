"""Dagster resources: the lake, the landing zone, DuckDB, and settings from the environment."""
