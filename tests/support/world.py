"""The world most booking tests live in: an owner in Berlin, next week's working days, and an
hour-long "coaching" event type (Monday to Friday, 09:00–17:00)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from calsync.bookings.event_types import EventTypeSpec
from calsync.policy.hours import parse_weekly_hours

OWNER = "coach@example.org"
ZONE = ZoneInfo("Europe/Berlin")


def next_monday() -> date:
    """Monday of next week in Berlin: all of its working hours are ahead of now."""
    today = datetime.now(ZONE).date()
    return today + timedelta(days=7 - today.weekday())


def at(day: date, hour: int, minute: int = 0) -> datetime:
    """A wall time in Berlin."""
    return datetime.combine(day, time(hour, minute), ZONE)


def coaching(**changes: Any) -> EventTypeSpec:
    """The coaching event type, with ``changes`` (e.g. ``booking_calendar_id=…``)."""
    values: dict[str, Any] = {
        "owner_email": OWNER,
        "slug": "coaching",
        "title": "Coaching",
        "duration": timedelta(minutes=60),
        "timezone": "Europe/Berlin",
        "weekly_hours": parse_weekly_hours(["mon-fri 09:00-17:00"]),
    }
    return EventTypeSpec(**(values | changes))
