"""Event types (what an owner sells, and when) and the availability read path.

``EventTypeSpec`` is the whole definition as plain values; the CLI and the admin API build one,
these functions validate it (every problem named by its field) and store it. ``find_slots``
turns an event type plus the mirror of its conflict calendars into free slots.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from calsync.bookings.held import booked_spans
from calsync.policy.availability import free_slots
from calsync.policy.change_policy import (
    ChangePolicy,
    policy_from_data,
    policy_problems,
    policy_to_data,
)
from calsync.policy.hours import (
    overrides_from_data,
    overrides_to_data,
    weekly_from_data,
    weekly_to_data,
)
from calsync.policy.packages import PageOffer, offer_from_data, offer_problems, offer_to_data
from calsync.policy.refusal import Refusal, why_not_offered
from calsync.policy.types import (
    AvailabilityRules,
    Slot,
    Span,
    TimeRange,
    rules_problems,
)
from calsync.store.db import Database
from calsync.store.models import (
    CalendarConnection,
    CalendarRole,
    EventType,
    Owner,
    owner_page_url,
    utcnow,
)
from calsync.sync import mirror
from calsync.sync.connections import NotFoundError, ServiceError, find_owner

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
CONFLICT_ROLES = (CalendarRole.CONFLICTS, CalendarRole.BOTH)
BOOKING_ROLES = (CalendarRole.BOOKINGS, CalendarRole.BOTH)


class InvalidInput(ServiceError):
    """Input with one or more problems, each as (field, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems))
        self.problems = problems


class AvailabilityUnknown(ServiceError):
    """Busy time cannot be trusted yet (a conflict calendar was never synced)."""


@dataclass(frozen=True, slots=True)
class EventTypeSpec:
    owner_email: str
    slug: str
    title: str
    duration: timedelta
    timezone: str
    weekly_hours: dict[int, tuple[TimeRange, ...]]
    slot_step: timedelta | None = None  # default: the duration
    date_overrides: dict[date, tuple[TimeRange, ...]] = field(default_factory=dict)
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    minimum_notice: timedelta = timedelta(0)
    horizon_days: int = 60
    daily_cap: int | None = None
    conflict_calendar_ids: tuple[int, ...] = ()  # empty: the owner's conflicts/both calendars
    booking_calendar_id: int | None = None
    price: Decimal = Decimal(0)
    currency: str = "EUR"
    policy: ChangePolicy = field(default_factory=ChangePolicy)
    page: PageOffer = field(default_factory=PageOffer)

    def rules(self) -> AvailabilityRules:
        return AvailabilityRules(
            timezone=self.timezone,
            duration=self.duration,
            slot_step=self.slot_step or self.duration,
            weekly_hours=self.weekly_hours,
            date_overrides=self.date_overrides,
            buffer_before=self.buffer_before,
            buffer_after=self.buffer_after,
            minimum_notice=self.minimum_notice,
            horizon=timedelta(days=self.horizon_days),
            daily_cap=self.daily_cap,
        )


def _minutes(value: timedelta) -> int:
    return int(value.total_seconds() // 60)


def spec_of(event_type: EventType) -> EventTypeSpec:
    """The spec an event type was made from (for updates that change a few fields)."""
    return EventTypeSpec(
        owner_email=event_type.owner.email,
        slug=event_type.slug,
        title=event_type.title,
        duration=timedelta(minutes=event_type.duration_minutes),
        slot_step=timedelta(minutes=event_type.slot_step_minutes),
        timezone=event_type.timezone,
        weekly_hours=weekly_from_data(event_type.weekly_hours),
        date_overrides=overrides_from_data(event_type.date_overrides),
        buffer_before=timedelta(minutes=event_type.buffer_before_minutes),
        buffer_after=timedelta(minutes=event_type.buffer_after_minutes),
        minimum_notice=timedelta(minutes=event_type.minimum_notice_minutes),
        horizon_days=event_type.horizon_days,
        daily_cap=event_type.daily_cap,
        conflict_calendar_ids=tuple(c.id for c in event_type.conflict_calendars),
        booking_calendar_id=event_type.booking_calendar_id,
        price=Decimal(event_type.price),
        currency=event_type.currency,
        policy=policy_from_data(event_type.policy),
        page=offer_from_data(event_type.booking_page),
    )


def page_of(event_type: EventType) -> PageOffer:
    return offer_from_data(event_type.booking_page)


def page_url(base_url: str, event_type: EventType) -> str:
    """The public booking page's address (``event_type.owner`` loaded)."""
    return f"{owner_page_url(base_url, event_type.owner)}/{event_type.slug}"


def rules_of(event_type: EventType) -> AvailabilityRules:
    return spec_of(event_type).rules()


def _problems(
    spec: EventTypeSpec, owner: Owner, calendars: dict[int, CalendarConnection]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not SLUG.match(spec.slug):
        problems.append(("slug", "use lower-case letters, digits and dashes (e.g. intro-call)"))
    if not spec.title.strip():
        problems.append(("title", "must not be empty"))
    for duration_field in (
        "duration",
        "slot_step",
        "buffer_before",
        "buffer_after",
        "minimum_notice",
    ):
        value = getattr(spec, duration_field)
        if value is not None and value % timedelta(minutes=1):
            problems.append((duration_field, "must be whole minutes"))
    if not 1 <= spec.horizon_days <= 730:
        problems.append(("horizon_days", "must be between 1 and 730 days"))
    else:
        problems += [(p.field, p.message) for p in rules_problems(spec.rules())]
    problems += [(p.field, p.message) for p in policy_problems(spec.policy)]
    problems += [(f"booking_page.{p.field}", p.message) for p in offer_problems(spec.page)]
    if spec.price < 0:
        problems.append(("price", "cannot be negative"))
    if not re.fullmatch(r"[A-Z]{3}", spec.currency):
        problems.append(("currency", "use a three-letter ISO code such as EUR"))
    for calendar_id in spec.conflict_calendar_ids:
        if calendar_id not in calendars:
            problems.append(
                ("conflict_calendar_ids", f"calendar {calendar_id} is not one of {owner.email}'s")
            )
    if spec.booking_calendar_id is not None:
        booking = calendars.get(spec.booking_calendar_id)
        if booking is None:
            problems.append(
                (
                    "booking_calendar_id",
                    f"calendar {spec.booking_calendar_id} is not one of {owner.email}'s",
                )
            )
        elif booking.role not in BOOKING_ROLES:
            problems.append(
                (
                    "booking_calendar_id",
                    f"calendar {booking.id} has role {booking.role.value}; "
                    "give it role bookings or both",
                )
            )
    return problems


def _apply(
    event_type: EventType,
    spec: EventTypeSpec,
    owner: Owner,
    calendars: dict[int, CalendarConnection],
) -> None:
    event_type.owner_id = owner.id
    event_type.slug = spec.slug
    event_type.title = spec.title.strip()
    event_type.duration_minutes = _minutes(spec.duration)
    event_type.slot_step_minutes = _minutes(spec.slot_step or spec.duration)
    event_type.timezone = spec.timezone
    event_type.weekly_hours = weekly_to_data(spec.weekly_hours)
    event_type.date_overrides = overrides_to_data(spec.date_overrides)
    event_type.buffer_before_minutes = _minutes(spec.buffer_before)
    event_type.buffer_after_minutes = _minutes(spec.buffer_after)
    event_type.minimum_notice_minutes = _minutes(spec.minimum_notice)
    event_type.horizon_days = spec.horizon_days
    event_type.daily_cap = spec.daily_cap
    event_type.conflict_calendars = [calendars[i] for i in spec.conflict_calendar_ids]
    event_type.booking_calendar_id = spec.booking_calendar_id
    event_type.price = str(spec.price)
    event_type.currency = spec.currency
    event_type.policy = policy_to_data(spec.policy)
    event_type.booking_page = offer_to_data(spec.page)


def save_event_type(
    db: Database, spec: EventTypeSpec, event_type_id: int | None = None
) -> EventType:
    """Create (``event_type_id`` None) or replace an event type. Raises InvalidInput."""
    owner = find_owner(db, spec.owner_email)
    try:
        with db.writing() as session:
            calendars = {
                c.id: c
                for c in session.scalars(
                    select(CalendarConnection).where(CalendarConnection.owner_id == owner.id)
                )
            }
            problems = _problems(spec, owner, calendars)
            if problems:
                raise InvalidInput(problems)
            if event_type_id is None:
                event_type = EventType()
                session.add(event_type)
            else:
                event_type = load_event_type(session, event_type_id)
            _apply(event_type, spec, owner, calendars)
            session.flush()
            saved_id = event_type.id
    except IntegrityError:
        raise InvalidInput(
            [("slug", f"an event type with slug {spec.slug!r} exists already")]
        ) from None
    return get_event_type(db, saved_id)


def load_event_type(session: Session, key: int | str, *, with_owner: bool = True) -> EventType:
    # The owner comes in the same query (one row each); the conflict calendars in a second.
    # ``with_owner=False`` for callers that stay in the transaction and need only the rules.
    query = select(EventType).options(selectinload(EventType.conflict_calendars))
    if with_owner:
        query = query.options(joinedload(EventType.owner))
    query = query.where(EventType.id == key if isinstance(key, int) else EventType.slug == key)
    event_type = session.scalars(query).one_or_none()
    if event_type is None:
        raise NotFoundError(f"no event type {key!r}: see `calsync event-type list`")
    return event_type


def get_event_type(db: Database, key: int | str) -> EventType:
    """By id, or by slug when given a string."""
    with db.reading() as session:
        return load_event_type(session, key)


def list_event_types(db: Database) -> list[EventType]:
    with db.reading() as session:
        return list(
            session.scalars(
                select(EventType)
                .options(selectinload(EventType.owner), selectinload(EventType.conflict_calendars))
                .order_by(EventType.id)
            )
        )


def delete_event_type(db: Database, event_type_id: int) -> None:
    with db.writing() as session:
        session.delete(load_event_type(session, event_type_id))


def conflict_calendars(session: Session, event_type: EventType) -> list[CalendarConnection]:
    if event_type.conflict_calendars:
        return list(event_type.conflict_calendars)
    return list(
        session.scalars(
            select(CalendarConnection).where(
                CalendarConnection.owner_id == event_type.owner_id,
                CalendarConnection.role.in_(CONFLICT_ROLES),
            )
        )
    )


def find_slots(
    db: Database,
    event_type: EventType,
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
    ignore: Collection[str] = frozenset(),
    extra_booked: Sequence[Span] = (),
) -> list[Slot]:
    """Free slots of ``event_type`` in [start, end), from the mirror of its conflict calendars;
    ``extra_booked``: sessions not stored yet that block their time (a package being chosen).

    Raises InvalidInput for a reversed window or one longer than the booking horizon, and
    AvailabilityUnknown while a conflict calendar has never been synced (offering slots then
    could double-book the owner).
    """
    with db.reading() as session:
        return slots_of(
            session,
            event_type,
            start,
            end,
            now=now or utcnow(),
            ignore=ignore,
            extra_booked=extra_booked,
        )


@dataclass(frozen=True)
class OpenTimes:
    """An event type's free slots in a window, read in one transaction."""

    event_type: EventType
    start: datetime
    end: datetime
    slots: list[Slot]


def open_times(
    db: Database,
    event_type_id: int,
    window_of: Callable[[EventType], tuple[datetime, datetime]],
) -> OpenTimes:
    """``find_slots`` for an event type known by its id, in one read transaction (the hot path
    of the availability API); ``window_of`` gives the window once the event type is known,
    since its zone and horizon shape it."""
    with db.reading() as session:
        event_type = load_event_type(session, event_type_id, with_owner=False)
        start, end = window_of(event_type)
        slots = slots_of(session, event_type, start, end, now=utcnow())
        return OpenTimes(event_type, start, end, slots)


def slots_of(
    session: Session,
    event_type: EventType,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    ignore: Collection[str] = frozenset(),
    extra_booked: Sequence[Span] = (),
) -> list[Slot]:
    """``find_slots`` within the caller's transaction."""
    check_window(event_type, start, end)
    calendars = conflict_calendars(session, event_type)
    unsynced = [c for c in calendars if c.last_success_at is None]
    if unsynced:
        names = ", ".join(f"{c.id} ({c.display_name or c.url})" for c in unsynced)
        raise AvailabilityUnknown(
            f"calendar {names} has not been synced yet, so free times are not known: "
            "run `calsync sync --once` or wait for the worker"
        )
    return slots_within(
        session,
        event_type,
        start,
        end,
        now=now,
        ignore=ignore,
        extra_booked=extra_booked,
        calendar_ids=[c.id for c in calendars],
    )


def check_window(event_type: EventType, start: datetime, end: datetime) -> None:
    """InvalidInput for a window without a zone, reversed, or longer than the horizon."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput([("start", "give times with a UTC offset or a time zone")])
    if end <= start:
        raise InvalidInput([("end", "must be after start")])
    if end - start > timedelta(days=event_type.horizon_days):
        raise InvalidInput(
            [
                (
                    "end",
                    f"ask for at most {event_type.horizon_days} days "
                    "(the booking horizon) at a time",
                )
            ]
        )


def slots_within(
    session: Session,
    event_type: EventType,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    ignore: Collection[str] = frozenset(),
    extra_booked: Sequence[Span] = (),
    extra_busy: Sequence[Span] = (),
    calendar_ids: Sequence[int] | None = None,
) -> list[Slot]:
    """Free slots from what this transaction sees: the mirror plus our own bookings.

    ``ignore`` holds session UIDs that must not block (the sessions being rescheduled);
    ``extra_booked`` adds spans not stored yet (other sessions of the same request);
    ``extra_busy`` adds busy time the mirror does not hold (``live_check``);
    ``calendar_ids``: the conflict calendars, when the caller has read them already.
    """
    rules = rules_of(event_type)
    busy, booked = taken_spans(
        session, event_type, start, end, calendar_ids, with_uids=bool(ignore), rules=rules
    )
    return free_slots(
        rules,
        busy=[*busy, *extra_busy],
        booked=[*booked, *extra_booked],
        now=now,
        start=start,
        end=end,
        ignore=ignore,
    )


def taken_spans(
    session: Session,
    event_type: EventType,
    start: datetime,
    end: datetime,
    calendar_ids: Sequence[int] | None = None,
    *,
    with_uids: bool = True,
    rules: AvailabilityRules | None = None,
) -> tuple[list[Span], list[Span]]:
    """Busy spans (conflict calendars; ``calendar_ids`` when the caller has read them) and
    booked spans (our sessions) that can touch a slot in [start, end), from what this
    transaction sees. ``with_uids=False`` leaves the busy spans' UIDs out (None) when no
    session is to be ignored; ``rules``: the event type's, when the caller has them."""
    rules = rules or rules_of(event_type)
    # Anything that could touch a slot inside the window, buffers included.
    reach_start, reach_end = start - rules.buffer_before, end + rules.buffer_after
    if calendar_ids is None:
        calendar_ids = [c.id for c in conflict_calendars(session, event_type)]
    busy = [
        Span(s, e, uid)
        for s, e, uid in mirror.busy_spans(
            session, calendar_ids, reach_start, reach_end, with_uids=with_uids
        )
    ]
    # The cap counts whole local days, so bookings are read for the days around the window.
    booked = booked_spans(
        session, event_type.owner_id, reach_start - timedelta(days=1), reach_end + timedelta(days=1)
    )
    return busy, booked


def refusal_of(
    session: Session,
    event_type: EventType,
    slot: Slot,
    *,
    now: datetime,
    ignore: Collection[str] = frozenset(),
    extra_booked: Sequence[Span] = (),
    extra_busy: Sequence[Span] = (),
) -> Refusal | None:
    """Why ``slot`` is not offered (see ``policy.refusal``), or None when it is free."""
    busy, booked = taken_spans(session, event_type, slot.start, slot.end)
    return why_not_offered(
        rules_of(event_type),
        slot,
        busy=[*busy, *extra_busy],
        booked=[*booked, *extra_booked],
        now=now,
        ignore=ignore,
    )


def parse_decimal(text: str, field_name: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise InvalidInput([(field_name, f"{text!r} is not a number")]) from None
