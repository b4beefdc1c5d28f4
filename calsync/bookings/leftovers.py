"""What a failed booking left in an owner's calendar, removed once the calendar answers again.

A package's events are written one by one; when a write fails the ones already written are
removed at once. When that removal cannot reach the calendar either (it went down between two
writes), the booking fails all the same, and the events left behind are recorded on its
sessions (marked cancelled, so a poll never takes their removal for the owner's doing). The
worker removes them here, each only if it is still as we wrote it (If-Match): an event the owner
changed since is theirs, and stays; so does one whose ETag was never recorded.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import select, update

from calsync.calendars.errors import Conflict, NotFound, ProviderError
from calsync.config import Settings
from calsync.store.db import Database
from calsync.store.models import BookedSession, Booking, BookingStatus, CalendarConnection
from calsync.sync.providers import ProviderFactory, open_provider

log = logging.getLogger(__name__)


def remove_leftovers(
    db: Database, settings: Settings, factory: ProviderFactory | None = None
) -> int:
    """Remove the events failed bookings left in calendars that answer now; returns how many
    were removed. Those whose calendar is still away wait for the next call."""
    with db.reading() as session:
        rows = session.execute(
            select(
                BookedSession.id,
                BookedSession.connection_id,
                BookedSession.href,
                BookedSession.etag,
            )
            .join(Booking, Booking.id == BookedSession.booking_id)
            .where(
                Booking.status == BookingStatus.FAILED,
                BookedSession.href.is_not(None),
                BookedSession.connection_id.is_not(None),
            )
        ).all()
        if not rows:
            return 0
        calendars = {
            c.id: c
            for c in session.scalars(
                select(CalendarConnection).where(
                    CalendarConnection.id.in_({row.connection_id for row in rows})
                )
            )
        }
        for calendar in calendars.values():
            session.expunge(calendar)
    by_calendar: dict[int, list[tuple[int, str, str | None]]] = defaultdict(list)
    for row in rows:
        by_calendar[row.connection_id].append((row.id, row.href, row.etag))
    open_one = factory or open_provider(settings)
    removed = 0
    for connection_id, items in by_calendar.items():
        done: list[int] = []
        try:
            provider = open_one(calendars[connection_id])
        except ProviderError as exc:
            log.info("calendar #%s: failed bookings' events wait: %s", connection_id, exc)
            continue
        try:
            for session_id, href, etag in items:
                if not etag:
                    # Without the ETag we wrote there is no If-Match that proves the event is
                    # still ours as written ("" is no condition to some servers): keep it.
                    log.info(
                        "calendar #%s: %s has no ETag recorded; left as it is", connection_id, href
                    )
                    done.append(session_id)
                    continue
                try:
                    provider.delete(href, etag)
                    removed += 1
                except NotFound:
                    pass  # gone already (the owner deleted it)
                except Conflict:
                    log.info(
                        "calendar #%s: %s was changed since; left as it is", connection_id, href
                    )
                except ProviderError as exc:
                    log.info("calendar #%s: %s waits: %s", connection_id, href, exc)
                    continue
                done.append(session_id)
        finally:
            provider.close()
        if done:
            with db.writing() as session:
                session.execute(
                    update(BookedSession)
                    .where(BookedSession.id.in_(done))
                    .values(href=None, etag=None)
                )
    return removed
