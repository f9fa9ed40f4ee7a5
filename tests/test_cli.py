"""`lakehouse` (resources/cli.py) on the session's demo lake: what a user reads is what the Delta
tables hold, one account reads the same whichever way it is named, and nothing is downloaded."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import duckdb
import pytest

from conftest import ROOT
from resources.cli import main
from resources.duckdb import connect


def run(capsys, lake_root: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["--lake", str(lake_root), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def lake_sql(full_lake, query: str, *tables: str) -> list[tuple]:
    """The expected answer, straight from the Delta tables (not through the command)."""
    con = connect()
    for name in tables:
        layer, table = name.split(".")
        con.register(f"{layer}__{table}", full_lake.lake.read(layer, table))
    return con.execute(query).fetchall()


def test_sql_reads_the_360_table_whole(full_lake, capsys):
    lake = full_lake.lake
    code, out, err = run(
        capsys,
        full_lake.lake_root,
        "sql",
        "SELECT account_id, mrr FROM c360.customer_360_accounts",
        "--format",
        "json",
    )
    assert (code, err) == (0, "")
    rows = json.loads(out)
    expected = lake.read("c360", "customer_360_accounts", columns=["account_id", "mrr"])
    assert len(rows) == lake.dataset("c360", "customer_360_accounts").count_rows() > 0
    assert {r["account_id"]: r["mrr"] for r in rows} == dict(
        zip(expected["account_id"].to_pylist(), expected["mrr"].to_pylist(), strict=True)
    )


def test_text_output_shows_a_screen_and_says_so(full_lake, capsys):
    code, out, err = run(
        capsys, full_lake.lake_root, "sql", "SELECT * FROM events.events", "--limit", "5"
    )
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2 + 5 + 1  # header, rule, five rows, the count
    assert lines[-1] == "(5+ rows)" and "--limit 0 for all" in err


def test_reading_never_downloads_an_extension(full_lake, capsys, monkeypatch, tmp_path):
    """DuckDB keeps extensions under ~/.duckdb and creates that folder the moment it tries to
    install one (a default connection does so on `delta_scan`, and fails offline)."""
    monkeypatch.setenv("HOME", str(tmp_path))

    def refuse(*args, **kwargs):
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)

    code, out, _ = run(
        capsys,
        full_lake.lake_root,
        "sql",
        "SELECT count(*) AS n FROM c360.customer_360_accounts",
        "--format",
        "csv",
    )
    assert code == 0
    assert out == f"n\n{full_lake.lake.dataset('c360', 'customer_360_accounts').count_rows()}\n"

    code, out, _ = run(
        capsys,
        full_lake.lake_root,
        "sql",
        "SELECT extension_name, installed, loaded, current_setting('autoinstall_known_extensions')"
        " AS autoinstall FROM duckdb_extensions() WHERE extension_name IN ('delta', 'httpfs')",
        "--format",
        "json",
    )
    assert code == 0
    for ext in json.loads(out):
        assert (ext["installed"], ext["loaded"], ext["autoinstall"]) == (False, False, False)

    scan = f"SELECT count(*) FROM delta_scan('{full_lake.lake_root}/c360/customer_360_accounts')"
    code, out, err = run(capsys, full_lake.lake_root, "sql", scan)
    assert code == 1 and out == ""
    assert "never downloads" in err and "lakehouse sql" in err
    assert "FROM c360.customer_360_accounts" in err  # the view standing for that path
    assert "Traceback" not in err

    for attempt in ("INSTALL delta", "SET autoinstall_known_extensions = true"):
        code, _, err = run(capsys, full_lake.lake_root, "sql", attempt)
        assert code == 1 and err.startswith("lakehouse: ")
    assert not (tmp_path / ".duckdb").exists()


def _an_account(full_lake) -> dict:
    """An account with a champion churn score, current people, a CRM record and a name no
    other account shares: the kind a user looks up."""
    rows = lake_sql(
        full_lake,
        """SELECT a.account_id, a.name, l.source_id
           FROM entities__account a
           JOIN entities__identity_links l ON l.canonical_id = a.account_id
               AND l.entity_type = 'account' AND l.system = 'crm' AND l.object = 'accounts'
           WHERE a.account_id IN (SELECT account_id FROM ml__churn_scores WHERE role = 'champion')
             AND a.account_id IN (SELECT account_id FROM entities__relationship WHERE is_current
                                  GROUP BY 1 HAVING count(DISTINCT person_id) <= 12)
             AND lower(a.name) IN (SELECT lower(name) FROM entities__account GROUP BY 1
                                   HAVING count(*) = 1)
             AND l.source_id NOT IN (SELECT source_id FROM entities__identity_links
                                     GROUP BY 1 HAVING count(DISTINCT canonical_id) > 1)
           ORDER BY a.account_id LIMIT 1""",
        "entities.account",
        "entities.identity_links",
        "ml.churn_scores",
        "entities.relationship",
    )
    assert rows, "the demo lake has no scored account with people"
    account_id, name, crm_id = rows[0]
    people = lake_sql(
        full_lake,
        f"""SELECT DISTINCT p.full_name FROM entities__relationship r
            JOIN entities__person p USING (person_id)
            WHERE r.account_id = '{account_id}' AND r.is_current AND p.full_name IS NOT NULL""",
        "entities.relationship",
        "entities.person",
    )
    reasons = lake_sql(
        full_lake,
        f"""SELECT reasons FROM ml__churn_scores WHERE account_id = '{account_id}'
            AND role = 'champion' ORDER BY scored_at DESC LIMIT 1""",
        "ml.churn_scores",
    )
    return {
        "id": account_id,
        "name": name,
        "crm_id": crm_id,
        "people": [p for (p,) in people],
        "reasons": json.loads(reasons[0][0]),
    }


def test_account_reads_the_same_by_id_source_id_and_name(full_lake, capsys):
    account = _an_account(full_lake)
    screens = {}
    for how in (account["id"], account["crm_id"], account["name"].upper()):
        code, out, err = run(capsys, full_lake.lake_root, "account", how)
        assert (code, err) == (0, ""), err
        header, _, body = out.split("\n", 2)
        assert header == f"Account {account['id']}: {account['name']}"
        screens[how] = body
    by_source = run(capsys, full_lake.lake_root, "account", account["crm_id"])[1]
    assert f"matched by source record crm/accounts:{account['crm_id']}" in by_source
    assert len(set(screens.values())) == 1  # the same screen, whichever way it was named
    screen = screens[account["id"]]
    assert "Churn score, latest per role: " in screen
    for reason in account["reasons"]:  # the champion's reasons, in words
        assert reason in screen
    for person in account["people"]:
        assert person in screen
    for section in ("Source records", "Subscriptions", "Lifecycle", "What the CRM receives"):
        assert section in screen


def test_an_unknown_account_is_a_clear_error(full_lake, capsys):
    code, out, err = run(capsys, full_lake.lake_root, "account", "no-such-company-zz")
    assert (code, out) == (1, "")
    assert err.startswith("lakehouse: no account matches 'no-such-company-zz'")
    assert "Traceback" not in err


def test_a_name_shared_by_several_accounts_lists_them(full_lake, capsys):
    word, ids = _shared_word(full_lake)
    code, out, err = run(capsys, full_lake.lake_root, "account", word)
    assert (code, out) == (1, "")
    assert f"match '{word}' by part of the name" in err
    for account_id in ids[:20]:
        assert account_id in err


def _shared_word(full_lake) -> tuple[str, list[str]]:
    rows = lake_sql(
        full_lake,
        """WITH words AS (
               SELECT account_id, lower(unnest(regexp_split_to_array(name, '[^A-Za-z]+'))) AS w
               FROM entities__account)
           SELECT w, list(DISTINCT account_id ORDER BY account_id) FROM words
           WHERE length(w) >= 5 GROUP BY w HAVING count(DISTINCT account_id) BETWEEN 2 AND 20
           ORDER BY count(DISTINCT account_id) DESC, w LIMIT 1""",
        "entities.account",
    )
    return rows[0][0], rows[0][1]


def test_person_by_email_matches_the_hash_and_never_shows_the_address(full_lake, capsys):
    email, person_id = lake_sql(
        full_lake,
        """SELECT c.email, l.canonical_id FROM raw__crm_contacts c
           JOIN entities__identity_links l ON l.entity_type = 'person'
               AND l.record_key = 'crm/contacts:' || c.id
           WHERE c.email LIKE '%@%' AND l.canonical_id IS NOT NULL
           ORDER BY c.id LIMIT 1""",
        "raw.crm_contacts",
        "entities.identity_links",
    )[0]
    code, out, err = run(capsys, full_lake.lake_root, "person", f"  {email.upper()} ")
    assert (code, err) == (0, ""), err
    assert out.startswith(f"Person {person_id}: ")
    assert "matched by email (salted hash)" in out
    assert email.lower() not in out.lower()  # outside the raw layer the lake holds hashes only


def test_tables_lists_every_delta_table_with_its_rows_and_version(full_lake, capsys):
    code, out, _ = run(capsys, full_lake.lake_root, "tables", "--format", "json")
    assert code == 0
    listed = {t["table"]: t for t in json.loads(out)}
    root = full_lake.lake_root
    on_disk = {f"{p.parent.parent.name}.{p.parent.name}" for p in root.glob("*/*/_delta_log")}
    assert set(listed) == set(on_disk)
    for name in on_disk:
        layer, table = name.split(".")
        assert listed[name]["rows"] == full_lake.lake.dataset(layer, table).count_rows(), name
        assert listed[name]["version"] == full_lake.lake.version(layer, table), name
    assert listed["c360.customer_360_accounts"]["description"].startswith("The account profile")


def test_an_unknown_table_lists_the_tables(full_lake, capsys):
    code, out, err = run(capsys, full_lake.lake_root, "sql", "SELECT * FROM c360.no_such_table")
    assert (code, out) == (1, "")
    assert "no_such_table does not exist" in err
    assert "c360: customer_360_accounts, customer_360_people" in err


def test_no_lake_says_to_build_one(tmp_path, capsys):
    code, out, err = run(capsys, tmp_path / "empty", "tables")
    assert (code, out) == (1, "")
    assert "run `make demo` first" in err


def test_shell_runs_statements_from_a_pipe(full_lake, capsys, monkeypatch):
    import io

    monkeypatch.setattr(
        sys, "stdin", io.StringIO("SELECT count(*) AS n\n FROM raw.crm_accounts;\n.quit\n")
    )
    code, out, _ = run(capsys, full_lake.lake_root, "shell")
    assert code == 0
    assert out.splitlines()[2].strip() == str(
        full_lake.lake.dataset("raw", "crm_accounts").count_rows()
    )


def test_the_console_script_runs_the_command(full_lake):
    """`lakehouse` is declared in pyproject.toml; the venv's script appears on the next install,
    so the same entry point runs here as a module, in a process of its own."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["lakehouse"] == "resources.cli:main"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "resources.cli",
            "sql",
            "SELECT 41 + 1 AS answer",
            "--format",
            "csv",
        ],
        cwd=ROOT,
        env={**os.environ, "LAKEHOUSE_LAKE_ROOT": str(full_lake.lake_root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "answer\n42\n", "")


@pytest.mark.parametrize("bad", ["SELEC 1", "SELECT nope FROM c360.customer_360_accounts"])
def test_a_sql_error_is_duckdbs_message(full_lake, capsys, bad):
    code, out, err = run(capsys, full_lake.lake_root, "sql", bad)
    assert (code, out) == (1, "")
    with pytest.raises(duckdb.Error) as direct:
        con = connect()
        con.execute("CREATE SCHEMA c360; CREATE TABLE c360.customer_360_accounts (account_id TEXT)")
        con.execute(bad)
    assert str(direct.value).splitlines()[0] in err
