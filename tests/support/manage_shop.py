"""What the manage page tests share: an owner in Berlin with one real Radicale calendar, event
types with a policy of the test's choosing, bookings made through the booking service, the
events as the CalDAV server holds them, and a small reader for the page's HTML forms."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from calsync.bookings.event_types import EventTypeSpec, save_event_type
from calsync.bookings.packages import BookingRequest, book, get_booking
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.config import Settings
from calsync.policy.change_policy import ChangePolicy
from calsync.policy.hours import parse_weekly_hours
from calsync.store.db import Database
from calsync.store.models import CalendarRole
from calsync.sync import connections as services

OWNER = "coach@example.org"
OWNER_ZONE = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WORKING_HOURS = ("mon-fri 09:00-17:00",)
ALWAYS = ("mon-sun 00:00-24:00",)


@dataclass(frozen=True)
class Booked:
    id: str
    path: str  # /m/<token>
    session_ids: list[int]
    uids: list[str]

    @property
    def token(self) -> str:
        return self.path.removeprefix("/m/")


@dataclass
class Shop:
    """The owner's side of the tests: event types, bookings, and the calendar on the server."""

    db: Database
    settings: Settings
    calendar_url: str
    calendar_id: int = 0

    def __post_init__(self) -> None:
        services.add_owner(db=self.db, name="Coach Carter", email=OWNER, timezone="Europe/Berlin")
        (calendar,) = services.add_caldav_calendar(
            self.db,
            self.settings,
            services.CalDAVRequest(OWNER, self.calendar_url, role=CalendarRole.BOTH),
        )
        self.calendar_id = calendar.id

    def event_type(
        self,
        slug: str = "coaching",
        policy: ChangePolicy | None = None,
        *,
        hours: tuple[str, ...] = WORKING_HOURS,
        price: Decimal = Decimal(0),
    ) -> None:
        """An hour of coaching in Berlin with ``policy``."""
        save_event_type(
            self.db,
            EventTypeSpec(
                owner_email=OWNER,
                slug=slug,
                title="Coaching",
                duration=timedelta(minutes=60),
                timezone="Europe/Berlin",
                weekly_hours=parse_weekly_hours(hours),
                booking_calendar_id=self.calendar_id,
                price=price,
                policy=policy or ChangePolicy(),
            ),
        )

    def book(
        self,
        *starts: datetime,
        slug: str = "coaching",
        zone: str = "America/New_York",
        email: str = "zoe@example.org",
    ) -> Booked:
        request = BookingRequest(slug, "Zoë Example", email, tuple(starts), zone)
        result = book(self.db, self.settings, request)
        path = result.manage_url.removeprefix(self.settings.base_url)
        sessions = result.booking.sessions
        return Booked(result.booking.id, path, [s.id for s in sessions], [s.uid for s in sessions])

    def state(self, booking_id: str) -> tuple[Any, ...]:
        """Everything a change would touch in our database."""
        booking = get_booking(self.db, booking_id)
        return (
            booking.version,
            booking.status,
            [h.action for h in booking.history],
            [(s.start, s.end, s.status, s.sequence, s.reschedule_count) for s in booking.sessions],
        )

    def events(self) -> dict[str, Any]:
        """The events on the CalDAV server, by UID."""
        provider = CalDAVProvider(self.calendar_url)
        try:
            delta = provider.changes(None, {})
        finally:
            provider.close()
        found = {}
        for item in delta.upserted:
            (event,) = icalendar.Calendar.from_ical(item.data).walk("VEVENT")
            found[str(event["UID"])] = event
        return found

    def event_times(self) -> dict[str, tuple[Any, int, str]]:
        """UID → (start, SEQUENCE, STATUS) on the server."""
        return {
            uid: (
                event["DTSTART"].dt,
                int(event.get("SEQUENCE", 0)),
                str(event.get("STATUS", "CONFIRMED")),
            )
            for uid, event in self.events().items()
        }


# -- the page's forms -----------------------------------------------------------------------------


@dataclass
class Control:
    tag: str
    type: str
    name: str
    value: str
    checked: bool
    disabled: bool
    attrs: dict[str, str]


@dataclass
class Form:
    method: str
    action: str
    controls: list[Control] = field(default_factory=list)

    def values(self) -> list[tuple[str, str]]:
        """What a browser would send without any button: hidden and text fields, ticked
        boxes and radios, selected options."""
        sent = []
        for c in self.controls:
            if c.disabled or not c.name or c.tag == "button" or c.type == "submit":
                continue
            if c.type in ("checkbox", "radio") and not c.checked:
                continue
            sent.append((c.name, c.value))
        return sent

    def options(self, name: str) -> list[Control]:
        return [c for c in self.controls if c.name == name and c.type in ("checkbox", "radio")]


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._textarea: Control | None = None
        self._select: Control | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: html.unescape(v or "") for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("method", "get").lower(), a.get("action", "")))
        elif tag in ("input", "button", "textarea", "select") and self.forms:
            kind = a.get("type", "submit" if tag == "button" else "text")
            control = Control(
                tag,
                kind,
                a.get("name", ""),
                a.get("value", ""),
                "checked" in a,
                "disabled" in a,
                a,
            )
            self.forms[-1].controls.append(control)
            self._textarea = control if tag == "textarea" else None
            self._select = control if tag == "select" else None
        elif tag == "option" and self._select is not None and "selected" in a:
            self._select.value = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.value += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        if tag == "select":
            self._select = None


def forms_of(page: str) -> list[Form]:
    reader = _FormReader()
    reader.feed(page)
    return reader.forms


def post_form(page: str) -> Form:
    (form,) = [f for f in forms_of(page) if f.method == "post"]
    return form


def get_form(page: str, action_suffix: str) -> Form:
    (form,) = [f for f in forms_of(page) if f.method == "get" and f.action.endswith(action_suffix)]
    return form
