"""The provider interface every calendar backend implements.

Glossary
--------
calendar  a collection of events on a server (a CalDAV collection, a Google calendar id).
href      where the provider keeps one item: a URL path on CalDAV, an event id on Google.
          Stable while the item exists; the key for get/update/delete.
etag      an opaque version of one item; it changes whenever the item does. Writes are
          conditional on it (If-Match), so an edit by the owner is never overwritten.
uid       the iCalendar UID. It never changes for a session, even when its href might
          (it is what invites and the owner's calendar agree on).
item      one stored object: href + etag + iCalendar text (a VCALENDAR with one UID, which may
          hold a recurring master and its overridden instances).
cursor    an opaque incremental-sync position (CalDAV sync-token, Google syncToken). ``None``
          means "from scratch". It only advances together with the delta it produced.
delta     what changed since a cursor: items added or changed, hrefs removed, the next cursor.
interval  a half-open [start, end) span of aware UTC datetimes.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

Href: TypeAlias = str
ETag: TypeAlias = str
UID: TypeAlias = str
Cursor: TypeAlias = str


@dataclass(frozen=True, slots=True)
class CalendarItem:
    """One object as the provider holds it."""

    href: Href
    etag: ETag
    data: str


@dataclass(frozen=True, slots=True)
class Interval:
    """A half-open span [start, end) of aware datetimes (UTC by convention)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("Interval needs aware datetimes")
        if self.end < self.start:
            raise ValueError(f"Interval ends before it starts: {self.start} > {self.end}")


@dataclass(frozen=True, slots=True)
class Delta:
    """The result of one ``changes`` call.

    ``upserted`` are items that are new or whose etag differs from the one the caller knew;
    ``removed`` are hrefs the caller knew that are gone. ``full`` is True when the delta came
    from a complete listing (first sync, expired cursor, or a server without sync support);
    then ``removed`` holds every known href that was not listed.
    """

    upserted: list[CalendarItem] = field(default_factory=list)
    removed: list[Href] = field(default_factory=list)
    cursor: Cursor | None = None
    full: bool = False


@dataclass(frozen=True, slots=True)
class CalendarInfo:
    """A calendar found on a server, as offered to the owner when connecting."""

    url: str
    name: str
    timezone: str | None = None


class CalendarProvider(abc.ABC):
    """One connected calendar. Implementations are synchronous and not thread-safe:
    use one instance per thread. Every method raises only ``ProviderError`` subclasses."""

    @abc.abstractmethod
    def changes(self, cursor: Cursor | None, known: Mapping[Href, ETag]) -> Delta:
        """What changed since ``cursor`` (``None``: everything, reconciled against ``known``).

        Raises CursorExpired when the cursor is rejected; the caller then calls again with
        ``cursor=None`` and the same ``known`` map, which yields a full, reconciled delta.
        """

    def changes_arriving(
        self,
        cursor: Cursor | None,
        known: Mapping[Href, ETag],
        arrived: Callable[[Sequence[CalendarItem]], None],
    ) -> Delta:
        """``changes``, also handing its upserted items to ``arrived`` part by part, as they
        are read, so the caller can work on them while the provider waits for the rest (the
        CalDAV provider reads a large delta in several requests). Every upserted item is
        handed over once; raises as ``changes``. By default all at once, at the end."""
        delta = self.changes(cursor, known)
        arrived(delta.upserted)
        return delta

    @abc.abstractmethod
    def get(self, href: Href) -> CalendarItem:
        """The current item at ``href``. Raises NotFound."""

    @abc.abstractmethod
    def create(self, uid: UID, data: str) -> CalendarItem:
        """Store a new item; never overwrites (If-None-Match). Raises Conflict if it exists."""

    @abc.abstractmethod
    def update(self, href: Href, data: str, etag: ETag) -> ETag:
        """Replace the item if it is still at ``etag`` (If-Match); returns the new etag.

        Raises Conflict when the item changed since ``etag``, NotFound when it is gone.
        """

    @abc.abstractmethod
    def delete(self, href: Href, etag: ETag) -> None:
        """Delete the item if it is still at ``etag``. Raises Conflict, NotFound."""

    def busy(self, start: datetime, end: datetime) -> list[Interval] | None:
        """The server's own free/busy answer for ``[start, end)`` (aware datetimes), asked
        live; None when the server has none to give (CalDAV: calsync's mirror is all there
        is). Raises ProviderError when the server has an answer but cannot give it now."""
        return None

    def timezone(self) -> str | None:
        """The calendar's IANA zone for floating times, if the server says."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
