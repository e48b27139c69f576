"""Two numbers read from a list answer's bytes before it is parsed.

The pager (sync/pager.py) sends the next page's query while the current page
is parsed and written, and that query starts from the current page's last
cursor value. Parsing a page takes as long as the store takes to build the
next one, so that value is read from the raw bytes here, as a guess: the pager
uses the early answer only if the query it builds from the parsed page is the
same one, and otherwise discards it. A wrong guess (a nested key of the same
name, a value that is no plain integer, an unusual layout) costs one request,
never a wrong page.
"""

from __future__ import annotations

_BLANK = b" \t\r\n"
_DIGITS = frozenset(b"0123456789")
_MAX_DIGITS = 19  # no cursor value (a time or an order number) is longer


def total_count(content: bytes) -> int | None:
    """The answer's ``total_count``, if it is a plain integer."""
    key = b'"total_count"'
    return _number_after(content, content.find(key), len(key))


def cursor_span(content: bytes, field: str) -> tuple[int, int] | None:
    """The first and the last ``field`` value in the answer, or None.

    In a page sorted by ``field`` these are the page's lowest and highest
    values, as long as no order nests a key of that name.
    """
    key = b'"' + field.encode("ascii") + b'"'
    first = _number_after(content, content.find(key), len(key))
    last = _number_after(content, content.rfind(key), len(key))
    if first is None or last is None:
        return None
    return first, last


def _number_after(content: bytes, at: int, length: int) -> int | None:
    """The non-negative integer after the key at ``at`` (``length`` bytes) and
    a colon; None where the key is a string value, not a key."""
    if at < 0:
        return None
    end = content.find(b":", at + length)
    if end < 0 or content[at + length : end].strip(_BLANK):
        return None
    start = end + 1
    size = len(content)
    while start < size and content[start] in _BLANK:
        start += 1
    stop = start
    while stop < size and content[stop] in _DIGITS and stop - start <= _MAX_DIGITS:
        stop += 1
    if stop == start or stop - start > _MAX_DIGITS:
        return None
    if stop < size and content[stop] not in b",}] \t\r\n":
        return None  # 1.5, 1e9: not a plain integer
    return int(content[start:stop])
