"""The console's calendar pages: the list, one calendar's settings, "sync now", disconnect.

- ``GET /console/calendars``: every calendar of the owner with its role, sync state, last
  poll, last error in words and what to do (``wording.sync_state``).
- ``GET /console/calendars/<id>``: its settings (role, cancel mode, name; adoption rule) and
  actions; ``POST …/settings``, ``POST …/adoption``, ``POST …/sync``.
- ``GET /console/calendars/<id>/disconnect``: says what happens to bookings and event types
  that rely on it, then ``POST`` disconnects (``sync.connections.remove_calendar``).

Connecting calendars is in ``connect.py``. Every id goes through ``isolation``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from calsync.access.sessions import SignedInOwner
from calsync.store.models import (
    AdoptionRule,
    CalendarConnection,
    CalendarRole,
    CancelMode,
    EventType,
    ProviderKind,
    SyncOutcome,
)
from calsync.sync import connections as services
from calsync.web.console import wording
from calsync.web.console.auth import ConsoleFormDep, CurrentOwner
from calsync.web.console.isolation import owned_calendar, owned_event_type
from calsync.web.console.rate_limit import limit_console_requests
from calsync.web.console.render import Section, console_page, go
from calsync.web.console.server_address import points_inside
from calsync.web.deps import DbDep, SettingsDep

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False, dependencies=[Depends(limit_console_requests)])
READ = ["GET", "HEAD"]

# Short notes shown after a change (``?done=<key>``): fixed words, nothing from the URL shown.
DONE = {
    "saved": "Saved.",
    "adoption": "Adoption saved; it applies from the next sync.",
    "synced": "Synced just now.",
    "busy": "Another calsync process is reading this calendar right now; look again shortly.",
    "failed": "calsync tried to read it just now and could not; see below.",
    "private": wording.PRIVATE_ADDRESS,
    "connected": "Connected. calsync reads the calendar within a few minutes.",
    "disconnected": "The calendar is disconnected.",
}


def when(owner: SignedInOwner, moment: datetime | None) -> str:
    """A time in the owner's zone, e.g. "3 Dec 2026, 14:05"; "never" for None."""
    if moment is None:
        return "never"
    local = moment.astimezone(ZoneInfo(owner.timezone))
    return f"{local.day} {local:%b %Y, %H:%M}"


def _calendars(db: DbDep, owner: SignedInOwner) -> list[CalendarConnection]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(CalendarConnection)
                .where(CalendarConnection.owner_id == owner.owner_id)
                .order_by(CalendarConnection.id)
            )
        )


def _event_types(db: DbDep, owner: SignedInOwner) -> list[EventType]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(EventType)
                .where(EventType.owner_id == owner.owner_id)
                .order_by(EventType.title)
            )
        )


@router.api_route("/console/calendars", methods=READ)
def list_page(request: Request, owner: CurrentOwner, db: DbDep, settings: SettingsDep) -> Response:
    calendars = _calendars(db, owner)
    rows = [
        {
            "calendar": calendar,
            "role": wording.ROLES[calendar.role],
            "state": wording.sync_state(calendar),
            "last_poll": when(owner, calendar.last_polled_at),
        }
        for calendar in calendars
    ]
    return console_page(
        request,
        settings,
        owner,
        "calendars.html",
        current=Section.CALENDARS,
        rows=rows,
        done=DONE.get(request.query_params.get("done", "")),
    )


@router.api_route("/console/calendars/{calendar_id}", methods=READ)
def calendar_page(
    calendar_id: str, request: Request, owner: CurrentOwner, db: DbDep, settings: SettingsDep
) -> Response:
    calendar = owned_calendar(db, owner, calendar_id)
    return _settings_page(request, settings, owner, db, calendar)


def _settings_page(
    request: Request,
    settings: SettingsDep,
    owner: SignedInOwner,
    db: DbDep,
    calendar: CalendarConnection,
    *,
    problems: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return console_page(
        request,
        settings,
        owner,
        "calendar.html",
        current=Section.CALENDARS,
        status=status,
        calendar=calendar,
        state=wording.sync_state(calendar),
        last_poll=when(owner, calendar.last_polled_at),
        last_success=when(owner, calendar.last_success_at),
        roles=list(wording.ROLES.items()),
        role_hint=wording.ROLE_HINT,
        cancel_modes=list(wording.CANCEL_MODES.items()),
        adoption_rules=list(wording.ADOPTION_RULES.items()),
        event_types=_event_types(db, owner),
        problems=problems or {},
        done=DONE.get(request.query_params.get("done", "")),
    )


@router.post("/console/calendars/{calendar_id}/settings")
def save_settings(
    calendar_id: str, request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep
) -> Response:
    calendar = owned_calendar(db, form.owner, calendar_id)
    fields = form.fields
    problems: dict[str, str] = {}
    role = _choice(CalendarRole, fields.get("role"))
    cancel_mode = _choice(CancelMode, fields.get("cancel_mode"))
    name = (fields.get("name") or "").strip()
    if role is None:
        problems["role"] = "Choose what the calendar is used for."
    if cancel_mode is None:
        problems["cancel_mode"] = "Choose what happens to a cancelled session's event."
    if not name:
        problems["name"] = "Give the calendar a name, so you can tell it apart."
    elif len(name) > 200:
        problems["name"] = "The name can be at most 200 characters long."
    if not problems and role is CalendarRole.CONFLICTS:
        needed_by = services.calendar_dependents(db, calendar.id).event_type_slugs
        if needed_by:
            problems["role"] = (
                "Event types book into this calendar, so it must keep taking bookings. Give "
                f"{', '.join(needed_by)} another booking calendar first."
            )
    if not problems:
        try:
            services.set_calendar(db, calendar.id, role=role, cancel_mode=cancel_mode, name=name)
        except services.ServiceError as exc:  # an event type took it meanwhile
            problems["role"] = str(exc)
    if problems:
        return _settings_page(
            request, settings, form.owner, db, calendar, problems=problems, status=422
        )
    return go(settings, f"/calendars/{calendar.id}?done=saved")


@router.post("/console/calendars/{calendar_id}/adoption")
def save_adoption(
    calendar_id: str, request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep
) -> Response:
    calendar = owned_calendar(db, form.owner, calendar_id)
    fields = form.fields
    problems: dict[str, str] = {}
    rule = _choice(AdoptionRule, fields.get("adopt"))
    category = (fields.get("category") or "").strip() or None
    event_type_id: int | None = None
    if rule is None:
        problems["adopt"] = "Choose which events become bookings."
    elif rule is not AdoptionRule.OFF:
        chosen = (fields.get("event_type") or "").strip()
        if not chosen:
            problems["event_type"] = "Choose the event type that adopted bookings get."
        else:
            event_type_id = owned_event_type(db, form.owner, chosen).id
        if rule is AdoptionRule.CATEGORY and not category:
            problems["category"] = "Name the category that marks an event as a booking."
    if category and len(category) > 200:
        problems["category"] = "The category can be at most 200 characters long."
    if problems:
        return _settings_page(
            request, settings, form.owner, db, calendar, problems=problems, status=422
        )
    assert rule is not None
    services.set_adoption(
        db,
        calendar.id,
        rule,
        event_type_id,
        category if rule is AdoptionRule.CATEGORY else None,
        email_customer=fields.get("email_customer") == "yes",
    )
    return go(settings, f"/calendars/{calendar.id}?done=adoption")


@router.post("/console/calendars/{calendar_id}/sync")
def sync_now(
    calendar_id: str, request: Request, form: ConsoleFormDep, db: DbDep, settings: SettingsDep
) -> Response:
    calendar = owned_calendar(db, form.owner, calendar_id)
    if (
        calendar.provider is ProviderKind.CALDAV
        and not settings.web.allow_private_caldav
        and points_inside(calendar.url)
    ):
        # The address may have been connected by the operator, or resolve differently now.
        log.info("console: owner %s: refused sync now of a non-public address", form.owner.owner_id)
        return go(settings, f"/calendars/{calendar.id}?done=private")
    results = request.app.state.poller.sync_now([calendar.id])
    if not results:
        done = "busy"
    elif results[0].outcome is SyncOutcome.OK:
        done = "synced"
    else:
        done = "failed"
    return go(settings, f"/calendars/{calendar.id}?done={done}")


@router.api_route("/console/calendars/{calendar_id}/disconnect", methods=READ)
def confirm_disconnect(
    calendar_id: str, request: Request, owner: CurrentOwner, db: DbDep, settings: SettingsDep
) -> Response:
    calendar = owned_calendar(db, owner, calendar_id)
    dependents = services.calendar_dependents(db, calendar.id)
    return console_page(
        request,
        settings,
        owner,
        "calendar_disconnect.html",
        current=Section.CALENDARS,
        calendar=calendar,
        bookings=dependents.booking_ids,
        event_types=dependents.event_type_slugs,
    )


@router.post("/console/calendars/{calendar_id}/disconnect")
def disconnect(
    calendar_id: str, form: ConsoleFormDep, db: DbDep, settings: SettingsDep
) -> Response:
    calendar = owned_calendar(db, form.owner, calendar_id)
    services.remove_calendar(db, calendar.id, force=True)
    log.info("console: owner %s disconnected calendar %s", form.owner.owner_id, calendar.id)
    return go(settings, "/calendars?done=disconnected")


Choice = TypeVar("Choice", CalendarRole, CancelMode, AdoptionRule)


def _choice(kind: type[Choice], value: str | None) -> Choice | None:
    try:
        return kind((value or "").strip())
    except ValueError:
        return None
