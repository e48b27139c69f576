"""``miva-sync check`` probes, end to end through the CLI against unfriendly sandboxes.

Each sandbox switch (miva_sync/sandbox/quirks.py) is one way a real store may
differ from the facts docs/miva-api.md leaves unconfirmed; ``check --json``
must give each probe the right machine value and never claim more than the
store proved.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from miva_sync.sandbox.quirks import Quirks

UPDATED_PROBES = (
    "dt_updated_field",
    "dt_updated_filter",
    "sort_dt_updated",
    "sort_dt_updated_desc",
)


def check_json(run: Any, sandbox: Sandbox, *args: str) -> tuple[int, dict[str, Any]]:
    result = run(["check", "--json", *args], env=sandbox.env())
    return result.exit_code, json.loads(result.stdout)


def values(data: dict[str, Any]) -> dict[str, str]:
    return {name: probe["value"] for name, probe in data["probes"].items()}


def status(data: dict[str, Any], name: str) -> str:
    return next(c["status"] for c in data["checks"] if c["name"] == name)


@pytest.fixture
def store() -> Iterator[Sandbox]:
    with Sandbox(orders=30, seed=5) as sb:
        yield sb


def test_probes_on_a_friendly_store_prove_updated_mode(
    run: Any, store: Sandbox
) -> None:
    code, data = check_json(run, store)
    assert code == 0
    assert values(data) == dict.fromkeys(UPDATED_PROBES, "supported")
    assert data["updated_mode"] == "supported"
    assert data["suggested_mode"].startswith("updated")
    assert all(data["probes"][p]["reason"] for p in UPDATED_PROBES)


def test_store_ignoring_the_dt_updated_sort_is_unsupported(run: Any) -> None:
    quirks = Quirks.from_names(["ignore-sort-dt-updated"])
    with Sandbox(orders=30, seed=5, quirks=quirks) as sb:
        code, data = check_json(run, sb)
        strict = run(["check", "--require", "updated"], env=sb.env())
    got = values(data)
    assert got["dt_updated_field"] == "supported"
    assert got["dt_updated_filter"] == "supported"
    assert got["sort_dt_updated"] == "unsupported"
    assert got["sort_dt_updated_desc"] == "unsupported"
    assert "ignores the sort" in data["probes"]["sort_dt_updated_desc"]["reason"]
    assert data["updated_mode"] == "unsupported"
    assert code == 0  # informational unless required
    assert status(data, "sort -dt_updated") == "warn"
    # updated mode is not proven: check points to the other modes
    assert data["suggested_mode"] == "number"
    assert "--updated" not in data["suggested_command"]
    assert "--from-order" in data["suggested_command"]
    assert "check --queue" in data["suggestion"]
    assert strict.exit_code == 5
    assert "sort dt_updated" in strict.stderr.splitlines()[-1]


def test_old_store_that_ignores_unknown_fields(run: Any) -> None:
    # before 10.03 and lenient: the dt_updated filter is silently dropped, so it
    # answers every order; its rows carry no dt_updated to check a sort against
    quirks = Quirks.from_names(["lenient-fields"])
    with Sandbox(orders=30, seed=5, supports_dt_updated=False, quirks=quirks) as sb:
        code, data = check_json(run, sb)
    got = values(data)
    assert got["dt_updated_field"] == "unsupported"
    assert got["dt_updated_filter"] == "unsupported"
    assert "ignores the filter" in data["probes"]["dt_updated_filter"]["reason"]
    assert got["sort_dt_updated"] == "unknown"
    assert got["sort_dt_updated_desc"] == "unknown"
    assert data["updated_mode"] == "unsupported"
    assert data["dt_updated_searchable"] is False
    assert code == 0
    assert status(data, "dt_updated filter") == "info"
    assert status(data, "sort dt_updated") == "warn"  # unknown is never ok
    assert "--updated" not in data["suggested_command"]


def test_old_strict_store_refuses_every_probe(run: Any) -> None:
    with Sandbox(orders=30, seed=5, supports_dt_updated=False) as sb:
        code, data = check_json(run, sb)
    assert values(data) == dict.fromkeys(UPDATED_PROBES, "unsupported")
    # the store's own code and words are in the reasons
    assert "invalid_search_field" in data["probes"]["dt_updated_filter"]["reason"]
    assert "invalid_sort" in data["probes"]["sort_dt_updated"]["reason"]
    assert code == 0
    assert data["updated_mode"] == "unsupported"


def test_too_few_distinct_values_is_unknown(run: Any) -> None:
    with Sandbox(orders=1, seed=5) as sb:
        code, data = check_json(run, sb)
    got = values(data)
    assert got["dt_updated_field"] == "supported"
    assert got["sort_dt_updated"] == "unknown"
    assert "too few distinct" in data["probes"]["sort_dt_updated"]["reason"]
    assert data["updated_mode"] == "unknown"
    assert code == 0
    assert "--updated" not in data["suggested_command"]


def test_known_queue_is_supported_when_the_store_refuses_unknown_codes(
    run: Any, store: Sandbox
) -> None:
    code, data = check_json(run, store, "--queue", store.store.default_queue)
    assert code == 0
    assert data["probes"]["queue"]["value"] == "supported"
    assert status(data, "queue") == "ok"
    assert data["suggested_mode"].startswith("queue")


def test_unknown_queue_on_a_strict_store_is_unsupported_with_the_stores_words(
    run: Any, store: Sandbox
) -> None:
    code, data = check_json(run, store, "--queue", "no_such_queue")
    assert code == 0
    probe = data["probes"]["queue"]
    assert probe["value"] == "unsupported"
    assert "Invalid queue code 'no_such_queue'" in probe["reason"]
    assert "case-sensitive" in probe["reason"]


def test_store_answering_unknown_queues_empty_cannot_tell(run: Any) -> None:
    quirks = Quirks.from_names(["unknown-queue-empty"])
    with Sandbox(orders=30, seed=5, quirks=quirks) as sb:
        right = sb.store.default_queue
        code, typo = check_json(run, sb, "--queue", right.upper())
        _, known = check_json(run, sb, "--queue", right)
        strict = run(
            ["check", "--queue", right.upper(), "--require", "queue"], env=sb.env()
        )
    for data in (typo, known):
        probe = data["probes"]["queue"]
        assert probe["value"] == "unknown"
        assert "cannot tell" in probe["reason"]
        assert "case-sensitive" in probe["reason"]
        assert status(data, "queue") == "warn"
    assert code == 0
    assert typo["suggested_mode"] != "queue"
    assert strict.exit_code == 0  # nothing was disproved: a warning, not a failure
    assert "cannot tell" in strict.stderr


def test_check_probes_send_no_order_changing_request(run: Any, store: Sandbox) -> None:
    store.store.create_queue("fast", ack=False)
    before = set(store.store.queue_ids("fast"))
    code, _ = check_json(run, store, "--queue", "fast")
    assert code == 0
    assert set(store.store.queue_ids("fast")) == before and before


def test_sort_ignored_by_a_store_whose_id_order_looks_sorted(
    run: Any, api: Any, store_env: dict[str, str]
) -> None:
    """A store that ignores Sort answers in id order; where dt_updated happens
    to grow with the id, the ascending page alone looks sorted. The same rows
    in the same order for both directions give it away."""
    import responses

    from tests.support.fakes import STORE_URL

    rows = [{"id": i, "dt_updated": 1_700_000_000 + i} for i in range(1, 21)]

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        search = [f for f in body.get("Filter", []) if f["name"] == "search"]
        future = search and int(search[0]["value"][0]["value"]) > 1_800_000_000
        data = [] if future else rows[: body["Count"]]
        total = 0 if future else len(rows)
        page = {"total_count": total, "start_offset": 0, "data": data}
        return 200, {}, json.dumps({"success": 1, "data": page})

    api.add_callback(responses.POST, STORE_URL, callback=answer)
    result = run(["check", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    got = values(data)
    assert got["dt_updated_field"] == "supported"
    assert got["dt_updated_filter"] == "supported"
    assert got["sort_dt_updated"] == "unsupported"
    assert got["sort_dt_updated_desc"] == "unsupported"
    assert "same rows in the same order" in data["probes"]["sort_dt_updated"]["reason"]
    assert data["updated_mode"] == "unsupported"
