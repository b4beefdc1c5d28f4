"""Properties of ``free_slots`` on random rules, spans and windows, near DST changes.

The centre is ``naive_free_slots``: the definition from DESIGN.md §4 written the slow, obvious
way (every candidate slot against every span), sharing no code with the engine. The other
properties check each clause of the definition on its own so a failure names the clause.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from calsync.policy.availability import free_slots
from calsync.policy.types import AvailabilityRules, Slot, Span, TimeRange, validate_rules

SETTINGS = settings(deadline=None, max_examples=120)

# Zones with the awkward cases: ordinary DST both ways, a southern-hemisphere DST, a 30-minute
# DST (Lord Howe), changes at midnight (Santiago), a skipped date (Apia), no DST (Kolkata).
TRANSITIONS: dict[str, list[date]] = {
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1)],
    "Europe/London": [date(2026, 3, 29), date(2026, 10, 25)],
    "Australia/Sydney": [date(2026, 4, 5), date(2026, 10, 4)],
    "Australia/Lord_Howe": [date(2026, 4, 5), date(2026, 10, 4)],
    "America/Santiago": [date(2026, 4, 4), date(2026, 9, 6)],
    "Pacific/Apia": [date(2011, 12, 30)],
    "Asia/Kolkata": [date(2026, 6, 1)],
}
SPAN_KEYS = ("a", "b", "c", "d", None)
OTHER_ZONE = ZoneInfo("Pacific/Kiritimati")
MINUTE = timedelta(minutes=1)


# -- the definition, written the obvious way --------------------------------------------------


def local_instant(day: date, minute_of_day: int, zone: ZoneInfo) -> datetime:
    """Local date + minutes since midnight (1440 = the next midnight), fold=0, in UTC."""
    day = day + timedelta(days=minute_of_day // 1440)
    minute_of_day %= 1440
    wall = datetime(day.year, day.month, day.day, minute_of_day // 60, minute_of_day % 60)
    return wall.replace(tzinfo=zone).astimezone(UTC)


def minutes_of(r: TimeRange) -> tuple[int, int]:
    end = 1440 if r.end == time(0) else r.end.hour * 60 + r.end.minute
    return r.start.hour * 60 + r.start.minute, end


def day_ranges_in_minutes(rules: AvailabilityRules, day: date) -> list[tuple[int, int]]:
    """The date's ranges as minute pairs, touching ones joined."""
    ranges = rules.date_overrides.get(day, rules.weekly_hours.get(day.weekday(), ()))
    joined: list[tuple[int, int]] = []
    for a, b in sorted(minutes_of(r) for r in ranges):
        if joined and joined[-1][1] == a:
            joined[-1] = (joined[-1][0], b)
        else:
            joined.append((a, b))
    return joined


def naive_free_slots(
    rules: AvailabilityRules,
    busy: Sequence[Span],
    booked: Sequence[Span],
    now: datetime,
    start: datetime,
    end: datetime,
    ignore: Collection[str],
) -> list[Slot]:
    zone = ZoneInfo(rules.timezone)
    taken = [s for s in [*busy, *booked] if s.key not in ignore and s.start < s.end]
    per_day = Counter(s.start.astimezone(zone).date() for s in booked if s.key not in ignore)
    # UTC first: adding hours to a zoned datetime moves its wall clock, an hour off across DST.
    now = now.astimezone(UTC)
    earliest = max(start, now + rules.minimum_notice)
    latest = min(end, now + rules.horizon)
    first_day = earliest.astimezone(zone).date() - timedelta(days=2)
    starts: set[datetime] = set()
    for n in range((latest.astimezone(zone).date() - first_day).days + 3):
        day = first_day + timedelta(days=n)
        if rules.daily_cap is not None and per_day[day] >= rules.daily_cap:
            continue
        day_start, day_end = local_instant(day, 0, zone), local_instant(day, 1440, zone)
        for a, b in day_ranges_in_minutes(rules, day):
            candidate = max(local_instant(day, a, zone), day_start)
            range_end = min(local_instant(day, b, zone), day_end)
            while candidate + rules.duration <= range_end:
                slot_end = candidate + rules.duration
                blocked = any(
                    candidate - rules.buffer_before < s.end
                    and slot_end + rules.buffer_after > s.start
                    for s in taken
                )
                if not blocked and candidate >= earliest and slot_end <= latest:
                    starts.add(candidate)
                candidate += rules.slot_step
    return [Slot(s, s + rules.duration) for s in sorted(starts)]


# -- strategies -------------------------------------------------------------------------------


@st.composite
def day_hours(draw: st.DrawFn, min_ranges: int = 0) -> tuple[TimeRange, ...]:
    """Up to 2 ranges on 10-minute marks; they may touch but never overlap. 144 marks = 24:00."""
    marks = sorted(draw(st.lists(st.integers(0, 144), min_size=2 * min_ranges, max_size=4)))
    ranges = []
    for a, b in zip(marks[0::2], marks[1::2], strict=False):
        if a < b:
            end = time(0) if b == 144 else time(b * 10 // 60, b * 10 % 60)
            ranges.append(TimeRange(time(a * 10 // 60, a * 10 % 60), end))
    return tuple(ranges)


def minutes(low: int, high: int, multiple: int = 1) -> st.SearchStrategy[timedelta]:
    return st.integers(low // multiple, high // multiple).map(lambda n: n * multiple * MINUTE)


@dataclass(frozen=True)
class Case:
    """One random request: rules, taken time and a window near a DST change of the zone."""

    rules: AvailabilityRules
    busy: list[Span]
    booked: list[Span]
    now: datetime
    start: datetime
    end: datetime
    ignore: frozenset[str]

    def slots(self, **changes: object) -> list[Slot]:
        case = replace(self, **changes)
        return free_slots(
            case.rules,
            busy=case.busy,
            booked=case.booked,
            now=case.now,
            start=case.start,
            end=case.end,
            ignore=case.ignore,
        )


@st.composite
def spans(draw: st.DrawFn, anchor: datetime, zone: ZoneInfo, most: int) -> list[Span]:
    result = []
    for _ in range(draw(st.integers(0, most))):
        begin = anchor + draw(minutes(-1440, 5 * 1440, 5))
        length = draw(st.sampled_from([0, 5, 10, 15, 30, 45, 60, 120, 300])) * MINUTE
        # Spans arrive in several zones; the engine must treat them as instants.
        tz = draw(st.sampled_from([UTC, zone, OTHER_ZONE]))
        key = draw(st.sampled_from(SPAN_KEYS))
        result.append(Span(begin.astimezone(tz), (begin + length).astimezone(tz), key))
    return result


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone_name = draw(st.sampled_from(sorted(TRANSITIONS)))
    zone = ZoneInfo(zone_name)
    pivot = draw(st.sampled_from(TRANSITIONS[zone_name]))
    anchor = datetime.combine(pivot, time(0), tzinfo=UTC) + draw(minutes(-3 * 1440, 1440))
    overrides = {
        pivot + timedelta(days=draw(st.integers(-2, 2))): draw(day_hours())
        for _ in range(draw(st.integers(0, 2)))
    }
    rules = AvailabilityRules(
        timezone=zone_name,
        duration=draw(st.sampled_from([15, 30, 45, 60, 90])) * MINUTE,
        slot_step=draw(st.sampled_from([10, 15, 20, 30, 60])) * MINUTE,
        # Mostly open days, so that most cases have slots to be wrong about.
        weekly_hours={day: draw(day_hours(min_ranges=1)) for day in range(7)},
        date_overrides=overrides,
        buffer_before=draw(minutes(0, 30, 5)),
        buffer_after=draw(minutes(0, 30, 5)),
        minimum_notice=draw(minutes(0, 12 * 60, 30)),
        horizon=draw(minutes(1440, 5 * 1440, 60)),
        daily_cap=draw(st.none() | st.integers(1, 2)),
    )
    start = anchor + draw(minutes(-12 * 60, 2 * 1440, 5))
    # The window arrives in the customer's zone sometimes; it is an instant all the same.
    window_zone = draw(st.sampled_from([UTC, zone, OTHER_ZONE]))
    return Case(
        rules=rules,
        busy=draw(spans(anchor, zone, most=16)),
        # Few bookings, or the daily cap would close nearly every day.
        booked=draw(spans(anchor, zone, most=6)),
        now=anchor.astimezone(window_zone),
        start=start.astimezone(window_zone),
        end=(start + draw(minutes(60, 4 * 1440, 5))).astimezone(window_zone),
        ignore=frozenset(draw(st.sets(st.sampled_from(["a", "b", "c", "d"])))),
    )


# -- properties -------------------------------------------------------------------------------


@SETTINGS
@given(cases())
def test_generated_rules_are_valid(case: Case) -> None:
    validate_rules(case.rules)


@SETTINGS
@given(cases())
def test_equals_the_naive_per_slot_check(case: Case) -> None:
    expected = naive_free_slots(
        case.rules, case.busy, case.booked, case.now, case.start, case.end, case.ignore
    )
    assert case.slots() == expected


@SETTINGS
@given(cases())
def test_result_is_sorted_unique_utc_and_one_duration_long(case: Case) -> None:
    slots = case.slots()
    assert [s.start for s in slots] == sorted({s.start for s in slots})
    for slot in slots:
        assert slot.start.tzinfo is UTC
        assert slot.end - slot.start == case.rules.duration


@SETTINGS
@given(cases())
def test_no_slot_touches_taken_time_or_its_buffers(case: Case) -> None:
    rules = case.rules
    taken = [s for s in [*case.busy, *case.booked] if s.key not in case.ignore]
    for slot, span in itertools.product(case.slots(), taken):
        if span.start == span.end:
            continue  # an empty span takes no time
        assert (
            slot.end + rules.buffer_after <= span.start
            or slot.start - rules.buffer_before >= span.end
        ), (slot, span)


@SETTINGS
@given(cases())
def test_every_slot_lies_in_one_working_range_of_its_local_date(case: Case) -> None:
    zone = ZoneInfo(case.rules.timezone)
    for slot in case.slots():
        local_start, local_end = slot.start.astimezone(zone), slot.end.astimezone(zone)
        day = local_start.date()
        ranges = day_ranges_in_minutes(case.rules, day)
        assert any(
            local_instant(day, a, zone) <= slot.start and slot.end <= local_instant(day, b, zone)
            for a, b in ranges
        ), slot
        if _clock_is_steady(day, zone):
            # On a day without a clock change the wall clock itself lies inside a range.
            wall_start = local_start.hour * 60 + local_start.minute
            wall_end = (local_end.date() - day).days * 1440 + local_end.hour * 60 + local_end.minute
            assert any(a <= wall_start and wall_end <= b for a, b in ranges), slot


def _clock_is_steady(day: date, zone: ZoneInfo) -> bool:
    """True when ``day`` starts and ends on the same UTC offset (no DST change on it)."""
    offsets = {local_instant(day, m, zone).astimezone(zone).utcoffset() for m in (0, 1440)}
    return len(offsets) == 1


@SETTINGS
@given(cases())
def test_every_slot_lies_in_the_window(case: Case) -> None:
    rules = case.rules
    for slot in case.slots():
        now = case.now.astimezone(UTC)  # instant arithmetic, not wall-clock arithmetic
        assert slot.start >= now + rules.minimum_notice
        assert slot.end <= now + rules.horizon
        assert case.start <= slot.start and slot.end <= case.end


@SETTINGS
@given(cases(), st.sampled_from(["a", "b", "c", "d"]))
def test_ignoring_a_key_frees_exactly_its_time(case: Case, key: str) -> None:
    def without_key(spans: list[Span]) -> list[Span]:
        return [s for s in spans if s.key != key]

    ignoring = case.slots(ignore=case.ignore | {key})
    removed = case.slots(busy=without_key(case.busy), booked=without_key(case.booked))
    assert ignoring == removed


@SETTINGS
@given(cases())
def test_daily_cap_closes_exactly_the_full_days(case: Case) -> None:
    zone = ZoneInfo(case.rules.timezone)
    cap = case.rules.daily_cap
    uncapped = case.slots(rules=replace(case.rules, daily_cap=None))
    if cap is None:
        assert case.slots() == uncapped
        return
    per_day = Counter(
        s.start.astimezone(zone).date() for s in case.booked if s.key not in case.ignore
    )
    expected = [s for s in uncapped if per_day[s.start.astimezone(zone).date()] < cap]
    assert case.slots() == expected
