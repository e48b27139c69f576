"""The sync engine: one module per concern over a shared page -> sink -> commit loop."""
