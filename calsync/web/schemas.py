"""Request and response bodies of the admin JSON API, apart from the database models.

Instants are ISO-8601 with a UTC offset, durations are whole minutes, money is a decimal
string. What can be judged from one request alone (shapes, zone names, clock times, a range
that ends before it starts) is checked here, and pydantic names the field; what needs the
database or the whole definition (overlapping hours, calendars of another owner) is checked
by the services, which name the field the same way.

Request models forbid unknown fields, so a misspelt field is an error instead of being ignored.
Every text field is ``OneLine`` or ``MultiLine`` and every integer bounded, by the rule in
``calsync.input_rules`` (no control characters, nothing the database cannot hold).
"""

from __future__ import annotations

import difflib
import functools
import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    StringConstraints,
    WithJsonSchema,
)

from calsync.calendars.ical.busy import AllDayMode
from calsync.input_rules import OneLine, one_line
from calsync.limits import MAX_INT32
from calsync.store.models import (
    CalendarConnection,
    CalendarRole,
    ConnectionStatus,
    Owner,
    ProviderKind,
    SyncOutcome,
    owner_page_url,
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


def _check_secret(value: SecretStr) -> SecretStr:
    one_line(value.get_secret_value())  # the message never holds the value
    return value


def _iso(value: datetime) -> str:
    return value.isoformat()


# The OpenAPI description says what each accepts (formats, patterns), so that clients and
# schemathesis can make valid values.
ZoneName = Annotated[
    str,
    AfterValidator(one_line),
    AfterValidator(_check_zone),
    WithJsonSchema({"type": "string", "format": "iana-time-zone", "examples": ["Europe/Berlin"]}),
]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=320),
    AfterValidator(one_line),
    AfterValidator(_check_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 320}),
]
WallTime = Annotated[
    str,
    AfterValidator(one_line),
    AfterValidator(_check_wall_time),
    WithJsonSchema(
        {"type": "string", "pattern": r"^([01]?[0-9]|2[0-4]):[0-5][0-9]$", "examples": ["09:30"]}
    ),
]
CalendarUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True),
    AfterValidator(one_line),
    AfterValidator(_check_calendar_url),
]
# Aware datetimes as ``2026-12-01T09:00:00+01:00`` (pydantic would write UTC as ``Z``; the CLI
# and the rest of the API write ``+00:00``).
Instant = Annotated[
    datetime,
    PlainSerializer(_iso, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
# Ids are the database's integer columns: a larger number cannot name anything (and would
# make the database refuse the query), so it is a 422 like any other bad value.
MAX_ID = MAX_INT32
DbId = Annotated[int, Path(ge=1, le=MAX_ID)]
# An id given in a body: the same bounds.
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Duration = Annotated[int, Field(ge=1, le=MINUTES_PER_DAY, description="minutes")]
Buffer = Annotated[int, Field(ge=0, le=MINUTES_PER_DAY, description="minutes")]
Notice = Annotated[int, Field(ge=0, le=730 * MINUTES_PER_DAY, description="minutes")]
HorizonDays = Annotated[int, Field(ge=1, le=730)]
# More than one session a minute cannot fit a day.
DailyCap = Annotated[int, Field(ge=1, le=MINUTES_PER_DAY)]
Slug = Annotated[OneLine, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Title = Annotated[OneLine, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
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
    # not_current: the schema is not the one this version of calsync needs (run `calsync init`).
    migrations: Literal["current", "not_current", "unknown"]


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
    slug: str = Field(description="The owner's part of the booking page addresses /b/<slug>/…")
    page_url: str = Field(description="The booking page listing the owner's public event types.")
    created_at: Instant

    @classmethod
    def from_row(cls, owner: Owner, base_url: str) -> OwnerOut:
        return cls(
            id=owner.id,
            name=owner.name,
            email=owner.email,
            timezone=owner.timezone,
            slug=owner.slug,
            page_url=owner_page_url(base_url, owner),
            created_at=owner.created_at,
        )


# -- calendars ------------------------------------------------------------------------------------


class CalendarCreate(Request):
    owner_email: Email
    url: CalendarUrl = Field(
        description="A CalDAV calendar, or a server/account URL: then every event calendar "
        "found there is connected."
    )
    username: OneLine | None = Field(None, max_length=200)
    password: Annotated[SecretStr, AfterValidator(_check_secret)] | None = Field(
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
