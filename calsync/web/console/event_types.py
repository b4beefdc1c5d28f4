"""The console's event-type pages: the list, a new one, one to edit, and its next free times.

- ``GET /console/event-types``: the owner's event types with their booking pages.
- ``GET /console/event-types/new``, ``POST`` the same: create one.
- ``GET /console/event-types/<id>``: its form, filled in, and a preview of the next free slots
  (the availability engine that new bookings and the manage page use); ``POST`` saves it.

The form (``event_type_form.py``) is validated by the admin API's own model and saved by the
same service (``bookings/event_types.py`` ``save_event_type``), so every rule and message is
the API's; problems come back next to the field at fault (422). The owner is always the one
signed in; calendars are offered from their own only, and the service refuses any other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from calsync.access.sessions import SignedInOwner
from calsync.bookings.event_types import (
    AvailabilityUnknown,
    InvalidInput,
    find_slots,
    get_event_type,
    page_url,
    save_event_type,
)
from calsync.store.models import CalendarConnection, EventType, utcnow
from calsync.web.api.event_types import spec_from_body
from calsync.web.console import event_type_form as form_rules
from calsync.web.console.auth import ConsoleFormDep, CurrentOwner
from calsync.web.console.booking_views import when
from calsync.web.console.isolation import owned_event_type
from calsync.web.console.rate_limit import limit_console_requests
from calsync.web.console.render import Section, console_page, go
from calsync.web.deps import DbDep, SettingsDep

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, dependencies=[Depends(limit_console_requests)])
READ = ["GET", "HEAD"]
PREVIEW_SLOTS = 8
PREVIEW_DAYS = 14
DONE = {"created": "The event type is created.", "saved": "Saved."}
NOT_READ_YET = (
    "Free times cannot be shown yet: a conflict calendar has not been read. Look again in a "
    "few minutes (Calendars shows when each was last read)."
)


def _calendars(db: DbDep, owner: SignedInOwner) -> list[CalendarConnection]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(CalendarConnection)
                .where(CalendarConnection.owner_id == owner.owner_id)
                .order_by(CalendarConnection.id)
            )
        )


@router.api_route("/console/event-types", methods=READ)
def list_page(request: Request, owner: CurrentOwner, db: DbDep, settings: SettingsDep) -> Response:
    with db.reading() as session:
        rows = list(
            session.scalars(
                select(EventType)
                .where(EventType.owner_id == owner.owner_id)
                .order_by(EventType.title, EventType.id)
            )
        )
    return console_page(
        request,
        settings,
        owner,
        "event_types.html",
        current=Section.EVENT_TYPES,
        rows=[(row, page_url(settings.base_url, row)) for row in rows],
    )


def _form_page(
    request: Request,
    settings: SettingsDep,
    db: DbDep,
    owner: SignedInOwner,
    event_type: EventType | None,
    values: Mapping[str, Any],
    *,
    problems: Mapping[str, str] | None = None,
    status: int = 200,
) -> Response:
    preview: list[str] = []
    preview_note = None
    if event_type is not None and not problems:
        preview, preview_note = _preview(db, event_type)
    return console_page(
        request,
        settings,
        owner,
        "event_type.html",
        current=Section.EVENT_TYPES,
        status=status,
        event_type=event_type,
        page_link=page_url(settings.base_url, event_type) if event_type else None,
        values=values,
        problems=problems or {},
        calendars=_calendars(db, owner),
        days=form_rules.DAYS,
        permissions=form_rules.PERMISSIONS,
        reasons=form_rules.REASONS,
        fee_kinds=form_rules.FEE_KINDS,
        preview=preview,
        preview_note=preview_note,
        done=DONE.get(request.query_params.get("done", "")),
    )


def _preview(db: DbDep, event_type: EventType) -> tuple[list[str], str | None]:
    """The next free slots in the event type's zone, or why they cannot be shown."""
    zone = ZoneInfo(event_type.timezone)
    start = utcnow().replace(second=0, microsecond=0)
    days = min(PREVIEW_DAYS, event_type.horizon_days)
    try:
        fresh = get_event_type(db, event_type.id)
        slots = find_slots(db, fresh, start, start + timedelta(days=days))
    except AvailabilityUnknown:
        return [], NOT_READ_YET
    except InvalidInput as exc:
        return [], str(exc)
    shown = [f"{when(s.start, zone)} – {s.end.astimezone(zone):%H:%M}" for s in slots]
    if not shown:
        return [], f"No free time in the next {days} days."
    return shown[:PREVIEW_SLOTS], None


@router.api_route("/console/event-types/new", methods=READ)
def new_page(request: Request, owner: CurrentOwner, db: DbDep, settings: SettingsDep) -> Response:
    values = form_rules.values_of(None, owner.timezone)
    return _form_page(request, settings, db, owner, None, values)


@router.api_route("/console/event-types/{event_type_id}", methods=READ)
def edit_page(
    event_type_id: str, request: Request, owner: CurrentOwner, db: DbDep, settings: SettingsDep
) -> Response:
    row = owned_event_type(db, owner, event_type_id)
    event_type = get_event_type(db, row.id)
    values = form_rules.values_of(event_type, owner.timezone)
    return _form_page(request, settings, db, owner, event_type, values)


def _save(
    request: Request,
    form: ConsoleFormDep,
    db: DbDep,
    settings: SettingsDep,
    event_type: EventType | None,
) -> Response:
    owner = form.owner
    calendar_ids = [str(c.id) for c in _calendars(db, owner)]
    parsed = form_rules.parse(form.fields, owner.email, calendar_ids)
    problems = dict(parsed.problems)
    saved = None
    if parsed.body is not None:
        try:
            saved = save_event_type(
                db,
                spec_from_body(parsed.body, owner.timezone),
                event_type.id if event_type else None,
            )
        except InvalidInput as exc:
            problems = form_rules.service_problems(exc.problems)
    if saved is None:
        values = form_rules.posted_values(form.fields)
        return _form_page(
            request, settings, db, owner, event_type, values, problems=problems, status=422
        )
    log.info("console: event type %s saved by %s", saved.id, owner.email)
    return go(settings, f"/event-types/{saved.id}?done={'saved' if event_type else 'created'}")


@router.post("/console/event-types/new")
def create(request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep) -> Response:
    return _save(request, form, db, settings, None)


@router.post("/console/event-types/{event_type_id}")
def update(
    event_type_id: str, request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep
) -> Response:
    row = owned_event_type(db, form.owner, event_type_id)
    return _save(request, form, db, settings, get_event_type(db, row.id))
