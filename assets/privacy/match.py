"""What an erasure looks for: a batch of subjects' identifiers and names, as one pattern that
runs the same in Python (files) and in DuckDB (tables). A value is matched whole (see
resources/mentions.py, shared with the destinations), in any case; a name alone never
selects a row (names are not unique), it is only erased from rows an identifier selected."""

from __future__ import annotations

import re
from collections.abc import Iterable

from resources.mentions import escape, mention_pattern

ERASED = "[erased]"
# Names this short are words too ("Lee", "Bo"): erasing them would erase other text.
SHORTEST_NAME = 4


class Needles:
    """The regular expressions that find and erase a batch of subjects' values."""

    def __init__(self, identifiers: Iterable[str], names: Iterable[str] = ()) -> None:
        self.identifiers = sorted({i.strip().lower() for i in identifiers if i and i.strip()})
        self.names = sorted(
            {n.strip().lower() for n in names if n and len(n.strip()) >= SHORTEST_NAME}
        )
        self.find = mention_pattern(self.identifiers)
        self.erase = mention_pattern(self.identifiers + self.names)
        self.exact = "^(?:" + "|".join(escape(v) for v in self.identifiers + self.names) + ")$"
        self.ids = "^(?:" + "|".join(escape(v) for v in self.identifiers) + ")$"
        self._find = re.compile(self.find, re.IGNORECASE)
        self._erase = re.compile(self.erase, re.IGNORECASE)
        self._exact = re.compile(self.exact, re.IGNORECASE)
        self._ids = re.compile(self.ids, re.IGNORECASE)

    def __bool__(self) -> bool:
        return bool(self.identifiers)

    def found_in(self, text: str) -> bool:
        low = text.lower()  # plain substring search first: the regex only confirms boundaries
        return any(i in low for i in self.identifiers) and bool(self._find.search(text))

    def names_record(self, record_id: object) -> bool:
        """Whether a record's id is one of the subjects' (the record is theirs)."""
        return isinstance(record_id, str) and bool(self._ids.match(record_id.strip()))

    def redact(self, value: object) -> object:
        """A value with the subjects erased: an exact match becomes null, a mention inside
        longer text becomes [erased]; lists and objects are walked."""
        if isinstance(value, str):
            if self._exact.match(value.strip()):
                return None
            before = None
            while before != value:  # adjacent mentions share a boundary character
                before, value = value, self._erase.sub(rf"\g<1>{ERASED}\g<3>", value)
            return value
        if isinstance(value, list):
            kept = [self.redact(v) for v in value]
            return [v for v, old in zip(kept, value, strict=True) if v is not None or old is None]
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        return value

    def params(self, query: str) -> dict[str, str]:
        """The patterns a DuckDB query uses, as bound parameters: people's emails and names
        never become SQL text (DuckDB refuses parameters a query does not use, hence the
        filter)."""
        values = {
            "find": self.find,
            "exact": self.exact,
            "ids": self.ids,
            "erase": self.erase,
            "to": f"\\1{ERASED}\\3",
            "erased": ERASED,
        }
        return {k: v for k, v in values.items() if re.search(rf"\${k}\b", query)}
