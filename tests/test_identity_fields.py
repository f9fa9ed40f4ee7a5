"""Identity on any person data: every field a catalog declares is carried, normalized, blocked
on, compared (by Splink's comparison library) and used as an exact key; rules over a column no
source fills fail at load; link_only / link_and_dedupe between named datasets; and the review
queue shows no clear personal data.

The catalog here is a person-only company (a population registry and a clinic export): names,
date of birth, address, postcode, national id, phone; no email, no company.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from assets.entities.records import create_macros, person_records
from assets.entities.resolve import link_people
from assets.entities.rules import load_rules
from checks.sources import CatalogError, load_catalog
from resources.duckdb import connect
from resources.pii import hash_email, install

SALT = "fields-test-salt"

LINEAGE = ("_extract_date", "_line")


def _object(system: str, obj: str, columns: list[str], fields: dict, **role) -> dict:
    return {
        "system": system,
        "object": obj,
        "description": f"{system} {obj}: people.",
        "format": "csv",
        "id": "id",
        "columns": [{"name": c} for c in ["id", *columns]],
        "role": {"name": "person", "fields": fields, **role},
    }


REGISTRY = _object(
    "registry",
    "people",
    ["given", "family", "born", "zip", "nin", "tel", "street", "town", "sex", "member_no"],
    {
        "first_name": "given",
        "last_name": "family",
        "date_of_birth": "born",
        "postcode": "zip",
        "national_id": "nin",
        "phone": "tel",
        "address": "street",
        "city": "town",
        "gender": "sex",
    },
    attributes={"member_no": "upper(member_no)"},
)
CLINIC = _object(
    "clinic",
    "patients",
    ["name", "dob", "postal_code", "mobile"],
    {"full_name": "name", "date_of_birth": "dob", "postcode": "postal_code", "phone": "mobile"},
)


def _catalog(tmp_path: Path, *objects: dict) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "objects": list(objects)}))
    return path


RULES = {
    "persons": {
        "entity_id_prefix": "per_",
        "keys": [
            {
                "name": "national_id",
                "columns": ["national_id"],
                "distinct": {"last_name": 1, "date_of_birth": 1},
                "confidence": 0.995,
                "exclusive": True,
            }
        ],
        "scoring": {
            "merge": 0.99,
            "review": 0.5,
            "prior": 0.01,
            "blocking": [{"columns": ["last_name", "date_of_birth"]}, "l.postcode = r.postcode"],
            "comparisons": [
                {
                    "name": "first_name",
                    "method": "name",
                    "column": "first_name",
                    "m": [0.8, 0.08, 0.04, 0.04, 0.04],
                    "u": [0.01, 0.01, 0.02, 0.06, 0.9],
                },
                {
                    "name": "surname",
                    "method": "jaro_winkler",
                    "column": "last_name",
                    "thresholds": [0.92],
                    "m": [0.9, 0.05, 0.05],
                    "u": [0.01, 0.01, 0.98],
                },
                {
                    "name": "dob",
                    "method": "date_of_birth",
                    "column": "date_of_birth",
                    "m": [0.9, 0.04, 0.02, 0.02, 0.01, 0.01],
                    "u": [0.0001, 0.001, 0.004, 0.05, 0.4, 0.5449],
                },
                {
                    "name": "postcode",
                    "method": "postcode",
                    "column": "postcode",
                    "m": [0.9, 0.03, 0.03, 0.02, 0.02],
                    "u": [0.001, 0.005, 0.01, 0.05, 0.934],
                },
                {
                    "name": "nin",
                    "method": "damerau_levenshtein",
                    "column": "national_id",
                    "thresholds": [1],
                    "m": [0.95, 0.045, 0.005],
                    "u": [0.0001, 0.0001, 0.9998],
                },
            ],
        },
    },
}


def _rules(tmp_path: Path, catalog: Path, spec: dict | None = None):
    path = tmp_path / "identity.yaml"
    path.write_text(yaml.safe_dump(spec or RULES))
    return load_rules(path, load_catalog(catalog))


def _raw(rows: list[dict], columns: tuple[str, ...]) -> pa.Table:
    """A raw table as the raw layer keeps it: text columns plus the lineage ordering versions."""
    data = {c: pa.array([r.get(c) for r in rows], pa.string()) for c in ("id", *columns)}
    data["_extract_date"] = pa.array([None] * len(rows), pa.date32())
    data["_line"] = pa.array(range(len(rows)), pa.int64())
    return pa.table(data)


def _records(rules, registry: list[dict], clinic: list[dict], con=None) -> pa.Table:
    con = con or connect()
    create_macros(con, rules.normalize)
    cols = {
        "registry_people": tuple(c["name"] for c in REGISTRY["columns"][1:]),
        "clinic_patients": tuple(c["name"] for c in CLINIC["columns"][1:]),
    }
    con.register("v_raw__registry_people", _raw(registry, cols["registry_people"]))
    con.register("v_raw__clinic_patients", _raw(clinic, cols["clinic_patients"]))
    return person_records(con, rules.persons, {"raw/registry_people", "raw/clinic_patients"})


def _by_key(t: pa.Table) -> dict[str, dict]:
    return {r["record_key"]: r for r in t.to_pylist()}


def test_person_records_carry_every_declared_field_normalized(tmp_path):
    """Date of birth, postcode, national id, phone, address, city, gender and a catalog
    attribute reach the records under one name across sources, normalized by kind; a field a
    source does not map is NULL in its rows (the old records kept only names and email)."""
    rules = _rules(tmp_path, _catalog(tmp_path, REGISTRY, CLINIC))
    recs = _by_key(
        _records(
            rules,
            [
                {
                    "id": "r1",
                    "given": "Anna",
                    "family": "Kowalska",
                    "born": "1984-03-07",
                    "zip": "sw1a  1aa",
                    "nin": "AB 12-34-56 c",
                    "tel": "+44 20 7946-0958",
                    "street": "  12  Baker   Street ",
                    "town": "London",
                    "sex": "F",
                    "member_no": "m-77",
                }
            ],
            [
                {
                    "id": "c1",
                    "name": "Kowalska, Anna",
                    "dob": "1984-03-07 00:00:00",
                    "postal_code": "SW1A 1AA",
                    "mobile": "0044 (20) 79460958",
                },
                {"id": "c2", "name": "Jan Nowak", "dob": "07/03/1984"},
            ],
        )
    )
    r1, c1, c2 = recs["registry/people:r1"], recs["clinic/patients:c1"], recs["clinic/patients:c2"]
    assert (r1["first_name"], r1["last_name"], r1["full_name"]) == (
        "anna",
        "kowalska",
        "anna kowalska",
    )
    assert (c1["first_name"], c1["last_name"]) == ("anna", "kowalska")
    assert r1["date_of_birth"] == c1["date_of_birth"] == "1984-03-07"
    assert c2["date_of_birth"] is None  # does not parse as a date: no value, never a guess
    assert r1["postcode"] == c1["postcode"] == "SW1A 1AA"
    assert r1["national_id"] == "ab123456c"
    assert r1["phone"] == "442079460958" and c1["phone"] == "00442079460958"
    assert (r1["address"], r1["city"], r1["gender"]) == ("12 baker street", "london", "f")
    assert r1["member_no"] == "m-77"  # the attribute's SQL ran, then text normalization
    # fields the clinic does not map are NULL in its rows
    assert c1["national_id"] is None and c1["member_no"] is None and c1["address"] is None


def _write(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "identity.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _with(path: str, value) -> dict:
    """RULES with one value replaced (`path`: dotted keys, list indices as numbers)."""
    spec = json.loads(json.dumps(RULES))
    node = spec
    *head, last = path.split(".")
    for k in head:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return spec


@pytest.mark.parametrize(
    "path, value, error",
    [
        (
            "persons.scoring.comparisons.2",
            {"name": "dob", "method": "date_of_birth", "column": "birth_date"},
            "persons.scoring.comparisons[dob]: column birth_date: no person source maps it "
            "(sources: registry/people, clinic/patients)",
        ),
        (
            "persons.scoring.blocking.0",
            {"columns": ["last_name", "email_key"]},
            "persons.scoring.blocking[0]: column email_key: no person source maps it",
        ),
        (
            "persons.scoring.blocking.1",
            "l.city = r.city and l.account_id = r.account_id",
            "persons.scoring.blocking[1]: column account_id: no person source maps it",
        ),
        (
            "persons.keys.0.columns",
            ["passport"],
            "persons.keys[national_id]: column passport: no person source maps it",
        ),
        (
            "persons.scoring.comparisons.0",
            {"name": "first_name", "method": "soundex", "column": "first_name"},
            "persons.scoring.comparisons[first_name]: unknown method 'soundex'",
        ),
        ("persons.link_type", "link_all", "persons.link_type: 'link_all' is not one of"),
        ("persons.keys.0.fuzzy", True, "persons.keys[national_id]: unknown key option 'fuzzy'"),
        (
            "persons.scoring.comparisons.1.m",
            [0.9, 0.1],
            "persons.scoring.comparisons[surname]: 3 levels",
        ),
    ],
)
def test_rules_over_undeclared_columns_fail_at_load(tmp_path, path, value, error):
    """A rule reading a column no source of the entity fills is a load error naming the rule
    and the column (it used to be dropped without a word, then fail inside Splink)."""
    catalog = load_catalog(_catalog(tmp_path, REGISTRY, CLINIC))
    rules = _write(tmp_path, _with(path, value))
    with pytest.raises(ValueError) as err:
        load_rules(rules, catalog)
    assert str(err.value).startswith(f"{rules}: ")
    assert error in str(err.value)


def test_comparisons_are_splinks_own(tmp_path):
    """A method comparison's levels are the ones Splink's comparison library builds (labels and
    SQL), with the rules' m/u on them: nothing re-implemented."""
    import splink.comparison_library as cl

    rules = _rules(tmp_path, _catalog(tmp_path, REGISTRY, CLINIC))
    dob = next(c for c in rules.persons.scoring.comparisons if c.name == "dob")
    built = cl.DateOfBirthComparison(
        "date_of_birth", input_is_string=True, datetime_format="%Y-%m-%d"
    ).create_comparison_dict("duckdb")
    assert [(lv.label, lv.sql) for lv in dob.levels] == [
        (lv["label_for_charts"], lv["sql_condition"]) for lv in built["comparison_levels"]
    ]
    assert [lv.m for lv in dob.levels if not lv.null] == RULES["persons"]["scoring"]["comparisons"][
        2
    ]["m"]


PEOPLE = [
    # one woman, three records: a typo'd first name in the clinic, a national id in both
    # registry rows (one of them written with spaces)
    {"id": "r1", "given": "Anna", "family": "Kowalska", "born": "1984-03-07", "zip": "SW1A 1AA",
     "nin": "AB123456C", "street": "12 Baker Street"},
    {"id": "r2", "given": "Ana", "family": "Kowalska", "born": "1984-03-07", "zip": "SW1A1AA",
     "nin": "ab 12 34 56 c"},
    # her twin: same family, birthday, address; another first name, another id
    {"id": "r3", "given": "Maria", "family": "Kowalska", "born": "1984-03-07", "zip": "SW1A 1AA",
     "nin": "AB654321C", "street": "12 Baker Street"},
    # a typo'd national id shared by two people who are not one (different family, birthday)
    {"id": "r4", "given": "Tom", "family": "Baker", "born": "1990-01-01", "zip": "E1 6AN",
     "nin": "ZZ999999Z"},
    {"id": "r5", "given": "Lena", "family": "Fischer", "born": "1971-11-30", "zip": "N1 9GU",
     "nin": "ZZ999999Z"},
]  # fmt: skip
PATIENTS = [
    {"id": "c1", "name": "Anya Kowalska", "dob": "1984-03-07", "postal_code": "sw1a 1aa"},
    {"id": "c2", "name": "Thomas Baker", "dob": "1990-01-01", "postal_code": "E1 6AN"},
]


def _clusters(lk) -> dict[str, int]:
    return {k: lk.clusters.find(i) for i, k in enumerate(lk.keys)}


def test_keys_and_scoring_over_declared_fields(tmp_path):
    """The national id joins records whose names differ, unless the records carrying it name
    different people; a clinic record joins its registry person on name, date of birth and
    postcode; twins sharing surname, birthday and address stay apart: their national ids differ
    (an exclusive key), so the pairs that would join them wait for a reviewer, saying why."""
    rules = _rules(tmp_path, _catalog(tmp_path, REGISTRY, CLINIC))
    recs = _records(rules, PEOPLE, PATIENTS)
    lk, _ = link_people(recs, {}, rules, [])
    c = _clusters(lk)
    reg, cli = "registry/people:", "clinic/patients:"
    assert c[reg + "r1"] == c[reg + "r2"]
    assert lk.rule[lk.index[reg + "r2"]] == "national_id"
    assert c[reg + "r3"] != c[reg + "r1"]  # the twin
    twin = {(r["left_record"], r["right_record"]): r for r in lk.review}
    assert (cli + "c1", reg + "r3") in twin
    assert json.loads(twin[cli + "c1", reg + "r3"]["evidence"])["exclusive_key"] == (
        "national_id differs: not merged"
    )
    assert c[reg + "r4"] != c[reg + "r5"]  # the shared (typo'd) id names two people
    assert c[cli + "c1"] == c[reg + "r1"]
    assert lk.rule[lk.index[cli + "c1"]] == "scored_match"
    assert c[cli + "c2"] == c[reg + "r4"] != c[reg + "r5"]


def _linked(tmp_path: Path, link_type: str):
    spec = json.loads(json.dumps(RULES))
    spec["persons"]["link_type"] = link_type
    spec["persons"]["datasets"] = {"registry": ["registry/people"], "clinic": ["clinic/patients"]}
    rules = _rules(tmp_path, _catalog(tmp_path, REGISTRY, CLINIC), spec)
    registry = [
        {"id": "r1", "given": "Anna", "family": "Kowalska", "born": "1984-03-07", "zip": "SW1A 1AA",
         "nin": "AB123456C"},
        # a second registry row of the same person (the registry has duplicates)
        {"id": "r2", "given": "Anna", "family": "Kowalska", "born": "1984-03-07", "zip": "SW1A 1AA",
         "nin": "AB 123456 C"},
    ]  # fmt: skip
    clinic = [{"id": "c1", "name": "Anna Kowalska", "dob": "1984-03-07", "postal_code": "SW1A1AA"}]
    lk, _ = link_people(_records(rules, registry, clinic), {}, rules, [])
    return _clusters(lk), lk


def test_link_only_joins_across_datasets_never_within(tmp_path):
    """link_only: the clinic record joins the registry, but two registry records are never
    joined to each other, by key or by score (the user said each side is already deduplicated);
    link_and_dedupe joins both."""
    c, lk = _linked(tmp_path, "link_only")
    reg, cli = "registry/people:", "clinic/patients:"
    assert c[reg + "r1"] != c[reg + "r2"]
    assert c[cli + "c1"] in {c[reg + "r1"], c[reg + "r2"]}
    assert all(
        lk.rule[lk.index[k]] != "national_id" for k in (reg + "r1", reg + "r2")
    )  # the key names two records of one dataset: no key for a link
    c, lk = _linked(tmp_path, "link_and_dedupe")
    assert c[reg + "r1"] == c[reg + "r2"] == c[cli + "c1"]


def test_review_shows_no_clear_personal_data(tmp_path):
    """identity_review's attributes mask names, date of birth, national id, phone and an
    email's local part (or carry the lake's salted hash); the evidence still names, per
    comparison, the level the pair reached."""
    spec = json.loads(json.dumps(RULES))
    spec["persons"]["scoring"]["comparisons"].append(
        {"name": "phone", "method": "exact", "column": "phone", "m": [0.9, 0.1], "u": [0.01, 0.99]}
    )
    spec["persons"]["scoring"]["comparisons"].append(
        {"name": "address", "method": "levenshtein", "column": "address", "thresholds": [3],
         "m": [0.8, 0.1, 0.1], "u": [0.001, 0.01, 0.989]}
    )  # fmt: skip
    spec["persons"]["scoring"]["merge"] = 1.0  # every scored pair waits for a reviewer
    rules = _rules(tmp_path, _catalog(tmp_path, REGISTRY, CLINIC), spec)
    con = connect()
    install(con, SALT)
    registry = [
        {"id": "r1", "given": "Thomas", "family": "Baker", "born": "1990-01-01", "zip": "E1 6AN",
         "tel": "020 7946 0958", "nin": "QQ123456A", "street": "1 Mile End Road"},
    ]  # fmt: skip
    clinic = [
        {"id": "c1", "name": "Tom Baker", "dob": "1990-01-01", "postal_code": "E1 6AN",
         "mobile": "020 7946 0958"},
    ]  # fmt: skip
    recs = _records(rules, registry, clinic, con)
    lk, _ = link_people(recs, {}, rules, [], con)
    assert len(lk.review) == 1
    item = lk.review[0]
    text = item["left_attributes"] + item["right_attributes"]
    for clear in ("thomas", "tom", "baker", "1990-01-01", "01-01", "qq123456a", "2079460958"):
        assert clear not in text.lower(), clear
    shown = {
        item["left_record"]: json.loads(item["left_attributes"]),
        item["right_record"]: json.loads(item["right_attributes"]),
    }
    reg, cli = shown["registry/people:r1"], shown["clinic/patients:c1"]
    assert reg["first_name"] == cli["first_name"] == "t***"
    assert reg["date_of_birth"] == cli["date_of_birth"] == "1990-**-**"
    assert reg["national_id"] == "***6a" and cli["national_id"] is None
    assert reg["phone"] == cli["phone"] == "***58"
    assert "address" not in reg  # equality is all a reviewer needs: the salted hash
    assert reg["address_hash"] == hash_email(SALT, "1 mile end road")
    evidence = json.loads(item["evidence"])
    assert evidence["surname"] == "Exact match on last_name"
    assert evidence["dob"] == "Exact match on date of birth"
    assert evidence["phone"] == "Exact match on phone"
    assert evidence["nin"] == "national_id is NULL"
    assert evidence["address"] == "address is NULL"


@pytest.mark.parametrize(
    "attributes, role, error",
    [
        ({"first_name": "given"}, "person", "role.attributes.first_name"),
        ({"email_key": "given"}, "person", "role.attributes.email_key"),
        ({"member_no": "no_such_column"}, "person", "does not bind"),
        ({"member_no": "member_no"}, "ticket", "role.attributes"),
    ],
)
def test_catalog_attributes_are_validated(tmp_path, attributes, role, error):
    """`role.attributes` may not hide a role field or a column identity derives, must bind
    against the raw table, and is accepted on person and company roles only."""
    obj = json.loads(json.dumps(REGISTRY))
    obj["role"]["attributes"] = attributes
    if role == "ticket":
        obj["role"] = {"name": "ticket", "fields": {"priority": "given", "status": "family"},
                       "attributes": attributes}  # fmt: skip
    with pytest.raises(CatalogError, match=error):
        load_catalog(_catalog(tmp_path, obj))


METHOD_CASES = [
    # method, columns, options, the two values, the level they reach
    ("exact", ["city"], {}, ("leeds", "leeds"), "Exact match on city"),
    ("name", ["first_name"], {}, ("katherine", "katharine"), "Jaro-Winkler distance of"),
    ("forename_surname", ["first_name", "last_name"], {}, (("anna", "nowak"), ("nowak", "anna")),
     "Match on reversed cols"),
    ("date_of_birth", ["date_of_birth"], {}, ("1984-03-07", "1984-07-03"), "Abs date difference"),
    ("postcode", ["postcode"], {}, ("SW1A1AA", "SW1A2BB"), "Exact match on district"),
    ("email", ["email"], {}, ("ann@a.example", "ann@b.example"), "Exact match on username"),
    ("phone", ["phone"], {}, ("00442079460958", "02079460958"), "Same last 9 digits of phone"),
    ("levenshtein", ["address"], {"thresholds": [2]}, ("12 baker st", "12 bakr st"),
     "Levenshtein distance of address <= 2"),
    ("damerau_levenshtein", ["national_id"], {"thresholds": [1]}, ("ab123456c", "ab213456c"),
     "Damerau-Levenshtein distance of national_id <= 1"),
    ("jaro_winkler", ["last_name"], {"thresholds": [0.9]}, ("kowalska", "kowalski"),
     "Jaro-Winkler distance of last_name >= 0.9"),
    ("jaro", ["last_name"], {"thresholds": [0.9]}, ("kowalska", "kowalski"),
     "Jaro distance of"),
    ("jaccard", ["address"], {"thresholds": [0.5]}, ("12 baker street", "baker street 12"),
     "Jaccard distance of"),
    ("numeric", ["age"], {"thresholds": [1, 5]}, ("41", "43"), "Abs difference of age <= 5"),
]  # fmt: skip


@pytest.mark.parametrize("method, columns, extra, values, level", METHOD_CASES)
def test_every_method_scores_through_splink(method, columns, extra, values, level):
    """Each comparison method of the rules format runs in Splink's predict on DuckDB and puts a
    pair in the level its values deserve (the evidence a reviewer reads)."""
    from dataclasses import replace

    from assets.entities.comparisons import build_comparison
    from assets.entities.rules import Scoring
    from assets.entities.scoring import score_pairs

    spec = {"name": "cmp", "method": method, **extra}
    spec |= {"column": columns[0]} if len(columns) == 1 else {"columns": columns}
    comp = build_comparison(spec, "test")
    scored = [lv for lv in comp.levels if not lv.null]
    # weights that put any pair above the review threshold: this is about levels, not weights
    comp = replace(
        comp,
        levels=tuple(lv if lv.null else replace(lv, m=0.5, u=0.5) for lv in comp.levels),
    )
    assert len(scored) >= 2
    rows = [values[0], values[1]] if len(columns) > 1 else [(values[0],), (values[1],)]
    candidates = pa.table(
        {
            "unique_id": ["a", "b"],
            **{c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(columns)},
        }
    )
    scoring = Scoring(0.99, 0.1, 0.5, ("1 = 1",), (comp,))
    pairs = score_pairs(candidates, scoring)
    assert pairs.num_rows == 1
    assert json.loads(pairs["evidence"][0].as_py())["cmp"].startswith(level)


PEOPLE_COLUMNS = ("record_key", "account_ref", "email_key", "email_domain")


def test_company_attribute_is_an_exact_key(tmp_path):
    """A company role's catalog attribute (a VAT number) is carried on company records and can
    be an exact key of accounts, written to identity_links under the key's name."""
    from assets.entities.records import company_records
    from assets.entities.resolve import link_companies

    def company(system: str, obj: str, anchor: bool) -> dict:
        return {
            "system": system,
            "object": obj,
            "description": f"{system} {obj}: companies.",
            "format": "csv",
            "id": "id",
            "columns": [{"name": c} for c in ("id", "name", "vat")],
            "role": {
                "name": "company",
                "fields": {"name": "name"},
                "attributes": {"vat_id": "replace(vat, ' ', '')"},
                **({"anchor": True} if anchor else {}),
            },
        }

    catalog = load_catalog(_catalog(tmp_path, company("erp", "customers", True),
                                    company("shop", "buyers", False)))  # fmt: skip
    spec = {
        "accounts": {
            "entity_id_prefix": "acc_",
            "keys": [{"name": "vat_id", "columns": ["vat_id"], "confidence": 0.99}],
            "scoring": {"merge": 0.99, "review": 0.9, "blocking": [], "comparisons": []},
        }
    }
    rules = load_rules(_write(tmp_path, spec), catalog)
    con = connect()
    create_macros(con, rules.normalize)
    cols = ("name", "vat")
    con.register(
        "v_raw__erp_customers",
        _raw([{"id": "1", "name": "Acme GmbH", "vat": "DE 123 456 789"},
              {"id": "2", "name": "Other AG", "vat": "DE999"}], cols),
    )  # fmt: skip
    con.register(
        "v_raw__shop_buyers", _raw([{"id": "b", "name": "ACME", "vat": "de123456789"}], cols)
    )
    recs = company_records(con, rules.accounts, {"raw/erp_customers", "raw/shop_buyers"})
    assert _by_key(recs)["shop/buyers:b"]["vat_id"] == "de123456789"
    no_people = pa.table({c: pa.array([], pa.string()) for c in PEOPLE_COLUMNS})
    lk, _ = link_companies(recs, no_people, rules, [])
    c = _clusters(lk)
    assert c["shop/buyers:b"] == c["erp/customers:1"] != c["erp/customers:2"]
    assert lk.rule[lk.index["shop/buyers:b"]] == "vat_id"
