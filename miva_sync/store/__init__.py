"""Talking to Miva: the client (signing, retries), query building, order parsing."""
