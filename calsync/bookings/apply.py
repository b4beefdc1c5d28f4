"""Applying a recorded change to the owner's calendar (the second half of the change engine).

Each session's event is changed with a conditional write that touches only its times (or its
cancellation marks), re-read and re-applied when the owner edits it at the same moment. The
step is idempotent (an event already showing the change is left alone), so a change left
*pending* by an outage is simply applied again later by ``apply_pending``. When the owner
moved or deleted the event first, we stop for that event (status *conflict*). The change's
emails are released once it is applied, and dropped when the owner got there first.

The changes of one booking are applied in the order they were recorded, never one before an
earlier one that is still pending. That is how our own writes are told from the owner's edits:
each change expects the event to show its ``from`` times, which are the times the previous
change of that session wrote (or the booking's, for the first), so a change can only find
them once the previous one is in the calendar.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from calsync.bookings.calendar_writes import patch_event
from calsync.bookings.held import event_zone
from calsync.calendars.base import CalendarItem, CalendarProvider
from calsync.calendars.errors import NotFound, ProviderError
from calsync.calendars.ical.event_edit import (
    event_times,
    is_cancelled,
    sequence_of,
    with_cancelled,
    with_times,
)
from calsync.config import Settings
from calsync.notify import outbox
from calsync.observe.logs import log_context
from calsync.store import leases
from calsync.store.change_items import ChangeItem
from calsync.store.db import Database
from calsync.store.models import (
    BookedSession,
    Booking,
    CalendarConnection,
    CancelMode,
    Change,
    ChangeKind,
    ChangeStatus,
    utcnow,
)
from calsync.sync.providers import ProviderFactory, open_provider

log = logging.getLogger(__name__)

RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(minutes=30)
APPLY_LEASE = timedelta(minutes=2)


class OwnerChangedEvent(ProviderError):
    """The owner moved or deleted the event before our change reached it."""


def apply_change(
    db: Database, settings: Settings, change_id: int, factory: ProviderFactory
) -> Change:
    """Carry a recorded change into the owner's calendar as far as possible, after the
    booking's earlier changes that are still pending; idempotent."""
    for earlier in _earlier_pending(db, change_id):
        before = _apply_one(db, settings, earlier, factory)
        if before.status is ChangeStatus.PENDING:
            # Still waiting for the calendar: this change waits behind it, and is not due
            # before it (so the earlier one's backoff holds).
            with db.writing() as session:
                stored = session.get(Change, change_id)
                assert stored is not None
                stored.lease_until = None
                waits = [t for t in (stored.next_attempt_at, before.next_attempt_at) if t]
                stored.next_attempt_at = max(waits) if waits else None
            return _load_change(db, change_id)
    return _apply_one(db, settings, change_id, factory)


def _earlier_pending(db: Database, change_id: int) -> list[int]:
    with db.reading() as session:
        change = session.get(Change, change_id)
        assert change is not None
        return list(
            session.scalars(
                select(Change.id)
                .where(
                    Change.booking_id == change.booking_id,
                    Change.id < change_id,
                    Change.status == ChangeStatus.PENDING,
                )
                .order_by(Change.id)
            )
        )


def _apply_one(
    db: Database, settings: Settings, change_id: int, factory: ProviderFactory
) -> Change:
    with db.reading() as session:
        change = session.get(Change, change_id)
        assert change is not None
        if change.status is not ChangeStatus.PENDING:
            return change
        booking = session.get(Booking, change.booking_id)
        assert booking is not None
        zone = event_zone(session, booking)
        sessions = {
            s.id: s
            for s in session.scalars(
                select(BookedSession).where(BookedSession.booking_id == change.booking_id)
            )
        }
        calendars = {
            c.id: c
            for c in session.scalars(
                select(CalendarConnection).where(
                    CalendarConnection.id.in_(
                        {s.connection_id for s in sessions.values() if s.connection_id}
                    )
                )
            )
        }
    items = list(change.items)
    problem: str | None = None
    status = ChangeStatus.APPLIED
    providers: dict[int, CalendarProvider] = {}
    try:
        for index, item in enumerate(items):
            if item.applied:
                continue
            booked = sessions[item.session_id]
            if booked.href is None:
                items[index] = item.done()  # no event in any calendar (nothing to change there)
                continue
            if booked.connection_id is None:
                # Its calendar was disconnected (`calendar remove --force`): the event is still
                # on the server, so "applied" would be untrue.
                status, problem = ChangeStatus.CONFLICT, _disconnected(booked.position)
                items[index] = item.done()  # nothing calsync can do for this event
                continue
            calendar = calendars[booked.connection_id]
            if booked.connection_id not in providers:
                providers[booked.connection_id] = factory(calendar)
            provider = providers[booked.connection_id]
            try:
                written = _apply_item(provider, settings, change.kind, calendar, booked, item, zone)
            except OwnerChangedEvent as exc:
                status, problem = ChangeStatus.CONFLICT, str(exc)
                items[index] = item.done()  # nothing more to do for this event
                continue
            items[index] = item.done()
            _store_written(db, booked.id, written)
    except ProviderError as exc:
        return _still_pending(db, change_id, items, exc)
    finally:
        for provider in providers.values():
            provider.close()
    with db.writing() as session:
        stored = session.get(Change, change_id)
        assert stored is not None
        stored.items, stored.status, stored.message = items, status, problem
        stored.applied_at, stored.lease_until = utcnow(), None
        stored.attempts += 1
        # The emails go once the calendar has the change; a change the owner overtook is
        # reported on the customer's page instead.
        if status is ChangeStatus.APPLIED:
            outbox.release(session, booking_id=stored.booking_id, change_id=change_id)
        else:
            outbox.drop(session, booking_id=stored.booking_id, change_id=change_id)
    return _load_change(db, change_id)


def _disconnected(position: int) -> str:
    return (
        f"session {position}'s event was not changed: its calendar was disconnected from "
        "calsync, so change the event in your calendar yourself"
    )


def _apply_item(
    provider: CalendarProvider,
    settings: Settings,
    kind: ChangeKind,
    calendar: CalendarConnection,
    booked: BookedSession,
    item: ChangeItem,
    zone: str,
) -> CalendarItem | None:
    """Apply one session's part of a change; returns what is stored now (None: deleted)."""
    old = (item.before.start, item.before.end)
    new = (item.after.start, item.after.end) if item.after else None
    href = booked.href
    assert href is not None

    def unchanged_by_owner(data: str, allowed: tuple[tuple[datetime, ...] | None, ...]) -> None:
        times = event_times(data)
        if times not in allowed:
            raise OwnerChangedEvent(
                f"The owner changed session {booked.position} in their calendar just now, so it "
                "was not changed. Please look at the booking again.",
                url=href,
            )

    try:
        if kind is ChangeKind.RESCHEDULE:
            assert new is not None

            def move(data: str) -> str:
                unchanged_by_owner(data, (old, new))
                if event_times(data) == new:
                    return data  # applied before (a retry after a lost answer)
                # Never below what the owner's own client may have raised it to.
                sequence = max(booked.sequence, sequence_of(data) + 1)
                return with_times(
                    data,
                    uid=booked.uid,
                    start=new[0],
                    end=new[1],
                    timezone=zone,
                    sequence=sequence,
                    now=utcnow(),
                )

            return patch_event(provider, href, move, attempts=settings.bookings.write_attempts)
        # A cancel stands whatever time the owner gave the event meanwhile: the customer
        # does not want the session at all.
        if calendar.cancel_mode is CancelMode.DELETE:
            current = provider.get(href)
            provider.delete(href, current.etag)
            return None

        def mark(data: str) -> str:
            if is_cancelled(data):
                return data  # applied before
            sequence = max(booked.sequence, sequence_of(data) + 1)
            return with_cancelled(data, sequence=sequence, now=utcnow())

        return patch_event(provider, href, mark, attempts=settings.bookings.write_attempts)
    except NotFound:
        if kind is ChangeKind.CANCEL:
            return None  # already gone: a cancel is done either way
        raise OwnerChangedEvent(
            f"Session {booked.position} was deleted from the owner's calendar meanwhile, so "
            "it was not moved. Please contact the owner.",
            url=href,
        ) from None


def _store_written(db: Database, session_id: int, written: CalendarItem | None) -> None:
    with db.writing() as session:
        stored = session.get(BookedSession, session_id)
        assert stored is not None
        if written is None:
            stored.href = stored.etag = None  # the event was deleted
            return
        stored.etag = written.etag
        stored.calendar_sequence = sequence_of(written.data)
        # The event may carry a higher SEQUENCE than ours (the owner's client raised it):
        # invites must follow what the calendar has.
        stored.sequence = max(stored.sequence, stored.calendar_sequence)


def _still_pending(
    db: Database, change_id: int, items: list[ChangeItem], exc: ProviderError
) -> Change:
    log.warning("change %s stays pending: %s", change_id, exc)
    with db.writing() as session:
        stored = session.get(Change, change_id)
        assert stored is not None
        stored.items = items
        stored.attempts += 1
        stored.message = str(exc)
        stored.next_attempt_at = utcnow() + leases.backoff(
            stored.attempts, base=RETRY_BASE, cap=RETRY_CAP
        )
        stored.lease_until = None
    return _load_change(db, change_id)


def _load_change(db: Database, change_id: int) -> Change:
    with db.reading() as session:
        change = session.get(Change, change_id)
        assert change is not None
        return change


def due_on_return(session: Session, connection_id: int, now: datetime) -> None:
    """A calendar answers again: the pending changes of bookings with sessions in it are due
    now, not after their backoff (which grows with every attempt made while it was down)."""
    on_calendar = select(BookedSession.booking_id).where(
        BookedSession.connection_id == connection_id
    )
    session.execute(
        update(Change)
        .where(
            Change.status == ChangeStatus.PENDING,
            Change.next_attempt_at > now,
            Change.booking_id.in_(on_calendar),
        )
        .values(next_attempt_at=now)
    )


def apply_pending(db: Database, settings: Settings, factory: ProviderFactory | None = None) -> int:
    """Apply changes left pending by an outage; for the worker. Returns how many it tried."""
    factory = factory or open_provider(settings)
    now = utcnow()
    with db.writing() as session:
        due = leases.claim(
            session,
            Change,
            now=now,
            lease=APPLY_LEASE,
            limit=20,
            where=[Change.status == ChangeStatus.PENDING, Change.next_attempt_at <= now],
            # In the order recorded: a booking's changes apply one after the other.
            order_by=[Change.id],
        )
    for change_id in due:
        with log_context(change_id=change_id):
            apply_change(db, settings, change_id, factory)
    return len(due)
