"""What erasure matches, in isolation: the person's identifiers in any case and in every text
column (lists included), whole values only, and nobody else. tests/test_erasure.py erases a
person from a whole built lake; these are the rules it relies on."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from assets.privacy.match import ERASED, Needles
from assets.privacy.tables import count_matches

EMAIL = "ann.lee@example.com"


def test_blank_identifiers_never_match_everyone():
    needles = Needles(["", "   ", EMAIL])
    assert needles.identifiers == [EMAIL]
    assert not needles.found_in("bob.kent@example.com wrote")
    assert not Needles(["  "])  # nothing to look for: no request is carried out on it
    assert Needles([EMAIL])  # something to look for: the request is carried out


def test_the_person_is_found_and_erased_in_any_case():
    needles = Needles([EMAIL], names=["Ann Lee"])
    assert needles.found_in("Reply from ANN.LEE@Example.COM, thanks")
    assert needles.redact("ANN.LEE@EXAMPLE.COM") is None  # a whole value: gone
    assert needles.redact("ann lee") is None
    assert needles.redact(f"cc {EMAIL.upper()} and Ann Lee") == f"cc {ERASED} and {ERASED}"
    assert needles.redact("annalee@example.com") == "annalee@example.com"  # someone else


def test_names_of_four_letters_are_erased_shorter_ones_would_erase_words():
    needles = Needles([EMAIL], names=["Anna", "Bo", "Lee"])
    assert needles.names == ["anna"]
    assert needles.redact("Anna") is None
    assert needles.redact("Lee") == "Lee"


def test_the_longer_of_two_overlapping_identifiers_is_erased_whole():
    needles = Needles([EMAIL, EMAIL + ".au"])
    assert needles.redact(f"write to {EMAIL}.au today") == f"write to {ERASED} today"


@pytest.fixture
def table(tmp_path) -> DeltaTable:
    """One mention per row, each in a different kind of text column."""
    data = pa.table(
        {
            "s": pa.array([EMAIL, "x", None, "x", "x"], pa.string()),
            "ls": pa.array(["x", "Ann.Lee@Example.com", None, "x", "x"], pa.large_string()),
            "l": pa.array([[], [], ["a", EMAIL], None, []], pa.list_(pa.string())),
            "ll": pa.array([[], [], [], [EMAIL.upper()], []], pa.large_list(pa.large_string())),
            "n": pa.array([1, 2, 3, 4, 5]),
        }
    )
    write_deltalake(str(tmp_path / "t"), data)
    return DeltaTable(str(tmp_path / "t"))


def test_every_text_and_list_column_is_searched(table):
    with duckdb.connect() as con:
        assert count_matches(con, table, Needles([EMAIL])) == 4
        assert count_matches(con, table, Needles(["bob.kent@example.com"])) == 0


def test_a_record_is_the_persons_only_when_its_whole_id_is_theirs():
    """Own records are deleted by id; any other record naming the person keeps its row."""
    needles = Needles([EMAIL, "usr_1207"])
    assert needles.names_record("usr_1207") and needles.names_record(" USR_1207 ")
    assert not needles.names_record("usr_12070")
    assert not needles.names_record(f"invited by {EMAIL}")
    assert not needles.names_record(None)
