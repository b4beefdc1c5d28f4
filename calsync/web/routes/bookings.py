"""``/api/bookings``: book a package of sessions, read a booking, and manage its link.

Two outcomes of booking carry more than errors.py's default for a ServiceError (400), so they
are answered here: a start that is no longer free is a 409 naming that start, and a calendar
that refused the events is a 502 (nothing was booked). Everything else (422 field lists, 404,
409 for busy time not known yet, provider failures while relinking) goes through errors.py.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from calsync.sync import bookings, links, services
from calsync.sync.event_types import InvalidInput, get_event_type
from calsync.web.errors import message_response
from calsync.web.routes.deps import DbDep, SettingsDep
from calsync.web.schemas import (
    NOT_FOUND,
    BookingCreate,
    BookingOut,
    ManageUrlOut,
    SlotTakenOut,
    failure,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/bookings", tags=["bookings"])


@router.post(
    "",
    status_code=201,
    response_model=BookingOut,
    responses={
        409: {
            "model": SlotTakenOut,
            "description": "A start is no longer free (``start`` names it), or a conflict "
            "calendar has never been synced (then only ``detail``).",
        },
        502: failure("The booking calendar refused the events or cannot be reached."),
    },
)
def create_booking(
    body: BookingCreate, db: DbDep, settings: SettingsDep
) -> BookingOut | JSONResponse:
    """Book one session per start into the owner's booking calendar.

    Each start must be one of the offered slots (see the event type's availability); they are
    re-checked against fresh calendar data. The answer holds the booking's id, its manage link
    and its sessions with times in the customer's zone.
    """
    try:
        event_type = get_event_type(db, body.event_type)
    except services.NotFoundError as exc:
        # Named in the body: an unknown event type is a problem with that field.
        raise InvalidInput([("event_type", str(exc))]) from None
    request = bookings.BookingRequest(
        event_type=event_type.id,
        customer_name=body.customer_name,
        customer_email=body.customer_email,
        starts=tuple(body.starts),
        customer_timezone=body.customer_timezone,
        stakeholders=tuple(body.stakeholders),
    )
    try:
        result = bookings.book(db, settings, request)
    except bookings.SlotTaken as exc:
        taken = SlotTakenOut(detail=str(exc), start=exc.start)
        return JSONResponse(status_code=409, content=taken.model_dump(mode="json"))
    except bookings.CalendarWriteFailed as exc:
        log.warning("booking %s: calendar write failed: %s", event_type.slug, exc)
        return message_response(502, str(exc))
    return BookingOut.from_row(result.booking, result.manage_url)


@router.get("/{booking_id}", responses=NOT_FOUND)
def get_booking(booking_id: str, db: DbDep, settings: SettingsDep) -> BookingOut:
    """The booking with its sessions (in the customer's zone), its current link and history."""
    booking = bookings.get_booking(db, booking_id)
    return BookingOut.from_row(booking, links.current_link(settings, booking))


@router.post(
    "/{booking_id}/relink",
    responses=NOT_FOUND | {502: failure("A calendar could not be updated with the new link.")},
)
def relink_booking(booking_id: str, db: DbDep, settings: SettingsDep) -> ManageUrlOut:
    """Issue a new manage link and write it into every event; the old link stops working."""
    return ManageUrlOut(manage_url=bookings.relink(db, settings, booking_id))


@router.post("/{booking_id}/revoke", status_code=204, responses=NOT_FOUND)
def revoke_booking_link(booking_id: str, db: DbDep) -> Response:
    """The manage link stops working at once; ``relink`` issues a new one."""
    bookings.revoke_link(db, booking_id)
    return Response(status_code=204)
