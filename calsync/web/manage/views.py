"""What the manage page shows, as plain values built from the booking: its sessions with what the
policy allows for each, the days of free times to choose from, and a change's outcome.

Times are shown in the zone the customer looks at (the booking's customer zone unless they
chose another one on the page).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from calsync.notify.when import clock_words, format_span, short_day, zone_city, zone_label
from calsync.policy.change_policy import ChangePolicy, ReasonRule, policy_from_data
from calsync.policy.change_rules import (
    Action,
    SessionState,
    Verdict,
    cancel_refund,
    reason_rule,
    reschedule_fee,
    verdict,
)
from calsync.policy.types import Slot
from calsync.store.models import (
    BookedSession,
    Booking,
    BookingStatus,
    Change,
    ChangeKind,
    ChangeStatus,
    SessionStatus,
)
from calsync.web.manage.text import money, policy_lines

WINDOW_DAYS = 7
STATUS_LABELS = {
    SessionStatus.BOOKED: "Booked",
    SessionStatus.RESCHEDULED: "Rescheduled",
    SessionStatus.CANCELLED: "Cancelled",
}
NO_EVENT_TYPE = (
    "The times for this booking can no longer be changed online; please contact the owner."
)


@dataclass(frozen=True, slots=True)
class SessionView:
    id: int
    position: int
    label: str  # "Session 2 of 3", or "" for a single session
    name: str  # "Session 2", or "your session"
    when: str
    start: datetime
    status: str  # the SessionStatus value, also the item's CSS class
    status_label: str
    reschedule: Verdict
    cancel: Verdict


@dataclass(frozen=True, slots=True)
class BookingView:
    id: str
    title: str
    owner_name: str
    owner_email: str
    customer_name: str
    zone: str  # the IANA name times are shown in
    zone_city: str
    cancelled: bool
    single: bool
    version: int
    sessions: list[SessionView]
    rules: list[str]
    policy_text: str
    policy: ChangePolicy
    price: Decimal
    currency: str
    # Sessions the owner asked the customer to move (an open reschedule request): only these
    # can be moved on this visit, free of the policy's limits, reason and fee.
    requested: frozenset[int] = frozenset()

    def session(self, session_id: int) -> SessionView:
        return next(s for s in self.sessions if s.id == session_id)

    def names(self) -> dict[int, str]:
        return {s.id: s.name for s in self.sessions}

    def reason_rule(self, action: Action) -> ReasonRule:
        if action is Action.RESCHEDULE and self.requested:
            return ReasonRule.OFF  # the owner asked: there is nothing to explain
        return reason_rule(self.policy, action)

    def allowed(self, action: Action) -> list[SessionView]:
        cancel = action is Action.CANCEL
        return [s for s in self.sessions if (s.cancel if cancel else s.reschedule).allowed]

    def fee(self, action: Action, count: int) -> str | None:
        """``20.00 EUR`` for touching ``count`` sessions, or None when there is nothing to pay
        (or refund)."""
        if action is Action.RESCHEDULE and self.requested:
            return None  # the owner asked for the move
        rule = cancel_refund if action is Action.CANCEL else reschedule_fee
        amount = rule(self.policy, self.price, len(self.sessions), count)
        return money(amount, self.currency) if amount else None


def booking_view(
    booking: Booking, zone: ZoneInfo, now: datetime, requested: frozenset[int] = frozenset()
) -> BookingView:
    """The booking as the page shows it (its sessions and owner must be loaded); with
    ``requested``, the sessions the owner asked the customer to move."""
    count = len(booking.sessions)
    policy = policy_from_data(booking.policy)

    def view(s: BookedSession) -> SessionView:
        state = SessionState(s.start, s.status is SessionStatus.CANCELLED, s.reschedule_count)
        move = verdict(policy, Action.RESCHEDULE, state, now)
        if requested:
            move = _requested_verdict(s, requested, booking.owner.name)
        if move.allowed and booking.event_type_id is None:
            move = Verdict(False, NO_EVENT_TYPE)
        return SessionView(
            id=s.id,
            position=s.position,
            label=f"Session {s.position} of {count}" if count > 1 else "",
            name=f"Session {s.position}" if count > 1 else "your session",
            when=format_span(s.start, s.end, zone),
            start=s.start,
            status=s.status.value,
            status_label=STATUS_LABELS[s.status],
            reschedule=move,
            cancel=verdict(policy, Action.CANCEL, state, now),
        )

    return BookingView(
        id=booking.id,
        title=booking.title,
        owner_name=booking.owner.name,
        owner_email=booking.owner.email,
        customer_name=booking.customer_name,
        zone=zone.key,
        zone_city=zone_city(zone),
        cancelled=booking.status is BookingStatus.CANCELLED,
        single=count == 1,
        version=booking.version,
        sessions=[view(s) for s in booking.sessions],
        rules=policy_lines(policy),
        policy_text=policy.text.strip(),
        policy=policy,
        price=Decimal(booking.price),
        currency=booking.currency,
        requested=requested,
    )


def _requested_verdict(s: BookedSession, requested: frozenset[int], owner: str) -> Verdict:
    """Under the owner's request: its sessions may move (unless cancelled), no others."""
    if s.status is SessionStatus.CANCELLED:
        return Verdict(False, "This session is cancelled.")
    if s.id not in requested:
        return Verdict(False, f"{owner} did not ask to move this session.")
    return Verdict(True)


# -- choosing new times -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """The days of free times shown at once, in the customer's zone."""

    first: date
    days: list[date]
    start: datetime
    end: datetime
    previous: date | None
    next: date | None
    label: str


def time_window(first: date | None, zone: ZoneInfo, now: datetime, horizon_days: int) -> Window:
    """Up to ``WINDOW_DAYS`` days from ``first`` (default: today), inside the booking horizon."""
    today = now.astimezone(zone).date()
    last_day = (now + timedelta(days=horizon_days)).astimezone(zone).date()
    first = min(max(first or today, today), last_day)
    count = min(WINDOW_DAYS, (last_day - first).days + 1)
    days = [first + timedelta(days=n) for n in range(count)]
    start = datetime.combine(first, time(0), zone)
    end = min(
        datetime.combine(first + timedelta(days=count), time(0), zone),
        start + timedelta(days=horizon_days),
    )
    previous = max(first - timedelta(days=WINDOW_DAYS), today) if first > today else None
    following = first + timedelta(days=count)
    label = f"{_short_day(days[0])} to {_short_day(days[-1])}" if count > 1 else _short_day(first)
    return Window(
        first, days, start, end, previous, following if following <= last_day else None, label
    )


def _short_day(day: date) -> str:
    """``Thu, Jun 27``."""
    return short_day(day)


@dataclass(frozen=True, slots=True)
class SlotView:
    value: str  # the start as an ISO instant in UTC: what the form sends
    label: str  # "10:30 AM"
    key: str  # unique within the page, for element ids
    start_ms: int
    end_ms: int
    checked: bool


@dataclass(frozen=True, slots=True)
class DayView:
    label: str
    slots: list[SlotView]


@dataclass(frozen=True, slots=True)
class SessionSlots:
    session: SessionView
    days: list[DayView]
    kept: SlotView | None  # the session's pick when it lies outside the days shown
    kept_when: str
    problem: str | None


def _slot_view(slot: Slot, zone: ZoneInfo, checked: bool) -> SlotView:
    start = slot.start.astimezone(ZoneInfo("UTC"))
    seconds = int(start.timestamp())
    label = clock_words(slot.start.astimezone(zone))
    return SlotView(
        start.isoformat(),
        label,
        str(seconds),
        seconds * 1000,
        int(slot.end.timestamp()) * 1000,
        checked,
    )


def slot_lists(
    page: BookingView,
    session_ids: Sequence[int],
    slots: Sequence[Slot],
    window: Window,
    zone: ZoneInfo,
    picks: Mapping[int, datetime],
    problems: Mapping[str, str],
    lengths: Mapping[int, timedelta],
) -> list[SessionSlots]:
    """For each session to move, the free slots of the window day by day (without its own
    current time), with the customer's pick checked."""
    by_day: dict[date, list[Slot]] = {day: [] for day in window.days}
    for slot in slots:
        by_day.setdefault(slot.start.astimezone(zone).date(), []).append(slot)
    lists = []
    for session_id in session_ids:
        session = page.session(session_id)
        pick = picks.get(session_id)
        days = [
            DayView(
                _short_day(day),
                [
                    _slot_view(slot, zone, slot.start == pick)
                    for slot in by_day.get(day, [])
                    if slot.start != session.start
                ],
            )
            for day in window.days
        ]
        shown = any(slot.start == pick for slot in slots if slot.start != session.start)
        length = lengths[session_id]
        kept = None if pick is None or shown else _slot_view(Slot(pick, pick + length), zone, True)
        kept_when = format_span(pick, pick + length, zone) if kept and pick else ""
        lists.append(
            SessionSlots(session, days, kept, kept_when, problems.get(f"start-{session_id}"))
        )
    return lists


# -- confirming and the outcome -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeLine:
    label: str  # "Session 2 of 3", or "Your session"
    old: str
    new: str | None  # None: cancelled


def _line_label(position: int, count: int) -> str:
    return f"Session {position} of {count}" if count > 1 else "Your session"


def planned_moves(
    page: BookingView,
    moves: Mapping[int, datetime],
    lengths: Mapping[int, timedelta],
    zone: ZoneInfo,
) -> list[ChangeLine]:
    count = len(page.sessions)
    return [
        ChangeLine(
            _line_label(page.session(sid).position, count),
            page.session(sid).when,
            format_span(start, start + lengths[sid], zone),
        )
        for sid, start in sorted(moves.items(), key=lambda m: page.session(m[0]).position)
    ]


def planned_cancels(page: BookingView, session_ids: Sequence[int]) -> list[ChangeLine]:
    count = len(page.sessions)
    return [
        ChangeLine(_line_label(page.session(sid).position, count), page.session(sid).when, None)
        for sid in session_ids
    ]


@dataclass(frozen=True, slots=True)
class ChangeView:
    kind: str  # reschedule | cancel
    status: str  # pending | applied | conflict
    heading: str
    lines: list[ChangeLine]
    fee: str | None
    fee_label: str
    message: str | None
    reason: str | None


def change_view(change: Change, booking: Booking, zone: ZoneInfo) -> ChangeView:
    count = len(booking.sessions)
    lines = []
    for item in sorted(change.items, key=lambda i: i.position):
        old, new = item.before, item.after
        lines.append(
            ChangeLine(
                _line_label(item.position, count),
                format_span(old.start, old.end, zone),
                format_span(new.start, new.end, zone) if new else None,
            )
        )
    moved = change.kind is ChangeKind.RESCHEDULE
    plural = len(lines) != 1
    if change.status is ChangeStatus.CONFLICT:
        heading = "Your change could not be completed"
    elif change.status is ChangeStatus.UNPAID:
        heading = "Nothing was changed"
    elif change.status is ChangeStatus.AWAITING_PAYMENT:
        heading = "Waiting for the rescheduling fee"
    elif moved:
        heading = "Your sessions have been rescheduled" if plural else "Rescheduled"
    else:
        heading = "Your sessions have been cancelled" if plural else "Cancelled"
    fee = Decimal(change.fee) if change.fee is not None else None
    return ChangeView(
        kind=change.kind.value,
        status=change.status.value,
        heading=heading,
        lines=lines,
        fee=money(fee, booking.currency) if fee else None,
        fee_label="Rescheduling fee" if moved else "Refund",
        message=(
            change.message
            if change.status in (ChangeStatus.CONFLICT, ChangeStatus.UNPAID)
            else None
        ),
        reason=change.reason,
    )


def zone_heading(zone: ZoneInfo, moment: datetime) -> str:
    """``New Zealand Standard Time (GMT+12:00)`` at ``moment``."""
    return zone_label(zone, moment)
