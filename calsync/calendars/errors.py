"""Exceptions raised by calendar providers and ICS reading.

    CalendarError
    ├── ProviderError                 the remote calendar failed us
    │   ├── Unavailable               network down, timeout, 5xx: retry later
    │   ├── AuthFailed                credentials refused (401/403): the owner must fix them
    │   │   └── GrantRevoked          an OAuth grant was revoked or expired: only a new
    │   │                             consent (reconnecting) restores access
    │   ├── NotACalendar              the URL answers, but not as a CalDAV calendar/server
    │   ├── NotFound                  the href is gone (deleted by someone else)
    │   ├── Conflict                  a conditional write lost (412): re-read and re-apply
    │   └── CursorExpired             the sync cursor was rejected: do a full resync
    └── InvalidCalendarData           one object's iCalendar text cannot be used

Third-party exceptions (caldav, requests, niquests, googleapiclient) are translated at the
provider boundary with the original chained as ``__cause__``; none escapes a provider.
"""

from __future__ import annotations

import errno
import socket
import ssl


class CalendarError(Exception):
    """Base of everything raised by ``calsync.calendars``."""


class ProviderError(CalendarError):
    """A remote calendar operation failed. ``url`` names the calendar or object involved."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class Unavailable(ProviderError):
    """The server could not be reached or failed (network error, timeout, HTTP 5xx)."""


class AuthFailed(ProviderError):
    """The server refused the credentials."""


class GrantRevoked(AuthFailed):
    """The owner's OAuth grant no longer works (revoked, expired, or its client is gone).

    Unlike a refused password, nothing on the server side can bring it back, so callers stop
    using the connection until the owner connects again."""


class NotACalendar(ProviderError):
    """The URL does not lead to a CalDAV server or calendar collection."""


class NotFound(ProviderError):
    """The object at ``url`` does not exist (any more)."""


class Conflict(ProviderError):
    """A conditional write failed: the object changed (If-Match) or exists (If-None-Match)."""


class CursorExpired(ProviderError):
    """The server no longer accepts the sync cursor; the caller must do a full resync."""


class InvalidCalendarData(CalendarError):
    """iCalendar text that cannot be parsed or used; ``href`` names the object when known."""

    def __init__(self, message: str, *, href: str | None = None) -> None:
        super().__init__(message)
        self.href = href


_NETWORK_WORDS = (
    (errno.ECONNREFUSED, "the connection was refused"),
    (errno.ECONNRESET, "the connection was reset"),
    (errno.EHOSTUNREACH, "the host cannot be reached"),
    (errno.ENETUNREACH, "the network cannot be reached"),
    (errno.ETIMEDOUT, "the connection timed out"),
)


def network_reason(exc: BaseException) -> str:
    """What went wrong on the network, in plain words, from a third-party exception and
    whatever it wraps: never a repr, an object address or a library's retry details."""
    chain: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(chain) < 20:
        current = todo.pop(0)
        if any(current is seen for seen in chain):
            continue
        chain.append(current)
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        wrapped += list(current.args)
        todo += [e for e in wrapped if isinstance(e, BaseException)]
    for code, words in _NETWORK_WORDS:
        if any(isinstance(e, OSError) and e.errno == code for e in chain):
            return words
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "the host name could not be resolved"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return "a secure (TLS) connection could not be set up"
    if any(isinstance(e, TimeoutError) for e in chain):
        return "the connection timed out"
    if any("refused" in str(e).lower() for e in chain):  # a library that drops the errno
        return "the connection was refused"
    return "a network error"
