"""Owner-facing operations shared by the CLI and the admin API: owners and calendars.

Each function takes the database and plain values, validates them, and raises
:class:`ServiceError` (or a provider error) with a message a person can act on.

``ServiceError`` is the root of the errors of the layers above the providers:

    ServiceError                       a request that cannot be carried out as given
    ├── NotFoundError                  an unknown id or slug
    ├── CalendarInUse                  a booking calendar removed without ``force``
    ├── BusyTimeNotFresh (sync/fresh_busy.py)
    ├── InvalidInput, AvailabilityUnknown (bookings/event_types.py)
    ├── SlotTaken, CalendarWriteFailed (bookings/packages.py)
    └── ChangeRefused, StaleBooking, ReplayMismatch (bookings/changes.py: typed refusals,
        no words; see its docstring)

The provider errors are their own tree (``calendars/errors.py``). Each face words them in one
module: ``web/errors.py`` (API), ``web/manage/wording.py`` (manage page), ``cli/messages.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from calsync.calendars.base import CalendarInfo, Interval
from calsync.calendars.errors import NotACalendar, NotFound, Unavailable
from calsync.config import Settings
from calsync.secretbox import SecretBox
from calsync.states import AllDayMode
from calsync.store.db import Database
from calsync.store.models import (
    AdoptionRule,
    BookedSession,
    Booking,
    BookingStatus,
    CalendarConnection,
    CalendarRole,
    CancelMode,
    ConnectionStatus,
    EventType,
    MirroredEvent,
    Owner,
    ProviderKind,
    owner_slug,
    utcnow,
)


class ServiceError(Exception):
    """A request that cannot be carried out as given; the message says why and what to do."""


class NotFoundError(ServiceError):
    pass


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder: OSError
        raise ServiceError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin"
        ) from None
    return name


def add_owner(db: Database, *, name: str, email: str, timezone: str) -> Owner:
    email = email.strip().lower()
    if "@" not in email:
        raise ServiceError(f"{email!r} is not an email address")
    check_timezone(timezone)
    try:
        with db.writing() as session:
            taken = set(session.scalars(select(Owner.slug)))
            owner = Owner(name=name, email=email, slug=owner_slug(email, taken), timezone=timezone)
            session.add(owner)
    except IntegrityError:
        raise ServiceError(f"an owner with email {email} exists already") from None
    return owner


def find_owner(db: Database, email: str) -> Owner:
    with db.reading() as session:
        owner = session.scalars(select(Owner).where(Owner.email == email.strip().lower())).first()
    if owner is None:
        raise NotFoundError(f"no owner with email {email}: add one with `calsync owner add`")
    return owner


def get_owner(db: Database, owner_id: int) -> Owner:
    with db.reading() as session:
        owner = session.get(Owner, owner_id)
    if owner is None:
        raise NotFoundError(f"no owner with id {owner_id}: see GET /api/owners")
    return owner


def list_owners(db: Database) -> list[Owner]:
    with db.reading() as session:
        return list(session.scalars(select(Owner).order_by(Owner.id)))


@dataclass(frozen=True, slots=True)
class CalDAVRequest:
    owner_email: str
    url: str
    username: str | None = None
    password: str | None = None
    role: CalendarRole = CalendarRole.CONFLICTS
    timezone: str | None = None
    all_day: AllDayMode = AllDayMode.FOLLOW_TRANSP
    cancel_mode: CancelMode = CancelMode.MARK


def add_caldav_calendar(
    db: Database, settings: Settings, request: CalDAVRequest
) -> list[CalendarConnection]:
    """Connect the calendar at ``request.url``, or every calendar of the principal there.

    The server is asked first, so a wrong URL or password fails here with a clear message
    instead of later in the poller. Raises ServiceError or a ProviderError.
    """
    owner = find_owner(db, request.owner_email)
    if urlsplit(request.url).password is not None:
        raise ServiceError(
            "put the password in an environment variable and name it with --password-env, "
            "not in the URL (a password in a URL ends up in logs and shell history)"
        )
    if request.timezone:
        check_timezone(request.timezone)
    secret = None
    if request.password:
        secret = SecretBox(settings.require_secret_key()).encrypt(request.password)
    found = _discover_for_add(request, settings.sync.request_timeout_seconds)
    if not found:
        raise ServiceError(f"{request.url} is a CalDAV server, but it has no event calendars")
    connections = []
    with db.writing() as session:
        known = {
            c.url: c
            for c in session.scalars(
                select(CalendarConnection).where(
                    CalendarConnection.provider == ProviderKind.CALDAV,
                    CalendarConnection.url.in_([info.url for info in found]),
                )
            )
        }
        if len(known) == len(found):
            raise ServiceError(_already_connected(list(known.values())))
        for info in found:
            if info.url in known:
                continue  # connected already: a second copy would mirror it twice
            connection = CalendarConnection(
                owner_id=owner.id,
                provider=ProviderKind.CALDAV,
                url=info.url,
                display_name=info.name,
                username=request.username,
                secret_encrypted=secret,
                role=request.role,
                timezone=request.timezone or _calendar_zone(info),
                all_day=request.all_day,
                cancel_mode=request.cancel_mode,
                next_poll_at=utcnow(),
            )
            session.add(connection)
            connections.append(connection)
    return connections


def _short_reason(exc: BaseException) -> str:
    """What went wrong in a few words, not a library's repr of its connection object."""
    text = " ".join(str(e) for e in _chain(exc)).lower()
    for needle, reason in (
        ("refused", "the connection was refused: is the server running on that port?"),
        ("name or service not known", "the host name is unknown"),
        ("failed to resolve", "the host name is unknown"),
        ("nodename nor servname", "the host name is unknown"),
        ("timed out", "it did not answer in time"),
        ("certificate", "its TLS certificate was not accepted"),
    ):
        if needle in text:
            return reason
    return "it could not be reached"


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _discover_for_add(request: CalDAVRequest, timeout: float) -> list[CalendarInfo]:
    """The calendars at the URL, with errors worded for someone adding it: nothing is saved
    yet, so nothing will be retried."""
    example = "e.g. https://cloud.example.org/remote.php/dav/"
    if not request.url.startswith(("http://", "https://")):
        raise ServiceError(
            f"{request.url!r} is not a web address: give --caldav with http:// or https:// "
            f"({example})"
        )
    # Imported here: the CLI's light commands (owner list, calendar list) use this module and
    # should not pay for the caldav and Google client libraries.
    from calsync.calendars.caldav.discovery import discover_calendars

    try:
        return discover_calendars(
            request.url, username=request.username, password=request.password, timeout=timeout
        )
    except Unavailable as exc:
        # Same kind (the API answers 502), worded for adding: nothing will be retried.
        raise Unavailable(
            f"could not reach the CalDAV server at {request.url}: {_short_reason(exc)}. "
            "Nothing was saved; check the server and the URL, then add the calendar again",
            url=exc.url,
        ) from None
    except NotACalendar as exc:
        raise NotACalendar(
            f"{request.url} does not look like a CalDAV server or calendar: give --caldav the "
            f"address of your CalDAV server or of one calendar ({example}; your calendar app's "
            "settings show it). Nothing was saved",
            url=exc.url,
        ) from None


def _already_connected(connections: list[CalendarConnection]) -> str:
    named = ", ".join(f"calendar {c.id} (role {c.role.value})" for c in connections)
    first = connections[0].id
    return (
        f"that URL is connected already: {named}. Change its settings with "
        f"`calsync calendar set {first} --role both` (or --cancel-mode, --name)"
    )


def add_google_calendar(
    db: Database,
    settings: Settings,
    owner_email: str,
    *,
    credentials_json: str,
    calendar_id: str = "primary",
    role: CalendarRole = CalendarRole.CONFLICTS,
    timezone: str | None = None,
    all_day: AllDayMode = AllDayMode.FOLLOW_TRANSP,
    cancel_mode: CancelMode = CancelMode.MARK,
) -> CalendarConnection:
    """Connect the Google calendar ``calendar_id`` with the owner's OAuth token JSON.

    The token (``Credentials.to_json()``: refresh token, client id/secret, token URI) is
    stored encrypted. Google is asked first, so a revoked grant or a wrong calendar id fails
    here with a clear message. A calendar the owner has connected already is *reconnected*:
    the new grant replaces the old one, its settings stay, and polling resumes with a full
    sync. Raises ServiceError or a ProviderError.
    """
    owner = find_owner(db, owner_email)
    calendar_id = calendar_id.strip()
    if not calendar_id:
        raise ServiceError("say which Google calendar to connect (--calendar-id, e.g. primary)")
    if timezone:
        check_timezone(timezone)
    from calsync.calendars.google import account as google_connect

    try:
        token = google_connect.normalize_token(credentials_json, settings)
    except google_connect.TokenError as exc:
        raise ServiceError(str(exc)) from None
    secret = SecretBox(settings.require_secret_key()).encrypt(token)
    try:
        provider = google_connect.open_calendar(
            settings, calendar_id, token, quota_user=f"owner-{owner.id}"
        )
    except google_connect.TokenError as exc:
        raise ServiceError(str(exc)) from None
    try:
        info = google_connect.describe_calendar(provider)
    except NotFound:
        raise ServiceError(
            f"the Google account has no calendar {calendar_id!r} (or it is not shared with it): "
            "use primary, or a calendar id from Google Calendar's settings "
            "(Integrate calendar > Calendar ID)"
        ) from None
    finally:
        provider.close()
    access = info.get("accessRole")
    if access and access not in ("owner", "writer") and role is not CalendarRole.CONFLICTS:
        raise ServiceError(
            f"this Google account may only read the calendar {calendar_id!r}, so calsync cannot "
            "write bookings there: connect it for busy time only (role conflicts)"
        )
    zone = timezone
    if zone is None and info.get("timeZone"):
        zone = _zone_or_none(str(info["timeZone"]))
    # Stored by its real id, not an alias: "primary" names a different calendar for every
    # account, so a grant for another account must never take over a "primary" connection.
    canonical = str(info.get("id") or calendar_id)
    with db.writing() as session:
        existing = session.scalars(
            select(CalendarConnection).where(
                CalendarConnection.owner_id == owner.id,
                CalendarConnection.provider == ProviderKind.GOOGLE,
                CalendarConnection.url == canonical,
            )
        ).first()
        if existing is not None:
            _reconnect(existing, secret)
            return existing
        connection = CalendarConnection(
            owner_id=owner.id,
            provider=ProviderKind.GOOGLE,
            url=canonical,
            display_name=str(info.get("summaryOverride") or info.get("summary") or canonical)[:200],
            username=None,
            secret_encrypted=secret,
            role=role,
            timezone=zone,
            all_day=all_day,
            cancel_mode=cancel_mode,
            next_poll_at=utcnow(),
        )
        session.add(connection)
    return connection


def _reconnect(connection: CalendarConnection, secret: str) -> None:
    """Swap in a new grant for the same calendar (matched by its real id) and poll again from
    scratch: a full sync compares everything with the mirror anyway."""
    connection.secret_encrypted = secret
    connection.status = ConnectionStatus.NEW
    connection.failures = 0
    connection.last_error = None
    connection.cursor = None
    connection.next_poll_at = utcnow()


def _zone_or_none(name: str) -> str | None:
    try:
        return check_timezone(name)
    except ServiceError:
        return None


def _calendar_zone(info: CalendarInfo) -> str | None:
    if info.timezone is None:
        return None
    try:
        return check_timezone(info.timezone)
    except ServiceError:
        return None


def list_calendars(db: Database) -> list[CalendarConnection]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(CalendarConnection)
                .options(joinedload(CalendarConnection.owner))
                .order_by(CalendarConnection.id)
            )
        )


def get_calendar(db: Database, connection_id: int) -> CalendarConnection:
    with db.reading() as session:
        connection = session.get(
            CalendarConnection, connection_id, options=[joinedload(CalendarConnection.owner)]
        )
    if connection is None:
        raise NotFoundError(f"no calendar with id {connection_id}: see `calsync calendar list`")
    return connection


@dataclass(frozen=True, slots=True)
class CalendarDependents:
    """What relies on a calendar: active bookings with an event in it, and event types that
    book into it."""

    booking_ids: list[str]
    event_type_slugs: list[str]

    def __bool__(self) -> bool:
        return bool(self.booking_ids or self.event_type_slugs)

    def describe(self) -> str:
        parts = []
        if self.booking_ids:
            shown = ", ".join(self.booking_ids[:5]) + (", …" if len(self.booking_ids) > 5 else "")
            parts.append(f"{len(self.booking_ids)} active booking(s) have events in it ({shown})")
        if self.event_type_slugs:
            parts.append(
                "it is the booking calendar of event type(s) " + ", ".join(self.event_type_slugs)
            )
        return "; ".join(parts)


REMOVE_FORCE_OUTCOME = (
    "the bookings stay in calsync and their events stay on the server untouched, but calsync "
    "can no longer change those events (a later move or cancel is reported as not applied, so "
    "you change the event yourself); the event types lose their booking calendar and cannot be "
    "booked until `calsync event-type edit SLUG --booking-calendar ID` gives them one"
)


class CalendarInUse(ServiceError):
    """A calendar that bookings or event types rely on was to be removed without force."""

    def __init__(self, dependents: CalendarDependents, message: str) -> None:
        super().__init__(message)
        self.dependents = dependents


def set_calendar(
    db: Database,
    connection_id: int,
    *,
    role: CalendarRole | None = None,
    cancel_mode: CancelMode | None = None,
    name: str | None = None,
) -> CalendarConnection:
    """Change a calendar's role, cancel mode or name. A calendar that an event type books into
    keeps a role that takes bookings."""
    get_calendar(db, connection_id)
    if name is not None and not name.strip():
        raise ServiceError("--name must not be empty")
    with db.writing() as session:
        stored = session.get(CalendarConnection, connection_id)
        assert stored is not None
        if role is not None and role is CalendarRole.CONFLICTS:
            slugs = session.scalars(
                select(EventType.slug).where(EventType.booking_calendar_id == connection_id)
            ).all()
            if slugs:
                raise ServiceError(
                    f"calendar {connection_id} is the booking calendar of event type(s) "
                    f"{', '.join(slugs)}, so it needs role bookings or both; give them another "
                    "first with `calsync event-type edit SLUG --booking-calendar ID`"
                )
        if role is not None:
            stored.role = role
        if cancel_mode is not None:
            stored.cancel_mode = cancel_mode
        if name is not None:
            stored.display_name = name.strip()[:200]
    return get_calendar(db, connection_id)


def calendar_dependents(db: Database, connection_id: int) -> CalendarDependents:
    with db.reading() as session:
        booking_ids = session.scalars(
            select(BookedSession.booking_id)
            .join(Booking, Booking.id == BookedSession.booking_id)
            .where(
                BookedSession.connection_id == connection_id,
                BookedSession.href.is_not(None),
                Booking.status == BookingStatus.ACTIVE,
            )
            .distinct()
            .order_by(BookedSession.booking_id)
        ).all()
        slugs = session.scalars(
            select(EventType.slug)
            .where(EventType.booking_calendar_id == connection_id)
            .order_by(EventType.slug)
        ).all()
    return CalendarDependents(list(booking_ids), list(slugs))


def remove_calendar(db: Database, connection_id: int, *, force: bool = False) -> CalendarDependents:
    """Disconnect a calendar. Refused while bookings or event types depend on it, unless
    ``force`` (then see ``REMOVE_FORCE_OUTCOME``); returns what depended on it."""
    get_calendar(db, connection_id)
    dependents = calendar_dependents(db, connection_id)
    if dependents and not force:
        raise CalendarInUse(
            dependents,
            f"calendar {connection_id} is still in use: {dependents.describe()}. Move those "
            "bookings and event types first (`calsync event-type edit SLUG --booking-calendar "
            f"ID`), or remove it anyway with `calsync calendar remove {connection_id} --force`: "
            + REMOVE_FORCE_OUTCOME,
        )
    with db.writing() as session:
        session.execute(delete(CalendarConnection).where(CalendarConnection.id == connection_id))
    return dependents


def event_counts(db: Database) -> dict[int, int]:
    from sqlalchemy import func

    with db.reading() as session:
        rows = session.execute(
            select(MirroredEvent.connection_id, func.count()).group_by(MirroredEvent.connection_id)
        )
        return {cid: count for cid, count in rows}


def busy(db: Database, connection_id: int, start: datetime, end: datetime) -> list[Interval]:
    """Busy time of one calendar as calsync sees it (from the mirror, merged)."""
    get_calendar(db, connection_id)
    if end <= start:
        raise ServiceError("the end of the range must be after its start")
    from calsync.sync import mirror

    with db.reading() as session:
        return mirror.busy_between(session, [connection_id], start, end)


def set_adoption(
    db: Database,
    connection_id: int,
    rule: AdoptionRule,
    event_type_id: int | None,
    category: str | None,
    *,
    email_customer: bool = False,
) -> None:
    """Turn adoption on or off for a calendar (see ``bookings.adoption``); ``email_customer``:
    each adopted booking's customer is emailed their confirmation with the manage link."""
    connection = get_calendar(db, connection_id)
    if rule is not AdoptionRule.OFF and event_type_id is None:
        raise ServiceError("say which event type adopted bookings get (--event-type)")
    if rule is AdoptionRule.CATEGORY and not category:
        raise ServiceError("say which category marks bookings (--category)")
    with db.writing() as session:
        stored = session.get(CalendarConnection, connection.id)
        assert stored is not None
        stored.adopt = rule
        stored.adopt_event_type_id = event_type_id
        stored.adopt_category = category
        stored.adopt_email_customer = email_customer
