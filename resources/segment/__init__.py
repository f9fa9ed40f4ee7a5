"""Segment: product events in the Segment spec, landed into the source catalog's objects.

Two ways in, one way out. `export.py` reads Segment's storage-destination export
(`segment-logs/<source id>/<received day epoch ms>/<file>.gz`, every call type mixed);
`collector.py` is an HTTP endpoint compatible with Segment's Tracking API (`/v1/batch`, ...)
with a write-ahead log. Both land each message, as received, into the per-type landing folders
the catalog reads (`segment/{tracks,identifies,groups}/<received day>/<file>.jsonl.gz`) through
`files.py`, exactly once. This is library code with no Dagster in it: the collector is its own
process, and the Dagster side (`assets/segment.py`) only calls `land_export` / `land_collected`.
"""
