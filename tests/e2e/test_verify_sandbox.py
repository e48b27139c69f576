"""The sandbox can change orders behind a tool's back (how verify's tests force gaps).

Checked through the sandbox's HTTP API with the independent raw client, so
what a tool would see is what is asserted.
"""

from __future__ import annotations

import pytest

from miva_sync.sandbox import Sandbox
from tests.support import sandbox_fixtures
from tests.support.sandbox_fixtures import RawClient, entry, search

raw = sandbox_fixtures.raw
sandbox = sandbox_fixtures.sandbox


def by_id(raw: RawClient, oid: int) -> list[dict[str, object]]:
    return raw.orders(Count=10, Filter=[search(entry("id", "EQ", oid))])


def events_of(sandbox: Sandbox) -> list[tuple[str, int]]:
    heard: list[tuple[str, int]] = []
    sandbox.store.subscribe(lambda event, order: heard.append((event, order["id"])))
    return heard


def test_sandbox_hide_takes_an_order_out_of_every_answer_until_unhidden(
    sandbox: Sandbox, raw: RawClient
) -> None:
    store = sandbox.store
    heard = events_of(sandbox)
    oid = store.orders_snapshot()[5]["id"]
    before = store.order(oid)
    total = len(store)

    store.hide(oid)
    assert by_id(raw, oid) == []
    assert oid not in raw.ids(Count=0)
    assert raw.call(Count=1)["data"]["total_count"] == total - 1

    back = store.unhide(oid)
    assert back == before  # same dates, same content: nothing "changed"
    assert by_id(raw, oid)[0]["dt_updated"] == before["dt_updated"]
    assert heard == []  # no webhook, no event: behind the tool's back
    store.hide(oid)
    with pytest.raises(ValueError, match="already exists"):
        store.add_order(id=oid)  # a hidden order's number stays taken


def test_sandbox_set_silently_changes_an_order_without_any_sign(
    sandbox: Sandbox, raw: RawClient
) -> None:
    store = sandbox.store
    heard = events_of(sandbox)
    oid = store.orders_snapshot()[7]["id"]
    before = store.order(oid)
    store.acknowledge([oid])  # out of the default queue: would it come back?

    store.set_silently(oid, status=300)
    seen = by_id(raw, oid)[0]
    assert seen["status"] == 300
    assert seen["dt_updated"] == before["dt_updated"]  # not bumped
    assert oid not in store.queue_ids(store.default_queue)
    assert heard == []

    store.set_silently(oid, dt_updated=before["dt_updated"] + 60)
    assert by_id(raw, oid)[0]["dt_updated"] == before["dt_updated"] + 60
    with pytest.raises(ValueError, match="unknown order fields"):
        store.set_silently(oid, no_such_field=1)


def test_sandbox_delete_removes_an_order_for_good(
    sandbox: Sandbox, raw: RawClient
) -> None:
    store = sandbox.store
    visible, hidden = (o["id"] for o in store.orders_snapshot()[3:5])
    assert visible in store.queue_ids(store.default_queue)
    store.hide(hidden)

    store.delete(visible)
    store.delete(hidden)
    assert by_id(raw, visible) == [] and by_id(raw, hidden) == []
    assert visible not in store.queue_ids(store.default_queue)
    with pytest.raises(KeyError):
        store.unhide(hidden)
    with pytest.raises(KeyError):
        store.delete(visible)
