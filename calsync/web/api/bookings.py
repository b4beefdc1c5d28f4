"""``/api/bookings``: book a package of sessions, read a booking, manage its link, and move or
cancel its sessions as the owner (never bound by the cancel/reschedule policy).

A calendar that refused the events of a new booking is answered here (502: nothing was booked).
Everything else goes through errors.py: 422 field lists (and ChangeRefused naming its field),
404, 409 for a start that is no longer free (naming it), for busy time not known yet, for a
booking that changed since ``expected_version`` and for an idempotency key reused with another
body; provider failures while relinking.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from calsync.bookings import changes, confirmations, links, reschedule_requests
from calsync.bookings import listing as booking_list
from calsync.bookings import packages as bookings
from calsync.bookings.event_types import InvalidInput, get_event_type
from calsync.bookings.listing import BookingFilter, When
from calsync.store.models import Actor
from calsync.sync import connections as services
from calsync.web.api.booking_schemas import (
    BookingCreate,
    BookingId,
    BookingOut,
    ManageUrlOut,
    SlotTakenOut,
)
from calsync.web.api.change_schemas import CancelIn, ChangeResultOut, RescheduleIn, change_result
from calsync.web.api.request_schemas import (
    ConfirmationSent,
    RescheduleRequestCreated,
    RescheduleRequestIn,
    RescheduleRequestOut,
)
from calsync.web.deps import DbDep, SettingsDep
from calsync.web.errors import message_response
from calsync.web.schemas import NOT_FOUND, DbId, ValidationFailed, failure

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
        payment_intent=body.payment_intent,
    )
    try:
        result = bookings.book(db, settings, request)
    except bookings.CalendarWriteFailed as exc:
        log.warning("booking %s: calendar write failed: %s", event_type.slug, exc)
        return message_response(502, str(exc))
    return BookingOut.from_row(result.booking, result.manage_url)


@router.get("", responses=NOT_FOUND)
def list_bookings(
    db: DbDep,
    settings: SettingsDep,
    owner: str | None = None,
    event_type: str | None = None,
    when: When = When.ALL,
    customer: str | None = None,
) -> list[BookingOut]:
    """Bookings, soonest first session first: ``owner`` (email), ``event_type`` (id or slug),
    ``when`` (upcoming: a session still to come; past: all over), ``customer`` (part of the
    customer's email or name)."""
    key: int | str | None = event_type
    if event_type is not None and event_type.isdigit():
        key = int(event_type)
    found = booking_list.list_bookings(
        db, BookingFilter(owner_email=owner, event_type=key, when=when, customer=customer)
    )
    return [BookingOut.from_row(b, links.current_link(settings, b)) for b in found]


@router.get("/{booking_id}", responses=NOT_FOUND)
def get_booking(booking_id: BookingId, db: DbDep, settings: SettingsDep) -> BookingOut:
    """The booking with its sessions (in the customer's zone), its current link, history and
    changes."""
    booking = bookings.get_booking(db, booking_id)
    recorded = changes.changes_of(db, booking_id)
    return BookingOut.from_row(booking, links.current_link(settings, booking), recorded)


@router.post(
    "/{booking_id}/relink",
    responses=NOT_FOUND | {502: failure("A calendar could not be updated with the new link.")},
)
def relink_booking(booking_id: BookingId, db: DbDep, settings: SettingsDep) -> ManageUrlOut:
    """Issue a new manage link and write it into every event; the old link stops working."""
    return ManageUrlOut(manage_url=bookings.relink(db, settings, booking_id))


@router.post("/{booking_id}/revoke", status_code=204, responses=NOT_FOUND)
def revoke_booking_link(booking_id: BookingId, db: DbDep) -> Response:
    """The manage link stops working at once; ``relink`` issues a new one."""
    bookings.revoke_link(db, booking_id)
    return Response(status_code=204)


# -- the owner moves and cancels sessions -------------------------------------------------------

CHANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: failure(
        "The booking changed since expected_version, or the idempotency key was used for "
        "another request, or a conflict calendar has never been synced."
    ),
    422: {
        "model": ValidationFailed,
        "description": "The request has problems, or the change is not possible (a session "
        "of another booking, or already cancelled).",
    },
}


@router.post("/{booking_id}/reschedule", responses=CHANGE_RESPONSES)
def reschedule_sessions(
    booking_id: BookingId, body: RescheduleIn, db: DbDep, settings: SettingsDep
) -> ChangeResultOut:
    """Move sessions to new starts, in the owner's calendar too (same UID, SEQUENCE + 1).

    The owner is not bound by the cancel/reschedule policy, and is never charged a fee nor
    counted against the customer's allowance. A move onto a time that is not offered (busy,
    outside hours, inside the notice, off the slot grid) is refused with the reason unless
    ``force`` is true. ``change.status`` is
    ``pending`` while a calendar cannot be reached (a worker finishes it), ``conflict`` when
    the owner changed the event in their calendar meanwhile.
    """
    outcome = changes.reschedule(
        db,
        settings,
        booking_id,
        {move.session_id: move.start for move in body.moves},
        actor=Actor.OWNER,
        reason=body.reason,
        idempotency_key=body.idempotency_key,
        expected_version=body.expected_version,
        force=body.force,
    )
    return change_result(outcome, links.current_link(settings, outcome.booking))


@router.post("/{booking_id}/cancel", responses=CHANGE_RESPONSES)
def cancel_sessions(
    booking_id: BookingId, body: CancelIn, db: DbDep, settings: SettingsDep
) -> ChangeResultOut:
    """Cancel sessions (the booking is cancelled once all of its sessions are). The owner is
    not bound by the policy."""
    outcome = changes.cancel(
        db,
        settings,
        booking_id,
        body.session_ids,
        actor=Actor.OWNER,
        reason=body.reason,
        idempotency_key=body.idempotency_key,
        expected_version=body.expected_version,
    )
    return change_result(outcome, links.current_link(settings, outcome.booking))


# -- the owner asks the customer to move sessions; the confirmation again -----------------------


@router.post(
    "/{booking_id}/reschedule-requests",
    status_code=201,
    responses=NOT_FOUND
    | {400: failure("The booking is not active, a session is cancelled, or its link is revoked.")},
)
def request_reschedule(
    booking_id: BookingId, body: RescheduleRequestIn, db: DbDep, settings: SettingsDep
) -> RescheduleRequestCreated:
    """Ask the customer to choose new times for the sessions: they are emailed a "Choose new
    times" link that opens their manage page with those sessions ticked; no fee, notice,
    allowance or reason rule applies to that move. The request is recorded in the booking's
    history, replaces an open earlier one, and ends when used, revoked or expired."""
    issued = reschedule_requests.request_reschedule(
        db, settings, booking_id, body.session_ids, message=body.message, days=body.days
    )
    return RescheduleRequestCreated(
        id=issued.id, sessions=list(issued.positions), expires_at=issued.expires_at, url=issued.url
    )


@router.get("/{booking_id}/reschedule-requests", responses=NOT_FOUND)
def list_reschedule_requests(booking_id: BookingId, db: DbDep) -> list[RescheduleRequestOut]:
    """The booking's reschedule requests, newest first, each open, used, revoked or expired."""
    return [
        RescheduleRequestOut.from_view(v) for v in reschedule_requests.requests_of(db, booking_id)
    ]


@router.post(
    "/{booking_id}/reschedule-requests/{request_id}/revoke",
    status_code=204,
    responses=NOT_FOUND | {400: failure("The request is not open any more.")},
)
def revoke_reschedule_request(booking_id: BookingId, request_id: DbId, db: DbDep) -> Response:
    """Withdraw an open request: its link no longer offers the free move."""
    reschedule_requests.revoke_request(db, booking_id, request_id)
    return Response(status_code=204)


@router.post(
    "/{booking_id}/resend-confirmation",
    status_code=202,
    responses=NOT_FOUND | {400: failure("The booking is not active, or its link is revoked.")},
)
def resend_confirmation(
    booking_id: BookingId, db: DbDep, settings: SettingsDep
) -> ConfirmationSent:
    """Queue the booking's confirmation (sessions as they are now, invites, manage link) to the
    customer again; recorded in the booking's history."""
    return ConfirmationSent(sent_to=confirmations.resend_confirmation(db, settings, booking_id))
