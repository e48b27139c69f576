"""Switches that make the sandbox behave like a less friendly real store.

The sandbox's defaults encode our best reading of the API facts
(docs/miva-api.md). Several of those facts are unconfirmed; each switch here
is one way a real store may differ, so the tests can prove that miva-sync
notices the difference and says so instead of losing orders. See
docs/sandbox.md ("Unfriendly stores").
"""

from __future__ import annotations

from dataclasses import dataclass, field

# CLI names (miva-sync sandbox --quirk NAME) -> the Quirks field they set.
QUIRK_NAMES: dict[str, str] = {
    "ignore-sort-dt-updated": "ignore_sort",
    "ignore-sort-orderdate": "ignore_sort",
    "ignore-sort-id": "ignore_sort",
    "lenient-fields": "lenient_fields",
    "ack-rewrites-order": "ack_rewrites_order",
    "unknown-queue-empty": "unknown_queue_empty",
    "auth-error-200": "auth_error_200",
}


@dataclass(frozen=True)
class Quirks:
    """How this store departs from the sandbox's default behaviour.

    ``ignore_sort``: sort fields the store accepts but ignores (rows come back
    by id, as if no Sort was sent). ``lenient_fields``: unknown search and
    sort fields are silently ignored instead of refused (with
    ``supports_dt_updated=False``: a store before 10.03 that answers a
    ``dt_updated`` filter with every order). ``ack_rewrites_order``:
    acknowledging an order rewrites the ``orderworkflow`` module's own custom
    fields on it (its queue flags), without touching ``dt_updated``.
    ``unknown_queue_empty``: an unknown queue code answers ``success: 1`` with
    no orders instead of an error. ``auth_error_200``: authentication failures
    are answered with HTTP 200 and ``success: 0`` instead of HTTP 401.
    """

    ignore_sort: frozenset[str] = field(default_factory=frozenset)
    lenient_fields: bool = False
    ack_rewrites_order: bool = False
    unknown_queue_empty: bool = False
    auth_error_200: bool = False

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...]) -> Quirks:
        """Quirks from ``--quirk`` names; ValueError names an unknown one."""
        ignore_sort: set[str] = set()
        flags: dict[str, bool] = {}
        for name in names:
            target = QUIRK_NAMES.get(name)
            if target is None:
                raise ValueError(
                    f"unknown quirk {name!r}; known: {', '.join(sorted(QUIRK_NAMES))}"
                )
            if target == "ignore_sort":
                ignore_sort.add(name.removeprefix("ignore-sort-").replace("-", "_"))
            else:
                flags[target] = True
        return cls(ignore_sort=frozenset(ignore_sort), **flags)

    @property
    def names(self) -> list[str]:
        """The ``--quirk`` names that give these quirks (for messages)."""
        names = [f"ignore-sort-{f.replace('_', '-')}" for f in sorted(self.ignore_sort)]
        names += [
            name
            for name, target in QUIRK_NAMES.items()
            if target != "ignore_sort" and getattr(self, target)
        ]
        return names


NO_QUIRKS = Quirks()
