"""Request and response bodies of the admin JSON API, apart from the database models.

Instants are ISO-8601 with a UTC offset, durations are whole minutes, money is a decimal
string. What can be judged from one request alone (shapes, zone names, clock times, a range
that ends before it starts) is checked here, and pydantic names the field; what needs the
database or the whole definition (overlapping hours, calendars of another owner) is checked
by the services, which name the field the same way.

Request models forbid unknown fields, so a misspelt field is an error instead of being ignored.
"""

from __future__ import annotations

import difflib
import functools
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from calsync.calendars.busy import AllDayMode
from calsync.policy.change_policy import (
    FeeKind,
    Permission,
    ReasonRule,
    policy_from_data,
    policy_to_data,
)
from calsync.sync.bookings import MAX_SESSIONS
from calsync.sync.models import (
    Actor,
    BookedSession,
    Booking,
    BookingChange,
    BookingSource,
    BookingStatus,
    CalendarConnection,
    CalendarRole,
    ConnectionStatus,
    EventType,
    Owner,
    ProviderKind,
    SessionStatus,
    SyncOutcome,
)
from calsync.sync.poller import PollResult

MINUTES_PER_DAY = 24 * 60
_WALL_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")

# -- field types --------------------------------------------------------------------------------


@functools.cache
def _zone_names() -> list[str]:
    return sorted(available_timezones())


def zone_problem(name: str) -> str | None:
    """Why ``name`` is not a usable IANA zone name, or None when it is."""
    if name == "localtime":
        return "give the owner's IANA zone, not 'localtime'"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = difflib.get_close_matches(name, _zone_names(), n=1)
        hint = f"did you mean {close[0]}?" if close else "use an IANA name such as Europe/Berlin"
        return f"unknown time zone {name!r}: {hint}"
    return None


def _check_zone(name: str) -> str:
    problem = zone_problem(name)
    if problem:
        raise ValueError(problem)
    return name


def _check_email(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at or not local or not domain or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an email address")
    return value.lower()


def _check_wall_time(value: str) -> str:
    match = _WALL_TIME.match(value.strip())
    hours, minutes = (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
    if not (0 <= hours <= 23 and 0 <= minutes <= 59) and (hours, minutes) != (24, 0):
        raise ValueError(f"{value!r} is not a time like 09:30 (24:00 ends a day)")
    return f"{hours:02d}:{minutes:02d}"


def _check_calendar_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    if "@" in value.split("/")[2]:
        raise ValueError("put the username and password in their own fields, not in the URL")
    return value


def _iso(value: datetime) -> str:
    return value.isoformat()


ZoneName = Annotated[str, AfterValidator(_check_zone)]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=320), AfterValidator(_check_email)
]
WallTime = Annotated[str, AfterValidator(_check_wall_time)]
CalendarUrl = Annotated[
    str, StringConstraints(strip_whitespace=True), AfterValidator(_check_calendar_url)
]
# Aware datetimes as ``2026-12-01T09:00:00+01:00`` (pydantic would write UTC as ``Z``; the CLI
# and the rest of the API write ``+00:00``).
Instant = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Duration = Annotated[int, Field(ge=1, le=MINUTES_PER_DAY, description="minutes")]
Buffer = Annotated[int, Field(ge=0, le=MINUTES_PER_DAY, description="minutes")]
Notice = Annotated[int, Field(ge=0, le=730 * MINUTES_PER_DAY, description="minutes")]
HorizonDays = Annotated[int, Field(ge=1, le=730)]
DailyCap = Annotated[int, Field(ge=1)]
Slug = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors (for the OpenAPI description; errors.py writes them) -----------------------------


class Problem(BaseModel):
    field: str = Field(examples=["weekly_hours.mon.0.end"])
    message: str


class ValidationFailed(BaseModel):
    detail: list[Problem]


class Failed(BaseModel):
    detail: str = Field(description="What happened and what to do.")


def failure(description: str) -> dict[str, Any]:
    """An entry of a route's ``responses``: an error answered with one sentence."""
    return {"model": Failed, "description": description}


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: failure("No such id.")}


# -- health ---------------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]


# -- owners ---------------------------------------------------------------------------------------


class OwnerCreate(Request):
    name: Title
    email: Email
    timezone: ZoneName


class OwnerOut(BaseModel):
    id: int
    name: str
    email: str
    timezone: str
    created_at: Instant

    @classmethod
    def from_row(cls, owner: Owner) -> OwnerOut:
        return cls(
            id=owner.id,
            name=owner.name,
            email=owner.email,
            timezone=owner.timezone,
            created_at=owner.created_at,
        )


# -- calendars ------------------------------------------------------------------------------------


class CalendarCreate(Request):
    owner_email: Email
    url: CalendarUrl = Field(
        description="A CalDAV calendar, or a server/account URL: then every event calendar "
        "found there is connected."
    )
    username: str | None = Field(None, max_length=200)
    password: SecretStr | None = Field(
        None, description="Write-only: stored encrypted, never returned."
    )
    role: CalendarRole = CalendarRole.CONFLICTS
    timezone: ZoneName | None = Field(
        None, description="Zone of floating times (default: the server's, else the owner's)."
    )
    all_day: AllDayMode = AllDayMode.FOLLOW_TRANSP


class CalendarOut(BaseModel):
    id: int
    owner_id: int
    owner_email: str
    provider: ProviderKind
    name: str
    url: str
    username: str | None
    has_password: bool
    role: CalendarRole
    timezone: str | None
    all_day: AllDayMode
    status: ConnectionStatus
    last_error: str | None
    failures: int
    events: int = Field(description="Items mirrored from the calendar.")
    last_polled_at: Instant | None
    last_success_at: Instant | None
    next_poll_at: Instant
    created_at: Instant

    @classmethod
    def from_row(cls, row: CalendarConnection, *, owner_email: str, events: int) -> CalendarOut:
        return cls(
            id=row.id,
            owner_id=row.owner_id,
            owner_email=owner_email,
            provider=row.provider,
            name=row.display_name,
            url=row.url,
            username=row.username,
            has_password=row.secret_encrypted is not None,
            role=row.role,
            timezone=row.timezone,
            all_day=row.all_day,
            status=row.status,
            last_error=row.last_error,
            failures=row.failures,
            events=events,
            last_polled_at=row.last_polled_at,
            last_success_at=row.last_success_at,
            next_poll_at=row.next_poll_at,
            created_at=row.created_at,
        )


class SyncResultOut(BaseModel):
    calendar_id: int
    outcome: SyncOutcome
    full: bool = Field(description="A full resync (the server forgot our position, or first).")
    upserted: int
    removed: int
    problems: int = Field(description="Events that could not be read and were skipped.")
    error: str | None

    @classmethod
    def from_result(cls, result: PollResult) -> SyncResultOut:
        return cls(
            calendar_id=result.connection_id,
            outcome=result.outcome,
            full=result.full,
            upserted=result.upserted,
            removed=result.removed,
            problems=result.problems,
            error=result.error,
        )


# -- event types ----------------------------------------------------------------------------------


class TimeRangeIn(Request):
    start: WallTime = Field(examples=["09:00"])
    end: WallTime = Field(examples=["17:00"], description="24:00 ends the range at midnight.")

    @field_validator("start")
    @classmethod
    def _start_is_in_the_day(cls, value: str) -> str:
        if value == "24:00":
            raise ValueError("a range cannot start at 24:00; start the next day at 00:00")
        return value

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("start")
        if start is not None and value != "24:00" and value <= start:
            raise ValueError(
                f"must be after the start ({start}); a range cannot cross midnight, so end it "
                "at 24:00 and continue at 00:00 the next day"
            )
        return value


class TimeRangeOut(BaseModel):
    start: str
    end: str


class ActionRuleModel(Request):
    permission: Permission = Permission.ANYTIME
    notice_minutes: int | None = Field(
        None, ge=0, description="With permission 'until': how long before a session it ends."
    )
    reason: ReasonRule = ReasonRule.OFF


class FeeModel(Request):
    kind: FeeKind
    amount: Money = Field(description="Per session; a percentage of its value with 'percent'.")


class PolicyModel(Request):
    cancel: ActionRuleModel = Field(default_factory=ActionRuleModel)
    reschedule: ActionRuleModel = Field(default_factory=ActionRuleModel)
    max_reschedules: int | None = Field(None, ge=0, description="Per session; null: no limit.")
    reschedule_fee: FeeModel | None = None
    cancel_refund: FeeModel | None = None
    text: str = Field("", max_length=5000)


WeeklyHoursIn = dict[Day, list[TimeRangeIn]]
DateOverridesIn = dict[date, list[TimeRangeIn]]


class EventTypeCreate(Request):
    owner_email: Email
    slug: Slug = Field(examples=["intro-call"])
    title: Title
    duration_minutes: Duration
    slot_step_minutes: Duration | None = Field(None, description="Default: the duration.")
    timezone: ZoneName | None = Field(None, description="Default: the owner's zone.")
    weekly_hours: WeeklyHoursIn = Field(
        description="Working hours per weekday in the event type's zone; a missing day is closed.",
        examples=[{"mon": [{"start": "09:00", "end": "17:00"}]}],
    )
    date_overrides: DateOverridesIn = Field(
        default_factory=dict,
        description="Hours of single dates, replacing their weekday's; [] closes the date.",
        examples=[{"2026-12-24": []}],
    )
    buffer_before_minutes: Buffer = 0
    buffer_after_minutes: Buffer = 0
    minimum_notice_minutes: Notice = 0
    horizon_days: HorizonDays = 60
    daily_cap: DailyCap | None = None
    conflict_calendar_ids: list[int] = Field(
        default_factory=list,
        description="Calendars whose busy time blocks slots; [] = the owner's conflicts/both.",
    )
    booking_calendar_id: int | None = None
    price: Money = Decimal(0)
    currency: str = Field("EUR", max_length=3)
    policy: PolicyModel = Field(default_factory=PolicyModel)


# PATCH: a field that is left out keeps its value; these may not be set to null.
_REQUIRED_ON_UPDATE = (
    "owner_email",
    "slug",
    "title",
    "duration_minutes",
    "timezone",
    "weekly_hours",
    "date_overrides",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "minimum_notice_minutes",
    "horizon_days",
    "conflict_calendar_ids",
    "price",
    "currency",
    "policy",
)


class EventTypeUpdate(Request):
    """Only the fields given change. ``policy`` is merged into the current policy (give just
    ``{"policy": {"text": "…"}}`` to change the text); every other field is replaced whole."""

    owner_email: Email | None = None
    slug: Slug | None = None
    title: Title | None = None
    duration_minutes: Duration | None = None
    slot_step_minutes: Duration | None = None
    timezone: ZoneName | None = None
    weekly_hours: WeeklyHoursIn | None = None
    date_overrides: DateOverridesIn | None = None
    buffer_before_minutes: Buffer | None = None
    buffer_after_minutes: Buffer | None = None
    minimum_notice_minutes: Notice | None = None
    horizon_days: HorizonDays | None = None
    daily_cap: DailyCap | None = None
    conflict_calendar_ids: list[int] | None = None
    booking_calendar_id: int | None = None
    price: Money | None = None
    currency: str | None = Field(None, max_length=3)
    policy: PolicyModel | None = None

    @field_validator(*_REQUIRED_ON_UPDATE, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null; leave the field out to keep its value")
        return value


def _ranges_out(data: dict[str, Any]) -> dict[str, list[TimeRangeOut]]:
    return {key: [TimeRangeOut(start=s, end=e) for s, e in ranges] for key, ranges in data.items()}


class EventTypeOut(BaseModel):
    id: int
    owner_id: int
    owner_email: str
    slug: str
    title: str
    duration_minutes: int
    slot_step_minutes: int
    timezone: str
    weekly_hours: dict[str, list[TimeRangeOut]]
    date_overrides: dict[str, list[TimeRangeOut]]
    buffer_before_minutes: int
    buffer_after_minutes: int
    minimum_notice_minutes: int
    horizon_days: int
    daily_cap: int | None
    conflict_calendar_ids: list[int]
    booking_calendar_id: int | None
    price: str = Field(examples=["49.00"])
    currency: str
    policy: PolicyModel
    created_at: Instant
    updated_at: Instant

    @classmethod
    def from_row(cls, row: EventType) -> EventTypeOut:
        # Through the policy's own types: stored data written by older code gets its defaults.
        policy = policy_to_data(policy_from_data(row.policy))
        return cls(
            id=row.id,
            owner_id=row.owner_id,
            owner_email=row.owner.email,
            slug=row.slug,
            title=row.title,
            duration_minutes=row.duration_minutes,
            slot_step_minutes=row.slot_step_minutes,
            timezone=row.timezone,
            weekly_hours=_ranges_out(row.weekly_hours),
            date_overrides=_ranges_out(row.date_overrides),
            buffer_before_minutes=row.buffer_before_minutes,
            buffer_after_minutes=row.buffer_after_minutes,
            minimum_notice_minutes=row.minimum_notice_minutes,
            horizon_days=row.horizon_days,
            daily_cap=row.daily_cap,
            conflict_calendar_ids=sorted(c.id for c in row.conflict_calendars),
            booking_calendar_id=row.booking_calendar_id,
            price=row.price,
            currency=row.currency,
            policy=PolicyModel.model_validate(policy),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


# -- availability ---------------------------------------------------------------------------------


class SlotOut(BaseModel):
    start: Instant
    end: Instant


class AvailabilityOut(BaseModel):
    event_type_id: int
    timezone: str = Field(description="The zone the instants are written in.")
    start: Instant
    end: Instant
    slots: list[SlotOut]


# -- bookings -------------------------------------------------------------------------------------


def _event_type_key(value: Any) -> int | str:
    # A number is an id, a string a slug; true/false and 5.0 are neither.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError("give the event type's id (a number) or its slug (a string)")


def _session_start(value: Any) -> datetime:
    example = "e.g. 2026-12-01T09:00:00+01:00"
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"must be an ISO-8601 date and time, {example}") from None
    else:
        raise ValueError(f"must be a string holding an ISO-8601 date and time, {example}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"needs a UTC offset, {example}")
    return parsed


EventTypeKey = Annotated[
    int | str,
    PlainValidator(_event_type_key),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}]}),
]
SessionStart = Annotated[
    datetime,
    PlainValidator(_session_start),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class BookingCreate(Request):
    event_type: EventTypeKey = Field(
        description="The event type's id (a number) or slug (a string).", examples=["coaching"]
    )
    customer_name: Title
    customer_email: Email
    customer_timezone: ZoneName | None = Field(
        None,
        description="The customer's zone; session times are shown in it. Default: the "
        "event type's.",
    )
    starts: list[SessionStart] = Field(
        min_length=1,
        max_length=MAX_SESSIONS,
        description="One start per session, each an offered slot, with its UTC offset.",
        examples=[["2026-12-01T09:00:00+01:00", "2026-12-08T09:00:00+01:00"]],
    )
    stakeholders: list[Email] = Field(
        default_factory=list, description="People who hear of every change, by email."
    )


class CustomerOut(BaseModel):
    name: str
    email: str
    timezone: str


class BookedSessionOut(BaseModel):
    id: int
    uid: str = Field(description="The iCalendar UID of the session's event, for its whole life.")
    position: int = Field(description="1-based place in the package.")
    start: Instant
    end: Instant
    status: SessionStatus
    sequence: int
    reschedule_count: int
    calendar_id: int | None
    href: str | None

    @classmethod
    def from_row(cls, row: BookedSession, zone: ZoneInfo) -> BookedSessionOut:
        return cls(
            id=row.id,
            uid=row.uid,
            position=row.position,
            start=row.start.astimezone(zone),
            end=row.end.astimezone(zone),
            status=row.status,
            sequence=row.sequence,
            reschedule_count=row.reschedule_count,
            calendar_id=row.connection_id,
            href=row.href,
        )


class BookingChangeOut(BaseModel):
    at: Instant
    actor: Actor
    action: str
    reason: str | None
    details: dict[str, Any]

    @classmethod
    def from_row(cls, row: BookingChange) -> BookingChangeOut:
        return cls(
            at=row.at, actor=row.actor, action=row.action, reason=row.reason, details=row.details
        )


class BookingOut(BaseModel):
    """A booking as its owner sees it; session times are in the customer's zone."""

    id: str
    status: BookingStatus
    source: BookingSource
    title: str
    owner_id: int
    event_type_id: int | None
    customer: CustomerOut
    stakeholders: list[str]
    manage_url: str | None = Field(description="The customer's link; null once revoked.")
    link_expires_at: Instant | None
    version: int
    sessions: list[BookedSessionOut]
    history: list[BookingChangeOut]
    created_at: Instant

    @classmethod
    def from_row(cls, row: Booking, manage_url: str | None) -> BookingOut:
        zone = ZoneInfo(row.customer_timezone)
        return cls(
            id=row.id,
            status=row.status,
            source=row.source,
            title=row.title,
            owner_id=row.owner_id,
            event_type_id=row.event_type_id,
            customer=CustomerOut(
                name=row.customer_name, email=row.customer_email, timezone=row.customer_timezone
            ),
            stakeholders=list(row.stakeholders),
            manage_url=manage_url,
            link_expires_at=row.token_expires_at if manage_url else None,
            version=row.version,
            sessions=[BookedSessionOut.from_row(s, zone) for s in row.sessions],
            history=[BookingChangeOut.from_row(h) for h in row.history],
            created_at=row.created_at,
        )


class ManageUrlOut(BaseModel):
    manage_url: str


class SlotTakenOut(BaseModel):
    detail: str = Field(description="What happened and what to do.")
    start: Instant = Field(description="The start that is no longer free, as it was given.")
    session_id: int | None = Field(
        None, description="When moving sessions: the session whose new start was taken."
    )
