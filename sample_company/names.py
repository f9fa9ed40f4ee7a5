"""Word lists and the string variants real systems produce (names, websites, emails)."""

from __future__ import annotations

import numpy as np


def _words(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(text.split()))  # unique, in order


PREFIXES = _words(
    "North Blue Clear Bright Iron Silver Golden Red Green Stone Oak Pine Cedar Maple River Lake "
    "Sun Moon Star Sky Cloud Storm Frost Snow Rain Wind Fire Ember Ash Elm Birch Willow Harbor "
    "Bay Cliff Ridge Summit Valley Meadow Prairie Canyon Mesa Delta Coral Amber Jade Onyx Cobalt "
    "Crimson Indigo Violet Scarlet Azure Copper Bronze Granite Marble Quartz Falcon Hawk Eagle "
    "Raven Wolf Fox Bear Lynx Otter Heron Swift True Bold Prime Open Keen Wise Fair Swift High "
    "Deep Far Long Wide Still Quiet Brave Noble Grand Royal Metro Urban Civic Polar Lunar Solar "
    "Nova Vertex Apex Zenith Orbit Vector Pixel Signal Beacon Anchor Compass Harbor Lantern"
)
STEMS = _words(
    "wind peak path field stone gate bridge works point line ledger wave light brook crest forge "
    "haven mark mill port post row shore side spring star ton vale view water well wood yard "
    "scale shift sight track trust core base bay cast craft data flow grid hub link loop net "
    "rock root sail span stack vault wall ward way"
)
NOUNS_BY_INDUSTRY = {
    "fintech": ("Capital", "Payments", "Finance", "Ledger", "Pay", "Money", "Credit", "Markets"),
    "healthtech": ("Health", "Care", "Medical", "Bio", "Clinics", "Therapeutics", "Diagnostics"),
    "legaltech": ("Legal", "Law", "Counsel", "Contracts", "Compliance", "Claims"),
    "proptech": ("Realty", "Properties", "Homes", "Estates", "Spaces", "Living", "Rentals"),
    "saas": ("Analytics", "Labs", "Systems", "Software", "Cloud", "Technologies", "Data", "AI"),
}
INDUSTRIES = tuple(NOUNS_BY_INDUSTRY)
COUNTRIES = ("US", "US", "US", "US", "GB", "DE", "CA", "FR", "NL", "AU", "SG", "IN")
TZ_OFFSET = {"US": -6, "CA": -5, "GB": 0, "DE": 1, "FR": 1, "NL": 1, "AU": 10, "SG": 8, "IN": 5}
LEGAL_FORM = {"DE": "GmbH", "GB": "Ltd", "FR": "SAS", "NL": "B.V.", "AU": "Pty Ltd"}

FIRST_NAMES = _words(
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Nancy Daniel Lisa "
    "Matthew Betty Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew "
    "Donna Joshua Michelle Kenneth Dorothy Kevin Carol Brian Amanda George Melissa Edward "
    "Deborah Ronald Stephanie Timothy Rebecca Jason Sharon Jeffrey Laura Ryan Cynthia Jacob "
    "Kathleen Gary Amy Nicholas Shirley Eric Angela Jonathan Helen Stephen Anna Larry Brenda "
    "Justin Pamela Scott Nicole Brandon Emma Benjamin Samantha Samuel Katherine Gregory "
    "Christine Frank Debra Alexander Rachel Raymond Catherine Patrick Carolyn Jack Janet Dennis "
    "Ruth Jerry Maria Tyler Heather Aaron Diane Jose Virginia Adam Julie Henry Joyce Nathan "
    "Victoria Douglas Olivia Zachary Kelly Peter Christina Kyle Lauren Priya Wei Mohammed Yuki "
    "Lars Ingrid Sofia Lucas Mateo Chloe Hannah Felix Aisha Omar Fatima Ravi Ananya Kenji Mei "
    "Noah Liam Elena Marco Giulia Pierre Camille Jan Anke Sven Freya Arjun Leila Diego Lucia"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White "
    "Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres "
    "Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts "
    "Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales "
    "Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos "
    "Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes "
    "Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry "
    "Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez Simmons "
    "Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West "
    "Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro "
    "Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry "
    "Chen Wang Zhang Liu Singh Kumar Shah Tanaka Sato Suzuki Muller Schmidt Schneider Fischer "
    "Weber Meyer Wagner Becker Dubois Laurent Bernard Moreau Jansen DeVries Bakker Visser Rossi "
    "Russo Ferrari Esposito Bianchi Novak Kowalski Nowak Larsen Hansen Nielsen Andersen Berg"
)
NICKNAMES = {
    "William": "Bill",
    "Robert": "Bob",
    "Elizabeth": "Liz",
    "Katherine": "Kate",
    "Michael": "Mike",
    "James": "Jim",
    "Jennifer": "Jen",
    "Christopher": "Chris",
    "Matthew": "Matt",
    "Nicholas": "Nick",
    "Samantha": "Sam",
    "Alexander": "Alex",
    "Jonathan": "Jon",
    "Daniel": "Dan",
    "Stephanie": "Steph",
}
COMMON_NAMES = (("John", "Smith"), ("Maria", "Garcia"), ("David", "Lee"), ("Sarah", "Johnson"))
PERSONAL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me")
TITLES = {
    "champion": (
        "VP Compliance",
        "Head of Risk & Compliance",
        "Chief Compliance Officer",
        "Director of GRC",
        "Head of Security",
    ),
    "admin": ("IT Administrator", "Compliance Operations Manager", "Systems Administrator"),
    "billing_owner": ("Finance Manager", "Controller", "Accounts Payable Lead", "CFO"),
    "end_user": ("Compliance Analyst", "Risk Analyst", "Internal Auditor", "Security Engineer"),
}
LEFT_TITLE = "No longer at company"
SALES_REPS = (
    "Avery Collins",
    "Jordan Blake",
    "Morgan Reyes",
    "Taylor Brooks",
    "Casey Nguyen",
    "Riley Park",
    "Quinn Harper",
    "Drew Patel",
    "Jamie Fischer",
    "Skyler Moss",
    "Rowan Hayes",
    "Emerson Cole",
)
LEAD_SOURCES = ("Web", "Referral", "Partner", "Event", "Outbound", "Webinar")
CONSULTANCY = ("Ledgerline Advisory", "ledgerline-advisory.com")
SHARED_PERSONAL_INBOX = "accounts.payable.desk@gmail.com"


def company_names(rng: np.random.Generator, industries: np.ndarray) -> tuple[list[str], list[str]]:
    """Unique (name, domain) per account: `Northwind Analytics`, `northwind-analytics.com`."""
    names: list[str] = []
    domains: list[str] = []
    seen: set[str] = set()
    tlds = ("com",) * 8 + ("io", "co")
    for ind in industries:
        nouns = NOUNS_BY_INDUSTRY[str(ind)]
        while True:
            first = PREFIXES[rng.integers(len(PREFIXES))] + STEMS[rng.integers(len(STEMS))]
            noun = nouns[rng.integers(len(nouns))]
            key = f"{first}-{noun}".lower()
            if key not in seen and first.lower() != CONSULTANCY[1].split("-")[0]:
                seen.add(key)
                break
        names.append(f"{first} {noun}")
        domains.append(f"{key}.{tlds[rng.integers(len(tlds))]}")
    return names, domains


def name_variant(rng: np.random.Generator, name: str, country: str, share: float) -> str:
    """`Northwind Analytics` as another system spells it (or unchanged)."""
    if rng.random() >= share:
        return name
    form = LEGAL_FORM.get(country, "Inc")
    k = int(rng.integers(6))
    if k == 0:
        return f"{name.upper()} {form.upper()}."
    if k == 1:
        return f"{name}, {form}"
    if k == 2:
        return f"{name.lower()} {'ltd' if form == 'Inc' else form.lower()}"
    if k == 3:
        return f"{name} {form}"
    if k == 4:
        return name.upper()
    return f"{name} {form}."


def website_variant(rng: np.random.Generator, domain: str, null_share: float) -> str | None:
    u = rng.random()
    if u < null_share:
        return None
    k = int(rng.integers(5))
    return (
        f"https://www.{domain}/",
        domain,
        f"http://{domain}",
        f"www.{domain}",
        f"https://{domain}",
    )[k]


def email_variant(rng: np.random.Generator, email: str, recase: float, space: float) -> str:
    """The same address as another system stores it: re-cased, padded with blanks."""
    out = email
    if rng.random() < recase:
        local, _, dom = out.partition("@")
        if rng.random() < 0.2:
            out = out.upper()
        else:
            local = ".".join(p[:1].upper() + p[1:] for p in local.split("."))
            dom = "-".join(p[:1].upper() + p[1:] for p in dom.split("-"))
            out = f"{local}@{dom}"
    if rng.random() < space:
        out = (" " + out) if rng.random() < 0.5 else (out + " ")
    return out


def slug(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


def work_email(first: str, last: str, domain: str, style: str) -> str:
    f, la = slug(first), slug(last)
    if style == "flast":
        return f"{f[:1]}{la}@{domain}"
    if style == "first":
        return f"{f}@{domain}"
    return f"{f}.{la}@{domain}"


def personal_email(rng: np.random.Generator, first: str, last: str) -> str:
    """A plain personal address: `johnsmith@gmail.com`, `john.smith84@outlook.com`."""
    f, la = slug(first), slug(last)
    dom = PERSONAL_DOMAINS[rng.integers(len(PERSONAL_DOMAINS))]
    k = int(rng.integers(3))
    local = (f"{f}{la}", f"{f}.{la}{rng.integers(70, 99)}", f"{f[:1]}{la}{rng.integers(1, 99)}")[k]
    return f"{local}@{dom}"


def personal_alias(rng: np.random.Generator, email: str) -> str:
    """The same mailbox as a product signs it up: gmail dots or a `+tag`."""
    local, _, dom = email.partition("@")
    if dom == "gmail.com" and rng.random() < 0.5 and len(local) > 3:
        i = int(rng.integers(1, len(local) - 1))
        if "." not in (local[i - 1], local[i]):
            return f"{local[:i]}.{local[i:]}@{dom}"
    tag = ("work", "saas", "compliance", "trial")[rng.integers(4)]
    return f"{local}+{tag}@{dom}"
