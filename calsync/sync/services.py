"""Owner-facing operations shared by the CLI and the admin API: owners and calendars.

Each function takes the database and plain values, validates them, and raises
:class:`ServiceError` (or a provider error) with a message a person can act on.
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
from calsync.calendars.errors import NotFound
from calsync.config import Settings
from calsync.secretbox import SecretBox
from calsync.states import AllDayMode
from calsync.sync.db import Database
from calsync.sync.models import (
    AdoptionRule,
    CalendarConnection,
    CalendarRole,
    CancelMode,
    ConnectionStatus,
    MirroredEvent,
    Owner,
    ProviderKind,
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
            owner = Owner(name=name, email=email, timezone=timezone)
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
    # Imported here, like google_connect below: the CLI's light commands (owner list, calendar
    # list) use this module and should not pay for the caldav and Google client libraries.
    from calsync.calendars.caldav_discovery import discover_calendars

    found = discover_calendars(
        request.url,
        username=request.username,
        password=request.password,
        timeout=settings.sync.request_timeout_seconds,
    )
    if not found:
        raise ServiceError(f"{request.url} is a CalDAV server, but it has no event calendars")
    connections = []
    with db.writing() as session:
        for info in found:
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
    from calsync.sync import google_connect

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


def remove_calendar(db: Database, connection_id: int) -> None:
    get_calendar(db, connection_id)
    with db.writing() as session:
        session.execute(delete(CalendarConnection).where(CalendarConnection.id == connection_id))


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
) -> None:
    """Turn adoption on or off for a calendar (see ``sync.adoption``)."""
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
