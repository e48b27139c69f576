"""``python -m miva_sync``."""

from miva_sync.cli import main

main()
