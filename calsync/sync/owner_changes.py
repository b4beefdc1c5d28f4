"""What the owner did to booked events in their own calendar, as the poller sees it.

Runs inside the poller's transaction that stores a delta, so a session changes together with
the mirror. Only what the sync *confirms* counts: an event that moved takes its session along;
an event the server reports deleted (or marked cancelled) cancels its session. A poll that
fails changes nothing at all, so an outage can never cancel a booking.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from calsync.calendars.errors import InvalidCalendarData
from calsync.calendars.event_edit import event_times, is_cancelled
from calsync.sync.mirror import ExpandedItem
from calsync.sync.models import (
    Actor,
    BookedSession,
    Booking,
    BookingChange,
    BookingStatus,
    SessionStatus,
)

log = logging.getLogger(__name__)


def _sessions_at(session: Session, connection_id: int, hrefs: Iterable[str]) -> list[BookedSession]:
    hrefs = list(hrefs)
    if not hrefs:
        return []
    return list(
        session.scalars(
            select(BookedSession)
            .options(selectinload(BookedSession.booking).selectinload(Booking.sessions))
            .where(
                BookedSession.connection_id == connection_id,
                BookedSession.href.in_(hrefs),
                BookedSession.status != SessionStatus.CANCELLED,
            )
        )
    )


def apply_owner_changes(
    session: Session, connection_id: int, changed: Sequence[ExpandedItem], removed: Iterable[str]
) -> int:
    """Carry the owner's moves and deletions of booked events over to their sessions.

    Returns how many sessions changed.
    """
    count = 0
    by_href = {item.href: item for item in changed}
    for booked in _sessions_at(session, connection_id, by_href):
        item = by_href[booked.href or ""]
        booked.etag = item.etag
        count += _follow_edit(booked, item)
    for booked in _sessions_at(session, connection_id, removed):
        # The server confirmed the deletion: the owner deleted the event.
        _cancel(booked, "deleted_by_owner", {})
        count += 1
    return count


def _follow_edit(booked: BookedSession, item: ExpandedItem) -> int:
    try:
        cancelled = is_cancelled(item.data)
        times = event_times(item.data)
    except InvalidCalendarData as exc:
        log.warning(
            "booked event %s cannot be read (%s); its session is left as it was", item.href, exc
        )
        return 0
    if cancelled:
        _cancel(booked, "cancelled_by_owner", {})
        return 1
    if times is None or times == (booked.start, booked.end):
        # Our own writes come back this way; a recurring rewrite is not ours to interpret.
        return 0
    old = {"start": booked.start.isoformat(), "end": booked.end.isoformat()}
    booked.start, booked.end = times
    booked.booking.history.append(
        BookingChange(
            actor=Actor.OWNER_CALENDAR,
            action="moved_by_owner",
            session_id=booked.id,
            details={
                "from": old,
                "to": {"start": times[0].isoformat(), "end": times[1].isoformat()},
            },
        )
    )
    booked.booking.version += 1
    return 1


def _cancel(booked: BookedSession, action: str, details: dict[str, str]) -> None:
    booked.status = SessionStatus.CANCELLED
    booking = booked.booking
    booking.history.append(
        BookingChange(
            actor=Actor.OWNER_CALENDAR, action=action, session_id=booked.id, details=details
        )
    )
    booking.version += 1
    if all(s.status is SessionStatus.CANCELLED for s in booking.sessions):
        booking.status = BookingStatus.CANCELLED
