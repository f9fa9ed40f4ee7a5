"""Scored comparisons as the rules file writes them, built by Splink's comparison library.

A comparison names a `method` (exact, name, date_of_birth, postcode, email, phone, levenshtein, ...)
over a record column, with optional `thresholds` and method `options`; Splink's
`comparison_library` makes its levels (`create_comparison_dict("duckdb")`), so levels, labels
and SQL are the library's, not re-implemented here. The hand-written form (`levels:` with sql)
stays valid for what no method says. m/u per level are optional: learned weights come from the
weights file; inline values, when given, must cover every non-null level.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LINK_TYPES = ("dedupe_only", "link_only", "link_and_dedupe")


@dataclass(frozen=True)
class Level:
    label: str
    sql: str | None = None
    m: float | None = None
    u: float | None = None
    null: bool = False
    # Splink's term-frequency adjustment of the level: (column, weight)
    tf: tuple[str, float] | None = None


@dataclass(frozen=True)
class Comparison:
    name: str
    levels: tuple[Level, ...]
    columns: tuple[str, ...] = ()  # the record columns it reads
    method: str | None = None  # None: hand-written levels

    def splink(self) -> dict[str, Any]:
        levels = sorted(self.levels, key=lambda lv: not lv.null)  # null levels first
        out = []
        for lv in levels:
            level: dict[str, Any] = {"sql_condition": lv.sql, "label_for_charts": lv.label}
            if lv.null:
                level["is_null_level"] = True
            else:
                if lv.m is not None:
                    level["m_probability"] = lv.m
                if lv.u is not None:
                    level["u_probability"] = lv.u
            if lv.tf:
                level["tf_adjustment_column"], level["tf_adjustment_weight"] = lv.tf
            out.append(level)
        return {"output_column_name": self.name, "comparison_levels": out}

    @property
    def weighted(self) -> bool:
        """Every non-null level carries m and u."""
        return all(lv.m is not None and lv.u is not None for lv in self.levels if not lv.null)


def _cl():
    import splink.comparison_library as cl  # imported when a rules file names a method

    return cl


def _at_thresholds(cls: str) -> Callable[..., Any]:
    def make(cols: list[str], thresholds: list | None, options: dict) -> Any:
        args = [thresholds] if thresholds is not None else []
        return getattr(_cl(), cls)(cols[0], *args, **options)

    return make


def _keyword(cls: str, keyword: str | None, **fixed: Any) -> Callable[..., Any]:
    def make(cols: list[str], thresholds: list | None, options: dict) -> Any:
        if thresholds is not None:
            if keyword is None:
                raise ValueError(f"method takes no thresholds ({cls} has fixed levels)")
            options = {keyword: thresholds, **options}
        return getattr(_cl(), cls)(*cols, **{**fixed, **options})

    return make


def _numeric(cols: list[str], thresholds: list | None, options: dict) -> Any:
    """Exact, then absolute differences at thresholds, on a column read as a number."""
    from splink import comparison_level_library as cll

    if options:
        raise ValueError(f"method numeric takes no options (got {sorted(options)})")
    c = cols[0]
    num = 'try_cast("{c}_{s}" AS DOUBLE)'
    left, right = num.format(c=c, s="l"), num.format(c=c, s="r")
    levels = [
        cll.CustomLevel(f"{left} IS NULL OR {right} IS NULL", f"{c} is NULL").configure(
            is_null_level=True
        ),
        cll.CustomLevel(f"{left} = {right}", f"Exact match on {c}"),
        *(
            cll.CustomLevel(f"abs({left} - {right}) <= {t}", f"Abs difference of {c} <= {t}")
            for t in (thresholds or [])
        ),
        cll.ElseLevel(),
    ]
    return _cl().CustomComparison(levels, output_column_name=c)


def _phone(cols: list[str], thresholds: list | None, options: dict) -> Any:
    """Digits-only numbers (records.py): exact, then the same national number (the last
    `digits`, default 9: a country code or trunk prefix written or not), then one digit off
    (Damerau-Levenshtein 1: a typo or two swapped digits)."""
    from splink import comparison_level_library as cll

    if thresholds is not None:
        raise ValueError("method phone takes no thresholds (options: {digits: n})")
    digits = int(options.pop("digits", 9))
    if options:
        raise ValueError(f"method phone takes only the option digits (got {sorted(options)})")
    c = cols[0]
    national = f'right("{c}_l", {digits}) = right("{c}_r", {digits})'
    return _cl().CustomComparison(
        [
            cll.NullLevel(c),
            cll.ExactMatchLevel(c),
            cll.CustomLevel(
                f'least(length("{c}_l"), length("{c}_r")) >= {digits} AND {national}',
                f"Same last {digits} digits of {c}",
            ),
            cll.DamerauLevenshteinLevel(c, 1),
            cll.ElseLevel(),
        ],
        output_column_name=c,
    )


# method -> (how many columns it reads, how Splink builds it)
METHODS: dict[str, tuple[int, Callable[..., Any]]] = {
    "exact": (1, _keyword("ExactMatch", None)),
    "name": (1, _keyword("NameComparison", "jaro_winkler_thresholds")),
    "forename_surname": (2, _keyword("ForenameSurnameComparison", "jaro_winkler_thresholds")),
    "date_of_birth": (
        1,
        _keyword(
            "DateOfBirthComparison",
            "datetime_thresholds",
            input_is_string=True,  # records carry dates as YYYY-MM-DD text
            datetime_format="%Y-%m-%d",
        ),
    ),
    "postcode": (1, _keyword("PostcodeComparison", "km_thresholds")),
    "email": (1, _keyword("EmailComparison", None)),
    "phone": (1, _phone),
    "levenshtein": (1, _at_thresholds("LevenshteinAtThresholds")),
    "damerau_levenshtein": (1, _at_thresholds("DamerauLevenshteinAtThresholds")),
    "jaro_winkler": (1, _at_thresholds("JaroWinklerAtThresholds")),
    "jaro": (1, _at_thresholds("JaroAtThresholds")),
    "jaccard": (1, _at_thresholds("JaccardAtThresholds")),
    "numeric": (1, _numeric),
}
COMPARISON_KEYS = ("name", "method", "column", "columns", "thresholds", "options", "m", "u")
LEVEL_KEYS = ("label", "sql", "m", "u", "is_null")
_LEVEL_COLUMN = re.compile(r'\b([A-Za-z_][A-Za-z0-9_]*?)_[lr]\b"?')


def build_comparison(spec: dict[str, Any], at: str) -> Comparison:
    """One comparison of the rules file (`at` names it in errors)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ValueError(f"{at}: a comparison is a mapping with a `name`")
    if "levels" in spec:
        return _hand_written(spec, at)
    unknown = sorted(set(spec) - set(COMPARISON_KEYS))
    if unknown:
        raise ValueError(f"{at}: unknown key {unknown[0]!r} (known: {', '.join(COMPARISON_KEYS)})")
    method = spec.get("method")
    if method not in METHODS:
        raise ValueError(f"{at}: unknown method {method!r} (known: {', '.join(METHODS)})")
    n, make = METHODS[method]
    cols = spec.get("columns") or ([spec["column"]] if spec.get("column") else [])
    if len(cols) != n or not all(isinstance(c, str) for c in cols):
        want = "`column`" if n == 1 else f"`columns` ({n} names)"
        raise ValueError(f"{at}: method {method} compares {want}")
    thresholds = spec.get("thresholds")
    options = spec.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError(f"{at}: options must be a mapping of keyword -> value")
    try:
        creator = make(list(cols), thresholds, dict(options))
        built = creator.create_comparison_dict("duckdb")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{at}: method {method}: {exc}") from exc
    levels = [_from_splink(lv) for lv in built["comparison_levels"]]
    levels = _with_weights(levels, spec.get("m"), spec.get("u"), at)
    return Comparison(spec["name"], tuple(levels), tuple(cols), method)


def _from_splink(lv: dict[str, Any]) -> Level:
    tf = lv.get("tf_adjustment_column")
    return Level(
        lv["label_for_charts"],
        lv["sql_condition"],
        null=bool(lv.get("is_null_level")),
        tf=(tf, float(lv.get("tf_adjustment_weight", 1.0))) if tf else None,
    )


def _with_weights(levels: list[Level], m: Any, u: Any, at: str) -> list[Level]:
    if m is None and u is None:
        return levels
    scored = [lv for lv in levels if not lv.null]
    if not isinstance(m, list) or not isinstance(u, list) or not len(m) == len(u) == len(scored):
        labels = "; ".join(lv.label for lv in scored)
        raise ValueError(f"{at}: {len(scored)} levels ({labels}) need {len(scored)} m and u values")
    it = iter(zip(m, u, strict=True))
    out = []
    for lv in levels:
        if lv.null:
            out.append(lv)
        else:
            mi, ui = next(it)
            out.append(Level(lv.label, lv.sql, float(mi), float(ui), False, lv.tf))
    return out


def _hand_written(spec: dict[str, Any], at: str) -> Comparison:
    levels = []
    for i, lv in enumerate(spec["levels"]):
        if not isinstance(lv, dict) or not lv.get("label") or not lv.get("sql"):
            raise ValueError(f"{at}.levels[{i}]: a level needs a `label` and an `sql` condition")
        unknown = sorted(set(lv) - set(LEVEL_KEYS))
        if unknown:
            raise ValueError(f"{at}.levels[{i}]: unknown key {unknown[0]!r}")
        m, u = lv.get("m"), lv.get("u")
        levels.append(
            Level(
                lv["label"],
                lv["sql"],
                None if m is None else float(m),
                None if u is None else float(u),
                bool(lv.get("is_null")),
            )
        )
    cols = tuple(dict.fromkeys(c for lv in levels if lv.sql for c in _LEVEL_COLUMN.findall(lv.sql)))
    return Comparison(spec["name"], tuple(levels), cols)
