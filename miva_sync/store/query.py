"""Pure builders for Miva list queries: Filter, Sort, Count, Offset, columns.

No I/O here. The shapes follow the documented semantics only (docs/miva-api.md §3):
AND is several top-level ``search`` filters, OR is several entries in one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

OPERATORS = frozenset(
    {
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
    }
)
VALUELESS_OPERATORS = frozenset({"TRUE", "FALSE", "NULL"})
SUBWHERE_FIELDS = frozenset({"search_AND", "search_OR", "search"})
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
MAX_IN_LIST = 100  # keep `id IN` lists short so no store rejects or times out on them

# Every useful on-demand column of an order (docs/miva-api.md §4.4). Never
# `payment_data`: it needs the store's passphrase and holds card data.
DEFAULT_COLUMNS: tuple[str, ...] = (
    "ship_method",
    "cust_login",
    "cust_pw_email",
    "business_title",
    "payment_module",
    "customer",
    "items",
    "charges",
    "coupons",
    "discounts",
    "payments",
    "notes",
    "parts",
    "shipments",
    "returns",
    "CustomField_Values:*",
)
# Decrypted card data: requested only when asked for by name, with the passphrase.
SENSITIVE_COLUMNS = frozenset({"payment_data"})


@dataclass(frozen=True)
class Condition:
    """One search entry: ``field operator value``.

    A ``SUBWHERE`` entry nests conditions: build it with :func:`sub_and` or
    :func:`sub_or`. How Miva combines nested groups is inferred, not documented
    (docs/miva-api.md §3.4), so miva-sync's own pulls never depend on it.
    """

    field: str
    operator: str
    value: Any = None

    def __post_init__(self) -> None:
        if self.operator == "SUBWHERE":
            if self.field not in SUBWHERE_FIELDS or not all(
                isinstance(c, Condition) for c in self.value or ()
            ):
                raise ValueError("SUBWHERE needs search_AND/search_OR and conditions")
            return
        if self.operator not in OPERATORS:
            raise ValueError(f"unknown search operator {self.operator!r}")
        if not self.field:
            raise ValueError("a search condition needs a field")

    def to_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"field": self.field, "operator": self.operator}
        if self.operator == "SUBWHERE":
            entry["value"] = [c.to_entry() for c in self.value]
        elif self.operator not in VALUELESS_OPERATORS:
            entry["value"] = _wire_value(self.value)
        return entry


def sub_and(*conditions: Condition) -> Condition:
    """``AND (conditions ORed)`` nested after the preceding entries."""
    return Condition("search_AND", "SUBWHERE", tuple(conditions))


def sub_or(*conditions: Condition) -> Condition:
    """``OR (conditions ORed)`` nested after the preceding entries."""
    return Condition("search_OR", "SUBWHERE", tuple(conditions))


def _wire_value(value: Any) -> str:
    # Miva's own SDKs always send strings; lists become comma-joined for IN.
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@dataclass(frozen=True)
class ListQuery:
    """An immutable ``*List_Load_Query`` request; methods return new queries."""

    groups: tuple[tuple[Condition, ...], ...] = ()  # AND across groups, OR within
    sort: str | None = None
    count: int = DEFAULT_PAGE_SIZE
    offset: int = 0
    columns: tuple[str, ...] = ()
    custom_filters: tuple[tuple[str, Any], ...] = field(default=())
    passphrase: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_PAGE_SIZE:
            # Count 0 means "every record" to Miva: never send it.
            raise ValueError(f"page size must be 1..{MAX_PAGE_SIZE}, not {self.count}")
        if self.offset < 0:
            raise ValueError("offset must not be negative")
        sensitive = self._sensitive()
        if sensitive and not self.passphrase:
            raise ValueError(
                f"{sorted(sensitive)[0]} (decrypted card data) needs the store's "
                "passphrase: set MIVA_SYNC_PASSPHRASE, or run in a terminal to be asked"
            )

    def _sensitive(self) -> frozenset[str]:
        return SENSITIVE_COLUMNS.intersection(c.lower() for c in self.columns)

    def where(self, *conditions: Condition) -> ListQuery:
        """AND one more group; the conditions inside it are ORed."""
        if not conditions:
            raise ValueError("where() needs at least one condition")
        return replace(self, groups=(*self.groups, tuple(conditions)))

    def sorted_by(self, column: str, *, descending: bool = False) -> ListQuery:
        return replace(self, sort=f"-{column}" if descending else column)

    def page(self, count: int, offset: int = 0) -> ListQuery:
        return replace(self, count=count, offset=offset)

    def with_columns(self, columns: Iterable[str]) -> ListQuery:
        return replace(self, columns=tuple(columns))

    def with_custom_filter(self, name: str, value: Any) -> ListQuery:
        return replace(self, custom_filters=(*self.custom_filters, (name, value)))

    def to_params(self) -> dict[str, Any]:
        """The request parameters, ready to merge into a request body."""
        filters: list[dict[str, Any]] = [
            {"name": "search", "value": [c.to_entry() for c in group]}
            for group in self.groups
        ]
        if self.columns:
            # the filter name must be lower-case (docs/miva-api.md §3.2)
            filters.append({"name": "ondemandcolumns", "value": list(self.columns)})
        filters.extend({"name": n, "value": v} for n, v in self.custom_filters)
        params: dict[str, Any] = {"Count": self.count, "Offset": self.offset}
        if self.passphrase and self._sensitive():
            # only where card data is asked for: a boundary probe or a re-check
            # by id without those columns has no use for the secret
            params["Passphrase"] = self.passphrase
        if self.sort:
            params["Sort"] = self.sort
        if filters:
            params["Filter"] = filters
        return params


def chunked(values: Sequence[int], size: int = MAX_IN_LIST) -> Iterator[list[int]]:
    """Split ids into lists short enough for one ``IN`` filter or acknowledgement."""
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def parse_columns(text: str) -> tuple[str, ...]:
    """Parse ``--columns items,charges`` (``default`` keeps the default list).

    ``payment_data`` is kept when named: :class:`ListQuery` then insists on the
    passphrase, so card data is never fetched by accident.
    """
    columns: list[str] = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        if name.lower() == "default":
            columns.extend(DEFAULT_COLUMNS)
        else:
            columns.append(name)
    return tuple(dict.fromkeys(columns))
