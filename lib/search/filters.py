"""Measurement filters of a search: ``wt_ml>=50&crosses_midline=true&hemisphere=right``.

A filter is a field, an operator and a value, written as a query-string parameter
(``wt_ml>=50`` arrives as the parameter ``wt_ml>`` with the value ``50``, so filters are read
from the raw query string by :func:`parse_filters`). Numeric fields take ``= != < <= > >=``;
the others ``=`` and ``!=``. Each becomes one SQL condition on the index's ``studies`` table
(:func:`where_clause`), with its value bound as a parameter, never written into the SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from lib.errors import InputError

#: Numeric fields and their columns in the index.
NUMERIC = {
    "wt_ml": "wt_ml", "tc_ml": "tc_ml", "et_ml": "et_ml", "ncr_ml": "ncr_ml", "ed_ml": "ed_ml",
    "wt_percent": "wt_percent", "enhancing_fraction": "enhancing_fraction",
    "necrotic_fraction": "necrotic_fraction", "lesions": "lesions", "measurable_lesions": "measurable_lesions",
}
#: Yes/no fields.
BOOLEAN = {"crosses_midline": "crosses_midline"}
#: Fields with a fixed set of values.
CHOICES = {
    "hemisphere": ("hemisphere", ("left", "right")),
    "response": ("response", ("CR", "PR", "SD", "PD", "none")),
}
FIELDS = tuple(NUMERIC) + tuple(BOOLEAN) + tuple(CHOICES)
_OPERATORS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_TERM = re.compile(r"^(?P<field>[a-z_]+)(?P<op>>=|<=|!=|=|<|>)(?P<value>.*)$")
#: At most this many filters in one search.
MAX_FILTERS = 20


@dataclass(frozen=True)
class Filter:
    field: str
    operator: str
    value: float | int | str

    def sql(self) -> tuple[str, list[float | int | str]]:
        """The condition on the ``studies`` table and its one bound value."""
        if self.field in NUMERIC:
            return f"{NUMERIC[self.field]} {_OPERATORS[self.operator]} ?", [self.value]
        if self.field in BOOLEAN:
            return f"{BOOLEAN[self.field]} {_OPERATORS[self.operator]} ?", [self.value]
        column = CHOICES[self.field][0]
        if self.value == "none":
            return (f"{column} IS NULL", []) if self.operator == "=" else (f"{column} IS NOT NULL", [])
        return f"{column} {_OPERATORS[self.operator]} ?", [self.value]


def _parse_value(field: str, operator: str, raw: str) -> float | int | str:
    if field in NUMERIC:
        try:
            number = float(raw)
        except ValueError:
            raise InputError(f"filter {field}{operator}{raw[:40]!r}: {field} takes a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise InputError(f"filter {field}{operator}{raw[:40]!r}: {field} takes a finite number")
        return number
    if operator not in ("=", "!="):
        raise InputError(f"filter {field}{operator}: {field} takes = or !=, not {operator}")
    if field in BOOLEAN:
        lowered = raw.lower()
        if lowered not in ("true", "false"):
            raise InputError(f"filter {field}={raw[:40]!r}: {field} is true or false")
        return 1 if lowered == "true" else 0
    choices = CHOICES[field][1]
    value = raw if field == "response" else raw.lower()
    if value not in choices:
        raise InputError(f"filter {field}={raw[:40]!r}: {field} is one of {', '.join(choices)}")
    return value


def parse_term(term: str) -> Filter:
    """One ``field<op>value`` term; :class:`InputError` naming what is wrong."""
    match = _TERM.match(term)
    if not match:
        raise InputError(f"filter {term[:60]!r} is not field<op>value (e.g. wt_ml>=50); fields: {', '.join(FIELDS)}")
    field, operator = match["field"], match["op"]
    if field not in FIELDS:
        raise InputError(f"unknown filter field {field!r}; the fields are {', '.join(FIELDS)}")
    return Filter(field, operator, _parse_value(field, operator, match["value"].strip()))


def parse_filters(query_string: str, reserved: frozenset[str]) -> list[Filter]:
    """The filters of a raw query string: every ``&``-separated term whose name is not one of
    ``reserved`` (the route's own parameters, such as ``study`` and ``k``)."""
    filters = []
    for part in query_string.split("&"):
        if not part:
            continue
        term = unquote_plus(part)
        name = re.split(r"[<>=!]", term, maxsplit=1)[0]
        if name in reserved:
            continue
        filters.append(parse_term(term))
    if len(filters) > MAX_FILTERS:
        raise InputError(f"at most {MAX_FILTERS} filters in one search, got {len(filters)}")
    return filters


def where_clause(filters: list[Filter]) -> tuple[str, list[float | int | str]]:
    """``"cond AND cond"`` (``"1"`` without filters) and its bound values."""
    if not filters:
        return "1", []
    conditions, values = [], []
    for f in filters:
        condition, bound = f.sql()
        conditions.append(condition)
        values.extend(bound)
    return " AND ".join(conditions), values
