"""URLs that may carry a password (user info, ``?password=``), shown without it.

A store behind HTTP basic auth (a staging site) and a PostgreSQL output both
put passwords into URLs, and URLs end up in messages, logs and ``config show``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

# URL parameters that hold a secret (libpq's, the key file's passphrase too)
SECRET_PARAMS = frozenset({"password", "sslpassword"})


def redact_url(url: str) -> str:
    """The URL with any password (user info, ``?password=``, ``?sslpassword=``)
    replaced by ``***``, for messages, logs and the state file; a URL without
    one comes back exactly as it was."""
    if not url_passwords(url):
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rsplit('@', 1)[1]}"
    params = [
        (n, "***" if n in SECRET_PARAMS else v)
        for n, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    query = urlencode(params, quote_via=quote, safe="*") if params else parts.query
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def url_passwords(url: str) -> list[str]:
    """The passwords a URL carries, to scrub from any text that might echo them."""
    parts = urlsplit(url)
    found = [unquote(parts.password)] if parts.password else []
    found += [v for n, v in parse_qsl(parts.query) if n in SECRET_PARAMS and v]
    return found


def one_line_without(exc: BaseException, secrets: Iterable[str]) -> str:
    """An error's message on one line, every secret in it replaced by ``***``
    (a database driver may quote the connection string back)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
