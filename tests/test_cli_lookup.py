"""How `lakehouse account` resolves what a user typed, on a lake of a few rows: cases the demo
company does not hold (a merged id, a source id two systems share, a lake half built)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from resources.cli import main
from resources.lake import LakeResource

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def small_lake(tmp_path) -> LakeResource:
    lake = LakeResource(root=str(tmp_path / "lake"))
    lake.publish(
        "entities",
        "account",
        pa.table(
            {
                "account_id": ["acc_a", "acc_b", "acc_c"],
                "name": ["Acme Labs", "Acme Rentals", "Zenith"],
                "domain": ["acme-labs.com", "acme-rentals.com", None],
                "crm_type": ["Customer", "Prospect", "Customer"],
            }
        ),
    )
    lake.publish(
        "entities",
        "identity_links",
        pa.table(
            {
                "entity_type": ["account"] * 4,
                "system": ["crm", "billing", "support", "risk"],
                "object": ["accounts", "customers", "organizations", "signals"],
                "source_id": ["001X", "42", "42", "rsk_orphan"],
                "record_key": [
                    "crm/accounts:001X",
                    "billing/customers:42",
                    "support/organizations:42",
                    "risk/signals:rsk_orphan",
                ],
                "canonical_id": ["acc_a", "acc_a", "acc_b", None],
                "rule": ["stable_id"] * 4,
                "confidence": [1.0] * 4,
                "linked_at": [NOW] * 4,
            }
        ),
    )
    lake.publish(
        "entities",
        "identity_merges",
        pa.table(
            {
                "entity_type": ["account", "account"],
                "old_id": ["acc_old", "acc_older"],
                "surviving_id": ["acc_c", "acc_old"],
                "action": ["merged", "merged"],
                "recorded_at": [NOW, NOW],
            }
        ),
    )
    return lake


def run(capsys, lake: LakeResource, *argv: str) -> tuple[int, str, str]:
    code = main(["--lake", lake.root, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_merged_id_follows_its_merges_to_the_survivor(small_lake, capsys):
    code, out, err = run(capsys, small_lake, "account", "acc_older")
    assert (code, err) == (0, "")
    assert out.startswith("Account acc_c: Zenith\n  matched by id acc_older, merged into acc_c\n")


def test_each_kind_of_name_reaches_its_account(small_lake, capsys):
    for typed, expected in (
        ("001X", "acc_a"),
        ("support/organizations:42", "acc_b"),
        ("https://www.acme-rentals.com/pricing", "acc_b"),
        ("someone@acme-labs.com", "acc_a"),
        ("zenith", "acc_c"),
        ("RENTALS", "acc_b"),
    ):
        code, out, err = run(capsys, small_lake, "account", typed)
        assert (code, err) == (0, ""), (typed, err)
        assert out.startswith(f"Account {expected}: "), typed


def test_a_source_id_two_systems_share_lists_both_accounts(small_lake, capsys):
    code, out, err = run(capsys, small_lake, "account", "42")
    assert (code, out) == (1, "")
    assert "2 accounts match '42' by source id (in several systems)" in err
    assert "acc_a" in err and "acc_b" in err


def test_a_source_record_without_an_account_says_where_to_look(small_lake, capsys):
    code, _, err = run(capsys, small_lake, "account", "rsk_orphan")
    assert code == 1
    assert "risk/signals:rsk_orphan reaches no account (entities.unmapped_ids says why)" in err


def test_sections_whose_tables_are_missing_say_so_and_the_rest_show(small_lake, capsys):
    code, out, err = run(capsys, small_lake, "account", "acc_a")
    assert (code, err) == (0, "")
    assert "Profile (entities.account)" in out  # no 360 yet: the canonical row
    assert "Source records (identity links): 2" in out
    assert "Churn score, latest per role: not in the lake yet (ml.churn_scores)" in out
    assert "Review queue: not in the lake yet (reverse_etl.review_queue)" in out
