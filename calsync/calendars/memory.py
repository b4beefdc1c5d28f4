"""An in-memory calendar provider: a real calendar, kept in a dict, for tests and the demo.

It behaves like a careful CalDAV server: conditional writes (If-None-Match / If-Match), ETags
that change on every write, a change log with tombstones behind incremental cursors, cursors
that can be made to expire, and one UID per object. Tests about calsync's own logic use it
instead of a server; ``tests/support/provider_contract.py`` checks that it keeps the same
contract as the CalDAV provider.

Two switches simulate trouble: ``available = False`` makes every call raise Unavailable until
it is set back, and ``fail_next(exc)`` makes the next call raise ``exc`` once. The owner's own
edits (which bypass calsync's conditions) are ``owner_put`` and ``owner_delete``.

Unlike the other providers, one instance may be shared by several threads: a lock guards it.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

from calsync.calendars.base import (
    UID,
    CalendarItem,
    CalendarProvider,
    Cursor,
    Delta,
    ETag,
    Href,
    Interval,
)
from calsync.calendars.errors import (
    Conflict,
    CursorExpired,
    InvalidCalendarData,
    NotFound,
    ProviderError,
    Unavailable,
)
from calsync.calendars.ical.busy import BusyRules, busy_intervals

_UID_LINE = re.compile(r"^UID:(.*?)\r?$", re.MULTILINE)


def _uids(data: str) -> set[str]:
    return {m.group(1).strip() for m in _UID_LINE.finditer(data)}


class MemoryProvider(CalendarProvider):
    """One calendar held in memory. ``path`` is the collection path its hrefs start with."""

    def __init__(self, path: str = "/memory/calendar/", *, timezone: str | None = None) -> None:
        self.path = path if path.endswith("/") else path + "/"
        self.available = True
        self._tz = timezone
        self._lock = threading.RLock()
        self._items: dict[Href, tuple[ETag, str]] = {}
        # The change log: for each href, the sequence number of its last change. A deleted href
        # stays here (a tombstone) until the cursors expire.
        self._changed_at: dict[Href, int] = {}
        self._seq = 0
        # Cursors carry the epoch they were issued in; expire_cursors() starts a new one.
        self._epoch = uuid.uuid4().hex[:8]
        self._failures: list[ProviderError] = []
        self._calls = 0

    # -- test switches ------------------------------------------------------------------------

    def fail_next(self, exc: ProviderError) -> None:
        """Make the next call (any method) raise ``exc``, once. Calls queue up in order."""
        with self._lock:
            self._failures.append(exc)

    def expire_cursors(self) -> None:
        """Forget every cursor issued so far (and the tombstones), as a server forgetting its
        sync tokens does: the next ``changes`` with an old cursor raises CursorExpired."""
        with self._lock:
            self._epoch = uuid.uuid4().hex[:8]
            self._changed_at = {h: s for h, s in self._changed_at.items() if h in self._items}

    @property
    def request_count(self) -> int:
        """Calls made to this provider (each stands for one request), like CalDAVProvider's."""
        return self._calls

    def owner_put(self, href_or_uid: str, data: str) -> CalendarItem:
        """Store ``data`` unconditionally, as the owner's own calendar app would."""
        with self._lock:
            href = href_or_uid if href_or_uid.startswith("/") else self._href(href_or_uid)
            return CalendarItem(href, self._store(href, data), data)

    def owner_delete(self, href: Href) -> None:
        """Delete ``href`` unconditionally, as the owner's own calendar app would."""
        with self._lock:
            if href not in self._items:
                raise NotFound(f"{href} does not exist", url=href)
            self._remove(href)

    def snapshot(self) -> dict[Href, CalendarItem]:
        """Everything stored now, by href (for assertions)."""
        with self._lock:
            return {h: CalendarItem(h, e, d) for h, (e, d) in self._items.items()}

    # -- the provider interface ---------------------------------------------------------------

    def changes(self, cursor: Cursor | None, known: Mapping[Href, ETag]) -> Delta:
        with self._lock:
            self._enter()
            if cursor is None:
                upserted = [self._item(h) for h, (e, _) in self._items.items() if known.get(h) != e]
                removed = [h for h in known if h not in self._items]
                return Delta(upserted, removed, self._cursor(), full=True)
            since = self._parse(cursor)
            upserted, removed = [], []
            for href, seq in self._changed_at.items():
                if seq <= since:
                    continue
                if href in self._items:
                    if known.get(href) != self._items[href][0]:
                        upserted.append(self._item(href))
                elif href in known:
                    removed.append(href)
            return Delta(upserted, removed, self._cursor(), full=False)

    def get(self, href: Href) -> CalendarItem:
        with self._lock:
            self._enter()
            if href not in self._items:
                raise NotFound(f"The event {href} is not in the calendar.", url=href)
            return self._item(href)

    def create(self, uid: UID, data: str) -> CalendarItem:
        with self._lock:
            self._enter()
            href = self._href(uid)
            # Like a CalDAV server: the object name is taken, or another object has the UID.
            if href in self._items or any(_uids(d) & _uids(data) for _, d in self._items.values()):
                raise Conflict(f"An event with UID {uid} already exists.", url=href)
            return CalendarItem(href, self._store(href, data), data)

    def update(self, href: Href, data: str, etag: ETag) -> ETag:
        with self._lock:
            self._enter()
            self._check(href, etag)
            return self._store(href, data)

    def delete(self, href: Href, etag: ETag) -> None:
        with self._lock:
            self._enter()
            self._check(href, etag)
            self._remove(href)

    def busy(self, start: datetime, end: datetime) -> list[Interval]:
        """Busy time from the events held now, read the way the mirror reads a calendar in
        this zone (no owner addresses: a declined event counts, as on a server's free/busy).
        Stands in for a server with live free/busy (Google) in tests of the live check."""
        rules = BusyRules(timezone=self._tz or "UTC")
        with self._lock:
            self._enter()
            texts = [(href, data) for href, (_, data) in self._items.items()]
        found: list[Interval] = []
        for href, data in texts:
            try:
                found += busy_intervals(data, start, end, rules, href=href)
            except InvalidCalendarData:
                continue  # a server's free/busy skips what it cannot read, too
        return sorted((i for i in found if i.start < end and i.end > start), key=_span)

    def timezone(self) -> str | None:
        return self._tz

    # -- internals (called with the lock held) ------------------------------------------------

    def _enter(self) -> None:
        self._calls += 1
        if self._failures:
            raise self._failures.pop(0)
        if not self.available:
            raise Unavailable(
                "The in-memory calendar is switched off (available = False).", url=self.path
            )

    def _href(self, uid: UID) -> Href:
        return self.path + quote(uid, safe="") + ".ics"

    def _item(self, href: Href) -> CalendarItem:
        etag, data = self._items[href]
        return CalendarItem(href, etag, data)

    def _store(self, href: Href, data: str) -> ETag:
        self._seq += 1
        etag = f'"m{self._seq}"'
        self._items[href] = (etag, data)
        self._changed_at[href] = self._seq
        return etag

    def _remove(self, href: Href) -> None:
        self._seq += 1
        del self._items[href]
        self._changed_at[href] = self._seq

    def _check(self, href: Href, etag: ETag) -> None:
        if href not in self._items:
            raise NotFound(f"The event {href} was deleted.", url=href)
        if self._items[href][0] != etag:
            raise Conflict(f"The event {href} changed since {etag}.", url=href)

    def _cursor(self) -> Cursor:
        return f"mem:{self._epoch}:{self._seq}"

    def _parse(self, cursor: Cursor) -> int:
        prefix, _, seq = cursor.rpartition(":")
        if prefix != f"mem:{self._epoch}" or not seq.isdigit() or int(seq) > self._seq:
            raise CursorExpired(f"The cursor {cursor!r} is no longer valid.", url=self.path)
        return int(seq)


def _span(interval: Interval) -> tuple[datetime, datetime]:
    return interval.start, interval.end
