"""The iTIP object of one session: RFC 5545/5546 on the wire, read by two independent parsers.

Every object goes through ``check_itip`` (icalendar and vobject, CRLF, 75-octet lines, no
split UTF-8 sequence or escape, a VTIMEZONE for every TZID, instants read through that
VTIMEZONE), then the test checks what it is about.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calsync.calendars.ical.session_event import PRODID
from calsync.notify.itip import clean_text, fold_line, itip_object, one_line
from calsync.notify.values import Method, Person, SessionNotice
from tests.support.itip_client import check_itip

NOW = datetime(2026, 11, 24, 10, 15, 30, 123456, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")
ORGANIZER = Person("coach@example.org", "Coach Carter")
CUSTOMER = Person("zoe@example.org", "Zoë Ng")
STAKEHOLDER = Person("boss@example.org", "Boss")
LINK = "https://book.example.org/m/AbCdEf0123456789"


def session(**changes: object) -> SessionNotice:
    values: dict[str, object] = {
        "uid": "s-1-bk7@calsync",
        "sequence": 0,
        "position": 1,
        "start": datetime(2026, 12, 3, 10, 30, tzinfo=NEW_YORK),
        "end": datetime(2026, 12, 3, 11, 30, tzinfo=NEW_YORK),
        "status": "CONFIRMED",
        "previous_start": None,
        "previous_end": None,
        "timezone": "America/New_York",
    }
    values.update(changes)
    return SessionNotice(**values)  # type: ignore[arg-type]


def build(method: str = "REQUEST", item: SessionNotice | None = None, **changes: object) -> str:
    values: dict[str, object] = {
        "organizer": ORGANIZER,
        "attendees": (CUSTOMER, STAKEHOLDER),
        "summary": "Coaching",
        "description": "Session 1 of 3",
        "url": None,
        "now": NOW,
        "rsvp": False,
    }
    values.update(changes)
    return itip_object(method, item or session(), **values)  # type: ignore[arg-type]


def test_request_has_everything_rfc_5546_requires() -> None:
    text = build(item=session(sequence=2), url=LINK)
    checked = check_itip(text)
    calendar = icalendar.Calendar.from_ical(text)
    event = checked.event

    assert checked.method == "REQUEST"
    assert str(calendar["PRODID"]) == PRODID and str(calendar["VERSION"]) == "2.0"
    assert checked.uid == "s-1-bk7@calsync"
    assert checked.sequence == 2
    assert checked.status == "CONFIRMED"
    assert event["DTSTAMP"].dt == datetime(2026, 11, 24, 10, 15, 30, tzinfo=UTC)
    assert checked.start == datetime(2026, 12, 3, 15, 30, tzinfo=UTC)
    assert checked.end == datetime(2026, 12, 3, 16, 30, tzinfo=UTC)
    assert event["DTSTART"].params["TZID"] == "America/New_York"
    assert str(event["SUMMARY"]) == "Coaching"
    assert str(event["DESCRIPTION"]) == "Session 1 of 3"
    assert str(event["URL"]) == LINK
    assert str(event["ORGANIZER"]) == "mailto:coach@example.org"
    assert event["ORGANIZER"].params["CN"] == "Coach Carter"
    attendees = event["ATTENDEE"]
    assert [str(a) for a in attendees] == ["mailto:zoe@example.org", "mailto:boss@example.org"]
    assert [a.params["CN"] for a in attendees] == ["Zoë Ng", "Boss"]
    for attendee in attendees:
        assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
        assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
        assert "RSVP" not in attendee.params
    assert text.count("BEGIN:VEVENT") == 1


def test_after_a_time_change_attendees_are_asked_to_answer_again() -> None:
    moved = session(
        sequence=1,
        start=datetime(2026, 12, 4, 9, tzinfo=NEW_YORK),
        end=datetime(2026, 12, 4, 10, tzinfo=NEW_YORK),
        previous_start=datetime(2026, 12, 3, 10, 30, tzinfo=NEW_YORK),
        previous_end=datetime(2026, 12, 3, 11, 30, tzinfo=NEW_YORK),
    )
    event = check_itip(build(item=moved, rsvp=True)).event
    for attendee in event["ATTENDEE"]:
        assert attendee.params["RSVP"] == "TRUE"
        assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"


def test_cancel_is_method_cancel_with_status_cancelled_and_the_same_uid() -> None:
    cancelled = session(sequence=3, status="CANCELLED")
    checked = check_itip(build("CANCEL", cancelled, rsvp=True))

    assert checked.method == "CANCEL"
    assert checked.status == "CANCELLED"
    assert checked.uid == "s-1-bk7@calsync"
    assert checked.sequence == 3
    assert str(checked.event["ORGANIZER"]) == "mailto:coach@example.org"
    assert len(checked.event["ATTENDEE"]) == 2
    assert all("RSVP" not in a.params for a in checked.event["ATTENDEE"])  # nothing to answer
    assert str(checked.event["TRANSP"]) == "TRANSPARENT"


@pytest.mark.parametrize(
    ("method", "status"), [("REQUEST", "CANCELLED"), ("CANCEL", "CONFIRMED"), ("PUBLISH", "X")]
)
def test_method_must_fit_the_session(method: str, status: str) -> None:
    item = session(status=status) if status != "X" else session()
    with pytest.raises(ValueError):
        build(method, item)


def test_refuses_what_would_make_an_invalid_object() -> None:
    with pytest.raises(ValueError, match="ATTENDEE"):
        build(attendees=())
    with pytest.raises(ValueError, match="aware"):
        build(now=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        build(url="https://x.example/m/a b")
    with pytest.raises(ValueError, match="IANA"):
        build(item=session(timezone="Mars/Olympus"))


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        ("America/New_York", datetime(2026, 12, 3, 10, 30)),
        ("Europe/Berlin", datetime(2027, 3, 28, 1, 30)),  # the hour before spring forward
        ("Europe/Berlin", datetime(2027, 7, 1, 9)),
        ("Asia/Tokyo", datetime(2027, 1, 1, 0, 0)),  # no DST at all
        ("Australia/Lord_Howe", datetime(2027, 1, 10, 8)),  # a 30-minute DST
        ("America/Sao_Paulo", datetime(2027, 1, 10, 8)),  # DST abolished in 2019
        ("Asia/Kolkata", datetime(2027, 5, 5, 17, 45)),
        ("UTC", datetime(2027, 5, 5, 17, 45)),
    ],
)
def test_times_read_through_the_vtimezone_are_the_right_instants(
    zone: str, start: datetime
) -> None:
    local = start.replace(tzinfo=ZoneInfo(zone))
    item = session(timezone=zone, start=local, end=local + timedelta(minutes=90))
    text = build(item=item)
    checked = check_itip(text)
    assert checked.start == local.astimezone(UTC)
    assert checked.end == (local + timedelta(minutes=90)).astimezone(UTC)
    if zone == "UTC":
        assert "BEGIN:VTIMEZONE" not in text and "DTSTART:20270505T174500Z" in text
    else:
        assert text.count("BEGIN:VTIMEZONE") == 1 and f"TZID:{zone}\r\n" in text


def test_a_zone_outlook_cannot_read_goes_out_in_utc() -> None:
    # Morocco leaves its DST for Ramadan: no yearly RRULE pair describes it.
    casablanca = ZoneInfo("Africa/Casablanca")
    start = datetime(2027, 6, 1, 10, tzinfo=casablanca)
    text = build(item=session(timezone="Africa/Casablanca", start=start, end=start + timedelta(1)))
    checked = check_itip(text)
    assert "BEGIN:VTIMEZONE" not in text and "TZID" not in text
    assert checked.start == start.astimezone(UTC)


def test_the_second_pass_of_a_repeated_hour_is_written_in_utc() -> None:
    # 2026-11-01 01:30 happens twice in New York; the second one needs UTC to be exact.
    second = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK)
    checked = check_itip(build(item=session(start=second, end=second + timedelta(hours=1))))
    assert checked.start == second.astimezone(UTC) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


HOSTILE = [
    "Zoë\r\nATTENDEE:mailto:evil@example.net",
    'Robert "Bob" O\'Hara; Jr., PhD: \\N \\n \\',
    "東京 🎉👩‍👩‍👧 café",
    "^n^'^^ caret",
    "\x00\x07\x1b\x7f control \u2028 \u0085 separators\rlone CR",
    "x" * 500,
    "é" * 300,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_names_and_text_give_valid_objects(text: str) -> None:
    person = Person("zoe@example.org", text)
    ics = build(
        organizer=Person("coach@example.org", text),
        attendees=(person,),
        summary=text,
        description=text + "\n" + text,
    )
    event = check_itip(ics).event
    assert str(event["SUMMARY"]) == clean_text(text)
    assert str(event["DESCRIPTION"]) == clean_text(text + "\n" + text)
    expected_name = one_line(text).replace('"', "'")
    assert event["ORGANIZER"].params["CN"] == expected_name  # icalendar decodes RFC 6868
    assert event["ATTENDEE"].params["CN"] == expected_name
    # Nothing the text held became a property or a line of its own.
    lines = ics.replace("\r\n ", "").split("\r\n")
    assert [line.split(";")[0] for line in lines if line.startswith("ATTENDEE")] == ["ATTENDEE"]
    assert not any(line.startswith("ATTENDEE:") for line in lines)


@pytest.mark.parametrize("shift", range(4))
def test_folding_never_splits_a_utf8_sequence_or_an_escape(shift: int) -> None:
    # Shifting the text moves the 75-octet boundary across every byte of the sequences.
    text = "a" * shift + "€\\,😀;é" * 60
    ics = build(summary=text, description=text)
    assert str(check_itip(ics).event["SUMMARY"]) == text


def test_fold_line_limits() -> None:
    assert fold_line("X" * 75) == "X" * 75 + "\r\n"
    assert fold_line("X" * 76) == "X" * 75 + "\r\n X\r\n"
    folded = fold_line("A" * 74 + "€")  # 74 + 3 octets: the euro sign moves down whole
    assert folded == "A" * 74 + "\r\n €\r\n"
    assert fold_line("A" * 74 + "\\n") == "A" * 74 + "\r\n \\n\r\n"


names = st.text(max_size=80)
texts = st.text(max_size=400)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(summary=texts, description=texts, organizer=names, attendee=names)
def test_any_text_gives_an_object_both_parsers_read_back(
    summary: str, description: str, organizer: str, attendee: str
) -> None:
    ics = build(
        Method.REQUEST,
        organizer=Person("coach@example.org", organizer),
        attendees=(Person("zoe@example.org", attendee), STAKEHOLDER),
        summary=summary,
        description=description,
        url=LINK,
    )
    event = check_itip(ics).event  # vobject reads the same SUMMARY and DESCRIPTION
    assert str(event["SUMMARY"]) == clean_text(summary)
    assert str(event["DESCRIPTION"]) == clean_text(description)
    cn = event["ORGANIZER"].params.get("CN", "")
    # A backslash before ,;:\ is written as "/" (readers would take the pair for an escape).
    assert cn == re.sub(r"\\(?=[,;:\\])", "/", one_line(organizer).replace('"', "'"))
    assert [str(a) for a in event["ATTENDEE"]] == [
        "mailto:zoe@example.org",
        "mailto:boss@example.org",
    ]


def test_a_backslash_in_a_name_reads_back_the_same_everywhere() -> None:
    # Found by hypothesis: icalendar reads CN="\," as "," (it unescapes parameters).
    text = itip_object(
        Method.REQUEST,
        session(),
        organizer=Person("coach@example.org", "\\,"),
        attendees=(CUSTOMER,),
        summary="s",
        description="d",
        url=None,
        now=NOW,
        rsvp=False,
    )
    event = next(iter(icalendar.Calendar.from_ical(text).walk("VEVENT")))
    assert event["ORGANIZER"].params["CN"] == "/,"
    assert check_itip(text).method == "REQUEST"
