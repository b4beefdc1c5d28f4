"""Booking packages of sessions into the owner's calendar, and relinking them.

A booking is first *reserved* in our database, inside a transaction that holds the owner's
lock and re-checks every start against the mirror and the other bookings (so two requests can
never take one slot). Only then are the events written, one per session, each with
If-None-Match. If a write fails half-way the events already written are deleted again and the
booking is marked failed: the customer is answered at once, so a half booking that might be
completed later would only confuse them (see the README).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from calsync.bookings import links, notices
from calsync.bookings.calendar_writes import patch_event
from calsync.bookings.event_types import (
    AvailabilityUnknown,
    InvalidInput,
    conflict_calendars,
    get_event_type,
    load_event_type,
    refusal_of,
    slots_within,
)
from calsync.bookings.held import event_zone, lock_owner, release_checkout
from calsync.bookings.live_check import live_busy
from calsync.bookings.lookup import load_booking
from calsync.bookings.reschedule_requests import end_with_link
from calsync.calendars.base import CalendarItem
from calsync.calendars.errors import Conflict, NotFound, ProviderError
from calsync.calendars.ical.event_edit import with_link
from calsync.calendars.ical.session_event import Person, SessionEvent, build_event
from calsync.config import Settings
from calsync.notify import outbox
from calsync.observe import metrics
from calsync.observe.logs import log_context
from calsync.policy.packages import offer_from_data, spacing_problems
from calsync.policy.refusal import Refusal, Why, availability_command
from calsync.policy.types import Slot, Span
from calsync.store.db import Database
from calsync.store.models import (
    Actor,
    BookedSession,
    Booking,
    BookingChange,
    BookingSource,
    BookingStatus,
    CalendarConnection,
    EventType,
    HistoryAction,
    Owner,
    SessionStatus,
    utcnow,
)
from calsync.sync import fresh_busy
from calsync.sync.connections import ServiceError, check_timezone
from calsync.sync.providers import ProviderFactory, open_provider

log = logging.getLogger(__name__)

MAX_SESSIONS = 20
# A second submit of one form that arrives while the first is still writing the events waits
# this long for them, so that it answers as the first will (booked, or not booked).
REPLAY_WAIT_SECONDS = 20.0
EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
#: A Stripe PaymentIntent id, as ``--payment`` and the API take it.
PAYMENT_INTENT = re.compile(r"pi_[A-Za-z0-9]{6,250}")


class SlotTaken(ServiceError):
    """A chosen time is no longer free. ``why`` is the rule it breaks when known, so a page can
    tell a time taken meanwhile (busy, booked) from one never offered (hours, past, …)."""

    def __init__(
        self,
        message: str,
        start: datetime,
        session_id: int | None = None,
        why: Why | None = None,
    ) -> None:
        super().__init__(message)
        self.start = start
        self.session_id = session_id
        self.why = why


class CalendarWriteFailed(ServiceError):
    """The owner's calendar refused or could not be reached; nothing was booked."""


@dataclass(frozen=True, slots=True)
class BookingRequest:
    event_type: int | str
    customer_name: str
    customer_email: str
    starts: tuple[datetime, ...]
    customer_timezone: str | None = None  # default: the event type's zone
    stakeholders: tuple[str, ...] = ()
    # The booking page's: who asks (the page: the customer), its submit key (a second submit
    # of one form returns the first booking) and the customer's notes.
    actor: Actor = Actor.OWNER
    idempotency_key: str | None = None
    notes: str | None = None
    # The Stripe PaymentIntent (pi_…) that paid for the package, when it was paid through
    # calsync: cancellations are then refunded against it (``payments/``).
    payment_intent: str | None = None
    # A booking page checkout whose held times this booking takes (released in the same
    # transaction, so they never block the booking they were held for), and the receipt line
    # of its payment for the confirmation emails.
    checkout_id: int | None = None
    receipt: str | None = None


@dataclass(frozen=True, slots=True)
class BookingResult:
    booking: Booking
    manage_url: str
    sessions: list[BookedSession] = field(default_factory=list)


def request_problems(request: BookingRequest) -> list[tuple[str, str]]:
    problems = []
    if not request.customer_name.strip():
        problems.append(("customer_name", "must not be empty"))
    if not EMAIL.match(request.customer_email.strip()):
        problems.append(("customer_email", f"{request.customer_email!r} is not an email address"))
    for address in request.stakeholders:
        if not EMAIL.match(address.strip()):
            problems.append(("stakeholders", f"{address!r} is not an email address"))
    if not 1 <= len(request.starts) <= MAX_SESSIONS:
        problems.append(("starts", f"a booking has 1 to {MAX_SESSIONS} sessions"))
    if any(start.tzinfo is None for start in request.starts):
        problems.append(
            ("starts", "give each start with a UTC offset, e.g. 2026-12-01T09:00+01:00")
        )
    elif len(set(request.starts)) != len(request.starts):
        problems.append(("starts", "the same start is given twice"))
    if request.payment_intent is not None and not PAYMENT_INTENT.fullmatch(request.payment_intent):
        problems.append(
            ("payment", f"{request.payment_intent!r} is not a Stripe PaymentIntent id (pi_…)")
        )
    if request.customer_timezone:
        try:
            check_timezone(request.customer_timezone)
        except ServiceError as exc:
            problems.append(("customer_timezone", str(exc)))
    return problems


def refresh_conflicts(
    db: Database, settings: Settings, event_type: EventType, factory: ProviderFactory
) -> list[Span]:
    """An incremental poll of the conflict calendars that stores the mirror and nothing else,
    so the check sees busy time no older than the request (``fresh_busy``). Returns busy time
    read but not stored (a calendar another worker is polling): pass it as ``extra_busy``.

    A calendar that cannot be read fails the booking: offering its time could double-book.
    Raises AvailabilityUnknown, BusyTimeNotFresh.
    """
    with db.reading() as session:
        ids = [c.id for c in conflict_calendars(session, event_type)]
    try:
        return fresh_busy.refresh(db, settings, ids, factory)
    except fresh_busy.CalendarUnread as exc:
        raise AvailabilityUnknown(
            f"calendar {exc.connection_id} could not be read just now ({exc.error}); "
            "nothing was booked, try again in a minute"
        ) from None


def check_starts(
    session: Session,
    event_type: EventType,
    starts: list[datetime],
    now: datetime,
    live: Sequence[Span] = (),
) -> list[Slot]:
    """The slot of every start, each checked with the request's earlier sessions held and
    the ``live`` busy time from ``live_check``."""
    duration = timedelta(minutes=event_type.duration_minutes)
    chosen: list[Slot] = []
    for start in starts:
        slot = Slot(start, start + duration)
        held = [Span(s.start, s.end) for s in chosen]
        free = slots_within(
            session, event_type, slot.start, slot.end, now=now, extra_booked=held, extra_busy=live
        )
        if slot not in free:
            refusal = refusal_of(
                session, event_type, slot, now=now, extra_booked=held, extra_busy=live
            )
            raise SlotTaken(
                _not_free(event_type, slot, refusal),
                start,
                why=refusal.why if refusal else None,
            )
        chosen.append(slot)
    return chosen


def _not_free(event_type: EventType, slot: Slot, refusal: Refusal | None) -> str:
    """Which rule the slot breaks, and where the free times are."""
    why = refusal.text if refusal else "not one of the offered times"
    local = slot.start.astimezone(ZoneInfo(event_type.timezone))
    return (
        f"{local:%a %d %b %Y %H:%M} ({event_type.timezone}) is not free: it is {why}. "
        f"Pick another time: `{availability_command(event_type.slug, local.date())}` lists the "
        "free ones."
    )


def book(
    db: Database,
    settings: Settings,
    request: BookingRequest,
    *,
    provider_factory: ProviderFactory | None = None,
    now: datetime | None = None,
) -> BookingResult:
    """Book a package. Raises InvalidInput, SlotTaken, AvailabilityUnknown, CalendarWriteFailed."""
    problems = request_problems(request)
    if problems:
        raise InvalidInput(problems)
    if request.idempotency_key:
        replayed = _replayed(db, settings, request.idempotency_key)
        if replayed is not None:
            return replayed
    event_type = get_event_type(db, request.event_type)
    if event_type.booking_calendar_id is None:
        raise InvalidInput(
            [("event_type", f"{event_type.slug} has no booking calendar: give it one first")]
        )
    factory = provider_factory or open_provider(settings)
    unstored = refresh_conflicts(db, settings, event_type, factory)
    now = now or utcnow()
    starts = sorted(request.starts)
    duration = timedelta(minutes=event_type.duration_minutes)
    live = live_busy(db, event_type, [Slot(s, s + duration) for s in starts], factory)
    live = [*live, *unstored]
    link = links.issue(settings, starts[-1] + duration)
    url = links.manage_url(settings, link.token)

    try:
        booking, owner, booking_calendar = _reserve(
            db, settings, request, event_type.id, event_type.owner_id, starts, now, live, link
        )
    except _SubmittedBefore:
        replayed = _replayed(db, settings, request.idempotency_key or "")
        assert replayed is not None
        return replayed
    metrics.BOOKINGS.labels(BookingSource.BOOKED.value).inc()

    with log_context(booking_id=booking.id):
        _write_events(
            db, settings, factory, booking, owner_person(owner), booking_calendar, url, now
        )
    return BookingResult(get_booking(db, booking.id), url, booking.sessions)


class _SubmittedBefore(Exception):
    """The request's idempotency key has a booking already (a second submit of one form)."""


def _reserve(
    db: Database,
    settings: Settings,
    request: BookingRequest,
    event_type_id: int,
    owner_id: int,
    starts: list[datetime],
    now: datetime,
    live: Sequence[Span],
    link: links.IssuedLink,
) -> tuple[Booking, Owner, CalendarConnection]:
    """The booking, stored under the owner's lock after every check, with its emails held."""
    with db.writing() as session:
        lock_owner(session, owner_id)
        if (
            request.idempotency_key
            and session.scalars(
                select(Booking.id).where(Booking.idempotency_key == request.idempotency_key)
            ).first()
        ):
            # A second submit that waited for the lock: the first one's booking answers it.
            raise _SubmittedBefore
        if request.checkout_id is not None:
            release_checkout(session, request.checkout_id, now)
        fresh = load_event_type(session, event_type_id)
        assert fresh.booking_calendar_id is not None
        page = offer_from_data(fresh.booking_page)
        spacing = spacing_problems(page, starts, ZoneInfo(fresh.timezone))
        if spacing:
            raise InvalidInput([("starts", spacing)])
        offer = page.offer(len(starts), Decimal(fresh.price)) if page.packages else None
        slots = check_starts(session, fresh, starts, now, live)
        booking = Booking(
            id=uuid.uuid4().hex,
            owner_id=fresh.owner_id,
            event_type_id=fresh.id,
            customer_name=request.customer_name.strip(),
            customer_email=request.customer_email.strip().lower(),
            customer_timezone=request.customer_timezone or fresh.timezone,
            stakeholders=[a.strip().lower() for a in request.stakeholders],
            title=fresh.title,
            policy=fresh.policy,
            price=fresh.price if offer is None else str(offer.price),
            currency=fresh.currency,
            idempotency_key=request.idempotency_key,
            notes=request.notes,
            payment_intent=request.payment_intent,
            token_hash=link.token_hash,
            token_encrypted=link.token_encrypted,
            token_expires_at=link.expires_at,
            sessions=[
                BookedSession(
                    position=index,
                    uid=f"{uuid.uuid4()}@calsync",
                    start=slot.start,
                    end=slot.end,
                    connection_id=fresh.booking_calendar_id,
                )
                for index, slot in enumerate(slots, start=1)
            ],
        )
        booking.history.append(
            BookingChange(
                actor=request.actor,
                action=HistoryAction.BOOKED,
                details={"sessions": [s.start.isoformat() for s in slots]},
            )
        )
        session.add(booking)
        session.flush()
        owner = fresh.owner
        notices.queue_booked(session, settings, booking, owner, request.receipt)
        booking_calendar = session.get(CalendarConnection, fresh.booking_calendar_id)
        assert booking_calendar is not None
        session.expunge(booking_calendar)
    return booking, owner, booking_calendar


def _replayed(db: Database, settings: Settings, key: str) -> BookingResult | None:
    """The booking an earlier submit with ``key`` made, or None. A failed one is told again;
    one whose events are still being written is waited for (``REPLAY_WAIT_SECONDS``)."""
    with db.reading() as session:
        booking_id = session.scalars(
            select(Booking.id).where(Booking.idempotency_key == key)
        ).first()
    if booking_id is None:
        return None
    booking = get_booking(db, booking_id)
    deadline = time.monotonic() + REPLAY_WAIT_SECONDS
    while (
        booking.status is BookingStatus.ACTIVE
        and any(s.href is None for s in booking.sessions)
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
        booking = get_booking(db, booking_id)
    url = links.current_link(settings, booking)
    if booking.status is BookingStatus.FAILED or url is None:
        raise CalendarWriteFailed(
            "the sessions could not be written to the calendar just now. Nothing was booked."
        )
    return BookingResult(booking, url, booking.sessions)


def owner_person(owner: Owner) -> Person:
    return Person(owner.email, owner.name)


def session_event(
    booking: Booking, session: BookedSession, organizer: Person, url: str, zone: str
) -> SessionEvent:
    count = len(booking.sessions)
    summary = f"{booking.title} with {booking.customer_name}"
    return SessionEvent(
        uid=session.uid,
        start=session.start,
        end=session.end,
        timezone=zone,
        summary=summary + (f" ({session.position}/{count})" if count > 1 else ""),
        organizer=organizer,
        attendees=(
            Person(booking.customer_email, booking.customer_name),
            *(Person(address) for address in booking.stakeholders),
        ),
        booking_id=booking.id,
        link=url,
        sequence=session.sequence,
        description="\n\n".join(
            part
            for part in (
                f"Session {session.position} of {count}" if count > 1 else "",
                f"Notes from {booking.customer_name}: {booking.notes}" if booking.notes else "",
            )
            if part
        ),
    )


def _write_events(
    db: Database,
    settings: Settings,
    factory: ProviderFactory,
    booking: Booking,
    organizer: Person,
    calendar: CalendarConnection,
    url: str,
    now: datetime,
) -> None:
    with db.reading() as session:
        zone = event_zone(session, booking)
    written: list[tuple[BookedSession, CalendarItem]] = []
    left: list[tuple[BookedSession, CalendarItem]] = []
    try:
        provider = factory(calendar)
        try:
            for booked in booking.sessions:
                text = build_event(session_event(booking, booked, organizer, url, zone), now=now)
                written.append((booked, provider.create(booked.uid, text)))
        except ProviderError:
            for booked, item in written:
                try:
                    provider.delete(item.href, item.etag)
                except (NotFound, Conflict):
                    pass  # gone, or changed by the owner since: theirs now
                except ProviderError as exc:
                    # The calendar went away between the writes: a worker removes it later
                    # (bookings/leftovers.py).
                    log.warning("could not remove %s after a failed booking: %s", item.href, exc)
                    left.append((booked, item))
            raise
        finally:
            provider.close()
    except ProviderError as exc:
        error = str(exc)

        def failed(session: Session) -> None:
            stored = session.get(Booking, booking.id)
            assert stored is not None
            # persist may run this again after a commit whose answer was lost: one line only.
            if stored.status is not BookingStatus.FAILED:
                stored.history.append(
                    BookingChange(
                        actor=Actor.SYSTEM, action=HistoryAction.FAILED, details={"error": error}
                    )
                )
            stored.status = BookingStatus.FAILED
            stored.token_hash = stored.token_encrypted = None
            outbox.drop(session, booking_id=booking.id)
            for booked, item in left:
                leftover = session.get(BookedSession, booked.id)
                assert leftover is not None
                # Cancelled, so that a poll never takes the event's removal for the owner's.
                leftover.href, leftover.etag = item.href, item.etag
                leftover.status = SessionStatus.CANCELLED

        # The booking must not keep holding its time because the database blinked.
        db.persist(failed)
        raise CalendarWriteFailed(
            f"the sessions could not be written to the calendar "
            f"{calendar.display_name or calendar.url}: {exc} Nothing was booked."
        ) from exc

    def record(session: Session) -> None:
        for booked, item in written:
            stored = session.get(BookedSession, booked.id)
            assert stored is not None
            stored.href, stored.etag = item.href, item.etag
        outbox.release(session, booking_id=booking.id)

    # The events are in the calendar now: where they are, and the confirmations, must not be
    # lost to a database restart (the booking would stay half made, its emails held for good).
    db.persist(record)


def get_booking(db: Database, booking_id: str) -> Booking:
    with db.reading() as session:
        return load_booking(session, booking_id, with_history=True)


def relink(
    db: Database,
    settings: Settings,
    booking_id: str,
    *,
    provider_factory: ProviderFactory | None = None,
) -> str:
    """Issue a new manage link (the old one stops working) and put it into every event.

    Each event is patched with If-Match: the owner's own text around the link block is kept.
    """
    booking = get_booking(db, booking_id)
    last_end = max(s.end for s in booking.sessions)
    link = links.issue(settings, last_end)
    url = links.manage_url(settings, link.token)
    with db.writing() as session:
        stored = session.get(Booking, booking_id)
        assert stored is not None
        stored.token_hash, stored.token_encrypted = link.token_hash, link.token_encrypted
        stored.token_expires_at = link.expires_at
        stored.version += 1
        stored.history.append(BookingChange(actor=Actor.OWNER, action=HistoryAction.RELINKED))
        # A reschedule request's emailed link is the old manage link: it stops with it.
        end_with_link(session, booking_id, utcnow())
    factory = provider_factory or open_provider(settings)
    _rewrite_links(db, settings, factory, booking, url)
    return url


def _rewrite_links(
    db: Database, settings: Settings, factory: ProviderFactory, booking: Booking, url: str
) -> None:
    by_calendar: dict[int, list[BookedSession]] = {}
    for booked in booking.sessions:
        if booked.href and booked.connection_id:
            by_calendar.setdefault(booked.connection_id, []).append(booked)
    for connection_id, sessions in by_calendar.items():
        with db.reading() as session:
            calendar = session.get(CalendarConnection, connection_id)
            assert calendar is not None
            session.expunge(calendar)
        provider = factory(calendar)
        try:
            for booked in sessions:
                assert booked.href is not None
                item = patch_event(
                    provider,
                    booked.href,
                    lambda data: with_link(data, link=url, booking_id=booking.id),
                    attempts=settings.bookings.write_attempts,
                )
                with db.writing() as session:
                    stored = session.get(BookedSession, booked.id)
                    assert stored is not None
                    stored.etag = item.etag
        finally:
            provider.close()


def revoke_link(db: Database, booking_id: str) -> None:
    """The booking's link stops working at once (relink issues a new one)."""
    get_booking(db, booking_id)
    with db.writing() as session:
        stored = session.get(Booking, booking_id)
        assert stored is not None
        stored.token_hash = stored.token_encrypted = None
        stored.version += 1
        stored.history.append(BookingChange(actor=Actor.OWNER, action=HistoryAction.LINK_REVOKED))
        end_with_link(session, booking_id, utcnow())
