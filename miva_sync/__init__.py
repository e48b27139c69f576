"""miva-sync: get every order out of a Miva Merchant store, safely, from cron.

The public API is exported lazily so that ``miva-sync --version`` and ``--help``
never import requests or rich.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "MivaClient": "miva_sync.store.client",
    "Settings": "miva_sync.config",
    "load_settings": "miva_sync.config",
    "ListQuery": "miva_sync.store.query",
    "MivaSyncError": "miva_sync.errors",
    "StoreError": "miva_sync.errors",
    "AuthError": "miva_sync.errors",
    "ApiError": "miva_sync.errors",
    "TransientError": "miva_sync.errors",
    "ConfigError": "miva_sync.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'miva_sync' has no attribute {name!r}")
    return getattr(import_module(module), name)
