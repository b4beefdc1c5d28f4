"""What the owner did to booked events in their own calendar, as the poller sees it.

Runs inside the poller's transaction that stores a delta, so a session changes together with
the mirror. Only what the sync *confirms* counts: an event that moved takes its session along;
an event the server reports deleted (or marked cancelled) cancels its session. A poll that
fails changes nothing at all, so an outage can never cancel a booking.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from calsync.bookings import notices
from calsync.calendars.errors import InvalidCalendarData
from calsync.calendars.ical.event_edit import event_times, is_cancelled, sequence_of
from calsync.config import Settings
from calsync.store.models import (
    Actor,
    BookedSession,
    Booking,
    BookingChange,
    BookingStatus,
    Change,
    ChangeStatus,
    HistoryAction,
    SessionStatus,
)
from calsync.sync.mirror import ExpandedItem

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
    session: Session,
    settings: Settings,
    connection_id: int,
    changed: Sequence[ExpandedItem],
    removed: Iterable[str],
) -> int:
    """Carry the owner's moves and deletions of booked events over to their sessions, and
    queue the updates the customer's calendar needs. Returns how many sessions changed."""
    count = 0
    by_href = {item.href: item for item in changed}
    sessions = _sessions_at(session, connection_id, by_href)
    in_flight = _being_changed(session, {b.booking_id for b in sessions})
    for booked in sessions:
        item = by_href[booked.href or ""]
        if booked.id in in_flight or _older_than_ours(booked, item.data):
            # A poll can read an event just before our own change reaches it: what it saw
            # is our past, not an edit by the owner.
            continue
        booked.etag = item.etag
        before = (booked.start, booked.end)
        if _follow_edit(booked, item):
            _tell(session, settings, booked, before, item.data)
            count += 1
    for booked in _sessions_at(session, connection_id, removed):
        # The server confirmed the deletion: the owner deleted the event.
        _cancel(booked, HistoryAction.DELETED_BY_OWNER, {})
        _tell(session, settings, booked, None, None)
        count += 1
    return count


def _being_changed(session: Session, booking_ids: set[str]) -> set[int]:
    """Sessions with a change that is recorded but not yet (fully) in the calendar."""
    if not booking_ids:
        return set()
    pending = session.scalars(
        select(Change).where(
            Change.booking_id.in_(booking_ids), Change.status == ChangeStatus.PENDING
        )
    )
    return {item.session_id for change in pending for item in change.items}


def _older_than_ours(booked: BookedSession, data: str) -> bool:
    try:
        return sequence_of(data) < booked.calendar_sequence
    except InvalidCalendarData:
        return False


def _tell(
    session: Session,
    settings: Settings,
    booked: BookedSession,
    before: tuple[datetime, datetime] | None,
    data: str | None,
) -> None:
    # Receivers ignore an update whose SEQUENCE is not higher than the last one they got.
    booked.sequence = max(booked.sequence + 1, sequence_of(data) if data else 0)
    moved = before if booked.status is not SessionStatus.CANCELLED else None
    notices.queue_owner_calendar_change(
        session,
        settings,
        booked.booking,
        booked,
        moved,
        key=f"owner-calendar-{booked.uid}-{booked.sequence}",
    )


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
        _cancel(booked, HistoryAction.CANCELLED_BY_OWNER, {})
        return 1
    if times is None or times == (booked.start, booked.end):
        # Our own writes come back this way; a recurring rewrite is not ours to interpret.
        return 0
    old = {"start": booked.start.isoformat(), "end": booked.end.isoformat()}
    booked.start, booked.end = times
    booked.booking.history.append(
        BookingChange(
            actor=Actor.OWNER_CALENDAR,
            action=HistoryAction.MOVED_BY_OWNER,
            session_id=booked.id,
            details={
                "from": old,
                "to": {"start": times[0].isoformat(), "end": times[1].isoformat()},
            },
        )
    )
    booked.booking.version += 1
    return 1


def _cancel(booked: BookedSession, action: HistoryAction, details: dict[str, str]) -> None:
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
