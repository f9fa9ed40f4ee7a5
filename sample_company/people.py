"""A person-only world with planted truth: the same people as a population registry and a
clinic's patient system hold them (no emails, no companies).

    python -m sample_company.people OUT [--persons 2000] [--days 60] [--seed 7]
        [--end-date 2026-10-31] [--write-through YYYY-MM-DD] [--clean] [--quiet]

Households share an address (and, in families, a last name); twins share their date of birth
too. The registry (`registry/residents`, daily CSV) holds most people once, with clean fields
and a national id; the clinic (`clinic/patients`, daily JSONL) holds many of them, some twice
(a patient registered again), typed at a front desk: typos, nicknames, swapped first and last
names, a full name as `LAST, First`, dates as DD/MM/YYYY with day and month sometimes swapped,
postcodes without their space, national ids often missing and occasionally mistyped. People
move: a registry record gets a new version with the new address; clinic records made before
the move keep the old one. What is planted, and how often, is `PeopleConfig` (recorded in the
manifest), never tuned to a matcher.

Files are written as the sample company's are (sample_company/generate.py): one extract per
day with records, the first holding everything before the window; `--write-through D` writes
only extract dates up to D and never rewrites a file, so a later run adds the newer days. The
truth (`<out>/_truth/`: source_records.csv in the format assets/entities/evaluate.py reads,
people.csv, manifest.json) describes the whole horizon.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import shutil
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sample_company.generate import DEFAULT_END_DATE, TRUTH_DIR, _atomic_write
from sample_company.names import FIRST_NAMES, LAST_NAMES, NICKNAMES
from sample_company.timeutil import DAY, date_of, day_of, iso_date

VERSION = "1"
STACK = "people"
REGISTRY = ("registry", "residents", "residents.csv")
CLINIC = ("clinic", "patients", "patients.jsonl")
# Nicknames the names module lacks (its list is the sample company's men-heavy one).
MORE_NICKNAMES = {
    "Margaret": "Maggie",
    "Patricia": "Pat",
    "Rebecca": "Becky",
    "Susan": "Sue",
    "Victoria": "Vicky",
    "Thomas": "Tom",
    "Joseph": "Joe",
    "Richard": "Rick",
    "Anthony": "Tony",
    "Benjamin": "Ben",
    "Edward": "Ed",
    "Kimberly": "Kim",
    "Deborah": "Debbie",
}
STREETS = (
    "High",
    "Church",
    "Station",
    "Mill",
    "Park",
    "Victoria",
    "Green",
    "Manor",
    "Kings",
    "Queens",
    "New",
    "School",
    "North",
    "South",
    "Elm",
    "Oak",
    "Chapel",
    "Bridge",
    "Market",
    "Castle",
)
STREET_KINDS = (("Street", "St"), ("Road", "Rd"), ("Lane", "Ln"), ("Avenue", "Ave"))
CITIES = (
    ("Leeds", "LS"),
    ("York", "YO"),
    ("Bristol", "BS"),
    ("Norwich", "NR"),
    ("Exeter", "EX"),
    ("Bath", "BA"),
    ("Derby", "DE"),
    ("Oxford", "OX"),
    ("Cardiff", "CF"),
    ("Reading", "RG"),
)


@dataclass(frozen=True)
class PeopleConfig:
    """What is planted, as shares of records (or of people, households)."""

    registry_coverage: float = 0.9  # people the registry holds
    clinic_coverage: float = 0.7  # people the clinic holds
    clinic_duplicate: float = 0.08  # clinic patients registered a second time
    single_households: float = 0.45  # households of one; others: couples and families
    family_shares_last_name: float = 0.85  # a couple/family under one last name
    twins: float = 0.15  # families with two or more children that have twins
    moved: float = 0.05  # people who move during the window
    registry_national_id_missing: float = 0.03
    registry_phone_missing: float = 0.4
    registry_typo: float = 0.01  # a name mistyped in the registry
    clinic_typo: float = 0.05  # a name mistyped at the front desk (first or last)
    clinic_nickname: float = 0.06  # first name given as its nickname (when it has one)
    clinic_swapped_names: float = 0.02  # first and last name entered the other way round
    clinic_last_comma_first: float = 0.25  # full name written `LAST, First`
    clinic_first_missing: float = 0.01
    clinic_dob_missing: float = 0.03
    clinic_dob_day_month_swapped: float = 0.03  # when the day is 12 or less
    clinic_national_id_missing: float = 0.45
    clinic_national_id_typo: float = 0.02
    clinic_postcode_unspaced: float = 0.3
    clinic_phone_missing: float = 0.3
    clinic_sex_missing: float = 0.05
    history_days: int = 720  # how far before the window records begin


DEFAULT = PeopleConfig()


@dataclass
class Person:
    key: str
    first: str
    last: str
    sex: str
    dob: dt.date
    national_id: str
    phone: str
    household: int
    twin_of: str | None = None
    addresses: list[tuple[int, tuple[str, str, str]]] = field(default_factory=list)

    def address_on(self, day: int) -> tuple[str, str, str]:
        current = self.addresses[0][1]
        for since, addr in self.addresses:
            if since <= day:
                current = addr
        return current


@dataclass
class Summary:
    out: str
    persons: int
    days: int
    seed: int
    start_date: str
    end_date: str
    write_through: str | None
    files_written: int = 0
    files_skipped: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        rows = " ".join(f"{k}={v}" for k, v in self.rows.items())
        return (
            f"sample_company.people: {self.files_written} files written ({self.files_skipped} "
            f"existing kept), {self.persons} persons x {self.days} days {self.start_date}.."
            f"{self.end_date}, seed {self.seed}, {self.seconds:.1f}s; rows: {rows}"
        )


# -- the world ---------------------------------------------------------------------------------


def _address(rng: np.random.Generator) -> tuple[str, str, str]:
    street = f"{int(rng.integers(1, 240))} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)[0]}"
    city, area = CITIES[int(rng.integers(len(CITIES)))]
    letters = "ABDEFGHJLNPQRSTUWXYZ"
    postcode = (
        f"{area}{int(rng.integers(1, 30))} {int(rng.integers(1, 10))}"
        f"{letters[int(rng.integers(len(letters)))]}{letters[int(rng.integers(len(letters)))]}"
    )
    return street, postcode, city


def _dob(rng: np.random.Generator, lo_age: int, hi_age: int, today: int) -> dt.date:
    return date_of(today - int(rng.integers(lo_age * 365, hi_age * 365 + 1)))


def simulate_people(rng: np.random.Generator, n: int, cfg: PeopleConfig, end: int) -> list[Person]:
    """`n` people in households: singles, couples, families (children share the last name
    and the address; some are twins with one date of birth)."""
    people: list[Person] = []
    used_ids: set[str] = set()

    def national_id() -> str:
        while True:
            v = f"{int(rng.integers(100_000_000, 1_000_000_000))}"
            if v not in used_ids:
                used_ids.add(v)
                return v

    def person(first: str, last: str, sex: str, dob: dt.date, hh: int, addr) -> Person:
        p = Person(
            key=f"P{len(people) + 1:07d}",
            first=first,
            last=last,
            sex=sex,
            dob=dob,
            national_id=national_id(),
            phone=f"07{int(rng.integers(100, 1000))} {int(rng.integers(100_000, 1_000_000))}",
            household=hh,
            addresses=[(-(10**9), addr)],
        )
        people.append(p)
        return p

    firsts = np.array(FIRST_NAMES)
    hh = 0
    while len(people) < n:
        hh += 1
        addr = _address(rng)
        last = str(rng.choice(LAST_NAMES))
        if rng.random() < cfg.single_households:
            sex = str(rng.choice(["F", "M"]))
            person(str(rng.choice(firsts)), last, sex, _dob(rng, 18, 90, end), hh, addr)
            continue
        taken: set[str] = set()

        def new_first(taken: set[str] = taken) -> str:
            """A first name no one else in the household has (siblings, twins included)."""
            while True:
                f = str(rng.choice(firsts))
                if f not in taken:
                    taken.add(f)
                    return f

        a = person(new_first(), last, "F", _dob(rng, 24, 70, end), hh, addr)
        other_last = last if rng.random() < cfg.family_shares_last_name else None
        person(
            new_first(),
            other_last or str(rng.choice(LAST_NAMES)),
            "M",
            _dob(rng, 24, 70, end),
            hh,
            addr,
        )
        kids = int(rng.choice([0, 1, 2, 3], p=[0.3, 0.3, 0.3, 0.1]))
        parent_age = (end - day_of(a.dob)) // 365
        k = 0
        twins = kids >= 2 and rng.random() < cfg.twins
        while k < kids and len(people) < n:
            dob = _dob(rng, 0, max(1, min(30, parent_age - 20)), end)
            kid = person(new_first(), last, str(rng.choice(["F", "M"])), dob, hh, addr)
            k += 1
            if twins and k == 1 and len(people) < n:
                twin = person(new_first(), last, str(rng.choice(["F", "M"])), dob, hh, addr)
                twin.twin_of, kid.twin_of = kid.key, twin.key
                k += 1
    return people[:n]


# -- noise -------------------------------------------------------------------------------------


def typo(rng: np.random.Generator, s: str) -> str:
    """One keying error: a letter dropped, doubled, swapped with its neighbour or replaced."""
    if len(s) < 3:
        return s
    i = int(rng.integers(1, len(s) - 1))
    kind = int(rng.integers(4))
    if kind == 0:
        return s[:i] + s[i + 1 :]
    if kind == 1:
        return s[:i] + s[i] + s[i:]
    if kind == 2:
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    letter = "abcdefghijklmnopqrstuvwxyz"[int(rng.integers(26))]
    return s[:i] + letter + s[i + 1 :]


def _digit_typo(rng: np.random.Generator, s: str) -> str:
    i = int(rng.integers(len(s)))
    d = str((int(s[i]) + int(rng.integers(1, 10))) % 10)
    return s[:i] + d + s[i + 1 :]


def _nickname(first: str) -> str | None:
    return NICKNAMES.get(first) or MORE_NICKNAMES.get(first)


# -- records -----------------------------------------------------------------------------------


@dataclass
class Record:
    system: str
    obj: str
    source_id: str
    person: str
    day: int  # the extract day of this version
    row: dict


def _stamp(rng: np.random.Generator, day: int) -> str:
    s = day * DAY + int(rng.integers(8 * 3600, 18 * 3600))
    return dt.datetime.fromtimestamp(s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _registered(
    rng: np.random.Generator, p: Person, cfg: PeopleConfig, start: int, end: int
) -> int:
    """A day a record of `p` is made: in the history or the window, never before birth."""
    first = max(start - cfg.history_days, day_of(p.dob))
    return int(rng.integers(first, end + 1))


def registry_records(
    rng: np.random.Generator, people: list[Person], cfg: PeopleConfig, start: int, end: int
) -> list[Record]:
    out = []
    for p in people:
        if rng.random() >= cfg.registry_coverage:
            continue
        rid = f"R{int(rng.integers(10**7, 10**8))}"
        created = _registered(rng, p, cfg, start, end)
        first, last = p.first, p.last
        if rng.random() < cfg.registry_typo:
            if rng.random() < 0.5:
                first = typo(rng, first)
            else:
                last = typo(rng, last)
        nid = None if rng.random() < cfg.registry_national_id_missing else p.national_id
        phone = None if rng.random() < cfg.registry_phone_missing else p.phone
        stamp = _stamp(rng, created)
        days = sorted({created, *(d for d, _ in p.addresses[1:] if created < d <= end)})
        for day in days:
            street, postcode, city = p.address_on(day)
            row = {
                "resident_id": rid,
                "given_name": first,
                "family_name": last,
                "birth_date": p.dob.isoformat(),
                "sex": p.sex,
                "street": street,
                "postcode": postcode,
                "city": city,
                "national_id": nid,
                "phone": phone,
                "registered_at": stamp,
                "updated_at": _stamp(rng, day) if day != created else stamp,
            }
            out.append(Record(*REGISTRY[:2], rid, p.key, day, row))
    return out


def _clinic_row(rng: np.random.Generator, p: Person, cfg: PeopleConfig, day: int) -> dict:
    first, last = p.first, p.last
    if rng.random() < cfg.clinic_nickname and _nickname(first):
        first = _nickname(first)
    if rng.random() < cfg.clinic_typo:
        if rng.random() < 0.5:
            first = typo(rng, first)
        else:
            last = typo(rng, last)
    if rng.random() < cfg.clinic_first_missing:
        first = ""
    if rng.random() < cfg.clinic_swapped_names:
        first, last = last, first
    if first and rng.random() < cfg.clinic_last_comma_first:
        name = f"{last.upper()}, {first}"
    else:
        name = f"{first} {last}".strip()
    d = p.dob
    dob: str | None = d.strftime("%d/%m/%Y")
    if d.day <= 12 and d.day != d.month and rng.random() < cfg.clinic_dob_day_month_swapped:
        dob = f"{d.month:02d}/{d.day:02d}/{d.year}"
    if rng.random() < cfg.clinic_dob_missing:
        dob = None
    nid: str | None = p.national_id
    if rng.random() < cfg.clinic_national_id_typo:
        nid = _digit_typo(rng, nid)
    if rng.random() < cfg.clinic_national_id_missing:
        nid = None
    if nid is not None:
        nid = f"{nid[:3]} {nid[3:6]} {nid[6:]}"
    street, postcode, city = p.address_on(day)
    for full, short in STREET_KINDS:
        if street.endswith(full) and rng.random() < 0.5:
            street = street[: -len(full)] + short
    if rng.random() < cfg.clinic_postcode_unspaced:
        postcode = postcode.replace(" ", "").lower()
    phone = None if rng.random() < cfg.clinic_phone_missing else "+44 " + p.phone[1:]
    sex = None if rng.random() < cfg.clinic_sex_missing else {"F": "female", "M": "male"}[p.sex]
    stamp = _stamp(rng, day)
    return {
        "name": name,
        "dob": dob,
        "sex": sex,
        "address": {"line1": street, "town": city, "postal_code": postcode},
        "nhs_number": nid,
        "mobile": phone,
        "created_at": stamp,
        "updated_at": stamp,
    }


def clinic_records(
    rng: np.random.Generator, people: list[Person], cfg: PeopleConfig, start: int, end: int
) -> list[Record]:
    out = []
    for p in people:
        if rng.random() >= cfg.clinic_coverage:
            continue
        n = 2 if rng.random() < cfg.clinic_duplicate else 1
        for _ in range(n):
            pid = f"PT-{int(rng.integers(16**7, 16**8)):08x}"
            day = _registered(rng, p, cfg, start, end)
            row = {"patient_id": pid, **_clinic_row(rng, p, cfg, day)}
            out.append(Record(*CLINIC[:2], pid, p.key, day, row))
    return out


# -- files -------------------------------------------------------------------------------------


def _csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()


def _write(
    out: Path,
    records: list[Record],
    target: tuple[str, str, str],
    render,
    start: int,
    through: int | None,
    summary: Summary,
) -> None:
    """One file per extract day with records; versions before the window in the first."""
    by_day: dict[int, list[dict]] = {}
    for r in sorted(records, key=lambda r: (r.day, r.source_id)):
        by_day.setdefault(max(r.day, start), []).append(r.row)
    system, obj, name = target
    for day, rows in sorted(by_day.items()):
        if through is not None and day > through:
            continue
        path = out / system / obj / iso_date(day) / name
        if path.exists():
            summary.files_skipped += 1
            continue
        _atomic_write(path, render(rows))
        summary.files_written += 1
        summary.rows[f"{system}/{obj}"] = summary.rows.get(f"{system}/{obj}", 0) + len(rows)


def generate_people(
    out: Path | str,
    persons: int = 2000,
    days: int = 60,
    seed: int = 7,
    end_date: dt.date | str = DEFAULT_END_DATE,
    write_through: dt.date | str | None = None,
    config: PeopleConfig = DEFAULT,
) -> Summary:
    """Simulate `persons` people and write the registry's and the clinic's extracts of the
    `days` days ending at `end_date` (up to `write_through`), and the truth."""
    started = time.perf_counter()
    out = Path(out)
    if isinstance(end_date, str):
        end_date = dt.date.fromisoformat(end_date)
    if isinstance(write_through, str):
        write_through = dt.date.fromisoformat(write_through)
    if persons < 2 or days < 1:
        raise ValueError("need at least 2 persons and 1 day")
    end = day_of(end_date)
    start = end - days + 1
    through = None if write_through is None else day_of(write_through)
    summary = Summary(
        str(out),
        persons,
        days,
        seed,
        iso_date(start),
        iso_date(end),
        None if write_through is None else write_through.isoformat(),
    )

    def rng(part: bytes) -> np.random.Generator:
        return np.random.default_rng([seed, zlib.crc32(part)])

    people = simulate_people(rng(b"people"), persons, config, end)
    moves = rng(b"moves")
    for p in people:
        if moves.random() < config.moved:
            p.addresses.append((int(moves.integers(start, end + 1)), _address(moves)))
    registry = registry_records(rng(b"registry"), people, config, start, end)
    clinic = clinic_records(rng(b"clinic"), people, config, start, end)
    _write(out, registry, REGISTRY, _csv, start, through, summary)
    _write(out, clinic, CLINIC, _jsonl, start, through, summary)
    _write_truth(out, people, registry + clinic, summary, config)
    summary.seconds = time.perf_counter() - started
    return summary


def _write_truth(
    out: Path, people: list[Person], records: list[Record], summary: Summary, cfg: PeopleConfig
) -> None:
    truth = out / TRUTH_DIR
    seen: dict[tuple[str, str, str], str] = {}
    for r in records:
        seen[(r.system, r.obj, r.source_id)] = r.person
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["system", "object", "source_id", "account_key", "person_key"])
    for (system, obj, sid), person in sorted(seen.items()):
        w.writerow([system, obj, sid, "", person])
    _atomic_write(truth / "source_records.csv", buf.getvalue().encode())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "person_key",
            "first_name",
            "last_name",
            "sex",
            "date_of_birth",
            "household",
            "twin_of",
            "moved_on",
        ]
    )
    for p in people:
        moved = iso_date(p.addresses[-1][0]) if len(p.addresses) > 1 else ""
        w.writerow(
            [p.key, p.first, p.last, p.sex, p.dob.isoformat(), p.household, p.twin_of or "", moved]
        )
    _atomic_write(truth / "people.csv", buf.getvalue().encode())
    households = {p.household for p in people}
    manifest = {
        "generator": "sample_company.people",
        "version": VERSION,
        "stack": STACK,
        "args": {
            "persons": summary.persons,
            "days": summary.days,
            "seed": summary.seed,
            "end_date": summary.end_date,
        },
        "window": {"start": summary.start_date, "end": summary.end_date},
        "counts": {
            "people": len(people),
            "households": len(households),
            "twins": sum(p.twin_of is not None for p in people),
            "moved": sum(len(p.addresses) > 1 for p in people),
            "source_records": len(seen),
            "record_versions": {
                f"{s}/{o}": sum(r.system == s for r in records) for s, o, _ in (REGISTRY, CLINIC)
            },
        },
        "config": asdict(cfg),
    }
    _atomic_write(truth / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())


# -- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m sample_company.people", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("out", type=Path, help="landing root, e.g. lake/stacks/people/landing")
    ap.add_argument("--persons", type=int, default=2000, help="people in the world (2000)")
    ap.add_argument("--days", type=int, default=60, help="days in the window (60)")
    ap.add_argument("--seed", type=int, default=7, help="random seed (7)")
    ap.add_argument("--end-date", type=dt.date.fromisoformat, default=DEFAULT_END_DATE)
    ap.add_argument(
        "--write-through",
        type=dt.date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="write only extract dates up to this day",
    )
    ap.add_argument("--clean", action="store_true", help="remove the output folder first")
    ap.add_argument("--quiet", action="store_true", help="no summary line")
    args = ap.parse_args(argv)
    if args.clean and args.out.exists():
        resolved = args.out.resolve()
        if len(resolved.parts) < 3 or resolved == Path.home():
            print(f"refusing to remove {resolved}", file=sys.stderr)
            return 2
        shutil.rmtree(resolved)
    summary = generate_people(
        args.out, args.persons, args.days, args.seed, args.end_date, args.write_through
    )
    if not args.quiet:
        print(summary.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
