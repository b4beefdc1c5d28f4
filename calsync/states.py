"""The choices the command line offers as options (calendar roles, outbox states, …).

They live here, apart from the SQLAlchemy models and the iCalendar code that use them, so that
``calsync --help`` can list them without importing either; ``calsync.store.models`` and
``calsync.calendars.ical.busy`` re-export them.
"""

from __future__ import annotations

from enum import StrEnum


class AllDayMode(StrEnum):
    """Whether all-day events block the owner."""

    FOLLOW_TRANSP = "follow_transp"
    """Block unless TRANSP:TRANSPARENT (RFC 5545: OPAQUE is the default, all-day too)."""
    BUSY = "busy"
    """All-day events always block (unless cancelled or declined)."""
    FREE = "free"
    """All-day events never block."""


class CalendarRole(StrEnum):
    CONFLICTS = "conflicts"  # its busy time blocks availability
    BOOKINGS = "bookings"  # booked sessions are written here
    BOTH = "both"


class AdoptionRule(StrEnum):
    OFF = "off"
    ALL = "all"  # every event (a calendar used only for bookings)
    ATTENDEES = "attendees"  # events with at least one attendee other than the owner
    CATEGORY = "category"  # events carrying the category ``adopt_category``


class CancelMode(StrEnum):
    MARK = "mark"  # keep the event, marked cancelled and free, its title prefixed
    DELETE = "delete"  # delete the event


class OutboxStatus(StrEnum):
    HELD = "held"  # written with its change; waits until the calendar has taken the change
    READY = "ready"  # to be sent
    SENT = "sent"
    FAILED = "failed"  # refused for good (e.g. the address does not exist); see last_error
    DROPPED = "dropped"  # its change did not happen (booking failed, owner got there first)
