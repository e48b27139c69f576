"""List-query filters and sort, evaluated from the API facts (docs/miva-api.md §3).

Written independently of the client's query builder on purpose: an emulator that
reuses the client's code cannot catch the client's bugs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from miva_sync.sandbox.columns import BOOLEAN, INDEXED, NUMERIC

Order = dict[str, Any]
Predicate = Callable[[Order], bool]

OPERATORS = frozenset(
    [
        "EQ",
        "GT",
        "GE",
        "LT",
        "LE",
        "CO",
        "NC",
        "LIKE",
        "NOTLIKE",
        "NE",
        "TRUE",
        "FALSE",
        "NULL",
        "IN",
        "NOT_IN",
        "SUBWHERE",
    ]
)
RANGE_OPERATORS = frozenset({"EQ", "GE", "GT", "LE", "LT"})
# search_OR and search both join their group by OR: in the SDK's output a bare
# "search" SUBWHERE only ever opens a group, where the join mode does not matter.
SUBWHERE_FIELDS = {"search_AND": "AND", "search_OR": "OR", "search": "OR"}
PAYMENT_STATES = ("auth_0_capt", "partial_capt", "capt_not_ship", "ship_not_capt")
SHIPPED = 200


class QueryError(Exception):
    """A list query the store refuses: answered as success 0 with this code."""

    def __init__(self, code: str, message: str, error_field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.error_field = error_field


@dataclass(frozen=True)
class RangeHint:
    """A conjunct ``field OP number`` that a sorted index can answer by bisection."""

    field: str
    operator: str
    value: float


@dataclass
class ParsedFilter:
    """A compiled Filter array: one predicate, index hints and on-demand columns."""

    predicate: Predicate | None = None
    ranges: list[RangeHint] = field(default_factory=list)
    # True when the ranges say everything the predicate says, so an index
    # lookup alone answers the filter.
    exact: bool = True
    columns: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def parse_filters(
    raw: Any, searchable: frozenset[str], *, lenient: bool = False
) -> ParsedFilter:
    """Compile a request's Filter array; raise QueryError when the store would refuse it.

    ``lenient``: entries on unknown fields are dropped instead of refused (the
    ``lenient-fields`` quirk: a store that ignores what it does not know).
    """
    result = ParsedFilter()
    if raw is None:
        return result
    if not isinstance(raw, list):
        raise QueryError("invalid_filter", "Filter must be an array", "Filter")
    predicates: list[Predicate] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise QueryError("invalid_filter", "Each filter needs a name", "Filter")
        name, value = item["name"], item.get("value")
        if name == "search":
            if not isinstance(value, list):
                raise QueryError(
                    "invalid_filter", "search value must be an array", "Filter"
                )
            compiled = _compile_group(value, searchable, lenient)
            if compiled is not None:
                predicates.append(compiled)
            hints = [h for h in _range_hints(value) if h.field in searchable]
            result.ranges.extend(hints)
            result.exact = result.exact and len(hints) == _leaf_count(value)
        elif name == "ondemandcolumns":
            if not isinstance(value, list) or not all(
                isinstance(v, str) for v in value
            ):
                raise QueryError(
                    "invalid_filter",
                    "ondemandcolumns must be an array of strings",
                    "Filter",
                )
            result.columns.extend(value)
        elif name in _CUSTOM_FILTERS:
            predicates.append(_CUSTOM_FILTERS[name](value))
            result.exact = False
        else:
            # Unknown filter names (e.g. "OnDemandColumns" in the wrong case) are
            # ignored, as the wrong-case pitfall (docs/miva-api.md §10, pitfall 8) implies.
            result.ignored.append(name)
    result.predicate = _all_of(predicates)
    return result


def parse_sort(
    raw: Any, sortable: frozenset[str], *, lenient: bool = False
) -> tuple[str, bool]:
    """Return (field, descending); no Sort means id ascending (a sandbox assumption).

    ``lenient``: an unknown sort field is ignored (id ascending) instead of refused.
    """
    if raw is None or raw == "":
        return "id", False
    if not isinstance(raw, str):
        raise QueryError("invalid_sort", "Sort must be a string", "Sort")
    descending = raw.startswith("-")
    name = raw[1:] if descending else raw
    if name not in sortable:
        if lenient:
            return "id", False
        raise QueryError("invalid_sort", f"Invalid sort field '{name}'", "Sort")
    return name, descending


def sort_key(name: str) -> Callable[[Order], Any]:
    """Key function for sorting by a column: numbers as numbers, text case-folded."""
    if name in NUMERIC or name in BOOLEAN:
        return lambda order: order[name]
    return lambda order: str(order[name]).casefold()


# --- search entries -------------------------------------------------------------


def _compile_group(
    entries: list[Any], searchable: frozenset[str], lenient: bool = False
) -> Predicate | None:
    """Fold a value list left to right (the inferred model of docs/miva-api.md §3.4)."""
    acc: Predicate | None = None
    for entry in entries:
        if not isinstance(entry, dict):
            raise QueryError(
                "invalid_filter", "Search entries must be objects", "Filter"
            )
        operator = entry.get("operator")
        if not isinstance(operator, str) or operator not in OPERATORS:
            raise QueryError(
                "invalid_search_operator",
                f"Invalid search operator '{operator}'",
                "Filter",
            )
        name = entry.get("field")
        if operator == "SUBWHERE":
            if name not in SUBWHERE_FIELDS:
                raise QueryError(
                    "invalid_search_field", f"Invalid SUBWHERE field '{name}'", "Filter"
                )
            value = entry.get("value")
            if not isinstance(value, list):
                raise QueryError(
                    "invalid_filter", "SUBWHERE value must be an array", "Filter"
                )
            sub = _compile_group(value, searchable, lenient)
            mode = SUBWHERE_FIELDS[name]
            if sub is None:  # an empty group constrains nothing
                continue
        else:
            if lenient and isinstance(name, str) and name not in searchable:
                continue  # an unknown field, silently ignored
            if not isinstance(name, str) or name not in searchable:
                raise QueryError(
                    "invalid_search_field", f"Invalid search field '{name}'", "Filter"
                )
            sub, mode = _compile_entry(name, operator, entry.get("value")), "OR"
        acc = sub if acc is None else _join(acc, sub, mode)
    return acc


def _join(left: Predicate, right: Predicate, mode: str) -> Predicate:
    if mode == "AND":
        return lambda order: left(order) and right(order)
    return lambda order: left(order) or right(order)


def _all_of(predicates: list[Predicate]) -> Predicate | None:
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    return lambda order: all(p(order) for p in predicates)


def _compile_entry(name: str, operator: str, raw: Any) -> Predicate:
    if name in NUMERIC or name in BOOLEAN:
        return _numeric_entry(name, operator, raw)
    return _text_entry(name, operator, raw)


def _numeric_entry(name: str, operator: str, raw: Any) -> Predicate:
    if operator == "TRUE":
        return lambda order: bool(order[name])
    if operator in ("FALSE", "NULL"):  # a number is "null" when it is zero (inferred)
        return lambda order: not order[name]
    if operator in ("IN", "NOT_IN"):
        wanted = {_number(name, part) for part in _scalar(name, raw).split(",")}
        if operator == "IN":
            return lambda order: order[name] in wanted
        return lambda order: order[name] not in wanted
    if operator in ("CO", "NC", "LIKE", "NOTLIKE"):
        # Text operators on a number compare its decimal text (id LIKE '10%').
        text = _text_entry(name, operator, raw)
        return lambda order: text({name: _number_text(order[name])})
    value = _number(name, raw)
    compare = _COMPARE[operator]
    return lambda order: compare(order[name], value)


def _text_entry(name: str, operator: str, raw: Any) -> Predicate:
    if operator == "TRUE":
        return lambda order: str(order[name]) not in ("", "0")
    if operator == "FALSE":
        return lambda order: str(order[name]) in ("", "0")
    if operator == "NULL":
        return lambda order: order[name] in ("", None)
    value = _scalar(name, raw).casefold()
    if operator in ("IN", "NOT_IN"):
        wanted = {part.strip() for part in value.split(",")}
        if operator == "IN":
            return lambda order: str(order[name]).casefold() in wanted
        return lambda order: str(order[name]).casefold() not in wanted
    if operator in ("CO", "NC"):
        negate = operator == "NC"
        return lambda order: (value in str(order[name]).casefold()) != negate
    if operator in ("LIKE", "NOTLIKE"):
        pattern = _like_regex(value)
        negate = operator == "NOTLIKE"
        return lambda order: (pattern.fullmatch(str(order[name])) is not None) != negate
    compare = _COMPARE[operator]
    return lambda order: compare(str(order[name]).casefold(), value)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": lambda a, b: a == b,
    "NE": lambda a, b: a != b,
    "GT": lambda a, b: a > b,
    "GE": lambda a, b: a >= b,
    "LT": lambda a, b: a < b,
    "LE": lambda a, b: a <= b,
}

_TRUE_WORDS = {"true": 1, "yes": 1, "false": 0, "no": 0}


def _scalar(name: str, raw: Any) -> str:
    """A search value as text: strings as sent, numbers in their JSON form."""
    if isinstance(raw, bool):
        return "1" if raw else "0"
    if isinstance(raw, int | float):
        return _number_text(raw)
    if isinstance(raw, str):
        return raw
    raise QueryError("invalid_search_value", f"Invalid value for field '{name}'", name)


def _number(name: str, raw: Any) -> float:
    text = _scalar(name, raw).strip()
    if name in BOOLEAN and text.casefold() in _TRUE_WORDS:
        return _TRUE_WORDS[text.casefold()]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise QueryError(
            "invalid_search_value",
            f"Invalid value for field '{name}': '{text}' is not a number",
            name,
        ) from None


def _number_text(value: float) -> str:
    if isinstance(value, bool):  # a boolean column is the number 1 or 0
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _like_regex(pattern: str) -> re.Pattern[str]:
    """SQL LIKE: % any run, _ one character, backslash escapes; case-insensitive."""
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


# --- index hints ----------------------------------------------------------------


def _range_hints(entries: list[Any]) -> list[RangeHint]:
    """Entries that are ANDed with everything else in the group, usable via bisection."""
    return [h for e in _conjuncts(entries) if (h := _hint(e)) is not None]


def _leaf_count(entries: list[Any]) -> int:
    """Plain (non-SUBWHERE) entries anywhere in a value list."""
    return sum(
        _leaf_count(e.get("value") or []) if e.get("operator") == "SUBWHERE" else 1
        for e in entries
    )


def _conjuncts(entries: list[Any]) -> list[dict[str, Any]]:
    if not entries:
        return []
    rest = entries[1:]
    if any(
        e.get("operator") != "SUBWHERE" or e.get("field") != "search_AND" for e in rest
    ):
        return []  # some OR in the chain: nothing is a plain conjunct
    out = _entry_conjuncts(entries[0])
    for e in rest:
        out.extend(_conjuncts(e.get("value") or []))
    return out


def _entry_conjuncts(entry: dict[str, Any]) -> list[dict[str, Any]]:
    if entry.get("operator") == "SUBWHERE":
        return _conjuncts(entry.get("value") or [])
    return [entry]


def _hint(entry: dict[str, Any]) -> RangeHint | None:
    name, operator = entry.get("field"), entry.get("operator")
    if name not in INDEXED or operator not in RANGE_OPERATORS:
        return None
    return RangeHint(str(name), str(operator), _number(str(name), entry.get("value")))


# --- custom filters (docs/miva-api.md §4.5), the cheap ones ---------------------------


def _int_filter(name: str, raw: Any) -> int:
    try:
        return int(_scalar(name, raw).strip())
    except (ValueError, QueryError):
        raise QueryError("invalid_filter", f"{name} must be an integer", name) from None


def _customer_id(raw: Any) -> Predicate:
    wanted = _int_filter("Customer_ID", raw)
    return lambda order: order["cust_id"] == wanted


def _business_account_id(raw: Any) -> Predicate:
    wanted = _int_filter("BusinessAccount_ID", raw)
    return lambda order: (order.get("customer") or {}).get("account_id", 0) == wanted


def _pay_id(raw: Any) -> Predicate:
    wanted = _int_filter("pay_id", raw)
    return lambda order: order["pay_id"] == wanted


def _payment(raw: Any) -> Predicate:
    if raw not in PAYMENT_STATES:
        raise QueryError(
            "invalid_filter",
            f"payment must be one of {', '.join(PAYMENT_STATES)}",
            "payment",
        )
    tests: dict[str, Predicate] = {
        "auth_0_capt": lambda o: o["total_auth"] > 0 and o["total_capt"] == 0,
        "partial_capt": lambda o: 0 < o["total_capt"] < o["total_auth"],
        "capt_not_ship": lambda o: o["total_capt"] > 0 and o["status"] != SHIPPED,
        "ship_not_capt": lambda o: o["status"] == SHIPPED and o["total_capt"] == 0,
    }
    return tests[raw]


def _product_code(raw: Any) -> Predicate:
    wanted = _scalar("product_code", raw).casefold()
    return lambda order: any(
        str(item["code"]).casefold() == wanted for item in order.get("items", ())
    )


_CUSTOM_FILTERS: dict[str, Callable[[Any], Predicate]] = {
    "Customer_ID": _customer_id,
    "BusinessAccount_ID": _business_account_id,
    "pay_id": _pay_id,
    "payment": _payment,
    "product_code": _product_code,
}


def requested(columns: Iterable[str], known: Iterable[str]) -> list[str]:
    """The known on-demand columns among those requested, in the store's order."""
    wanted = set(columns)
    return [c for c in known if c in wanted]
