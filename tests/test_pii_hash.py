"""Emails are hashed with the secret salt, the same in Python and in DuckDB, whatever the
address's case or surrounding spaces: one person is one hash, and no hash without the salt."""

from __future__ import annotations

import hashlib

import duckdb
import pytest

from resources.pii import hash_email, install

SALT = "a-secret-salt"
ADDRESS = "ann.lee@example.com"
EXPECTED = hashlib.sha256((SALT + ADDRESS).encode()).hexdigest()


@pytest.fixture
def con():
    with duckdb.connect() as c:
        install(c, SALT)
        yield c


@pytest.mark.parametrize("written", [ADDRESS, "Ann.Lee@Example.com", "  ANN.LEE@EXAMPLE.COM "])
def test_one_address_is_one_salted_hash_in_python_and_sql(con, written):
    assert hash_email(SALT, written) == EXPECTED
    assert con.execute("SELECT pii_hash(?)", [written]).fetchone()[0] == EXPECTED


def test_another_salt_gives_another_hash(con):
    unsalted = hashlib.sha256(ADDRESS.encode()).hexdigest()
    assert unsalted != EXPECTED
    assert hash_email("another-salt", ADDRESS) != EXPECTED
    install(con, "another-salt")
    assert con.execute("SELECT pii_hash(?)", [ADDRESS]).fetchone()[0] not in (EXPECTED, unsalted)


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_no_address_has_no_hash(con, blank):
    """A blank never hashes to a shared value that would join every person without an email."""
    assert hash_email(SALT, blank) is None
    assert con.execute("SELECT pii_hash(?)", [blank]).fetchone()[0] is None
