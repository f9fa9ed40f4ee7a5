"""Vocabulary files for tests: the default stack's, with some sections replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from resources.settings import STACKS_ROOT

DEFAULT = STACKS_ROOT / "default" / "vocabulary.yaml"


def default_spec() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT.read_text())


def write_vocabulary(folder: Path, name: str = "vocabulary.yaml", **sections: Any) -> Path:
    """A vocabulary file in `folder`: the default one with `sections` replaced."""
    spec = {**default_spec(), **sections}
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
