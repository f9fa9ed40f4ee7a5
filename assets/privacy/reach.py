"""Which tables an erasure reaches, and how, from the contracts (checks/): no list of names.

Every Delta table in the lake is scanned, in every text column: a person can be named anywhere
(a ticket's body, a raw payload, a list of contacts). What happens to a row naming them follows
its table's contract:
- a personal-record table (`personal_record`: a contact, a login, a consent record, the
  person's entity rows and profile) loses the row; with a `subject_key`, only a row whose key
  is one of theirs is theirs, and any other row naming them (a colleague's login they invited)
  stays with them scrubbed;
- any other table (account facts: tickets, usage, events) keeps the row, with the person's
  values scrubbed, so company history still adds up.
A table no contract declares is scanned and scrubbed like account facts, and named in the log:
it is never skipped, and never loses a row on a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from assets.privacy.audit import AUDITS
from checks.catalog import declared
from resources.lake import LakeResource

# Under the lake root but not the erasure's to rewrite: Dagster's own storage (our metadata
# carries no person values), the secrets, and the destinations' files (told to delete through
# their API). MLflow's store holds models and metrics per account, not people.
NOT_SCANNED = (".dagster", ".secrets", "mlflow", "crm")


@dataclass(frozen=True)
class Reach:
    """How an erasure treats one table's rows that name a subject."""

    table: str  # <layer>/<table>
    delete: bool  # the subjects' own records: deleted (else scrubbed)
    subject_key: str | None = None  # with delete: the column whose value makes a row theirs
    declared: bool = True  # a contract in checks/ declares the table

    @property
    def layer_and_table(self) -> tuple[str, str]:
        layer, table = self.table.split("/", 1)
        return layer, table


def reach(lake: LakeResource, log: Callable[[str], None] = lambda _: None) -> list[Reach]:
    """Every Delta table in the lake (the audits aside), with how its rows are erased."""
    contracts = declared()
    out = []
    for name in lake.tables(skip=NOT_SCANNED):
        if name in AUDITS:
            continue
        c = contracts.get(name)
        if c is None:
            log(f"{name}: no contract in checks/ declares it; scanned and scrubbed")
            out.append(Reach(name, delete=False, declared=False))
        else:
            out.append(Reach(name, c.personal_record, c.subject_key if c.personal_record else None))
    return out
