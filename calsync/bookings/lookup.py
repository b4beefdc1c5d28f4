"""Reading one booking by id, with what the booking services need loaded, or ``NotFoundError``
in the one wording every face shows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from calsync.store.models import Booking
from calsync.sync.connections import NotFoundError


def load_booking(session: Session, booking_id: str, *, with_history: bool = False) -> Booking:
    """The booking with its sessions and owner (and history when asked), in ``session``."""
    loads = [selectinload(Booking.sessions), selectinload(Booking.owner)]
    if with_history:
        loads.append(selectinload(Booking.history))
    booking = session.scalars(
        select(Booking).options(*loads).where(Booking.id == booking_id)
    ).one_or_none()
    if booking is None:
        raise NotFoundError(f"no booking {booking_id!r}")
    return booking
