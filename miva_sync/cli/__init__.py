"""The command line: one module per command. Each parses its flags, calls
:mod:`miva_sync.app` once and renders the result; :mod:`miva_sync.cli.main`
turns every error into one stderr line and its exit code.

Only this package imports click. Heavy modules (requests, rich, the sandbox)
are imported inside the commands that need them so ``--version`` and
``--help`` stay instant for cron.
"""

from miva_sync.cli.main import cli, main

__all__ = ["cli", "main"]
