"""Property tests for busy intervals across DST changes, and for hostile input.

The expected intervals are computed independently of calsync and of zoneinfo's own
local-to-UTC rules: a wall time is turned into an instant using only UTC-to-local
conversions (which are unambiguous), applying RFC 5545 by hand: a wall time that occurs
twice means the first occurrence, one inside a gap uses the UTC offset before the gap.
Occurrences of a DTEND event last the exact duration of the first; with DURATION, whole
days are nominal (same wall time) and the rest exact (RFC 5545 §3.3.6, §3.8.5.3).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from calsync.calendars.base import Interval
from calsync.calendars.errors import InvalidCalendarData
from calsync.calendars.ical.busy import BusyRules, busy_intervals, item_uid

ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Auckland"]
FIXTURES = Path(__file__).parent / "fixtures" / "ics"
MODEST = settings(max_examples=100, deadline=None)


@functools.cache
def transition_dates(zone_name: str) -> list[date]:
    """Local dates in 2024-2025 on which the zone's UTC offset changes (hourly scan)."""
    zone = ZoneInfo(zone_name)
    dates = []
    instant = datetime(2024, 1, 1, tzinfo=UTC)
    previous = instant.astimezone(zone).utcoffset()
    while instant.year < 2026:
        instant += timedelta(minutes=30)
        local = instant.astimezone(zone)
        if local.utcoffset() != previous:
            dates.append(local.date())
            previous = local.utcoffset()
    assert len(dates) == 4, (zone_name, dates)
    return dates


def rfc_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant RFC 5545 gives the naive wall time ``wall`` in ``zone``."""
    probe = wall.replace(tzinfo=UTC)
    offsets = set()
    for half_hours in range(-96, 97):  # every offset in force within two days
        offset = (probe + timedelta(minutes=30 * half_hours)).astimezone(zone).utcoffset()
        assert offset is not None
        offsets.add(offset)
    matching = [
        offset
        for offset in offsets
        if (probe - offset).astimezone(zone).replace(tzinfo=None) == wall
    ]
    if matching:  # the earliest instant showing this wall time: its first occurrence
        return probe - max(matching)
    # In a gap: the offset in force a day before any candidate instant is the one before it.
    before = (probe - max(offsets) - timedelta(days=1)).astimezone(zone).utcoffset()
    assert before is not None
    return probe - before


@dataclass(frozen=True)
class TimedEvent:
    zone: str
    floating: bool
    start: datetime  # naive wall time
    length: timedelta  # as written: DTEND = start + length (wall), or DURATION = length
    with_duration: bool
    freq: str | None
    count: int

    def text(self) -> str:
        tzid = "" if self.floating else f";TZID={self.zone}"
        if self.with_duration:
            minutes = self.length.seconds // 60
            length = f"DURATION:P{self.length.days}DT{minutes // 60}H{minutes % 60}M"
        else:
            length = f"DTEND{tzid}:{stamp(self.start + self.length)}"
        lines = [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//calsync property tests//EN",
            "BEGIN:VEVENT",
            "UID:property@example.org",
            "DTSTAMP:20240101T000000Z",
            f"DTSTART{tzid}:{stamp(self.start)}",
            length,
            *([f"RRULE:FREQ={self.freq};COUNT={self.count}"] if self.freq else []),
            "END:VEVENT",
            "END:VCALENDAR",
        ]
        return "\r\n".join(lines) + "\r\n"

    def expected(self) -> list[tuple[datetime, datetime]]:
        """(start, end) of each occurrence; not Intervals, as an end may precede a start."""
        zone = ZoneInfo(self.zone)
        step = timedelta(days=7 if self.freq == "WEEKLY" else 1)
        exact = rfc_instant(self.start + self.length, zone) - rfc_instant(self.start, zone)
        result = []
        for index in range(self.count if self.freq else 1):
            wall = self.start + index * step
            begins = rfc_instant(wall, zone)
            if self.with_duration:
                nominal = timedelta(days=self.length.days)
                ends = rfc_instant(wall + nominal, zone) + (self.length - nominal)
            else:
                ends = begins + exact
            result.append((begins, ends))
        return result


def stamp(wall: datetime) -> str:
    return wall.strftime("%Y%m%dT%H%M%S")


@st.composite
def timed_events(draw: st.DrawFn) -> TimedEvent:
    zone = draw(st.sampled_from(ZONES))
    day = draw(st.sampled_from(transition_dates(zone))) + timedelta(days=draw(st.integers(-8, 2)))
    # Quarter hours hit every gap and overlap, including Lord Howe's half-hour ones.
    start = datetime.combine(day, time()) + timedelta(minutes=15 * draw(st.integers(0, 95)))
    length = timedelta(minutes=15 * draw(st.integers(1, 3 * 96)))
    freq = draw(st.sampled_from([None, "DAILY", "WEEKLY"]))
    return TimedEvent(
        zone=zone,
        floating=draw(st.booleans()),
        start=start,
        length=length,
        with_duration=draw(st.booleans()),
        freq=freq,
        count=draw(st.integers(1, 8)),
    )


def check_shape(intervals: list[Interval]) -> None:
    for interval in intervals:
        assert interval.start.tzinfo is UTC
        assert interval.end.tzinfo is UTC
        assert interval.end >= interval.start
    assert intervals == sorted(intervals, key=lambda interval: (interval.start, interval.end))


@MODEST
@given(event=timed_events(), shift=st.integers(-3000, 15000), width=st.integers(0, 20000))
def test_timed_events_across_dst_match_rfc_5545(event: TimedEvent, shift: int, width: int) -> None:
    spans = event.expected()
    # A DTEND that lands before DTSTART (only via a gap) is invalid data, not this property.
    assume(all(end > start for start, end in spans))
    expected = [Interval(start, end) for start, end in spans]
    rules = BusyRules(timezone=event.zone)
    whole = (expected[0].start - timedelta(days=1), expected[-1].end + timedelta(days=1))
    result = busy_intervals(event.text(), *whole, rules)
    check_shape(result)
    assert result == expected

    window_start = expected[0].start + timedelta(minutes=shift)
    window_end = window_start + timedelta(minutes=width)
    result = busy_intervals(event.text(), window_start, window_end, rules)
    check_shape(result)
    assert result == [i for i in expected if i.start < window_end and i.end > window_start]


@MODEST
@given(
    zone=st.sampled_from(ZONES),
    data=st.data(),
    days=st.integers(1, 3),
    freq=st.sampled_from([None, "DAILY", "WEEKLY"]),
    count=st.integers(1, 5),
)
def test_all_day_events_span_local_midnights_across_dst(
    zone: str, data: st.DataObject, days: int, freq: str | None, count: int
) -> None:
    first = data.draw(st.sampled_from(transition_dates(zone))) + timedelta(
        days=data.draw(st.integers(-8, 1))
    )
    rule = f"RRULE:FREQ={freq};COUNT={count}\r\n" if freq else ""
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync property tests//EN\r\n"
        "BEGIN:VEVENT\r\nUID:all-day@example.org\r\nDTSTAMP:20240101T000000Z\r\n"
        f"DTSTART;VALUE=DATE:{first:%Y%m%d}\r\n"
        f"DTEND;VALUE=DATE:{first + timedelta(days=days):%Y%m%d}\r\n"
        f"{rule}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    tz = ZoneInfo(zone)

    def midnight(day: date) -> datetime:
        return rfc_instant(datetime.combine(day, time()), tz)

    step = timedelta(days=7 if freq == "WEEKLY" else 1)
    starts = [first + index * step for index in range(count if freq else 1)]
    expected = [Interval(midnight(day), midnight(day + timedelta(days=days))) for day in starts]
    window = (expected[0].start - timedelta(days=2), expected[-1].end + timedelta(days=2))
    result = busy_intervals(text, *window, BusyRules(timezone=zone))
    check_shape(result)
    assert result == expected


# -- hostile input: only InvalidCalendarData may escape -------------------------------------------

SPRING = (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))
RULES = BusyRules(timezone="Europe/Berlin", owner_addresses=frozenset({"owner@example.org"}))
ICAL_ALPHABET = st.sampled_from(
    [
        *"0123456789TZPDHMSW:;=,-+/\\\"' ",
        *["VALUE=DATE", "TZID", "FREQ", "COUNT", "UNTIL", "BYDAY", "\r\n", "\n", "\r\n "],
        *["BEGIN:VEVENT", "END:VEVENT", "BEGIN:VCALENDAR", "END:VCALENDAR"],
    ]
)
FIXTURE_TEXTS = [path.read_text(encoding="utf-8") for path in sorted(FIXTURES.glob("*.ics"))]


def only_invalid_calendar_data_escapes(text: str) -> None:
    assert item_uid(text) is None or isinstance(item_uid(text), str)
    try:
        result = busy_intervals(text, *SPRING, RULES, href="/fuzz.ics")
    except InvalidCalendarData as exc:
        assert exc.href == "/fuzz.ics"
    else:
        check_shape(result)


@MODEST
@given(text=st.one_of(st.text(max_size=400), st.lists(ICAL_ALPHABET, max_size=80).map("".join)))
def test_arbitrary_text_raises_only_invalid_calendar_data(text: str) -> None:
    only_invalid_calendar_data_escapes(text)


@st.composite
def mutated_fixtures(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(FIXTURE_TEXTS)).splitlines()
    value = st.lists(ICAL_ALPHABET, max_size=12).map("".join)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["value", "drop", "repeat", "swap"]))
        if action == "value" and ":" in lines[index]:
            lines[index] = lines[index].split(":", 1)[0] + ":" + draw(value)
        elif action == "drop":
            del lines[index]
        elif action == "repeat":
            lines.insert(index, lines[index])
        else:
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        if not lines:
            break
    return "\r\n".join(lines) + "\r\n"


@MODEST
@given(text=mutated_fixtures())
def test_damaged_fixtures_raise_only_invalid_calendar_data(text: str) -> None:
    only_invalid_calendar_data_escapes(text)


@MODEST
@given(uid=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=120))
def test_item_uid_reads_what_icalendar_writes(uid: str) -> None:
    # icalendar escapes , ; \\ and newlines, and folds lines longer than 75 octets.
    calendar = icalendar.Calendar()
    event = icalendar.Event()
    event.add("UID", uid)
    event.add("DTSTART", datetime(2024, 3, 1, 9, tzinfo=UTC))
    calendar.add_component(event)
    assert item_uid(calendar.to_ical().decode()) == uid
