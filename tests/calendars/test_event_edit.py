"""Surgical edits of events as real clients write them: only our properties change.

Fixtures in ``fixtures/owner_edited`` are events after an owner edited them in Apple
Calendar, Thunderbird, Outlook (Windows TZID) and Google (LF line ends, folded at 60 octets
with TAB continuation lines), plus a recurring master with an override. They are read as
bytes, so their line ends are exactly as written.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calsync.calendars.errors import InvalidCalendarData
from calsync.calendars.ical.event_edit import (
    description_outside_block,
    event_times,
    is_cancelled,
    link_of,
    sequence_of,
    with_cancelled,
    with_link,
    with_times,
)
from calsync.calendars.ical.session_event import (
    LINK_BLOCK_START,
    find_link_blocks,
    is_marker_line,
    link_block,
    vtimezone_text,
)

FIXTURES = Path(__file__).parent / "fixtures" / "owner_edited"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
LINK = "https://book.example.org/m/NewLink0123456789abcdef"
LINKED = {"DESCRIPTION", "URL", "X-CALSYNC-BOOKING"}

# What the owner's text (outside our block) is in each fixture.
OWNER_TEXT = {
    "apple_calendar.ics": "Bring the contract; room 4",
    "thunderbird.ics": '\n\nAdded below by the owner: call +49 30 1234, ask for "Jörg"',
    "outlook_windows_tzid.ics": "Agenda:\n1. Review; 2. Plan, budget\n\n",
    "lf_only_long_description.ics": (
        "Zoë's notes: see https://example.org/a?b=1&c=2, or C:\\Users\\Zoë\\Notes "
        "(not \\n a newline); then call.\nLine two: 東京 → Berlin 🎉\n\n"
        "Line four ends with a backslash \\"
    ),
    "recurring_master_with_override.ics": "",
}
SINGLE = [name for name in OWNER_TEXT if not name.startswith("recurring")]


def fixture(name: str) -> str:
    return (FIXTURES / name).read_bytes().decode("utf-8")


def content_lines(data: str) -> list[tuple[tuple[str, ...], str, str]]:
    """(component path, raw physical lines, unfolded text) of every content line."""
    logical: list[list[str]] = []
    for physical in re.findall(r"[^\r\n]*(?:\r\n|\n|\r)|[^\r\n]+\Z", data):
        if physical[:1] in (" ", "\t") and logical:
            logical[-1][0] += physical
            logical[-1][1] += physical.rstrip("\r\n")[1:]
        else:
            logical.append([physical, physical.rstrip("\r\n")])
    path: list[str] = []
    result = []
    for raw, text in logical:
        name, value = prop_name(text), text.partition(":")[2].upper()
        if name == "BEGIN":
            path.append(value)
        result.append((tuple(path), raw, text))
        if name == "END":
            path.pop()
    return result


def prop_name(text: str) -> str:
    return re.match(r"[A-Za-z0-9-]*", text)[0].upper()  # type: ignore[index]


def untouched(data: str, changed: set[str]) -> list[str]:
    """The raw lines of ``data`` except the VEVENT-level properties named in ``changed``."""
    return [
        raw
        for path, raw, text in content_lines(data)
        if not (path[-1:] == ("VEVENT",) and prop_name(text) in changed)
    ]


def vevent_values(data: str, name: str) -> list[str]:
    return [
        text
        for path, _, text in content_lines(data)
        if path[-1:] == ("VEVENT",) and prop_name(text) == name
    ]


def assert_line_ends_kept(original: str, edited: str) -> None:
    if "\r\n" in original:
        assert "\n" not in edited.replace("\r\n", "")
    else:
        assert "\r" not in edited


def assert_folded(edited: str) -> None:
    for line in re.split(r"\r\n|\n", edited):
        assert len(line.encode("utf-8")) <= 75, line


# --- with_link ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(OWNER_TEXT))
def test_with_link_changes_only_the_link_properties(name: str) -> None:
    original = fixture(name)
    edited = with_link(original, link=LINK, booking_id="bk_9")

    # Byte for byte, folding and line ends included, outside the three properties.
    assert untouched(edited, LINKED) == untouched(original, LINKED)
    assert_line_ends_kept(original, edited)
    assert_folded(edited)


@pytest.mark.parametrize("name", list(OWNER_TEXT))
def test_with_link_keeps_the_owners_text(name: str) -> None:
    original = fixture(name)
    edited = with_link(original, link=LINK, booking_id="bk_9")

    assert description_outside_block(original) == OWNER_TEXT[name]
    assert description_outside_block(edited) == OWNER_TEXT[name]
    assert link_of(edited) == ("bk_9", LINK)


@pytest.mark.parametrize("name", list(OWNER_TEXT))
def test_with_link_is_idempotent_and_relinking_keeps_one_block(name: str) -> None:
    once = with_link(fixture(name), link=LINK, booking_id="bk_9")
    again = with_link(once, link=LINK, booking_id="bk_9")
    relinked = with_link(once, link="https://book.example.org/m/Third", booking_id="bk_9")

    assert again == once
    assert link_of(relinked) == ("bk_9", "https://book.example.org/m/Third")
    for event in icalendar.Calendar.from_ical(relinked).walk("VEVENT"):
        assert len(find_link_blocks(str(event["DESCRIPTION"]))) == 1
        assert str(event["URL"]) == "https://book.example.org/m/Third"
    assert untouched(relinked, LINKED) == untouched(once, LINKED)


def test_with_link_reads_back_through_icalendar() -> None:
    edited = with_link(fixture("outlook_windows_tzid.ics"), link=LINK, booking_id="bk_9")
    (event,) = icalendar.Calendar.from_ical(edited).walk("VEVENT")

    assert str(event["DESCRIPTION"]) == (
        "Agenda:\n1. Review; 2. Plan, budget\n\n" + "\n\n" + link_block(LINK)
    )
    assert str(event["URL"]) == LINK
    assert str(event["X-CALSYNC-BOOKING"]) == "bk_9"
    # Outlook's HTML description is the owner's: left alone.
    assert "<p>Agenda:</p>" in str(event["X-ALT-DESC"])


def test_with_link_keeps_the_owners_escaping_outside_the_block() -> None:
    # Google folded this DESCRIPTION inside the escape "\," and uses TAB continuation lines.
    original = fixture("lf_only_long_description.ics")
    edited = with_link(original, link=LINK, booking_id="bk_9")
    (before,) = vevent_values(original, "DESCRIPTION")
    (after,) = vevent_values(edited, "DESCRIPTION")

    assert after == before + "\\n\\n" + link_block(LINK).replace("\n", "\\n")


def test_with_link_adds_url_and_booking_to_every_vevent() -> None:
    edited = with_link(fixture("recurring_master_with_override.ics"), link=LINK, booking_id="bk_9")
    master, override = icalendar.Calendar.from_ical(edited).walk("VEVENT")

    # The master had no DESCRIPTION: it gets one, before its VALARM.
    assert str(master["DESCRIPTION"]) == link_block(LINK)
    assert str(override["DESCRIPTION"]) == "Moved to the afternoon\n\n" + link_block(LINK)
    for event in (master, override):
        assert str(event["URL"]) == LINK
        assert str(event["X-CALSYNC-BOOKING"]) == "bk_9"
    assert edited.index("X-CALSYNC-BOOKING") < edited.index("BEGIN:VALARM")


def test_apples_url_with_value_param_is_left_as_it_is() -> None:
    original = fixture("apple_calendar.ics")
    edited = with_link(original, link="https://book.example.org/m/Old1", booking_id="bk_apple")

    assert edited == original


def test_link_of_falls_back_to_url_when_the_owner_deleted_the_block() -> None:
    original = fixture("apple_calendar.ics")
    # The whole DESCRIPTION, folded lines included, up to the URL that follows it.
    edited = re.sub(
        r"DESCRIPTION:.*?(?=\r\nURL)", "DESCRIPTION:Just my notes", original, flags=re.S
    )

    assert description_outside_block(edited) == "Just my notes"
    assert link_of(edited) == ("bk_apple", "https://book.example.org/m/Old1")


def test_uppercase_newline_escape_is_read_and_kept() -> None:
    # RFC 5545 allows "\\N" for a line break; some older clients write it.
    original = owner_event("x").replace("DESCRIPTION:x", "DESCRIPTION:Line one\\NLine two")
    edited = with_link(original, link=LINK, booking_id="bk_1")

    assert description_outside_block(original) == "Line one\nLine two"
    assert description_outside_block(edited) == "Line one\nLine two"
    assert vevent_values(edited, "DESCRIPTION")[0].startswith("DESCRIPTION:Line one\\NLine two")


def test_link_of_is_none_for_events_that_are_not_ours() -> None:
    assert link_of(fixture("outlook_windows_tzid.ics")) is None
    assert link_of(fixture("recurring_master_with_override.ics")) is None


def owner_event(description: str, *, eol: str = "\r\n") -> str:
    escaped = (
        description.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\n", "\\n")
    )
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//test//EN",
        "BEGIN:VEVENT",
        "UID:prop@calsync",
        "DTSTAMP:20261124T101500Z",
        "DTSTART:20270118T150000Z",
        "DTEND:20270118T160000Z",
        'X-OWNER-THING;X-PARAM="a:b":keep me',
        f"DESCRIPTION:{escaped}",
        "SUMMARY:Session",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return eol.join(lines) + eol


owner_text = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), include_characters='\n\t\\;,:"')
).filter(lambda text: not any(is_marker_line(line) for line in text.split("\n")))


@settings(max_examples=150, deadline=None)
@given(text=owner_text, eol=st.sampled_from(["\r\n", "\n"]))
def test_any_owner_text_survives_linking_and_relinking(text: str, eol: str) -> None:
    original = owner_event(text, eol=eol)
    linked = with_link(original, link=LINK, booking_id="bk_1")
    relinked = with_link(linked, link="https://book.example.org/m/2", booking_id="bk_1")

    assert description_outside_block(linked) == text
    assert with_link(linked, link=LINK, booking_id="bk_1") == linked
    assert description_outside_block(relinked) == text
    assert link_of(relinked) == ("bk_1", "https://book.example.org/m/2")
    (event,) = icalendar.Calendar.from_ical(relinked).walk("VEVENT")
    assert str(event["DESCRIPTION"]).count(LINK_BLOCK_START) == 1
    assert untouched(relinked, LINKED) == untouched(original, LINKED)
    assert_line_ends_kept(original, relinked)
    assert_folded(relinked)


# --- with_times -----------------------------------------------------------------------------

BERLIN = ZoneInfo("Europe/Berlin")
TIMED = {"DTSTART", "DTEND", "DURATION", "SEQUENCE", "DTSTAMP"}


def uid_of(data: str) -> str:
    return vevent_values(data, "UID")[0].split(":", 1)[1]


@pytest.mark.parametrize("name", SINGLE)
def test_with_times_moves_only_the_time(name: str) -> None:
    original = fixture(name)
    start = datetime(2027, 2, 3, 16, 0, tzinfo=BERLIN)
    end = start + timedelta(minutes=90)
    moved = with_times(
        original,
        uid=uid_of(original),
        start=start,
        end=end,
        timezone="Europe/Berlin",
        sequence=7,
        now=NOW,
    )

    assert event_times(moved) == (start.astimezone(UTC), end.astimezone(UTC))
    assert sequence_of(moved) == 7
    assert vevent_values(moved, "DTSTART") == ["DTSTART;TZID=Europe/Berlin:20270203T160000"]
    assert vevent_values(moved, "DTSTAMP") == ["DTSTAMP:20261201T080000Z"]
    # A VTIMEZONE is added only where the object has none for Europe/Berlin.
    added = vtimezone_text("Europe/Berlin", start, end).replace("\r\n", "\n")
    if "TZID:Europe/Berlin" not in original:
        eol = "\r\n" if "\r\n" in original else "\n"
        assert moved.count(added.replace("\n", eol)) == 1
        moved = moved.replace(added.replace("\n", eol), "")
    else:
        assert moved.count("BEGIN:VTIMEZONE") == original.count("BEGIN:VTIMEZONE")
    assert untouched(moved, TIMED) == untouched(original, TIMED)
    assert_line_ends_kept(original, moved)


def test_a_duration_stays_a_duration() -> None:
    original = fixture("lf_only_long_description.ics")
    start = datetime(2027, 2, 3, 16, 0, tzinfo=BERLIN)
    moved = with_times(
        original,
        uid="lf-only-long-description@calsync",
        start=start,
        end=start + timedelta(hours=25, minutes=30),
        timezone="Europe/Berlin",
        sequence=1,
        now=NOW,
    )

    # Hours, never days: "P1D" would be a nominal day of 23 or 25 hours across DST.
    assert vevent_values(moved, "DURATION") == ["DURATION:PT25H30M"]
    assert vevent_values(moved, "DTEND") == []
    assert event_times(moved) == (
        start.astimezone(UTC),
        (start + timedelta(hours=25, minutes=30)).astimezone(UTC),
    )


def test_with_times_is_idempotent() -> None:
    original = fixture("thunderbird.ics")
    start = datetime(2027, 2, 3, 16, 0, tzinfo=UTC)
    arguments = {
        "uid": uid_of(original),
        "start": start,
        "end": start + timedelta(hours=1),
        "timezone": "America/New_York",
        "sequence": 3,
        "now": NOW,
    }
    once = with_times(original, **arguments)  # type: ignore[arg-type]

    assert with_times(once, **arguments) == once  # type: ignore[arg-type]
    assert once.count("TZID:America/New_York") == 1


def test_a_move_into_the_repeated_hour_is_written_in_utc() -> None:
    original = fixture("apple_calendar.ics")
    second_pass = datetime(2027, 10, 31, 1, 30, tzinfo=UTC)  # the second 02:30 in Berlin
    moved = with_times(
        original,
        uid=uid_of(original),
        start=second_pass,
        end=second_pass + timedelta(minutes=30),
        timezone="Europe/Berlin",
        sequence=1,
        now=NOW,
    )

    assert vevent_values(moved, "DTSTART") == ["DTSTART:20271031T013000Z"]
    assert event_times(moved) == (second_pass, second_pass + timedelta(minutes=30))


def test_with_times_refuses_a_recurring_event() -> None:
    with pytest.raises(InvalidCalendarData, match="recurring"):
        with_times(
            fixture("recurring_master_with_override.ics"),
            uid="weekly-review@calsync",
            start=NOW,
            end=NOW + timedelta(hours=1),
            timezone="Europe/Berlin",
            sequence=1,
            now=NOW,
        )


def test_with_times_refuses_another_events_uid() -> None:
    with pytest.raises(InvalidCalendarData, match="not the session's event"):
        with_times(
            fixture("apple_calendar.ics"),
            uid="someone-else@calsync",
            start=NOW,
            end=NOW + timedelta(hours=1),
            timezone="Europe/Berlin",
            sequence=1,
            now=NOW,
        )


@pytest.mark.parametrize(
    "changes",
    [
        {"start": datetime(2027, 1, 1, 9)},
        {"end": NOW - timedelta(hours=1)},
        {"timezone": "W. Europe Standard Time"},
        {"now": datetime(2027, 1, 1, 9)},
    ],
)
def test_with_times_misuse_is_a_value_error(changes: dict[str, object]) -> None:
    arguments: dict[str, object] = {
        "uid": uid_of(fixture("apple_calendar.ics")),
        "start": NOW,
        "end": NOW + timedelta(hours=1),
        "timezone": "Europe/Berlin",
        "sequence": 1,
        "now": NOW,
    }
    arguments.update(changes)
    with pytest.raises(ValueError):
        with_times(fixture("apple_calendar.ics"), **arguments)  # type: ignore[arg-type]


# --- with_cancelled -------------------------------------------------------------------------

CANCELLED = {"STATUS", "TRANSP", "SUMMARY", "SEQUENCE", "DTSTAMP"}


@pytest.mark.parametrize("name", list(OWNER_TEXT))
def test_with_cancelled_changes_only_status_and_is_idempotent(name: str) -> None:
    original = fixture(name)
    cancelled = with_cancelled(original, sequence=5, now=NOW)

    assert with_cancelled(cancelled, sequence=5, now=NOW) == cancelled
    assert is_cancelled(cancelled) and not is_cancelled(original)
    assert untouched(cancelled, CANCELLED) == untouched(original, CANCELLED)
    for event in icalendar.Calendar.from_ical(cancelled).walk("VEVENT"):
        assert str(event["STATUS"]) == "CANCELLED"
        assert str(event["TRANSP"]) == "TRANSPARENT"
        assert str(event["SUMMARY"]).startswith("Cancelled: ")
        assert not str(event["SUMMARY"]).startswith("Cancelled: Cancelled:")
        assert event["SEQUENCE"] == 5
    assert_line_ends_kept(original, cancelled)


def test_cancelled_summary_keeps_its_parameters_and_escapes() -> None:
    cancelled = with_cancelled(
        fixture("outlook_windows_tzid.ics"), sequence=1, now=NOW, prefix="Abgesagt; "
    )

    assert vevent_values(cancelled, "SUMMARY") == ["SUMMARY;LANGUAGE=de-de:Abgesagt\\; Abstimmung"]


# --- Reading --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "apple_calendar.ics",
            (datetime(2027, 1, 12, 9, tzinfo=UTC), datetime(2027, 1, 12, 10, tzinfo=UTC)),
        ),
        # "W. Europe Standard Time" is read with the object's VTIMEZONE.
        (
            "outlook_windows_tzid.ics",
            (datetime(2027, 1, 15, 8, 30, tzinfo=UTC), datetime(2027, 1, 15, 9, tzinfo=UTC)),
        ),
        (
            "lf_only_long_description.ics",
            (datetime(2027, 1, 18, 15, tzinfo=UTC), datetime(2027, 1, 18, 15, 45, tzinfo=UTC)),
        ),
        ("recurring_master_with_override.ics", None),
    ],
)
def test_event_times(name: str, expected: tuple[datetime, datetime] | None) -> None:
    assert event_times(fixture(name)) == expected


def test_floating_times_need_a_zone() -> None:
    floating = owner_event("x").replace("20270118T150000Z", "20270118T150000")

    with pytest.raises(InvalidCalendarData, match="floating"):
        event_times(floating)
    assert event_times(floating, floating_zone=BERLIN) == (
        datetime(2027, 1, 18, 14, tzinfo=UTC),
        datetime(2027, 1, 18, 16, tzinfo=UTC),
    )


def test_all_day_event_without_end_lasts_a_day() -> None:
    data = re.sub(r"DTSTART:\S+\r\nDTEND:\S+", "DTSTART;VALUE=DATE:20270118", owner_event("x"))

    assert event_times(data, floating_zone=UTC) == (
        datetime(2027, 1, 18, tzinfo=UTC),
        datetime(2027, 1, 19, tzinfo=UTC),
    )


def test_sequence_of() -> None:
    assert sequence_of(fixture("thunderbird.ics")) == 2
    assert sequence_of(fixture("recurring_master_with_override.ics")) == 0
    with pytest.raises(InvalidCalendarData, match="SEQUENCE"):
        sequence_of(fixture("thunderbird.ics").replace("SEQUENCE:2", "SEQUENCE:two"))


MALFORMED = {
    "empty": "",
    "not iCalendar": "garbage\r\n",
    "no VEVENT": "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
    "mismatched END": "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VCALENDAR\r\n",
    "cut short": "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n",
    "VEVENT alone": "BEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n",
    "two objects": (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n" * 2
    ),
}
READERS = {
    "with_link": lambda data: with_link(data, link=LINK, booking_id="b"),
    "link_of": link_of,
    "description_outside_block": description_outside_block,
    "with_times": lambda data: with_times(
        data,
        uid="x",
        start=NOW,
        end=NOW + timedelta(hours=1),
        timezone="UTC",
        sequence=1,
        now=NOW,
    ),
    "with_cancelled": lambda data: with_cancelled(data, sequence=1, now=NOW),
    "event_times": event_times,
    "sequence_of": sequence_of,
    "is_cancelled": is_cancelled,
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_input_raises_invalid_calendar_data(case: str, reader: str) -> None:
    with pytest.raises(InvalidCalendarData):
        READERS[reader](MALFORMED[case])


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("DTSTART:20261201T100000Z", "DURATION:P9999999999D"),
        ("DTSTART:20261201T100000Z", "DURATION:PT99999999999999999999H"),
        ("DTSTART;VALUE=DATE:99991231", ""),
        ("DTSTART;TZID=Europe/Berlin:00010101T000000", "DTEND;TZID=Europe/Berlin:00010101T010000"),
    ],
)
def test_times_out_of_range_are_invalid_data_not_a_crash(start: str, end: str) -> None:
    data = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:far\r\n"
        f"DTSTAMP:20260101T000000Z\r\n{start}\r\n"
        + (f"{end}\r\n" if end else "")
        + "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    with pytest.raises(InvalidCalendarData):
        event_times(data, floating_zone=ZoneInfo("UTC"))
