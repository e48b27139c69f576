"""Fast JSON in and out: orjson where it is installed, the standard library otherwise.

Parsing and re-serialising order JSON is most of a client's CPU cost (see
benchmarks/README.md), and orjson does both several times faster than the
standard library. The contract does not move: each output line is the order
object the store returned, with its keys, key order, values and types. Where
orjson would change a value, the standard library handles that document:

* integers beyond 64 bits: ``orjson.loads`` turns them into floats, so a body
  that may hold one (a run of 19+ digits right after ``:``, ``,`` or ``[``) is
  parsed by the standard library, which keeps them as ints; ``orjson.dumps``
  refuses them, and the standard library writes them.
* ``NaN``/``Infinity`` and numbers that overflow a double: orjson refuses to
  parse them (the standard library accepts them), and ``orjson.dumps`` would
  write ``null``; such floats come back as :class:`NonFinite`, which orjson
  refuses to write, so the standard library writes them as before.
* lone surrogates (a store sending ``"\ud800"``): orjson refuses them both
  ways; the standard library reads them, and writes them back as the escapes
  they came as (that one document then all-ASCII, escapes for the rest).

The one visible difference: floats below 1e-4 in magnitude are written in
plain notation by orjson (``0.00001``) and in exponent notation by the
standard library (``1e-05``). Both are the same number to any JSON reader.
"""

from __future__ import annotations

import json
import math
from typing import Any

try:  # orjson is a declared dependency; the fallback keeps a broken install working
    import orjson
except ImportError:  # pragma: no cover - the fallback tests monkeypatch it
    orjson = None  # type: ignore[assignment]

__all__ = [
    "BACKEND",
    "NonFinite",
    "dumps",
    "dumps_document",
    "dumps_std",
    "lines",
    "loads",
    "loads_std",
]

BACKEND = "orjson" if orjson is not None else "json"

# Finding 19-digit runs: map every digit to "0" (bytes.translate runs at memory
# speed) and search for 19 zeros; a regex over the page costs twice the parse.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19
_BEFORE_NUMBER = frozenset(b":,[")
_BLANK = frozenset(b" \t\r\n")


class NonFinite(float):
    """A NaN/Infinity read by the standard-library fallback.

    orjson would write it as ``null``; as a float subclass it refuses to write
    it at all, so :func:`dumps` falls back to the standard library, which
    writes ``NaN``/``Infinity`` as it always did.
    """

    __slots__ = ()


def _std_float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else NonFinite(value)


def _std_constant(text: str) -> float:
    return NonFinite(float(text))


def loads_std(data: bytes | str) -> Any:
    """Parse with the standard library (non-finite floats as :class:`NonFinite`)."""
    try:
        return json.loads(data, parse_float=_std_float, parse_constant=_std_constant)
    except RecursionError:
        # hostile nesting ([[[[…) is invalid input like any other, not a crash
        raise ValueError("JSON nested too deeply") from None


def dumps_std(value: Any) -> bytes:
    """Compact UTF-8 JSON from the standard library, key order kept."""
    return _std_bytes(value, separators=(",", ":"))


def _std_bytes(value: Any, **options: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, **options).encode("utf-8")
    except UnicodeEncodeError:
        # a lone surrogate cannot be UTF-8: keep it as the escape it came as
        return json.dumps(value, ensure_ascii=True, **options).encode("ascii")


def loads(data: bytes) -> Any:
    """Parse a JSON document; raise ``ValueError`` (or ``UnicodeDecodeError``) if invalid."""
    if orjson is None or _may_hold_long_int(data):
        return loads_std(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # NaN, 1e400, lone surrogates: valid to the standard library; anything
        # truly broken raises ValueError from it, exactly as before
        return loads_std(data)


def loads_page(data: bytes) -> Any:
    """:func:`loads` for an answer built around one big list of objects (a page
    of orders), that list parsed a slice of objects at a time.

    orjson sizes its working memory by the document (about eight times its
    length): a 0.5 MB page took 4 MiB at once, the largest part of a pull's
    peak memory (benchmarks/README.md). Here the envelope and slices of about
    PAGE_SLICE bytes are parsed on their own (a few calls per page: one per
    object would cost more than it saves). A slice ends where a ``},{`` is
    followed by the first object's first key, if the objects before it parse
    as a list; if not (that text is inside a string, or a nested list of
    objects), at the next such place. Anything unusual (another layout, a big
    integer, NaN) falls back to :func:`loads` of the whole document, so the
    result is always the same.
    """
    if orjson is None or len(data) < 2 * PAGE_SLICE or _may_hold_long_int(data):
        return loads(data)
    try:
        found = _sliced(data)
    except orjson.JSONDecodeError:
        found = None
    return loads(data) if found is None else found


PAGE_SLICE = 131072


def _sliced(data: bytes) -> Any:
    """The document, its one list of objects parsed in slices (None: no go)."""
    first, last = data.find(b"[{"), data.rfind(b"}]")
    if first < 0 or last < first or data.find(b"[", 0, first) >= 0:
        return None  # no list of objects, or another list before it
    key_end = data.find(b":", first + 2)
    key = data[first + 2 : key_end].strip()
    if key_end < 0 or not (key[:1] == b'"' == key[-1:] and len(key) < 64):
        return None
    envelope = orjson.loads(data[:first] + b"[]" + data[last + 2 :])
    holder = _only_empty_list(envelope)
    if holder is None:
        return None
    opening, start, end = b"{" + key, first + 1, last + 1
    while start < end:
        # the next object that starts with the same key, PAGE_SLICE on
        at = data.find(opening, start + PAGE_SLICE, end)
        while True:
            stop = _object_end_before(data, at) if at >= 0 else end
            if stop is not None:
                try:
                    holder.extend(orjson.loads(b"[" + data[start:stop] + b"]"))
                    break
                except orjson.JSONDecodeError:
                    pass  # inside a string or a nested list: try the next one
            if at < 0:
                return None
            at = data.find(opening, at + 1, end)
        start = at if at >= 0 else end
    if not all(isinstance(value, dict) for value in holder):
        return None
    return envelope


def _object_end_before(data: bytes, at: int) -> int | None:
    """Where the object before ``at`` ends, if only a comma (and blanks) lie
    between them: the offset just past its ``}``."""
    i = at - 1
    while i >= 0 and data[i] in _BLANK:
        i -= 1
    if i < 0 or data[i] != 0x2C:  # ","
        return None
    i -= 1
    while i >= 0 and data[i] in _BLANK:
        i -= 1
    return i + 1 if i >= 0 and data[i] == 0x7D else None  # "}"


def _only_empty_list(envelope: Any) -> list[Any] | None:
    """The one empty list in the parsed envelope, where the objects go."""
    found: list[list[Any]] = []
    todo = [envelope]
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            todo.extend(value.values())
        elif isinstance(value, list) and not value:
            found.append(value)
    return found[0] if len(found) == 1 else None


def _may_hold_long_int(data: bytes) -> bool:
    """Does a number token of 19+ digits (possibly beyond 64 bits) occur?

    Runs of digits inside strings (tracking numbers) are common and harmless,
    so a run counts only when it starts a value: after ``:``, ``,`` or ``[``
    (and an optional minus sign). Digits after ``"``, ``.`` or a letter do not.
    A string like ``"ref: 1234…"`` can still match: that only costs a slower parse.
    """
    digits = data.translate(_DIGITS_AS_ZERO)
    start = digits.find(_LONG_RUN)
    size = len(data)
    while start >= 0:
        i = start - 1  # find() returns the leftmost start: data[i] is no digit
        if i >= 0 and data[i] == 0x2D:  # "-"
            i -= 1
        while i >= 0 and data[i] in _BLANK:
            i -= 1
        if i < 0 or data[i] in _BEFORE_NUMBER:
            return True
        end = start + len(_LONG_RUN)
        while end < size and digits[end] == 0x30:  # skip the rest of this run
            end += 1
        start = digits.find(_LONG_RUN, end)
    return False


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON (separators ``,`` and ``:``, no ASCII escaping), key
    order kept (or sorted: ``sort_keys``).

    The same bytes as :func:`dumps_std` except for floats below 1e-4 (see the
    module docstring); used for request bodies, which are signed as they are
    sent, and for output lines.
    """
    if orjson is not None:
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
        except TypeError:  # JSONEncodeError: a >64-bit int, a NonFinite, a surrogate
            pass
    return _std_bytes(value, separators=(",", ":"), sort_keys=sort_keys)


def lines(values: list[Any]) -> bytes:
    """Each value as :func:`dumps` writes it, one per line, in one buffer.

    Output files are written a page at a time: orjson writes each line with
    its newline (no per-order wrapper call, no second copy to add it); the
    standard library writes a page holding anything orjson refuses.
    """
    if orjson is not None:
        encode, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
        try:
            return b"".join([encode(value, option=newline) for value in values])
        except TypeError:  # JSONEncodeError: see dumps
            pass
    return b"".join([dumps(value) + b"\n" for value in values])


def dumps_document(value: Any) -> bytes:
    """A file people read too (the state file): keys sorted, indented, UTF-8.

    Written on every commit, so orjson where it can; the standard library for
    what orjson refuses, as in :func:`dumps`.
    """
    if orjson is not None:
        try:
            return orjson.dumps(
                value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
            )
        except TypeError:
            pass
    return _std_bytes(value, indent=2, sort_keys=True)
