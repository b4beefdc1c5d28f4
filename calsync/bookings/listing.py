"""Finding bookings: ``calsync booking list`` and ``GET /api/bookings`` share these filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import selectinload

from calsync.bookings.event_types import get_event_type
from calsync.store.db import Database
from calsync.store.models import BookedSession, Booking, SessionStatus, utcnow
from calsync.sync.connections import find_owner


class When(StrEnum):
    ALL = "all"
    UPCOMING = "upcoming"  # a session that is not cancelled ends after now
    PAST = "past"  # every session that is not cancelled has ended


@dataclass(frozen=True, slots=True)
class BookingFilter:
    owner_email: str | None = None
    event_type: int | str | None = None  # id or slug
    when: When = When.ALL
    customer: str | None = None  # part of the customer's email or name, any case
    limit: int = 200


def list_bookings(
    db: Database, wanted: BookingFilter, *, now: datetime | None = None
) -> list[Booking]:
    """Bookings matching ``wanted``, soonest first session first. Raises NotFoundError for an
    unknown owner or event type."""
    now = now or utcnow()
    query = select(Booking).options(
        selectinload(Booking.sessions), selectinload(Booking.history), selectinload(Booking.owner)
    )
    if wanted.owner_email is not None:
        query = query.where(Booking.owner_id == find_owner(db, wanted.owner_email).id)
    if wanted.event_type is not None:
        query = query.where(Booking.event_type_id == get_event_type(db, wanted.event_type).id)
    if wanted.customer:
        pattern = f"%{wanted.customer.lower()}%"
        query = query.where(
            or_(
                func.lower(Booking.customer_email).like(pattern),
                func.lower(Booking.customer_name).like(pattern),
            )
        )
    live_after_now = exists().where(
        BookedSession.booking_id == Booking.id,
        BookedSession.status != SessionStatus.CANCELLED,
        BookedSession.end > now,
    )
    if wanted.when is When.UPCOMING:
        query = query.where(live_after_now)
    elif wanted.when is When.PAST:
        query = query.where(~live_after_now)
    first_start = (
        select(func.min(BookedSession.start))
        .where(BookedSession.booking_id == Booking.id)
        .scalar_subquery()
    )
    query = query.order_by(first_start, Booking.id)
    with db.reading() as session:
        return list(session.scalars(query.limit(wanted.limit)))
