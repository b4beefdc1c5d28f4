"""Free slots: working hours minus taken time, cut into bookable slots (DESIGN.md §4).

One request, step by step (a function each):

1. window        [start, end) ∩ [now + minimum_notice, now + horizon]; a slot lies wholly inside.
2. working hours each local date's ranges (its override, else its weekday's) turned into
                 UTC instants in the rules' zone day by day, never by adding 24 h
                 (``working_periods``).
3. capped days   local dates already holding ``daily_cap`` booked sessions (``_capped_days``).
4. blocked time  busy and booked spans, minus ignored keys, widened by the buffers, sorted once
                 and merged into disjoint intervals (``_blocked_time``).
5. slots         each working period walked on its step grid together with a pointer into the
                 blocked intervals, jumping straight past each one (``_free_starts``).

The cost is O(spans · log spans + days + slots): no slot is ever compared with every span.

Exact semantics
---------------
Buffers   the room the *new* session needs around it. A slot [s, e) conflicts with a span
          [b0, b1) when ``s - buffer_before < b1 and e + buffer_after > b0``, i.e. the span is
          widened to [b0 - buffer_after, b1 + buffer_before). Busy and booked spans alike. An
          empty span (b0 == b1) takes no time and blocks nothing, whatever the buffers.
Window    a slot starts at or after max(start, now + minimum_notice) and ends at or before
          min(end, now + horizon): the horizon bounds the end, so every offered slot lies where
          the calendars have been read.
Cap       booked spans that are not ignored count on the local date (rules' zone) of their
          start, wherever that is; a date holding ``daily_cap`` or more offers nothing. Busy
          spans never count: the cap is about our own sessions.
Wall time a local time becomes an instant with fold=0. In a DST overlap that is the first
          occurrence; in a gap it is the offset before the gap (RFC 5545), so 02:30 on a
          spring-forward night in New York is 03:30 EDT. Range ends follow the same rule, so a
          range lying wholly in a gap shrinks or vanishes (02:30–03:00 there is empty), the
          way a calendar would place a daily event at those times.
Days      a date's ranges are clipped to the instants between its own midnight and the next
          (both resolved as above). A date that does not exist locally (Pacific/Apia skipped
          2011-12-30) is zero long and has no slots. Touching ranges (09:00–12:00 and
          12:00–17:00) are one range, so a session may run across 12:00.
Grid      slots start at period.start + k × slot_step in absolute time and end by the period's
          end; a 00:00–06:00 range has 5 hours on a spring-forward night and 7 on a fall-back
          one. Every slot start is a real instant, so none starts at a wall time that does not
          exist.
Result    UTC-aware slots, sorted by start, unique (ranges of one gap day can overlap once
          resolved; their slots are offered once).
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter
from zoneinfo import ZoneInfo

from calsync.policy.types import (
    MIDNIGHT,
    AvailabilityRules,
    Instant,
    Slot,
    Span,
    SpanKey,
    TimeRange,
    WorkingPeriod,
    validate_rules,
)

ONE_DAY = timedelta(days=1)


def free_slots(
    rules: AvailabilityRules,
    *,
    busy: Sequence[Span],
    booked: Sequence[Span],
    now: Instant,
    start: Instant,
    end: Instant,
    ignore: Collection[SpanKey] = frozenset(),
) -> list[Slot]:
    """The slots that can be booked in [start, end), as UTC slots sorted by start.

    ``busy`` is time taken on the owner's conflict calendars, ``booked`` the sessions of other
    bookings (these also count towards ``daily_cap``). Spans whose key is in ``ignore`` are left
    out of both: that is how sessions being rescheduled do not block themselves.

    Raises ``RulesError`` when ``rules`` fail ``validate_rules`` and ``ValueError`` when
    ``now``, ``start`` or ``end`` is naive. An empty or reversed window gives ``[]``.
    """
    validate_rules(rules)
    _require_aware(now=now, start=start, end=end)
    # In UTC before any arithmetic: adding to a zoned datetime moves its wall clock, which
    # lands an hour off across a DST change.
    now, start, end = now.astimezone(UTC), start.astimezone(UTC), end.astimezone(UTC)
    lo = max(start, now + rules.minimum_notice)
    hi = min(end, now + rules.horizon)
    if lo >= hi:
        return []
    ignored = frozenset(ignore)
    zone = ZoneInfo(rules.timezone)
    full_days = _capped_days(booked, ignored, zone, rules.daily_cap)
    periods = [p for p in working_periods(rules, lo, hi) if p.day not in full_days]
    blocked = _blocked_time(
        itertools.chain(busy, booked),
        ignored,
        before=rules.buffer_before,
        after=rules.buffer_after,
        lo=lo,
        hi=hi,
    )
    starts = itertools.chain.from_iterable(
        _free_starts(p, lo, hi, rules.duration, rules.slot_step, blocked) for p in periods
    )
    return [Slot(s, s + rules.duration) for s in sorted(set(starts))]


def working_periods(rules: AvailabilityRules, start: Instant, end: Instant) -> list[WorkingPeriod]:
    """Every working period that overlaps [start, end), whole (not cut to the window).

    Periods are not cut because the slot grid starts at a period's own start. ``rules`` must
    pass ``validate_rules``; ``start`` and ``end`` must be aware.
    """
    zone = ZoneInfo(rules.timezone)
    # A period lies within its own local date, so one spare date either side is plenty.
    first = start.astimezone(zone).date() - ONE_DAY
    last = end.astimezone(zone).date() + ONE_DAY
    days = (first + ONE_DAY * n for n in range((last - first).days + 1))
    periods = itertools.chain.from_iterable(_day_periods(rules, day, zone) for day in days)
    return [p for p in periods if p.start < end and p.end > start]


def hours_on(rules: AvailabilityRules, day: date) -> tuple[TimeRange, ...]:
    """The ranges worked on a local date: its override if it has one, else its weekday's."""
    if day in rules.date_overrides:
        return tuple(rules.date_overrides[day])
    return tuple(rules.weekly_hours.get(day.weekday(), ()))


def wall_to_instant(day: date, wall: time, zone: ZoneInfo) -> Instant:
    """The UTC instant of a local date and wall time in ``zone``.

    fold=0: a wall time in an overlap is its first occurrence, one in a gap takes the offset
    before the gap (RFC 5545), which lands it the gap's length later in the new offset.
    """
    return datetime.combine(day, wall, tzinfo=zone).replace(fold=0).astimezone(UTC)


def _day_periods(rules: AvailabilityRules, day: date, zone: ZoneInfo) -> list[WorkingPeriod]:
    """One local date's ranges as UTC periods, clipped to the date's own instants."""
    day_start = wall_to_instant(day, MIDNIGHT, zone)
    day_end = wall_to_instant(day + ONE_DAY, MIDNIGHT, zone)
    periods = []
    for wall_range in _joined(hours_on(rules, day)):
        start = max(wall_to_instant(day, wall_range.start, zone), day_start)
        end = (
            day_end
            if wall_range.ends_at_midnight
            else min(wall_to_instant(day, wall_range.end, zone), day_end)
        )
        # Empty when the date does not exist locally or the range lies wholly in a DST gap.
        if start < end:
            periods.append(WorkingPeriod(day, start, end))
    return periods


def _joined(ranges: Iterable[TimeRange]) -> list[TimeRange]:
    """Ranges in order with touching ones joined: 09–12 and 12–17 are worked as 09–17."""
    joined: list[TimeRange] = []
    for wall_range in sorted(ranges, key=lambda r: r.start):
        previous = joined[-1] if joined else None
        if previous and not previous.ends_at_midnight and previous.end == wall_range.start:
            joined[-1] = TimeRange(previous.start, wall_range.end)
        else:
            joined.append(wall_range)
    return joined


def _capped_days(
    booked: Iterable[Span], ignored: frozenset[SpanKey], zone: ZoneInfo, cap: int | None
) -> frozenset[date]:
    """Local dates that already hold ``cap`` or more booked sessions."""
    if cap is None:
        return frozenset()
    per_day = Counter(
        span.start.astimezone(zone).date() for span in booked if span.key not in ignored
    )
    return frozenset(day for day, count in per_day.items() if count >= cap)


@dataclass(frozen=True, slots=True)
class _Blocked:
    """Disjoint blocked intervals in UTC, sorted; ``starts[i]``–``ends[i]`` is one interval.

    Two parallel lists rather than pairs so ``bisect`` can search the ends directly.
    """

    starts: list[Instant]
    ends: list[Instant]


def _blocked_time(
    spans: Iterable[Span],
    ignored: frozenset[SpanKey],
    *,
    before: timedelta,
    after: timedelta,
    lo: Instant,
    hi: Instant,
) -> _Blocked:
    """Spans that can touch a slot inside [lo, hi), widened by the buffers, merged.

    Spans are in UTC already (``Span`` normalises), so every comparison here is a cheap one.
    """
    # A slot starts at or after lo, so a span ending by lo - before cannot reach it; it ends
    # by hi, so one starting at or after hi + after cannot either.
    reach_from = lo - before
    reach_until = hi + after
    live = [
        span
        for span in spans
        if span.end > reach_from
        and span.start < reach_until
        and span.start < span.end
        and span.key not in ignored
    ]
    live.sort(key=_span_start)
    # Widening every span by the same amounts keeps their order, so merge the raw spans and
    # widen only the merged intervals: two spans merge when their widened forms overlap or
    # touch, which is when the later one starts within before + after of the earlier's end.
    joining_gap = before + after
    starts: list[Instant] = []
    ends: list[Instant] = []
    for span in live:
        if ends and span.start - joining_gap <= ends[-1]:
            if span.end > ends[-1]:
                ends[-1] = span.end
        else:
            starts.append(span.start)
            ends.append(span.end)
    return _Blocked([b - after for b in starts], [b + before for b in ends])


_span_start = attrgetter("start")


def _free_starts(
    period: WorkingPeriod,
    lo: Instant,
    hi: Instant,
    duration: timedelta,
    step: timedelta,
    blocked: _Blocked,
) -> Iterator[Instant]:
    """Starts of free slots in one period: its step grid inside the window, minus blocked time."""
    origin = period.start
    last_start = min(period.end, hi) - duration
    start = origin if lo <= origin else origin + _ceil_div(lo - origin, step) * step
    ends = blocked.ends
    i = bisect_right(ends, start)  # the first blocked interval still ending after `start`
    while start <= last_start:
        while i < len(ends) and ends[i] <= start:
            i += 1
        if i < len(ends) and blocked.starts[i] < start + duration:
            # Every grid start before this interval's end overlaps it: jump past the interval.
            start = origin + _ceil_div(ends[i] - origin, step) * step
            continue
        yield start
        start += step


def _ceil_div(length: timedelta, step: timedelta) -> int:
    """How many steps it takes to cover ``length`` (rounding up)."""
    return -(-length // step)


def _require_aware(**instants: datetime) -> None:
    for name, value in instants.items():
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got {value!r}")
