"""The event calsync writes for a new session: valid iCalendar, right instants, our link block.

Instants are checked through the VTIMEZONE we wrote (read by icalendar/dateutil, which follow
RFC 5545), not through the TZID name, since Outlook and others use the definition itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calsync.calendars.ical.event_edit import description_outside_block, event_times, link_of
from calsync.calendars.ical.session_event import (
    LINK_BLOCK_END,
    LINK_BLOCK_START,
    PRODID,
    Person,
    SessionEvent,
    build_event,
    description_with_link,
    find_link_blocks,
    is_marker_line,
    link_block,
    split_description,
    vtimezone_text,
)

NOW = datetime(2026, 11, 24, 10, 15, 30, tzinfo=UTC)
LINK = "https://book.example.org/m/AbCdEf0123456789-_xyz"


def session(**changes: object) -> SessionEvent:
    berlin = ZoneInfo("Europe/Berlin")
    values: dict[str, object] = {
        "uid": "s-1@calsync",
        "start": datetime(2027, 1, 12, 10, tzinfo=berlin),
        "end": datetime(2027, 1, 12, 11, tzinfo=berlin),
        "timezone": "Europe/Berlin",
        "summary": "Coaching with Zoë",
        "organizer": Person("owner@example.org", "Olga Owner"),
        "attendees": (Person("zoe@example.org", "Zoë Müller"), Person("boss@example.org")),
        "booking_id": "bk_123",
        "link": LINK,
        "description": "Session 2 of 3",
    }
    values.update(changes)
    return SessionEvent(**values)  # type: ignore[arg-type]


def parsed(text: str) -> tuple[icalendar.Calendar, icalendar.Event]:
    calendar = icalendar.Calendar.from_ical(text)
    (event,) = calendar.walk("VEVENT")
    return calendar, event


def instant_by_vtimezone(calendar: icalendar.Calendar, prop: icalendar.prop.vDDDTypes) -> datetime:
    """The UTC instant of a DTSTART/DTEND read with the object's own VTIMEZONE."""
    if "TZID" not in prop.params:
        assert prop.dt.tzinfo is not None and prop.dt.utcoffset() == timedelta(0)
        return prop.dt
    (zone,) = [tz for tz in calendar.walk("VTIMEZONE") if tz["TZID"] == prop.params["TZID"]]
    wall = prop.dt.replace(tzinfo=zone.to_tz(lookup_tzid=False))
    return wall.astimezone(UTC)


def test_built_event_has_every_property_calsync_promises() -> None:
    calendar, event = parsed(build_event(session(sequence=3), now=NOW))

    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["PRODID"]) == PRODID
    assert str(event["UID"]) == "s-1@calsync"
    assert event["DTSTAMP"].dt == datetime(2026, 11, 24, 10, 15, 30, tzinfo=UTC)
    assert event["SEQUENCE"] == 3
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["TRANSP"]) == "OPAQUE"
    assert str(event["SUMMARY"]) == "Coaching with Zoë"
    assert str(event["URL"]) == LINK
    assert str(event["X-CALSYNC-BOOKING"]) == "bk_123"
    assert str(event["ORGANIZER"]) == "mailto:owner@example.org"
    assert event["ORGANIZER"].params["CN"] == "Olga Owner"
    assert str(event["DESCRIPTION"]) == f"Session 2 of 3\n\n{link_block(LINK)}"


def test_attendees_are_mailto_with_roles_and_client_scheduling() -> None:
    _, event = parsed(build_event(session(), now=NOW))

    customer, stakeholder = event["ATTENDEE"]
    assert str(customer) == "mailto:zoe@example.org"
    assert customer.params["CN"] == "Zoë Müller"
    # The customer booked: accepted. A stakeholder has not answered yet.
    assert customer.params["PARTSTAT"] == "ACCEPTED"
    assert stakeholder.params["PARTSTAT"] == "NEEDS-ACTION"
    assert "CN" not in stakeholder.params
    for attendee in (customer, stakeholder):
        assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
        # Without it the CalDAV server would send invites of its own next to ours.
        assert attendee.params["SCHEDULE-AGENT"] == "CLIENT"


@pytest.mark.parametrize(
    ("zone", "start", "end", "expected_start", "expected_end"),
    [
        # DST starts in New York on 2027-03-14 at 02:00 EST; the session spans the change.
        (
            "America/New_York",
            datetime(2027, 3, 14, 1, 30),
            datetime(2027, 3, 14, 3, 30),
            datetime(2027, 3, 14, 6, 30, tzinfo=UTC),
            datetime(2027, 3, 14, 7, 30, tzinfo=UTC),
        ),
        # The first hour after the change: icalendar's own VTIMEZONE reads this an hour off.
        (
            "America/New_York",
            datetime(2027, 3, 14, 3, 0),
            datetime(2027, 3, 14, 4, 0),
            datetime(2027, 3, 14, 7, 0, tzinfo=UTC),
            datetime(2027, 3, 14, 8, 0, tzinfo=UTC),
        ),
        # DST ends in Berlin on 2027-10-31 at 03:00 CEST.
        (
            "Europe/Berlin",
            datetime(2027, 10, 31, 1, 30),
            datetime(2027, 10, 31, 4, 0),
            datetime(2027, 10, 30, 23, 30, tzinfo=UTC),
            datetime(2027, 10, 31, 3, 0, tzinfo=UTC),
        ),
        (
            "Europe/Berlin",
            datetime(2027, 3, 28, 3, 0),
            datetime(2027, 3, 28, 3, 45),
            datetime(2027, 3, 28, 1, 0, tzinfo=UTC),
            datetime(2027, 3, 28, 1, 45, tzinfo=UTC),
        ),
    ],
)
def test_times_are_tzid_with_a_matching_vtimezone_across_dst(
    zone: str,
    start: datetime,
    end: datetime,
    expected_start: datetime,
    expected_end: datetime,
) -> None:
    tz = ZoneInfo(zone)
    text = build_event(
        session(start=start.replace(tzinfo=tz), end=end.replace(tzinfo=tz), timezone=zone),
        now=NOW,
    )
    calendar, event = parsed(text)

    assert event["DTSTART"].params["TZID"] == zone
    assert event["DTEND"].params["TZID"] == zone
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == [zone]
    assert calendar.get_missing_tzids() == set()
    assert instant_by_vtimezone(calendar, event["DTSTART"]) == expected_start
    assert instant_by_vtimezone(calendar, event["DTEND"]) == expected_end
    assert event_times(text) == (expected_start, expected_end)


def test_an_instant_in_the_repeated_hour_is_written_in_utc() -> None:
    # 01:30 UTC on 2027-10-31 is the *second* 02:30 in Berlin; a TZID wall time means the first.
    second_pass = datetime(2027, 10, 31, 1, 30, tzinfo=UTC)
    text = build_event(session(start=second_pass, end=second_pass + timedelta(hours=1)), now=NOW)

    assert "DTSTART:20271031T013000Z" in text
    assert "DTEND;TZID=Europe/Berlin:20271031T033000" in text
    assert event_times(text) == (second_pass, second_pass + timedelta(hours=1))


def test_utc_sessions_need_no_vtimezone() -> None:
    start = datetime(2027, 1, 12, 9, tzinfo=UTC)
    text = build_event(
        session(start=start, end=start + timedelta(hours=1), timezone="UTC"), now=NOW
    )

    assert "BEGIN:VTIMEZONE" not in text
    assert "DTSTART:20270112T090000Z" in text


def test_no_floating_times() -> None:
    text = build_event(session(), now=NOW)
    vevent = text[text.index("BEGIN:VEVENT") :]

    for line in vevent.split("\r\n"):
        if re.match(r"(DTSTART|DTEND|DTSTAMP)[;:]", line) and not line.startswith(" "):
            assert "TZID=" in line or line.endswith("Z"), line


@pytest.mark.parametrize(
    "zone",
    [
        "America/New_York",
        "Europe/Berlin",
        "Europe/Dublin",  # negative DST in winter
        "Australia/Sydney",  # southern hemisphere
        "Australia/Lord_Howe",  # 30-minute DST
        "Pacific/Chatham",  # changes at 02:45
        "America/Nuuk",  # changes on the Saturday before the last Sunday
        "Asia/Jerusalem",  # the Friday before the last Sunday: no yearly RRULE fits
        "America/Santiago",
        "Asia/Kolkata",
        "Asia/Tokyo",
    ],
)
def test_vtimezone_agrees_with_zoneinfo_around_every_change(zone: str) -> None:
    event_day = datetime(2027, 6, 1, tzinfo=UTC)
    vtimezone = icalendar.Timezone.from_ical(vtimezone_text(zone, event_day, event_day))
    ours, reference = vtimezone.to_tz(lookup_tzid=False), ZoneInfo(zone)

    # Every change from the event's year on, and the instants just around it.
    moment, end = datetime(2027, 1, 1, tzinfo=UTC), datetime(2034, 1, 1, tzinfo=UTC)
    while moment < end:
        following = moment + timedelta(days=1)
        if moment.astimezone(reference).utcoffset() != following.astimezone(reference).utcoffset():
            for minutes in range(0, 24 * 60 + 1, 15):
                probe = moment + timedelta(minutes=minutes)
                assert (
                    probe.astimezone(ours).utcoffset() == probe.astimezone(reference).utcoffset()
                ), (zone, probe)
        moment = following
    midsummer = datetime(2031, 7, 1, 12, tzinfo=UTC)
    assert midsummer.astimezone(ours).utcoffset() == midsummer.astimezone(reference).utcoffset()


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin", "Australia/Sydney"])
def test_vtimezone_is_one_yearly_pair_of_rules(zone: str) -> None:
    # The shape Outlook understands: one STANDARD and one DAYLIGHT, each with a yearly RRULE.
    day = datetime(2027, 6, 1, tzinfo=UTC)
    vtimezone = icalendar.Timezone.from_ical(vtimezone_text(zone, day, day))
    observances = sorted(vtimezone.subcomponents, key=lambda c: c.name)

    assert [c.name for c in observances] == ["DAYLIGHT", "STANDARD"]
    for observance in observances:
        assert observance["RRULE"]["FREQ"] == ["YEARLY"]
        assert "RDATE" not in observance


def test_vtimezone_onset_is_local_time_before_the_change() -> None:
    # RFC 5545 §3.6.5 (and its own America/New_York example): DST starts at 02:00 EST.
    day = datetime(2027, 6, 1, tzinfo=UTC)
    vtimezone = icalendar.Timezone.from_ical(vtimezone_text("America/New_York", day, day))
    (daylight,) = vtimezone.walk("DAYLIGHT")
    (standard,) = vtimezone.walk("STANDARD")

    assert daylight["DTSTART"].dt.time().hour == 2
    assert standard["DTSTART"].dt.time().hour == 2


def test_lines_are_crlf_and_folded_at_75_octets() -> None:
    long_name = "Zoë 東京 🎉 " * 12
    text = build_event(
        session(
            summary="A very long summary: " + "äöü東京🎉" * 20,
            attendees=(Person("zoe@example.org", long_name),),
            description="x" * 300,
        ),
        now=NOW,
    )

    assert text.endswith("\r\n") and not text.endswith("\r\n\r\n")
    assert "\n" not in text.replace("\r\n", "") and "\r" not in text.replace("\r\n", "")
    for line in text.split("\r\n"):
        assert len(line.encode("utf-8")) <= 75, line


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ('Zoë "Z" Müller, Jr.; x:y', 'Zoë "Z" Müller, Jr.; x:y'),
        ("東京 太郎", "東京 太郎"),
        ("🎉 Party, Inc.", "🎉 Party, Inc."),
        ("Line\nbreak\r\nand\ttab", "Line break and tab"),
        ("", None),
    ],
)
def test_names_round_trip_through_icalendar(name: str, expected: str | None) -> None:
    text = build_event(
        session(organizer=Person("owner@example.org", name), attendees=(Person("a@b.org", name),)),
        now=NOW,
    )
    _, event = parsed(text)

    assert event["ORGANIZER"].params.get("CN") == expected
    assert event["ATTENDEE"].params.get("CN") == expected
    assert str(event["ATTENDEE"]) == "mailto:a@b.org"


def test_text_round_trips_exactly() -> None:
    # icalendar 7.3's own escaping would turn the backslash-N of "C:\Notes" into a line break.
    summary = r"Review C:\Notes; budget, plan \n not a break"
    description = "Folder C:\\Notes\\new; a, b\nsecond line"
    text = build_event(session(summary=summary, description=description), now=NOW)
    _, event = parsed(text)

    assert str(event["SUMMARY"]) == summary
    assert str(event["DESCRIPTION"]) == f"{description}\n\n{link_block(LINK)}"
    assert description_outside_block(text) == description


def test_link_block_is_found_in_the_built_event() -> None:
    text = build_event(session(), now=NOW)

    assert link_of(text) == ("bk_123", LINK)
    assert description_outside_block(text) == "Session 2 of 3"


def test_without_description_the_block_is_the_whole_description() -> None:
    text = build_event(session(description=""), now=NOW)
    _, event = parsed(text)

    assert str(event["DESCRIPTION"]) == f"{LINK_BLOCK_START}\n{LINK}\n{LINK_BLOCK_END}"
    assert description_outside_block(text) == ""


@pytest.mark.parametrize(
    "changes",
    [
        {"start": datetime(2027, 1, 12, 10)},  # naive
        {"end": datetime(2027, 1, 12, 9, tzinfo=UTC)},  # before the start
        {"timezone": "Mars/Olympus_Mons"},
        {"link": "https://book.example.org/m/a b"},
        {"link": ""},
    ],
)
def test_misuse_is_a_value_error(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_event(session(**changes), now=NOW)


@pytest.mark.parametrize("email", ["", "no-at-sign", "a b@example.org", "a@example.org\r\nBCC:x"])
def test_unusable_email_addresses_are_refused(email: str) -> None:
    with pytest.raises(ValueError, match="email"):
        Person(email)


# --- The link block as text -------------------------------------------------------------

owner_text = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), include_characters="\n\t\\;,")
).filter(lambda text: not any(is_marker_line(line) for line in text.split("\n")))


@settings(max_examples=200, deadline=None)
@given(text=owner_text)
def test_block_round_trips_any_owner_text(text: str) -> None:
    described = description_with_link(text, LINK)

    assert split_description(described) == (text, LINK)
    assert description_with_link(described, LINK) == described
    relinked = description_with_link(described, "https://book.example.org/m/new")
    assert split_description(relinked) == (text, "https://book.example.org/m/new")
    assert len(find_link_blocks(relinked)) == 1


@settings(max_examples=100, deadline=None)
@given(before=owner_text, after=owner_text)
def test_block_is_replaced_where_the_owner_left_it(before: str, after: str) -> None:
    after = "\n" + after  # the owner wrote below the block
    described = description_with_link(before, "https://book.example.org/m/old") + after

    relinked = description_with_link(described, LINK)
    assert relinked.endswith(link_block(LINK) + after)
    assert split_description(relinked) == (before + after, LINK)


def test_duplicate_blocks_collapse_into_one() -> None:
    one = link_block("https://book.example.org/m/1")
    two = link_block("https://book.example.org/m/2")
    text = f"Notes\n\n{one}\n\n{two}"

    assert description_with_link(text, LINK) == f"Notes\n\n{link_block(LINK)}"
    assert split_description(text) == ("Notes", "https://book.example.org/m/1")


def test_a_block_cut_short_runs_to_the_end() -> None:
    text = f"Notes\n\n{LINK_BLOCK_START}\nhttps://book.example.org/m/1"

    assert split_description(text) == ("Notes", "https://book.example.org/m/1")
    assert description_with_link(text, LINK) == f"Notes\n\n{link_block(LINK)}"


def test_markers_padded_by_a_client_are_still_markers() -> None:
    text = f"Notes\n\n  {LINK_BLOCK_START} \r\nhttps://book.example.org/m/1\r\n{LINK_BLOCK_END}\r"

    assert split_description(text) == ("Notes", "https://book.example.org/m/1")
