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
    "unsorted-queue": "unsorted_queue",
    "auth-error-401": "auth_error_401",
    "strict-ack": "strict_ack",
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
    no orders instead of an error. ``auth_error_401``: a web-server layer in
    front of the store (e.g. HTTP Basic auth on /mm5) answers authentication
    failures with HTTP 401, instead of the store's own HTTP 200 with
    ``success: 0`` and ``access_denied`` (docs/miva-api.md §3.7).
    ``strict_ack``: an acknowledgement naming any order that is not waiting
    in an acknowledgement queue is answered ``processed: 0`` and changes
    nothing (the sandbox's default refuses only ids that are no order at all;
    docs/miva-api.md §6.2 says only "missing or incorrect" Order_Ids).
    ``unsorted_queue``: queue reads accept ``Sort`` and ignore it, answering in
    the store's own order, a seeded scramble that is not by id (unlike
    ``ignore_sort``, whose unsorted order happens to be id order).
    """

    ignore_sort: frozenset[str] = field(default_factory=frozenset)
    lenient_fields: bool = False
    ack_rewrites_order: bool = False
    unknown_queue_empty: bool = False
    auth_error_401: bool = False
    unsorted_queue: bool = False
    strict_ack: bool = False

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
