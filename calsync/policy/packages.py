"""What an event type's public booking page offers: packages of sessions, each with its own
price, a spacing rule between the sessions of one package, and how many stakeholders a
customer may add. Pure values and rules; stored as JSON on the event type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

MAX_PACKAGE = 20  # sessions in one package (the booking engine's limit too)
MAX_STAKEHOLDERS = 10


@dataclass(frozen=True, slots=True)
class PackageOffer:
    sessions: int
    price: Decimal


@dataclass(frozen=True, slots=True)
class PageOffer:
    """The public page of one event type. No packages: one session at the event type's price."""

    public: bool = False
    packages: tuple[PackageOffer, ...] = ()
    min_days_apart: int = 0  # sessions of one package start at least this many days apart
    one_per_day: bool = False  # at most one session of a package per day (event type's zone)
    max_stakeholders: int = 0  # 0: customers cannot add stakeholders

    def offers(self, single_price: Decimal) -> tuple[PackageOffer, ...]:
        return self.packages or (PackageOffer(1, single_price),)

    def offer(self, sessions: int, single_price: Decimal) -> PackageOffer | None:
        return next((o for o in self.offers(single_price) if o.sessions == sessions), None)


@dataclass(frozen=True, slots=True)
class OfferProblem:
    field: str
    message: str


def offer_problems(offer: PageOffer) -> list[OfferProblem]:
    problems = []
    sizes = [p.sessions for p in offer.packages]
    if any(not 1 <= n <= MAX_PACKAGE for n in sizes):
        problems.append(OfferProblem("packages", f"a package has 1 to {MAX_PACKAGE} sessions"))
    if len(set(sizes)) != len(sizes):
        problems.append(OfferProblem("packages", "each package size once"))
    if any(p.price < 0 for p in offer.packages):
        problems.append(OfferProblem("packages", "a price cannot be negative"))
    if not 0 <= offer.min_days_apart <= 365:
        problems.append(OfferProblem("min_days_apart", "must be between 0 and 365"))
    if not 0 <= offer.max_stakeholders <= MAX_STAKEHOLDERS:
        problems.append(
            OfferProblem("max_stakeholders", f"must be between 0 and {MAX_STAKEHOLDERS}")
        )
    return problems


def spacing_problem(
    offer: PageOffer, starts: Sequence[datetime], zone: ZoneInfo, *, candidate: datetime
) -> str | None:
    """Why ``candidate`` cannot join the package's other ``starts``, or None."""
    for other in starts:
        if other == candidate:
            continue
        gap = abs(candidate - other)
        if offer.min_days_apart and gap < timedelta(days=offer.min_days_apart):
            days = offer.min_days_apart
            return f"sessions of one package must be at least {days} day{'s' * (days != 1)} apart"
        if offer.one_per_day and (
            candidate.astimezone(zone).date() == other.astimezone(zone).date()
        ):
            return "sessions of one package must be on different days"
    return None


def spacing_problems(offer: PageOffer, starts: Sequence[datetime], zone: ZoneInfo) -> str | None:
    """The first break of the spacing rule among ``starts``, or None."""
    for index, start in enumerate(starts):
        problem = spacing_problem(offer, starts[:index], zone, candidate=start)
        if problem:
            return problem
    return None


def offer_to_data(offer: PageOffer) -> dict[str, Any]:
    return {
        "public": offer.public,
        "packages": [{"sessions": p.sessions, "price": str(p.price)} for p in offer.packages],
        "min_days_apart": offer.min_days_apart,
        "one_per_day": offer.one_per_day,
        "max_stakeholders": offer.max_stakeholders,
    }


def offer_from_data(data: dict[str, Any] | None) -> PageOffer:
    data = data or {}
    return PageOffer(
        public=bool(data.get("public", False)),
        packages=tuple(
            PackageOffer(int(p["sessions"]), Decimal(str(p["price"])))
            for p in data.get("packages", [])
        ),
        min_days_apart=int(data.get("min_days_apart", 0)),
        one_per_day=bool(data.get("one_per_day", False)),
        max_stakeholders=int(data.get("max_stakeholders", 0)),
    )


def parse_package(text: str) -> PackageOffer | None:
    """``3=250`` (3 sessions for 250), or None when it is not that."""
    count, sep, price = text.partition("=")
    if not sep or not count.strip().isdigit():
        return None
    try:
        amount = Decimal(price.strip())
    except InvalidOperation:
        return None
    if not amount.is_finite():
        return None
    return PackageOffer(int(count.strip()), amount)
