"""One store per database target (issue 19, finding 1): identity, refusal, adoption.

A database target records the store whose orders it holds: the normalised
store URL plus the store code (not the profile name). Another store's orders
are refused with exit 3 before anything is written, naming both stores and the
fix; databases from before identities are adopted; renaming a profile, or
moving between a profile and environment settings, keeps access. Every test
drives the real CLI against in-process sandbox stores.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from tests.support import pg_fixtures
from tests.support.helpers import profile_toml
from tests.support.webhook import Receiver

pg_server = pg_fixtures.pg_server
pg_url = pg_fixtures.pg_url
query = pg_fixtures.query

# a staging store behind HTTP basic auth: the password must appear nowhere
URL_PASSWORD = "hunter2-basic-auth"


@pytest.fixture
def store_a() -> Iterator[Sandbox]:
    with Sandbox(orders=60, seed=81, store_code="SHOP_A") as sb:
        yield sb


@pytest.fixture
def store_b() -> Iterator[Sandbox]:
    # another seed and code: the same order numbers, other orders
    with Sandbox(orders=60, seed=82, store_code="SHOP_B") as sb:
        yield sb


def identity(sb: Sandbox) -> str:
    return f"{sb.url}#{sb.store_code}"


def env_with_password(sb: Sandbox) -> dict[str, str]:
    env = sb.env()
    env["MIVA_URL"] = sb.url.replace("http://", f"http://shop:{URL_PASSWORD}@")
    return env


def sqlite_rows(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id, order_json, dt_updated, source FROM orders"
        ).fetchall()
        items = conn.execute("SELECT * FROM order_items").fetchall()
    return {"orders": {r[0]: r[1:] for r in rows}, "items": sorted(items)}


def recorded(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT store_key FROM sync_store")]


def pull(run: Any, env: dict[str, str], target: str, *args: str) -> Any:
    return run(["pull", *(args or ("--since", "90d")), "-o", target], env=env)


def assert_refused(result: Any, owner: Sandbox, other: Sandbox, fix: str) -> None:
    assert result.exit_code == 3, result.stderr
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    # both stores, by URL and store code, and the fix
    assert f"{owner.url} (store code {owner.store_code})" in message
    assert f"{other.url} (store code {other.store_code})" in message
    assert fix in message
    assert URL_PASSWORD not in message and other.api_token not in message
    assert result.stdout == ""


# -- SQLite -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "90d"),
        ("--from-order", "1"),
        ("--queue", "new_updated_orders"),
        ("--since", "90d", "--until", "0d"),  # a bounded re-pull: no cursor at all
        ("--ids", "1,2,3,4,5,6,7,8,9,10"),  # a re-send
    ],
    ids=["date", "number", "queue", "bounded", "ids"],
)
def test_sqlite_refuses_a_second_stores_orders(
    run: Any, store_a: Sandbox, store_b: Sandbox, tmp_path: Path, args: tuple[str, ...]
) -> None:
    db = tmp_path / "a.db"
    target = f"sqlite:///{db}"
    assert pull(run, store_a.env(), target).exit_code == 0
    before = sqlite_rows(db)
    assert len(before["orders"]) == 60

    result = pull(run, env_with_password(store_b), target, *args)

    assert_refused(result, store_a, store_b, "its own file")
    assert sqlite_rows(db) == before  # count and content: nothing of B's
    assert recorded(db) == [identity(store_a)]
    # the file is still A's: A goes on as before
    store_a.store.add_order()
    again = pull(run, store_a.env(), target, "--since", "90d")
    assert again.exit_code == 0, again.stderr
    assert len(sqlite_rows(db)["orders"]) == 61


def test_sqlite_identity_is_not_the_profile_name(
    run: Any, store_a: Sandbox, store_b: Sandbox, tmp_path: Path, isolated_home: Path
) -> None:
    db = tmp_path / "a.db"
    target = f"sqlite:///{db}"
    config = isolated_home / "config.toml"

    def use_profile(name: str, sb: Sandbox) -> None:
        config.write_text(f'default_profile = "{name}"\n' + profile_toml(name, sb))
        config.chmod(0o600)

    use_profile("shop", store_a)
    assert pull(run, {}, target).exit_code == 0
    assert recorded(db) == [identity(store_a)]
    before = sqlite_rows(db)

    use_profile("renamed", store_a)  # the same store under a new profile name
    result = pull(run, {}, target)
    assert result.exit_code == 0, result.stderr
    config.unlink()  # and from environment settings instead of a profile
    result = pull(run, store_a.env(), target)
    assert result.exit_code == 0, result.stderr
    assert sqlite_rows(db)["orders"].keys() == before["orders"].keys()

    use_profile("shop", store_b)  # the old name, now another store: refused
    assert_refused(pull(run, {}, target), store_a, store_b, "its own file")
    assert recorded(db) == [identity(store_a)]


def old_database(run: Any, sb: Sandbox, tmp_path: Path) -> tuple[Path, str]:
    """A SQLite file ``sb`` pulled into, turned into one written before
    identities (schema 2: no sync_store): its path and its target."""
    db = tmp_path / "a.db"
    target = f"sqlite:///{db}"
    assert pull(run, sb.env(), target).exit_code == 0
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE sync_store")
        conn.execute("DELETE FROM schema_version WHERE version > 2")
    return db, target


def test_sqlite_old_database_is_adopted_by_its_store(
    run: Any, store_a: Sandbox, store_b: Sandbox, tmp_path: Path
) -> None:
    db, target = old_database(run, store_a, tmp_path)
    before = sqlite_rows(db)
    # its cursor names store A: store B is refused before anything is adopted
    assert_refused(pull(run, store_b.env(), target), store_a, store_b, "its own file")
    assert sqlite_rows(db) == before
    # store A adopts it on first use, and from then on it is A's
    store_a.store.add_order()
    result = pull(run, store_a.env(), target)
    assert result.exit_code == 0, result.stderr
    assert recorded(db) == [identity(store_a)]
    assert len(sqlite_rows(db)["orders"]) == 61


def test_sqlite_old_database_without_cursors_is_adopted(
    run: Any, store_a: Sandbox, store_b: Sandbox, tmp_path: Path
) -> None:
    # a file a receiver or a bounded re-pull wrote: no cursor tells whose it is
    db, target = old_database(run, store_a, tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM sync_state")
    result = pull(run, store_a.env(), target, "--since", "90d")
    assert result.exit_code == 0, result.stderr
    assert recorded(db) == [identity(store_a)]
    before = sqlite_rows(db)
    assert_refused(pull(run, store_b.env(), target), store_a, store_b, "its own file")
    assert sqlite_rows(db) == before


def test_sqlite_sandbox_has_one_identity_across_runs(run: Any, tmp_path: Path) -> None:
    # the built-in sandbox listens on a new port every run
    target = f"sqlite:///{tmp_path / 'demo.db'}"
    for args in (("--since", "30d"), ()):
        result = run(["pull", "--sandbox", *args, "-o", target])
        assert result.exit_code == 0, result.stderr
    assert recorded(tmp_path / "demo.db") == ["sandbox"]


def test_verify_refuses_another_stores_database(
    run: Any, store_a: Sandbox, store_b: Sandbox, tmp_path: Path
) -> None:
    db = tmp_path / "a.db"
    target = f"sqlite:///{db}"
    assert pull(run, store_a.env(), target).exit_code == 0
    sent = store_b.request_count
    for repair in ((), ("--repair",)):
        result = run(
            ["verify", "--since", "90d", *repair, "-o", target],
            env=env_with_password(store_b),
        )
        assert_refused(result, store_a, store_b, "its own file")
    assert store_b.request_count == sent  # refused before the store is listed
    ok = run(["verify", "--since", "90d", "-o", target], env=store_a.env())
    assert ok.exit_code == 0, ok.stderr


# -- listen -----------------------------------------------------------------------------


def test_listen_refuses_another_stores_sqlite(
    run: Any, store_a: Sandbox, store_b: Sandbox, tmp_path: Path
) -> None:
    db = tmp_path / "a.db"
    target = f"sqlite:///{db}"
    assert pull(run, store_a.env(), target).exit_code == 0
    before = sqlite_rows(db)
    receiver = Receiver(
        target, tmp_path / "home", env=env_with_password(store_b), must_serve=False
    )
    try:
        if receiver.serving:  # it serves: deliver one of B's orders, as Miva would
            receiver.post(store_b.store.orders_snapshot()[0])
    finally:
        code, _, err = receiver.stop()
    assert not receiver.serving, "the receiver served another store's database"
    assert code == 3, err
    assert f"{store_a.url} (store code SHOP_A)" in err
    assert f"{store_b.url} (store code SHOP_B)" in err
    assert URL_PASSWORD not in err
    assert sqlite_rows(db) == before


def test_listen_records_the_store_it_serves(
    run: Any, store_a: Sandbox, store_b: Sandbox, tmp_path: Path
) -> None:
    db = tmp_path / "w.db"
    target = f"sqlite:///{db}"
    receiver = Receiver(target, tmp_path / "home", env=store_a.env())
    try:
        answer = receiver.post(store_a.store.orders_snapshot()[0])
        assert answer.status_code == 200, answer.text
    finally:
        receiver.stop()
    assert recorded(db) == [identity(store_a)]
    before = sqlite_rows(db)
    assert_refused(pull(run, store_b.env(), target), store_a, store_b, "its own file")
    assert sqlite_rows(db) == before


# -- PostgreSQL -------------------------------------------------------------------------


def pg_rows(url: str) -> dict[str, Any]:
    orders = query(url, "SELECT id, order_json, dt_updated, source FROM orders")
    items = query(url, "SELECT * FROM order_items")
    return {
        "orders": {r[0]: (json.dumps(r[1], sort_keys=True), *r[2:]) for r in orders},
        "items": sorted(items),
    }


@pytest.mark.parametrize(
    "args",
    [("--since", "90d"), ("--since", "90d", "--until", "0d")],
    ids=["date", "bounded"],
)
def test_postgres_refuses_a_second_stores_orders(
    run: Any, store_a: Sandbox, store_b: Sandbox, pg_url: str, args: tuple[str, ...]
) -> None:
    assert pull(run, store_a.env(), pg_url).exit_code == 0
    before = pg_rows(pg_url)
    assert len(before["orders"]) == 60

    result = pull(run, env_with_password(store_b), pg_url, *args)

    assert_refused(result, store_a, store_b, "its own schema (?schema=NAME")
    assert pg_rows(pg_url) == before
    assert query(pg_url, "SELECT store_key FROM sync_store") == [(identity(store_a),)]
    verify = run(["verify", "--since", "90d", "-o", pg_url], env=store_b.env())
    assert_refused(verify, store_a, store_b, "its own schema")


def test_postgres_listen_refuses_another_stores_schema(
    run: Any, store_a: Sandbox, store_b: Sandbox, pg_url: str, tmp_path: Path
) -> None:
    assert pull(run, store_a.env(), pg_url).exit_code == 0
    before = pg_rows(pg_url)
    receiver = Receiver(pg_url, tmp_path / "home", env=store_b.env(), must_serve=False)
    try:
        if receiver.serving:
            receiver.post(store_b.store.orders_snapshot()[0])
    finally:
        code, _, err = receiver.stop()
    assert not receiver.serving, "the receiver served another store's schema"
    assert code == 3, err
    assert pg_rows(pg_url) == before


def test_postgres_profile_and_environment_reach_one_schema(
    run: Any, store_a: Sandbox, store_b: Sandbox, pg_url: str, isolated_home: Path
) -> None:
    config = isolated_home / "config.toml"
    config.write_text('default_profile = "shop"\n' + profile_toml("shop", store_a))
    config.chmod(0o600)
    assert pull(run, {}, pg_url).exit_code == 0
    config.unlink()
    result = pull(run, store_a.env(), pg_url)  # the same store, another state key
    assert result.exit_code == 0, result.stderr
    assert query(pg_url, "SELECT store_key FROM sync_store") == [(identity(store_a),)]
    assert_refused(pull(run, store_b.env(), pg_url), store_a, store_b, "own schema")


def test_postgres_schema_claimed_by_an_older_release_is_adopted(
    run: Any, store_a: Sandbox, store_b: Sandbox, pg_url: str, isolated_home: Path
) -> None:
    config = isolated_home / "config.toml"
    config.write_text('default_profile = "shop"\n' + profile_toml("shop", store_a))
    config.chmod(0o600)
    assert pull(run, {}, pg_url).exit_code == 0
    # as an older release left it: claimed by the run's state key
    query(pg_url, "UPDATE sync_store SET store_key = 'profile:shop'")
    store_a.store.add_order()
    result = run(["pull", "-o", pg_url])  # resumes from the schema's cursor
    assert result.exit_code == 0, result.stderr
    assert "1 orders emitted" in result.stderr
    assert query(pg_url, "SELECT store_key FROM sync_store") == [(identity(store_a),)]
    # another store claimed by its URL key in an older release stays refused
    query(pg_url, "UPDATE sync_store SET store_key = %s", (identity(store_b),))
    assert_refused(pull(run, {}, pg_url), store_b, store_a, "own schema")


# -- two stores opening one empty target at once -----------------------------------------


def test_second_store_that_opened_an_empty_target_is_refused_at_its_write(
    tmp_path: Path, pg_url: str
) -> None:
    # both opened before either wrote: the claim is checked again in the write
    from miva_sync.errors import ConfigError
    from miva_sync.sinks import open_sink
    from miva_sync.store.urls import StoreIdentity

    a = StoreIdentity.of("https://a.example/mm5/json.mvc", "A")
    b = StoreIdentity.of("https://b.example/mm5/json.mvc/", "B")
    for target in (f"sqlite:///{tmp_path / 'x.db'}", pg_url):
        first, second = open_sink(target, store=a), open_sink(target, store=b)
        try:
            first.write([{"id": 1, "dt_updated": 5}])
            first.commit("k", None)
            with pytest.raises(ConfigError, match="https://a.example/mm5/json.mvc"):
                second.write([{"id": 1, "dt_updated": 9}])
        finally:
            first.close()
            second.close()
        if target == pg_url:
            rows = query(pg_url, "SELECT id, dt_updated FROM orders")
        else:
            with sqlite3.connect(tmp_path / "x.db") as conn:
                rows = conn.execute("SELECT id, dt_updated FROM orders").fetchall()
        assert [tuple(r) for r in rows] == [(1, 5)], target
