"""The Segment settings a run reads: where Segment's storage destination writes."""

from dagster import ConfigurableResource
from pydantic import Field

from resources.settings import from_env

EXPORT_ROOT = "LAKEHOUSE_SEGMENT_EXPORT_ROOT"


class SegmentResource(ConfigurableResource):
    """Where Segment's storage destination (S3/GCS) writes: empty = no export to read."""

    export_root: str = Field(
        default="",
        description=(
            "Segment storage export root: a folder or URL holding `segment-logs/` "
            f"(or that folder itself); {EXPORT_ROOT}."
        ),
    )


def segment_resource() -> SegmentResource:
    """The resource from the environment (the profile's resources call this)."""
    return SegmentResource(**from_env(export_root=EXPORT_ROOT))
