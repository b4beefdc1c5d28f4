"""``/api/calendars``: connected calendars, their sync state, and polling one now."""

from __future__ import annotations

from fastapi import APIRouter, Response

from calsync.bookings.event_types import InvalidInput
from calsync.sync import connections as services
from calsync.web.deps import DbDep, PollerDep, SettingsDep
from calsync.web.errors import PollInProgress, message_response
from calsync.web.schemas import NOT_FOUND, CalendarCreate, CalendarOut, DbId, SyncResultOut, failure

router = APIRouter(prefix="/calendars", tags=["calendars"])


@router.post(
    "",
    status_code=201,
    responses={
        400: failure("Wrong password, or the URL is not a CalDAV calendar or server."),
        502: failure("The calendar server cannot be reached or failed."),
    },
)
def add_calendar(body: CalendarCreate, db: DbDep, settings: SettingsDep) -> list[CalendarOut]:
    """Connect a CalDAV calendar, or every event calendar of the account at a server URL.

    The server is asked right away: a wrong URL or password is a 400 saying so, an unreachable
    server a 502, an unknown owner a 422. The password is stored encrypted and never returned.
    """
    password = body.password.get_secret_value() if body.password is not None else None
    request = services.CalDAVRequest(
        owner_email=body.owner_email,
        url=body.url,
        username=body.username,
        password=password,
        role=body.role,
        timezone=body.timezone,
        all_day=body.all_day,
    )
    try:
        created = services.add_caldav_calendar(db, settings, request)
    except services.NotFoundError as exc:
        # The owner is named in the body: an unknown one is a problem with that field.
        raise InvalidInput([("owner_email", str(exc))]) from None
    return [CalendarOut.from_row(c, owner_email=body.owner_email, events=0) for c in created]


@router.get("")
def list_calendars(db: DbDep) -> list[CalendarOut]:
    """Every calendar with its status, last error, event count, last sync and next poll."""
    counts = services.event_counts(db)
    return [
        CalendarOut.from_row(c, owner_email=c.owner.email, events=counts.get(c.id, 0))
        for c in services.list_calendars(db)
    ]


@router.get("/{calendar_id}", responses=NOT_FOUND)
def get_calendar(calendar_id: DbId, db: DbDep) -> CalendarOut:
    connection = services.get_calendar(db, calendar_id)
    events = services.event_counts(db).get(calendar_id, 0)
    return CalendarOut.from_row(connection, owner_email=connection.owner.email, events=events)


@router.delete(
    "/{calendar_id}",
    status_code=204,
    responses=NOT_FOUND | {409: failure("Bookings or event types rely on it (without force).")},
)
def remove_calendar(calendar_id: DbId, db: DbDep, force: bool = False) -> Response:
    """Disconnect a calendar and forget its mirror; nothing changes on the server.

    Refused (409) while active bookings have events in it or it is an event type's booking
    calendar; ``?force=true`` removes it anyway: the bookings' events stay on the server but
    calsync can no longer change them, and the event types lose their booking calendar."""
    try:
        services.remove_calendar(db, calendar_id, force=force)
    except services.CalendarInUse as exc:
        return message_response(
            409,
            f"calendar {calendar_id} is still in use: {exc.dependents.describe()}. Move them "
            "first, or remove it anyway with ?force=true: " + services.REMOVE_FORCE_OUTCOME,
        )
    return Response(status_code=204)


@router.post(
    "/{calendar_id}/sync",
    responses=NOT_FOUND | {409: failure("Another worker is polling it right now.")},
)
def sync_calendar(calendar_id: DbId, db: DbDep, poller: PollerDep) -> SyncResultOut:
    """Poll the calendar now and return what the poll did.

    A poll that reached the server but failed is still a 200, with ``outcome: failed`` and the
    ``error``; 409 when another worker is polling the calendar at this moment.
    """
    services.get_calendar(db, calendar_id)
    results = poller.sync_now([calendar_id])
    if not results:
        raise PollInProgress(
            f"calendar {calendar_id} is being polled by another worker right now; "
            f"its result will show in GET /api/calendars/{calendar_id} shortly"
        )
    return SyncResultOut.from_result(results[0])
