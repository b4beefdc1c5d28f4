"""Time held by bookings, and the per-owner lock that keeps two bookings off one slot.

Our own database can be ahead of the owner's calendars (a session is reserved here before its
event is written there), so availability counts both: busy time from the mirror, and the
sessions of active bookings from here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, bindparam, cast, literal, select, text, union_all
from sqlalchemy.orm import Session

from calsync.policy.types import Span
from calsync.store.models import (
    BookedSession,
    Booking,
    BookingStatus,
    Checkout,
    CheckoutHold,
    EventType,
    Owner,
    PaymentHold,
    SessionStatus,
)

# The first half of PostgreSQL's two-key advisory lock: "bookings of owner <id>".
OWNER_LOCK_CLASS = 0x0CA1


def lock_owner(session: Session, owner_id: int) -> None:
    """Hold the owner's booking lock until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, because the
    transaction was begun IMMEDIATE (``Database.writing``) and so already excludes every other
    writer.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:kind, :owner)"),
            {"kind": OWNER_LOCK_CLASS, "owner": owner_id},
        )


# One statement for everything that holds an owner's time, built once: building it per call
# was a fifth of the availability API's CPU. Each part overlaps [:start, :end).
_HELD_TIMES = union_all(
    select(BookedSession.start, BookedSession.end, BookedSession.uid)
    .join(Booking, Booking.id == BookedSession.booking_id)
    .where(
        Booking.owner_id == bindparam("owner_id"),
        Booking.status == BookingStatus.ACTIVE,
        BookedSession.status != SessionStatus.CANCELLED,
        BookedSession.start < bindparam("end"),
        BookedSession.end > bindparam("start"),
    ),
    # Times held for a reschedule awaiting payment are as taken as a booked session.
    select(PaymentHold.start, PaymentHold.end, PaymentHold.uid).where(
        PaymentHold.owner_id == bindparam("owner_id"),
        PaymentHold.released_at.is_(None),
        PaymentHold.start < bindparam("end"),
        PaymentHold.end > bindparam("start"),
    ),
    # And so are the times held for a booking page checkout while the customer pays.
    select(
        CheckoutHold.start,
        CheckoutHold.end,
        literal("checkout-hold-") + cast(CheckoutHold.id, String),
    )
    .join(Checkout, Checkout.id == CheckoutHold.checkout_id)
    .where(
        CheckoutHold.owner_id == bindparam("owner_id"),
        Checkout.released_at.is_(None),
        CheckoutHold.start < bindparam("end"),
        CheckoutHold.end > bindparam("start"),
    ),
)


def booked_spans(session: Session, owner_id: int, start: datetime, end: datetime) -> list[Span]:
    """Sessions of the owner's active bookings overlapping [start, end), keyed by their UID,
    and the times held for payments (reschedules, checkouts) as if booked."""
    rows = session.execute(_HELD_TIMES, {"owner_id": owner_id, "start": start, "end": end})
    return [Span(s, e, uid) for s, e, uid in rows]


def release_checkout(session: Session, checkout_id: int, now: datetime) -> None:
    """Free a checkout's held times (call under the owner's lock)."""
    checkout = session.get(Checkout, checkout_id)
    if checkout is not None and checkout.released_at is None:
        checkout.released_at = now


def event_zone(session: Session, booking: Booking) -> str:
    """The zone a booking's events are written in: its event type's, else the owner's.

    One answer for creating, moving and announcing a session, so an event never changes its
    TZID when it moves.
    """
    if booking.event_type_id is not None:
        event_type = session.get(EventType, booking.event_type_id)
        if event_type is not None:
            return event_type.timezone
    owner = session.get(Owner, booking.owner_id)
    assert owner is not None
    return owner.timezone
