"""The booking page's steps as HTML: the event types of an owner, the package, the times (one
per session, with the running list of those chosen), the details, and the booking made.

Times are shown in the zone the customer chose (``tz``; default the owner's). The sessions
already chosen block their slot and the spacing rule, as the booking engine will check them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from calsync.bookings.event_types import AvailabilityUnknown, InvalidInput, find_slots, page_of
from calsync.bookings.packages import BookingResult
from calsync.config import Settings
from calsync.notify.when import clock_words, format_span, short_day
from calsync.policy.packages import PackageOffer, PageOffer, spacing_problem
from calsync.policy.types import Slot, Span
from calsync.store.db import Database
from calsync.store.models import EventType, Owner, utcnow
from calsync.web.book.forms import HONEYPOT, book_csrf
from calsync.web.manage.forms import new_idempotency_key
from calsync.web.manage.render import answer, message_page, path_prefix, render
from calsync.web.manage.text import duration_words, money, usable_zone, zone_choices
from calsync.web.manage.views import time_window, zone_heading

UNKNOWN_TIMES = (
    "The free times cannot be shown just now (the calendar is being synced). Please try again "
    "in a minute."
)


@dataclass(frozen=True, slots=True)
class Visit:
    request: Request
    settings: Settings
    db: Database
    owner: Owner
    event_type: EventType
    offer: PageOffer
    zone: ZoneInfo
    now: datetime

    @property
    def base(self) -> str:
        return f"{path_prefix(self.settings)}/b/{self.owner.slug}/{self.event_type.slug}"

    @property
    def length(self) -> timedelta:
        return timedelta(minutes=self.event_type.duration_minutes)

    def packages(self) -> tuple[PackageOffer, ...]:
        return self.offer.offers(Decimal(self.event_type.price))

    def price(self, size: int) -> Decimal:
        """What the package of ``size`` sessions costs (the engine records the same)."""
        offer = self.offer.offer(size, Decimal(self.event_type.price))
        return offer.price if offer else Decimal(self.event_type.price)

    def times_url(self, size: int, picks: Sequence[datetime], **extra: str) -> str:
        query = [("package", str(size)), ("tz", self.zone.key)]
        query += [("pick", _utc(p)) for p in picks] + list(extra.items())
        return f"{self.base}/times?{urlencode(query)}"

    def when(self, start: datetime) -> str:
        return format_span(start, start + self.length, self.zone)

    @property
    def zone_given(self) -> bool:
        """Whether the customer chose the zone (else the page's script may detect it)."""
        return usable_zone(self.request.query_params.get("tz")) is not None

    def render(self, template: str, status: int = 200, **values: object) -> Response:
        body = render(
            self.settings,
            template,
            event_type=self.event_type,
            owner=self.owner,
            base=self.base,
            zone=self.zone.key,
            detect_zone=self.request.method in ("GET", "HEAD") and not self.zone_given,
            **values,
        )
        return answer(self.request, body, status)


def _utc(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).isoformat()


def not_found(request: Request, settings: Settings) -> Response:
    return message_page(
        request,
        settings,
        404,
        "This booking page is not available",
        "There is no booking page at this address, or it does not take bookings now. Please "
        "check the link you were given.",
    )


def find_owner(db: Database, owner_slug: str) -> tuple[Owner, list[EventType]] | None:
    """The owner and their event types whose page is on, or None."""
    with db.reading() as session:
        owner = session.scalars(select(Owner).where(Owner.slug == owner_slug)).one_or_none()
        if owner is None:
            return None
        rows = session.scalars(
            select(EventType)
            .options(selectinload(EventType.owner), selectinload(EventType.conflict_calendars))
            .where(EventType.owner_id == owner.id)
            .order_by(EventType.title, EventType.id)
        )
        public = [e for e in rows if page_of(e).public and e.booking_calendar_id is not None]
    return owner, public


def open_visit(
    request: Request, settings: Settings, db: Database, owner_slug: str, slug: str, tz: str | None
) -> Visit | None:
    """The page of this owner's event type, when it is on (and can be booked)."""
    found = find_owner(db, owner_slug)
    if found is None:
        return None
    owner, public = found
    event_type = next((e for e in public if e.slug == slug), None)
    if event_type is None:
        return None
    zone = usable_zone(tz) or ZoneInfo(owner.timezone)
    return Visit(request, settings, db, owner, event_type, page_of(event_type), zone, utcnow())


def owner_page(
    request: Request, settings: Settings, owner: Owner, rows: list[EventType]
) -> Response:
    prefix = path_prefix(settings)
    items = [
        {
            "title": e.title,
            "href": f"{prefix}/b/{owner.slug}/{e.slug}",
            "length": duration_words(timedelta(minutes=e.duration_minutes)),
        }
        for e in rows
    ]
    body = render(settings, "book_owner.html", owner=owner, items=items)
    return answer(request, body)


def package_page(visit: Visit, *, problem: str | None = None, status: int = 200) -> Response:
    currency = visit.event_type.currency
    packages = [
        {
            "size": p.sessions,
            "label": "1 session" if p.sessions == 1 else f"{p.sessions} sessions",
            "price": money(p.price, currency) if p.price else "free",
        }
        for p in visit.packages()
    ]
    return visit.render(
        "book_packages.html",
        status,
        packages=packages,
        length=duration_words(visit.length),
        spacing=spacing_words(visit.offer),
        zones=zone_choices((visit.zone.key, visit.owner.timezone), visit.now),
        problem=problem,
    )


def spacing_words(offer: PageOffer) -> str | None:
    if offer.min_days_apart:
        days = offer.min_days_apart
        return f"The sessions of a package are at least {days} day{'s' * (days != 1)} apart."
    if offer.one_per_day:
        return "The sessions of a package are on different days."
    return None


@dataclass(frozen=True, slots=True)
class PickView:
    value: str
    when: str
    remove: str
    taken: bool = False


def _pick_views(visit: Visit, size: int, picks: Sequence[datetime]) -> list[PickView]:
    return [
        PickView(
            _utc(p),
            visit.when(p),
            visit.times_url(size, [q for q in picks if q != p]),
        )
        for p in sorted(picks)
    ]


def times_page(
    visit: Visit,
    size: int,
    picks: list[datetime],
    first: date | None,
    *,
    problem: str | None = None,
    taken: datetime | None = None,
    status: int = 200,
) -> Response:
    """The free times for the next session, with the sessions chosen so far."""
    window = time_window(first, visit.zone, visit.now, visit.event_type.horizon_days)
    try:
        slots = find_slots(
            visit.db,
            visit.event_type,
            window.start,
            window.end,
            now=visit.now,
            extra_booked=[Span(p, p + visit.length) for p in picks],
        )
    except (AvailabilityUnknown, InvalidInput):
        return package_page(visit, problem=UNKNOWN_TIMES, status=409)
    zone = ZoneInfo(visit.event_type.timezone)
    offered = [
        s for s in slots if spacing_problem(visit.offer, picks, zone, candidate=s.start) is None
    ]
    days: dict[date, list[Slot]] = {d: [] for d in window.days}
    for slot in offered:
        days.setdefault(slot.start.astimezone(visit.zone).date(), []).append(slot)
    day_views = [
        {
            "label": short_day(day),
            "slots": [
                {
                    "value": _utc(s.start),
                    "key": str(int(s.start.timestamp())),
                    "label": clock_words(s.start.astimezone(visit.zone)),
                }
                for s in day_slots
            ],
        }
        for day, day_slots in days.items()
    ]
    taken_view = visit.when(taken) if taken else None
    return visit.render(
        "book_times.html",
        status,
        size=size,
        picks=_pick_views(visit, size, picks),
        number=len(picks) + 1,
        days=day_views,
        window=window,
        zone_label=zone_heading(visit.zone, window.start),
        zones=zone_choices((visit.zone.key, visit.owner.timezone), visit.now),
        spacing=spacing_words(visit.offer),
        problem=problem,
        taken=taken_view,
        previous=visit.times_url(size, picks, **{"from": window.previous.isoformat()})
        if window.previous
        else None,
        following=visit.times_url(size, picks, **{"from": window.next.isoformat()})
        if window.next
        else None,
    )


def details_page(
    visit: Visit,
    size: int,
    picks: list[datetime],
    *,
    problems: Mapping[str, str] | None = None,
    values: Mapping[str, str] | None = None,
    stakeholders: Sequence[str] = (),
    status: int = 200,
) -> Response:
    """Name, email, stakeholders and notes, with the chosen times and the price."""
    key = new_idempotency_key()
    price = visit.price(size)
    slots = list(stakeholders) + [""] * (visit.offer.max_stakeholders - len(stakeholders))
    return visit.render(
        "book_details.html",
        status,
        size=size,
        picks=_pick_views(visit, size, picks),
        change_url=visit.times_url(size, picks),
        price=money(price, visit.event_type.currency) if price else "free",
        key=key,
        csrf=book_csrf(visit.settings, visit.event_type, key),
        honeypot=HONEYPOT,
        problems=problems or {},
        values=values or {},
        stakeholders=slots[: visit.offer.max_stakeholders],
    )


def result_page(visit: Visit, result: BookingResult) -> Response:
    zone = usable_zone(result.booking.customer_timezone) or visit.zone
    sessions = [
        format_span(s.start, s.end, zone) for s in sorted(result.sessions, key=lambda s: s.start)
    ]
    return visit.render(
        "book_result.html",
        sessions=sessions,
        manage_url=result.manage_url,
        email=result.booking.customer_email,
    )
