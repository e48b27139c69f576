"""The use cases: one function per command, fed a typed request."""
