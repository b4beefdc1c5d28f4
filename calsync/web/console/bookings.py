"""The console's booking pages: the list, one booking, and what the owner can do to it.

- ``GET /console/bookings?when=upcoming|past|all&customer=…``: the owner's bookings, soonest
  first, searchable by the customer's name or email (``bookings/listing.py``).
- ``GET /console/bookings/<id>``: its sessions, link, reschedule requests, changes (with fee or
  refund) and full history, every time in the owner's zone, and the forms below.
- ``POST …/reschedule`` (one session to a new time, ``force`` to skip the checks) and
  ``POST …/cancel`` (ticked sessions): the change engine as the CLI and the API call it, as the
  owner, so the policy does not bind them (``bookings/changes.py``); each form carries an
  idempotency key and the booking version shown, so a double click or a stale page changes
  nothing twice.
- ``POST …/request-reschedule``, ``POST …/requests/<rid>/revoke``: ask the customer to choose
  new times (``bookings/reschedule_requests.py``), or withdraw the request.
- ``POST …/relink`` (optionally emailing the new link), ``POST …/revoke-link``,
  ``POST …/resend-confirmation``.

Every id goes through ``isolation`` (another owner's booking is the console's 404). Every POST
passes the skeleton's origin and anti-CSRF checks (``ConsoleFormDep``), then redirects
(303) to the booking with a short note, or shows the page again with the problem next to the
form at fault (422/409). Refusals are worded by ``booking_wording.py``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request, Response

from calsync.access.sessions import SignedInOwner
from calsync.bookings import changes, confirmations, links, notices, reschedule_requests
from calsync.bookings import listing as booking_listing
from calsync.bookings import packages as bookings
from calsync.bookings.event_types import AvailabilityUnknown, InvalidInput
from calsync.calendars.errors import ProviderError
from calsync.store.models import Actor, Booking, BookingStatus
from calsync.sync.connections import NotFoundError, ServiceError
from calsync.sync.fresh_busy import BusyTimeNotFresh
from calsync.web.console import booking_views as views
from calsync.web.console.auth import ConsoleForm, ConsoleFormDep, CurrentOwner
from calsync.web.console.booking_wording import (
    CALENDAR_UNREAD,
    CALENDAR_UPDATING,
    STALE,
    refusal_words,
)
from calsync.web.console.isolation import NotYours, owned_booking
from calsync.web.console.rate_limit import limit_console_requests
from calsync.web.console.render import Section, console_page, go
from calsync.web.deps import DbDep, SettingsDep

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, dependencies=[Depends(limit_console_requests)])
READ = ["GET", "HEAD"]

# Notes after a change (``?done=<key>``): fixed words, nothing from the URL is shown.
DONE = {
    "moved": "The session is moved; the customer, you and the stakeholders are emailed.",
    "pending": "Saved. A calendar could not be reached; calsync keeps trying, and the emails "
    "go out once the calendar has the change.",
    "conflict": "Not moved: you changed the event in your calendar meanwhile. See the history.",
    "cancelled": "Cancelled; the customer, you and the stakeholders are emailed.",
    "requested": "The customer is emailed a “Choose new times” link.",
    "withdrawn": "The request is withdrawn; its link no longer offers the free move.",
    "relinked": "A new link is issued and written into the events; the old one stopped working.",
    "relinked-emailed": "A new link is issued, written into the events, and emailed to the "
    "customer.",
    "revoked": "The link stopped working. Issue a new one to let the customer manage it again.",
    "resent": "The confirmation is emailed to the customer again.",
}
LINK_REVOKED_REQUEST = (
    "The customer's link is revoked, and the request travels with it: issue a new link first "
    "(under “The customer's link”)."
)
LINK_REVOKED_RESEND = (
    "The customer's link is revoked: “Issue a new link” with “email it to the customer” sends "
    "the confirmation with a new one."
)
WHEN_CHOICES = [("upcoming", "Upcoming"), ("past", "Past"), ("all", "All")]


def _zone(owner: SignedInOwner) -> ZoneInfo:
    return ZoneInfo(owner.timezone)


@router.api_route("/console/bookings", methods=READ)
def list_page(request: Request, owner: CurrentOwner, db: DbDep, settings: SettingsDep) -> Response:
    params = request.query_params
    chosen = params.get("when", "upcoming")
    when = booking_listing.When(chosen) if chosen in {"upcoming", "past", "all"} else None
    customer = (params.get("customer") or "").strip()[:200]
    found = booking_listing.list_bookings(
        db,
        booking_listing.BookingFilter(
            owner_email=owner.email,
            when=when or booking_listing.When.UPCOMING,
            customer=customer or None,
        ),
    )
    return console_page(
        request,
        settings,
        owner,
        "bookings.html",
        current=Section.BOOKINGS,
        rows=views.list_rows(found, _zone(owner)),
        when=when.value if when else "upcoming",
        when_choices=WHEN_CHOICES,
        customer=customer,
        zone=owner.timezone,
    )


@router.api_route("/console/bookings/{booking_id}", methods=READ)
def booking_page(
    booking_id: str, request: Request, owner: CurrentOwner, db: DbDep, settings: SettingsDep
) -> Response:
    booking = _mine(db, owner, booking_id)
    done = DONE.get(request.query_params.get("done", ""))
    return _page(request, settings, db, owner, booking, done=done)


def _mine(db: DbDep, owner: SignedInOwner, booking_id: str) -> Booking:
    """The booking with its sessions, history and owner, if it is this owner's."""
    owned_booking(db, owner, booking_id)
    try:
        return bookings.get_booking(db, booking_id)
    except ServiceError:
        raise NotYours() from None


def _page(
    request: Request,
    settings: SettingsDep,
    db: DbDep,
    owner: SignedInOwner,
    booking: Booking,
    *,
    done: str | None = None,
    problems: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
    status: int = 200,
) -> Response:
    zone = _zone(owner)
    return console_page(
        request,
        settings,
        owner,
        "booking.html",
        current=Section.BOOKINGS,
        status=status,
        booking=booking,
        active=booking.status is BookingStatus.ACTIVE,
        sessions=views.session_rows(booking, zone),
        link=links.current_link(settings, booking),
        link_until=views.when(booking.token_expires_at, zone),
        requests=views.request_rows(reschedule_requests.requests_of(db, booking.id), zone),
        changes=views.change_rows(booking, changes.changes_of(db, booking.id), zone),
        history=views.history_rows(booking, booking.history, zone),
        zone=owner.timezone,
        key=secrets.token_urlsafe(16),
        done=done,
        problems=problems or {},
        values=values or {},
    )


def _positions(form: ConsoleForm, booking: Booking, name: str = "session") -> list[int] | None:
    """The ticked sessions' ids (the form sends positions); None when one is not ours."""
    by_position = {str(s.position): s.id for s in booking.sessions}
    picked = form.fields.getlist(name)
    if any(p not in by_position for p in picked):
        return None
    return [by_position[p] for p in dict.fromkeys(picked)]


def _reason(form: ConsoleForm) -> str | None:
    return (form.fields.get("reason") or "").strip() or None


def _version(form: ConsoleForm) -> int | None:
    text = form.fields.get("version") or ""
    return int(text) if text.isdigit() and len(text) < 10 else None


def _key(form: ConsoleForm) -> str | None:
    text = (form.fields.get("key") or "").strip()
    return f"console-{text}"[:100] if text else None


def _start(text: str, zone: ZoneInfo) -> datetime | None:
    """A ``datetime-local`` value in the owner's zone (a wall time in a DST gap or overlap
    takes the offset before it, like everywhere in calsync)."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _after_change(status: str) -> str:
    return {"applied": "moved", "pending": "pending", "conflict": "conflict"}.get(status, "moved")


@router.post("/console/bookings/{booking_id}/reschedule")
def reschedule(
    booking_id: str, request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep
) -> Response:
    owner = form.owner
    booking = _mine(db, owner, booking_id)
    fields = form.fields
    values = {"move_session": fields.get("session", ""), "move_to": fields.get("start", "")}
    values["move_reason"] = fields.get("reason", "")

    def again(problem: str, status: int = 422) -> Response:
        return _page(
            request,
            settings,
            db,
            owner,
            _mine(db, owner, booking_id),
            problems={"move": problem},
            values=values,
            status=status,
        )

    ids = _positions(form, booking)
    if not ids or len(ids) != 1:
        return again("Choose the session to move.")
    start = _start(fields.get("start") or "", _zone(owner))
    if start is None:
        return again("Give the new start as a date and a time.")
    try:
        outcome = changes.reschedule(
            db,
            settings,
            booking.id,
            {ids[0]: start},
            actor=Actor.OWNER,
            reason=_reason(form),
            idempotency_key=_key(form),
            expected_version=_version(form),
            force=fields.get("force") == "yes",
        )
    except changes.StaleBooking:
        return again(STALE, 409)
    except (changes.ChangeRefused, changes.TimeTaken, changes.ReplayMismatch) as exc:
        return again(refusal_words(exc.refusal, _zone(owner)))
    except AvailabilityUnknown:
        return again(CALENDAR_UNREAD, 409)
    except BusyTimeNotFresh:
        return again(CALENDAR_UPDATING, 409)
    except InvalidInput as exc:
        return again(str(exc))
    log.info("console: booking %s: change %s by the owner", booking.id, outcome.change.id)
    return go(settings, f"/bookings/{booking.id}?done={_after_change(outcome.change.status)}")


@router.post("/console/bookings/{booking_id}/cancel")
def cancel(
    booking_id: str, request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep
) -> Response:
    owner = form.owner
    booking = _mine(db, owner, booking_id)
    values = {"cancel_reason": form.fields.get("reason", "")}

    def again(problem: str, status: int = 422) -> Response:
        fresh = _mine(db, owner, booking_id)
        return _page(
            request,
            settings,
            db,
            owner,
            fresh,
            problems={"cancel": problem},
            values=values,
            status=status,
        )

    ids = _positions(form, booking)
    if not ids:
        return again("Tick the sessions to cancel.")
    try:
        outcome = changes.cancel(
            db,
            settings,
            booking.id,
            ids,
            actor=Actor.OWNER,
            reason=_reason(form),
            idempotency_key=_key(form),
            expected_version=_version(form),
        )
    except changes.StaleBooking:
        return again(STALE, 409)
    except (changes.ChangeRefused, changes.ReplayMismatch) as exc:
        return again(refusal_words(exc.refusal, _zone(owner)))
    done = "cancelled" if outcome.change.status.value == "applied" else "pending"
    return go(settings, f"/bookings/{booking.id}?done={done}")


@router.post("/console/bookings/{booking_id}/request-reschedule")
def request_reschedule(
    booking_id: str, request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep
) -> Response:
    owner = form.owner
    booking = _mine(db, owner, booking_id)
    fields = form.fields
    values = {"request_message": fields.get("message", ""), "request_days": fields.get("days", "")}
    ids = _positions(form, booking)
    days_text = (fields.get("days") or "14").strip()
    problem = None
    if not ids:
        problem = "Tick the sessions the customer should choose new times for."
    elif booking.token_encrypted is None:
        problem = LINK_REVOKED_REQUEST
    elif not days_text.isdigit() or not 1 <= int(days_text) <= reschedule_requests.MAX_DAYS:
        problem = f"The request can stay open 1 to {reschedule_requests.MAX_DAYS} days."
    if problem is None:
        assert ids is not None
        try:
            reschedule_requests.request_reschedule(
                db,
                settings,
                booking.id,
                ids,
                message=fields.get("message"),
                days=int(days_text),
            )
        except ServiceError as exc:
            problem = _sentence(str(exc))
    if problem is not None:
        return _page(
            request,
            settings,
            db,
            owner,
            booking,
            problems={"request": problem},
            values=values,
            status=422,
        )
    return go(settings, f"/bookings/{booking.id}?done=requested")


@router.post("/console/bookings/{booking_id}/requests/{request_id}/revoke")
def revoke_request(
    booking_id: str,
    request_id: str,
    request: Request,
    form: ConsoleFormDep,
    db: DbDep,
    settings: SettingsDep,
) -> Response:
    booking = _mine(db, form.owner, booking_id)
    number = int(request_id) if request_id.isdigit() and len(request_id) < 10 else None
    if number is None:
        raise NotYours()
    try:
        reschedule_requests.revoke_request(db, booking.id, number)
    except ServiceError as exc:
        if isinstance(exc, NotFoundError):
            raise NotYours() from None
        return _page(
            request,
            settings,
            db,
            form.owner,
            booking,
            problems={"requests": _sentence(str(exc))},
            status=409,
        )
    return go(settings, f"/bookings/{booking.id}?done=withdrawn")


@router.post("/console/bookings/{booking_id}/relink")
def relink(
    booking_id: str, request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep
) -> Response:
    booking = _mine(db, form.owner, booking_id)
    try:
        bookings.relink(db, settings, booking.id)
    except (ServiceError, ProviderError) as exc:
        return _page(
            request,
            settings,
            db,
            form.owner,
            _mine(db, form.owner, booking_id),
            problems={"link": _sentence(str(exc))},
            status=502 if isinstance(exc, ProviderError) else 422,
        )
    if form.fields.get("email") != "yes":
        return go(settings, f"/bookings/{booking.id}?done=relinked")
    fresh = bookings.get_booking(db, booking.id)
    with db.writing() as session:
        notices.queue_new_link(
            session,
            settings,
            fresh,
            fresh.owner,
            change_key=f"relink-{fresh.id}-{fresh.version}-{secrets.token_hex(4)}",
        )
    return go(settings, f"/bookings/{booking.id}?done=relinked-emailed")


@router.post("/console/bookings/{booking_id}/revoke-link")
def revoke_link(
    booking_id: str, request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep
) -> Response:
    booking = _mine(db, form.owner, booking_id)
    bookings.revoke_link(db, booking.id)
    return go(settings, f"/bookings/{booking.id}?done=revoked")


@router.post("/console/bookings/{booking_id}/resend-confirmation")
def resend_confirmation(
    booking_id: str, request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep
) -> Response:
    booking = _mine(db, form.owner, booking_id)
    try:
        if booking.token_encrypted is None:
            raise ServiceError(LINK_REVOKED_RESEND)
        confirmations.resend_confirmation(db, settings, booking.id)
    except ServiceError as exc:
        return _page(
            request,
            settings,
            db,
            form.owner,
            booking,
            problems={"resend": _sentence(str(exc))},
            status=422,
        )
    return go(settings, f"/bookings/{booking.id}?done=resent")


def _sentence(text: str) -> str:
    """A service's message (written for the CLI, lower-case first) as a page's sentence."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")
