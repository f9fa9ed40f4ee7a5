"""`lakehouse stack`: a person bringing their own exports checks the configuration before any run.

The command loads the catalog, vocabulary and identity rules with the code location's own loaders,
so a mistake is reported with the same file, object and field, and a landing folder no object
reads is named.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_the_default_stack_is_reported_role_by_role(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("LAKEHOUSE_STACK", raising=False)
    (tmp_path / "crm" / "accounts").mkdir(parents=True)
    assert main(["stack", "--landing", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "company: crm/accounts (anchor), billing/customers" in out
    assert "event_stream: product/usage_events" in out
    assert "plans starter < growth < enterprise" in out
    assert "1 of 13 objects have a folder" in out
    assert "WARNING" not in out


def test_a_folder_no_object_reads_is_named(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("LAKEHOUSE_STACK", raising=False)
    (tmp_path / "crm" / "accounts").mkdir(parents=True)
    (tmp_path / "hubspot" / "companies").mkdir(parents=True)
    (tmp_path / "crm" / "leads").mkdir(parents=True)
    assert main(["stack", "--landing", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "WARNING unread: hubspot/" in out
    assert "WARNING unread: crm/leads/" in out


@pytest.mark.parametrize("stack", sorted(p.name for p in (ROOT / "stacks").iterdir()))
def test_every_shipped_stack_loads(stack, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_STACK", stack)
    assert main(["stack", "--landing", str(tmp_path / "none")]) == 0
    assert f"stack: {ROOT / 'stacks' / stack}" in capsys.readouterr().out


def test_a_catalog_mistake_names_file_object_and_field(capsys, tmp_path, monkeypatch):
    bad = tmp_path / "catalog.yaml"
    bad.write_text(
        "version: 1\nobjects:\n  - system: crm\n    object: accounts\n    description: x\n"
        "    format: csv\n    id: account_ref\n    columns:\n      - {name: id}\n"
    )
    monkeypatch.setenv("LAKEHOUSE_SOURCE_CATALOG", str(bad))
    assert main(["stack", "--landing", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: object crm/accounts: field id: 'account_ref' names no declared column" in err
