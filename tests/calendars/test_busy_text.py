"""The cut-down text busy time parses (``busy_text``): it must give exactly the busy time and
UID of the whole object, for every fixture, while dropping what busy time never reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from calsync.calendars.errors import InvalidCalendarData
from calsync.calendars.ical.busy import BusyRules, _ObjectReader, parse_calendar, read_object
from calsync.calendars.ical.busy_text import busy_text
from calsync.calendars.ical.scan import item_uid

FIXTURES = Path(__file__).parent / "fixtures" / "ics"
OWNER = "owner@example.org"
RULES = BusyRules(timezone="Europe/Berlin", owner_addresses=frozenset({OWNER}))
WINDOW = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))

MEETING = "\r\n".join(
    [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "X-WR-TIMEZONE:Europe/Berlin",
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Berlin",
        "BEGIN:STANDARD",
        "DTSTART:19701025T030000",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "END:STANDARD",
        "END:VTIMEZONE",
        "BEGIN:VTIMEZONE",
        "TZID:Customized Time Zone",
        "BEGIN:STANDARD",
        "DTSTART:19701025T030000",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "END:STANDARD",
        "END:VTIMEZONE",
        "BEGIN:VEVENT",
        "UID:meeting\\,1@example.org",
        "SUMMARY:Board meeting",
        "DESCRIPTION:A long text that busy time never reads,",
        " folded over two lines",
        "DTSTART;TZID=Europe/Berlin:20240312T100000",
        "DTEND;TZID=Europe/Berlin:20240312T110000",
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:guest@example.org",
        "ATTENDEE;PARTSTAT=DECLINED;CN=Owner:",
        " mailto:Owner@Example.org",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "TRIGGER:-PT15M",
        "END:VALARM",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
)


def test_keeps_what_busy_time_reads_and_drops_the_rest() -> None:
    slim = busy_text(MEETING, RULES.owner_addresses)
    lines = slim.text.splitlines()
    assert slim.uid == "meeting,1@example.org" == item_uid(MEETING)
    assert "X-WR-TIMEZONE:Europe/Berlin" in lines
    assert "ATTENDEE;PARTSTAT=DECLINED;CN=Owner:mailto:Owner@Example.org" in lines
    assert not any(line.startswith(("SUMMARY", "DESCRIPTION", "BEGIN:VALARM")) for line in lines)
    assert not any("guest@" in line for line in lines)
    # An IANA zone is read from zoneinfo; a custom one only from its VTIMEZONE.
    assert "TZID:Europe/Berlin" not in lines
    assert "TZID:Customized Time Zone" in lines
    # The owner declined: no busy time, as with the whole object.
    assert read_object(MEETING, *WINDOW, RULES) == ("meeting,1@example.org", [])


def test_text_that_is_not_a_calendar_is_left_alone() -> None:
    page = "<html><body>502 Bad Gateway</body></html>"
    assert busy_text(page).text == page
    with pytest.raises(InvalidCalendarData):
        read_object(page, *WINDOW, RULES)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.ics")), ids=lambda p: p.stem)
def test_same_busy_time_and_uid_as_the_whole_object(path: Path) -> None:
    data = path.read_text(encoding="utf-8")
    try:
        whole = (
            item_uid(data),
            _ObjectReader(parse_calendar(data), data, RULES, None).busy(*WINDOW),
        )
    except InvalidCalendarData:
        with pytest.raises(InvalidCalendarData):
            read_object(data, *WINDOW, RULES)
        return
    assert read_object(data, *WINDOW, RULES) == whole


def plain_event(*lines: str, calendar: str = "") -> str:
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", *filter(None, [calendar]), "BEGIN:VEVENT", "UID:p"]
    return "\r\n".join([*head, *lines, "SUMMARY:Plain", "END:VEVENT", "END:VCALENDAR", ""])


PLAIN_EVENTS = {
    "utc": plain_event("DTSTART:20240312T100000Z", "DTEND:20240312T110000Z"),
    "zoned": plain_event(
        "DTSTART;TZID=Europe/Berlin:20240331T013000", "DTEND;TZID=Europe/Berlin:20240331T033000"
    ),
    "floating end beside a zoned start": plain_event(
        "DTSTART;TZID=America/New_York:20240312T100000", "DTEND:20240312T110000"
    ),
    "floating": plain_event("DTSTART:20240312T100000", "DTEND:20240312T103000"),
    "all-day, two days": plain_event(
        "DTSTART;VALUE=DATE:20240330", "DTEND;VALUE=DATE:20240401", "TRANSP:OPAQUE"
    ),
    "all-day, no end": plain_event("DTSTART;VALUE=DATE:20240330"),
    "all-day, free": plain_event("DTSTART;VALUE=DATE:20240330", "TRANSP:TRANSPARENT"),
    "transparent": plain_event(
        "DTSTART:20240312T100000Z", "DTEND:20240312T110000Z", "TRANSP:TRANSPARENT"
    ),
    "cancelled": plain_event(
        "DTSTART:20240312T100000Z", "DTEND:20240312T110000Z", "STATUS:CANCELLED"
    ),
    "instant": plain_event("DTSTART:20240312T100000Z"),
    "end before start": plain_event("DTSTART:20240312T110000Z", "DTEND:20240312T100000Z"),
    "broken time": plain_event("DTSTART:20240312T250000Z", "DTEND:20240312T260000Z"),
    "owner organizes": plain_event(
        "DTSTART:20240312T100000Z", "DTEND:20240312T110000Z", f"ORGANIZER:mailto:{OWNER}"
    ),
    "google export": plain_event(
        "DTSTART:20240312T100000Z", "DTEND:20240312T110000Z", calendar="X-WR-TIMEZONE:Asia/Tokyo"
    ),
}


@pytest.mark.parametrize("data", PLAIN_EVENTS.values(), ids=PLAIN_EVENTS.keys())
@pytest.mark.parametrize("all_day", ["follow_transp", "busy", "free"])
def test_plain_events_read_without_the_parser_agree_with_it(data: str, all_day: str) -> None:
    rules = BusyRules(timezone="Europe/Berlin", owner_addresses=frozenset({OWNER}), all_day=all_day)  # type: ignore[arg-type]
    try:
        whole = _ObjectReader(parse_calendar(data), data, rules, None).busy(*WINDOW)
    except InvalidCalendarData:
        with pytest.raises(InvalidCalendarData):
            read_object(data, *WINDOW, rules)
        return
    assert read_object(data, *WINDOW, rules) == (item_uid(data), whole)


def test_what_makes_an_event_plain() -> None:
    assert busy_text(PLAIN_EVENTS["zoned"]).plain is not None
    assert busy_text(PLAIN_EVENTS["google export"]).plain is None
    assert busy_text(MEETING, RULES.owner_addresses).plain is None  # the owner is a guest
    weekly = plain_event("DTSTART:20240312T100000Z", "RRULE:FREQ=WEEKLY;COUNT=3")
    assert busy_text(weekly).plain is None


def test_the_uid_is_read_as_the_item_scan_reads_it() -> None:
    """The slimmed text and the mirror key an event by the same UID, however it is escaped or
    parametered, because both read it with the one content-line reader."""
    from calsync.calendars.ical import busy_text as slim_module
    from calsync.calendars.ical import scan

    event = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n"
        'UID;X-NOTE="a:b":team\\,weekly\\;2\r\n'
        "DTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert busy_text(event).uid == item_uid(event) == "team,weekly;2"
    assert slim_module.content_value is scan.content_value
    assert slim_module.unescape_text is scan.unescape_text
