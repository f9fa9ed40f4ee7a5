"""Values the vocabulary does not know, kept and listed: a warning check beside an entity table.

A real company's plans are not the sample company's. A plan value the vocabulary does not list is
kept as it arrived (no tier rank: never an upgrade, no MRR band), and the table that carries it
says so in its metadata and in a non-blocking check, so the gap is seen and closed by editing the
vocabulary, not by a failed gate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from checks.vocabulary import Vocabulary, load_vocabulary


@dataclass(frozen=True)
class KnownValues:
    """A WARN check that `column` holds only values the vocabulary knows."""

    name: str
    column: str
    section: str  # the vocabulary's section naming the values
    known: Callable[[Vocabulary], Iterable[str]]

    def spec(self, key: AssetKey) -> AssetCheckSpec:
        return AssetCheckSpec(
            self.name,
            asset=key,
            blocking=False,
            description=f"Warns when `{self.column}` holds values the vocabulary's "
            f"`{self.section}` does not list: kept as they arrived, listed with their row counts.",
        )

    def unknown(self, table: pa.Table, vocab: Vocabulary) -> dict[str, int]:
        """Unknown value -> rows holding it."""
        known = pa.array(list(self.known(vocab)), pa.string())
        values = table[self.column]
        rest = values.filter(pc.invert(pc.is_in(values, known)))
        counts = pc.value_counts(rest.drop_null()).to_pylist()
        return dict(sorted((c["values"], c["counts"]) for c in counts))

    def result(self, key: AssetKey, table: pa.Table) -> tuple[AssetCheckResult, dict[str, int]]:
        vocab = load_vocabulary()
        unknown = self.unknown(table, vocab)
        listed = ", ".join(f"{v} ({n})" for v, n in unknown.items())
        check = AssetCheckResult(
            asset_key=key,
            check_name=self.name,
            passed=not unknown,
            severity=AssetCheckSeverity.WARN,
            description=f"{self.column} values the vocabulary ({vocab.path}) does not know, kept "
            f"as they arrived: {listed}"
            if unknown
            else f"every {self.column} is the vocabulary's",
            metadata={f"unknown_{self.section}": MetadataValue.json(unknown)},
        )
        return check, unknown


KNOWN_PLANS = KnownValues("subscription_known_plans", "plan_tier", "plans", lambda v: v.plan_order)
