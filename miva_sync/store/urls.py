"""URLs that may carry a password (user info, ``?password=``), shown without it.

A store behind HTTP basic auth (a staging site) and a PostgreSQL output both
put passwords into URLs, and URLs end up in messages, logs and ``config show``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
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


# -- store identity ---------------------------------------------------------------

# The built-in sandbox (``--sandbox``) listens on a new port every run, so its
# identity is fixed, like its state key (app.session.SANDBOX_STORE_KEY).
SANDBOX_IDENTITY = "sandbox"


@dataclass(frozen=True)
class StoreIdentity:
    """Which store's orders a database target holds (issue 19).

    ``value`` is the normalised store URL plus the store code
    (``https://shop.example.com/mm5/json.mvc#S01``): never the profile name,
    so renaming a profile, or moving between a profile and environment
    settings, still reaches the same database. ``normalise_url`` keeps scheme,
    host, port and path only, so no password of the URL can end up in a
    database or a message. ``aliases`` are names a database written before
    identities existed may hold for this store (the run's state key): such a
    database is adopted, not refused.
    """

    value: str
    aliases: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, url: str | None, store_code: str | None, *, aliases: Iterable[str] = ()
    ) -> StoreIdentity:
        # the very text of the URL-based state key, so a PostgreSQL schema
        # claimed by that key before is recognised
        from miva_sync.config import url_key

        value = url_key(url, store_code)
        return cls(value, frozenset(aliases) - {value})

    @classmethod
    def sandbox(cls) -> StoreIdentity:
        return cls(SANDBOX_IDENTITY)

    def owns(self, recorded: str) -> bool:
        """Is ``recorded`` (what a database holds) this store?"""
        return recorded == self.value or recorded in self.aliases

    def describe(self) -> str:
        return describe_store(self.value)


def describe_store(recorded: str) -> str:
    """A recorded identity (or an older database's state key) for a message."""
    if recorded == SANDBOX_IDENTITY:
        return "the built-in sandbox (--sandbox)"
    if recorded.startswith("profile:"):
        return f"the store of profile {recorded[len('profile:') :]!r}"
    url, hash_, code = recorded.partition("#")
    if "://" in url and hash_:
        return f"{url} (store code {code or '(none)'})"
    return repr(recorded)


def is_identity(recorded: str) -> bool:
    """Does ``recorded`` name a store by URL and code (not by a profile)?"""
    return recorded == SANDBOX_IDENTITY or ("://" in recorded and "#" in recorded)
