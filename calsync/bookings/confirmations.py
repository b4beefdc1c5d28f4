"""Sending a booking's confirmation again: the customer lost the email, or never got it.

The same confirmation as when the booking was made (its sessions as they are now, the invites
and the Cancel/Reschedule link), to the customer only, queued ready to send and recorded in the
booking's history. Each resend is a message of its own (its own Message-ID): a mail program
that dropped the first one as a repeat would drop a copy too.
"""

from __future__ import annotations

from calsync.bookings import notices
from calsync.bookings.lookup import load_booking
from calsync.config import Settings
from calsync.store.db import Database
from calsync.store.models import Actor, BookingChange, BookingStatus, HistoryAction
from calsync.sync.connections import ServiceError


def resend_confirmation(db: Database, settings: Settings, booking_id: str) -> str:
    """Queue the confirmation again; the address it goes to. Raises NotFoundError, and
    ServiceError for a booking that is not active or whose link is revoked."""
    with db.writing() as session:
        booking = load_booking(session, booking_id)
        if booking.status is not BookingStatus.ACTIVE:
            raise ServiceError(
                f"booking {booking_id} is {booking.status.value}: there is nothing to confirm"
            )
        if booking.token_encrypted is None:
            raise ServiceError(
                f"booking {booking_id}'s manage link is revoked; `calsync booking relink "
                f"{booking_id} --email` sends the confirmation with a new one"
            )
        line = BookingChange(actor=Actor.OWNER, action=HistoryAction.CONFIRMATION_RESENT)
        booking.history.append(line)
        session.flush()
        line.details = {"to": booking.customer_email}
        notices.queue_new_link(
            session,
            settings,
            booking,
            booking.owner,
            change_key=f"confirmation-{booking.id}-{line.id}",
        )
        return booking.customer_email
