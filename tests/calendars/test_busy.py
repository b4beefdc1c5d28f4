"""Busy intervals of single calendar objects, one fixture per real situation.

Each fixture in ``fixtures/ics`` is named for what it is; the tests assert exact UTC instants.
Where the order of components could matter (VTIMEZONE after the VEVENT that uses it,
override before its master) the test runs with the components in both orders.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from calsync.calendars.base import Interval
from calsync.calendars.errors import InvalidCalendarData
from calsync.calendars.ical.busy import (
    AllDayMode,
    BusyRules,
    busy_intervals,
    item_uid,
    parse_calendar,
)
from calsync.calendars.ical.timezones import resolve_zone

FIXTURES = Path(__file__).parent / "fixtures" / "ics"
OWNER = "owner@example.org"
BERLIN = BusyRules(timezone="Europe/Berlin", owner_addresses=frozenset({OWNER}))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


MARCH = (utc(2024, 3, 1), utc(2024, 4, 1))
SPRING = (utc(2024, 3, 1), utc(2024, 5, 1))


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def reversed_components(text: str) -> str:
    """The same object with the VCALENDAR's components in reverse order."""
    lines = text.splitlines()
    header: list[str] = []
    blocks: list[list[str]] = []
    depth = 0
    for line in lines[1:-1]:
        if depth == 0 and not line.upper().startswith("BEGIN:"):
            header.append(line)
            continue
        if depth == 0:
            blocks.append([])
        blocks[-1].append(line)
        if line.upper().startswith("BEGIN:"):
            depth += 1
        elif line.upper().startswith("END:"):
            depth -= 1
    body = [line for block in reversed(blocks) for line in block]
    return "\r\n".join([lines[0], *header, *body, lines[-1]]) + "\r\n"


def busy(
    text: str,
    rules: BusyRules = BERLIN,
    window: tuple[datetime, datetime] = MARCH,
) -> list[Interval]:
    return busy_intervals(text, *window, rules, href="/calendars/owner/work/item.ics")


def spans(*pairs: tuple[datetime, datetime]) -> list[Interval]:
    return [Interval(start, end) for start, end in pairs]


both_orders = pytest.mark.parametrize(
    "order", [lambda text: text, reversed_components], ids=["as-written", "reversed"]
)


# -- recurrence, overrides, status ------------------------------------------------------------


@both_orders
def test_weekly_meeting_skips_exdate_and_follows_moved_override(order) -> None:
    text = order(fixture("weekly_meeting_exdate_moved_override.ics"))
    # 11 March is an EXDATE; 18 March moved to Tuesday 19 March 15:00; 31 March is the
    # switch to CEST, so from April the same 10:00 is 08:00 UTC.
    assert busy(text, window=SPRING) == spans(
        (utc(2024, 3, 4, 9), utc(2024, 3, 4, 9, 30)),
        (utc(2024, 3, 19, 14), utc(2024, 3, 19, 15)),
        (utc(2024, 3, 25, 9), utc(2024, 3, 25, 9, 30)),
        (utc(2024, 4, 1, 8), utc(2024, 4, 1, 8, 30)),
        (utc(2024, 4, 8, 8), utc(2024, 4, 8, 8, 30)),
    )


@both_orders
def test_override_moves_occurrences_out_of_and_into_the_window(order) -> None:
    text = order(fixture("override_moved_across_window_edge.ics"))
    # Window 1-20 March. 12 March moved to 16 April: out. 26 March (after the window)
    # moved to 15 March: in. Only the moved times count.
    assert busy(text, window=(utc(2024, 3, 1), utc(2024, 3, 20))) == spans(
        (utc(2024, 3, 5, 14), utc(2024, 3, 5, 15)),
        (utc(2024, 3, 15, 8), utc(2024, 3, 15, 9)),
        (utc(2024, 3, 19, 14), utc(2024, 3, 19, 15)),
    )


def test_override_moved_out_of_the_window_still_blocks_where_it_went() -> None:
    text = fixture("override_moved_across_window_edge.ics")
    assert busy(text, window=(utc(2024, 4, 1), utc(2024, 5, 1))) == spans(
        (utc(2024, 4, 16, 14), utc(2024, 4, 16, 15)),
    )


@both_orders
def test_cancelled_occurrence_is_free(order) -> None:
    text = order(fixture("cancelled_occurrence.ics"))
    assert busy(text) == spans(
        (utc(2024, 3, 4, 8), utc(2024, 3, 4, 8, 15)),
        (utc(2024, 3, 6, 8), utc(2024, 3, 6, 8, 15)),
    )


def test_cancelled_event_is_free() -> None:
    assert busy(fixture("cancelled_event.ics")) == []


def test_transparent_event_is_free() -> None:
    assert busy(fixture("transparent_event.ics")) == []


def test_transparent_override_frees_only_its_occurrence() -> None:
    assert busy(fixture("transparent_override.ics")) == spans(
        (utc(2024, 3, 4, 17), utc(2024, 3, 4, 18)),
    )


# -- the owner's answer ------------------------------------------------------------------------


def test_declined_by_owner_is_free() -> None:
    # The attendee is written "MAILTO:Owner@Example.org": scheme and case do not matter.
    assert busy(fixture("declined_by_owner.ics")) == []


def test_declined_by_someone_else_blocks_when_owner_addresses_unknown() -> None:
    rules = BusyRules(timezone="Europe/Berlin")
    assert busy(fixture("declined_by_owner.ics"), rules) == spans(
        (utc(2024, 3, 6, 15), utc(2024, 3, 6, 16)),
    )


def test_accepted_by_owner_blocks() -> None:
    assert busy(fixture("accepted_by_owner.ics")) == spans(
        (utc(2024, 3, 6, 15), utc(2024, 3, 6, 16)),
    )


def test_owner_declining_one_occurrence_frees_only_that_one() -> None:
    assert busy(fixture("declined_one_occurrence.ics")) == spans(
        (utc(2024, 3, 4, 13), utc(2024, 3, 4, 13, 30)),
    )


def test_owner_as_organizer_has_not_declined() -> None:
    assert busy(fixture("organized_by_owner.ics")) == spans(
        (utc(2024, 3, 6, 8), utc(2024, 3, 6, 9)),
    )


def test_owner_addresses_are_normalised() -> None:
    rules = BusyRules(owner_addresses=frozenset({" MAILTO:Owner@EXAMPLE.org "}))
    assert rules.owner_addresses == frozenset({OWNER})
    assert busy(fixture("declined_by_owner.ics"), rules) == []


# -- all-day events -----------------------------------------------------------------------------

OFFSITE = (utc(2024, 3, 6, 23), utc(2024, 3, 8, 23))  # 7-8 March, Berlin midnights
BIRTHDAY = (utc(2024, 3, 6, 23), utc(2024, 3, 7, 23))  # 7 March (no DTEND: one day)


@pytest.mark.parametrize(
    ("name", "mode", "expected"),
    [
        ("all_day_opaque.ics", AllDayMode.FOLLOW_TRANSP, [OFFSITE]),
        ("all_day_opaque.ics", AllDayMode.BUSY, [OFFSITE]),
        ("all_day_opaque.ics", AllDayMode.FREE, []),
        ("all_day_transparent.ics", AllDayMode.FOLLOW_TRANSP, []),
        ("all_day_transparent.ics", AllDayMode.BUSY, [BIRTHDAY]),
        ("all_day_transparent.ics", AllDayMode.FREE, []),
    ],
)
def test_all_day_events_follow_the_mode(
    name: str, mode: AllDayMode, expected: list[tuple[datetime, datetime]]
) -> None:
    rules = BusyRules(timezone="Europe/Berlin", all_day=mode)
    assert busy(fixture(name), rules) == spans(*expected)


def test_all_day_dates_span_midnights_of_the_calendar_zone() -> None:
    rules = BusyRules(timezone="America/New_York")
    assert busy(fixture("all_day_opaque.ics"), rules) == spans(
        (utc(2024, 3, 7, 5), utc(2024, 3, 9, 5)),
    )


def test_all_day_mode_accepts_its_string_value() -> None:
    assert BusyRules(all_day="free").all_day is AllDayMode.FREE  # type: ignore[arg-type]


# -- times and zones ----------------------------------------------------------------------------


def test_floating_time_is_read_in_the_calendar_zone() -> None:
    text = fixture("floating_time.ics")
    assert busy(text) == spans((utc(2024, 3, 6, 13), utc(2024, 3, 6, 14)))
    new_york = BusyRules(timezone="America/New_York")
    assert busy(text, new_york) == spans((utc(2024, 3, 6, 19), utc(2024, 3, 6, 20)))


def test_floating_weekly_rule_keeps_wall_time_across_dst_and_until_is_inclusive() -> None:
    # UNTIL is floating too: 8 April 19:00 Berlin is the last occurrence.
    assert busy(fixture("floating_recurring_until_across_dst.ics"), window=SPRING) == spans(
        (utc(2024, 3, 4, 18), utc(2024, 3, 4, 19)),
        (utc(2024, 3, 11, 18), utc(2024, 3, 11, 19)),
        (utc(2024, 3, 18, 18), utc(2024, 3, 18, 19)),
        (utc(2024, 3, 25, 18), utc(2024, 3, 25, 19)),
        (utc(2024, 4, 1, 17), utc(2024, 4, 1, 18)),
        (utc(2024, 4, 8, 17), utc(2024, 4, 8, 18)),
    )


def test_floating_until_is_read_in_a_zone_behind_utc() -> None:
    # UNTIL=20240408T190000 means 19:00 in New York (23:00 UTC): if it were read as UTC,
    # the last occurrence (19:00 EDT) would be cut off.
    rules = BusyRules(timezone="America/New_York")
    result = busy(fixture("floating_recurring_until_across_dst.ics"), rules, window=SPRING)
    assert result[-1] == Interval(utc(2024, 4, 8, 23), utc(2024, 4, 9, 0))
    assert len(result) == 6


def test_floating_exdate_and_rdate_are_read_in_the_zone_of_dtstart() -> None:
    # The calendar is in Berlin, the event in New York: the untagged EXDATE removes 13 March
    # and the untagged RDATE adds 21 March 15:00 New York time, not Berlin time.
    assert busy(fixture("floating_exdate_and_rdate_next_to_zoned_dtstart.ics")) == spans(
        (utc(2024, 3, 6, 15), utc(2024, 3, 6, 16)),
        (utc(2024, 3, 21, 19), utc(2024, 3, 21, 20)),
    )


OUTLOOK_WEEKLY = spans(
    (utc(2024, 3, 26, 9), utc(2024, 3, 26, 10)),  # 10:00 CET
    (utc(2024, 4, 2, 8), utc(2024, 4, 2, 9)),  # 10:00 CEST
)


@both_orders
def test_outlook_windows_tzid_with_outlook_vtimezone(order) -> None:
    text = order(fixture("outlook_windows_tzid_with_vtimezone.ics"))
    assert busy(text, window=SPRING) == OUTLOOK_WEEKLY


def test_outlook_windows_tzid_without_vtimezone_maps_to_iana() -> None:
    text = fixture("outlook_windows_tzid_without_vtimezone.ics")
    assert busy(text, window=SPRING) == OUTLOOK_WEEKLY


@pytest.mark.parametrize(
    "name", ["outlook_vtimezone_wall_time_in_dst_gap.ics", "iana_tzid_wall_time_in_dst_gap.ics"]
)
def test_wall_time_in_dst_gap_uses_the_offset_before_the_gap(name: str) -> None:
    # 02:30 on 31 March does not exist in Berlin; RFC 5545 reads it as 02:30 CET.
    assert busy(fixture(name), window=SPRING) == spans(
        (utc(2024, 3, 31, 1, 30), utc(2024, 3, 31, 2)),
    )


def test_vtimezone_of_one_object_does_not_leak_into_another() -> None:
    # Both objects define "Customized Time Zone", differently. icalendar caches zones built
    # from a VTIMEZONE process-wide by TZID, so the second would be read with the first's.
    berlin = fixture("customized_time_zone_berlin.ics")
    new_york = fixture("customized_time_zone_new_york.ics")
    for _ in range(2):
        assert busy(berlin) == spans((utc(2024, 3, 6, 8), utc(2024, 3, 6, 9)))
        assert busy(new_york) == spans((utc(2024, 3, 6, 14), utc(2024, 3, 6, 15)))


def test_unknown_tzid_without_vtimezone_is_read_in_calendar_zone_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = fixture("unknown_tzid_without_vtimezone.ics")
    with caplog.at_level(logging.WARNING, logger="calsync.calendars.ical.busy"):
        result = busy(text)
    assert result == spans((utc(2024, 3, 6, 8), utc(2024, 3, 6, 9)))
    [record] = [r for r in caplog.records if r.name == "calsync.calendars.ical.busy"]
    assert record.levelno == logging.WARNING
    assert "/calendars/owner/work/item.ics" in record.getMessage()
    assert "Customized Time Zone 1" in record.getMessage()


def test_prefixed_tzid_from_lightning() -> None:
    assert busy(fixture("mozilla_prefixed_tzid.ics")) == spans(
        (utc(2024, 3, 6, 14), utc(2024, 3, 6, 15)),
    )


def test_outlook_display_name_tzid() -> None:
    assert busy(fixture("outlook_display_name_tzid.ics")) == spans(
        (utc(2024, 3, 6, 8), utc(2024, 3, 6, 9)),
    )


def test_x_wr_timezone_makes_a_utc_rule_follow_local_time() -> None:
    assert busy(fixture("x_wr_timezone_utc_rule.ics"), window=SPRING) == spans(
        (utc(2024, 3, 25, 9), utc(2024, 3, 25, 10)),
        (utc(2024, 4, 1, 8), utc(2024, 4, 1, 9)),
    )


# -- lengths ------------------------------------------------------------------------------------


def test_duration_instead_of_dtend() -> None:
    assert busy(fixture("duration_instead_of_dtend.ics")) == spans(
        (utc(2024, 3, 6, 15), utc(2024, 3, 6, 16, 30)),
    )


def test_datetime_event_without_end_is_an_instant_and_blocks_nothing() -> None:
    assert busy(fixture("no_end_datetime_is_instant.ics")) == []


def test_rdate_period_has_its_own_length() -> None:
    assert busy(fixture("rdate_period.ics")) == spans(
        (utc(2024, 3, 4, 10), utc(2024, 3, 4, 11)),
        (utc(2024, 3, 7, 13), utc(2024, 3, 7, 16)),
    )


def test_identical_intervals_merge_overlapping_ones_do_not() -> None:
    assert busy(fixture("duplicated_and_overlapping_events.ics")) == spans(
        (utc(2024, 3, 6, 10), utc(2024, 3, 6, 11)),
        (utc(2024, 3, 6, 10, 30), utc(2024, 3, 6, 11, 30)),
    )


def test_intervals_overlapping_the_window_are_returned_whole() -> None:
    window = (utc(2024, 3, 7, 12), utc(2024, 3, 7, 13))
    assert busy(fixture("all_day_opaque.ics"), window=window) == spans(OFFSITE)


def test_interval_ending_at_window_start_is_outside() -> None:
    window = (utc(2024, 3, 6, 16), utc(2024, 3, 6, 17))
    assert busy(fixture("accepted_by_owner.ics"), window=window) == []


def test_todo_only_object_is_valid_and_never_busy() -> None:
    assert busy(fixture("todo_only.ics")) == []


# -- unusable data ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "garbage.ics",
        "vcalendar_without_vevent.ics",
        "dtstart_not_a_date.ics",
        "secondly_rule.ics",
    ],
)
def test_unusable_objects_raise_invalid_calendar_data_with_href(name: str) -> None:
    with pytest.raises(InvalidCalendarData) as caught:
        busy(fixture(name))
    assert caught.value.href == "/calendars/owner/work/item.ics"


@pytest.mark.parametrize("text", ["", "BEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n", "\x00\x01"])
def test_parse_calendar_rejects_what_is_not_one_vcalendar(text: str) -> None:
    with pytest.raises(InvalidCalendarData) as caught:
        parse_calendar(text, href="x.ics")
    assert caught.value.href == "x.ics"


def test_naive_window_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        busy_intervals(fixture("floating_time.ics"), datetime(2024, 3, 1), MARCH[1], BERLIN)


def test_rules_reject_an_unknown_calendar_zone() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        BusyRules(timezone="Mars/Olympus")


# -- item_uid -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.ics")), ids=lambda path: path.name)
def test_item_uid_agrees_with_the_parser(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    try:
        events = parse_calendar(text).walk("VEVENT")
    except InvalidCalendarData:
        events = []
    assert item_uid(text) == (str(events[0]["UID"]) if events else None)


def test_item_uid_reads_a_folded_outlook_uid() -> None:
    uid = item_uid(fixture("outlook_windows_tzid_with_vtimezone.ics"))
    assert uid == (
        "040000008200E00074C5B7101A82E00800000000B0A7C1D2E3F4D901000000000000000"
        "010000000A1B2C3D4E5F60718293A4B5C6D7E8F90"
    )


def test_item_uid_ignores_uids_outside_the_first_vevent() -> None:
    text = (
        "BEGIN:VCALENDAR\nBEGIN:VTODO\nUID:task\nEND:VTODO\nBEGIN:VEVENT\nBEGIN:VALARM\n"
        "UID:alarm\nEND:VALARM\nUID:event\\,1\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    assert item_uid(text) == "event,1"


# -- resolve_zone -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ('"Europe/Berlin"', "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Eastern Standard Time", "America/New_York"),
        ("/mozilla.org/20050126_1/Europe/Berlin", "Europe/Berlin"),
        (
            "/freeassociation.sourceforge.net/Tzfile/America/Argentina/Buenos_Aires",
            "America/Argentina/Buenos_Aires",
        ),
        ("tzone://Microsoft/Utc", "UTC"),
        ("(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna", "Europe/Amsterdam"),
        ("(UTC-05:00) Eastern Time (US & Canada)", "America/New_York"),
        ("(UTC+05:30) Chennai, Kolkata, Mumbai, New Delhi", "Asia/Kolkata"),
        ("(GMT+10:00) Canberra, Melbourne, Sydney", "Australia/Canberra"),
        ("(UTC) Coordinated Universal Time", "UTC"),
    ],
)
def test_resolve_zone_reads_calendar_dialects(name: str, expected: str) -> None:
    zone = resolve_zone(name)
    assert zone is not None
    assert zone.key == expected


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Customized Time Zone",
        "Mars/Olympus",
        "../../etc/passwd",
        "Europe",
        "(UTC+03:00) Amsterdam",  # the city is known, the offset is not its own
        "/vendor/Berlin",  # a single word after an unknown prefix is not trusted
    ],
)
def test_resolve_zone_gives_none_for_unknown_names(name: str) -> None:
    assert resolve_zone(name) is None


# -- rules that cannot be expanded within bounds (issue 17, item 3) -----------------------------

YEAR_AHEAD = (utc(2026, 12, 1), utc(2027, 12, 1))


def ruled(rule: str, dtstart: str = "20261201T100000Z") -> str:
    """One event at 10:00–11:00 UTC repeating by ``rule``."""
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:r@x\r\n"
        f"DTSTAMP:20260101T000000Z\r\nDTSTART:{dtstart}\r\nDTEND:{dtstart[:9]}110000Z\r\n"
        f"RRULE:{rule}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


# Each of these hung or ran for seconds and megabytes per poll: INTERVAL=0 never advances
# (dateutil lists the same start forever), the others make dateutil walk day by day towards
# the year 9999 looking for a match, or produce tens of thousands of occurrences.
# The timeout is only a guard against the old hang, not a speed claim.
@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;INTERVAL=0",
        "FREQ=WEEKLY;INTERVAL=0;BYDAY=MO,TU",
        "FREQ=DAILY;INTERVAL=-3",
        "FREQ=DAILY;COUNT=0",
        # a huge COUNT: every ten minutes for a year is 52,560 occurrences in the window
        "FREQ=MINUTELY;INTERVAL=10;COUNT=100000000",
        # SECONDLY/MINUTELY with BY parts that match no day: walked to the year 9999
        "FREQ=MINUTELY;INTERVAL=7;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30;BYMINUTE=0",
        # BYSETPOS picking a position the period never has
        "FREQ=DAILY;BYSETPOS=2",
        "FREQ=DAILY;BYDAY=MO;BYMONTH=4;BYMONTHDAY=31;BYSETPOS=-1",
    ],
)
def test_a_rule_that_cannot_be_expanded_within_bounds_is_unusable(rule: str) -> None:
    with pytest.raises(InvalidCalendarData) as caught:
        busy_intervals(ruled(rule), *YEAR_AHEAD, BERLIN, href="/cal/rule.ics")
    assert caught.value.href == "/cal/rule.ics"


@pytest.mark.parametrize(
    ("rule", "count"),
    [
        ("FREQ=DAILY;COUNT=100000000", 365),
        # the counts include DTSTART, an occurrence even where the rule does not match it
        ("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9,13", 522),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", 13),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", 1),  # the next 29 February is in 2028
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO;BYSETPOS=1", 1),
    ],
)
def test_ordinary_and_sparse_rules_still_expand(rule: str, count: int) -> None:
    assert len(busy_intervals(ruled(rule), *YEAR_AHEAD, BERLIN)) == count
