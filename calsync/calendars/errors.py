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
