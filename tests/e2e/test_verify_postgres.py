"""``miva-sync verify`` against a real PostgreSQL target (tests/support/pg_fixtures.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from tests.support import pg_fixtures
from tests.support.targets import SINCE

pg_server = pg_fixtures.pg_server
pg_url = pg_fixtures.pg_url
query = pg_fixtures.query


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=150, seed=23, tie_order="random") as sb:
        yield sb


def verify(run: Any, sb: Sandbox, url: str, *args: str, expect: int) -> dict[str, Any]:
    result = run(["verify", "--since", SINCE, *args, "-o", url, "--json"], env=sb.env())
    assert result.exit_code == expect, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_verify_postgres_gaps_are_found_and_repaired(
    run: Any, sandbox: Sandbox, pg_url: str
) -> None:
    url = f"{pg_url}?schema=shop"
    pulled = run(["pull", "--since", SINCE, "--updated", "-o", url], env=sandbox.env())
    assert pulled.exit_code == 0, pulled.stderr
    assert verify(run, sandbox, url, "--updated", expect=0)["complete"] is True

    snapshot = sandbox.store.orders_snapshot()
    gone = sorted(o["id"] for o in snapshot[20:23])
    aged = snapshot[100]["id"]
    deleted = snapshot[140]["id"]
    query(url, "DELETE FROM orders WHERE id = ANY(%s)", (gone,))
    query(url, "UPDATE orders SET dt_updated = dt_updated - 60 WHERE id = %s", (aged,))
    sandbox.store.delete(deleted)

    report = verify(run, sandbox, url, "--updated", expect=9)
    assert (report["missing"], report["stale"], report["extra"]) == (
        gone,
        [aged],
        [deleted],
    )
    assert report["target"].endswith("?schema=shop")

    fixed = verify(run, sandbox, url, "--updated", "--repair", expect=0)
    assert fixed["repaired"] == sorted([*gone, aged])
    rows = dict(query(url, "SELECT id, dt_updated FROM orders"))
    for oid in [*gone, aged]:
        assert rows[oid] == sandbox.store.order(oid)["dt_updated"]
    # the repair committed no cursor: the database's own copy is the pull's
    (record,) = query(url, "SELECT record FROM sync_state")[0]
    assert record["mode"] == "updated"
    assert verify(run, sandbox, url, "--updated", expect=0)["extra"] == [deleted]


def test_verify_postgres_unknown_schema_is_unreadable_and_never_created(
    run: Any, sandbox: Sandbox, pg_url: str
) -> None:
    url = pg_url.replace("postgres@", "postgres:s3cret-pw@") + "?schema=nothing"
    for extra in ([], ["--repair"]):
        result = run(["verify", "--since", SINCE, "-o", url, *extra], env=sandbox.env())
        assert result.exit_code == 8, result.stderr
        assert "no orders table" in result.stderr
        assert "s3cret-pw" not in result.stderr + result.stdout
    found = query(pg_url, "SELECT 1 FROM pg_namespace WHERE nspname = 'nothing'")
    assert found == []
