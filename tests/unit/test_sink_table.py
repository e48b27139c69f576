"""One table chooses the class behind ``-o``; database drivers load only when used."""

from __future__ import annotations

from pathlib import Path

import pytest

from miva_sync.errors import UsageError
from miva_sync.sinks import FORMATS, POSTGRES, SCHEMES, kind_of, open_sink
from miva_sync.sinks.database import keeps_stored
from miva_sync.sinks.directory import DirectorySink
from miva_sync.sinks.jsonl import FileSink, StdoutSink
from miva_sync.sinks.singer import SingerSink
from miva_sync.sinks.sqlite import SqliteSink

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("target", "fmt", "expected"),
    [
        ("-", "jsonl", StdoutSink),
        ("-", "singer", SingerSink),
        ("{tmp}/orders.jsonl", "jsonl", FileSink),
        ("{tmp}/orders.jsonl", "singer", SingerSink),
        ("{tmp}/orders/", "jsonl", DirectorySink),
        ("{tmp}", "jsonl", DirectorySink),  # an existing folder, without the slash
        ("sqlite:///{tmp}/orders.db", "jsonl", SqliteSink),
    ],
)
def test_sink_table_opens_the_class_of_each_target_form(
    tmp_path: Path, target: str, fmt: str, expected: type
) -> None:
    sink = open_sink(target.format(tmp=tmp_path), fmt=fmt)
    try:
        assert type(sink) is expected
    finally:
        sink.close()


def test_sink_table_reads_postgres_urls_by_scheme() -> None:
    assert kind_of("postgresql://u@h/db?schema=a") is POSTGRES
    assert kind_of("postgres://u@h/db") is POSTGRES
    assert set(SCHEMES) == {"sqlite:///", "postgresql://", "postgres://"}


@pytest.mark.parametrize(
    ("target", "fmt", "message"),
    [
        (
            "mysql://h/db",
            "jsonl",
            "unknown output mysql://; use -, FILE.jsonl, DIR/, sqlite:///PATH "
            "or postgresql://…",
        ),
        ("sqlite://x.db", "jsonl", "unknown output sqlite://; use -"),
        ("-", "csv", "unknown format 'csv'; use jsonl or singer"),
        (
            "sqlite:///x.db",
            "singer",
            "--format singer is for stdout and files; a SQLite database stores "
            "orders, not a stream: leave --format out",
        ),
        (
            "postgresql://u@h/db",
            "singer",
            "--format singer is for stdout and files; a PostgreSQL database "
            "stores orders, not a stream: leave --format out",
        ),
        ("{tmp}/d/", "singer", "--format singer is for stdout and files; a folder"),
    ],
)
def test_sink_table_refuses_what_it_cannot_open(
    tmp_path: Path, target: str, fmt: str, message: str
) -> None:
    with pytest.raises(UsageError) as refused:
        open_sink(target.format(tmp=tmp_path), fmt=fmt)
    assert str(refused.value).startswith(message)
    assert not (tmp_path / "d").exists()  # refused before anything was created


def test_sink_table_names_classes_that_exist() -> None:
    for kind in {*SCHEMES.values(), *(k for k in FORMATS.values() if k)}:
        cls = kind.load()
        for method in ("write", "commit", "load_checkpoint", "close"):
            assert callable(getattr(cls, method, None)), (kind.name, method)



@pytest.mark.parametrize(
    ("stored", "new", "kept"),
    [
        (200, 100, True),  # an older version never replaces a newer one
        (200, 200, True),  # the same version again: who delivered it first stays
        (100, 200, False),
        (None, 100, False),  # nothing to compare with: replaced
        (100, None, False),
    ],
)
def test_sink_table_newest_wins_rule(
    stored: int | None, new: int | None, kept: bool
) -> None:
    assert keeps_stored(stored, new) is kept
