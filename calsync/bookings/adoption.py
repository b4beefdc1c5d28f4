"""Adoption: events the owner already has (made by hand or another tool) become bookings.

Each calendar connection has a rule (off until the owner turns it on): every event, events
with an attendee other than the owner, or events with a given category. A matching event that
is a single future event, organised by the owner (or by nobody), with a customer among its
attendees, becomes a booking of the rule's event type; then its link block is injected with a
conditional write, keeping everything the owner wrote. An event is never adopted twice: its
UID becomes the session's UID, which is unique, and an event that already carries a calsync
link is left alone.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import icalendar
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from calsync.bookings import links, notices
from calsync.bookings.calendar_writes import patch_event
from calsync.calendars.errors import InvalidCalendarData, ProviderError
from calsync.calendars.ical.busy import parse_calendar
from calsync.calendars.ical.event_edit import event_times, link_of, with_link
from calsync.config import Settings
from calsync.observe import metrics
from calsync.store.db import Database
from calsync.store.models import (
    Actor,
    AdoptionRule,
    BookedSession,
    Booking,
    BookingChange,
    BookingSource,
    CalendarConnection,
    EventType,
    HistoryAction,
    MirroredEvent,
    Owner,
    utcnow,
)
from calsync.sync.connections import ServiceError, get_calendar
from calsync.sync.providers import ProviderFactory, open_provider

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    href: str
    uid: str
    summary: str
    start: datetime
    end: datetime
    customer_email: str
    customer_name: str
    stakeholders: tuple[str, ...]


def _address(value: object) -> str:
    text = str(value)
    return (text[7:] if text.lower().startswith("mailto:") else text).strip().lower()


def candidate(
    data: str, href: str, connection: CalendarConnection, now: datetime
) -> Candidate | None:
    """The booking this event would become under the connection's rule, or None."""
    if connection.adopt is AdoptionRule.OFF or link_of(data) is not None:
        return None
    try:
        calendar = parse_calendar(data, href=href)
        times = event_times(data)
    except InvalidCalendarData:
        return None
    events = [c for c in calendar.walk("VEVENT")]
    if times is None or len(events) != 1 or times[0] <= now:
        return None  # recurring, or past: not something a customer can manage
    event = events[0]
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return None
    owner = connection.owner.email.lower()
    organizer = event.get("ORGANIZER")
    if organizer is not None and _address(organizer) != owner:
        return None  # someone else's meeting the owner was invited to
    attendees = [a for a in _as_list(event.get("ATTENDEE")) if _address(a) != owner]
    if connection.adopt is AdoptionRule.ATTENDEES and not attendees:
        return None
    if connection.adopt is AdoptionRule.CATEGORY and not _has_category(
        event, connection.adopt_category
    ):
        return None
    if not attendees:
        return None  # nobody to send a link to
    customer = attendees[0]
    return Candidate(
        href=href,
        uid=str(event.get("UID")),
        summary=str(event.get("SUMMARY", "")),
        start=times[0],
        end=times[1],
        customer_email=_address(customer),
        customer_name=str(getattr(customer, "params", {}).get("CN", "")) or _address(customer),
        stakeholders=tuple(_address(a) for a in attendees[1:]),
    )


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _has_category(event: icalendar.Component, wanted: str | None) -> bool:
    if not wanted:
        return False
    names: list[str] = []
    for value in _as_list(event.get("CATEGORIES")):
        names += [str(c) for c in getattr(value, "cats", [value])]
    return wanted.strip().lower() in {n.strip().lower() for n in names}


def find_candidates(
    db: Database,
    connection_id: int,
    *,
    hrefs: Collection[str] | None = None,
    now: datetime | None = None,
) -> list[Candidate]:
    """What adoption would take over in this calendar now (``adopt --dry-run``); with
    ``hrefs``, only among those events (the ones a poll just brought in)."""
    connection = get_calendar(db, connection_id)
    query = select(MirroredEvent.href, MirroredEvent.uid, MirroredEvent.data).where(
        MirroredEvent.connection_id == connection_id, MirroredEvent.problem.is_(None)
    )
    if hrefs is not None:
        if not hrefs:
            return []
        query = query.where(MirroredEvent.href.in_(list(hrefs)))
    with db.reading() as session:
        rows = session.execute(query).all()
        uids = [uid for _, uid, _ in rows if uid]
        taken = set(session.scalars(select(BookedSession.uid).where(BookedSession.uid.in_(uids))))
    now = now or utcnow()
    found = [candidate(data, href, connection, now) for href, uid, data in rows if uid not in taken]
    return sorted((c for c in found if c is not None), key=lambda c: c.start)


def adopt(
    db: Database,
    settings: Settings,
    connection_id: int,
    *,
    hrefs: Collection[str] | None = None,
    provider_factory: ProviderFactory | None = None,
    now: datetime | None = None,
) -> list[Booking]:
    """Adopt the calendar's candidates (with ``hrefs``: among those events only) and write
    the links still missing; returns the new bookings."""
    connection = get_calendar(db, connection_id)
    if connection.adopt is AdoptionRule.OFF:
        raise ServiceError(
            f"adoption is off for calendar {connection_id}: turn it on with "
            "`calsync calendar adoption`"
        )
    with db.reading() as session:
        event_type = session.get(EventType, connection.adopt_event_type_id or -1)
    if event_type is None:
        raise ServiceError(f"calendar {connection_id} has no event type for adopted bookings")
    adopted = []
    for found in find_candidates(db, connection_id, hrefs=hrefs, now=now):
        booking = _reserve(db, settings, connection, event_type, found)
        if booking is not None:
            adopted.append(booking)
    factory = provider_factory or open_provider(settings)
    inject_pending_links(db, settings, connection, factory)
    if connection.adopt_email_customer:
        for booking in adopted:
            _email_customer(db, settings, booking.id)
    return adopted


def _email_customer(db: Database, settings: Settings, booking_id: str) -> None:
    """The adopted customer's confirmation with their manage link, through the outbox."""
    with db.writing() as session:
        booking = session.get(Booking, booking_id)
        assert booking is not None
        owner = session.get(Owner, booking.owner_id)
        assert owner is not None
        notices.queue_new_link(
            session,
            settings,
            booking,
            owner,
            change_key=f"adopted-{booking_id}",
            actor=Actor.SYSTEM,
        )


def _reserve(
    db: Database,
    settings: Settings,
    connection: CalendarConnection,
    event_type: EventType,
    found: Candidate,
) -> Booking | None:
    link = links.issue(settings, found.end)
    try:
        with db.writing() as session:
            booking = Booking(
                id=uuid.uuid4().hex,
                owner_id=connection.owner_id,
                event_type_id=event_type.id,
                customer_name=found.customer_name,
                customer_email=found.customer_email,
                customer_timezone=event_type.timezone,
                stakeholders=list(found.stakeholders),
                title=found.summary or event_type.title,
                policy=event_type.policy,
                price=event_type.price,
                currency=event_type.currency,
                source=BookingSource.ADOPTED,
                token_hash=link.token_hash,
                token_encrypted=link.token_encrypted,
                token_expires_at=link.expires_at,
                sessions=[
                    BookedSession(
                        position=1,
                        uid=found.uid,
                        start=found.start,
                        end=found.end,
                        connection_id=connection.id,
                        href=found.href,
                    )
                ],
            )
            booking.history.append(
                BookingChange(
                    actor=Actor.SYSTEM, action=HistoryAction.ADOPTED, details={"href": found.href}
                )
            )
            session.add(booking)
    except IntegrityError:
        return None  # another worker adopted it a moment ago
    metrics.BOOKINGS.labels(BookingSource.ADOPTED.value).inc()
    return booking


def inject_pending_links(
    db: Database, settings: Settings, connection: CalendarConnection, factory: ProviderFactory
) -> int:
    """Write the link into adopted events that don't have it yet; returns how many."""
    with db.reading() as session:
        pending = _pending(session, connection.id)
    if not pending:
        return 0
    provider = factory(connection)
    done = 0
    try:
        for booked, booking in pending:
            url = links.current_link(settings, booking)
            if url is None or booked.href is None:
                continue
            try:
                item = patch_event(
                    provider,
                    booked.href,
                    functools.partial(with_link, link=url, booking_id=booking.id),
                    attempts=settings.bookings.write_attempts,
                )
            except ProviderError as exc:
                log.warning("could not add the link to %s yet: %s", booked.href, exc)
                continue
            with db.writing() as session:
                stored = session.get(BookedSession, booked.id)
                assert stored is not None
                stored.etag = item.etag
            done += 1
    finally:
        provider.close()
    return done


def _pending(session: Session, connection_id: int) -> list[tuple[BookedSession, Booking]]:
    """Sessions of adopted bookings whose event, as last mirrored, lacks our link."""
    rows = session.execute(
        select(BookedSession, Booking, MirroredEvent.data)
        .join(Booking, Booking.id == BookedSession.booking_id)
        .join(
            MirroredEvent,
            (MirroredEvent.connection_id == BookedSession.connection_id)
            & (MirroredEvent.href == BookedSession.href),
        )
        .where(
            BookedSession.connection_id == connection_id,
            Booking.source == BookingSource.ADOPTED,
            Booking.token_hash.is_not(None),
        )
    ).all()
    return [(booked, booking) for booked, booking, data in rows if link_of(data) is None]
