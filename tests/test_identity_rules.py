"""Identity rules on hand-made records: the traps a real CRM and billing system set."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa

from assets.entities.resolve import Decision, assign_ids, link_companies, link_people
from assets.entities.rules import load_rules

# The default stack's rules with the weights it ships (learned by `make train-identity`): a
# retrained file must still spring none of these traps.
RULES = load_rules()
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def company(key: str, name: str, domain=None, email=None, links=(), anchor=None, country="US"):
    src = key.split(":")[0]
    name_norm = name.lower()
    email_domain = email.split("@")[1] if email else None
    return {
        "record_key": key,
        "is_anchor": src == "crm/accounts" if anchor is None else anchor,
        "name_norm": name_norm,
        "name_token": name_norm.split()[0],
        "domain": domain,
        "domain_stem": domain.replace("-", "") if domain else None,
        "email_key": email,
        "email_domain": email_domain,
        "country": country,
        "link_keys": list(links),
    }


def person(key: str, first: str, last: str, email=None, account_ref=None, links=()):
    return {
        "record_key": key,
        "first_name": first,
        "last_name": last,
        "email_key": email,
        "email_local": email.split("@")[0] if email else None,
        "email_domain": email.split("@")[1] if email else None,
        "role_mailbox": bool(email) and email.split("@")[0] in RULES.normalize.role_mailboxes,
        "account_ref": account_ref,
        "link_keys": list(links),
    }


def clusters(lk) -> dict[str, int]:
    return {k: lk.clusters.find(i) for i, k in enumerate(lk.keys)}


NO_PEOPLE = pa.Table.from_pylist([person("x:0", "a", "b")]).slice(0, 0)


def test_shared_billing_inbox_glues_no_companies():
    recs = pa.Table.from_pylist(
        [
            company("crm/accounts:A", "Northwind Analytics", "northwind-analytics.com"),
            company("crm/accounts:B", "Bluefin Legal", "bluefin-legal.com"),
            company("crm/accounts:L", "Ledgerline Advisory", "ledgerline-advisory.com"),
            # one bookkeeping firm's inbox bills two unrelated clients
            company(
                "billing/customers:c1",
                "Northwind Analytics",
                email="billing@ledgerline-advisory.com",
                links=["crm/accounts:A"],
            ),
            company(
                "billing/customers:c2",
                "Bluefin Legal",
                email="billing@ledgerline-advisory.com",
                links=["crm/accounts:B"],
            ),
            company(
                "billing/customers:c3", "Quietsail Homes", email="billing@ledgerline-advisory.com"
            ),
        ]
    )
    lk, _ = link_companies(recs, NO_PEOPLE, RULES, [])
    c = clusters(lk)
    assert c["billing/customers:c1"] == c["crm/accounts:A"]
    assert c["billing/customers:c2"] == c["crm/accounts:B"]
    assert c["crm/accounts:A"] != c["crm/accounts:B"]
    # the inbox's domain is the consultancy's, yet no client is glued to it
    assert c["billing/customers:c3"] not in {c["crm/accounts:L"], c["crm/accounts:A"]}
    assert c["crm/accounts:L"] not in {c["crm/accounts:A"], c["crm/accounts:B"]}


def test_generic_mail_domain_is_no_company_evidence():
    recs = pa.Table.from_pylist(
        [
            company("crm/accounts:A", "Oakmark Systems", "oakmark-systems.com"),
            company("crm/accounts:G", "Gmail Fan Club", "gmail.com"),
            company("billing/customers:c1", "Oakmark Systems Ltd", email="chloe.r@gmail.com"),
            company("billing/customers:c2", "Pinecrest Data", email="pat@gmail.com"),
        ]
    )
    lk, _ = link_companies(recs, NO_PEOPLE, RULES, [])
    c = clusters(lk)
    assert c["billing/customers:c1"] != c["billing/customers:c2"]
    assert c["crm/accounts:G"] not in {c["billing/customers:c1"], c["billing/customers:c2"]}


def test_same_name_without_domain_goes_to_review_not_merge():
    recs = pa.Table.from_pylist(
        [
            company("crm/accounts:A", "ironpoint homes", "ironpoint-homes.com"),
            company("crm/accounts:D", "ironpoint homes"),  # a duplicate by another rep
        ]
    )
    lk, _ = link_companies(recs, NO_PEOPLE, RULES, [])
    c = clusters(lk)
    assert c["crm/accounts:A"] != c["crm/accounts:D"]
    assert [(r["left_record"], r["right_record"]) for r in lk.review] == [
        ("crm/accounts:A", "crm/accounts:D")
    ]
    p = lk.review[0]["match_probability"]
    assert RULES.accounts.scoring.review <= p < RULES.accounts.scoring.merge


def test_confirmed_decisions_merge_and_separate():
    recs = pa.Table.from_pylist(
        [
            company("crm/accounts:A", "ironpoint homes", "ironpoint-homes.com"),
            company("crm/accounts:D", "ironpoint homes"),
            company("support/organizations:o1", "Ironpoint", "ironpoint-homes.com"),
        ]
    )
    same = Decision("account", "crm/accounts:A", "crm/accounts:D", True)
    lk, _ = link_companies(recs, NO_PEOPLE, RULES, [same])
    c = clusters(lk)
    assert c["crm/accounts:A"] == c["crm/accounts:D"]
    assert lk.rule[lk.index["crm/accounts:D"]] == "confirmed_decision"
    assert lk.review == []
    # "different" overrides even a deterministic key (the shared domain)
    apart = Decision("account", "support/organizations:o1", "crm/accounts:A", False)
    lk, _ = link_companies(recs, NO_PEOPLE, RULES, [apart])
    c = clusters(lk)
    assert c["support/organizations:o1"] != c["crm/accounts:A"]


def test_shared_inbox_and_same_name_people_stay_apart():
    acc = {"crm/accounts:A": "acc_a", "crm/accounts:B": "acc_b"}
    recs = pa.Table.from_pylist(
        [
            # two people at two companies behind one payables inbox
            person(
                "support/ticket_requesters:1",
                "maria",
                "lopez",
                "accounts.payable.desk@gmail.com",
                "crm/accounts:A",
            ),
            person(
                "support/ticket_requesters:2",
                "tom",
                "baker",
                "accounts.payable.desk@gmail.com",
                "crm/accounts:B",
            ),
            # the same-name trap: two John Smiths, two employers
            person(
                "crm/contacts:j1", "john", "smith", "john.smith@northwind.com", "crm/accounts:A"
            ),
            person("crm/contacts:j2", "john", "smith", "john.smith@bluefin.com", "crm/accounts:B"),
            # the consultant: one person, one address, several clients
            person(
                "product/users:u1", "priya", "raman", "priya.raman@ledgerline.com", "crm/accounts:A"
            ),
            person(
                "product/users:u2", "priya", "raman", "priya.raman@ledgerline.com", "crm/accounts:B"
            ),
            # a personal login and the CRM contact: same name, same account
            person(
                "product/users:u3", "zachary", "hall", "zacharyhall75@gmail.com", "crm/accounts:A"
            ),
            person(
                "crm/contacts:z", "zachary", "hall", "zachary.hall@northwind.com", "crm/accounts:A"
            ),
        ]
    )
    lk, _ = link_people(recs, acc, RULES, [])
    c = clusters(lk)
    assert c["support/ticket_requesters:1"] != c["support/ticket_requesters:2"]
    assert c["crm/contacts:j1"] != c["crm/contacts:j2"]
    assert c["product/users:u1"] == c["product/users:u2"]
    assert c["product/users:u3"] == c["crm/contacts:z"]
    assert lk.rule[lk.index["product/users:u3"]] == "scored_match"


def test_ids_persist_and_merges_are_recorded():
    recs = pa.Table.from_pylist(
        [
            company("crm/accounts:A", "ironpoint homes", "ironpoint-homes.com"),
            company("crm/accounts:D", "ironpoint homes"),
            company("crm/accounts:B", "Bluefin Legal", "bluefin-legal.com"),
        ]
    )
    lk, _ = link_companies(recs, NO_PEOPLE, RULES, [])
    first = assign_ids(lk, {}, "acc_", None, NOW)
    ids = {k: first.ids[lk.clusters.find(i)] for i, k in enumerate(lk.keys)}
    assert len(set(ids.values())) == 3
    # minted from the founding record: the same data from scratch mints the same ids
    again = assign_ids(link_companies(recs, NO_PEOPLE, RULES, [])[0], {}, "acc_", None, NOW)
    assert set(again.ids.values()) == set(ids.values())
    # a reviewer confirms A and D are one: A's id is older and survives, D's is recorded merged
    previous = {
        "crm/accounts:A": (ids["crm/accounts:A"], NOW.replace(year=2025)),
        "crm/accounts:D": (ids["crm/accounts:D"], NOW),
        "crm/accounts:B": (ids["crm/accounts:B"], NOW),
    }
    same = Decision("account", "crm/accounts:A", "crm/accounts:D", True)
    lk2, _ = link_companies(recs, NO_PEOPLE, RULES, [same])
    second = assign_ids(lk2, previous, "acc_", None, NOW)
    after = {k: second.ids[lk2.clusters.find(i)] for i, k in enumerate(lk2.keys)}
    assert after["crm/accounts:A"] == after["crm/accounts:D"] == ids["crm/accounts:A"]
    assert after["crm/accounts:B"] == ids["crm/accounts:B"]
    assert [(c["old_id"], c["surviving_id"], c["action"]) for c in second.changes] == [
        (ids["crm/accounts:D"], ids["crm/accounts:A"], "merged")
    ]


def test_rule_values_with_quotes_normalize_as_written():
    """Values of the rules file reach SQL through resources/sql.py, quoted, never stripped: a
    country name or a domain alias with an apostrophe maps (the old helper dropped the quote,
    so "cote d'ivoire" never matched), and a role mailbox with one is still a role mailbox."""
    from dataclasses import replace

    from assets.entities.records import create_macros
    from resources.duckdb import connect

    n = replace(
        RULES.normalize,
        country_names={**RULES.normalize.country_names, "cote d'ivoire": "CI"},
        domain_aliases={**RULES.normalize.domain_aliases, "o'reilly.example": "oreilly.example"},
        role_mailboxes=(*RULES.normalize.role_mailboxes, "o'help"),
    )
    with connect() as con:
        create_macros(con, n)
        got = con.execute(
            "SELECT norm_country($c), email_domain($e), is_role_mailbox($r), "
            "norm_country('germany')",
            {"c": "Cote d'Ivoire", "e": "ann@O'Reilly.example", "r": "o'help@acme.example"},
        ).fetchone()
    assert got == ("CI", "oreilly.example", True, "DE")


def test_review_queue_shows_no_clear_names_or_email():
    """A person pair waiting for review shows the reviewer initials and the salted hash of the
    address, never a clear name or an email's local part (they used to be in the JSON as they
    arrived); the evidence still says how well each field agreed."""
    from resources.duckdb import connect
    from resources.pii import hash_email, install

    recs = pa.Table.from_pylist(
        [
            # Anna and Anne Smith at one company: one person misspelt, or two? A reviewer decides
            person("crm/contacts:a", "anna", "smith", "asmith@northwind.com", "crm/accounts:A"),
            person("product/users:b", "anne", "smith", "anne.s@northwind.com", "crm/accounts:A"),
        ]
    )
    con = connect()
    install(con, "review-salt")
    lk, _ = link_people(recs, {"crm/accounts:A": "acc_a"}, RULES, [], con)
    assert [(r["left_record"], r["right_record"]) for r in lk.review] == [
        ("crm/contacts:a", "product/users:b")
    ]
    item = lk.review[0]
    text = (item["left_attributes"] + item["right_attributes"]).lower()
    for clear in ("anna", "anne", "smith"):
        assert clear not in text, clear
    left = json.loads(item["left_attributes"])
    assert (left["first_name"], left["last_name"], left["email_local"]) == ("a***", "s***", "a***")
    assert left["email_local_hash"] == hash_email("review-salt", "asmith")
    assert left["account_id"] == "acc_a"
    evidence = json.loads(item["evidence"])
    assert evidence["account"] == "same account"
    assert evidence["last_name"] == "Exact match on last_name"
    assert evidence["first_name"] == "Jaro-Winkler distance of first_name >= 0.8"
