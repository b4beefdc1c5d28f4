"""What the console's booking pages show, as plain values: a booking's sessions, history,
changes and reschedule requests, every time in the owner's zone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from calsync.bookings.reschedule_requests import RequestState, RequestView
from calsync.store.models import (
    Actor,
    Booking,
    BookingChange,
    Change,
    ChangeKind,
    HistoryAction,
    SessionStatus,
)

ACTORS = {
    Actor.CUSTOMER: "The customer",
    Actor.OWNER: "You",
    Actor.OWNER_CALENDAR: "You, in your calendar",
    Actor.SYSTEM: "calsync",
}
ACTIONS = {
    HistoryAction.BOOKED: "booked",
    HistoryAction.FAILED: "failed (its events could not be written)",
    HistoryAction.RESCHEDULED: "rescheduled",
    HistoryAction.CANCELLED: "cancelled",
    HistoryAction.RELINKED: "issued a new link",
    HistoryAction.LINK_REVOKED: "revoked the link",
    HistoryAction.ADOPTED: "adopted from the calendar",
    HistoryAction.MOVED_BY_OWNER: "moved the event",
    HistoryAction.DELETED_BY_OWNER: "deleted the event",
    HistoryAction.CANCELLED_BY_OWNER: "cancelled the event",
    HistoryAction.RESCHEDULE_REQUESTED: "asked the customer to choose new times",
    HistoryAction.RESCHEDULE_REQUEST_REVOKED: "withdrew the request to choose new times",
    HistoryAction.CONFIRMATION_RESENT: "sent the confirmation again",
}
SESSION_STATUS = {
    SessionStatus.BOOKED: "Booked",
    SessionStatus.RESCHEDULED: "Rescheduled",
    SessionStatus.CANCELLED: "Cancelled",
}
REQUEST_STATE = {
    RequestState.OPEN: "open",
    RequestState.USED: "used",
    RequestState.REVOKED: "withdrawn",
    RequestState.EXPIRED: "expired",
    RequestState.UNKNOWN: "unknown",
}


def when(moment: datetime | None, zone: ZoneInfo) -> str:
    """``Mon 7 Dec 2026, 14:30`` in ``zone``; "—" for None."""
    if moment is None:
        return "—"
    local = moment.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M}"


def local_input(moment: datetime, zone: ZoneInfo) -> str:
    """The value of an ``<input type="datetime-local">``: ``2026-12-07T14:30``."""
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    position: int
    when: str
    start_input: str
    status: str
    cancelled: bool
    reschedules: int


@dataclass(frozen=True, slots=True)
class HistoryRow:
    at: str
    who: str
    what: str
    why: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class ChangeRow:
    id: int
    at: str
    who: str
    kind: str
    status: str
    moves: list[str]
    money: str | None  # "Fee 30.00 EUR", "Refund 20.00 EUR"
    reason: str | None


@dataclass(frozen=True, slots=True)
class RequestRow:
    id: int
    sessions: str
    made: str
    until: str
    state: str
    open: bool
    message: str | None


@dataclass(frozen=True, slots=True)
class ListRow:
    id: str
    customer: str
    email: str
    title: str
    first: str
    sessions: int
    status: str


def session_rows(booking: Booking, zone: ZoneInfo) -> list[SessionRow]:
    return [
        SessionRow(
            s.id,
            s.position,
            f"{when(s.start, zone)} – {s.end.astimezone(zone):%H:%M}",
            local_input(s.start, zone),
            SESSION_STATUS[s.status],
            s.status is SessionStatus.CANCELLED,
            s.reschedule_count,
        )
        for s in booking.sessions
    ]


def _moved(details: dict[str, object], zone: ZoneInfo) -> str:
    def start(side: object) -> datetime | None:
        if isinstance(side, dict) and isinstance(side.get("start"), str):
            return datetime.fromisoformat(side["start"])
        return None

    before, after = start(details.get("from")), start(details.get("to"))
    if before and after:
        return f"{when(before, zone)} → {when(after, zone)}"
    if before:
        return f"was {when(before, zone)}"
    return ""


def history_rows(
    booking: Booking, lines: Sequence[BookingChange], zone: ZoneInfo
) -> list[HistoryRow]:
    positions = {s.id: s.position for s in booking.sessions}
    rows = []
    for line in lines:
        parts = []
        if line.session_id in positions:
            parts.append(f"session {positions[line.session_id]}")
        moved = _moved(line.details or {}, zone)
        if moved:
            parts.append(moved)
        sessions = (line.details or {}).get("sessions")
        if isinstance(sessions, list) and sessions:
            parts.append("sessions " + ", ".join(str(p) for p in sessions))
        if (line.details or {}).get("request"):
            parts.append(f"request {line.details['request']}")
        if isinstance((line.details or {}).get("to"), str):
            parts.append(f"to {line.details['to']}")
        rows.append(
            HistoryRow(
                when(line.at, zone),
                ACTORS.get(line.actor, line.actor.value),
                ACTIONS.get(line.action, line.action.value),
                line.reason,
                "; ".join(parts),
            )
        )
    return rows


def change_rows(booking: Booking, recorded: Sequence[Change], zone: ZoneInfo) -> list[ChangeRow]:
    rows = []
    for change in recorded:
        moves = [
            f"session {i.position}: {when(i.before.start, zone)} → "
            + (when(i.after.start, zone) if i.after else "cancelled")
            for i in change.items
        ]
        money = None
        if change.fee is not None:
            label = "Fee" if change.kind is ChangeKind.RESCHEDULE else "Refund"
            money = f"{label} {change.fee} {booking.currency}"
        rows.append(
            ChangeRow(
                change.id,
                when(change.created_at, zone),
                ACTORS.get(change.actor, change.actor.value),
                change.kind.value,
                change.status.value,
                moves,
                money,
                change.reason,
            )
        )
    return rows


def request_rows(views: Sequence[RequestView], zone: ZoneInfo) -> list[RequestRow]:
    return [
        RequestRow(
            v.id,
            ", ".join(str(p) for p in v.positions),
            when(v.created_at, zone),
            when(v.expires_at, zone),
            REQUEST_STATE[v.state],
            v.state is RequestState.OPEN,
            v.message,
        )
        for v in views
    ]


def list_rows(bookings: Sequence[Booking], zone: ZoneInfo) -> list[ListRow]:
    rows = []
    for b in bookings:
        live = [s for s in b.sessions if s.status is not SessionStatus.CANCELLED] or b.sessions
        first = min(live, key=lambda s: s.start)
        rows.append(
            ListRow(
                b.id,
                b.customer_name,
                b.customer_email,
                b.title,
                when(first.start, zone),
                len(b.sessions),
                b.status.value,
            )
        )
    return rows
