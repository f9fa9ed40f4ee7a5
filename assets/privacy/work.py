"""Requests in progress: until a request is done, its resolved identifiers sit in a work file
under `<lake>/.secrets/erasure/` (owner-only on local disk), so a crashed or failed run
resumes the erasure instead of forgetting the person half-way. Written through the lake's own
files (`LakeResource.files()`), so an object-store lake keeps them beside its tables."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING

from resources.lake import LakeResource

if TYPE_CHECKING:
    from assets.privacy.intake import Subject

WORK_DIR = ".secrets/erasure"


def _path(request_id: str) -> str:
    return f"{WORK_DIR}/{request_id}.json"


def save(lake: LakeResource, subject: Subject) -> str:
    """Keep a resolved request until `finish`; returns its file's path."""
    path = _path(subject.request_id)
    lake.files().write(path, json.dumps(asdict(subject)).encode(), private=True)
    return path


def load(lake: LakeResource) -> list[dict]:
    """The requests in progress, as saved (the fields of a `Subject`)."""
    files = lake.files()
    return [json.loads(files.read(p)) for p in files.list(WORK_DIR) if p.endswith(".json")]


def finish(lake: LakeResource, request_ids: Iterable[str]) -> None:
    files = lake.files()
    for request_id in request_ids:
        files.delete(_path(request_id))
