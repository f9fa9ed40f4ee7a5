"""Incremental identity (issue 25, item 7): a resolved population receives a day of new records;
the next run scores them against the existing clusters. What a user relies on: no canonical id
issued before changes, a new record of a known person joins that person's id, a new person gets
an id of their own. Run on the people stack (person data only), through the Dagster assets.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pyarrow.compute as pc
import pytest

from sample_company.people import DEFAULT, generate_people

END = dt.date(2026, 10, 31)
# 600 people whose records all fall in the last three weeks: the last day brings a few dozen.
WORLD = {"persons": 600, "days": 2, "seed": 21, "end_date": END.isoformat()}
CONFIG = replace(DEFAULT, history_days=20)


def person_links(h) -> dict[str, str]:
    links = h.lake.read("entities", "identity_links")
    links = links.filter(pc.equal(links["entity_type"], "person"))
    return dict(
        zip(links["record_key"].to_pylist(), links["canonical_id"].to_pylist(), strict=True)
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The links after the population up to yesterday, and after today's records too."""
    from conftest import Lakehouse, check_evaluations, load_definitions

    root = tmp_path_factory.mktemp("incremental")
    landing = root / "landing"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LAKEHOUSE_STACK", "people")
        h = Lakehouse(root / "lake", landing, load_definitions())
        generate_people(landing, **WORLD, config=CONFIG, write_through=END - dt.timedelta(days=1))
        first = h.materialize()
        assert first.success, check_evaluations(first)
        before = person_links(h)
        added = generate_people(landing, **WORLD, config=CONFIG)
        assert added.files_written > 0
        second = h.materialize()
        assert second.success, check_evaluations(second)
        after = person_links(h)
    yield before, after, truth(landing)


def truth(landing: Path) -> dict[str, str]:
    with (landing / "_truth" / "source_records.csv").open() as fh:
        return {
            f"{r['system']}/{r['object']}:{r['source_id']}": r["person_key"]
            for r in csv.DictReader(fh)
        }


def test_no_canonical_id_issued_before_changes(runs):
    before, after, _ = runs
    assert before and all(before.values())
    changed = {k: (v, after.get(k)) for k, v in before.items() if after.get(k) != v}
    assert not changed


def test_new_records_of_known_people_join_their_id_and_new_people_get_new_ids(runs):
    before, after, t = runs
    new = [k for k in after if k not in before]
    ids_of = {}  # person -> the id their earlier records hold
    for k, cid in before.items():
        ids_of.setdefault(t[k], Counter())[cid] += 1
    known = [k for k in new if t[k] in ids_of]
    strangers = [k for k in new if t[k] not in ids_of]
    assert len(known) >= 5 and len(strangers) >= 5, (len(known), len(strangers))
    for k in known:
        assert after[k] == ids_of[t[k]].most_common(1)[0][0], k
    issued = set(before.values())
    assert not {after[k] for k in strangers} & issued
    by_person: dict[str, set[str]] = {}
    for k in strangers:
        by_person.setdefault(t[k], set()).add(after[k])
    assert all(len(ids) == 1 for ids in by_person.values()), "one new person, one new id"
