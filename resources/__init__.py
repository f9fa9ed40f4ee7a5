"""Dagster resources: the lake, the landing zone, DuckDB, and settings from the environment.

Every process of the platform imports this package (the code location, `make demo`, `make dev`,
the commands, the tests), so library telemetry is switched off here, once, before any library
that reports usage can load (resources/quiet.py holds the switches).
"""

from resources.quiet import telemetry_off

telemetry_off()
