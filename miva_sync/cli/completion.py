"""Shell completion for the values only this machine knows: profile names from
the config file (``--profile``) and queue codes from the state file and the
profiles (``--queue``, ``--received-queue``).

Click calls these while a person presses Tab, so they read one or two small
files at most, never load the settings (which may warn, resolve secrets or
fail), never raise and never print: a missing, unreadable or broken file
completes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

# Larger files are not read while the user waits for Tab (a state file holding
# a large dedupe window stays well under this).
MAX_CONFIG_BYTES = 1 << 20
MAX_STATE_BYTES = 32 << 20


def profile_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[str]:
    """``--profile``: the profiles of the config file."""
    try:
        profiles = _config().get("profiles")
        if not isinstance(profiles, dict):
            return []
        names = sorted(
            n for n, section in profiles.items() if isinstance(section, dict)
        )
        return [n for n in names if n.startswith(incomplete)]
    except Exception:  # noqa: BLE001 - completion must never fail the shell
        return []


def queue_codes(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[str]:
    """``--queue``: every queue code the state file has seen, and the profiles'."""
    try:
        document = _config()
        codes = set(_profile_queues(document))
        path = _state_path(ctx, document)
        if path is not None:
            codes.update(_state_queues(_read_json(path)))
        return [c for c in sorted(codes) if c.startswith(incomplete)]
    except Exception:  # noqa: BLE001 - completion must never fail the shell
        return []


def _config() -> dict[str, Any]:
    import tomllib

    from miva_sync.config import config_path, home_from

    text = _read_text(config_path(home_from()), MAX_CONFIG_BYTES)
    return tomllib.loads(text) if text else {}


def _read_text(path: Path, limit: int) -> str | None:
    try:
        if path.stat().st_size > limit:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _read_json(path: Path) -> Any:
    import json

    text = _read_text(path, MAX_STATE_BYTES)
    return json.loads(text) if text else None


def _chosen_profile(ctx: click.Context, document: dict[str, Any]) -> Any:
    """The profile the command line typed so far names (flag > env > default)."""
    from miva_sync.cli.common import shared

    return (
        shared(ctx).get("profile")
        or os.environ.get("MIVA_SYNC_PROFILE")
        or document.get("default_profile")
    )


def _state_path(ctx: click.Context, document: dict[str, Any]) -> Path | None:
    """The state file as the settings would find it: --state-file, then
    MIVA_SYNC_STATE_FILE, then the profile's state_file, then the default."""
    from miva_sync.cli.common import shared
    from miva_sync.config import STATE_FILE_NAME, home_from, state_dir

    explicit = shared(ctx).get("state_file") or os.environ.get("MIVA_SYNC_STATE_FILE")
    if not explicit:
        profiles = document.get("profiles")
        section = (
            profiles.get(_chosen_profile(ctx, document))
            if isinstance(profiles, dict)
            else None
        )
        if isinstance(section, dict):
            explicit = section.get("state_file")
    if explicit:
        return Path(str(explicit)).expanduser()
    return state_dir(home_from()) / STATE_FILE_NAME


def _profile_queues(document: dict[str, Any]) -> Iterator[str]:
    profiles = document.get("profiles")
    for section in profiles.values() if isinstance(profiles, dict) else ():
        if isinstance(section, dict) and isinstance(section.get("queue"), str):
            yield section["queue"]


def _state_queues(document: Any) -> Iterator[str]:
    """Queue codes in every store's queue cursor (and the ones it replaced)."""
    stores = document.get("stores") if isinstance(document, dict) else None
    for record in stores.values() if isinstance(stores, dict) else ():
        cursors = record.get("cursors") if isinstance(record, dict) else None
        cursor = cursors.get("queue") if isinstance(cursors, dict) else None
        for _ in range(10):  # a hand-edited file may chain "previous" far
            if not isinstance(cursor, dict):
                break
            for key in ("queue_code", "received_queue"):
                if isinstance(cursor.get(key), str) and cursor[key]:
                    yield cursor[key]
            cursor = cursor.get("previous")
