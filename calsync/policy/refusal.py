"""Why a time is not offered: the one reason that applies, in words for the person who asked.

``free_slots`` only says which slots are free; a refusal should say which rule a chosen time
breaks (inside the notice, beyond the horizon, outside working hours, off the slot grid, a
full day, busy, another booking), so the person knows what to change. Pure: it reads the same
values ``free_slots`` does and applies its rules one at a time, in the order above.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from calsync.policy.availability import free_slots, working_periods
from calsync.policy.types import AvailabilityRules, Instant, Slot, Span, SpanKey


class Why(StrEnum):
    NOTICE = "inside the notice"
    HORIZON = "beyond the horizon"
    HOURS = "outside hours"
    GRID = "off the slot grid"
    FULL_DAY = "day full"
    BUSY = "busy"
    BOOKED = "booked"


@dataclass(frozen=True, slots=True)
class Refusal:
    why: Why
    text: str  # a sentence fragment: "is busy in the owner's calendar"


def _span_text(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days} day{'s' if days != 1 else ''}"
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minutes"


def why_not_offered(
    rules: AvailabilityRules,
    slot: Slot,
    *,
    busy: Sequence[Span],
    booked: Sequence[Span],
    now: Instant,
    ignore: Collection[SpanKey] = frozenset(),
) -> Refusal | None:
    """The first rule ``slot`` breaks, or None when ``free_slots`` would offer it."""
    zone = ZoneInfo(rules.timezone)
    start, end = slot.start.astimezone(UTC), slot.end.astimezone(UTC)
    if start < now + rules.minimum_notice:
        return Refusal(
            Why.NOTICE,
            f"inside the notice: sessions need {_span_text(rules.minimum_notice)} notice",
        )
    if end > now + rules.horizon:
        return Refusal(
            Why.HORIZON,
            f"beyond the horizon: times are offered up to {_span_text(rules.horizon)} ahead",
        )
    periods = [p for p in working_periods(rules, start, end) if p.start <= start and end <= p.end]
    if not periods:
        return Refusal(Why.HOURS, "outside the working hours")
    if all((start - p.start) % rules.slot_step for p in periods):
        first = periods[0].start.astimezone(zone)
        return Refusal(
            Why.GRID,
            f"off the slot grid: sessions start every {_span_text(rules.slot_step)} "
            f"from {first:%H:%M}",
        )
    if _day_full(rules, booked, ignore, start, zone):
        return Refusal(Why.FULL_DAY, f"on a full day: at most {rules.daily_cap} session(s) a day")
    offered = free_slots(
        rules, busy=[], booked=booked, now=now, start=start, end=end, ignore=ignore
    )
    if Slot(start, end) not in offered:
        return Refusal(Why.BOOKED, "taken by another booking")
    offered = free_slots(
        rules, busy=busy, booked=booked, now=now, start=start, end=end, ignore=ignore
    )
    if Slot(start, end) not in offered:
        return Refusal(Why.BUSY, "busy in the owner's calendar")
    return None


def _day_full(
    rules: AvailabilityRules,
    booked: Sequence[Span],
    ignore: Collection[SpanKey],
    start: Instant,
    zone: ZoneInfo,
) -> bool:
    day = start.astimezone(zone).date()
    count = sum(1 for s in booked if s.key not in ignore and s.start.astimezone(zone).date() == day)
    return rules.daily_cap is not None and count >= rules.daily_cap


def availability_command(slug: str, day: date) -> str:
    """The command that lists the free times around ``day``."""
    return f"calsync availability --event-type {slug} --from {day} --to {day + timedelta(days=1)}"
