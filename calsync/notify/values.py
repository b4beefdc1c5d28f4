"""What a notification is about, as plain values: no I/O, no database rows, no templates.

The change engine (``calsync.bookings``) turns one committed change into one :class:`Notice` and
one :class:`Recipient` per person to tell; ``calsync.notify.compose`` turns each pair into
emails. Everything here is frozen and checked when it is made, so a bad value fails where it
was built, not halfway through sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from calsync.calendars.ical.session_event import Person

# The locale times are written in (``notify.when``) until bookings store one.
DEFAULT_LOCALE = "en_US"

__all__ = [
    "ActedBy",
    "Method",
    "Notice",
    "NoticeKind",
    "Person",
    "Recipient",
    "Role",
    "SessionNotice",
]


class NoticeKind(StrEnum):
    """What happened; also the name of the template folder."""

    BOOKED = "booked"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"


class Role(StrEnum):
    """Why a recipient hears about the booking; decides what they may see."""

    CUSTOMER = "customer"  # booked it; the only one who gets the manage link
    OWNER = "owner"  # whose calendar it is
    STAKEHOLDER = "stakeholder"  # named on the booking (a manager, a parent, a colleague)


class ActedBy(StrEnum):
    """Who made the change, for the "who acted" sentence."""

    CUSTOMER = "customer"  # on the manage page
    OWNER = "owner"  # through calsync (API, CLI)
    OWNER_CALENDAR = "owner_calendar"  # in their own calendar app; found by sync


class Method(StrEnum):
    """The iTIP method of one calendar part (RFC 5546)."""

    REQUEST = "REQUEST"  # booked or moved: create or update the event
    CANCEL = "CANCEL"  # cancelled: remove it


SESSION_STATUSES = frozenset({"CONFIRMED", "CANCELLED"})


@dataclass(frozen=True, slots=True)
class Recipient:
    """One person to tell, and the IANA zone and the locale (``notify.when``) their times are
    shown in."""

    email: str
    name: str
    role: Role
    timezone: str
    locale: str = DEFAULT_LOCALE

    def __post_init__(self) -> None:
        Person(self.email, self.name)  # the same address rules as everywhere else


@dataclass(frozen=True, slots=True)
class SessionNotice:
    """One session a change touched, as it is *after* the change.

    ``uid`` is the session's UID for its whole life; ``sequence`` the SEQUENCE stored after
    the change (the change engine raised it); ``position`` counts from 1 within the package.
    ``previous_start``/``previous_end`` are the times before a move (None otherwise).
    ``timezone`` is the IANA zone the event is written in.
    """

    uid: str
    sequence: int
    position: int
    start: datetime
    end: datetime
    status: str
    previous_start: datetime | None
    previous_end: datetime | None
    timezone: str

    def __post_init__(self) -> None:
        times = [self.start, self.end, self.previous_start, self.previous_end]
        if any(t is not None and t.tzinfo is None for t in times):
            raise ValueError(f"SessionNotice {self.uid!r} needs aware times")
        if self.end <= self.start:
            raise ValueError(f"Session {self.uid!r} ends before it starts")
        if (self.previous_start is None) != (self.previous_end is None):
            raise ValueError(f"Session {self.uid!r}: previous_start and previous_end go together")
        if self.status not in SESSION_STATUSES:
            raise ValueError(f"Session {self.uid!r}: status {self.status!r} is not one we send")
        if self.sequence < 0 or self.position < 1:
            raise ValueError(f"Session {self.uid!r}: bad sequence or position")
        if not self.uid or any(ch in self.uid for ch in "\r\n"):
            raise ValueError(f"Not a usable UID: {self.uid!r}")

    @property
    def method(self) -> Method:
        return Method.CANCEL if self.status == "CANCELLED" else Method.REQUEST

    @property
    def moved(self) -> bool:
        return self.previous_start is not None and (
            self.previous_start != self.start or self.previous_end != self.end
        )


@dataclass(frozen=True, slots=True)
class Notice:
    """One change to one booking, to be told to everyone involved.

    ``sessions`` are only the sessions this change touched (for BOOKED: all of them).
    ``change_key`` names the change stably and apart from every other installation's
    (``"<installation namespace>/change-42"``): Message-IDs are derived from it, so a message
    composed again after a crash is the same message, and no other installation makes it.
    ``manage_url`` is the customer's capability link; it only ever reaches the customer.
    """

    kind: NoticeKind
    acted_by: ActedBy
    booking_id: str
    title: str
    owner: Person
    customer: Person
    stakeholders: tuple[Person, ...]
    sessions: tuple[SessionNotice, ...]
    package_size: int
    reason: str | None
    manage_url: str | None
    fee_text: str | None
    change_key: str

    def __post_init__(self) -> None:
        if not self.sessions:
            raise ValueError(f"Notice {self.change_key!r} touches no session")
        if not self.change_key:
            raise ValueError("Notice needs a change_key")
        wanted = "CANCELLED" if self.kind is NoticeKind.CANCELLED else "CONFIRMED"
        wrong = [s.uid for s in self.sessions if s.status != wanted]
        if wrong:
            raise ValueError(
                f"Notice {self.change_key!r} ({self.kind}) has sessions that are not {wanted}: "
                f"{wrong}"
            )
        if self.package_size < max(s.position for s in self.sessions):
            raise ValueError(f"Notice {self.change_key!r}: a position exceeds package_size")

    @property
    def attendees(self) -> tuple[Person, ...]:
        """The ATTENDEEs of every invite: the customer first, then the stakeholders."""
        return (self.customer, *self.stakeholders)
