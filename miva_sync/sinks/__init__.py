"""Output targets. Every mode writes through one :class:`~miva_sync.sinks.base.Sink`."""

from __future__ import annotations

from pathlib import Path

from miva_sync.errors import UsageError
from miva_sync.sinks.base import Sink


def open_sink(target: str) -> Sink:
    """Open the output named by ``-o``: ``-`` (stdout) or ``FILE.jsonl``."""
    from miva_sync.sinks.jsonl import FileSink, StdoutSink

    if target == "-":
        return StdoutSink()
    if "://" in target:
        scheme = target.split("://", 1)[0]
        raise UsageError(
            f"output {scheme}:// is not supported yet; use - or FILE.jsonl"
        )
    if target.endswith("/") or Path(target).is_dir():
        raise UsageError("folder outputs are not supported yet; use - or FILE.jsonl")
    return FileSink(Path(target))
