"""What counts as a mention of a person's value: the whole value, not part of a longer
identifier or address (`ann@x.com` is not in `joann@x.com`). One pattern, used by erasure on the
lake's tables and files (Python, DuckDB) and by the destinations (Python, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable

# Characters that continue an identifier or an address: a match must not be part of a longer one.
WORD = r"a-z0-9._%+\-"
_REGEX_SPECIAL = set("\\.^$|?*+()[]{}-/")


def escape(value: str) -> str:
    return "".join("\\" + ch if ch in _REGEX_SPECIAL else ch for ch in value)


def mention_pattern(values: Iterable[str]) -> str:
    """A case-insensitive pattern (flag it so) matching any of `values` as a whole mention:
    group 2 is the value, groups 1 and 3 the boundary characters. Longest first, so the longer of
    two overlapping values is matched whole."""
    alts = "|".join(escape(v) for v in sorted(values, key=len, reverse=True))
    return f"(^|[^{WORD}])({alts})($|[^{WORD}])"
