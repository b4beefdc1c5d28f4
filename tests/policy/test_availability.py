"""Worked examples for ``free_slots``: DST nights, a skipped date, far-away customers,
overrides, buffers, the cap, and the rules' error contract.

Expected slots are written as local wall-clock readings with their zone abbreviation, the way
a person would check them against a wall calendar.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import calsync.policy
from calsync.policy.availability import free_slots, working_periods
from calsync.policy.types import (
    AvailabilityRules,
    RulesError,
    Slot,
    Span,
    TimeRange,
    rules_problems,
    validate_rules,
)

MINUTES = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def every_day(*ranges: TimeRange) -> dict[int, tuple[TimeRange, ...]]:
    return {weekday: ranges for weekday in range(7)}


def hours(start: str, end: str) -> TimeRange:
    """``hours("09:00", "24:00")``: 24:00 is midnight at the end of the day."""
    return TimeRange(
        time.fromisoformat(start), time(0) if end == "24:00" else time.fromisoformat(end)
    )


def rules_for(zone: str, **overrides: object) -> AvailabilityRules:
    """Hourly one-hour slots every day 09:00–17:00 unless told otherwise."""
    values: dict[str, object] = {
        "timezone": zone,
        "duration": HOUR,
        "slot_step": HOUR,
        "weekly_hours": every_day(hours("09:00", "17:00")),
    }
    values.update(overrides)
    return AvailabilityRules(**values)  # type: ignore[arg-type]


def slots_on(
    rules: AvailabilityRules,
    day: date,
    *,
    days: int = 1,
    busy: Sequence[Span] = (),
    booked: Sequence[Span] = (),
    ignore: frozenset[str] = frozenset(),
) -> list[Slot]:
    """Slots from local midnight of ``day`` for ``days`` local days, asked well in advance."""
    zone = ZoneInfo(rules.timezone)
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=days), time(0), tzinfo=zone)
    return free_slots(
        rules, busy=busy, booked=booked, now=start - 7 * DAY, start=start, end=end, ignore=ignore
    )


def walls(slots: Sequence[Slot], zone: str) -> list[str]:
    """Slot starts as local wall clock plus zone abbreviation: ``01:00 EDT``."""
    return [s.start.astimezone(ZoneInfo(zone)).strftime("%H:%M %Z") for s in slots]


def at(zone: str, text: str) -> datetime:
    """A local wall time (first occurrence) as an aware datetime in ``zone``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


# -- DST nights: a working range 00:00–06:00 across the change -------------------------------

NIGHT = every_day(hours("00:00", "06:00"))


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        pytest.param(
            "America/New_York",
            date(2026, 3, 8),
            ["00:00 EST", "01:00 EST", "03:00 EDT", "04:00 EDT", "05:00 EDT"],
            id="new-york-spring-forward",
        ),
        pytest.param(
            "America/New_York",
            date(2026, 11, 1),
            [
                "00:00 EDT",
                "01:00 EDT",
                "01:00 EST",
                "02:00 EST",
                "03:00 EST",
                "04:00 EST",
                "05:00 EST",
            ],
            id="new-york-fall-back",
        ),
        pytest.param(
            "Europe/London",
            date(2026, 3, 29),
            ["00:00 GMT", "02:00 BST", "03:00 BST", "04:00 BST", "05:00 BST"],
            id="london-spring-forward",
        ),
        pytest.param(
            "Europe/London",
            date(2026, 10, 25),
            [
                "00:00 BST",
                "01:00 BST",
                "01:00 GMT",
                "02:00 GMT",
                "03:00 GMT",
                "04:00 GMT",
                "05:00 GMT",
            ],
            id="london-fall-back",
        ),
        pytest.param(
            "Australia/Sydney",
            date(2026, 4, 5),
            [
                "00:00 AEDT",
                "01:00 AEDT",
                "02:00 AEDT",
                "02:00 AEST",
                "03:00 AEST",
                "04:00 AEST",
                "05:00 AEST",
            ],
            id="sydney-fall-back",
        ),
        pytest.param(
            "Australia/Sydney",
            date(2026, 10, 4),
            ["00:00 AEST", "01:00 AEST", "03:00 AEDT", "04:00 AEDT", "05:00 AEDT"],
            id="sydney-spring-forward",
        ),
    ],
)
def test_night_range_across_a_dst_change_follows_absolute_time(
    zone: str, day: date, expected: list[str]
) -> None:
    # 00:00–06:00 lasts 5 hours on a spring-forward night and 7 on a fall-back one.
    assert walls(slots_on(rules_for(zone, weekly_hours=NIGHT), day), zone) == expected


def test_no_slot_starts_inside_the_spring_forward_gap() -> None:
    rules = rules_for(
        "America/New_York", weekly_hours=NIGHT, duration=30 * MINUTES, slot_step=15 * MINUTES
    )
    starts = [
        s.start.astimezone(ZoneInfo("America/New_York")) for s in slots_on(rules, date(2026, 3, 8))
    ]
    assert len(starts) == 5 * 4 - 1  # 5 real hours on a 15-minute grid, the last one too late
    assert not [t for t in starts if t.hour == 2]


def test_range_starting_in_the_gap_starts_the_gap_later() -> None:
    # 02:30 does not exist on 2026-03-08; RFC 5545 reads it with the offset before the gap.
    rules = rules_for(
        "America/New_York",
        weekly_hours=every_day(hours("02:30", "05:00")),
        duration=30 * MINUTES,
        slot_step=30 * MINUTES,
    )
    assert walls(slots_on(rules, date(2026, 3, 8)), "America/New_York") == [
        "03:30 EDT",
        "04:00 EDT",
        "04:30 EDT",
    ]


def test_range_wholly_in_the_gap_shifts_or_vanishes() -> None:
    # Both ends move by the gap's hour, as a daily event at those times would.
    shifted = rules_for(
        "America/New_York", weekly_hours=every_day(hours("02:00", "02:30")), duration=30 * MINUTES
    )
    assert walls(slots_on(shifted, date(2026, 3, 8)), "America/New_York") == ["03:00 EDT"]
    # 02:30 is read as 03:30 EDT, later than 03:00: nothing is left of 02:30–03:00.
    vanished = rules_for(
        "America/New_York", weekly_hours=every_day(hours("02:30", "03:00")), duration=15 * MINUTES
    )
    assert slots_on(vanished, date(2026, 3, 8)) == []


def test_range_ending_in_the_overlap_ends_at_its_first_occurrence() -> None:
    rules = rules_for(
        "America/New_York",
        weekly_hours=every_day(hours("00:00", "01:30")),
        duration=30 * MINUTES,
        slot_step=30 * MINUTES,
    )
    assert walls(slots_on(rules, date(2026, 11, 1)), "America/New_York") == [
        "00:00 EDT",
        "00:30 EDT",
        "01:00 EDT",
    ]


def test_working_day_keeps_its_wall_clock_across_the_change() -> None:
    # Built day by day in the zone: 09:00 stays 09:00 while the UTC offset moves.
    rules = rules_for(
        "America/New_York",
        weekly_hours={4: (hours("09:00", "10:00"),), 0: (hours("09:00", "10:00"),)},
    )
    slots = slots_on(rules, date(2026, 3, 6), days=4)
    assert walls(slots, "America/New_York") == ["09:00 EST", "09:00 EDT"]
    assert [s.start for s in slots] == [
        datetime(2026, 3, 6, 14, tzinfo=UTC),
        datetime(2026, 3, 9, 13, tzinfo=UTC),
    ]


# -- a date that does not exist ----------------------------------------------------------------


def test_apia_skipped_date_has_no_slots() -> None:
    # Samoa moved across the date line: 2011-12-29 23:59 (-10) was followed by 2011-12-31 00:00.
    rules = rules_for("Pacific/Apia")
    slots = slots_on(rules, date(2011, 12, 28), days=5)
    zone = ZoneInfo("Pacific/Apia")
    per_day = {d: 0 for d in (date(2011, 12, 28) + n * DAY for n in range(5))}
    for slot in slots:
        per_day[slot.start.astimezone(zone).date()] += 1
    assert per_day == {
        date(2011, 12, 28): 8,
        date(2011, 12, 29): 8,
        date(2011, 12, 30): 0,
        date(2011, 12, 31): 8,
        date(2012, 1, 1): 8,
    }
    assert walls(slots, "Pacific/Apia")[16] == "09:00 +14"


def test_apia_skipped_date_has_no_working_period() -> None:
    rules = rules_for("Pacific/Apia")
    zone = ZoneInfo("Pacific/Apia")
    start = datetime(2011, 12, 29, tzinfo=zone)
    days = [p.day for p in working_periods(rules, start, start + 3 * DAY)]
    assert date(2011, 12, 30) not in days


# -- customers far away ----------------------------------------------------------------------


def test_customer_thirteen_plus_hours_away_sees_the_same_instants() -> None:
    # Kiritimati (+14) is 22 hours ahead of Los Angeles in winter: the customer's Tuesday
    # morning is the owner's Monday morning. The zone of the question changes nothing.
    rules = rules_for("America/Los_Angeles")
    owner, customer = ZoneInfo("America/Los_Angeles"), ZoneInfo("Pacific/Kiritimati")
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    start, end = datetime(2026, 1, 5, tzinfo=owner), datetime(2026, 1, 7, tzinfo=owner)

    def ask(zone: ZoneInfo) -> list[Slot]:
        return free_slots(
            rules,
            busy=[],
            booked=[],
            now=now.astimezone(zone),
            start=start.astimezone(zone),
            end=end.astimezone(zone),
        )

    assert ask(customer) == ask(owner) == ask(ZoneInfo("UTC"))
    first = ask(customer)[0].start
    assert first.astimezone(owner).strftime("%a %H:%M") == "Mon 09:00"
    assert first.astimezone(customer).strftime("%a %H:%M") == "Tue 07:00"


# -- overrides -------------------------------------------------------------------------------


def test_override_closes_a_date() -> None:
    rules = rules_for("Europe/Berlin", date_overrides={date(2026, 12, 24): ()})
    slots = slots_on(rules, date(2026, 12, 23), days=3)
    zone = ZoneInfo("Europe/Berlin")
    assert {s.start.astimezone(zone).date() for s in slots} == {
        date(2026, 12, 23),
        date(2026, 12, 25),
    }


def test_override_replaces_the_hours_of_a_date() -> None:
    rules = rules_for(
        "Europe/Berlin",
        date_overrides={date(2026, 12, 24): (hours("10:00", "12:00"), hours("14:00", "15:00"))},
    )
    assert walls(slots_on(rules, date(2026, 12, 24)), "Europe/Berlin") == [
        "10:00 CET",
        "11:00 CET",
        "14:00 CET",
    ]


def test_override_opens_a_closed_weekday() -> None:
    rules = rules_for(
        "Europe/Berlin",
        weekly_hours={0: (hours("09:00", "17:00"),)},
        date_overrides={date(2026, 6, 7): (hours("10:00", "12:00"),)},  # a Sunday
    )
    assert walls(slots_on(rules, date(2026, 6, 7)), "Europe/Berlin") == ["10:00 CEST", "11:00 CEST"]


# -- ranges ------------------------------------------------------------------------------------


def test_range_to_midnight_and_the_whole_day() -> None:
    evening = rules_for("Europe/Berlin", weekly_hours=every_day(hours("22:00", "24:00")))
    assert walls(slots_on(evening, date(2026, 6, 8)), "Europe/Berlin") == [
        "22:00 CEST",
        "23:00 CEST",
    ]
    whole = rules_for("Europe/Berlin", weekly_hours=every_day(hours("00:00", "24:00")))
    assert len(slots_on(whole, date(2026, 6, 8))) == 24
    assert len(slots_on(whole, date(2026, 3, 29))) == 23  # Berlin springs forward


def test_touching_ranges_are_one_range() -> None:
    rules = rules_for(
        "Europe/Berlin",
        weekly_hours=every_day(hours("09:00", "12:00"), hours("12:00", "13:00")),
        duration=90 * MINUTES,
        slot_step=30 * MINUTES,
    )
    assert walls(slots_on(rules, date(2026, 6, 8)), "Europe/Berlin") == [
        "09:00 CEST",
        "09:30 CEST",
        "10:00 CEST",
        "10:30 CEST",
        "11:00 CEST",
        "11:30 CEST",
    ]


def test_grid_steps_from_the_range_start_not_the_window() -> None:
    rules = rules_for("UTC", weekly_hours=every_day(hours("09:10", "12:00")))
    now = datetime(2026, 6, 8, 9, 30, tzinfo=UTC)
    slots = free_slots(rules, busy=[], booked=[], now=now, start=now, end=now + DAY)
    assert walls(slots, "UTC") == ["10:10 UTC"]


# -- taken time, buffers, notice, horizon, cap ---------------------------------------------------


def test_buffers_are_room_around_the_new_session() -> None:
    rules = rules_for(
        "UTC",
        weekly_hours=every_day(hours("09:00", "13:00")),
        duration=30 * MINUTES,
        slot_step=15 * MINUTES,
        buffer_before=15 * MINUTES,
        buffer_after=15 * MINUTES,
    )
    meeting = Span(datetime(2026, 6, 8, 10, tzinfo=UTC), datetime(2026, 6, 8, 11, tzinfo=UTC))
    slots = slots_on(rules, date(2026, 6, 8), busy=[meeting])
    # Ends by 09:45 (15 min after-buffer before 10:00); starts from 11:15 (15 min before-buffer).
    assert walls(slots, "UTC") == [
        "09:00 UTC",
        "09:15 UTC",
        "11:15 UTC",
        "11:30 UTC",
        "11:45 UTC",
        "12:00 UTC",
        "12:15 UTC",
        "12:30 UTC",
    ]


def test_an_empty_span_blocks_nothing() -> None:
    rules = rules_for("UTC", buffer_before=30 * MINUTES, buffer_after=30 * MINUTES)
    reminder = Span(datetime(2026, 6, 8, 10, tzinfo=UTC), datetime(2026, 6, 8, 10, tzinfo=UTC))
    assert slots_on(rules, date(2026, 6, 8), busy=[reminder]) == slots_on(rules, date(2026, 6, 8))


def test_zoned_busy_span_is_read_as_instants_across_spring_forward() -> None:
    # 03:05 CEST minus a 10-minute buffer is 02:55 on the wall, which does not exist; done in
    # wall-clock arithmetic it would land an hour late. Spans are instants.
    rules = rules_for(
        "UTC",
        weekly_hours=every_day(hours("00:00", "03:00")),
        duration=30 * MINUTES,
        slot_step=30 * MINUTES,
        buffer_after=10 * MINUTES,
    )
    berlin = ZoneInfo("Europe/Berlin")
    busy = Span(datetime(2026, 3, 29, 3, 5, tzinfo=berlin), datetime(2026, 3, 29, 4, tzinfo=berlin))
    assert busy.start == datetime(2026, 3, 29, 1, 5, tzinfo=UTC)
    slots = slots_on(rules, date(2026, 3, 29), busy=[busy])
    assert walls(slots, "UTC") == ["00:00 UTC", "02:00 UTC", "02:30 UTC"]


def test_span_across_fall_back_is_not_reversed() -> None:
    # 02:50 CEST then 02:10 CET: twenty minutes, although the wall clock went backwards.
    berlin = ZoneInfo("Europe/Berlin")
    span = Span(
        datetime(2026, 10, 25, 2, 50, tzinfo=berlin),
        datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=berlin),
    )
    assert span.end - span.start == 20 * MINUTES


def test_rescheduled_session_does_not_block_itself() -> None:
    rules = rules_for("UTC", daily_cap=1)
    session = Span(
        datetime(2026, 6, 8, 10, tzinfo=UTC), datetime(2026, 6, 8, 11, tzinfo=UTC), "uid-1"
    )
    assert slots_on(rules, date(2026, 6, 8), booked=[session]) == []  # the cap is reached
    moving = slots_on(rules, date(2026, 6, 8), booked=[session], ignore=frozenset({"uid-1"}))
    assert "10:00 UTC" in walls(moving, "UTC")
    assert len(moving) == 8


def test_daily_cap_counts_sessions_on_the_local_date() -> None:
    # 23:30 UTC on Monday is already Tuesday in Berlin: it fills Tuesday, not Monday.
    rules = rules_for("Europe/Berlin", daily_cap=1)
    late = Span(
        datetime(2026, 6, 8, 23, 30, tzinfo=UTC), datetime(2026, 6, 9, 0, 30, tzinfo=UTC), "x"
    )
    zone = ZoneInfo("Europe/Berlin")
    days = {
        s.start.astimezone(zone).date()
        for s in slots_on(rules, date(2026, 6, 8), days=3, booked=[late])
    }
    assert days == {date(2026, 6, 8), date(2026, 6, 10)}


def test_busy_time_does_not_count_towards_the_cap() -> None:
    rules = rules_for("UTC", daily_cap=1)
    busy = Span(datetime(2026, 6, 8, 9, tzinfo=UTC), datetime(2026, 6, 8, 10, tzinfo=UTC))
    assert len(slots_on(rules, date(2026, 6, 8), busy=[busy])) == 7


def test_notice_and_horizon_bound_the_slots() -> None:
    rules = rules_for("UTC", minimum_notice=2 * HOUR, horizon=DAY)
    now = datetime(2026, 6, 8, 8, 30, tzinfo=UTC)
    slots = free_slots(rules, busy=[], booked=[], now=now, start=now - DAY, end=now + 7 * DAY)
    # From 10:30 the next hourly slot is 11:00; by 08:30 tomorrow nothing new opens.
    assert [s.start for s in slots] == [datetime(2026, 6, 8, h, tzinfo=UTC) for h in range(11, 17)]


def test_empty_or_reversed_window_gives_nothing() -> None:
    rules = rules_for("UTC")
    now = datetime(2026, 6, 8, tzinfo=UTC)
    assert free_slots(rules, busy=[], booked=[], now=now, start=now + DAY, end=now + DAY) == []
    assert free_slots(rules, busy=[], booked=[], now=now, start=now + DAY, end=now) == []


# -- the error contract ------------------------------------------------------------------------


def test_naive_instants_are_refused() -> None:
    rules = rules_for("UTC")
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        free_slots(
            rules,
            busy=[],
            booked=[],
            now=datetime(2026, 6, 8),
            start=datetime(2026, 6, 8, tzinfo=UTC),
            end=datetime(2026, 6, 9, tzinfo=UTC),
        )
    with pytest.raises(ValueError, match="aware"):
        Span(datetime(2026, 6, 8), datetime(2026, 6, 8, 1))


def test_span_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        Span(datetime(2026, 6, 8, 1, tzinfo=UTC), datetime(2026, 6, 8, tzinfo=UTC))


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"timezone": "Europe/Berln"}, "timezone", "did you mean Europe/Berlin"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", "unknown time zone"),
        ({"timezone": "localtime"}, "timezone", "not 'localtime'"),
        ({"timezone": ""}, "timezone", "IANA"),
        ({"duration": timedelta(0)}, "duration", "longer than zero"),
        ({"duration": 30}, "duration", "timedelta"),
        ({"slot_step": -15 * MINUTES}, "slot_step", "longer than zero"),
        ({"buffer_before": -MINUTES}, "buffer_before", "negative"),
        ({"buffer_after": -MINUTES}, "buffer_after", "negative"),
        ({"minimum_notice": -HOUR}, "minimum_notice", "negative"),
        ({"horizon": timedelta(0)}, "horizon", "longer than zero"),
        ({"minimum_notice": 2 * DAY, "horizon": DAY}, "horizon", "minimum notice"),
        ({"daily_cap": 0}, "daily_cap", "at least 1"),
        ({"daily_cap": True}, "daily_cap", "whole number"),
        ({"weekly_hours": {7: (hours("09:00", "17:00"),)}}, "weekly_hours", "0 (Monday) to 6"),
        (
            {"weekly_hours": {0: (hours("09:00", "12:00"), hours("11:00", "13:00"))}},
            "weekly_hours",
            "Monday: 09:00–12:00 and 11:00–13:00 overlap",
        ),
        (
            {"weekly_hours": {2: (hours("00:00", "24:00"), hours("10:00", "11:00"))}},
            "weekly_hours",
            "Wednesday: 00:00–24:00 and 10:00–11:00 overlap",
        ),
        ({"weekly_hours": {0: hours("09:00", "17:00")}}, "weekly_hours", "tuple of TimeRange"),
        ({"weekly_hours": {0: ("09:00-17:00",)}}, "weekly_hours", "every entry"),
        (
            {"date_overrides": {datetime(2026, 12, 24, 9): ()}},
            "date_overrides",
            "datetime.date values",
        ),
        (
            {
                "date_overrides": {
                    date(2026, 12, 24): (hours("09:00", "12:00"), hours("09:30", "10:00"))
                }
            },
            "date_overrides",
            "2026-12-24: 09:00–12:00 and 09:30–10:00 overlap",
        ),
    ],
)
def test_validate_rules_names_the_field_and_the_fix(
    changes: dict[str, object], field: str, fragment: str
) -> None:
    rules = rules_for("Europe/Berlin", **changes)
    with pytest.raises(RulesError) as caught:
        validate_rules(rules)
    assert caught.value.field == field
    assert fragment in caught.value.message


def test_overlap_error_carries_the_day_and_ranges() -> None:
    ranges = (hours("09:00", "12:00"), hours("11:00", "13:00"))
    with pytest.raises(RulesError) as caught:
        validate_rules(rules_for("UTC", weekly_hours={4: ranges}))
    assert caught.value.key == 4
    assert caught.value.value == ranges


def test_rules_problems_lists_every_problem() -> None:
    rules = rules_for("Nowhere/Special", duration=timedelta(0), daily_cap=0)
    assert [p.field for p in rules_problems(rules)] == ["timezone", "duration", "daily_cap"]


def test_valid_rules_have_no_problems() -> None:
    rules = rules_for(
        "Europe/Berlin",
        weekly_hours=every_day(hours("09:00", "12:00"), hours("12:00", "24:00")),
        date_overrides={date(2026, 12, 24): ()},
        daily_cap=3,
    )
    assert rules_problems(rules) == []


def test_free_slots_refuses_invalid_rules() -> None:
    now = datetime(2026, 6, 8, tzinfo=UTC)
    with pytest.raises(RulesError, match="slot_step"):
        free_slots(
            rules_for("UTC", slot_step=timedelta(0)),
            busy=[],
            booked=[],
            now=now,
            start=now,
            end=now + DAY,
        )


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        (time(17), time(9), "cannot cross midnight"),
        (time(9), time(9), "ends before it starts"),
        (time(9, tzinfo=UTC), time(17), "naive wall times"),
    ],
)
def test_time_range_refuses_what_it_cannot_mean(start: time, end: time, fragment: str) -> None:
    with pytest.raises(RulesError, match=fragment) as caught:
        TimeRange(start, end)
    assert caught.value.field == "time_range"


# -- the boundary ------------------------------------------------------------------------------


# Standard-library modules that read the clock or reach files, processes or the network.
IO_MODULES = {"time", "os", "socket", "sqlite3", "subprocess", "urllib", "http", "asyncio"}


def test_policy_imports_only_the_standard_library_and_itself() -> None:
    # DESIGN.md §5: policy/ is the functional core; it imports nothing else from calsync and
    # no third-party package, so it cannot reach a database, the network or the clock.
    package = Path(calsync.policy.__file__).parent
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                allowed = top in sys.stdlib_module_names or name.startswith("calsync.policy")
                assert allowed and top not in IO_MODULES, f"{module.name} imports {name}"


def test_absurdly_long_durations_are_refused_not_overflowed() -> None:
    from calsync.policy.types import validate_rules

    rules = rules_for("Europe/Berlin", horizon=timedelta(days=999_999_999))
    with pytest.raises(RulesError) as caught:
        validate_rules(rules)
    assert caught.value.field == "horizon"
